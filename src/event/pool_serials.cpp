#include "event/pool_serials.hpp"

#include <charconv>
#include <vector>

namespace crashmail {
namespace {

constexpr std::string_view k_mark_magic = "crashmail-mark 1";
// Half of the serials' cycle: of two serials, the one less than this ahead of the other
// (counting across the wrap to 0) is the later one.
constexpr std::uint64_t k_half_cycle = k_max_serial / 2;

std::int64_t to_ms(std::chrono::system_clock::time_point time) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

template <typename Number> std::optional<Number> number(std::string_view text) {
    Number value{};
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

std::vector<std::string_view> words(std::string_view text) {
    std::vector<std::string_view> out;
    while (!text.empty()) {
        auto space = text.find(' ');
        out.push_back(text.substr(0, space));
        if (space == std::string_view::npos) {
            break;
        }
        text.remove_prefix(space + 1);
    }
    return out;
}

// The mark's checksum: FNV-1a, 64 bits, in hex. It only has to catch a torn or damaged
// block, and it runs on every event (SHA-256 through OpenSSL cost 1.5 us there).
std::string checksum(std::string_view text) {
    std::uint64_t hash = 14695981039346656037ULL;
    for (char c : text) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 1099511628211ULL;
    }
    char digits[17];
    for (int i = 15; i >= 0; --i) {
        digits[i] = "0123456789abcdef"[hash & 0xF];
        hash >>= 4;
    }
    return std::string(digits, 16);
}

// True when serial `a` comes after `b` in supervisord's sequence (which wraps from
// k_max_serial to 0).
bool after(std::uint64_t a, std::uint64_t b) {
    if (a == b) {
        return false;
    }
    std::uint64_t ahead = a > b ? a - b : (k_max_serial - b) + a + 1;
    return ahead < k_half_cycle;
}

// How many serials lie strictly between `last` and `next`, counting across the wrap.
std::uint64_t between(std::uint64_t last, std::uint64_t next) {
    if (next > last) {
        return next - last - 1;
    }
    return (k_max_serial - last) + next; // last+1 .. max, then 0 .. next-1
}

} // namespace

std::string encode_mark(const PoolMark& mark) {
    // Built with to_chars: this runs on every event, and fmt::format of a dozen numbers cost
    // 0.8 us on the benchmark machine (bench/gap_check). The instance never holds a space
    // (boot id, pid, start time joined by ':'); "-" stands for none.
    std::string body;
    body.reserve(160);
    body += k_mark_magic;
    body += ' ';
    body += mark.instance.empty() ? std::string_view("-") : std::string_view(mark.instance);
    auto append = [&body](auto number) {
        char digits[24];
        auto [end, error] = std::to_chars(digits, digits + sizeof digits, number);
        body += ' ';
        body.append(digits, end);
    };
    append(mark.pool_serial);
    append(mark.serial);
    append(mark.seen_ms);
    append(mark.pending.first);
    append(mark.pending.last);
    append(mark.pending.count);
    append(mark.pending.at_start ? 1 : 0);
    append(mark.pending.since_ms);
    append(mark.pending.until_ms);
    append(mark.pending.since_earlier_run ? 1 : 0);
    std::string sum = checksum(body);
    body += ' ';
    body += sum;
    body += '\n';
    return body;
}

std::optional<PoolMark> decode_mark(std::string_view text) {
    auto newline = text.find('\n');
    if (newline == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view line = text.substr(0, newline);
    auto last_space = line.rfind(' ');
    if (last_space == std::string_view::npos ||
        checksum(line.substr(0, last_space)) != line.substr(last_space + 1)) {
        return std::nullopt;
    }
    std::string_view body = line.substr(0, last_space);
    if (!body.starts_with(k_mark_magic) || body.size() <= k_mark_magic.size() ||
        body[k_mark_magic.size()] != ' ') {
        return std::nullopt;
    }
    std::vector<std::string_view> fields = words(body.substr(k_mark_magic.size() + 1));
    if (fields.size() != 11) {
        return std::nullopt;
    }
    PoolMark mark;
    mark.instance = fields[0] == "-" ? std::string() : std::string(fields[0]);
    auto pool_serial = number<std::uint64_t>(fields[1]);
    auto serial = number<std::uint64_t>(fields[2]);
    auto seen = number<std::int64_t>(fields[3]);
    auto first = number<std::uint64_t>(fields[4]);
    auto last = number<std::uint64_t>(fields[5]);
    auto count = number<std::uint64_t>(fields[6]);
    auto at_start = number<int>(fields[7]);
    auto since = number<std::int64_t>(fields[8]);
    auto until = number<std::int64_t>(fields[9]);
    auto earlier = number<int>(fields[10]);
    if (!pool_serial || !serial || !seen || !first || !last || !count || !at_start || !since ||
        !until || !earlier) {
        return std::nullopt;
    }
    mark.pool_serial = *pool_serial;
    mark.serial = *serial;
    mark.seen_ms = *seen;
    mark.pending = {*first, *last, *count, *at_start != 0, *since, *until, *earlier != 0};
    return mark;
}

bool PoolSerials::restore(const PoolMark& mark) {
    if (mark.instance != m_mark.instance) {
        return false;
    }
    m_mark = mark;
    m_seen = true;
    m_from_earlier = true;
    return true;
}

std::optional<SerialGap> PoolSerials::observe(std::uint64_t pool_serial, std::uint64_t serial,
                                              time_point now) {
    const std::int64_t now_ms = to_ms(now);
    const bool first = !m_seen;
    std::optional<SerialGap> gap;
    if (first) {
        if (pool_serial > 0 && !m_baseline) { // serials start at 0: every earlier one is missing
            gap = SerialGap{0, pool_serial - 1, pool_serial, true, 0, now_ms, false};
        }
    } else {
        const std::uint64_t last = m_mark.pool_serial;
        if (after(pool_serial, last)) {
            if (std::uint64_t missing = between(last, pool_serial); missing > 0) {
                gap = SerialGap{last == k_max_serial ? 0 : last + 1,
                                pool_serial == 0 ? k_max_serial : pool_serial - 1,
                                missing,
                                false,
                                m_mark.seen_ms,
                                now_ms,
                                m_from_earlier};
            }
        } else if (after(serial, m_mark.serial)) {
            // A new event (its global serial is new) with an old pool serial: supervisord
            // made the pool anew (a reload), and its serials started at 0 again.
            if (pool_serial > 0) {
                gap = SerialGap{0,      pool_serial - 1, pool_serial, true, m_mark.seen_ms,
                                now_ms, m_from_earlier};
            }
        } else {
            return std::nullopt; // redelivered (or requeued): nothing new
        }
    }
    m_seen = true;
    m_from_earlier = false;
    m_mark.pool_serial = pool_serial;
    if (first || after(serial, m_mark.serial)) {
        m_mark.serial = serial; // the latest global serial (it wraps too)
    }
    m_mark.seen_ms = now_ms;
    return gap;
}

SerialGap merge_gaps(const SerialGap& older, const SerialGap& newer) {
    if (older.count == 0) {
        return newer;
    }
    SerialGap out = older;
    out.last = newer.last;
    out.count = older.count + newer.count;
    out.until_ms = newer.until_ms;
    return out;
}

} // namespace crashmail
