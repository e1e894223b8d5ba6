#pragma once
// A channel that delivers alerts: sendmail, SMTP, a webhook. Failures are values that say
// whether trying again can help, and carry the peer's own words.

#include "alert/alert.hpp"

#include <chrono>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

namespace crashmail {

struct Failure {
    enum class Kind {
        transient, // try again later: connection refused, DNS, 4xx SMTP, 429/5xx HTTP
        timeout,   // the peer did not answer in time; transient too
        permanent, // will fail again: 5xx SMTP, authentication, TLS verification, 4xx HTTP
    };
    Kind kind = Kind::transient;
    std::string message;                             // what failed and what the peer said, one line
    std::optional<std::chrono::seconds> retry_after; // HTTP Retry-After, when given

    bool retryable() const { return kind != Kind::permanent; }
    // "transient", "timeout" or "permanent".
    std::string_view kind_name() const;
    // "<message> (<kind>)", the form used in logs and --test output.
    std::string describe() const;
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
    // Makes a deliver() in progress return soon (within about a second) with a transient
    // Failure saying crashmail is stopping, and every later deliver() return it at once.
    // Thread-safe; called from another thread than deliver(). Default: does nothing (a
    // deliver() then ends within its own time limit).
    virtual void cancel() {}
};

// What the Failure of a deliver() ended by cancel() says after the channel's name
// ("smtp://mx:25: cancelled: crashmail is stopping").
inline constexpr std::string_view k_cancelled_detail = "cancelled: crashmail is stopping";

} // namespace crashmail
