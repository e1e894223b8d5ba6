#include "supervisor/rpc_client.hpp"

#include "util/curl_handles.hpp"
#include "util/duration.hpp"
#include "util/http_status.hpp"
#include "util/text.hpp"

#include <cerrno>
#include <cstring>
#include <curl/curl.h>
#include <fmt/format.h>
#include <grp.h>
#include <memory>
#include <mutex>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace crashmail {
namespace {

constexpr std::size_t k_max_answer_bytes = 8 * 1024 * 1024;
constexpr std::size_t k_message_bytes = 300;
constexpr std::string_view k_cancelled_message = "cancelled: crashmail is stopping";

struct Answer {
    std::string body;
    bool too_large = false;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto* answer = static_cast<Answer*>(user);
    std::size_t n = size * count;
    if (answer->body.size() + n > k_max_answer_bytes) {
        answer->too_large = true;
        return 0; // aborts the transfer
    }
    answer->body.append(data, n);
    return n;
}

RpcError error(RpcError::Kind kind, std::string message) {
    RpcError result;
    result.kind = kind;
    result.message = std::move(message);
    return result;
}

// The value of member `name` as a string ("" when absent or not a string).
std::string string_member(const xmlrpc::Value& value, std::string_view name) {
    const xmlrpc::Value* member = value.member(name);
    return member != nullptr && member->as_string() != nullptr ? *member->as_string()
                                                               : std::string();
}

std::int64_t int_member(const xmlrpc::Value& value, std::string_view name) {
    const xmlrpc::Value* member = value.member(name);
    return member != nullptr && member->as_int() != nullptr ? *member->as_int() : 0;
}

} // namespace

std::string RpcError::describe(std::string_view server) const {
    if (kind == Kind::unusable) {
        return message;
    }
    return fmt::format("supervisord ({}): {}", server, message);
}

std::expected<RpcEndpoint, std::string> parse_server_url(std::string_view server_url) {
    constexpr std::string_view k_unix_scheme = "unix://";
    constexpr std::string_view k_http_scheme = "http://";
    if (server_url.starts_with(k_unix_scheme)) {
        std::string path(server_url.substr(k_unix_scheme.size()));
        if (path.empty() || path.front() != '/') {
            return std::unexpected(fmt::format(
                "SUPERVISOR_SERVER_URL '{}': the socket path must be absolute", server_url));
        }
        return RpcEndpoint{path, "http://localhost/RPC2"};
    }
    if (server_url.starts_with(k_http_scheme)) {
        std::string_view rest = server_url.substr(k_http_scheme.size());
        auto slash = rest.find('/');
        std::string_view authority = rest.substr(0, slash);
        if (authority.empty() || authority.find_first_of(" @?#") != std::string_view::npos) {
            return std::unexpected(
                fmt::format("SUPERVISOR_SERVER_URL '{}' is not http://host:port", server_url));
        }
        return RpcEndpoint{{}, fmt::format("http://{}/RPC2", authority)};
    }
    return std::unexpected(fmt::format(
        "SUPERVISOR_SERVER_URL '{}' is neither unix:///path nor http://host:port", server_url));
}

namespace {

// The name of user `uid` / group `gid` from the user database, or std::nullopt.
std::optional<std::string> user_name(uid_t uid) {
    std::vector<char> buffer(16384);
    passwd entry{};
    passwd* found = nullptr;
    if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
        return std::nullopt;
    }
    return std::string(found->pw_name);
}

std::optional<std::string> group_name(gid_t gid) {
    std::vector<char> buffer(16384);
    group entry{};
    group* found = nullptr;
    if (::getgrgid_r(gid, &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
        return std::nullopt;
    }
    return std::string(found->gr_name);
}

std::string errno_text(int error) {
    char buffer[256] = {};
    return ::strerror_r(error, buffer, sizeof buffer); // GNU: returns the text
}

} // namespace

std::string running_as() {
    const uid_t uid = ::geteuid();
    if (auto name = user_name(uid)) {
        return fmt::format("{} (uid {})", *name, uid);
    }
    return fmt::format("uid {}", uid);
}

