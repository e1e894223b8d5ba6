#pragma once
// libcurl's handles as owning values, and one place that reads a part of a parsed URL.
// Used by every piece that speaks through libcurl (SMTP, HTTP, supervisord's XML-RPC).

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

} // namespace crashmail::curl
