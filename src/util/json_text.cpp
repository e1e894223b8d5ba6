#include "util/json_text.hpp"

#include <nlohmann/json.hpp>

namespace crashmail {

std::string json_text(const nlohmann::json& value, int indent) {
    return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace crashmail
