#include "supervisor/crash_details.hpp"

#include "supervisor/exit_status.hpp"
#include "util/duration.hpp"
#include "util/log.hpp"
#include "util/utf8.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <optional>
#include <vector>

namespace crashmail {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t k_max_line_bytes = 4000;
constexpr std::string_view k_replacement = "\xEF\xBF\xBD"; // U+FFFD
constexpr std::chrono::milliseconds k_probe_timeout{2000};
// Why what is left was not asked for once crashmail is stopping.
constexpr std::string_view k_stopped_reason = "crashmail stopped before fetching them";

// Removes ANSI CSI sequences (ESC [ ... final byte), replaces other control characters but
// tab by U+FFFD, and cuts the line to k_max_line_bytes.
std::string clean_line(std::string_view line) {
    std::string out;
    out.reserve(line.size());
    for (std::size_t i = 0; i < line.size(); ++i) {
        auto byte = static_cast<unsigned char>(line[i]);
        if (byte == 0x1b && i + 1 < line.size() && line[i + 1] == '[') {
            std::size_t j = i + 2;
            while (j < line.size() && static_cast<unsigned char>(line[j]) >= 0x20 &&
                   static_cast<unsigned char>(line[j]) <= 0x3f) {
                ++j;
            }
            if (j < line.size() && static_cast<unsigned char>(line[j]) >= 0x40 &&
                static_cast<unsigned char>(line[j]) <= 0x7e) {
                i = j;
                continue;
            }
        }
        if ((byte < 0x20 && byte != '\t') || byte == 0x7f) {
            out += k_replacement;
        } else {
            out += line[i];
        }
    }
    if (out.size() > k_max_line_bytes) {
        out = std::string(utf8::truncate(out, k_max_line_bytes)) + "…";
    }
    return out;
}

// One alert's fetching: the time budget, and what went wrong so far.
class Fetch {
public:
    Fetch(SupervisorRpc& rpc, const CrashDetailsSettings& settings, const std::atomic<bool>* cancel)
        : m_rpc(rpc), m_settings(settings), m_cancel(cancel),
          m_deadline(settings.clock() + settings.budget) {}

    // The time left for the next call, or std::nullopt when an earlier failure or crashmail
    // stopping means asking again is pointless (the reason is then in blocking()).
    std::optional<std::chrono::milliseconds> time_left() {
        if (!m_blocking && m_cancel != nullptr && m_cancel->load(std::memory_order_acquire)) {
            m_blocking = std::string(k_stopped_reason);
        }
        if (m_blocking) {
            return std::nullopt;
        }
        auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(m_deadline - m_settings.clock());
        return std::max(left, 0ms);
    }

    // Records a failed part ("log tail unavailable", "exit status unknown").
    void failed(std::string_view part, RpcError error) {
        if (error.kind == RpcError::Kind::cancelled) {
            if (!m_blocking) {
                m_blocking = std::string(k_stopped_reason);
            }
            m_parts.push_back({std::string(part), std::string(k_stopped_reason), true});
            return;
        }
        if (error.kind == RpcError::Kind::timeout) {
            error.message = "no answer within " + seconds_text(m_settings.budget);
        }
        std::string reason = error.describe(m_rpc.server());
        bool blocks = error.kind == RpcError::Kind::timeout ||
                      error.kind == RpcError::Kind::connect ||
                      error.kind == RpcError::Kind::unusable ||
                      (error.kind == RpcError::Kind::http &&
                       (error.http_status == 401 || error.http_status == 403));
        if (blocks && !m_blocking) {
            m_blocking = reason;
        }
        m_parts.push_back({std::string(part), std::move(reason), true});
    }

    // Records a part that could not be had for a reason that is not a failure.
    void missing(std::string_view part, std::string reason) {
        m_parts.push_back({std::string(part), std::move(reason), false});
    }

    // Records a part skipped because of the blocking failure.
    void skipped(std::string_view part) {
        m_parts.push_back({std::string(part), *m_blocking, true});
    }

