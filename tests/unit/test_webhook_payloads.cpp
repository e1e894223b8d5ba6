#include "alert/discard_notice.hpp"
#include "silent_server.hpp"
#include "transport/http_client.hpp"
#include "transport/webhook_payloads.hpp"
#include "transport/webhook_transport.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unistd.h>

using namespace crashmail;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// 2026-11-25T21:03:10.123Z
const std::chrono::system_clock::time_point k_time =
    std::chrono::sys_days{std::chrono::year{2026} / 11 / 25} + 21h + 3min + 10s + 123ms;

Alert crash_alert() {
    Alert alert;
    alert.id = "20261125T210310.123.42.9f3c2a1b7d4e5f60";
    alert.event_name = "PROCESS_STATE_EXITED";
    alert.state = "EXITED";
    alert.process = "worker_01";
    alert.group = "grp";
    alert.from_state = "RUNNING";
    alert.pid = 4242;
    alert.expected = false;
    alert.serial = 42;
    alert.host = "web1.example.com";
    alert.time = k_time;
    alert.subject = "grp:worker_01 crashed at Wed Nov 25 22:03:10 2026";
    alert.body = "Process worker_01 in group grp exited unexpectedly (pid 4242) from state "
                 "RUNNING\nHost: web1.example.com";
    return alert;
}

std::function<std::optional<std::string>(const std::string&)>
environment(std::map<std::string, std::string> values) {
    return [values](const std::string& name) -> std::optional<std::string> {
        auto found = values.find(name);
        if (found == values.end()) {
            return std::nullopt;
        }
        return found->second;
    };
}

// Records every request and answers with a scripted response or failure.
class FakeHttpClient final : public HttpClient {
public:
    std::vector<HttpRequest> requests;
    std::expected<HttpResponse, Failure> answer = HttpResponse{200, std::nullopt, "ok"};

    std::expected<HttpResponse, Failure> post(const HttpRequest& request) override {
        requests.push_back(request);
        return answer;
    }
};

std::optional<std::string> header_value(const std::vector<std::string>& headers,
                                        std::string_view name) {
    for (const std::string& header : headers) {
        auto colon = header.find(':');
        if (colon != std::string::npos && header.substr(0, colon) == name) {
            std::string_view value = std::string_view(header).substr(colon + 1);
            while (!value.empty() && value.front() == ' ') {
                value.remove_prefix(1);
            }
            return std::string(value);
        }
    }
    return std::nullopt;
}

bool is_valid_utf8(const std::string& text) {
    try {
        (void)json(text).dump();
        return true;
    } catch (const json::exception&) {
        return false;
    }
}

} // namespace

TEST_CASE("the webhook document carries every schema field with its type", "[webhook]") {
    json document = webhook_document(crash_alert());
    const std::vector<std::string> fields = {"version",
                                             "id",
                                             "event",
                                             "state",
                                             "process",
                                             "group",
                                             "from_state",
                                             "pid",
                                             "expected",
                                             "serial",
                                             "host",
                                             "time",
                                             "subject",
                                             "message",
                                             "exit_status",
                                             "spawn_error",
                                             "log_tail",
                                             "log_source",
                                             "details_note",
                                             "kind",
                                             "occurrence",
                                             "suppressed",
                                             "story_start",
                                             "window_seconds",
                                             "resolves",
                                             "items",
                                             "discarded",
                                             "recovered_crashes",
                                             "from_log",
                                             "channel",
                                             "channel_recovered"};
    for (const std::string& field : fields) {
        INFO(field);
        CHECK(document.contains(field));
    }
    CHECK(document.size() == fields.size());
    CHECK(document["version"] == 1);
    CHECK(document["version"].is_number_integer());
    CHECK(document["id"] == "20261125T210310.123.42.9f3c2a1b7d4e5f60");
    CHECK(document["event"] == "PROCESS_STATE_EXITED");
    CHECK(document["state"] == "EXITED");
    CHECK(document["process"] == "worker_01");
    CHECK(document["group"] == "grp");
    CHECK(document["from_state"] == "RUNNING");
    CHECK(document["pid"].is_number_integer());
    CHECK(document["pid"] == 4242);
    CHECK(document["expected"].is_boolean());
    CHECK(document["expected"] == false);
    CHECK(document["serial"].is_number_unsigned());
    CHECK(document["serial"] == 42);
    CHECK(document["host"] == "web1.example.com");
    CHECK(document["time"] == "2026-11-25T21:03:10.123Z");
    CHECK(document["subject"] == crash_alert().subject);
    CHECK(document["message"] == crash_alert().body);
    CHECK(document["kind"] == "alert");
    CHECK(document["occurrence"].is_null());
    CHECK(document["suppressed"] == 0);
    CHECK(document["story_start"].is_null());
    CHECK(document["window_seconds"].is_null());
    CHECK(document["resolves"] == json::array());
    CHECK(document["items"] == json::array());
    CHECK(document["discarded"] == 0);
    CHECK(document["recovered_crashes"].is_null());
    CHECK(document["from_log"] == false);
}

TEST_CASE("unknown values in the webhook document are null, not missing", "[webhook]") {
    Alert alert = crash_alert();
    alert.pid.reset();
    alert.expected.reset();
    alert.from_state.clear();
    json document = webhook_document(alert);
    CHECK(document.at("pid").is_null());
    CHECK(document.at("expected").is_null());
    CHECK(document.at("from_state").is_null());
    CHECK(document.at("process") == "worker_01");
}

