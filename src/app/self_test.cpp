#include "app/self_test.hpp"

#include "util/time.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <future>
#include <sysexits.h>

namespace crashmail {

Alert make_test_alert(const AlertContext& context, std::chrono::system_clock::time_point now,
                      std::string id) {
    Alert alert;
    alert.id = std::move(id);
    alert.event_name = "CRASHMAIL_TEST";
    alert.state = "TEST";
    alert.process = "crashmail-test";
    alert.group = "crashmail-test";
    alert.from_state = "RUNNING";
    alert.host = context.host;
    alert.time = now;
    alert.subject = (context.prefix.empty() ? "" : context.prefix + ": ") +
                    "crashmail test alert from " + context.host;
    alert.body = "This is a test alert sent by 'crashmail --test' on " + context.host +
                 ".\nIf you can read it, this channel works.\n\nHost: " + context.host +
                 "\nTime: " + timefmt::rfc5322_local(now) + "\n";
    return alert;
}

SelfTestReport run_self_test(const std::vector<std::unique_ptr<Transport>>& channels,
                             const Alert& alert) {
    std::vector<std::future<std::expected<Receipt, Failure>>> results;
    results.reserve(channels.size());
    for (const auto& channel : channels) {
        Transport* transport = channel.get();
        results.push_back(std::async(
            std::launch::async, [transport, &alert] { return transport->deliver_to(alert, {}); }));
    }
    SelfTestReport report{{}, EX_OK};
    const auto worsen = [&report](const Failure& failure) {
        if (!failure.retryable()) {
            report.exit_code = EX_UNAVAILABLE;
        } else if (report.exit_code == EX_OK) {
            report.exit_code = EX_TEMPFAIL;
        }
    };
    for (std::size_t i = 0; i < channels.size(); ++i) {
        auto result = results[i].get();
        if (!result) {
            // Failure messages start with the channel's address already.
            report.lines.push_back("error " + result.error().describe());
            worsen(result.error());
            continue;
        }
        const std::vector<std::string> recipients = channels[i]->recipients();
        if (result->refused.empty()) {
            report.lines.push_back("ok    " + channels[i]->name());
        } else {
            report.lines.push_back(
                fmt::format("ok    {} (taken for {} of {} recipient(s))", channels[i]->name(),
                            recipients.size() - result->refused.size(), recipients.size()));
        }
        if (recipients.size() > 1 || !result->refused.empty()) {
            for (const std::string& recipient : recipients) {
                auto refusal = std::ranges::find(result->refused, recipient, &Refusal::recipient);
                if (refusal == result->refused.end()) {
                    report.lines.push_back("      accepted " + recipient);
                } else {
                    report.lines.push_back(fmt::format("      refused  {}: {}", recipient,
                                                       refusal->failure.describe()));
                    worsen(refusal->failure);
                }
            }
        }
        for (const std::string& note : result->notes) {
            report.lines.push_back("note  " + note);
        }
    }
    return report;
}

} // namespace crashmail
