// tearline sharing policy: the Releaser, the single choke point for everything
// that leaves the node (DESIGN.md "One node, two flows", invariant 5).
//
// Today (issue #3) it applies read permission only; the policy issue (#4) adds
// partners, channels, trust groups, TLP 2.0 and tear-line variants behind the
// same interface. Decide() is pure: no I/O, no clock, no globals.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "store/store.h"
#include "stix/stix.h"

namespace tearline::policy {

enum class Outcome { kWithhold, kRelease, kReleaseVariant };

struct Decision {
  Outcome outcome = Outcome::kWithhold;
  std::string reason;               //!< for the audit log
  std::vector<std::string> strip;   //!< granular-marking selectors the recipient may not see
  std::string object_id;            //!< the original id (set by Releaser::Release)
  bool first_release = false;       //!< the recipient held no form of it before (record in the history)
};
//! A decision shared between the Releaser's cache and the pages it was taken for (immutable).
using SharedDecision = std::shared_ptr<const Decision>;


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

//! tearline's own property-extension (docs/extension.md): distribution, releasable,
//! sensitive, no_relay, min_full_tier. Declared by the extension-definition that
//! ExtensionDefinitionJson() returns; every node ships it.
inline constexpr std::string_view kExtensionId = stix::kTearlineExtensionId;

//! The extension-definition object (compact JSON) that declares kExtensionId.
const std::string& ExtensionDefinitionJson();

//! One granular marking (STIX 2.1 §7.2.3): a marking-definition applied to some properties.
struct GranularMarking {
  std::string marking_ref;
  std::vector<std::string> selectors;
};

//! What a recipient already holds of an object (the release history): a recipient
//! never receives both the original and its tear-line variant.
enum class Held { kNothing, kOriginal, kVariant };

//! What the rules need to know about one object (extracted once; no I/O in Decide).
struct ObjectFacts {
  std::vector<std::string> marking_refs;   //!< object_marking_refs
  std::string source_partner;              //!< identity of the partner it came from; empty: our own
  bool no_relay = false;                   //!< the source forbade relaying (tearline extension)
  std::vector<std::string> distribution;   //!< named organisations / individuals (tearline extension)
  bool approved_warning_for = false;       //!< an approved duty-to-warn warning addressed to the recipient
  bool revoked = false;                    //!< `revoked: true` (§3.2)
  bool has_extension = false;              //!< carries tearline's extension: a tear-line variant can be made
  int min_full_tier = 0;                   //!< partners below this tier get the variant
  bool variant_markings_given = false;     //!< `releasable.object_marking_refs` present
  std::vector<std::string> variant_marking_refs;  //!< markings of the variant, when given
  std::vector<GranularMarking> granular;   //!< granular_markings
  std::vector<std::string> refs;           //!< ids referred to (ReferencedIds), read in the same pass
};

//! Extracts the facts from an object's JSON (the stored, validated form). Unreadable
//! JSON gives nullopt (callers withhold). `source_partner` comes from the store.
std::optional<ObjectFacts> ExtractFacts(std::string_view json, std::string_view source_partner = {});

//! Who receives, as a partner organisation.
struct PartnerRecipient {
  std::string identity;                    //!< the partner organisation (STIX identity id)
  std::string individual;                  //!< the named person acting for it, if any
  Channel channel = Channel::kOpen;
  std::vector<std::string> groups;         //!< trust groups it belongs to
  int tier = 0;                            //!< trust tier: originals need tier >= min_full_tier
};

//! To whom a collection is shared.
struct Audience {
  std::vector<std::string> partners;       //!< identities
  std::vector<std::string> groups;         //!< trust groups
  Tlp default_tlp = Tlp::kAmber;           //!< for objects that carry no TLP marking
};

//! The decision for one object and one partner: withhold, release the original, or
//! release the tear-line variant. Pure: same inputs, same answer. The rules, in order:
//!  1. an approved warning addressed to the partner passes on any channel; a closed channel
//!     carries nothing else;
//!  2. relay (object from another partner): never RED, AMBER+STRICT or no_relay (original markings);
//!  3. revoked: only to a recipient that holds an earlier version;
//!  4. form: original when tier >= min_full_tier, else the variant (if the object has the
//!     extension); a recipient holding one form never gets the other;
//!  5. channel (restricted: CLEAR/GREEN; suspended: CLEAR and warnings) and TLP on the markings
//!     of the chosen form (the variant's own when `releasable.object_marking_refs` gives them);
//!  6. granular markings the recipient may not see (by 2 and 5) list their selectors in `strip`.
Decision DecideForPartner(const ObjectFacts& object, const PartnerRecipient& to, const Audience& audience,
                          Held held = Held::kNothing);

//! The id a tear-line variant (or any object this node republishes modified) gets:
//! same type, UUIDv5 of the original id in the namespace of the node's identity UUID
//! (STIX 2.1 §3.6: whoever republishes with changes MUST use a new id).
std::string VariantId(std::string_view original_id, std::string_view node_identity);

//! How a recipient receives an object that another object refers to.
enum class RefForm { kUnknown, kOriginal, kVariant, kWithheld };

//! Produces the JSON a recipient receives for a released object. `resolve` tells how
//! the recipient receives each object referred to (*_ref, *_refs at any depth except
//! marking references): references to variants are rewritten to the variant id,
//! references to withheld objects removed (a relationship or sighting whose
//! source/target/sighting_of is withheld is withheld; an emptied required list
//! withholds the object). An original that had to be changed this way is republished
//! like a variant (new id, created_by_ref the node). A variant loses the `sensitive`
//! paths, external_references, created_by_ref of the source and the extension, and
//! takes the `releasable` values. Granular-marked properties in `strip` are removed.
//! Returns nullopt when the object must be withheld after all; `*as_variant` says
//! whether the id changed.
std::optional<std::string> Render(std::string_view json, const Decision& decision, std::string_view node_identity,
                                  const std::function<RefForm(std::string_view)>& resolve, bool* as_variant,
                                  const std::vector<std::string>* refs = nullptr);

//! True when Render() would return `json` unchanged (an original, nothing to strip, no
//! reference to rewrite or drop): callers keep the stored body instead of a copy.
bool RendersUnchanged(std::string_view json, const Decision& decision,
                      const std::function<RefForm(std::string_view)>& resolve,
                      const std::vector<std::string>* refs = nullptr);

//! The ids an object refers to (what Render would resolve), for batch lookups.
std::vector<std::string> ReferencedIds(std::string_view json);





//! Who receives: a principal acting over TAXII, possibly for a partner organisation.
struct Recipient {
  std::string principal;
  bool can_read = false;                     //!< read permission on the collection being served
  const PartnerRecipient* partner = nullptr; //!< set when the principal acts for a partner
  const Audience* audience = nullptr;        //!< the collection's audience (with partner)
  // With a partner: what Render needs.
  std::string node_identity;                 //!< this node's identity (variant ids, created_by_ref)
  std::function<Held(std::string_view id)> held;          //!< release history; empty: nothing held
  std::function<RefForm(std::string_view id)> resolve;    //!< referenced objects; empty: all unknown
  bool approved_warning = false;             //!< the objects are an approved warning addressed to the partner
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

