#include "app/self_test.hpp"

#include <catch2/catch.hpp>
#include <sysexits.h>

using namespace crashmail;

namespace {

// A channel whose deliver_to() gives a fixed answer.
struct Answering final : public Transport {
    Answering(std::string label, std::vector<std::string> to,
              std::expected<Receipt, Failure> answer)
        : m_label(std::move(label)), m_to(std::move(to)), m_answer(std::move(answer)) {}
    std::string name() const override { return m_label; }
    std::vector<std::string> recipients() const override { return m_to; }
    std::expected<void, Failure> deliver(const Alert&) override { return {}; }
    std::expected<Receipt, Failure> deliver_to(const Alert&,
                                               const std::vector<std::string>&) override {
        return m_answer;
    }
    std::string m_label;
    std::vector<std::string> m_to;
    std::expected<Receipt, Failure> m_answer;
};

SelfTestReport run(std::vector<std::unique_ptr<Transport>> channels) {
    Alert alert = make_test_alert(AlertContext{"host.example.net", ""},
                                  std::chrono::system_clock::now(), "t1");
    return run_self_test(channels, alert);
}

} // namespace

TEST_CASE("self test (--test) prints a line per recipient and the delivery's notes",
          "[self_test]") {
    Receipt receipt;
    receipt.refused = {Refusal{"b@x", Failure{Failure::Kind::permanent, "550 5.1.1 unknown"}}};
    receipt.notes = {"smtp://mx:25: sent in clear text: the server offers no STARTTLS"};
    std::vector<std::unique_ptr<Transport>> channels;
    channels.push_back(std::make_unique<Answering>(
        "smtp://mx:25", std::vector<std::string>{"a@x", "b@x"}, receipt));
    channels.push_back(
        std::make_unique<Answering>("webhook http://h/", std::vector<std::string>{}, Receipt{}));
    auto report = run(std::move(channels));
    CHECK(report.lines ==
          std::vector<std::string>{
              "ok    smtp://mx:25 (taken for 1 of 2 recipient(s))",
              "      accepted a@x",
              "      refused  b@x: 550 5.1.1 unknown (permanent)",
              "note  smtp://mx:25: sent in clear text: the server offers no STARTTLS",
              "ok    webhook http://h/",
          });
    CHECK(report.exit_code == EX_UNAVAILABLE); // a recipient refused for good
}

TEST_CASE("self test (--test) exit codes: all took it, a temporary refusal, a failure",
          "[self_test]") {
    SECTION("every recipient took it") {
        std::vector<std::unique_ptr<Transport>> channels;
        channels.push_back(std::make_unique<Answering>(
            "smtp://mx:25", std::vector<std::string>{"a@x", "b@x"}, Receipt{}));
        auto report = run(std::move(channels));
        CHECK(report.lines == std::vector<std::string>{"ok    smtp://mx:25", "      accepted a@x",
                                                       "      accepted b@x"});
        CHECK(report.exit_code == EX_OK);
    }
    SECTION("one refused for now") {
        Receipt receipt;
        receipt.refused = {Refusal{"b@x", Failure{Failure::Kind::transient, "452 full"}}};
        std::vector<std::unique_ptr<Transport>> channels;
        channels.push_back(std::make_unique<Answering>(
            "smtp://mx:25", std::vector<std::string>{"a@x", "b@x"}, receipt));
        CHECK(run(std::move(channels)).exit_code == EX_TEMPFAIL);
    }
    SECTION("nobody took it") {
        std::vector<std::unique_ptr<Transport>> channels;
        channels.push_back(std::make_unique<Answering>(
            "smtp://mx:25", std::vector<std::string>{"a@x"},
            std::unexpected(Failure{Failure::Kind::transient, "smtp://mx:25: 421 busy"})));
        auto report = run(std::move(channels));
        CHECK(report.lines == std::vector<std::string>{"error smtp://mx:25: 421 busy (transient)"});
        CHECK(report.exit_code == EX_TEMPFAIL);
    }
}
