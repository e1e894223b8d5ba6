#pragma once
// The command line (and the --config file it names), parsed into plain values. Parsing does
// nothing else: no other file is read and no environment is consulted here.

#include <chrono>
#include <expected>
#include <string>
#include <vector>

namespace crashmail {

inline constexpr const char* k_default_sendmail = "/usr/sbin/sendmail -t -i";

struct Options {
    // Selection (superlance: -p, -a).
    std::vector<std::string> programs;
    bool any = false;

    // Mail (superlance: -m, -o, -s).
    std::vector<std::string> emails; // split on commas, trimmed, never empty strings
    std::string optional_header;     // -o PREFIX
    std::string sendmail_program = k_default_sendmail;
    bool sendmail_given = false; // -s was given explicitly
    std::string from;            // --from; empty: crashmail@<FQDN>

    // SMTP (--smtp and friends); the password never comes from an option.
    std::string smtp_url;
    std::string smtp_user;
    std::string smtp_password_file;
    std::string starttls = "auto"; // "auto" or "required"

    // Shared by the network transports.
    std::string cacert;
    std::chrono::seconds timeout{30};
    std::chrono::seconds data_timeout{600}; // --data-timeout: SMTP's reply to the message's end

    // --hostname: this host's name in EHLO, the default sender, Message-ID, the Host: line
    // and webhooks; a valid DNS name (util/host). Empty: fully_qualified_hostname().
    std::string hostname;

    // Webhooks.
    std::vector<std::string> webhooks;
    std::vector<std::string> slack;
    std::vector<std::string> discord;
    std::vector<std::string> alertmanager;
    std::vector<std::string> webhook_headers; // "Name: value", value may hold ${VAR}
    std::string webhook_secret_file;

    // Alert content (why it crashed, templates).
    int tail_lines = 0;           // --tail N: last N log lines in alerts; 0: none
    std::string subject_template; // --subject; empty: the default subject
    std::string body_template;    // --body; empty: the default body

    // Which state changes alert, crash loops, flood control (alert/crash_loop).
    std::vector<std::string> states{"EXITED", "FATAL"}; // --state, upper case, validated
    bool expected = false;                              // --expected: expected exits too
    std::vector<std::string> excludes;                  // -x/--exclude, -p syntax
    bool recovery = false;                              // --recovery: recovery notices
    std::chrono::seconds recovery_after{60};            // --recovery-after: stays up this long
    std::string rate_limit = "3/10m";                   // --rate-limit N/DURATION or "off"
    std::chrono::seconds batch{0};                      // --batch DURATION; 0: no digests

    // Outbox.
    std::string spool;                   // --spool DIR; empty: delivery/spool_location
    std::chrono::seconds max_age{86400}; // --max-age: give up retrying after this

    // Modes.
    bool test = false;   // --test: send one test alert through every channel and exit
    bool status = false; // --status: list pending and failed alerts in the spool and exit
    // --retry-failed [ID...]: move failed alerts (these, or all when none is named) back for
    // delivery with fresh attempts, and exit.
    bool retry_failed = false;
    std::vector<std::string> retry_ids;

    // Positional arguments superlance accepted and ignored (its URL argument).
    std::vector<std::string> ignored_arguments;
};

// What parse_options() returns when it does not return options.
struct OptionsExit {
    int exit_code;             // 0 for --help and --version, 64 (EX_USAGE) for errors, 78
                               // (EX_CONFIG) for a --config file that cannot be read or used
    std::string output;        // text for stdout (help, version)
    std::string message;       // error text for stderr, without the "crashmail: error: " prefix
    bool show_version = false; // --version: the caller prints the versions it links
};

// Parses argv. Returns the options, or what to print and the exit code for --help,
// --version and usage errors.
std::expected<Options, OptionsExit> parse_options(int argc, const char* const* argv);

} // namespace crashmail
