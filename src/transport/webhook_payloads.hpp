#pragma once
// The bodies crashmail posts to HTTP endpoints, built from an Alert with nlohmann::json.
// Pure functions: the same alert always gives the same document.

#include "alert/alert.hpp"

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

namespace crashmail {

// The version of webhook_document()'s schema. New fields may be added within a version;
// a field is never removed or changes type without a new version.
inline constexpr int k_webhook_schema_version = 1;

// The generic JSON document (--webhook), schema version 1:
//   version (int), id, event, state, process, group, from_state (string or null),
//   pid (int or null), expected (bool or null), serial (int), host, time (RFC 3339 UTC),
//   subject, message (the alert's body); added within version 1 (additive): exit_status,
//   spawn_error, log_tail, log_source ("stderr" or "stdout"), details_note (strings or null);
//   added within version 1 (additive) for crash loops and digests:
//     kind ("alert", "summary", "recovery", "digest", "dropped" or "spool"),
//     occurrence (int: the event is the Nth of its process's crash-loop story; null unknown),
//     suppressed (int: events counted instead of sent that this message accounts for),
//     story_start (RFC 3339 UTC: the story's first event; null when none),
//     window_seconds (int: a summary's flood-control window; null otherwise),
//     resolves (array of {state (string), expected (bool)}: the alerts a recovery ends;
//       [] otherwise),
//     items (array: a digest's messages oldest first, each a complete document of this
//       schema, only those the channel would have got on their own (notify); [] otherwise).
//   A digest's own event, state, process, group, from_state, pid and expected are null.
//   added within version 1 (additive) for events supervisord discarded:
//     discarded (int: events supervisord discarded that a "dropped" notice accounts for; 0
//       otherwise),
//     recovered_crashes (int: crashes of them recovered from supervisord's log; null when
//       they could not be, and for other kinds),
//     from_log (bool: an alert whose event was discarded, rebuilt from supervisord's log).
//   A dropped notice's event, state, process, group, from_state, pid and expected are null.
// Unknown values are null, never missing.
nlohmann::json webhook_document(const Alert& alert);

// A Slack incoming-webhook message: "text" (the subject and body, also what Mattermost and
// Rocket.Chat show) and "blocks" (header, body, a field list and a context line) for Slack.
// Text is escaped for Slack's mrkdwn (&, <, >) and cut to Slack's block limits.
nlohmann::json slack_payload(const Alert& alert);

// A Discord webhook message: "content" (the subject, <= 2000 characters) and one embed with
// title, description (the body, <= 4096), fields, timestamp and footer, within Discord's
// limits (the whole embed stays under 6000 characters). Mentions are disabled so a process
// name like "@everyone" pings nobody.
nlohmann::json discord_payload(const Alert& alert);

// Alertmanager API v2 (POST /api/v2/alerts): an array of alerts whose labels are alertname
// (alertmanager_alert_name()), host, group, process and state, and whose annotations are
// summary (the subject), description (the body), id, and when known from_state, pid,
// exit_status, spawn_error, log_tail, details_note and suppressed (events counted instead
// of sent, when > 0). By kind:
//   alert, summary: one firing alert for the event's state, startsAt the alert's time, no
//     endsAt (Alertmanager resolves it after its resolve_timeout unless a recovery comes);
//   recovery: one alert per `resolves` entry with exactly the labels the firing alert had
//     (alertname and state from the entry), startsAt the story's start (the recovery's
//     time when unknown) and endsAt the recovery's time, so Alertmanager resolves it;
//   digest: every item's alerts, in item order, in one array.
nlohmann::json alertmanager_payload(const Alert& alert);

// "ProcessCrashed" for an unexpected EXITED, "ProcessExited" for an expected one,
// "ProcessFatal", "ProcessBackoff", ... ("Process" + the state in CamelCase) otherwise.
std::string alertmanager_alert_name(const Alert& alert);

// A dropped notice's Alertmanager alert: labels alertname and host, annotations summary,
// description, id, discarded and recovered_crashes; it resolves itself (endsAt) this long
// after it was sent.
inline constexpr const char* k_dropped_alert_name = "CrashmailEventsDiscarded";
inline constexpr std::chrono::hours k_dropped_alert_lifetime{1};
// A spool notice's (kind "spool": the spool refuses records, alerts wait in memory):
// labels alertname and host, annotations summary, description and id; endsAt as a dropped
// notice's.
inline constexpr const char* k_spool_alert_name = "CrashmailSpoolNotWritable";
// A channel's deliveries failing (kind "channel"), labelled channel=<its name>; the notice that
// it works again resolves it.
inline constexpr const char* k_channel_alert_name = "CrashmailChannelFailing";

// Serialises a payload the way it goes on the wire: compact, UTF-8, invalid UTF-8 replaced
// by U+FFFD instead of throwing.
std::string serialize_payload(const nlohmann::json& payload);

} // namespace crashmail
