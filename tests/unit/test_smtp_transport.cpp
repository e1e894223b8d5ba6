#include "alert/mail_message.hpp"
#include "silent_server.hpp"
#include "transport/smtp_transport.hpp"
#include "util/curl_handles.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

using crashmail::classify_smtp_failure;
using crashmail::Failure;
using crashmail::normalize_smtp_url;
using crashmail::smtp_failure_message;
using crashmail::smtp_reply_code;

TEST_CASE("SMTP URLs are normalised with default ports and a lower-case host", "[smtp]") {
    CHECK(normalize_smtp_url("smtp://mail.example.com") == "smtp://mail.example.com:25");
    CHECK(normalize_smtp_url("smtps://mail.example.com") == "smtps://mail.example.com:465");
    CHECK(normalize_smtp_url("SMTP://Mail.Example.COM:587") == "smtp://mail.example.com:587");
    CHECK(normalize_smtp_url("smtp://127.0.0.1:2525") == "smtp://127.0.0.1:2525");
    CHECK(normalize_smtp_url("smtp://127.0.0.1:2525/") == "smtp://127.0.0.1:2525");
    CHECK(normalize_smtp_url("smtp://[::1]") == "smtp://[::1]:25");
    CHECK(normalize_smtp_url("smtps://[::1]:4650") == "smtps://[::1]:4650");
}

TEST_CASE("SMTP URLs other than smtp[s]://host[:port] are refused with a reason", "[smtp]") {
    const auto error_of = [](std::string_view url) {
        const auto result = normalize_smtp_url(url);
        REQUIRE_FALSE(result.has_value());
        return result.error();
    };
    CHECK_THAT(error_of("http://mail.example.com"), Catch::Contains("smtp:// or smtps://"));
    CHECK_THAT(error_of("submission://mail.example.com"), Catch::Contains("smtp:// or smtps://"));
    CHECK_THAT(error_of("mail.example.com"), Catch::Contains("not an SMTP URL"));
    CHECK_THAT(error_of(""), Catch::Contains("not an SMTP URL"));
    CHECK_THAT(error_of("smtp://"), Catch::Contains("No host"));
    CHECK_THAT(error_of("smtp://:25"), Catch::Contains("No host"));
    CHECK_THAT(error_of("smtp:///mail.example.com"), Catch::Contains("no host"));
    CHECK_THAT(error_of("smtp://mail.example.com:0"), Catch::Contains("port"));
    CHECK_THAT(error_of("smtp://mail.example.com:65536"), Catch::Contains("Port"));
    CHECK_THAT(error_of("smtp://mail.example.com:abc"), Catch::Contains("Port"));
    CHECK_THAT(error_of("smtp://ops:s3cret@mail.example.com"), Catch::Contains("credentials"));
    CHECK_THAT(error_of("smtp://ops@mail.example.com"), Catch::Contains("credentials"));
    CHECK_THAT(error_of("smtp://mail.example.com/helo.example.com"),
               Catch::Contains("only smtp://host[:port]"));
    CHECK_THAT(error_of("smtp://mail.example.com?x=1"), Catch::Contains("only smtp://host"));
    CHECK_THAT(error_of("smtp://mail.example.com#x"), Catch::Contains("only smtp://host"));
    CHECK_FALSE(normalize_smtp_url("smtp://mail example.com").has_value());
    CHECK_FALSE(normalize_smtp_url("smtp://mail.example.com\r\nRCPT TO:<x@y>").has_value());
    CHECK_FALSE(normalize_smtp_url("smtp://[fe80::1%25eth0]").has_value());
}

TEST_CASE("a refused SMTP URL is echoed without control characters", "[smtp]") {
    const auto result = normalize_smtp_url("http://a\r\nb");
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().find('\r') == std::string::npos);
    CHECK(result.error().find('\n') == std::string::npos);
}

TEST_CASE("SMTP reply codes are read from the start of a reply line", "[smtp]") {
    CHECK(smtp_reply_code("535 5.7.8 Authentication credentials invalid") == 535);
    CHECK(smtp_reply_code("421-mx closing 421 bye") == 421);
    CHECK(smtp_reply_code("250") == 250);
    CHECK(smtp_reply_code("") == 0);
    CHECK(smtp_reply_code("53") == 0);
    CHECK(smtp_reply_code("5355 x") == 0);
    CHECK(smtp_reply_code("abc def") == 0);
    CHECK(smtp_reply_code("999 nonsense") == 0);
}

TEST_CASE("SMTP failures are classified as transient, timeout or permanent", "[smtp]") {
    using Kind = Failure::Kind;
    struct Row {
        CURLcode code;
        long response;
        std::string_view reply;
        Kind expected;
    };
    // clang-format off
    const Row rows[] = {
        // nothing answered
        {CURLE_COULDNT_CONNECT, 0, "", Kind::transient},
        {CURLE_COULDNT_RESOLVE_HOST, 0, "", Kind::transient},
        {CURLE_RECV_ERROR, 0, "", Kind::transient},
        {CURLE_GOT_NOTHING, 0, "", Kind::transient},
        {CURLE_SSL_CONNECT_ERROR, 0, "", Kind::transient},
        {CURLE_OPERATION_TIMEDOUT, 0, "", Kind::timeout},
        // a timeout stays a timeout whatever was said before
        {CURLE_OPERATION_TIMEDOUT, 250, "250 OK", Kind::timeout},
        // the server's reply decides
        {CURLE_WEIRD_SERVER_REPLY, 421, "421 4.3.2 Service not available", Kind::transient},
        {CURLE_SEND_ERROR, 450, "450 4.2.0 Mailbox busy", Kind::transient},
        {CURLE_SEND_ERROR, 550, "550 5.1.1 User unknown", Kind::permanent},
        {CURLE_WEIRD_SERVER_REPLY, 554, "554 no SMTP service here", Kind::permanent},
        {CURLE_LOGIN_DENIED, 454, "454 4.7.0 Temporary authentication failure", Kind::transient},
        {CURLE_LOGIN_DENIED, 535, "535 5.7.8 Authentication credentials invalid", Kind::permanent},
        // the code is taken from the reply text when libcurl reports none
        {CURLE_SEND_ERROR, 0, "451 4.3.0 try later", Kind::transient},
        {CURLE_SEND_ERROR, 0, "552 5.3.4 too big", Kind::permanent},
        // refused login without a 5xx, TLS required but not offered, URL problems
        {CURLE_LOGIN_DENIED, 0, "", Kind::permanent},
        {CURLE_USE_SSL_FAILED, 250, "250-mx 250 HELP", Kind::permanent},
        {CURLE_UNSUPPORTED_PROTOCOL, 0, "", Kind::permanent},
        {CURLE_URL_MALFORMAT, 0, "", Kind::permanent},
        // a certificate that cannot be verified is retried (for an hour: transient_for), even
        // after a 220 to STARTTLS; a local TLS set-up problem is not
        {CURLE_PEER_FAILED_VERIFICATION, 220, "220 Ready to start TLS", Kind::transient},
        {CURLE_SSL_CACERT_BADFILE, 0, "", Kind::transient},
        {CURLE_SSL_CERTPROBLEM, 0, "", Kind::permanent},
        {CURLE_SSL_CIPHER, 220, "220 Ready to start TLS", Kind::permanent},
        // a success reply followed by a broken connection is worth retrying
        {CURLE_RECV_ERROR, 250, "250 OK", Kind::transient},
    };
    // clang-format on
    for (const auto& row : rows) {
        INFO("curl code " << static_cast<int>(row.code) << ", response " << row.response
                          << ", reply '" << row.reply << "'");
        CHECK(classify_smtp_failure(row.code, row.response, row.reply) == row.expected);
    }
}

