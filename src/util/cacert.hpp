#pragma once
// --cacert FILE checked at start-up: a file that cannot be used would otherwise surface only
// as a TLS failure at the first delivery (libcurl's "error setting certificate file").

#include <expected>
#include <string>

namespace crashmail {

// Reads `path` and parses it as PEM: returns the number of X.509 certificates in it (at
// least 1), or why it cannot be used, in words that follow the path: "no such file",
// "permission denied", "is a directory", "no PEM certificate in it", "bad PEM certificate
// data: <OpenSSL's reason>". Reads nothing but the file; thread-safe.
std::expected<int, std::string> check_cacert(const std::string& path);

} // namespace crashmail