    // The one-line note, or "" when everything was had.
    std::string note() const {
        if (m_parts.empty()) {
            return {};
        }
        bool same_failure = std::all_of(m_parts.begin(), m_parts.end(), [&](const Part& part) {
            return part.failure && part.reason == m_parts.front().reason;
        });
        if (same_failure && !m_had_something) {
            return "details unavailable: " + m_parts.front().reason;
        }
        std::vector<std::string> texts;
        texts.reserve(m_parts.size());
        for (const Part& part : m_parts) {
            texts.push_back(part.what + ": " + part.reason);
        }
        return fmt::format("{}", fmt::join(texts, "; "));
    }

    // Records that a part was had (then a failure cannot mean "no details at all").
    void succeeded() { m_had_something = true; }

private:
    struct Part {
        std::string what;
        std::string reason;
        bool failure;
    };
    SupervisorRpc& m_rpc;
    const CrashDetailsSettings& m_settings;
    const std::atomic<bool>* m_cancel;
    std::chrono::steady_clock::time_point m_deadline;
    std::optional<std::string> m_blocking;
    std::vector<Part> m_parts;
    bool m_had_something = false;
};

bool is_utf8_window_error(const RpcError& error) {
    return error.kind == RpcError::Kind::http && error.http_status == 500;
}

// Fetches the log tail: stderr, else stdout.
void fetch_tail(Alert& alert, const std::string& name, SupervisorRpc& rpc,
                const CrashDetailsSettings& settings, Fetch& fetch) {
    constexpr std::string_view k_part = "log tail unavailable";
    const std::int64_t window = tail_window_bytes(settings.tail_lines);
    for (LogChannel channel : {LogChannel::stderr_log, LogChannel::stdout_log}) {
        std::optional<std::expected<LogTail, RpcError>> answer;
        for (std::int64_t shorter = 0; shorter <= 3; ++shorter) {
            auto left = fetch.time_left();
            if (!left) {
                fetch.skipped(k_part);
                return;
            }
            answer = rpc.tail_process_log(name, channel, window - shorter, *left);
            if (*answer || !is_utf8_window_error(answer->error())) {
                break;
            }
        }
        if (!*answer) {
            fetch.failed(k_part, answer->error());
            return;
        }
        std::string tail = last_lines((*answer)->text, settings.tail_lines, (*answer)->overflow);
        if (!tail.empty()) {
            alert.log_tail = std::move(tail);
            alert.log_source = channel == LogChannel::stderr_log ? "stderr" : "stdout";
            fetch.succeeded();
            return;
        }
    }
    fetch.missing("log tail", "the process wrote nothing to its stderr or stdout log");
}

void fetch_exit_status(Alert& alert, SupervisorRpc& rpc, const CrashDetailsSettings& settings,
                       Fetch& fetch) {
    constexpr std::string_view k_part = "exit status unknown";
    std::optional<std::expected<std::string, RpcError>> answer;
    for (std::int64_t shorter = 0; shorter <= 3; ++shorter) {
        auto left = fetch.time_left();
        if (!left) {
            fetch.skipped(k_part);
            return;
        }
        answer = rpc.read_main_log_tail(settings.main_log_bytes - shorter, *left);
        if (*answer || !is_utf8_window_error(answer->error())) {
            break;
        }
    }
    if (!*answer) {
        fetch.failed(k_part, answer->error());
        return;
    }
    if (auto status = find_exit_status(**answer, alert.process, alert.pid)) {
        alert.exit_status = std::move(*status);
        fetch.succeeded();
    } else {
        fetch.missing(k_part, "no 'exited:' line for it in supervisord's log");
    }
}

void fetch_spawn_error(Alert& alert, const std::string& name, SupervisorRpc& rpc, Fetch& fetch) {
    constexpr std::string_view k_part = "spawn error unknown";
    auto left = fetch.time_left();
    if (!left) {
        fetch.skipped(k_part);
        return;
    }
    auto info = rpc.process_info(name, *left);
    if (!info) {
        fetch.failed(k_part, info.error());
        return;
    }
    alert.spawn_error = info->spawnerr;
    fetch.succeeded();
}

} // namespace

std::int64_t tail_window_bytes(int lines) {
    return std::clamp<std::int64_t>(std::int64_t{512} * lines, 4096, 256 * 1024);
}