TEST_CASE("payloads serialise invalid UTF-8 as U+FFFD instead of throwing", "[webhook]") {
    Alert alert = crash_alert();
    alert.body = "bad \xff byte";
    std::string body;
    REQUIRE_NOTHROW(body = serialize_payload(webhook_document(alert)));
    CHECK(json::parse(body)["message"] == "bad \xEF\xBF\xBD byte");
    // Compact, as sent on the wire.
    CHECK(body.find('\n') == std::string::npos);
}

TEST_CASE("the Slack payload has text for Mattermost and blocks for Slack", "[webhook]") {
    Alert alert = crash_alert();
    alert.body = "exit <code> & more";
    json payload = slack_payload(alert);
    REQUIRE(payload["text"].is_string());
    CHECK_THAT(payload["text"].get<std::string>(), Catch::StartsWith(alert.subject));
    CHECK_THAT(payload["text"].get<std::string>(), Catch::Contains("exit &lt;code&gt; &amp; more"));
    REQUIRE(payload["blocks"].is_array());
    CHECK(payload["blocks"][0]["type"] == "header");
    CHECK(payload["blocks"][0]["text"]["type"] == "plain_text");
    CHECK(payload["blocks"][0]["text"]["text"] == alert.subject);
    CHECK(payload["blocks"][1]["text"]["text"] == "exit &lt;code&gt; &amp; more");
    std::string dumped = payload.dump();
    CHECK_THAT(dumped, Catch::Contains("grp:worker_01"));
    CHECK_THAT(dumped, Catch::Contains("web1.example.com"));
    CHECK_THAT(dumped, Catch::Contains("4242"));
}

TEST_CASE("Slack texts stay within block limits without splitting characters or entities",
          "[webhook]") {
    Alert alert = crash_alert();
    alert.subject = std::string(400, 'S');
    alert.body.clear();
    for (int i = 0; i < 2000; ++i) {
        alert.body += "ö<"; // 2 bytes + an entity of 4
    }
    json payload = slack_payload(alert);
    std::string header = payload["blocks"][0]["text"]["text"];
    std::string section = payload["blocks"][1]["text"]["text"];
    CHECK(header.size() <= 150);
    CHECK_THAT(header, Catch::EndsWith("…"));
    CHECK(section.size() <= 3000);
    CHECK_THAT(section, Catch::EndsWith("&lt;…") || Catch::EndsWith("ö…"));
    CHECK(is_valid_utf8(section));
    CHECK(payload["text"].get<std::string>().size() <= 4000);
}

TEST_CASE("the Discord payload stays within Discord's limits and mentions nobody", "[webhook]") {
    Alert alert = crash_alert();
    alert.subject = std::string(3000, 'x');
    alert.body.clear();
    for (int i = 0; i < 3000; ++i) {
        alert.body += "é@"; // 3 bytes each
    }
    alert.process = "@everyone";
    json payload = discord_payload(alert);
    std::string content = payload["content"];
    CHECK(content.size() <= 2000);
    REQUIRE(payload["embeds"].size() == 1);
    const json& embed = payload["embeds"][0];
    std::string description = embed["description"];
    CHECK(description.size() <= 4096);
    CHECK(is_valid_utf8(description));
    CHECK(embed["title"].get<std::string>().size() <= 256);
    CHECK(embed["timestamp"] == "2026-11-25T21:03:10.123Z");
    std::size_t total = embed["title"].get<std::string>().size() + description.size() +
                        embed["footer"]["text"].get<std::string>().size();
    for (const json& field : embed["fields"]) {
        CHECK_FALSE(field["value"].get<std::string>().empty());
        CHECK(field["value"].get<std::string>().size() <= 1024);
        total += field["name"].get<std::string>().size() + field["value"].get<std::string>().size();
    }
    CHECK(total <= 6000);
    CHECK(payload["allowed_mentions"]["parse"] == json::array());
}

TEST_CASE("a short Discord alert keeps its subject and body whole", "[webhook]") {
    json payload = discord_payload(crash_alert());
    CHECK(payload["content"] == crash_alert().subject);
    CHECK(payload["embeds"][0]["title"] == crash_alert().subject);
    CHECK(payload["embeds"][0]["description"] == crash_alert().body);
}

TEST_CASE("the Alertmanager payload is one alert with labels and annotations", "[webhook]") {
    json payload = alertmanager_payload(crash_alert());
    REQUIRE(payload.is_array());
    REQUIRE(payload.size() == 1);
    const json& alert = payload[0];
    CHECK(alert["labels"] == json{{"alertname", "ProcessCrashed"},
                                  {"host", "web1.example.com"},
                                  {"group", "grp"},
                                  {"process", "worker_01"},
                                  {"state", "EXITED"}});
    CHECK(alert["annotations"]["summary"] == crash_alert().subject);
    CHECK(alert["annotations"]["description"] == crash_alert().body);
    CHECK(alert["annotations"]["id"] == crash_alert().id);
    for (const auto& [key, value] : alert["annotations"].items()) {
        INFO(key);
        CHECK(value.is_string()); // Alertmanager rejects non-string annotations
    }
    CHECK(alert["startsAt"] == "2026-11-25T21:03:10.123Z");
    CHECK_FALSE(alert.contains("endsAt"));
}

