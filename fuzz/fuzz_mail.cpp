// Fuzzes the mail renderer with hostile alert fields: names, states, host, subject and body
// made of any bytes (CR, LF, NUL, C1 controls, U+2028, invalid UTF-8, "=?", very long words),
// both as an Alert given directly and as one built by make_alert() from a hostile event.
// Aborts when a header could be injected: every header line must start with one of the
// expected names (each exactly once) or be a folded continuation; no CR or LF from a field
// may appear inside a header line; no header line may be blank or white space only (which
// would end the header block early) or longer than 998 characters.

#include "alert/alert.hpp"
#include "alert/mail_message.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fuzzer/FuzzedDataProvider.h>
#include <string>
#include <string_view>

namespace {

constexpr std::array<std::string_view, 12> k_header_names{
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "X-Crashmail-Process",
    "X-Crashmail-Group",
    "X-Crashmail-State",
    "X-Crashmail-Host",
};

// Aborts, saying which promise broke and on what text, when `condition` is false.
void require(bool condition, const char* promise = "", std::string_view text = {}) {
    if (!condition) {
        std::fprintf(stderr, "fuzz_mail: broken: %s: '%.*s'\n", promise,
                     static_cast<int>(text.size()), text.data());
        std::abort();
    }
}

// Checks the header block of `message`, whose lines end in `eol`.
void check_headers(std::string_view message, std::string_view eol) {
    std::string blank = std::string(eol) + std::string(eol);
    std::size_t end = message.find(blank);
    require(end != std::string_view::npos, "no end of headers", message);
    std::string_view headers = message.substr(0, end + eol.size());
    std::array<int, k_header_names.size()> seen{};
    bool first = true;
    while (!headers.empty()) {
        std::size_t line_end = headers.find(eol);
        require(line_end != std::string_view::npos, "header block not ended by a line break",
                headers);
        std::string_view line = headers.substr(0, line_end);
        headers.remove_prefix(line_end + eol.size());
        // No line break of any kind inside a line: a lone CR or LF is one that came from a
        // field.
        require(line.find_first_of("\r\n") == std::string_view::npos, "CR or LF in a header", line);
        require(line.size() <= 998, "header line over 998 characters", line);
        require(line.find_first_not_of(" \t") != std::string_view::npos,
                "blank or white-space header line", message);
        if (line.front() == ' ' || line.front() == '\t') {
            require(!first, "continuation before the first header", line);
            continue;
        }
        first = false;
        std::size_t colon = line.find(':');
        require(colon != std::string_view::npos, "header line without a name", line);
        bool known = false;
        for (std::size_t i = 0; i < k_header_names.size(); ++i) {
            if (line.substr(0, colon) == k_header_names[i]) {
                ++seen[i];
                known = true;
            }
        }
        require(known, "unexpected (injected) header", line);
    }
    for (std::size_t i = 0; i < seen.size(); ++i) {
        require(seen[i] == 1, "header missing or repeated", k_header_names[i]);
    }
}

void check_alert(const crashmail::Alert& alert) {
    crashmail::MailAddresses addresses{"crashmail@host.example.com",
                                       {"ops@example.com", "dev@example.com"}};
    std::string lf = crashmail::render_mail(alert, addresses, crashmail::LineEnding::lf);
    std::string crlf = crashmail::render_mail(alert, addresses, crashmail::LineEnding::crlf);
    check_headers(lf, "\n");
    check_headers(crlf, "\r\n");
    // The CRLF form is the LF form with every line break widened, and nothing else.
    std::string widened;
    for (char c : lf) {
        if (c == '\n') {
            widened += '\r';
        }
        widened += c;
    }
    require(widened == crlf, "CRLF form differs from the LF form", crlf);
}

std::string any_text(FuzzedDataProvider& input) {
    return input.ConsumeRandomLengthString(2048);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider input(data, size);
    // Between 1970 and 2100: the time comes from the clock, not from input.
    auto time = std::chrono::system_clock::time_point(
        std::chrono::seconds(input.ConsumeIntegralInRange<std::int64_t>(0, 4102444800)));

    crashmail::Alert alert;
    alert.id = any_text(input);
    alert.event_name = any_text(input);
    alert.state = any_text(input);
    alert.process = any_text(input);
    alert.group = any_text(input);
    alert.from_state = any_text(input);
    alert.host = any_text(input);
    alert.subject = any_text(input);
    alert.body = any_text(input);
    alert.time = time;
    if (input.ConsumeBool()) {
        alert.pid = input.ConsumeIntegral<std::int64_t>();
    }
    check_alert(alert);

    // The same hostile text, this time through make_alert() as the listener does it.
    crashmail::EventHeader header;
    header.event_name = alert.event_name;
    header.serial = input.ConsumeIntegral<std::uint64_t>();
    crashmail::ProcessStateChange change;
    change.state = alert.state;
    change.process_name = alert.process;
    change.group_name = alert.group;
    change.from_state = alert.from_state;
    change.pid = alert.pid;
    if (input.ConsumeBool()) {
        change.expected = input.ConsumeBool();
    }
    crashmail::AlertContext context{alert.host, alert.subject};
    check_alert(crashmail::make_alert(header, change, context, time, alert.id));

    // The encoders on their own.
    std::string text = input.ConsumeRemainingBytesAsString();
    std::string safe = crashmail::header_safe(text);
    require(safe.find_first_of("\r\n") == std::string::npos, "header_safe kept CR or LF", safe);
    std::string encoded = crashmail::encode_header_text(safe);
    require(encoded.find('\r') == std::string::npos, "encoded header text with CR", encoded);
    std::string qp = crashmail::quoted_printable(text);
    std::string_view rest = qp;
    while (!rest.empty()) {
        std::size_t newline = rest.find('\n');
        std::string_view line = rest.substr(0, newline);
        require(line.size() <= 76, "quoted-printable line over 76", line);
        for (char c : line) {
            require(c == ' ' || c == '\t' || (c > 0x20 && c < 0x7F),
                    "quoted-printable byte not printable", line);
        }
        if (newline == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(newline + 1);
    }
    return 0;
}
