#include "alert/discard_notice.hpp"

#include "alert/crash_loop.hpp"
#include "alert/mail_message.hpp"
#include "util/hash.hpp"
#include "util/time.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace crashmail {
namespace {

using time_point = std::chrono::system_clock::time_point;

std::int64_t to_ms(time_point time) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

time_point from_ms(std::int64_t ms) {
    return time_point(std::chrono::milliseconds(ms));
}

std::string plural(std::uint64_t count, std::string_view one, std::string_view many) {
    return fmt::format("{} {}", count, count == 1 ? one : many);
}

void add_report(DiscardNotice& notice, const DiscardReport& report) {
    notice.discarded += report.discarded;
    ++notice.gaps;
    if (report.recovered) {
        for (const auto& [name, count] : *report.recovered) {
            notice.recovered[name] += count;
        }
    } else {
        notice.unrecoverable += report.discarded;
    }
    if (!report.problem.empty() && std::find(notice.problems.begin(), notice.problems.end(),
                                             report.problem) == notice.problems.end()) {
        notice.problems.push_back(report.problem);
    }
}

nlohmann::json notice_to_json(const DiscardNotice& notice) {
    return {{"discarded", notice.discarded},
            {"gaps", notice.gaps},
            {"recovered", notice.recovered},
            {"unrecoverable", notice.unrecoverable},
            {"problems", notice.problems},
            {"window_start_ms", to_ms(notice.window_start)},
            {"window_end_ms", to_ms(notice.window_end)}};
}

DiscardNotice notice_from_json(const nlohmann::json& in) {
    DiscardNotice notice;
    notice.discarded = in.value("discarded", std::uint64_t{0});
    notice.gaps = in.value("gaps", std::uint64_t{0});
    notice.recovered = in.value("recovered", std::map<std::string, std::uint64_t>{});
    notice.unrecoverable = in.value("unrecoverable", std::uint64_t{0});
    notice.problems = in.value("problems", std::vector<std::string>{});
    notice.window_start = from_ms(in.value("window_start_ms", std::int64_t{0}));
    notice.window_end = from_ms(in.value("window_end_ms", std::int64_t{0}));
    return notice;
}

} // namespace

std::uint64_t DiscardNotice::recovered_total() const {
    std::uint64_t total = 0;
    for (const auto& [name, count] : recovered) {
        total += count;
    }
    return total;
}

std::optional<DiscardNotice> DiscardNotices::add(const DiscardReport& report, time_point now) {
    m_totals.discarded += report.discarded;
    if (report.recovered) {
        for (const auto& [name, count] : *report.recovered) {
            m_totals.recovered += count;
        }
    } else {
        m_totals.unrecoverable += report.discarded;
    }
    if (m_window_start && now < *m_window_start + m_window) {
        add_report(m_waiting, report); // told when the window ends
        return std::nullopt;
    }
    // The window of the last notice is over: this one goes out at once, with whatever was
    // still waiting, and opens a new window.
    std::optional<DiscardNotice> waiting = due(now); // counted there when it is one
    DiscardNotice notice = waiting ? std::move(*waiting) : DiscardNotice{};
    add_report(notice, report);
    notice.window_start = waiting ? notice.window_start : now;
    notice.window_end = now;
    m_window_start = now;
    m_waiting = {};
    if (!waiting) {
        ++m_totals.notices;
    }
    return notice;
}

std::optional<DiscardNotice> DiscardNotices::due(time_point now) {
    if (!m_window_start || now < *m_window_start + m_window) {
        return std::nullopt;
    }
    if (m_waiting.gaps == 0) {
        m_window_start.reset(); // a quiet window: the next gap is told at once
        return std::nullopt;
    }
    DiscardNotice notice = std::exchange(m_waiting, {});
    notice.window_start = *m_window_start;
    notice.window_end = *m_window_start + m_window;
    m_window_start = notice.window_end;
    ++m_totals.notices;
    return notice;
}

std::optional<DiscardNotices::time_point> DiscardNotices::next_due() const {
    if (!m_window_start) {
        return std::nullopt;
    }
    return *m_window_start + m_window;
}

nlohmann::json DiscardNotices::to_json() const {
    nlohmann::json out{{"version", 1},
                       {"waiting", notice_to_json(m_waiting)},
                       {"totals",
                        {{"discarded", m_totals.discarded},
                         {"recovered", m_totals.recovered},
                         {"unrecoverable", m_totals.unrecoverable},
                         {"notices", m_totals.notices}}}};
    if (m_window_start) {
        out["window_start_ms"] = to_ms(*m_window_start);
    }
    return out;
}

