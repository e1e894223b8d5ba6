#include "alert/digest.hpp"

#include <catch2/catch.hpp>

using namespace crashmail;
using namespace std::chrono_literals;

namespace {

const std::chrono::system_clock::time_point k_time =
    std::chrono::sys_days{std::chrono::year{2026} / 11 / 25} + 21h + 3min + 10s;

Alert item(std::string id, std::string group, std::string process, std::string state,
           std::chrono::seconds offset) {
    Alert alert;
    alert.id = std::move(id);
    alert.group = std::move(group);
    alert.process = std::move(process);
    alert.state = std::move(state);
    alert.expected = false;
    alert.host = "web1.example.com";
    alert.time = k_time + offset;
    alert.subject = alert.id + " subject";
    alert.body = alert.id + " body line 1\n" + alert.id + " body line 2";
    return alert;
}

} // namespace

TEST_CASE("a digest lists what each process did, oldest first", "[digest]") {
    std::vector<Alert> items = {
        item("w3", "workers", "w1", "EXITED", 30s), item("web", "web", "web", "EXITED", 0s),
        item("w1", "workers", "w1", "EXITED", 10s), item("w2", "workers", "w1", "EXITED", 20s),
        item("db", "db", "db", "FATAL", 40s)};
    Alert recovered = item("rec", "api", "api", "RUNNING", 50s);
    recovered.kind = AlertKind::recovery;
    items.push_back(recovered);
    Alert digest = make_digest(items, "prod", k_time + 60s);
    CHECK(digest.kind == AlertKind::digest);
    CHECK(digest.subject == "prod: crashmail: 6 alerts from web1.example.com (web crashed, "
                            "workers:w1 crashed x3, db FATAL, api recovered)");
    CHECK(digest.host == "web1.example.com");
    CHECK(digest.time == k_time + 60s);
    CHECK(digest.notify);
    REQUIRE(digest.items.size() == 6);
    CHECK(digest.items[0].id == "web");
    CHECK(digest.items[1].id == "w1");
    CHECK(digest.items[3].id == "w3");
    CHECK(digest.body.starts_with("6 alerts from web1.example.com, oldest first:\n\nweb subject\n"
                                  "web body line 1\nweb body line 2\n\n----"));
    CHECK(digest.body.find("w1 subject") < digest.body.find("w3 subject"));
    CHECK(digest.body.find("rec body line 2") != std::string::npos);
}

TEST_CASE("a digest's id depends only on its items", "[digest]") {
    std::vector<Alert> items = {item("a", "p", "p", "EXITED", 0s),
                                item("b", "p", "p", "EXITED", 1s)};
    Alert first = make_digest(items, "", k_time);
    Alert again = make_digest({items[1], items[0]}, "other", k_time + 1h);
    CHECK(first.id == again.id);
    CHECK(first.id.starts_with("d"));
    CHECK(first.id.size() == 33);
    CHECK(first.id.find_first_not_of("d0123456789abcdef") == std::string::npos);
    CHECK(make_digest({items[0]}, "", k_time).id != first.id);
}

TEST_CASE("a digest shows only items that notify unless none does", "[digest]") {
    Alert quiet = item("quiet", "api", "api", "RUNNING", 0s);
    quiet.kind = AlertKind::recovery;
    quiet.notify = false;
    Alert loud = item("loud", "web", "web", "EXITED", 1s);
    Alert both = make_digest({quiet, loud}, "", k_time);
    CHECK(both.notify);
    CHECK(both.subject == "crashmail: 1 alert from web1.example.com (web crashed)");
    CHECK(both.body.find("quiet") == std::string::npos);
    CHECK(both.items.size() == 2);
    Alert only_quiet = make_digest({quiet}, "", k_time);
    CHECK_FALSE(only_quiet.notify);
    CHECK(only_quiet.subject == "crashmail: 1 alert from web1.example.com (api recovered)");
}

TEST_CASE("a digest subject stays one line of bounded length", "[digest]") {
    std::vector<Alert> items;
    for (int i = 0; i < 100; ++i) {
        items.push_back(item("i" + std::to_string(i), "group\nwith newline",
                             "process_with_a_long_name_" + std::to_string(i), "EXITED",
                             std::chrono::seconds(i)));
    }
    Alert digest = make_digest(items, "pre\r\nfix", k_time);
    CHECK(digest.subject.size() < 260);
    CHECK(digest.subject.find_first_of("\r\n") == std::string::npos);
    CHECK(digest.subject.starts_with("pre  fix: crashmail: 100 alerts from web1.example.com ("));
    CHECK(digest.subject.ends_with(", ...)"));
    Alert lonely = make_digest({item("x", "g", std::string(500, 'p'), "EXITED", 0s)}, "", k_time);
    CHECK(lonely.subject.size() < 260);
}

TEST_CASE("a digest subject holds no line break from a name or a state", "[digest]") {
    // U+2028, U+2029, NEL and CR LF in the process name, the group name, the state, the host
    // and the prefix: each becomes a space, so no reader sees a second line.
    Alert by_name = item("a", "grp\u2029", "web\u2028\r\nworker", "EXITED", 0s);
    Alert by_state = item("b", "db", "db", "FAT\u2028AL\r\nBcc: x", 1s);
    by_state.host = "host\u0085name";
    Alert digest = make_digest({by_name, by_state}, "pre\u2028fix", k_time);
    CHECK(digest.subject == "pre fix: crashmail: 2 alerts from web1.example.com (grp :web   "
                            "worker crashed, db FAT AL  Bcc: x)");
    for (const std::string_view line_break : {"\r", "\n", "\u0085", "\u2028", "\u2029"}) {
        CHECK(digest.subject.find(line_break) == std::string::npos);
    }
    Alert hosted = make_digest({by_state}, "", k_time);
    CHECK(hosted.subject == "crashmail: 1 alert from host name (db FAT AL  Bcc: x)");
}
