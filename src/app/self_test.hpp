#pragma once
// --test: one test alert through every channel, now, with a line per channel.

#include "alert/alert.hpp"
#include "transport/transport.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace crashmail {

// The alert --test sends: process "crashmail-test", a subject saying it is a test.
Alert make_test_alert(const AlertContext& context, std::chrono::system_clock::time_point now,
                      std::string id);

// Delivers `alert` through every channel at once (each in its own thread, so a slow channel
// does not delay the others' verdicts) and returns the lines to print, in channel order: per
// channel "ok    <name>" or "error <failure, which names the channel> (<kind>)"; for a
// channel with several recipients (SMTP) or a refused one, a line per recipient
// ("      accepted <address>" or "      refused  <address>: <server's reply> (<kind>)");
// then "note  <note>" for each of the delivery's notes (clear text, ...). `exit_code` is EX_OK
// when every channel and recipient took it, EX_UNAVAILABLE when any failure or refusal was
// permanent, else EX_TEMPFAIL.
struct SelfTestReport {
    std::vector<std::string> lines;
    int exit_code;
};
SelfTestReport run_self_test(const std::vector<std::unique_ptr<Transport>>& channels,
                             const Alert& alert);

} // namespace crashmail
