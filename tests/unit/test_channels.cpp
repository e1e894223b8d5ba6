#include "app/channels.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <sysexits.h>
#include <unistd.h>

using namespace crashmail;

namespace {

GetEnv environment(std::map<std::string, std::string> values) {
    return [values](const std::string& name) -> std::optional<std::string> {
        auto found = values.find(name);
        if (found == values.end()) {
            return std::nullopt;
        }
        return found->second;
    };
}

Options mail_to(std::string address) {
    Options options;
    options.emails = {std::move(address)};
    return options;
}

std::string temp_file(const std::string& content) {
    char path[] = "/tmp/crashmail-test-XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    ::close(fd);
    return path;
}

} // namespace

TEST_CASE("nothing to deliver to is a usage error naming the options", "[channels]") {
    auto channels = make_channels(Options{}, "host", environment({}));
    REQUIRE_FALSE(channels);
    CHECK(channels.error().exit_code == EX_USAGE);
    CHECK_THAT(channels.error().message, Catch::Contains("nothing to deliver to"));
    CHECK_THAT(channels.error().message, Catch::Contains("-m"));
}

TEST_CASE("mail without SMTP delivers through the sendmail command", "[channels]") {
    auto channels = make_channels(mail_to("ops@example.com"), "host", environment({}));
    REQUIRE(channels);
    REQUIRE(channels->size() == 1);
    CHECK_THAT(channels->front()->name(), Catch::Contains("sendmail"));
}

TEST_CASE("mail addresses with CR, LF, spaces or brackets are refused", "[channels]") {
    for (const char* bad : {"ops@example.com\r\nBcc: evil@example.com", "a b@example.com",
                            "<ops@example.com>", "-oQ/tmp", "ops@"}) {
        auto channels = make_channels(mail_to(bad), "host", environment({}));
        REQUIRE_FALSE(channels);
        CHECK(channels.error().exit_code == EX_USAGE);
    }
    Options options = mail_to("ops@example.com");
    options.from = "me@example.com\nX-Evil: 1";
    auto channels = make_channels(options, "host", environment({}));
    REQUIRE_FALSE(channels);
    CHECK_THAT(channels.error().message, Catch::Contains("--from"));
}

TEST_CASE("local names without a domain are usable with sendmail", "[channels]") {
    CHECK_FALSE(address_problem("root"));
    CHECK_FALSE(address_problem("ops+crash@example.com"));
    CHECK(address_problem(""));
    CHECK(address_problem("a,b@example.com"));
}

TEST_CASE("the sender defaults to crashmail@host", "[channels]") {
    CHECK(sender_address(Options{}, "web1.example.com") == "crashmail@web1.example.com");
    Options options;
    options.from = "alerts@example.com";
    CHECK(sender_address(options, "web1.example.com") == "alerts@example.com");
}

TEST_CASE("SMTP needs recipients and excludes -s", "[channels]") {
    Options options;
    options.smtp_url = "smtp://127.0.0.1:2525";
    auto no_rcpt = make_channels(options, "host", environment({}));
    REQUIRE_FALSE(no_rcpt);
    CHECK(no_rcpt.error().exit_code == EX_USAGE);

    options.emails = {"ops@example.com"};
    options.sendmail_given = true;
    auto both = make_channels(options, "host", environment({}));
    REQUIRE_FALSE(both);
    CHECK_THAT(both.error().message, Catch::Contains("not both"));
}

TEST_CASE("an SMTP user needs a password from the environment or a file", "[channels]") {
    Options options = mail_to("ops@example.com");
    options.smtp_url = "smtp://127.0.0.1:2525";
    options.smtp_user = "ops";
    auto missing = make_channels(options, "host", environment({}));
    REQUIRE_FALSE(missing);
    CHECK(missing.error().exit_code == EX_CONFIG);
    CHECK_THAT(missing.error().message, Catch::Contains("CRASHMAIL_SMTP_PASSWORD"));

    auto from_env =
        make_channels(options, "host", environment({{"CRASHMAIL_SMTP_PASSWORD", "s3cret"}}));
    REQUIRE(from_env);
    CHECK(from_env->size() == 1);
    CHECK_THAT(from_env->front()->name(), Catch::Contains("smtp://127.0.0.1:2525"));

    std::string file = temp_file("s3cret\n");
    options.smtp_password_file = file;
    CHECK(make_channels(options, "host", environment({})));
    ::unlink(file.c_str());
    auto unreadable = make_channels(options, "host", environment({}));
    REQUIRE_FALSE(unreadable);
    CHECK(unreadable.error().exit_code == EX_CONFIG);
    CHECK_THAT(unreadable.error().message, Catch::Contains(file));
}

