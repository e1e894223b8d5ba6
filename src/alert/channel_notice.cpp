#include "alert/channel_notice.hpp"

#include "util/duration.hpp"
#include "util/hash.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

#include <fmt/format.h>

namespace crashmail {
namespace {

constexpr std::size_t k_words_bytes = 500;
constexpr std::size_t k_name_bytes = 200;

} // namespace

Alert channel_alert(const AlertContext& context, const ChannelNotice& notice,
                    std::chrono::system_clock::time_point now, std::string id) {
    Alert alert;
    alert.kind = AlertKind::channel;
    alert.id = std::move(id);
    alert.time = now;
    alert.host = one_line(context.host, k_name_bytes);
    alert.channel = one_line(notice.name, k_name_bytes);
    alert.channel_recovered = notice.working;
    const std::string prefix =
        context.prefix.empty() ? "" : one_line(context.prefix, k_name_bytes) + ": ";
    const auto for_how_long =
        seconds_text(std::chrono::duration_cast<std::chrono::milliseconds>(now - notice.since));
    if (notice.working) {
        alert.subject = fmt::format("{}crashmail on {}: channel {} works again", prefix, alert.host,
                                    alert.channel);
        alert.body = fmt::format(
            "The channel {} delivers again, after failing for {}; the alerts that waited for "
            "it are being delivered now.\n\nHost: {}\nTime: {}",
            alert.channel, for_how_long, alert.host, timefmt::rfc5322_local(now));
        return alert;
    }
    alert.subject = fmt::format("{}crashmail on {}: channel {} is failing; {} alert{} wait{}",
                                prefix, alert.host, alert.channel, notice.waiting,
                                notice.waiting == 1 ? "" : "s", notice.waiting == 1 ? "s" : "");
    alert.body = fmt::format(
        "crashmail cannot deliver through the channel {}: {}.\n\n"
        "Its peer said: {}\n\n"
        "{} alert{} wait{} for it. crashmail keeps retrying it for --max-age; alerts it gives "
        "up on go to failed/ (crashmail --status lists them, crashmail --retry-failed sends "
        "them again). You get this notice through the other channels, at most once an hour "
        "for this channel, and one more when it works again.\n\n"
        "Host: {}\nTime: {}\nFailing since: {}",
        alert.channel,
        notice.permanent ? "a delivery failed for good"
                         : fmt::format("its deliveries have failed for {}", for_how_long),
        one_line(notice.words, k_words_bytes), notice.waiting, notice.waiting == 1 ? "" : "s",
        notice.waiting == 1 ? "s" : "", alert.host, timefmt::rfc5322_local(now),
        timefmt::rfc5322_local(notice.since));
    return alert;
}

std::string channel_notice_id(std::string_view instance, const ChannelNotice& notice,
                              std::chrono::system_clock::time_point now) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    return fmt::format("c{}", sha256_hex(fmt::format("{}\nchannel\n{}\n{}\n{}", instance,
                                                     notice.key, notice.working, ms),
                                         8));
}

} // namespace crashmail
