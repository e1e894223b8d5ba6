// Hostile input, listed: what crashmail does with each kind of bad input on stdin. Every case
// runs through the real Listener (Reader, Writer, alert building) and pins the exact outcome:
// either a clear error, EX_PROTOCOL and no partial answer, or correct handling (every event
// answered OK, alerts with safe header text). Each case runs with several read sizes, so no
// outcome depends on how the bytes arrive.

#include "alert/digest.hpp"
#include "alert/discard_notice.hpp"
#include "alert/mail_message.hpp"
#include "app/listener.hpp"
#include "delivery/alert_record.hpp"
#include "fake_store.hpp"
#include "transport/webhook_payloads.hpp"
#include "util/json_text.hpp"
#include "util/utf8.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <sysexits.h>
#include <vector>

using namespace crashmail;
using namespace std::string_literals;

namespace {

class RecordingSink final : public AlertSink {
public:
    void submit(const Alert& alert) override { alerts.push_back(alert); }
    std::vector<Alert> alerts;
};

// An event as supervisord frames it: `len` counts characters (lenient UTF-8, as the reader).
std::string frame(std::uint64_t serial, std::string_view event_name, std::string_view payload) {
    return fmt::format("ver:3.0 server:supervisor serial:{} pool:crashmail poolserial:{} "
                       "eventname:{} len:{}\n{}",
                       serial, serial, event_name, utf8::count_code_points(payload), payload);
}

// An unexpected exit of `name` (process and group), with `rest` after the payload line.
std::string crash(std::uint64_t serial, std::string_view name, std::string_view rest = "") {
    return frame(serial, "PROCESS_STATE_EXITED",
                 fmt::format("processname:{} groupname:{} from_state:RUNNING expected:0 pid:4242{}",
                             name, name, rest));
}

std::string header_only(std::string_view fields) {
    return fmt::format("ver:3.0 server:supervisor serial:1 pool:crashmail poolserial:1 {}", fields);
}

// What supervisord reads back after `events` answered events: every answer complete, then
// the READY that asked for the input that ended or failed.
std::string answers(int events) {
    std::string out;
    for (int i = 0; i < events; ++i) {
        out += "READY\nRESULT 2\nOK";
    }
    return out + "READY\n";
}

struct Outcome {
    int status;
    std::string answered;
    std::vector<Alert> alerts;
};

Outcome listen(const std::string& input, std::size_t chunk) {
    protocol::StringSource source(input, chunk);
    protocol::StringSink out;
    protocol::Reader reader(source);
    protocol::Writer writer(out);
    RecordingSink sink;
    ListenerSettings settings;
    settings.selection = Selection(true, {});
    settings.context = AlertContext{"host.example.com", ""};
    settings.now = [] { return std::chrono::system_clock::time_point(std::chrono::hours(1)); };
    Listener listener(reader, writer, std::move(settings), sink);
    int status = listener.run();
    return {status, out.data(), sink.alerts};
}

// The reader's error for `input`, or std::nullopt if it reads to a clean end.
std::optional<protocol::ReadError> read_error(const std::string& input) {
    protocol::StringSource source(input);
    protocol::Reader reader(source);
    for (;;) {
        auto next = reader.next();
        if (!next) {
            return next.error();
        }
        if (!next->has_value()) {
            return std::nullopt;
        }
    }
}

// Checks the header block of a rendered message: the twelve expected headers, each once,
// continuation lines only after a header, no CR or LF inside a line, no blank or white-space
// line, nothing over 998 characters. An injected header fails the name check.
void check_mail_headers(const Alert& alert, LineEnding ending) {
    std::string eol = ending == LineEnding::lf ? "\n" : "\r\n";
    std::string message =
        render_mail(alert, {"crashmail@host.example.com", {"ops@example.com"}}, ending);
    std::size_t end = message.find(eol + eol);
    REQUIRE(end != std::string::npos);
    std::string_view headers = std::string_view(message).substr(0, end + eol.size());
    std::vector<std::string> names;
    while (!headers.empty()) {
        std::size_t line_end = headers.find(eol);
        REQUIRE(line_end != std::string_view::npos);
        std::string_view line = headers.substr(0, line_end);
        headers.remove_prefix(line_end + eol.size());
        INFO("header line: " << line);
        CHECK(line.find_first_of("\r\n") == std::string_view::npos);
        CHECK(line.size() <= 998);
        REQUIRE(line.find_first_not_of(" \t") != std::string_view::npos);
        if (line.front() == ' ' || line.front() == '\t') {
            REQUIRE_FALSE(names.empty());
            continue;
        }
        names.emplace_back(line.substr(0, line.find(':')));
    }
    CHECK(names == std::vector<std::string>{
                       "From", "To", "Subject", "Date", "Message-ID", "MIME-Version",
                       "Content-Type", "Content-Transfer-Encoding", "X-Crashmail-Process",
                       "X-Crashmail-Group", "X-Crashmail-State", "X-Crashmail-Host"});
}

struct HostileCase {
    std::string what;
    std::string input;
    int status;
    int answered;                     // events answered OK before the end
    std::vector<std::string> alerted; // process names that raised an alert, in order
    // For EX_PROTOCOL: the reader's error kind and a part of its message.
    std::optional<protocol::ReadError::Kind> error = std::nullopt;
    std::string message = "";
};

std::vector<HostileCase> hostile_cases() {
    using Kind = protocol::ReadError::Kind;
    const std::string mebibyte(1024 * 1024, 'x');
    const std::string long_name(10000, 'n');
    std::string cut_in_character = crash(1, "wörker");
    cut_in_character.resize(cut_in_character.find("ö") + 1); // after the first byte of 'ö'
    std::string payload_cut = crash(1, "crashy");
    payload_cut.resize(payload_cut.size() - 5);
    std::string garbage_100k(100 * 1024, '\x01');
    const std::string control_tail = "x" + std::string(70, '\x01');

    return {
        {"header without len",
         header_only("eventname:TICK_5\nwhen:1"),
         EX_PROTOCOL,
         0,
         {},
         Kind::bad_header,
         "len is missing"},
        {"negative len",
         header_only("eventname:TICK_5 len:-6\nwhen:1"),
         EX_PROTOCOL,
         0,
         {},
         Kind::bad_header,
         "len is not a non-negative number: '-6'"},
        {"len beyond 64 bits",
         header_only("eventname:TICK_5 len:99999999999999999999999\n"),
         EX_PROTOCOL,
         0,
         {},
         Kind::bad_header,
         "len is not a non-negative number"},
        {"len over the limit of 16 Mi characters",
         header_only("eventname:TICK_5 len:16777217\nwhen:1"),
         EX_PROTOCOL,
         0,
         {},
         Kind::too_large,
         "payload of 16777217 characters exceeds the limit of 16777216"},
        {"huge len within the limit, input ends first",
         header_only("eventname:TICK_5 len:16777216\nwhen:1"),
         EX_PROTOCOL,
         0,
         {},
         Kind::truncated,
         "input ended after 6 of 16777216 payload characters of event 1"},
        {"header line ending in CRLF",
         header_only("eventname:TICK_5 len:6\r\nwhen:1"),
         EX_PROTOCOL,
         0,
         {},
         Kind::bad_header,
         "len is not a non-negative number: '6\\x0d'"},
        {"EOF inside a header line",
         "ver:3.0 server:supervisor serial:1",
         EX_PROTOCOL,
         0,
         {},
         Kind::truncated,
         "input ended inside a header line"},
        {"EOF mid-payload",
         payload_cut,
         EX_PROTOCOL,
         0,
         {},
         Kind::truncated,
         "input ended after 69 of 74 payload characters of event 1 (PROCESS_STATE_EXITED)"},
        {"EOF inside a multi-byte character",
         cut_in_character,
         EX_PROTOCOL,
         0,
         {},
         Kind::truncated,
         "input ended after 13 of "},
        {"binary garbage line",
         "\x00\xff\xfe\x01garbage\x7f\n"s,
         EX_PROTOCOL,
         0,
         {},
         Kind::bad_header,
         "'\\x00\xff\xfe\\x01garbage\\x7f'"},
        {"an empty line", "\n", EX_PROTOCOL, 0, {}, Kind::bad_header, "eventname is missing"},
        {"100 KiB of binary garbage without a newline",
         garbage_100k,
         EX_PROTOCOL,
         0,
         {},
         Kind::too_large,
         "header line longer than 65536 bytes"},
        {"garbage after a good event",
         crash(1, "crashy") + "\x00garbage\n"s,
         EX_PROTOCOL,
         1,
         {"crashy"},
         Kind::bad_header,
         "unexpected text before the first field"},
        {"a 1 MiB log payload, then a crash",
         frame(1, "PROCESS_LOG_STDERR",
               "processname:noisy groupname:noisy pid:1 channel:stderr\n" + mebibyte) +
             crash(2, "crashy"),
         EX_OK,
         2,
         {"crashy"}},
        {"a 1 MiB crash payload", crash(1, "big", "\n" + mebibyte), EX_OK, 1, {"big"}},
        {"NUL bytes in the process name", crash(1, "cr\0sh"s), EX_OK, 1, {"cr\0sh"s}},
        {"NUL byte in the header's server field",
         "ver:3.0 server:sup\0ervisor serial:1 pool:p poolserial:1 eventname:TICK_5 len:6\nwhen:1"s,
         EX_OK,
         1,
         {}},
        {"NUL byte after len",
         header_only("eventname:TICK_5 len:6\0\nwhen:1"s),
         EX_PROTOCOL,
         0,
         {},
         Kind::bad_header,
         "len is not a non-negative number: '6\\x00'"},
        {"CR and a header in the process name",
         crash(1, "evil\rBcc: victim@example.com"),
         EX_OK,
         1,
         {"evil\rBcc: victim@example.com"}},
        {"LF and a header after the payload line",
         crash(1, "evil", "\nBcc: victim@example.com"),
         EX_OK,
         1,
         {"evil"}},
        {"LF inside the process name: the payload line lacks groupname",
         frame(1, "PROCESS_STATE_EXITED",
               "processname:evil\nBcc: x groupname:evil from_state:RUNNING expected:0 pid:1"),
         EX_OK,
         1,
         {}},
        {"NEL, U+2028 and U+2029 in the process name",
         crash(1, "a\u0085b\u2028c\u2029d"),
         EX_OK,
         1,
         {"a\u0085b\u2028c\u2029d"}},
        {"invalid UTF-8 in the process name",
         crash(1, "\xff\xfe\xc3(\x80"),
         EX_OK,
         1,
         {"\xff\xfe\xc3(\x80"}},
        {"invalid UTF-8: a lead byte at the payload's end takes bytes of the next header",
         frame(1, "TICK_5", "when:1\xe2") + frame(2, "TICK_5", "when:2"),
         EX_PROTOCOL,
         1,
         {},
         Kind::bad_header,
         "'r:3.0 server:supervisor serial:2"},
        {"a 10,000-character process name", crash(1, long_name), EX_OK, 1, {long_name}},
        {"control bytes ending a process name", crash(1, control_tail), EX_OK, 1, {control_tail}},
    };
}

} // namespace

