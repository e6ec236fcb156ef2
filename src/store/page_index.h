// Private to src/store: the in-memory page index of the SQLite store.
//
// A TAXII page (GET objects or manifest: added_after / next, match[type], match[version]
// last or all) is a walk over a collection's versions in date_added order. SQLite does it as
// an index scan with a table lookup and a record decode per row (~0.7 us per object, half of
// the server's CPU under random-page load). Here each collection keeps its versions in
// memory as small entries sorted by date_added, and the rows themselves sit in a bounded
// cache, so a page is a binary search, a walk and a few hash lookups.
//
// SQLite stays the truth. An index is used only by a read transaction whose state it matches
// exactly (CollectionState: the store's delete counter and the collection's newest date_added;
// inserts only ever append after the newest date_added, and every delete bumps the counter),
// and it is brought up to date from a transaction that sees more. Everything else falls back
// to the SQL query (sqlite_store.cpp: FastSelect).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/store.h"

struct sqlite3;

namespace tearline::store::detail {

//! The statement finding the originals of `n` derived ids: their rows' id and derived_id, found
//! by DerivedKey through id_lookup (schema 14); ?1 the collection's pk, ?2.. the keys.
std::string DerivedLookupSql(size_t n);
//! `columns` of the rows with one of `n` keys: ?1 the collection's pk, ?2..?n+1 the keys.
std::string RowsOfIdsSql(std::string_view columns, size_t n);

//! Test seam: while on, every statement the store prepares (on any of its connections) is
//! explained, and those that find rows by id without going through id_lookup to the rows'
//! pks are recorded (PlanScansObjects): finding rows by id must never walk a collection.
void SetPlanCheck(bool on);
std::vector<std::string> ScanningStatements();
//! Whether `sql` finds rows by id (it names id_lookup, a key or compares an id) and SQLite's
//! plan for it on `db` reaches the objects table (or its aliases o, x) other than by rowid: a
//! scan, or a walk of a collection through another index. What the plan check records.
bool PlanScansObjects(sqlite3* db, const std::string& sql);

//! What an index was built from: equal states mean equal contents for one collection.
struct CollectionState {
  int64_t deletes = -1;    //!< meta 'deletes' (every delete, in any collection, bumps it)
  int64_t max_added = -1;  //!< the collection's newest date_added (0: empty)
  bool operator==(const CollectionState&) const = default;
};

//! One collection's versions in date_added order (the objects_added index, in memory).
struct CollectionIndex {
  struct Entry {
    int64_t date_added;
    int64_t pk;       //!< the objects row
    uint32_t type;    //!< interned in type_names
    bool latest;      //!< the objects.latest flag (the last version of its id)
  };
  CollectionState state;          //!< deletes -1: never built
  std::vector<Entry> entries;     //!< strictly increasing date_added
  //! Where each id's latest version is in `entries`, by the id's key (objects.id_key, IdKey):
  //! an update learns which version a new latest one supersedes without a query per new id
  //! (most arriving ids are new: ~7 us each for two index lookups finding nothing, the largest
  //! part of following a collection that receives objects). Ids sharing a key: kSharedKey, and
  //! their versions are looked up in SQL as before. A found position is checked against the id.
  static constexpr uint32_t kSharedKey = UINT32_MAX;
  std::unordered_map<int64_t, uint32_t> latest_at;
  std::vector<std::string> type_names;
  std::unordered_map<std::string, uint32_t> type_ids;
  //! One type's versions, in date_added order: a copy of their entries' date_added, pk and latest
  //! flag (the flag in the pk's top bit; pks are positive), so that a page of one type walks
  //! memory in order. Positions into `entries` cost a cache miss per version (a type's versions
  //! are spread over the collection): ~9% of a type-filtered random page.
  struct Typed {
    int64_t date_added;
    uint64_t pk_latest;
    int64_t pk() const { return static_cast<int64_t>(pk_latest & ~kLatestBit); }
    bool latest() const { return (pk_latest & kLatestBit) != 0; }
    static constexpr uint64_t kLatestBit = uint64_t{1} << 63;
  };
  std::vector<std::vector<Typed>> by_type;

