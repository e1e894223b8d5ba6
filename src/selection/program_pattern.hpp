#pragma once
// Which processes to watch: superlance's -p/-a, implemented as documented.

#include <expected>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

// One -p value: "PROC" (that process in any group), "GROUP:PROC" or "GROUP:*". Both parts
// are shell-style globs (fnmatch(3): *, ?, [...]).
class ProgramPattern {
public:
    // Returns the pattern, or an error message for an empty pattern or an empty part
    // ("grp:" or ":proc").
    static std::expected<ProgramPattern, std::string> parse(std::string_view text);

    // True if the process `process` of group `group` is selected. A pattern with a ':' also
    // matches a process whose own name is the whole pattern (process names may contain ':').
    bool matches(std::string_view group, std::string_view process) const;

    const std::string& text() const { return m_text; }

private:
    std::string m_text;
    std::string m_group; // empty: any group
    std::string m_process;
};

// The set of watched processes: everything with -a (or with neither -a nor -p), else the
// union of the -p patterns.
class Selection {
public:
    Selection() = default; // watches everything
    Selection(bool any, std::vector<ProgramPattern> patterns)
        : m_any(any || patterns.empty()), m_patterns(std::move(patterns)) {}

    bool selects(std::string_view group, std::string_view process) const;
    bool watches_everything() const { return m_any; }

private:
    bool m_any = true;
    std::vector<ProgramPattern> m_patterns;
};

} // namespace crashmail
