#include "policy/policy.h"

namespace tearline::policy {

Decision Releaser::Decide(const store::StoredObject& object, const Recipient& to) const {
  if (!to.can_read) return {Outcome::kWithhold, "recipient has no read permission on the collection"};
  return {Outcome::kRelease, "read permission"};
}

std::vector<store::StoredObject> Releaser::Release(std::vector<store::StoredObject> objects, const Recipient& to) const {
  ++calls_;
  std::vector<store::StoredObject> out;
  out.reserve(objects.size());
  for (auto& o : objects) {
    Decision d = Decide(o, to);
    if (d.outcome == Outcome::kRelease) out.push_back(std::move(o));
  }
  return out;
}

}  // namespace tearline::policy
