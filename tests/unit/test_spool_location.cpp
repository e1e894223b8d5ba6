#include "delivery/memory_spool.hpp"
#include "delivery/spool_location.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <string>

using namespace crashmail;

namespace {

// A file system of directories with owners and modes; mkdir makes them owned by `as`.
class FakeFiles final : public SpoolFileSystem {
public:
    uid_t as = 0;
    std::map<std::string, Entry> entries;
    std::vector<std::string> made;

    void add(const std::string& path, uid_t owner, mode_t mode, bool symlink = false) {
        Entry entry;
        entry.directory = !symlink;
        entry.symlink = symlink;
        entry.owner = owner;
        entry.mode = mode;
        entries[path] = entry;
    }
    std::expected<std::optional<Entry>, std::string> look(const std::filesystem::path& path,
                                                          bool /*follow*/) override {
        auto found = entries.find(path.string());
        if (found == entries.end()) {
            return std::optional<Entry>();
        }
        return std::optional<Entry>(found->second);
    }
    std::expected<void, std::string> make_directory(const std::filesystem::path& path,
                                                    mode_t mode) override {
        if (!entries.contains(path.parent_path().string())) {
            return std::unexpected("cannot create " + path.string() +
                                   ": No such file or directory");
        }
        if (!entries.contains(path.string())) {
            add(path.string(), as, mode);
            made.push_back(path.string());
        }
        return {};
    }
    std::expected<void, std::string> change_mode(const std::filesystem::path& path,
                                                 mode_t mode) override {
        entries[path.string()].mode = mode;
        return {};
    }
};

SpoolUser nobody() {
    SpoolUser user;
    user.uid = 65534;
    user.name = "nobody";
    user.passwd_home = "/nonexistent";
    user.home = "/root"; // what supervisord passes on to a listener with user=nobody
    return user;
}

std::string joined(const NoSpool& none) {
    std::string text;
    for (const auto& reason : none.reasons) {
        text += reason + "\n";
    }
    return text + "fix: " + none.fix;
}

} // namespace

TEST_CASE("a user's spool is their own directory under the system spool's users/",
          "[spool_location]") {
    FakeFiles files;
    files.add("/var/spool", 0, 0755);
    files.add("/var/spool/crashmail", 0, 0755);
    files.add("/var/spool/crashmail/users", 0, 01733);
    files.add("/root", 0, 0700);
    files.as = 65534;
    auto root = prepare_spool_root("/var/spool/crashmail", "", nobody(), files);
    REQUIRE(root);
    CHECK(*root == "/var/spool/crashmail/users/nobody");
    CHECK(files.entries["/var/spool/crashmail/users/nobody"].mode == 0700);
    CHECK(files.entries["/var/spool/crashmail/users/nobody"].owner == 65534);
    // --status finds it again without creating anything.
    CHECK(find_spool_root("/var/spool/crashmail", "", nobody(), files) ==
          "/var/spool/crashmail/users/nobody");
}

TEST_CASE("another user's directory of that name is never used, and the notice says whose",
          "[spool_location]") {
    FakeFiles files;
    files.add("/var/spool/crashmail", 0, 0755);
    files.add("/var/spool/crashmail/users", 0, 01733);
    files.add("/var/spool/crashmail/users/nobody", 1000, 0777); // made first by uid 1000
    files.as = 65534;
    auto root = prepare_spool_root("/var/spool/crashmail", "", nobody(), files);
    REQUIRE_FALSE(root);
    CHECK_THAT(joined(root.error()), Catch::Contains("uid 1000") &&
                                         Catch::Contains("another user created it first") &&
                                         Catch::Contains("install -d -m 1733"));
    // HOME is root's (not nobody's) and nobody's passwd home does not exist: neither is used.
    CHECK_THAT(joined(root.error()), Catch::Contains("/nonexistent is not a directory"));
    CHECK(files.made.empty());

    SECTION("a symbolic link planted there is refused too") {
        files.add("/var/spool/crashmail/users/nobody", 65534, 0777, true);
        auto again = prepare_spool_root("/var/spool/crashmail", "", nobody(), files);
        REQUIRE_FALSE(again);
        CHECK_THAT(joined(again.error()), Catch::Contains("symbolic link"));
    }
}

TEST_CASE("users/ writable by others without the sticky bit is refused", "[spool_location]") {
    FakeFiles files;
    files.add("/var/spool/crashmail", 0, 0755);
    files.add("/var/spool/crashmail/users", 0, 0777);
    files.as = 65534;
    auto root = prepare_spool_root("/var/spool/crashmail", "", nobody(), files);
    REQUIRE_FALSE(root);
    CHECK_THAT(joined(root.error()),
               Catch::Contains("/var/spool/crashmail/users can be written by other users (mode "
                               "0777)"));
}

