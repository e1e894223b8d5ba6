#pragma once
// --batch digests: the alerts of one batch window collected into one message, the way
// superlance's crashmailbatch mails them.

#include "alert/alert.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace crashmail {

// Returns "d" + 32 hex digits of SHA-256 over the item ids (in the order given, '\n'
// separated): the same items always give the same id, so a digest rebuilt after a crash is
// recognised as the one already stored. Only [a-z0-9], valid in a Message-ID.
std::string digest_id(const std::vector<Alert>& items);

// Builds the digest of `items` (at least one): kind digest, id digest_id() of the items
// ordered oldest first (stable for equal times), host the first item's host, time `now`,
// items oldest first, notify true when any item notifies. The text counts and shows the items
// that notify (all items when none does, for a digest only Alertmanager takes):
//   subject "[PREFIX: ]crashmail: 5 alerts from HOST (web crashed, grp:w1 crashed x3,
//     db recovered)": one line, what each process did in order of first appearance, the same
//     thing repeated as "xN", cut with ", ..." to stay within about 200 characters;
//   body "5 alerts from HOST, oldest first:", then each item's subject and body, separated by
//     a rule line of dashes.
// The prefix, host, names and states go through single_line() (util/text): control
// characters, C1 controls, U+2028 and U+2029 become spaces, so the subject is one line. Pure.
Alert make_digest(std::vector<Alert> items, std::string_view prefix,
                  std::chrono::system_clock::time_point now);

} // namespace crashmail
