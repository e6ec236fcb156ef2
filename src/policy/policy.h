// tearline sharing policy: the Releaser, the single choke point for everything
// that leaves the node (DESIGN.md "One node, two flows", invariant 5).
//
// Today (issue #3) it applies read permission only; the policy issue (#4) adds
// partners, channels, trust groups, TLP 2.0 and tear-line variants behind the
// same interface. Decide() is pure: no I/O, no clock, no globals.
#pragma once

#include <atomic>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "store/store.h"

namespace tearline::policy {

enum class Outcome { kWithhold, kRelease, kReleaseVariant };

struct Decision {
  Outcome outcome = Outcome::kWithhold;
  std::string reason;  //!< for the audit log
};


// ---- The sharing rules as pure functions (DESIGN.md "Policy model"; issue #4) ----

//! TLP 2.0 levels, least to most restrictive. TLP 1.0 WHITE is CLEAR.
enum class Tlp { kClear = 0, kGreen = 1, kAmber = 2, kAmberStrict = 3, kRed = 4 };

//! The TLP level of a marking-definition id: the four STIX 2.1 TLP 1.0
//! definitions (§7.2.1.4) and the five OASIS TLP 2.0 ones. nullopt otherwise.
std::optional<Tlp> TlpOfMarking(std::string_view marking_id);

//! The most restrictive TLP among `marking_refs`; `fallback` when none is a TLP marking.
Tlp EffectiveTlp(const std::vector<std::string>& marking_refs, Tlp fallback);

//! A partner's channel state.
enum class Channel { kOpen, kRestricted, kSuspended, kClosed };

//! What the rules need to know about one object (extracted once; no I/O in Decide).
struct ObjectFacts {
  std::vector<std::string> marking_refs;   //!< object_marking_refs
  std::string source_partner;              //!< identity of the partner it came from; empty: our own
  bool no_relay = false;                   //!< the source forbade relaying
  std::vector<std::string> distribution;   //!< named organisations / individuals (tearline extension)
  bool approved_warning_for = false;       //!< an approved duty-to-warn warning addressed to the recipient
};

//! Who receives, as a partner organisation.
struct PartnerRecipient {
  std::string identity;                    //!< the partner organisation (STIX identity id)
  std::string individual;                  //!< the named person acting for it, if any
  Channel channel = Channel::kOpen;
  std::vector<std::string> groups;         //!< trust groups it belongs to
};

//! To whom a collection is shared.
struct Audience {
  std::vector<std::string> partners;       //!< identities
  std::vector<std::string> groups;         //!< trust groups
  Tlp default_tlp = Tlp::kAmber;           //!< for objects that carry no TLP marking
};

//! The decision for one object and one partner (withhold or release; tear-line
//! variants come with the extension of issue #4). Pure: same inputs, same answer.
Decision DecideForPartner(const ObjectFacts& object, const PartnerRecipient& to, const Audience& audience);





//! Who receives: a principal acting over TAXII, possibly for a partner organisation.
struct Recipient {
  std::string principal;
  bool can_read = false;                     //!< read permission on the collection being served
  const PartnerRecipient* partner = nullptr; //!< set when the principal acts for a partner
  const Audience* audience = nullptr;        //!< the collection's audience (with partner)
};

//! Store records to policy values (unknown channel strings are treated as closed,
//! unknown TLP names as AMBER: the safe side).
PartnerRecipient ToRecipient(const store::Partner& p);
Audience ToAudience(const store::Audience& a);
std::optional<Tlp> ParseTlp(std::string_view name);
std::optional<Channel> ParseChannel(std::string_view name);

class Releaser {
 public:
  //! The decision for one stored object and one recipient. Pure.
  Decision Decide(const store::StoredObject& object, const Recipient& to) const;

  //! Applies Decide() to a page: returns what may leave, in order. Objects
  //! withheld are dropped; nothing about them is returned.
  //! When `decisions` is given it receives the decision of each released object (same order).
  std::vector<store::StoredObject> Release(std::vector<store::StoredObject> objects, const Recipient& to,
                                           std::vector<Decision>* decisions = nullptr) const;

  //! How many objects went through Release() (tests prove every route calls it).
  uint64_t released_calls() const { return calls_.load(); }

 private:
  mutable std::atomic<uint64_t> calls_{0};
};

}  // namespace tearline::policy