std::string last_lines(std::string_view text, int lines, bool overflow) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
        text.remove_suffix(1);
    }
    std::vector<std::string_view> all;
    while (!text.empty()) {
        auto end = text.find('\n');
        all.push_back(text.substr(0, end));
        if (end == std::string_view::npos) {
            break;
        }
        text.remove_prefix(end + 1);
    }
    if (overflow && all.size() > 1) {
        all.erase(all.begin());
    }
    std::size_t keep = std::min(all.size(), static_cast<std::size_t>(std::max(lines, 0)));
    std::string out;
    for (std::size_t i = all.size() - keep; i < all.size(); ++i) {
        std::string_view line = all[i];
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (i > all.size() - keep) {
            out += '\n';
        }
        out += clean_line(line);
    }
    if (out.find_first_not_of(" \t\n") == std::string::npos) {
        return {};
    }
    return out;
}

void fetch_crash_details(Alert& alert, SupervisorRpc& rpc, const CrashDetailsSettings& settings,
                         const std::atomic<bool>* cancel) {
    const std::string name =
        alert.group.empty() ? alert.process : fmt::format("{}:{}", alert.group, alert.process);
    Fetch fetch(rpc, settings, cancel);
    if (settings.tail_lines > 0) {
        fetch_tail(alert, name, rpc, settings, fetch);
    }
    if (alert.state == "EXITED") {
        fetch_exit_status(alert, rpc, settings, fetch);
    } else if (alert.state == "FATAL") {
        fetch_spawn_error(alert, name, rpc, fetch);
    }
    alert.details_note = fetch.note();
}

CrashDetailsEnricher::CrashDetailsEnricher(std::unique_ptr<SupervisorRpc> rpc,
                                           CrashDetailsSettings settings, AlertTemplates templates,
                                           std::string self_name)
    : m_rpc(std::move(rpc)), m_settings(std::move(settings)), m_templates(std::move(templates)),
      m_self_name(std::move(self_name)) {}

void CrashDetailsEnricher::start() {
    if (m_self_name.empty()) {
        return;
    }
    auto info = m_rpc->process_info(m_self_name, k_probe_timeout);
    if (!info && info.error().kind != RpcError::Kind::cancelled) {
        log::warning("cannot ask supervisord why processes crash ({}); alerts will say so",
                     info.error().describe(m_rpc->server()));
    }
}

void CrashDetailsEnricher::enrich(Alert& alert) {
    if (alert.kind == AlertKind::recovery || alert.kind == AlertKind::digest ||
        alert.kind == AlertKind::dropped || alert.kind == AlertKind::spool ||
        alert.kind == AlertKind::channel) {
        render_alert_text(alert, m_templates); // nothing crashed: nothing to fetch
        return;
    }
    if (m_cancelled.load(std::memory_order_acquire)) {
        skip(alert, k_stopped_note);
        return;
    }
    fetch_crash_details(alert, *m_rpc, m_settings, &m_cancelled);
    std::vector<std::string> found;
    if (!alert.exit_status.empty()) {
        found.push_back(alert.exit_status);
    }
    if (!alert.spawn_error.empty()) {
        found.push_back(alert.spawn_error);
    }
    if (!alert.log_tail.empty()) {
        auto lines = std::count(alert.log_tail.begin(), alert.log_tail.end(), '\n') + 1;
        found.push_back(fmt::format("{} line(s) of {}", lines, alert.log_source));
    }
    if (!alert.details_note.empty()) {
        log::warning("alert {} ({}): {}", alert.id, display_name(alert.group, alert.process),
                     alert.details_note);
    }
    if (!found.empty()) {
        log::info("alert {} ({}): {}", alert.id, display_name(alert.group, alert.process),
                  fmt::join(found, ", "));
    }
    render_alert_text(alert, m_templates);
}

void CrashDetailsEnricher::skip(Alert& alert, std::string_view reason) {
    alert.details_note = std::string(reason);
    render_alert_text(alert, m_templates);
}

void CrashDetailsEnricher::cancel() {
    m_cancelled.store(true, std::memory_order_release);
    m_rpc->cancel();
}

} // namespace crashmail
