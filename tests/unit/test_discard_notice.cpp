// Notices that supervisord discarded events: at most one per window, and their wording.

#include "alert/discard_notice.hpp"
#include "util/time.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace crashmail;
using namespace std::chrono_literals;

namespace {

using time_point = std::chrono::system_clock::time_point;
const time_point k_t0 = time_point(std::chrono::hours(24 * 20000));
constexpr auto k_window = 600s;

using Counts = std::map<std::string, std::uint64_t>;

DiscardReport report(std::uint64_t discarded, std::optional<Counts> recovered,
                     std::string problem = "") {
    return DiscardReport{discarded, std::move(recovered), std::move(problem)};
}

DiscardReport unreadable(std::uint64_t discarded) {
    return report(discarded, std::nullopt,
                  "supervisord's log cannot be read: unix:///run/supervisor.sock: fault 70 "
                  "NO_FILE (supervisord logs to syslog, or its log file is gone)");
}

AlertContext context(std::string prefix = "") {
    return AlertContext{"web1.example.com", std::move(prefix)};
}

DiscardNotice told_at_once(std::uint64_t discarded, Counts recovered) {
    DiscardNotices notices(k_window);
    auto notice = notices.add(report(discarded, std::move(recovered)), k_t0);
    REQUIRE(notice);
    return *notice;
}

bool has_cr_or_lf(std::string_view text) {
    return text.find('\r') != std::string_view::npos || text.find('\n') != std::string_view::npos;
}

} // namespace

TEST_CASE("the first gap of a window is told at once", "[discards][discard_notice]") {
    DiscardNotices notices(k_window);
    CHECK(notices.next_due() == std::nullopt);
    CHECK_FALSE(notices.due(k_t0));
    auto notice = notices.add(report(5, Counts{{"crasher", 2}}), k_t0);
    REQUIRE(notice);
    CHECK(notice->discarded == 5);
    CHECK(notice->gaps == 1);
    CHECK(notice->recovered == Counts{{"crasher", 2}});
    CHECK(notice->recovered_total() == 2);
    CHECK(notice->unrecoverable == 0);
    CHECK_FALSE(notice->all_unrecoverable());
    CHECK(notice->problems.empty());
    CHECK(notice->window_start == k_t0);
    CHECK(notice->window_end == k_t0); // told at once
    CHECK(notices.next_due() == k_t0 + k_window);
    CHECK(notices.totals().notices == 1);
}

TEST_CASE("later gaps of the window add up into one notice at its end",
          "[discards][discard_notice]") {
    DiscardNotices notices(k_window);
    REQUIRE(notices.add(report(5, Counts{{"crasher", 2}}), k_t0));
    CHECK_FALSE(
        notices.add(report(3, Counts{{"crasher", 1}, {"grp:worker_01", 1}}, "why 1"), k_t0 + 10s));
    CHECK_FALSE(notices.add(unreadable(4), k_t0 + 100s));
    CHECK_FALSE(notices.add(report(2, Counts{}, "why 1"), k_t0 + 500s));
    CHECK_FALSE(notices.due(k_t0 + k_window - 1ms));

    auto notice = notices.due(k_t0 + k_window);
    REQUIRE(notice);
    CHECK(notice->discarded == 9);
    CHECK(notice->gaps == 3);
    CHECK(notice->recovered == Counts{{"crasher", 1}, {"grp:worker_01", 1}});
    CHECK(notice->unrecoverable == 4);
    REQUIRE(notice->problems.size() == 2); // distinct, in order
    CHECK(notice->problems[0] == "why 1");
    CHECK_THAT(notice->problems[1], Catch::StartsWith("supervisord's log cannot be read"));
    CHECK(notice->window_start == k_t0);
    CHECK(notice->window_end == k_t0 + k_window);
    CHECK(notices.totals().notices == 2);
    CHECK_FALSE(notices.due(k_t0 + k_window)); // told once

    // The loop goes on: the next window's gaps wait for its end too.
    CHECK(notices.next_due() == k_t0 + 2 * k_window);
    CHECK_FALSE(notices.add(report(1, Counts{}), k_t0 + k_window + 100s));
    CHECK_FALSE(notices.due(k_t0 + 2 * k_window - 1s));
    auto next = notices.due(k_t0 + 2 * k_window);
    REQUIRE(next);
    CHECK(next->discarded == 1);
    CHECK(next->window_start == k_t0 + k_window);
    CHECK(next->window_end == k_t0 + 2 * k_window);
    CHECK(notices.totals().notices == 3);
}

