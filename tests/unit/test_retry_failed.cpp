// --retry-failed: the record renewed, the command's move into retry/, the listener's
// adoption (RetryInbox + Dispatcher::adopt on a real DirectorySpool) and its watcher.
#include "app/retry_failed.hpp"
#include "app/status.hpp"
#include "delivery/channel_worker.hpp"
#include "delivery/dispatcher.hpp"
#include "delivery/outcome.hpp"
#include "delivery/retry_inbox.hpp"
#include "delivery/spool.hpp"
#include "delivery/spool_lock.hpp"

#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <mutex>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sysexits.h>
#include <thread>
#include <unistd.h>

using namespace crashmail;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

namespace {

struct TempDir {
    TempDir() {
        char pattern[] = "/tmp/crashmail-retry-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
    fs::path path;
};

// A channel that records the alerts it delivered.
struct Recording final : public Transport {
    struct State {
        std::mutex mutex;
        std::condition_variable changed;
        std::vector<std::string> delivered;
    };
    explicit Recording(std::shared_ptr<State> state) : m_state(std::move(state)) {}
    std::string name() const override { return "recording"; }
    std::expected<void, Failure> deliver(const Alert& alert) override {
        std::lock_guard lock(m_state->mutex);
        m_state->delivered.push_back(alert.id);
        m_state->changed.notify_all();
        return {};
    }
    std::shared_ptr<State> m_state;
};

bool wait_delivered(Recording::State& state, std::size_t count) {
    std::unique_lock lock(state.mutex);
    return state.changed.wait_for(lock, 10s, [&] { return state.delivered.size() >= count; });
}

AlertRecord failed_record(const std::string& id, const std::string& key) {
    AlertRecord record;
    record.alert.id = id;
    record.alert.process = "web";
    record.alert.group = "web";
    record.alert.time = Clock::time_point(1000h);
    ChannelState& failed = record.channels[key];
    failed.name = "webhook http://127.0.0.1/hook";
    failed.status = ChannelState::Status::failed;
    failed.attempts = 7;
    failed.last_error = "HTTP 400 Bad Request (permanent)";
    failed.refused_recipients = {{"a@x", "550 no"}};
    ChannelState& delivered = record.channels["zz-delivered"];
    delivered.name = "smtp://mx";
    delivered.status = ChannelState::Status::delivered;
    delivered.attempts = 1;
    return record;
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

} // namespace

TEST_CASE("renew_for_retry: failed channels start afresh, delivered ones stay, max-age counts "
          "from the requeue",
          "[retry_failed]") {
    AlertRecord record = failed_record("a1", "k1");
    const auto now = Clock::time_point(2000h);
    auto renewed = renew_for_retry(record, now);
    CHECK(renewed == std::vector<std::string>{"webhook http://127.0.0.1/hook"});
    const ChannelState& channel = record.channels.at("k1");
    CHECK(channel.status == ChannelState::Status::pending);
    CHECK(channel.attempts == 0);
    CHECK(channel.next_attempt == now);
    CHECK(channel.refused_recipients.empty());
    CHECK(record.channels.at("zz-delivered").status == ChannelState::Status::delivered);
    CHECK(record.channels.at("zz-delivered").attempts == 1);
    CHECK(record.requeued == now);
    CHECK(retry_start(record) == now);

    // The field survives the JSON, and an older file (without it) reads as never requeued.
    auto back = record_from_json(record_to_json(record));
    REQUIRE(back);
    CHECK(back->requeued == now);
    auto older = record_from_json(record_to_json(failed_record("a2", "k1")));
    REQUIRE(older);
    CHECK(older->requeued == Clock::time_point{});
    CHECK(retry_start(*older) == older->alert.time);
    CHECK_THAT(record_to_json(*older), !Catch::Contains("requeued_ms"));

    // --max-age counts from the requeue: an alert raised long ago is retried again.
    RetryPolicy policy;
    policy.max_age = 24h;
    Failure failure{Failure::Kind::transient, "421 busy", std::nullopt};
    ChannelState& state = record.channels.at("k1");
    state.attempts = 1;
    std::expected<void, Failure> result = std::unexpected(failure);
    DeliveryOutcome outcome =
        apply_delivery(record, "k1", "webhook", result, policy, 0.0, now + 1s, {"k1"});
    CHECK(outcome.what == DeliveryOutcome::What::retry);
    // Without the requeue, the same alert is past --max-age and given up on.
    AlertRecord old = failed_record("a3", "k1");
    old.channels.at("k1").status = ChannelState::Status::pending;
    old.channels.at("k1").attempts = 1;
    DeliveryOutcome gave_up =
        apply_delivery(old, "k1", "webhook", result, policy, 0.0, now + 1s, {"k1"});
    CHECK(gave_up.what == DeliveryOutcome::What::gave_up);
}

TEST_CASE("retry_failed: moves failed alerts into retry/ and says what happens next",
          "[retry_failed]") {
    TempDir temp;
    const fs::path directory = temp.path / "crashmail";
    {
        auto spool = DirectorySpool::open(directory);
        REQUIRE(spool);
        REQUIRE((*spool)->fail(failed_record("a1", "k1")));
        REQUIRE((*spool)->fail(failed_record("a2", "k1")));
    }
    const auto now = Clock::time_point(2000h);

    SECTION("the named ones; an unknown id is named and exits 65 after the others moved") {
        auto report = retry_failed(temp.path, {"a1.json", "nope"}, now, "");
        INFO(report.out);
        CHECK(report.exit_code == EX_DATAERR);
        REQUIRE(report.errors.size() == 1);
        CHECK_THAT(report.errors[0], Catch::Contains("no failed alert nope under"));
        CHECK_THAT(report.out, Catch::StartsWith("requeued a1 (web) in " + directory.string() +
                                                 ": webhook http://127.0.0.1/hook renewed (1 "
                                                 "channel(s) delivered it already); no listener "
                                                 "is running: the next start sends it\n"));
        CHECK(!fs::exists(directory / "failed" / "a1.json"));
        CHECK(fs::exists(directory / "failed" / "a2.json"));
        const fs::path moved = directory / "retry" / "a1.json";
        REQUIRE(fs::exists(moved));
        struct stat info {};
        REQUIRE(::stat(moved.c_str(), &info) == 0);
        CHECK((info.st_mode & 0777) == 0600);
        auto record = record_from_json(read_text(moved));
        REQUIRE(record);
        CHECK(record->channels.at("k1").status == ChannelState::Status::pending);
        CHECK(record->requeued == now);
        // No temporary file is left beside it.
        CHECK(std::distance(fs::directory_iterator(directory / "retry"), {}) == 1);
        // --status: no longer CRITICAL for a1; it shows in retry/.
        auto status = status_report(temp.path, {5s, now + 1s, "nobody"});
        CHECK_THAT(status.text, Catch::Contains("retry    a1 web"));
        CHECK_THAT(status.text, Catch::StartsWith("CRASHMAIL CRITICAL - 1 failed, 1 pending |"));
    }
    SECTION("all of them, with a running listener; then nothing is left") {
        auto spool = DirectorySpool::open(directory); // holds the lock: "running"
        REQUIRE(spool);
        auto report = retry_failed(directory, {}, now, "");
        INFO(report.out);
        CHECK(report.exit_code == EX_OK);
        CHECK(report.errors.empty());
        CHECK_THAT(report.out, Catch::Contains("requeued a1 (web)"));
        CHECK_THAT(report.out, Catch::Contains("requeued a2 (web)"));
        CHECK_THAT(report.out,
                   Catch::Contains(fmt::format("a running listener (pid {}) sends it within "
                                               "seconds",
                                               ::getpid())));
        auto again = retry_failed(directory, {}, now, "");
        CHECK(again.exit_code == EX_OK);
        CHECK(again.out == "nothing in failed/ under " + directory.string() + "\n");
    }
    SECTION("no spool: exit 66; not an id: 65") {
        CHECK(retry_failed(temp.path / "none", {}, now, "").exit_code == EX_NOINPUT);
        auto report = retry_failed(temp.path, {"../etc/passwd"}, now, "");
        CHECK(report.exit_code == EX_DATAERR);
        CHECK_THAT(report.errors[0], Catch::Contains("'../etc/passwd' is not an alert id"));
    }
}

TEST_CASE("the listener adopts retry/ into pending/ and delivers it; its watcher picks a file up "
          "within seconds",
          "[retry_failed]") {
    TempDir temp;
    const fs::path directory = temp.path / "crashmail";
    auto spool = DirectorySpool::open(directory);
    REQUIRE(spool);
    CHECK(fs::is_directory(directory / "retry"));
    auto state = std::make_shared<Recording::State>();
    std::vector<std::unique_ptr<Transport>> channels;
    channels.push_back(std::make_unique<Recording>(state));
    const std::string key = channel_key(*channels.front());
    Dispatcher dispatcher(std::move(channels), **spool);

    // Left while no listener ran: adopted at start.
    AlertRecord early = failed_record("early", key);
    renew_for_retry(early, Clock::now());
    REQUIRE(deposit_retry(directory, early));
    REQUIRE((*spool)->fail(failed_record("early", key))); // the command died before unlinking
    std::vector<std::string> adopted;
    RetryInbox inbox(directory,
                     [&](AlertRecord record) {
                         adopted.push_back(record.alert.id);
                         return dispatcher.adopt(std::move(record));
                     },
                     {100s, 3600s});
    inbox.start();
    CHECK(adopted == std::vector<std::string>{"early"});
    REQUIRE(wait_delivered(*state, 1));
    CHECK(state->delivered[0] == "early");
    CHECK(!fs::exists(directory / "retry" / "early.json"));
    CHECK(!fs::exists(directory / "failed" / "early.json"));

    // While it runs: the command's move is seen through inotify (the rescan is 100 s away).
    REQUIRE((*spool)->fail(failed_record("late", key)));
    auto report = retry_failed(directory, {"late"}, Clock::now(), "");
    REQUIRE(report.exit_code == EX_OK);
    REQUIRE(wait_delivered(*state, 2));
    CHECK(state->delivered[1] == "late");
    CHECK(fs::is_empty(directory / "failed"));
    // The inbox unlinks retry/late.json after the dispatcher took the alert, so the delivery
    // may come first (it did, once in about 400 runs): both are waited for.
    for (int i = 0;
         i < 500 && !(fs::is_empty(directory / "pending") && fs::is_empty(directory / "retry"));
         ++i) {
        std::this_thread::sleep_for(10ms);
    }
    CHECK(fs::is_empty(directory / "pending")); // delivered: removed
    CHECK(fs::is_empty(directory / "retry"));
    inbox.stop(); // prompt: the test would hang on a 100 s poll otherwise
    dispatcher.shutdown(0ms);
}

TEST_CASE("a retry file that is not a record goes to failed/ for --status to show",
          "[retry_failed]") {
    TempDir temp;
    const fs::path directory = temp.path / "crashmail";
    auto spool = DirectorySpool::open(directory);
    REQUIRE(spool);
    { std::ofstream(directory / "retry" / "bad.json") << "{not json"; }
    RetryInbox inbox(directory, [](AlertRecord) { return true; });
    CHECK(inbox.adopt_all() == 0);
    CHECK(!fs::exists(directory / "retry" / "bad.json"));
    CHECK(fs::exists(directory / "failed" / "bad.json"));
    auto status = status_report(temp.path, {5s, Clock::now(), "nobody"});
    CHECK(status.exit_code == 2);
    CHECK_THAT(status.text,
               Catch::Contains("unreadable " + (directory / "failed" / "bad.json").string()));
}

TEST_CASE("the spool's lock holder is read from /proc/locks, without taking the lock",
          "[retry_failed][spool]") {
    CHECK(flock_holder("1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF\n", makedev(8, 1), 1234) ==
          4242);
    CHECK(flock_holder("1: -> FLOCK  ADVISORY  WRITE 7 08:01:1234 0 EOF\n", makedev(8, 1), 1234) ==
          std::nullopt);
    CHECK(flock_holder("1: POSIX  ADVISORY  WRITE 7 08:01:1234 0 EOF\n", makedev(8, 1), 1234) ==
          std::nullopt);
    CHECK(flock_holder("1: FLOCK  ADVISORY  WRITE 7 fd:00:1234 0 EOF\n", makedev(253, 0), 1234) ==
          7);
    TempDir temp;
    auto none = spool_lock_holder(temp.path);
    REQUIRE(none);
    CHECK(!none->has_value());
    {
        auto spool = DirectorySpool::open(temp.path / "l");
        REQUIRE(spool);
        auto holder = spool_lock_holder(temp.path / "l");
        REQUIRE(holder);
        CHECK(*holder == ::getpid());
        // Asking did not take it: a second listener still finds it held, and after the first
        // closes, it gets it (never "in use" because of a look).
    }
    auto holder = spool_lock_holder(temp.path / "l");
    REQUIRE(holder);
    CHECK(!holder->has_value());
    CHECK(DirectorySpool::open(temp.path / "l"));
}

TEST_CASE("the spool re-creates retry/ when it vanished", "[retry_failed][spool]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path / "s");
    REQUIRE(spool);
    fs::remove_all(temp.path / "s" / "retry");
    fs::remove_all(temp.path / "s" / "tmp"); // a write fails, and the repair looks
    AlertRecord record;
    record.alert.id = "x1";
    record.channels["k"].name = "k";
    REQUIRE((*spool)->save(record));
    CHECK(fs::is_directory(temp.path / "s" / "retry"));
}

TEST_CASE("run by root on another user's spool, the retry file is that user's", "[retry_failed]") {
    if (::geteuid() != 0) {
        SUCCEED("needs root");
        return;
    }
    TempDir temp;
    const fs::path directory = temp.path / "cm";
    fs::create_directory(directory);
    REQUIRE(::chown(directory.c_str(), 65534, 65534) == 0);
    REQUIRE(deposit_retry(directory, failed_record("a1", "k")));
    struct stat info {};
    REQUIRE(::stat((directory / "retry" / "a1.json").c_str(), &info) == 0);
    CHECK(info.st_uid == 65534);
    REQUIRE(::stat((directory / "retry").c_str(), &info) == 0);
    CHECK(info.st_uid == 65534);
    CHECK((info.st_mode & 07777) == 0700);
}
