#include "app/status.hpp"
#include "delivery/spool.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <sys/stat.h>
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
        std::string report = status_report(root);
        INFO(report);
        CHECK_THAT(report, Catch::Contains("pending  a1 grp:wörker"));
        CHECK_THAT(report, Catch::Contains("failed   a2 grp:wörker"));
        CHECK_THAT(report, Catch::Contains("smtp://127.0.0.1:25 pending attempts=2 last error: "
                                           "421 busy (transient)"));
        CHECK_THAT(report, Catch::EndsWith("1 pending, 1 failed\n"));
    }
    CHECK_THAT(status_report(temp.path / "nothing"), Catch::Contains("no spool under"));
}

TEST_CASE("status says how many events supervisord discarded and what became of them",
          "[spool][discards]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path / "crashmail");
    REQUIRE(spool);
    CHECK_THAT(status_report(temp.path), !Catch::Contains("discarded"));
    REQUIRE((*spool)->save_state("discards",
                                 R"({"version":1,"totals":{"discarded":280,"recovered":275,)"
                                 R"("unrecoverable":0,"notices":2}})",
                                 Durability::disk));
    std::string report = status_report(temp.path);
    CHECK_THAT(report, Catch::Contains("supervisord discarded 280 event(s): 275 crash(es) "
                                       "recovered from its log, 0 event(s) not recoverable; 2 "
                                       "notice(s) sent"));
    CHECK_THAT(report, Catch::Contains("buffer_size=100"));
}

TEST_CASE("the listener's directory is named after its process", "[spool]") {
    CHECK(listener_spool("/var/spool/crashmail", "crashmail") == "/var/spool/crashmail/crashmail");
    CHECK(listener_spool("/s", "a/b") == "/s/a_b");
    CHECK(listener_spool("/s", "..") == "/s/crashmail");
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