  uint32_t Intern(std::string_view type) {
    auto it = type_ids.find(std::string(type));
    if (it != type_ids.end()) return it->second;
    auto id = static_cast<uint32_t>(type_names.size());
    type_names.emplace_back(type);
    type_ids.emplace(type_names.back(), id);
    by_type.emplace_back();
    return id;
  }
  std::optional<uint32_t> FindType(std::string_view type) const {
    auto it = type_ids.find(std::string(type));
    if (it == type_ids.end()) return std::nullopt;
    return it->second;
  }
  //! Appends a version newer than every entry (the caller guarantees the order).
  void Append(int64_t date_added, int64_t pk, std::string_view type, bool latest) {
    uint32_t t = Intern(type);
    by_type[t].push_back({date_added, static_cast<uint64_t>(pk) | (latest ? Typed::kLatestBit : 0)});
    entries.push_back({date_added, pk, t, latest});
  }
  //! Changes an entry's latest flag (and its type's copy of it).
  void SetLatest(Entry& e, bool latest) {
    e.latest = latest;
    auto& typed = by_type[e.type];
    auto it = std::lower_bound(typed.begin(), typed.end(), e.date_added,
                               [](const Typed& t, int64_t v) { return t.date_added < v; });
    if (it != typed.end() && it->date_added == e.date_added) {
      it->pk_latest = latest ? it->pk_latest | Typed::kLatestBit : it->pk_latest & ~Typed::kLatestBit;
    }
  }
  //! Records the last appended entry as the latest version of the id with this key (building).
  void NoteLatest(int64_t id_key) {
    auto [it, fresh] = latest_at.try_emplace(id_key, static_cast<uint32_t>(entries.size() - 1));
    if (!fresh) it->second = kSharedKey;
  }
  //! The entry with this date_added, or null.
  Entry* At(int64_t date_added) {
    auto it = std::lower_bound(entries.begin(), entries.end(), date_added,
                               [](const Entry& e, int64_t v) { return e.date_added < v; });
    return it != entries.end() && it->date_added == date_added ? &*it : nullptr;
  }
  void Clear() {
    latest_at.clear();
    entries.clear();
    type_names.clear();
    type_ids.clear();
    by_type.clear();
  }

  //! Up to `n` entries with date_added > `after`, in order, that pass `latest_only` and (when
  //! `types` is not empty) have one of those type ids.
  std::vector<Entry> Scan(int64_t after, bool latest_only, const std::vector<uint32_t>& types, size_t n) const {
    std::vector<Entry> out;
    out.reserve(std::min<size_t>(n, 1024));
    if (types.size() == 1) {  // one type: its own copy, in order
      const auto& typed = by_type[types[0]];
      auto it = std::upper_bound(typed.begin(), typed.end(), after, [](int64_t v, const Typed& t) { return v < t.date_added; });
      for (; it != typed.end() && out.size() < n; ++it) {
        if (!latest_only || it->latest()) out.push_back({it->date_added, it->pk(), types[0], it->latest()});
      }
      return out;
    }
    auto it = std::upper_bound(entries.begin(), entries.end(), after,
                               [](int64_t v, const Entry& e) { return v < e.date_added; });
    for (; it != entries.end() && out.size() < n; ++it) {
      if (latest_only && !it->latest) continue;
      if (!types.empty() && std::find(types.begin(), types.end(), it->type) == types.end()) continue;
      out.push_back(*it);
    }
    return out;
  }
};

//! Rows by objects.pk, bounded by bytes, for one delete generation at a time (a pk can be
//! reused after a delete: a row is served only to readers of the generation it was read in).
//!
//! Direct-mapped: a pk has one slot (pk / kShards, modulo the shard's slots), so a lookup is
//! one probe of a flat array. A page's rows have nearly consecutive pks (date_added order is
//! insertion order), which land in consecutive slots. std::unordered_map cost a bucket and a
//! node miss per row: its find() was the largest user-space symbol of a TAXII page (perf,
//! docs/benchmarks.md, ninth session). A row evicts the one in its slot; beyond the byte budget
//! a clock hand evicts others.
class RowCache {
 public:
  //! Slots are sized for rows of ~512 bytes on average at most: fewer rows than slots, for most
  //! data. (A power of two: the slot is a mask, not a division, per row.) A shard starts with
  //! kFirstSlots and doubles its slots, up to that size, when rows fill half of them or when
  //! rows pushed others out of their slot a quarter of its size times since it last grew (a
  //! direct-mapped cache loses rows to its slots long before they are full: a working set of
  //! 200,000 rows in 262,144 slots filled 38% of them and lost most of what it read). A large
  //! budget (the server's default grows with the machine's memory) costs memory only as rows
  //! are read, not 24 bytes per 512 of budget up front.
  explicit RowCache(size_t bytes) : budget_(bytes / kShards) {
    max_slots_ = budget_ > 0 ? std::bit_ceil(std::max<size_t>(kFirstSlots, budget_ / 512)) : 0;
    for (auto& s : shards_) s.slots.resize(std::min(max_slots_, kFirstSlots));
  }

