#include "app/crashmail_main.hpp"

#include "alert/channel_notice.hpp"
#include "alert/spool_notice.hpp"
#include "alert/templates.hpp"
#include "app/channels.hpp"
#include "app/discard_monitor.hpp"
#include "app/listener.hpp"
#include "app/options.hpp"
#include "app/retry_failed.hpp"
#include "app/self_test.hpp"
#include "app/status.hpp"
#include "delivery/dispatcher.hpp"
#include "delivery/mark_file.hpp"
#include "delivery/memory_spool.hpp"
#include "delivery/retry_inbox.hpp"
#include "delivery/spool.hpp"
#include "delivery/spool_location.hpp"
#include "protocol/reader.hpp"
#include "protocol/stream.hpp"
#include "protocol/writer.hpp"
#include "supervisor/crash_details.hpp"
#include "supervisor/rpc_client.hpp"
#include "util/host.hpp"
#include "util/log.hpp"
#include "util/no_core.hpp"
#include "util/parent.hpp"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sysexits.h>
#include <unistd.h>

namespace crashmail {
namespace {

// How long deliveries may go on after SIGTERM or the end of input: inside supervisord's
// default stopwaitsecs (10 s).
constexpr std::chrono::seconds k_shutdown_grace{7};

// Written by the SIGTERM/SIGINT handler; the protocol reader polls its other end.
int g_stop_pipe[2] = {-1, -1};
volatile std::sig_atomic_t g_stop_requested = 0;

void request_stop(int) {
    g_stop_requested = 1;
    char byte = 1;
    [[maybe_unused]] ssize_t ignored = ::write(g_stop_pipe[1], &byte, 1);
}

bool install_stop_handler() {
    if (::pipe2(g_stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        return false;
    }
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    return ::sigaction(SIGTERM, &action, nullptr) == 0 &&
           ::sigaction(SIGINT, &action, nullptr) == 0;
}

std::filesystem::path spool_root(const Options& options) {
    return find_spool_root(CRASHMAIL_SYSTEM_SPOOL, options.spool, current_spool_user(),
                           system_file_system());
}

// The listener's spool on disk, or why it has none (then it keeps alerts in memory).
struct ListenerSpool {
    std::unique_ptr<DirectorySpool> disk;
    std::optional<NoSpool> none;
    bool used_before = false; // the directory held a lock file already
};

ListenerSpool open_listener_spool(const Options& options, const std::string& listener_name) {
    ListenerSpool result;
    const SpoolUser user = current_spool_user();
    SpoolFileSystem& files = system_file_system();
    auto root = prepare_spool_root(CRASHMAIL_SYSTEM_SPOOL, options.spool, user, files);
    if (!root) {
        result.none = std::move(root.error());
        return result;
    }
    const auto directory = listener_spool(*root, listener_name);
    if (auto own = check_own_directory(directory, user, files); !own) {
        result.none = NoSpool{{own.error()},
                              fmt::format("look at who made {} and remove it (crashmail creates "
                                          "its own), or give --spool DIR",
                                          directory.string())};
        return result;
    }
    std::error_code ignored;
    result.used_before = std::filesystem::exists(directory / "lock", ignored);
    auto opened = DirectorySpool::open(directory);
    if (!opened) {
        const bool in_use = opened.error().find("in use by another crashmail") != std::string::npos;
        result.none = NoSpool{
            {opened.error()},
            in_use ? std::string("give each listener its own process name (supervisord's "
                                 "[eventlistener:NAME]) or its own --spool DIR")
                   : fmt::format("make {} writable by {} again (chown -R {} {}), or give "
                                 "--spool DIR",
                                 directory.string(), user.name, user.name, directory.string())};
        return result;
    }
    result.disk = std::move(*opened);
    return result;
}

void print_stdout(const std::string& text) {
    protocol::FdSink(1).write_all(text);
}

std::string version_text() {
    const curl_version_info_data* curl = curl_version_info(CURLVERSION_NOW);
    return fmt::format("crashmail {}\nlibcurl {} ({})\n", CRASHMAIL_VERSION, curl->version,
                       curl->ssl_version != nullptr ? curl->ssl_version : "no TLS");
}

// The protocol channel gets private descriptors; fd 0 becomes /dev/null and fd 1 a copy of
// stderr, so no library, log line or child process can write into the channel or read
// supervisord's events. Returns {input, output} or std::nullopt with errno set.
std::optional<std::pair<int, int>> take_protocol_channel() {
    int input = ::fcntl(0, F_DUPFD_CLOEXEC, 3);
    int output = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
    if (input < 0 || output < 0) {
        return std::nullopt;
    }
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(2, 1) < 0) {
        return std::nullopt;
    }
    ::close(null);
    return std::pair{input, output};
}

// supervisord's XML-RPC interface, as SUPERVISOR_SERVER_URL and the credentials say.
std::unique_ptr<SupervisorRpc> make_rpc() {
    RpcCredentials credentials{process_getenv("SUPERVISOR_USERNAME").value_or(""),
                               process_getenv("SUPERVISOR_PASSWORD").value_or("")};
    return std::make_unique<CurlSupervisorRpc>(process_getenv("SUPERVISOR_SERVER_URL").value_or(""),
                                               std::move(credentials));
}

// The enrichment stage: the crashed process's log tail and exit status from supervisord's
// XML-RPC interface, then the --subject/--body templates.
std::shared_ptr<AlertEnricher> make_enricher(const Options& options, AlertTemplates templates) {
    auto rpc = make_rpc();
    CrashDetailsSettings details;
    details.tail_lines = options.tail_lines;
    std::string self_name;
    if (auto process = process_getenv("SUPERVISOR_PROCESS_NAME")) {
        self_name = process_getenv("SUPERVISOR_GROUP_NAME").value_or(*process) + ":" + *process;
    }
    return std::make_shared<CrashDetailsEnricher>(std::move(rpc), std::move(details),
                                                  std::move(templates), std::move(self_name));
}

int serve(const Options& options, std::vector<std::unique_ptr<Transport>> channels,
          const AlertContext& context, AlertTemplates templates) {
    std::vector<ProgramPattern> patterns;
    for (const std::string& text : options.programs) {
        auto pattern = ProgramPattern::parse(text);
        if (!pattern) {
            log::error("-p/--program: {}", pattern.error());
            return EX_USAGE;
        }
        patterns.push_back(std::move(*pattern));
    }
    if (!options.any && patterns.empty()) {
        log::warning("neither -a nor -p given: watching every process (give -a to say so, or "
                     "-p NAME to choose)");
    }
    for (const std::string& argument : options.ignored_arguments) {
        log::warning("ignoring argument '{}'", argument);
    }
    if (!process_getenv("SUPERVISOR_SERVER_URL")) {
        log::error("crashmail must run as a supervisord event listener "
                   "(SUPERVISOR_SERVER_URL is not set); use --test to check a configuration "
                   "from a shell");
        return EX_USAGE;
    }
    std::string listener_name = process_getenv("SUPERVISOR_PROCESS_NAME").value_or("crashmail");
    ListenerSpool opened_spool = open_listener_spool(options, listener_name);
    MemorySpool memory_spool; // used when there is no spool on disk
    AlertStore& alert_store = opened_spool.disk ? static_cast<AlertStore&>(*opened_spool.disk)
                                                : static_cast<AlertStore&>(memory_spool);
    StateStore* state_store = opened_spool.disk ? static_cast<StateStore*>(opened_spool.disk.get())
                                                : static_cast<StateStore*>(&memory_spool);
    const std::string spool_name =
        opened_spool.disk ? opened_spool.disk->directory().string() : "none (memory only)";
    if (opened_spool.none) {
        log::warning("no spool: alerts are kept in memory only, and an alert not yet delivered "
                     "is lost if crashmail stops ({}); fix: {}",
                     fmt::join(opened_spool.none->reasons, "; "), opened_spool.none->fix);
    }
    auto fds = take_protocol_channel();
    if (!fds || !install_stop_handler()) {
        log::error("cannot set up the protocol channel: {}", std::strerror(errno));
        return EX_OSERR;
    }

    ListenerSettings settings;
    settings.selection = Selection(options.any, std::move(patterns));
    settings.self_process = process_getenv("SUPERVISOR_PROCESS_NAME").value_or("");
    settings.self_group = process_getenv("SUPERVISOR_GROUP_NAME").value_or("");
    settings.context = context;
    settings.instance = parent_process_identity();
    for (const std::string& text : options.excludes) {
        auto pattern = ProgramPattern::parse(text);
        if (!pattern) {
            log::error("-x/--exclude: {}", pattern.error());
            return EX_USAGE;
        }
        settings.excludes.push_back(std::move(*pattern));
    }
    settings.states = std::set<std::string>(options.states.begin(), options.states.end());
    settings.expected = options.expected;
    settings.loops.rate_limit = *parse_rate_limit(options.rate_limit); // checked by options
    settings.loops.recovery_notices = options.recovery;
    settings.loops.resolve_alerts = !options.alertmanager.empty();
    settings.loops.recovery_after = options.recovery_after;
    settings.state_store = state_store;

    DispatcherSettings delivery;
    delivery.retry.max_age = options.max_age;
    delivery.enricher = make_enricher(options, std::move(templates));
    delivery.batch = options.batch;
    delivery.digest_prefix = options.optional_header;
    delivery.refusals_store = state_store;
    delivery.health_store = state_store;
    delivery.channel_notice = [context, instance = settings.instance](const ChannelNotice& notice) {
        auto now = std::chrono::system_clock::now();
        return channel_alert(context, notice, now, channel_notice_id(instance, notice, now));
    };
    // What waits in memory, for --status: one pwrite into a block allocated now, so that it
    // can still be written when the disk is full.
    std::unique_ptr<FileMark> outbox_mark;
    if (opened_spool.disk) {
        if (auto opened = FileMark::open(opened_spool.disk->directory() / "outbox.mark")) {
            outbox_mark = std::move(*opened);
            delivery.outbox.mark = outbox_mark.get();
        } else {
            log::error("spool: {}; --status cannot show alerts that wait in memory",
                       opened.error());
        }
    }
    delivery.spool_notice = [context, instance = settings.instance,
                             directory = spool_name](const std::string& reason, std::size_t count) {
        auto now = std::chrono::system_clock::now();
        return spool_alert(context, reason, count, directory, now, spool_notice_id(instance, now));
    };
    Dispatcher dispatcher(std::move(channels), alert_store, delivery);
    log::info("started (version {}), {} channel(s), watching {}, spool {}", CRASHMAIL_VERSION,
              dispatcher.channel_count(),
              settings.selection.watches_everything()
                  ? std::string("every process")
                  : fmt::format("{}", fmt::join(options.programs, ", ")),
              spool_name);
    if (opened_spool.none) {
        auto now = std::chrono::system_clock::now();
        dispatcher.submit(no_spool_alert(context, opened_spool.none->reasons,
                                         opened_spool.none->fix, now,
                                         spool_notice_id(settings.instance, now)));
    }
    if (std::size_t pending = dispatcher.recover(); pending > 0) {
        log::info("{} alert(s) pending from an earlier run", pending);
    }
    // What --retry-failed requeues (delivery/retry_inbox): what it left while no listener ran
    // is adopted now, the rest within seconds; stopped before the dispatcher shuts down.
    std::optional<RetryInbox> retry_inbox;
    if (opened_spool.disk) {
        retry_inbox.emplace(opened_spool.disk->directory(), [&dispatcher](AlertRecord record) {
            return dispatcher.adopt(std::move(record));
        });
        retry_inbox->start();
    }
    DiscardMonitorSettings discard_settings;
    discard_settings.instance = settings.instance;
    discard_settings.self_process = settings.self_process;
    discard_settings.self_group = settings.self_group;
    discard_settings.context = context;
    if (settings.loops.rate_limit) {
        discard_settings.window = settings.loops.rate_limit->window;
    }
    discard_settings.watched = [judged = settings](const ProcessStateChange& change) {
        return judge(change, judged) == Verdict::Kind::alert;
    };
    std::unique_ptr<FileMark> file_mark;
    MemoryMark memory_mark;
    MarkStore* mark = &memory_mark; // without a spool, pool serials are kept for this run only
    auto opened_mark = opened_spool.disk
                           ? FileMark::open(opened_spool.disk->directory() / "pool-serials.mark")
                           : std::expected<std::unique_ptr<FileMark>, std::string>(nullptr);
    if (opened_mark && *opened_mark) {
        file_mark = std::move(*opened_mark);
        mark = file_mark.get();
        if (file_mark->created() && opened_spool.used_before) {
            log::info("no pool-serial mark in the spool yet (it was used by an earlier version "
                      "of crashmail): discarded events are counted from the first event on");
            discard_settings.first_event_is_baseline = true;
        }
    } else if (!opened_mark) {
        log::error("spool: {}; events supervisord discards cannot be told from a restart",
                   opened_mark.error());
    }

    protocol::FdSource source(fds->first, g_stop_pipe[0]);
    protocol::FdSink sink(fds->second);
    protocol::Reader reader(source);
    protocol::Writer writer(sink);
    Listener listener(reader, writer, std::move(settings), dispatcher);
    if (std::size_t stories = listener.monitor().restore(); stories > 0) {
        log::info("{} crash-loop stor{} kept from an earlier run", stories,
                  stories == 1 ? "y" : "ies");
    }
    DiscardMonitor discards(std::move(discard_settings), listener.monitor(), dispatcher,
                            state_store, mark, make_rpc());
    discards.restore();
    listener.set_observer(&discards);
    listener.monitor().start_clock();
    discards.start();
    int status = listener.run();
    discards.stop();
    if (retry_inbox) {
        retry_inbox->stop();
    }
    listener.monitor().stop_clock();
    if (g_stop_requested != 0) {
        status = EX_OK; // an orderly stop, even if it cut an event short
    }
    log::info("stopping ({}): {} events, {} alerts; delivering for up to {} s",
              g_stop_requested != 0 ? "signal" : "end of input", listener.events_seen(),
              listener.alerts_raised(), k_shutdown_grace.count());
    Dispatcher::Stopped left = dispatcher.shutdown(k_shutdown_grace);
    if (left.pending > 0 && opened_spool.disk) {
        log::warning("{} alert(s) left in the spool for the next start", left.pending);
    } else if (left.pending > 0) {
        log::error("{} alert(s) lost: there is no spool, they were kept in memory only",
                   left.pending);
    }
    if (left.lost > 0) {
        log::error("{} alert(s) lost: the spool never took them ({}); they were held in memory "
                   "only",
                   left.lost, left.reason);
    }
    return status;
}

} // namespace

int crashmail_main(int argc, const char* const* argv) {
    std::signal(SIGPIPE, SIG_IGN);
    // No secret in a core dump (util/no_core): non-dumpable before any secret is read.
    if (auto dumps = protect_from_core_dumps(
            allows_core_dumps(std::getenv(std::string(k_allow_core_dumps_variable).c_str())));
        !dumps.problem.empty()) {
        log::warning("{}: a core dump of crashmail may hold its secrets", dumps.problem);
    }

    auto options = parse_options(argc, argv);
    if (!options) {
        if (options.error().show_version) {
            print_stdout(version_text());
        } else if (!options.error().output.empty()) {
            print_stdout(options.error().output);
        } else {
            log::error("{}", options.error().message);
        }
        return options.error().exit_code;
    }

    if (options->status) {
        StatusReport report = status_report(spool_root(*options));
        print_stdout(report.text);
        return report.exit_code;
    }
    if (options->retry_failed) {
        RetryFailedReport report =
            retry_failed(spool_root(*options), options->retry_ids, std::chrono::system_clock::now(),
                         current_spool_user().name);
        print_stdout(report.out);
        for (const std::string& error : report.errors) {
            log::error("--retry-failed: {}", error);
        }
        return report.exit_code;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log::error("cannot initialise libcurl");
        return EX_SOFTWARE;
    }

    auto templates = parse_templates(options->subject_template, options->body_template,
                                     options->optional_header);
    if (!templates) {
        log::error("{}", templates.error());
        return EX_CONFIG;
    }

    AlertContext context{options->hostname.empty() ? fully_qualified_hostname() : options->hostname,
                         options->optional_header};
    auto channels = make_channels(*options, context.host, process_getenv);
    if (!channels) {
        log::error("{}", channels.error().message);
        return channels.error().exit_code;
    }
    // A name without a dot matters to mail only (EHLO, the sender's domain): said once, on
    // stderr when serving, as a line of the report under --test.
    std::optional<std::string> host_warning;
    if (!options->emails.empty()) {
        host_warning = unqualified_hostname_warning(context.host);
    }

    if (options->test) {
        auto now = std::chrono::system_clock::now();
        Alert alert = make_test_alert(context, now, new_alert_id(now, 0));
        render_alert_text(alert, *templates); // so that templates can be tried from a shell
        // Under --test nothing is stored: the result is printed, not retried.
        SelfTestReport report = run_self_test(*channels, alert);
        if (host_warning) {
            print_stdout("warning " + *host_warning + "\n");
        }
        for (const std::string& line : report.lines) {
            print_stdout(line + "\n");
        }
        return report.exit_code;
    }
    if (host_warning) {
        log::warning("{}", *host_warning);
    }
    return serve(*options, std::move(*channels), context, std::move(*templates));
}

} // namespace crashmail
