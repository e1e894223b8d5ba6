#include "alert/alert.hpp"
#include "alert/mail_message.hpp"
#include "app/channels.hpp"
#include "util/time.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <openssl/evp.h>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono;
using crashmail::Alert;
using crashmail::encode_header_text;
using crashmail::header_safe;
using crashmail::LineEnding;
using crashmail::MailAddresses;
using crashmail::quoted_printable;
using crashmail::render_mail;

namespace {

const system_clock::time_point k_now =
    sys_days{year{2026} / November / 25} + hours{22} + minutes{3} + seconds{10};

const MailAddresses k_addresses{"crashmail@host.example.com",
                                {"ops@example.com", "dev@example.com"}};

Alert sample_alert() {
    crashmail::EventHeader header;
    header.event_name = "PROCESS_STATE_EXITED";
    header.serial = 20;
    crashmail::ProcessStateChange change;
    change.state = "EXITED";
    change.process_name = "crasher";
    change.group_name = "crasher";
    change.from_state = "RUNNING";
    change.pid = 7008;
    change.expected = false;
    return crashmail::make_alert(header, change, {"host.example.com", ""}, k_now,
                                 "20261125T220310.000.20.0123456789abcdef");
}

std::vector<std::string> split(const std::string& text, const std::string& separator) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (true) {
        std::size_t at = text.find(separator, start);
        out.push_back(text.substr(start, at - start));
        if (at == std::string::npos) {
            return out;
        }
        start = at + separator.size();
    }
}

struct Message {
    std::vector<std::pair<std::string, std::string>> headers; // unfolded
    std::vector<std::string> header_lines;                    // as sent, folded
    std::string body;                                         // with '\n' line endings

    const std::string& header(const std::string& name) const {
        for (const auto& [key, value] : headers) {
            if (key == name) {
                return value;
            }
        }
        FAIL("no header " << name);
        static std::string none;
        return none;
    }
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& header : headers) {
            out.push_back(header.first);
        }
        return out;
    }
};

// Parses a rendered message the way a mail reader would: header lines up to the first
// empty line, continuation lines (starting with a space or tab) unfolded.
Message parse(const std::string& text, LineEnding ending) {
    const std::string eol = ending == LineEnding::crlf ? "\r\n" : "\n";
    Message message;
    std::vector<std::string> lines = split(text, eol);
    REQUIRE(lines.size() >= 2);
    REQUIRE(lines.back().empty()); // the message ends with a line ending
    lines.pop_back();
    std::size_t i = 0;
    for (; i < lines.size() && !lines[i].empty(); ++i) {
        const std::string& line = lines[i];
        message.header_lines.push_back(line);
        if (line[0] == ' ' || line[0] == '\t') {
            REQUIRE_FALSE(message.headers.empty());
            message.headers.back().second += line; // unfold: only the line break goes
            continue;
        }
        std::size_t colon = line.find(": ");
        REQUIRE(colon != std::string::npos);
        message.headers.emplace_back(line.substr(0, colon), line.substr(colon + 2));
    }
    REQUIRE(i < lines.size()); // the blank line
    for (++i; i < lines.size(); ++i) {
        message.body += lines[i] + "\n";
    }
    return message;
}

std::string base64_decode(const std::string& text) {
    std::string out(text.size() / 4 * 3 + 3, '\0');
    int n = ::EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                              reinterpret_cast<const unsigned char*>(text.data()),
                              static_cast<int>(text.size()));
    REQUIRE(n >= 0);
    std::size_t size = static_cast<std::size_t>(n);
    // EVP_DecodeBlock counts the bytes the '=' padding stands for; drop them.
    for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it) {
        --size;
    }
    out.resize(size);
    return out;
}

