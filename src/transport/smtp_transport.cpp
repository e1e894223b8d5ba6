#include "transport/smtp_transport.hpp"

#include "alert/mail_message.hpp"
#include "util/curl_handles.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <fmt/core.h>
#include <memory>
#include <ranges>
#include <utility>

namespace crashmail {

namespace {

// Text from a peer or the command line is quoted in one line of at most this many bytes.
constexpr std::size_t k_max_detail_length = 400;

std::string ascii_lower(std::string text) {
    std::ranges::transform(text, text.begin(), [](char c) {
        return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    });
    return text;
}

bool is_tls_failure(CURLcode code) {
    switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
        return true;
    default:
        return false;
    }
}

// An address that may go into MAIL FROM / RCPT TO: no spaces, brackets or control characters,
// so nothing can be smuggled into the SMTP command stream.
bool is_safe_address(std::string_view address) {
    if (address.empty()) {
        return false;
    }
    return std::ranges::none_of(address, [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte <= 0x20 || byte == 0x7f || c == '<' || c == '>';
    });
}

// A host name that can be used as the EHLO domain (letters, digits, '.', '-').
bool is_plain_host_name(std::string_view host) {
    if (host.empty() || host.size() > 253) {
        return false;
    }
    return std::ranges::all_of(host, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '-';
    });
}

// SMTP sends nothing to the write callback during a mail transaction, but libcurl's default
// would write to stdout, which is supervisord's protocol channel: discard, never print.
std::size_t discard_output(char* /*data*/, std::size_t size, std::size_t count, void* /*user*/) {
    return size * count;
}

bool iequals_prefix(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) {
        return false;
    }
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        char c = text[i];
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');
        }
        if (c != prefix[i]) {
            return false;
        }
    }
    return true;
}

// The verb of a command line, upper case ("RCPT TO:<a@b>" -> "RCPT").
std::string verb_of(std::string_view command) {
    std::string verb(command.substr(0, command.find(' ')));
    if (const std::size_t colon = verb.find(':'); colon != std::string::npos) {
        verb.erase(colon);
    }
    std::ranges::transform(verb, verb.begin(), [](char c) {
        return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    });
    return verb;
}

// What one delivery's callbacks share: the dialogue, the clock of the current wait, and why
// the progress callback aborted.
struct Session {
    SmtpDialogue dialogue;
    std::chrono::seconds timeout{30};
    std::chrono::seconds data_timeout{600};
    std::chrono::steady_clock::time_point last_event = std::chrono::steady_clock::now();
    bool timed_out = false;              // the progress callback gave up waiting
    SmtpDialogue::Phase timed_out_in{};  // in this phase
    std::string timed_out_waiting_for{}; // the command then pending
    std::string data{};                  // the message being uploaded
    std::size_t position = 0;

    void touch() { last_event = std::chrono::steady_clock::now(); }

    // The progress callback's question: has the current wait lasted too long? Once the end of
    // the message is answered only QUIT is left, bounded by `timeout` too: the mail is
    // delivered whatever becomes of it.
    bool expired() {
        const SmtpDialogue::Phase phase = dialogue.phase();
        if (phase == SmtpDialogue::Phase::end_of_data && !dialogue.pending_command().empty()) {
            // libcurl gave up on the reply (--data-timeout) and says QUIT: no reason to wait
            // for a server that is still busy with the message.
            return true;
        }
        const auto limit = phase == SmtpDialogue::Phase::end_of_data ? data_timeout : timeout;
        if (std::chrono::steady_clock::now() - last_event < limit) {
            return false;
        }
        timed_out = true;
        timed_out_in = phase;
        timed_out_waiting_for = dialogue.pending_command();
        return true;
    }
};

std::size_t read_message(char* buffer, std::size_t size, std::size_t count, void* user) {
    auto* session = static_cast<Session*>(user);
    const std::size_t wanted = size * count;
    const std::size_t left = session->data.size() - session->position;
    const std::size_t n = std::min(wanted, left);
    std::memcpy(buffer, session->data.data() + session->position, n);
    session->position += n;
    if (n == 0) {
        // libcurl asks for more only once it has sent what it had: the whole message is
        // out, and the end-of-data mark and its reply come next (see CURLINFO_DATA_OUT too).
        session->dialogue.message_finished();
        session->touch();
    }
    return n;
}

