#include "app/options.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>
#include <sysexits.h>
#include <unistd.h>
#include <vector>

using crashmail::Options;
using crashmail::parse_options;

namespace {

auto parse(std::vector<const char*> args) {
    args.insert(args.begin(), "crashmail");
    return parse_options(static_cast<int>(args.size()), args.data());
}

} // namespace

TEST_CASE("superlance's short options keep their meaning", "[options]") {
    auto options = parse({"-p", "web", "-p", "grp:worker_01", "-a", "-m", "ops@example.com", "-o",
                          "[prod]", "-s", "/usr/bin/mymailer -t"});
    REQUIRE(options);
    CHECK(options->programs == std::vector<std::string>{"web", "grp:worker_01"});
    CHECK(options->any);
    CHECK(options->emails == std::vector<std::string>{"ops@example.com"});
    CHECK(options->optional_header == "[prod]");
    CHECK(options->sendmail_program == "/usr/bin/mymailer -t");
    CHECK(options->sendmail_given);
}

TEST_CASE("superlance's long spellings are accepted, with = and with a space", "[options]") {
    auto options = parse({"--program=web", "--program", "db", "--any", "--email=a@example.com",
                          "--optionalheader", "X", "--sendmail_program=cat"});
    REQUIRE(options);
    CHECK(options->programs == std::vector<std::string>{"web", "db"});
    CHECK(options->any);
    CHECK(options->emails == std::vector<std::string>{"a@example.com"});
    CHECK(options->optional_header == "X");
    CHECK(options->sendmail_program == "cat");
}

TEST_CASE("defaults match superlance", "[options]") {
    auto options = parse({"-m", "ops@example.com"});
    REQUIRE(options);
    CHECK(options->sendmail_program == "/usr/sbin/sendmail -t -i");
    CHECK_FALSE(options->sendmail_given);
    CHECK_FALSE(options->any);
    CHECK(options->programs.empty());
    CHECK(options->timeout == std::chrono::seconds(30));
    CHECK(options->starttls == "auto");
}

TEST_CASE("mail addresses take repeats and comma-separated lists, trimmed", "[options]") {
    auto options = parse({"-m", "a@example.com, b@example.com", "--email", "c@example.com,"});
    REQUIRE(options);
    CHECK(options->emails ==
          std::vector<std::string>{"a@example.com", "b@example.com", "c@example.com"});
}

TEST_CASE("a positional argument (superlance's ignored URL) is kept aside", "[options]") {
    auto options = parse({"-a", "-m", "x@example.com", "http://localhost:9001"});
    REQUIRE(options);
    CHECK(options->ignored_arguments == std::vector<std::string>{"http://localhost:9001"});
}

TEST_CASE("unknown options and bad values are usage errors (64)", "[options]") {
    for (auto args : std::vector<std::vector<const char*>>{{"--no-such-option"},
                                                           {"-m"},
                                                           {"--timeout", "0"},
                                                           {"--timeout", "soon"},
                                                           {"--starttls", "maybe"}}) {
        auto options = parse(args);
        REQUIRE_FALSE(options);
        CHECK(options.error().exit_code == EX_USAGE);
        CHECK_THAT(options.error().message, Catch::Contains("crashmail --help"));
        CHECK(options.error().output.empty());
    }
}

TEST_CASE("help returns the grouped help text with exit 0", "[options]") {
    auto options = parse({"--help"});
    REQUIRE_FALSE(options);
    CHECK(options.error().exit_code == 0);
    const std::string& help = options.error().output;
    for (const char* text :
         {"-p,--program", "-a,--any", "-m,--email", "-o,--optionalheader", "-s,--sendmail_program",
          "--smtp", "--webhook", "--alertmanager", "--test", "CRASHMAIL_SMTP_PASSWORD"}) {
        CHECK_THAT(help, Catch::Contains(text));
    }
}

TEST_CASE("help fits in 80 columns", "[options]") {
    auto options = parse({"-h"});
    REQUIRE_FALSE(options);
    std::string_view help = options.error().output;
    std::size_t start = 0;
    while (start < help.size()) {
        std::size_t end = help.find('\n', start);
        if (end == std::string_view::npos) {
            end = help.size();
        }
        INFO(help.substr(start, end - start));
        CHECK(end - start <= 80);
        start = end + 1;
    }
}

TEST_CASE("version asks the caller to print versions", "[options]") {
    auto options = parse({"--version"});
    REQUIRE_FALSE(options);
    CHECK(options.error().exit_code == 0);
    CHECK(options.error().show_version);
}

