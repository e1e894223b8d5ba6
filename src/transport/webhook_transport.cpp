#include "transport/webhook_transport.hpp"

#include "transport/webhook_payloads.hpp"
#include "util/curl_handles.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <curl/curl.h>
#include <fstream>
#include <memory>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace crashmail {
namespace {

constexpr std::string_view k_alerts_path = "/api/v2/alerts";

bool is_token_char(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_forbidden_in_value(char c) {
    auto byte = static_cast<unsigned char>(c);
    return (byte < 0x20 && c != '\t') || byte == 0x7f;
}

bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
    return is_name_start(c) || (c >= '0' && c <= '9');
}

// The header spec as it may appear in an error: the name only, since a literal value may be
// a token the user did not mean to show in a log.
std::string header_label(std::string_view spec) {
    auto colon = spec.find(':');
    std::string_view name = colon == std::string_view::npos ? spec : spec.substr(0, colon);
    std::string label;
    for (char c : name.substr(0, 80)) {
        label += is_forbidden_in_value(c) ? '?' : c;
    }
    return "--webhook-header '" + label + (colon == std::string_view::npos ? "'" : ": …'");
}

} // namespace

std::string_view flavor_name(WebhookFlavor flavor) {
    switch (flavor) {
    case WebhookFlavor::json:
        return "webhook";
    case WebhookFlavor::slack:
        return "slack";
    case WebhookFlavor::discord:
        return "discord";
    case WebhookFlavor::alertmanager:
        return "alertmanager";
    }
    return "webhook";
}

std::string webhook_body(WebhookFlavor flavor, const Alert& alert) {
    switch (flavor) {
    case WebhookFlavor::json:
        return serialize_payload(webhook_document(alert));
    case WebhookFlavor::slack:
        return serialize_payload(slack_payload(alert));
    case WebhookFlavor::discord:
        return serialize_payload(discord_payload(alert));
    case WebhookFlavor::alertmanager:
        return serialize_payload(alertmanager_payload(alert));
    }
    return serialize_payload(webhook_document(alert));
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    // HMAC() accepts a NULL key only with length 0; give it a valid pointer in every case.
    static const unsigned char k_empty = 0;
    const void* key_bytes = key.empty() ? static_cast<const void*>(&k_empty) : key.data();
    if (key.size() > static_cast<std::size_t>(INT_MAX) ||
        HMAC(EVP_sha256(), key_bytes, static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest,
             &length) == nullptr) {
        return {};
    }
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(length * 2);
    for (unsigned int i = 0; i < length; ++i) {
        hex += k_hex[digest[i] >> 4];
        hex += k_hex[digest[i] & 0x0f];
    }
    return hex;
}

std::string webhook_signature(std::string_view secret, std::string_view body) {
    return "sha256=" + hmac_sha256_hex(secret, body);
}

std::expected<std::vector<std::string>, std::string> resolve_webhook_headers(
    const std::vector<std::string>& specs,
    const std::function<std::optional<std::string>(const std::string&)>& getenv) {
    std::vector<std::string> headers;
    headers.reserve(specs.size());
    for (const std::string& spec : specs) {
        const std::string label = header_label(spec);
        if (spec.find_first_of("\r\n") != std::string::npos) {
            return std::unexpected(label + ": CR and LF are not allowed in a header");
        }
        auto colon = spec.find(':');
        if (colon == std::string::npos) {
            return std::unexpected(label + ": expected 'Name: value'");
        }
        std::string_view name = std::string_view(spec).substr(0, colon);
        if (name.empty()) {
            return std::unexpected(label + ": the header name is empty");
        }
        for (char c : name) {
            if (!is_token_char(c)) {
                return std::unexpected(label + ": the header name may only hold letters, digits "
                                               "and !#$%&'*+-.^_`|~");
            }
        }
        std::string_view raw = trim(std::string_view(spec).substr(colon + 1), " \t");
        std::string value;
        for (std::size_t i = 0; i < raw.size();) {
            if (raw[i] == '$' && i + 1 < raw.size() && raw[i + 1] == '{') {
                auto close = raw.find('}', i + 2);
                if (close == std::string_view::npos) {
                    return std::unexpected(label + ": '${' without a closing '}'");
                }
                std::string variable(raw.substr(i + 2, close - i - 2));
                bool valid = !variable.empty() && is_name_start(variable.front());
                for (char c : variable) {
                    valid = valid && is_name_char(c);
                }
                if (!valid) {
                    return std::unexpected(label + ": '${" + variable +
                                           "}' is not a valid environment variable name");
                }
                std::optional<std::string> replacement = getenv(variable);
                if (!replacement) {
                    return std::unexpected(label + ": environment variable " + variable +
                                           " is not set");
                }
                value += *replacement;
                i = close + 1;
            } else {
                value += raw[i];
                ++i;
            }
        }
        for (char c : value) {
            if (c == '\r' || c == '\n') {
                return std::unexpected(label +
                                       ": CR and LF are not allowed in a header (after expanding "
                                       "environment variables)");
            }
            if (is_forbidden_in_value(c)) {
                return std::unexpected(label + ": control characters are not allowed in a header");
            }
        }
        value = std::string(trim(value, " \t"));
        if (value.empty()) {
            return std::unexpected(label + ": the header value is empty");
        }
        headers.push_back(std::string(name) + ": " + value);
    }
    return headers;
}

