#include "util/hash.hpp"

#include <algorithm>
#include <openssl/sha.h>

namespace crashmail {

std::string sha256_hex(std::string_view data, std::size_t bytes) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string out;
    bytes = std::min<std::size_t>(bytes, SHA256_DIGEST_LENGTH);
    out.reserve(bytes * 2);
    for (std::size_t i = 0; i < bytes; ++i) {
        out += k_hex[digest[i] >> 4];
        out += k_hex[digest[i] & 0x0f];
    }
    return out;
}

} // namespace crashmail
