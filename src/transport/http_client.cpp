#include "transport/http_client.hpp"

#include "util/curl_handles.hpp"
#include "util/utf8.hpp"

#include <algorithm>
#include <charconv>
#include <curl/curl.h>
#include <memory>
#include <mutex>

namespace crashmail {
namespace {

constexpr std::size_t k_message_body_bytes = 200;

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
               return lower(x) == lower(y);
           });
}

// What the callbacks collect while curl runs.
struct Collected {
    std::optional<std::string> retry_after;
    std::string body_start;
};

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
    auto* collected = static_cast<Collected*>(user);
    std::string_view line(data, size * count);
    if (line.starts_with("HTTP/")) {
        // A new response (after "100 Continue", say): forget the previous one's headers.
        collected->retry_after.reset();
        return size * count;
    }
    auto colon = line.find(':');
    if (colon != std::string_view::npos && iequals(trim(line.substr(0, colon)), "Retry-After")) {
        collected->retry_after = std::string(trim(line.substr(colon + 1)));
    }
    return size * count;
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto* collected = static_cast<Collected*>(user);
    std::size_t n = size * count;
    if (collected->body_start.size() < k_body_start_bytes) {
        collected->body_start.append(
            data, std::min(n, k_body_start_bytes - collected->body_start.size()));
    }
    return n; // The rest is read and dropped: the time limit bounds a server that never stops.
}

bool has_header(const std::vector<std::string>& headers, std::string_view name) {
    return std::any_of(headers.begin(), headers.end(), [&](const std::string& header) {
        auto colon = header.find(':');
        return colon != std::string::npos &&
               iequals(trim(std::string_view(header).substr(0, colon)), name);
    });
}

} // namespace

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
    value = trim(value);
    if (value.empty()) {
        return std::nullopt;
    }
    if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        long long seconds = 0;
        auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), seconds);
        if (error == std::errc::result_out_of_range) {
            seconds = 365LL * 24 * 3600; // absurdly far: a year stands in for "a long time"
        } else if (error != std::errc() || end != value.data() + value.size()) {
            return std::nullopt;
        }
        return std::chrono::seconds(seconds);
    }
    // An HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms): libcurl's parser
    // knows all three. It needs a NUL-terminated string.
    std::string date(value);
    time_t when = curl_getdate(date.c_str(), nullptr);
    if (when == -1) {
        return std::nullopt;
    }
    auto delta = std::chrono::system_clock::from_time_t(when) - now;
    if (delta <= std::chrono::system_clock::duration::zero()) {
        return std::chrono::seconds(0);
    }
    return std::chrono::ceil<std::chrono::seconds>(delta);
}

std::expected<void, Failure> classify_http_response(long status,
                                                    std::optional<std::string_view> retry_after,
                                                    std::string_view body_start,
                                                    std::string_view url,
                                                    std::chrono::system_clock::time_point now) {
    if (status >= 200 && status <= 299) {
        return {};
    }
    Failure failure;
    failure.message = std::string(url) + ": HTTP " + std::to_string(status);
    if (auto reason = http_reason_phrase(status); !reason.empty()) {
        failure.message += ' ';
        failure.message += reason;
    }
    if (std::string body = one_line(trim(body_start), k_message_body_bytes); !body.empty()) {
        failure.message += ": ";
        failure.message += body;
    }
    if (status == 408 || status == 429 || (status >= 500 && status <= 599)) {
        failure.kind = Failure::Kind::transient;
        if (retry_after && status != 408) {
            failure.retry_after = parse_retry_after(*retry_after, now);
        }
    } else {
        failure.kind = Failure::Kind::permanent;
    }
    return std::unexpected(std::move(failure));
}

