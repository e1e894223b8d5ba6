// The crash-loop stories and flood control, on a fake clock: every call is given its time.

#include "alert/crash_loop.hpp"
#include "app/crash_loop_monitor.hpp"
#include "fake_store.hpp"
#include "holding_fakes.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>

using namespace crashmail;
using crashmail::testing::HoldingSink;
using crashmail::testing::HoldingState;
using crashmail::testing::MemoryState;
using crashmail::testing::ReleaseAtExit;
using namespace std::chrono_literals;

namespace {

using time_point = std::chrono::system_clock::time_point;
const time_point k_t0 = time_point(std::chrono::hours(24 * 20000));

StoryEvent event(std::string state, std::uint64_t serial, std::string process = "crashy") {
    StoryEvent out;
    out.group = process;
    out.process = std::move(process);
    out.state = std::move(state);
    out.from_state = out.state == "EXITED" ? "RUNNING" : "STARTING";
    out.pid = 1000 + static_cast<std::int64_t>(serial);
    out.event_name = "PROCESS_STATE_" + out.state;
    out.serial = serial;
    return out;
}

CrashLoopSettings limit(std::uint64_t count, std::chrono::seconds window) {
    CrashLoopSettings settings;
    settings.rate_limit = RateLimit{count, window};
    return settings;
}

std::uint64_t alerts_in(const std::vector<Emission>& out) {
    return static_cast<std::uint64_t>(std::count_if(
        out.begin(), out.end(), [](const Emission& e) { return e.kind == AlertKind::alert; }));
}

std::uint64_t counted_in(const std::vector<Emission>& out) {
    std::uint64_t sum = 0;
    for (const Emission& e : out) {
        sum += e.suppressed;
    }
    return sum;
}

} // namespace

TEST_CASE("parse_rate_limit reads N/DURATION and off", "[crash_loop]") {
    auto limit = parse_rate_limit("3/10m");
    REQUIRE(limit);
    REQUIRE(limit->has_value());
    CHECK((*limit)->count == 3);
    CHECK((*limit)->window == 600s);
    auto off = parse_rate_limit("off");
    REQUIRE(off);
    CHECK_FALSE(off->has_value());
    for (const char* bad :
         {"", "3", "/10m", "0/10m", "3/0s", "x/10m", "3/ten", "1001/1h", "-1/1m", "3/10m/2"}) {
        INFO(bad);
        CHECK_FALSE(parse_rate_limit(bad));
    }
    CHECK_THAT(parse_rate_limit("3").error(), Catch::Contains("N/DURATION"));
}

TEST_CASE("duration_words names a window for humans", "[crash_loop]") {
    CHECK(duration_words(600s) == "10 minutes");
    CHECK(duration_words(60s) == "1 minute");
    CHECK(duration_words(3600s) == "1 hour");
    CHECK(duration_words(90s) == "90 seconds");
    CHECK(duration_words(172800s) == "2 days");
}

TEST_CASE("the first N events of a window alert and the rest are counted in one summary",
          "[crash_loop]") {
    CrashLoops loops(limit(3, 600s));
    std::vector<Emission> sent;
    for (std::uint64_t i = 0; i < 10; ++i) {
        auto out = loops.on_alert_event(event("EXITED", i), k_t0 + std::chrono::seconds(i * 30));
        sent.insert(sent.end(), out.begin(), out.end());
    }
    REQUIRE(sent.size() == 3);
    CHECK(sent[0].occurrence == 1);
    CHECK(sent[2].occurrence == 3);
    CHECK_FALSE(sent[1].last_before_limit);
    CHECK(sent[2].last_before_limit);
    CHECK(sent[2].window_end == k_t0 + 600s);
    CHECK(loops.next_due() == k_t0 + 600s);

    CHECK(loops.due(k_t0 + 599s).empty());
    auto summary = loops.due(k_t0 + 600s);
    REQUIRE(summary.size() == 1);
    CHECK(summary[0].kind == AlertKind::summary);
    CHECK(summary[0].suppressed == 7);
    CHECK(summary[0].suppressed_by_state.at("EXITED") == 7);
    CHECK(summary[0].event.serial == 9); // the last counted event
    CHECK(summary[0].window_start == k_t0);
    CHECK(summary[0].window_end == k_t0 + 600s);
    CHECK(summary[0].occurrence == 10);
}

TEST_CASE("a loop that goes on gets one summary per window, then the story closes",
          "[crash_loop]") {
    CrashLoops loops(limit(2, 60s));
    std::uint64_t events = 0;
    std::uint64_t alerted = 0;
    std::uint64_t counted = 0;
    std::uint64_t summaries = 0;
    // One crash every 7 s for 200 s.
    for (int second = 0; second < 200; second += 7) {
        auto out =
            loops.on_alert_event(event("EXITED", events++), k_t0 + std::chrono::seconds(second));
        alerted += alerts_in(out);
        counted += counted_in(out);
        summaries += out.size() - alerts_in(out);
    }
    for (int second = 200; second < 400; ++second) {
        auto out = loops.due(k_t0 + std::chrono::seconds(second));
        alerted += alerts_in(out);
        counted += counted_in(out);
        summaries += out.size();
    }
    CHECK(alerted == 2);   // only the first window sends alerts: the loop never paused
    CHECK(summaries == 4); // windows ending at 60, 120, 180 and 240 s
    CHECK(alerted + counted == events);
    CHECK(loops.story_count() == 0);
}

