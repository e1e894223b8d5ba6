// Secrets kept out of error words: util/redact and every transport's use of it.

#include "transport/smtp_transport.hpp"
#include "transport/webhook_transport.hpp"
#include "util/redact.hpp"

#include <catch2/catch.hpp>
#include <memory>
#include <string>

using namespace crashmail;

namespace {

constexpr std::string_view k_slack =
    "https://hooks.slack.com/services/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";
constexpr std::string_view k_slack_secret = "s3cr3tW3bh00kT0k3nXYZabc";

// Answers every POST with what a server that echoes the request says.
class EchoingClient final : public HttpClient {
public:
    long status = 400;
    std::string body;
    std::optional<Failure> failure;
    std::expected<HttpResponse, Failure> post(const HttpRequest& request) override {
        if (failure) {
            return std::unexpected(*failure);
        }
        HttpResponse response;
        response.status = status;
        response.body_start = body.empty() ? "no such hook: " + request.url : body;
        return response;
    }
};

Alert some_alert() {
    Alert alert;
    alert.id = "a1";
    alert.process = "crashy";
    alert.group = "crashy";
    alert.state = "EXITED";
    alert.subject = "crashy crashed";
    return alert;
}

} // namespace

TEST_CASE("every occurrence of a secret, and its encoded forms, becomes <redacted>", "[redact]") {
    Secrets secrets;
    secrets.add("p@ss word/1");
    CHECK(secrets.redact("a p@ss word/1 b p@ss word/1") == "a <redacted> b <redacted>");
    CHECK(secrets.redact("path /x/p%40ss%20word%2F1 end") == "path /x/<redacted> end");
    CHECK(secrets.redact("lower p%40ss%20word%2f1") == "lower <redacted>");
    CHECK(secrets.redact("query ?t=p%40ss+word%2F1") == "query ?t=<redacted>");
    CHECK(secrets.redact(R"({"url":"p@ss word\/1"})") == R"({"url":"<redacted>"})");
    CHECK(secrets.redact("nothing secret here") == "nothing secret here");
}

TEST_CASE("a secret that holds another is replaced whole; short ones are not looked for",
          "[redact]") {
    Secrets secrets;
    secrets.add("abcd");
    secrets.add("xxabcdxx");
    secrets.add("400"); // too short: would redact "HTTP 400"
    CHECK(secrets.redact("HTTP 400: xxabcdxx and abcd") == "HTTP 400: <redacted> and <redacted>");
    CHECK(secrets.forms().front().size() >= secrets.forms().back().size());
}

TEST_CASE("a URL's secret parts: password, query values, token path segments", "[redact]") {
    const Secrets slack = url_secrets(k_slack);
    CHECK(slack.redact(std::string(k_slack)) ==
          "https://hooks.slack.com/services/<redacted>/<redacted>/<redacted>");
    const Secrets discord = url_secrets(
        "https://discord.com/api/webhooks/123456789012345678/AbC-dEf_GhIjKlMnOpQrStUvWxYz0123");
    CHECK(discord.redact("/api/webhooks/123456789012345678/AbC-dEf_GhIjKlMnOpQrStUvWxYz0123") ==
          "/api/webhooks/<redacted>/<redacted>");
    const Secrets query = url_secrets("https://user:hunter22@h.example/hook?key=K3yValue&v=1");
    CHECK(query.redact("user hunter22 key K3yValue v=1") ==
          "<redacted> <redacted> key <redacted> v=1");
    // Words of the path are not secrets: the message stays readable.
    const Secrets words = url_secrets("http://am.example:9093/api/v2/alerts");
    CHECK(words.empty());
    CHECK(url_path_token("T0123ABCD"));
    CHECK(url_path_token("abcdefghijklmnopqrstuvwxyz"));
    CHECK_FALSE(url_path_token("services"));
    CHECK_FALSE(url_path_token("webhooks"));
    CHECK_FALSE(url_path_token("v2"));
}

TEST_CASE("base64 is the standard alphabet with padding", "[redact]") {
    CHECK(base64("") == "");
    CHECK(base64("f") == "Zg==");
    CHECK(base64("fo") == "Zm8=");
    CHECK(base64("foo") == "Zm9v");
    CHECK(base64(std::string("\0user\0pass", 10)) == "AHVzZXIAcGFzcw==");
}