std::vector<std::string> header_variables(const std::vector<std::string>& specs) {
    std::vector<std::string> names;
    for (const std::string& spec : specs) {
        for (std::size_t at = spec.find("${"); at != std::string::npos;
             at = spec.find("${", at + 2)) {
            const std::size_t close = spec.find('}', at + 2);
            if (close == std::string::npos) {
                break;
            }
            std::string name = spec.substr(at + 2, close - at - 2);
            bool valid = !name.empty() && is_name_start(name.front());
            for (char c : name) {
                valid = valid && is_name_char(c);
            }
            if (valid && std::find(names.begin(), names.end(), name) == names.end()) {
                names.push_back(std::move(name));
            }
        }
    }
    return names;
}

std::expected<std::string, std::string> normalize_webhook_url(std::string_view url) {
    const std::string text(url);
    curl::Url handle(curl_url());
    if (!handle) {
        return std::unexpected(text + ": cannot allocate a URL parser");
    }
    if (CURLUcode code = curl_url_set(handle.get(), CURLUPART_URL, text.c_str(), 0);
        code != CURLUE_OK) {
        return std::unexpected(text + ": " + curl_url_strerror(code));
    }
    std::string scheme = curl::url_part(handle.get(), CURLUPART_SCHEME);
    if (scheme != "http" && scheme != "https") {
        return std::unexpected(text + ": only http and https URLs are supported");
    }
    if (curl::url_part(handle.get(), CURLUPART_HOST).empty()) {
        return std::unexpected(text + ": the URL has no host");
    }
    std::string normalized = curl::url_part(handle.get(), CURLUPART_URL);
    if (normalized.empty()) {
        return std::unexpected(text + ": cannot be parsed");
    }
    return normalized;
}

std::expected<std::string, std::string> alertmanager_alerts_url(std::string_view base) {
    auto normalized = normalize_webhook_url(base);
    if (!normalized) {
        return normalized;
    }
    curl::Url handle(curl_url());
    if (!handle || curl_url_set(handle.get(), CURLUPART_URL, normalized->c_str(), 0) != CURLUE_OK) {
        return std::unexpected(std::string(base) + ": cannot be parsed");
    }
    std::string path = curl::url_part(handle.get(), CURLUPART_PATH);
    while (!path.empty() && path.back() == '/') {
        path.pop_back();
    }
    if (!path.ends_with(k_alerts_path)) {
        path += k_alerts_path;
    }
    if (curl_url_set(handle.get(), CURLUPART_PATH, path.c_str(), 0) != CURLUE_OK) {
        return std::unexpected(std::string(base) + ": cannot add " + std::string(k_alerts_path));
    }
    return curl::url_part(handle.get(), CURLUPART_URL);
}

std::expected<std::string, std::string> read_secret_file(const std::string& path) {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (file == nullptr) {
        return std::unexpected(path + ": " + std::strerror(errno));
    }
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(file, &std::fclose);
    std::string line;
    constexpr std::size_t k_max_secret = 64 * 1024;
    int c = 0;
    while ((c = std::fgetc(file)) != EOF && c != '\n' && line.size() < k_max_secret) {
        line += static_cast<char>(c);
    }
    if (std::ferror(file)) {
        return std::unexpected(path + ": " + std::strerror(errno));
    }
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
        line.pop_back();
    }
    if (line.empty()) {
        return std::unexpected(path + ": the secret is empty");
    }
    return line;
}

