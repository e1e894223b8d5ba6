#include "util/host.hpp"

#include <cstring>
#include <netdb.h>
#include <unistd.h>

namespace crashmail {

std::string fully_qualified_hostname() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
        return "localhost";
    }
    if (std::strchr(name, '.') != nullptr) {
        return name;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = AI_CANONNAME;
    addrinfo* result = nullptr;
    std::string fqdn = name;
    if (::getaddrinfo(name, nullptr, &hints, &result) == 0 && result != nullptr) {
        if (result->ai_canonname != nullptr && result->ai_canonname[0] != '\0') {
            fqdn = result->ai_canonname;
        }
        ::freeaddrinfo(result);
    }
    return fqdn;
}

} // namespace crashmail
