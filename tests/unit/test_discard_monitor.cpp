// The discarded-events monitor on fakes: a supervisord whose log and process list are
// scripted (FakeRpc), state and mark in memory, a fake clock. The thread is real: tests wait
// for it with wait_idle() or a bounded poll, never on timing.

#include "app/discard_monitor.hpp"
#include "event/pool_serials.hpp"
#include "fake_rpc.hpp"
#include "fake_store.hpp"
#include "protocol/reader.hpp"
#include "protocol/stream.hpp"
#include "supervisor/main_log.hpp"
#include "util/time.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fstream>
#include <iterator>
#include <thread>

using namespace crashmail;
using crashmail::testing::FakeRpc;
using crashmail::testing::MemoryState;
using namespace std::chrono_literals;

namespace {

using time_point = std::chrono::system_clock::time_point;
const time_point k_t0 = time_point(std::chrono::hours(24 * 20000));

class LockedSink final : public AlertSink {
public:
    void submit(const Alert& alert) override {
        std::lock_guard lock(mutex);
        alerts.push_back(alert);
    }
    std::vector<Alert> of_kind(AlertKind kind) {
        std::lock_guard lock(mutex);
        std::vector<Alert> out;
        for (const Alert& alert : alerts) {
            if (alert.kind == kind) {
                out.push_back(alert);
            }
        }
        return out;
    }
    std::mutex mutex;
    std::vector<Alert> alerts;
};

class MemoryMark final : public MarkStore {
public:
    std::expected<void, std::string> save(std::string_view record) override {
        std::lock_guard lock(mutex);
        ++saves;
        text = std::string(record);
        return {};
    }
    std::expected<std::optional<std::string>, std::string> load() override {
        std::lock_guard lock(mutex);
        return text.empty() ? std::optional<std::string>() : std::optional<std::string>(text);
    }
    std::mutex mutex;
    std::string text;
    int saves = 0;
};

// A fake clock shared by every piece (read from several threads).
struct Clock {
    std::atomic<std::int64_t> ms{
        std::chrono::duration_cast<std::chrono::milliseconds>(k_t0.time_since_epoch()).count()};
    time_point now() const { return time_point(std::chrono::milliseconds(ms.load())); }
    void advance(std::chrono::milliseconds by) { ms += by.count(); }
};

std::string line(time_point time, std::string_view text) {
    return fmt::format("{} {}\n", timefmt::asctime_local(time), text);
}

// supervisord's log of `process` crashing with pids first..last, one per second from `from`.
std::string crash_lines(std::string_view process, std::int64_t first, std::int64_t last,
                        time_point from) {
    std::string out;
    for (std::int64_t pid = first; pid <= last; ++pid) {
        out += line(from, fmt::format("INFO spawned: '{}' with pid {}", process, pid));
        out += line(from + 100ms, fmt::format("INFO success: {} entered RUNNING state, process "
                                              "has stayed up for > than 0 seconds (startsecs)",
                                              process));
        out += line(from + 500ms,
                    fmt::format("WARN exited: {} (exit status 1; not expected)", process));
        from += 1s;
    }
    return out;
}

EventHeader header(std::uint64_t serial, std::uint64_t pool_serial) {
    EventHeader out;
    out.serial = serial;
    out.pool = "cm";
    out.pool_serial = pool_serial;
    out.event_name = "PROCESS_STATE_EXITED";
    return out;
}

Event crash_event(std::uint64_t serial, std::string_view process, std::int64_t pid) {
    Event out;
    out.header = header(serial, serial);
    out.payload = fmt::format("processname:{} groupname:{} from_state:RUNNING expected:0 pid:{}",
                              process, process, pid);
    return out;
}

ProcessStateChange crash_change(std::string process, std::int64_t pid) {
    ProcessStateChange change;
    change.state = "EXITED";
    change.process_name = process;
    change.group_name = std::move(process);
    change.from_state = "RUNNING";
    change.expected = false;
    change.pid = pid;
    return change;
}

// A crash-loop monitor and a discard monitor wired as serve() wires them.
struct Rig {
    explicit Rig(std::unique_ptr<FakeRpc> fake = std::make_unique<FakeRpc>(),
                 std::optional<RateLimit> limit = std::nullopt)
        : rpc(fake.get()) {
        CrashLoopMonitorSettings loop_settings;
        loop_settings.loops.rate_limit = limit;
        loop_settings.context = AlertContext{"host", ""};
        loop_settings.now = [this] { return clock.now(); };
        loop_settings.alert_id = [](const Event& e, std::string_view) {
            return "s" + std::to_string(e.header.serial);
        };
        loops = std::make_unique<CrashLoopMonitor>(loop_settings, sink, &state);
        settings.instance = "boot:1:2";
        settings.self_process = "cm";
        settings.self_group = "cm";
        settings.context = AlertContext{"host", ""};
        settings.window = 600s;
        settings.watched = [](const ProcessStateChange& change) {
            return change.state == "EXITED" || change.state == "FATAL";
        };
        settings.now = [this] { return clock.now(); };
        rpc_owner = std::move(fake);
    }
    void start() {
        discards = std::make_unique<DiscardMonitor>(settings, *loops, sink, &state, &mark,
                                                    std::move(rpc_owner));
        discards->restore();
        discards->start();
    }
    // An event as the listener hands it over: header first, the crash, then the answer.
    void crash(std::uint64_t serial, std::string_view process, std::int64_t pid) {
        Event event = crash_event(serial, process, pid);
        discards->on_event(event);
        loops->on_alert_event(event, crash_change(std::string(process), pid));
        discards->before_answer();
    }
    void other(std::uint64_t serial) {
        Event tick;
        tick.header = header(serial, serial);
        tick.header.event_name = "TICK_5";
        tick.payload = "when:1764000000";
        discards->on_event(tick);
        discards->before_answer();
    }