// Decodes an unfolded header value made of "=?UTF-8?B?...?=" words separated by spaces.
// Returns the decoded words one by one.
std::vector<std::string> decode_words(const std::string& value) {
    std::vector<std::string> words;
    for (const std::string& word : split(value, " ")) {
        if (word.empty()) {
            continue;
        }
        INFO("word: " << word);
        REQUIRE(word.size() <= 75);
        REQUIRE(word.rfind("=?UTF-8?B?", 0) == 0);
        REQUIRE(word.size() >= 12);
        REQUIRE(word.substr(word.size() - 2) == "?=");
        words.push_back(base64_decode(word.substr(10, word.size() - 12)));
    }
    return words;
}

std::string join(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& part : parts) {
        out += part;
    }
    return out;
}

bool is_complete_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        auto lead = static_cast<unsigned char>(text[i]);
        std::size_t length = lead < 0x80             ? 1
                             : (lead & 0xE0) == 0xC0 ? 2
                             : (lead & 0xF0) == 0xE0 ? 3
                             : (lead & 0xF8) == 0xF0 ? 4
                                                     : 0;
        if (length == 0 || i + length > text.size()) {
            return false;
        }
        for (std::size_t k = 1; k < length; ++k) {
            if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) {
                return false;
            }
        }
        i += length;
    }
    return true;
}

std::string qp_decode(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '=') {
            out += text[i];
        } else if (i + 1 < text.size() && text[i + 1] == '\n') {
            ++i; // soft line break
        } else {
            REQUIRE(i + 2 < text.size());
            out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
            i += 2;
        }
    }
    return out;
}

bool has_bare_cr_or_lf(const std::string& text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) {
            return true;
        }
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) {
            return true;
        }
    }
    return false;
}

const std::vector<std::string> k_header_order = {"From",
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
                                                 "X-Crashmail-Host"};

} // namespace

TEST_CASE("a mail has its headers in order and superlance's text", "[mail]") {
    Alert alert = sample_alert();
    Message message = parse(render_mail(alert, k_addresses, LineEnding::lf), LineEnding::lf);
    CHECK(message.names() == k_header_order);
    CHECK(message.header("From") == "crashmail@host.example.com");
    CHECK(message.header("To") == "ops@example.com, dev@example.com");
    CHECK(message.header("Subject") ==
          "crasher crashed at " + crashmail::timefmt::asctime_local_zone(k_now));
    CHECK(message.header("Date") == crashmail::timefmt::rfc5322_local(k_now));
    CHECK(message.header("Message-ID") ==
          "<20261125T220310.000.20.0123456789abcdef@host.example.com>");
    CHECK(message.header("MIME-Version") == "1.0");
    CHECK(message.header("Content-Type") == "text/plain; charset=utf-8");
    CHECK(message.header("Content-Transfer-Encoding") == "7bit");
    CHECK(message.header("X-Crashmail-Process") == "crasher");
    CHECK(message.header("X-Crashmail-Group") == "crasher");
    CHECK(message.header("X-Crashmail-State") == "EXITED");
    CHECK(message.header("X-Crashmail-Host") == "host.example.com");
    CHECK(message.body == alert.body + "\n");
}

TEST_CASE("with CRLF every line of the message ends in CRLF, with LF none has a CR", "[mail]") {
    Alert alert = sample_alert();
    alert.subject = std::string(200, 'x') + " w\xc3\xb6rker " + std::string(100, 'y');
    alert.body = "line one\r\nline two\nstray\rcarriage\n\nw\xc3\xb6rker " + std::string(300, 'z');

    std::string crlf = render_mail(alert, k_addresses, LineEnding::crlf);
    CHECK_FALSE(has_bare_cr_or_lf(crlf));
    CHECK_THAT(crlf, Catch::EndsWith("\r\n"));
    CHECK(crlf.find("\r\n\r\n") != std::string::npos);
    Message parsed = parse(crlf, LineEnding::crlf);
    CHECK(parsed.names() == k_header_order);

    std::string lf = render_mail(alert, k_addresses, LineEnding::lf);
    CHECK(lf.find('\r') == std::string::npos);
    // The same message apart from the line endings.
    std::string converted;
    for (char c : lf) {
        if (c == '\n') {
            converted += '\r';
        }
        converted += c;
    }
    CHECK(converted == crlf);
}

