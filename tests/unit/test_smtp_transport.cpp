#include "transport/smtp_transport.hpp"

#include <catch2/catch.hpp>
#include <string>

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
        // TLS verification failures are permanent even after a 220 to STARTTLS
        {CURLE_PEER_FAILED_VERIFICATION, 220, "220 Ready to start TLS", Kind::permanent},
        {CURLE_SSL_CACERT_BADFILE, 0, "", Kind::permanent},
        {CURLE_SSL_CERTPROBLEM, 0, "", Kind::permanent},
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