int record_debug(CURL* /*handle*/, curl_infotype type, char* data, std::size_t size, void* user) {
    auto* session = static_cast<Session*>(user);
    const std::string_view bytes(data, size);
    switch (type) {
    case CURLINFO_HEADER_IN:
        session->dialogue.received(bytes);
        session->touch();
        break;
    case CURLINFO_HEADER_OUT:
        session->dialogue.sent(bytes);
        session->touch();
        break;
    case CURLINFO_DATA_OUT:
        session->dialogue.message_bytes_sent(size);
        session->touch();
        // libcurl asks the read callback for no more once it has sent INFILESIZE bytes (when
        // dot-stuffing added none): all read and as many bytes sent is the end as well.
        if (session->position == session->data.size() &&
            session->dialogue.message_bytes() >= session->data.size()) {
            session->dialogue.message_finished();
        }
        break;
    case CURLINFO_TEXT:
        session->dialogue.note(bytes);
        break;
    default:
        break;
    }
    return 0;
}

} // namespace

std::expected<std::string, std::string> normalize_smtp_url(std::string_view url) {
    const std::string text(url);
    const std::string shown = one_line(text, k_max_detail_length); // for the errors
    curl::Url handle(curl_url());
    if (!handle) {
        return std::unexpected("cannot parse the SMTP URL (out of memory)");
    }
    const std::size_t separator = text.find("://");
    if (separator != std::string::npos && text.compare(separator, 4, ":///") == 0) {
        return std::unexpected(fmt::format("invalid SMTP URL '{}': no host", shown));
    }
    if (separator == std::string::npos) {
        return std::unexpected(fmt::format("'{}' is not an SMTP URL: write smtp://host[:port] or "
                                           "smtps://host[:port]",
                                           shown));
    }
    const std::string given_scheme = ascii_lower(text.substr(0, separator));
    if (given_scheme != "smtp" && given_scheme != "smtps") {
        return std::unexpected(
            fmt::format("invalid SMTP URL '{}': the scheme must be smtp:// or smtps://", shown));
    }
    if (const CURLUcode rc = curl_url_set(handle.get(), CURLUPART_URL, text.c_str(), 0);
        rc != CURLUE_OK) {
        return std::unexpected(
            fmt::format("invalid SMTP URL '{}': {}", shown, curl_url_strerror(rc)));
    }
    const std::string scheme = ascii_lower(curl::url_part(handle.get(), CURLUPART_SCHEME));
    if (scheme != "smtp" && scheme != "smtps") {
        return std::unexpected(
            fmt::format("invalid SMTP URL '{}': the scheme must be smtp:// or smtps://", shown));
    }
    const std::string host = ascii_lower(curl::url_part(handle.get(), CURLUPART_HOST));
    if (host.empty()) {
        return std::unexpected(fmt::format("invalid SMTP URL '{}': no host", shown));
    }
    if (!curl::url_part(handle.get(), CURLUPART_USER).empty() ||
        !curl::url_part(handle.get(), CURLUPART_PASSWORD).empty() ||
        !curl::url_part(handle.get(), CURLUPART_OPTIONS).empty()) {
        return std::unexpected(fmt::format(
            "invalid SMTP URL '{}': credentials do not belong in the URL (use --smtp-user and "
            "--smtp-password-file or CRASHMAIL_SMTP_PASSWORD)",
            shown));
    }
    if (!curl::url_part(handle.get(), CURLUPART_ZONEID).empty()) {
        return std::unexpected(
            fmt::format("invalid SMTP URL '{}': IPv6 zone ids are not supported", shown));
    }
    const std::string path = curl::url_part(handle.get(), CURLUPART_PATH);
    if ((!path.empty() && path != "/") || !curl::url_part(handle.get(), CURLUPART_QUERY).empty() ||
        !curl::url_part(handle.get(), CURLUPART_FRAGMENT).empty()) {
        return std::unexpected(fmt::format(
            "invalid SMTP URL '{}': only smtp://host[:port] or smtps://host[:port] is allowed",
            shown));
    }
    const std::string port = curl::url_part(handle.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
    if (port.empty() || port == "0") {
        return std::unexpected(fmt::format("invalid SMTP URL '{}': bad port", shown));
    }
    return fmt::format("{}://{}:{}", scheme, host, port);
}

long smtp_reply_code(std::string_view reply) {
    if (reply.size() < 3) {
        return 0;
    }
    long code = 0;
    for (std::size_t i = 0; i < 3; ++i) {
        if (reply[i] < '0' || reply[i] > '9') {
            return 0;
        }
        code = code * 10 + (reply[i] - '0');
    }
    if (reply.size() > 3 && reply[3] != ' ' && reply[3] != '-') {
        return 0;
    }
    return (code >= 200 && code <= 599) ? code : 0;
}

Failure::Kind classify_smtp_failure(CURLcode code, long response_code,
                                    std::string_view last_reply) {
    if (code == CURLE_OPERATION_TIMEDOUT) {
        return Failure::Kind::timeout;
    }
    if (curl::is_certificate_failure(code)) {
        return Failure::Kind::transient; // for a while: see k_certificate_retry_window
    }
    if (is_tls_failure(code)) {
        return Failure::Kind::permanent;
    }
    const long reply = response_code != 0 ? response_code : smtp_reply_code(last_reply);
    if (reply >= 400 && reply < 500) {
        return Failure::Kind::transient;
    }
    if (reply >= 500 && reply < 600) {
        return Failure::Kind::permanent;
    }
    switch (code) {
    case CURLE_LOGIN_DENIED:
    case CURLE_AUTH_ERROR:
    case CURLE_USE_SSL_FAILED:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_REMOTE_ACCESS_DENIED:
        return Failure::Kind::permanent;
    default:
        // Connection refused, DNS, resets, handshake aborted mid-way, unexpected replies:
        // another attempt may succeed.
        return Failure::Kind::transient;
    }
}

std::string smtp_failure_message(std::string_view url, CURLcode code, long response_code,
                                 std::string_view last_reply, std::string_view curl_error) {
    const long reply = response_code != 0 ? response_code : smtp_reply_code(last_reply);
    std::string detail;
    if (code == CURLE_USE_SSL_FAILED && reply < 400) {
        detail = "TLS is required (a user is set, or --starttls required) but the server does "
                 "not offer STARTTLS; nothing was sent";
    } else if (reply >= 400 && smtp_reply_code(last_reply) == reply &&
               code != CURLE_OPERATION_TIMEDOUT && !is_tls_failure(code)) {
        detail = std::string(last_reply);
    } else if (!curl_error.empty()) {
        detail = std::string(curl_error);
    } else {
        detail = curl_easy_strerror(code);
    }
    return fmt::format("{}: {}", url, one_line(trim(detail), k_max_detail_length));
}

std::string smtp_duration_text(std::chrono::seconds duration) {
    const long long seconds = duration.count();
    if (seconds >= 3600 && seconds % 3600 == 0) {
        return fmt::format("{} h", seconds / 3600);
    }
    if (seconds >= 60 && seconds % 60 == 0) {
        return fmt::format("{} min", seconds / 60);
    }
    return fmt::format("{} s", seconds);
}

// ---------------------------------------------------------------------------------------
// SmtpDialogue

std::string SmtpDialogue::Reply::text() const {
    std::string joined;
    for (const std::string& line : lines) {
        if (!joined.empty()) {
            joined += ' ';
        }
        joined += line;
    }
    return joined;
}

void SmtpDialogue::sent(std::string_view bytes) {
    m_out_partial.append(bytes);
    std::size_t newline;
    while ((newline = m_out_partial.find('\n')) != std::string::npos) {
        std::string line = m_out_partial.substr(0, newline);
        m_out_partial.erase(0, newline + 1);
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        if (line.empty()) {
            continue;
        }
        // An AUTH line carries credentials (and the lines after "334" are credentials
        // alone): keep only the verb, never the secret.
        const bool in_auth = !m_pending.empty() && m_pending.back().starts_with("AUTH");
        if (iequals_prefix(line, "AUTH")) {
            line = "AUTH";
        } else if (in_auth || (!m_exchanges.empty() && m_exchanges.back().reply.code == 334 &&
                               m_pending.empty())) {
            line = "AUTH (continued)";
        }
        m_pending.push_back(std::move(line));
    }
}

void SmtpDialogue::received(std::string_view bytes) {
    m_in_partial.append(bytes);
    std::size_t newline;
    while ((newline = m_in_partial.find('\n')) != std::string::npos) {
        std::string line = m_in_partial.substr(0, newline);
        m_in_partial.erase(0, newline + 1);
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        add_line(std::move(line));
    }
}

void SmtpDialogue::add_line(std::string line) {
    if (line.empty()) {
        return;
    }
    const long code = smtp_reply_code(line);
    if (code == 0) {
        // Not an SMTP reply line: libcurl waits for a proper one. Remember the first such
        // line when nothing proper came before it (an HTTP server, say).
        if (!m_any_line && m_exchanges.empty()) {
            m_non_smtp_greeting = one_line(line, k_max_detail_length);
        }
        m_any_line = true;
        return;
    }
    m_any_line = true;
    if (m_current.lines.empty()) {
        m_current.code = code;
    }
    m_current.lines.push_back(std::move(line));
    const std::string& last = m_current.lines.back();
    // A reply ends with a line "NNN text" or "NNN"; "NNN-text" continues it.
    if (last.size() > 3 && last[3] == '-') {
        return;
    }
    Exchange exchange;
    exchange.reply = std::move(m_current);
    m_current = Reply{};
    if (m_message_done && !m_end_answered) {
        // Even after libcurl gave up waiting and sent QUIT: this is the late answer to the
        // end of the message, and QUIT's comes after it.
        exchange.command = ".";
        m_end_answered = true;
        m_in_message = false;
    } else if (!m_pending.empty()) {
        exchange.command = std::move(m_pending.front());
        m_pending.pop_front();
        if (verb_of(exchange.command) == "DATA" && exchange.reply.code == 354) {
            m_in_message = true;
        }
    }
    m_exchanges.push_back(std::move(exchange));
}

void SmtpDialogue::message_bytes_sent(std::size_t count) {
    m_message_bytes += count;
}

void SmtpDialogue::message_finished() {
    if (m_in_message) {
        m_message_done = true;
    }
}

void SmtpDialogue::note(std::string_view text) {
    if (text.starts_with("Connected to ")) {
        m_connected = true;
    }
}

SmtpDialogue::Phase SmtpDialogue::phase() const {
    if (m_end_answered) {
        return Phase::finished;
    }
    if (m_message_done) {
        return Phase::end_of_data;
    }
    if (m_in_message) {
        return Phase::message;
    }
    if (!m_pending.empty()) {
        return Phase::reply;
    }
    if (m_exchanges.empty()) {
        return Phase::greeting;
    }
    return Phase::our_turn;
}

std::string SmtpDialogue::pending_command() const {
    return m_pending.empty() ? std::string() : m_pending.front();
}

std::vector<SmtpDialogue::Reply> SmtpDialogue::recipient_replies() const {
    std::vector<Reply> replies;
    for (const Exchange& exchange : m_exchanges) {
        if (verb_of(exchange.command) == "RCPT") {
            replies.push_back(exchange.reply);
        }
    }
    return replies;
}

bool SmtpDialogue::starttls_offered() const {
    for (const Exchange& exchange : std::views::reverse(m_exchanges)) {
        if (verb_of(exchange.command) != "EHLO") {
            continue;
        }
        if (exchange.reply.code < 200 || exchange.reply.code > 299) {
            return false;
        }
        // The first line names the server; the others list its extensions, "250-STARTTLS".
        for (std::size_t i = 1; i < exchange.reply.lines.size(); ++i) {
            std::string_view keyword = exchange.reply.lines[i];
            keyword.remove_prefix(std::min<std::size_t>(4, keyword.size()));
            keyword = trim(keyword);
            if (keyword.size() == 8 && iequals_prefix(keyword, "STARTTLS")) {
                return true;
            }
        }
        return false;
    }
    return false;
}

std::optional<SmtpDialogue::Reply> SmtpDialogue::starttls_reply() const {
    for (const Exchange& exchange : m_exchanges) {
        if (verb_of(exchange.command) == "STARTTLS") {
            return exchange.reply;
        }
    }
    return std::nullopt;
}

std::optional<SmtpDialogue::Reply> SmtpDialogue::end_of_data_reply() const {
    for (const Exchange& exchange : m_exchanges) {
        if (exchange.command == ".") {
            return exchange.reply;
        }
    }
    return std::nullopt;
}

std::string SmtpDialogue::reply_for(long code) const {
    for (const Exchange& exchange : std::views::reverse(m_exchanges)) {
        if (code != 0 && exchange.reply.code == code) {
            return exchange.reply.text();
        }
    }
    if (!m_current.lines.empty()) {
        return m_current.text();
    }
    return m_exchanges.empty() ? std::string() : m_exchanges.back().reply.text();
}

std::vector<Refusal> smtp_refusals(const std::vector<std::string>& addresses,
                                   const std::vector<SmtpDialogue::Reply>& replies) {
    std::vector<Refusal> refusals;
    for (std::size_t i = 0; i < replies.size() && i < addresses.size(); ++i) {
        const SmtpDialogue::Reply& reply = replies[i];
        if (reply.code >= 200 && reply.code <= 299) {
            continue;
        }
        Failure failure;
        failure.kind = (reply.code >= 500 && reply.code <= 599) ? Failure::Kind::permanent
                                                                : Failure::Kind::transient;
        failure.message =
            fmt::format("{}: {}", addresses[i], one_line(trim(reply.text()), k_max_detail_length));
        refusals.push_back(Refusal{addresses[i], std::move(failure)});
    }
    return refusals;
}

Failure smtp_all_refused(std::string_view url, const std::vector<Refusal>& refusals) {
    Failure failure;
    failure.kind = Failure::Kind::permanent;
    std::string detail;
    for (const Refusal& refusal : refusals) {
        if (refusal.failure.kind != Failure::Kind::permanent) {
            failure.kind = Failure::Kind::transient;
        }
        if (!detail.empty()) {
            detail += "; ";
        }
        detail += refusal.failure.message;
    }
    failure.message = fmt::format(
        "{}: {} the message: {}", url,
        refusals.size() == 1 ? "the recipient refused" : "every recipient refused", detail);
    return failure;
}

std::string smtp_unknown_outcome_message(std::string_view url, std::chrono::seconds waited) {
    return fmt::format("{}: no reply to the end of the message within {}: the server may have "
                       "accepted it; a retry may deliver a duplicate (same Message-ID)",
                       url, smtp_duration_text(waited));
}

namespace {

// What a failed transaction (libcurl's `rc`) comes to, in words that say where it stopped.
Failure explain_failure(const std::string& channel, CURLcode rc, CURL* curl, const Session& session,
                        const std::vector<std::string>& envelope, std::string_view curl_error) {
    const SmtpDialogue& dialogue = session.dialogue;
    const auto failure = [&channel](Failure::Kind kind, std::string_view detail) {
        Failure result;
        result.kind = kind;
        result.message = fmt::format("{}: {}", channel, detail);
        return result;
    };
    const bool timed_out =
        rc == CURLE_OPERATION_TIMEDOUT || (rc == CURLE_ABORTED_BY_CALLBACK && session.timed_out);
    if (rc == CURLE_ABORTED_BY_CALLBACK && !session.timed_out) {
        return failure(Failure::Kind::transient, k_cancelled_detail);
    }
    const SmtpDialogue::Phase phase =
        (rc == CURLE_ABORTED_BY_CALLBACK) ? session.timed_out_in : dialogue.phase();

    // A server that is not an SMTP server: its first words, rather than libcurl's "weird
    // server reply" or a timeout.
    if (const std::string greeting = dialogue.non_smtp_greeting(); !greeting.empty()) {
        return failure(Failure::Kind::transient,
                       fmt::format("the server's greeting is not SMTP: '{}'", greeting));
    }

    if (timed_out) {
        const std::string limit = smtp_duration_text(session.timeout);
        switch (phase) {
        case SmtpDialogue::Phase::end_of_data: {
            Failure result;
            result.kind = Failure::Kind::timeout;
            result.message = smtp_unknown_outcome_message(channel, session.data_timeout);
            return result;
        }
        case SmtpDialogue::Phase::message:
            return failure(Failure::Kind::timeout,
                           fmt::format("the server took no more of the message for {} (after {} "
                                       "of {} bytes)",
                                       limit,
                                       std::min(dialogue.message_bytes(), session.data.size()),
                                       session.data.size()));
        case SmtpDialogue::Phase::reply: {
            std::string command = rc == CURLE_ABORTED_BY_CALLBACK ? session.timed_out_waiting_for
                                                                  : dialogue.pending_command();
            const std::string verb = verb_of(command);
            if (verb != "MAIL" && verb != "RCPT") {
                command = verb; // EHLO's name, AUTH's secrets: the verb says enough
            }
            return failure(Failure::Kind::timeout,
                           fmt::format("no reply to {} within {}",
                                       one_line(command, k_max_detail_length), limit));
        }
        case SmtpDialogue::Phase::greeting:
            if (dialogue.connected()) {
                return failure(Failure::Kind::timeout,
                               channel.starts_with("smtps://")
                                   ? fmt::format("connected, but TLS and the greeting did not "
                                                 "complete within {}",
                                                 limit)
                                   : fmt::format("connected, but no greeting within {}", limit));
            }
            break;
        default:
            break;
        }
        if (rc == CURLE_ABORTED_BY_CALLBACK) {
            return failure(Failure::Kind::timeout, fmt::format("no progress within {}", limit));
        }
    }

    // Every recipient refused (libcurl: "RCPT failed: 550 (last error)").
    const auto replies = dialogue.recipient_replies();
    if (!replies.empty() && replies.size() == envelope.size() &&
        phase != SmtpDialogue::Phase::message && phase != SmtpDialogue::Phase::end_of_data) {
        auto refusals = smtp_refusals(envelope, replies);
        if (refusals.size() == envelope.size()) {
            return smtp_all_refused(channel, refusals);
        }
    }

    // The connection dropped while the message went out, or before its end was answered.
    if (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING) {
        const std::size_t total = session.data.size();
        const std::size_t sent = std::min(dialogue.message_bytes(), total);
        if (phase == SmtpDialogue::Phase::message ||
            (phase == SmtpDialogue::Phase::end_of_data && rc == CURLE_SEND_ERROR)) {
            return failure(Failure::Kind::transient,
                           fmt::format("the server closed the connection while the message was "
                                       "being sent (after {} of {} bytes)",
                                       sent, total));
        }
        if (phase == SmtpDialogue::Phase::end_of_data) {
            return failure(Failure::Kind::transient,
                           fmt::format("the server closed the connection before it answered the "
                                       "end of the message (after all {} bytes)",
                                       total));
        }
    }

    // A certificate that cannot be verified: retried for a while, in its own words each time.
    if (curl::is_certificate_failure(rc)) {
        Failure result =
            failure(Failure::Kind::transient,
                    curl::certificate_failure_detail(
                        rc, curl::certificate_problem(curl, curl_error), "the relay's admin"));
        result.transient_for = curl::k_certificate_retry_window;
        return result;
    }

    long response_code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response_code);
    const std::string last_reply = dialogue.reply_for(response_code);
    Failure result;
    result.kind = classify_smtp_failure(rc, response_code, last_reply);
    result.message = smtp_failure_message(channel, rc, response_code, last_reply, curl_error);
    return result;
}

} // namespace

