#include "util/curl_handles.hpp"

namespace crashmail::curl {

std::string url_part(CURLU* handle, CURLUPart part, unsigned int flags) {
    char* value = nullptr;
    if (curl_url_get(handle, part, &value, flags) != CURLUE_OK || value == nullptr) {
        return {};
    }
    std::string result(value);
    curl_free(value);
    return result;
}

} // namespace crashmail::curl