  //! Applies Decide() and Render() to a page: returns what may leave, in order, as the
  //! recipient receives it (variants carry their own id and JSON). Objects withheld are
  //! dropped; nothing about them is returned. Objects without JSON (manifest rows) are
  //! decided on their facts alone and must not be used for partners.
  //! When `decisions` is given it receives the decision of each released object (same order).
  std::vector<store::StoredObject> Release(std::vector<store::StoredObject> objects, const Recipient& to,
                                           std::vector<Decision>* decisions = nullptr) const;

  //! Release() for objects read from `collection` of `store`: for a partner it first
  //! reads, in batches, what the rules need (the partner's release history for the
  //! objects and for everything they refer to, and the last version of each referred
  //! object, decided for the same recipient). Every outbound path uses this.
  //! Objects that share the store's rows (Query::share_rows) are read through their accessors
  //! and leave still sharing them unless changed for the partner (then they hold their own
  //! copy): read the result through Id(), Json(), ...
  Result<std::vector<store::StoredObject>> ReleaseFrom(store::Store& store, std::string_view collection,
                                                       std::vector<store::StoredObject> objects, const Recipient& to,
                                                       std::vector<Decision>* decisions = nullptr) const;
  //! ReleaseFrom() whose decisions are shared rather than copied: a decision taken before for
  //! the same recipient and version (kept between calls) is the kept one itself (a page's TAXII
  //! response reads them once, for its audit entry: copying each was ~9% of a partner's page).
  //! A shared decision may have no object_id: it is then the released object's own Id().
  Result<std::vector<store::StoredObject>> ReleaseFrom(store::Store& store, std::string_view collection,
                                                       std::vector<store::StoredObject> objects, const Recipient& to,
                                                       std::vector<SharedDecision>* decisions) const;

  //! A local principal's decision (no partner): read permission alone, the same for every
  //! object, so a page needs it once (Release() with `decisions` repeats it per object).
  //! nullopt for a partner, whose decisions depend on each object.
  std::optional<Decision> LocalDecision(const Recipient& to) const {
    if (to.partner) return std::nullopt;
    return Decide(store::StoredObject{}, to);
  }

