#include "util/curl_handles.hpp"

namespace crashmail::curl {

namespace {

int abort_if_set(void* user, curl_off_t /*dltotal*/, curl_off_t /*dlnow*/, curl_off_t /*ultotal*/,
                 curl_off_t /*ulnow*/) {
    const auto* flag = static_cast<const std::atomic<bool>*>(user);
    return flag->load(std::memory_order_acquire) ? 1 : 0; // non-zero aborts the transfer
}

} // namespace

std::string url_part(CURLU* handle, CURLUPart part, unsigned int flags) {
    char* value = nullptr;
    if (curl_url_get(handle, part, &value, flags) != CURLUE_OK || value == nullptr) {
        return {};
    }
    std::string result(value);
    curl_free(value);
    return result;
}

CURLcode abort_when(CURL* handle, const std::atomic<bool>* flag) {
    if (flag == nullptr) {
        return CURLE_OK;
    }
    CURLcode rc = curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, &abort_if_set);
    if (rc == CURLE_OK) {
        // libcurl hands the pointer back as void*; the callback only reads through it.
        rc = curl_easy_setopt(handle, CURLOPT_XFERINFODATA,
                              const_cast<void*>(static_cast<const void*>(flag)));
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
    }
    return rc;
}

} // namespace crashmail::curl
