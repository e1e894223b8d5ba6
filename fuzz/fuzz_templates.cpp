// Fuzzes --subject/--body templates: any template text, checked by AlertTemplate::parse(),
// then rendered for an alert with hostile fields. A template that parse() accepts must
// render without throwing (rendering happens in the event loop, where an exception would
// end crashmail), and a rendered subject must be one line.

#include "alert/alert.hpp"
#include "alert/templates.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fuzzer/FuzzedDataProvider.h>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider input(data, size);
    std::string subject = input.ConsumeRandomLengthString(512);
    std::string body = input.ConsumeRandomLengthString(512);
    std::string prefix = input.ConsumeRandomLengthString(64);

    crashmail::Alert alert;
    alert.id = "id";
    alert.event_name = "PROCESS_STATE_EXITED";
    alert.state = "EXITED";
    alert.process = input.ConsumeRandomLengthString(256);
    alert.group = input.ConsumeRandomLengthString(256);
    alert.from_state = input.ConsumeRandomLengthString(64);
    alert.host = "host.example.com";
    alert.time = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
    if (input.ConsumeBool()) {
        alert.pid = input.ConsumeIntegral<std::int64_t>();
    }
    alert.subject = input.ConsumeRandomLengthString(256);
    alert.body = input.ConsumeRemainingBytesAsString();

    auto templates = crashmail::parse_templates(subject, body, prefix);
    if (!templates) {
        if (templates.error().empty()) {
            std::abort();
        }
        return 0;
    }
    crashmail::render_alert_text(alert, *templates);
    // A subject rendered from a template must be one line (without one, make_alert()'s
    // subject, already one line there, is kept as it is).
    if (templates->subject && alert.subject.find_first_of("\r\n") != std::string::npos) {
        std::abort();
    }
    return 0;
}