TEST_CASE("the Alertmanager alert name follows the state", "[webhook]") {
    Alert alert = crash_alert();
    CHECK(alertmanager_alert_name(alert) == "ProcessCrashed");
    alert.expected = true;
    CHECK(alertmanager_alert_name(alert) == "ProcessExited");
    alert.state = "FATAL";
    CHECK(alertmanager_alert_name(alert) == "ProcessFatal");
    alert.state = "BACKOFF";
    CHECK(alertmanager_alert_name(alert) == "ProcessBackoff");
}

TEST_CASE("HMAC-SHA256 matches RFC 4231 test vectors", "[webhook]") {
    // RFC 4231 section 4.3 (test case 2) and 4.2 (test case 1).
    CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK(hmac_sha256_hex(std::string(20, '\x0b'), "Hi There") ==
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    CHECK(webhook_signature("Jefe", "what do ya want for nothing?") ==
          "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("webhook headers are checked and expand ${VAR} from the environment", "[webhook]") {
    auto env = environment({{"TOKEN", "s3cret"}, {"EVIL", "a\r\nX-Injected: 1"}, {"EMPTY", ""}});

    auto ok = resolve_webhook_headers(
        {"Authorization: Bearer ${TOKEN}", "X-Plain:value", "X-Dollar: $5 and ${TOKEN}!"}, env);
    REQUIRE(ok);
    CHECK(*ok == std::vector<std::string>{"Authorization: Bearer s3cret", "X-Plain: value",
                                          "X-Dollar: $5 and s3cret!"});

    auto unset = resolve_webhook_headers({"Authorization: Bearer ${NOPE}"}, env);
    REQUIRE_FALSE(unset);
    CHECK_THAT(unset.error(), Catch::Contains("NOPE") && Catch::Contains("not set"));

    auto injected = resolve_webhook_headers({"X-Token: ${EVIL}"}, env);
    REQUIRE_FALSE(injected);
    CHECK_THAT(injected.error(), Catch::Contains("CR and LF"));
    CHECK_THAT(injected.error(), !Catch::Contains("X-Injected")); // the value is not echoed

    CHECK_FALSE(resolve_webhook_headers({"X-Token: a\r\nX-Injected: 1"}, env));
    CHECK_FALSE(resolve_webhook_headers({"X-Token: a\nb"}, env));
    CHECK_FALSE(resolve_webhook_headers({"Bad Name: v"}, env));
    CHECK_FALSE(resolve_webhook_headers({"Bad(Name): v"}, env));
    CHECK_FALSE(resolve_webhook_headers({": v"}, env));
    CHECK_FALSE(resolve_webhook_headers({"NoColon"}, env));
    CHECK_FALSE(resolve_webhook_headers({"X-Empty: ${EMPTY}"}, env));
    CHECK_FALSE(resolve_webhook_headers({"X-Open: ${TOKEN"}, env));
    CHECK_FALSE(resolve_webhook_headers({"X-Bad: ${1X}"}, env));
    CHECK_FALSE(resolve_webhook_headers({"X-Ctl: a\x01z"}, env));
    CHECK(resolve_webhook_headers({}, env).value().empty());
}

TEST_CASE("webhook URLs must be absolute http or https URLs", "[webhook]") {
    CHECK(normalize_webhook_url("http://127.0.0.1:8080/hook").value() ==
          "http://127.0.0.1:8080/hook");
    CHECK(normalize_webhook_url("HTTPS://example.com").value() == "https://example.com/");
    auto ftp = normalize_webhook_url("ftp://example.com/x");
    REQUIRE_FALSE(ftp);
    CHECK_THAT(ftp.error(), Catch::Contains("http and https"));
    CHECK_FALSE(normalize_webhook_url("example.com/hook"));
    CHECK_FALSE(normalize_webhook_url("http://exa mple.com/"));
    CHECK_FALSE(normalize_webhook_url("file:///etc/passwd"));
    CHECK_FALSE(normalize_webhook_url(""));
}

TEST_CASE("the Alertmanager endpoint is /api/v2/alerts under the base URL", "[webhook]") {
    CHECK(alertmanager_alerts_url("http://am:9093").value() == "http://am:9093/api/v2/alerts");
    CHECK(alertmanager_alerts_url("http://am:9093/").value() == "http://am:9093/api/v2/alerts");
    CHECK(alertmanager_alerts_url("http://h/am/").value() == "http://h/am/api/v2/alerts");
    CHECK(alertmanager_alerts_url("http://am:9093/api/v2/alerts").value() ==
          "http://am:9093/api/v2/alerts");
    CHECK(alertmanager_alerts_url("http://am:9093/api/v2/alerts/").value() ==
          "http://am:9093/api/v2/alerts");
    CHECK_FALSE(alertmanager_alerts_url("am:9093"));
}

TEST_CASE("HTTP answers are classified as success, transient or permanent", "[webhook]") {
    const std::string url = "http://127.0.0.1:1/hook";
    CHECK(classify_http_response(200, std::nullopt, "", url));
    CHECK(classify_http_response(204, std::nullopt, "", url));

    struct Row {
        long status;
        Failure::Kind kind;
    };
    for (Row row : {Row{301, Failure::Kind::permanent}, Row{400, Failure::Kind::permanent},
                    Row{404, Failure::Kind::permanent}, Row{408, Failure::Kind::transient},
                    Row{429, Failure::Kind::transient}, Row{500, Failure::Kind::transient},
                    Row{503, Failure::Kind::transient}}) {
        INFO(row.status);
        auto result = classify_http_response(row.status, std::nullopt, "", url);
        REQUIRE_FALSE(result);
        CHECK(result.error().kind == row.kind);
        CHECK_THAT(result.error().message,
                   Catch::StartsWith(url + ": HTTP " + std::to_string(row.status)));
        CHECK_FALSE(result.error().retry_after);
    }

    auto limited = classify_http_response(429, "120", "slow down", url);
    REQUIRE_FALSE(limited);
    CHECK(limited.error().retry_after == 120s);
    CHECK(limited.error().message == url + ": HTTP 429 Too Many Requests: slow down");

    auto unavailable = classify_http_response(503, "7", "", url);
    REQUIRE_FALSE(unavailable);
    CHECK(unavailable.error().retry_after == 7s);
    CHECK(unavailable.error().message == url + ": HTTP 503 Service Unavailable");
}

TEST_CASE("failure messages keep the body start on one short line", "[webhook]") {
    std::string body = "line one\r\nline two\t" + std::string(1000, 'z');
    auto result = classify_http_response(500, std::nullopt, body, "http://h/");
    REQUIRE_FALSE(result);
    const std::string& message = result.error().message;
    CHECK_THAT(message, Catch::StartsWith("http://h/: HTTP 500 Internal Server Error: line one  "
                                          "line two "));
    CHECK(message.find_first_of("\r\n\t") == std::string::npos);
    CHECK(message.size() < 300);
    CHECK_THAT(message, Catch::EndsWith("…"));
}

TEST_CASE("Retry-After is read as seconds or as an HTTP-date", "[webhook]") {
    // Sun, 06 Nov 1994 08:49:37 GMT is 784111777.
    auto now = std::chrono::system_clock::from_time_t(784111777 - 90);
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now) == 90s);
    CHECK(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now) == 90s);
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT",
                            std::chrono::system_clock::from_time_t(784111777 + 5)) == 0s);
    CHECK(parse_retry_after(" 30 ", now) == 30s);
    CHECK_FALSE(parse_retry_after("soon", now));
    CHECK_FALSE(parse_retry_after("", now));
    auto result = classify_http_response(429, "Sun, 06 Nov 1994 08:49:37 GMT", "", "u", now);
    REQUIRE_FALSE(result);
    CHECK(result.error().retry_after == 90s);
}

