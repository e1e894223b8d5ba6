// --status's lines about alerts that wait in memory (outbox.mark, written by the outbox).
#include "app/status.hpp"
#include "delivery/mark_file.hpp"
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
