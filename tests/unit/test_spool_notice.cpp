#include "alert/spool_notice.hpp"
#include "transport/webhook_payloads.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace crashmail;

namespace {

const auto k_now = std::chrono::system_clock::time_point(std::chrono::hours(500000));

} // namespace

TEST_CASE("spool notice: says what the spool said, how many wait, and the fix", "[spool_notice]") {
    AlertContext context{"web1.example.com", "prod"};
    Alert alert = spool_alert(context,
                              "cannot write /var/spool/crashmail/x/tmp/1: No space "
                              "left on device\r\nBcc: evil@example.com",
                              3, "/var/spool/crashmail/x", k_now, "s1");
    CHECK(alert.kind == AlertKind::spool);
    CHECK(alert.id == "s1");
    CHECK(alert.subject ==
          "prod: crashmail on web1.example.com: spool not writable; 3 alerts not durable");
    CHECK_THAT(alert.body, Catch::Contains("No space left on device  Bcc: evil@example.com"));
    CHECK_THAT(alert.body, Catch::Contains("3 alerts wait in memory"));
    CHECK_THAT(alert.body, Catch::Contains("Fix: free space on the file system of "
                                           "/var/spool/crashmail/x"));
    CHECK(alert.body.find('\r') == std::string::npos);
    CHECK(alert.subject.find('\n') == std::string::npos);
    Alert one = spool_alert(AlertContext{"h", ""}, "x", 1, "/s", k_now, "s2");
    CHECK(one.subject == "crashmail on h: spool not writable; 1 alert not durable");
    CHECK_THAT(one.body, Catch::Contains("1 alert waits in memory"));
}

TEST_CASE("spool notice: ids are stable per instance and time", "[spool_notice]") {
    CHECK(spool_notice_id("a", k_now) == spool_notice_id("a", k_now));
    CHECK(spool_notice_id("a", k_now) != spool_notice_id("b", k_now));
    CHECK(spool_notice_id("a", k_now).starts_with("s"));
}

TEST_CASE("spool notice: JSON kind spool, its own Alertmanager alert", "[spool_notice]") {
    Alert alert =
        spool_alert(AlertContext{"h", ""}, "No space left on device", 2, "/s", k_now, "s1");
    auto document = webhook_document(alert);
    CHECK(document["kind"] == "spool");
    CHECK(document["state"].is_null());
    auto alerts = alertmanager_payload(alert);
    REQUIRE(alerts.size() == 1);
    CHECK(alerts[0]["labels"]["alertname"] == k_spool_alert_name);
    CHECK(alerts[0]["labels"]["host"] == "h");
    CHECK(alerts[0]["annotations"]["id"] == "s1");
}