TEST_CASE("libcurl errors: timeouts, TLS verification and the rest", "[webhook]") {
    CHECK(classify_curl_error(28, "Operation timed out after 2001 milliseconds", "u").kind ==
          Failure::Kind::timeout);
    // A certificate problem is retried for an hour (it may be renewed), then permanent.
    Failure untrusted = classify_curl_error(60, "SSL certificate problem", "u");
    CHECK(untrusted.kind == Failure::Kind::transient);
    CHECK(untrusted.transient_for == std::chrono::hours(1));
    CHECK(classify_curl_error(77, "error setting certificate file", "u").transient_for ==
          std::chrono::hours(1));
    CHECK(classify_curl_error(1, "Protocol not supported", "u").kind == Failure::Kind::permanent);
    CHECK_FALSE(classify_curl_error(7, "Failed to connect", "u").transient_for);
    Failure refused = classify_curl_error(7, "Failed to connect to 127.0.0.1 port 1", "http://x");
    CHECK(refused.kind == Failure::Kind::transient);
    CHECK(refused.message == "http://x: Failed to connect to 127.0.0.1 port 1");
    CHECK(classify_curl_error(6, "Could not resolve host", "u").kind == Failure::Kind::transient);
    CHECK(classify_curl_error(52, "Empty reply from server", "u").kind == Failure::Kind::transient);
    // Aborted by the cancel flag's progress callback: crashmail is stopping, try again later.
    Failure cancelled = classify_curl_error(42, "Callback aborted", "http://x");
    CHECK(cancelled.kind == Failure::Kind::transient);
    CHECK(cancelled.message == "http://x: cancelled: crashmail is stopping");
}

TEST_CASE("URLs in logs lose their secrets", "[webhook]") {
    CHECK(redact_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET") ==
          "https://hooks.slack.com/services/…");
    CHECK(redact_url("https://discord.com/api/webhooks/123/TOKEN") == "https://discord.com/api/…");
    CHECK(redact_url("http://user:pw@127.0.0.1:8080/hook?token=abc#frag") ==
          "http://127.0.0.1:8080/hook");
    CHECK(redact_url("http://am:9093") == "http://am:9093");
    CHECK(redact_url("not a url") == "<invalid URL>");
}

