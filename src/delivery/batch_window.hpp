#pragma once
// --batch: alerts the enrichment stage is done with are held (durably: their records are
// marked `held`) instead of going to the channels. The first alert held opens a window that
// ends `batch` later; then one digest of every held alert (make_digest()) is stored, the held
// records are removed, and the digest goes to the channels like any alert (retries,
// failed/). Delivery stays at-least-once: a crash between storing the digest and removing its
// items sends those items again after the restart (in a digest with the same id when nothing
// else joined them; the stored digest is then kept rather than sent twice). A digest that
// the spool refuses waits in memory; its items stay held in the store until the next start.

#include "delivery/outbox.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace crashmail {

struct DigestSettings {
    // -o: a digest's subject starts with "PREFIX: " when this is not empty.
    std::string prefix;
    std::function<std::chrono::system_clock::time_point()> now;
    // The channel states a new digest starts with: one per channel that wants it.
    std::function<std::map<std::string, ChannelState>(const Alert& digest)> channels_for;
};

// Builds the digest of the held records `ids` (those still held), stores it and removes the
// items from the outbox. Returns the digest's record to forward to the channels, or
// std::nullopt when there is nothing to send (no item still held, or no channel wants it).
std::optional<AlertRecord> store_digest(Outbox& outbox, const std::vector<std::string>& ids,
                                        const DigestSettings& settings);

class BatchWindow {
public:
    // `send` gets the ids held in a window when it ends, on the window's thread.
    BatchWindow(std::function<std::chrono::system_clock::time_point()> now,
                std::function<void(const std::vector<std::string>& ids)> send);
    // Same as stop().
    ~BatchWindow();
    BatchWindow(const BatchWindow&) = delete;
    BatchWindow& operator=(const BatchWindow&) = delete;

    void start();
    // Holds record `id`; the window ends at `window_end` unless it is open already (then at
    // the earlier of the two). Returns true when this opened the window.
    bool hold(const std::string& id, std::chrono::system_clock::time_point window_end);
    // Holds every record of `ids` at once (a window already past takes them all).
    bool hold(const std::vector<std::string>& ids,
              std::chrono::system_clock::time_point window_end);
    // Waits for a digest in progress (store writes only) and joins the thread. Returns how
    // many records were held in the open window (they stay held in the store: no half-window
    // digest). Idempotent.
    std::size_t stop();

private:
    struct Core;
    std::shared_ptr<Core> m_core;
};

} // namespace crashmail