TEST_CASE("FATAL always alerts and accounts for what was counted", "[crash_loop]") {
    CrashLoops loops(limit(1, 600s));
    CHECK(alerts_in(loops.on_alert_event(event("BACKOFF", 1), k_t0)) == 1);
    CHECK(loops.on_alert_event(event("BACKOFF", 2), k_t0 + 1s).empty());
    CHECK(loops.on_alert_event(event("BACKOFF", 3), k_t0 + 2s).empty());
    auto fatal = loops.on_alert_event(event("FATAL", 4), k_t0 + 3s);
    REQUIRE(fatal.size() == 1);
    CHECK(fatal[0].kind == AlertKind::alert);
    CHECK(fatal[0].suppressed == 2);
    CHECK(fatal[0].suppressed_by_state.at("BACKOFF") == 2);
    CHECK(fatal[0].occurrence == 4);
    // Nothing is left to summarise.
    CHECK(loops.due(k_t0 + 601s).empty());
}

TEST_CASE("without a rate limit every event alerts", "[crash_loop]") {
    CrashLoopSettings settings;
    settings.rate_limit = std::nullopt;
    CrashLoops loops(settings);
    for (std::uint64_t i = 0; i < 20; ++i) {
        auto out = loops.on_alert_event(event("EXITED", i), k_t0 + std::chrono::seconds(i));
        REQUIRE(out.size() == 1);
        CHECK(out[0].occurrence == i + 1);
    }
}

TEST_CASE("RUNNING that lasts recovery_after ends the story with a recovery", "[crash_loop]") {
    CrashLoopSettings settings = limit(3, 600s);
    settings.recovery_notices = true;
    settings.recovery_after = 30s;
    CrashLoops loops(settings);
    loops.on_alert_event(event("EXITED", 1), k_t0);
    CHECK(loops.on_other_event(event("STARTING", 2), k_t0 + 1s) == false);
    CHECK(loops.on_other_event(event("RUNNING", 3), k_t0 + 2s));
    // It crashes again before it counts as recovered: no recovery.
    loops.on_alert_event(event("EXITED", 4), k_t0 + 20s);
    CHECK(loops.due(k_t0 + 40s).empty());
    loops.on_other_event(event("RUNNING", 5), k_t0 + 41s);
    CHECK(loops.next_due() == k_t0 + 71s);
    CHECK(loops.due(k_t0 + 70s).empty());
    auto out = loops.due(k_t0 + 71s);
    REQUIRE(out.size() == 1);
    CHECK(out[0].kind == AlertKind::recovery);
    CHECK(out[0].notify);
    CHECK(out[0].occurrence == 2);
    CHECK(out[0].event.serial == 5);
    REQUIRE(out[0].resolves.size() == 1);
    CHECK(out[0].resolves[0] == ResolvedAlert{"EXITED", false});
    CHECK(loops.story_count() == 0);
    // The next crash starts a new story.
    auto next = loops.on_alert_event(event("EXITED", 6), k_t0 + 100s);
    REQUIRE(next.size() == 1);
    CHECK(next[0].occurrence == 1);
}

TEST_CASE("a recovery folds in what was counted; without --recovery only Alertmanager hears",
          "[crash_loop]") {
    CrashLoopSettings settings = limit(1, 600s);
    settings.recovery_after = 10s;
    SECTION("--recovery: the notice carries the count") {
        settings.recovery_notices = true;
        CrashLoops loops(settings);
        loops.on_alert_event(event("EXITED", 1), k_t0);
        loops.on_alert_event(event("EXITED", 2), k_t0 + 5s);
        loops.on_other_event(event("RUNNING", 3), k_t0 + 6s);
        auto out = loops.due(k_t0 + 16s);
        REQUIRE(out.size() == 1);
        CHECK(out[0].kind == AlertKind::recovery);
        CHECK(out[0].suppressed == 1);
    }
    SECTION("Alertmanager only: a summary for everyone, a silent resolve") {
        settings.resolve_alerts = true;
        CrashLoops loops(settings);
        loops.on_alert_event(event("EXITED", 1), k_t0);
        loops.on_alert_event(event("EXITED", 2), k_t0 + 5s);
        loops.on_other_event(event("RUNNING", 3), k_t0 + 6s);
        auto out = loops.due(k_t0 + 16s);
        REQUIRE(out.size() == 2);
        CHECK(out[0].kind == AlertKind::summary);
        CHECK(out[0].suppressed == 1);
        CHECK(out[1].kind == AlertKind::recovery);
        CHECK_FALSE(out[1].notify);
        CHECK(out[1].suppressed == 0);
    }
    SECTION("neither: no recovery, the story ends after a quiet window") {
        CrashLoops loops(settings);
        loops.on_alert_event(event("EXITED", 1), k_t0);
        loops.on_other_event(event("RUNNING", 3), k_t0 + 6s);
        CHECK(loops.due(k_t0 + 16s).empty());
        CHECK(loops.due(k_t0 + 600s).empty());
        CHECK(loops.story_count() == 0);
    }
}