TEST_CASE("network and webhook options are collected", "[options]") {
    auto options = parse({"-m",
                          "ops@example.com",
                          "--smtp",
                          "smtps://mail.example.com",
                          "--smtp-user",
                          "ops",
                          "--starttls",
                          "required",
                          "--cacert",
                          "/ca.pem",
                          "--timeout",
                          "5",
                          "--webhook",
                          "http://127.0.0.1:1/a",
                          "--webhook",
                          "http://127.0.0.1:1/b",
                          "--slack",
                          "https://hooks.example/s",
                          "--discord",
                          "https://discord.example/d",
                          "--alertmanager",
                          "http://127.0.0.1:9093",
                          "--webhook-header",
                          "Authorization: ${TOKEN}",
                          "--webhook-secret-file",
                          "/secret",
                          "--from",
                          "me@example.com",
                          "--test"});
    REQUIRE(options);
    CHECK(options->smtp_url == "smtps://mail.example.com");
    CHECK(options->smtp_user == "ops");
    CHECK(options->starttls == "required");
    CHECK(options->cacert == "/ca.pem");
    CHECK(options->timeout == std::chrono::seconds(5));
    CHECK(options->webhooks.size() == 2);
    CHECK(options->slack == std::vector<std::string>{"https://hooks.example/s"});
    CHECK(options->discord == std::vector<std::string>{"https://discord.example/d"});
    CHECK(options->alertmanager == std::vector<std::string>{"http://127.0.0.1:9093"});
    CHECK(options->webhook_headers == std::vector<std::string>{"Authorization: ${TOKEN}"});
    CHECK(options->webhook_secret_file == "/secret");
    CHECK(options->from == "me@example.com");
    CHECK(options->test);
}

TEST_CASE("there is no option that takes a password", "[options]") {
    for (const char* option : {"--smtp-password", "--password"}) {
        auto options = parse({option, "s3cret"});
        REQUIRE_FALSE(options);
        CHECK(options.error().exit_code == EX_USAGE);
    }
}

namespace {

// A file under /tmp with `content`, removed at the end of the test.
struct TempFile {
    explicit TempFile(const std::string& content) {
        char pattern[] = "/tmp/crashmail-options-XXXXXX";
        int fd = ::mkstemp(pattern);
        REQUIRE(fd >= 0);
        REQUIRE(::write(fd, content.data(), content.size()) ==
                static_cast<ssize_t>(content.size()));
        ::close(fd);
        path = pattern;
    }
    ~TempFile() { ::unlink(path.c_str()); }
    std::string path;
};

} // namespace

TEST_CASE("the options --tail, --subject and --body are collected and --tail is bounded",
          "[options]") {
    auto defaults = parse({"-a"});
    REQUIRE(defaults);
    CHECK(defaults->tail_lines == 0);
    CHECK(defaults->subject_template.empty());
    CHECK(defaults->body_template.empty());

    auto options = parse({"-a", "--tail", "20", "--subject", "{name}: {exit_status}", "--body",
                          "{default_body}\\nRunbook"});
    REQUIRE(options);
    CHECK(options->tail_lines == 20);
    CHECK(options->subject_template == "{name}: {exit_status}");
    CHECK(options->body_template == "{default_body}\\nRunbook"); // escapes are the template's
    CHECK(parse({"--tail", "1000"}));
    CHECK(parse({"--tail", "1001"}).error().exit_code == EX_USAGE);
    CHECK(parse({"--tail", "-1"}).error().exit_code == EX_USAGE);
}

TEST_CASE("a --config file supplies long options in INI or TOML and the command line wins",
          "[options]") {
    TempFile file("# crashmail\n"
                  "email = [\"a@example.com\", \"b@example.com\"]\n"
                  "program = web\n"
                  "tail = 20\n"
                  "sendmail_program = \"/usr/sbin/sendmail -t -i -f ops\"\n"
                  "subject = \"[{host}] {name}\"\n"
                  "max-age = 2h\n");
    auto options = parse({"--config", file.path.c_str(), "--tail", "5"});
    REQUIRE(options);
    CHECK(options->emails == std::vector<std::string>{"a@example.com", "b@example.com"});
    CHECK(options->programs == std::vector<std::string>{"web"});
    CHECK(options->tail_lines == 5);
    CHECK(options->sendmail_program == "/usr/sbin/sendmail -t -i -f ops");
    CHECK(options->subject_template == "[{host}] {name}");
    CHECK(options->max_age == std::chrono::hours(2));
}

TEST_CASE("a --config file that is missing or names an unknown option is a configuration "
          "error (78)",
          "[options]") {
    auto missing = parse({"--config", "/nonexistent/crashmail.ini"});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().exit_code == EX_CONFIG);
    CHECK_THAT(missing.error().message, Catch::StartsWith("--config: "));

    TempFile typo("emial = ops@example.com\n");
    auto unknown = parse({"--config", typo.path.c_str()});
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().exit_code == EX_CONFIG);
    CHECK_THAT(unknown.error().message, Catch::Contains("emial"));
}

