#pragma once
// The notice sent through the other channels when a channel fails (delivery/channel_health):
// kind `channel`. "crashmail on HOST: channel NAME is failing; N alerts wait", with the peer's
// words and what to do; and "channel NAME works again" when it delivers once more.

#include "alert/alert.hpp"
#include "delivery/channel_health.hpp"

#include <chrono>
#include <string>
#include <string_view>

namespace crashmail {

// Pure: the id and the time are given.
Alert channel_alert(const AlertContext& context, const ChannelNotice& notice,
                    std::chrono::system_clock::time_point now, std::string id);

// A stable id: "c<16 hex>" over the instance, the channel's key, the direction and the time.
std::string channel_notice_id(std::string_view instance, const ChannelNotice& notice,
                              std::chrono::system_clock::time_point now);

} // namespace crashmail
