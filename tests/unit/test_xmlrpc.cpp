#include "supervisor/rpc_client.hpp"
#include "supervisor/xmlrpc.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace crashmail;
using namespace crashmail::xmlrpc;

namespace {

// supervisord 4.2.5's answer to tailProcessStderrLog('crasher:crasher', 0, 30), byte for byte.
constexpr std::string_view k_tail_answer = "<?xml version='1.0'?>\n"
                                           "<methodResponse>\n"
                                           "<params>\n"
                                           "<param>\n"
                                           "<value><array><data>\n"
                                           "<value><string>tal: db unreachable ünïcode\n"
                                           "</string></value>\n"
                                           "<value><int>32</int></value>\n"
                                           "<value><boolean>1</boolean></value>\n"
                                           "</data></array></value>\n"
                                           "</param>\n"
                                           "</params>\n"
                                           "</methodResponse>\n";

// supervisord 4.2.5's fault for a grouped process asked by its bare name.
constexpr std::string_view k_bad_name = "<?xml version='1.0'?>\n"
                                        "<methodResponse>\n"
                                        "<fault>\n"
                                        "<value><struct>\n"
                                        "<member>\n"
                                        "<name>faultCode</name>\n"
                                        "<value><int>10</int></value>\n"
                                        "</member>\n"
                                        "<member>\n"
                                        "<name>faultString</name>\n"
                                        "<value><string>BAD_NAME: worker_00</string></value>\n"
                                        "</member>\n"
                                        "</struct></value>\n"
                                        "</fault>\n"
                                        "</methodResponse>\n";

std::string response(std::string_view value) {
    return "<?xml version='1.0'?><methodResponse><params><param><value>" + std::string(value) +
           "</value></param></params></methodResponse>";
}

Value parsed_value(std::string_view value) {
    auto parsed = parse_response(response(value));
    REQUIRE(parsed);
    REQUIRE(std::holds_alternative<Value>(*parsed));
    return std::get<Value>(*parsed);
}

std::string parse_error(std::string_view text) {
    auto parsed = parse_response(text);
    REQUIRE_FALSE(parsed);
    return parsed.error().message;
}

} // namespace

TEST_CASE("a real tail answer parses into text, offset and overflow", "[xmlrpc]") {
    auto parsed = parse_response(k_tail_answer);
    REQUIRE(parsed);
    const Value& value = std::get<Value>(*parsed);
    const Array* items = value.as_array();
    REQUIRE(items != nullptr);
    REQUIRE(items->size() == 3);
    CHECK(*(*items)[0].as_string() == "tal: db unreachable ünïcode\n");
    CHECK(*(*items)[1].as_int() == 32);
    CHECK(*(*items)[2].as_bool() == true);
}

TEST_CASE("a real fault parses into its code and string", "[xmlrpc]") {
    auto parsed = parse_response(k_bad_name);
    REQUIRE(parsed);
    REQUIRE(std::holds_alternative<Fault>(*parsed));
    CHECK(std::get<Fault>(*parsed).code == 10);
    CHECK(std::get<Fault>(*parsed).string == "BAD_NAME: worker_00");
}

TEST_CASE("every scalar type parses", "[xmlrpc]") {
    CHECK(*parsed_value("<int>-7</int>").as_int() == -7);
    CHECK(*parsed_value("<i4> 42 </i4>").as_int() == 42);
    CHECK(*parsed_value("<i8>9007199254740993</i8>").as_int() == 9007199254740993);
    CHECK(*parsed_value("<boolean>0</boolean>").as_bool() == false);
    CHECK(std::get<double>(parsed_value("<double>2.5</double>").data) == 2.5);
    CHECK(*parsed_value("<string>a &amp; b &lt;c&gt; &#233;</string>").as_string() ==
          "a & b <c> é");
    CHECK(*parsed_value("untyped text").as_string() == "untyped text");
    CHECK(*parsed_value("<string></string>").as_string() == "");
    CHECK(std::holds_alternative<std::monostate>(parsed_value("<nil/>").data));
}

TEST_CASE("whitespace-only strings are kept, not dropped", "[xmlrpc]") {
    CHECK(*parsed_value("<string>\n\n  </string>").as_string() == "\n\n  ");
    CHECK(*parsed_value("<string><![CDATA[<raw>]]></string>").as_string() == "<raw>");
}

