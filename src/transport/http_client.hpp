#pragma once
// HTTP POST behind a small interface, so webhook transports can be tested with a fake that
// records requests, and the pure rules that turn an HTTP answer into success or a Failure.

#include "transport/transport.hpp"
#include "util/http_status.hpp"
#include "util/text.hpp"

#include <atomic>
#include <chrono>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

struct HttpRequest {
    std::string url;
    std::vector<std::string> headers; // "Name: value", sent as given
    std::string body;                 // sent byte for byte
    std::string content_type = "application/json";
    std::string cacert;               // CA bundle file; empty: the system's
    std::chrono::seconds timeout{30}; // bounds the whole exchange
    std::string display_url;          // what failures name; empty: redact_url(url)
    // When set and true (another thread may set it at any time), the exchange is not started
    // or ends within about a second: a transient Failure "<url>: cancelled: crashmail is
    // stopping". Must outlive post().
    const std::atomic<bool>* cancel = nullptr;
};

struct HttpResponse {
    long status = 0;
    std::optional<std::string> retry_after; // the Retry-After header's value, when sent
    std::string body_start;                 // at most k_body_start_bytes of the body
};

inline constexpr std::size_t k_body_start_bytes = 512;

class HttpClient {
public:
    virtual ~HttpClient() = default;
    // Sends one POST. Returns the response, whatever its status, or a Failure when no HTTP
    // answer arrived (connection refused, DNS, TLS, timeout).
    virtual std::expected<HttpResponse, Failure> post(const HttpRequest& request) = 0;
};

// libcurl's easy interface, one handle per request (safe to call from several threads).
// TLS peers are always verified (against request.cacert when set); redirects are not
// followed; only http and https are spoken; no signals are used for timeouts.
class CurlHttpClient final : public HttpClient {
public:
    CurlHttpClient();
    std::expected<HttpResponse, Failure> post(const HttpRequest& request) override;
};

// Decides what an HTTP answer means:
//   2xx          success
//   408, 429     transient; 429 keeps Retry-After (delta-seconds or an HTTP-date, relative to
//                `now`) in Failure::retry_after
//   5xx          transient, with Retry-After like 429
//   other        permanent (3xx: redirects are not followed for a POST; 4xx: the request is
//                wrong and will stay wrong)
// The message reads "<url>: HTTP 503 Service Unavailable: <start of body>" on one line, the
// body cut to about 200 bytes with control characters replaced by spaces.
std::expected<void, Failure> classify_http_response(
    long status, std::optional<std::string_view> retry_after, std::string_view body_start,
    std::string_view url,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// Decides what a libcurl error (a CURLcode) means: a timeout is Kind::timeout; a failed TLS
// verification, a bad CA file, a malformed URL or an unsupported scheme is permanent; an
// abort by HttpRequest::cancel (CURLE_ABORTED_BY_CALLBACK) is transient and says
// "cancelled: crashmail is stopping" instead of `detail`; any other error (refused, reset,
// DNS, ...) is transient. `detail` is libcurl's error text.
Failure classify_curl_error(int curl_code, std::string_view detail, std::string_view url);

// Parses a Retry-After value: delta-seconds ("120") or an HTTP-date, which is turned into
// the seconds from `now` (0 when already past). Returns std::nullopt when it is neither.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

// Returns a form of `url` safe to write to logs: scheme, host, port and the first path
// segment, with "/…" for the rest; user, password, query and fragment dropped. Chat webhook
// URLs carry their secret in the path (https://hooks.slack.com/services/T/B/SECRET ->
// "https://hooks.slack.com/services/…"). Returns "<invalid URL>" for a URL curl rejects.
std::string redact_url(std::string_view url);

} // namespace crashmail
