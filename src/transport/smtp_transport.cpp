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

// The message being uploaded; libcurl reads it in pieces and dot-stuffs it itself.
struct UploadSource {
    std::string data;
    std::size_t position = 0;
};

std::size_t read_message(char* buffer, std::size_t size, std::size_t count, void* user) {
    auto* source = static_cast<UploadSource*>(user);
    const std::size_t wanted = size * count;
    const std::size_t left = source->data.size() - source->position;
    const std::size_t n = std::min(wanted, left);
    std::memcpy(buffer, source->data.data() + source->position, n);
    source->position += n;
    return n;
}

// Collects the server's replies from libcurl's debug stream. A multi-line reply
// ("250-first\r\n250 last") is kept as one string, its lines joined by spaces.
class ReplyRecorder {
public:
    void feed(std::string_view bytes) {
        m_partial.append(bytes);
        std::size_t newline;
        while ((newline = m_partial.find('\n')) != std::string::npos) {
            std::string line = m_partial.substr(0, newline);
            m_partial.erase(0, newline + 1);
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            add_line(line);
        }
    }

    // The last reply with code `code` (libcurl's CURLINFO_RESPONSE_CODE), else the last reply.
    // libcurl sends QUIT after a failure, so the very last reply is often "221 Bye" while the
    // one that explains the failure came before it.
    std::string reply_for(long code) const {
        for (const std::string& reply : std::views::reverse(m_replies)) {
            if (code != 0 && smtp_reply_code(reply) == code) {
                return reply;
            }
        }
        if (!m_current.empty()) {
            return m_current;
        }
        return m_replies.empty() ? std::string() : m_replies.back();
    }

private:
    void add_line(std::string_view line) {
        if (line.empty()) {
            return;
        }
        if (!m_current.empty()) {
            m_current += ' ';
        }
        m_current.append(line);
        // A reply ends with a line "NNN text" or "NNN"; "NNN-text" continues it.
        const bool continued = line.size() > 3 && line[3] == '-';
        if (!continued) {
            m_replies.push_back(std::move(m_current));
            m_current.clear();
        }
    }

    std::string m_partial;
    std::string m_current;
    std::vector<std::string> m_replies;
};

// SMTP sends nothing to the write callback during a mail transaction, but libcurl's default
// would write to stdout, which is supervisord's protocol channel: discard, never print.
std::size_t discard_output(char* /*data*/, std::size_t size, std::size_t count, void* /*user*/) {
    return size * count;
}

int record_debug(CURL* /*handle*/, curl_infotype type, char* data, std::size_t size, void* user) {
    if (type == CURLINFO_HEADER_IN) {
        static_cast<ReplyRecorder*>(user)->feed(std::string_view(data, size));
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

SmtpTransport::SmtpTransport(SmtpSettings settings) : m_settings(std::move(settings)) {
    auto normalized = normalize_smtp_url(m_settings.url);
    if (normalized) {
        m_settings.url = std::move(*normalized);
    } else {
        m_url_error = std::move(normalized.error());
    }
}

std::string SmtpTransport::name() const {
    return m_settings.url;
}

std::expected<void, Failure> SmtpTransport::deliver(const Alert& alert) {
    const auto fail = [this](Failure::Kind kind, std::string_view detail) {
        return std::unexpected(
            Failure{kind, fmt::format("{}: {}", m_settings.url, detail), std::nullopt});
    };
    if (m_cancelled.load(std::memory_order_acquire)) {
        return fail(Failure::Kind::transient, k_cancelled_detail);
    }
    if (!m_url_error.empty()) {
        return std::unexpected(Failure{Failure::Kind::permanent, m_url_error, std::nullopt});
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

    UploadSource source{render_mail(alert, {m_settings.from, m_settings.to}, LineEnding::crlf)};
    ReplyRecorder replies;
    std::array<char, CURL_ERROR_SIZE> error_buffer{};

    curl_slist* raw_recipients = nullptr;
    for (const auto& address : m_settings.to) {
        curl_slist* appended = curl_slist_append(raw_recipients, ("<" + address + ">").c_str());
        if (appended == nullptr) {
            curl_slist_free_all(raw_recipients);
            return fail(Failure::Kind::transient, "out of memory");
        }
        raw_recipients = appended;
    }
    curl::Slist recipients(raw_recipients);
    const std::string mail_from = "<" + m_settings.from + ">";
    const long timeout = std::max<long>(1, static_cast<long>(m_settings.timeout.count()));

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
    set(CURLOPT_READFUNCTION, &read_message);
    set(CURLOPT_READDATA, &source);
    set(CURLOPT_UPLOAD, 1L);
    set(CURLOPT_WRITEFUNCTION, &discard_output);
    set(CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(source.data.size()));
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
    set(CURLOPT_CONNECTTIMEOUT, timeout);
    set(CURLOPT_TIMEOUT, timeout);
    set(CURLOPT_DEBUGFUNCTION, &record_debug);
    set(CURLOPT_DEBUGDATA, &replies);
    set(CURLOPT_VERBOSE, 1L);
    if (rc == CURLE_OK) {
        rc = curl::abort_when(curl, &m_cancelled);
    }
    if (rc != CURLE_OK) {
        return fail(Failure::Kind::permanent,
                    fmt::format("libcurl refused an option: {}", curl_easy_strerror(rc)));
    }

    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        return {};
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        return fail(Failure::Kind::transient, k_cancelled_detail);
    }
    long response_code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response_code);
    const std::string last_reply = replies.reply_for(response_code);
    return std::unexpected(Failure{
        classify_smtp_failure(rc, response_code, last_reply),
        smtp_failure_message(m_settings.url, rc, response_code, last_reply, error_buffer.data()),
        std::nullopt});
}

void SmtpTransport::cancel() {
    m_cancelled.store(true, std::memory_order_release);
}

} // namespace crashmail