TEST_CASE("a quiet window resets: the next gap is told at once", "[discards][discard_notice]") {
    SECTION("due() at the quiet window's end") {
        DiscardNotices notices(k_window);
        REQUIRE(notices.add(report(5, Counts{}), k_t0));
        CHECK_FALSE(notices.due(k_t0 + k_window)); // nothing to say
        CHECK(notices.next_due() == std::nullopt);
        auto notice = notices.add(report(2, Counts{}), k_t0 + k_window + 50s);
        REQUIRE(notice);
        CHECK(notice->discarded == 2);
        CHECK(notice->window_start == k_t0 + k_window + 50s);
        CHECK(notice->window_end == k_t0 + k_window + 50s);
        CHECK(notices.next_due() == k_t0 + 2 * k_window + 50s);
    }
    SECTION("no due() call in between") {
        DiscardNotices notices(k_window);
        REQUIRE(notices.add(report(5, Counts{}), k_t0));
        auto notice = notices.add(report(2, Counts{}), k_t0 + k_window + 1s);
        REQUIRE(notice);
        CHECK(notice->discarded == 2);
        CHECK(notice->gaps == 1);
        CHECK(notice->window_start == notice->window_end);
        CHECK(notices.totals().notices == 2);
    }
}

TEST_CASE("a gap after a window's end takes the window's waiting gaps along in one notice",
          "[discards][discard_notice]") {
    // The window ended with gaps waiting, and a new gap is handled before due() was called.
    DiscardNotices notices(k_window);
    REQUIRE(notices.add(report(5, Counts{}), k_t0));
    CHECK_FALSE(notices.add(report(3, Counts{{"crasher", 1}}), k_t0 + 10s));
    auto notice = notices.add(report(2, Counts{{"crasher", 1}}), k_t0 + k_window + 1s);
    REQUIRE(notice);
    CHECK(notice->discarded == 5);
    CHECK(notice->gaps == 2);
    CHECK(notice->recovered == Counts{{"crasher", 2}});
    CHECK(notice->window_start == k_t0);
    CHECK(notice->window_end == k_t0 + k_window + 1s);
    CHECK_FALSE(notices.due(k_t0 + k_window + 2s)); // nothing left over
    // Two notices were sent: the totals say two.
    CHECK(notices.totals().notices == 2);
}

TEST_CASE("discard totals add up every gap", "[discards][discard_notice]") {
    DiscardNotices notices(k_window);
    (void)notices.add(report(5, Counts{{"a", 2}, {"b", 1}}), k_t0);
    (void)notices.add(unreadable(7), k_t0 + 1s);
    (void)notices.add(report(4, Counts{}), k_t0 + 2s);
    (void)notices.due(k_t0 + k_window);
    const DiscardTotals& totals = notices.totals();
    CHECK(totals.discarded == 16);
    CHECK(totals.recovered == 3);
    CHECK(totals.unrecoverable == 7);
    CHECK(totals.notices == 2);
}