TEST_CASE("SMTP failure messages carry the server's own words", "[smtp]") {
    CHECK(smtp_failure_message("smtp://127.0.0.1:2525", CURLE_LOGIN_DENIED, 535,
                               "535 5.7.8 Authentication credentials invalid",
                               "Authentication failed: 535") ==
          "smtp://127.0.0.1:2525: 535 5.7.8 Authentication credentials invalid");
    CHECK(smtp_failure_message("smtp://mx:25", CURLE_SEND_ERROR, 550,
                               "550-5.1.1 no such user 550 5.1.1 see the docs",
                               "RCPT failed: 550") ==
          "smtp://mx:25: 550-5.1.1 no such user 550 5.1.1 see the docs");
}

TEST_CASE("SMTP failure messages fall back to libcurl's words", "[smtp]") {
    CHECK(smtp_failure_message("smtp://127.0.0.1:1", CURLE_COULDNT_CONNECT, 0, "",
                               "Failed to connect to 127.0.0.1 port 1: Connection refused") ==
          "smtp://127.0.0.1:1: Failed to connect to 127.0.0.1 port 1: Connection refused");
    CHECK(smtp_failure_message("smtp://mx:25", CURLE_COULDNT_CONNECT, 0, "", "") ==
          std::string("smtp://mx:25: ") + curl_easy_strerror(CURLE_COULDNT_CONNECT));
    // after "220 Ready to start TLS" the TLS error is what matters, not the reply
    CHECK(smtp_failure_message("smtp://mx:25", CURLE_PEER_FAILED_VERIFICATION, 220,
                               "220 Ready to start TLS",
                               "SSL certificate problem: self-signed certificate") ==
          "smtp://mx:25: SSL certificate problem: self-signed certificate");
    CHECK_THAT(smtp_failure_message("smtp://mx:25", CURLE_USE_SSL_FAILED, 250, "250 HELP",
                                    "STARTTLS not supported."),
               Catch::Contains("does not offer STARTTLS"));
}

TEST_CASE("SMTP failure messages are one bounded line", "[smtp]") {
    const std::string reply = "554 evil\r\nX-Injected: yes\x01" + std::string(2000, 'x');
    const std::string message =
        smtp_failure_message("smtp://mx:25", CURLE_SEND_ERROR, 554, reply, "");
    CHECK(message.find('\r') == std::string::npos);
    CHECK(message.find('\n') == std::string::npos);
    CHECK(message.find('\x01') == std::string::npos);
    CHECK(message.size() < 500);
    CHECK(message.starts_with("smtp://mx:25: 554 evil  X-Injected: yes"));
}

TEST_CASE("SMTP transport refuses bad settings before connecting", "[smtp]") {
    crashmail::Alert alert;
    alert.host = "host.example.com";

    crashmail::SmtpSettings bad_url{
        .url = "http://mx.example.com", .from = "crashmail@example.com", .to = {"ops@example.com"}};
    crashmail::SmtpTransport with_bad_url(bad_url);
    const auto url_result = with_bad_url.deliver(alert);
    REQUIRE_FALSE(url_result.has_value());
    CHECK(url_result.error().kind == Failure::Kind::permanent);
    CHECK_THAT(url_result.error().message, Catch::Contains("smtp:// or smtps://"));

    // Port 9 on loopback is never contacted: the addresses are refused first.
    crashmail::SmtpSettings injected{.url = "smtp://127.0.0.1:9",
                                     .from = "crashmail@example.com",
                                     .to = {"ops@example.com>\r\nRCPT TO:<evil@example.com"}};
    crashmail::SmtpTransport with_injection(injected);
    CHECK(with_injection.name() == "smtp://127.0.0.1:9");
    const auto rcpt_result = with_injection.deliver(alert);
    REQUIRE_FALSE(rcpt_result.has_value());
    CHECK(rcpt_result.error().kind == Failure::Kind::permanent);
    CHECK_THAT(rcpt_result.error().message, Catch::Contains("invalid recipient address"));

    crashmail::SmtpSettings bad_from{
        .url = "smtp://127.0.0.1:9", .from = "a b@example.com", .to = {"ops@example.com"}};
    const auto from_result = crashmail::SmtpTransport(bad_from).deliver(alert);
    REQUIRE_FALSE(from_result.has_value());
    CHECK_THAT(from_result.error().message, Catch::Contains("invalid sender address"));

    crashmail::SmtpSettings nobody{.url = "smtp://127.0.0.1:9", .from = "crashmail@example.com"};
    const auto nobody_result = crashmail::SmtpTransport(nobody).deliver(alert);
    REQUIRE_FALSE(nobody_result.has_value());
    CHECK_THAT(nobody_result.error().message, Catch::Contains("no recipients"));
}

