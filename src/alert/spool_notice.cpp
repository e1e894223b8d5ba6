#include "alert/spool_notice.hpp"

#include "util/hash.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

#include <fmt/format.h>

namespace crashmail {
namespace {

constexpr std::size_t k_reason_bytes = 300;

// A notice of kind `spool` about this host, subject and body still to write.
Alert spool_notice(const AlertContext& context, std::chrono::system_clock::time_point now,
                   std::string id) {
    Alert alert;
    alert.kind = AlertKind::spool;
    alert.id = std::move(id);
    alert.time = now;
    alert.host = one_line(context.host, k_reason_bytes);
    return alert;
}

// "-o PREFIX: " for the subject, or nothing.
std::string subject_prefix(const AlertContext& context) {
    return context.prefix.empty() ? "" : one_line(context.prefix, k_reason_bytes) + ": ";
}

} // namespace

Alert spool_alert(const AlertContext& context, std::string_view reason, std::size_t waiting,
                  const std::string& spool, std::chrono::system_clock::time_point now,
                  std::string id) {
    Alert alert = spool_notice(context, now, std::move(id));
    const std::string prefix = subject_prefix(context);
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

Alert no_spool_alert(const AlertContext& context, const std::vector<std::string>& reasons,
                     std::string_view fix, std::chrono::system_clock::time_point now,
                     std::string id) {
    Alert alert = spool_notice(context, now, std::move(id));
    const std::string prefix = subject_prefix(context);
    alert.subject =
        fmt::format("{}crashmail on {}: no spool; alerts are not durable", prefix, alert.host);
    std::string tried;
    for (const std::string& reason : reasons) {
        tried += "- " + one_line(reason, k_reason_bytes) + "\n";
    }
    alert.body = fmt::format(
        "crashmail found no directory it can safely keep alerts in, so it keeps them in "
        "memory: they are still delivered and retried, but an alert not yet delivered is lost "
        "if crashmail stops or the machine goes down, and crashmail --status cannot show "
        "them.\n\nPlaces tried:\n{}\nFix: {}.\n\nHost: {}\nTime: {}",
        tried, one_line(fix, 2 * k_reason_bytes), alert.host, timefmt::rfc5322_local(now));
    return alert;
}

std::string spool_notice_id(std::string_view instance, std::chrono::system_clock::time_point now) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    return fmt::format("s{}", sha256_hex(fmt::format("{}\nspool\n{}", instance, ms), 8));
}

} // namespace crashmail
