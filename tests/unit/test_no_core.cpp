// The secret-memory policy: crashmail is not dumpable unless CRASHMAIL_ALLOW_CORE_DUMPS=1.

#include "util/no_core.hpp"

#include <catch2/catch.hpp>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace crashmail;

namespace {

// Runs `body` in a forked child (the policy cannot be undone in this process) and returns its
// exit status: 0 when every expectation held, else the number of the first one that did not.
template <typename Body> int in_child(Body body) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::_exit(body());
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

} // namespace

TEST_CASE("the process becomes non-dumpable", "[no_core]") {
    CHECK(in_child([] {
              if (!process_dumpable()) {
                  return 1; // the test runner itself must start dumpable
              }
              const CoreDumpPolicy policy = protect_from_core_dumps(false);
              if (policy.dumpable || !policy.problem.empty()) {
                  return 2;
              }
              if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) {
                  return 3;
              }
              return 0;
          }) == 0);
}

TEST_CASE("CRASHMAIL_ALLOW_CORE_DUMPS=1 keeps core dumps", "[no_core]") {
    CHECK(in_child([] {
              const CoreDumpPolicy policy = protect_from_core_dumps(true);
              return policy.dumpable && ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1 ? 0 : 1;
          }) == 0);
    CHECK(allows_core_dumps("1"));
    CHECK(allows_core_dumps("yes"));
    CHECK(allows_core_dumps("true"));
    CHECK_FALSE(allows_core_dumps(nullptr));
    CHECK_FALSE(allows_core_dumps(""));
    CHECK_FALSE(allows_core_dumps("0"));
    CHECK_FALSE(allows_core_dumps("no"));
}