// ---------------------------------------------------------------------------------------
// Against a scripted SMTP server on 127.0.0.1 (one connection, every wait bounded).

namespace {

class ScriptedSmtpServer {
public:
    // `replies` maps a whole command line ("RCPT TO:<b@example.com>") or a command verb
    // ("EHLO", "MAIL", "RCPT", "DATA", "." for the end of the data, "QUIT") to the reply text
    // to send, CRLF-separated lines without the final CRLF; the whole line wins.
    using Replies = std::map<std::string, std::string>;

    // How the server misbehaves, besides its replies.
    struct Behaviour {
        std::string greeting = "220 scripted ESMTP"; // sent as is, then CRLF
        bool close_after_greeting = false;
        std::chrono::milliseconds rcpt_delay{0};      // before each RCPT reply
        std::chrono::milliseconds end_reply_delay{0}; // before the reply to the data's end
        bool close_after_354 = false;                 // hangs up instead of reading the message
        // Before each RCPT reply, watch 200 ms for more bytes: a client that sends its next
        // command before the reply pipelines (pipelined() says so).
        bool watch_pipelining = false;
    };

    explicit ScriptedSmtpServer(Replies replies) : ScriptedSmtpServer(std::move(replies), {}) {}

    ScriptedSmtpServer(Replies replies, Behaviour behaviour)
        : m_replies(std::move(replies)), m_behaviour(std::move(behaviour)) {
        m_listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(m_listener >= 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = 0;
        REQUIRE(::bind(m_listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(m_listener, 1) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(m_listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
        m_port = ntohs(address.sin_port);
        m_thread = std::thread([this] { serve(); });
    }

    ~ScriptedSmtpServer() {
        if (m_thread.joinable()) {
            m_thread.join();
        }
        ::close(m_listener);
    }

    ScriptedSmtpServer(const ScriptedSmtpServer&) = delete;
    ScriptedSmtpServer& operator=(const ScriptedSmtpServer&) = delete;

    std::string url() const { return "smtp://127.0.0.1:" + std::to_string(m_port); }

    // Waits for the session to end; returns every command line received (outside DATA).
    std::vector<std::string> commands() {
        finish();
        return m_commands;
    }

    // Waits for the session to end; returns the DATA bytes as sent, with the final ".\r\n".
    std::string data() {
        finish();
        return m_data;
    }

    // Waits for the session to end: whether the client sent a command before the reply to
    // the RCPT before it (Behaviour::watch_pipelining).
    bool pipelined() {
        finish();
        return m_pipelined;
    }

    // The whole message has arrived (the end-of-data reply may still be held back).
    bool got_data() const { return m_got_data.load(); }

private:
    static constexpr int k_wait_ms = 10000;

    void finish() {
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }

    std::string reply_for(const std::string& verb, const std::string& fallback) const {
        const auto found = m_replies.find(verb);
        return found != m_replies.end() ? found->second : fallback;
    }

    // Waits `delay`, or less when the client hangs up meanwhile; what it sends meanwhile
    // (a QUIT, say) is kept in `buffer` for later.
    static void hold(int fd, std::string& buffer, std::chrono::milliseconds delay) {
        const auto deadline = std::chrono::steady_clock::now() + delay;
        while (std::chrono::steady_clock::now() < deadline) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd watch{fd, POLLIN, 0};
            if (::poll(&watch, 1, static_cast<int>(std::max<long long>(1, left.count()))) > 0) {
                char chunk[4096];
                const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
                if (n <= 0) {
                    return; // hung up
                }
                buffer.append(chunk, static_cast<std::size_t>(n));
            }
        }
    }

    static bool send_all(int fd, const std::string& text) {
        std::size_t sent = 0;
        while (sent < text.size()) {
            const ssize_t n = ::send(fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) {
                return false;
            }
            sent += static_cast<std::size_t>(n);
        }
        return true;
    }

    // Reads until `buffer` holds `terminator`; false on timeout, EOF or error.
    static bool read_until(int fd, std::string& buffer, std::string_view terminator) {
        while (buffer.find(terminator) == std::string::npos) {
            pollfd watch{fd, POLLIN, 0};
            if (::poll(&watch, 1, k_wait_ms) <= 0) {
                return false;
            }
            char chunk[4096];
            const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
            if (n <= 0) {
                return false;
            }
            buffer.append(chunk, static_cast<std::size_t>(n));
        }
        return true;
    }

    void serve() {
        pollfd watch{m_listener, POLLIN, 0};
        if (::poll(&watch, 1, k_wait_ms) <= 0) {
            return;
        }
        const int fd = ::accept4(m_listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        std::string buffer;
        bool open = send_all(fd, m_behaviour.greeting + "\r\n");
        if (m_behaviour.close_after_greeting) {
            open = false;
        }
        while (open && read_until(fd, buffer, "\r\n")) {
            const std::size_t end = buffer.find("\r\n");
            const std::string line = buffer.substr(0, end);
            buffer.erase(0, end + 2);
            m_commands.push_back(line);
            std::string verb = line.substr(0, line.find(' '));
            std::ranges::transform(verb, verb.begin(),
                                   [](char c) { return c >= 'a' && c <= 'z' ? c - 32 : c; });
            std::string reply =
                reply_for(line, reply_for(verb, verb == "EHLO"   ? "250-scripted\r\n250 8BITMIME"
                                                : verb == "DATA" ? "354 go ahead"
                                                : verb == "QUIT" ? "221 bye"
                                                                 : "250 ok"));
            if (verb == "RCPT") {
                hold(fd, buffer, m_behaviour.rcpt_delay);
                if (m_behaviour.watch_pipelining) {
                    pollfd more{fd, POLLIN, 0};
                    if (buffer.find("\r\n") != std::string::npos || ::poll(&more, 1, 200) > 0) {
                        m_pipelined = true;
                    }
                }
            }
            open = send_all(fd, reply + "\r\n");
            if (verb == "QUIT") {
                break;
            }
            if (verb == "DATA" && reply.starts_with("354") && m_behaviour.close_after_354) {
                break;
            }
            if (verb == "DATA" && reply.starts_with("354")) {
                // The data ends with CRLF "." CRLF; the DATA line's CRLF counts for an
                // empty message.
                buffer.insert(0, "\r\n");
                if (!read_until(fd, buffer, "\r\n.\r\n")) {
                    break;
                }
                const std::size_t stop = buffer.find("\r\n.\r\n");
                m_data = buffer.substr(2, stop + 5 - 2);
                buffer.erase(0, stop + 5);
                m_got_data = true;
                hold(fd, buffer, m_behaviour.end_reply_delay);
                open = send_all(fd, reply_for(".", "250 2.0.0 queued") + "\r\n");
            }
        }
        ::close(fd);
    }

    std::map<std::string, std::string> m_replies;
    Behaviour m_behaviour;
    bool m_pipelined = false;
    std::atomic<bool> m_got_data{false};
    int m_listener = -1;
    int m_port = 0;
    std::thread m_thread;
    std::vector<std::string> m_commands;
    std::string m_data;
};

crashmail::Alert sample_alert() {
    crashmail::Alert alert;
    alert.id = "20261125T220310.123.42.9f3c2a1b7d4e5f60";
    alert.event_name = "PROCESS_STATE_EXITED";
    alert.state = "EXITED";
    alert.process = "crashy";
    alert.group = "crashy";
    alert.from_state = "RUNNING";
    alert.host = "host.example.com";
    alert.time = std::chrono::system_clock::time_point(std::chrono::seconds(1'795'000'000));
    alert.subject = "crashy crashed";
    alert.body = "first line\n.a line with a leading dot\n..two dots\n.\nlast line\n";
    return alert;
}

crashmail::SmtpSettings settings_for(const std::string& url) {
    crashmail::SmtpSettings settings;
    settings.url = url;
    settings.from = "crashmail@host.example.com";
    settings.to = {"a@example.com", "b@example.com"};
    settings.timeout = std::chrono::seconds(10);
    return settings;
}

// Undoes SMTP dot-stuffing and removes the final ".\r\n".
std::string unstuff(std::string_view data) {
    REQUIRE(data.ends_with("\r\n.\r\n"));
    data.remove_suffix(3);
    std::string result;
    bool line_start = true;
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (line_start && data[i] == '.') {
            line_start = false;
            continue;
        }
        result += data[i];
        line_start = data[i] == '\n';
    }
    return result;
}

} // namespace

TEST_CASE("SMTP delivery sends the rendered message and dot-stuffs lines that start with a dot",
          "[smtp][network]") {
    ScriptedSmtpServer server(ScriptedSmtpServer::Replies{});
    crashmail::SmtpTransport transport(settings_for(server.url()));
    const crashmail::Alert alert = sample_alert();

    const auto result = transport.deliver(alert);
    INFO((result ? std::string("delivered") : result.error().describe()));
    REQUIRE(result.has_value());

    const std::string data = server.data();
    CHECK(data.find("\r\n..a line with a leading dot\r\n") != std::string::npos);
    CHECK(data.find("\r\n...two dots\r\n") != std::string::npos);
    CHECK(data.find("\r\n..\r\nlast line\r\n") != std::string::npos);
    const std::string expected = crashmail::render_mail(
        alert, {"crashmail@host.example.com", {"a@example.com", "b@example.com"}},
        crashmail::LineEnding::crlf);
    CHECK(unstuff(data) == expected);

    const auto commands = server.commands();
    REQUIRE(commands.size() >= 5);
    CHECK(commands[0] == "EHLO host.example.com");
    CHECK(commands[1].starts_with("MAIL FROM:<crashmail@host.example.com>"));
    CHECK(commands[2] == "RCPT TO:<a@example.com>");
    CHECK(commands[3] == "RCPT TO:<b@example.com>");
    CHECK(commands[4] == "DATA");
}

TEST_CASE("SMTP delivery reports a 4xx reply as transient, in the server's words",
          "[smtp][network]") {
    ScriptedSmtpServer server(
        ScriptedSmtpServer::Replies{{"MAIL", "451 4.7.1 Greylisted, come back later"}});
    crashmail::SmtpTransport transport(settings_for(server.url()));

    const auto result = transport.deliver(sample_alert());
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == Failure::Kind::transient);
    CHECK(result.error().message == server.url() + ": 451 4.7.1 Greylisted, come back later");
    for (const auto& command : server.commands()) {
        CHECK_FALSE(command.starts_with("RCPT"));
    }
}

TEST_CASE("SMTP delivery reports a multi-line 5xx reply whole, as permanent", "[smtp][network]") {
    ScriptedSmtpServer server(ScriptedSmtpServer::Replies{
        {"RCPT", "550-5.1.1 The account does not exist.\r\n550 5.1.1 See the docs."}});
    crashmail::SmtpTransport transport(settings_for(server.url()));

    const auto result = transport.deliver(sample_alert());
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == Failure::Kind::permanent);
    CHECK(result.error().message ==
          server.url() +
              ": every recipient refused the message: a@example.com: 550-5.1.1 The account does "
              "not exist. 550 5.1.1 See the docs.; b@example.com: 550-5.1.1 The account does not "
              "exist. 550 5.1.1 See the docs.");
    CHECK(server.data().empty());
}

TEST_CASE("SMTP delivery with a user refuses a server without STARTTLS before AUTH",
          "[smtp][network]") {
    ScriptedSmtpServer server(
        ScriptedSmtpServer::Replies{{"EHLO", "250-scripted\r\n250 AUTH PLAIN LOGIN"}});
    crashmail::SmtpSettings settings = settings_for(server.url());
    settings.user = "ops";
    settings.password = "s3cret";
    settings.require_tls = false; // the transport insists on TLS anyway when a user is set
    crashmail::SmtpTransport transport(settings);

    const auto result = transport.deliver(sample_alert());
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == Failure::Kind::permanent);
    CHECK_THAT(result.error().message, Catch::Contains("does not offer STARTTLS"));
    for (const auto& command : server.commands()) {
        CHECK_FALSE(command.starts_with("AUTH"));
        CHECK(command.find("s3cret") == std::string::npos);
        CHECK_FALSE(command.starts_with("MAIL"));
    }
}

// ---------------------------------------------------------------------------------------
// cancel(): a delivery stuck on a server that never answers ends soon, and so does every
// later one (crashmail is stopping and joins its delivery threads).

TEST_CASE("cancel() ends an SMTP delivery waiting on a silent server, as transient",
          "[smtp][network]") {
    using namespace std::chrono_literals;
    crashmail::testing::SilentServer server;
    crashmail::SmtpSettings settings = settings_for("smtp://" + server.address());
    settings.timeout = std::chrono::seconds(30); // without cancel() it would wait this long
    crashmail::SmtpTransport transport(settings);

    std::optional<std::expected<void, Failure>> result;
    const auto start = std::chrono::steady_clock::now();
    std::thread worker([&] { result = transport.deliver(sample_alert()); });
    // Connected and waiting for the greeting, then cancelled.
    CHECK(crashmail::testing::wait_until([&] { return server.accepted() > 0; }, 10s));
    std::this_thread::sleep_for(200ms);
    transport.cancel();
    worker.join();
    const auto elapsed = std::chrono::steady_clock::now() - start;

    CHECK(elapsed < 10s); // generous: a cancel is honoured within about a second
    REQUIRE(result.has_value());
    REQUIRE_FALSE(result->has_value());
    CHECK(result->error().kind == Failure::Kind::transient);
    CHECK(result->error().message ==
          "smtp://" + server.address() + ": cancelled: crashmail is stopping");

    // Every later delivery fails at once, without connecting.
    const int connections = server.accepted();
    const auto again_start = std::chrono::steady_clock::now();
    const auto again = transport.deliver(sample_alert());
    CHECK(std::chrono::steady_clock::now() - again_start < 5s);
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().kind == Failure::Kind::transient);
    CHECK_THAT(again.error().message, Catch::Contains("crashmail is stopping"));
    std::this_thread::sleep_for(100ms);
    CHECK(server.accepted() == connections);
}

TEST_CASE("an SMTP transport cancelled before deliver() returns at once without connecting",
          "[smtp][network]") {
    using namespace std::chrono_literals;
    crashmail::testing::SilentServer server;
    crashmail::SmtpSettings settings = settings_for("smtp://" + server.address());
    settings.timeout = std::chrono::seconds(30);
    crashmail::SmtpTransport transport(settings);
    transport.cancel();

    const auto start = std::chrono::steady_clock::now();
    const auto result = transport.deliver(sample_alert());
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == Failure::Kind::transient);
    CHECK(result.error().retryable());
    CHECK_THAT(result.error().message, Catch::Contains("stopping"));
    std::this_thread::sleep_for(100ms);
    CHECK(server.accepted() == 0);
}

