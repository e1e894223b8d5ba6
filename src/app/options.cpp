#include "app/options.hpp"

#include "alert/crash_loop.hpp"
#include "util/duration.hpp"
#include "util/host.hpp"
#include "util/text.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <sysexits.h>

namespace crashmail {
namespace {

constexpr const char* k_description =
    "crashmail: a supervisord event listener that reports crashed processes by mail\n"
    "and webhooks. Run it from an [eventlistener:x] section with events=PROCESS_STATE\n"
    "(RUNNING events tell it when a process recovered).\n";

constexpr const char* k_footer =
    "Secrets come from the environment or files, never from options:\n"
    "  CRASHMAIL_SMTP_PASSWORD or --smtp-password-file for SMTP AUTH,\n"
    "  ${VAR} in --webhook-header values, --webhook-secret-file for HMAC.\n"
    "They stay out of core dumps (CRASHMAIL_ALLOW_CORE_DUMPS=1 keeps dumps), out of\n"
    "the sendmail command's environment and out of servers' words in logs, failed/\n"
    "and --status (<redacted>).\n"
    "Exit status: 0 done, 64 usage error, 69/75 --test failed (permanent/temporary),\n"
    "76 protocol error, 78 configuration error. See crashmail(1).";

constexpr std::size_t k_help_width = 80;
constexpr std::size_t k_help_column = 30;

// CLI11's formatter, with descriptions wrapped to 80 columns and without the validator
// clutter (":{auto,required}", ":INT in [1 - 3600]") after the value names.
class HelpFormatter final : public CLI::Formatter {
public:
    HelpFormatter() { column_width(k_help_column); }

    std::string make_option_opts(const CLI::Option* option) const override {
        if (option->get_expected_max() == 0) {
            return {};
        }
        std::string type = option->get_type_name();
        return " " + type.substr(0, type.find(':'));
    }