TEST_CASE("the secret file's first line is the secret", "[webhook]") {
    char path[] = "/tmp/crashmail-secret-XXXXXX";
    int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    std::string content = "t0p s3cret \t\r\nsecond line\n";
    REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    ::close(fd);
    CHECK(read_secret_file(path).value() == "t0p s3cret");

    fd = ::open(path, O_WRONLY | O_TRUNC);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, "  \n", 3) == 3);
    ::close(fd);
    auto empty = read_secret_file(path);
    REQUIRE_FALSE(empty);
    CHECK_THAT(empty.error(), Catch::Contains(path) && Catch::Contains("empty"));

    ::unlink(path);
    auto missing = read_secret_file(path);
    REQUIRE_FALSE(missing);
    CHECK(missing.error() == std::string(path) + ": No such file or directory");
}

TEST_CASE("a webhook posts the JSON document with id, user agent and headers", "[webhook]") {
    auto client = std::make_shared<FakeHttpClient>();
    WebhookSettings settings;
    settings.flavor = WebhookFlavor::json;
    settings.url = "http://127.0.0.1:8080/hook";
    settings.headers = {"Authorization: Bearer s3cret"};
    settings.cacert = "/etc/ca.pem";
    settings.timeout = 7s;
    WebhookTransport transport(settings, client);
    CHECK(transport.name() == "webhook http://127.0.0.1:8080/hook");

    Alert alert = crash_alert();
    REQUIRE(transport.deliver(alert));
    REQUIRE(client->requests.size() == 1);
    const HttpRequest& request = client->requests[0];
    CHECK(request.url == "http://127.0.0.1:8080/hook");
    CHECK(request.content_type == "application/json");
    CHECK(request.cacert == "/etc/ca.pem");
    CHECK(request.timeout == 7s);
    CHECK(json::parse(request.body) == webhook_document(alert));
    CHECK(header_value(request.headers, "User-Agent") == "crashmail/" CRASHMAIL_VERSION);
    CHECK(header_value(request.headers, "X-Crashmail-Id") == alert.id);
    CHECK(header_value(request.headers, "Authorization") == "Bearer s3cret");
    CHECK_FALSE(header_value(request.headers, "X-Crashmail-Signature"));
}

TEST_CASE("with a secret, the signature is the HMAC of the exact body sent", "[webhook]") {
    auto client = std::make_shared<FakeHttpClient>();
    WebhookSettings settings;
    settings.url = "http://127.0.0.1:8080/hook";
    settings.hmac_secret = "Jefe";
    WebhookTransport transport(settings, client);
    REQUIRE(transport.deliver(crash_alert()));
    REQUIRE(client->requests.size() == 1);
    const HttpRequest& request = client->requests[0];
    CHECK(header_value(request.headers, "X-Crashmail-Signature") ==
          "sha256=" + hmac_sha256_hex("Jefe", request.body));
}

TEST_CASE("Alertmanager alerts go to /api/v2/alerts under the base URL", "[webhook]") {
    auto client = std::make_shared<FakeHttpClient>();
    WebhookSettings settings;
    settings.flavor = WebhookFlavor::alertmanager;
    settings.url = "http://127.0.0.1:9093/";
    WebhookTransport transport(settings, client);
    CHECK(transport.target_url() == "http://127.0.0.1:9093/api/v2/alerts");
    CHECK(transport.name() == "alertmanager http://127.0.0.1:9093/api/…");
    REQUIRE(transport.deliver(crash_alert()));
    REQUIRE(client->requests.size() == 1);
    CHECK(client->requests[0].url == "http://127.0.0.1:9093/api/v2/alerts");
    json body = json::parse(client->requests[0].body);
    CHECK(body == alertmanager_payload(crash_alert()));
    CHECK(header_value(client->requests[0].headers, "X-Crashmail-Id") == crash_alert().id);
}

TEST_CASE("Slack and Discord transports post their own payloads", "[webhook]") {
    auto client = std::make_shared<FakeHttpClient>();
    WebhookSettings settings;
    settings.flavor = WebhookFlavor::slack;
    settings.url = "https://hooks.slack.com/services/T/B/SECRET";
    WebhookTransport slack(settings, client);
    CHECK(slack.name() == "slack https://hooks.slack.com/services/…");
    settings.flavor = WebhookFlavor::discord;
    settings.url = "https://discord.com/api/webhooks/1/TOKEN";
    WebhookTransport discord(settings, client);
    CHECK(slack.identity() == "slack https://hooks.slack.com/services/T/B/SECRET");
    CHECK(discord.identity() != slack.identity());
    REQUIRE(slack.deliver(crash_alert()));
    REQUIRE(discord.deliver(crash_alert()));
    REQUIRE(client->requests.size() == 2);
    CHECK(json::parse(client->requests[0].body) == slack_payload(crash_alert()));
    CHECK(json::parse(client->requests[1].body) == discord_payload(crash_alert()));
    CHECK(client->requests[1].url == "https://discord.com/api/webhooks/1/TOKEN");
}

TEST_CASE("a webhook reports HTTP and connection failures with their kind", "[webhook]") {
    auto client = std::make_shared<FakeHttpClient>();
    WebhookSettings settings;
    settings.url = "https://hooks.example.com/a/SECRET";
    WebhookTransport transport(settings, client);

    client->answer = HttpResponse{429, "30", "rate limited"};
    auto limited = transport.deliver(crash_alert());
    REQUIRE_FALSE(limited);
    CHECK(limited.error().kind == Failure::Kind::transient);
    CHECK(limited.error().retry_after == 30s);
    CHECK(limited.error().message ==
          "webhook https://hooks.example.com/a/…: HTTP 429 Too Many Requests: rate limited");

    client->answer = HttpResponse{404, std::nullopt, "no such hook"};
    auto missing = transport.deliver(crash_alert());
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind == Failure::Kind::permanent);
    CHECK_THAT(missing.error().message, !Catch::Contains("SECRET"));

    client->answer = std::unexpected(Failure{Failure::Kind::timeout, "x: timed out", std::nullopt});
    auto timed_out = transport.deliver(crash_alert());
    REQUIRE_FALSE(timed_out);
    CHECK(timed_out.error().kind == Failure::Kind::timeout);
}