// ---------------------------------------------------------------------------------------
// SmtpTransport

SmtpTransport::SmtpTransport(SmtpSettings settings) : m_settings(std::move(settings)) {
    auto normalized = normalize_smtp_url(m_settings.url);
    if (normalized) {
        m_settings.url = std::move(*normalized);
    } else {
        m_url_error = std::move(normalized.error());
    }
    const std::string& password = m_settings.password;
    if (!password.empty()) {
        m_secrets.add(password);
        m_secrets.add_exact(base64(password));                              // AUTH LOGIN
        m_secrets.add_exact(base64(std::string(1, '\0') + m_settings.user + // AUTH PLAIN
                                   std::string(1, '\0') + password));
    }
}

std::string SmtpTransport::name() const {
    return m_settings.url;
}

std::vector<std::string> SmtpTransport::recipients() const {
    return m_settings.to;
}

std::expected<void, Failure> SmtpTransport::deliver(const Alert& alert) {
    auto receipt = deliver_to(alert, {});
    if (!receipt) {
        return std::unexpected(std::move(receipt.error()));
    }
    return {}; // somebody took it; the refused are the Receipt's business
}

std::expected<Receipt, Failure> SmtpTransport::deliver_to(const Alert& alert,
                                                          const std::vector<std::string>& only) {
    auto done = attempt(alert, only);
    if (!done) {
        return std::unexpected(redacted(std::move(done.error()), m_secrets));
    }
    return redacted(std::move(*done), m_secrets);
}