TEST_CASE("without the system spool a home is used only when it is the user's own",
          "[spool_location]") {
    FakeFiles files;
    files.add("/var/spool", 0, 0755);
    files.add("/root", 0, 0700);
    files.add("/home/app", 1000, 0750);
    SpoolUser app;
    app.uid = 1000;
    app.name = "app";
    app.passwd_home = "/home/app";
    app.home = "/root"; // root's HOME, passed on by supervisord: not app's
    files.as = 1000;
    auto root = prepare_spool_root("/var/spool/crashmail", "", app, files);
    REQUIRE(root);
    CHECK(*root == "/home/app/.local/state/crashmail");
    CHECK(files.entries["/home/app/.local"].mode == 0700);

    SECTION("a home others can write is not used, and nothing under /tmp either") {
        files.entries["/home/app"].mode = 0777;
        files.add("/tmp", 0, 01777);
        app.home.reset();
        auto refused = prepare_spool_root("/var/spool/crashmail", "", app, files);
        REQUIRE_FALSE(refused);
        CHECK_THAT(joined(refused.error()), Catch::Contains("/home/app can be written by other "
                                                            "users"));
    }
    SECTION("XDG_STATE_HOME comes first when it is the user's") {
        files.add("/home/app/state", 1000, 0700);
        app.xdg_state_home = "/home/app/state";
        auto xdg = prepare_spool_root("/var/spool/crashmail", "", app, files);
        REQUIRE(xdg);
        CHECK(*xdg == "/home/app/state/crashmail");
    }
}

TEST_CASE("root makes the system spool and its users/ when they are missing", "[spool_location]") {
    FakeFiles files;
    files.add("/var/spool", 0, 0755);
    SpoolUser root_user;
    root_user.name = "root";
    auto root = prepare_spool_root("/var/spool/crashmail", "", root_user, files);
    REQUIRE(root);
    CHECK(*root == "/var/spool/crashmail");
    CHECK(files.entries["/var/spool/crashmail"].mode == 0755);
    CHECK(files.entries["/var/spool/crashmail/users"].mode == 01733);

    SECTION("but never uses one another user could write") {
        files.entries["/var/spool/crashmail"].mode = 01777;
        auto refused = prepare_spool_root("/var/spool/crashmail", "", root_user, files);
        REQUIRE_FALSE(refused);
        CHECK_THAT(joined(refused.error()), Catch::Contains("can be written by other users"));
    }
}

TEST_CASE("the --spool DIR is checked too", "[spool_location]") {
    FakeFiles files;
    files.add("/srv/alerts", 1000, 0777);
    auto refused = prepare_spool_root("/var/spool/crashmail", "/srv/alerts", nobody(), files);
    REQUIRE_FALSE(refused);
    CHECK_THAT(joined(refused.error()),
               Catch::Contains("--spool: /srv/alerts belongs to") && Catch::Contains("uid 1000"));
    files.entries["/srv/alerts"].owner = 65534;
    files.entries["/srv/alerts"].mode = 0700;
    auto mine = prepare_spool_root("/var/spool/crashmail", "/srv/alerts", nobody(), files);
    REQUIRE(mine);
    CHECK(*mine == "/srv/alerts");
}

TEST_CASE("a listener's directory must be the user's own", "[spool_location]") {
    FakeFiles files;
    files.add("/tmp/spool/crashmail", 1000, 0700);
    auto other = check_own_directory("/tmp/spool/crashmail", nobody(), files);
    REQUIRE_FALSE(other);
    CHECK_THAT(other.error(), Catch::Contains("uid 1000") && Catch::Contains("not to nobody"));
    CHECK(check_own_directory("/tmp/spool/absent", nobody(), files));
}

TEST_CASE("the memory spool keeps records and state for the run", "[spool_location]") {
    MemorySpool spool;
    AlertRecord record;
    record.alert.id = "a1";
    REQUIRE(spool.save(record));
    auto loaded = spool.load("a1");
    REQUIRE(loaded);
    REQUIRE(loaded->has_value());
    int seen = 0;
    spool.scan_pending([&](const std::string& id) {
        CHECK(id == "a1");
        ++seen;
        return true;
    });
    CHECK(seen == 1);
    REQUIRE(spool.fail(record));
    CHECK(spool.failed_count() == 1);
    CHECK_FALSE(spool.load("a1")->has_value());
    REQUIRE(spool.save_state("stories", "{}", Durability::disk));
    CHECK(spool.load_state("stories")->value() == "{}");
    CHECK_FALSE(spool.load_state("other")->has_value());
    MemoryMark mark;
    CHECK_FALSE(mark.load()->has_value());
    REQUIRE(mark.save("x"));
    CHECK(mark.load()->value() == "x");
}