Failure classify_curl_error(int curl_code, std::string_view detail, std::string_view url) {
    Failure failure;
    if (static_cast<CURLcode>(curl_code) == CURLE_ABORTED_BY_CALLBACK) {
        detail = k_cancelled_detail; // the only callback that aborts is the cancel flag's
    }
    failure.message = std::string(url) + ": " + one_line(trim(detail), 300);
    if (curl::is_certificate_failure(static_cast<CURLcode>(curl_code))) {
        // Retried for a while: an expired certificate may be renewed within the hour.
        failure.kind = Failure::Kind::transient;
        failure.transient_for = curl::k_certificate_retry_window;
        return failure;
    }
    switch (static_cast<CURLcode>(curl_code)) {
    case CURLE_OPERATION_TIMEDOUT:
        failure.kind = Failure::Kind::timeout;
        break;
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_NOT_BUILT_IN:
    case CURLE_TOO_MANY_REDIRECTS:
        failure.kind = Failure::Kind::permanent;
        break;
    default:
        failure.kind = Failure::Kind::transient;
        break;
    }
    return failure;
}

std::string redact_url(std::string_view url) {
    curl::Url handle(curl_url());
    if (!handle) {
        return "<invalid URL>";
    }
    std::string text(url);
    if (curl_url_set(handle.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) {
        return "<invalid URL>";
    }
    std::string result = curl::url_part(handle.get(), CURLUPART_SCHEME) + "://";
    std::string host = curl::url_part(handle.get(), CURLUPART_HOST);
    result += host;
    if (std::string port = curl::url_part(handle.get(), CURLUPART_PORT); !port.empty()) {
        result += ':' + port;
    }
    std::string path = curl::url_part(handle.get(), CURLUPART_PATH);
    if (path.size() > 1) {
        auto second_slash = path.find('/', 1);
        if (second_slash == std::string::npos) {
            result += path;
        } else {
            result += path.substr(0, second_slash);
            if (second_slash + 1 < path.size()) {
                result += "/…";
            } else {
                result += '/';
            }
        }
    }
    return result;
}

CurlHttpClient::CurlHttpClient() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::expected<HttpResponse, Failure> CurlHttpClient::post(const HttpRequest& request) {
    const std::string shown =
        request.display_url.empty() ? redact_url(request.url) : request.display_url;
    if (request.cancel != nullptr && request.cancel->load(std::memory_order_acquire)) {
        return std::unexpected(Failure{Failure::Kind::transient,
                                       shown + ": " + std::string(k_cancelled_detail),
                                       std::nullopt});
    }
    curl::Easy easy(curl_easy_init());
    if (!easy) {
        return std::unexpected(
            Failure{Failure::Kind::transient, shown + ": cannot initialise libcurl", std::nullopt});
    }
    CURL* curl = easy.get();

    curl_slist* raw_headers = nullptr;
    auto append = [&raw_headers](const std::string& header) {
        if (curl_slist* grown = curl_slist_append(raw_headers, header.c_str()); grown != nullptr) {
            raw_headers = grown;
        }
    };
    if (!has_header(request.headers, "Content-Type")) {
        append("Content-Type: " + request.content_type);
    }
    append("Expect:"); // no "100-continue" round trip for larger bodies
    for (const std::string& header : request.headers) {
        append(header);
    }
    curl::Slist headers(raw_headers);

    Collected collected;
    char error_text[CURL_ERROR_SIZE] = {};
    const auto timeout_ms = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(request.timeout).count());

    curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!request.cacert.empty()) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, request.cacert.c_str());
    }
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &collected);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &collected);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_text);
    curl::abort_when(curl, request.cancel);

    CURLcode code = curl_easy_perform(curl);
    if (code != CURLE_OK) {
        std::string detail =
            error_text[0] != '\0' ? std::string(error_text) : std::string(curl_easy_strerror(code));
        if (curl::is_certificate_failure(code)) {
            detail = curl::certificate_failure_detail(code, curl::certificate_problem(curl, detail),
                                                      "the server's admin");
        }
        return std::unexpected(classify_curl_error(static_cast<int>(code), detail, shown));
    }
    HttpResponse response;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
    response.retry_after = std::move(collected.retry_after);
    response.body_start = std::move(collected.body_start);
    return response;
}

} // namespace crashmail
