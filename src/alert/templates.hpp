#pragma once
// --subject and --body: the alert's text from a template with named fields, e.g.
//   --subject '[{host}] {name} {state}: {exit_status}'
//   --body '{default_body}\n\nRunbook: https://wiki.example.com/{group}'
// A template is checked once, at start-up (an unknown field or a stray brace is an error
// that names its position), then formatted with fmt's runtime API and named arguments.
// Template syntax: {field}, or {field:spec} with a fmt format spec for strings ({pid:>6},
// {log_tail:.2000}); {{ and }} are literal braces; \n, \t and \\ are a newline, a tab and
// a backslash (supervisord's command= and INI files cannot hold a real newline).

#include "alert/alert.hpp"

#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crashmail {

// The field names a template may use, in the documented order.
std::span<const char* const> template_field_names();

// A checked template.
class AlertTemplate {
public:
    // Checks `text`. Returns the template, or an error naming the 1-based position (in
    // characters) of the mistake: "unknown field {procss} at position 14", "unclosed { at
    // position 3", "single } at position 9 (write }} for a literal brace)", "empty field {}
    // at position 1", "unknown escape \q at position 5 (write \\ for a backslash)", "bad
    // format spec in {pid:q} at position 4: ...".
    static std::expected<AlertTemplate, std::string> parse(std::string_view text);

    // Formats the template with `fields` (name, value) pairs; every field the template names
    // must be among them.
    std::string render(const std::vector<std::pair<const char*, std::string>>& fields) const;

    // The fmt format string the template became (escapes resolved), for tests.
    const std::string& format_string() const { return m_format; }

private:
    std::string m_format;
};

struct AlertTemplates {
    std::optional<AlertTemplate> subject; // std::nullopt: the default subject
    std::optional<AlertTemplate> body;    // std::nullopt: the default body
    std::string prefix;                   // -o PREFIX, for {prefix}
};

// Parses --subject and --body (an empty text means the default). Errors read
// "--body: unknown field {procss} at position 14".
std::expected<AlertTemplates, std::string>
parse_templates(std::string_view subject, std::string_view body, std::string prefix);

// The default body of an alert whose details are in: make_alert()'s body with "Exit:",
// "Spawn error:" and "Note:" lines first in its block of facts, and "Last N lines of
// stderr:" with the log tail at the end. Pure.
std::string default_body(const Alert& alert);

// The value of every field for `alert` (whose subject and body are make_alert()'s): process,
// group, name, host, state, from_state, pid ("unknown" when absent), exit_status ("unknown"
// when not found), spawn_error, log_tail, log_source, note, event, serial, id, time (the
// subject's local asctime and offset, "2026-11-25 22:03:10,123 +0100"), time_utc (RFC 3339),
// prefix, default_subject, default_body.
std::vector<std::pair<const char*, std::string>> template_fields(const Alert& alert,
                                                                 std::string_view prefix);

// Gives `alert` its final text, once its details (exit status, log tail, note) are set:
// subject and body from the templates, or the default subject (unchanged) and
// default_body(). Call it once per alert: the defaults build on make_alert()'s text. A
// rendered subject is made one line (control characters become spaces).
void render_alert_text(Alert& alert, const AlertTemplates& templates);

} // namespace crashmail