std::string unix_socket_failure(const std::string& socket_path, std::string_view server_url,
                                int os_errno, const std::string& user) {
    const std::string path = one_line(socket_path, k_message_bytes);
    struct stat status {};
    const bool seen = ::stat(socket_path.c_str(), &status) == 0;
    if (os_errno == 0) {
        // libcurl did not say: what the path looks like now tells most of it.
        os_errno =
            seen ? (::access(socket_path.c_str(), R_OK | W_OK) != 0 ? errno : ECONNREFUSED) : errno;
    }
    switch (os_errno) {
    case EACCES:
    case EPERM: {
        std::string text = fmt::format("permission denied on {}: crashmail runs as {}", path, user);
        if (seen) {
            text +=
                fmt::format("; the socket belongs to {}:{} with mode {:04o} (chown= and chmod= in "
                            "supervisord's [unix_http_server])",
                            user_name(status.st_uid).value_or(std::to_string(status.st_uid)),
                            group_name(status.st_gid).value_or(std::to_string(status.st_gid)),
                            status.st_mode & 07777);
        }
        return text;
    }
    case ENOENT:
        return fmt::format("no socket {} (is supervisord running? SUPERVISOR_SERVER_URL={})", path,
                           one_line(server_url, k_message_bytes));
    case ECONNREFUSED:
        if (seen && !S_ISSOCK(status.st_mode)) {
            return fmt::format("nobody listens on {}: it is not a socket", path);
        }
        return fmt::format("nobody listens on {}", path);
    default:
        return fmt::format("cannot connect to {}: {}", path, errno_text(os_errno));
    }
}

std::expected<xmlrpc::Value, RpcError> interpret_answer(long status, std::string_view body) {
    if (status != 200) {
        RpcError result;
        result.kind = RpcError::Kind::http;
        result.http_status = status;
        result.message = fmt::format("HTTP {}", status);
        if (auto reason = http_reason_phrase(status); !reason.empty()) {
            result.message += fmt::format(" {}", reason);
        }
        return std::unexpected(std::move(result));
    }
    auto parsed = xmlrpc::parse_response(body);
    if (!parsed) {
        return std::unexpected(
            error(RpcError::Kind::malformed,
                  "answer is not XML-RPC: " + one_line(parsed.error().message, k_message_bytes)));
    }
    if (auto* fault = std::get_if<xmlrpc::Fault>(&*parsed)) {
        RpcError result;
        result.kind = RpcError::Kind::fault;
        result.fault_code = fault->code;
        result.message =
            fmt::format("fault {} ({})", fault->code, one_line(fault->string, k_message_bytes));
        return std::unexpected(std::move(result));
    }
    return std::get<xmlrpc::Value>(std::move(*parsed));
}

CurlSupervisorRpc::CurlSupervisorRpc(std::string server_url, RpcCredentials credentials)
    : m_server_url(std::move(server_url)), m_endpoint(parse_server_url(m_server_url)),
      m_credentials(std::move(credentials)) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::expected<xmlrpc::Value, RpcError>
CurlSupervisorRpc::call(std::string_view method, const std::vector<xmlrpc::Value>& params,
                        std::chrono::milliseconds timeout) {
    if (m_cancelled.load(std::memory_order_acquire)) {
        return std::unexpected(error(RpcError::Kind::cancelled, std::string(k_cancelled_message)));
    }
    if (!m_endpoint) {
        return std::unexpected(error(RpcError::Kind::unusable, m_endpoint.error()));
    }
    if (timeout <= std::chrono::milliseconds::zero()) {
        return std::unexpected(error(RpcError::Kind::timeout, "no time left to ask"));
    }
    curl::Easy easy(curl_easy_init());
    if (!easy) {
        return std::unexpected(error(RpcError::Kind::connect, "cannot initialise libcurl"));
    }
    CURL* curl = easy.get();
    const std::string request = xmlrpc::build_call(method, params);

    curl_slist* raw_headers = curl_slist_append(nullptr, "Content-Type: text/xml");
    if (curl_slist* grown = curl_slist_append(raw_headers, "Expect:"); grown != nullptr) {
        raw_headers = grown;
    }
    curl::Slist headers(raw_headers);

    Answer answer;
    char error_text[CURL_ERROR_SIZE] = {};
    const long timeout_ms = static_cast<long>(timeout.count());
    curl_easy_setopt(curl, CURLOPT_URL, m_endpoint->url.c_str());
    if (!m_endpoint->socket_path.empty()) {
        curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, m_endpoint->socket_path.c_str());
    }
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(curl, CURLOPT_PROXY, ""); // supervisord is local: never via a proxy
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.size()));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_text);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "crashmail/" CRASHMAIL_VERSION);
    if (!m_credentials.username.empty()) {
        curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(curl, CURLOPT_USERNAME, m_credentials.username.c_str());
        curl_easy_setopt(curl, CURLOPT_PASSWORD, m_credentials.password.c_str());
    }

    curl::abort_when(curl, &m_cancelled);

    CURLcode code = curl_easy_perform(curl);
    if (code == CURLE_ABORTED_BY_CALLBACK) {
        return std::unexpected(error(RpcError::Kind::cancelled, std::string(k_cancelled_message)));
    }
    if (code == CURLE_OPERATION_TIMEDOUT) {
        return std::unexpected(
            error(RpcError::Kind::timeout, "no answer within " + seconds_text(timeout)));
    }
    if (answer.too_large) {
        return std::unexpected(error(RpcError::Kind::malformed, "answer larger than 8 MiB"));
    }
    if (code == CURLE_COULDNT_CONNECT && !m_endpoint->socket_path.empty()) {
        // libcurl's words would name "localhost port 80"; say what is wrong with the socket.
        long os_errno = 0;
        curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
        return std::unexpected(
            error(RpcError::Kind::connect,
                  unix_socket_failure(m_endpoint->socket_path, m_server_url,
                                      static_cast<int>(os_errno), running_as())));
    }
    if (code != CURLE_OK) {
        std::string_view detail = error_text[0] != '\0'
                                      ? std::string_view(error_text)
                                      : std::string_view(curl_easy_strerror(code));
        return std::unexpected(error(RpcError::Kind::connect, one_line(detail, k_message_bytes)));
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    auto value = interpret_answer(status, answer.body);
    if (!value && value.error().kind == RpcError::Kind::http && status == 401) {
        value.error().message += m_credentials.username.empty()
                                     ? " (give SUPERVISOR_USERNAME and SUPERVISOR_PASSWORD "
                                       "in the listener's environment=)"
                                     : " (SUPERVISOR_USERNAME/SUPERVISOR_PASSWORD refused)";
    }
    return value;
}