// ---------------------------------------------------------------------------------------
// Issue 15: recipients one by one, the wait for the end of the message, TLS, words.

TEST_CASE("an SMTP dialogue pairs each command with the reply that follows it", "[smtp]") {
    using Phase = crashmail::SmtpDialogue::Phase;
    crashmail::SmtpDialogue dialogue;
    CHECK(dialogue.phase() == Phase::greeting);
    dialogue.note("Connected to 127.0.0.1 (127.0.0.1) port 25 (#0)\n");
    CHECK(dialogue.connected());
    // Lines may arrive in pieces, several in one piece, with CRLF or LF.
    dialogue.received("220 mx ES");
    dialogue.received("MTP ready\r\n");
    CHECK(dialogue.phase() == Phase::our_turn);
    dialogue.sent("EHLO host.example.com\r\n");
    CHECK(dialogue.phase() == Phase::reply);
    CHECK(dialogue.pending_command() == "EHLO host.example.com");
    dialogue.received("250-mx\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n");
    CHECK_FALSE(dialogue.starttls_offered());
    dialogue.sent("MAIL FROM:<crashmail@example.com>\r\n");
    dialogue.received("250 2.1.0 Ok\r\n");
    dialogue.sent("RCPT TO:<a@example.com>\r\n");
    CHECK(dialogue.pending_command() == "RCPT TO:<a@example.com>");
    dialogue.received("250 2.1.5 Ok\r\n");
    dialogue.sent("RCPT TO:<old@example.com>\r\n");
    dialogue.received("550-5.1.1 <old@example.com>: Recipient address rejected:\r\n550 5.1.1 "
                      "User unknown\r\n");
    dialogue.sent("RCPT TO:<full@example.com>");
    dialogue.sent("\r\n");
    dialogue.received("452 4.2.2 Mailbox full\n");
    dialogue.sent("DATA\r\n");
    dialogue.received("354 End data with <CR><LF>.<CR><LF>\r\n");
    CHECK(dialogue.phase() == Phase::message);
    dialogue.message_bytes_sent(1000);
    dialogue.message_bytes_sent(234);
    CHECK(dialogue.message_bytes() == 1234);
    CHECK(dialogue.phase() == Phase::message);
    dialogue.message_finished();
    CHECK(dialogue.phase() == Phase::end_of_data);
    CHECK(dialogue.pending_command().empty());
    CHECK_FALSE(dialogue.end_of_data_reply().has_value());
    dialogue.received("250 2.0.0 Ok: queued as 4F1\r\n");
    CHECK(dialogue.phase() == Phase::finished);
    dialogue.sent("QUIT\r\n");
    dialogue.received("221 2.0.0 Bye\r\n");

    // libcurl gave up on the end of the message and said QUIT: a late reply is still the
    // reply to the end of the message.
    crashmail::SmtpDialogue late;
    late.received("220 mx\r\n");
    late.sent("DATA\r\n");
    late.received("354 go\r\n");
    late.message_bytes_sent(10);
    late.message_finished();
    late.sent("QUIT\r\n");
    CHECK(late.phase() == Phase::end_of_data);
    CHECK(late.pending_command() == "QUIT");
    late.received("250 2.0.0 queued at last\r\n221 bye\r\n");
    REQUIRE(late.end_of_data_reply().has_value());
    CHECK(late.end_of_data_reply()->text() == "250 2.0.0 queued at last");
    CHECK(late.exchanges().back().command == "QUIT");
    CHECK(late.exchanges().back().reply.code == 221);

    const auto replies = dialogue.recipient_replies();
    REQUIRE(replies.size() == 3);
    CHECK(replies[0].code == 250);
    CHECK(replies[1].code == 550);
    CHECK(replies[1].text() ==
          "550-5.1.1 <old@example.com>: Recipient address rejected: 550 5.1.1 User unknown");
    CHECK(replies[2].code == 452);
    REQUIRE(dialogue.end_of_data_reply().has_value());
    CHECK(dialogue.end_of_data_reply()->text() == "250 2.0.0 Ok: queued as 4F1");
    CHECK_FALSE(dialogue.starttls_reply().has_value());
    CHECK(dialogue.non_smtp_greeting().empty());
    CHECK(dialogue.reply_for(550).starts_with("550-5.1.1"));
    CHECK(dialogue.reply_for(0) == "221 2.0.0 Bye");

    const std::vector<std::string> commands = [&] {
        std::vector<std::string> result;
        for (const auto& exchange : dialogue.exchanges()) {
            result.push_back(exchange.command);
        }
        return result;
    }();
    CHECK(commands ==
          std::vector<std::string>{"", "EHLO host.example.com", "MAIL FROM:<crashmail@example.com>",
                                   "RCPT TO:<a@example.com>", "RCPT TO:<old@example.com>",
                                   "RCPT TO:<full@example.com>", "DATA", ".", "QUIT"});
}

