// Fuzzes the event header and PROCESS_STATE payload parsers, and the listener's decision
// (alert_worthy) and alert text built from what they return.
// Input: a header line, '\n', then a payload (as on the wire, without the `len` framing).

#include "alert/alert.hpp"
#include "app/listener.hpp"
#include "event/event.hpp"
#include "event/process_state.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

bool has_line_break(std::string_view text) {
    return text.find_first_of("\r\n") != std::string_view::npos;
}

void check_change(std::string_view event_name, std::string_view payload) {
    auto change = crashmail::parse_process_state(event_name, payload);
    if (!change) {
        if (change.error().empty()) {
            std::abort();
        }
        return;
    }
    // The payload is one line: nothing after its first '\n' may reach a field.
    if (change->process_name.find('\n') != std::string::npos ||
        change->group_name.find('\n') != std::string::npos ||
        change->from_state.find('\n') != std::string::npos) {
        std::abort();
    }
    if (!event_name.starts_with("PROCESS_STATE_") || change->state.empty()) {
        std::abort();
    }

    crashmail::EventHeader header;
    header.event_name = std::string(event_name);
    header.serial = 1;
    crashmail::AlertContext context{"host.example.com", "pre\r\nfix"};
    crashmail::Alert alert =
        crashmail::make_alert(header, *change, context,
                              std::chrono::system_clock::time_point(std::chrono::seconds(1)), "id");
    // Subject and body lines are built from names: no name may add a line.
    if (has_line_break(alert.subject)) {
        std::abort();
    }
    if (alert.body.find('\r') != std::string::npos) {
        std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    std::size_t newline = input.find('\n');
    std::string_view line = input.substr(0, newline);
    std::string_view payload =
        newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);

    auto header = crashmail::parse_event_header(line);
    if (header) {
        if (header->event_name.empty() || header->event_name.find(' ') != std::string::npos) {
            std::abort(); // eventname is one non-empty token
        }
        check_change(header->event_name, payload);

        crashmail::Event event{*header, std::string(payload)};
        crashmail::ListenerSettings settings;
        settings.selection = crashmail::Selection(true, {});
        (void)crashmail::alert_worthy(event, settings);
        std::string id = crashmail::event_alert_id(event, "boot-1");
        if (id.empty() || has_line_break(id)) {
            std::abort();
        }
    } else if (header.error().empty()) {
        std::abort();
    }
    // The payload parser on its own, with the name of the event that alerts.
    check_change("PROCESS_STATE_EXITED", input);
    return 0;
}
