#pragma once
// Delivers alerts to an SMTP server with libcurl: plain SMTP with STARTTLS, or implicit TLS
// (smtps), optional authentication that never travels unencrypted, certificates always
// verified, every step bounded in time.

#include "transport/transport.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <curl/curl.h>
#include <deque>
#include <expected>
#include <optional>
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
    // Bounds connecting (with TLS, the greeting, EHLO, STARTTLS and AUTH) and each wait for
    // a reply or for the server to take more of the message, except the wait for the reply
    // to the end of the message: that one is bounded by data_timeout.
    std::chrono::seconds timeout{30};
    // How long the server may take to answer the end of the message (RFC 5321 4.5.3.2.6:
    // 10 minutes). A server that answers late has usually accepted the mail: giving up sooner
    // makes a retry deliver a second copy. At least `timeout`.
    std::chrono::seconds data_timeout{600};
};

// Checks an --smtp URL with libcurl's URL parser and returns it as "smtp://host:port" or
// "smtps://host:port" (default ports 25 and 465, host in lower case), or a message saying
// what is wrong: scheme other than smtp/smtps, no host, a port out of range, or anything
// else in the URL (credentials, path, query, fragment, options).
std::expected<std::string, std::string> normalize_smtp_url(std::string_view url);

// Sorts a failed SMTP transaction. `response_code` is the last SMTP reply code seen (0 when
// none; then the code is read from `last_reply`, the server's last reply line). Timeouts are
// Kind::timeout; a certificate that cannot be verified is transient (the transport retries
// it for curl::k_certificate_retry_window only, see Failure::transient_for); other TLS set-up
// failures, "TLS required but not offered" and refused logins are permanent; otherwise a 4xx
// reply is transient and a 5xx reply permanent; connection and DNS problems, and anything
// unknown, are transient (retrying beats losing an alert).
Failure::Kind classify_smtp_failure(CURLcode code, long response_code, std::string_view last_reply);

// Returns the SMTP reply code at the start of `reply` ("535 5.7.8 ..." -> 535), or 0.
long smtp_reply_code(std::string_view reply);

// Builds the one-line failure message "<url>: <detail>": the server's own reply when it
// answered with an error (e.g. "535 5.7.8 Authentication credentials invalid"), else
// libcurl's error text. Control characters are replaced and the text is kept short.
std::string smtp_failure_message(std::string_view url, CURLcode code, long response_code,
                                 std::string_view last_reply, std::string_view curl_error);

// "2 s", "90 s", "10 min", "1 h": a time limit in messages.
std::string smtp_duration_text(std::chrono::seconds duration);

// One SMTP session as libcurl's debug callback shows it: the command lines crashmail sent
// (CURLINFO_HEADER_OUT), the server's reply lines (CURLINFO_HEADER_IN), the message's bytes
// (CURLINFO_DATA_OUT) and the end of the message (the read callback's end of file). Each
// reply is paired with the command it answers: libcurl sends its commands one at a time and
// waits for each reply (no PIPELINING, even when offered), so replies come in the order of
// the commands. Pure: no I/O, no clock.
class SmtpDialogue {
public:
    struct Reply {
        long code = 0;                  // 0: not an SMTP reply line
        std::vector<std::string> lines; // as received, without CRLF
        std::string text() const;       // the lines joined by spaces
    };
    struct Exchange {
        // What crashmail sent: "" for the greeting (or a reply nothing asked for), "." for the
        // end of the message, else the command line (AUTH without its arguments).
        std::string command;
        Reply reply;
    };
    // What the session waits for now.
    enum class Phase {
        greeting,    // connecting, TLS, or the server's first words
        reply,       // a reply to pending_command()
        our_turn,    // libcurl is about to send (between a reply and the next command)
        message,     // the message's bytes going out (after DATA's 354)
        end_of_data, // the message was sent; the reply to its end is awaited (also while
                     // QUIT is pending after libcurl gave up on it)
        finished,    // the end of the message was answered
    };

    void sent(std::string_view bytes);
    void received(std::string_view bytes);
    void message_bytes_sent(std::size_t count);
    void message_finished();
    // libcurl's informational text ("Connected to 127.0.0.1 ..."), CURLINFO_TEXT.
    void note(std::string_view text);

    Phase phase() const;
    // The command whose reply is awaited (phase() == reply), else "".
    std::string pending_command() const;
    const std::vector<Exchange>& exchanges() const { return m_exchanges; }
    bool connected() const { return m_connected; }
    std::size_t message_bytes() const { return m_message_bytes; }

