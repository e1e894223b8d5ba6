#include "util/curl_handles.hpp"

#include "util/text.hpp"

#include <openssl/x509.h>

namespace crashmail::curl {

namespace {

int abort_if_set(void* user, curl_off_t /*dltotal*/, curl_off_t /*dlnow*/, curl_off_t /*ultotal*/,
                 curl_off_t /*ulnow*/) {
    const auto* flag = static_cast<const std::atomic<bool>*>(user);
    return flag->load(std::memory_order_acquire) ? 1 : 0; // non-zero aborts the transfer
}

int abort_by_rule(void* user, curl_off_t /*dltotal*/, curl_off_t /*dlnow*/, curl_off_t /*ultotal*/,
                  curl_off_t /*ulnow*/) {
    const auto* rule = static_cast<const AbortRule*>(user);
    if (rule->flag != nullptr && rule->flag->load(std::memory_order_acquire)) {
        return 1;
    }
    return (rule->also && rule->also()) ? 1 : 0;
}

constexpr std::size_t k_max_problem_length = 300;

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

namespace crashmail::curl {

CURLcode abort_when(CURL* handle, const AbortRule* rule) {
    if (rule == nullptr) {
        return CURLE_OK;
    }
    CURLcode rc = curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, &abort_by_rule);
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(handle, CURLOPT_XFERINFODATA,
                              const_cast<void*>(static_cast<const void*>(rule)));
    }
    if (rc == CURLE_OK) {
        rc = curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
    }
    return rc;
}

bool is_certificate_failure(CURLcode code) {
    switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        return true;
    default:
        return false;
    }
}

std::string certificate_problem(CURL* handle, std::string_view curl_error) {
    std::string error(trim(curl_error));
    long verify = X509_V_OK;
    if (handle == nullptr ||
        curl_easy_getinfo(handle, CURLINFO_SSL_VERIFYRESULT, &verify) != CURLE_OK) {
        verify = X509_V_OK;
    }
    std::string problem;
    if (verify != X509_V_OK) {
        const char* words = X509_verify_cert_error_string(verify);
        problem = words != nullptr ? words : "verification error " + std::to_string(verify);
    }
    // libcurl's text usually holds OpenSSL's words already ("SSL certificate problem:
    // certificate has expired"); it alone names a host name mismatch or a bad CA file.
    if (problem.empty()) {
        problem = error;
    } else if (!error.empty() && error.find(problem) == std::string::npos) {
        problem += " (" + error + ")";
    }
    if (problem.empty()) {
        problem = "the certificate could not be verified";
    }
    return one_line(problem, k_max_problem_length);
}

std::string certificate_failure_detail(CURLcode code, std::string_view problem,
                                       std::string_view who) {
    const std::string window =
        std::to_string(
            std::chrono::duration_cast<std::chrono::hours>(k_certificate_retry_window).count()) +
        " h";
    if (code == CURLE_SSL_CACERT_BADFILE || code == CURLE_SSL_CRL_BADFILE) {
        return "cannot verify TLS certificates: " + std::string(problem) + " (retried for up to " +
               window + ": check --cacert)";
    }
    return "TLS certificate not trusted: " + std::string(problem) + " (retried for up to " +
           window + ": " + std::string(who) + " may renew it)";
}

} // namespace crashmail::curl
