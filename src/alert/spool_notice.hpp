#pragma once
// The notice sent through every channel when the spool refuses records (a full disk, a
// vanished or unwritable directory): alerts then wait in memory, retried, and are lost if
// crashmail stops before the spool takes them. Kind `spool`.

#include "alert/alert.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

// The notice as an alert: `reason` is what the spool said, `waiting` how many alerts wait in
// memory, `spool` the listener's spool directory. Pure: the id and the time are given.
Alert spool_alert(const AlertContext& context, std::string_view reason, std::size_t waiting,
                  const std::string& spool, std::chrono::system_clock::time_point now,
                  std::string id);

// The notice sent once at start-up by a listener that found no spool it could use (see
// delivery/spool_location): alerts are delivered from memory and lost if crashmail stops
// before delivering them. `reasons`: what was wrong with each place tried; `fix`: what to do.
// Kind `spool`. Pure.
Alert no_spool_alert(const AlertContext& context, const std::vector<std::string>& reasons,
                     std::string_view fix, std::chrono::system_clock::time_point now,
                     std::string id);

// A stable id for a notice: "s<16 hex>" over the instance and the time.
std::string spool_notice_id(std::string_view instance, std::chrono::system_clock::time_point now);

} // namespace crashmail
