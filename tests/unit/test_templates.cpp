#include "alert/templates.hpp"
#include "util/time.hpp"

#include <catch2/catch.hpp>
#include <set>

using namespace crashmail;

namespace {

Alert crash() {
    Alert alert;
    alert.id = "s5.0123456789abcdef";
    alert.event_name = "PROCESS_STATE_EXITED";
    alert.state = "EXITED";
    alert.process = "worker_01";
    alert.group = "grp";
    alert.from_state = "RUNNING";
    alert.pid = 4242;
    alert.expected = false;
    alert.serial = 5;
    alert.host = "web1.example.com";
    alert.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795647247011));
    alert.subject = "ops: grp:worker_01 crashed at Wed Nov 25 22:54:07 2026";
    alert.body = "Process worker_01 in group grp exited unexpectedly (pid 4242) from state "
                 "RUNNING\n\nHost: web1.example.com\nTime: x\nEvent: PROCESS_STATE_EXITED "
                 "(serial 5)";
    return alert;
}

std::string error_of(std::string_view text) {
    auto parsed = AlertTemplate::parse(text);
    REQUIRE_FALSE(parsed);
    return parsed.error();
}

std::string render(std::string_view text, const Alert& alert) {
    auto parsed = AlertTemplate::parse(text);
    REQUIRE(parsed);
    return parsed->render(template_fields(alert, "ops"));
}

} // namespace

TEST_CASE("every field has its value", "[templates]") {
    Alert alert = crash();
    alert.exit_status = "exit status 3";
    alert.spawn_error = "spawn trouble";
    alert.log_tail = "fatal: db unreachable\nbye";
    alert.log_source = "stderr";
    alert.details_note = "a note";
    CHECK(render("{process}", alert) == "worker_01");
    CHECK(render("{group}", alert) == "grp");
    CHECK(render("{name}", alert) == "grp:worker_01");
    CHECK(render("{host}", alert) == "web1.example.com");
    CHECK(render("{state}", alert) == "EXITED");
    CHECK(render("{from_state}", alert) == "RUNNING");
    CHECK(render("{pid}", alert) == "4242");
    CHECK(render("{exit_status}", alert) == "exit status 3");
    CHECK(render("{spawn_error}", alert) == "spawn trouble");
    CHECK(render("{log_tail}", alert) == "fatal: db unreachable\nbye");
    CHECK(render("{log_source}", alert) == "stderr");
    CHECK(render("{note}", alert) == "a note");
    CHECK(render("{event}", alert) == "PROCESS_STATE_EXITED");
    CHECK(render("{serial}", alert) == "5");
    CHECK(render("{id}", alert) == "s5.0123456789abcdef");
    CHECK(render("{time}", alert) == timefmt::asctime_local_zone(alert.time));
    CHECK(render("{time_utc}", alert) == "2026-11-25T22:54:07.011Z");
    CHECK(render("{prefix}", alert) == "ops");
    CHECK(render("{default_subject}", alert) == alert.subject);
    CHECK(render("{default_body}", alert) == default_body(alert));

    // Every documented field is tested above, and every field has a value.
    auto fields = template_fields(alert, "ops");
    std::set<std::string> names;
    for (const auto& [name, value] : fields) {
        names.insert(name);
    }
    CHECK(names.size() == template_field_names().size());
    for (const char* name : template_field_names()) {
        CHECK(names.contains(name));
    }
}

TEST_CASE("unknown values read 'unknown' where a blank would mislead", "[templates]") {
    Alert alert = crash();
    alert.pid.reset();
    CHECK(render("pid {pid}, {exit_status}, [{log_tail}]", alert) == "pid unknown, unknown, []");
    CHECK(render("{name}", [] {
              Alert solo = crash();
              solo.group = "worker_01";
              return solo;
          }()) == "worker_01");
}

TEST_CASE("braces, escapes and format specs", "[templates]") {
    Alert alert = crash();
    CHECK(render("{{literal}} {process}", alert) == "{literal} worker_01");
    CHECK(render("}}{{", alert) == "}{");
    CHECK(render("a\\nb\\tc\\\\d", alert) == "a\nb\tc\\d");
    CHECK(render("[{pid:>6}]", alert) == "[  4242]");
    CHECK(render("{process:.3}", alert) == "wor");
    CHECK(render("no fields at all", alert) == "no fields at all");
    CHECK(render("", alert).empty());
}

