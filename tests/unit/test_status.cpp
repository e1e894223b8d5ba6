// --status's lines about alerts that wait in memory (outbox.mark, written by the outbox).
#include "app/status.hpp"
#include "delivery/mark_file.hpp"
#include "delivery/refusals.hpp"
#include "delivery/spool.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

using namespace crashmail;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    TempDir() {
        char pattern[] = "/tmp/crashmail-status-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
    fs::path path;
};

void write_mark(const fs::path& directory, const std::string& text) {
    auto mark = FileMark::open(directory / "outbox.mark");
    REQUIRE(mark);
    REQUIRE((*mark)->save(text));
}

} // namespace

TEST_CASE("status counts the alerts a running crashmail holds in memory", "[status]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path / "crashmail"); // holds the lock: "running"
    REQUIRE(spool);
    write_mark(temp.path / "crashmail",
               R"({"waiting":2,"lost":0,"reason":"No space left on device","time_ms":0,"pid":1})");
    std::string report = status_report(temp.path);
    INFO(report);
    CHECK_THAT(report, Catch::Contains("in memory: 2 alert(s) not durable since "
                                       "1970-01-01T00:00:00.000Z: the spool refuses them (No space "
                                       "left on device)"));
    CHECK_THAT(report, Catch::EndsWith("0 pending, 0 failed, 2 in memory\n"));
}

TEST_CASE("status says alerts were lost when crashmail stopped with them in memory", "[status]") {
    TempDir temp;
    {
        auto spool = DirectorySpool::open(temp.path / "crashmail");
        REQUIRE(spool);
    }
    SECTION("killed while they waited (no crashmail holds the lock)") {
        write_mark(temp.path / "crashmail",
                   R"({"waiting":3,"lost":0,"reason":"No space left on device","time_ms":0})");
        std::string report = status_report(temp.path);
        INFO(report);
        CHECK_THAT(report, Catch::Contains("lost: crashmail stopped at or after"));
        CHECK_THAT(report, Catch::EndsWith("0 pending, 0 failed, 3 lost\n"));
    }
    SECTION("counted at an orderly stop") {
        write_mark(temp.path / "crashmail",
                   R"({"waiting":0,"lost":4,"reason":"Read-only file system","time_ms":0})");
        std::string report = status_report(temp.path);
        INFO(report);
        CHECK_THAT(report, Catch::Contains("lost: 4 alert(s) when crashmail stopped at "
                                           "1970-01-01T00:00:00.000Z: the spool never took them "
                                           "(Read-only file system)"));
        CHECK_THAT(report, Catch::EndsWith("0 pending, 0 failed, 4 lost\n"));
    }
    SECTION("nothing waits, nothing lost: no line") {
        write_mark(temp.path / "crashmail", R"({"waiting":0,"lost":0,"reason":"","time_ms":0})");
        CHECK_THAT(status_report(temp.path), Catch::EndsWith("\n0 pending, 0 failed\n"));
    }
}

TEST_CASE("status shows the recipients refused for now in a pending record and those refused for "
          "good after the alert left the spool",
          "[status]") {
    TempDir temp;
    auto spool = DirectorySpool::open(temp.path / "crashmail");
    REQUIRE(spool);
    AlertRecord record;
    record.alert.id = "a1";
    record.alert.process = "web";
    record.alert.group = "web";
    ChannelState& state = record.channels["k"];
    state.name = "smtp://mx:25";
    state.attempts = 1;
    state.waiting_recipients = {{"c@x", "452 4.2.2 Mailbox full (transient)"}};
    state.refused_recipients = {{"b@x", "550 5.1.1 User unknown (permanent)"}};
    REQUIRE((*spool)->save(record));
    {
        RefusalLog log(spool->get());
        log.record("smtp://mx:25", "b@x", "550 5.1.1 User unknown (permanent)", "a0",
                   std::chrono::system_clock::time_point{});
        log.record("smtp://mx:25", "b@x", "550 5.1.1 User unknown (permanent)", "a1",
                   std::chrono::system_clock::time_point{} + std::chrono::seconds(60));
    }
    std::string report = status_report(temp.path);
    INFO(report);
    CHECK_THAT(report, Catch::Contains("recipient c@x refused for now (retried for it alone): 452 "
                                       "4.2.2 Mailbox full (transient)"));
    CHECK_THAT(report, Catch::Contains("recipient b@x refused: 550 5.1.1 User unknown"));
    CHECK_THAT(report, Catch::Contains("refused  b@x by smtp://mx:25: 2 alert(s) from "
                                       "1970-01-01T00:00:00.000Z to 1970-01-01T00:01:00.000Z, "
                                       "last a1: 550 5.1.1 User unknown (permanent)"));
    CHECK_THAT(report, Catch::EndsWith("1 pending, 0 failed, 1 recipient(s) refused\n"));
    // A new log (crashmail restarted) goes on counting.
    RefusalLog again(spool->get());
    REQUIRE(again.snapshot().size() == 1);
    CHECK(again.snapshot()[0].alerts == 2);
}