TEST_CASE("CR/LF in process, group or prefix cannot create a header", "[mail]") {
    crashmail::EventHeader header;
    header.event_name = "PROCESS_STATE_EXITED";
    header.serial = 1;
    crashmail::ProcessStateChange change;
    change.state = "EXITED\r\nX-State-Injected: 1";
    change.process_name = "evil\r\nBcc: victim@example.com";
    change.group_name = "grp\nX-Group-Injected: 1\r";
    change.from_state = "RUNNING\n\nbody";
    change.expected = false;
    Alert alert =
        crashmail::make_alert(header, change, {"host\r\nX-Host-Injected: 1", "ops\r\nX-Prefix: 1"},
                              k_now, "id\r\nX-Id: 1");
    for (LineEnding ending : {LineEnding::lf, LineEnding::crlf}) {
        std::string text = render_mail(alert, {"from@x\r\nX-From: 1", {"to@x\nX-To: 1"}}, ending);
        Message message = parse(text, ending);
        CHECK(message.names() == k_header_order);
        for (const std::string& line : split(text, "\n")) {
            for (const char* injected :
                 {"Bcc", "X-State-Injected", "X-Group-Injected", "X-Host-Injected", "X-Prefix",
                  "X-From", "X-To", "X-Id", "body"}) {
                CHECK_FALSE(line.starts_with(injected));
            }
        }
        CHECK(message.header("X-Crashmail-Process") == "evil  Bcc: victim@example.com");
        CHECK(message.header("To") == "to@x X-To: 1");
    }

    // A hand-made alert that never went through make_alert is made safe too.
    Alert raw = sample_alert();
    raw.subject = "a\r\nBcc: x@y\rb\nc";
    raw.host = "h\nX-Raw: 1";
    Message message = parse(render_mail(raw, k_addresses, LineEnding::crlf), LineEnding::crlf);
    CHECK(message.names() == k_header_order);
    CHECK(message.header("Subject") == "a  Bcc: x@y b c");
}

TEST_CASE("header_safe replaces control characters by spaces", "[mail]") {
    CHECK(header_safe("a\r\nb\tc\x01\x7f") == "a  b c  ");
    CHECK(header_safe("nel\xc2\x85x ls\xe2\x80\xa8y") == "nel x ls y");
    CHECK(header_safe("w\xc3\xb6rker \xe2\x82\xac") == "w\xc3\xb6rker \xe2\x82\xac");
}

TEST_CASE("a non-ASCII subject is RFC 2047 encoded and decodes back", "[mail]") {
    Alert alert = sample_alert();
    alert.subject = "prod: w\xc3\xb6rker crashed at Wed Nov 25 22:03:10 2026";
    Message message = parse(render_mail(alert, k_addresses, LineEnding::crlf), LineEnding::crlf);
    const std::string& subject = message.header("Subject");
    CHECK(subject.rfind("=?UTF-8?B?", 0) == 0);
    CHECK(join(decode_words(subject)) == alert.subject);
    for (const std::string& line : message.header_lines) {
        CHECK(line.size() <= 78);
    }
}

TEST_CASE("long non-ASCII text is split into words that never cut a character", "[mail]") {
    std::string text;
    for (int i = 0; i < 60; ++i) {
        text += "\xc3\xa9\xe2\x82\xac\xf0\x9f\x92\xa5x"; // é € 💥 x: 2, 3, 4 and 1 bytes
    }
    std::string encoded = encode_header_text(text);
    std::vector<std::string> folded = split(encoded, "\n ");
    CHECK(folded.size() > 5);
    for (const std::string& word : folded) {
        CHECK(word.size() <= 75);
        CHECK(word.find('\n') == std::string::npos);
    }
    std::string unfolded;
    for (const std::string& line : split(encoded, "\n")) {
        unfolded += line;
    }
    std::vector<std::string> words = decode_words(unfolded);
    for (const std::string& word : words) {
        CHECK(is_complete_utf8(word));
    }
    CHECK(join(words) == text);

    // The same through a header with a long name: lines stay within 78 characters.
    Alert alert = sample_alert();
    alert.process = text;
    Message message = parse(render_mail(alert, k_addresses, LineEnding::lf), LineEnding::lf);
    for (const std::string& line : message.header_lines) {
        CHECK(line.size() <= 78);
    }
    CHECK(join(decode_words(message.header("X-Crashmail-Process"))) == text);
}

