#pragma once
// Events supervisord discarded, found from the pool serials a listener sees.
//
// supervisord numbers every event a listener pool accepts (`poolserial`, supervisor/process.py
// EventListenerPool._acceptEvent) before it buffers it; when the buffer is full it discards
// the oldest buffered event, whose number is then never delivered. So a jump in the pool
// serials a listener sees is a count of discarded events. A redelivered event keeps both its
// serials (not a gap). Both counters start at 0 with supervisord and wrap from Python's
// sys.maxsize to 0 (`new_serial`); a reload (SIGHUP) makes new pools, whose serials start at
// 0 again while the global serial goes on.
//
// Pure: the caller persists mark() (MarkStore) before the event is answered, so that a restart
// of crashmail is not mistaken for a gap and a gap that spans one is still found.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace crashmail {

// Python's sys.maxsize on a 64-bit machine: the last serial before the counters wrap to 0.
inline constexpr std::uint64_t k_max_serial = 9223372036854775807ULL;

// Pool serials that were never delivered: `first` to `last` (wrapping past k_max_serial).
struct SerialGap {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    std::uint64_t count = 0;
    // The pool's first events (of a supervisord run, or after a reload) are missing: no earlier
    // event of it was seen.
    bool at_start = false;
    // When the event before the gap was seen (ms since the epoch); 0 when none was.
    std::int64_t since_ms = 0;
    // When the event after the gap was seen (ms since the epoch).
    std::int64_t until_ms = 0;
    // The event before the gap was seen by an earlier crashmail of this supervisord run.
    bool since_earlier_run = false;

    bool operator==(const SerialGap&) const = default;
};

// Where a pool's serials stand: what is kept across restarts of crashmail.
struct PoolMark {
    std::string instance; // parent_process_identity(): which supervisord run
    std::uint64_t pool_serial = 0;
    std::uint64_t serial = 0; // the latest global serial seen
    std::int64_t seen_ms = 0; // when the last new pool serial was seen
    // A gap found but not yet handed on for recovery (crashmail stopped first): kept in the
    // mark so that it is recovered after a restart. count 0: none.
    SerialGap pending;

    bool operator==(const PoolMark&) const = default;
};

// The mark as one line of text ("crashmail-mark 1 ..." with a checksum), and back;
// std::nullopt for text that is not a whole, intact mark.
std::string encode_mark(const PoolMark& mark);
std::optional<PoolMark> decode_mark(std::string_view text);

class PoolSerials {
public:
    using time_point = std::chrono::system_clock::time_point;

    // `instance` names the supervisord run that sends the events.
    explicit PoolSerials(std::string instance) { m_mark.instance = std::move(instance); }

    // Takes over what an earlier crashmail kept; a mark of another supervisord run is
    // ignored (its serials mean nothing now). Returns true when the mark was taken.
    bool restore(const PoolMark& mark);

    // The first event observed (without a restored mark) starts the count instead of being
    // measured from 0: for a spool that an earlier crashmail without marks used.
    void take_first_as_baseline() { m_baseline = true; }

    // An event with these serials arrived at `now`. Returns the gap before it, if any.
    std::optional<SerialGap> observe(std::uint64_t pool_serial, std::uint64_t serial,
                                     time_point now);

    // The state to keep (see restore()).
    const PoolMark& mark() const { return m_mark; }
    // Records a gap that still waits for recovery (kept in the mark), or clears it (count 0).
    void set_pending(const SerialGap& gap) { m_mark.pending = gap; }

private:
    PoolMark m_mark;
    bool m_seen = false;         // a pool serial of this run is known
    bool m_from_earlier = false; // ... and it was seen by an earlier crashmail
    bool m_baseline = false;     // take_first_as_baseline()
};

// Merges two gaps into one span (first of the older, last of the newer; counts added).
SerialGap merge_gaps(const SerialGap& older, const SerialGap& newer);

} // namespace crashmail
