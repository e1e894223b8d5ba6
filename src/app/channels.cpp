#include "app/channels.hpp"

#include "transport/http_client.hpp"
#include "transport/sendmail_transport.hpp"
#include "transport/smtp_transport.hpp"
#include "transport/webhook_transport.hpp"
#include "util/cacert.hpp"

#include <algorithm>
#include <cstdlib>
#include <sysexits.h>

namespace crashmail {

std::optional<std::string> process_getenv(const std::string& name) {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) {
        return std::nullopt;
    }
    return std::string(value);
}

std::optional<std::string> address_problem(std::string_view address) {
    if (address.empty()) {
        return "empty address";
    }
    for (char c : address) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7F) {
            return "control character in address";
        }
        if (c == ' ' || c == '<' || c == '>' || c == ',' || c == '"' || c == '(' || c == ')' ||
            c == ';' || c == '\\') {
            return std::string("'") + c + "' in address";
        }
    }
    if (address.front() == '-') {
        return "address starts with '-'";
    }
    if (address.find('@') != std::string_view::npos &&
        (address.front() == '@' || address.back() == '@')) {
        return "incomplete address";
    }
    return std::nullopt;
}

std::string sender_address(const Options& options, const std::string& host) {
    return options.from.empty() ? "crashmail@" + host : options.from;
}

std::vector<std::string> secret_variables(const Options& options) {
    std::vector<std::string> names{"CRASHMAIL_SMTP_PASSWORD", "SUPERVISOR_PASSWORD"};
    for (std::string& name : header_variables(options.webhook_headers)) {
        if (std::find(names.begin(), names.end(), name) == names.end()) {
            names.push_back(std::move(name));
        }
    }
    return names;
}

std::string sendmail_command(const Options& options, const std::string& from) {
    std::string command = options.sendmail_program;
    if (!options.sendmail_given && !options.from.empty()) {
        command += " -f ";
        command += k_from_placeholder;
    }
    return expand_sendmail_command(command, from);
}

namespace {

std::unexpected<ChannelError> usage_error(std::string message) {
    return std::unexpected(ChannelError{EX_USAGE, std::move(message)});
}

std::unexpected<ChannelError> config_error(std::string message) {
    return std::unexpected(ChannelError{EX_CONFIG, std::move(message)});
}

} // namespace