std::expected<Receipt, Failure> SmtpTransport::attempt(const Alert& alert,
                                                       const std::vector<std::string>& only) {
    const auto fail = [this](Failure::Kind kind, std::string_view detail) {
        Failure failure;
        failure.kind = kind;
        failure.message = fmt::format("{}: {}", m_settings.url, detail);
        return std::unexpected(std::move(failure));
    };
    if (m_cancelled.load(std::memory_order_acquire)) {
        return fail(Failure::Kind::transient, k_cancelled_detail);
    }
    if (!m_url_error.empty()) {
        Failure failure;
        failure.kind = Failure::Kind::permanent;
        failure.message = m_url_error;
        return std::unexpected(std::move(failure));
    }
    if (m_settings.to.empty()) {
        return fail(Failure::Kind::permanent, "no recipients");
    }
    if (!is_safe_address(m_settings.from)) {
        return fail(Failure::Kind::permanent,
                    fmt::format("invalid sender address '{}'",
                                one_line(m_settings.from, k_max_detail_length)));
    }
    for (const auto& address : m_settings.to) {
        if (!is_safe_address(address)) {
            return fail(Failure::Kind::permanent,
                        fmt::format("invalid recipient address '{}'",
                                    one_line(address, k_max_detail_length)));
        }
    }
    // The envelope: the configured recipients asked for, in the configured order. An address
    // asked for that is not configured (any more) is not written to.
    std::vector<std::string> envelope;
    for (const auto& address : m_settings.to) {
        if (only.empty() || std::ranges::find(only, address) != only.end()) {
            envelope.push_back(address);
        }
    }
    if (envelope.empty()) {
        Receipt nothing;
        nothing.notes.push_back(fmt::format(
            "{}: nothing sent: none of the recipients to retry is among the -m addresses now",
            m_settings.url));
        return nothing;
    }

    // Declared before the handle: the callbacks use it until the handle is cleaned up.
    Session session;
    session.timeout = std::max(std::chrono::seconds(1), m_settings.timeout);
    session.data_timeout = std::max(session.timeout, m_settings.data_timeout);
    session.data = render_mail(alert, {m_settings.from, m_settings.to}, LineEnding::crlf);
    std::array<char, CURL_ERROR_SIZE> error_buffer{};
    curl::AbortRule abort_rule{&m_cancelled, [&session] { return session.expired(); }};

    curl_slist* raw_recipients = nullptr;
    for (const auto& address : envelope) {
        curl_slist* appended = curl_slist_append(raw_recipients, ("<" + address + ">").c_str());
        if (appended == nullptr) {
            curl_slist_free_all(raw_recipients);
            return fail(Failure::Kind::transient, "out of memory");
        }
        raw_recipients = appended;
    }
    curl::Slist recipients(raw_recipients);

    curl::Easy handle(curl_easy_init());
    if (!handle) {
        return fail(Failure::Kind::transient, "cannot initialise libcurl");
    }
    CURL* curl = handle.get();

    const bool implicit_tls = m_settings.url.starts_with("smtps://");
    const bool has_user = !m_settings.user.empty();
    // Credentials are never sent in clear: a user makes STARTTLS mandatory, whatever the
    // caller asked for.
    const bool tls_mandatory = m_settings.require_tls || has_user;

    // libcurl takes the URL path as the EHLO domain; give it this host's name rather than
    // its default "localhost", which strict servers refuse.
    std::string url = m_settings.url;
    if (is_plain_host_name(alert.host)) {
        url += "/" + alert.host;
    }

    const std::string mail_from = "<" + m_settings.from + ">";
    const long timeout = static_cast<long>(session.timeout.count());

    CURLcode rc = CURLE_OK;
    const auto set = [&rc, curl](CURLoption option, auto value) {
        if (rc == CURLE_OK) {
            rc = curl_easy_setopt(curl, option, value);
        }
    };
    set(CURLOPT_ERRORBUFFER, error_buffer.data());
    set(CURLOPT_NOSIGNAL, 1L);
    set(CURLOPT_URL, url.c_str());
    set(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    set(CURLOPT_MAIL_FROM, mail_from.c_str());
    set(CURLOPT_MAIL_RCPT, recipients.get());
    // A refused recipient does not stop the mail to the others.
#if LIBCURL_VERSION_NUM >= 0x080200
    set(CURLOPT_MAIL_RCPT_ALLOWFAILS, 1L);
#else
    set(CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L);
#endif
    set(CURLOPT_READFUNCTION, &read_message);
    set(CURLOPT_READDATA, &session);
    set(CURLOPT_UPLOAD, 1L);
    set(CURLOPT_WRITEFUNCTION, &discard_output);
    set(CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(session.data.size()));
    set(CURLOPT_SSL_VERIFYPEER, 1L);
    set(CURLOPT_SSL_VERIFYHOST, 2L);
    if (!m_settings.cacert.empty()) {
        set(CURLOPT_CAINFO, m_settings.cacert.c_str());
    }
    if (!implicit_tls) {
        set(CURLOPT_USE_SSL, static_cast<long>(tls_mandatory ? CURLUSESSL_ALL : CURLUSESSL_TRY));
    }
    if (has_user) {
        // Reached only with smtps or CURLUSESSL_ALL, so libcurl stops before AUTH when TLS
        // cannot be had.
        set(CURLOPT_USERNAME, m_settings.user.c_str());
        set(CURLOPT_PASSWORD, m_settings.password.c_str());
    }
    // Time limits: connecting (TCP, TLS, greeting, EHLO, STARTTLS, AUTH) within --timeout;
    // every reply within --data-timeout by libcurl, and within --timeout by the progress
    // callback but for the reply to the end of the message (Session::expired). No limit on
    // the whole: it would cut the wait for that reply, when a retry makes a second copy.
    set(CURLOPT_CONNECTTIMEOUT, timeout);
    set(CURLOPT_TIMEOUT, 0L);
    set(CURLOPT_SERVER_RESPONSE_TIMEOUT, static_cast<long>(session.data_timeout.count()));
    // Close (QUIT) within curl_easy_perform(), while the callbacks still watch the clock,
    // rather than in curl_easy_cleanup() without them.
    set(CURLOPT_FORBID_REUSE, 1L);
    set(CURLOPT_DEBUGFUNCTION, &record_debug);
    set(CURLOPT_DEBUGDATA, &session);
    set(CURLOPT_VERBOSE, 1L);
    if (rc == CURLE_OK) {
        rc = curl::abort_when(curl, &abort_rule);
    }
    if (rc != CURLE_OK) {
        return fail(Failure::Kind::permanent,
                    fmt::format("libcurl refused an option: {}", curl_easy_strerror(rc)));
    }

    session.touch();
    rc = curl_easy_perform(curl);
    const SmtpDialogue& dialogue = session.dialogue;
    const auto accepted = dialogue.end_of_data_reply();
    if (rc == CURLE_OK || (accepted && accepted->code >= 200 && accepted->code <= 299)) {
        // Delivered (a failure after the server took the message, in QUIT, changes nothing).
        Receipt receipt;
        receipt.refused = smtp_refusals(envelope, dialogue.recipient_replies());
        if (!implicit_tls) {
            const auto starttls = dialogue.starttls_reply();
            if (!starttls) {
                receipt.notes.push_back(fmt::format(
                    "{}: sent in clear text: the server offers no STARTTLS", m_settings.url));
            } else if (starttls->code != 220) {
                receipt.notes.push_back(fmt::format(
                    "{}: sent in clear text: the server refused STARTTLS: {}", m_settings.url,
                    one_line(trim(starttls->text()), k_max_detail_length)));
            }
        }
        return receipt;
    }
    return std::unexpected(
        explain_failure(m_settings.url, rc, curl, session, envelope, error_buffer.data()));
}

void SmtpTransport::cancel() {
    m_cancelled.store(true, std::memory_order_release);
}

} // namespace crashmail