TEST_CASE("mistakes are reported with their 1-based position", "[templates]") {
    CHECK(error_of("Process {procss} died") == "unknown field {procss} at position 9");
    CHECK(error_of("{process} ünïcode {nope}") == "unknown field {nope} at position 19");
    CHECK(error_of("abc {process") == "unclosed { at position 5 (write {{ for a literal brace)");
    CHECK(error_of("a {b {process}") == "unclosed { at position 3 (write {{ for a literal brace)");
    CHECK(error_of("ab}c") == "single } at position 3 (write }} for a literal brace)");
    CHECK(error_of("x {}") == "empty field {} at position 3 (fields have names, e.g. {process})");
    CHECK(error_of("{0}") == "unknown field {0} at position 1");
    CHECK(error_of("{:>3}") ==
          "empty field {:>3} at position 1 (fields have names, e.g. {process})");
    CHECK(error_of("ab\\q") == "unknown escape \\q at position 3 (write \\\\ for a backslash)");
    CHECK(error_of("ab\\") == "lone \\ at position 3 (write \\\\ for a backslash)");
    CHECK_THAT(error_of("{pid:d}"),
               Catch::StartsWith("bad format spec in {pid:d} at position 1: "));
}

TEST_CASE("errors in --subject and --body name their option", "[templates]") {
    auto bad_body = parse_templates("", "{procss} died at {time}", "");
    REQUIRE_FALSE(bad_body);
    CHECK(bad_body.error() == "--body: unknown field {procss} at position 1");
    auto bad_subject = parse_templates("oops }", "", "");
    REQUIRE_FALSE(bad_subject);
    CHECK_THAT(bad_subject.error(), Catch::StartsWith("--subject: single } at position 6"));
    auto defaults = parse_templates("", "", "ops");
    REQUIRE(defaults);
    CHECK_FALSE(defaults->subject);
    CHECK_FALSE(defaults->body);
    CHECK(defaults->prefix == "ops");
}

TEST_CASE("the default body adds the details to make_alert's text", "[templates]") {
    Alert alert = crash();
    CHECK(default_body(alert) == alert.body); // nothing known: unchanged

    alert.exit_status = "exit status 3";
    alert.log_tail = "fatal: db unreachable\nretrying… never";
    alert.log_source = "stderr";
    CHECK(default_body(alert) ==
          "Process worker_01 in group grp exited unexpectedly (pid 4242) from state RUNNING\n"
          "\n"
          "Exit: exit status 3\n"
          "Host: web1.example.com\n"
          "Time: x\n"
          "Event: PROCESS_STATE_EXITED (serial 5)\n"
          "\n"
          "Last 2 lines of stderr:\n"
          "fatal: db unreachable\n"
          "retrying… never\n");

    Alert fatal = crash();
    fatal.spawn_error = "can't find command '/nonexistent/binary'";
    fatal.details_note = "log tail unavailable: supervisord (unix:///s): HTTP 401\nUnauthorized";
    fatal.log_tail = "one";
    fatal.log_source = "stdout";
    std::string body = default_body(fatal);
    CHECK_THAT(body, Catch::Contains("\n\nSpawn error: can't find command '/nonexistent/binary'\n"
                                     "Note: log tail unavailable: supervisord (unix:///s): HTTP "
                                     "401 Unauthorized\nHost: "));
    CHECK_THAT(body, Catch::EndsWith("\n\nLast line of stdout:\none\n"));
}

TEST_CASE("render_alert_text applies the templates once the details are in", "[templates]") {
    Alert alert = crash();
    alert.exit_status = "killed by signal 11 (SIGSEGV)";
    alert.log_tail = "boom";
    alert.log_source = "stderr";

    Alert defaults = alert;
    render_alert_text(defaults, *parse_templates("", "", "ops"));
    CHECK(defaults.subject == alert.subject); // superlance's subject, untouched
    CHECK(defaults.body == default_body(alert));

    Alert custom = alert;
    render_alert_text(custom,
                      *parse_templates("[{prefix}] {name}: {exit_status}\\n{log_tail}",
                                       "{default_body}\\nRunbook: https://x/{group}", "ops"));
    // A subject is one line whatever the template and the values hold.
    CHECK(custom.subject == "[ops] grp:worker_01: killed by signal 11 (SIGSEGV) boom");
    CHECK(custom.body == default_body(alert) + "\nRunbook: https://x/grp");
}
