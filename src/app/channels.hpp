#pragma once
// Turns options into the channels alerts are delivered through. Secrets are read here, from
// the environment and files, once at start-up.

#include "app/options.hpp"
#include "transport/transport.hpp"

#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace crashmail {

using GetEnv = std::function<std::optional<std::string>(const std::string&)>;

// The process environment, for GetEnv.
std::optional<std::string> process_getenv(const std::string& name);

struct ChannelError {
    int exit_code;       // EX_USAGE for bad option values, EX_CONFIG for secrets and files
    std::string message; // what is wrong, naming the option
};

// Returns why `address` cannot be used as a mail address (empty, spaces, control
// characters, '<', '>', ',' ...), or std::nullopt when it is usable. Local names without
// '@' ("root") are allowed: sendmail delivers them.
std::optional<std::string> address_problem(std::string_view address);

// The sender: --from, or crashmail@<host>.
std::string sender_address(const Options& options, const std::string& host);

// The sendmail command to run: the default command (-s not given) gets "-f FROM" when --from
// is given (without it the MTA's own envelope sender stays); in any command "{from}" becomes
// `from`, shell-quoted (expand_sendmail_command). An -s command without "{from}" is kept
// exactly as given.
std::string sendmail_command(const Options& options, const std::string& from);

// The environment variables that hold secrets crashmail reads: CRASHMAIL_SMTP_PASSWORD,
// SUPERVISOR_PASSWORD and every ${VAR} of --webhook-header. The sendmail command does not
// inherit them.
std::vector<std::string> secret_variables(const Options& options);

// Builds every configured channel: mail (SMTP with --smtp, else the sendmail command) when
// -m is given, then one per --webhook, --slack, --discord and --alertmanager URL. Returns an
// error for a bad address or URL, a missing password, an unreadable secret file, a --cacert
// file without a usable PEM certificate (EX_CONFIG, util/cacert), or when nothing at all is
// configured.
std::expected<std::vector<std::unique_ptr<Transport>>, ChannelError>
make_channels(const Options& options, const std::string& host, const GetEnv& getenv);

} // namespace crashmail