TEST_CASE("stories are per process", "[crash_loop]") {
    CrashLoops loops(limit(1, 600s));
    CHECK(alerts_in(loops.on_alert_event(event("EXITED", 1, "a"), k_t0)) == 1);
    CHECK(alerts_in(loops.on_alert_event(event("EXITED", 2, "b"), k_t0)) == 1);
    CHECK(loops.on_alert_event(event("EXITED", 3, "a"), k_t0).empty());
    auto out = loops.due(k_t0 + 600s);
    REQUIRE(out.size() == 1);
    CHECK(out[0].event.process == "a");
}

TEST_CASE("the stories survive a restart through to_json and restore", "[crash_loop]") {
    CrashLoopSettings settings = limit(2, 600s);
    settings.recovery_notices = true;
    CrashLoops before(settings);
    for (std::uint64_t i = 0; i < 5; ++i) {
        before.on_alert_event(event("EXITED", i), k_t0 + std::chrono::seconds(i));
    }
    before.on_alert_event(event("EXITED", 9, "other"), k_t0);
    before.on_other_event(event("RUNNING", 10, "other"), k_t0 + 1s);
    std::string saved = before.to_json().dump();

    CrashLoops after(settings);
    REQUIRE(after.restore(nlohmann::json::parse(saved)));
    CHECK(after.story_count() == 2);
    CHECK(after.next_due() == before.next_due());
    auto a = before.due(k_t0 + 600s);
    auto b = after.due(k_t0 + 600s);
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i].kind == b[i].kind);
        CHECK(a[i].suppressed == b[i].suppressed);
        CHECK(a[i].event.serial == b[i].event.serial);
        CHECK(emission_id(a[i], "x") == emission_id(b[i], "x"));
    }
    CHECK_FALSE(after.restore(nlohmann::json::parse("[1,2]")));
    CHECK_FALSE(after.restore(nlohmann::json::parse(R"({"stories":[{"key":1}]})")));
}

TEST_CASE("every event is alerted or counted exactly once, whatever the sequence", "[crash_loop]") {
    std::mt19937 random(12345);
    for (int run = 0; run < 200; ++run) {
        CrashLoopSettings settings =
            limit(1 + random() % 4, std::chrono::seconds(5 + random() % 100));
        settings.recovery_notices = random() % 2 == 0;
        settings.resolve_alerts = random() % 2 == 0;
        settings.recovery_after = std::chrono::seconds(1 + random() % 30);
        CrashLoops loops(settings);
        const char* states[] = {"EXITED", "BACKOFF", "FATAL", "STOPPED", "RUNNING", "STARTING"};
        std::uint64_t events = 0;
        std::uint64_t accounted = 0;
        time_point now = k_t0;
        for (std::uint64_t i = 0; i < 300; ++i) {
            now += std::chrono::seconds(random() % 20);
            std::string process = random() % 3 == 0 ? "b" : "a";
            std::string state = states[random() % 6];
            std::vector<Emission> out;
            if (state == "RUNNING" || state == "STARTING") {
                loops.on_other_event(event(state, i, process), now);
                out = loops.due(now);
            } else {
                ++events;
                out = loops.on_alert_event(event(state, i, process), now);
            }
            accounted += alerts_in(out) + counted_in(out);
        }
        for (int step = 0; step < 100; ++step) {
            now += 60s;
            auto out = loops.due(now);
            accounted += alerts_in(out) + counted_in(out);
        }
        INFO("run " << run);
        CHECK(accounted == events);
    }
}

