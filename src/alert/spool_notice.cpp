#include "alert/spool_notice.hpp"

#include "util/hash.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

#include <fmt/format.h>

namespace crashmail {
namespace {

constexpr std::size_t k_reason_bytes = 300;

} // namespace

Alert spool_alert(const AlertContext& context, std::string_view reason, std::size_t waiting,
                  const std::string& spool, std::chrono::system_clock::time_point now,
                  std::string id) {
    Alert alert;
    alert.kind = AlertKind::spool;
    alert.id = std::move(id);
    alert.time = now;
    alert.host = one_line(context.host, k_reason_bytes);
    const std::string prefix =
        context.prefix.empty() ? "" : one_line(context.prefix, k_reason_bytes) + ": ";
    const std::string why = one_line(reason, k_reason_bytes);
    alert.subject = fmt::format("{}crashmail on {}: spool not writable; {} alert{} not durable",
                                prefix, alert.host, waiting, waiting == 1 ? "" : "s");
    alert.body = fmt::format(
        "crashmail cannot write its spool ({}): {}.\n\n"
        "{} alert{} wait{} in memory: they are still delivered, and crashmail keeps trying to "
        "store them, but they are lost if crashmail stops (or the machine goes down) before "
        "the spool takes them. Later alerts are held the same way until it does; this notice "
        "is not repeated for them.\n\n"
        "Fix: free space on the file system of {} (df -h), or make the directory writable "
        "again by the user crashmail runs as. crashmail re-creates the directory itself when "
        "it was removed.\n\n"
        "Host: {}\nTime: {}",
        one_line(spool, k_reason_bytes), why, waiting, waiting == 1 ? "" : "s",
        waiting == 1 ? "s" : "", one_line(spool, k_reason_bytes), alert.host,
        timefmt::rfc5322_local(now));
    return alert;
}

std::string spool_notice_id(std::string_view instance, std::chrono::system_clock::time_point now) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    return fmt::format("s{}", sha256_hex(fmt::format("{}\nspool\n{}", instance, ms), 8));
}

} // namespace crashmail
