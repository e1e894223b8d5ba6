#include "alert/digest.hpp"
#include "delivery/dispatcher.hpp"
#include "fake_store.hpp"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <deque>
#include <fmt/format.h>
#include <future>
#include <mutex>
#include <set>
#include <thread>

using namespace crashmail;
using crashmail::testing::FakeStore;
using crashmail::testing::GatedStore;
using namespace std::chrono_literals;

namespace {

// A channel that records what it was asked to deliver, answers with scripted results, and
// can be held at a gate.
struct FakeChannel final : public Transport {
    struct State {
        std::mutex mutex;
        std::condition_variable changed;
        std::vector<std::string> delivered; // every attempt, in order
        std::size_t started = 0;
        bool gate_open = true;
        bool cancelled = false; // cancel() was called: a held delivery returns a failure
        std::deque<std::expected<void, Failure>> script; // empty: success
    };
    FakeChannel(std::shared_ptr<State> state, std::string label)
        : m_state(std::move(state)), m_label(std::move(label)) {}
    std::string name() const override { return m_label; }
    void cancel() override {
        std::lock_guard lock(m_state->mutex);
        m_state->cancelled = true;
        m_state->changed.notify_all();
    }
    std::expected<void, Failure> deliver(const Alert& alert) override {
        std::unique_lock lock(m_state->mutex);
        ++m_state->started;
        m_state->changed.notify_all();
        m_state->changed.wait(lock, [&] { return m_state->gate_open || m_state->cancelled; });
        if (!m_state->gate_open) {
            return std::unexpected(
                Failure{Failure::Kind::transient, "cancelled: crashmail is stopping", {}});
        }
        m_state->delivered.push_back(alert.id);
        m_state->changed.notify_all();
        if (m_state->script.empty()) {
            return {};
        }
        auto result = m_state->script.front();
        m_state->script.pop_front();
        return result;
    }
    std::shared_ptr<State> m_state;
    std::string m_label;
};

std::unexpected<Failure> transient(std::string message = "421 try later") {
    return std::unexpected(Failure{Failure::Kind::transient, std::move(message), std::nullopt});
}

std::unexpected<Failure> permanent(std::string message = "550 no such user") {
    return std::unexpected(Failure{Failure::Kind::permanent, std::move(message), std::nullopt});
}

Alert alert(std::string id) {
    Alert a;
    a.id = std::move(id);
    a.process = "p";
    a.group = "p";
    a.time = std::chrono::system_clock::now();
    return a;
}

bool wait_for(const std::shared_ptr<FakeChannel::State>& state, std::size_t count) {
    std::unique_lock lock(state->mutex);
    return state->changed.wait_for(lock, 10s, [&] { return state->delivered.size() >= count; });
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

DispatcherSettings fast_retries() {
    DispatcherSettings settings;
    settings.retry.first_delay = 20ms;
    settings.retry.max_delay = 100s;
    settings.jitter = [] { return 0.0; };
    return settings;
}

struct Channels {
    std::vector<std::unique_ptr<Transport>> list;
    std::shared_ptr<FakeChannel::State> add(std::string label) {
        auto state = std::make_shared<FakeChannel::State>();
        list.push_back(std::make_unique<FakeChannel>(state, std::move(label)));
        return state;
    }
};

} // namespace

TEST_CASE("every channel receives every alert, and the record is removed after", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto a = channels.add("a");
    auto b = channels.add("b");
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.submit(alert("1"));
    dispatcher.submit(alert("2"));
    REQUIRE(wait_for(a, 2));
    REQUIRE(wait_for(b, 2));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(a->delivered == std::vector<std::string>{"1", "2"});
    CHECK(b->delivered == std::vector<std::string>{"1", "2"});
    CHECK(store.failed.empty());
}

TEST_CASE("the alert is stored before submit returns", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto held = channels.add("held");
    held->gate_open = false;
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.submit(alert("1"));
    REQUIRE(store.pending_count() == 1);
    CHECK(store.pending.at("1").channels.size() == 1);
    CHECK(store.pending.at("1").channels.begin()->second.name == "held");
    {
        std::lock_guard lock(held->mutex);
        held->gate_open = true;
    }
    held->changed.notify_all();
    REQUIRE(wait_for(held, 1));
    CHECK(dispatcher.shutdown(5s).pending == 0);
}

TEST_CASE("a stuck channel does not delay another channel", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto stuck = channels.add("stuck");
    stuck->gate_open = false;
    auto healthy = channels.add("healthy");
    auto dispatcher = std::make_unique<Dispatcher>(std::move(channels.list), store, fast_retries());
    dispatcher->submit(alert("1"));
    dispatcher->submit(alert("2"));
    REQUIRE(wait_for(healthy, 2));
    CHECK(stuck->delivered.empty());
    // The stuck channel holds one delivery in progress and one queued: both stay pending.
    // shutdown() cancels the one in progress and joins the worker (nothing is detached).
    CHECK(dispatcher->shutdown(50ms).pending == 2);
    {
        std::lock_guard lock(stuck->mutex);
        CHECK(stuck->cancelled);
        CHECK(stuck->started == 1);
    }
    dispatcher.reset();
    CHECK(store.pending_count() == 2);
    {
        // The cancelled attempt is recorded as a transient failure, for the next start.
        std::lock_guard lock(store.mutex);
        const AlertRecord& first = store.pending.at("1");
        std::size_t attempts = 0;
        for (const auto& [key, state] : first.channels) {
            if (state.name == "stuck") {
                attempts = static_cast<std::size_t>(state.attempts);
                CHECK(state.status == ChannelState::Status::pending);
                CHECK(state.last_error.find("stopping") != std::string::npos);
            } else {
                CHECK(state.status == ChannelState::Status::delivered);
            }
        }
        CHECK(attempts == 1);
    }
}

TEST_CASE("a transient failure is retried until delivered, once per channel", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto flaky = channels.add("flaky");
    flaky->script = {transient(), transient()};
    auto healthy = channels.add("healthy");
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.submit(alert("1"));
    REQUIRE(wait_for(flaky, 3));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(flaky->delivered == std::vector<std::string>{"1", "1", "1"});
    CHECK(healthy->delivered == std::vector<std::string>{"1"}); // not repeated
    CHECK(store.failed.empty());
}

TEST_CASE("while retrying, the record keeps attempts, next attempt and the last error",
          "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto down = channels.add("down");
    down->script = {transient("connection refused")};
    auto settings = fast_retries();
    settings.retry.first_delay = 60s;
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    auto before = std::chrono::system_clock::now();
    dispatcher.submit(alert("1"));
    REQUIRE(wait_for(down, 1));
    REQUIRE(eventually([&] {
        std::lock_guard lock(store.mutex);
        return store.pending.at("1").channels.begin()->second.attempts == 1;
    }));
    {
        std::lock_guard lock(store.mutex);
        const ChannelState& state = store.pending.at("1").channels.begin()->second;
        CHECK(state.status == ChannelState::Status::pending);
        CHECK(state.last_error == "connection refused (transient)");
        CHECK(state.next_attempt >= before + 59s);
    }
    CHECK(dispatcher.shutdown(50ms).pending == 1); // the retry is not due: left for the next start
    CHECK(store.pending_count() == 1);
}

TEST_CASE("a permanent failure moves the alert to failed with the reason", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto refusing = channels.add("refusing");
    refusing->script = {permanent()};
    auto healthy = channels.add("healthy");
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.submit(alert("1"));
    REQUIRE(eventually([&] {
        std::lock_guard lock(store.mutex);
        return store.failed.size() == 1;
    }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(refusing->delivered.size() == 1);
    CHECK(store.pending.empty());
    const AlertRecord& record = store.failed.at("1");
    int delivered = 0;
    int failed = 0;
    for (const auto& [key, state] : record.channels) {
        if (state.status == ChannelState::Status::failed) {
            ++failed;
            CHECK(state.last_error == "550 no such user (permanent)");
        } else if (state.status == ChannelState::Status::delivered) {
            ++delivered;
        }
    }
    CHECK(delivered == 1);
    CHECK(failed == 1);
}

TEST_CASE("past the maximum age a transient failure gives up", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto down = channels.add("down");
    down->script = {transient(), transient(), transient(), transient(), transient()};
    auto settings = fast_retries();
    settings.retry.max_age = 1s;
    settings.retry.first_delay = 300ms;
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    dispatcher.submit(alert("1"));
    REQUIRE(eventually([&] {
        std::lock_guard lock(store.mutex);
        return store.failed.size() == 1;
    }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    const ChannelState& state = store.failed.at("1").channels.begin()->second;
    CHECK(state.status == ChannelState::Status::failed);
    CHECK_THAT(state.last_error, Catch::Contains("gave up after"));
    CHECK(down->delivered.size() >= 2);
    CHECK(down->delivered.size() <= 3);
}

TEST_CASE("when the store refuses a write the alert is still delivered from memory",
          "[dispatcher]") {
    FakeStore store;
    store.refuse_writes = true;
    Channels channels;
    auto a = channels.add("a");
    a->script = {transient()};
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.submit(alert("1"));
    REQUIRE(wait_for(a, 2));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(store.pending.empty());
}

TEST_CASE("a redelivered event's alert does not restart its deliveries", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto a = channels.add("a");
    a->gate_open = false;
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.submit(alert("1"));
    dispatcher.submit(alert("1"));
    CHECK(store.saves == 1);
    {
        std::lock_guard lock(a->mutex);
        a->gate_open = true;
    }
    a->changed.notify_all();
    REQUIRE(wait_for(a, 1));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(a->delivered.size() == 1);
}

TEST_CASE("recover delivers what an earlier run left pending, skipping channels done",
          "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto a = channels.add("a");
    auto b = channels.add("b");
    // An earlier run delivered "old" through b only.
    AlertRecord old;
    old.alert = alert("old");
    old.channels[channel_key(*channels.list[0])].name = "a";
    old.channels[channel_key(*channels.list[1])].status = ChannelState::Status::delivered;
    store.pending["old"] = old;
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    CHECK(dispatcher.recover() == 1);
    REQUIRE(wait_for(a, 1));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(a->delivered == std::vector<std::string>{"old"});
    CHECK(b->delivered.empty());
}

TEST_CASE("a channel removed from the configuration neither holds a record back nor fails it",
          "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto a = channels.add("a");
    // An earlier run had channels a and "gone"; gone's delivery was still pending.
    AlertRecord old;
    old.alert = alert("old");
    old.channels[channel_key(*channels.list[0])].name = "a";
    old.channels["0123456789abcdef"].name = "gone";
    store.pending["old"] = old;
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    CHECK(dispatcher.recover() == 1);
    REQUIRE(wait_for(a, 1));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    std::lock_guard lock(store.mutex);
    CHECK(store.failed.empty()); // delivered everywhere it can go: removed, not failed
    CHECK(store.removed == std::vector<std::string>{"old"});
}

TEST_CASE("a record only a removed channel still owed is settled at the start", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto a = channels.add("a");
    auto b = channels.add("b");
    const std::string key_a = channel_key(*channels.list[0]);
    const std::string key_b = channel_key(*channels.list[1]);
    // An earlier run delivered through a (and b), and "gone" was still pending; another
    // record's only failure was on "gone" while b failed permanently.
    AlertRecord done;
    done.alert = alert("done");
    done.channels[key_a].status = ChannelState::Status::delivered;
    done.channels[key_b].status = ChannelState::Status::delivered;
    done.channels["0123456789abcdef"].name = "gone";
    store.pending["done"] = done;
    AlertRecord failed = done;
    failed.alert = alert("failed");
    failed.channels[key_b].status = ChannelState::Status::failed;
    store.pending["failed"] = failed;
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.recover();
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    std::lock_guard lock(store.mutex);
    CHECK(store.removed == std::vector<std::string>{"done"}); // nobody is sent it again
    CHECK(store.failed.contains("failed"));                   // b's failure still counts
    CHECK(a->delivered.empty());
    CHECK(b->delivered.empty());
}

TEST_CASE("a backlog larger than the queue is read back from the store", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto a = channels.add("a");
    a->gate_open = false;
    auto settings = fast_retries();
    settings.queue_limit = 3;
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    for (int i = 0; i < 10; ++i) {
        dispatcher.submit(alert(fmt::format("{:02}", i)));
    }
    CHECK(store.pending_count() == 10); // all stored, only some queued in memory
    {
        std::lock_guard lock(a->mutex);
        a->gate_open = true;
    }
    a->changed.notify_all();
    REQUIRE(wait_for(a, 10));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    std::vector<std::string> sorted = a->delivered;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::unique(sorted.begin(), sorted.end()) == sorted.end()); // each exactly once
    CHECK(sorted.size() == 10);
    CHECK(store.scans >= 1);
}

TEST_CASE("channel keys are stable and differ between channels", "[dispatcher]") {
    Channels channels;
    channels.add("smtp://a:25");
    channels.add("smtp://b:25");
    channels.add("smtp://a:25");
    CHECK(channel_key(*channels.list[0]) == channel_key(*channels.list[2]));
    CHECK(channel_key(*channels.list[0]) != channel_key(*channels.list[1]));
    CHECK(channel_key(*channels.list[0]).size() == 16);
}

namespace {

// An enrichment stage that records what it was asked, can be held at a gate, and marks the
// alerts it handled.
struct FakeEnricher final : public AlertEnricher {
    std::mutex mutex;
    std::condition_variable changed;
    bool gate_open = true;
    bool cancelled = false;
    std::size_t started = 0;
    std::vector<std::string> enriched;
    std::vector<std::pair<std::string, std::string>> skipped;

    void enrich(Alert& alert) override {
        std::unique_lock lock(mutex);
        ++started;
        changed.notify_all();
        changed.wait(lock, [&] { return gate_open || cancelled; });
        if (!gate_open) {
            alert.details_note = "details unavailable: crashmail stopped before fetching them";
            alert.subject = "cancelled " + alert.id;
            return;
        }
        alert.exit_status = "exit status 3";
        alert.subject = "enriched " + alert.id;
        enriched.push_back(alert.id);
    }
    void skip(Alert& alert, std::string_view reason) override {
        std::lock_guard lock(mutex);
        alert.details_note = std::string(reason);
        alert.subject = "skipped " + alert.id;
        skipped.emplace_back(alert.id, std::string(reason));
    }
    void cancel() override {
        {
            std::lock_guard lock(mutex);
            cancelled = true;
        }
        changed.notify_all();
    }
    void open() {
        {
            std::lock_guard lock(mutex);
            gate_open = true;
        }
        changed.notify_all();
    }
};

// A channel that keeps the alerts it delivered.
struct KeepingChannel final : public Transport {
    struct State {
        std::mutex mutex;
        std::vector<Alert> delivered;
    };
    explicit KeepingChannel(std::shared_ptr<State> state) : m_state(std::move(state)) {}
    std::string name() const override { return "keeping"; }
    std::expected<void, Failure> deliver(const Alert& alert) override {
        std::lock_guard lock(m_state->mutex);
        m_state->delivered.push_back(alert);
        return {};
    }
    std::shared_ptr<State> m_state;
};

} // namespace

TEST_CASE("with an enricher the channels get the enriched alert, stored before delivery",
          "[dispatcher]") {
    FakeStore store;
    auto kept = std::make_shared<KeepingChannel::State>();
    std::vector<std::unique_ptr<Transport>> channels;
    channels.push_back(std::make_unique<KeepingChannel>(kept));
    auto enricher = std::make_shared<FakeEnricher>();
    enricher->gate_open = false;
    auto settings = fast_retries();
    settings.enricher = enricher;
    Dispatcher dispatcher(std::move(channels), store, settings);

    dispatcher.submit(alert("1"));
    // submit() returned while the enricher is held: the record is stored, marked, and not
    // delivered.
    REQUIRE(store.pending_count() == 1);
    CHECK(store.pending.at("1").details_pending);
    REQUIRE(eventually([&] {
        std::lock_guard lock(enricher->mutex);
        return enricher->started == 1;
    }));
    std::this_thread::sleep_for(50ms);
    {
        std::lock_guard lock(kept->mutex);
        CHECK(kept->delivered.empty());
    }
    enricher->open();
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    REQUIRE(kept->delivered.size() == 1);
    CHECK(kept->delivered[0].subject == "enriched 1");
    CHECK(kept->delivered[0].exit_status == "exit status 3");
    CHECK(enricher->enriched == std::vector<std::string>{"1"});
    // One durable (fsynced) write per alert, at submit(); the details are an update, and the
    // removal needs no write at all.
    std::lock_guard lock(store.mutex);
    CHECK(store.saves - store.updates == 1);
    CHECK(store.updates == 1);
}

TEST_CASE("a retry is counted with an update, not another durable write", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto a = channels.add("a");
    a->script = {transient(), transient()};
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.submit(alert("1"));
    REQUIRE(wait_for(a, 3));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    std::lock_guard lock(store.mutex);
    CHECK(store.saves - store.updates == 1);
    CHECK(store.updates == 2); // the two failed attempts
}

TEST_CASE("a held enricher never delays submit()", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto a = channels.add("a");
    auto enricher = std::make_shared<FakeEnricher>();
    enricher->gate_open = false;
    auto settings = fast_retries();
    settings.enricher = enricher;
    auto dispatcher = std::make_unique<Dispatcher>(std::move(channels.list), store, settings);
    auto before = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i) {
        dispatcher->submit(alert(fmt::format("{:02}", i)));
    }
    CHECK(std::chrono::steady_clock::now() - before < 2s); // nothing waited for the gate
    CHECK(store.pending_count() == 20);
    REQUIRE(eventually([&] {
        std::lock_guard lock(enricher->mutex);
        return enricher->started == 1;
    }));
    // Stopping while the enricher is held: shutdown() cancels it and joins its thread. The
    // alert in hand is stored as it was rendered (it may even go out before the workers
    // stop); every other alert stays pending, marked, for the next start.
    auto stopped = dispatcher->shutdown(50ms);
    CHECK(enricher->cancelled);
    dispatcher.reset();
    CHECK(stopped.lost == 0);
    CHECK(stopped.pending == store.pending_count());
    CHECK(store.pending_count() + a->delivered.size() == 20);
    CHECK(a->delivered.size() <= 1);
    for (int i = 1; i < 20; ++i) {
        CHECK(store.pending.at(fmt::format("{:02}", i)).details_pending);
    }
    if (store.pending.contains("00")) {
        CHECK_FALSE(store.pending.at("00").details_pending);
        CHECK(store.pending.at("00").alert.subject == "cancelled 00");
    }
    CHECK(enricher->enriched.empty());
}

TEST_CASE("a record an earlier run never enriched is delivered with the restart note",
          "[dispatcher]") {
    FakeStore store;
    auto kept = std::make_shared<KeepingChannel::State>();
    std::vector<std::unique_ptr<Transport>> channels;
    channels.push_back(std::make_unique<KeepingChannel>(kept));
    AlertRecord old;
    old.alert = alert("old");
    old.details_pending = true;
    old.channels[channel_key(*channels[0])].name = "keeping";
    store.pending["old"] = old;
    auto enricher = std::make_shared<FakeEnricher>();
    auto settings = fast_retries();
    settings.enricher = enricher;
    Dispatcher dispatcher(std::move(channels), store, settings);
    CHECK(dispatcher.recover() == 1);
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(enricher->enriched.empty());
    REQUIRE(enricher->skipped.size() == 1);
    CHECK(enricher->skipped[0].second ==
          "details unavailable: crashmail restarted before fetching them");
    REQUIRE(kept->delivered.size() == 1);
    CHECK(kept->delivered[0].subject == "skipped old");
}

TEST_CASE("without an enricher a stored details_pending record is delivered as it is",
          "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto a = channels.add("a");
    AlertRecord old;
    old.alert = alert("old");
    old.details_pending = true;
    old.channels[channel_key(*channels.list[0])].name = "a";
    store.pending["old"] = old;
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    CHECK(dispatcher.recover() == 1);
    REQUIRE(wait_for(a, 1));
    CHECK(dispatcher.shutdown(5s).pending == 0);
}

TEST_CASE("a redelivered event waiting for details is enriched once", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto a = channels.add("a");
    auto enricher = std::make_shared<FakeEnricher>();
    enricher->gate_open = false;
    auto settings = fast_retries();
    settings.enricher = enricher;
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    dispatcher.submit(alert("1"));
    dispatcher.submit(alert("2"));
    dispatcher.submit(alert("2")); // redelivered while still queued for enrichment
    enricher->open();
    REQUIRE(wait_for(a, 2));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(enricher->enriched == std::vector<std::string>{"1", "2"});
    CHECK(a->delivered == std::vector<std::string>{"1", "2"});
}

TEST_CASE("alerts that waited too long for details are skipped, not held back", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto a = channels.add("a");
    auto enricher = std::make_shared<FakeEnricher>();
    enricher->gate_open = false;
    auto settings = fast_retries();
    settings.enricher = enricher;
    settings.enrich_max_wait = 100ms;
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    dispatcher.submit(alert("1"));
    REQUIRE(eventually([&] {
        std::lock_guard lock(enricher->mutex);
        return enricher->started == 1;
    }));
    dispatcher.submit(alert("2"));
    std::this_thread::sleep_for(200ms); // "2" waits behind the held "1" past the limit
    enricher->open();
    REQUIRE(wait_for(a, 2));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(enricher->enriched == std::vector<std::string>{"1"});
    REQUIRE(enricher->skipped.size() == 1);
    CHECK(enricher->skipped[0].first == "2");
    CHECK_THAT(enricher->skipped[0].second, Catch::Contains("not fetched within 0 s"));
}

TEST_CASE("at shutdown the alerts still waiting for details are delivered without them",
          "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto a = channels.add("a");
    auto enricher = std::make_shared<FakeEnricher>();
    enricher->gate_open = false;
    auto settings = fast_retries();
    settings.enricher = enricher;
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    dispatcher.submit(alert("1"));
    dispatcher.submit(alert("2"));
    REQUIRE(eventually([&] {
        std::lock_guard lock(enricher->mutex);
        return enricher->started == 1;
    }));
    std::thread opener([&] {
        std::this_thread::sleep_for(100ms);
        enricher->open();
    });
    CHECK(dispatcher.shutdown(5s).pending == 0);
    opener.join();
    CHECK(a->delivered.size() == 2);
    CHECK(enricher->enriched == std::vector<std::string>{"1"});
    REQUIRE(enricher->skipped.size() == 1);
    CHECK(enricher->skipped[0].second ==
          "details unavailable: crashmail stopped before fetching them");
    CHECK(store.pending_count() == 0);
}

namespace {

// A channel that keeps what it delivered and, like Alertmanager when `takes_all`, may want
// messages other channels skip.
struct ChoosyChannel final : public Transport {
    struct State {
        std::mutex mutex;
        std::vector<Alert> delivered;
        std::size_t count() {
            std::lock_guard lock(mutex);
            return delivered.size();
        }
    };
    ChoosyChannel(std::shared_ptr<State> state, std::string label, bool takes_all)
        : m_state(std::move(state)), m_label(std::move(label)), m_takes_all(takes_all) {}
    std::string name() const override { return m_label; }
    bool wants(const Alert& alert) const override { return m_takes_all || Transport::wants(alert); }
    std::expected<void, Failure> deliver(const Alert& alert) override {
        std::lock_guard lock(m_state->mutex);
        m_state->delivered.push_back(alert);
        return {};
    }
    std::shared_ptr<State> m_state;
    std::string m_label;
    bool m_takes_all;
};

struct ChoosyChannels {
    std::vector<std::unique_ptr<Transport>> list;
    std::vector<std::string> keys;
    std::shared_ptr<ChoosyChannel::State> add(std::string label, bool takes_all = false) {
        auto state = std::make_shared<ChoosyChannel::State>();
        list.push_back(std::make_unique<ChoosyChannel>(state, std::move(label), takes_all));
        keys.push_back(channel_key(*list.back()));
        return state;
    }
};

Alert quiet_recovery(std::string id) {
    Alert a = alert(std::move(id));
    a.kind = AlertKind::recovery;
    a.state = "RUNNING";
    a.resolves = {{"EXITED", false}};
    a.notify = false;
    return a;
}

DispatcherSettings batched(std::chrono::milliseconds window) {
    DispatcherSettings settings = fast_retries();
    settings.batch = window;
    settings.digest_prefix = "prod";
    return settings;
}

// The batch windows' clock, moved by the test only.
struct FakeClock {
    std::shared_ptr<std::atomic<std::int64_t>> ms =
        std::make_shared<std::atomic<std::int64_t>>(1'800'000'000'000);
    std::chrono::system_clock::time_point operator()() const {
        return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms->load()));
    }
    void advance(std::chrono::milliseconds by) const { *ms += by.count(); }
};

DispatcherSettings batched(std::chrono::milliseconds window, const FakeClock& clock) {
    DispatcherSettings settings = batched(window);
    settings.now = clock;
    return settings;
}

AlertRecord held_record(std::string id, std::chrono::system_clock::time_point time) {
    AlertRecord record;
    record.alert = alert(std::move(id));
    record.alert.time = time;
    record.alert.subject = record.alert.id + " crashed";
    record.held = true;
    return record;
}

} // namespace

TEST_CASE("a message only some channels want is stored and delivered for those only",
          "[dispatcher]") {
    FakeStore store;
    ChoosyChannels channels;
    auto mail = channels.add("mail");
    auto am = channels.add("alertmanager", true);
    const std::string mail_key = channels.keys[0];
    const std::string am_key = channels.keys[1];
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    {
        std::lock_guard lock(am->mutex); // hold Alertmanager so the record stays readable
        dispatcher.submit(quiet_recovery("r1"));
        REQUIRE(store.pending_count() == 1);
        CHECK(store.pending.at("r1").channels.size() == 1);
        CHECK(store.pending.at("r1").channels.contains(am_key));
        CHECK_FALSE(store.pending.at("r1").channels.contains(mail_key));
    }
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    dispatcher.submit(alert("a1"));
    REQUIRE(eventually([&] { return mail->count() == 1 && am->count() == 2; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(mail->delivered[0].id == "a1");
    CHECK(am->delivered[0].id == "r1");
    CHECK(store.failed.empty());
}

TEST_CASE("a message no channel wants is not stored at all", "[dispatcher]") {
    FakeStore store;
    ChoosyChannels channels;
    auto mail = channels.add("mail");
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.submit(quiet_recovery("r1"));
    CHECK(store.saves == 0);
    CHECK(store.pending_count() == 0);
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(mail->count() == 0);
}

TEST_CASE("recover does not give a stored record to a channel that does not want it",
          "[dispatcher]") {
    FakeStore store;
    AlertRecord old;
    old.alert = quiet_recovery("r1"); // no channel states: from before the channels existed
    store.pending["r1"] = old;
    ChoosyChannels channels;
    auto mail = channels.add("mail");
    auto am = channels.add("alertmanager", true);
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.recover();
    REQUIRE(eventually([&] { return am->count() == 1; }));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(mail->count() == 0);
}

TEST_CASE("with batch the alerts of one window go out as one digest", "[dispatcher][digest]") {
    FakeStore store;
    ChoosyChannels channels;
    auto mail = channels.add("mail");
    auto am = channels.add("alertmanager", true);
    FakeClock clock;
    Dispatcher dispatcher(std::move(channels.list), store, batched(10min, clock));
    dispatcher.submit(alert("1"));
    clock.advance(5min);
    dispatcher.submit(quiet_recovery("2"));
    clock.advance(4min);
    dispatcher.submit(alert("3"));
    // Held durably, not delivered, however long it takes on the real clock.
    CHECK(store.pending_count() == 3);
    CHECK(store.pending.at("1").held);
    CHECK(store.pending.at("3").held);
    std::this_thread::sleep_for(150ms);
    CHECK(mail->count() == 0);
    CHECK(am->count() == 0);
    clock.advance(59s);
    std::this_thread::sleep_for(150ms);
    CHECK(mail->count() == 0);
    clock.advance(1s); // the window's end: 10 minutes after the first alert
    REQUIRE(eventually([&] { return mail->count() == 1 && am->count() == 1; }));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    const Alert& digest = mail->delivered[0];
    CHECK(digest.kind == AlertKind::digest);
    CHECK(digest.id.starts_with("d"));
    CHECK(digest.subject.starts_with("prod: crashmail: 2 alerts from "));
    REQUIRE(digest.items.size() == 3);
    CHECK(digest.items[0].id == "1");
    CHECK(digest.items[1].id == "2");
    CHECK(digest.items[2].id == "3");
    CHECK(am->delivered[0].id == digest.id);
    // Items removed only after the digest was stored.
    CHECK(store.removed.size() == 4);
    CHECK(store.removed.back() == digest.id);
    CHECK(store.failed.empty());
}

TEST_CASE("a later window gets its own digest", "[dispatcher][digest]") {
    FakeStore store;
    ChoosyChannels channels;
    auto mail = channels.add("mail");
    FakeClock clock;
    Dispatcher dispatcher(std::move(channels.list), store, batched(10min, clock));
    dispatcher.submit(alert("1"));
    clock.advance(10min);
    REQUIRE(eventually([&] { return mail->count() == 1; }));
    clock.advance(1h);
    dispatcher.submit(alert("2"));
    clock.advance(9min);
    dispatcher.submit(alert("3"));
    std::this_thread::sleep_for(150ms);
    CHECK(mail->count() == 1);
    clock.advance(1min);
    REQUIRE(eventually([&] { return mail->count() == 2; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(mail->delivered[0].items.size() == 1);
    CHECK(mail->delivered[1].items.size() == 2);
    CHECK(mail->delivered[0].id != mail->delivered[1].id);
}

TEST_CASE("with batch and an enricher the digest holds the enriched alerts",
          "[dispatcher][digest]") {
    FakeStore store;
    ChoosyChannels channels;
    auto mail = channels.add("mail");
    auto enricher = std::make_shared<FakeEnricher>();
    auto settings = batched(80ms);
    settings.enricher = enricher;
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    dispatcher.submit(alert("1"));
    dispatcher.submit(alert("2"));
    REQUIRE(eventually([&] { return mail->count() == 1; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    const Alert& digest = mail->delivered[0];
    REQUIRE(digest.items.size() == 2);
    CHECK(digest.items[0].subject == "enriched 1");
    CHECK(digest.items[1].exit_status == "exit status 3");
    CHECK(digest.body.find("enriched 2") != std::string::npos);
    CHECK(store.pending_count() == 0);
}

TEST_CASE("at shutdown held alerts stay in the store without a digest", "[dispatcher][digest]") {
    FakeStore store;
    ChoosyChannels channels;
    auto mail = channels.add("mail");
    {
        Dispatcher dispatcher(std::move(channels.list), store, batched(10s));
        dispatcher.submit(alert("1"));
        dispatcher.submit(alert("2"));
        CHECK(dispatcher.shutdown(100ms).pending == 2); // both held, counted truly
    }
    CHECK(mail->count() == 0);
    REQUIRE(store.pending_count() == 2);
    CHECK(store.pending.at("1").held);
    CHECK(store.pending.at("2").held);
}

TEST_CASE("after a restart held alerts whose window is past go out at once",
          "[dispatcher][digest]") {
    FakeStore store;
    auto now = std::chrono::system_clock::now();
    store.pending["1"] = held_record("1", now - 1h);
    store.pending["2"] = held_record("2", now - 1h + 1s);
    ChoosyChannels channels;
    auto mail = channels.add("mail");
    Dispatcher dispatcher(std::move(channels.list), store, batched(10s));
    CHECK(dispatcher.recover() == 2);
    REQUIRE(eventually([&] { return mail->count() == 1; }));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(mail->delivered[0].items.size() == 2);
}

TEST_CASE("after a restart held alerts keep the window they were in", "[dispatcher][digest]") {
    FakeStore store;
    auto now = std::chrono::system_clock::now();
    store.pending["1"] = held_record("1", now);
    ChoosyChannels channels;
    auto mail = channels.add("mail");
    Dispatcher dispatcher(std::move(channels.list), store, batched(150ms));
    dispatcher.recover();
    dispatcher.submit(alert("2")); // joins the recovered window
    std::this_thread::sleep_for(60ms);
    CHECK(mail->count() == 0);
    REQUIRE(eventually([&] { return mail->count() == 1; }));
    CHECK(std::chrono::system_clock::now() - now >= 140ms);
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(mail->delivered[0].items.size() == 2);
}

TEST_CASE("a digest stored before a crash is not stored twice when rebuilt",
          "[dispatcher][digest]") {
    // A crash between storing the digest and removing its items leaves both.
    FakeStore store;
    auto now = std::chrono::system_clock::now();
    std::vector<Alert> items = {held_record("1", now - 1h).alert};
    AlertRecord stored_digest;
    stored_digest.alert = make_digest(items, "", now - 1h);
    ChoosyChannels channels;
    auto mail = channels.add("mail");
    stored_digest.channels[channels.keys[0]].name = "mail";
    store.pending[stored_digest.alert.id] = stored_digest;
    store.pending["1"] = held_record("1", now - 1h);
    Dispatcher dispatcher(std::move(channels.list), store, batched(10s));
    dispatcher.recover();
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    REQUIRE(mail->count() >= 1);
    CHECK(mail->delivered[0].id == stored_digest.alert.id);
    for (const Alert& delivered : mail->delivered) {
        CHECK(delivered.id == stored_digest.alert.id); // never lost; here not even doubled
    }
}

TEST_CASE("held alerts from a run with batch go out at once when batch is off",
          "[dispatcher][digest]") {
    FakeStore store;
    store.pending["1"] = held_record("1", std::chrono::system_clock::now());
    ChoosyChannels channels;
    auto mail = channels.add("mail");
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.recover();
    REQUIRE(eventually([&] { return mail->count() == 1; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(mail->delivered[0].kind == AlertKind::digest);
    CHECK(store.pending_count() == 0);
}

TEST_CASE("at shutdown a retry that falls due within the grace is still made", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto mail = channels.add("mail");
    mail->script.push_back(transient()); // first attempt fails; the retry is due 20 ms later
    auto settings = fast_retries();
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    {
        std::unique_lock lock(mail->mutex);
        mail->gate_open = false;
    }
    dispatcher.submit(alert("1"));
    {
        std::unique_lock lock(mail->mutex);
        mail->changed.wait(lock, [&] { return mail->started == 1; });
        mail->gate_open = true;
        mail->changed.notify_all();
    }
    // shutdown() begins while the first attempt is (about to be) answered "421".
    CHECK(dispatcher.shutdown(5s).pending == 0);
    std::lock_guard lock(mail->mutex);
    CHECK(mail->delivered == std::vector<std::string>{"1", "1"});
    CHECK(store.pending_count() == 0);
}

TEST_CASE("at shutdown a retry due after the grace stays in the store", "[dispatcher]") {
    FakeStore store;
    Channels channels;
    auto mail = channels.add("mail");
    mail->script.push_back(transient());
    auto settings = fast_retries();
    settings.retry.first_delay = 1h;
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    dispatcher.submit(alert("1"));
    REQUIRE(eventually([&] {
        std::lock_guard lock(mail->mutex);
        return mail->delivered.size() == 1;
    }));
    REQUIRE(eventually([&] {
        std::lock_guard lock(store.mutex);
        return store.pending.at("1").channels.begin()->second.attempts == 1;
    }));
    CHECK(dispatcher.shutdown(200ms).pending == 1);
    CHECK(store.pending_count() == 1);
}

TEST_CASE("a disk full for a while with the channel down loses nothing", "[dispatcher]") {
    FakeStore store;
    store.refuse_writes = true;
    Channels channels;
    auto mail = channels.add("mail");
    mail->script = {transient(), transient(), transient(), transient()};
    auto settings = fast_retries();
    settings.outbox.retry_first = std::chrono::milliseconds(5);
    settings.outbox.retry_max = std::chrono::milliseconds(20);
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    for (int i = 0; i < 4; ++i) {
        dispatcher.submit(alert(fmt::format("{}", i)));
    }
    CHECK(dispatcher.waiting_in_memory() >= 1);
    REQUIRE(eventually([&] {
        std::lock_guard lock(mail->mutex);
        return mail->delivered.size() >= 4; // the failed attempts, made from memory
    }));
    store.set_refuse_writes(false); // space is back
    REQUIRE(wait_for(mail, 8));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.waiting_in_memory() == 0);
    auto stopped = dispatcher.shutdown(5s);
    CHECK(stopped.pending == 0);
    CHECK(stopped.lost == 0);
    std::set<std::string> delivered_ok(mail->delivered.begin() + 4, mail->delivered.end());
    CHECK(delivered_ok == std::set<std::string>{"0", "1", "2", "3"});
}

TEST_CASE("alerts the store never took are counted as lost at shutdown", "[dispatcher]") {
    FakeStore store;
    store.refuse_writes = true;
    Channels channels;
    auto mail = channels.add("mail");
    mail->gate_open = false; // the channel never gets through either
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.submit(alert("1"));
    dispatcher.submit(alert("2"));
    auto stopped = dispatcher.shutdown(50ms);
    CHECK(stopped.pending == 0);
    CHECK(stopped.lost == 2);
    CHECK(stopped.reason == "No space left on device");
}

TEST_CASE("the spool notice goes through every channel once per episode", "[dispatcher]") {
    FakeStore store;
    store.refuse_writes = true;
    Channels channels;
    auto mail = channels.add("mail");
    auto hook = channels.add("hook");
    auto settings = fast_retries();
    settings.outbox.retry_first = std::chrono::milliseconds(5);
    settings.outbox.retry_max = std::chrono::milliseconds(10);
    settings.notice_interval = std::chrono::milliseconds(0);
    std::atomic<int> notices{0};
    std::atomic<int> episodes_ended{0};
    settings.outbox.on_durable_again = [&](std::size_t) { ++episodes_ended; };
    settings.spool_notice = [&](const std::string& reason, std::size_t count) {
        Alert notice = alert(fmt::format("notice-{}", ++notices));
        notice.kind = AlertKind::spool;
        notice.subject = fmt::format("{}; {} not durable", reason, count);
        return notice;
    };
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    dispatcher.submit(alert("1"));
    dispatcher.submit(alert("2"));
    REQUIRE(wait_for(mail, 3));
    REQUIRE(wait_for(hook, 3));
    CHECK(notices == 1);
    {
        std::lock_guard lock(mail->mutex);
        CHECK(std::count(mail->delivered.begin(), mail->delivered.end(), "notice-1") == 1);
    }
    // The spool takes records again, then refuses again: a new episode, a new notice.
    store.set_refuse_writes(false);
    REQUIRE(eventually([&] { return episodes_ended > 0; }));
    store.set_refuse_writes(true);
    dispatcher.submit(alert("3"));
    REQUIRE(wait_for(mail, 5));
    CHECK(notices == 2);
    store.set_refuse_writes(false);
    CHECK(dispatcher.shutdown(5s).lost == 0);
}

TEST_CASE("the spool notice is not repeated within the notice interval", "[dispatcher]") {
    FakeStore store;
    store.refuse_writes = true;
    Channels channels;
    auto mail = channels.add("mail");
    auto settings = fast_retries();
    settings.outbox.retry_first = std::chrono::milliseconds(5);
    settings.outbox.retry_max = std::chrono::milliseconds(10);
    std::atomic<int> notices{0};
    std::atomic<int> episodes_ended{0};
    settings.outbox.on_durable_again = [&](std::size_t) { ++episodes_ended; };
    settings.spool_notice = [&](const std::string&, std::size_t) {
        Alert notice = alert(fmt::format("notice-{}", ++notices));
        notice.kind = AlertKind::spool;
        return notice;
    };
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    dispatcher.submit(alert("1"));
    REQUIRE(wait_for(mail, 2));
    store.set_refuse_writes(false);
    REQUIRE(eventually([&] { return episodes_ended > 0; }));
    store.set_refuse_writes(true);
    dispatcher.submit(alert("2"));
    REQUIRE(wait_for(mail, 3));
    CHECK(notices == 1); // 10 minutes by default
    store.set_refuse_writes(false);
    dispatcher.shutdown(5s);
}

TEST_CASE("details that cannot be saved leave no older record behind", "[dispatcher]") {
    FakeStore store;
    store.refuse_updates = true; // the enrichment's rename fails
    Channels channels;
    auto mail = channels.add("mail");
    auto enricher = std::make_shared<FakeEnricher>();
    auto settings = fast_retries();
    settings.enricher = enricher;
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    dispatcher.submit(alert("1"));
    REQUIRE(wait_for(mail, 1));
    // Delivered everywhere: the record (on disk in its older, un-enriched form) is removed.
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    auto stopped = dispatcher.shutdown(5s);
    CHECK(stopped.pending == 0);
    CHECK(stopped.lost == 0);
}

TEST_CASE("submit never waits behind another thread's store write", "[dispatcher]") {
    GatedStore store;
    Channels channels;
    auto mail = channels.add("mail");
    mail->script = {transient()};
    {
        std::lock_guard lock(store.mutex);
        store.gated_id = "slow";
        store.gate_open = true;
    }
    Dispatcher dispatcher(std::move(channels.list), store, fast_retries());
    dispatcher.submit(alert("slow"));
    REQUIRE(wait_for(mail, 1));
    {
        std::lock_guard lock(store.mutex);
        store.gate_open = false; // the worker's update after the failure blocks
    }
    REQUIRE(store.wait_blocked());
    auto submitting = std::async(std::launch::async, [&] { dispatcher.submit(alert("fast")); });
    REQUIRE(submitting.wait_for(10s) == std::future_status::ready); // a guard, not a timing
    CHECK(store.inner.pending_count() == 2);
    store.open();
    REQUIRE(wait_for(mail, 3));
    CHECK(dispatcher.shutdown(5s).pending == 0);
}

TEST_CASE("a digest the store refuses goes out from memory and its items stay held",
          "[dispatcher][digest]") {
    FakeStore store;
    ChoosyChannels channels;
    auto mail = channels.add("mail");
    FakeClock clock;
    Dispatcher dispatcher(std::move(channels.list), store, batched(10s, clock));
    dispatcher.submit(alert("1"));
    dispatcher.submit(alert("2"));
    REQUIRE(store.pending_count() == 2);
    store.set_refuse_writes(true); // the disk fills before the window ends
    clock.advance(11s);
    REQUIRE(eventually([&] { return mail->count() == 1; }));
    CHECK(mail->delivered[0].items.size() == 2);
    auto stopped = dispatcher.shutdown(5s);
    // The items were never removed: the next start sends them in another digest, so the
    // digest that waited in memory is not counted as lost.
    CHECK(stopped.lost == 0);
    CHECK(stopped.pending == 2);
    std::lock_guard lock(store.mutex);
    CHECK(store.pending.at("1").held);
    CHECK(store.pending.at("2").held);
    CHECK(store.removed.empty());
}

namespace {

// A channel with three recipients whose deliver_to() answers from a script and records whom
// each attempt was for.
struct RecipientsChannel final : public Transport {
    struct State {
        std::mutex mutex;
        std::vector<std::vector<std::string>> asked;        // `only` of every attempt
        std::deque<std::expected<Receipt, Failure>> script; // empty: everyone takes it
    };
    explicit RecipientsChannel(std::shared_ptr<State> state) : m_state(std::move(state)) {}
    std::string name() const override { return "smtp://fake:25"; }
    std::vector<std::string> recipients() const override { return {"a@x", "b@x", "c@x"}; }
    std::expected<void, Failure> deliver(const Alert&) override {
        return std::unexpected(Failure{Failure::Kind::permanent, "deliver() is not used"});
    }
    std::expected<Receipt, Failure> deliver_to(const Alert&,
                                               const std::vector<std::string>& only) override {
        std::lock_guard lock(m_state->mutex);
        m_state->asked.push_back(only);
        if (m_state->script.empty()) {
            return Receipt{};
        }
        auto result = m_state->script.front();
        m_state->script.pop_front();
        return result;
    }
    std::shared_ptr<State> m_state;
};

} // namespace

TEST_CASE("a recipient refused for now is retried alone; one refused for good is not retried; "
          "the record is removed once the others have it",
          "[dispatcher]") {
    FakeStore store;
    auto state = std::make_shared<RecipientsChannel::State>();
    Receipt first;
    first.refused = {Refusal{"b@x", Failure{Failure::Kind::permanent, "550 5.1.1 unknown"}},
                     Refusal{"c@x", Failure{Failure::Kind::transient, "452 4.2.2 full"}}};
    first.notes = {"smtp://fake:25: sent in clear text"};
    state->script.push_back(first);
    Receipt second;
    second.refused = {Refusal{"c@x", Failure{Failure::Kind::transient, "452 4.2.2 full"}}};
    state->script.push_back(second);
    // the third attempt: c@x takes it
    std::vector<std::unique_ptr<Transport>> channels;
    channels.push_back(std::make_unique<RecipientsChannel>(state));
    Dispatcher dispatcher(std::move(channels), store, fast_retries());
    dispatcher.submit(alert("1"));
    REQUIRE(eventually([&] {
        std::lock_guard lock(state->mutex);
        return state->asked.size() >= 3;
    }));
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    std::lock_guard lock(state->mutex);
    REQUIRE(state->asked.size() == 3);
    CHECK(state->asked[0].empty()); // everyone
    CHECK(state->asked[1] == std::vector<std::string>{"c@x"});
    CHECK(state->asked[2] == std::vector<std::string>{"c@x"});
    CHECK(store.failed.empty());
}

TEST_CASE("an alert stored again while its delivery is in flight is delivered again",
          "[dispatcher]") {
    // A digest rebuilt after a crash, or a failed alert requeued, can be stored under its id
    // just after the delivery in flight removed the record and before the channel's worker
    // is done with it: the worker must look at it again, not drop it as already queued.
    FakeStore store;
    Channels channels;
    auto mail = channels.add("mail");
    DispatcherSettings settings = fast_retries();
    Dispatcher* running = nullptr;
    std::atomic<int> attempts = 0;
    std::atomic<bool> adopted = false;
    AlertRecord stored; // the record as submit() stored it, channels and all
    settings.on_attempt = [&](const std::string&, const std::string&, AttemptResult) {
        // On the worker's thread, after the attempt's outcome is stored: record "1" is gone.
        if (attempts.fetch_add(1) == 0) {
            adopted = running->adopt(stored);
        }
    };
    mail->gate_open = false;
    Dispatcher dispatcher(std::move(channels.list), store, settings);
    running = &dispatcher;
    dispatcher.submit(alert("1"));
    {
        std::lock_guard lock(store.mutex);
        stored = store.pending.at("1");
    }
    {
        std::lock_guard lock(mail->mutex);
        mail->gate_open = true;
        mail->changed.notify_all();
    }
    REQUIRE(wait_for(mail, 2));
    CHECK(adopted);
    REQUIRE(eventually([&] { return store.pending_count() == 0; }));
    CHECK(dispatcher.shutdown(5s).pending == 0);
    CHECK(mail->delivered == std::vector<std::string>{"1", "1"});
}
