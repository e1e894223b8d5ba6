#include "alert/digest.hpp"

#include "util/hash.hpp"
#include "util/text.hpp"
#include "util/utf8.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <utility>

namespace crashmail {
namespace {

// Subject lists stop growing past this many bytes (the whole subject stays near 200).
constexpr std::size_t k_subject_list_limit = 140;
constexpr std::string_view k_rule =
    "------------------------------------------------------------------------";

// What an item says happened, in a word or two: "crashed", "exited", "FATAL",
// "still failing", "recovered".
std::string what_happened(const Alert& item) {
    switch (item.kind) {
    case AlertKind::summary:
        return "still failing";
    case AlertKind::recovery:
        return "recovered";
    case AlertKind::digest:
        return "digest";
    case AlertKind::dropped:
        return "events discarded by supervisord";
    case AlertKind::spool:
        return "spool not writable";
    case AlertKind::channel:
        return item.channel_recovered ? "channel works again" : "channel failing";
    case AlertKind::alert:
        break;
    }
    if (item.state == "EXITED") {
        return item.expected.value_or(false) ? "exited" : "crashed";
    }
    return item.state.empty() ? std::string("changed state") : single_line(item.state);
}

std::string count_text(std::size_t count) {
    return fmt::format("{} alert{}", count, count == 1 ? "" : "s");
}

} // namespace

std::string digest_id(const std::vector<Alert>& items) {
    std::string joined;
    for (const Alert& item : items) {
        joined += item.id;
        joined += '\n';
    }
    std::string id = "d"; // not "d" + ...: g++ 12 -O3 warns falsely (-Wrestrict) on that
    id += sha256_hex(joined, 16);
    return id;
}

Alert make_digest(std::vector<Alert> items, std::string_view prefix,
                  std::chrono::system_clock::time_point now) {
    std::stable_sort(items.begin(), items.end(),
                     [](const Alert& a, const Alert& b) { return a.time < b.time; });
    Alert digest;
    digest.kind = AlertKind::digest;
    digest.id = digest_id(items);
    digest.time = now;
    digest.host = items.empty() ? std::string() : items.front().host;
    digest.notify =
        std::any_of(items.begin(), items.end(), [](const Alert& item) { return item.notify; });

    std::vector<const Alert*> shown;
    for (const Alert& item : items) {
        if (item.notify || !digest.notify) {
            shown.push_back(&item);
        }
    }
    const std::string host = single_line(digest.host.empty() ? "localhost" : digest.host);

    // What each process did, in order of first appearance, repeats counted.
    std::vector<std::pair<std::string, std::size_t>> happenings;
    for (const Alert* item : shown) {
        std::string phrase =
            single_line(display_name(item->group, item->process)) + " " + what_happened(*item);
        auto found = std::find_if(happenings.begin(), happenings.end(),
                                  [&](const auto& entry) { return entry.first == phrase; });
        if (found == happenings.end()) {
            happenings.emplace_back(std::move(phrase), 1);
        } else {
            ++found->second;
        }
    }
    std::string list;
    for (const auto& [phrase, count] : happenings) {
        std::string entry = count > 1 ? fmt::format("{} x{}", phrase, count) : phrase;
        std::string separator = list.empty() ? "" : ", ";
        if (!list.empty() && list.size() + separator.size() + entry.size() > k_subject_list_limit) {
            list += ", ...";
            break;
        }
        if (list.empty() && entry.size() > k_subject_list_limit) {
            // Cut on a character boundary: a subject is never invalid UTF-8.
            entry = std::string(utf8::truncate(entry, k_subject_list_limit)) + "...";
        }
        list += separator + entry;
    }
    std::string clean_prefix = single_line(prefix);
    digest.subject =
        fmt::format("{}crashmail: {} from {}{}", clean_prefix.empty() ? "" : clean_prefix + ": ",
                    count_text(shown.size()), host, list.empty() ? "" : " (" + list + ")");

    digest.body = fmt::format("{} from {}, oldest first:\n", count_text(shown.size()), host);
    bool first = true;
    for (const Alert* item : shown) {
        digest.body += first ? "\n" : fmt::format("\n{}\n\n", k_rule);
        first = false;
        digest.body += item->subject;
        digest.body += '\n';
        if (!item->body.empty()) {
            digest.body += item->body;
            if (item->body.back() != '\n') {
                digest.body += '\n';
            }
        }
    }
    digest.items = std::move(items);
    return digest;
}

} // namespace crashmail
