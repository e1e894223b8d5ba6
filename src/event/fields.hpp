#pragma once
// The "key:value key:value" lines supervisord writes, split the way that survives real names.

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crashmail {

using Fields = std::vector<std::pair<std::string, std::string>>;

// Splits `text` on single spaces into key:value tokens, the key being the text before the
// first ':'. A token whose key is not in `known_keys` (or that has no ':') continues the
// previous value, joined with the space it was split on, so "processname:tx y:z" gives
// processname = "tx y:z". Text before the first known key is kept under the empty key.
// Never fails: any input gives some fields; callers check for the keys they need.
Fields split_fields(std::string_view text, std::span<const std::string_view> known_keys);

// Returns the value of the first field named `key`, or nullptr.
const std::string* find_field(const Fields& fields, std::string_view key);

// The value of a field that is a single token (states, numbers; not names): split_fields()
// appends a token with an unknown key to the previous value ("len:15 newkey:x"), and such
// tokens are ignored here, so a future supervisord that adds fields still parses.
std::optional<std::string_view> token_field(const Fields& fields, std::string_view key);

} // namespace crashmail