TEST_CASE("hostile input: each case has its exact outcome, whatever the read size",
          "[hostile][listener]") {
    for (const HostileCase& test : hostile_cases()) {
        for (std::size_t chunk : {std::size_t{4096}, std::size_t{3}, std::size_t{1}}) {
            if (chunk == 1 && test.input.size() > 200 * 1024) {
                continue; // a byte at a time is covered by the small cases
            }
            DYNAMIC_SECTION(test.what << " (reads of " << chunk << " bytes)") {
                Outcome outcome = listen(test.input, chunk);
                CHECK(outcome.status == test.status);
                // Every answer complete and nothing after the last READY: no partial RESULT.
                CHECK(outcome.answered == answers(test.answered));
                std::vector<std::string> alerted;
                for (const Alert& alert : outcome.alerts) {
                    alerted.push_back(alert.process); // kept as supervisord sent it
                    check_mail_headers(alert, LineEnding::lf);
                    check_mail_headers(alert, LineEnding::crlf);
                }
                CHECK(alerted == test.alerted);

                auto error = read_error(test.input);
                if (test.error) {
                    REQUIRE(error);
                    CHECK(error->kind == *test.error);
                    CHECK_THAT(error->message, Catch::Contains(test.message));
                } else {
                    CHECK_FALSE(error);
                }
            }
        }
    }
}