TEST_CASE("SMTP options without --smtp are a usage error", "[channels]") {
    Options options = mail_to("ops@example.com");
    options.smtp_user = "ops";
    auto channels = make_channels(options, "host", environment({}));
    REQUIRE_FALSE(channels);
    CHECK(channels.error().exit_code == EX_USAGE);
}

TEST_CASE("a bad SMTP URL is a usage error naming it", "[channels]") {
    Options options = mail_to("ops@example.com");
    options.smtp_url = "http://mail.example.com";
    auto channels = make_channels(options, "host", environment({}));
    REQUIRE_FALSE(channels);
    CHECK(channels.error().exit_code == EX_USAGE);
    CHECK_THAT(channels.error().message, Catch::Contains("--smtp"));
}

TEST_CASE("one channel per mail setting and per webhook URL", "[channels]") {
    Options options = mail_to("ops@example.com");
    options.webhooks = {"http://127.0.0.1:8080/hook"};
    options.slack = {"https://hooks.slack.example/services/x"};
    options.discord = {"https://discord.example/api/webhooks/1/x"};
    options.alertmanager = {"http://127.0.0.1:9093", "http://127.0.0.2:9093"};
    auto channels = make_channels(options, "host", environment({}));
    REQUIRE(channels);
    CHECK(channels->size() == 6);
}

TEST_CASE("webhook problems are reported with the option's name", "[channels]") {
    Options options;
    options.webhooks = {"ftp://example.com/x"};
    auto bad_url = make_channels(options, "host", environment({}));
    REQUIRE_FALSE(bad_url);
    CHECK(bad_url.error().exit_code == EX_USAGE);
    CHECK_THAT(bad_url.error().message, Catch::Contains("--webhook"));

    options.webhooks = {"http://127.0.0.1:8080/hook"};
    options.webhook_headers = {"Authorization: Bearer ${NO_SUCH_TOKEN}"};
    auto unset = make_channels(options, "host", environment({}));
    REQUIRE_FALSE(unset);
    CHECK(unset.error().exit_code == EX_CONFIG);
    CHECK_THAT(unset.error().message, Catch::Contains("NO_SUCH_TOKEN"));

    auto set = make_channels(options, "host", environment({{"NO_SUCH_TOKEN", "t"}}));
    CHECK(set);

    options.webhook_headers.clear();
    options.webhook_secret_file = "/nonexistent/secret";
    auto secret = make_channels(options, "host", environment({}));
    REQUIRE_FALSE(secret);
    CHECK(secret.error().exit_code == EX_CONFIG);
    CHECK_THAT(secret.error().message, Catch::Contains("/nonexistent/secret"));
}

TEST_CASE("the sender (--from) is the envelope sender of the default sendmail command (-f)",
          "[channels]") {
    Options options = mail_to("ops@example.com");
    // Without --from the MTA keeps its own envelope sender.
    CHECK(sendmail_command(options, "crashmail@web1.example.com") == "/usr/sbin/sendmail -t -i");
    options.from = "alerts@example.org";
    CHECK(sendmail_command(options, "alerts@example.org") ==
          "/usr/sbin/sendmail -t -i -f 'alerts@example.org'");
    auto channels = make_channels(options, "web1.example.com", environment({}));
    REQUIRE(channels);
    // The channel keeps its name (its key in stored records): --from may change.
    CHECK(channels->front()->name() == "sendmail (/usr/sbin/sendmail -t -i)");
}

TEST_CASE("an -s command gets the sender only where it says {from}", "[channels]") {
    Options options = mail_to("ops@example.com");
    options.sendmail_given = true;
    options.from = "alerts@example.org";
    // superlance's commands run exactly as given, even the default one spelled out.
    options.sendmail_program = "/usr/sbin/sendmail -t -i";
    CHECK(sendmail_command(options, "alerts@example.org") == "/usr/sbin/sendmail -t -i");
    options.sendmail_program = "/usr/bin/msmtp -t --from={from}";
    CHECK(sendmail_command(options, "alerts@example.org") ==
          "/usr/bin/msmtp -t --from='alerts@example.org'");
    // Without --from, {from} is the default sender.
    options.from.clear();
    CHECK(sendmail_command(options, "crashmail@web1.example.com") ==
          "/usr/bin/msmtp -t --from='crashmail@web1.example.com'");
}

TEST_CASE("a --from that the shell or sendmail would misread is refused", "[channels]") {
    for (const std::string bad : {"a b@x", "-oQ/tmp@x", "a;reboot@x", "a\n@x", "<a@x>"}) {
        Options options = mail_to("ops@example.com");
        options.from = bad;
        auto channels = make_channels(options, "host.example.com", environment({}));
        REQUIRE_FALSE(channels);
        CHECK(channels.error().exit_code == EX_USAGE);
        CHECK_THAT(channels.error().message, Catch::StartsWith("--from '"));
    }
}
