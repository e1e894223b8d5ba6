// supervisord's own log read back as state changes: the crashes of discarded events.

#include "supervisor/main_log.hpp"
#include "util/time.hpp"

#include <catch2/catch.hpp>

using namespace crashmail;

namespace {

using time_point = std::chrono::system_clock::time_point;

// The time of a log line's stamp, in local time as supervisord writes it.
time_point at(std::string_view stamp) {
    auto time = timefmt::parse_asctime_local(stamp);
    REQUIRE(time);
    return *time;
}

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

TEST_CASE("a captured supervisord log gives each crash its state, pid and exit status",
          "[discards][main_log]") {
    MainLog log = parse_main_log(k_log, false);
    REQUIRE(log.transitions.size() == 5);
    const auto& t = log.transitions; // in log order

    CHECK(t[0].process == "abrt");
    CHECK(t[0].state == "BACKOFF"); // 0.3 s after its spawn, never RUNNING
    CHECK(t[0].pid == 1984);
    CHECK(t[0].exit_status == "killed by signal 6 (SIGABRT)");
    CHECK(t[0].time == at("2026-11-25 22:54:06,984"));

    CHECK(t[1].process == "worker_01");
    CHECK(t[1].state == "BACKOFF");
    CHECK(t[1].pid == 1988);
    CHECK(t[1].exit_status == "exit status 5");

    CHECK(t[2].process == "crasher");
    CHECK(t[2].state == "EXITED"); // its success line says startsecs 0 and RUNNING
    CHECK(t[2].pid == 1985);
    CHECK(t[2].exit_status == "exit status 7");
    CHECK_FALSE(t[2].expected);
    CHECK(t[2].time == at("2026-11-25 22:54:07,011"));

    CHECK(t[3].process == "worker_00");
    CHECK(t[3].pid == 1986);

    CHECK(t[4].process == "segv");
    CHECK(t[4].state == "BACKOFF");
    CHECK(t[4].pid == 1993);
    CHECK(t[4].exit_status == "killed by signal 11 (SIGSEGV), core dumped");

    CHECK(log.first_time == at("2026-11-25 22:54:05,672"));
    CHECK(log.run_start == at("2026-11-25 22:54:05,672"));
}

TEST_CASE("an exit after RUNNING is EXITED", "[discards][main_log]") {
    MainLog log = parse_main_log(
        "2026-11-25 22:54:06,675 INFO spawned: 'crasher' with pid 1985\n"
        "2026-11-25 22:54:07,680 INFO success: crasher entered RUNNING state, process has "
        "stayed up for > than 1 seconds (startsecs)\n"
        "2026-11-25 22:54:09,011 WARN exited: crasher (exit status 7; not expected)\n",
        false);
    REQUIRE(log.transitions.size() == 1);
    const LoggedTransition& exit = log.transitions[0];
    CHECK(exit.process == "crasher");
    CHECK(exit.state == "EXITED");
    CHECK_FALSE(exit.expected);
    CHECK(exit.pid == 1985);
    CHECK(exit.exit_status == "exit status 7");
    CHECK(exit.time == at("2026-11-25 22:54:09,011"));
}

TEST_CASE("an exit before RUNNING and sooner than startsecs is BACKOFF", "[discards][main_log]") {
    MainLog log = parse_main_log(
        "2026-11-25 22:54:06,675 INFO spawned: 'crasher' with pid 1985\n"
        "2026-11-25 22:54:06,975 WARN exited: crasher (exit status 1; not expected)\n"
        "2026-11-25 22:54:07,980 INFO spawned: 'crasher' with pid 1990\n"
        "2026-11-25 22:54:08,100 WARN exited: crasher (terminated by SIGKILL; not expected)\n",
        false);
    REQUIRE(log.transitions.size() == 2);
    CHECK(log.transitions[0].state == "BACKOFF");
    CHECK_FALSE(log.transitions[0].expected);
    CHECK(log.transitions[0].pid == 1985);
    CHECK(log.transitions[0].exit_status == "exit status 1");
    CHECK(log.transitions[1].state == "BACKOFF");
    CHECK(log.transitions[1].pid == 1990);
    CHECK(log.transitions[1].exit_status == "killed by signal 9 (SIGKILL)");
}

TEST_CASE("startsecs learnt from a success line judges the next exits", "[discards][main_log]") {
    SECTION("startsecs 0: an exit right after the spawn is EXITED") {
        MainLog log = parse_main_log(
            "2026-11-25 22:54:06,675 INFO spawned: 'fast' with pid 10\n"
            "2026-11-25 22:54:06,690 INFO success: fast entered RUNNING state, process has "
            "stayed up for > than 0 seconds (startsecs)\n"
            "2026-11-25 22:54:06,800 WARN exited: fast (exit status 2; not expected)\n"
            "2026-11-25 22:54:06,810 INFO spawned: 'fast' with pid 11\n"
            "2026-11-25 22:54:06,820 WARN exited: fast (exit status 2; not expected)\n",
            false);
        REQUIRE(log.transitions.size() == 2);
        CHECK(log.transitions[0].state == "EXITED");
        CHECK(log.transitions[0].pid == 10);
        // No success line for pid 11, but startsecs is known to be 0.
        CHECK(log.transitions[1].state == "EXITED");
        CHECK(log.transitions[1].pid == 11);
    }
    SECTION("startsecs 5: an exit 3 s after the spawn is BACKOFF") {
        MainLog log = parse_main_log(
            "2026-11-25 22:54:00,000 INFO spawned: 'slow' with pid 10\n"
            "2026-11-25 22:54:05,010 INFO success: slow entered RUNNING state, process has "
            "stayed up for > than 5 seconds (startsecs)\n"
            "2026-11-25 22:54:20,000 WARN exited: slow (exit status 2; not expected)\n"
            "2026-11-25 22:54:20,010 INFO spawned: 'slow' with pid 11\n"
            "2026-11-25 22:54:23,010 WARN exited: slow (exit status 2; not expected)\n",
            false);
        REQUIRE(log.transitions.size() == 2);
        CHECK(log.transitions[0].state == "EXITED");
        CHECK(log.transitions[1].state == "BACKOFF");
        CHECK(log.transitions[1].pid == 11);
    }
}

TEST_CASE("an exit whose spawn is not in the chunk is EXITED without a pid",
          "[discards][main_log]") {
    MainLog log = parse_main_log(
        "2026-11-25 22:54:09,011 WARN exited: crasher (exit status 7; not expected)\n", false);
    REQUIRE(log.transitions.size() == 1);
    CHECK(log.transitions[0].state == "EXITED");
    CHECK(log.transitions[0].pid == std::nullopt);
    CHECK(log.transitions[0].exit_status == "exit status 7");
}

TEST_CASE("the pid is that of the process's own last spawn", "[discards][main_log]") {
    MainLog log = parse_main_log(
        "2026-11-25 22:54:00,000 INFO spawned: 'web' with pid 101\n"
        "2026-11-25 22:54:00,010 INFO spawned: 'web2' with pid 202\n"
        "2026-11-25 22:54:02,000 INFO success: web entered RUNNING state, process has stayed "
        "up for > than 1 seconds (startsecs)\n"
        "2026-11-25 22:54:03,000 WARN exited: web (exit status 3; not expected)\n"
        "2026-11-25 22:54:04,000 INFO spawned: 'web' with pid 103\n"
        "2026-11-25 22:54:06,000 INFO success: web entered RUNNING state, process has stayed "
        "up for > than 1 seconds (startsecs)\n"
        "2026-11-25 22:54:09,000 WARN exited: web (exit status 4; not expected)\n"
        "2026-11-25 22:54:09,500 WARN exited: web2 (exit status 5; not expected)\n",
        false);
    REQUIRE(log.transitions.size() == 3);
    CHECK(log.transitions[0].pid == 101);
    CHECK(log.transitions[0].exit_status == "exit status 3");
    CHECK(log.transitions[1].pid == 103);
    CHECK(log.transitions[1].exit_status == "exit status 4");
    CHECK(log.transitions[2].process == "web2");
    CHECK(log.transitions[2].pid == 202);
    CHECK(log.transitions[2].state == "EXITED"); // 9.5 s after its spawn
}

TEST_CASE("names with spaces, colons and \" (\" are read whole", "[discards][main_log]") {
    MainLog log = parse_main_log(
        "2026-11-25 22:54:00,000 INFO spawned: 'tx y:z' with pid 10\n"
        "2026-11-25 22:54:00,001 INFO spawned: 'a (b)' with pid 11\n"
        "2026-11-25 22:54:02,000 INFO success: tx y:z entered RUNNING state, process has "
        "stayed up for > than 1 seconds (startsecs)\n"
        "2026-11-25 22:54:02,001 INFO success: a (b) entered RUNNING state, process has "
        "stayed up for > than 1 seconds (startsecs)\n"
        "2026-11-25 22:54:05,000 WARN exited: tx y:z (exit status 4; not expected)\n"
        "2026-11-25 22:54:05,001 WARN exited: a (b) (terminated by SIGSEGV (core dumped); not "
        "expected)\n"
        "2026-11-25 22:54:05,002 INFO gave up: a (b) entered FATAL state, too many start "
        "retries too quickly\n",
        false);
    REQUIRE(log.transitions.size() == 3);
    CHECK(log.transitions[0].process == "tx y:z");
    CHECK(log.transitions[0].state == "EXITED");
    CHECK(log.transitions[0].pid == 10);
    CHECK(log.transitions[0].exit_status == "exit status 4");
    CHECK(log.transitions[1].process == "a (b)");
    CHECK(log.transitions[1].state == "EXITED");
    CHECK(log.transitions[1].pid == 11);
    CHECK(log.transitions[1].exit_status == "killed by signal 11 (SIGSEGV), core dumped");
    CHECK(log.transitions[2].process == "a (b)");
    CHECK(log.transitions[2].state == "FATAL");
}

TEST_CASE("expected exits are EXITED and say so", "[discards][main_log]") {
    MainLog log = parse_main_log(
        "2026-11-25 22:54:00,000 INFO spawned: 'job' with pid 10\n"
        "2026-11-25 22:54:01,005 INFO success: job entered RUNNING state, process has stayed "
        "up for > than 1 seconds (startsecs)\n"
        "2026-11-25 22:54:30,000 INFO exited: job (exit status 0; expected)\n"
        "2026-11-25 22:54:31,000 INFO spawned: 'job' with pid 11\n"
        "2026-11-25 22:54:32,005 INFO success: job entered RUNNING state, process has stayed "
        "up for > than 1 seconds (startsecs)\n"
        "2026-11-25 22:54:40,000 WARN exited: job (exit status 3; not expected)\n",
        false);
    REQUIRE(log.transitions.size() == 2);
    CHECK(log.transitions[0].state == "EXITED");
    CHECK(log.transitions[0].expected);
    CHECK(log.transitions[0].pid == 10);
    CHECK(log.transitions[0].exit_status == "exit status 0");
    CHECK(log.transitions[1].state == "EXITED");
    CHECK_FALSE(log.transitions[1].expected);
}

TEST_CASE("an exit logged as expected is EXITED even right after its spawn",
          "[discards][main_log]") {
    // supervisord writes "; expected)" only for RUNNING -> EXITED: a failed start (BACKOFF) is
    // always "; not expected)" (supervisor/process.py Subprocess.finish). A startsecs=0
    // one-shot that exits 0 before its first "success:" line is logged looks like this.
    MainLog log = parse_main_log("2026-11-25 22:54:00,000 INFO spawned: 'oneshot' with pid 10\n"
                                 "2026-11-25 22:54:00,040 INFO exited: oneshot (exit status 0; "
                                 "expected)\n",
                                 false);
    REQUIRE(log.transitions.size() == 1);
    CHECK(log.transitions[0].state == "EXITED");
    CHECK(log.transitions[0].expected);
    CHECK(log.transitions[0].pid == 10);
}

TEST_CASE("a FATAL comes from the gave up line", "[discards][main_log]") {
    MainLog log = parse_main_log(
        "2026-11-25 22:54:06,675 INFO spawned: 'crasher' with pid 1985\n"
        "2026-11-25 22:54:06,700 WARN exited: crasher (exit status 1; not expected)\n"
        "2026-11-25 22:54:07,705 INFO spawned: 'crasher' with pid 1986\n"
        "2026-11-25 22:54:07,730 WARN exited: crasher (exit status 1; not expected)\n"
        "2026-11-25 22:54:07,731 INFO gave up: crasher entered FATAL state, too many start "
        "retries too quickly\n",
        false);
    REQUIRE(log.transitions.size() == 3);
    CHECK(log.transitions[0].state == "BACKOFF");
    CHECK(log.transitions[1].state == "BACKOFF");
    const LoggedTransition& fatal = log.transitions[2];
    CHECK(fatal.state == "FATAL");
    CHECK(fatal.process == "crasher");
    CHECK_FALSE(fatal.expected);
    CHECK(fatal.time == at("2026-11-25 22:54:07,731"));
}

TEST_CASE("stops and other lines are no crashes", "[discards][main_log]") {
    MainLog log = parse_main_log(
        "2026-11-25 22:54:05,000 CRIT Supervisor is running as root.  Privileges were not "
        "dropped because no user is specified in the config file.\n"
        "2026-11-25 22:54:05,001 INFO RPC interface 'supervisor' initialized\n"
        "2026-11-25 22:54:06,675 INFO spawned: 'crasher' with pid 1985\n"
        "2026-11-25 22:54:06,685 INFO spawnerr: can't find command '/nonexistent/binary'\n"
        "2026-11-25 22:54:07,680 INFO success: crasher entered RUNNING state, process has "
        "stayed up for > than 1 seconds (startsecs)\n"
        "2026-11-25 22:54:08,000 INFO waiting for crasher to stop\n"
        "2026-11-25 22:54:08,010 INFO stopped: crasher (terminated by SIGTERM)\n"
        "2026-11-25 22:54:09,000 WARN received SIGTERM indicating exit request\n",
        false);
    CHECK(log.transitions.empty());
    CHECK(log.first_time == at("2026-11-25 22:54:05,000"));
    CHECK(log.run_start == std::nullopt);
}

TEST_CASE("the cut first line of a chunk is skipped", "[discards][main_log]") {
    constexpr std::string_view k_chunk =
        "22:54:06,675 WARN exited: ghost (exit status 9; not expected)\n"
        "2026-11-25 22:54:08,000 WARN exited: crasher (exit status 7; not expected)\n";
    SECTION("cut") {
        MainLog log = parse_main_log(k_chunk, true);
        REQUIRE(log.transitions.size() == 1);
        CHECK(log.transitions[0].process == "crasher");
        CHECK(log.first_time == at("2026-11-25 22:54:08,000"));
    }
    SECTION("a whole first line is skipped too when the chunk is cut") {
        MainLog log = parse_main_log(
            "2026-11-25 22:54:06,675 WARN exited: ghost (exit status 9; not expected)\n"
            "2026-11-25 22:54:08,000 WARN exited: crasher (exit status 7; not expected)\n",
            true);
        REQUIRE(log.transitions.size() == 1);
        CHECK(log.transitions[0].process == "crasher");
        CHECK(log.first_time == at("2026-11-25 22:54:08,000"));
    }
    SECTION("not cut: the first line counts") {
        MainLog log = parse_main_log(
            "2026-11-25 22:54:06,675 WARN exited: first (exit status 9; not expected)\n"
            "2026-11-25 22:54:08,000 WARN exited: crasher (exit status 7; not expected)\n",
            false);
        REQUIRE(log.transitions.size() == 2);
        CHECK(log.transitions[0].process == "first");
        CHECK(log.first_time == at("2026-11-25 22:54:06,675"));
    }
}

TEST_CASE("continuation lines of a traceback are ignored", "[discards][main_log]") {
    MainLog log = parse_main_log(
        "2026-11-25 22:54:06,675 INFO spawned: 'crasher' with pid 1985\n"
        "2026-11-25 22:54:06,900 CRIT uncaptured python exception, closing channel "
        "<POutputDispatcher at 140 for <Subprocess at 139 with name crasher in state "
        "STARTING> (stdout)>\n"
        "Traceback (most recent call last):\n"
        "  File \"/usr/lib/python3/dist-packages/supervisor/supervisord.py\", line 218\n"
        "exited: ghost (exit status 9; not expected)\n"
        "2026 exited: ghost (exit status 9; not expected)\n"
        "    raise ValueError('x')\n"
        "\n"
        "2026-11-25 22:54:08,000 WARN exited: crasher (exit status 7; not expected)\n",
        false);
    REQUIRE(log.transitions.size() == 1);
    CHECK(log.transitions[0].process == "crasher");
    CHECK(log.transitions[0].pid == 1985);
}

TEST_CASE("run_start is the last supervisord start; first_time the chunk's first stamp",
          "[discards][main_log]") {
    MainLog log =
        parse_main_log("a partial line\n"
                       "2026-11-25 20:00:00,100 INFO supervisord started with pid 1000\n"
                       "2026-11-25 20:00:01,000 INFO spawned: 'crasher' with pid 1001\n"
                       "2026-11-25 21:00:00,000 WARN received SIGTERM indicating exit request\n"
                       "2026-11-25 22:54:05,672 INFO supervisord started with pid 1981\n"
                       "2026-11-25 22:54:06,675 INFO spawned: 'crasher' with pid 1985\n",
                       false);
    CHECK(log.first_time == at("2026-11-25 20:00:00,100"));
    CHECK(log.run_start == at("2026-11-25 22:54:05,672"));
    CHECK(log.transitions.empty());

    MainLog empty = parse_main_log("", false);
    CHECK(empty.transitions.empty());
    CHECK(empty.first_time == std::nullopt);
    CHECK(empty.run_start == std::nullopt);
    CHECK(parse_main_log("", true).first_time == std::nullopt);
}

TEST_CASE("CRLF line endings are read like LF", "[discards][main_log]") {
    MainLog log = parse_main_log(
        "2026-11-25 22:54:05,672 INFO supervisord started with pid 1981\r\n"
        "2026-11-25 22:54:06,675 INFO spawned: 'crasher' with pid 1985\r\n"
        "2026-11-25 22:54:07,680 INFO success: crasher entered RUNNING state, process has "
        "stayed up for > than 1 seconds (startsecs)\r\n"
        "2026-11-25 22:54:09,011 WARN exited: crasher (exit status 7; not expected)\r\n"
        "2026-11-25 22:54:09,100 INFO spawned: 'crasher' with pid 1990\r\n"
        "2026-11-25 22:54:09,200 INFO exited: crasher (exit status 0; not expected)\r\n"
        "2026-11-25 22:54:09,300 INFO gave up: crasher entered FATAL state, too many start "
        "retries too quickly\r\n",
        false);
    REQUIRE(log.transitions.size() == 3);
    CHECK(log.transitions[0].process == "crasher");
    CHECK(log.transitions[0].state == "EXITED");
    CHECK(log.transitions[0].pid == 1985);
    CHECK(log.transitions[0].exit_status == "exit status 7");
    CHECK(log.transitions[1].state == "BACKOFF");
    CHECK(log.transitions[1].pid == 1990);
    CHECK(log.transitions[2].process == "crasher");
    CHECK(log.transitions[2].state == "FATAL");
    CHECK(log.run_start == at("2026-11-25 22:54:05,672"));
}
