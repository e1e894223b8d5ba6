#include "alert/mail_message.hpp"

#include "util/text.hpp"
#include "util/time.hpp"
#include "util/utf8.hpp"

#include <algorithm>
#include <openssl/evp.h>

namespace crashmail {
namespace {

constexpr std::size_t k_fold_width = 78;       // RFC 5322: lines SHOULD be at most 78 chars
constexpr std::size_t k_max_line = 998;        // RFC 5322: lines MUST be at most 998 chars
constexpr std::size_t k_max_encoded_word = 75; // RFC 2047
constexpr std::size_t k_qp_width = 76;         // RFC 2045
constexpr std::string_view k_word_start = "=?UTF-8?B?";
constexpr std::string_view k_word_end = "?=";

std::string base64(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = ::EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                              reinterpret_cast<const unsigned char*>(bytes.data()),
                              static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

// How many raw bytes fit in an encoded word of at most `width` characters.
std::size_t word_capacity(std::size_t width) {
    std::size_t overhead = k_word_start.size() + k_word_end.size();
    width = std::min(width, k_max_encoded_word);
    if (width < overhead + 8) {
        return 6; // the line will be a little long; a UTF-8 character still fits
    }
    return (width - overhead) / 4 * 3;
}

// RFC 2047 "B" words for `text`, joined by "\n ". The first word is sized to fit after
// `first_line_used` characters, so that every line stays within 78 characters.
std::string encoded_words(std::string_view text, std::size_t first_line_used) {
    std::string out;
    std::size_t capacity =
        word_capacity(first_line_used < k_fold_width ? k_fold_width - first_line_used : 0);
    do {
        std::string_view chunk = utf8::truncate(text, capacity);
        if (chunk.empty()) {
            // Only possible for invalid UTF-8 (a run of continuation bytes): cut anywhere.
            chunk = text.substr(0, std::min(capacity, text.size()));
        }
        if (!out.empty()) {
            out += "\n ";
        }
        out += k_word_start;
        out += base64(chunk);
        out += k_word_end;
        text.remove_prefix(chunk.size());
        capacity = word_capacity(k_fold_width - 1);
    } while (!text.empty());
    return out;
}

bool is_printable_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c < 0x7F; });
}

// True when `text` can go into a header as it is: printable ASCII that a decoder will not
// mistake for an encoded word.
bool is_plain_header_text(std::string_view text) {
    return is_printable_ascii(text) && text.find("=?") == std::string_view::npos;
}

// "Name: value", folded (RFC 5322 section 2.2.3) by inserting "\n" before a space so that
// lines are at most 78 characters where the words allow it. Never creates a line made only
// of white space.
std::string fold(std::string_view name, std::string_view value) {
    // Trailing spaces carry nothing, and a fold before them would leave a line of white space
    // only, which some parsers take for the end of the headers.
    while (value.ends_with(' ')) {
        value.remove_suffix(1);
    }
    std::string out = std::string(name) + ": ";
    std::size_t line_length = out.size();
    while (line_length + value.size() > k_fold_width) {
        // Break before the last space that keeps this line within the width, or else before
        // the first space at all (a long word), provided the line holds more than spaces.
        std::size_t best = std::string_view::npos;
        bool seen_text = false;
        for (std::size_t i = 0; i < value.size(); ++i) {
            if (value[i] != ' ') {
                seen_text = true;
            } else if (seen_text) {
                if (line_length + i > k_fold_width && best != std::string_view::npos) {
                    break;
                }
                best = i;
                if (line_length + i > k_fold_width) {
                    break;
                }
            }
        }
        if (best == std::string_view::npos) {
            break; // nowhere to fold
        }
        out.append(value.substr(0, best));
        out += '\n';
        value.remove_prefix(best);
        line_length = 0;
    }
    out.append(value);
    return out;
}

std::size_t longest_line(std::string_view text) {
    std::size_t longest = 0;
    while (true) {
        std::size_t newline = text.find('\n');
        longest = std::max(longest, text.substr(0, newline).size());
        if (newline == std::string_view::npos) {
            return longest;
        }
        text.remove_prefix(newline + 1);
    }
}

// An unstructured header (Subject, X-Crashmail-*): made safe, RFC 2047 encoded when not
// plain ASCII (or when a word is too long to fold), and folded.
std::string text_header(std::string_view name, std::string_view value) {
    std::string safe = header_safe(value);
    if (is_plain_header_text(safe)) {
        std::string folded = fold(name, safe);
        if (longest_line(folded) <= k_max_line) {
            return folded;
        }
    }
    return std::string(name) + ": " + encoded_words(safe, name.size() + 2);
}

