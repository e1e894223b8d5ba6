#include "app/status.hpp"
#include "delivery/spool.hpp"
#include "log_lines.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <latch>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace crashmail;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    TempDir() {
        char pattern[] = "/tmp/crashmail-spool-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::permissions(path, fs::perms::owner_all, ignored);
        fs::remove_all(path, ignored);
    }
    fs::path path;
};

AlertRecord record(std::string id) {
    AlertRecord r;
    r.alert.id = std::move(id);
    r.alert.process = "wörker";
    r.alert.group = "grp";
    r.alert.state = "EXITED";
    r.alert.pid = 42;
    r.alert.expected = false;
    r.alert.serial = 7;
    r.alert.subject = "grp:wörker crashed";
    r.alert.body = "line 1\nline 2\n";
    r.alert.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764108190123));
    ChannelState state;
    state.name = "smtp://127.0.0.1:25";
    state.attempts = 2;
    state.last_error = "421 busy (transient)";
    state.next_attempt = r.alert.time + std::chrono::seconds(10);
    r.channels["0123456789abcdef"] = state;
    return r;
}

mode_t mode_of(const fs::path& path) {
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    return info.st_mode & 07777;
}

// Points fd 2 at a file for the lifetime of the object, to see what was logged.
class StderrCapture {
public:
    explicit StderrCapture(fs::path path) : m_path(std::move(path)) {
        m_saved = ::dup(2);
        const int fd = ::open(m_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        REQUIRE(fd >= 0);
        ::dup2(fd, 2);
        ::close(fd);
    }
    StderrCapture(const StderrCapture&) = delete;
    StderrCapture& operator=(const StderrCapture&) = delete;
    ~StderrCapture() { restore(); }

    // Restores fd 2 and returns what was written to it meanwhile.
    std::string finish() {
        restore();
        std::ifstream in(m_path);
        return crashmail::testing::without_log_times(
            std::string(std::istreambuf_iterator<char>(in), {})); // checks and drops the times
    }

private:
    void restore() {
        if (m_saved >= 0) {
            ::dup2(m_saved, 2);
            ::close(m_saved);
            m_saved = -1;
        }
    }
    fs::path m_path;
    int m_saved = -1;
};

std::size_t count_of(const std::string& text, std::string_view what) {
    std::size_t count = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
        ++count;
    }
    return count;
}

bool has_pending(DirectorySpool& spool, const std::string& id) {
    auto loaded = spool.load(id);
    return loaded && loaded->has_value() && (*loaded)->alert.id == id;
}

} // namespace

TEST_CASE("a record survives the round trip through JSON", "[spool]") {
    AlertRecord original = record("s7.0123456789abcdef");
    auto back = record_from_json(record_to_json(original));
    REQUIRE(back);
    CHECK(back->alert.id == original.alert.id);
    CHECK(back->alert.process == "wörker");
    CHECK(back->alert.pid == 42);
    CHECK(back->alert.expected == false);
    CHECK(back->alert.body == original.alert.body);
    CHECK(back->alert.time == original.alert.time);
    const ChannelState& state = back->channels.at("0123456789abcdef");
    CHECK(state.attempts == 2);
    CHECK(state.last_error == "421 busy (transient)");
    CHECK(state.next_attempt == original.channels.at("0123456789abcdef").next_attempt);
    CHECK(state.status == ChannelState::Status::pending);
}

TEST_CASE("damaged records are errors, not crashes", "[spool]") {
    for (const char* text : {"", "{", "[]", "{\"alert\": {}}", "{\"alert\": {\"id\": 5}}",
                             "{\"alert\": {\"id\": \"x\"}, \"channels\": []}"}) {
        INFO(text);
        CHECK_FALSE(record_from_json(text));
    }
}