    Clock clock;
    LockedSink sink;
    MemoryState state;
    MemoryMark mark;
    FakeRpc* rpc;
    std::unique_ptr<FakeRpc> rpc_owner;
    std::unique_ptr<CrashLoopMonitor> loops;
    DiscardMonitorSettings settings;
    std::unique_ptr<DiscardMonitor> discards;
};

// Waits (bounded) until `sink` holds `count` messages of `kind`.
bool wait_for(LockedSink& sink, AlertKind kind, std::size_t count) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
        if (sink.of_kind(kind).size() >= count) {
            return true;
        }
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

} // namespace

TEST_CASE("a gap's crashes are recovered from supervisord's log once, and one notice says so",
          "[discards][discard_monitor]") {
    Rig rig;
    rig.rpc->processes = {ProcessInfo{"web", "web", "RUNNING", "", 0, 1}};
    rig.start();
    rig.clock.advance(10s);
    rig.crash(0, "web", 100); // seen: pid 100
    rig.clock.advance(1s);
    rig.other(1);
    // supervisord logged pids 100..103 crashing; the events of 101..103 were discarded (pool
    // serials 2..4). The event after the gap is 104's crash, not in the log read yet. (A crash
    // in the log whose event is still on its way: the next test.)
    rig.rpc->main_log =
        line(k_t0, "INFO supervisord started with pid 7") + crash_lines("web", 100, 103, k_t0 + 9s);
    rig.clock.advance(5s);
    rig.crash(5, "web", 104);
    rig.discards->wait_idle();
    REQUIRE(wait_for(rig.sink, AlertKind::dropped, 1));

    std::vector<Alert> alerts = rig.sink.of_kind(AlertKind::alert);
    std::vector<std::int64_t> pids;
    for (const Alert& alert : alerts) {
        pids.push_back(alert.pid.value_or(0));
    }
    std::sort(pids.begin(), pids.end());
    CHECK(pids == std::vector<std::int64_t>{100, 101, 102, 103, 104}); // each crash once
    for (const Alert& alert : alerts) {
        INFO(alert.pid.value_or(0));
        bool recovered = alert.pid == 101 || alert.pid == 102 || alert.pid == 103;
        CHECK(alert.from_log == recovered);
        if (recovered) {
            CHECK(alert.body.find("discarded by supervisord; recovered from its log") !=
                  std::string::npos);
        }
    }
    std::vector<Alert> notices = rig.sink.of_kind(AlertKind::dropped);
    REQUIRE(notices.size() == 1);
    CHECK(notices[0].discarded == 3);
    CHECK(notices[0].recovered_crashes == 3);
    CHECK(notices[0].subject == "supervisord discarded 3 events meant for crashmail on host");
    CHECK(notices[0].body.find("web 3") != std::string::npos);
    CHECK(notices[0].body.find("[eventlistener:cm]") != std::string::npos);
    CHECK(rig.discards->totals().discarded == 3);
    CHECK(rig.discards->totals().recovered == 3);
    rig.discards->stop();
    CHECK(rig.state.documents.contains("discards"));
}

