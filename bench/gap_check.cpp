// What following the pool serials costs per event (app/discard_monitor's event-loop part):
// the gap check (PoolSerials::observe), the mark's text (encode_mark) and its pwrite
// (FileMark::save), timed over many events in a temporary directory. Prints ns per event for
// each part and in all, the median of 5 rounds.
//   gap_check [EVENTS]   (default 200000)

#include "delivery/mark_file.hpp"
#include "event/pool_serials.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double median(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
    const long events = argc > 1 ? std::atol(argv[1]) : 200000;
    char pattern[] = "/tmp/crashmail-gap-check-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) {
        std::perror("mkdtemp");
        return 1;
    }
    const std::filesystem::path directory = pattern;
    auto mark = crashmail::FileMark::open(directory / "pool-serials.mark");
    if (!mark) {
        std::fprintf(stderr, "%s\n", mark.error().c_str());
        return 1;
    }
    std::vector<double> observe_ns;
    std::vector<double> encode_ns;
    std::vector<double> save_ns;
    std::uint64_t gaps = 0;
    for (int round = 0; round < 5; ++round) {
        crashmail::PoolSerials serials("0f5c7a4e-1d2b-4c3a-9e8f-7a6b5c4d3e2f:4711:123456789");
        auto now = std::chrono::system_clock::now();
        std::string record;
        auto start = clock_type::now();
        for (long i = 0; i < events; ++i) {
            gaps +=
                serials.observe(static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(i), now)
                    ? 1
                    : 0;
        }
        auto observed = clock_type::now();
        for (long i = 0; i < events; ++i) {
            record = crashmail::encode_mark(serials.mark());
        }
        auto encoded = clock_type::now();
        for (long i = 0; i < events; ++i) {
            if (!(*mark)->save(record)) {
                std::fprintf(stderr, "save failed\n");
                return 1;
            }
        }
        auto saved = clock_type::now();
        auto per_event = [&](clock_type::time_point from, clock_type::time_point to) {
            return std::chrono::duration<double, std::nano>(to - from).count() /
                   static_cast<double>(events);
        };
        observe_ns.push_back(per_event(start, observed));
        encode_ns.push_back(per_event(observed, encoded));
        save_ns.push_back(per_event(encoded, saved));
    }
    std::filesystem::remove_all(directory);
    const double observe = median(observe_ns);
    const double encode = median(encode_ns);
    const double save = median(save_ns);
    std::printf("events per round: %ld (5 rounds, medians; %llu gaps, expected 0)\n", events,
                static_cast<unsigned long long>(gaps));
    std::printf("gap check (observe): %8.1f ns/event\n", observe);
    std::printf("mark text (encode):  %8.1f ns/event\n", encode);
    std::printf("mark pwrite (save):  %8.1f ns/event\n", save);
    std::printf("total:               %8.1f ns/event\n", observe + encode + save);
    return gaps == 0 ? 0 : 1;
}
