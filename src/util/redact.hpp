#pragma once
// Secrets kept out of what people see: a channel's error words (the peer's own, which may
// echo a request path, a header or an AUTH line) are passed through one redaction before
// they become a Failure, so the log, the spool's failed/ records and --status all get the
// same cleaned text.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

// What a secret becomes in redacted text.
inline constexpr std::string_view k_redacted = "<redacted>";

// Secrets shorter than this are not looked for: they would match ordinary words and numbers
// ("HTTP 400") everywhere, and a secret that short protects nothing anyway.
inline constexpr std::size_t k_min_secret_length = 4;

// A set of secret strings and the forms they take on the wire.
class Secrets {
public:
    // Adds `secret` and the forms a peer may echo: percent-encoded (upper- and lowercase
    // hex, '+' for a space as in a query string) and JSON-escaped. Too short (below
    // k_min_secret_length) or already known: ignored.
    void add(std::string_view secret);
    // Adds `secret` as it is, with no other form (e.g. a base64 AUTH line).
    void add_exact(std::string_view secret);
    // Adds every secret of `other`.
    void add_all(const Secrets& other);

    // `text` with every occurrence of every secret (and form) replaced by k_redacted, the
    // longest first, so a secret that holds another is replaced whole.
    std::string redact(std::string_view text) const;

    bool empty() const { return m_forms.empty(); }
    // Every form looked for, longest first (for tests).
    const std::vector<std::string>& forms() const { return m_forms; }

private:
    void add_form(std::string form);
    std::vector<std::string> m_forms; // longest first
};

// The secret parts of a URL: the userinfo's password (and user), every query value (and the
// whole query), the fragment, and every path segment after the first that looks like a token
// (url_path_token()), each also percent-decoded. A URL libcurl cannot parse gives nothing.
Secrets url_secrets(std::string_view url);

// True for a path segment that looks like a token rather than a word: at least 8 characters
// and not all lowercase letters (Slack's "T0123ABCD" and its 24-character secret, Discord's
// numeric id and token), or at least 20 of any kind. "services", "webhooks", "api", "v2",
// "alerts" are not.
bool url_path_token(std::string_view segment);

// Standard base64 (with '=' padding) of `data`: the form AUTH PLAIN and AUTH LOGIN send, that
// a server may quote back.
std::string base64(std::string_view data);

} // namespace crashmail
