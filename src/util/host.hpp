#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace crashmail {

// Returns this machine's fully qualified domain name: the canonical name getaddrinfo(3)
// gives for gethostname(2), or the plain host name when resolution fails. Never empty
// ("localhost" as a last resort).
std::string fully_qualified_hostname();

// Returns why `name` cannot be given as this host's name (--hostname), or std::nullopt when
// it can: a DNS name of letters, digits, '-' and '.', at most 253 bytes, of labels of 1 to 63
// bytes that neither start nor end with '-' (so no empty label, no leading or trailing dot).
std::optional<std::string> hostname_problem(std::string_view name);

// The warning for a host name without a dot ("host name 'vm' is not fully qualified: ..."),
// which strict mail relays refuse in EHLO and in sender domains; std::nullopt when `name` has
// a dot.
std::optional<std::string> unqualified_hostname_warning(std::string_view name);

} // namespace crashmail
