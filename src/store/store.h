// tearline storage: collections of STIX objects with every version kept.
//
// This is the public header of src/store. Store is the interface the SQLite
// implementation satisfies now and a PostgreSQL one will later. It knows STIX
// only as validated stix::Object values; it never parses JSON on the hot path.
//
// Model (TAXII 2.1 §5): a collection holds object versions keyed by
// (id, version) where version is stix::VersionKey(modified) or "" for objects
// that have no `modified` (SCOs, marking-definitions: one version each).
// Every stored version gets a `date_added` in microseconds that is unique and
// strictly increasing within its collection, so `added_after` paging never
// skips or repeats. The first arrival of an (id, version) stands: a repeat is
// a duplicate (no-op) and a repeat with different content is a conflict.
//
// Threads: a Store may be called from several threads; implementations
// serialize writes. Every method returns expected failures as Status.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <map>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "audit/audit.h"
#include "stix/stix.h"

namespace tearline::store {

struct CollectionInfo {
  std::string name;         //!< local handle used by the CLI ("attack")
  std::string id;           //!< TAXII collection id (a UUID)
  std::string title;
  std::string description;
  int64_t object_count = 0; //!< stored versions (filled by ListCollections only)
};

//! What happened to one object of a Put batch.
enum class PutOutcome { kStored, kDuplicate, kConflict };

struct PutResult {
  std::vector<PutOutcome> outcomes;  //!< one per input object, same order
  std::vector<int64_t> date_added;   //!< date_added of stored versions (0 for duplicates/conflicts)
  size_t stored = 0, duplicates = 0, conflicts = 0;
};

//! match[version] (TAXII 2.1 §3.4.2): any mix of first, last, all and timestamps.
struct VersionFilter {
  bool all = false;
  bool first = false;
  bool last = false;
  std::vector<std::string> versions;  //!< VersionKey values
  bool empty() const { return !all && !first && !last && versions.empty(); }
  static VersionFilter Last() {
    VersionFilter f;
    f.last = true;
    return f;
  }
};

struct Query {
  std::string collection;                //!< collection name or TAXII id
  std::optional<int64_t> added_after;    //!< exclusive, microseconds
  std::vector<std::string> ids;          //!< match[id]
  std::vector<std::string> types;        //!< match[type]
  std::vector<std::string> spec_versions;//!< match[spec_version]; objects are all "2.1"
  VersionFilter versions = VersionFilter::Last();
  size_t limit = 1000;                   //!< page size, >= 1
  std::string cursor;                    //!< opaque `next` from a previous page, or empty
  std::string held_for;                  //!< also read what this recipient holds of each object
  //! The caller only reads the objects (it never changes them): a page read with bodies may
  //! share the store's cached rows instead of copying them. Such an object carries only
  //! date_added, held and `row`: read its other fields through the accessors (Id(), Json(),
  //! ...), which fall back to the row. Copying five strings per object was a third of a
  //! local reader's random page (docs/benchmarks.md, "Eighth session").
  bool share_rows = false;
};

//! A stored version's fields in one allocation with its reference count: what the store's row
//! cache keeps and pages read with Query::share_rows point to. Reading a page then touches one
//! run of memory per row (its count, its id and modified, its JSON, in that order) instead of
//! a control block, an object and a string allocation per field, each elsewhere on the heap:
//! a page's rows are mostly not in the CPU's caches, and each of those places was a miss.
//! Read-only once made; shared between threads through RowRef.
class RowRef;
class Row {
 public:
  enum Field : uint8_t { kId, kModified, kJson, kType, kVersion, kSpecVersion, kSource, kFields };
  //! A row of these fields (indexed by Field).
  static RowRef Make(int64_t date_added, const std::string_view (&fields)[kFields]);
  std::string_view Get(Field f) const {
    const uint32_t begin = f == 0 ? 0 : end_[f - 1];
    return {reinterpret_cast<const char*>(this + 1) + begin, end_[f] - begin};
  }
  int64_t date_added() const { return date_added_; }
  //! A recipient's release history of this row's object, noted on the row by the store that
  //! read it (sqlite_store.cpp, release_history.h: a page then needs no lookup elsewhere):
  //! -1 not noted here, 0 the original was given, 1 the variant. `slot` < kHeldSlots numbers the
  //! recipient. What was given never changes, so a note stays right for the row's life.
  static constexpr unsigned kHeldSlots = 8;
  int HeldHint(unsigned slot) const { return static_cast<int>((held_.load(std::memory_order_relaxed) >> (2 * slot)) & 3) - 1; }
  void NoteHeld(unsigned slot, int variant) const {
    held_.fetch_or(static_cast<uint16_t>((variant + 1) << (2 * slot)), std::memory_order_relaxed);
  }
  //! Its allocation's size.
  size_t Bytes() const { return sizeof(Row) + end_[kFields - 1]; }