TEST_CASE("a recovered crash whose event arrives afterwards is not counted again",
          "[discards][discard_monitor]") {
    Rig rig;
    rig.start();
    rig.clock.advance(10s);
    rig.crash(0, "web", 100);
    rig.rpc->main_log = crash_lines("web", 100, 103, k_t0 + 9s);
    rig.clock.advance(5s);
    rig.other(3); // pool serials 1 and 2 discarded
    rig.discards->wait_idle();
    REQUIRE(wait_for(rig.sink, AlertKind::dropped, 1));
    // The log already showed 101..103: 103's event was still buffered and arrives now.
    rig.crash(4, "web", 103);
    std::size_t with_103 = 0;
    for (const Alert& alert : rig.sink.of_kind(AlertKind::alert)) {
        with_103 += alert.pid == 103 ? 1 : 0;
    }
    CHECK(with_103 == 1);
    CHECK(rig.sink.of_kind(AlertKind::alert).size() == 4);
}

TEST_CASE("crashes logged after the event that ends the gap are not the gap's: their events "
          "follow",
          "[discards][discard_monitor]") {
    Rig rig;
    rig.start();
    rig.clock.advance(10s);
    rig.crash(0, "web", 100);
    rig.rpc->main_log = crash_lines("web", 100, 104, k_t0 + 9s);
    rig.clock.advance(5s);
    rig.crash(2, "web", 102); // pool serial 1 (pid 101) discarded; 103 and 104 still buffered
    rig.discards->wait_idle();
    REQUIRE(wait_for(rig.sink, AlertKind::dropped, 1));
    rig.crash(3, "web", 103);
    rig.crash(4, "web", 104);
    Alert notice = rig.sink.of_kind(AlertKind::dropped).at(0);
    CHECK(notice.discarded == 1);
    CHECK(notice.recovered_crashes == 1);
    std::vector<std::int64_t> from_log;
    std::vector<std::int64_t> arrived;
    for (const Alert& alert : rig.sink.of_kind(AlertKind::alert)) {
        (alert.from_log ? from_log : arrived).push_back(alert.pid.value_or(0));
    }
    CHECK(from_log == std::vector<std::int64_t>{101});
    std::sort(arrived.begin(), arrived.end());
    CHECK(arrived == std::vector<std::int64_t>{100, 102, 103, 104});
}

TEST_CASE("when supervisord's log cannot be read the notice says the crashes are lost",
          "[discards][discard_monitor]") {
    auto fake = std::make_unique<FakeRpc>();
    RpcError fault;
    fault.kind = RpcError::Kind::fault;
    fault.fault_code = 70;
    fault.message = "fault 70: NO_FILE: /var/log/supervisor/supervisord.log";
    fake->failures["readLog"].push_back(fault);
    Rig rig(std::move(fake));
    rig.start();
    rig.clock.advance(10s);
    rig.other(0);
    rig.other(8); // 7 discarded
    rig.discards->wait_idle();
    REQUIRE(wait_for(rig.sink, AlertKind::dropped, 1));
    Alert notice = rig.sink.of_kind(AlertKind::dropped).at(0);
    CHECK(notice.discarded == 7);
    CHECK_FALSE(notice.recovered_crashes.has_value());
    CHECK(notice.body.find("could not be recovered from supervisord's log") != std::string::npos);
    CHECK(notice.body.find("NO_FILE") != std::string::npos);
    CHECK(notice.body.find("syslog") != std::string::npos);
    CHECK(rig.discards->totals().unrecoverable == 7);
}