  //! What ReleaseFrom keeps between calls: collections with a cache of their current
  //! generation, decisions and referenced objects' forms held (/metrics; tests).
  struct CacheStats {
    size_t collections = 0, decisions = 0, references = 0;
    uint64_t emptied = 0;  //!< times a collection's cache started over (a change it depended on)
  };
  CacheStats cache_stats() const {
    std::shared_lock lock(cache_mu_);
    CacheStats st;
    for (const auto& [name, c] : caches_) {
      ++st.collections;
      st.decisions += c.decisions_cached;
      st.references += c.refs_cached;
    }
    st.emptied = caches_emptied_;
    return st;
  }

  //! How many objects went through Release() (tests prove every route calls it).
  uint64_t released_calls() const { return calls_.load(); }

 private:
  // What is cached of one collection, for one generation of it; other collections' caches
  // stay. A delete in the store empties it; so does a new version of an object it depends on
  // (one whose decision or form it holds, or that one of those refers to, in the collection or
  // not yet). New versions of other objects leave it as it is (the generation moves on): what
  // partners read while unrelated objects arrive stays decided (KeepsOrEmpties).
  struct CollectionCache {
    std::string generation;
    // Hashes of the ids the cached decisions and forms depend on: two ids sharing
    // a hash only make the cache start over when it need not.
    std::unordered_set<uint64_t> depends;
    void Depend(std::string_view id) { depends.insert(std::hash<std::string_view>{}(id)); }
    bool DependsOn(std::string_view id) const { return depends.count(std::hash<std::string_view>{}(id)) > 0; }
    // How a recipient receives referenced objects: recipient facts -> object id -> form.
    std::unordered_map<std::string, std::unordered_map<std::string, RefForm>> refs;
    size_t refs_cached = 0;
    // Decisions on page objects that need no rendering (withheld, or released unchanged):
    // recipient facts -> date_added * 4 + (release history + 1) -> decision. A recipient's
    // decisions differ by very little but the object's id (the same reasons over and over):
    // they are kept without it, each distinct one once (`distinct`), and an entry holds the
    // hash of the id it was taken for, checked against the object read (the version at that
    // date_added: one id). A page's known objects then share a few decisions that stay in the
    // CPU's caches, where each had a decision of its own (a cache miss per object, ~10% of a
    // partner's page, docs/benchmarks.md, eighteenth session).
    struct Known {
      SharedDecision decision;  // object_id empty: the object's own id
      uint64_t id_hash = 0;     // std::hash of the id it was taken for
    };
    struct RecipientDecisions {
      std::unordered_map<int64_t, Known> by_version;
      std::vector<SharedDecision> distinct;  // bounded (kMaxDistinct); beyond, decisions are not shared
    };
    static constexpr size_t kMaxDistinct = 64;
    std::unordered_map<std::string, RecipientDecisions> decisions;
    size_t decisions_cached = 0;
    //! Still within its bounds (decisions or forms: a million each; beyond, it starts over).
    bool Within() const {
      constexpr size_t kMax = 1000000;
      return refs_cached <= kMax && decisions_cached <= kMax && depends.size() <= 4 * kMax;
    }
  };
  mutable std::shared_mutex cache_mu_;
  mutable std::unordered_map<std::string, CollectionCache> caches_;  // collection ->
  mutable uint64_t caches_emptied_ = 0;
  static SharedDecision Distinct(CollectionCache::RecipientDecisions& mine, const Decision& d);
  //! Makes the collection's cache one of `generation`: kept when the versions stored since its
  //! own generation are inserts only (no delete) of objects it does not depend on, else emptied;
  //! left alone for a `generation` older than its own (that request reads without it).
  void KeepOrEmpty(store::Store& store, std::string_view collection, const std::string& generation) const;
  //! The collection's cache when it is of `generation`, else null (cache_mu_ held).
  CollectionCache* CacheOf(std::string_view collection, const std::string& generation) const {
    auto it = caches_.find(std::string(collection));
    return it != caches_.end() && it->second.generation == generation ? &it->second : nullptr;
  }
  // The facts of stored versions (immutable: a version re-stored after a delete gets a new
  // date_added, which is in the key), so pages read again are not parsed again.
  mutable std::shared_mutex facts_mu_;
  // collection -> date_added -> (id, facts): date_added is unique within a collection.
  mutable std::unordered_map<std::string,
                             std::unordered_map<int64_t, std::pair<std::string, std::shared_ptr<const ObjectFacts>>>>
      facts_cache_;
  mutable size_t facts_cached_ = 0;
  std::vector<store::StoredObject> ReleaseWith(std::vector<store::StoredObject> objects,
                                               const std::vector<std::shared_ptr<const ObjectFacts>>& facts,
                                               const Recipient& to, std::vector<SharedDecision>* decisions,
                                               const std::vector<SharedDecision>* known = nullptr,
                                               std::vector<std::pair<size_t, SharedDecision>>* learned = nullptr) const;
  mutable std::atomic<uint64_t> calls_{0};
};

}  // namespace tearline::policy
