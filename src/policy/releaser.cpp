#include "policy/policy.h"

#include <algorithm>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

namespace tearline::policy {

namespace {

// Bounded memory: about 100,000 small fact records (markings, distribution, refs).
constexpr size_t kFactsCacheEntries = 100000;

Decision DecideWith(const ObjectFacts* facts, const store::StoredObject& object, const Recipient& to) {
  if (!to.can_read) return {Outcome::kWithhold, "recipient has no read permission on the collection", {}, {}};
  if (!to.partner) return {Outcome::kRelease, "read permission (local principal)", {}, {}};
  if (!facts) return {Outcome::kWithhold, "unreadable object", {}, {}};
  static const Audience kNobody;
  if (to.approved_warning) {
    ObjectFacts f = *facts;
    f.approved_warning_for = true;
    return DecideForPartner(f, *to.partner, to.audience ? *to.audience : kNobody, Held::kNothing);
  }
  Held held = to.held ? to.held(object.Id()) : Held::kNothing;
  Decision d = DecideForPartner(*facts, *to.partner, to.audience ? *to.audience : kNobody, held);
  d.first_release = held == Held::kNothing;
  return d;
}

}  // namespace

// `d` without its object id, shared with the recipient's equal decisions kept before
// (CollectionCache::Known).
SharedDecision Releaser::Distinct(CollectionCache::RecipientDecisions& mine, const Decision& d) {
  auto same = [&](const Decision& x) {
    return x.outcome == d.outcome && x.first_release == d.first_release && x.reason == d.reason && x.strip == d.strip;
  };
  for (const auto& x : mine.distinct) {
    if (same(*x)) return x;
  }
  Decision bare = d;
  bare.object_id.clear();
  auto shared = std::make_shared<const Decision>(std::move(bare));
  if (mine.distinct.size() < CollectionCache::kMaxDistinct) mine.distinct.push_back(shared);
  return shared;
}

// The shared decisions of the objects released (`out`, same order) as copies, for callers that
// keep their own (federation, the CLI, tests). A shared decision without an id (a local
// reader's, one for the page; one kept between pages, CollectionCache::Known) is an object's
// released as stored: its id is that object's.
static void CopyOut(const std::vector<SharedDecision>& from, const std::vector<store::StoredObject>& out,
                    std::vector<Decision>* to) {
  if (!to) return;
  to->reserve(to->size() + from.size());
  for (size_t k = 0; k < from.size(); ++k) {
    to->push_back(*from[k]);
    if (to->back().object_id.empty() && k < out.size()) to->back().object_id = out[k].Id();
  }
}

Decision Releaser::Decide(const store::StoredObject& object, const Recipient& to) const {
  if (!to.can_read || !to.partner) return DecideWith(nullptr, object, to);
  auto facts = ExtractFacts(object.Json(), object.Source());
  return DecideWith(facts ? &*facts : nullptr, object, to);
}

std::vector<store::StoredObject> Releaser::Release(std::vector<store::StoredObject> objects, const Recipient& to,
                                                   std::vector<Decision>* decisions) const {
  std::vector<std::shared_ptr<const ObjectFacts>> facts;
  if (to.partner && to.can_read) {
    facts.reserve(objects.size());
    for (auto& o : objects) o.Own();  // rendered for the partner: its own copy
    for (const auto& o : objects) {
      auto f = ExtractFacts(o.json, o.source);
      facts.push_back(f ? std::make_shared<const ObjectFacts>(std::move(*f)) : nullptr);
    }
  }
  std::vector<SharedDecision> shared;
  auto out = ReleaseWith(std::move(objects), facts, to, decisions ? &shared : nullptr);
  CopyOut(shared, out, decisions);
  return out;
}

std::vector<store::StoredObject> Releaser::ReleaseWith(std::vector<store::StoredObject> objects,
                                                       const std::vector<std::shared_ptr<const ObjectFacts>>& facts,
                                                       const Recipient& to, std::vector<SharedDecision>* decisions,
                                                       const std::vector<SharedDecision>* known,
                                                       std::vector<std::pair<size_t, SharedDecision>>* learned) const {
  ++calls_;
  if (!to.partner) {
    // A local principal: the decision is read permission alone, the same for every object, and
    // objects leave as stored: no per-object work (they may share the store's rows).
    if (objects.empty()) return objects;
    Decision d = DecideWith(nullptr, objects.front(), to);
    if (d.outcome == Outcome::kWithhold) return {};
    // One decision for them all, without an id: each object's own (CopyOut).
    if (decisions) decisions->insert(decisions->end(), objects.size(), std::make_shared<const Decision>(std::move(d)));
    return objects;
  }
  std::vector<store::StoredObject> out;
  out.reserve(objects.size());
  if (decisions) decisions->reserve(decisions->size() + objects.size());
  for (size_t k = 0; k < objects.size(); ++k) {
    auto& o = objects[k];
    if (known && k < known->size() && (*known)[k]) {
      // Decided before in this generation: withheld, or released unchanged.
      if ((*known)[k]->outcome == Outcome::kWithhold) continue;
      out.push_back(std::move(o));
      if (decisions) decisions->push_back((*known)[k]);  // shared, not copied
      continue;
    }
    const ObjectFacts* f = k < facts.size() ? facts[k].get() : nullptr;
    Decision d = DecideWith(f, o, to);
    d.object_id = o.Id();
    if (d.outcome == Outcome::kWithhold) {
      if (learned && f) learned->emplace_back(k, std::make_shared<const Decision>(std::move(d)));
      continue;
    }
    if (to.partner && RendersUnchanged(o.Json(), d, to.resolve, f ? &f->refs : nullptr)) {
      auto shared = std::make_shared<const Decision>(std::move(d));
      if (learned && f) learned->emplace_back(k, shared);  // the same decision, kept for later pages
      out.push_back(std::move(o));
      if (decisions) decisions->push_back(std::move(shared));
      continue;
    } else if (to.partner) {
      bool as_variant = false;
      auto json = Render(o.Json(), d, to.node_identity, to.resolve, &as_variant, f ? &f->refs : nullptr);
      if (!json) continue;
      o.Own();  // changed for the partner: its own copy (a page may share the store's rows)
      if (as_variant) {
        o.id = VariantId(o.id, to.node_identity);
        d.outcome = Outcome::kReleaseVariant;
      }
      o.json = std::move(*json);
    }
    out.push_back(std::move(o));
    if (decisions) decisions->push_back(std::make_shared<const Decision>(std::move(d)));
  }
  return out;
}

// Reads the policy view of objects[k] for each k in `which` (rows read without a body) into
// its json. A version that is gone is left without one (and is withheld: no facts).
static Status FetchViews(store::Store& store, std::string_view collection, std::vector<store::StoredObject>& objects,
                         const std::vector<size_t>& which) {
  if (which.empty()) return Status::Ok();
  std::vector<int64_t> at;
  for (size_t k : which) at.push_back(objects[k].date_added);
  auto views = store.PolicyViews(collection, at);
  if (!views.ok()) return views.status();
  std::unordered_map<int64_t, std::pair<std::string, std::string>*> by_added;
  for (auto& [added, view] : *views) by_added[added] = &view;
  for (size_t k : which) {
    auto it = by_added.find(objects[k].date_added);
    if (it != by_added.end() && it->second->first == objects[k].Id()) {
      objects[k].Own();
      objects[k].json = std::move(it->second->second);
    }
  }
  return Status::Ok();
}

// How the recipient `r` receives each object of `collection` that `ids` name, into `forms`
// (ids the collection does not hold get none: RefForm::kUnknown); `*resolved` lists the ids
// looked up (`ids` and those they lead to). `r.resolve` reads `forms` and `r.held` reads
// `held`, which receives the release history of every object read here.
//
// A referenced object's form is not its decision alone: one released as an original is
// republished under a derived id when its own references change (Render: a reference to a
// variant is rewritten, one to a withheld object dropped), and withheld when a reference it
// cannot lose is withheld (a relationship's source or target, a report's last object) or a
// granular marking takes a required property. So the objects reachable from `ids` through
// references are read level by level (up to kMaxReferenced of them; beyond, an object is
// taken as its decision makes it, as if its references were to objects outside the
// collection), decided, then rendered against each other's forms until no form changes.
// Forms only ever move from original to variant to withheld (more changed references never
// undo a change), so this ends, and cycles of references are no different.
static constexpr size_t kMaxReferenced = 20000;

static Status ResolveReferenced(store::Store& store, std::string_view collection, const std::vector<std::string>& ids,
                                const Recipient& r, std::unordered_map<std::string, Held>& held,
                                std::unordered_map<std::string, RefForm>& forms, std::vector<std::string>* resolved,
                                std::vector<std::string>* resolved_refs) {
  struct Node {
    store::StoredObject object;
    std::optional<ObjectFacts> facts;
    Decision decision;
    bool settled = false;         // its form cannot change (withheld, or the recipient's own)
    bool rendered = false;        // against the forms in `seen`
    std::vector<RefForm> seen;    // the forms of its references when it was last rendered
  };
  std::unordered_map<std::string, Node> graph;  // nodes never move: pointers to them stay valid
  std::unordered_set<std::string> asked(ids.begin(), ids.end());
  std::vector<std::string> level = ids;
  for (bool first = true; !level.empty(); first = false) {
    auto targets = store.Latest(collection, level);
    if (!targets.ok()) return targets.status();
    resolved->insert(resolved->end(), level.begin(), level.end());
    level.clear();
    std::vector<Node*> fresh;
    std::vector<std::string> history;  // whose release history the rules read (the first level's came with the page's)
    for (auto& t : *targets) {
      std::string id = t.id;
      Node& n = graph[id];
      n.facts = ExtractFacts(t.json, t.source);
      if (n.facts) resolved_refs->insert(resolved_refs->end(), n.facts->refs.begin(), n.facts->refs.end());
      n.object = std::move(t);
      fresh.push_back(&n);
      // DecideForPartner reads the history of revoked objects and for the choice of form only.
      const bool matters = n.facts && (n.facts->revoked || n.facts->has_extension || r.partner->tier < n.facts->min_full_tier);
      if (!first && matters && n.object.source != r.partner->identity) history.push_back(id);
    }
    if (!history.empty()) {
      auto h = store.Held(r.partner->identity, history);
      if (!h.ok()) return h.status();
      for (const auto& [id, variant] : *h) held[id] = variant ? Held::kVariant : Held::kOriginal;
    }
    for (Node* n : fresh) {
      const std::string& id = n->object.id;
      if (n->object.source == r.partner->identity) {
        forms[id] = RefForm::kOriginal;  // it came from the recipient: naming it reveals nothing
        n->settled = true;
        continue;
      }
      n->decision = DecideWith(n->facts ? &*n->facts : nullptr, n->object, r);
      n->settled = n->decision.outcome == Outcome::kWithhold;  // so is every object without facts
      forms[id] = n->settled ? RefForm::kWithheld
                  : n->decision.outcome == Outcome::kReleaseVariant ? RefForm::kVariant
                                                                    : RefForm::kOriginal;
      if (n->settled || asked.size() >= kMaxReferenced) continue;  // what it refers to cannot change it
      for (const auto& ref : n->facts->refs) {
        if (!forms.count(ref) && asked.insert(ref).second) level.push_back(ref);
      }
    }
  }
  auto rank = [](RefForm f) { return f == RefForm::kWithheld ? 3 : f == RefForm::kVariant ? 2 : 1; };
  for (bool moved = true; moved;) {
    moved = false;
    for (auto& [id, n] : graph) {
      if (n.settled) continue;
      std::vector<RefForm> now;
      now.reserve(n.facts->refs.size());
      for (const auto& ref : n.facts->refs) now.push_back(r.resolve(ref));
      if (n.rendered && now == n.seen) continue;  // rendered against these forms already
      n.rendered = true;
      n.seen = std::move(now);
      if (RendersUnchanged(n.object.json, n.decision, r.resolve, &n.facts->refs)) continue;
      bool as_variant = false;
      auto json = Render(n.object.json, n.decision, r.node_identity, r.resolve, &as_variant, &n.facts->refs);
      RefForm form = !json ? RefForm::kWithheld : as_variant ? RefForm::kVariant : RefForm::kOriginal;
      if (rank(form) > rank(forms[id])) {
        forms[id] = form;
        moved = true;
        n.settled = form == RefForm::kWithheld;
      }
    }
  }
  return Status::Ok();
}

namespace {
constexpr size_t kMaxNewVersionsChecked = 10000;  // more arrived at once: start over
}  // namespace

void Releaser::KeepOrEmpty(store::Store& store, std::string_view collection, const std::string& generation) const {
  // What arrived since the cache's generation, when only inserts happened (read without the lock).
  std::string from;
  {
    std::shared_lock lock(cache_mu_);
    if (auto it = caches_.find(std::string(collection)); it != caches_.end()) from = it->second.generation;
  }
  // A request whose snapshot is older than the cache's (it began before a commit that another,
  // newer request has seen) reads without the cache (CacheOf finds none for its generation) and
  // leaves it as it is: emptying it for the older state, and again for the newer one, emptied
  // it at nearly every request while objects were arriving (fifteenth session).
  if (!from.empty() && store.GenerationPrecedes(generation, from)) return;
  std::optional<std::vector<std::string>> arrived;
  if (!from.empty()) {
    auto ids = store.IdsStoredBetween(collection, from, generation, kMaxNewVersionsChecked);
    if (ids.ok()) arrived = std::move(*ids);
  }
  std::unique_lock lock(cache_mu_);
  CollectionCache& c = caches_[std::string(collection)];
  const bool within = c.Within();
  if (c.generation == generation && within) return;  // another request did it meanwhile
  if (!c.generation.empty() && store.GenerationPrecedes(generation, c.generation)) return;  // (as above)
  bool keep = within && arrived && c.generation == from;
  for (size_t k = 0; keep && k < arrived->size(); ++k) keep = !c.DependsOn((*arrived)[k]);
  if (!keep) {
    if (!c.generation.empty()) ++caches_emptied_;
    c = CollectionCache{};
  }
  c.generation = generation;
}

Result<std::vector<store::StoredObject>> Releaser::ReleaseFrom(store::Store& store, std::string_view collection,
                                                               std::vector<store::StoredObject> objects,
                                                               const Recipient& to,
                                                               std::vector<Decision>* decisions) const {
  std::vector<SharedDecision> shared;
  auto out = ReleaseFrom(store, collection, std::move(objects), to, decisions ? &shared : nullptr);
  if (out.ok()) CopyOut(shared, *out, decisions);
  return out;
}

Result<std::vector<store::StoredObject>> Releaser::ReleaseFrom(store::Store& store, std::string_view collection,
                                                               std::vector<store::StoredObject> objects,
                                                               const Recipient& to,
                                                               std::vector<SharedDecision>* decisions) const {
  if (!to.partner || !to.can_read) return ReleaseWith(std::move(objects), {}, to, decisions);
  // The objects may share the store's rows (Query::share_rows): read through Id(), Json(), ...;
  // ReleaseWith copies only those it changes.
  // Everything a decision depends on besides the object itself (whose version date_added and
  // the collection generation pin), its release history (read per request, part of the key)
  // and the referenced objects (pinned by the generation too).
  std::string who = to.partner->identity + "|" + to.partner->individual + "|" +
                    std::to_string(static_cast<int>(to.partner->channel)) + "|" + std::to_string(to.partner->tier) + "|";
  for (const auto& g : to.partner->groups) who += g + ",";
  if (to.audience) {
    who += "|" + std::to_string(static_cast<int>(to.audience->default_tlp)) + "|";
    for (const auto& p : to.audience->partners) who += p + ",";
    for (const auto& g : to.audience->groups) who += "|" + g;
  }
  who += std::string("|") + (to.approved_warning ? "warning" : "") + "|" + to.node_identity + "|" + std::string(collection) + "|";
  auto generation = store.CollectionGeneration(collection);
  // Decisions already taken in this generation for this recipient (withheld, or released
  // unchanged): such objects need neither facts nor rendering.
  std::vector<SharedDecision> known(objects.size());
  std::vector<int64_t> keys(objects.size(), -1);
  for (size_t k = 0; k < objects.size(); ++k) {
    if (objects[k].date_added > 0 && objects[k].held >= -1 && objects[k].held <= 1) {
      keys[k] = objects[k].date_added * 4 + (objects[k].held + 1);
    }
  }
  if (generation.ok()) {
    // Lookups share the lock; only a new generation of this collection (which empties its
    // cache, not the other collections') takes it alone.
    auto current = [&] {
      const CollectionCache* c = CacheOf(collection, *generation);
      return c && c->Within();
    };
    bool is_current;
    {
      std::shared_lock shared(cache_mu_);
      is_current = current();
    }
    if (!is_current) KeepOrEmpty(store, collection, *generation);
    std::shared_lock shared(cache_mu_);
    if (const CollectionCache* cc = CacheOf(collection, *generation)) {
      if (auto c = cc->decisions.find(who); c != cc->decisions.end()) {
        for (size_t k = 0; k < objects.size(); ++k) {
          if (keys[k] < 0) continue;
          auto it = c->second.by_version.find(keys[k]);
          if (it != c->second.by_version.end() && it->second.id_hash == std::hash<std::string_view>{}(objects[k].Id())) {
            known[k] = it->second.decision;
          }
        }
      }
    }
  }
  std::vector<std::shared_ptr<const ObjectFacts>> facts(objects.size());
  {
    if (std::any_of(known.begin(), known.end(), [](const auto& d) { return !d; })) {
      std::shared_lock lock(facts_mu_);
      if (auto c = facts_cache_.find(std::string(collection)); c != facts_cache_.end()) {
        for (size_t k = 0; k < objects.size(); ++k) {
          if (known[k]) continue;
          auto it = c->second.find(objects[k].date_added);
          if (it != c->second.end() && it->second.first == objects[k].Id()) facts[k] = it->second.second;
        }
      }
    }
    // Manifest rows come without a body: the policy view of the versions not cached is read now.
    std::vector<size_t> bodiless;
    for (size_t k = 0; k < objects.size(); ++k) {
      if (!known[k] && !facts[k] && objects[k].Json().empty()) bodiless.push_back(k);
    }
    if (auto st = FetchViews(store, collection, objects, bodiless); !st.ok()) return st;
    std::vector<size_t> fresh;
    for (size_t k = 0; k < objects.size(); ++k) {
      if (facts[k] || known[k]) continue;
      const auto& o = objects[k];
      // The JSON of the page, or the policy view read for a manifest row: every fact the rules need.
      auto f = ExtractFacts(o.Json(), o.Source());
      if (!f) continue;
      facts[k] = std::make_shared<const ObjectFacts>(std::move(*f));
      if (o.date_added > 0) fresh.push_back(k);  // only versions really stored are cached
    }
    if (!fresh.empty()) {
      std::unique_lock lock(facts_mu_);
      if (facts_cached_ + fresh.size() > kFactsCacheEntries) {
        facts_cache_.clear();
        facts_cached_ = 0;
      }
      auto& c = facts_cache_[std::string(collection)];
      for (size_t k : fresh) facts_cached_ += c.insert_or_assign(objects[k].date_added, std::pair{std::string(objects[k].Id()), facts[k]}).second;
    }
  }
  std::vector<std::string> refs;
  std::unordered_set<std::string> seen;
  for (const auto& f : facts) {
    if (!f) continue;
    for (const auto& r : f->refs) {
      if (seen.insert(r).second) refs.push_back(r);
    }
  }
  std::unordered_map<std::string, RefForm> forms;
  std::vector<std::string> missing;
  if (!refs.empty()) {
    std::shared_lock lock(cache_mu_);
    const CollectionCache* c = generation.ok() ? CacheOf(collection, *generation) : nullptr;
    const std::unordered_map<std::string, RefForm>* mine = nullptr;  // this recipient's
    if (c) {
      if (auto w = c->refs.find(who); w != c->refs.end()) mine = &w->second;
    }
    for (const auto& id : refs) {
      if (mine) {
        if (auto it = mine->find(id); it != mine->end()) {
          forms[id] = it->second;
          continue;
        }
      }
      missing.push_back(id);
    }
  }
  // The release history of the page's objects (read with them when the query asked for it)
  // and of the referenced objects not cached.
  std::unordered_map<std::string, Held> held;
  std::vector<std::string> all;
  for (size_t k = 0; k < objects.size(); ++k) {
    const auto& o = objects[k];
    if (known[k]) continue;  // decided already: its history is in the key
    if (o.held == -2) all.emplace_back(o.Id());
    else if (o.held >= 0) held[std::string(o.Id())] = o.held ? Held::kVariant : Held::kOriginal;
  }
  all.insert(all.end(), missing.begin(), missing.end());
  auto h = store.Held(to.partner->identity, all);
  if (!h.ok()) return h.status();
  for (const auto& [id, variant] : *h) held[id] = variant ? Held::kVariant : Held::kOriginal;
  Recipient r = to;
  r.held = [&held](std::string_view id) {
    auto it = held.find(std::string(id));
    return it == held.end() ? Held::kNothing : it->second;
  };
  r.resolve = [&forms](std::string_view id) {
    auto it = forms.find(std::string(id));
    return it == forms.end() ? RefForm::kUnknown : it->second;
  };
  std::vector<std::string> resolved;  // `missing` and what they refer to, with their forms now in `forms`
  std::vector<std::string> resolved_refs;  // what the objects resolved refer to (followed or not)
  if (auto st = ResolveReferenced(store, collection, missing, r, held, forms, &resolved, &resolved_refs); !st.ok()) return st;
  if (generation.ok() && !resolved.empty()) {
    std::unique_lock lock(cache_mu_);
    if (CollectionCache* c = CacheOf(collection, *generation)) {
      auto& mine = c->refs[who];
      for (const auto& id : resolved) {
        auto f = forms.find(id);
        c->refs_cached += mine.insert_or_assign(id, f == forms.end() ? RefForm::kUnknown : f->second).second;  // kUnknown: not in the collection
        c->Depend(id);
      }
      for (const auto& id : resolved_refs) c->Depend(id);
    }
  }
  // A bodiless row decided on cached facts needs its view after all when Render may change it
  // (a variant, granular markings, a reference to a withheld object or to a variant).
  std::vector<size_t> render;
  for (size_t k = 0; k < objects.size(); ++k) {
    const auto& f = facts[k];
    if (!f || !objects[k].Json().empty()) continue;
    bool may_change = f->has_extension || !f->granular.empty();
    for (const auto& id : f->refs) {
      RefForm form = r.resolve(id);
      may_change |= form == RefForm::kVariant || form == RefForm::kWithheld;
    }
    if (may_change) render.push_back(k);
  }
  if (auto st = FetchViews(store, collection, objects, render); !st.ok()) return st;
  std::vector<std::pair<size_t, SharedDecision>> learned;
  auto out = ReleaseWith(std::move(objects), facts, r, decisions, &known, &learned);
  if (generation.ok() && !learned.empty()) {
    std::unique_lock lock(cache_mu_);
    if (CollectionCache* cc = CacheOf(collection, *generation)) {
      auto& c = cc->decisions[who];
      for (auto& [k, d] : learned) {
        if (keys[k] >= 0) {
          // What it refers to is depended on already: each reference's form came from this
          // cache or was resolved above and kept in it.
          cc->Depend(d->object_id);
          const uint64_t id_hash = std::hash<std::string_view>{}(d->object_id);
          cc->decisions_cached += c.by_version.insert_or_assign(keys[k], CollectionCache::Known{Distinct(c, *d), id_hash}).second;
        }
      }
    }
  }
  return out;
}

}  // namespace tearline::policy

