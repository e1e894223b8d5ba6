#pragma once
// XML-RPC as supervisord speaks it: build a <methodCall>, parse a <methodResponse> into a
// small value type or a fault. Pure functions over strings; the XML is read and written by
// pugixml, never by hand.

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace crashmail::xmlrpc {

struct Value;
using Array = std::vector<Value>;
using Member = std::pair<std::string, Value>;
using Struct = std::vector<Member>; // in document order

// One XML-RPC value. <nil/> is std::monostate; <int>, <i4> and <i8> are std::int64_t;
// <string>, an untyped <value>, <base64> (kept encoded) and <dateTime.iso8601> are strings.
struct Value {
    std::variant<std::monostate, bool, std::int64_t, double, std::string, Array, Struct> data;

    Value() = default;
    Value(bool value) : data(value) {}
    Value(std::int64_t value) : data(value) {}
    Value(int value) : data(static_cast<std::int64_t>(value)) {}
    Value(double value) : data(value) {}
    Value(std::string value) : data(std::move(value)) {}
    Value(const char* value) : data(std::string(value)) {}
    Value(Array value) : data(std::move(value)) {}
    Value(Struct value) : data(std::move(value)) {}

    // Typed access: nullptr when the value holds another type.
    const std::string* as_string() const { return std::get_if<std::string>(&data); }
    const std::int64_t* as_int() const { return std::get_if<std::int64_t>(&data); }
    const bool* as_bool() const { return std::get_if<bool>(&data); }
    const Array* as_array() const { return std::get_if<Array>(&data); }
    const Struct* as_struct() const { return std::get_if<Struct>(&data); }
    // The member `name` of a struct value, or nullptr (not a struct, or no such member).
    const Value* member(std::string_view name) const;
};

// A <fault>: supervisord's faultCode (e.g. 10) and faultString (e.g. "BAD_NAME: worker").
struct Fault {
    std::int64_t code = 0;
    std::string string;
};

// What parse_response() can return besides a value.
struct ParseError {
    std::string message; // "not XML: ...", "no <methodResponse>", "<int> 'x' is not a number"
};

using Response = std::variant<Value, Fault>;

// Returns the text of a <methodCall> for `method` with `params` (UTF-8; characters XML
// cannot carry are escaped by pugixml).
std::string build_call(std::string_view method, const std::vector<Value>& params);

// Parses a <methodResponse>: its single parameter, or its fault. Returns a ParseError for
// anything else (malformed XML, a missing or doubled parameter, an unknown value type, a
// number that does not parse, nesting deeper than 64 levels).
std::expected<Response, ParseError> parse_response(std::string_view text);

} // namespace crashmail::xmlrpc