std::expected<void, std::string> DiscardNotices::restore(const nlohmann::json& document) {
    if (!document.is_object() || !document.contains("totals")) {
        return std::unexpected("not a discard state document (no \"totals\")");
    }
    try {
        const nlohmann::json& totals = document.at("totals");
        m_totals.discarded = totals.value("discarded", std::uint64_t{0});
        m_totals.recovered = totals.value("recovered", std::uint64_t{0});
        m_totals.unrecoverable = totals.value("unrecoverable", std::uint64_t{0});
        m_totals.notices = totals.value("notices", std::uint64_t{0});
        m_waiting = notice_from_json(document.value("waiting", nlohmann::json::object()));
        if (auto start = document.find("window_start_ms");
            start != document.end() && start->is_number_integer()) {
            m_window_start = from_ms(start->get<std::int64_t>());
        }
    } catch (const nlohmann::json::exception& error) {
        return std::unexpected(fmt::format("malformed discard state: {}", error.what()));
    }
    return {};
}

Alert discard_alert(const DiscardNotice& notice, const AlertContext& context,
                    const std::string& pool, time_point now, std::string id) {
    Alert alert;
    alert.kind = AlertKind::dropped;
    alert.id = std::move(id);
    alert.host = context.host;
    alert.time = now;
    alert.discarded = notice.discarded;
    if (!notice.all_unrecoverable()) {
        alert.recovered_crashes = notice.recovered_total();
    }
    if (notice.window_end > notice.window_start) {
        alert.window = std::chrono::duration_cast<std::chrono::seconds>(notice.window_end -
                                                                        notice.window_start);
    }

    const std::string prefix = context.prefix.empty() ? "" : header_safe(context.prefix) + ": ";
    const std::string section = header_safe(pool.empty() ? std::string("crashmail") : pool);
    const std::string host = header_safe(context.host);
    const std::string events = plural(notice.discarded, "event", "events");
    alert.subject =
        fmt::format("{}supervisord discarded {} meant for crashmail on {}", prefix, events, host);

    std::string when = notice.window_end > notice.window_start
                           ? fmt::format("in the last {} ({} to {})", duration_words(alert.window),
                                         timefmt::asctime_local(notice.window_start),
                                         timefmt::asctime_local(notice.window_end))
                           : fmt::format("before {}", timefmt::asctime_local(now));
    std::string body = fmt::format(
        "supervisord discarded {} meant for crashmail (listener pool {}) {}: the pool's event "
        "buffer was full, and supervisord then drops the oldest event without telling the "
        "listener.",
        events, section, when);

    std::vector<std::string> recovered;
    recovered.reserve(notice.recovered.size());
    for (const auto& [name, count] : notice.recovered) {
        recovered.push_back(fmt::format("{} {}", header_safe(name), count));
    }
    const std::uint64_t total = notice.recovered_total();
    if (notice.all_unrecoverable()) {
        body += "\n\nThe crashes among them could not be recovered from supervisord's log";
    } else if (total == 0) {
        body += "\n\nsupervisord's log shows no crash of a watched process among them.";
    } else {
        body += fmt::format("\n\nRecovered from supervisord's log: {} ({}); each was alerted or "
                            "counted by flood control like any other.",
                            plural(total, "crash", "crashes"), fmt::join(recovered, ", "));
        if (notice.discarded > total + notice.unrecoverable) {
            body += fmt::format(" The other {} discarded events were state changes that do not "
                                "alert (STARTING, RUNNING, ...) or of processes crashmail does "
                                "not watch.",
                                notice.discarded - total - notice.unrecoverable);
        }
        if (notice.unrecoverable > 0) {
            body +=
                fmt::format("\nThe crashes of {} more could not be recovered",
                            plural(notice.unrecoverable, "discarded event", "discarded events"));
        }
    }
    if (notice.unrecoverable > 0 || !notice.problems.empty()) {
        std::vector<std::string> problems;
        problems.reserve(notice.problems.size());
        for (const std::string& problem : notice.problems) {
            problems.push_back(header_safe(problem));
        }
        if (notice.unrecoverable > 0) {
            body += problems.empty() ? std::string(".")
                                     : fmt::format(": {}.", fmt::join(problems, "; "));
            body += " Look at supervisord's log and `supervisorctl status` for what happened.";
        } else {
            body += fmt::format("\nNote: {}.", fmt::join(problems, "; "));
        }
    }
    body += fmt::format("\n\nFix: in supervisord.conf, set buffer_size=100 (or more) in the "
                        "[eventlistener:{}] section, then run `supervisorctl update`.",
                        section);
    body += fmt::format("\n\nHost: {}\nTime: {}", host, timefmt::rfc5322_local(now));
    alert.body = std::move(body);
    return alert;
}

std::string discard_notice_id(const DiscardNotice& notice, std::string_view instance) {
    std::string identity =
        fmt::format("{}\ndropped\n{}\n{}\n{}", instance, to_ms(notice.window_start),
                    to_ms(notice.window_end), notice.discarded);
    return fmt::format("n{}", sha256_hex(identity, 8));
}

} // namespace crashmail
