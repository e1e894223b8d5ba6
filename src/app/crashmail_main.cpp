#include "app/crashmail_main.hpp"

#include "app/channels.hpp"
#include "app/listener.hpp"
#include "app/options.hpp"
#include "app/self_test.hpp"
#include "delivery/dispatcher.hpp"
#include "protocol/reader.hpp"
#include "protocol/stream.hpp"
#include "protocol/writer.hpp"
#include "util/host.hpp"
#include "util/log.hpp"

#include <csignal>
#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sysexits.h>
#include <unistd.h>

namespace crashmail {
namespace {

// How long pending deliveries may go on after supervisord closes our stdin: inside
// supervisord's default stopwaitsecs (10 s).
constexpr std::chrono::seconds k_shutdown_grace{8};

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

int serve(const Options& options, std::vector<std::unique_ptr<Transport>> channels,
          const AlertContext& context) {
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
    auto fds = take_protocol_channel();
    if (!fds) {
        log::error("cannot set up the protocol channel: {}", std::strerror(errno));
        return EX_OSERR;
    }

    ListenerSettings settings;
    settings.selection = Selection(options.any, std::move(patterns));
    settings.self_process = process_getenv("SUPERVISOR_PROCESS_NAME").value_or("");
    settings.self_group = process_getenv("SUPERVISOR_GROUP_NAME").value_or("");
    settings.context = context;

    Dispatcher dispatcher(std::move(channels));
    log::info("started (version {}), {} channel(s), watching {}", CRASHMAIL_VERSION,
              dispatcher.channel_count(),
              settings.selection.watches_everything() ? std::string("every process")
                                                      : fmt::format("{}", fmt::join(options.programs, ", ")));
    protocol::FdSource source(fds->first);
    protocol::FdSink sink(fds->second);
    protocol::Reader reader(source);
    protocol::Writer writer(sink);
    Listener listener(reader, writer, std::move(settings), dispatcher);
    int status = listener.run();
    std::size_t undelivered = dispatcher.shutdown(k_shutdown_grace);
    log::info("stopping: {} events, {} alerts, {} deliveries unfinished", listener.events_seen(),
              listener.alerts_raised(), undelivered);
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

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log::error("cannot initialise libcurl");
        return EX_SOFTWARE;
    }

    AlertContext context{fully_qualified_hostname(), options->optional_header};
    auto channels = make_channels(*options, context.host, process_getenv);
    if (!channels) {
        log::error("{}", channels.error().message);
        return channels.error().exit_code;
    }

    if (options->test) {
        auto now = std::chrono::system_clock::now();
        Alert alert = make_test_alert(context, now, new_alert_id(now, 0));
        SelfTestReport report = run_self_test(*channels, alert);
        for (const std::string& line : report.lines) {
            print_stdout(line + "\n");
        }
        return report.exit_code;
    }
    return serve(*options, std::move(*channels), context);
}

} // namespace crashmail
