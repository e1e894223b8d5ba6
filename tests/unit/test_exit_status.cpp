#include "supervisor/exit_status.hpp"

#include <catch2/catch.hpp>
#include <csignal>

using namespace crashmail;

namespace {

// Lines as supervisord 4.2.5 wrote them (crashmail's integration set-up, loglevel info).
constexpr std::string_view k_log =
    "2026-11-25 22:54:05,672 INFO supervisord started with pid 1981\n"
    "2026-11-25 22:54:06,675 INFO spawned: 'abrt' with pid 1984\n"
    "2026-11-25 22:54:06,678 INFO spawned: 'crasher' with pid 1985\n"
    "2026-11-25 22:54:06,683 INFO spawned: 'worker_00' with pid 1986\n"
    "2026-11-25 22:54:06,684 INFO spawned: 'worker_01' with pid 1988\n"
    "2026-11-25 22:54:06,685 INFO spawnerr: can't find command '/nonexistent/binary'\n"
    "2026-11-25 22:54:06,719 INFO spawned: 'segv' with pid 1993\n"
    "2026-11-25 22:54:06,720 INFO success: crasher entered RUNNING state, process has stayed "
    "up for > than 0 seconds (startsecs)\n"
    "2026-11-25 22:54:06,984 WARN exited: abrt (terminated by SIGABRT; not expected)\n"
    "2026-11-25 22:54:06,994 WARN exited: worker_01 (exit status 5; not expected)\n"
    "2026-11-25 22:54:07,011 WARN exited: crasher (exit status 7; not expected)\n"
    "2026-11-25 22:54:07,020 WARN exited: worker_00 (exit status 5; not expected)\n"
    "2026-11-25 22:54:07,028 WARN exited: segv (terminated by SIGSEGV (core dumped); not "
    "expected)\n";

} // namespace

TEST_CASE("exit codes and signals from supervisord's log lines", "[exit_status]") {
    CHECK(find_exit_status(k_log, "crasher", std::nullopt) == "exit status 7");
    CHECK(find_exit_status(k_log, "abrt", std::nullopt) == "killed by signal 6 (SIGABRT)");
    CHECK(find_exit_status(k_log, "segv", std::nullopt) ==
          "killed by signal 11 (SIGSEGV), core dumped");
    CHECK(find_exit_status(k_log, "worker_00", 1986) == "exit status 5");
    CHECK(find_exit_status(k_log, "nocmd", std::nullopt) == std::nullopt);
    CHECK(find_exit_status("", "crasher", 1) == std::nullopt);
}

TEST_CASE("grouped processes are named without their group in the log", "[exit_status]") {
    // The alert says group "grp", process "worker_01": the log line says "worker_01".
    CHECK(find_exit_status(k_log, "worker_01", 1988) == "exit status 5");
    CHECK(find_exit_status(k_log, "grp:worker_01", 1988) == std::nullopt);
    CHECK(find_exit_status(k_log, "worker", std::nullopt) == std::nullopt); // no prefix match
}

TEST_CASE("the last matching line wins without a pid", "[exit_status]") {
    std::string log = "2026-11-25 10:00:00,000 WARN exited: web (exit status 1; not expected)\n"
                      "2026-11-25 10:00:01,000 INFO exited: web (exit status 0; expected)\n"
                      "2026-11-25 10:00:02,000 WARN exited: web (terminated by SIGKILL; not "
                      "expected)\n"
                      "2026-11-25 10:00:03,000 WARN exited: webby (exit status 9; not expected)\n";
    CHECK(find_exit_status(log, "web", std::nullopt) == "killed by signal 9 (SIGKILL)");
}

TEST_CASE("with a pid, the exit that follows that instance's spawn is the one", "[exit_status]") {
    // A crash loop: the alert for pid 101 arrives after pid 102 already crashed too.
    std::string log = "2026-11-25 10:00:00,000 INFO spawned: 'web' with pid 101\n"
                      "2026-11-25 10:00:01,000 WARN exited: web (exit status 3; not expected)\n"
                      "2026-11-25 10:00:02,000 INFO spawned: 'web' with pid 102\n"
                      "2026-11-25 10:00:02,500 WARN exited: web (terminated by SIGSEGV; not "
                      "expected)\n";
    CHECK(find_exit_status(log, "web", 101) == "exit status 3");
    CHECK(find_exit_status(log, "web", 102) == "killed by signal 11 (SIGSEGV)");
    // pid 1010 is not 101: its spawn line is not in the chunk, so the last line answers.
    CHECK(find_exit_status(log, "web", 1010) == "killed by signal 11 (SIGSEGV)");
    // The spawn is there but its exit is not (yet): no answer rather than an older one.
    std::string running = log + "2026-11-25 10:00:03,000 INFO spawned: 'web' with pid 103\n";
    CHECK(find_exit_status(running, "web", 103) == std::nullopt);
}

TEST_CASE("names with pattern characters, spaces and non-ASCII are matched as text",
          "[exit_status]") {
    std::string log = "2026-11-25 10:00:00,000 WARN exited: a.b* (exit status 1; not expected)\n"
                      "2026-11-25 10:00:00,000 WARN exited: a+b* (exit status 2; not expected)\n"
                      "2026-11-25 10:00:00,000 WARN exited: tx y:z (exit status 4; not "
                      "expected)\r\n"
                      "2026-11-25 10:00:00,000 WARN exited: wörker[1] (exit status 8; not "
                      "expected)\n"
                      "2026-11-25 10:00:00,000 WARN exited: (x) (exit status 5; not expected)\n";
    CHECK(find_exit_status(log, "a.b*", std::nullopt) == "exit status 1");
    CHECK(find_exit_status(log, "a+b*", std::nullopt) == "exit status 2");
    CHECK(find_exit_status(log, "aab", std::nullopt) == std::nullopt);
    CHECK(find_exit_status(log, "tx y:z", std::nullopt) == "exit status 4");
    CHECK(find_exit_status(log, "wörker[1]", std::nullopt) == "exit status 8");
    CHECK(find_exit_status(log, "(x)", std::nullopt) == "exit status 5");
}

TEST_CASE("supervisord's words become crashmail's", "[exit_status]") {
    CHECK(describe_exit("exit status 0") == "exit status 0");
    CHECK(describe_exit("exit status 255") == "exit status 255");
    CHECK(describe_exit("terminated by SIGTERM") == "killed by signal 15 (SIGTERM)");
    CHECK(describe_exit("terminated by SIGIOT") == "killed by signal 6 (SIGIOT)");
    CHECK(describe_exit("terminated by SIGBUS (core dumped)") ==
          "killed by signal 7 (SIGBUS), core dumped");
    CHECK(describe_exit("terminated by signal 45") == "killed by signal 45");
    CHECK(describe_exit("terminated by SIGWHAT") == "killed by SIGWHAT");
    CHECK(describe_exit("exit status x") == std::nullopt);
    CHECK(describe_exit("stopped") == std::nullopt);
}

TEST_CASE("signal names map to this system's numbers", "[exit_status]") {
    CHECK(signal_number("SIGSEGV") == SIGSEGV);
    CHECK(signal_number("SIGKILL") == SIGKILL);
    CHECK(signal_number("SIGCLD") == SIGCHLD);
    CHECK(signal_number("SIGPOLL") == SIGIO);
    CHECK(signal_number("SIGRTMIN") == SIGRTMIN);
    CHECK(signal_number("SEGV") == std::nullopt);
    CHECK(signal_number("SIGNOPE") == std::nullopt);
}