std::expected<std::vector<std::unique_ptr<Transport>>, ChannelError>
make_channels(const Options& options, const std::string& host, const GetEnv& getenv) {
    std::vector<std::unique_ptr<Transport>> channels;

    // A CA file that cannot be used would otherwise show only at the first TLS delivery.
    if (!options.cacert.empty()) {
        if (auto certificates = check_cacert(options.cacert); !certificates) {
            return config_error("--cacert " + options.cacert + ": " + certificates.error());
        }
    }

    // Mail.
    MailAddresses addresses{sender_address(options, host), options.emails};
    for (const std::string& address : options.emails) {
        if (auto problem = address_problem(address)) {
            return usage_error("-m/--email '" + address + "': " + *problem);
        }
    }
    if (auto problem = address_problem(addresses.from)) {
        return usage_error("--from '" + addresses.from + "': " + *problem);
    }
    bool smtp_options_without_smtp = !options.smtp_user.empty() ||
                                     !options.smtp_password_file.empty() ||
                                     options.starttls != "auto";
    if (options.smtp_url.empty() && smtp_options_without_smtp) {
        return usage_error("--smtp-user, --smtp-password-file and --starttls need --smtp URL");
    }
    if (!options.smtp_url.empty()) {
        if (options.emails.empty()) {
            return usage_error("--smtp needs at least one recipient (-m ADDR)");
        }
        if (options.sendmail_given) {
            return usage_error("give either --smtp or -s/--sendmail_program, not both");
        }
        auto url = normalize_smtp_url(options.smtp_url);
        if (!url) {
            return usage_error("--smtp: " + url.error());
        }
        SmtpSettings smtp;
        smtp.url = *url;
        smtp.from = addresses.from;
        smtp.to = addresses.to;
        smtp.user = options.smtp_user;
        smtp.require_tls = options.starttls == "required" || !options.smtp_user.empty();
        smtp.cacert = options.cacert;
        smtp.timeout = options.timeout;
        smtp.data_timeout = options.data_timeout;
        if (!options.smtp_user.empty()) {
            if (!options.smtp_password_file.empty()) {
                auto password = read_secret_file(options.smtp_password_file);
                if (!password) {
                    return config_error("--smtp-password-file: " + password.error());
                }
                smtp.password = *password;
            } else if (auto password = getenv("CRASHMAIL_SMTP_PASSWORD");
                       password && !password->empty()) {
                smtp.password = *password;
            } else {
                return config_error("--smtp-user " + options.smtp_user +
                                    " needs a password: set CRASHMAIL_SMTP_PASSWORD (e.g. "
                                    "environment= in the [eventlistener] section) or give "
                                    "--smtp-password-file FILE");
            }
        } else if (!options.smtp_password_file.empty()) {
            return usage_error("--smtp-password-file needs --smtp-user");
        }
        channels.push_back(std::make_unique<SmtpTransport>(std::move(smtp)));
    } else if (!options.emails.empty()) {
        SendmailSettings sendmail;
        sendmail.command = sendmail_command(options, addresses.from);
        sendmail.configured = options.sendmail_program;
        sendmail.addresses = addresses;
        // The command inherits no secret of crashmail's (the values are redacted too).
        sendmail.hidden_environment = secret_variables(options);
        for (const std::string& variable : sendmail.hidden_environment) {
            if (auto value = getenv(variable)) {
                sendmail.secrets.add(*value);
            }
        }
        channels.push_back(std::make_unique<SendmailTransport>(std::move(sendmail)));
    }

    // Webhooks.
    auto headers = resolve_webhook_headers(options.webhook_headers, getenv);
    if (!headers) {
        return config_error("--webhook-header: " + headers.error());
    }
    std::string secret;
    if (!options.webhook_secret_file.empty()) {
        auto read = read_secret_file(options.webhook_secret_file);
        if (!read) {
            return config_error("--webhook-secret-file: " + read.error());
        }
        secret = *read;
    }
    auto client = std::make_shared<CurlHttpClient>();
    struct Kind {
        const std::vector<std::string>& urls;
        WebhookFlavor flavor;
        const char* option;
    };
    for (const Kind& kind :
         {Kind{options.webhooks, WebhookFlavor::json, "--webhook"},
          Kind{options.slack, WebhookFlavor::slack, "--slack"},
          Kind{options.discord, WebhookFlavor::discord, "--discord"},
          Kind{options.alertmanager, WebhookFlavor::alertmanager, "--alertmanager"}}) {
        for (const std::string& raw : kind.urls) {
            auto url = normalize_webhook_url(raw);
            if (!url) {
                return usage_error(std::string(kind.option) + " '" + raw + "': " + url.error());
            }
            WebhookSettings settings;
            settings.flavor = kind.flavor;
            settings.url = *url;
            bool generic =
                kind.flavor == WebhookFlavor::json || kind.flavor == WebhookFlavor::alertmanager;
            if (generic) {
                settings.headers = *headers;
                for (const std::string& variable : header_variables(options.webhook_headers)) {
                    if (auto value = getenv(variable)) {
                        settings.secrets.push_back(*value);
                    }
                }
            }
            if (kind.flavor == WebhookFlavor::json) {
                settings.hmac_secret = secret;
            }
            settings.cacert = options.cacert;
            settings.timeout = options.timeout;
            channels.push_back(std::make_unique<WebhookTransport>(std::move(settings), client));
        }
    }

    if (channels.empty()) {
        return usage_error("nothing to deliver to: give -m ADDR (mail), --webhook, --slack, "
                           "--discord or --alertmanager URL");
    }
    return channels;
}

} // namespace crashmail
