#pragma once

#include <string>

namespace crashmail {

// Returns this machine's fully qualified domain name: the canonical name getaddrinfo(3)
// gives for gethostname(2), or the plain host name when resolution fails. Never empty
// ("localhost" as a last resort).
std::string fully_qualified_hostname();

} // namespace crashmail