TEST_CASE("emission_alert words alerts, summaries and recoveries", "[crash_loop]") {
    AlertContext context{"host.example.com", "prod"};
    CrashLoops loops(limit(3, 600s));
    auto first = loops.on_alert_event(event("EXITED", 1), k_t0);
    Alert alert = emission_alert(first.at(0), context, k_t0, "id1");
    CHECK_THAT(alert.subject, Catch::StartsWith("prod: crashy crashed at "));
    CHECK_THAT(alert.body, Catch::Contains("First crash of crashy; if more follow, up to 3 "
                                           "alerts per 10 minutes are sent for it"));
    CHECK(alert.occurrence == 1);
    loops.on_alert_event(event("EXITED", 2), k_t0 + 1s);
    auto third = loops.on_alert_event(event("EXITED", 3), k_t0 + 2s);
    Alert last = emission_alert(third.at(0), context, k_t0 + 2s, "id3");
    CHECK_THAT(last.body, Catch::Contains("Crash 3 of crashy since "));
    CHECK_THAT(last.body, Catch::Contains("This is the last alert for crashy until "));
    for (std::uint64_t i = 4; i < 41; ++i) {
        loops.on_alert_event(event("EXITED", i), k_t0 + std::chrono::seconds(i));
    }
    auto summary = loops.due(k_t0 + 600s);
    Alert text = emission_alert(summary.at(0), context, k_t0 + 600s, "m1");
    CHECK(text.kind == AlertKind::summary);
    CHECK(text.suppressed == 37);
    CHECK(text.subject == "prod: crashy crashed 37 more times in the last 10 minutes");
    CHECK_THAT(text.body, Catch::StartsWith("crashy crashed 37 more times in the last 10 "
                                            "minutes"));
    CHECK_THAT(text.body, Catch::Contains("\n\nHost: host.example.com\n"));

    Emission recovery;
    recovery.kind = AlertKind::recovery;
    recovery.event = event("RUNNING", 50);
    recovery.occurrence = 40;
    recovery.story_start = k_t0;
    recovery.window_start = k_t0 + 700s;
    Alert notice = emission_alert(recovery, context, k_t0 + 760s, "r1");
    CHECK_THAT(notice.subject, Catch::StartsWith("prod: crashy recovered at "));
    CHECK_THAT(notice.body, Catch::Contains("crashy is running again (pid 1050)"));
    CHECK_THAT(notice.body, Catch::Contains("(40 alert-worthy events)"));
}

TEST_CASE("emission ids are stable and differ by kind and window", "[crash_loop]") {
    Emission a;
    a.kind = AlertKind::summary;
    a.event = event("EXITED", 1);
    a.window_start = k_t0;
    a.suppressed = 4;
    Emission b = a;
    CHECK(emission_id(a, "i") == emission_id(b, "i"));
    CHECK(emission_id(a, "i").starts_with("m"));
    b.window_start = k_t0 + 1s;
    CHECK(emission_id(a, "i") != emission_id(b, "i"));
    b = a;
    b.kind = AlertKind::recovery;
    CHECK(emission_id(b, "i").starts_with("r"));
    CHECK(emission_id(a, "i") != emission_id(a, "j"));
}

namespace {

class RecordingSink final : public AlertSink {
public:
    void submit(const Alert& alert) override { alerts.push_back(alert); }
    std::vector<Alert> alerts;
};

Event crash_event(std::uint64_t serial, const std::string& process = "crashy") {
    Event out;
    out.header.event_name = "PROCESS_STATE_EXITED";
    out.header.serial = serial;
    out.payload =
        "processname:" + process + " groupname:" + process + " from_state:RUNNING expected:0 pid:1";
    return out;
}

} // namespace

TEST_CASE("the monitor saves a count before the event is answered (an alert is in the outbox "
          "already: its story follows) and restores it",
          "[crash_loop]") {
    MemoryState state;
    time_point now = k_t0;
    CrashLoopMonitorSettings settings;
    settings.loops = limit(1, 600s);
    settings.context = AlertContext{"host", ""};
    settings.now = [&] { return now; };
    settings.alert_id = [](const Event& e, std::string_view) {
        return "s" + std::to_string(e.header.serial);
    };
    ProcessStateChange change;
    change.state = "EXITED";
    change.process_name = "crashy";
    change.group_name = "crashy";
    change.from_state = "RUNNING";
    change.expected = false;
    change.pid = 1;
    {
        RecordingSink sink;
        CrashLoopMonitor monitor(settings, sink, &state);
        CHECK(monitor.on_alert_event(crash_event(1), change) == 1);
        CHECK(state.saves == 0); // alerted: the event loop leaves its story to the clock
        CHECK(monitor.on_alert_event(crash_event(2), change) == 0);
        CHECK(state.saves == 1);                             // counted: written before the answer
        CHECK(state.last_durability == Durability::process); // synced later by the clock
        REQUIRE(sink.alerts.size() == 1);
        CHECK(sink.alerts[0].id == "s1");
    }
    // A new crashmail (after SIGKILL) finds the count and summarises it when the window ends.
    RecordingSink sink;
    CrashLoopMonitor monitor(settings, sink, &state);
    CHECK(monitor.restore() == 1);
    now = k_t0 + 600s;
    CHECK(monitor.tick() == 1);
    REQUIRE(sink.alerts.size() == 1);
    CHECK(sink.alerts[0].kind == AlertKind::summary);
    CHECK(sink.alerts[0].suppressed == 1);
    CHECK(sink.alerts[0].id.starts_with("m"));
}