  //! The row at `pk` as read in generation `deletes`, or null.
  RowRef Find(int64_t deletes, int64_t pk) {
    Shard& s = shards_[ShardOf(pk)];
    std::lock_guard lock(s.mu);
    if (s.generation != deletes || s.slots.empty()) return nullptr;
    const Slot& slot = s.slots[SlotOf(s, pk)];
    return slot.pk == pk ? slot.row : nullptr;
  }
  //! Find() for each of `pks` into `out` (as many; a row not found stays null). A page's rows are
  //! scattered in memory and mostly not in the CPU's caches: Find() in turn for each waited for
  //! its slot's miss, then its row's (the reference count's locked increment lets no later load
  //! start before it), one after the other. Here each shard is locked once for its rows of the
  //! page, and their slots, then their rows, are fetched together (prefetches) before the counts
  //! are taken.
  void FindMany(int64_t deletes, std::span<const int64_t> pks, RowRef* out) {
    // The positions of `pks` grouped by shard (a counting sort).
    std::array<uint32_t, kShards + 1> start{};
    for (int64_t pk : pks) ++start[ShardOf(pk) + 1];
    for (size_t s = 0; s < kShards; ++s) start[s + 1] += start[s];
    std::vector<uint32_t> order(pks.size());
    {
      std::array<uint32_t, kShards> at{};
      std::copy(start.begin(), start.end() - 1, at.begin());
      for (size_t k = 0; k < pks.size(); ++k) order[at[ShardOf(pks[k])]++] = static_cast<uint32_t>(k);
    }
    for (size_t sh = 0; sh < kShards; ++sh) {
      if (start[sh] == start[sh + 1]) continue;
      const auto mine = std::span(order).subspan(start[sh], start[sh + 1] - start[sh]);
      Shard& s = shards_[sh];
      std::lock_guard lock(s.mu);
      if (s.generation != deletes || s.slots.empty()) continue;
      const Slot* slots = s.slots.data();
      for (uint32_t k : mine) __builtin_prefetch(&slots[SlotOf(s, pks[k])]);
      for (uint32_t k : mine) {
        const Slot& slot = slots[SlotOf(s, pks[k])];
        if (slot.pk == pks[k] && slot.row) __builtin_prefetch(slot.row.get());
      }
      for (uint32_t k : mine) {
        const Slot& slot = slots[SlotOf(s, pks[k])];
        if (slot.pk == pks[k]) out[k] = slot.row;
      }
    }
  }
  //! Keeps `row` (read in generation `deletes`); a shard of another generation starts over.
  void Put(int64_t deletes, int64_t pk, RowRef row) {
    const size_t size = Bytes(*row);
    if (size > budget_) return;
    Shard& s = shards_[ShardOf(pk)];
    std::lock_guard lock(s.mu);
    if (s.slots.empty()) return;
    if (s.generation != deletes) {
      if (deletes < s.generation) return;  // a reader of an older state: its rows may be gone
      for (auto& x : s.slots) x = Slot{};
      s.bytes = 0;
      s.used = 0;
      s.conflicts = 0;
      s.generation = deletes;
    }
    if ((s.used * 2 >= s.slots.size() || s.conflicts * 4 >= s.slots.size()) && s.slots.size() < max_slots_) Grow(s);
    Slot& slot = s.slots[SlotOf(s, pk)];
    if (slot.pk == pk) return;
    if (slot.row) {
      s.bytes -= Bytes(*slot.row);
      ++s.conflicts;
    } else {
      ++s.used;
    }
    slot.pk = pk;
    slot.row = std::move(row);
    s.bytes += size;
    while (s.bytes > budget_) {  // size <= budget_: another occupied slot is always found
      Slot& victim = s.slots[s.hand];
      s.hand = (s.hand + 1) & (s.slots.size() - 1);
      if (&victim == &slot || !victim.row) continue;
      s.bytes -= Bytes(*victim.row);
      victim = Slot{};
      --s.used;
    }
  }
  size_t budget() const { return budget_ * kShards; }
  //! Slots allocated (all shards): grows with the rows kept, up to the budget's size.
  size_t Slots() {
    size_t total = 0;
    for (auto& s : shards_) {
      std::lock_guard lock(s.mu);
      total += s.slots.size();
    }
    return total;
  }
  size_t Bytes() {
    size_t total = 0;
    for (auto& s : shards_) {
      std::lock_guard lock(s.mu);
      total += s.bytes;
    }
    return total;
  }

 private:
  static constexpr size_t kShards = 16;
  static constexpr size_t kFirstSlots = 1024;
  struct Slot {
    int64_t pk = -1;
    RowRef row;
  };
  struct Shard {
    std::mutex mu;
    int64_t generation = -1;
    std::vector<Slot> slots;
    size_t hand = 0;  // the clock hand: the next slot to evict beyond the budget
    size_t bytes = 0;
    size_t used = 0;       // slots holding a row
    size_t conflicts = 0;  // rows that replaced another in its slot since the slots last grew
  };
  //! Doubles a shard's slots. A row's slot in the larger array is its old one or that plus the
  //! old size (one more bit of the same key), so no two rows meet and none is lost.
  static void Grow(Shard& s) {
    std::vector<Slot> larger(s.slots.size() * 2);
    const size_t mask = larger.size() - 1;
    for (auto& x : s.slots) {
      if (x.row) larger[(static_cast<size_t>(x.pk) / kShards) & mask] = std::move(x);
    }
    s.slots = std::move(larger);
    s.conflicts = 0;
  }
  static size_t ShardOf(int64_t pk) { return static_cast<size_t>(pk) % kShards; }
  static size_t SlotOf(const Shard& s, int64_t pk) { return (static_cast<size_t>(pk) / kShards) & (s.slots.size() - 1); }
  static size_t Bytes(const Row& r) { return r.Bytes() + 16; }  // with the allocator's header
  size_t budget_;
  size_t max_slots_ = 0;
  Shard shards_[kShards];
};

}  // namespace tearline::store::detail
