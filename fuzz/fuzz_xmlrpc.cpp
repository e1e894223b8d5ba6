// Fuzzes the XML-RPC response parser with any bytes as supervisord's HTTP body: it must
// never crash, recurse without bound or throw, must explain every rejection, and whatever it
// accepts must be a value the rest of crashmail can walk and send back (build_call).

#include "supervisor/xmlrpc.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

namespace {

// Visits every nested value, as callers do with member() and the typed accessors; returns
// the depth reached.
std::size_t walk(const crashmail::xmlrpc::Value& value, std::size_t depth) {
    if (depth > 200) {
        std::abort(); // the parser promises to stop at 64 levels
    }
    std::size_t deepest = depth;
    if (const auto* array = value.as_array()) {
        for (const auto& item : *array) {
            deepest = std::max(deepest, walk(item, depth + 1));
        }
    } else if (const auto* members = value.as_struct()) {
        for (const auto& [name, item] : *members) {
            if (value.member(name) == nullptr) {
                std::abort(); // a member that is there must be found by name
            }
            deepest = std::max(deepest, walk(item, depth + 1));
        }
    }
    return deepest;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto response = crashmail::xmlrpc::parse_response(text);
    if (!response) {
        if (response.error().message.empty()) {
            std::abort();
        }
        return 0;
    }
    if (const auto* value = std::get_if<crashmail::xmlrpc::Value>(&*response)) {
        walk(*value, 0);
        std::string call = crashmail::xmlrpc::build_call("supervisor.getProcessInfo", {*value});
        if (call.find("<methodCall>") == std::string::npos) {
            std::abort();
        }
    }
    return 0;
}