TEST_CASE("structs and nested arrays parse in document order", "[xmlrpc]") {
    Value value =
        parsed_value("<struct>"
                     "<member><name>name</name><value><string>web</string></value></member>"
                     "<member><name>pid</name><value><int>0</int></value></member>"
                     "<member><name>list</name><value><array><data>"
                     "<value><array><data><value>x</value></data></array></value>"
                     "</data></array></value></member>"
                     "</struct>");
    const Struct* members = value.as_struct();
    REQUIRE(members != nullptr);
    REQUIRE(members->size() == 3);
    CHECK((*members)[0].first == "name");
    CHECK(*value.member("name")->as_string() == "web");
    CHECK(*value.member("pid")->as_int() == 0);
    CHECK(*(*value.member("list")->as_array())[0].as_array()->at(0).as_string() == "x");
    CHECK(value.member("nope") == nullptr);
    CHECK(parsed_value("<int>1</int>").member("name") == nullptr);
}

TEST_CASE("malformed answers are errors that say what is wrong", "[xmlrpc]") {
    CHECK_THAT(parse_error("<methodResponse><params>"), Catch::StartsWith("not XML"));
    CHECK_THAT(parse_error(""), Catch::Contains("not XML"));
    CHECK(parse_error("<html><body>500</body></html>") == "no <methodResponse>");
    CHECK_THAT(parse_error(response("<int>seven</int>")),
               Catch::Contains("'seven' is not a number"));
    CHECK_THAT(parse_error(response("<int>99999999999999999999</int>")),
               Catch::Contains("is not a number"));
    CHECK_THAT(parse_error(response("<boolean>yes</boolean>")), Catch::Contains("not 0 or 1"));
    CHECK_THAT(parse_error(response("<blob>x</blob>")),
               Catch::Contains("unknown value type <blob>"));
    CHECK_THAT(parse_error(response("<int>1</int><int>2</int>")),
               Catch::Contains("more than one type"));
    CHECK_THAT(parse_error("<methodResponse><params></params></methodResponse>"),
               Catch::Contains("expected one <param>"));
    CHECK_THAT(parse_error("<methodResponse/>"), Catch::Contains("neither <params> nor <fault>"));
    CHECK_THAT(parse_error("<methodResponse><fault><value><struct></struct></value></fault>"
                           "</methodResponse>"),
               Catch::Contains("faultCode"));
    CHECK_THAT(parse_error(response("<array><value>1</value></array>")),
               Catch::Contains("<array> without <data>"));
}

TEST_CASE("deep nesting is refused, not recursed into without bound", "[xmlrpc]") {
    std::string value = "<int>1</int>";
    for (int i = 0; i < 200; ++i) {
        value = "<array><data><value>" + value + "</value></data></array>";
    }
    CHECK_THAT(parse_error(response(value)), Catch::Contains("nested too deeply"));
}

TEST_CASE("a method call escapes its strings", "[xmlrpc]") {
    std::string call =
        build_call("supervisor.tailProcessStderrLog", {Value("grp:a&b <c> wörker"), Value(0),
                                                       Value(std::int64_t{-65536}), Value(true)});
    CHECK_THAT(call, Catch::StartsWith("<?xml version=\"1.0\"?>"));
    CHECK_THAT(call, Catch::Contains("<methodName>supervisor.tailProcessStderrLog</methodName>"));
    CHECK_THAT(call, Catch::Contains("<string>grp:a&amp;b &lt;c&gt; wörker</string>"));
    CHECK_THAT(call, Catch::Contains("<int>-65536</int>"));
    CHECK_THAT(call, Catch::Contains("<boolean>1</boolean>"));
    CHECK(call.find("<?xml", 1) == std::string::npos); // one declaration
    CHECK(call.find('\n', 30) == std::string::npos);   // one line after it
}

