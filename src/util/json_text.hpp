#pragma once
// The one way crashmail turns JSON into text (spool records, state files, webhook bodies).
// nlohmann::json throws type_error 316 when a string holds invalid UTF-8, and process names
// from a supervisord on Python 2 are raw bytes: here every invalid sequence becomes U+FFFD
// instead, so no name can make a dump throw. tests/unit/test_json_text.cpp fails when code
// under src/ calls dump() anywhere else.

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace crashmail {

// `value` as JSON text, compact (indent -1) or indented by `indent` spaces; never throws for
// invalid UTF-8 and never writes it.
std::string json_text(const nlohmann::json& value, int indent = -1);

} // namespace crashmail