    std::string make_option_desc(const CLI::Option* option) const override {
        return wrap(option->get_description(), k_help_width - k_help_column);
    }

private:
    static std::string wrap(const std::string& text, std::size_t width) {
        std::string out;
        std::size_t line = 0;
        std::size_t start = 0;
        while (start < text.size()) {
            std::size_t end = text.find(' ', start);
            if (end == std::string::npos) {
                end = text.size();
            }
            std::size_t word = end - start;
            if (line > 0 && line + 1 + word > width) {
                out += '\n';
                line = 0;
            } else if (line > 0) {
                out += ' ';
                ++line;
            }
            out.append(text, start, word);
            line += word;
            start = end + 1;
        }
        return out;
    }
};

} // namespace

std::expected<Options, OptionsExit> parse_options(int argc, const char* const* argv) {
    Options options;
    bool show_version = false;
    std::vector<std::string> raw_emails;

    CLI::App app(k_description, "crashmail");
    app.footer(k_footer);
    app.formatter(std::make_shared<HelpFormatter>());
    app.option_defaults()->always_capture_default(false);

    const char* selection = "Which processes (superlance compatible)";
    app.add_option("-p,--program", options.programs,
                   "Watch PROCESS (any group), GROUP:PROCESS or GROUP:*; shell globs allowed; "
                   "repeatable")
        ->type_name("NAME")
        ->allow_extra_args(false)
        ->group(selection);
    app.add_flag("-a,--any", options.any, "Watch every process (overrides -p)")->group(selection);
    app.add_option("-x,--exclude", options.excludes,
                   "Never alert for NAME (same syntax as -p, checked after it); repeatable")
        ->type_name("NAME")
        ->allow_extra_args(false)
        ->group(selection);

    const char* loops = "States, crash loops and flood control";
    std::vector<std::string> raw_states;
    app.add_option("--state", raw_states,
                   "Alert when a process enters STATE: EXITED (unexpected exits), FATAL, "
                   "BACKOFF, UNKNOWN, STOPPED; repeatable or comma-separated (default: "
                   "EXITED,FATAL)")
        ->type_name("STATE")
        ->delimiter(',')
        ->allow_extra_args(false)
        ->group(loops);
    app.add_flag("--expected", options.expected, "Alert on expected exits too")->group(loops);
    app.add_option("--rate-limit", options.rate_limit,
                   "Send at most N alerts per process in DURATION, count the rest and send "
                   "one summary when the window ends; off: no limit (default: 3/10m)")
        ->type_name("N/DURATION")
        ->group(loops);
    app.add_flag("--recovery", options.recovery,
                 "Send a notice when a process that alerted is RUNNING again and stays up "
                 "(Alertmanager alerts are resolved even without it)")
        ->group(loops);
    std::string recovery_after = "1m";
    app.add_option("--recovery-after", recovery_after,
                   "How long a process must stay RUNNING to count as recovered (default: 1m)")
        ->type_name("DURATION")
        ->group(loops);
    std::string batch;
    app.add_option("--batch", batch,
                   "Collect the alerts of each DURATION into one digest per channel, like "
                   "superlance's crashmailbatch (default: off)")
        ->type_name("DURATION")
        ->group(loops);

    const char* mail = "Mail";
    app.add_option("-m,--email", raw_emails,
                   "Mail alerts to ADDR; repeatable, comma-separated lists allowed")
        ->type_name("ADDR")
        ->delimiter(',')
        ->allow_extra_args(false)
        ->group(mail);
    app.add_option("-o,--optionalheader", options.optional_header,
                   "Prefix the subject with \"PREFIX: \"")
        ->type_name("PREFIX")
        ->group(mail);
    app.add_option("-s,--sendmail_program,--sendmail-program", options.sendmail_program,
                   "Command that reads a message on stdin and sends it (run by /bin/sh; "
                   "{from} becomes the sender, quoted; default: /usr/sbin/sendmail -t -i)")
        ->type_name("CMD")
        ->group(mail);
    app.add_option("--from", options.from,
                   "Sender address, From: and envelope (the default sendmail command gets -f "
                   "ADDR; default: crashmail@<--hostname>)")
        ->type_name("ADDR")
        ->group(mail);

    const char* smtp = "SMTP (instead of the sendmail command)";
    app.add_option("--smtp", options.smtp_url,
                   "Send mail with SMTP: smtp://host[:port] (STARTTLS when offered) or "
                   "smtps://host[:port] (TLS)")
        ->type_name("URL")
        ->group(smtp);
    app.add_option("--smtp-user", options.smtp_user,
                   "Authenticate as USER (requires TLS); password from CRASHMAIL_SMTP_PASSWORD "
                   "or --smtp-password-file")
        ->type_name("USER")
        ->group(smtp);
    app.add_option("--smtp-password-file", options.smtp_password_file,
                   "Read the SMTP password from the first line of FILE")
        ->type_name("FILE")
        ->group(smtp);
    app.add_option("--starttls", options.starttls,
                   "auto: use STARTTLS when offered; required: refuse to send without TLS "
                   "(default: auto, required with --smtp-user)")
        ->type_name("auto|required")
        ->check(CLI::IsMember({"auto", "required"}))
        ->group(smtp);

    const char* webhooks = "Webhooks";
    app.add_option("--webhook", options.webhooks, "POST the alert as JSON to URL; repeatable")
        ->type_name("URL")
        ->allow_extra_args(false)
        ->group(webhooks);
    app.add_option("--slack", options.slack,
                   "Post to a Slack (or Mattermost, Rocket.Chat) incoming webhook; repeatable")
        ->type_name("URL")
        ->allow_extra_args(false)
        ->group(webhooks);
    app.add_option("--discord", options.discord, "Post to a Discord webhook; repeatable")
        ->type_name("URL")
        ->allow_extra_args(false)
        ->group(webhooks);
    app.add_option("--alertmanager", options.alertmanager,
                   "Post to Prometheus Alertmanager at URL (http://host:9093); repeatable")
        ->type_name("URL")
        ->allow_extra_args(false)
        ->group(webhooks);
    app.add_option("--webhook-header", options.webhook_headers,
                   "Add 'Name: value' to --webhook and --alertmanager requests; ${VAR} in the "
                   "value is read from the environment; repeatable")
        ->type_name("HEADER")
        ->allow_extra_args(false)
        ->group(webhooks);
    app.add_option("--webhook-secret-file", options.webhook_secret_file,
                   "Sign --webhook bodies with HMAC-SHA256 using the key in FILE "
                   "(header X-Crashmail-Signature: sha256=HEX)")
        ->type_name("FILE")
        ->group(webhooks);

    const char* network = "Network";
    app.add_option("--cacert", options.cacert,
                   "Trust the CA certificates in FILE (PEM) for SMTP and HTTPS; "
                   "certificates are always verified")
        ->type_name("FILE")
        ->group(network);
    int timeout_seconds = static_cast<int>(options.timeout.count());
    app.add_option("--timeout", timeout_seconds,
                   "Give up on one SMTP or HTTP delivery after SECONDS (default: 30)")
        ->type_name("SECONDS")
        ->check(CLI::Range(1, 3600))
        ->group(network);
    std::string data_timeout = "10m";
    app.add_option("--data-timeout", data_timeout,
                   "Wait up to DURATION (30s, 10m, 1h; default: 10m, at least --timeout) for "
                   "the SMTP server's reply to the end of the message; giving up sooner risks "
                   "a duplicate")
        ->type_name("DURATION")
        ->group(network);
    app.add_option("--hostname", options.hostname,
                   "Call this host NAME: the SMTP EHLO name, the default sender "
                   "crashmail@NAME, Message-ID, the Host: line and the webhooks' host "
                   "(default: the FQDN)")
        ->type_name("NAME")
        ->group(network);

    const char* content = "Alert content";
    app.add_option("--tail", options.tail_lines,
                   "Include the last N lines of the crashed process's stderr log (stdout when "
                   "empty) in alerts; 0: none (default: 0, at most 1000)")
        ->type_name("N")
        ->check(CLI::Range(0, 1000))
        ->group(content);
    app.add_option("--subject", options.subject_template,
                   "Subject from TEMPLATE, text with fields such as {name} {state} "
                   "{exit_status} {host} {time} {prefix} (see crashmail(1))")
        ->type_name("TEMPLATE")
        ->group(content);
    app.add_option("--body", options.body_template,
                   "Body from TEMPLATE, with the same fields plus {log_tail} and "
                   "{default_body}; \\n is a newline")
        ->type_name("TEMPLATE")
        ->group(content);

    const char* outbox = "Outbox (alerts are kept until delivered)";
    app.add_option("--spool", options.spool,
                   "Keep undelivered alerts under DIR/<listener name> (default: "
                   "/var/spool/crashmail[/users/USER], else ~/.local/state/crashmail)")
        ->type_name("DIR")
        ->group(outbox);
    std::string max_age = "24h";
    app.add_option("--max-age", max_age,
                   "Retry a failed delivery for up to DURATION (30s, 10m, 24h, 2d; "
                   "default: 24h), then move the alert to failed/")
        ->type_name("DURATION")
        ->group(outbox);
    app.add_flag("--status", options.status,
                 "List the pending and failed alerts in the spool and exit: 0 OK, 1 WARNING "
                 "(late or in memory), 2 CRITICAL (failed, unreadable), 3 UNKNOWN (no spool)")
        ->group(outbox);
    app.add_option("--retry-failed", options.retry_ids,
                   "Move the failed alerts ID (default: all) back for delivery with fresh "
                   "attempts and exit; a running listener sends them within seconds")
        ->type_name("[ID...]")
        ->expected(0, CLI::detail::expected_max_vector_size)
        ->group(outbox);

    const char* other = "Other";
    app.add_flag("--test", options.test,
                 "Send one test alert through every channel now, print one line per channel, "
                 "exit 0 if all succeeded")
        ->group(other);
    app.set_config("--config", "",
                   "Read long options from FILE (INI or TOML: name = value); the command line "
                   "wins")
        ->type_name("FILE")
        ->group(other);
    app.allow_config_extras(CLI::config_extras_mode::error);
    app.add_flag("--version", show_version, "Print the version and exit")->group(other);
    app.set_help_flag("-h,--help", "Print this help and exit")->group(other);
    // superlance took a positional URL argument and ignored it; so do we.
    // superlance's getopt gave each option exactly one value, so "-m ADDR URL" leaves URL
    // positional: allow_extra_args(false) above keeps that.
    app.add_option("ignored", options.ignored_arguments)->group("");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        return std::unexpected(OptionsExit{EX_OK, app.help(), {}});
    } catch (const CLI::FileError& error) {
        return std::unexpected(
            OptionsExit{EX_CONFIG, {}, "--config: " + std::string(error.what())});
    } catch (const CLI::ConfigError& error) {
        return std::unexpected(
            OptionsExit{EX_CONFIG, {}, "--config: " + std::string(error.what())});
    } catch (const CLI::ParseError& error) {
        return std::unexpected(
            OptionsExit{EX_USAGE, {}, std::string(error.what()) + " (try 'crashmail --help')"});
    }
    if (show_version) {
        return std::unexpected(OptionsExit{EX_OK, {}, {}, true});
    }
    options.timeout = std::chrono::seconds(timeout_seconds);
    auto parsed_age = parse_duration(max_age);
    if (!parsed_age) {
        return std::unexpected(
            OptionsExit{EX_USAGE,
                        {},
                        "--max-age: '" + max_age + "' is not a duration like 30s, 10m, 24h or 2d"});
    }
    options.max_age = *parsed_age;
    if (auto parsed = parse_duration(data_timeout)) {
        options.data_timeout = *parsed;
    } else {
        return std::unexpected(OptionsExit{
            EX_USAGE, {}, "--data-timeout: '" + data_timeout + "' is not a duration like 10m"});
    }
    if (options.data_timeout < options.timeout) {
        return std::unexpected(OptionsExit{EX_USAGE,
                                           {},
                                           "--data-timeout (" + data_timeout +
                                               ") must not be shorter than --timeout (" +
                                               std::to_string(timeout_seconds) + " s)"});
    }
    if (auto after = parse_duration(recovery_after)) {
        options.recovery_after = *after;
    } else {
        return std::unexpected(OptionsExit{
            EX_USAGE, {}, "--recovery-after: '" + recovery_after + "' is not a duration like 1m"});
    }
    if (!batch.empty() && batch != "off") {
        auto window = parse_duration(batch);
        if (!window) {
            return std::unexpected(OptionsExit{
                EX_USAGE, {}, "--batch: '" + batch + "' is not a duration like 30s, 10m or 1h"});
        }
        options.batch = *window;
    }
    if (auto limit = parse_rate_limit(options.rate_limit); !limit) {
        return std::unexpected(OptionsExit{EX_USAGE, {}, "--rate-limit: " + limit.error()});
    }
    if (!raw_states.empty()) {
        options.states.clear();
        for (const std::string& raw : raw_states) {
            std::string state(trim(raw, " \t"));
            std::transform(state.begin(), state.end(), state.begin(),
                           [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
            if (state.empty()) {
                continue;
            }
            auto names = alert_state_names();
            if (std::find(names.begin(), names.end(), state) == names.end()) {
                return std::unexpected(
                    OptionsExit{EX_USAGE,
                                {},
                                "--state: '" + raw +
                                    "' is not one of EXITED, FATAL, BACKOFF, UNKNOWN, STOPPED"});
            }
            if (std::find(options.states.begin(), options.states.end(), state) ==
                options.states.end()) {
                options.states.push_back(state);
            }
        }
    }
    if (app.count("--hostname") > 0) {
        if (auto problem = hostname_problem(options.hostname)) {
            return std::unexpected(OptionsExit{
                EX_USAGE, {}, "--hostname '" + one_line(options.hostname, 300) + "': " + *problem});
        }
    }
    options.retry_failed = app.count("--retry-failed") > 0;
    // Given without a value, CLI11 leaves one empty string.
    std::erase(options.retry_ids, std::string());
    options.sendmail_given = app.count("--sendmail_program") > 0;
    for (const std::string& email : raw_emails) {
        std::string address(trim(email, " \t"));
        if (!address.empty()) {
            options.emails.push_back(std::move(address));
        }
    }
    return options;
}

} // namespace crashmail