TEST_CASE("HTTP answers become values or errors that carry the server's words", "[xmlrpc]") {
    auto ok = interpret_answer(200, k_tail_answer);
    REQUIRE(ok);
    CHECK(ok->as_array()->size() == 3);

    auto fault = interpret_answer(200, k_bad_name);
    REQUIRE_FALSE(fault);
    CHECK(fault.error().kind == RpcError::Kind::fault);
    CHECK(fault.error().fault_code == 10);
    CHECK(fault.error().message == "fault 10 (BAD_NAME: worker_00)");
    CHECK(fault.error().describe("unix:///run/s.sock") ==
          "supervisord (unix:///run/s.sock): fault 10 (BAD_NAME: worker_00)");

    auto unauthorized = interpret_answer(401, "<html>Unauthorized</html>");
    REQUIRE_FALSE(unauthorized);
    CHECK(unauthorized.error().kind == RpcError::Kind::http);
    CHECK(unauthorized.error().http_status == 401);
    CHECK(unauthorized.error().message == "HTTP 401 Unauthorized");

    auto garbage = interpret_answer(200, "<html>");
    REQUIRE_FALSE(garbage);
    CHECK(garbage.error().kind == RpcError::Kind::malformed);
    CHECK_THAT(garbage.error().message, Catch::StartsWith("answer is not XML-RPC: "));
}

TEST_CASE("SUPERVISOR_SERVER_URL: unix sockets and http, nothing else", "[xmlrpc]") {
    auto unix_socket = parse_server_url("unix:///tmp/sup dir/sup.sock");
    REQUIRE(unix_socket);
    CHECK(unix_socket->socket_path == "/tmp/sup dir/sup.sock");
    CHECK(unix_socket->url == "http://localhost/RPC2");

    auto tcp = parse_server_url("http://127.0.0.1:9001");
    REQUIRE(tcp);
    CHECK(tcp->socket_path.empty());
    CHECK(tcp->url == "http://127.0.0.1:9001/RPC2");
    CHECK(parse_server_url("http://localhost:9001/")->url == "http://localhost:9001/RPC2");

    CHECK_FALSE(parse_server_url("https://host:9001"));
    CHECK_FALSE(parse_server_url("unix://relative.sock"));
    CHECK_FALSE(parse_server_url("http://"));
    CHECK_FALSE(parse_server_url("http://user@host:1"));
    CHECK_THAT(parse_server_url("").error(), Catch::Contains("neither unix:///path nor"));
}

TEST_CASE("an unusable server URL makes every call fail with the reason", "[xmlrpc]") {
    CurlSupervisorRpc rpc("ftp://example", {});
    auto tail =
        rpc.tail_process_log("a:a", LogChannel::stderr_log, 100, std::chrono::milliseconds(100));
    REQUIRE_FALSE(tail);
    CHECK(tail.error().kind == RpcError::Kind::unusable);
    CHECK_THAT(tail.error().describe(rpc.server()), Catch::Contains("'ftp://example'"));
}

TEST_CASE("a missing socket is a connection error, not a hang", "[xmlrpc]") {
    CurlSupervisorRpc rpc("unix:///nonexistent/crashmail-test.sock", {});
    auto info = rpc.process_info("a:a", std::chrono::milliseconds(2000));
    REQUIRE_FALSE(info);
    CHECK(info.error().kind == RpcError::Kind::connect);
    CHECK_FALSE(info.error().message.empty());
}

// ---- supervisord's unix socket: why a connection failed, in words -------------------------

namespace {

namespace fs = std::filesystem;

// A directory anybody may enter (so that only a socket's own mode can refuse), removed at
// the end of the test.
class SocketDir {
public:
    SocketDir() {
        std::string pattern = (fs::temp_directory_path() / "crashmail-sock-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        m_path = pattern;
        fs::permissions(m_path, fs::perms::owner_all | fs::perms::group_read |
                                    fs::perms::group_exec | fs::perms::others_read |
                                    fs::perms::others_exec);
    }
    SocketDir(const SocketDir&) = delete;
    SocketDir& operator=(const SocketDir&) = delete;
    ~SocketDir() {
        std::error_code ignored;
        fs::remove_all(m_path, ignored);
    }
    std::string operator/(const std::string& name) const { return (m_path / name).string(); }

private:
    fs::path m_path;
};

// A unix socket bound at `path`; listening when `listen` is true, else closed at once (the
// file stays: nobody listens on it). Returns the fd, or -1 when closed.
int bind_socket(const std::string& path, bool listen) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof address.sun_path);
    path.copy(address.sun_path, path.size());
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    if (listen) {
        REQUIRE(::listen(fd, 4) == 0);
        return fd;
    }
    ::close(fd);
    return -1;
}

