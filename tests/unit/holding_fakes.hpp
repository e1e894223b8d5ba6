#pragma once
// Fakes that hold one call inside themselves until the test lets it go: what another thread
// does meanwhile shows whether it waits for that call. Every wait takes a guard (seconds)
// that only turns a hang into a failure; no test reads anything into how long a wait took.

#include "delivery/dispatcher.hpp"
#include "delivery/spool.hpp"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace crashmail::testing {

// The first pass(true) after arm() waits inside pass() until release(); every other call
// passes straight through, and so does everything once released.
class Gate {
public:
    void arm() {
        std::lock_guard lock(m_mutex);
        m_armed = true;
    }
    // Returns whether this call was the one held.
    bool pass(bool matches) {
        std::unique_lock lock(m_mutex);
        if (!m_armed || !matches) {
            return false;
        }
        m_armed = false;
        m_holding = true;
        m_changed.notify_all();
        m_changed.wait(lock, [&] { return m_released; });
        return true;
    }
    // Whether a call is held (or was), waiting at most `guard` for one.
    bool wait_until_holding(std::chrono::seconds guard) {
        std::unique_lock lock(m_mutex);
        return m_changed.wait_for(lock, guard, [&] { return m_holding; });
    }
    void release() {
        std::lock_guard lock(m_mutex);
        m_released = true;
        m_changed.notify_all();
    }

private:
    std::mutex m_mutex;
    std::condition_variable m_changed;
    bool m_armed = false;
    bool m_holding = false;
    bool m_released = false;
};

// Releases a gate when the test leaves its scope, failed REQUIREs included: declared after
// the object whose destructor joins the held thread, it runs first.
struct ReleaseAtExit {
    Gate& gate;
    ~ReleaseAtExit() { gate.release(); }
};

// A StateStore in memory that keeps every document in the order the saves ended, and holds
// the first save that `which` picks once its gate is armed.
class HoldingState final : public StateStore {
public:
    struct Landed {
        std::string content;
        Durability durability;
        bool held; // the save the gate held
    };
    using Which = std::function<bool(Durability, const std::string& content)>;
    explicit HoldingState(Which which) : m_which(std::move(which)) {}

    std::expected<void, std::string> save_state(std::string_view, const std::string& content,
                                                Durability durability) override {
        bool held = gate.pass(m_which(durability, content));
        std::lock_guard lock(m_mutex);
        m_landed.push_back({content, durability, held});
        m_changed.notify_all();
        return {};
    }
    std::expected<void, std::string> sync_state(std::string_view) override { return {}; }
    std::expected<std::optional<std::string>, std::string> load_state(std::string_view) override {
        std::lock_guard lock(m_mutex);
        if (m_landed.empty()) {
            return std::optional<std::string>();
        }
        return std::optional<std::string>(m_landed.back().content);
    }

    // Whether `done` holds for what landed, waiting at most `guard` for it.
    bool wait_until(std::chrono::seconds guard,
                    const std::function<bool(const std::vector<Landed>&)>& done) {
        std::unique_lock lock(m_mutex);
        return m_changed.wait_for(lock, guard, [&] { return done(m_landed); });
    }
    std::vector<Landed> landed() {
        std::lock_guard lock(m_mutex);
        return m_landed;
    }

    Gate gate;

private:
    Which m_which;
    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::vector<Landed> m_landed;
};

// An AlertSink that records alerts from any thread and holds the first submit that `which`
// picks once its gate is armed.
class HoldingSink final : public AlertSink {
public:
    using Which = std::function<bool(const Alert&)>;
    explicit HoldingSink(Which which = [](const Alert&) { return false; })
        : m_which(std::move(which)) {}

    void submit(const Alert& alert) override {
        gate.pass(m_which(alert));
        std::lock_guard lock(m_mutex);
        m_alerts.push_back(alert);
    }
    std::vector<Alert> alerts() {
        std::lock_guard lock(m_mutex);
        return m_alerts;
    }

    Gate gate;

private:
    Which m_which;
    std::mutex m_mutex;
    std::vector<Alert> m_alerts;
};

} // namespace crashmail::testing
