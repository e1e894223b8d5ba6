#include "util/no_core.hpp"

#include <cerrno>
#include <cstring>
#include <sys/prctl.h>

namespace crashmail {

CoreDumpPolicy protect_from_core_dumps(bool allow_core_dumps) {
    CoreDumpPolicy policy;
    if (!allow_core_dumps) {
        if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
            policy.problem = std::string("prctl(PR_SET_DUMPABLE, 0): ") + std::strerror(errno);
        }
    }
    policy.dumpable = process_dumpable();
    return policy;
}

bool allows_core_dumps(const char* value) {
    if (value == nullptr) {
        return false;
    }
    const std::string_view text(value);
    return text == "1" || text == "yes" || text == "true";
}

bool process_dumpable() {
    return ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0;
}

} // namespace crashmail