TEST_CASE("an SMTP dialogue reads STARTTLS from EHLO and keeps no AUTH secret", "[smtp]") {
    crashmail::SmtpDialogue dialogue;
    dialogue.received("220 mx\r\n");
    dialogue.sent("EHLO h\r\n");
    dialogue.received("250-mx greets h\r\n250-starttls\r\n250 AUTH PLAIN\r\n");
    CHECK(dialogue.starttls_offered());
    dialogue.sent("STARTTLS\r\n");
    dialogue.received("220 2.0.0 Ready to start TLS\r\n");
    REQUIRE(dialogue.starttls_reply().has_value());
    CHECK(dialogue.starttls_reply()->code == 220);
    dialogue.sent("EHLO h\r\n");
    dialogue.received("250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
    CHECK_FALSE(dialogue.starttls_offered()); // the last EHLO counts
    dialogue.sent("AUTH PLAIN AG9wcwBzM2NyZXQ=\r\n");
    CHECK(dialogue.pending_command() == "AUTH");
    dialogue.received("535 5.7.8 Authentication credentials invalid\r\n");
    dialogue.sent("AUTH LOGIN\r\n");
    dialogue.received("334 VXNlcm5hbWU6\r\n");
    dialogue.sent("b3Bz\r\n");
    CHECK(dialogue.pending_command() == "AUTH (continued)");
    dialogue.received("334 UGFzc3dvcmQ6\r\n");
    dialogue.sent("czNjcmV0\r\n");
    dialogue.received("235 ok\r\n");
    for (const auto& exchange : dialogue.exchanges()) {
        CHECK(exchange.command.find("AG9w") == std::string::npos);
        CHECK(exchange.command.find("b3Bz") == std::string::npos);
        CHECK(exchange.command.find("czNj") == std::string::npos);
    }
}

TEST_CASE("an SMTP dialogue notices a server that is not an SMTP server", "[smtp]") {
    crashmail::SmtpDialogue dialogue;
    dialogue.received("HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n\r\n");
    CHECK(dialogue.non_smtp_greeting() == "HTTP/1.1 400 Bad Request");
    CHECK(dialogue.exchanges().empty());
    CHECK(dialogue.phase() == crashmail::SmtpDialogue::Phase::greeting);

    crashmail::SmtpDialogue fine;
    fine.received("220 mx ready\r\n");
    fine.received("garbage later\r\n");
    CHECK(fine.non_smtp_greeting().empty());
}

TEST_CASE("refused SMTP recipients become refusals with the server's words", "[smtp]") {
    using Reply = crashmail::SmtpDialogue::Reply;
    const std::vector<std::string> addresses = {"a@example.com", "old@example.com",
                                                "full@example.com"};
    const std::vector<Reply> replies = {
        {250, {"250 2.1.5 Ok"}},
        {550, {"550 5.1.1 <old@example.com>: Recipient address rejected: User unknown"}},
        {452, {"452 4.2.2 Mailbox full"}},
    };
    const auto refusals = crashmail::smtp_refusals(addresses, replies);
    REQUIRE(refusals.size() == 2);
    CHECK(refusals[0].recipient == "old@example.com");
    CHECK(refusals[0].failure.kind == Failure::Kind::permanent);
    CHECK(refusals[0].failure.message ==
          "old@example.com: 550 5.1.1 <old@example.com>: Recipient address rejected: User "
          "unknown");
    CHECK(refusals[1].recipient == "full@example.com");
    CHECK(refusals[1].failure.kind == Failure::Kind::transient);
    CHECK(refusals[1].failure.message == "full@example.com: 452 4.2.2 Mailbox full");

    // Nobody took it: transient as soon as one refusal is.
    const Failure mixed = crashmail::smtp_all_refused("smtp://mx:25", refusals);
    CHECK(mixed.kind == Failure::Kind::transient);
    CHECK(mixed.message == "smtp://mx:25: every recipient refused the message: old@example.com: "
                           "550 5.1.1 <old@example.com>: Recipient address rejected: User "
                           "unknown; full@example.com: 452 4.2.2 Mailbox full");
    const Failure one = crashmail::smtp_all_refused("smtp://mx:25", {refusals[0]});
    CHECK(one.kind == Failure::Kind::permanent);
    CHECK(one.message.starts_with("smtp://mx:25: the recipient refused the message: "
                                  "old@example.com: 550 5.1.1"));

    // A reply that tries to smuggle a line break stays one line.
    const auto evil = crashmail::smtp_refusals({"x@example.com"}, {{550, {"550 no\r\nX: y"}}});
    REQUIRE(evil.size() == 1);
    CHECK(evil[0].failure.message.find('\n') == std::string::npos);
    CHECK(evil[0].failure.message.find('\r') == std::string::npos);
}

TEST_CASE("SMTP time limits and an unknown outcome are said in words", "[smtp]") {
    using std::chrono::seconds;
    CHECK(crashmail::smtp_duration_text(seconds(2)) == "2 s");
    CHECK(crashmail::smtp_duration_text(seconds(90)) == "90 s");
    CHECK(crashmail::smtp_duration_text(seconds(600)) == "10 min");
    CHECK(crashmail::smtp_duration_text(seconds(3600)) == "1 h");
    CHECK(crashmail::smtp_unknown_outcome_message("smtp://mx:25", seconds(600)) ==
          "smtp://mx:25: no reply to the end of the message within 10 min: the server may have "
          "accepted it; a retry may deliver a duplicate (same Message-ID)");
}

TEST_CASE("certificate failures say what is wrong with the certificate", "[smtp]") {
    CHECK(crashmail::curl::is_certificate_failure(CURLE_PEER_FAILED_VERIFICATION));
    CHECK(crashmail::curl::is_certificate_failure(CURLE_SSL_CACERT_BADFILE));
    CHECK_FALSE(crashmail::curl::is_certificate_failure(CURLE_SSL_CIPHER));
    CHECK_FALSE(crashmail::curl::is_certificate_failure(CURLE_COULDNT_CONNECT));
    CHECK(crashmail::curl::certificate_problem(
              nullptr, "SSL certificate problem: certificate has expired") ==
          "SSL certificate problem: certificate has expired");
    CHECK(crashmail::curl::certificate_problem(nullptr, "") ==
          "the certificate could not be verified");
    CHECK(crashmail::curl::certificate_failure_detail(
              CURLE_PEER_FAILED_VERIFICATION, "certificate has expired", "the relay's admin") ==
          "TLS certificate not trusted: certificate has expired (retried for up to 1 h: the "
          "relay's admin may renew it)");
    CHECK_THAT(crashmail::curl::certificate_failure_detail(
                   CURLE_SSL_CACERT_BADFILE, "error setting certificate file: /x", "whoever"),
               Catch::StartsWith("cannot verify TLS certificates: error setting certificate "
                                 "file: /x") &&
                   Catch::Contains("check --cacert"));
}

TEST_CASE("libcurl sends RCPT commands one at a time, each after the reply to the last",
          "[smtp][network]") {
    ScriptedSmtpServer::Behaviour behaviour;
    behaviour.watch_pipelining = true;
    // PIPELINING offered: libcurl still waits for each reply.
    ScriptedSmtpServer server(
        ScriptedSmtpServer::Replies{{"EHLO", "250-scripted\r\n250-PIPELINING\r\n250 8BITMIME"}},
        behaviour);
    crashmail::SmtpSettings settings = settings_for(server.url());
    settings.to = {"a@example.com", "b@example.com", "c@example.com"};
    crashmail::SmtpTransport transport(settings);
    const auto result = transport.deliver_to(sample_alert(), {});
    INFO((result ? std::string("delivered") : result.error().describe()));
    REQUIRE(result.has_value());
    CHECK_FALSE(server.pipelined());
}

TEST_CASE("SMTP delivery goes to the recipients the server accepts and names the refused",
          "[smtp][network]") {
    ScriptedSmtpServer server(ScriptedSmtpServer::Replies{
        {"RCPT TO:<b@example.com>",
         "550 5.1.1 <b@example.com>: Recipient address rejected: User unknown"}});
    crashmail::SmtpTransport transport(settings_for(server.url()));
    CHECK(transport.recipients() == std::vector<std::string>{"a@example.com", "b@example.com"});
    const auto result = transport.deliver_to(sample_alert(), {});
    INFO((result ? std::string("delivered") : result.error().describe()));
    REQUIRE(result.has_value());
    REQUIRE(result->refused.size() == 1);
    CHECK(result->refused[0].recipient == "b@example.com");
    CHECK(result->refused[0].failure.kind == Failure::Kind::permanent);
    CHECK(result->refused[0].failure.message ==
          "b@example.com: 550 5.1.1 <b@example.com>: Recipient address rejected: User unknown");
    // The server offered no STARTTLS: a note says the mail went in clear text.
    CHECK(result->notes ==
          std::vector<std::string>{server.url() +
                                   ": sent in clear text: the server offers no STARTTLS"});
    CHECK_FALSE(server.data().empty());
}

TEST_CASE("an SMTP delivery to some recipients keeps every -m address in the headers",
          "[smtp][network]") {
    ScriptedSmtpServer server(ScriptedSmtpServer::Replies{});
    crashmail::SmtpTransport transport(settings_for(server.url()));
    const crashmail::Alert alert = sample_alert();
    const auto result = transport.deliver_to(alert, {"b@example.com", "gone@example.com"});
    INFO((result ? std::string("delivered") : result.error().describe()));
    REQUIRE(result.has_value());
    CHECK(result->refused.empty());
    const auto commands = server.commands();
    CHECK(std::ranges::count_if(commands,
                                [](const std::string& c) { return c.starts_with("RCPT"); }) == 1);
    CHECK(std::ranges::find(commands, "RCPT TO:<b@example.com>") != commands.end());
    // The same mail as the first attempt's: same headers, To: naming both.
    const std::string expected = crashmail::render_mail(
        alert, {"crashmail@host.example.com", {"a@example.com", "b@example.com"}},
        crashmail::LineEnding::crlf);
    CHECK(unstuff(server.data()) == expected);
}

TEST_CASE("SMTP delivery refused by every recipient names each, transient if one is",
          "[smtp][network]") {
    ScriptedSmtpServer server(
        ScriptedSmtpServer::Replies{{"RCPT TO:<a@example.com>", "550 5.1.1 no such user"},
                                    {"RCPT TO:<b@example.com>", "452 4.2.2 mailbox full"}});
    crashmail::SmtpTransport transport(settings_for(server.url()));
    const auto result = transport.deliver_to(sample_alert(), {});
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == Failure::Kind::transient);
    CHECK(result.error().message ==
          server.url() + ": every recipient refused the message: a@example.com: 550 5.1.1 no "
                         "such user; b@example.com: 452 4.2.2 mailbox full");
    for (const auto& command : server.commands()) {
        CHECK(command != "DATA");
    }
}