TEST_CASE("the curl client reports a refused connection as transient", "[webhook]") {
    // Port 1 on loopback: nothing listens there on a test machine.
    CurlHttpClient client;
    HttpRequest request;
    request.url = "http://127.0.0.1:1/hook";
    request.body = "{}";
    request.timeout = 5s;
    auto response = client.post(request);
    REQUIRE_FALSE(response);
    CHECK(response.error().kind == Failure::Kind::transient);
    CHECK_THAT(response.error().message, Catch::StartsWith("http://127.0.0.1:1/hook: "));
}

TEST_CASE("cancel() ends a webhook POST waiting on a silent server, as transient",
          "[webhook][network]") {
    crashmail::testing::SilentServer server;
    WebhookSettings settings;
    settings.url = "http://" + server.address() + "/hook";
    settings.timeout = 30s; // without cancel() it would wait this long
    WebhookTransport transport(settings, std::make_shared<CurlHttpClient>());

    std::optional<std::expected<void, Failure>> result;
    const auto start = std::chrono::steady_clock::now();
    std::thread worker([&] { result = transport.deliver(crash_alert()); });
    // Connected, the POST sent, waiting for an answer; then cancelled.
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
          "webhook http://" + server.address() + "/hook: cancelled: crashmail is stopping");

    // Every later delivery fails at once, without connecting.
    const int connections = server.accepted();
    const auto again_start = std::chrono::steady_clock::now();
    auto again = transport.deliver(crash_alert());
    CHECK(std::chrono::steady_clock::now() - again_start < 5s);
    REQUIRE_FALSE(again);
    CHECK(again.error().kind == Failure::Kind::transient);
    CHECK_THAT(again.error().message, Catch::Contains("stopping"));
    std::this_thread::sleep_for(100ms);
    CHECK(server.accepted() == connections);
}

TEST_CASE("a webhook cancelled before deliver() returns at once and posts nothing", "[webhook]") {
    auto client = std::make_shared<FakeHttpClient>();
    WebhookSettings settings;
    settings.flavor = WebhookFlavor::slack;
    settings.url = "https://hooks.slack.com/services/T/B/SECRET";
    WebhookTransport transport(settings, client);
    // Before the cancel, every request carries the transport's flag, still clear.
    REQUIRE(transport.deliver(crash_alert()));
    REQUIRE(client->requests.size() == 1);
    REQUIRE(client->requests[0].cancel != nullptr);
    CHECK_FALSE(client->requests[0].cancel->load());

    transport.cancel();
    auto result = transport.deliver(crash_alert());
    REQUIRE_FALSE(result);
    CHECK(result.error().kind == Failure::Kind::transient);
    CHECK(result.error().message ==
          "slack https://hooks.slack.com/services/…: cancelled: crashmail is stopping");
    CHECK(client->requests.size() == 1);
}

TEST_CASE("the curl client does not start a request whose cancel flag is set", "[webhook]") {
    crashmail::testing::SilentServer server;
    std::atomic<bool> cancel{true};
    CurlHttpClient client;
    HttpRequest request;
    request.url = "http://" + server.address() + "/hook";
    request.body = "{}";
    request.timeout = 30s;
    request.cancel = &cancel;
    const auto start = std::chrono::steady_clock::now();
    auto response = client.post(request);
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    REQUIRE_FALSE(response);
    CHECK(response.error().kind == Failure::Kind::transient);
    CHECK(response.error().message ==
          "http://" + server.address() + "/hook: cancelled: crashmail is stopping");
    std::this_thread::sleep_for(100ms);
    CHECK(server.accepted() == 0);
}

TEST_CASE("why it crashed is in the JSON document and the Alertmanager annotations, null or "
          "absent when unknown",
          "[webhook]") {
    Alert alert = crash_alert();
    json plain = webhook_document(alert);
    CHECK(plain["exit_status"].is_null());
    CHECK(plain["log_tail"].is_null());
    CHECK(plain["details_note"].is_null());
    CHECK_FALSE(alertmanager_payload(alert)[0]["annotations"].contains("log_tail"));

    alert.exit_status = "killed by signal 11 (SIGSEGV)";
    alert.log_tail = "fatal: db unreachable\nbye ünïcode";
    alert.log_source = "stderr";
    alert.details_note = "spawn error unknown: x";
    json document = webhook_document(alert);
    CHECK(document["version"] == 1);
    CHECK(document["exit_status"] == "killed by signal 11 (SIGSEGV)");
    CHECK(document["log_tail"] == "fatal: db unreachable\nbye ünïcode");
    CHECK(document["log_source"] == "stderr");
    CHECK(document["details_note"] == "spawn error unknown: x");
    json annotations = alertmanager_payload(alert)[0]["annotations"];
    CHECK(annotations["exit_status"] == "killed by signal 11 (SIGSEGV)");
    CHECK(annotations["log_tail"] == "fatal: db unreachable\nbye ünïcode");
    CHECK(annotations["details_note"] == "spawn error unknown: x");
    CHECK_FALSE(annotations.contains("spawn_error"));
}

