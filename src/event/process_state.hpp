#pragma once
// PROCESS_STATE_* payloads: "processname:p groupname:g from_state:S [expected:0 pid:123]".

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

namespace crashmail {

struct ProcessStateChange {
    std::string state;        // the new state: "EXITED", "FATAL", ... (from the event name)
    std::string process_name; // may contain spaces, ':' and non-ASCII
    std::string group_name;
    std::string from_state;
    std::optional<std::int64_t> pid; // RUNNING, STOPPING, STOPPED, EXITED
    std::optional<bool> expected;    // EXITED only
    std::optional<int> tries;        // STARTING, BACKOFF
};

// Returns "EXITED" for "PROCESS_STATE_EXITED", or std::nullopt if `event_name` is not a
// process state event.
std::optional<std::string_view> process_state_of(std::string_view event_name);

// Parses the payload of a PROCESS_STATE_* event. Returns an error message when the event
// name is not a process state or `processname`/`groupname` are missing.
std::expected<ProcessStateChange, std::string> parse_process_state(std::string_view event_name,
                                                                   std::string_view payload);

} // namespace crashmail
