#pragma once
// libcurl's handles as owning values, one place that reads a part of a parsed URL, and one
// that makes a transfer abortable from another thread. Used by every piece that speaks
// through libcurl (SMTP, HTTP, supervisord's XML-RPC).

#include <atomic>
#include <curl/curl.h>
#include <memory>
#include <string>

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

} // namespace crashmail::curl