TEST_CASE("states, exclusions and flood control options", "[options]") {
    auto defaults = parse({"-a", "-m", "ops@example.com"});
    REQUIRE(defaults);
    CHECK(defaults->states == std::vector<std::string>{"EXITED", "FATAL"});
    CHECK_FALSE(defaults->expected);
    CHECK(defaults->rate_limit == "3/10m");
    CHECK_FALSE(defaults->recovery);
    CHECK(defaults->recovery_after == std::chrono::seconds(60));
    CHECK(defaults->batch == std::chrono::seconds(0));

    auto options = parse({"-a",      "-m",         "ops@example.com",  "--state", "exited, backoff",
                          "--state", "FATAL",      "--state",          "BACKOFF", "--expected",
                          "-x",      "noisy",      "--exclude",        "grp:*",   "--rate-limit",
                          "5/1h",    "--recovery", "--recovery-after", "30s",     "--batch",
                          "10m"});
    REQUIRE(options);
    CHECK(options->states == std::vector<std::string>{"EXITED", "BACKOFF", "FATAL"});
    CHECK(options->expected);
    CHECK(options->excludes == std::vector<std::string>{"noisy", "grp:*"});
    CHECK(options->rate_limit == "5/1h");
    CHECK(options->recovery);
    CHECK(options->recovery_after == std::chrono::seconds(30));
    CHECK(options->batch == std::chrono::seconds(600));
    auto off = parse({"-a", "-m", "ops@example.com", "--rate-limit", "off", "--batch", "off"});
    REQUIRE(off);
    CHECK(off->rate_limit == "off");
    CHECK(off->batch == std::chrono::seconds(0));
}

TEST_CASE("bad state, rate-limit, batch and recovery-after values are usage errors", "[options]") {
    for (std::vector<const char*> args : {
             std::vector<const char*>{"--state", "CRASHED"},
             std::vector<const char*>{"--rate-limit", "3"},
             std::vector<const char*>{"--rate-limit", "0/10m"},
             std::vector<const char*>{"--batch", "soon"},
             std::vector<const char*>{"--recovery-after", "0s"},
         }) {
        args.insert(args.begin(), {"-a", "-m", "ops@example.com"});
        auto result = parse(args);
        INFO(args[3] << " " << args[4]);
        REQUIRE_FALSE(result);
        CHECK(result.error().exit_code == EX_USAGE);
        CHECK_THAT(result.error().message, Catch::StartsWith(std::string(args[3]) + ":"));
    }
}

TEST_CASE("the host name (--hostname) is a DNS name, from the command line or the --config file",
          "[options][hostname]") {
    auto none = parse({"-m", "ops@example.com"});
    REQUIRE(none);
    CHECK(none->hostname.empty()); // the FQDN, found at start-up
    for (const char* name : {"mail.example.com", "web-1.prod.example.com", "vm", "a", "EXAMPLE.ORG",
                             "0.example.com"}) {
        auto options = parse({"-m", "ops@example.com", "--hostname", name});
        REQUIRE(options);
        CHECK(options->hostname == name);
    }
    const std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                std::string(63, 'c') + "." + std::string(61, 'd');
    REQUIRE(longest.size() == 253);
    CHECK(parse({"--hostname", longest.c_str()}));

    TempFile file("hostname = relay-client.example.net\nsendmail_program = \"/bin/m {from}\"\n");
    auto configured = parse({"--config", file.path.c_str()});
    REQUIRE(configured);
    CHECK(configured->hostname == "relay-client.example.net");
    CHECK(configured->sendmail_given); // -s from the file is an -s too
    auto wins = parse({"--config", file.path.c_str(), "--hostname", "cli.example.net"});
    REQUIRE(wins);
    CHECK(wins->hostname == "cli.example.net");
}

TEST_CASE("a --hostname that is not a DNS name is a usage error (64) saying why",
          "[options][hostname]") {
    struct Case {
        std::string name;
        std::string why;
    };
    const std::string too_long = std::string(250, 'a') + ".com";
    for (const Case& c : std::vector<Case>{
             {"", "empty host name"},
             {"web_1.example.com", "'_' is not allowed in a host name"},
             {"web1.example.com\r\nBcc: x@y", "byte 0x0D is not allowed in a host name"},
             {"a b", "byte 0x20 is not allowed"},
             {"müller.example", "byte 0xC3 is not allowed"},
             {"[127.0.0.1]", "'[' is not allowed"},
             {"example.com.", "empty label"},
             {".example.com", "empty label"},
             {"a..b", "empty label"},
             {"-web.example.com", "label '-web' starts or ends with '-'"},
             {"web-.example.com", "label 'web-' starts or ends with '-'"},
             {std::string(64, 'x') + ".com", "is 64 bytes long (at most 63)"},
             {too_long, "254 bytes long (at most 253)"}}) {
        auto options = parse({"-m", "ops@example.com", "--hostname", c.name.c_str()});
        INFO(c.name);
        REQUIRE_FALSE(options);
        CHECK(options.error().exit_code == EX_USAGE);
        CHECK_THAT(options.error().message, Catch::StartsWith("--hostname '"));
        CHECK_THAT(options.error().message, Catch::Contains(c.why));
        CHECK(options.error().message.find('\n') == std::string::npos);
        CHECK(options.error().message.find('\r') == std::string::npos);
    }
}

TEST_CASE("help lists --hostname", "[options][hostname]") {
    auto options = parse({"--help"});
    REQUIRE_FALSE(options);
    CHECK_THAT(options.error().output, Catch::Contains("--hostname NAME"));
}
