#include "util/host.hpp"

#include <cstring>
#include <fmt/format.h>
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

std::optional<std::string> hostname_problem(std::string_view name) {
    constexpr std::size_t k_max_name = 253;
    constexpr std::size_t k_max_label = 63;
    if (name.empty()) {
        return "empty host name";
    }
    if (name.size() > k_max_name) {
        return fmt::format("{} bytes long (at most {})", name.size(), k_max_name);
    }
    for (char c : name) {
        const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c >= '0' && c <= '9') || c == '-' || c == '.';
        if (!allowed) {
            const auto byte = static_cast<unsigned char>(c);
            const std::string shown = byte > 0x20 && byte < 0x7F
                                          ? fmt::format("'{}'", c)
                                          : fmt::format("byte 0x{:02X}", byte);
            return shown + " is not allowed in a host name (letters, digits, '-' and '.')";
        }
    }
    std::size_t start = 0;
    while (start <= name.size()) {
        std::size_t end = name.find('.', start);
        if (end == std::string_view::npos) {
            end = name.size();
        }
        const std::string_view label = name.substr(start, end - start);
        if (label.empty()) {
            return "empty label (a leading, trailing or doubled '.')";
        }
        if (label.size() > k_max_label) {
            return fmt::format("label '{}' is {} bytes long (at most {})", label, label.size(),
                               k_max_label);
        }
        if (label.front() == '-' || label.back() == '-') {
            return fmt::format("label '{}' starts or ends with '-'", label);
        }
        start = end + 1;
    }
    return std::nullopt;
}

std::optional<std::string> unqualified_hostname_warning(std::string_view name) {
    if (name.find('.') != std::string_view::npos) {
        return std::nullopt;
    }
    return fmt::format("host name '{}' is not fully qualified: strict mail relays (Postfix "
                       "reject_non_fqdn_helo_hostname) refuse it in EHLO; give one with "
                       "--hostname NAME",
                       name);
}

} // namespace crashmail