TEST_CASE("a slow reply to the end of the message is waited for beyond --timeout",
          "[smtp][network]") {
    using namespace std::chrono_literals;
    ScriptedSmtpServer::Behaviour behaviour;
    behaviour.end_reply_delay = 2200ms;
    // With and without dot-stuffing: libcurl asks the read callback for the end of the
    // message only when stuffing made it send more than INFILESIZE bytes.
    for (const std::string body : {"no dots here\n", "first\n.dotted\n"}) {
        INFO("body: " << body);
        ScriptedSmtpServer server(ScriptedSmtpServer::Replies{}, behaviour);
        crashmail::SmtpSettings settings = settings_for(server.url());
        settings.timeout = 1s;
        settings.data_timeout = 20s;
        crashmail::Alert alert = sample_alert();
        alert.body = body;
        const auto start = std::chrono::steady_clock::now();
        const auto result = crashmail::SmtpTransport(settings).deliver(alert);
        INFO((result ? std::string("delivered") : result.error().describe()));
        CHECK(result.has_value());
        CHECK(std::chrono::steady_clock::now() - start >= 2s);
    }
}

TEST_CASE("no reply to the end of the message within --data-timeout: a duplicate is possible",
          "[smtp][network]") {
    using namespace std::chrono_literals;
    ScriptedSmtpServer::Behaviour behaviour;
    behaviour.end_reply_delay = 8000ms;
    ScriptedSmtpServer server(ScriptedSmtpServer::Replies{}, behaviour);
    crashmail::SmtpSettings settings = settings_for(server.url());
    settings.timeout = 1s;
    settings.data_timeout = 2s;
    crashmail::SmtpTransport transport(settings);
    // No line starts with a dot: libcurl sends exactly INFILESIZE bytes and never asks the
    // read callback for its end.
    crashmail::Alert alert = sample_alert();
    alert.body = "no dots here\n";
    const auto start = std::chrono::steady_clock::now();
    const auto result = transport.deliver(alert);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == Failure::Kind::timeout);
    CHECK(result.error().message == server.url() +
                                        ": no reply to the end of the message within 2 s: the "
                                        "server may have accepted it; a retry may deliver a "
                                        "duplicate (same Message-ID)");
    CHECK(elapsed >= 1900ms);
    CHECK(elapsed < 6s);
    CHECK(server.got_data());
}

