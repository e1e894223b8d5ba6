#include "util/parent.hpp"

#include <fmt/format.h>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace crashmail {
namespace {

std::string read_first_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

} // namespace

std::string parent_process_identity() {
    pid_t parent = ::getppid();
    std::string stat = read_first_line(fmt::format("/proc/{}/stat", parent));
    // Field 2 (comm) is in parentheses and may hold spaces: count fields after the last ')'.
    std::size_t close = stat.rfind(')');
    if (close == std::string::npos) {
        return {};
    }
    std::istringstream fields(stat.substr(close + 1));
    std::string field;
    // After ')' come fields 3 (state) .. 22 (starttime).
    for (int index = 3; index <= 22 && fields >> field; ++index) {
        if (index == 22) {
            return fmt::format("{}:{}:{}", read_first_line("/proc/sys/kernel/random/boot_id"),
                               parent, field);
        }
    }
    return {};
}

} // namespace crashmail
