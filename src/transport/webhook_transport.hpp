#pragma once
// Webhook channels (--webhook, --slack, --discord, --alertmanager): one POST per alert
// through an HttpClient, plus the start-up helpers that check what the user gave.

#include "transport/http_client.hpp"
#include "transport/transport.hpp"
#include "util/redact.hpp"

#include <atomic>
#include <chrono>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

enum class WebhookFlavor { json, slack, discord, alertmanager };

// "webhook", "slack", "discord" or "alertmanager".
std::string_view flavor_name(WebhookFlavor flavor);

struct WebhookSettings {
    WebhookFlavor flavor = WebhookFlavor::json;
    std::string url;                  // as normalize_webhook_url() returned it
    std::vector<std::string> headers; // resolved "Name: value" (resolve_webhook_headers())
    std::string hmac_secret;          // empty: no X-Crashmail-Signature
    std::string cacert;               // empty: the system's CA bundle
    std::chrono::seconds timeout{30};
    // More secrets to keep out of error words: the values ${VAR} references in headers
    // expanded to (header_variables()).
    std::vector<std::string> secrets;
};

class WebhookTransport final : public Transport {
public:
    WebhookTransport(WebhookSettings settings, std::shared_ptr<HttpClient> client);

    // "<flavor> <redacted URL>", e.g. "slack https://hooks.slack.com/services/…".
    std::string name() const override;

    // "<flavor> <full target URL>": unredacted, so two Slack hooks on the same host differ.
    // Never logged (Transport::identity()).
    std::string identity() const override;

    // Posts the flavour's payload for `alert` once. Sends Content-Type: application/json,
    // User-Agent: crashmail/<version>, X-Crashmail-Id: <alert id> (an idempotency key: a
    // retried delivery carries the same id), X-Crashmail-Signature: sha256=<hex> when a
    // secret is set (HMAC-SHA256 of the exact body bytes), then the user's headers.
    // Returns a Failure classified by classify_http_response()/classify_curl_error(), its
    // message starting with name(): "slack https://hooks.slack.com/services/…: HTTP 404 ...".
    // After cancel(): a transient "<name()>: cancelled: crashmail is stopping", at once.
    // The message is redacted of secrets() (a server that echoes the request path or a
    // header in its error body), so no log, failed/ record or --status shows them.
    std::expected<void, Failure> deliver(const Alert& alert) override;

    // What this channel keeps out of its error words: url_secrets() of its URLs, the HMAC
    // key, settings.secrets and the credentials of Authorization headers.
    const Secrets& secrets() const { return m_secrets; }

    // Ends the POST in progress within about a second (through HttpRequest::cancel, which
    // every request of this transport carries); later deliveries fail at once. A POST cut
    // after the server took it may be sent again later with the same X-Crashmail-Id.
    void cancel() override;

    // Alertmanager wants every message (it resolves its alerts from recovery notices that
    // other channels skip); the other flavours as Transport::wants().
    bool wants(const Alert& alert) const override;

    // The URL requests go to: settings.url, or for Alertmanager its /api/v2/alerts endpoint.
    const std::string& target_url() const { return m_target_url; }

    // The request deliver() would send for `alert` (used by deliver() and by tests); its
    // `cancel` points at this transport's cancel flag.
    HttpRequest build_request(const Alert& alert) const;

private:
    WebhookSettings m_settings;
    std::shared_ptr<HttpClient> m_client;
    std::string m_target_url;
    std::string m_display_url;
    Secrets m_secrets;
    std::atomic<bool> m_cancelled{false};
};

// Returns the flavour's JSON body for `alert`, serialised as it goes on the wire.
std::string webhook_body(WebhookFlavor flavor, const Alert& alert);

// Returns lowercase hex HMAC-SHA256 of `data` keyed with `key` (OpenSSL).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// Returns "sha256=<hex>", the value of X-Crashmail-Signature for `body`.
std::string webhook_signature(std::string_view secret, std::string_view body);

// Checks --webhook-header specs ("Name: value") and expands ${VAR} in values with `getenv`.
// Name must be an HTTP token (letters, digits, !#$%&'*+-.^_`|~); the value may not be empty
// after expansion nor hold CR, LF or other control characters (tab allowed). Only ${NAME}
// (NAME = [A-Za-z_][A-Za-z0-9_]*) is expanded; any other '$' is kept. Returns the headers as
// "Name: value", or an error naming the header (never its expanded value) and, for an unset
// variable, the variable.
std::expected<std::vector<std::string>, std::string> resolve_webhook_headers(
    const std::vector<std::string>& specs,
    const std::function<std::optional<std::string>(const std::string&)>& getenv);

// The names of the environment variables that ${NAME} references in `specs` name, in order,
// each once (what resolve_webhook_headers() expands; invalid references are left out).
std::vector<std::string> header_variables(const std::vector<std::string>& specs);

// Checks a webhook URL with libcurl's URL parser: it must be absolute, http or https, with a
// host. Returns the normalised URL or an error such as "ftp://x: only http and https URLs are
// supported".
std::expected<std::string, std::string> normalize_webhook_url(std::string_view url);

// Returns the Alertmanager endpoint for a base URL: "http://am:9093" and "http://am:9093/"
// give "http://am:9093/api/v2/alerts"; a path prefix is kept ("http://h/am" ->
// "http://h/am/api/v2/alerts"); a URL already ending in /api/v2/alerts is kept as it is.
std::expected<std::string, std::string> alertmanager_alerts_url(std::string_view base);

// Reads a secret from the first line of `path`, trailing whitespace (and CR) removed.
// Returns an error "<path>: <strerror>" when it cannot be read, or "<path>: the secret is
// empty" when the first line is empty.
std::expected<std::string, std::string> read_secret_file(const std::string& path);

} // namespace crashmail