std::string connect_error(const std::string& server_url) {
    CurlSupervisorRpc rpc(server_url, {});
    auto info = rpc.process_info("a:a", std::chrono::milliseconds(2000));
    REQUIRE_FALSE(info);
    CHECK(info.error().kind == RpcError::Kind::connect);
    return info.error().message;
}

// connect_error(server_url) as user nobody (uid 65534, gid 65534), in a child process: the
// tests run as root, whom no permission stops.
std::string connect_error_as_nobody(const std::string& server_url) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(fds[0]);
        std::string answer = "could not become nobody";
        if (::setgroups(0, nullptr) == 0 && ::setresgid(65534, 65534, 65534) == 0 &&
            ::setresuid(65534, 65534, 65534) == 0) {
            CurlSupervisorRpc rpc(server_url, {});
            auto info = rpc.process_info("a:a", std::chrono::milliseconds(2000));
            answer = info ? "connected" : info.error().message;
        }
        [[maybe_unused]] ssize_t ignored = ::write(fds[1], answer.data(), answer.size());
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string answer;
    char buffer[1024];
    for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) {
        answer.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    return answer;
}

} // namespace

TEST_CASE("a missing socket says so and names SUPERVISOR_SERVER_URL", "[xmlrpc][socket]") {
    SocketDir dir;
    const std::string path = dir / "supervisor.sock";
    const std::string message = connect_error("unix://" + path);
    CHECK(message == "no socket " + path +
                         " (is supervisord running? SUPERVISOR_SERVER_URL=unix://" + path + ")");
    CHECK_THAT(message, !Catch::Contains("localhost port 80"));
}

TEST_CASE("a socket nobody listens on says so", "[xmlrpc][socket]") {
    SocketDir dir;
    const std::string path = dir / "stale.sock";
    bind_socket(path, false);
    CHECK(connect_error("unix://" + path) == "nobody listens on " + path);

    const std::string file = dir / "plain-file";
    std::FILE* created = std::fopen(file.c_str(), "w");
    REQUIRE(created != nullptr);
    std::fclose(created);
    CHECK(connect_error("unix://" + file) == "nobody listens on " + file + ": it is not a socket");
}

TEST_CASE("a socket crashmail may not use names the user crashmail runs as", "[xmlrpc][socket]") {
    SocketDir dir;
    const std::string path = dir / "supervisor.sock";
    const int listening = bind_socket(path, true);
    REQUIRE(::chmod(path.c_str(), 0700) == 0);
    const std::string url = "unix://" + path;
    std::string message;
    if (::geteuid() == 0) {
        message = connect_error_as_nobody(url);
        CHECK_THAT(message, Catch::StartsWith("permission denied on " + path +
                                              ": crashmail runs as nobody (uid 65534)"));
    } else {
        message = connect_error(url);
        CHECK_THAT(message,
                   Catch::StartsWith("permission denied on " + path + ": crashmail runs as "));
    }
    CHECK_THAT(message, Catch::Contains("with mode 0700 (chown= and chmod= in supervisord's "
                                        "[unix_http_server])"));
    ::close(listening);
}

TEST_CASE("unix_socket_failure's words for each errno", "[xmlrpc][socket]") {
    const std::string gone = "/nonexistent/crashmail/supervisor.sock";
    const std::string user = "www-data (uid 33)";
    CHECK(unix_socket_failure(gone, "unix://" + gone, EACCES, user) ==
          "permission denied on " + gone + ": crashmail runs as www-data (uid 33)");
    CHECK(unix_socket_failure(gone, "unix://" + gone, ENOENT, user) ==
          "no socket " + gone + " (is supervisord running? SUPERVISOR_SERVER_URL=unix://" + gone +
              ")");
    CHECK(unix_socket_failure(gone, "unix://" + gone, ECONNREFUSED, user) ==
          "nobody listens on " + gone);
    CHECK(unix_socket_failure(gone, "unix://" + gone, ENOTDIR, user) ==
          "cannot connect to " + gone + ": Not a directory");
    // Unknown errno: the path is looked at.
    CHECK(unix_socket_failure(gone, "unix://" + gone, 0, user) ==
          "no socket " + gone + " (is supervisord running? SUPERVISOR_SERVER_URL=unix://" + gone +
              ")");
    CHECK_THAT(running_as(), Catch::Matches(".*\\(uid [0-9]+\\)|uid [0-9]+"));
}