TEST_CASE("the spool is private: directories 0700, records 0600", "[spool]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path / "root" / "crashmail");
    REQUIRE(spool);
    REQUIRE((*spool)->save(record("a1")));
    CHECK(mode_of(temp.path / "root" / "crashmail") == 0700);
    CHECK(mode_of(temp.path / "root" / "crashmail" / "pending") == 0700);
    CHECK(mode_of(temp.path / "root" / "crashmail" / "pending" / "a1.json") == 0600);
}

TEST_CASE("save, load, remove and fail move records between the areas", "[spool]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path);
    REQUIRE(spool);
    REQUIRE((*spool)->save(record("a1")));
    REQUIRE((*spool)->save(record("a2")));
    auto loaded = (*spool)->load("a1");
    REQUIRE(loaded);
    REQUIRE(loaded->has_value());
    CHECK((*loaded)->alert.process == "wörker");

    std::vector<std::string> seen;
    (*spool)->scan_pending([&](const std::string& id) {
        seen.push_back(id);
        return true;
    });
    std::sort(seen.begin(), seen.end());
    CHECK(seen == std::vector<std::string>{"a1", "a2"});

    REQUIRE((*spool)->remove("a1"));
    auto gone = (*spool)->load("a1");
    REQUIRE(gone);
    CHECK_FALSE(gone->has_value());

    REQUIRE((*spool)->fail(record("a2")));
    CHECK_FALSE(fs::exists(temp.path / "pending" / "a2.json"));
    CHECK(fs::exists(temp.path / "failed" / "a2.json"));
    CHECK(fs::is_empty(temp.path / "tmp"));
}

TEST_CASE("ids that could escape the spool are refused", "[spool]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path);
    REQUIRE(spool);
    for (const char* id : {"../evil", "a/b", "", ".hidden"}) {
        INFO(id);
        CHECK_FALSE((*spool)->save(record(id)));
        CHECK_FALSE((*spool)->load(id));
    }
}

TEST_CASE("a second crashmail cannot use the same spool", "[spool]") {
    TempDir temp;
    auto first = DirectorySpool::open(temp.path);
    REQUIRE(first);
    auto second = DirectorySpool::open(temp.path);
    REQUIRE_FALSE(second);
    CHECK_THAT(second.error(), Catch::Contains("in use by another crashmail"));
    first->reset();
    CHECK(DirectorySpool::open(temp.path));
}

TEST_CASE("an unusable spool says what failed and where", "[spool]") {
    if (::geteuid() == 0) {
        // root writes anywhere; a file in the way still fails.
    }
    TempDir temp;
    fs::path file = temp.path / "not-a-dir";
    REQUIRE(std::fopen(file.c_str(), "w") != nullptr);
    auto spool = DirectorySpool::open(file);
    REQUIRE_FALSE(spool);
    CHECK_THAT(spool.error(), Catch::Contains(file.string()));
}

TEST_CASE("leftovers of interrupted writes are cleaned at open", "[spool]") {
    TempDir temp;
    {
        auto spool = DirectorySpool::open(temp.path);
        REQUIRE(spool);
    }
    REQUIRE(std::fopen((temp.path / "tmp" / "half-written").c_str(), "w") != nullptr);
    auto spool = DirectorySpool::open(temp.path);
    REQUIRE(spool);
    CHECK(fs::is_empty(temp.path / "tmp"));
}

TEST_CASE("status lists pending and failed alerts with channel, attempts and error", "[spool]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path / "crashmail");
    REQUIRE(spool);
    REQUIRE((*spool)->save(record("a1")));
    REQUIRE((*spool)->fail(record("a2")));
    for (const fs::path& root : {temp.path, temp.path / "crashmail"}) {
        std::string report = status_report(root).text;
        INFO(report);
        CHECK_THAT(report, Catch::Contains("pending  a1 grp:wörker"));
        CHECK_THAT(report, Catch::Contains("failed   a2 grp:wörker"));
        CHECK_THAT(report, Catch::Contains("smtp://127.0.0.1:25 pending attempts=2 last error: "
                                           "421 busy (transient)"));
        CHECK_THAT(report, Catch::EndsWith("1 pending, 1 failed\n"));
    }
    CHECK_THAT(status_report(temp.path / "nothing").text, Catch::Contains("no spool under"));
}

