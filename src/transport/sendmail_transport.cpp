#include "transport/sendmail_transport.hpp"

#include "util/log.hpp"
#include "util/utf8.hpp"

#include <chrono>
#include <cstring>
#include <fmt/core.h>
#include <string.h> // NOLINT(modernize-deprecated-headers): sigdescr_np, sigabbrev_np (GNU)
#include <utility>

namespace crashmail {

namespace {

bool is_line_break(char c) {
    return c == '\n' || c == '\r';
}

bool is_blank(char c) {
    return c == ' ' || c == '\t' || is_line_break(c);
}

// Returns the length of the valid UTF-8 sequence at the start of `text`, or 0 if it is not
// one.
std::size_t valid_sequence_length(std::string_view text) {
    const auto lead = static_cast<unsigned char>(text.front());
    if (lead < 0x80) {
        return 1;
    }
    if (lead < 0xC2 || lead > 0xF4) {
        return 0; // continuation byte, overlong lead, or beyond U+10FFFF
    }
    const std::size_t length = utf8::sequence_length(lead);
    if (length > text.size()) {
        return 0;
    }
    for (std::size_t i = 1; i < length; ++i) {
        if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
            return 0;
        }
    }
    return length;
}

// Calls `emit(piece)` for each printable piece of `text` in order, until it returns false:
// runs of line breaks become " | ", tabs a space, other control characters and bytes that
// are not UTF-8 "\xNN".
template <typename Emit> void printable_pieces(std::string_view text, Emit&& emit) {
    while (!text.empty()) {
        const char c = text.front();
        std::string piece;
        std::size_t used = 1;
        if (is_line_break(c)) {
            while (used < text.size() && is_blank(text[used])) {
                ++used; // blank lines and indentation after a break add nothing
            }
            piece = " | ";
        } else if (c == '\t') {
            piece = " ";
        } else if (const std::size_t length = valid_sequence_length(text);
                   length == 0 || (length == 1 && (c < 0x20 || c == 0x7F))) {
            piece = fmt::format("\\x{:02X}", static_cast<unsigned char>(c));
        } else {
            used = length;
            piece.assign(text.substr(0, length));
        }
        if (!emit(std::as_const(piece))) {
            return;
        }
        text.remove_prefix(used);
    }
}

std::string printable(std::string_view text) {
    std::string out;
    printable_pieces(text, [&](const std::string& piece) {
        out += piece;
        return true;
    });
    return out;
}

std::string describe_timeout(std::chrono::milliseconds timeout) {
    if (timeout.count() % 1000 == 0) {
        return fmt::format("{} s", timeout.count() / 1000);
    }
    return fmt::format("{} ms", timeout.count());
}

std::string describe_signal(int signal) {
    // sigabbrev_np and sigdescr_np are strsignal() without its static buffer: thread-safe.
    const char* abbreviation = sigabbrev_np(signal);
    const char* description = sigdescr_np(signal);
    if (abbreviation == nullptr || description == nullptr) {
        return fmt::format("signal {}", signal);
    }
    return fmt::format("signal {} (SIG{}: {})", signal, abbreviation, description);
}

} // namespace

std::string shell_quote(std::string_view text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    out += '\'';
    return out;
}

std::string expand_sendmail_command(std::string_view command, std::string_view from) {
    std::string out;
    std::size_t start = 0;
    for (std::size_t at = command.find(k_from_placeholder); at != std::string_view::npos;
         at = command.find(k_from_placeholder, start)) {
        out.append(command.substr(start, at - start));
        out += shell_quote(from);
        start = at + k_from_placeholder.size();
    }
    out.append(command.substr(start));
    return out;
}

Failure::Kind classify_exit_status(int exit_code) {
    switch (exit_code) {
    case 64:  // EX_USAGE: the command line is wrong
    case 65:  // EX_DATAERR: the message is malformed
    case 67:  // EX_NOUSER: an address is unknown
    case 68:  // EX_NOHOST: a domain is unknown
    case 77:  // EX_NOPERM: not allowed
    case 78:  // EX_CONFIG: the mailer is misconfigured
    case 126: // the shell found the command but cannot execute it
    case 127: // the shell cannot find the command
        return Failure::Kind::permanent;
    default:
        return Failure::Kind::transient; // 75 EX_TEMPFAIL, 69 EX_UNAVAILABLE, 1, ...
    }
}