TEST_CASE("hostile input: names with CR/LF never become mail headers", "[hostile][mail]") {
    // A LF ends the payload line before groupname: answered OK, no alert, nothing sent.
    auto outcome = listen(crash(1, "evil\r\nBcc: victim@example.com"), 4096);
    CHECK(outcome.status == EX_OK);
    CHECK(outcome.answered == answers(1));
    CHECK(outcome.alerts.empty());
    outcome = listen(crash(1, "evil\rBcc: victim@example.com"), 4096);
    REQUIRE(outcome.alerts.size() == 1);
    const Alert& alert = outcome.alerts[0];
    CHECK(alert.process == "evil\rBcc: victim@example.com");
    CHECK(alert.subject.find('\r') == std::string::npos);
    std::string message = render_mail(alert, {"a@example.com", {"b@example.com"}}, LineEnding::lf);
    CHECK_THAT(message, Catch::Contains("X-Crashmail-Process: evil Bcc: victim@example.com\n"));
    CHECK_THAT(message, !Catch::Contains("\nBcc:"));
}

TEST_CASE("hostile input: a 10,000-character name is folded or encoded, never cut into headers",
          "[hostile][mail]") {
    auto outcome = listen(crash(1, std::string(10000, 'n')), 4096);
    REQUIRE(outcome.alerts.size() == 1);
    std::string message =
        render_mail(outcome.alerts[0], {"a@example.com", {"b@example.com"}}, LineEnding::lf);
    // No space to fold at: the value is sent as RFC 2047 words on continuation lines.
    CHECK_THAT(message, Catch::Contains("X-Crashmail-Process: =?UTF-8?B?"));
}

