#pragma once
// The enrichment stage's interface, in its own header so that what implements it
// (supervisor/crash_details) needs nothing of the delivery code that runs it.

#include "alert/alert.hpp"

#include <string_view>

namespace crashmail {

// An optional stage between submit() and the channels that adds details to an alert (for
// crashmail: the log tail and exit status fetched from supervisord) and renders its final
// text. It runs on the dispatcher's own enrichment thread, one alert at a time, so the event
// loop never waits for it; the channels get an alert only after this stage is done with it.
class AlertEnricher {
public:
    virtual ~AlertEnricher() = default;
    // Called once on the enrichment thread before the first alert.
    virtual void start() {}
    // Adds what it can find to `alert` and renders its final subject and body. Must return
    // within a bounded time (every alert waits behind the one being enriched).
    virtual void enrich(Alert& alert) = 0;
    // Renders the final text without fetching anything; `reason` says why (one line).
    virtual void skip(Alert& alert, std::string_view reason) = 0;
    // Makes an enrich() in progress return soon, skipping what is left (the alert is still
    // rendered, with a note saying why details are missing); every later enrich() fetches
    // nothing. Thread-safe; called from another thread than enrich(). Default: does nothing
    // (an enrich() then ends within its own bounded time).
    virtual void cancel() {}
};

} // namespace crashmail
