#pragma once
// Why it crashed: the crashed process's last log lines, its exit status and (for FATAL)
// supervisord's spawn error, fetched over XML-RPC right after the event was answered, within
// a short time budget. What cannot be had is explained in one line in the alert, which is
// sent anyway.

#include "alert/alert.hpp"
#include "alert/enricher.hpp"
#include "alert/templates.hpp"
#include "supervisor/rpc_client.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace crashmail {

inline constexpr int k_max_tail_lines = 1000;

struct CrashDetailsSettings {
    int tail_lines = 0; // --tail N; 0: no log tail
    // Every call of one alert together (a hung supervisord costs at most this much).
    std::chrono::milliseconds budget{3000};
    // How much of supervisord's own log is searched for the exit status.
    std::int64_t main_log_bytes = 64 * 1024;
    std::function<std::chrono::steady_clock::time_point()> clock = std::chrono::steady_clock::now;
};

// How many bytes of a log are fetched for `lines` lines: 512 per line, at least 4 KiB, at
// most 256 KiB.
std::int64_t tail_window_bytes(int lines);

// The last `lines` lines of `text`, a log's last bytes: trailing newlines dropped; the first
// line dropped when `overflow` says the window began inside the log (it is likely cut);
// ANSI escape sequences removed, other control characters but tab replaced by U+FFFD and
// lines longer than 4000 bytes cut ("…"). Empty when nothing is left.
std::string last_lines(std::string_view text, int lines, bool overflow);

// Fills alert.log_tail/log_source (when settings.tail_lines > 0), alert.exit_status (for
// EXITED, from supervisord's log, see find_exit_status()) and alert.spawn_error (for FATAL,
// getProcessInfo's spawnerr), asking `rpc` for "group:process". Never fails: what could
// not be had, and why, goes into alert.details_note as one line, e.g. "details
// unavailable: supervisord (unix:///run/supervisor.sock): HTTP 401 Unauthorized ...". All
// calls together take at most settings.budget: after a time-out, a refused connection or an
// authentication failure nothing more is asked. A read answered HTTP 500 (its window began
// inside a multi-byte character, Supervisor/supervisor#1485) is retried 1, 2 and 3 bytes
// shorter. Once `*cancel` is set (looked at before every call; another thread may set it at
// any time) or a call answers RpcError::Kind::cancelled, nothing more is asked and what is
// left is noted as "crashmail stopped before fetching them" (the whole note reads
// k_stopped_note when nothing had been had).
void fetch_crash_details(Alert& alert, SupervisorRpc& rpc, const CrashDetailsSettings& settings,
                         const std::atomic<bool>* cancel = nullptr);

// The note of an alert whose details were not fetched because crashmail was stopping.
inline constexpr std::string_view k_stopped_note =
    "details unavailable: crashmail stopped before fetching them";

// The dispatcher's enrichment stage for crashmail under supervisord: fetch_crash_details(),
// then render_alert_text() with the --subject/--body templates.
class CrashDetailsEnricher final : public AlertEnricher {
public:
    // `self_name` ("group:process" of crashmail's own listener, or empty) is used by start()
    // to check once that supervisord's XML-RPC interface answers.
    CrashDetailsEnricher(std::unique_ptr<SupervisorRpc> rpc, CrashDetailsSettings settings,
                         AlertTemplates templates, std::string self_name);

    // Asks supervisord about crashmail's own process once and logs a warning saying why
    // details will be missing if that fails (no credentials, no [rpcinterface:supervisor]).
    void start() override;
    void enrich(Alert& alert) override;
    void skip(Alert& alert, std::string_view reason) override;
    // Makes an enrich() in progress return soon (the call to supervisord in progress is
    // aborted through SupervisorRpc::cancel(), within about a second), skipping what is left;
    // a later enrich() fetches nothing and renders as skip(alert, k_stopped_note) would.
    // Thread-safe.
    void cancel() override;

private:
    std::unique_ptr<SupervisorRpc> m_rpc;
    CrashDetailsSettings m_settings;
    AlertTemplates m_templates;
    std::string m_self_name;
    std::atomic<bool> m_cancelled{false};
};

} // namespace crashmail