TEST_CASE("hostile input: trailing white space never folds into a blank header line",
          "[hostile][mail]") {
    // Found by fuzz/fuzz_mail: control bytes turned into spaces at the end of a value made
    // fold() break before them, leaving a continuation line of spaces only.
    Alert alert;
    alert.id = "id";
    alert.host = "host.example.com";
    alert.state = "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01=\x01\x01\x01"
                  "B?QQ==" +
                  std::string(37, '\x01');
    check_mail_headers(alert, LineEnding::lf);
    check_mail_headers(alert, LineEnding::crlf);
    std::string message = render_mail(alert, {"a@example.com", {"b@example.com"}}, LineEnding::lf);
    CHECK_THAT(message, Catch::Contains("X-Crashmail-State:             =   B?QQ==\n"));
}

namespace {

// True when `text` is valid UTF-8 (nlohmann::json's strict parser accepts it only then).
bool valid_json_text(const std::string& text) {
    return !nlohmann::json::parse(text, nullptr, false).is_discarded();
}

} // namespace

TEST_CASE("hostile input: invalid UTF-8 names through flood control, recovery, digest and "
          "shutdown never abort and never write invalid UTF-8",
          "[hostile][crash_loop]") {
    // supervisord on Python 2 sends raw bytes. The second crash is counted (flood control
    // saves its story), RUNNING starts the recovery clock (saved), the recovery notice is sent
    // by the clock (saved), the stop saves once more; every alert then goes into a digest, the
    // spool's record and a webhook body.
    const std::string name = "\xff\xfe\xc3(\x80 w\xf6rker";
    testing::MemoryState state;
    auto now = std::chrono::system_clock::time_point(std::chrono::hours(1));
    std::string input = crash(1, name) + crash(2, name) + crash(3, name);
    input +=
        frame(4, "PROCESS_STATE_RUNNING",
              fmt::format("processname:{} groupname:{} from_state:STARTING pid:4243", name, name));
    protocol::StringSource source(input, 7);
    protocol::StringSink out;
    protocol::Reader reader(source);
    protocol::Writer writer(out);
    RecordingSink sink;
    ListenerSettings settings;
    settings.selection = Selection(true, {});
    settings.context = AlertContext{"host.example.com", "\xff prefix"};
    settings.now = [&] { return now; };
    settings.loops.rate_limit = RateLimit{1, std::chrono::seconds(600)};
    settings.loops.recovery_notices = true;
    settings.loops.recovery_after = std::chrono::seconds(60);
    settings.state_store = &state;
    Listener listener(reader, writer, std::move(settings), sink);
    int status = EX_SOFTWARE;
    REQUIRE_NOTHROW(status = listener.run());
    CHECK(status == EX_OK);
    CHECK(out.data() == answers(4));
    CHECK(state.saves >= 3); // alert, count, RUNNING
    now += std::chrono::seconds(61);
    REQUIRE_NOTHROW(listener.monitor().tick());
    REQUIRE_NOTHROW(listener.monitor().stop_clock());
    for (const auto& [document, text] : state.documents) {
        INFO(document);
        CHECK(valid_json_text(text));
    }
    REQUIRE(sink.alerts.size() == 2); // the first crash, then the recovery with the count
    CHECK(sink.alerts[1].kind == AlertKind::recovery);
    CHECK(sink.alerts[1].suppressed == 2);

    Alert digest = make_digest(sink.alerts, "\xfe", now);
    AlertRecord record;
    record.alert = digest;
    std::string stored;
    REQUIRE_NOTHROW(stored = record_to_json(record));
    CHECK(valid_json_text(stored));
    std::string body;
    REQUIRE_NOTHROW(body = serialize_payload(webhook_document(digest)));
    CHECK(valid_json_text(body));
    REQUIRE_NOTHROW(body = serialize_payload(alertmanager_payload(digest)));
    CHECK(valid_json_text(body));

    // A notice about discarded events that names such a process.
    DiscardNotices notices(std::chrono::seconds(600));
    DiscardReport report;
    report.discarded = 3;
    report.recovered = std::map<std::string, std::uint64_t>{{name, 2}};
    report.problem = "\xff";
    auto notice = notices.add(report, now);
    REQUIRE(notice);
    Alert dropped = discard_alert(*notice, AlertContext{"host", ""}, name, now, "n1");
    CHECK(dropped.subject.find('\n') == std::string::npos);
    REQUIRE_NOTHROW(body = serialize_payload(webhook_document(dropped)));
    CHECK(valid_json_text(body));
    REQUIRE_NOTHROW(body = json_text(notices.to_json()));
    CHECK(valid_json_text(body));
}
