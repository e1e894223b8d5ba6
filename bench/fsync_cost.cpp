// fsync_cost: what one durable spool write costs on this disk, done the way crashmail's
// spool does it: write a temporary file, fsync it, rename it into place, fsync the
// directory. Also each fsync alone, and the same write without any fsync.
//
//   fsync_cost DIR [N]     prints one line of JSON (p50/p99 in ms per variant)

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

using Steady = std::chrono::steady_clock;

double percentile(const std::vector<double>& sorted, double p) {
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
    return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

enum class Sync { both, file_only, directory_only, none };

bool write_one(const std::string& dir, int dir_fd, std::size_t i, const std::string& content,
               Sync sync) {
    std::string temp = dir + "/tmp/" + std::to_string(i);
    std::string final_path = dir + "/pending/" + std::to_string(i) + ".json";
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return false;
    }
    bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
    ok = ok && ((sync != Sync::both && sync != Sync::file_only) || ::fsync(fd) == 0);
    ::close(fd);
    ok = ok && ::rename(temp.c_str(), final_path.c_str()) == 0;
    ok = ok && ((sync != Sync::both && sync != Sync::directory_only) || ::fsync(dir_fd) == 0);
    ::unlink(final_path.c_str());
    return ok;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: fsync_cost DIR [N]\n");
        return 2;
    }
    std::string dir = argv[1];
    std::size_t n = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 200;
    ::mkdir((dir + "/tmp").c_str(), 0700);
    ::mkdir((dir + "/pending").c_str(), 0700);
    int dir_fd = ::open((dir + "/pending").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0 || n == 0) {
        std::fprintf(stderr, "fsync_cost: cannot open %s/pending\n", dir.c_str());
        return 1;
    }
    std::string content(1200, 'x'); // about the size of one alert record
    const Sync variants[] = {Sync::both, Sync::file_only, Sync::directory_only, Sync::none};
    const char* names[] = {"file_and_dir", "file_only", "dir_only", "none"};
    std::vector<std::vector<double>> times(4);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t v = 0; v < 4; ++v) {
            auto start = Steady::now();
            if (!write_one(dir, dir_fd, i * 4 + v, content, variants[v])) {
                std::fprintf(stderr, "fsync_cost: write failed: %s\n", std::strerror(errno));
                return 1;
            }
            times[v].push_back(
                std::chrono::duration<double, std::milli>(Steady::now() - start).count());
        }
    }
    ::close(dir_fd);
    std::printf("{\"writes\":%zu", n);
    for (std::size_t v = 0; v < 4; ++v) {
        std::sort(times[v].begin(), times[v].end());
        std::printf(",\"%s_p50_ms\":%.4f,\"%s_p99_ms\":%.4f", names[v], percentile(times[v], 0.5),
                    names[v], percentile(times[v], 0.99));
    }
    std::printf("}\n");
    return 0;
}
