#include "app/crashmail_main.hpp"

#include "alert/spool_notice.hpp"
#include "alert/templates.hpp"
#include "app/channels.hpp"
#include "app/discard_monitor.hpp"
#include "app/listener.hpp"
#include "app/options.hpp"
#include "app/self_test.hpp"
#include "app/status.hpp"
#include "delivery/dispatcher.hpp"
#include "delivery/mark_file.hpp"
#include "delivery/spool.hpp"
#include "protocol/reader.hpp"
#include "protocol/stream.hpp"
#include "protocol/writer.hpp"
#include "supervisor/crash_details.hpp"
#include "supervisor/rpc_client.hpp"
#include "util/host.hpp"
#include "util/log.hpp"
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
    return options.spool.empty() ? default_spool_root() : std::filesystem::path(options.spool);
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
    const auto spool_directory = listener_spool(spool_root(options), listener_name);
    std::error_code ignored;
    const bool spool_used_before = std::filesystem::exists(spool_directory / "lock", ignored);
    auto spool = DirectorySpool::open(spool_directory);
    if (!spool) {
        log::error("spool: {}", spool.error());
        return EX_CONFIG;
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
    settings.state_store = spool->get();

    DispatcherSettings delivery;
    delivery.retry.max_age = options.max_age;
    delivery.enricher = make_enricher(options, std::move(templates));
    delivery.batch = options.batch;
    delivery.digest_prefix = options.optional_header;
    delivery.refusals_store = spool->get();
    // What waits in memory, for --status: one pwrite into a block allocated now, so that it
    // can still be written when the disk is full.
    std::unique_ptr<FileMark> outbox_mark;
    if (auto opened = FileMark::open((*spool)->directory() / "outbox.mark")) {
        outbox_mark = std::move(*opened);
        delivery.outbox.mark = outbox_mark.get();
    } else {
        log::error("spool: {}; --status cannot show alerts that wait in memory", opened.error());
    }
    delivery.spool_notice = [context, instance = settings.instance,
                             directory = (*spool)->directory().string()](const std::string& reason,
                                                                         std::size_t count) {
        auto now = std::chrono::system_clock::now();
        return spool_alert(context, reason, count, directory, now, spool_notice_id(instance, now));
    };
    Dispatcher dispatcher(std::move(channels), **spool, delivery);
    log::info("started (version {}), {} channel(s), watching {}, spool {}", CRASHMAIL_VERSION,
              dispatcher.channel_count(),
              settings.selection.watches_everything()
                  ? std::string("every process")
                  : fmt::format("{}", fmt::join(options.programs, ", ")),
              (*spool)->directory().string());
    if (std::size_t pending = dispatcher.recover(); pending > 0) {
        log::info("{} alert(s) pending from an earlier run", pending);
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
    std::unique_ptr<FileMark> mark;
    if (auto opened = FileMark::open((*spool)->directory() / "pool-serials.mark")) {
        mark = std::move(*opened);
        if (mark->created() && spool_used_before) {
            log::info("no pool-serial mark in the spool yet (it was used by an earlier version "
                      "of crashmail): discarded events are counted from the first event on");
            discard_settings.first_event_is_baseline = true;
        }
    } else {
        log::error("spool: {}; events supervisord discards cannot be told from a restart",
                   opened.error());
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
                            spool->get(), mark.get(), make_rpc());
    discards.restore();
    listener.set_observer(&discards);
    listener.monitor().start_clock();
    discards.start();
    int status = listener.run();
    discards.stop();
    listener.monitor().stop_clock();
    if (g_stop_requested != 0) {
        status = EX_OK; // an orderly stop, even if it cut an event short
    }
    log::info("stopping ({}): {} events, {} alerts; delivering for up to {} s",
              g_stop_requested != 0 ? "signal" : "end of input", listener.events_seen(),
              listener.alerts_raised(), k_shutdown_grace.count());
    Dispatcher::Stopped left = dispatcher.shutdown(k_shutdown_grace);
    if (left.pending > 0) {
        log::warning("{} alert(s) left in the spool for the next start", left.pending);
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
        print_stdout(status_report(spool_root(*options)));
        return EX_OK;
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