TEST_CASE("the notices' state survives to_json and restore", "[discards][discard_notice]") {
    DiscardNotices notices(k_window);
    REQUIRE(notices.add(report(5, Counts{{"crasher", 2}}), k_t0));
    CHECK_FALSE(notices.add(report(3, Counts{{"grp:w 1", 1}}, "why"), k_t0 + 10s));
    CHECK_FALSE(notices.add(unreadable(4), k_t0 + 20s));
    const nlohmann::json document = notices.to_json();

    DiscardNotices restored(k_window);
    auto done = restored.restore(nlohmann::json::parse(document.dump()));
    REQUIRE(done);
    CHECK(restored.to_json() == document);
    CHECK(restored.totals().discarded == notices.totals().discarded);
    CHECK(restored.totals().recovered == notices.totals().recovered);
    CHECK(restored.totals().unrecoverable == notices.totals().unrecoverable);
    CHECK(restored.totals().notices == notices.totals().notices);
    CHECK(restored.next_due() == k_t0 + k_window);
    // Still inside the window: a new gap waits.
    CHECK_FALSE(restored.add(report(1, Counts{}), k_t0 + 30s));

    auto original = notices.due(k_t0 + k_window);
    REQUIRE(original);
    DiscardNotices again(k_window);
    REQUIRE(again.restore(document));
    auto waited = again.due(k_t0 + k_window);
    REQUIRE(waited);
    CHECK(waited->discarded == original->discarded);
    CHECK(waited->gaps == original->gaps);
    CHECK(waited->recovered == original->recovered);
    CHECK(waited->unrecoverable == original->unrecoverable);
    CHECK(waited->problems == original->problems);
    CHECK(waited->window_start == original->window_start);
    CHECK(waited->window_end == original->window_end);

    SECTION("a fresh state survives too") {
        DiscardNotices fresh(k_window);
        DiscardNotices copy(k_window);
        REQUIRE(copy.restore(fresh.to_json()));
        CHECK(copy.next_due() == std::nullopt);
        CHECK(copy.to_json() == fresh.to_json());
    }
}

TEST_CASE("restore ignores what it does not know and refuses what is no state",
          "[discards][discard_notice]") {
    DiscardNotices notices(k_window);
    nlohmann::json document = notices.to_json();
    document["from_the_future"] = {1, 2, 3};
    document["totals"]["also_new"] = true;
    CHECK(DiscardNotices(k_window).restore(document));

    for (const char* text : {"[]", "42", "\"x\"", "null", "{}", "{\"version\": 1}"}) {
        INFO(text);
        CHECK_FALSE(DiscardNotices(k_window).restore(nlohmann::json::parse(text)));
    }
    auto bad = DiscardNotices(k_window).restore(
        nlohmann::json::parse(R"({"totals": {"discarded": "many"}})"));
    REQUIRE_FALSE(bad);
    CHECK_THAT(bad.error(), Catch::Contains("malformed"));
}

TEST_CASE("a discard alert's subject and body", "[discards][discard_notice]") {
    DiscardNotice notice = told_at_once(5, Counts{{"crasher", 1}, {"grp:worker_01", 2}});
    Alert alert = discard_alert(notice, context(), "crashmail_pool", k_t0 + 1s, "n0123");
    CHECK(alert.kind == AlertKind::dropped);
    CHECK(alert.id == "n0123");
    CHECK(alert.host == "web1.example.com");
    CHECK(alert.time == k_t0 + 1s);
    CHECK(alert.discarded == 5);
    CHECK(alert.recovered_crashes == 3);
    CHECK(alert.subject == "supervisord discarded 5 events meant for crashmail on "
                           "web1.example.com");
    CHECK_THAT(alert.body, Catch::StartsWith("supervisord discarded 5 events meant for crashmail "
                                             "(listener pool crashmail_pool)"));
    CHECK_THAT(alert.body, Catch::Contains("Recovered from supervisord's log: 3 crashes (crasher "
                                           "1, grp:worker_01 2)"));
    CHECK_THAT(alert.body, Catch::Contains("The other 2 discarded events were state changes"));
    CHECK_THAT(alert.body, Catch::Contains("buffer_size=100"));
    CHECK_THAT(alert.body, Catch::Contains("[eventlistener:crashmail_pool]"));
    CHECK_THAT(alert.body, Catch::Contains("Host: web1.example.com\nTime: " +
                                           timefmt::rfc5322_local(k_t0 + 1s)));
    CHECK_FALSE(has_cr_or_lf(alert.subject));

    SECTION("-o puts its prefix before the subject") {
        Alert prefixed = discard_alert(notice, context("prod"), "crashmail_pool", k_t0, "n1");
        CHECK(prefixed.subject == "prod: supervisord discarded 5 events meant for crashmail on "
                                  "web1.example.com");
    }
    SECTION("one event") {
        Alert one = discard_alert(told_at_once(1, Counts{{"crasher", 1}}), context(),
                                  "crashmail_pool", k_t0, "n1");
        CHECK(one.subject == "supervisord discarded 1 event meant for crashmail on "
                             "web1.example.com");
        CHECK_THAT(one.body, Catch::Contains("Recovered from supervisord's log: 1 crash (crasher "
                                             "1)"));
        CHECK_THAT(one.body, !Catch::Contains("The other"));
    }
    SECTION("a pool without a name is crashmail's") {
        Alert unnamed = discard_alert(notice, context(), "", k_t0, "n1");
        CHECK_THAT(unnamed.body, Catch::Contains("[eventlistener:crashmail]"));
    }
}

