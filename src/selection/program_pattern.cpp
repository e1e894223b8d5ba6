#include "selection/program_pattern.hpp"

#include <fnmatch.h>

namespace crashmail {
namespace {

bool glob_matches(const std::string& pattern, std::string_view name) {
    return ::fnmatch(pattern.c_str(), std::string(name).c_str(), 0) == 0;
}

} // namespace

std::expected<ProgramPattern, std::string> ProgramPattern::parse(std::string_view text) {
    if (text.empty()) {
        return std::unexpected(std::string("empty program pattern"));
    }
    ProgramPattern pattern;
    pattern.m_text = std::string(text);
    std::size_t colon = text.find(':');
    if (colon == std::string_view::npos) {
        pattern.m_process = std::string(text);
        return pattern;
    }
    pattern.m_group = std::string(text.substr(0, colon));
    pattern.m_process = std::string(text.substr(colon + 1));
    if (pattern.m_group.empty() || pattern.m_process.empty()) {
        return std::unexpected("program pattern '" + std::string(text) +
                               "' must be PROCESS, GROUP:PROCESS or GROUP:*");
    }
    return pattern;
}

bool ProgramPattern::matches(std::string_view group, std::string_view process) const {
    if (m_group.empty()) {
        return glob_matches(m_process, process);
    }
    return (glob_matches(m_group, group) && glob_matches(m_process, process)) ||
           glob_matches(m_text, process);
}

bool Selection::selects(std::string_view group, std::string_view process) const {
    if (m_any) {
        return true;
    }
    for (const ProgramPattern& pattern : m_patterns) {
        if (pattern.matches(group, process)) {
            return true;
        }
    }
    return false;
}

} // namespace crashmail