TEST_CASE("a story that only alerted survives a SIGKILL: no second 'first crash', and its "
          "recovery is still told",
          "[crash_loop]") {
    MemoryState state;
    time_point now = k_t0;
    CrashLoopMonitorSettings settings;
    settings.loops = limit(3, 600s);
    settings.loops.recovery_notices = true;
    settings.loops.recovery_after = 60s;
    settings.context = AlertContext{"host", ""};
    settings.now = [&] { return now; };
    settings.alert_id = [](const Event& e, std::string_view) {
        return "s" + std::to_string(e.header.serial);
    };
    ProcessStateChange change;
    change.state = "EXITED";
    change.process_name = "crashy";
    change.group_name = "crashy";
    change.from_state = "RUNNING";
    change.expected = false;
    change.pid = 1;
    {
        RecordingSink sink;
        CrashLoopMonitor monitor(settings, sink, &state);
        monitor.start_clock();
        CHECK(monitor.on_alert_event(crash_event(1), change) == 1);
        CHECK(sink.alerts.at(0).body.find("First crash of crashy") != std::string::npos);
        // The clock writes the alerted crash's story (within 50 ms; the guard only turns a
        // hang into a failure).
        bool written = false;
        for (int i = 0; i < 1000 && !written; ++i) {
            std::this_thread::sleep_for(10ms);
            std::lock_guard lock(state.mutex);
            written = state.saves == 1;
        }
        CHECK(written);
        std::lock_guard lock(state.mutex);
        CHECK(state.last_durability == Durability::process);
    } // SIGKILL: the clock stops, nothing else is written
    RecordingSink sink;
    CrashLoopMonitor monitor(settings, sink, &state);
    CHECK(monitor.restore() == 1);
    now += 5s;
    change.pid = 2;
    CHECK(monitor.on_alert_event(crash_event(2), change) == 1);
    REQUIRE(sink.alerts.size() == 1);
    CHECK(sink.alerts[0].occurrence == 2);
    CHECK(sink.alerts[0].body.find("First crash") == std::string::npos);
    CHECK(sink.alerts[0].body.find("Crash 2 of crashy") != std::string::npos);

    // RUNNING, then another SIGKILL: the recovery clock was kept too.
    ProcessStateChange running = change;
    running.state = "RUNNING";
    running.from_state = "STARTING";
    running.expected.reset();
    running.pid = 3;
    Event running_event = crash_event(3);
    running_event.header.event_name = "PROCESS_STATE_RUNNING";
    monitor.on_other_event(running_event, running);
    CHECK(state.saves == 2); // crash 2 alerted (left to a clock, not running here), RUNNING
    RecordingSink after;
    CrashLoopMonitor again(settings, after, &state);
    CHECK(again.restore() == 1);
    now += 61s;
    CHECK(again.tick() == 1);
    REQUIRE(after.alerts.size() == 1);
    CHECK(after.alerts[0].kind == AlertKind::recovery);
}

TEST_CASE("counting() tells how many a window counted so far and until when", "[crash_loop]") {
    CrashLoops loops(limit(1, 600s));
    CHECK_FALSE(loops.counting("crashy", "crashy"));
    loops.on_alert_event(event("EXITED", 1), k_t0); // alerted
    CHECK_FALSE(loops.counting("crashy", "crashy"));
    loops.on_alert_event(event("EXITED", 2), k_t0 + 10s);
    auto counting = loops.counting("crashy", "crashy");
    REQUIRE(counting);
    CHECK(counting->counted == 1);
    CHECK(counting->until == k_t0 + 600s);
    loops.on_alert_event(event("EXITED", 3), k_t0 + 20s);
    CHECK(loops.counting("crashy", "crashy")->counted == 2);
    CHECK_FALSE(loops.counting("other", "other"));
    // The summary accounts for them: the next window starts counting afresh.
    CHECK(loops.due(k_t0 + 600s).size() == 1);
    CHECK_FALSE(loops.counting("crashy", "crashy"));
    loops.on_alert_event(event("EXITED", 4), k_t0 + 610s);
    REQUIRE(loops.counting("crashy", "crashy"));
    CHECK(loops.counting("crashy", "crashy")->counted == 1);
    CHECK(loops.counting("crashy", "crashy")->until == k_t0 + 1200s);
}

TEST_CASE("flood control logs one line per process and window, not one per counted crash",
          "[crash_loop][log]") {
    HoldingSink sink;
    CrashLoopMonitorSettings settings;
    settings.loops = limit(2, 600s);
    settings.context = AlertContext{"host", ""};
    settings.now = [] { return k_t0; };
    settings.alert_id = [](const Event& e, std::string_view) {
        return "s" + std::to_string(e.header.serial);
    };
    ProcessStateChange change;
    change.state = "EXITED";
    change.process_name = "crashy";
    change.group_name = "crashy";
    change.expected = false;
    CrashLoopMonitor monitor(settings, sink, nullptr);
    const int capture = ::memfd_create("stderr", MFD_CLOEXEC);
    REQUIRE(capture >= 0);
    const int saved = ::dup(2);
    ::dup2(capture, 2);
    for (std::uint64_t serial = 1; serial <= 12; ++serial) {
        monitor.on_alert_event(crash_event(serial), change);
    }
    ::dup2(saved, 2);
    ::close(saved);
    std::string logged(64 * 1024, '\0');
    const ssize_t n = ::pread(capture, logged.data(), logged.size(), 0);
    ::close(capture);
    REQUIRE(n > 0);
    logged.resize(static_cast<std::size_t>(n));
    auto count = [&](std::string_view what) {
        std::size_t found = 0;
        for (auto at = logged.find(what); at != std::string::npos; at = logged.find(what, at + 1)) {
            ++found;
        }
        return found;
    };
    INFO(logged);
    CHECK(count(": alert s") == 2);                // two alerts, a line each
    CHECK(count("counted by flood control") == 1); // ten counted, one line
    CHECK(count("further crashes of crashy are counted until ") == 1);
    CHECK(count("\n") == 3);
}

