// tearline duty to warn (issue #6): warnings to threatened parties, across closed channels.
//
// This is the public header of src/warn. A rule fires when stored intelligence (an
// indicator, campaign, threat-actor, intrusion-set or attack-pattern) has a `targets`
// relationship to a location or identity that maps to a registered party (store::Party)
// with confidence at or above the threshold. It creates a draft: a STIX report
// (report_types "threat-report", label "duty-to-warn") built only from sanitized copies
// (tear-line variants) of the intelligence. A person decides: approve, waive (the recorded
// decision not to warn because warning would endanger sources and methods; a reason is
// required) or reject; with the two-person rule two different approvers are needed. An
// approved warning is delivered to the party's warning endpoint through the Releaser (an
// approved warning addressed to a party passes on any channel, even closed), signed like
// every federation release, retried until delivered. The party's node acknowledges with
// a signed STIX note; the sender records it. An approved warning can be published as a
// public advisory: a CAP 1.2 alert, an Atom feed entry, and a TLP:CLEAR STIX report.
// Every step is in the audit log.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "audit/audit.h"
#include "common/status.h"
#include "federation/federation.h"
#include "policy/policy.h"
#include "store/store.h"

namespace tearline::warn {

struct Rules {
  int64_t min_confidence = 50;  //!< 0..100; intelligence without confidence counts as 0
  std::vector<std::string> source_types = {"indicator", "campaign", "threat-actor", "intrusion-set", "attack-pattern"};
  bool two_person = false;      //!< two different approvers
  std::string public_collection = "public";  //!< where public advisories go as STIX
};

//! Evaluates the rules over relationships stored in `collection` since the last scan
//! (position kept in the store). Creates one draft per (party, intelligence object); a
//! repeated scan creates nothing new. Returns the ids of new drafts.
Result<std::vector<std::string>> Scan(store::Store& store, std::string_view collection, const Rules& rules);

//! approve | waive | reject, by `who`, with a reason (required for waive and reject).
//! `instruction` (approve only) is the approved advice to the public for a later advisory.
Status Decide(store::Store& store, std::string_view id, std::string_view action, std::string_view who,
              std::string_view reason, std::string_view instruction, const Rules& rules);

//! Delivers approved warnings whose attempt is due; returns how many were delivered.
Result<size_t> DeliverDue(store::Store& store, const policy::Releaser& releaser, const audit::NodeKey& key,
                          const federation::Options& options);

//! Sender side: notes among `objects` (just stored, from partner `source`) that acknowledge a
//! delivered warning addressed to that party are recorded (state acknowledged) and audited.
Status RecordAcknowledgements(store::Store& store, const std::vector<stix::Object>& objects, std::string_view source);

//! Receiver side: for each warning report among `objects` (stored, from partner node
//! `source`), the acknowledgement note this node sends back (compact JSON objects).
std::vector<std::string> AcknowledgementsFor(const std::vector<stix::Object>& objects, std::string_view node_identity);

//! Publishes an approved (or delivered) warning as a public advisory: CAP 1.2 alert,
//! Atom entry, TLP:CLEAR STIX report in rules.public_collection. Only approved text, and only
//! if the Releaser releases the advisory to an anonymous member of the public.
Status Publish(store::Store& store, const policy::Releaser& releaser, std::string_view id, std::string_view who,
               const Rules& rules);

//! The CAP 1.2 alert of a published warning (also stored on the warning).
std::string CapAlert(const store::Warning& w, std::string_view sender, int64_t sent_us);
//! The Atom feed (RFC 4287) of published advisories; `base` is the node's public URL.
std::string AtomFeed(const std::vector<store::Warning>& warnings, std::string_view base, std::string_view node_identity);

//! What a warning's report says (from its bundle): headline, description, area, confidence.
struct Summary {
  std::string headline, description, area, country;
  int64_t confidence = 0;
};
Summary Summarize(const store::Warning& w);

}  // namespace tearline::warn
