#include "delivery/outbox.hpp"
#include "fake_store.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

using namespace crashmail;
using crashmail::testing::FakeStore;
using crashmail::testing::GatedStore;
using namespace std::chrono_literals;

namespace {

AlertRecord record(std::string id, std::string subject = "first") {
    AlertRecord r;
    r.alert.id = std::move(id);
    r.alert.process = "p";
    r.alert.group = "p";
    r.alert.subject = std::move(subject);
    r.alert.time = std::chrono::system_clock::now();
    r.channels["k"].name = "mail";
    return r;
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

Outbox::Change settle_as(Outbox::Settle settle, std::string subject = "") {
    return [settle, subject](AlertRecord& r) -> std::optional<Outbox::Settle> {
        if (!subject.empty()) {
            r.alert.subject = subject;
        }
        return settle;
    };
}

// A MarkStore that keeps what was written.
struct FakeMark final : public MarkStore {
    std::mutex mutex;
    std::vector<std::string> written;
    std::expected<void, std::string> save(std::string_view text) override {
        std::lock_guard lock(mutex);
        written.emplace_back(text);
        return {};
    }
    std::expected<std::optional<std::string>, std::string> load() override {
        std::lock_guard lock(mutex);
        if (written.empty()) {
            return std::optional<std::string>();
        }
        return std::optional<std::string>(written.back());
    }
    nlohmann::json last() {
        std::lock_guard lock(mutex);
        return written.empty() ? nlohmann::json() : nlohmann::json::parse(written.back());
    }
};

} // namespace

TEST_CASE("outbox: a new record is stored durably with one save", "[outbox]") {
    FakeStore store;
    Outbox outbox(store);
    auto added = outbox.add(record("1"));
    CHECK(added.how == Outbox::Added::stored);
    CHECK(store.saves == 1);
    CHECK(store.updates == 0);
    CHECK(store.pending.contains("1"));
    CHECK(outbox.waiting() == 0);
}

TEST_CASE("outbox: a record whose id exists is not written again", "[outbox]") {
    FakeStore store;
    Outbox outbox(store);
    outbox.add(record("1"));
    REQUIRE(outbox.change("1", settle_as(Outbox::Settle::keep, "enriched")));
    auto again = outbox.add(record("1"));
    CHECK(again.how == Outbox::Added::duplicate);
    CHECK(again.record.alert.subject == "enriched"); // the existing one, progress kept
    CHECK(store.saves == 2);                         // the add and the update only
}

TEST_CASE("outbox: a record the store refuses waits in memory and is told once", "[outbox]") {
    FakeStore store;
    store.refuse_writes = true;
    std::vector<std::pair<std::string, std::size_t>> told;
    OutboxSettings settings;
    settings.on_memory_only = [&](const std::string& reason, std::size_t count) {
        told.emplace_back(reason, count);
    };
    Outbox outbox(store, settings);
    auto added = outbox.add(record("1"));
    CHECK(added.how == Outbox::Added::in_memory);
    CHECK(added.error == "No space left on device");
    CHECK(outbox.add(record("2")).how == Outbox::Added::in_memory);
    REQUIRE(told.size() == 1);
    CHECK(told[0].first == "No space left on device");
    CHECK(told[0].second == 1);
    CHECK(outbox.waiting() == 2);
    auto read = outbox.read("1");
    REQUIRE(read);
    REQUIRE(read->has_value());
    CHECK((*read)->alert.id == "1");
    // A redelivered event finds it in memory.
    CHECK(outbox.add(record("1")).how == Outbox::Added::duplicate);

    // The scan lists what waits in memory, so a channel's refill finds it.
    std::vector<std::string> seen;
    outbox.scan([&](const std::string& id) {
        seen.push_back(id);
        return true;
    });
    CHECK(seen == std::vector<std::string>{"1", "2"});

    CHECK(outbox.retry_now() == 2); // still refused
    store.set_refuse_writes(false);
    CHECK(outbox.retry_now() == 0);
    CHECK(store.pending_count() == 2);
    CHECK(store.updates == 0); // never on disk: stored with save(), the durable write
}

TEST_CASE("outbox: the retry thread stores what waits once the disk has room again", "[outbox]") {
    FakeStore store;
    store.refuse_next = 4; // the add, then three retries
    std::atomic<std::size_t> again{0};
    FakeMark mark;
    OutboxSettings settings;
    settings.retry_first = std::chrono::milliseconds(5);
    settings.retry_max = std::chrono::milliseconds(20);
    settings.on_durable_again = [&](std::size_t stored) { again = stored; };
    settings.mark = &mark;
    Outbox outbox(store, settings);
    outbox.start();
    CHECK(outbox.add(record("1")).how == Outbox::Added::in_memory);
    REQUIRE(eventually([&] { return store.pending_count() == 1; }));
    REQUIRE(eventually([&] { return again == 1; }));
    CHECK(outbox.waiting() == 0);
    {
        std::lock_guard lock(store.mutex);
        CHECK(store.saves >= 5);
        CHECK(store.refuse_next == 0);
    }
    // The mark said 1 waiting while it waited, and says 0 now.
    REQUIRE(eventually([&] { return mark.last().value("waiting", -1) == 0; }));
    bool said_one = false;
    {
        std::lock_guard lock(mark.mutex);
        for (const std::string& text : mark.written) {
            auto document = nlohmann::json::parse(text);
            if (document["waiting"] == 1) {
                said_one = true;
                CHECK(document["reason"] == "No space left on device");
            }
        }
    }
    CHECK(said_one);
}

TEST_CASE("outbox: details that cannot be saved wait in memory, never the older form", "[outbox]") {
    FakeStore store;
    Outbox outbox(store);
    outbox.add(record("1"));
    store.refuse_updates = true; // a failed rename
    auto changed = outbox.change("1", settle_as(Outbox::Settle::keep, "enriched"));
    REQUIRE(changed);
    REQUIRE(changed->has_value());
    CHECK(outbox.waiting() == 1);
    CHECK((*outbox.read("1"))->alert.subject == "enriched"); // memory's version wins
    CHECK(store.pending.at("1").alert.subject == "first");
    store.refuse_updates = false;
    CHECK(outbox.retry_now() == 0);
    CHECK(store.pending.at("1").alert.subject == "enriched");
}

TEST_CASE("outbox: a removal the store refuses is retried; the record reads as settled",
          "[outbox]") {
    FakeStore store;
    Outbox outbox(store);
    outbox.add(record("1"));
    store.refuse_removes = true; // a failed unlink
    REQUIRE(outbox.change("1", settle_as(Outbox::Settle::remove)));
    CHECK(store.pending.contains("1"));
    auto read = outbox.read("1");
    REQUIRE(read);
    CHECK_FALSE(read->has_value()); // delivered everywhere: no channel takes it again
    CHECK(outbox.add(record("1")).how == Outbox::Added::duplicate);
    auto changed_again = outbox.change("1", settle_as(Outbox::Settle::keep));
    REQUIRE(changed_again);
    CHECK_FALSE(changed_again->has_value());
    store.refuse_removes = false;
    CHECK(outbox.retry_now() == 0);
    CHECK_FALSE(store.pending.contains("1"));
}

TEST_CASE("outbox: a move to failed/ the store refuses is retried", "[outbox]") {
    FakeStore store;
    Outbox outbox(store);
    outbox.add(record("1"));
    store.refuse_fails = true;
    REQUIRE(outbox.change("1", settle_as(Outbox::Settle::fail)));
    CHECK(store.failed.empty());
    store.refuse_fails = false;
    CHECK(outbox.retry_now() == 0);
    CHECK(store.failed.contains("1"));
    CHECK_FALSE(store.pending.contains("1"));
}

TEST_CASE("outbox: a record never stored and then delivered leaves nothing behind", "[outbox]") {
    FakeStore store;
    store.refuse_writes = true;
    Outbox outbox(store);
    outbox.add(record("1"));
    store.refuse_writes = false;
    REQUIRE(outbox.change("1", settle_as(Outbox::Settle::remove)));
    CHECK(outbox.waiting() == 0);
    CHECK(store.removed.empty()); // nothing on disk to remove
    CHECK(store.pending.empty());
}

TEST_CASE("outbox: close tries once more, then counts what is lost, truly", "[outbox]") {
    FakeStore store;
    FakeMark mark;
    OutboxSettings settings;
    settings.mark = &mark;
    Outbox outbox(store, settings);
    outbox.add(record("on-disk"));
    store.refuse_writes = true;
    outbox.add(record("memory-1"));
    outbox.add(record("memory-2"));
    // A newer version of a stored record that waits: not lost (the older one goes again).
    outbox.change("on-disk", settle_as(Outbox::Settle::keep, "newer"));

    SECTION("the store still refuses") {
        auto closing = outbox.close();
        CHECK(closing.pending == 1);
        CHECK(closing.lost == 2);
        CHECK(closing.reason == "No space left on device");
        auto last = mark.last();
        CHECK(last["waiting"] == 0);
        CHECK(last["lost"] == 2);
    }
    SECTION("the store takes them at the last try") {
        store.refuse_writes = false;
        auto closing = outbox.close();
        CHECK(closing.pending == 3);
        CHECK(closing.lost == 0);
        CHECK(closing.reason.empty());
        CHECK(store.pending.at("on-disk").alert.subject == "newer");
        CHECK(mark.last()["lost"] == 0);
    }
}

TEST_CASE("outbox: add never waits for another record's write in progress", "[outbox]") {
    GatedStore store;
    Outbox outbox(store);
    outbox.add(record("slow"));
    {
        std::lock_guard lock(store.mutex);
        store.gated_id = "slow";
        store.gate_open = false;
    }
    auto changing = std::async(std::launch::async, [&] {
        return outbox.change("slow", settle_as(Outbox::Settle::keep, "enriched"));
    });
    REQUIRE(store.wait_blocked()); // the other thread is inside the store's update()
    auto adding = std::async(std::launch::async, [&] { return outbox.add(record("fast")); });
    // Bounded only as a guard: add() takes no lock the blocked update holds.
    REQUIRE(adding.wait_for(10s) == std::future_status::ready);
    CHECK(adding.get().how == Outbox::Added::stored);
    CHECK(outbox.read("fast")->has_value());
    store.open();
    REQUIRE(changing.get());
}

TEST_CASE("outbox: add never waits for the retry thread's write in progress", "[outbox]") {
    GatedStore store;
    store.inner.refuse_next = 1;
    OutboxSettings settings;
    settings.retry_first = std::chrono::milliseconds(1);
    Outbox outbox(store, settings);
    CHECK(outbox.add(record("slow")).how == Outbox::Added::in_memory);
    {
        std::lock_guard lock(store.mutex);
        store.gated_id = "slow";
        store.gate_open = false;
    }
    outbox.start();
    REQUIRE(store.wait_blocked()); // the retry thread is inside save()
    auto adding = std::async(std::launch::async, [&] { return outbox.add(record("fast")); });
    REQUIRE(adding.wait_for(10s) == std::future_status::ready);
    CHECK(adding.get().how == Outbox::Added::stored);
    CHECK(outbox.waiting() == 1);
    store.open();
    REQUIRE(eventually([&] { return outbox.waiting() == 0; }));
    CHECK(store.inner.pending_count() == 2);
}

TEST_CASE("outbox: an episode ends when its records were delivered before any retry", "[outbox]") {
    FakeStore store;
    store.refuse_writes = true;
    std::atomic<int> ended{0};
    std::atomic<int> begun{0};
    OutboxSettings settings;
    settings.retry_first = std::chrono::milliseconds(60000); // no retry comes in this test
    settings.on_memory_only = [&](const std::string&, std::size_t) { ++begun; };
    settings.on_durable_again = [&](std::size_t) { ++ended; };
    Outbox outbox(store, settings);
    outbox.start();
    for (int episode = 1; episode <= 2; ++episode) {
        outbox.add(record("1"));
        REQUIRE(outbox.change("1", settle_as(Outbox::Settle::remove))); // delivered
        REQUIRE(eventually([&] { return ended == episode; }));
        CHECK(begun == episode); // each episode is told once, at its start
    }
}