TEST_CASE("the monitor's clock sends a summary without any event", "[crash_loop]") {
    HoldingSink sink; // the clock thread submits too
    std::atomic<std::int64_t> offset{0};
    CrashLoopMonitorSettings settings;
    settings.loops = limit(1, 1s);
    settings.context = AlertContext{"host", ""};
    settings.now = [&] { return std::chrono::system_clock::now() + std::chrono::seconds(offset); };
    settings.alert_id = [](const Event& e, std::string_view) {
        return "s" + std::to_string(e.header.serial);
    };
    ProcessStateChange change;
    change.state = "EXITED";
    change.process_name = "crashy";
    change.group_name = "crashy";
    change.expected = false;
    CrashLoopMonitor monitor(settings, sink, nullptr);
    monitor.start_clock();
    monitor.on_alert_event(crash_event(1), change);
    monitor.on_alert_event(crash_event(2), change);
    for (int i = 0; i < 300 && monitor.submitted() < 2; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    monitor.stop_clock();
    REQUIRE(monitor.submitted() == 2);
    CHECK(sink.alerts().back().kind == AlertKind::summary);
}

TEST_CASE("the monitor's clock syncs a counted event's state to disk", "[crash_loop]") {
    HoldingSink sink; // the clock thread submits too
    MemoryState state;
    CrashLoopMonitorSettings settings;
    settings.loops = limit(1, 600s);
    settings.context = AlertContext{"host", ""};
    settings.alert_id = [](const Event& e, std::string_view) {
        return "s" + std::to_string(e.header.serial);
    };
    ProcessStateChange change;
    change.state = "EXITED";
    change.process_name = "crashy";
    change.group_name = "crashy";
    change.expected = false;
    CrashLoopMonitor monitor(settings, sink, &state);
    monitor.start_clock();
    monitor.on_alert_event(crash_event(1), change);
    monitor.on_alert_event(crash_event(2), change); // counted
    bool synced = false;
    for (int i = 0; i < 300 && !synced; ++i) {
        std::this_thread::sleep_for(10ms);
        std::lock_guard lock(state.mutex);
        synced = state.syncs >= 1;
    }
    monitor.stop_clock();
    CHECK(synced);
    std::lock_guard lock(state.mutex);
    CHECK(state.last_durability == Durability::disk); // the final save at stop
}

TEST_CASE("an event redelivered after it was counted is not counted again", "[crash_loop]") {
    CrashLoops loops(limit(1, 600s));
    StoryEvent first = event("EXITED", 1);
    first.id = "s1.aaaa";
    StoryEvent counted = event("EXITED", 2);
    counted.id = "s2.bbbb";
    loops.on_alert_event(first, k_t0);
    CHECK(loops.on_alert_event(counted, k_t0 + 1s).empty());
    // crashmail was killed before answering: a new crashmail restores the stories and
    // supervisord sends the same event again.
    CrashLoops restarted(limit(1, 600s));
    REQUIRE(restarted.restore(loops.to_json()));
    CHECK(restarted.on_alert_event(counted, k_t0 + 2s).empty());
    auto out = restarted.due(k_t0 + 600s);
    REQUIRE(out.size() == 1);
    CHECK(out[0].suppressed == 1);
}

// The rule these tests keep: no thread but the event loop holds what the event loop needs
// while it writes, fsyncs, renames or unlinks. Each holds another thread inside a submit or
// a save (a fake that waits for the test) and asks the event loop's question meanwhile. The
// waits' guards only turn a hang into a failure.
namespace {

constexpr auto k_guard = std::chrono::seconds(10);

ProcessStateChange exited(const std::string& process) {
    ProcessStateChange change;
    change.state = "EXITED";
    change.process_name = process;
    change.group_name = process;
    change.from_state = "RUNNING";
    change.expected = false;
    change.pid = 1;
    return change;
}

// One alert per minute and process, on a clock the test moves (seconds after k_t0).
CrashLoopMonitorSettings held_settings(const std::atomic<std::int64_t>& seconds) {
    CrashLoopMonitorSettings settings;
    settings.loops = limit(1, 60s);
    settings.context = AlertContext{"host", ""};
    settings.now = [&seconds] { return k_t0 + std::chrono::seconds(seconds.load()); };
    settings.alert_id = [](const Event& e, std::string_view) {
        return "s" + std::to_string(e.header.serial);
    };
    return settings;
}

bool mentions(const std::string& document, std::string_view process) {
    return document.find(process) != std::string::npos;
}

// Once a written document has `process`'s story, every later one has it too: no older
// snapshot landed over a newer one.
bool never_older_after(const std::vector<HoldingState::Landed>& landed, std::string_view process) {
    auto first = std::find_if(landed.begin(), landed.end(),
                              [&](const auto& one) { return mentions(one.content, process); });
    return std::all_of(first, landed.end(),
                       [&](const auto& one) { return mentions(one.content, process); });
}

// An event of a new process ("other") on a thread of its own, as the event loop would ask
// it: whether it returned within the guard (the monitor's answer, then, in `alerts`).
bool event_loop_answers(CrashLoopMonitor& monitor, std::future<std::size_t>& answer) {
    answer = std::async(std::launch::async, [&monitor] {
        return monitor.on_alert_event(crash_event(3, "other"), exited("other"));
    });
    return answer.wait_for(k_guard) == std::future_status::ready;
}

} // namespace

TEST_CASE("the event loop is answered while the clock thread's save of the stories is held, "
          "and the newest stories are written after it",
          "[crash_loop]") {
    HoldingState state([](Durability durability, const std::string&) {
        return durability == Durability::disk; // the clock thread's saves
    });
    HoldingSink sink;
    std::atomic<std::int64_t> seconds{0};
    CrashLoopMonitor monitor(held_settings(seconds), sink, &state);
    ReleaseAtExit release{state.gate};
    state.gate.arm();
    monitor.start_clock();
    CHECK(monitor.on_alert_event(crash_event(1), exited("crashy")) == 1);
    CHECK(monitor.on_alert_event(crash_event(2), exited("crashy")) == 0); // counted
    seconds = 61; // the window ended: the clock sends the summary and saves to disk
    REQUIRE(state.gate.wait_until_holding(k_guard));

    std::future<std::size_t> answer;
    bool answered = event_loop_answers(monitor, answer);
    state.gate.release();
    CHECK(answered);
    CHECK(answer.get() == 1);
    // The held save was of the stories before "other"; the clock writes the newest after it
    // (the event loop found the writer busy).
    CHECK(state.wait_until(k_guard, [](const auto& landed) {
        auto held =
            std::find_if(landed.begin(), landed.end(), [](const auto& one) { return one.held; });
        return held != landed.end() && !mentions(held->content, "other") &&
               mentions(landed.back().content, "other");
    }));
    monitor.stop_clock();
    auto landed = state.landed();
    CHECK(never_older_after(landed, "other"));
    CHECK(landed.back().durability == Durability::disk);
    CHECK(sink.alerts().size() == 3); // crashy's alert and summary, other's alert
}

TEST_CASE("the event loop is answered while the clock thread's submit is held, and its change "
          "is written once the summary is in the outbox",
          "[crash_loop]") {
    HoldingState state([](Durability, const std::string&) { return false; });
    HoldingSink sink([](const Alert& alert) { return alert.kind == AlertKind::summary; });
    std::atomic<std::int64_t> seconds{0};
    CrashLoopMonitor monitor(held_settings(seconds), sink, &state);
    ReleaseAtExit release{sink.gate};
    sink.gate.arm();
    monitor.start_clock();
    monitor.on_alert_event(crash_event(1), exited("crashy"));
    // Alerted: the clock writes its story (the event loop leaves it).
    REQUIRE(state.wait_until(k_guard, [](const auto& landed) { return landed.size() == 1; }));
    // Counted: written before the answer, or, when the clock still held the writer lock
    // after its write, by the clock right after.
    monitor.on_alert_event(crash_event(2), exited("crashy"));
    REQUIRE(state.wait_until(k_guard, [](const auto& landed) { return landed.size() == 2; }));
    seconds = 61;
    REQUIRE(sink.gate.wait_until_holding(k_guard));

    std::future<std::size_t> answer;
    bool answered = event_loop_answers(monitor, answer);
    // Stories that say the summary was sent are not written before it is in the outbox.
    std::size_t written_while_held = state.landed().size();
    sink.gate.release();
    CHECK(answered);
    CHECK(answer.get() == 1);
    CHECK(written_while_held == 2); // the two events before the summary fell due
    CHECK(state.wait_until(k_guard, [](const auto& landed) {
        return !landed.empty() && mentions(landed.back().content, "other");
    }));
    monitor.stop_clock();
    CHECK(never_older_after(state.landed(), "other"));
    auto alerts = sink.alerts();
    CHECK(std::count_if(alerts.begin(), alerts.end(),
                        [](const Alert& alert) { return alert.kind == AlertKind::summary; }) == 1);
    CHECK(std::count_if(alerts.begin(), alerts.end(),
                        [](const Alert& alert) { return alert.process == "other"; }) == 1);
}

TEST_CASE("the event loop is answered while the discard monitor's thread submits or saves "
          "what it recovered",
          "[crash_loop]") {
    StoryEvent lost = event("EXITED", 7, "lost");
    lost.id = "lost-7";
    lost.logged_at = k_t0 - 5s;
    std::atomic<std::int64_t> seconds{0};
    SECTION("its submit is held") {
        HoldingState state([](Durability, const std::string&) { return false; });
        HoldingSink sink([](const Alert& alert) { return alert.process == "lost"; });
        CrashLoopMonitor monitor(held_settings(seconds), sink, &state);
        std::map<std::string, std::uint64_t> recovered;
        sink.gate.arm();
        std::jthread discards([&] { recovered = monitor.on_recovered({lost}); });
        ReleaseAtExit release{sink.gate}; // before the thread is joined
        REQUIRE(sink.gate.wait_until_holding(k_guard));

        std::future<std::size_t> answer;
        bool answered = event_loop_answers(monitor, answer);
        // Not yet in the outbox: no written story says it was sent.
        auto while_held = state.landed();
        sink.gate.release();
        discards.join();
        CHECK(answered);
        CHECK(answer.get() == 1);
        CHECK(std::none_of(while_held.begin(), while_held.end(),
                           [](const auto& one) { return mentions(one.content, "lost"); }));
        CHECK(recovered == std::map<std::string, std::uint64_t>{{"lost", 1}});
        auto landed = state.landed();
        REQUIRE_FALSE(landed.empty());
        CHECK(mentions(landed.back().content, "lost"));
        CHECK(mentions(landed.back().content, "other"));
        CHECK(sink.alerts().size() == 2);
    }
    SECTION("its save is held") {
        HoldingState state([](Durability, const std::string& content) {
            return mentions(content, "lost"); // the first save after the recovery: its own
        });
        HoldingSink sink;
        CrashLoopMonitor monitor(held_settings(seconds), sink, &state);
        std::map<std::string, std::uint64_t> recovered;
        state.gate.arm();
        std::jthread discards([&] { recovered = monitor.on_recovered({lost}); });
        ReleaseAtExit release{state.gate}; // before the thread is joined
        REQUIRE(state.gate.wait_until_holding(k_guard));

        std::future<std::size_t> answer;
        bool answered = event_loop_answers(monitor, answer);
        state.gate.release();
        discards.join();
        CHECK(answered);
        CHECK(answer.get() == 1);
        // The discard monitor's thread wrote its own stories only: "other" was alerted (its
        // alert is in the outbox), so its story is the clock's follow-up, not that thread's.
        auto landed = state.landed();
        REQUIRE(landed.size() == 1);
        CHECK(landed[0].held);
        CHECK_FALSE(mentions(landed[0].content, "other"));
        monitor.start_clock();
        CHECK(state.wait_until(k_guard, [](const auto& all) {
            return all.size() == 2 && mentions(all[1].content, "other") &&
                   all[1].durability == Durability::process;
        }));
        monitor.stop_clock();
    }
}

TEST_CASE("the event loop writes no story for an alerted crash: the clock writes a burst of them "
          "a few times in all, the newest last",
          "[crash_loop]") {
    MemoryState state;
    std::atomic<std::int64_t> seconds{0};
    HoldingSink sink;
    CrashLoopMonitor burst(held_settings(seconds), sink, &state);
    auto newest_has_all = [&](int from, int to) {
        std::lock_guard lock(state.mutex);
        const std::string& document = state.documents["crash-loops"];
        for (int i = from; i < to; ++i) {
            if (!mentions(document, "p" + std::to_string(i) + "\\n")) {
                return false;
            }
        }
        return true;
    };
    auto saves = [&] {
        std::lock_guard lock(state.mutex);
        return state.saves;
    };
    auto wait_for = [&](const std::function<bool()>& done) {
        for (int i = 0; i < 1000 && !done(); ++i) {
            std::this_thread::sleep_for(10ms);
        }
        return done();
    };
    // No clock: 200 alerted crashes (a process each), answered with no write at all.
    for (int i = 0; i < 200; ++i) {
        std::string process = "p" + std::to_string(i);
        CHECK(burst.on_alert_event(crash_event(static_cast<std::uint64_t>(i + 1), process),
                                   exited(process)) == 1);
    }
    CHECK(saves() == 0);
    // The clock writes them, once.
    burst.start_clock();
    CHECK(wait_for([&] { return newest_has_all(0, 200); }));
    CHECK(saves() == 1);
    // With the clock running, 200 more: written once per 50 ms at most while they arrive
    // (plus the one after the last), not once per crash, the newest last. The bound follows
    // the time they took, so that a slow machine (sanitizers) cannot fail it, while a write per
    // crash (200) exceeds it unless each crash took 50 ms.
    const auto started = std::chrono::steady_clock::now();
    for (int i = 200; i < 400; ++i) {
        std::string process = "p" + std::to_string(i);
        burst.on_alert_event(crash_event(static_cast<std::uint64_t>(i + 1), process),
                             exited(process));
    }
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(wait_for([&] { return newest_has_all(0, 400); }));
    const auto bound = static_cast<int>(took / 50ms) + 2;
    INFO("the 200 crashes took " << std::chrono::duration<double>(took).count() << " s");
    CHECK(saves() - 1 <= bound);
    burst.stop_clock();
    CHECK(sink.alerts().size() == 400);
}
