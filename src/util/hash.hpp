#pragma once
// Short stable fingerprints: alert ids, channel keys.

#include <cstddef>
#include <string>
#include <string_view>

namespace crashmail {

// The first `bytes` bytes (at most 32) of SHA-256 over `data`, as lowercase hex.
std::string sha256_hex(std::string_view data, std::size_t bytes);

} // namespace crashmail