    // The replies to the RCPT commands, in the order the commands were sent (libcurl sends
    // one per CURLOPT_MAIL_RCPT entry, in the list's order).
    std::vector<Reply> recipient_replies() const;
    // The server's last EHLO reply offers STARTTLS.
    bool starttls_offered() const;
    // The reply to STARTTLS, if one was sent; TLS began when it is 220.
    std::optional<Reply> starttls_reply() const;
    // The reply to the end of the message, once it came.
    std::optional<Reply> end_of_data_reply() const;
    // The first line received when it is not an SMTP reply and came before any (an HTTP
    // server's "HTTP/1.1 400 Bad Request"), else "".
    std::string non_smtp_greeting() const { return m_non_smtp_greeting; }
    // The last reply with code `code`, else the last reply (partial lines included), else "".
    // libcurl sends QUIT after a failure, so the very last reply is often "221 Bye" while the
    // one that explains the failure came before it.
    std::string reply_for(long code) const;

private:
    void add_line(std::string line);

    std::string m_out_partial;
    std::string m_in_partial;
    Reply m_current;
    std::deque<std::string> m_pending;
    std::vector<Exchange> m_exchanges;
    std::string m_non_smtp_greeting;
    bool m_any_line = false;
    bool m_connected = false;
    bool m_in_message = false;
    bool m_message_done = false;
    bool m_end_answered = false;
    std::size_t m_message_bytes = 0;
};

// The failure, if any, for recipients refused one by one: `addresses[i]` was answered
// `replies[i]` (SmtpDialogue::recipient_replies()). Each non-2xx reply is a Refusal, "<address>:
// <reply>", permanent for 5xx and transient otherwise.
std::vector<Refusal> smtp_refusals(const std::vector<std::string>& addresses,
                                   const std::vector<SmtpDialogue::Reply>& replies);

// The Failure when every recipient refused: permanent when every refusal is, else transient;
// "<url>: every recipient refused the message: a@x: 550 ...; b@y: 452 ...".
Failure smtp_all_refused(std::string_view url, const std::vector<Refusal>& refusals);

// The message of a delivery whose end-of-message reply did not come within `waited`:
// "<url>: no reply to the end of the message within 10 min: the server may have accepted
// it; a retry may deliver a duplicate (same Message-ID)".
std::string smtp_unknown_outcome_message(std::string_view url, std::chrono::seconds waited);

class SmtpTransport final : public Transport {
public:
    // `settings.url` is normalised again here; an invalid URL makes every delivery fail
    // permanently. libcurl must have been initialised (curl_global_init) by the program.
    explicit SmtpTransport(SmtpSettings settings);

    // The normalised URL, e.g. "smtp://mail.example.com:587".
    std::string name() const override;

    // deliver_to(alert, {}): a delivery that reached some recipients is a success.
    std::expected<void, Failure> deliver(const Alert& alert) override;

    // settings.to.
    std::vector<std::string> recipients() const override;

    // Sends render_mail(alert) in one transaction to `only` (those of settings.to; empty: all
    // of them), whose headers always name every settings.to address (a retry for some is the
    // same mail, same Message-ID). The server may refuse recipients one by one: the message
    // goes to the others and the Receipt lists the refused, each with the server's reply.
    // Credentials are only sent over TLS (smtps, or STARTTLS made mandatory whenever a user is
    // set); the server's certificate is always verified (a certificate problem is retried for
    // an hour: transient_for). `timeout` bounds connecting and every wait but the one for the
    // reply to the end of the message, which `data_timeout` bounds. A failure carries the
    // server's reply and says whether to retry. After cancel(): a transient "<url>: cancelled:
    // crashmail is stopping". The Receipt's notes: "<url>: sent in clear text: ...". Failure,
    // refusals and notes are redacted of secrets().
    std::expected<Receipt, Failure> deliver_to(const Alert& alert,
                                               const std::vector<std::string>& only) override;

    // What this channel keeps out of its error words: the password, and the base64 forms
    // AUTH PLAIN and AUTH LOGIN send it in (a server may quote the line back).
    const Secrets& secrets() const { return m_secrets; }

    // Aborts the transaction in progress through libcurl's progress callback (within about a
    // second, whatever step it is in); later deliveries fail at once without connecting. A
    // transaction cut before the server accepted the data is retried later; one cut after
    // may be sent twice (at least once, with the same Message-ID).
    void cancel() override;

private:
    // deliver_to() before redaction.
    std::expected<Receipt, Failure> attempt(const Alert& alert,
                                            const std::vector<std::string>& only);

    SmtpSettings m_settings;
    Secrets m_secrets;
    std::string m_url_error; // not empty when settings.url was not a valid SMTP URL
    std::atomic<bool> m_cancelled{false};
};

} // namespace crashmail