TEST_CASE("plain ASCII header text is kept, encoded-word look-alikes are encoded", "[mail]") {
    CHECK(encode_header_text("crasher crashed") == "crasher crashed");
    CHECK(encode_header_text("") == "");
    std::string fake = "=?UTF-8?B?QmNjOiB4?=";
    std::string encoded = encode_header_text(fake);
    CHECK(encoded != fake);
    CHECK(join(decode_words(encoded)) == fake);
}

TEST_CASE("a non-ASCII host header is encoded", "[mail]") {
    Alert alert = sample_alert();
    alert.host = "h\xc3\xb4te.example.com";
    Message message = parse(render_mail(alert, k_addresses, LineEnding::lf), LineEnding::lf);
    CHECK(join(decode_words(message.header("X-Crashmail-Host"))) == alert.host);
}

TEST_CASE("a long subject is folded into lines of at most 78 characters", "[mail]") {
    Alert alert = sample_alert();
    alert.subject = "ops-team-production: ";
    for (int i = 0; i < 30; ++i) {
        alert.subject += "word" + std::to_string(i) + " ";
    }
    alert.subject += "end";
    std::string text = render_mail(alert, k_addresses, LineEnding::crlf);
    Message message = parse(text, LineEnding::crlf);
    std::size_t subject_lines = 0;
    for (const std::string& line : message.header_lines) {
        CHECK(line.size() <= 78);
        if (line.starts_with("Subject:") || (subject_lines > 0 && line.starts_with(" "))) {
            ++subject_lines;
        } else if (subject_lines > 0) {
            break;
        }
    }
    CHECK(subject_lines > 1);
    CHECK(message.header("Subject") == alert.subject); // unfolding restores it exactly
}

TEST_CASE("many recipients are folded between addresses", "[mail]") {
    MailAddresses addresses{"crashmail@example.com", {}};
    for (int i = 0; i < 12; ++i) {
        addresses.to.push_back("operator" + std::to_string(i) + "@example.com");
    }
    Message message = parse(render_mail(sample_alert(), addresses, LineEnding::lf), LineEnding::lf);
    for (const std::string& line : message.header_lines) {
        CHECK(line.size() <= 78);
    }
    std::vector<std::string> to = split(message.header("To"), ", ");
    CHECK(to == addresses.to);
}

TEST_CASE("a word too long to fold is not cut and stays under 998 characters", "[mail]") {
    Alert alert = sample_alert();
    alert.subject = "crashed: " + std::string(120, 'p');
    Message message = parse(render_mail(alert, k_addresses, LineEnding::lf), LineEnding::lf);
    CHECK(message.header("Subject") == alert.subject);

    alert.subject = std::string(1500, 'q');
    message = parse(render_mail(alert, k_addresses, LineEnding::lf), LineEnding::lf);
    for (const std::string& line : message.header_lines) {
        CHECK(line.size() <= 78);
    }
    CHECK(join(decode_words(message.header("Subject"))) == alert.subject);
}