TEST_CASE("the first events of a supervisord run that nobody answered are a gap, a restart of "
          "crashmail is not",
          "[discards][discard_monitor]") {
    Rig first;
    first.start();
    first.clock.advance(1s);
    first.other(4); // pool serials 0..3 went before crashmail's first event
    first.discards->wait_idle();
    REQUIRE(wait_for(first.sink, AlertKind::dropped, 1));
    CHECK(first.sink.of_kind(AlertKind::dropped).at(0).discarded == 4);
    first.other(5);
    first.discards->stop();

    // The next crashmail of the same supervisord run takes the mark and the state over.
    Rig second;
    second.mark.text = first.mark.text;
    second.state.documents = first.state.documents;
    second.start();
    second.other(5); // the in-flight event, redelivered
    second.other(6);
    second.discards->wait_idle();
    second.discards->stop();
    CHECK(second.sink.of_kind(AlertKind::dropped).empty());
}

TEST_CASE("a gap found just before crashmail stopped is recovered after the restart",
          "[discards][discard_monitor]") {
    Rig first;
    first.settings.instance = "boot:1:2";
    // No thread: the gap is found and kept in the mark, never settled.
    first.discards = std::make_unique<DiscardMonitor>(first.settings, *first.loops, first.sink,
                                                      &first.state, &first.mark, nullptr);
    first.other(0);
    first.other(3);
    first.discards.reset();
    auto mark = decode_mark(first.mark.text);
    REQUIRE(mark);
    CHECK(mark->pending.count == 2);

    Rig second;
    second.mark.text = first.mark.text;
    second.start();
    second.discards->wait_idle();
    REQUIRE(wait_for(second.sink, AlertKind::dropped, 1));
    CHECK(second.sink.of_kind(AlertKind::dropped).at(0).discarded == 2);
}

TEST_CASE("a pool with several listeners (numprocs > 1) raises no notice",
          "[discards][discard_monitor]") {
    auto fake = std::make_unique<FakeRpc>();
    fake->processes = {ProcessInfo{"cm_00", "cm", "RUNNING", "", 0, 1},
                       ProcessInfo{"cm_01", "cm", "RUNNING", "", 0, 2}};
    Rig rig(std::move(fake));
    rig.settings.self_process = "cm_00";
    rig.start();
    rig.other(0);
    rig.other(2); // the other listener got pool serial 1
    rig.discards->wait_idle();
    rig.discards->stop();
    CHECK(rig.sink.of_kind(AlertKind::dropped).empty());
    CHECK(rig.discards->totals().discarded == 0);
}

TEST_CASE("gaps within one window are told in one notice at the window's end",
          "[discards][discard_monitor]") {
    Rig rig;
    rig.start();
    rig.other(0);
    rig.other(2); // 1 discarded: told at once
    rig.discards->wait_idle();
    REQUIRE(wait_for(rig.sink, AlertKind::dropped, 1));
    rig.clock.advance(60s);
    rig.other(5); // 2 more
    rig.clock.advance(60s);
    rig.other(9); // 3 more
    rig.discards->wait_idle();
    CHECK(rig.sink.of_kind(AlertKind::dropped).size() == 1);
    rig.clock.advance(600s);
    REQUIRE(wait_for(rig.sink, AlertKind::dropped, 2));
    Alert second = rig.sink.of_kind(AlertKind::dropped).at(1);
    CHECK(second.discarded == 5);
    CHECK(second.body.find("in the last 10 minutes") != std::string::npos);
    CHECK(rig.discards->totals().notices == 2);
}