WebhookTransport::WebhookTransport(WebhookSettings settings, std::shared_ptr<HttpClient> client)
    : m_settings(std::move(settings)), m_client(std::move(client)), m_target_url(m_settings.url) {
    if (m_settings.flavor == WebhookFlavor::alertmanager) {
        if (auto alerts = alertmanager_alerts_url(m_settings.url)) {
            m_target_url = *alerts;
        }
    }
    m_display_url = redact_url(m_target_url);
    m_secrets.add_all(url_secrets(m_settings.url));
    m_secrets.add_all(url_secrets(m_target_url));
    m_secrets.add(m_settings.hmac_secret);
    for (const std::string& secret : m_settings.secrets) {
        m_secrets.add(secret);
    }
    for (const std::string& header : m_settings.headers) {
        // "Authorization: Bearer TOKEN": the credentials, and the token alone.
        const auto colon = header.find(':');
        std::string_view name = trim(std::string_view(header).substr(0, colon));
        if (colon == std::string::npos || name.size() != 13 ||
            !std::equal(name.begin(), name.end(), "authorization", [](char a, char b) {
                return (a >= 'A' && a <= 'Z' ? char(a - 'A' + 'a') : a) == b;
            })) {
            continue;
        }
        std::string_view value = trim(std::string_view(header).substr(colon + 1));
        m_secrets.add(value);
        if (auto space = value.rfind(' '); space != std::string_view::npos) {
            m_secrets.add(value.substr(space + 1));
        }
    }
}

std::string WebhookTransport::name() const {
    return std::string(flavor_name(m_settings.flavor)) + " " + m_display_url;
}

std::string WebhookTransport::identity() const {
    return std::string(flavor_name(m_settings.flavor)) + " " + m_target_url;
}

HttpRequest WebhookTransport::build_request(const Alert& alert) const {
    HttpRequest request;
    request.url = m_target_url;
    request.display_url = name(); // failures name the channel: "slack https://…"
    request.body = webhook_body(m_settings.flavor, alert);
    request.content_type = "application/json";
    request.cacert = m_settings.cacert;
    request.timeout = m_settings.timeout;
    request.cancel = &m_cancelled;
    request.headers.emplace_back("User-Agent: crashmail/" CRASHMAIL_VERSION);
    request.headers.push_back("X-Crashmail-Id: " + one_line(alert.id, 200));
    if (!m_settings.hmac_secret.empty()) {
        request.headers.push_back("X-Crashmail-Signature: " +
                                  webhook_signature(m_settings.hmac_secret, request.body));
    }
    request.headers.insert(request.headers.end(), m_settings.headers.begin(),
                           m_settings.headers.end());
    return request;
}

bool WebhookTransport::wants(const Alert& alert) const {
    return m_settings.flavor == WebhookFlavor::alertmanager || Transport::wants(alert);
}

std::expected<void, Failure> WebhookTransport::deliver(const Alert& alert) {
    if (m_cancelled.load(std::memory_order_acquire)) {
        return std::unexpected(Failure{Failure::Kind::transient,
                                       name() + ": " + std::string(k_cancelled_detail),
                                       std::nullopt});
    }
    HttpRequest request = build_request(alert);
    auto response = m_client->post(request);
    if (!response) {
        return std::unexpected(redacted(std::move(response.error()), m_secrets));
    }
    std::optional<std::string_view> retry_after;
    if (response->retry_after) {
        retry_after = *response->retry_after;
    }
    // Redacted before the body is cut to its first 200 bytes: a secret cut in half there
    // would no longer be found.
    auto done = classify_http_response(response->status, retry_after,
                                       m_secrets.redact(response->body_start), name());
    if (!done) {
        return std::unexpected(redacted(std::move(done.error()), m_secrets));
    }
    return done;
}

void WebhookTransport::cancel() {
    m_cancelled.store(true, std::memory_order_release);
}

} // namespace crashmail
