// rss_probe: the resident memory a do-nothing C++ program costs on this machine, built twice:
// `rss_probe_plain` links nothing but the C++ runtime; `rss_probe_curl` also links Debian's
// libcurl and initialises it as crashmail does (curl_global_init and one easy handle). The
// difference is what merely using libcurl costs. Prints one line of JSON.

#include <cstdio>
#include <fstream>
#include <string>

#ifdef RSS_PROBE_CURL
#include <curl/curl.h>
#endif

int main() {
#ifdef RSS_PROBE_CURL
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return 1;
    }
    CURL* handle = curl_easy_init();
    curl_easy_cleanup(handle);
    const char* variant = "libcurl";
#else
    const char* variant = "plain";
#endif
    // VmHWM, not getrusage's ru_maxrss: the latter includes the parent's memory copied by
    // fork before exec.
    long hwm = -1;
    long anon = -1;
    long file = -1;
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmHWM:", 0) == 0) {
            hwm = std::stol(line.substr(6));
        } else if (line.rfind("RssAnon:", 0) == 0) {
            anon = std::stol(line.substr(8));
        } else if (line.rfind("RssFile:", 0) == 0) {
            file = std::stol(line.substr(8));
        }
    }
    std::printf("{\"variant\":\"%s\",\"maxrss_kb\":%ld,\"rss_anon_kb\":%ld,\"rss_file_kb\":%ld}\n",
                variant, hwm, anon, file);
    return 0;
}