TEST_CASE("quoted-printable round-trips and keeps lines within 76 characters", "[mail]") {
    const std::vector<std::string> samples = {
        "plain text",
        "a=b and =3D and trailing space \nnext line\t\nend",
        "w\xc3\xb6rker d\xc3\xa9tail \xe2\x82\xac \xf0\x9f\x92\xa5",
        std::string(300, 'a'),
        std::string(200, '=') + "\n" + std::string(100, ' ') + "x",
        std::string(75, 'a') + "\xc3\xa9" + std::string(80, 'b') + " ",
        "stray\rcarriage and \x01 control",
        "",
        "ends with newline\n",
    };
    for (const std::string& sample : samples) {
        INFO("sample: " << sample);
        std::string encoded = quoted_printable(sample);
        for (const std::string& line : split(encoded, "\n")) {
            CHECK(line.size() <= 76);
            if (!line.empty()) {
                CHECK(line.back() != ' ');
                CHECK(line.back() != '\t');
            }
            for (char c : line) {
                CHECK(((c >= 0x20 && c < 0x7F) || c == '\t'));
            }
        }
        CHECK(qp_decode(encoded) == sample);
    }
    CHECK(quoted_printable("a=b") == "a=3Db");
    CHECK(quoted_printable("caf\xc3\xa9") == "caf=C3=A9");
    CHECK(quoted_printable("end \nnext") == "end=20\nnext");
}

TEST_CASE("an ASCII body is sent 7bit, anything else quoted-printable", "[mail]") {
    Alert alert = sample_alert();
    auto encoding_of = [&](const std::string& body) {
        alert.body = body;
        Message message =
            parse(render_mail(alert, k_addresses, LineEnding::crlf), LineEnding::crlf);
        return std::make_pair(message.header("Content-Transfer-Encoding"), message.body);
    };

    auto [ascii, ascii_body] = encoding_of("Process crasher exited\n\nHost: h");
    CHECK(ascii == "7bit");
    CHECK(ascii_body == "Process crasher exited\n\nHost: h\n");

    std::string text = "Process w\xc3\xb6rker exited\nd\xc3\xa9tail";
    auto [utf8, utf8_body] = encoding_of(text);
    CHECK(utf8 == "quoted-printable");
    CHECK(qp_decode(utf8_body) == text + "\n");

    auto [long_line, long_body] = encoding_of(std::string(998, 'x'));
    CHECK(long_line == "quoted-printable");
    CHECK(qp_decode(long_body) == std::string(998, 'x') + "\n");

    auto [just_fits, fits_body] = encoding_of(std::string(997, 'x'));
    CHECK(just_fits == "7bit");
    CHECK(fits_body == std::string(997, 'x') + "\n");

    auto [control, control_body] = encoding_of("bell\x07 and escape\x1b");
    CHECK(control == "quoted-printable");
    CHECK(qp_decode(control_body) == "bell\x07 and escape\x1b\n");
}

TEST_CASE("the host's name (--hostname) is the sender's domain, Message-ID's and the Host: line",
          "[mail][hostname]") {
    crashmail::EventHeader header;
    header.event_name = "PROCESS_STATE_EXITED";
    header.serial = 21;
    crashmail::ProcessStateChange change;
    change.state = "EXITED";
    change.process_name = "crasher";
    change.group_name = "crasher";
    change.from_state = "RUNNING";
    change.pid = 7009;
    const Alert alert = crashmail::make_alert(header, change, {"relay-client.example.net", ""},
                                              k_now, "20261125T220310.000.21.0123456789abcdef");
    crashmail::Options options;
    const MailAddresses addresses{crashmail::sender_address(options, alert.host),
                                  {"ops@example.com"}};
    CHECK(addresses.from == "crashmail@relay-client.example.net");
    const Message message =
        parse(render_mail(alert, addresses, LineEnding::crlf), LineEnding::crlf);
    CHECK(message.header("From") == "crashmail@relay-client.example.net");
    CHECK_THAT(message.header("Message-ID"), Catch::EndsWith("@relay-client.example.net>"));
    CHECK(message.header("X-Crashmail-Host") == "relay-client.example.net");
    CHECK_THAT(message.body, Catch::Contains("\nHost: relay-client.example.net\n"));
    // --from wins over the default sender, the host stays in Message-ID.
    options.from = "alerts@example.org";
    CHECK(crashmail::sender_address(options, alert.host) == "alerts@example.org");
}
