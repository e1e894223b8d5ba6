// --cacert checked at start-up: a real PEM certificate (tests/fixtures/cacert-localhost.pem,
// made by `openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost`) and
// files that are missing, unreadable, directories or not certificates.

#include "app/channels.hpp"
#include "util/cacert.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <iterator>
#include <string>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

using namespace crashmail;

namespace {

namespace fs = std::filesystem;

const fs::path k_certificate = fs::path(CRASHMAIL_FIXTURES) / "cacert-localhost.pem";

// The public key of that certificate: PEM, but no certificate.
constexpr const char* k_public_key =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1slqxaiCu6CaCQr19nPQ\n"
    "q5fIZ0+KYwj3EUHqEqoGHDHJJM07MUCzZMasXGJKrU7Zd2JrlYWp0kYhlVIR9C4S\n"
    "w51ztAIehjo6A2dW6SGjuMTvALsogw7Yg6dTF0xICDqZVXM+XoK2EAUwX54JDfvM\n"
    "pXOVSfbF5Jh36SlGceuOsw/x+cKC/8grxFvZoaRtQ7vXSD2L96/PL4Wpb33bSCWy\n"
    "keXQawepa5rkkVXvKAeSxcOffjfi/CiGzRTMN6nmz7l372wwKG7L6JCzXqWcEczq\n"
    "91ntXJIx70Bmvho7iWuoWeq/Jp1/IlUgP3gcgTzCTD7M24u2dxegeRwgFg85g7qS\n"
    "dQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "crashmail-cacert-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        m_path = pattern;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(m_path, ignored);
    }
    fs::path path() const { return m_path; }
    fs::path write(const std::string& name, const std::string& text) const {
        const fs::path file = m_path / name;
        std::ofstream(file, std::ios::binary) << text;
        return file;
    }

private:
    fs::path m_path;
};

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// check_cacert(path)'s error as user nobody (uid 65534): a child process drops root and
// writes the answer into a pipe. Root reads every file, so only this shows EACCES.
std::string error_as_nobody(const std::string& path) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(fds[0]);
        std::string answer = "could not become nobody";
        if (::setgroups(0, nullptr) == 0 && ::setresgid(65534, 65534, 65534) == 0 &&
            ::setresuid(65534, 65534, 65534) == 0) {
            auto checked = check_cacert(path);
            answer = checked ? "ok" : checked.error();
        }
        [[maybe_unused]] ssize_t ignored = ::write(fds[1], answer.data(), answer.size());
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string answer;
    char buffer[512];
    for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) {
        answer.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    return answer;
}

} // namespace

TEST_CASE("a PEM file with certificates is accepted and they are counted", "[cacert]") {
    auto one = check_cacert(k_certificate.string());
    REQUIRE(one);
    CHECK(*one == 1);

    TempDir dir;
    const std::string pem = read_text(k_certificate);
    // A bundle, with text between the blocks and a key that is not a certificate.
    auto bundle = dir.write("bundle.pem", "# my CAs\n" + pem + k_public_key + "\n" + pem);
    auto two = check_cacert(bundle.string());
    REQUIRE(two);
    CHECK(*two == 2);
}

TEST_CASE("a missing, unreadable or directory --cacert says why", "[cacert]") {
    TempDir dir;
    CHECK(check_cacert((dir.path() / "nope.pem").string()).error() == "no such file");
    CHECK(check_cacert(dir.path().string()).error() == "is a directory");
    CHECK(check_cacert((dir.path() / "nope" / "x.pem").string()).error() == "no such file");

    auto locked = dir.write("locked.pem", read_text(k_certificate));
    fs::permissions(locked, fs::perms::none);
    if (::geteuid() == 0) {
        CHECK(error_as_nobody(locked.string()) == "permission denied");
    } else {
        CHECK(check_cacert(locked.string()).error() == "permission denied");
    }
}

TEST_CASE("a --cacert file without a PEM certificate is refused", "[cacert]") {
    TempDir dir;
    const char* expected = "no PEM certificate in it";
    CHECK(check_cacert(dir.write("empty.pem", "").string()).error() == expected);
    CHECK(check_cacert(dir.write("text.pem", "not a certificate\n").string()).error() == expected);
    CHECK(check_cacert(dir.write("key.pem", k_public_key).string()).error() == expected);
    // DER (binary) is not PEM either.
    CHECK(check_cacert(dir.write("der.pem", std::string("\x30\x82\x03\x0b\x30\x82", 6)).string())
              .error() == expected);
}

TEST_CASE("a --cacert file with a damaged certificate is refused with OpenSSL's reason",
          "[cacert]") {
    TempDir dir;
    std::string pem = read_text(k_certificate);
    const auto body = pem.find('\n') + 1;
    pem.replace(body, 40, std::string(40, '!')); // not base64
    auto checked = check_cacert(dir.write("bad.pem", pem).string());
    REQUIRE_FALSE(checked);
    CHECK_THAT(checked.error(), Catch::StartsWith("bad PEM certificate data: "));

    // A certificate cut in the middle: its BEGIN line has no END line.
    std::string cut = read_text(k_certificate);
    cut.resize(cut.size() / 2);
    auto truncated = check_cacert(dir.write("cut.pem", cut).string());
    REQUIRE_FALSE(truncated);
    CHECK_THAT(truncated.error(), Catch::StartsWith("bad PEM certificate data: "));
}

TEST_CASE("channels refuse an unusable --cacert at start-up with exit 78", "[cacert][channels]") {
    Options options;
    options.webhooks = {"https://hooks.example.com/x"};
    auto no_env = [](const std::string&) { return std::optional<std::string>(); };

    options.cacert = "/nonexistent/crashmail-ca.pem";
    auto missing = make_channels(options, "web1.example.com", no_env);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().exit_code == EX_CONFIG);
    CHECK(missing.error().message == "--cacert /nonexistent/crashmail-ca.pem: no such file");

    TempDir dir;
    options.cacert = dir.write("x.pem", "hello\n").string();
    auto not_pem = make_channels(options, "web1.example.com", no_env);
    REQUIRE_FALSE(not_pem);
    CHECK(not_pem.error().exit_code == EX_CONFIG);
    CHECK(not_pem.error().message == "--cacert " + options.cacert + ": no PEM certificate in it");

    options.cacert = k_certificate.string();
    auto fine = make_channels(options, "web1.example.com", no_env);
    REQUIRE(fine);
    CHECK(fine->size() == 1);
}
