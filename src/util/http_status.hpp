#pragma once
// HTTP's words for its status codes.

#include <string_view>

namespace crashmail {

// The standard reason phrase of an HTTP status ("Service Unavailable"), or "" if unknown.
// HTTP/2 answers carry none, so messages use this table.
std::string_view http_reason_phrase(long status);

} // namespace crashmail
