#include "supervisor/exit_status.hpp"

#include <charconv>
#include <csignal>
#include <cstring>
#include <fmt/format.h>
#include <vector>

namespace crashmail {
namespace {

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        lines.push_back(line);
        if (end == std::string_view::npos) {
            break;
        }
        text.remove_prefix(end + 1);
    }
    return lines;
}

std::optional<long long> parse_number(std::string_view text) {
    long long value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

// The status text of an "exited: PROCESS (TEXT; expected)" or "...; not expected)" line,
// or std::nullopt when `line` is not such a line about `process`.
std::optional<std::string_view> exited_text(std::string_view line, std::string_view process) {
    const std::string needle = fmt::format(" exited: {} (", process);
    auto at = line.find(needle);
    if (at == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view rest = line.substr(at + needle.size());
    for (std::string_view tail :
         {std::string_view("; not expected)"), std::string_view("; expected)")}) {
        if (rest.ends_with(tail)) {
            return rest.substr(0, rest.size() - tail.size());
        }
    }
    return std::nullopt;
}

// True for "... spawned: 'PROCESS' with pid PID".
bool is_spawn_line(std::string_view line, std::string_view process, std::int64_t pid) {
    const std::string needle = fmt::format(" spawned: '{}' with pid {}", process, pid);
    return line.ends_with(needle);
}

} // namespace

std::optional<int> signal_number(std::string_view name) {
    if (!name.starts_with("SIG")) {
        return std::nullopt;
    }
    std::string_view bare = name.substr(3);
    // Python's signal module (which names signals for supervisord) knows aliases that
    // sigabbrev_np() does not return.
    if (bare == "IOT") {
        return SIGABRT;
    }
    if (bare == "CLD") {
        return SIGCHLD;
    }
    if (bare == "POLL") {
        return SIGIO;
    }
    if (bare == "RTMIN") {
        return SIGRTMIN;
    }
    if (bare == "RTMAX") {
        return SIGRTMAX;
    }
    for (int number = 1; number < NSIG; ++number) {
        const char* abbreviation = ::sigabbrev_np(number);
        if (abbreviation != nullptr && bare == abbreviation) {
            return number;
        }
    }
    return std::nullopt;
}

std::optional<std::string> describe_exit(std::string_view text) {
    constexpr std::string_view k_exit_prefix = "exit status ";
    constexpr std::string_view k_signal_prefix = "terminated by ";
    constexpr std::string_view k_core_suffix = " (core dumped)";
    if (text.starts_with(k_exit_prefix)) {
        auto code = parse_number(text.substr(k_exit_prefix.size()));
        if (!code) {
            return std::nullopt;
        }
        return fmt::format("exit status {}", *code);
    }
    if (!text.starts_with(k_signal_prefix)) {
        return std::nullopt;
    }
    std::string_view name = text.substr(k_signal_prefix.size());
    bool core = name.ends_with(k_core_suffix);
    if (core) {
        name.remove_suffix(k_core_suffix.size());
    }
    std::string described;
    if (name.starts_with("signal ")) { // supervisord's words for a signal Python cannot name
        auto number = parse_number(name.substr(7));
        if (!number) {
            return std::nullopt;
        }
        described = fmt::format("killed by signal {}", *number);
    } else if (auto number = signal_number(name)) {
        described = fmt::format("killed by signal {} ({})", *number, name);
    } else if (name.starts_with("SIG") && name.size() > 3) {
        described = fmt::format("killed by {}", name);
    } else {
        return std::nullopt;
    }
    if (core) {
        described += ", core dumped";
    }
    return described;
}

std::optional<std::string> find_exit_status(std::string_view log, std::string_view process,
                                            std::optional<std::int64_t> pid) {
    const std::vector<std::string_view> lines = split_lines(log);
    if (pid && *pid > 0) {
        for (std::size_t i = lines.size(); i-- > 0;) {
            if (!is_spawn_line(lines[i], process, *pid)) {
                continue;
            }
            for (std::size_t j = i + 1; j < lines.size(); ++j) {
                if (auto text = exited_text(lines[j], process)) {
                    return describe_exit(*text);
                }
            }
            return std::nullopt; // that instance's end is not in the chunk
        }
    }
    for (std::size_t i = lines.size(); i-- > 0;) {
        if (auto text = exited_text(lines[i], process)) {
            if (auto described = describe_exit(*text)) {
                return described;
            }
        }
    }
    return std::nullopt;
}

} // namespace crashmail
