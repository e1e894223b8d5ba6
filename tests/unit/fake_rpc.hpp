#pragma once
// A fake supervisord XML-RPC interface for unit tests: answers from scripts, records calls.

#include "supervisor/rpc_client.hpp"

#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace crashmail::testing {

// A supervisord that answers from scripts and records every call. Its clock is fake: a
// "hung" call advances it by the whole time limit it was given and reports a time-out.
class FakeRpc final : public SupervisorRpc {
public:
    struct Call {
        std::string method;
        std::string name;
        std::int64_t length = 0;
        std::chrono::milliseconds timeout{0};
    };

    std::expected<LogTail, RpcError> tail_process_log(const std::string& name, LogChannel channel,
                                                      std::int64_t length,
                                                      std::chrono::milliseconds timeout) override {
        std::string method = channel == LogChannel::stderr_log ? "stderr" : "stdout";
        calls.push_back({method, name, length, timeout});
        if (auto failure = scripted_failure(method, timeout)) {
            return std::unexpected(*failure);
        }
        auto& log = channel == LogChannel::stderr_log ? stderr_log : stdout_log;
        // Like supervisord: a window that starts inside a multi-byte character is HTTP 500.
        std::int64_t size = static_cast<std::int64_t>(log.size());
        std::int64_t start = std::max<std::int64_t>(0, size - length);
        if (start > 0 &&
            (static_cast<unsigned char>(log[static_cast<std::size_t>(start)]) & 0xC0) == 0x80) {
            return std::unexpected(http(500));
        }
        return LogTail{log.substr(static_cast<std::size_t>(start)), size, start > 0};
    }
    std::expected<std::string, RpcError>
    read_main_log_tail(std::int64_t length, std::chrono::milliseconds timeout) override {
        calls.push_back({"readLog", "", length, timeout});
        if (auto failure = scripted_failure("readLog", timeout)) {
            return std::unexpected(*failure);
        }
        return main_log;
    }
    std::expected<ProcessInfo, RpcError> process_info(const std::string& name,
                                                      std::chrono::milliseconds timeout) override {
        calls.push_back({"getProcessInfo", name, 0, timeout});
        if (auto failure = scripted_failure("getProcessInfo", timeout)) {
            return std::unexpected(*failure);
        }
        ProcessInfo info;
        info.statename = "FATAL";
        info.spawnerr = spawnerr;
        return info;
    }
    std::expected<std::vector<ProcessInfo>, RpcError>
    all_process_info(std::chrono::milliseconds timeout) override {
        calls.push_back({"getAllProcessInfo", "", 0, timeout});
        if (auto failure = scripted_failure("getAllProcessInfo", timeout)) {
            return std::unexpected(*failure);
        }
        return processes;
    }
    std::string server() const override { return "unix:///run/sup.sock"; }

    static RpcError http(long status) {
        RpcError error;
        error.kind = RpcError::Kind::http;
        error.http_status = status;
        error.message = status == 401 ? "HTTP 401 Unauthorized" : "HTTP " + std::to_string(status);
        return error;
    }

    std::optional<RpcError> scripted_failure(const std::string& method,
                                             std::chrono::milliseconds timeout) {
        if (hung) {
            now += timeout;
            RpcError error;
            error.kind = RpcError::Kind::timeout;
            error.message = "no answer";
            return error;
        }
        auto found = failures.find(method);
        if (found != failures.end() && !found->second.empty()) {
            RpcError error = found->second.front();
            found->second.pop_front();
            return error;
        }
        return std::nullopt;
    }

    std::vector<Call> calls;
    std::string stderr_log;
    std::string stdout_log;
    std::string main_log;
    std::string spawnerr;
    std::vector<ProcessInfo> processes;                   // getAllProcessInfo's answer
    std::map<std::string, std::deque<RpcError>> failures; // by method, in order
    bool hung = false;
    std::chrono::steady_clock::time_point now{};
};

} // namespace crashmail::testing
