#pragma once
// Delivery through a local sendmail command (superlance's only channel): the rendered message
// goes to `/bin/sh -c COMMAND` on stdin; its exit status says whether the mail was accepted.

#include "alert/mail_message.hpp"
#include "transport/transport.hpp"
#include "util/subprocess.hpp"

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

struct SendmailSettings {
    std::string command; // run by /bin/sh, e.g. "/usr/sbin/sendmail -t -i -f 'ops@example.com'"
    // The command as configured (-s CMD, or the default before "-f ADDR" is added), which
    // names the channel: name(), so its key in stored records, stays the same when --from
    // changes. Empty: `command`.
    std::string configured;
    MailAddresses addresses;
    std::chrono::seconds timeout{60};
    // Variables the command does not inherit (CRASHMAIL_SMTP_PASSWORD, SUPERVISOR_PASSWORD,
    // the ${VAR}s of webhook headers: secrets of crashmail or of other channels).
    std::vector<std::string> hidden_environment;
    // Kept out of what the command printed when it is quoted (the values of those variables).
    Secrets secrets;
};

class SendmailTransport final : public Transport {
public:
    explicit SendmailTransport(SendmailSettings settings);

    // "sendmail (<configured command>)".
    std::string name() const override;

    // Renders the alert with "\n" line endings and runs the command with it on stdin. Exit
    // status 0 is success (anything the command printed is logged as one info line);
    // anything else is a Failure classified by sendmail_failure(). After cancel(): a
    // transient Failure at once, the command not run.
    std::expected<void, Failure> deliver(const Alert& alert) override;

    // Ends the command in progress as a time-out would (its process group gets SIGTERM,
    // SIGKILL a second later; the shell is reaped), reported as a transient "cancelled:
    // crashmail is stopping"; later deliveries run nothing. A command cut after it handed the
    // message on may make the alert be sent twice (at least once).
    void cancel() override;

private:
    SendmailSettings m_settings;
    std::atomic<bool> m_cancelled{false};
};

// The placeholder in an -s command that becomes the envelope sender.
inline constexpr std::string_view k_from_placeholder = "{from}";

// Returns `text` as one word for /bin/sh: in single quotes, each "'" written '\'', so no
// character of it (space, $, `, ;, |, quotes) means anything to the shell.
std::string shell_quote(std::string_view text);

// Returns `command` with every "{from}" replaced by shell_quote(from); a command without
// "{from}" is returned unchanged (superlance's commands run exactly as before).
std::string expand_sendmail_command(std::string_view command, std::string_view from);

// What kind of failure a sendmail command's exit status means, after sysexits.h as msmtp
// and sendmail use it: 64 (EX_USAGE), 65 (EX_DATAERR), 67 (EX_NOUSER), 68 (EX_NOHOST),
// 77 (EX_NOPERM), 78 (EX_CONFIG), 126 (not executable) and 127 (command not found) are
// permanent; every other status, 75 (EX_TEMPFAIL) included, is transient.
Failure::Kind classify_exit_status(int exit_code);

// The sysexits.h name of `exit_code` ("EX_TEMPFAIL"), the shell's meaning of 126 and 127,
// or an empty view.
std::string_view exit_status_name(int exit_code);

// One printable line of at most `max_bytes` bytes summing up what a command printed:
// surrounding white space trimmed, line breaks shown as " | ", other control characters as
// "\xNN", "..." appended when cut. Empty when the output is blank.
std::string summarize_output(std::string_view output, std::size_t max_bytes = 300);

// Returns std::nullopt when `result` is a success (started, in time, not cancelled, exit
// status 0), else the Failure to report: the message names the command, says what happened
// (cancelled: "sendmail command '...': cancelled: crashmail is stopping", with "(killed)"
// when it had started; could not start; timed out after `timeout`; exit status with its
// sysexits name; or the signal with its strsignal() description) and ends with
// summarize_output() of what it printed. Cancelled, could not start and killed by a signal
// are transient, timed out is Kind::timeout, an exit status is classified by
// classify_exit_status(). Pure.
std::optional<Failure> sendmail_failure(std::string_view command, const SubprocessResult& result,
                                        std::chrono::milliseconds timeout);

} // namespace crashmail
