// The mark file: one fixed-size block rewritten in place, read back without its padding.

#include "delivery/mark_file.hpp"
#include "event/pool_serials.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace crashmail;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    TempDir() {
        char pattern[] = "/tmp/crashmail-mark-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
    fs::path path;
};

std::unique_ptr<FileMark> open_mark(const fs::path& path) {
    auto mark = FileMark::open(path);
    REQUIRE(mark);
    return std::move(*mark);
}

PoolMark sample_mark() {
    PoolMark mark;
    mark.instance = "0b4f6c1e-boot:1981:1795644190";
    mark.pool_serial = 41;
    mark.serial = 977;
    mark.seen_ms = 1795644190123;
    mark.pending = SerialGap{30, 39, 10, false, 1795644170000, 1795644185000, true};
    return mark;
}

// Writes `bytes` at offset 0 of the file, as another writer (or a torn write) would.
void overwrite(const fs::path& path, std::string_view bytes) {
    int fd = ::open(path.c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    CHECK(::pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
    ::close(fd);
}

} // namespace

TEST_CASE("a new mark file holds no record", "[discards][mark_file]") {
    TempDir dir;
    auto mark = open_mark(dir.path / "mark");
    auto loaded = mark->load();
    REQUIRE(loaded);
    CHECK(*loaded == std::nullopt);
    CHECK(fs::exists(dir.path / "mark"));
}

TEST_CASE("a saved mark loads back, also from a new FileMark", "[discards][mark_file]") {
    TempDir dir;
    const std::string record = encode_mark(sample_mark());
    {
        auto mark = open_mark(dir.path / "mark");
        REQUIRE(mark->save(record));
        auto loaded = mark->load();
        REQUIRE(loaded);
        REQUIRE(*loaded);
        CHECK(**loaded == record);
    }
    auto again = open_mark(dir.path / "mark");
    auto loaded = again->load();
    REQUIRE(loaded);
    REQUIRE(*loaded);
    CHECK(**loaded == record);
    auto decoded = decode_mark(**loaded);
    REQUIRE(decoded);
    CHECK(*decoded == sample_mark());
}

TEST_CASE("the mark file is made with mode 0600 and is one block", "[discards][mark_file]") {
    TempDir dir;
    auto mark = open_mark(dir.path / "mark");
    REQUIRE(mark->save(encode_mark(sample_mark())));
    struct stat info {};
    REQUIRE(::stat((dir.path / "mark").c_str(), &info) == 0);
    CHECK((info.st_mode & 07777) == 0600);
    CHECK(fs::file_size(dir.path / "mark") == k_mark_bytes);
}

TEST_CASE("a shorter record after a longer one reads back as the shorter one",
          "[discards][mark_file]") {
    TempDir dir;
    auto mark = open_mark(dir.path / "mark");
    PoolMark longer = sample_mark();
    longer.pool_serial = k_max_serial;
    longer.serial = k_max_serial;
    longer.pending =
        SerialGap{k_max_serial - 9, k_max_serial, 10, true, 1795644170000, 1795644185000, true};
    PoolMark shorter;
    shorter.instance = "x";
    REQUIRE(encode_mark(shorter).size() < encode_mark(longer).size());

    REQUIRE(mark->save(encode_mark(longer)));
    REQUIRE(mark->save(encode_mark(shorter)));
    auto loaded = mark->load();
    REQUIRE(loaded);
    REQUIRE(*loaded);
    CHECK(**loaded == encode_mark(shorter));
    CHECK(decode_mark(**loaded) == shorter);
    CHECK(fs::file_size(dir.path / "mark") == k_mark_bytes);

    // And a long one once more.
    REQUIRE(mark->save(encode_mark(longer)));
    CHECK(mark->load().value() == encode_mark(longer));
}

TEST_CASE("a record must fit in the block", "[discards][mark_file]") {
    TempDir dir;
    auto mark = open_mark(dir.path / "mark");
    const std::string fits = std::string(k_mark_bytes - 2, 'x') + "\n";
    REQUIRE(mark->save(fits));
    CHECK(mark->load().value() == fits);
    auto too_long = mark->save(std::string(k_mark_bytes, 'y'));
    REQUIRE_FALSE(too_long);
    CHECK_THAT(too_long.error(), Catch::Contains("too long"));
    CHECK(mark->load().value() == fits); // the old record stays
}

TEST_CASE("a torn or foreign block does not decode as a mark", "[discards][mark_file]") {
    TempDir dir;
    const fs::path path = dir.path / "mark";
    auto mark = open_mark(path);
    PoolMark old_mark = sample_mark();
    old_mark.pool_serial = 123456789;
    REQUIRE(mark->save(encode_mark(old_mark)));
    SECTION("half of a new record over the old one") {
        const std::string record = encode_mark(sample_mark());
        overwrite(path, std::string_view(record).substr(0, record.size() / 2));
        auto loaded = mark->load();
        REQUIRE(loaded);
        REQUIRE(*loaded);
        CHECK_FALSE(decode_mark(**loaded));
    }
    SECTION("garbage") {
        overwrite(path, std::string(k_mark_bytes, '\x7f'));
        auto loaded = mark->load();
        REQUIRE(loaded);
        if (*loaded) {
            CHECK_FALSE(decode_mark(**loaded));
        }
    }
}

TEST_CASE("a mark file that cannot be made is an error naming it", "[discards][mark_file]") {
    TempDir dir;
    const fs::path path = dir.path / "missing" / "mark";
    auto mark = FileMark::open(path);
    REQUIRE_FALSE(mark);
    CHECK_THAT(mark.error(), Catch::Contains(path.string()));
}

TEST_CASE("a mark file says whether open() made it", "[discards][mark_file]") {
    TempDir dir;
    {
        auto mark = open_mark(dir.path / "mark");
        CHECK(mark->created());
    }
    auto again = open_mark(dir.path / "mark");
    CHECK_FALSE(again->created());
}

TEST_CASE("a mark file has its whole block from the start, so a full disk cannot refuse it",
          "[discards][mark_file]") {
    TempDir dir;
    auto mark = open_mark(dir.path / "mark");
    CHECK(fs::file_size(dir.path / "mark") == k_mark_bytes);
    struct stat status {};
    REQUIRE(::stat((dir.path / "mark").c_str(), &status) == 0);
    CHECK(status.st_blocks > 0); // allocated, not a hole
    auto loaded = mark->load();
    REQUIRE(loaded);
    CHECK_FALSE(loaded->has_value());
    // An existing record is kept when the file is opened again.
    REQUIRE(mark->save("kept"));
    mark.reset();
    auto again = open_mark(dir.path / "mark");
    CHECK(**again->load() == "kept");
}
