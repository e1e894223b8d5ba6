#include "alert/channel_notice.hpp"
#include "delivery/channel_health.hpp"
#include "delivery/dispatcher.hpp"
#include "delivery/memory_spool.hpp"
#include "transport/webhook_payloads.hpp"

#include <catch2/catch.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

using namespace crashmail;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

namespace {

const Clock::time_point t0 = Clock::time_point(std::chrono::hours(500000));

// A channel that answers from a script (then succeeds) and records the alerts it took.
struct ScriptedChannel final : public Transport {
    struct State {
        std::mutex mutex;
        std::condition_variable changed;
        std::vector<Alert> taken;
        std::deque<std::expected<void, Failure>> script;
        bool fail_always = false;
        Failure always{Failure::Kind::transient, "503 unavailable", std::nullopt};
    };
    ScriptedChannel(std::shared_ptr<State> state, std::string label)
        : m_state(std::move(state)), m_label(std::move(label)) {}
    std::string name() const override { return m_label; }
    std::expected<void, Failure> deliver(const Alert& alert) override {
        std::lock_guard lock(m_state->mutex);
        m_state->changed.notify_all();
        if (m_state->fail_always) {
            return std::unexpected(m_state->always);
        }
        if (!m_state->script.empty()) {
            auto result = m_state->script.front();
            m_state->script.pop_front();
            if (!result) {
                return result;
            }
        }
        m_state->taken.push_back(alert);
        return {};
    }
    std::shared_ptr<State> m_state;
    std::string m_label;
};

std::vector<Alert> notices_in(const std::shared_ptr<ScriptedChannel::State>& state) {
    std::lock_guard lock(state->mutex);
    std::vector<Alert> notices;
    for (const Alert& alert : state->taken) {
        if (alert.kind == AlertKind::channel) {
            notices.push_back(alert);
        }
    }
    return notices;
}

template <typename Predicate> bool eventually(Predicate predicate) {
    for (int i = 0; i < 1000; ++i) {
        if (predicate()) {
            return true;
        }
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

Alert crash(std::string id) {
    Alert alert;
    alert.id = std::move(id);
    alert.process = "web";
    alert.group = "web";
    alert.state = "EXITED";
    alert.time = Clock::now();
    return alert;
}

DispatcherSettings settings_with_notices(StateStore* store) {
    DispatcherSettings settings;
    settings.retry.first_delay = 30ms;
    settings.retry.max_delay = 100s;
    settings.jitter = [] { return 0.0; };
    settings.health_store = store;
    settings.channel_notice = [](const ChannelNotice& notice) {
        return channel_alert(AlertContext{"box.example.com", ""}, notice, Clock::now(),
                             channel_notice_id("test", notice, Clock::now()));
    };
    return settings;
}

} // namespace

TEST_CASE("a permanent failure puts a channel down at once, and once an hour at most",
          "[channel_health]") {
    ChannelHealth health;
    auto down = health.observe("k", "slack", AttemptResult::failed_for_good, "400 bad request", 3,
                               true, t0);
    REQUIRE(down);
    CHECK_FALSE(down->working);
    CHECK(down->permanent);
    CHECK(down->words == "400 bad request");
    CHECK(down->waiting == 3);
    CHECK(health.conditions().at("k").down);
    CHECK(health.conditions().at("k").told);
    // Further failures say nothing more.
    CHECK_FALSE(
        health.observe("k", "slack", AttemptResult::failed_for_good, "400", 4, true, t0 + 1min));
    // It works again: one notice.
    auto up = health.observe("k", "slack", AttemptResult::delivered, "", 0, true, t0 + 2min);
    REQUIRE(up);
    CHECK(up->working);
    CHECK(up->since == t0);
    CHECK_FALSE(health.conditions().at("k").down);
    // It fails again within the hour: not told again, and so no "works again" either.
    CHECK_FALSE(
        health.observe("k", "slack", AttemptResult::failed_for_good, "400", 1, true, t0 + 10min));
    CHECK(health.conditions().at("k").down);
    CHECK_FALSE(health.conditions().at("k").told);
    CHECK_FALSE(health.observe("k", "slack", AttemptResult::delivered, "", 0, true, t0 + 11min));
    // An hour after the last notice it is told again.
    CHECK(health.observe("k", "slack", AttemptResult::failed_for_good, "400", 1, true, t0 + 61min));
}

TEST_CASE("transient failures put a channel down after 15 minutes without a success",
          "[channel_health]") {
    ChannelHealth health;
    CHECK_FALSE(
        health.observe("k", "smtp", AttemptResult::failed_for_now, "421 busy", 1, true, t0));
    REQUIRE(health.next_check() == t0 + 15min);
    CHECK(health.poll(true, t0 + 14min).empty());
    CHECK_FALSE(health.observe("k", "smtp", AttemptResult::failed_for_now, "421 busy", 2, true,
                               t0 + 10min));
    // Between two attempts (the backoff waits up to 15 min), the clock puts it down.
    auto notices = health.poll(true, t0 + 15min);
    REQUIRE(notices.size() == 1);
    CHECK_FALSE(notices[0].permanent);
    CHECK(notices[0].waiting == 2);
    CHECK_FALSE(health.next_check());

    SECTION("a success in between starts the 15 minutes again") {
        ChannelHealth other;
        other.observe("k", "smtp", AttemptResult::failed_for_now, "421", 1, true, t0);
        other.observe("k", "smtp", AttemptResult::delivered, "", 0, true, t0 + 10min);
        CHECK_FALSE(
            other.observe("k", "smtp", AttemptResult::failed_for_now, "421", 1, true, t0 + 16min));
        CHECK(other.poll(true, t0 + 20min).empty());
        CHECK(other.next_check() == t0 + 31min);
    }
}

TEST_CASE("with no other channel a failing channel is marked, not told", "[channel_health]") {
    ChannelHealth health;
    auto down = health.observe("k", "only", AttemptResult::failed_for_good, "boom", 1, false, t0);
    REQUIRE(down); // for the log line
    CHECK(health.conditions().at("k").down);
    CHECK_FALSE(health.conditions().at("k").told);
    // No "works again" notice follows a notice nobody got.
    CHECK_FALSE(health.observe("k", "only", AttemptResult::delivered, "", 0, false, t0 + 1min));
}

TEST_CASE("the channels' health survives the state file", "[channel_health]") {
    ChannelHealth health;
    health.observe("a", "slack", AttemptResult::failed_for_good, "400 \xff bad", 2, true, t0);
    health.observe("b", "smtp", AttemptResult::delivered, "", 0, true, t0);
    auto text = channel_health_to_json(health.conditions());
    auto back = channel_health_from_json(text);
    REQUIRE(back);
    REQUIRE(back->size() == 1); // working channels are left out
    const ChannelCondition& a = back->at("a");
    CHECK(a.name == "slack");
    CHECK(a.failing_since == t0);
    CHECK(a.waiting == 2);
    CHECK(a.down);
    CHECK(a.told);
    CHECK_FALSE(channel_health_from_json("[1]"));
}

TEST_CASE("the notice names the channel, the peer's words and what waits", "[channel_health]") {
    ChannelNotice notice{
        "k", "webhook https://hooks.example/x", false, "HTTP 400: bad token", 3, t0, true};
    Alert down = channel_alert(AlertContext{"box", "prod"}, notice, t0 + 1min, "c1");
    CHECK(down.kind == AlertKind::channel);
    CHECK(down.channel == "webhook https://hooks.example/x");
    CHECK(down.subject ==
          "prod: crashmail on box: channel webhook https://hooks.example/x is failing; 3 alerts "
          "wait");
    CHECK_THAT(down.body, Catch::Contains("Its peer said: HTTP 400: bad token") &&
                              Catch::Contains("3 alerts wait for it") &&
                              Catch::Contains("--retry-failed"));
    notice.working = true;
    Alert up = channel_alert(AlertContext{"box", ""}, notice, t0 + 30min, "c2");
    CHECK(up.subject == "crashmail on box: channel webhook https://hooks.example/x works again");
    CHECK(up.channel_recovered);
    CHECK(channel_notice_id("i", notice, t0) != channel_notice_id("i", notice, t0 + 1ms));
    // Alertmanager: a failing channel is an alert of its own, ended by the notice it works again.
    auto firing = alertmanager_payload(down);
    REQUIRE(firing.size() == 1);
    CHECK(firing[0]["labels"]["alertname"] == k_channel_alert_name);
    CHECK(firing[0]["labels"]["channel"] == down.channel);
    CHECK_FALSE(firing[0].contains("endsAt"));
    auto resolved = alertmanager_payload(up);
    REQUIRE(resolved.size() == 1);
    CHECK(resolved[0].contains("endsAt"));
    CHECK(webhook_document(down)["kind"] == "channel");
    CHECK(webhook_document(down)["channel"] == down.channel);
}

TEST_CASE("a channel that fails for good is told through the others, and when it works again",
          "[channel_health]") {
    MemorySpool store;
    auto broken = std::make_shared<ScriptedChannel::State>();
    broken->script = {std::unexpected(Failure{Failure::Kind::permanent, "400 bad token", {}})};
    auto healthy = std::make_shared<ScriptedChannel::State>();
    std::vector<std::unique_ptr<Transport>> channels;
    channels.push_back(std::make_unique<ScriptedChannel>(broken, "broken"));
    channels.push_back(std::make_unique<ScriptedChannel>(healthy, "healthy"));
    Dispatcher dispatcher(std::move(channels), store, settings_with_notices(&store));
    dispatcher.submit(crash("1"));
    REQUIRE(eventually([&] { return notices_in(healthy).size() == 1; }));
    Alert notice = notices_in(healthy)[0];
    CHECK(notice.channel == "broken");
    CHECK_FALSE(notice.channel_recovered);
    CHECK_THAT(notice.body, Catch::Contains("400 bad token"));
    // --status reads it from the state file.
    auto saved = store.load_state(k_channel_health_state);
    REQUIRE(saved);
    REQUIRE(saved->has_value());
    auto conditions = channel_health_from_json(**saved);
    REQUIRE(conditions);
    REQUIRE(conditions->size() == 1);
    CHECK(conditions->begin()->second.name == "broken");
    // The next alert goes through: the healthy channel hears that it works again.
    dispatcher.submit(crash("2"));
    REQUIRE(eventually([&] { return notices_in(healthy).size() == 2; }));
    CHECK(notices_in(healthy)[1].channel_recovered);
    dispatcher.shutdown(2s);
    // The broken channel never got a notice about itself.
    CHECK(notices_in(broken).empty());
    auto after = channel_health_from_json(**store.load_state(k_channel_health_state));
    REQUIRE(after);
    CHECK(after->empty());
}

TEST_CASE("a channel failing for a while is told about by the clock, between attempts",
          "[channel_health]") {
    MemorySpool store;
    auto flaky = std::make_shared<ScriptedChannel::State>();
    flaky->fail_always = true;
    auto healthy = std::make_shared<ScriptedChannel::State>();
    std::vector<std::unique_ptr<Transport>> channels;
    channels.push_back(std::make_unique<ScriptedChannel>(flaky, "flaky"));
    channels.push_back(std::make_unique<ScriptedChannel>(healthy, "healthy"));
    DispatcherSettings settings = settings_with_notices(&store);
    settings.retry.first_delay = 100s; // no second attempt during the test
    settings.health.failing_for = 300ms;
    Dispatcher dispatcher(std::move(channels), store, settings);
    dispatcher.submit(crash("1"));
    REQUIRE(eventually([&] { return notices_in(healthy).size() == 1; }));
    Alert notice = notices_in(healthy)[0];
    CHECK(notice.channel == "flaky");
    CHECK_THAT(notice.body,
               Catch::Contains("503 unavailable") && Catch::Contains("1 alert waits for it"));
    dispatcher.shutdown(1s);
    CHECK(notices_in(flaky).empty());
}