// An address header: made safe and folded between addresses, never encoded (RFC 2047 words
// are not allowed inside an address).
std::string address_header(std::string_view name, const std::vector<std::string>& addresses) {
    std::string value;
    for (const std::string& address : addresses) {
        if (!value.empty()) {
            value += ", ";
        }
        value += header_safe(address);
    }
    return fold(name, value);
}

// The body with "\r\n" turned into "\n" and a final "\n".
std::string normalized_body(std::string_view body) {
    std::string out;
    out.reserve(body.size() + 1);
    for (std::size_t i = 0; i < body.size(); ++i) {
        if (body[i] == '\r' && i + 1 < body.size() && body[i + 1] == '\n') {
            continue;
        }
        out += body[i];
    }
    if (out.empty() || out.back() != '\n') {
        out += '\n';
    }
    return out;
}

// True when a normalized body can be sent as 7bit: printable ASCII and tabs only, every
// line shorter than 998 bytes.
bool fits_7bit(std::string_view body) {
    std::size_t line = 0;
    for (char c : body) {
        if (c == '\n') {
            line = 0;
            continue;
        }
        if (c != '\t' && (c < 0x20 || c >= 0x7F)) {
            return false;
        }
        if (++line >= k_max_line) {
            return false;
        }
    }
    return true;
}

std::string qp_encode_line(std::string_view line) {
    constexpr char k_hex[] = "0123456789ABCDEF";
    std::vector<std::string> tokens;
    tokens.reserve(line.size());
    for (std::size_t i = 0; i < line.size(); ++i) {
        auto c = static_cast<unsigned char>(line[i]);
        bool last = i + 1 == line.size();
        bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
        if (literal) {
            tokens.emplace_back(1, static_cast<char>(c));
        } else {
            tokens.push_back({'=', k_hex[c >> 4], k_hex[c & 0x0F]});
        }
    }
    std::string out;
    std::size_t length = 0;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        // The last token may use the whole width; others must leave room for a soft break.
        std::size_t room = i + 1 == tokens.size() ? k_qp_width : k_qp_width - 1;
        if (length + tokens[i].size() > room) {
            out += "=\n";
            length = 0;
        }
        out += tokens[i];
        length += tokens[i].size();
    }
    return out;
}

} // namespace

std::string header_safe(std::string_view text) {
    return single_line(text);
}

std::string encode_header_text(std::string_view text) {
    if (is_plain_header_text(text)) {
        return std::string(text);
    }
    return encoded_words(text, 0);
}

std::string quoted_printable(std::string_view text) {
    std::string out;
    while (true) {
        std::size_t newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        if (newline != std::string_view::npos && line.ends_with('\r')) {
            line.remove_suffix(1); // "\r\n" is a line break like "\n"
        }
        out += qp_encode_line(line);
        if (newline == std::string_view::npos) {
            return out;
        }
        out += '\n';
        text.remove_prefix(newline + 1);
    }
}

std::string render_mail(const Alert& alert, const MailAddresses& addresses, LineEnding ending) {
    std::string body = normalized_body(alert.body);
    bool seven_bit = fits_7bit(body);

    std::vector<std::string> headers;
    headers.push_back(address_header("From", {addresses.from}));
    headers.push_back(address_header("To", addresses.to));
    headers.push_back(text_header("Subject", alert.subject));
    headers.push_back(text_header("Date", timefmt::rfc5322_local(alert.time)));
    headers.push_back(text_header("Message-ID", message_id(alert)));
    headers.emplace_back("MIME-Version: 1.0");
    headers.emplace_back("Content-Type: text/plain; charset=utf-8");
    headers.push_back(std::string("Content-Transfer-Encoding: ") +
                      (seven_bit ? "7bit" : "quoted-printable"));
    headers.push_back(text_header("X-Crashmail-Process", alert.process));
    headers.push_back(text_header("X-Crashmail-Group", alert.group));
    headers.push_back(text_header("X-Crashmail-State", alert.state));
    headers.push_back(text_header("X-Crashmail-Host", alert.host));

    std::string message;
    for (const std::string& header : headers) {
        message += header;
        message += '\n';
    }
    message += '\n';
    message += seven_bit ? body : quoted_printable(body);

    if (ending == LineEnding::lf) {
        return message;
    }
    // Every '\n' above is a line break: headers hold no CR or LF of their own (header_safe),
    // and the body's lone CRs are quoted-printable encoded.
    std::string crlf;
    crlf.reserve(message.size() + message.size() / 32);
    for (char c : message) {
        if (c == '\n') {
            crlf += '\r';
        }
        crlf += c;
    }
    return crlf;
}

} // namespace crashmail