TEST_CASE("a discard alert for a window says which window", "[discards][discard_notice]") {
    DiscardNotices notices(k_window);
    REQUIRE(notices.add(report(1, Counts{}), k_t0));
    CHECK_FALSE(notices.add(report(4, Counts{{"crasher", 4}}), k_t0 + 30s));
    auto notice = notices.due(k_t0 + k_window);
    REQUIRE(notice);
    Alert alert = discard_alert(*notice, context(), "crashmail", k_t0 + k_window, "n1");
    CHECK(alert.window == k_window);
    CHECK_THAT(alert.body,
               Catch::Contains("in the last 10 minutes (" + timefmt::asctime_local(k_t0) + " to " +
                               timefmt::asctime_local(k_t0 + k_window) + ")"));
    CHECK(alert.recovered_crashes == 4);
}

TEST_CASE("a discard alert when nothing could be recovered says why",
          "[discards][discard_notice]") {
    DiscardNotices notices(k_window);
    auto notice = notices.add(unreadable(6), k_t0);
    REQUIRE(notice);
    CHECK(notice->all_unrecoverable());
    Alert alert = discard_alert(*notice, context(), "crashmail", k_t0, "n1");
    CHECK(alert.discarded == 6);
    CHECK(alert.recovered_crashes == std::nullopt);
    CHECK(alert.subject == "supervisord discarded 6 events meant for crashmail on "
                           "web1.example.com");
    CHECK_THAT(alert.body,
               Catch::Contains("The crashes among them could not be recovered from "
                               "supervisord's log: supervisord's log cannot be read: "
                               "unix:///run/supervisor.sock: fault 70 NO_FILE (supervisord logs "
                               "to syslog, or its log file is gone)."));
    CHECK_THAT(alert.body, Catch::Contains("supervisorctl status"));
    CHECK_THAT(alert.body, !Catch::Contains("Recovered from"));
    CHECK_THAT(alert.body, Catch::Contains("buffer_size=100"));

    SECTION("without a reason given") {
        DiscardNotices other(k_window);
        auto why_less = other.add(report(2, std::nullopt), k_t0);
        REQUIRE(why_less);
        Alert no_reason = discard_alert(*why_less, context(), "crashmail", k_t0, "n1");
        CHECK(no_reason.recovered_crashes == std::nullopt);
        CHECK_THAT(no_reason.body, Catch::Contains("could not be recovered from supervisord's "
                                                   "log. Look at"));
    }
}