namespace tearline::policy {
namespace {

struct KnownTlp {
  std::string_view id;
  Tlp tlp;
};
constexpr KnownTlp kTlps[] = {
    // STIX 2.1 §7.2.1.4 (TLP 1.0)
    {"marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9", Tlp::kClear},  // WHITE
    {"marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da", Tlp::kGreen},
    {"marking-definition--f88d31f6-486f-44da-b317-01333bde0b82", Tlp::kAmber},
    {"marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed", Tlp::kRed},
    // OASIS TLP 2.0 (extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d)
    {"marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487", Tlp::kClear},
    {"marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb", Tlp::kGreen},
    {"marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421", Tlp::kAmber},
    {"marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003", Tlp::kAmberStrict},
    {"marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1", Tlp::kRed},
};

bool Contains(const std::vector<std::string>& v, std::string_view x) {
  return !x.empty() && std::find(v.begin(), v.end(), x) != v.end();
}

bool SharesGroup(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  return std::any_of(a.begin(), a.end(), [&](const std::string& g) { return Contains(b, g); });
}

const char* Name(Tlp t) {
  switch (t) {
    case Tlp::kClear: return "TLP:CLEAR";
    case Tlp::kGreen: return "TLP:GREEN";
    case Tlp::kAmber: return "TLP:AMBER";
    case Tlp::kAmberStrict: return "TLP:AMBER+STRICT";
    case Tlp::kRed: return "TLP:RED";
  }
  return "?";
}

}  // namespace

std::optional<Tlp> ParseTlp(std::string_view n) {
  if (n == "clear" || n == "white") return Tlp::kClear;
  if (n == "green") return Tlp::kGreen;
  if (n == "amber") return Tlp::kAmber;
  if (n == "amber+strict") return Tlp::kAmberStrict;
  if (n == "red") return Tlp::kRed;
  return std::nullopt;
}

std::optional<Channel> ParseChannel(std::string_view n) {
  if (n == "open") return Channel::kOpen;
  if (n == "restricted") return Channel::kRestricted;
  if (n == "suspended") return Channel::kSuspended;
  if (n == "closed") return Channel::kClosed;
  return std::nullopt;
}

PartnerRecipient ToRecipient(const store::Partner& p) {
  return {p.identity, "", ParseChannel(p.channel).value_or(Channel::kClosed), p.groups, p.tier};
}

Audience ToAudience(const store::Audience& a) {
  return {a.partners, a.groups, ParseTlp(a.default_tlp).value_or(Tlp::kAmber)};
}

std::optional<Tlp> TlpOfMarking(std::string_view id) {
  for (const auto& k : kTlps) {
    if (k.id == id) return k.tlp;
  }
  return std::nullopt;
}

Tlp EffectiveTlp(const std::vector<std::string>& refs, Tlp fallback) {
  std::optional<Tlp> most;
  for (const auto& r : refs) {
    auto t = TlpOfMarking(r);
    if (t && (!most || *t > *most)) most = t;
  }
  return most.value_or(fallback);
}

namespace {

// Why `tlp` may not reach `to` (channel and TLP rules 2 and 5), or empty when it may.
std::string Denied(Tlp tlp, const ObjectFacts& o, const PartnerRecipient& to, const Audience& audience, bool relay) {
  if (relay && (tlp == Tlp::kRed || tlp == Tlp::kAmberStrict)) return std::string("no relay of ") + Name(tlp);
  if (to.channel == Channel::kSuspended && tlp != Tlp::kClear) {
    return "channel suspended: TLP:CLEAR and warnings only";
  }
  if (to.channel == Channel::kRestricted && tlp > Tlp::kGreen) return "channel restricted: TLP:CLEAR and TLP:GREEN only";
  switch (tlp) {
    case Tlp::kClear:
      return {};
    case Tlp::kGreen:
      if (SharesGroup(to.groups, audience.groups) || Contains(audience.partners, to.identity)) return {};
      return "TLP:GREEN outside the community the collection is shared with";
    case Tlp::kAmber:
      if (Contains(o.distribution, to.identity) || Contains(audience.partners, to.identity)) return {};
      return "TLP:AMBER: organisation not named";
    case Tlp::kAmberStrict:
      if (Contains(o.distribution, to.identity)) return {};
      return "TLP:AMBER+STRICT: organisation not named in the distribution";
    case Tlp::kRed:
      if (Contains(o.distribution, to.individual)) return {};
      return "TLP:RED: recipient not named individually";
  }
  return "unknown TLP";
}

const char* Allowed(Tlp t) {
  switch (t) {
    case Tlp::kClear: return "TLP:CLEAR";
    case Tlp::kGreen: return "TLP:GREEN to the community";
    case Tlp::kAmber: return "TLP:AMBER to a named organisation";
    case Tlp::kAmberStrict: return "TLP:AMBER+STRICT to the named organisation";
    case Tlp::kRed: return "TLP:RED to a named recipient";
  }
  return "?";
}

}  // namespace

Decision DecideForPartner(const ObjectFacts& o, const PartnerRecipient& to, const Audience& audience, Held held) {
  auto withhold = [](std::string why) { return Decision{Outcome::kWithhold, std::move(why), {}}; };
  // 1. An approved duty-to-warn warning addressed to the recipient is released on any
  //    channel (it names the recipient); a closed channel carries nothing else.
  if (o.approved_warning_for) {
    return Decision{Outcome::kRelease,
                    to.channel == Channel::kClosed ? "approved warning across a closed channel" : "approved warning", {}};
  }
  if (to.channel == Channel::kClosed) return withhold("channel closed");
  // 2. Relay: what came from partner A goes to B only if A's markings allow it.
  bool relay = !o.source_partner.empty() && o.source_partner != to.identity;
  Tlp original_tlp = EffectiveTlp(o.marking_refs, audience.default_tlp);
  if (relay && o.no_relay) return withhold("no relay of a no_relay object");
  if (relay && (original_tlp == Tlp::kRed || original_tlp == Tlp::kAmberStrict)) {
    return withhold(std::string("no relay of ") + Name(original_tlp));
  }
  // 3. Revoked objects go only to recipients that hold an earlier version.
  if (o.revoked && held == Held::kNothing) return withhold("revoked, and the recipient never received it");
  // 4. Which form: never both the original and its variant to one recipient.
  bool full = to.tier >= o.min_full_tier;
  Outcome form;
  if (held == Held::kVariant && o.has_extension) {
    form = Outcome::kReleaseVariant;
  } else if (held == Held::kOriginal && !full) {
    return withhold("tier below min_full_tier, and the recipient holds the original: no variant");
  } else if (full) {
    form = Outcome::kRelease;
  } else if (o.has_extension) {
    form = Outcome::kReleaseVariant;
  } else {
    return withhold("tier below min_full_tier");
  }
  // 5. Channel and TLP on the markings of the chosen form.
  bool own_markings = form == Outcome::kReleaseVariant && o.variant_markings_given;
  Tlp tlp = own_markings ? EffectiveTlp(o.variant_marking_refs, audience.default_tlp) : original_tlp;
  if (std::string why = Denied(tlp, o, to, audience, relay); !why.empty()) {
    return withhold(form == Outcome::kReleaseVariant ? "tear-line variant: " + why : why);
  }
  Decision d{form, form == Outcome::kReleaseVariant ? std::string("tear-line variant, ") + Allowed(tlp) : Allowed(tlp), {}};
  // 6. Properties under granular markings the recipient may not see are withheld.
  for (const auto& g : o.granular) {
    auto t = TlpOfMarking(g.marking_ref);
    if (t && !Denied(*t, o, to, audience, relay).empty()) {
      d.strip.insert(d.strip.end(), g.selectors.begin(), g.selectors.end());
    }
  }
  if (!d.strip.empty()) d.reason += " (granular-marked properties withheld)";
  return d;
}

}  // namespace tearline::policy
