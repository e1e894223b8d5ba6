#pragma once
// Renders an alert as an Internet message (RFC 5322) for sendmail and SMTP.

#include "alert/alert.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

struct MailAddresses {
    std::string from;            // a bare address: "crashmail@host.example.com"
    std::vector<std::string> to; // bare addresses
};

enum class LineEnding { lf, crlf };

// Returns the whole message: From, To, Subject, Date (RFC 5322, local offset), Message-ID
// (message_id(alert)), MIME-Version, Content-Type text/plain; charset=utf-8,
// Content-Transfer-Encoding, X-Crashmail-* headers, a blank line and the body. A non-ASCII
// subject is RFC 2047 encoded; header lines are folded below 78 characters where possible.
// A body that is ASCII with lines under 998 bytes is sent 7bit, otherwise quoted-printable,
// so the message is safe for any server. No CR or LF from the alert reaches a header: every
// value goes through header_safe(). Addresses are made safe but never RFC 2047 encoded (an
// encoded word is not allowed in an address); a header word too long to fold below 998
// characters is encoded instead. The body always ends with a line ending.
// `ending` chooses "\n" (sendmail) or "\r\n" (SMTP on the wire).
std::string render_mail(const Alert& alert, const MailAddresses& addresses, LineEnding ending);

// Returns single_line(text) (util/text): control characters, C1 controls, U+2028 and U+2029
// become spaces and invalid UTF-8 U+FFFD, so the value can never break a header line.
std::string header_safe(std::string_view text);

// Returns `text` as is when it is printable ASCII without "=?" (which a reader could take
// for an encoded word), else as RFC 2047 "=?UTF-8?B?...?=" words of at most 75 characters
// each, never splitting a UTF-8 character, joined by "\n ".
std::string encode_header_text(std::string_view text);

// Returns `text` quoted-printable encoded (RFC 2045), lines joined with '\n' ("\r\n" in the
// input counts as a line break too): lines of at most 76 characters with soft breaks, '=',
// controls, non-ASCII and white space at the end of a line encoded.
std::string quoted_printable(std::string_view text);

} // namespace crashmail
