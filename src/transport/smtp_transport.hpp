#pragma once
// Delivers alerts to an SMTP server with libcurl: plain SMTP with STARTTLS, or implicit TLS
// (smtps), optional authentication that never travels unencrypted, certificates always
// verified, every step bounded in time.

#include "transport/transport.hpp"

#include <atomic>
#include <chrono>
#include <curl/curl.h>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

struct SmtpSettings {
    std::string url{};             // smtp://host[:port] or smtps://host[:port] (normalize_smtp_url)
    std::string from{};            // envelope and header sender, a bare address
    std::vector<std::string> to{}; // bare addresses, all in one transaction
    std::string user{};            // empty: no authentication
    std::string password{};
    bool require_tls = false; // refuse to go on without STARTTLS (--starttls required or a user)
    std::string cacert{};     // CA bundle to trust instead of the system's, empty: system's
    std::chrono::seconds timeout{30}; // bounds connecting and the whole transaction
};

// Checks an --smtp URL with libcurl's URL parser and returns it as "smtp://host:port" or
// "smtps://host:port" (default ports 25 and 465, host in lower case), or a message saying
// what is wrong: scheme other than smtp/smtps, no host, a port out of range, or anything
// else in the URL (credentials, path, query, fragment, options).
std::expected<std::string, std::string> normalize_smtp_url(std::string_view url);

// Sorts a failed SMTP transaction. `response_code` is the last SMTP reply code seen (0 when
// none; then the code is read from `last_reply`, the server's last reply line). Timeouts are
// Kind::timeout; TLS verification failures, "TLS required but not offered" and refused logins
// are permanent; otherwise a 4xx reply is transient and a 5xx reply permanent; connection and
// DNS problems, and anything unknown, are transient (retrying beats losing an alert).
Failure::Kind classify_smtp_failure(CURLcode code, long response_code, std::string_view last_reply);

// Returns the SMTP reply code at the start of `reply` ("535 5.7.8 ..." -> 535), or 0.
long smtp_reply_code(std::string_view reply);

// Builds the one-line failure message "<url>: <detail>": the server's own reply when it
// answered with an error (e.g. "535 5.7.8 Authentication credentials invalid"), else
// libcurl's error text. Control characters are replaced and the text is kept short.
std::string smtp_failure_message(std::string_view url, CURLcode code, long response_code,
                                 std::string_view last_reply, std::string_view curl_error);

class SmtpTransport final : public Transport {
public:
    // `settings.url` is normalised again here; an invalid URL makes every delivery fail
    // permanently. libcurl must have been initialised (curl_global_init) by the program.
    explicit SmtpTransport(SmtpSettings settings);

    // The normalised URL, e.g. "smtp://mail.example.com:587".
    std::string name() const override;

    // Sends render_mail(alert) to all recipients in one transaction. Credentials are only
    // sent over TLS (smtps, or STARTTLS made mandatory whenever a user is set); the server's
    // certificate is always verified. Blocks at most about `timeout` (it bounds the connect
    // and the whole transaction). A failure carries the server's reply and says whether to
    // retry. After cancel(): a transient "<url>: cancelled: crashmail is stopping".
    std::expected<void, Failure> deliver(const Alert& alert) override;

    // Aborts the transaction in progress through libcurl's progress callback (within about a
    // second, whatever step it is in); later deliveries fail at once without connecting. A
    // transaction cut before the server accepted the data is retried later; one cut after
    // may be sent twice (at least once, with the same Message-ID).
    void cancel() override;

private:
    SmtpSettings m_settings;
    std::string m_url_error; // not empty when settings.url was not a valid SMTP URL
    std::atomic<bool> m_cancelled{false};
};

} // namespace crashmail