namespace {

// The event headers of a real supervisord 4.2.5 session (161 events of pool "rawlog").
std::vector<EventHeader> captured_headers() {
    std::ifstream in(std::string(CRASHMAIL_FIXTURES) + "/stream-supervisor-4.2.5.bin",
                     std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    protocol::StringSource source(bytes, 4096);
    protocol::Reader reader(source);
    std::vector<EventHeader> headers;
    for (;;) {
        auto next = reader.next();
        if (!next || !next->has_value()) {
            break;
        }
        headers.push_back((*next)->header);
    }
    return headers;
}

} // namespace

TEST_CASE("captured headers: a whole session has no gap; cut events are the gap; a restart "
          "with the in-flight event redelivered is none",
          "[discards][discard_monitor]") {
    const std::vector<EventHeader> headers = captured_headers();
    REQUIRE(headers.size() == 161);
    CHECK(headers.front().pool_serial == 0);

    SECTION("the session as it was") {
        PoolSerials serials("run");
        std::size_t gaps = 0;
        for (const EventHeader& header : headers) {
            gaps += serials.observe(header.pool_serial, header.serial, k_t0) ? 1 : 0;
        }
        CHECK(gaps == 0);
    }
    SECTION("events 40 to 49 discarded") {
        PoolSerials serials("run");
        std::vector<SerialGap> gaps;
        for (std::size_t i = 0; i < headers.size(); ++i) {
            if (i >= 40 && i < 50) {
                continue;
            }
            if (auto gap = serials.observe(headers[i].pool_serial, headers[i].serial, k_t0)) {
                gaps.push_back(*gap);
            }
        }
        REQUIRE(gaps.size() == 1);
        CHECK(gaps[0].count == 10);
        CHECK(gaps[0].first == headers[40].pool_serial);
        CHECK(gaps[0].last == headers[49].pool_serial);
    }
    SECTION("crashmail restarted after event 80, which supervisord redelivers") {
        PoolSerials first("run");
        for (std::size_t i = 0; i <= 80; ++i) {
            CHECK_FALSE(first.observe(headers[i].pool_serial, headers[i].serial, k_t0));
        }
        auto mark = decode_mark(encode_mark(first.mark()));
        REQUIRE(mark);
        PoolSerials second("run");
        REQUIRE(second.restore(*mark));
        for (std::size_t i = 80; i < headers.size(); ++i) {
            CHECK_FALSE(second.observe(headers[i].pool_serial, headers[i].serial, k_t0));
        }
    }
    SECTION("a crashmail of another supervisord run: the mark is ignored") {
        PoolSerials first("run 1");
        for (const EventHeader& header : headers) {
            first.observe(header.pool_serial, header.serial, k_t0);
        }
        PoolSerials second("run 2");
        CHECK_FALSE(second.restore(first.mark()));
        CHECK_FALSE(second.observe(headers[0].pool_serial, headers[0].serial, k_t0));
    }
}

TEST_CASE("a log that does not reach back to the gap says so in the notice",
          "[discards][discard_monitor]") {
    Rig rig;
    rig.start();
    rig.clock.advance(10s);
    rig.other(0);
    // Rotated: the log begins 20 s after the last event before the gap.
    rig.rpc->main_log = crash_lines("web", 200, 201, k_t0 + 30s);
    rig.clock.advance(30s);
    rig.other(4);
    rig.discards->wait_idle();
    REQUIRE(wait_for(rig.sink, AlertKind::dropped, 1));
    Alert notice = rig.sink.of_kind(AlertKind::dropped).at(0);
    CHECK(notice.recovered_crashes == 2);
    CHECK(notice.body.find("Note: supervisord's log reaches only back to") != std::string::npos);
    CHECK(notice.body.find("crashes before that could not be checked") != std::string::npos);
}
