#include "supervisor/xmlrpc.hpp"

#include "util/text.hpp"

#include <charconv>
#include <cstdlib>
#include <fmt/format.h>
#include <pugixml.hpp>
#include <sstream>

namespace crashmail::xmlrpc {
namespace {

constexpr int k_max_depth = 64;

void append_value(pugi::xml_node parent, const Value& value) {
    pugi::xml_node node = parent.append_child("value");
    if (std::holds_alternative<std::monostate>(value.data)) {
        node.append_child("nil");
    } else if (const bool* flag = value.as_bool()) {
        node.append_child("boolean").text().set(*flag ? "1" : "0");
    } else if (const std::int64_t* number = value.as_int()) {
        node.append_child("int").text().set(std::to_string(*number).c_str());
    } else if (const double* real = std::get_if<double>(&value.data)) {
        node.append_child("double").text().set(fmt::format("{}", *real).c_str());
    } else if (const std::string* text = value.as_string()) {
        node.append_child("string").text().set(text->c_str());
    } else if (const Array* array = value.as_array()) {
        pugi::xml_node data = node.append_child("array").append_child("data");
        for (const Value& item : *array) {
            append_value(data, item);
        }
    } else if (const Struct* members = value.as_struct()) {
        pugi::xml_node object = node.append_child("struct");
        for (const auto& [name, item] : *members) {
            pugi::xml_node member = object.append_child("member");
            member.append_child("name").text().set(name.c_str());
            append_value(member, item);
        }
    }
}

// The element children of `node`, ignoring whitespace and comments.
std::vector<pugi::xml_node> elements(pugi::xml_node node) {
    std::vector<pugi::xml_node> found;
    for (pugi::xml_node child : node.children()) {
        if (child.type() == pugi::node_element) {
            found.push_back(child);
        }
    }
    return found;
}

// The text directly inside `node` (its PCDATA and CDATA children, concatenated).
std::string inner_text(pugi::xml_node node) {
    std::string text;
    for (pugi::xml_node child : node.children()) {
        if (child.type() == pugi::node_pcdata || child.type() == pugi::node_cdata) {
            text += child.value();
        }
    }
    return text;
}

std::expected<Value, ParseError> parse_value(pugi::xml_node value, int depth);

std::expected<Value, ParseError> parse_typed(pugi::xml_node typed, int depth) {
    const std::string_view type = typed.name();
    const std::string text = inner_text(typed);
    if (type == "string" || type == "base64" || type == "dateTime.iso8601") {
        return Value(text);
    }
    if (type == "int" || type == "i4" || type == "i8") {
        std::string digits = std::string(trim(text));
        std::int64_t number = 0;
        const char* begin = digits.data();
        if (!digits.empty() && digits.front() == '+') {
            ++begin;
        }
        auto [end, error] = std::from_chars(begin, digits.data() + digits.size(), number);
        if (digits.empty() || error != std::errc() || end != digits.data() + digits.size()) {
            return std::unexpected(
                ParseError{fmt::format("<{}> '{}' is not a number", type, text)});
        }
        return Value(number);
    }
    if (type == "boolean") {
        std::string flag = std::string(trim(text));
        if (flag != "0" && flag != "1") {
            return std::unexpected(ParseError{fmt::format("<boolean> '{}' is not 0 or 1", text)});
        }
        return Value(flag == "1");
    }
    if (type == "double") {
        std::string digits = std::string(trim(text));
        char* end = nullptr;
        double real = std::strtod(digits.c_str(), &end);
        if (digits.empty() || end != digits.c_str() + digits.size()) {
            return std::unexpected(ParseError{fmt::format("<double> '{}' is not a number", text)});
        }
        return Value(real);
    }
    if (type == "nil") {
        return Value();
    }
    if (type == "array") {
        pugi::xml_node data = typed.child("data");
        if (!data) {
            return std::unexpected(ParseError{"<array> without <data>"});
        }
        Array array;
        for (pugi::xml_node item : elements(data)) {
            if (std::string_view(item.name()) != "value") {
                return std::unexpected(ParseError{fmt::format("<{}> inside <data>", item.name())});
            }
            auto parsed = parse_value(item, depth + 1);
            if (!parsed) {
                return std::unexpected(parsed.error());
            }
            array.push_back(std::move(*parsed));
        }
        return Value(std::move(array));
    }
    if (type == "struct") {
        Struct members;
        for (pugi::xml_node member : elements(typed)) {
            pugi::xml_node name = member.child("name");
            pugi::xml_node item = member.child("value");
            if (std::string_view(member.name()) != "member" || !name || !item) {
                return std::unexpected(
                    ParseError{"<struct> holds something other than <member><name/><value/>"});
            }
            auto parsed = parse_value(item, depth + 1);
            if (!parsed) {
                return std::unexpected(parsed.error());
            }
            members.emplace_back(inner_text(name), std::move(*parsed));
        }
        return Value(std::move(members));
    }
    return std::unexpected(ParseError{fmt::format("unknown value type <{}>", type)});
}

std::expected<Value, ParseError> parse_value(pugi::xml_node value, int depth) {
    if (depth > k_max_depth) {
        return std::unexpected(ParseError{"values nested too deeply"});
    }
    auto children = elements(value);
    if (children.empty()) {
        return Value(inner_text(value)); // an untyped value is a string
    }
    if (children.size() > 1) {
        return std::unexpected(ParseError{"<value> with more than one type"});
    }
    return parse_typed(children.front(), depth);
}

} // namespace

const Value* Value::member(std::string_view name) const {
    const Struct* members = as_struct();
    if (members == nullptr) {
        return nullptr;
    }
    for (const auto& [key, value] : *members) {
        if (key == name) {
            return &value;
        }
    }
    return nullptr;
}

std::string build_call(std::string_view method, const std::vector<Value>& params) {
    pugi::xml_document document;
    pugi::xml_node call = document.append_child("methodCall");
    call.append_child("methodName").text().set(std::string(method).c_str());
    pugi::xml_node list = call.append_child("params");
    for (const Value& param : params) {
        append_value(list.append_child("param"), param);
    }
    std::ostringstream out;
    document.save(out, "", pugi::format_raw | pugi::format_no_declaration, pugi::encoding_utf8);
    return "<?xml version=\"1.0\"?>\n" + out.str();
}

std::expected<Response, ParseError> parse_response(std::string_view text) {
    pugi::xml_document document;
    // parse_ws_pcdata_single keeps a <string> that holds only whitespace (a log tail of blank
    // lines) instead of dropping it.
    pugi::xml_parse_result parsed = document.load_buffer(
        text.data(), text.size(), pugi::parse_default | pugi::parse_ws_pcdata_single,
        pugi::encoding_utf8);
    if (!parsed) {
        return std::unexpected(
            ParseError{fmt::format("not XML: {} at byte {}", parsed.description(), parsed.offset)});
    }
    pugi::xml_node response = document.child("methodResponse");
    if (!response) {
        return std::unexpected(ParseError{"no <methodResponse>"});
    }
    if (pugi::xml_node fault = response.child("fault")) {
        pugi::xml_node value = fault.child("value");
        if (!value) {
            return std::unexpected(ParseError{"<fault> without <value>"});
        }
        auto content = parse_value(value, 0);
        if (!content) {
            return std::unexpected(content.error());
        }
        const Value* code = content->member("faultCode");
        const Value* string = content->member("faultString");
        if (code == nullptr || code->as_int() == nullptr) {
            return std::unexpected(ParseError{"<fault> without an integer faultCode"});
        }
        Fault result;
        result.code = *code->as_int();
        if (string != nullptr && string->as_string() != nullptr) {
            result.string = *string->as_string();
        }
        return Response(std::move(result));
    }
    pugi::xml_node params = response.child("params");
    if (!params) {
        return std::unexpected(ParseError{"<methodResponse> with neither <params> nor <fault>"});
    }
    auto list = elements(params);
    if (list.size() != 1 || std::string_view(list.front().name()) != "param") {
        return std::unexpected(ParseError{
            fmt::format("<params> holds {} elements, expected one <param>", list.size())});
    }
    pugi::xml_node value = list.front().child("value");
    if (!value) {
        return std::unexpected(ParseError{"<param> without <value>"});
    }
    auto content = parse_value(value, 0);
    if (!content) {
        return std::unexpected(content.error());
    }
    return Response(std::move(*content));
}

} // namespace crashmail::xmlrpc
