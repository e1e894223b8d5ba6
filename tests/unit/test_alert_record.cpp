#include "delivery/alert_record.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace crashmail;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const std::chrono::system_clock::time_point k_time =
    std::chrono::sys_days{std::chrono::year{2026} / 11 / 25} + 21h + 3min + 10s + 123ms;

Alert story_alert(std::string id) {
    Alert alert;
    alert.id = std::move(id);
    alert.state = "EXITED";
    alert.process = "worker";
    alert.group = "grp";
    alert.host = "web1";
    alert.time = k_time;
    alert.subject = "grp:worker crashed";
    alert.body = "body";
    return alert;
}

} // namespace

TEST_CASE("a record keeps the crash-loop fields through JSON", "[record]") {
    AlertRecord record;
    record.alert = story_alert("r1");
    record.alert.kind = AlertKind::recovery;
    record.alert.occurrence = 4;
    record.alert.suppressed = 9;
    record.alert.story_start = k_time - 15min;
    record.alert.window = 600s;
    record.alert.resolves = {{"EXITED", false}, {"EXITED", true}, {"FATAL", false}};
    record.alert.notify = false;
    auto back = record_from_json(record_to_json(record));
    REQUIRE(back);
    CHECK(back->alert.kind == AlertKind::recovery);
    CHECK(back->alert.occurrence == 4);
    CHECK(back->alert.suppressed == 9);
    CHECK(back->alert.story_start == k_time - 15min);
    CHECK(back->alert.window == 600s);
    CHECK(back->alert.resolves == record.alert.resolves);
    CHECK_FALSE(back->alert.notify);
    CHECK_FALSE(back->held);
    CHECK(back->alert.items.empty());
}

TEST_CASE("a record keeps a dropped notice's counts and a recovered alert's origin",
          "[record][discards]") {
    AlertRecord notice;
    notice.alert = story_alert("n1");
    notice.alert.kind = AlertKind::dropped;
    notice.alert.discarded = 280;
    notice.alert.recovered_crashes = 275;
    auto back = record_from_json(record_to_json(notice));
    REQUIRE(back);
    CHECK(back->alert.kind == AlertKind::dropped);
    CHECK(back->alert.discarded == 280);
    CHECK(back->alert.recovered_crashes == 275);
    notice.alert.recovered_crashes.reset();
    back = record_from_json(record_to_json(notice));
    REQUIRE(back);
    CHECK_FALSE(back->alert.recovered_crashes.has_value());

    AlertRecord recovered;
    recovered.alert = story_alert("g1");
    recovered.alert.from_log = true;
    back = record_from_json(record_to_json(recovered));
    REQUIRE(back);
    CHECK(back->alert.from_log);
    recovered.alert.from_log = false;
    back = record_from_json(record_to_json(recovered));
    REQUIRE(back);
    CHECK_FALSE(back->alert.from_log);
}

TEST_CASE("a digest record keeps its items and the held flag through JSON", "[record]") {
    AlertRecord record;
    record.held = true;
    record.alert = story_alert("d1");
    record.alert.kind = AlertKind::digest;
    Alert first = story_alert("i1");
    first.occurrence = 1;
    first.log_tail = "line 1\nline 2";
    Alert second = story_alert("i2");
    second.kind = AlertKind::summary;
    second.suppressed = 3;
    second.window = 60s;
    second.notify = false;
    record.alert.items = {first, second};
    auto back = record_from_json(record_to_json(record));
    REQUIRE(back);
    CHECK(back->held);
    CHECK(back->alert.kind == AlertKind::digest);
    REQUIRE(back->alert.items.size() == 2);
    CHECK(back->alert.items[0].id == "i1");
    CHECK(back->alert.items[0].occurrence == 1);
    CHECK(back->alert.items[0].log_tail == "line 1\nline 2");
    CHECK(back->alert.items[1].kind == AlertKind::summary);
    CHECK(back->alert.items[1].suppressed == 3);
    CHECK(back->alert.items[1].window == 60s);
    CHECK_FALSE(back->alert.items[1].notify);
    CHECK(back->alert.items[1].time == k_time);
}

TEST_CASE("the story start is absent from the record when there is none", "[record]") {
    AlertRecord record;
    record.alert = story_alert("r2");
    json document = json::parse(record_to_json(record));
    CHECK_FALSE(document["alert"].contains("story_start_ms"));
    CHECK(document["alert"]["kind"] == "alert");
    CHECK_FALSE(document["alert"].contains("items"));
    CHECK(document["held"] == false);
}

TEST_CASE("a record written before crash loops existed reads as a plain alert", "[record]") {
    const char* old = R"({"version": 1, "alert": {"id": "s1.abc", "event": "PROCESS_STATE_EXITED",
        "state": "EXITED", "process": "p", "group": "p", "from_state": "RUNNING", "pid": 7,
        "expected": false, "serial": 3, "host": "h", "time_ms": 1000, "subject": "s",
        "body": "b"}, "details_pending": false, "channels": {}})";
    auto back = record_from_json(old);
    REQUIRE(back);
    CHECK(back->alert.kind == AlertKind::alert);
    CHECK(back->alert.occurrence == 0);
    CHECK(back->alert.suppressed == 0);
    CHECK(back->alert.story_start == std::chrono::system_clock::time_point{});
    CHECK(back->alert.window == 0s);
    CHECK(back->alert.resolves.empty());
    CHECK(back->alert.notify);
    CHECK(back->alert.items.empty());
    CHECK_FALSE(back->held);
}

TEST_CASE("a channel's waiting and refused recipients survive the JSON round trip, and are absent "
          "when empty",
          "[alert_record]") {
    AlertRecord record;
    record.alert.id = "r1";
    record.alert.process = "p";
    record.channels["k"].waiting_recipients = {{"c@x", "452 full (transient)"}};
    record.channels["k"].refused_recipients = {{"b@x", "550 unknown (permanent)"}};
    record.channels["other"].status = ChannelState::Status::delivered;
    const std::string text = record_to_json(record);
    auto back = record_from_json(text);
    REQUIRE(back);
    CHECK(back->channels["k"].waiting_recipients == record.channels["k"].waiting_recipients);
    CHECK(back->channels["k"].refused_recipients == record.channels["k"].refused_recipients);
    CHECK(back->channels["other"].waiting_recipients.empty());
    auto document = nlohmann::json::parse(text);
    CHECK_FALSE(document["channels"]["other"].contains("waiting_recipients"));
    CHECK_FALSE(document["channels"]["other"].contains("refused_recipients"));
}
