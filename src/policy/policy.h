// tearline sharing policy: the Releaser, the single choke point for everything
// that leaves the node (DESIGN.md "One node, two flows", invariant 5).
//
// Today (issue #3) it applies read permission only; the policy issue (#4) adds
// partners, channels, trust groups, TLP 2.0 and tear-line variants behind the
// same interface. Decide() is pure: no I/O, no clock, no globals.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "store/store.h"

namespace tearline::policy {

//! Who receives: a principal acting over TAXII (later also partners and warnings).
struct Recipient {
  std::string principal;
  bool can_read = false;  //!< read permission on the collection being served
};

enum class Outcome { kWithhold, kRelease, kReleaseVariant };

struct Decision {
  Outcome outcome = Outcome::kWithhold;
  std::string reason;  //!< for the audit log
};

class Releaser {
 public:
  //! The decision for one stored object and one recipient. Pure.
  Decision Decide(const store::StoredObject& object, const Recipient& to) const;

  //! Applies Decide() to a page: returns what may leave, in order. Objects
  //! withheld are dropped; nothing about them is returned.
  std::vector<store::StoredObject> Release(std::vector<store::StoredObject> objects, const Recipient& to) const;

  //! How many objects went through Release() (tests prove every route calls it).
  uint64_t released_calls() const { return calls_.load(); }

 private:
  mutable std::atomic<uint64_t> calls_{0};
};

}  // namespace tearline::policy
