#pragma once

#include <string>

namespace crashmail {

// Returns a string that identifies this process's parent for as long as it runs and never
// again: the kernel's boot id, the parent's pid and the parent's start time (from
// /proc/<ppid>/stat). Under supervisord this names one supervisord run: event serials start
// at 0 again when supervisord restarts, so alert ids mix this in. Returns "" when /proc
// cannot be read.
std::string parent_process_identity();

} // namespace crashmail
