#pragma once
// The few supervisord XML-RPC calls crashmail makes, behind an interface (tests use a fake),
// and the libcurl implementation that speaks to SUPERVISOR_SERVER_URL: unix:///path/to/sock
// or http://host:port, with HTTP Basic auth when SUPERVISOR_USERNAME is set.

#include "supervisor/xmlrpc.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

// Why a call failed, with what the server said.
struct RpcError {
    enum class Kind {
        unusable,  // SUPERVISOR_SERVER_URL is not a URL crashmail can speak to
        connect,   // no connection, or it broke (libcurl's words in `message`)
        timeout,   // no complete answer within the call's time limit
        http,      // an HTTP status other than 200 (`http_status`)
        fault,     // an XML-RPC fault (`fault_code`, e.g. 10 for BAD_NAME)
        malformed, // the answer was not the XML-RPC expected
        cancelled  // SupervisorRpc::cancel() was called: crashmail is stopping
    };
    Kind kind = Kind::connect;
    long http_status = 0;
    std::int64_t fault_code = 0;
    std::string message; // one line, e.g. "HTTP 401 Unauthorized", "fault 10: BAD_NAME: web"

    // "supervisord (unix:///run/supervisor.sock): HTTP 401 Unauthorized" — the message with
    // the server it came from.
    std::string describe(std::string_view server) const;
};

// supervisor.tailProcessStderrLog / tailProcessStdoutLog's answer.
struct LogTail {
    std::string text;        // the last bytes of the log (UTF-8)
    std::int64_t offset = 0; // the log's size
    bool overflow = false;   // the log holds more than `text`
};

// The parts of supervisor.getProcessInfo's struct crashmail uses.
struct ProcessInfo {
    std::string name;
    std::string group;
    std::string statename;
    std::string spawnerr;
    std::int64_t exitstatus = 0;
    std::int64_t pid = 0;
};

enum class LogChannel { stdout_log, stderr_log };

class SupervisorRpc {
public:
    virtual ~SupervisorRpc() = default;
    // supervisor.tailProcessStdoutLog/StderrLog(name, 0, length): the last `length` bytes
    // of the process's log. `name` is "group:process".
    virtual std::expected<LogTail, RpcError>
    tail_process_log(const std::string& name, LogChannel channel, std::int64_t length,
                     std::chrono::milliseconds timeout) = 0;
    // supervisor.readLog(-length, 0): the last `length` bytes of supervisord's own log.
    virtual std::expected<std::string, RpcError>
    read_main_log_tail(std::int64_t length, std::chrono::milliseconds timeout) = 0;
    // supervisor.getProcessInfo(name).
    virtual std::expected<ProcessInfo, RpcError>
    process_info(const std::string& name, std::chrono::milliseconds timeout) = 0;
    // supervisor.getAllProcessInfo(): every process supervisord runs.
    virtual std::expected<std::vector<ProcessInfo>, RpcError>
    all_process_info(std::chrono::milliseconds timeout) = 0;
    // Where the calls go, for messages: "unix:///run/supervisor.sock".
    virtual std::string server() const = 0;
    // Makes a call in progress return soon (within about a second) with Kind::cancelled, and
    // every later call return it at once. Thread-safe; called from another thread than the
    // calls. Default: does nothing (a call then ends within its own time limit).
    virtual void cancel() {}
};

// Credentials for supervisord's [unix_http_server]/[inet_http_server] username/password.
struct RpcCredentials {
    std::string username; // empty: no Authorization header
    std::string password;
};

// Where an endpoint URL sends requests: over a unix socket (socket_path set, url
// "http://localhost/RPC2") or TCP ("http://host:port/RPC2").
struct RpcEndpoint {
    std::string socket_path;
    std::string url;
};

// Parses SUPERVISOR_SERVER_URL: "unix:///abs/path" or "http://host[:port][/]". Returns an
// error message for anything else (https, relative socket paths, garbage).
std::expected<RpcEndpoint, std::string> parse_server_url(std::string_view server_url);

// Who this process runs as, for messages: "www-data (uid 33)", or "uid 33" when the user
// database has no name for it.
std::string running_as();

// Why connecting to supervisord's unix socket `socket_path` failed, from connect(2)'s errno
// (`os_errno`; 0 when unknown, then the path is looked at with stat(2)): EACCES "permission
// denied on PATH: crashmail runs as USER (uid N)" (with the socket's owner and mode when
// they can be seen), ENOENT "no socket PATH (is supervisord running?
// SUPERVISOR_SERVER_URL=URL)", ECONNREFUSED "nobody listens on PATH", anything else "cannot
// connect to PATH: <strerror>". `server_url` is SUPERVISOR_SERVER_URL as given, `user` what
// running_as() says.
std::string unix_socket_failure(const std::string& socket_path, std::string_view server_url,
                                int os_errno, const std::string& user);

// Turns an HTTP answer into the parsed response or an RpcError (pure; used by the client and
// the tests). `status` 200 with XML is parsed; other statuses give Kind::http.
std::expected<xmlrpc::Value, RpcError> interpret_answer(long status, std::string_view body);

// libcurl's easy interface: one handle per call (no shared state but the cancel flag; calls
// may come from any thread); no proxy (supervisord is on this machine); no signals; the
// timeout bounds connecting and the whole exchange; answers larger than 8 MiB are refused;
// cancel() aborts a call through libcurl's progress callback.
class CurlSupervisorRpc final : public SupervisorRpc {
public:
    // `server_url` is SUPERVISOR_SERVER_URL as given; an unusable one makes every call fail
    // with Kind::unusable and that reason.
    CurlSupervisorRpc(std::string server_url, RpcCredentials credentials);

    std::expected<LogTail, RpcError> tail_process_log(const std::string& name, LogChannel channel,
                                                      std::int64_t length,
                                                      std::chrono::milliseconds timeout) override;
    std::expected<std::string, RpcError>
    read_main_log_tail(std::int64_t length, std::chrono::milliseconds timeout) override;
    std::expected<ProcessInfo, RpcError> process_info(const std::string& name,
                                                      std::chrono::milliseconds timeout) override;
    std::expected<std::vector<ProcessInfo>, RpcError>
    all_process_info(std::chrono::milliseconds timeout) override;
    std::string server() const override { return m_server_url; }
    // The call in progress ends with Kind::cancelled "cancelled: crashmail is stopping"
    // within about a second; later calls fail so at once, without connecting.
    void cancel() override;

    // Sends one call and returns its value (faults, HTTP errors and malformed answers as
    // RpcError).
    std::expected<xmlrpc::Value, RpcError> call(std::string_view method,
                                                const std::vector<xmlrpc::Value>& params,
                                                std::chrono::milliseconds timeout);

private:
    std::string m_server_url;
    std::expected<RpcEndpoint, std::string> m_endpoint;
    RpcCredentials m_credentials;
    std::atomic<bool> m_cancelled{false};
};

} // namespace crashmail