void CurlSupervisorRpc::cancel() {
    m_cancelled.store(true, std::memory_order_release);
}

std::expected<LogTail, RpcError>
CurlSupervisorRpc::tail_process_log(const std::string& name, LogChannel channel,
                                    std::int64_t length, std::chrono::milliseconds timeout) {
    const char* method = channel == LogChannel::stderr_log ? "supervisor.tailProcessStderrLog"
                                                           : "supervisor.tailProcessStdoutLog";
    auto value =
        call(method, {xmlrpc::Value(name), xmlrpc::Value(std::int64_t{0}), xmlrpc::Value(length)},
             timeout);
    if (!value) {
        return std::unexpected(value.error());
    }
    const xmlrpc::Array* items = value->as_array();
    if (items == nullptr || items->size() != 3 || (*items)[0].as_string() == nullptr ||
        (*items)[1].as_int() == nullptr || (*items)[2].as_bool() == nullptr) {
        return std::unexpected(
            error(RpcError::Kind::malformed,
                  fmt::format("{} did not answer [text, offset, overflow]", method)));
    }
    return LogTail{*(*items)[0].as_string(), *(*items)[1].as_int(), *(*items)[2].as_bool()};
}

std::expected<std::string, RpcError>
CurlSupervisorRpc::read_main_log_tail(std::int64_t length, std::chrono::milliseconds timeout) {
    auto value = call("supervisor.readLog",
                      {xmlrpc::Value(-length), xmlrpc::Value(std::int64_t{0})}, timeout);
    if (!value) {
        return std::unexpected(value.error());
    }
    if (value->as_string() == nullptr) {
        return std::unexpected(
            error(RpcError::Kind::malformed, "supervisor.readLog did not answer a string"));
    }
    return *value->as_string();
}

namespace {

ProcessInfo process_info_of(const xmlrpc::Value& value) {
    ProcessInfo info;
    info.name = string_member(value, "name");
    info.group = string_member(value, "group");
    info.statename = string_member(value, "statename");
    info.spawnerr = string_member(value, "spawnerr");
    info.exitstatus = int_member(value, "exitstatus");
    info.pid = int_member(value, "pid");
    return info;
}

} // namespace

std::expected<ProcessInfo, RpcError>
CurlSupervisorRpc::process_info(const std::string& name, std::chrono::milliseconds timeout) {
    auto value = call("supervisor.getProcessInfo", {xmlrpc::Value(name)}, timeout);
    if (!value) {
        return std::unexpected(value.error());
    }
    if (value->as_struct() == nullptr) {
        return std::unexpected(
            error(RpcError::Kind::malformed, "supervisor.getProcessInfo did not answer a struct"));
    }
    return process_info_of(*value);
}

std::expected<std::vector<ProcessInfo>, RpcError>
CurlSupervisorRpc::all_process_info(std::chrono::milliseconds timeout) {
    auto value = call("supervisor.getAllProcessInfo", {}, timeout);
    if (!value) {
        return std::unexpected(value.error());
    }
    const xmlrpc::Array* items = value->as_array();
    if (items == nullptr) {
        return std::unexpected(error(RpcError::Kind::malformed,
                                     "supervisor.getAllProcessInfo did not answer an array"));
    }
    std::vector<ProcessInfo> out;
    out.reserve(items->size());
    for (const xmlrpc::Value& item : *items) {
        if (item.as_struct() == nullptr) {
            return std::unexpected(error(RpcError::Kind::malformed,
                                         "supervisor.getAllProcessInfo answered a non-struct"));
        }
        out.push_back(process_info_of(item));
    }
    return out;
}

} // namespace crashmail
