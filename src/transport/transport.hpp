#pragma once
// A channel that delivers alerts: sendmail, SMTP, a webhook. Failures are values that say
// whether trying again can help, and carry the peer's own words.

#include "alert/alert.hpp"
#include "util/redact.hpp"

#include <chrono>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crashmail {

struct Failure {
    enum class Kind {
        transient, // try again later: connection refused, DNS, 4xx SMTP, 429/5xx HTTP
        timeout,   // the peer did not answer in time; transient too
        permanent, // will fail again: 5xx SMTP, authentication, 4xx HTTP
    };
    Failure() = default;
    Failure(Kind what, std::string text,
            std::optional<std::chrono::seconds> retry_wait = std::nullopt,
            std::optional<std::chrono::seconds> transient_window = std::nullopt)
        : kind(what), message(std::move(text)), retry_after(retry_wait),
          transient_for(transient_window) {}

    Kind kind = Kind::transient;
    std::string message;                             // what failed and what the peer said, one line
    std::optional<std::chrono::seconds> retry_after; // HTTP Retry-After, when given
    // A retryable failure that becomes permanent once the alert is this old (a certificate
    // problem: the relay's admin may fix an expired certificate within the hour, a wrong
    // --cacert stays wrong). Empty: retryable until --max-age, like any other.
    std::optional<std::chrono::seconds> transient_for;

    bool retryable() const { return kind != Kind::permanent; }
    // "transient", "timeout" or "permanent".
    std::string_view kind_name() const;
    // "<message> (<kind>)", the form used in logs and --test output.
    std::string describe() const;
};

// A recipient the server refused while it took the message for others (SMTP with several
// -m addresses).
struct Refusal {
    std::string recipient; // the bare address
    Failure failure;       // permanent (5xx) or transient (4xx), with the server's own words
};

// What a delivery that reached somebody did.
struct Receipt {
    // The recipients that refused it (the others took it); empty: every one asked took it.
    std::vector<Refusal> refused;
    // Warnings about how it went, one line each naming the channel ("smtp://mx:25: sent in
    // clear text: the server offers no STARTTLS"): logged once per distinct text, shown by
    // --test.
    std::vector<std::string> notes;
};

class Transport {
public:
    virtual ~Transport() = default;
    // A short name for logs: "sendmail", "smtp://mail.example.com:587", "webhook http://...".
    virtual std::string name() const = 0;
    // What makes this channel this channel (its full address, unredacted): the outbox keys
    // stored delivery states by a hash of it. Never logged.
    virtual std::string identity() const { return name(); }
    // Whether this channel takes `alert` at all: a message with notify false (a recovery only
    // for channels that track alert state) is skipped, and so is a digest none of whose items
    // notify. The dispatcher neither stores nor delivers an alert for a channel that does not
    // want it.
    virtual bool wants(const Alert& alert) const {
        if (alert.kind == AlertKind::digest) {
            for (const Alert& item : alert.items) {
                if (item.notify) {
                    return true;
                }
            }
            return false;
        }
        return alert.notify;
    }
    // Delivers one alert, blocking at most the transport's time limit.
    virtual std::expected<void, Failure> deliver(const Alert& alert) = 0;
    // The recipients this channel addresses one by one within a delivery (SMTP: the -m
    // addresses), each of which the server may refuse on its own; empty for a channel that
    // takes an alert as a whole (sendmail, webhooks).
    virtual std::vector<std::string> recipients() const { return {}; }
    // Delivers `alert` to `only` (some of recipients(); empty: all of them) and says which
    // recipients refused it. A Failure: nobody took it. Default: deliver(), all or nothing.
    virtual std::expected<Receipt, Failure> deliver_to(const Alert& alert,
                                                       const std::vector<std::string>& only) {
        (void)only;
        auto done = deliver(alert);
        if (!done) {
            return std::unexpected(done.error());
        }
        return Receipt{};
    }
    // Makes a deliver() in progress return soon (within about a second) with a transient
    // Failure saying crashmail is stopping, and every later deliver() return it at once.
    // Thread-safe; called from another thread than deliver(). Default: does nothing (a
    // deliver() then ends within its own time limit).
    virtual void cancel() {}
};

// `failure` with `secrets` replaced in its message (Secrets::redact): every transport passes
// its Failures (and a Receipt's refusals and notes) through it before returning them, so
// every sink of the words (log, spool, --status, --test) gets the redacted text.
Failure redacted(Failure failure, const Secrets& secrets);
Receipt redacted(Receipt receipt, const Secrets& secrets);

// What the Failure of a deliver() ended by cancel() says after the channel's name
// ("smtp://mx:25: cancelled: crashmail is stopping").
inline constexpr std::string_view k_cancelled_detail = "cancelled: crashmail is stopping";

} // namespace crashmail