TEST_CASE("a slow reply to RCPT is bounded by --timeout, not --data-timeout", "[smtp][network]") {
    using namespace std::chrono_literals;
    ScriptedSmtpServer::Behaviour behaviour;
    behaviour.rcpt_delay = 6000ms;
    ScriptedSmtpServer server(ScriptedSmtpServer::Replies{}, behaviour);
    crashmail::SmtpSettings settings = settings_for(server.url());
    settings.timeout = 1s;
    settings.data_timeout = 30s;
    crashmail::SmtpTransport transport(settings);
    const auto start = std::chrono::steady_clock::now();
    const auto result = transport.deliver(sample_alert());
    const auto elapsed = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == Failure::Kind::timeout);
    CHECK(result.error().message ==
          server.url() + ": no reply to RCPT TO:<a@example.com> within 1 s");
    CHECK(elapsed < 4s);
}

TEST_CASE("cancel() ends the wait for the reply to the end of the message", "[smtp][network]") {
    using namespace std::chrono_literals;
    ScriptedSmtpServer::Behaviour behaviour;
    behaviour.end_reply_delay = 9000ms;
    ScriptedSmtpServer server(ScriptedSmtpServer::Replies{}, behaviour);
    crashmail::SmtpSettings settings = settings_for(server.url());
    settings.timeout = 1s;
    settings.data_timeout = 60s;
    crashmail::SmtpTransport transport(settings);
    std::optional<std::expected<void, Failure>> result;
    std::thread worker([&] { result = transport.deliver(sample_alert()); });
    CHECK(crashmail::testing::wait_until([&] { return server.got_data(); }, 10s));
    std::this_thread::sleep_for(1500ms); // past --timeout: still waiting
    const auto cancelled_at = std::chrono::steady_clock::now();
    transport.cancel();
    worker.join();
    CHECK(std::chrono::steady_clock::now() - cancelled_at < 3s);
    REQUIRE(result.has_value());
    REQUIRE_FALSE(result->has_value());
    CHECK(result->error().kind == Failure::Kind::transient);
    CHECK_THAT(result->error().message, Catch::Contains("cancelled: crashmail is stopping"));
}

TEST_CASE("an SMTP server that hangs up after DATA's 354 is a transient failure in words",
          "[smtp][network]") {
    ScriptedSmtpServer::Behaviour behaviour;
    behaviour.close_after_354 = true;
    ScriptedSmtpServer server(ScriptedSmtpServer::Replies{}, behaviour);
    crashmail::SmtpTransport transport(settings_for(server.url()));
    const auto result = transport.deliver(sample_alert());
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == Failure::Kind::transient);
    CHECK_THAT(result.error().message,
               Catch::StartsWith(server.url() + ": the server closed the connection ") &&
                   Catch::Contains(" bytes)"));
}

TEST_CASE("a server whose greeting is not SMTP is named so, as transient", "[smtp][network]") {
    ScriptedSmtpServer::Behaviour behaviour;
    behaviour.greeting = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n";
    behaviour.close_after_greeting = true;
    ScriptedSmtpServer server(ScriptedSmtpServer::Replies{}, behaviour);
    crashmail::SmtpTransport transport(settings_for(server.url()));
    const auto result = transport.deliver(sample_alert());
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == Failure::Kind::transient);
    CHECK(result.error().message ==
          server.url() + ": the server's greeting is not SMTP: 'HTTP/1.1 400 Bad Request'");
}