std::string_view exit_status_name(int exit_code) {
    switch (exit_code) {
    case 64:
        return "EX_USAGE";
    case 65:
        return "EX_DATAERR";
    case 66:
        return "EX_NOINPUT";
    case 67:
        return "EX_NOUSER";
    case 68:
        return "EX_NOHOST";
    case 69:
        return "EX_UNAVAILABLE";
    case 70:
        return "EX_SOFTWARE";
    case 71:
        return "EX_OSERR";
    case 72:
        return "EX_OSFILE";
    case 73:
        return "EX_CANTCREAT";
    case 74:
        return "EX_IOERR";
    case 75:
        return "EX_TEMPFAIL";
    case 76:
        return "EX_PROTOCOL";
    case 77:
        return "EX_NOPERM";
    case 78:
        return "EX_CONFIG";
    case 126:
        return "command not executable";
    case 127:
        return "command not found";
    default:
        return {};
    }
}

std::string summarize_output(std::string_view output, std::size_t max_bytes) {
    while (!output.empty() && is_blank(output.front())) {
        output.remove_prefix(1);
    }
    while (!output.empty() && is_blank(output.back())) {
        output.remove_suffix(1);
    }
    std::string whole = printable(output);
    if (whole.size() <= max_bytes) {
        return whole;
    }
    constexpr std::string_view k_ellipsis = "...";
    const std::size_t room = max_bytes > k_ellipsis.size() ? max_bytes - k_ellipsis.size() : 0;
    std::string cut;
    printable_pieces(output, [&](const std::string& piece) {
        if (cut.size() + piece.size() > room) {
            return false; // never cut inside a character or an escape
        }
        cut += piece;
        return true;
    });
    cut += k_ellipsis;
    return cut;
}

std::optional<Failure> sendmail_failure(std::string_view command, const SubprocessResult& result,
                                        std::chrono::milliseconds timeout) {
    if (result.succeeded()) {
        return std::nullopt;
    }
    Failure failure;
    const std::string subject = fmt::format("sendmail command '{}'", printable(command));
    if (result.cancelled) {
        failure.kind = Failure::Kind::transient;
        failure.message =
            fmt::format("{}: {}{}", subject, k_cancelled_detail, result.started ? " (killed)" : "");
        if (const std::string said = summarize_output(result.output); !said.empty()) {
            failure.message += ": " + said;
        }
        return failure;
    }
    if (!result.started) {
        failure.kind = Failure::Kind::transient;
        failure.message = fmt::format("{} could not be started: {}", subject, result.start_error);
        return failure;
    }
    if (result.timed_out) {
        failure.kind = Failure::Kind::timeout;
        failure.message = fmt::format("{} did not finish within {} and was killed", subject,
                                      describe_timeout(timeout));
    } else if (result.exit_code) {
        const int status = *result.exit_code;
        failure.kind = classify_exit_status(status);
        const std::string_view status_name = exit_status_name(status);
        failure.message =
            status_name.empty()
                ? fmt::format("{} exited with status {}", subject, status)
                : fmt::format("{} exited with status {} ({})", subject, status, status_name);
    } else if (result.signal) {
        failure.kind = Failure::Kind::transient;
        failure.message =
            fmt::format("{} was killed by {}", subject, describe_signal(*result.signal));
    } else {
        failure.kind = Failure::Kind::transient;
        failure.message = fmt::format("{} ended with an unknown status", subject);
    }
    if (const std::string said = summarize_output(result.output); !said.empty()) {
        failure.message += ": " + said;
    }
    return failure;
}

SendmailTransport::SendmailTransport(SendmailSettings settings) : m_settings(std::move(settings)) {}

std::string SendmailTransport::name() const {
    return "sendmail (" +
           (m_settings.configured.empty() ? m_settings.command : m_settings.configured) + ")";
}

std::expected<void, Failure> SendmailTransport::deliver(const Alert& alert) {
    const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(m_settings.timeout);
    if (m_cancelled.load(std::memory_order_acquire)) {
        SubprocessResult not_run;
        not_run.cancelled = true;
        return std::unexpected(*sendmail_failure(m_settings.command, not_run, timeout));
    }
    const std::string message = render_mail(alert, m_settings.addresses, LineEnding::lf);
    const SubprocessResult result = run_shell_command(m_settings.command, message, timeout,
                                                      &m_cancelled, m_settings.hidden_environment);
    if (auto failure = sendmail_failure(m_settings.command, result, timeout)) {
        return std::unexpected(redacted(std::move(*failure), m_settings.secrets));
    }
    if (result.input_written < message.size()) {
        log::warning("{}: exited with status 0 without reading the whole message ({} of {} "
                     "bytes)",
                     name(), result.input_written, message.size());
    }
    if (const std::string said = summarize_output(result.output); !said.empty()) {
        log::info("{} said: {}", name(), m_settings.secrets.redact(said));
    }
    return {};
}

void SendmailTransport::cancel() {
    m_cancelled.store(true, std::memory_order_release);
}

} // namespace crashmail