namespace {

Alert summary_alert() {
    Alert alert = crash_alert();
    alert.kind = AlertKind::summary;
    alert.id = "summary.1";
    alert.suppressed = 7;
    alert.window = std::chrono::minutes(10);
    alert.story_start = k_time - std::chrono::minutes(12);
    alert.subject = "grp:worker_01 crashed 7 more times in 10 minutes";
    return alert;
}

Alert recovery_alert(bool notify) {
    Alert alert = crash_alert();
    alert.kind = AlertKind::recovery;
    alert.id = "recovery.1";
    alert.state = "RUNNING";
    alert.event_name = "PROCESS_STATE_RUNNING";
    alert.expected.reset();
    alert.time = k_time + std::chrono::minutes(5);
    alert.story_start = k_time - std::chrono::minutes(12);
    alert.resolves = {{"EXITED", false}, {"FATAL", false}, {"EXITED", true}};
    alert.notify = notify;
    alert.subject = "grp:worker_01 recovered";
    return alert;
}

Alert digest_of(std::vector<Alert> items) {
    Alert digest;
    digest.kind = AlertKind::digest;
    digest.id = "d0123";
    digest.host = "web1.example.com";
    digest.time = k_time + std::chrono::minutes(6);
    digest.subject = "crashmail: 3 alerts from web1.example.com";
    digest.body = "digest body";
    digest.items = std::move(items);
    return digest;
}

} // namespace

TEST_CASE("the webhook document tells summaries and recoveries by kind with their story",
          "[webhook]") {
    json summary = webhook_document(summary_alert());
    CHECK(summary["kind"] == "summary");
    CHECK(summary["suppressed"] == 7);
    CHECK(summary["window_seconds"] == 600);
    CHECK(summary["story_start"] == "2026-11-25T20:51:10.123Z");
    Alert counted = crash_alert();
    counted.occurrence = 3;
    CHECK(webhook_document(counted)["occurrence"] == 3);
    json recovery = webhook_document(recovery_alert(true));
    CHECK(recovery["kind"] == "recovery");
    CHECK(recovery["window_seconds"].is_null());
    CHECK(recovery["resolves"] == json::array({{{"state", "EXITED"}, {"expected", false}},
                                               {{"state", "FATAL"}, {"expected", false}},
                                               {{"state", "EXITED"}, {"expected", true}}}));
}

TEST_CASE("a digest's webhook document holds each notifying item as a complete document",
          "[webhook]") {
    Alert second = crash_alert();
    second.id = "second";
    json document = webhook_document(digest_of({crash_alert(), recovery_alert(false), second}));
    CHECK(document["kind"] == "digest");
    CHECK(document["process"].is_null());
    CHECK(document["state"].is_null());
    REQUIRE(document["items"].size() == 2); // the recovery is for Alertmanager only
    CHECK(document["items"][0] == webhook_document(crash_alert()));
    CHECK(document["items"][1]["id"] == "second");
    CHECK(document["items"][1]["version"] == 1);
}

TEST_CASE("an Alertmanager summary fires the event's alert with the suppressed count",
          "[webhook]") {
    json payload = alertmanager_payload(summary_alert());
    REQUIRE(payload.size() == 1);
    CHECK(payload[0]["labels"] == alertmanager_payload(crash_alert())[0]["labels"]);
    CHECK(payload[0]["annotations"]["suppressed"] == "7");
    CHECK(payload[0]["annotations"]["summary"] == summary_alert().subject);
    CHECK_FALSE(payload[0].contains("endsAt"));
}

TEST_CASE("an Alertmanager recovery resolves each alert it ends with the same labels",
          "[webhook]") {
    json payload = alertmanager_payload(recovery_alert(false));
    REQUIRE(payload.size() == 3);
    CHECK(payload[0]["labels"] == alertmanager_payload(crash_alert())[0]["labels"]);
    CHECK(payload[1]["labels"] == json{{"alertname", "ProcessFatal"},
                                       {"host", "web1.example.com"},
                                       {"group", "grp"},
                                       {"process", "worker_01"},
                                       {"state", "FATAL"}});
    CHECK(payload[2]["labels"]["alertname"] == "ProcessExited");
    CHECK(payload[2]["labels"]["state"] == "EXITED");
    for (const json& alert : payload) {
        CHECK(alert["startsAt"] == "2026-11-25T20:51:10.123Z");
        CHECK(alert["endsAt"] == "2026-11-25T21:08:10.123Z");
        for (const auto& [key, value] : alert["annotations"].items()) {
            INFO(key);
            CHECK(value.is_string());
        }
    }
    Alert unknown_start = recovery_alert(false);
    unknown_start.story_start = {};
    CHECK(alertmanager_payload(unknown_start)[0]["startsAt"] == "2026-11-25T21:08:10.123Z");
}