TEST_CASE("a discard alert when the log shows no crash", "[discards][discard_notice]") {
    Alert alert = discard_alert(told_at_once(3, Counts{}), context(), "crashmail", k_t0, "n1");
    CHECK(alert.recovered_crashes == 0);
    CHECK_THAT(alert.body,
               Catch::Contains("supervisord's log shows no crash of a watched process among "
                               "them."));
}

TEST_CASE("a discard alert when only some gaps could be recovered", "[discards][discard_notice]") {
    DiscardNotices notices(k_window);
    REQUIRE(notices.add(report(1, Counts{}), k_t0));
    CHECK_FALSE(notices.add(report(3, Counts{{"crasher", 1}}), k_t0 + 1s));
    CHECK_FALSE(notices.add(unreadable(4), k_t0 + 2s));
    auto notice = notices.due(k_t0 + k_window);
    REQUIRE(notice);
    CHECK(notice->discarded == 7);
    CHECK(notice->unrecoverable == 4);
    CHECK_FALSE(notice->all_unrecoverable());
    Alert alert = discard_alert(*notice, context(), "crashmail", k_t0 + k_window, "n1");
    CHECK(alert.discarded == 7);
    CHECK(alert.recovered_crashes == 1);
    CHECK_THAT(alert.body,
               Catch::Contains("Recovered from supervisord's log: 1 crash (crasher 1)"));
    CHECK_THAT(alert.body, Catch::Contains("The other 2 discarded events"));
    CHECK_THAT(alert.body, Catch::Contains("The crashes of 4 discarded events"));
    CHECK_THAT(alert.body,
               Catch::Contains("could not be recovered: supervisord's log cannot be read"));
    CHECK_THAT(alert.body, Catch::Contains("supervisorctl status"));
}

TEST_CASE("CR and LF in a pool or process name never reach the subject",
          "[discards][discard_notice]") {
    const std::string evil_pool = "pool\r\nBcc: victim@example.com";
    DiscardNotice notice = told_at_once(2, Counts{{"grp:p\r\nSubject: forged", 1}});
    Alert alert = discard_alert(notice, AlertContext{"web1.example.com", "pre\r\nfix"}, evil_pool,
                                k_t0, "n1");
    CHECK_FALSE(has_cr_or_lf(alert.subject));
    CHECK_THAT(alert.subject, !Catch::Contains("Bcc"));
    CHECK_THAT(alert.subject, !Catch::Contains("forged"));
    CHECK_THAT(alert.subject, Catch::EndsWith("supervisord discarded 2 events meant for "
                                              "crashmail on web1.example.com"));
    // In the body the names keep their words on their line.
    CHECK(alert.body.find('\r') == std::string::npos);
    CHECK_THAT(alert.body, !Catch::Contains("\nBcc:"));
    CHECK_THAT(alert.body, !Catch::Contains("\nSubject:"));
    CHECK_THAT(alert.body, Catch::Contains("Bcc: victim@example.com]"));
    CHECK_THAT(alert.body, Catch::Contains("Subject: forged 1"));
}

TEST_CASE("a discard notice's id is stable", "[discards][discard_notice]") {
    DiscardNotice notice = told_at_once(5, Counts{{"crasher", 2}});
    const std::string id = discard_notice_id(notice, "boot:1981:1795644190");
    CHECK(id == discard_notice_id(notice, "boot:1981:1795644190"));
    REQUIRE(id.size() == 17);
    CHECK(id[0] == 'n');
    CHECK(id.find_first_not_of("0123456789abcdef", 1) == std::string::npos);

    CHECK(discard_notice_id(notice, "boot:1982:1795644999") != id);
    DiscardNotice more = notice;
    more.discarded = 6;
    CHECK(discard_notice_id(more, "boot:1981:1795644190") != id);
    DiscardNotice later = notice;
    later.window_start += 1s;
    later.window_end += 1s;
    CHECK(discard_notice_id(later, "boot:1981:1795644190") != id);
    DiscardNotice wider = notice;
    wider.window_end += k_window;
    CHECK(discard_notice_id(wider, "boot:1981:1795644190") != id);
}
