#pragma once
// libcurl's handles as owning values, one place that reads a part of a parsed URL, and one
// that makes a transfer abortable from another thread. Used by every piece that speaks
// through libcurl (SMTP, HTTP, supervisord's XML-RPC).

#include <atomic>
#include <chrono>
#include <curl/curl.h>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace crashmail::curl {

struct EasyDeleter {
    void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct SlistDeleter {
    void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct UrlDeleter {
    void operator()(CURLU* handle) const { curl_url_cleanup(handle); }
};

using Easy = std::unique_ptr<CURL, EasyDeleter>;
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;
using Url = std::unique_ptr<CURLU, UrlDeleter>;

// One part of a parsed URL (curl_url_get() with `flags`), or "" when the URL has no such
// part.
std::string url_part(CURLU* handle, CURLUPart part, unsigned int flags = 0);

// Makes a transfer on `handle` end with CURLE_ABORTED_BY_CALLBACK once `*flag` is true
// (another thread may set it at any time): installs a progress callback (CURLOPT_NOPROGRESS
// 0, CURLOPT_XFERINFOFUNCTION) that looks at the flag. libcurl calls it while it resolves,
// connects and waits as well as while data moves, at least about once a second, so the
// transfer ends within about a second of the flag being set. `flag` must outlive the
// transfer; nullptr does nothing. Returns libcurl's answer to the options (CURLE_OK).
CURLcode abort_when(CURL* handle, const std::atomic<bool>* flag);

// Two reasons to abort a transfer, looked at by the same progress callback (about once a
// second, and whenever data moves).
struct AbortRule {
    const std::atomic<bool>* flag = nullptr; // aborts once true; another thread may set it
    std::function<bool()> also;              // aborts once it returns true; called on the
                                             // transfer's own thread
};

// Like abort_when(handle, flag) for both of `rule`'s reasons. `rule` must outlive the
// transfer; nullptr does nothing.
CURLcode abort_when(CURL* handle, const AbortRule* rule);

// Whether `code` says that the peer's certificate could not be verified, or the CA
// certificates to verify it with could not be used: a problem somebody may fix soon (an
// expired certificate renewed, a CA bundle replaced), unlike the rest of TLS's set-up.
bool is_certificate_failure(CURLcode code);

// How long such a failure is retried before it counts as permanent (Failure::transient_for).
inline constexpr std::chrono::seconds k_certificate_retry_window{3600};

// What the certificate problem is, in words, after a failed transfer on `handle`: OpenSSL's
// verification result (CURLINFO_SSL_VERIFYRESULT, "certificate has expired") and libcurl's
// error text (`curl_error`, e.g. "SSL: no alternative certificate subject name matches target
// host name 'mx'") where it says more. One line, bounded.
std::string certificate_problem(CURL* handle, std::string_view curl_error);

// The failure detail for a certificate failure: "TLS certificate not trusted: <problem>
// (retried for up to 1 h: <who> may renew it)" for a peer that failed verification,
// "cannot verify TLS certificates: <problem> (retried for up to 1 h: check --cacert)" for CA
// certificates that cannot be used.
std::string certificate_failure_detail(CURLcode code, std::string_view problem,
                                       std::string_view who);

} // namespace crashmail::curl