TEST_CASE("status says how many events supervisord discarded and what became of them",
          "[spool][discards]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path / "crashmail");
    REQUIRE(spool);
    CHECK_THAT(status_report(temp.path).text, !Catch::Contains("discarded"));
    REQUIRE((*spool)->save_state("discards",
                                 R"({"version":1,"totals":{"discarded":280,"recovered":275,)"
                                 R"("unrecoverable":0,"notices":2}})",
                                 Durability::disk));
    std::string report = status_report(temp.path).text;
    CHECK_THAT(report, Catch::Contains("supervisord discarded 280 event(s): 275 crash(es) "
                                       "recovered from its log, 0 event(s) not recoverable; 2 "
                                       "notice(s) sent"));
    CHECK_THAT(report, Catch::Contains("buffer_size=100"));
}

TEST_CASE("the listener's directory is named after its process", "[spool]") {
    CHECK(listener_spool("/var/spool/crashmail", "crashmail") == "/var/spool/crashmail/crashmail");
    CHECK(listener_spool("/s", "a/b") == "/s/a_b");
    CHECK(listener_spool("/s", "..") == "/s/crashmail");
    CHECK(listener_spool("/s", "users") == "/s/users.listener");
}

TEST_CASE("state documents are saved, synced and read back, privately", "[spool]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path);
    REQUIRE(spool);
    auto none = (*spool)->load_state("crash-loops");
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
    CHECK((*spool)->sync_state("crash-loops")); // nothing to sync is not an error
    for (Durability durability : {Durability::process, Durability::disk}) {
        std::string content = durability == Durability::process ? "{\"a\":1}" : "{\"b\":2}";
        REQUIRE((*spool)->save_state("crash-loops", content, durability));
        auto loaded = (*spool)->load_state("crash-loops");
        REQUIRE(loaded);
        REQUIRE(loaded->has_value());
        CHECK(**loaded == content);
        CHECK((*spool)->sync_state("crash-loops"));
    }
    struct stat info {};
    REQUIRE(::stat((temp.path / "crash-loops.state.json").c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0600);
    CHECK_FALSE((*spool)->save_state("../escape", "{}", Durability::disk));
    CHECK_FALSE((*spool)->load_state("a/b"));
}

TEST_CASE("a spool whose whole directory was removed re-creates it on the next save", "[spool]") {
    TempDir temp;
    const fs::path directory = temp.path / "root" / "crashmail";
    auto spool = DirectorySpool::open(directory);
    REQUIRE(spool);
    REQUIRE((*spool)->save(record("a0")));
    fs::remove_all(temp.path / "root"); // a cleanup job, parents and all

    StderrCapture capture(temp.path / "stderr");
    REQUIRE((*spool)->save(record("a1")));
    std::string logged = capture.finish();
    CHECK(logged == "crashmail: warning: spool directory " + directory.string() +
                        " vanished (missing: the whole directory); re-created it\n");
    CHECK(has_pending(**spool, "a1"));
    auto lost = (*spool)->load("a0"); // gone with the directory
    REQUIRE(lost);
    CHECK_FALSE(lost->has_value());
    CHECK(mode_of(directory) == 0700);
    for (const char* area : {"tmp", "pending", "failed"}) {
        CHECK(mode_of(directory / area) == 0700);
    }
    CHECK(mode_of(directory / "lock") == 0600);
    CHECK(mode_of(directory / "pending" / "a1.json") == 0600);
    CHECK(fs::is_empty(directory / "tmp"));

    // The new lock is held: a second crashmail is still refused.
    auto second = DirectorySpool::open(directory);
    REQUIRE_FALSE(second);
    CHECK_THAT(second.error(), Catch::Contains("in use by another crashmail"));

    // Everything works on the new directory without another warning.
    StderrCapture quiet(temp.path / "stderr-2");
    REQUIRE((*spool)->update(record("a1")));
    REQUIRE((*spool)->fail(record("a1")));
    REQUIRE((*spool)->save(record("a2")));
    REQUIRE((*spool)->remove("a2"));
    CHECK(quiet.finish().empty());
    CHECK(fs::exists(directory / "failed" / "a1.json"));

    spool->reset();
    auto reopened = DirectorySpool::open(directory);
    REQUIRE(reopened);
    std::vector<std::string> failed;
    for_each_record(directory, "failed",
                    [&](const std::string&, const std::expected<AlertRecord, std::string>& r) {
                        REQUIRE(r);
                        failed.push_back(r->alert.id);
                    });
    CHECK(failed == std::vector<std::string>{"a1"});
}

TEST_CASE("a spool re-creates tmp/, pending/ or failed/ alone, keeping its lock", "[spool]") {
    for (const char* area : {"tmp", "pending", "failed"}) {
        DYNAMIC_SECTION(area << "/ removed") {
            TempDir temp;
            auto spool = DirectorySpool::open(temp.path);
            REQUIRE(spool);
            REQUIRE((*spool)->save(record("kept")));
            REQUIRE((*spool)->fail(record("failed-before")));
            struct stat lock_before {};
            REQUIRE(::stat((temp.path / "lock").c_str(), &lock_before) == 0);
            fs::remove_all(temp.path / area);

            StderrCapture capture(temp.path.parent_path() /
                                  (temp.path.filename().string() + ".stderr"));
            REQUIRE((*spool)->save(record("a1")));
            REQUIRE((*spool)->update(record("a1")));
            REQUIRE((*spool)->fail(record("a2")));
            std::string logged = capture.finish();
            fs::remove(temp.path.parent_path() / (temp.path.filename().string() + ".stderr"));
            CHECK(logged == "crashmail: warning: spool directory " + temp.path.string() +
                                " vanished (missing: " + area + "/); re-created it\n");

            CHECK(has_pending(**spool, "a1"));
            CHECK(has_pending(**spool, "kept") == (std::string(area) != "pending"));
            CHECK(fs::exists(temp.path / "failed" / "a2.json"));
            CHECK(fs::exists(temp.path / "failed" / "failed-before.json") ==
                  (std::string(area) != "failed"));
            CHECK(mode_of(temp.path / area) == 0700);

            // The lock file was never touched, and it is still held.
            struct stat lock_after {};
            REQUIRE(::stat((temp.path / "lock").c_str(), &lock_after) == 0);
            CHECK(lock_after.st_ino == lock_before.st_ino);
            CHECK_FALSE(DirectorySpool::open(temp.path));
            spool->reset();
            auto reopened = DirectorySpool::open(temp.path);
            REQUIRE(reopened);
            CHECK(has_pending(**reopened, "a1"));
        }
    }
}

TEST_CASE("state files are written again after the spool directory vanished", "[spool]") {
    TempDir temp;
    const fs::path directory = temp.path / "crashmail";
    auto spool = DirectorySpool::open(directory);
    REQUIRE(spool);
    REQUIRE((*spool)->save_state("crash-loops", "{\"old\":1}", Durability::disk));
    for (Durability durability : {Durability::process, Durability::disk}) {
        fs::remove_all(directory);
        StderrCapture capture(temp.path / "stderr");
        const std::string content = durability == Durability::disk ? "{\"b\":2}" : "{\"a\":1}";
        REQUIRE((*spool)->save_state("crash-loops", content, durability));
        CHECK_THAT(capture.finish(), Catch::Contains("vanished (missing: the whole directory)"));
        auto loaded = (*spool)->load_state("crash-loops");
        REQUIRE(loaded);
        REQUIRE(loaded->has_value());
        CHECK(**loaded == content);
        CHECK((*spool)->sync_state("crash-loops"));
        CHECK(mode_of(directory / "crash-loops.state.json") == 0600);
    }
    CHECK_FALSE(DirectorySpool::open(directory));
    spool->reset();
    auto reopened = DirectorySpool::open(directory);
    REQUIRE(reopened);
    auto loaded = (*reopened)->load_state("crash-loops");
    REQUIRE(loaded);
    REQUIRE(loaded->has_value());
    CHECK(**loaded == "{\"b\":2}");
}

TEST_CASE("reading and removing in a vanished spool need no repair", "[spool]") {
    TempDir temp;
    const fs::path directory = temp.path / "crashmail";
    auto spool = DirectorySpool::open(directory);
    REQUIRE(spool);
    REQUIRE((*spool)->save(record("a1")));
    fs::remove_all(directory);
    StderrCapture capture(temp.path / "stderr");
    CHECK((*spool)->remove("a1")); // already gone: success
    auto loaded = (*spool)->load("a1");
    REQUIRE(loaded);
    CHECK_FALSE(loaded->has_value());
    auto state = (*spool)->load_state("crash-loops");
    REQUIRE(state);
    CHECK_FALSE(state->has_value());
    CHECK((*spool)->sync_state("crash-loops"));
    std::size_t seen = 0;
    (*spool)->scan_pending([&](const std::string&) { return ++seen, true; });
    CHECK(seen == 0);
    CHECK(capture.finish().empty());
    CHECK_FALSE(fs::exists(directory)); // re-created by the next write only
}

TEST_CASE("a vanished spool that cannot be re-created says why", "[spool]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path);
    REQUIRE(spool);
    fs::remove_all(temp.path / "pending");
    REQUIRE(std::fopen((temp.path / "pending").c_str(), "w") != nullptr); // a file in the way
    StderrCapture capture(temp.path.parent_path() / (temp.path.filename().string() + ".stderr"));
    auto saved = (*spool)->save(record("a1"));
    CHECK(capture.finish().empty());
    fs::remove(temp.path.parent_path() / (temp.path.filename().string() + ".stderr"));
    REQUIRE_FALSE(saved);
    CHECK_THAT(saved.error(),
               Catch::Contains("cannot rename into") &&
                   Catch::Contains("vanished and cannot be re-created") &&
                   Catch::Contains((temp.path / "pending").string() + " is not a directory"));
}

TEST_CASE("threads writing when the spool vanished all succeed after one repair", "[spool]") {
    TempDir temp;
    const fs::path directory = temp.path / "crashmail";
    auto spool = DirectorySpool::open(directory);
    REQUIRE(spool);
    fs::remove_all(directory);
    constexpr int k_threads = 4;
    constexpr int k_records = 20;
    std::latch start(k_threads);
    std::vector<std::vector<std::string>> errors(k_threads);
    StderrCapture capture(temp.path / "stderr");
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < k_threads; ++t) {
            threads.emplace_back([&, t] {
                start.arrive_and_wait(); // every thread's first write finds the directory gone
                for (int i = 0; i < k_records; ++i) {
                    auto id = "t" + std::to_string(t) + "-" + std::to_string(i);
                    auto saved =
                        i % 2 == 0 ? (*spool)->save(record(id)) : (*spool)->update(record(id));
                    if (!saved) {
                        errors[t].push_back(saved.error());
                    }
                }
                auto state =
                    (*spool)->save_state("t" + std::to_string(t), "{}", Durability::process);
                if (!state) {
                    errors[t].push_back(state.error());
                }
            });
        }
    }
    std::string logged = capture.finish();
    for (const auto& thread_errors : errors) {
        CHECK(thread_errors.empty());
    }
    CHECK(count_of(logged, "vanished") == 1);
    std::size_t pending = 0;
    (*spool)->scan_pending([&](const std::string&) { return ++pending, true; });
    CHECK(pending == k_threads * k_records);
    CHECK(fs::is_empty(directory / "tmp"));
}