 private:
  friend class RowRef;
  Row() = default;
  mutable std::atomic<uint32_t> refs_{0};
  uint32_t end_[kFields] = {};  //!< where each field's text ends, after the header
  int64_t date_added_ = 0;
  mutable std::atomic<uint16_t> held_{0};  //!< 2 bits per recipient slot: HeldHint + 1
  // The fields' text follows the header in the same allocation.
};

//! A counted reference to a Row (std::shared_ptr's role, without its separate control block).
class RowRef {
 public:
  RowRef() = default;
  RowRef(std::nullptr_t) {}  // NOLINT: as a null pointer
  RowRef(const RowRef& o) : p_(o.p_) {
    if (p_) p_->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  RowRef(RowRef&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  RowRef& operator=(RowRef o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~RowRef() {
    if (p_ && p_->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      p_->~Row();
      ::operator delete(p_);
    }
  }
  const Row* operator->() const { return p_; }
  const Row& operator*() const { return *p_; }
  const Row* get() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  friend class Row;
  explicit RowRef(Row* p) : p_(p) { p_->refs_.fetch_add(1, std::memory_order_relaxed); }
  Row* p_ = nullptr;
};

inline RowRef Row::Make(int64_t date_added, const std::string_view (&fields)[kFields]) {
  size_t text = 0;
  for (auto f : fields) text += f.size();
  if (text > UINT32_MAX) throw std::length_error("a row's fields exceed 4 GiB");  // bodies are bounded far below
  void* at = ::operator new(sizeof(Row) + text);
  Row* row = new (at) Row();
  row->date_added_ = date_added;
  char* out = reinterpret_cast<char*>(row + 1);
  uint32_t end = 0;
  for (size_t k = 0; k < kFields; ++k) {
    if (!fields[k].empty()) std::memcpy(out + end, fields[k].data(), fields[k].size());  // an empty view's data may be null
    end += static_cast<uint32_t>(fields[k].size());
    row->end_[k] = end;
  }
  return RowRef(row);
}

struct StoredObject {
  std::string id;
  std::string type;
  std::string modified;     //!< as given; empty for unversioned objects
  std::string version;      //!< VersionKey
  std::string spec_version;
  int64_t date_added = 0;   //!< microseconds
  std::string json;         //!< compact JSON as ingested
  std::string source;       //!< identity of the partner it came from; empty: our own
  int held = -2;            //!< Query with held_for: -1 nothing, 0 the original, 1 the variant; -2 not read
  //! Query::share_rows: the store's row this object was read from, holding its fields.
  RowRef row;
  //! The fields, wherever they are: the object's own, or (left empty) the shared row's.
  //! Code that may be given a page read with Query::share_rows reads through these.
  std::string_view Json() const { return Field(&StoredObject::json, Row::kJson); }
  std::string_view Id() const { return Field(&StoredObject::id, Row::kId); }
  std::string_view Type() const { return Field(&StoredObject::type, Row::kType); }
  std::string_view Modified() const { return Field(&StoredObject::modified, Row::kModified); }
  std::string_view Version() const { return Field(&StoredObject::version, Row::kVersion); }
  std::string_view SpecVersion() const { return Field(&StoredObject::spec_version, Row::kSpecVersion); }
  std::string_view Source() const { return Field(&StoredObject::source, Row::kSource); }
  //! Copies the shared row's fields into the object's own (for code that changes them).
  void Own() {
    if (!row) return;
    RowRef r = std::move(row);
    for (const auto& [f, rf] : kFieldsOfRow) {
      if ((this->*f).empty()) (this->*f).assign(r->Get(rf));
    }
  }
  //! A row holding this object's own fields (its date_added too).
  RowRef MakeRow() const {
    std::string_view fields[Row::kFields];
    for (const auto& [f, rf] : kFieldsOfRow) fields[rf] = this->*f;
    return Row::Make(date_added, fields);
  }

 private:
  static constexpr std::pair<std::string StoredObject::*, Row::Field> kFieldsOfRow[] = {
      {&StoredObject::id, Row::kId},           {&StoredObject::modified, Row::kModified},
      {&StoredObject::json, Row::kJson},       {&StoredObject::type, Row::kType},
      {&StoredObject::version, Row::kVersion}, {&StoredObject::spec_version, Row::kSpecVersion},
      {&StoredObject::source, Row::kSource}};
  std::string_view Field(std::string StoredObject::*f, Row::Field rf) const {
    return (this->*f).empty() && row ? row->Get(rf) : std::string_view(this->*f);
  }
};

struct Page {
  std::vector<StoredObject> objects;
  bool more = false;
  std::string next;          //!< opaque cursor; set whenever more is true
};

struct TypeCount {
  std::string collection;
  std::string type;
  int64_t versions = 0;
  int64_t objects = 0;       //!< distinct ids
};

//! A TAXII client identity: secrets are kept only as Argon2id hashes.
struct Principal {
  std::string name;
  std::string password_hash;              //!< crypto_pwhash_str output; empty: no password login
  std::vector<std::string> can_read;      //!< collection names or TAXII ids; "*" for all
  std::vector<std::string> can_write;
  std::string identity;                   //!< the person it is (STIX identity id), for TLP:RED; may be empty
};

//! A bearer token: "tlt_<id>.<secret>"; only the secret's Argon2id hash is stored.
struct Token {
  std::string id;
  std::string principal;
  std::string secret_hash;
  int64_t created = 0;  //!< microseconds
};

//! A partner organisation (issue #4): its identity, the principals that act for it,
//! its channel state and the trust groups it belongs to.
struct Partner {
  std::string identity;                 //!< STIX identity id of the organisation
  std::string name;
  std::string channel = "open";         //!< open, restricted, suspended, closed
  std::vector<std::string> principals;  //!< TAXII principals acting for it
  std::vector<std::string> groups;      //!< trust groups
  int tier = 0;                         //!< trust tier (tear-line: originals need tier >= min_full_tier)
};

//! A trust group (members are recorded on the partners).
struct Group {
  std::string name;
  std::string description;
};

//! To whom a collection is shared, and the TLP of its unmarked objects.
struct Audience {
  std::string collection;
  std::vector<std::string> partners;  //!< identities
  std::vector<std::string> groups;    //!< trust groups
  std::string default_tlp = "amber";  //!< clear, green, amber, amber+strict, red
};

//! A partner's node, for federation (issue #6): where it is, how we authenticate, what
//! we push and pull, and the key its releases are signed with.
struct Peer {
  std::string identity;                  //!< the partner (store::Partner identity)
  std::string url;                       //!< its TAXII API root, e.g. https://b.example:8443/ct/
  std::string token;                     //!< bearer token tearline uses there
  std::string push_collection;           //!< its collection id we POST to (empty: no push)
  std::vector<std::string> pull;         //!< "REMOTE_COLLECTION_ID=LOCAL_COLLECTION" to poll
  std::string public_key;                //!< hex Ed25519 key, exchanged out of band
  int64_t last_contact = 0;              //!< µs; 0: never
  std::string last_error;
};

//! One queued delivery: an object version for a partner, in enqueue order.
struct OutboxItem {
  int64_t seq = 0;
  std::string partner;
  std::string collection;   //!< local collection name
  std::string object_id;
  std::string version;      //!< VersionKey
  int64_t enqueued = 0;
  std::string state;        //!< pending, sent, withheld, failed
  int64_t attempts = 0;
  int64_t next_attempt = 0; //!< µs
  std::string last_error;
};

//! A party that may be warned (issue #6 duty to warn): it needs no open channel, only an
//! identity, a warning endpoint (a TAXII collection) and its node key; `matches` say which
//! targets mean this party: "location:<id>", "country:<ISO 3166-1 alpha-2>", "city:<name>",
//! "identity:<id>", "sector:<name>".
struct Party {
  std::string identity;
  std::string name;
  std::string url;                    //!< TAXII API root of its node
  std::string token;
  std::string collection;             //!< collection id of its warning inbox
  std::string public_key;             //!< hex Ed25519
  std::vector<std::string> matches;
};

//! A duty-to-warn warning through its life: draft -> approved | waived | rejected;
//! approved -> delivered -> acknowledged; published (public advisory) optionally.
struct Warning {
  std::string id;                     //!< the warning report's STIX id
  std::string party;
  std::string source_id;              //!< the intelligence that fired the rule
  std::string rule;                   //!< which rule and why
  std::string state = "draft";
  std::string events;                 //!< JSON array of {state, by, at, reason}: the decision record
  std::string bundle;                 //!< JSON array: the report and the sanitized objects it refers to
  std::string instruction;            //!< approved instruction to the public (CAP), if any
  int64_t created = 0, attempts = 0, next_attempt = 0, delivered_at = 0, ack_at = 0, published_at = 0;
  std::string last_error;
  std::string ack;                    //!< the party's signed acknowledgement (STIX note JSON)
  std::string cap;                    //!< the CAP 1.2 alert, once published
};

//! What a TAXII add-objects request records with the objects, in the same transaction:
//! its status resource and its audit entries (built from the outcome of the Put).
struct IngestRecord {
  std::string status_id, status_owner;
  std::function<std::string(const PutResult&)> status;
  std::function<std::vector<audit::Entry>(const PutResult&)> audit;
};

//! One object released to one recipient (the release history the Releaser reads).
struct ReleaseRecord {
  std::string recipient;   //!< partner identity
  std::string object_id;   //!< the original id
  bool variant = false;    //!< the tear-line variant (or a republished copy) was sent
};

using audit::Checkpoint;

class Store {
 public:
  virtual ~Store() = default;

  //! Creates the collection if it does not exist; returns its info either way.
  virtual Result<CollectionInfo> EnsureCollection(std::string_view name, std::string_view title = {}) = 0;

  //! Looks a collection up by name or TAXII id. NotFound if absent.
  virtual Result<CollectionInfo> GetCollection(std::string_view name_or_id) = 0;

  virtual Result<std::vector<CollectionInfo>> ListCollections() = 0;

  //! Stores a batch in one transaction: all outcomes are durable when this
  //! returns ok, and nothing of the batch is stored when it fails.
  //! `source` is the partner identity the objects came from (empty: our own analysts).
  //! Every stored version is queued in the outbox for each partner of `push_to`, in the
  //! same transaction (a crash cannot store an object and lose its delivery).
  //! `signatures` (optional, one JSON text per object) are kept with received versions.
  virtual Result<PutResult> Put(std::string_view collection, std::span<const stix::Object> objects,
                                std::string_view source = {}, const std::vector<std::string>& push_to = {},
                                const std::vector<std::string>* signatures = nullptr,
                                const IngestRecord* record = nullptr) = 0;

  //! Put without waiting: `done` runs once with the result when the commit holding it has ended,
  //! on a thread of the store (it must be quick and must not call the store). What the call
  //! refers to (collection, objects, source, signatures, record) must stay alive until then;
  //! push_to is copied. This default runs Put and then `done` on the calling thread.
  virtual void PutAsync(std::string_view collection, std::span<const stix::Object> objects, std::string_view source,
                        const std::vector<std::string>& push_to, const std::vector<std::string>* signatures,
                        const IngestRecord* record, std::function<void(Result<PutResult>)> done) {
    done(Put(collection, objects, source, push_to, signatures, record));
  }

  //! Reads made on this thread until the returned scope is destroyed share one read
  //! transaction: one consistent snapshot, and one cache validation instead of one per read
  //! (after any commit a reader revalidates its page cache). Writes are unaffected and are not
  //! visible through the scope: end it before reading back what the same request wrote. Nested
  //! calls, and stores without read connections, return nullptr (reads work as usual).
  class ReadScope {
   public:
    virtual ~ReadScope() = default;
  };
  virtual std::unique_ptr<ReadScope> ReadSnapshot() { return nullptr; }

  //! Names the current state of the objects' database: any commit to it, from any connection
  //! or process, gives a new token (the audit log's own file does not count). Taken before a
  //! read, it names a state no newer than the one the read sees. Empty when unknown.
  virtual std::string StateToken() { return {}; }
  //! Prometheus text lines about the store's own work (the SQLite store: how pages were read,
  //! page-index builds, row-cache use); empty for a store without any.
  virtual std::string MetricsText() { return {}; }

  //! This node's STIX identity id, created with the database (stable for its life).
  virtual Result<std::string> NodeIdentity() = 0;

  //! The last version of each of `ids` found in the collection (with JSON and source),
  //! looked up by original id; ids not stored are absent from the result.
  virtual Result<std::vector<StoredObject>> Latest(std::string_view collection, const std::vector<std::string>& ids) = 0;

  //! The policy view (stix::PolicyView; the JSON when none is stored) of the versions stored
  //! at `date_added` in the collection: date_added -> (id, view). Missing ones are absent.
  virtual Result<std::vector<std::pair<int64_t, std::pair<std::string, std::string>>>> PolicyViews(
      std::string_view collection, const std::vector<int64_t>& date_added) = 0;

  //! What `recipient` has already received of `ids`: id -> variant? (absent: nothing).
  virtual Result<std::vector<std::pair<std::string, bool>>> Held(std::string_view recipient,
                                                                 const std::vector<std::string>& ids) = 0;

  //! One page of objects (full JSON), ordered by date_added ascending. The
  //! cursor is checked against the query: a cursor from another query is Invalid.
  //! match[id] also matches the derived id of an object (its tear-line variant id,
  //! stix::DerivedId with this node's identity); callers check which one was asked for.
  virtual Result<Page> Query(const store::Query& q) = 0;

  //! Like Query, without JSON bodies (TAXII manifests).
  virtual Result<Page> Manifest(const store::Query& q) = 0;

  //! True if a marking-definition with this id is stored in any collection.
  virtual Result<bool> HasMarkingDefinition(std::string_view id) = 0;

  //! Counts by collection and type.
  virtual Result<std::vector<TypeCount>> Stats() = 0;

  //! Bytes the database occupies (for monitoring).
  virtual Result<int64_t> SizeBytes() = 0;

  //! Deletes every version of `id` (or only `versions` when given) from a collection.
  //! Returns how many versions were removed (0: NotFound is the caller's call).
  virtual Result<size_t> Delete(std::string_view collection, std::string_view id, const VersionFilter& versions) = 0;

  //! Changes whenever the collection's content changes (a version stored or deleted): callers
  //! may cache what they derived from it while it stays the same.
  virtual Result<std::string> CollectionGeneration(std::string_view collection) = 0;
  //! The ids of the versions stored in `collection` after generation `from` up to generation
  //! `to` (both from CollectionGeneration), in the order stored, when the one became the other
  //! by inserts only; nullopt when not (a delete anywhere in the store since `from`, generations
  //! of another collection or store) or when more than `max` versions arrived. What a caller
  //! derived from `from` stays true at `to` for everything these ids do not touch (Releaser).
  virtual Result<std::optional<std::vector<std::string>>> IdsStoredBetween(std::string_view collection,
                                                                           const std::string& from,
                                                                           const std::string& to, size_t max) = 0;
  //! Whether generation `earlier` names a state of the same collection before the one `later`
  //! names (both from CollectionGeneration): what a reader whose snapshot began before a commit
  //! sees, beside readers that began after it. Compares the two only; reads nothing.
  virtual bool GenerationPrecedes(const std::string& earlier, const std::string& later) const = 0;

  // ---- TAXII status resources (kept so a client can poll them after a restart) ----
  virtual Status PutStatus(std::string_view id, std::string_view owner, std::string_view json) = 0;
  //! The status JSON and the principal that created it. NotFound if absent.
  virtual Result<std::pair<std::string, std::string>> GetStatus(std::string_view id) = 0;

  // ---- principals and tokens ----
  virtual Status PutPrincipal(const Principal& p) = 0;  //!< insert or replace
  virtual Result<Principal> GetPrincipal(std::string_view name) = 0;  //!< NotFound if absent
  virtual Result<std::vector<Principal>> ListPrincipals() = 0;
  virtual Status RemovePrincipal(std::string_view name) = 0;  //!< also removes its tokens
  virtual Status PutToken(const Token& t) = 0;

  // ---- partners and audiences (sharing policy) ----
  virtual Status PutPartner(const Partner& p) = 0;                      //!< insert or replace
  virtual Result<Partner> GetPartner(std::string_view identity) = 0;    //!< NotFound if absent
  virtual Result<std::vector<Partner>> ListPartners() = 0;
  virtual Status RemovePartner(std::string_view identity) = 0;          //!< NotFound if absent
  virtual Status PutGroup(const Group& g) = 0;                          //!< insert or replace
  virtual Result<std::vector<Group>> ListGroups() = 0;
  virtual Status RemoveGroup(std::string_view name) = 0;                //!< NotFound if absent
  virtual Status PutAudience(const Audience& a) = 0;                    //!< insert or replace
  //! The audience of a collection; an empty one (default TLP amber) if never set.
  virtual Result<Audience> GetAudience(std::string_view collection) = 0;

  // ---- federation (issue #6) ----
  virtual Status PutPeer(const Peer& p) = 0;                            //!< insert or replace
  virtual Result<Peer> GetPeer(std::string_view identity) = 0;          //!< NotFound if absent
  virtual Result<std::vector<Peer>> ListPeers() = 0;
  virtual Status TouchPeer(std::string_view identity, int64_t when, std::string_view error) = 0;
  //! Pending items of one partner whose next attempt is due, in enqueue order, after
  //! item `after_seq` (the federator prepares a batch while the one before is in flight).
  virtual Result<std::vector<OutboxItem>> DueOutbox(std::string_view partner, int64_t now, size_t limit,
                                                    int64_t after_seq = 0) = 0;
  //! Sets state (and error) of items; `retry_at` > 0 keeps them pending and counts an attempt.
  virtual Status MarkOutbox(const std::vector<int64_t>& seqs, std::string_view state, std::string_view error,
                            int64_t retry_at) = 0;
  //! Counts per state for one partner, and the enqueue time of the oldest pending item (0: none).
  virtual Result<std::map<std::string, int64_t>> OutboxDepth(std::string_view partner, int64_t* oldest_pending) = 0;
  //! Re-queues items of `partner` withheld or failed since `since_us` (operator's resend).
  virtual Result<int64_t> Requeue(std::string_view partner, int64_t since_us) = 0;
  //! One exact version (with JSON, source and stored signatures JSON in `signatures`).
  virtual Result<StoredObject> GetVersion(std::string_view collection, std::string_view id, std::string_view version,
                                          std::string* signatures) = 0;
  //! Durable pull position per (partner, remote collection): added_after µs and next.
  virtual Status PutPullCursor(std::string_view partner, std::string_view remote, int64_t added_after,
                               std::string_view next) = 0;
  virtual Result<std::pair<int64_t, std::string>> GetPullCursor(std::string_view partner, std::string_view remote) = 0;

  // ---- duty to warn (issue #6) ----
  virtual Status PutParty(const Party& p) = 0;
  virtual Result<std::vector<Party>> ListParties() = 0;
  virtual Status PutWarning(const Warning& w) = 0;                      //!< insert or replace
  virtual Result<Warning> GetWarning(std::string_view id) = 0;          //!< NotFound if absent
  virtual Result<std::vector<Warning>> ListWarnings() = 0;              //!< oldest first
  //! Small durable settings (e.g. how far the warning rules have scanned).
  virtual Result<std::string> GetMeta(std::string_view key) = 0;       //!< "" when absent
  virtual Status PutMeta(std::string_view key, std::string_view value) = 0;

  // ---- audit log of releases ----
  //! Appends entries atomically, assigning seq, prev_hash and hash (the chain), and
  //! records `releases` in the release history in the same transaction. `first_seq` (optional)
  //! receives the seq given to the first entry.
  virtual Status AppendAudit(std::vector<audit::Entry> entries, std::vector<ReleaseRecord> releases = {},
                             int64_t* first_seq = nullptr) = 0;
  //! AppendAudit() whose caller does not wait for the sync: `done(status, first_seq)` runs
  //! exactly once, possibly on another thread, when the entries are durable (or failed; then
  //! first_seq is 0). Meanwhile the store takes other writes, and the next entries. By default
  //! AppendAudit() then `done`, on the caller's thread.
  virtual void AppendAuditAsync(std::vector<audit::Entry> entries, std::vector<ReleaseRecord> releases,
                                std::function<void(Status, int64_t)> done) {
    int64_t first = 0;
    Status st = AppendAudit(std::move(entries), std::move(releases), &first);
    done(st, st.ok() ? first : 0);
  }
  //! The end of a push, in one transaction: the audit entries and release history of
  //! what the partner accepted, those outbox items marked sent and the rejected ones
  //! failed (with `error`). A crash leaves either all of it or none (then the batch is
  //! sent again, and the partner's idempotence absorbs it).
  virtual Status RecordPush(std::vector<audit::Entry> entries, std::vector<ReleaseRecord> releases,
                            const std::vector<int64_t>& sent, const std::vector<int64_t>& failed,
                            std::string_view error) = 0;
  //! The newest audit entry's (seq, hash); (0, genesis) when empty. Durable when returned (a
  //! sync of the chain if needed).
  virtual Result<std::pair<int64_t, std::string>> AuditHead() = 0;
  //! The newest entry known durable already (no sync of its own; it may lag AuditHead by the
  //! entries a sync has not covered yet).
  virtual Result<std::pair<int64_t, std::string>> AuditSyncedHead() { return AuditHead(); }
  virtual Status PutCheckpoint(const Checkpoint& c) = 0;
  //! The signed checkpoints in seq order: all of them, or the `latest` newest (a node writes one
  //! every thousand entries: signing the next must not read them all).
  virtual Result<std::vector<Checkpoint>> ReadCheckpoints(size_t latest = 0) = 0;
  //! Entries with seq > after, in order, at most `limit`.
  virtual Result<std::vector<audit::Entry>> ReadAudit(int64_t after, size_t limit) = 0;
  virtual Result<Token> GetToken(std::string_view id) = 0;  //!< NotFound if absent
};

struct SqliteOptions {
  //! Test seam: when >= 0, the Nth SQLite write step (0-based, counted over the
  //! store's life) fails as if the disk had failed, so tests can walk every
  //! write path and check that nothing acknowledged is lost.
  int fail_write_step = -1;
  //! Extra read-only connections so queries run in parallel with each other and with writes.
  size_t read_connections = 4;
  //! Memory for the page index's row cache (page_index.h): pages of GET objects and manifests
  //! are walked in memory and their rows kept. 0: every page is an SQL query.
  size_t object_cache_bytes = size_t{256} << 20;
  //! When the writer merges the recent level of the id lookup (in memory, schema 16) into
  //! id_index: 0, when the recent level has max(65536, sqrt(id_index rows x 32768)) entries
  //! (an id key per stored version, a derived key for some); from half that many when the
  //! writer has no Put waiting (a merge between groups); N > 0, when it has N, only in groups (tests).
  int64_t id_merge_threshold = 0;
  //! Test seam: every fdatasync of the write-ahead logs after a group commit fails, and every
  //! one of the audit chain for entries appended alone (AppendAudit without release history).
  bool fail_sync = false;
  //! Test seam: each of those syncs waits this long first.
  int sync_delay_ms = 0;
  //! Test seam: each group commit holds the writer this much longer.
  int group_delay_ms = 0;
  //! Test seam: StateToken asks SQLite (PRAGMA data_version), as where no WAL-index is mapped.
  bool state_by_query = false;
};

//! Opens (creating if needed) the SQLite store at `path` (WAL) and its audit log beside it
//! (AuditLogPath). Io if a file cannot be opened or is not a tearline database.
Result<std::unique_ptr<Store>> OpenSqlite(const std::string& path, SqliteOptions options = {});

//! Signs the audit chain's head with `key` and stores the checkpoint, unless the head is
//! already covered. Returns the checkpointed seq (0: empty log). With `sync` false it signs
//! the newest entry already durable (AuditSyncedHead) instead of syncing the chain for it.
Result<int64_t> WriteCheckpoint(Store& store, const audit::NodeKey& key, bool sync = true);

//! The audit log's own database file beside the store: "<database_path>.audit". It holds the
//! signed checkpoints (and, before the chain file, the chain's entries: moved out when opened).
//! ":memory:" and "" (temporary stores) get an in-memory or temporary log.
std::string AuditLogPath(const std::string& database_path);
//! The audit chain's append-only file beside the store: "<database_path>.audit-chain"
//! (src/store/audit_chain.h has its format); "" for ":memory:" and temporary stores, whose
//! chain stays in memory.
std::string AuditChainPath(const std::string& database_path);

//! Writes `entries` as they are (no linking, no hashing) as the chain file at `path`, replacing
//! it: for tools and tests that must produce a given file, e.g. a tampered one.
Status WriteAuditChainFile(const std::string& path, const std::vector<audit::Entry>& entries);

//! Where the node's Ed25519 key lives for the database at `database_path`:
//! "<database_path>.key" (the data directory; created 0600 on first start).
std::string NodeKeyPath(const std::string& database_path);

//! Encodes/decodes the opaque pagination cursor (exposed for tests and fuzzing).
std::string EncodeCursor(int64_t date_added, uint64_t fingerprint);
bool DecodeCursor(std::string_view cursor, int64_t* date_added, uint64_t* fingerprint);

//! Fingerprint of everything in a query that a cursor must not outlive
//! (collection and filters; not the limit).
uint64_t QueryFingerprint(const Query& q);

}  // namespace tearline::store