TEST_CASE("a webhook that echoes its path gets no token into the Failure", "[redact][webhook]") {
    auto client = std::make_shared<EchoingClient>();
    WebhookSettings settings;
    settings.flavor = WebhookFlavor::slack;
    settings.url = std::string(k_slack);
    WebhookTransport slack(settings, client);
    auto done = slack.deliver(some_alert());
    REQUIRE_FALSE(done.has_value());
    CHECK(done.error().kind == Failure::Kind::permanent);
    CHECK_THAT(done.error().message, Catch::Contains("HTTP 400"));
    CHECK_THAT(done.error().message, Catch::Contains("no such hook: https://hooks.slack.com/"
                                                     "services/<redacted>"));
    CHECK_THAT(done.error().message, !Catch::Contains(std::string(k_slack_secret)));
    CHECK_THAT(done.error().describe(), !Catch::Contains(std::string(k_slack_secret)));

    // A failure without an HTTP answer (curl's words) is redacted too.
    client->failure =
        Failure{Failure::Kind::transient, "slack https://hooks.slack.com/services/…: reset by " +
                                              std::string(k_slack_secret)};
    done = slack.deliver(some_alert());
    REQUIRE_FALSE(done.has_value());
    CHECK(done.error().message == "slack https://hooks.slack.com/services/…: reset by <redacted>");
}

TEST_CASE("header tokens, ${VAR} values and the HMAC key stay out of webhook errors",
          "[redact][webhook]") {
    auto client = std::make_shared<EchoingClient>();
    client->body = "bad auth 'Bearer tok-FROM-ENV-42', key hmac-key-0001, x=lit3ralSecret";
    WebhookSettings settings;
    settings.url = "https://alerts.example.com/crashmail";
    settings.headers = {"Authorization: Bearer tok-FROM-ENV-42", "X-Api: lit3ralSecret"};
    settings.secrets = {"lit3ralSecret"}; // what a ${VAR} expanded to
    settings.hmac_secret = "hmac-key-0001";
    WebhookTransport hook(settings, client);
    auto done = hook.deliver(some_alert());
    REQUIRE_FALSE(done.has_value());
    CHECK_THAT(done.error().message,
               Catch::EndsWith("bad auth '<redacted>', key <redacted>, x=<redacted>"));
}

TEST_CASE("the variables ${VAR} references name, in order, once each", "[redact][webhook]") {
    CHECK(header_variables({"Authorization: Bearer ${TOKEN}", "X-A: ${A}${TOKEN} ${B", "X: $C",
                            "X-D: ${1BAD} ${D_2}"}) ==
          std::vector<std::string>{"TOKEN", "A", "D_2"});
}

TEST_CASE("an SMTP channel knows its password and the AUTH lines that carry it", "[redact][smtp]") {
    SmtpSettings settings;
    settings.url = "smtp://mail.example.com:587";
    settings.user = "user";
    settings.password = "pass-word";
    const SmtpTransport smtp(settings);
    const Secrets& secrets = smtp.secrets();
    CHECK(secrets.redact("535 5.7.8 pass-word") == "535 5.7.8 <redacted>");
    CHECK(secrets.redact("535 AUTH PLAIN " + base64(std::string("\0user\0pass-word", 15))) ==
          "535 AUTH PLAIN <redacted>");
    CHECK(secrets.redact("334 " + base64("pass-word")) == "334 <redacted>");
}

TEST_CASE("redacted() cleans a Failure and every refusal and note of a Receipt", "[redact]") {
    Secrets secrets;
    secrets.add("T0k3nT0k3n");
    CHECK(redacted(Failure{Failure::Kind::permanent, "x T0k3nT0k3n"}, secrets).message ==
          "x <redacted>");
    Receipt receipt;
    receipt.refused.push_back({"a@b", Failure{Failure::Kind::permanent, "550 T0k3nT0k3n"}});
    receipt.notes.push_back("note T0k3nT0k3n");
    const Receipt clean = redacted(receipt, secrets);
    CHECK(clean.refused.at(0).failure.message == "550 <redacted>");
    CHECK(clean.notes.at(0) == "note <redacted>");
}