TEST_CASE("an Alertmanager digest posts every item's alerts in one array", "[webhook]") {
    json payload =
        alertmanager_payload(digest_of({crash_alert(), summary_alert(), recovery_alert(false)}));
    REQUIRE(payload.size() == 5);
    CHECK(payload[0]["annotations"]["id"] == crash_alert().id);
    CHECK(payload[1]["annotations"]["id"] == "summary.1");
    CHECK(payload[4]["annotations"]["id"] == "recovery.1");
    CHECK(payload[4].contains("endsAt"));
}

TEST_CASE("channels skip messages that do not notify but Alertmanager takes them all",
          "[webhook]") {
    auto client = std::make_shared<FakeHttpClient>();
    WebhookSettings plain;
    plain.url = "http://127.0.0.1:9/hook";
    WebhookTransport webhook(plain, client);
    WebhookSettings am = plain;
    am.flavor = WebhookFlavor::alertmanager;
    WebhookTransport alertmanager(am, client);
    CHECK(webhook.wants(crash_alert()));
    CHECK_FALSE(webhook.wants(recovery_alert(false)));
    CHECK(webhook.wants(recovery_alert(true)));
    CHECK(alertmanager.wants(recovery_alert(false)));
    CHECK_FALSE(webhook.wants(digest_of({recovery_alert(false)})));
    CHECK(webhook.wants(digest_of({recovery_alert(false), crash_alert()})));
    CHECK(alertmanager.wants(digest_of({recovery_alert(false)})));
}

TEST_CASE("Slack and Discord show a digest's count and host and stay within limits", "[webhook]") {
    std::vector<Alert> items;
    for (int i = 0; i < 200; ++i) {
        Alert item = crash_alert();
        item.id = "item" + std::to_string(i);
        item.log_tail = std::string(400, 'x');
        items.push_back(item);
    }
    Alert digest = digest_of(items);
    digest.body = std::string(50000, 'b');
    json slack = slack_payload(digest);
    CHECK(slack["text"].get<std::string>().size() <= 4000);
    std::string fields = slack["blocks"][2].dump();
    CHECK(fields.find("*Alerts*\\n200") != std::string::npos);
    CHECK(fields.find("*Process*") == std::string::npos);
    json discord = discord_payload(digest);
    const json& embed = discord["embeds"][0];
    CHECK(embed["description"].get<std::string>().size() <= 4096);
    CHECK(embed.dump().size() < 6000);
    CHECK(embed["fields"].size() == 2);
    CHECK(discord_payload(recovery_alert(true))["embeds"][0]["color"] != embed["color"]);
}

namespace {

Alert dropped_alert(bool recoverable) {
    DiscardNotices notices(600s);
    DiscardReport report;
    report.discarded = 280;
    if (recoverable) {
        report.recovered = std::map<std::string, std::uint64_t>{{"web", 200}, {"workers:w1", 75}};
    } else {
        report.problem = "supervisord's log cannot be read: HTTP 401 Unauthorized";
    }
    auto notice = notices.add(report, std::chrono::system_clock::time_point(1764000000s));
    REQUIRE(notice);
    return discard_alert(*notice, AlertContext{"web1.example.com", ""}, "crashmail",
                         std::chrono::system_clock::time_point(1764000000s), "n0123456789abcdef");
}

} // namespace

TEST_CASE("a dropped notice in JSON: kind dropped, the counts, no process", "[webhook][discards]") {
    json document = webhook_document(dropped_alert(true));
    CHECK(document["kind"] == "dropped");
    CHECK(document["discarded"] == 280);
    CHECK(document["recovered_crashes"] == 275);
    CHECK(document["from_log"] == false);
    for (const char* field :
         {"event", "state", "process", "group", "from_state", "pid", "expected"}) {
        INFO(field);
        CHECK(document[field].is_null());
    }
    CHECK(document["subject"] ==
          "supervisord discarded 280 events meant for crashmail on web1.example.com");
    CHECK(webhook_document(dropped_alert(false))["recovered_crashes"].is_null());
}

TEST_CASE("a dropped notice is its own Alertmanager alert that resolves itself",
          "[webhook][discards]") {
    json alerts = alertmanager_payload(dropped_alert(true));
    REQUIRE(alerts.size() == 1);
    CHECK(alerts[0]["labels"] ==
          json({{"alertname", "CrashmailEventsDiscarded"}, {"host", "web1.example.com"}}));
    CHECK(alerts[0]["annotations"]["discarded"] == "280");
    CHECK(alerts[0]["annotations"]["recovered_crashes"] == "275");
    CHECK(alerts[0]["startsAt"] == "2025-11-24T16:00:00.000Z");
    CHECK(alerts[0]["endsAt"] == "2025-11-24T17:00:00.000Z");
    CHECK_FALSE(
        alertmanager_payload(dropped_alert(false))[0]["annotations"].contains("recovered_crashes"));
}

TEST_CASE("Slack and Discord show a dropped notice's counts", "[webhook][discards]") {
    std::string slack = serialize_payload(slack_payload(dropped_alert(true)));
    CHECK(slack.find("*Discarded*\\n280") != std::string::npos);
    CHECK(slack.find("275 crash(es)") != std::string::npos);
    json discord = discord_payload(dropped_alert(false));
    bool found = false;
    for (const json& field : discord["embeds"][0]["fields"]) {
        if (field["name"] == "Recovered") {
            found = true;
            CHECK(field["value"] == "not recoverable");
        }
    }
    CHECK(found);
}
