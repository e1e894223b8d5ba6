#include "alert/templates.hpp"

#include "alert/mail_message.hpp"
#include "util/time.hpp"
#include "util/utf8.hpp"

#include <algorithm>
#include <array>
#include <fmt/args.h>
#include <fmt/format.h>

namespace crashmail {
namespace {

constexpr std::array<const char*, 23> k_fields = {
    "process",
    "group",
    "name",
    "host",
    "state",
    "from_state",
    "pid",
    "exit_status",
    "spawn_error",
    "log_tail",
    "log_source",
    "note",
    "event",
    "serial",
    "id",
    "time",
    "time_utc",
    "prefix",
    "default_subject",
    "default_body",
    "kind",
    "occurrence",
    "suppressed",
};

bool known_field(std::string_view name) {
    return std::any_of(k_fields.begin(), k_fields.end(),
                       [&](const char* field) { return name == field; });
}

// Checks a format spec the way fmt will apply it to a string value.
std::optional<std::string> spec_error(std::string_view spec) {
    try {
        std::string sample = "sample";
        (void)fmt::vformat(fmt::format("{{:{}}}", spec), fmt::make_format_args(sample));
        return std::nullopt;
    } catch (const fmt::format_error& error) {
        return std::string(error.what());
    }
}

// The 1-based character position of byte `offset` in `text`.
std::size_t position(std::string_view text, std::size_t offset) {
    return utf8::count_code_points(text.substr(0, offset)) + 1;
}

} // namespace

std::span<const char* const> template_field_names() {
    return k_fields;
}

std::expected<AlertTemplate, std::string> AlertTemplate::parse(std::string_view text) {
    AlertTemplate result;
    std::string& out = result.m_format;
    std::size_t i = 0;
    while (i < text.size()) {
        char c = text[i];
        if (c == '\\') {
            if (i + 1 >= text.size()) {
                return std::unexpected(fmt::format(
                    R"(lone \ at position {} (write \\ for a backslash))", position(text, i)));
            }
            char next = text[i + 1];
            if (next == 'n') {
                out += '\n';
            } else if (next == 't') {
                out += '\t';
            } else if (next == '\\') {
                out += '\\';
            } else {
                std::size_t length = std::min(
                    utf8::sequence_length(static_cast<unsigned char>(next)), text.size() - i - 1);
                return std::unexpected(
                    fmt::format(R"(unknown escape \{} at position {} (write \\ for a backslash))",
                                text.substr(i + 1, length), position(text, i)));
            }
            i += 2;
            continue;
        }
        if (c == '}') {
            if (i + 1 < text.size() && text[i + 1] == '}') {
                out += "}}";
                i += 2;
                continue;
            }
            return std::unexpected(fmt::format(
                "single }} at position {} (write }}}} for a literal brace)", position(text, i)));
        }
        if (c != '{') {
            out += c;
            ++i;
            continue;
        }
        if (i + 1 < text.size() && text[i + 1] == '{') {
            out += "{{";
            i += 2;
            continue;
        }
        auto close = text.find('}', i + 1);
        auto open = text.find('{', i + 1);
        if (close == std::string_view::npos || (open != std::string_view::npos && open < close)) {
            return std::unexpected(fmt::format(
                "unclosed {{ at position {} (write {{{{ for a literal brace)", position(text, i)));
        }
        std::string_view field = text.substr(i + 1, close - i - 1);
        std::string_view name = field.substr(0, field.find(':'));
        if (name.empty()) {
            return std::unexpected(fmt::format(
                "empty field {{{}}} at position {} (fields have names, e.g. {{process}})", field,
                position(text, i)));
        }
        if (!known_field(name)) {
            return std::unexpected(
                fmt::format("unknown field {{{}}} at position {}", name, position(text, i)));
        }
        if (name.size() < field.size()) {
            if (auto problem = spec_error(field.substr(name.size() + 1))) {
                return std::unexpected(fmt::format("bad format spec in {{{}}} at position {}: {}",
                                                   field, position(text, i), *problem));
            }
        }
        out += '{';
        out += field;
        out += '}';
        i = close + 1;
    }
    return result;
}

std::string
AlertTemplate::render(const std::vector<std::pair<const char*, std::string>>& fields) const {
    fmt::dynamic_format_arg_store<fmt::format_context> store;
    for (const auto& [name, value] : fields) {
        store.push_back(fmt::arg(name, value));
    }
    return fmt::vformat(m_format, store);
}

std::expected<AlertTemplates, std::string>
parse_templates(std::string_view subject, std::string_view body, std::string prefix) {
    AlertTemplates templates;
    templates.prefix = std::move(prefix);
    if (!subject.empty()) {
        auto parsed = AlertTemplate::parse(subject);
        if (!parsed) {
            return std::unexpected("--subject: " + parsed.error());
        }
        templates.subject = std::move(*parsed);
    }
    if (!body.empty()) {
        auto parsed = AlertTemplate::parse(body);
        if (!parsed) {
            return std::unexpected("--body: " + parsed.error());
        }
        templates.body = std::move(*parsed);
    }
    return templates;
}

std::string default_body(const Alert& alert) {
    std::string facts;
    if (!alert.exit_status.empty()) {
        facts += (alert.kind == AlertKind::summary ? "Last exit: " : "Exit: ") +
                 header_safe(alert.exit_status) + "\n";
    }
    if (!alert.spawn_error.empty()) {
        facts += "Spawn error: " + header_safe(alert.spawn_error) + "\n";
    }
    if (!alert.details_note.empty()) {
        facts += "Note: " + header_safe(alert.details_note) + "\n";
    }
    std::string body = alert.body;
    if (!facts.empty()) {
        // make_alert()'s body is a sentence, a blank line, then "Key: value" lines: the
        // facts go first in that block.
        auto block = body.find("\n\n");
        if (block == std::string::npos) {
            body += "\n\n" + facts;
            body.pop_back();
        } else {
            body.insert(block + 2, facts);
        }
    }
    if (!alert.log_tail.empty()) {
        std::size_t lines = static_cast<std::size_t>(
                                std::count(alert.log_tail.begin(), alert.log_tail.end(), '\n')) +
                            1;
        std::string source = alert.log_source.empty() ? "output" : alert.log_source;
        while (!body.empty() && body.back() == '\n') {
            body.pop_back();
        }
        body += lines == 1 ? fmt::format("\n\nLast line of {}:\n", source)
                           : fmt::format("\n\nLast {} lines of {}:\n", lines, source);
        body += alert.log_tail;
        body += '\n';
    }
    return body;
}

std::vector<std::pair<const char*, std::string>> template_fields(const Alert& alert,
                                                                 std::string_view prefix) {
    return {
        {"process", alert.process},
        {"group", alert.group},
        {"name", display_name(alert.group, alert.process)},
        {"host", alert.host},
        {"state", alert.state},
        {"from_state", alert.from_state},
        {"pid", alert.pid ? std::to_string(*alert.pid) : std::string("unknown")},
        {"exit_status", alert.exit_status.empty() ? std::string("unknown") : alert.exit_status},
        {"spawn_error", alert.spawn_error},
        {"log_tail", alert.log_tail},
        {"log_source", alert.log_source},
        {"note", alert.details_note},
        {"event", alert.event_name},
        {"serial", std::to_string(alert.serial)},
        {"id", alert.id},
        {"time", timefmt::asctime_local_zone(alert.time)},
        {"time_utc", timefmt::rfc3339_utc(alert.time)},
        {"prefix", std::string(prefix)},
        {"kind", std::string(kind_name(alert.kind))},
        {"occurrence", std::to_string(alert.occurrence)},
        {"suppressed", std::to_string(alert.suppressed)},
        {"default_subject", alert.subject},
        {"default_body", default_body(alert)},
    };
}

void render_alert_text(Alert& alert, const AlertTemplates& templates) {
    // Templates shape the alert of one event; summaries, recovery notices and digests say
    // what they are in their own words.
    if ((!templates.subject && !templates.body) || alert.kind != AlertKind::alert) {
        alert.body = default_body(alert);
        return;
    }
    auto fields = template_fields(alert, templates.prefix);
    std::string subject = alert.subject;
    std::string body = fields.back().second; // default_body
    try {
        if (templates.subject) {
            subject = header_safe(templates.subject->render(fields));
        }
        if (templates.body) {
            body = templates.body->render(fields);
        }
    } catch (const fmt::format_error&) {
        // parse() checked every field and spec; keep the default text if fmt disagrees.
    }
    alert.subject = std::move(subject);
    alert.body = std::move(body);
}

} // namespace crashmail
