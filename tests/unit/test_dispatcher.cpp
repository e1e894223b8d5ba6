#include "delivery/dispatcher.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>

using namespace crashmail;
using namespace std::chrono_literals;

namespace {

// A channel that records what it was asked to deliver, and can be held at a gate.
struct FakeChannel final : public Transport {
    struct State {
        std::mutex mutex;
        std::condition_variable changed;
        std::vector<std::string> delivered;
        std::size_t started = 0;
        bool gate_open = true;
        bool fail = false;
    };
    explicit FakeChannel(std::shared_ptr<State> state, std::string label)
        : m_state(std::move(state)), m_label(std::move(label)) {}
    std::string name() const override { return m_label; }
    std::expected<void, Failure> deliver(const Alert& alert) override {
        std::unique_lock lock(m_state->mutex);
        ++m_state->started;
        m_state->changed.notify_all();
        m_state->changed.wait(lock, [&] { return m_state->gate_open; });
        m_state->delivered.push_back(alert.id);
        m_state->changed.notify_all();
        if (m_state->fail) {
            return std::unexpected(Failure{Failure::Kind::permanent, "refused", std::nullopt});
        }
        return {};
    }
    std::shared_ptr<State> m_state;
    std::string m_label;
};

Alert alert(std::string id) {
    Alert a;
    a.id = std::move(id);
    a.process = "p";
    a.group = "p";
    return a;
}

bool wait_for(const std::shared_ptr<FakeChannel::State>& state, std::size_t count) {
    std::unique_lock lock(state->mutex);
    return state->changed.wait_for(lock, 10s, [&] { return state->delivered.size() >= count; });
}

} // namespace

TEST_CASE("every channel receives every alert, in order", "[dispatcher]") {
    auto a = std::make_shared<FakeChannel::State>();
    auto b = std::make_shared<FakeChannel::State>();
    std::vector<std::unique_ptr<Transport>> channels;
    channels.push_back(std::make_unique<FakeChannel>(a, "a"));
    channels.push_back(std::make_unique<FakeChannel>(b, "b"));
    Dispatcher dispatcher(std::move(channels));
    dispatcher.submit(alert("1"));
    dispatcher.submit(alert("2"));
    REQUIRE(wait_for(a, 2));
    REQUIRE(wait_for(b, 2));
    CHECK(dispatcher.shutdown(5s) == 0);
    CHECK(a->delivered == std::vector<std::string>{"1", "2"});
    CHECK(b->delivered == std::vector<std::string>{"1", "2"});
}

TEST_CASE("a stuck channel does not delay another channel", "[dispatcher]") {
    auto stuck = std::make_shared<FakeChannel::State>();
    stuck->gate_open = false;
    auto healthy = std::make_shared<FakeChannel::State>();
    std::vector<std::unique_ptr<Transport>> channels;
    channels.push_back(std::make_unique<FakeChannel>(stuck, "stuck"));
    channels.push_back(std::make_unique<FakeChannel>(healthy, "healthy"));
    Dispatcher dispatcher(std::move(channels));
    dispatcher.submit(alert("1"));
    dispatcher.submit(alert("2"));
    REQUIRE(wait_for(healthy, 2));
    CHECK(stuck->delivered.empty());
    // The stuck channel holds one delivery in progress and one queued.
    CHECK(dispatcher.shutdown(50ms) == 2);
    {
        std::lock_guard lock(stuck->mutex);
        stuck->gate_open = true;
    }
    stuck->changed.notify_all();
    REQUIRE(wait_for(stuck, 1)); // the detached worker finishes its delivery safely
}

TEST_CASE("submit does not wait for delivery", "[dispatcher]") {
    auto held = std::make_shared<FakeChannel::State>();
    held->gate_open = false;
    std::vector<std::unique_ptr<Transport>> channels;
    channels.push_back(std::make_unique<FakeChannel>(held, "held"));
    Dispatcher dispatcher(std::move(channels));
    for (int i = 0; i < 100; ++i) {
        dispatcher.submit(alert(std::to_string(i)));
    }
    {
        std::lock_guard lock(held->mutex);
        CHECK(held->delivered.empty());
        held->gate_open = true;
    }
    held->changed.notify_all();
    REQUIRE(wait_for(held, 100));
    CHECK(dispatcher.shutdown(5s) == 0);
}

TEST_CASE("a full queue drops its oldest alert, not the newest", "[dispatcher]") {
    auto held = std::make_shared<FakeChannel::State>();
    held->gate_open = false;
    std::vector<std::unique_ptr<Transport>> channels;
    channels.push_back(std::make_unique<FakeChannel>(held, "held"));
    Dispatcher dispatcher(std::move(channels), 2);
    dispatcher.submit(alert("1"));
    {
        std::unique_lock lock(held->mutex);
        REQUIRE(held->changed.wait_for(lock, 10s, [&] { return held->started == 1; }));
    }
    dispatcher.submit(alert("2"));
    dispatcher.submit(alert("3"));
    dispatcher.submit(alert("4")); // the queue holds two: "2" goes
    {
        std::lock_guard lock(held->mutex);
        held->gate_open = true;
    }
    held->changed.notify_all();
    REQUIRE(wait_for(held, 3));
    CHECK(dispatcher.shutdown(5s) == 0);
    CHECK(held->delivered == std::vector<std::string>{"1", "3", "4"});
}

TEST_CASE("a failed delivery is logged and the worker goes on", "[dispatcher]") {
    auto failing = std::make_shared<FakeChannel::State>();
    failing->fail = true;
    std::vector<std::unique_ptr<Transport>> channels;
    channels.push_back(std::make_unique<FakeChannel>(failing, "failing"));
    Dispatcher dispatcher(std::move(channels));
    dispatcher.submit(alert("1"));
    dispatcher.submit(alert("2"));
    REQUIRE(wait_for(failing, 2));
    CHECK(dispatcher.shutdown(5s) == 0);
}
