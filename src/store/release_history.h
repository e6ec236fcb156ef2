// Private to src/store: the release history read by a partner's pages, kept in memory.
//
// Every object of a page read for a partner is looked up in the `releases` table (which form,
// original or tear-line variant, the partner was given first: the Releaser keeps giving it
// that one). Through SQLite that was a seek through a text key whose first ~45 bytes, the
// recipient, are the same in every row: ~2.4 us per object, ~47% of the HTTP threads' time on
// a partner's random pages (docs/benchmarks.md, seventeenth session).
//
// Why a cache of what was read is always right: a row of `releases` is never changed or
// removed (INSERT OR IGNORE: the first form given stands, sqlite_store.cpp
// AppendAuditLocked). So a row once read from a committed state holds for good, whichever
// process wrote it. Only rows found are kept: "never given" can change at any moment (this
// process's next commit, or another process's), so it is always asked of SQLite.
//
// Keys are exact, no hash stands for an id: an object id "<type>--<uuid>" whose uuid is
// written in lowercase hex (what tearline and common producers write) becomes (type number,
// 128-bit uuid); the recipient a number. Ids of another form (an uppercase uuid, which the
// validator accepts: another id to the store) are not kept: always asked of SQLite. ~50 bytes
// per entry; at most `max_entries` (a shard over its share is emptied and fills again from
// SQLite). The first Row::kHeldSlots recipients numbered also note what they find on the
// row cache's rows (Row::HeldHint): a page's rows are read anyway.
#pragma once

#include <boost/unordered/unordered_flat_map.hpp>

#include <array>
#include <atomic>
#include <functional>
#include <cstdint>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/store.h"

namespace tearline::store::detail {

class ReleaseHistoryCache {
 public:
  //! 0 keeps nothing (every lookup goes to SQLite).
  explicit ReleaseHistoryCache(size_t max_entries) : per_shard_(max_entries / kShards) {}

  //! Lookups and notes for one recipient (a page's): its number found once, the types it meets
  //! remembered (no lock for them).
  class Reader {
   public:
    //! The form recorded for object `id` (0 original, 1 variant), if known here.
    std::optional<int> Find(std::string_view id) {
      Key k;
      if (!known_ || !ParseId(id, &k, &type_) || !TypeNumber(false, &k.type)) return std::nullopt;
      k.recipient = recipient_;
      const Shard& s = cache_->shards_[ShardOf(k)];
      std::lock_guard lock(s.mu);
      auto it = s.map.find(k);
      if (it == s.map.end()) return std::nullopt;
      return it->second;
    }

    //! A row read from `releases` in a committed state (never one being written: see above).
    void Note(std::string_view id, int variant) {
      Key k;
      if (cache_->per_shard_ == 0 || variant < 0 || variant > 1 || recipient_name_.empty() || !ParseId(id, &k, &type_)) return;
      if (!known_ && !(known_ = Number(cache_->recipients_, recipient_name_, true, &recipient_))) return;
      if (!TypeNumber(true, &k.type)) return;
      k.recipient = recipient_;
      Shard& s = cache_->shards_[ShardOf(k)];
      std::lock_guard lock(s.mu);
      if (s.map.size() >= cache_->per_shard_) {
        cache_->entries_.fetch_sub(s.map.size(), std::memory_order_relaxed);
        s.map.clear();
      }
      if (s.map.emplace(k, static_cast<uint8_t>(variant)).second) cache_->entries_.fetch_add(1, std::memory_order_relaxed);
    }

    //! The recipient's slot on rows (Row::HeldHint), or -1: the first Row::kHeldSlots
    //! recipients numbered have one.
    int RowSlot() const { return known_ && recipient_ < kRowSlots ? static_cast<int>(recipient_) : -1; }

   private:
    friend class ReleaseHistoryCache;
    Reader(ReleaseHistoryCache* c, std::string_view recipient) : cache_(c), recipient_name_(recipient) {
      // In the body: recipient_'s own initializer runs after known_'s (declaration order).
      known_ = c->per_shard_ > 0 && !recipient.empty() && Number(c->recipients_, recipient, false, &recipient_);
    }
    // The number of type_ (the id just parsed), numbering it when `add`.
    bool TypeNumber(bool add, uint32_t* out) {
      for (const Type& seen : types_) {
        if (seen.name == type_) return *out = seen.number, true;
      }
      if (!Number(cache_->types_, type_, add, out)) return false;
      if (types_.size() < kTypesRemembered) types_.push_back({std::string(type_), *out});
      return true;
    }
    ReleaseHistoryCache* cache_;
    std::string_view recipient_name_;
    bool known_ = false;
    static constexpr size_t kTypesRemembered = 16;
    struct Type {
      std::string name;
      uint32_t number;
    };
    uint32_t recipient_ = 0;
    std::string_view type_;     // the id being looked up's
    std::vector<Type> types_;  // numbered types met by this reader
  };
  //! `recipient` must outlive the reader.
  Reader For(std::string_view recipient) { return Reader(this, recipient); }

  //! Reader::Note for one row.
  void Note(std::string_view recipient, std::string_view id, int variant) { For(recipient).Note(id, variant); }

  size_t Entries() const { return entries_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kShards = 64;
  static constexpr uint32_t kRowSlots = Row::kHeldSlots;
  static constexpr size_t kMaxNames = 1 << 16;  // recipients and types; more are not kept

  struct Key {
    uint64_t hi = 0, lo = 0;  // the uuid
    uint32_t recipient = 0, type = 0;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      uint64_t h = k.hi * 0x9E3779B97F4A7C15ull ^ k.lo;
      h ^= (uint64_t{k.recipient} << 32 | k.type) * 0xC2B2AE3D27D4EB4Full;
      return static_cast<size_t>(h ^ (h >> 29));
    }
  };
  struct Shard {
    mutable std::mutex mu;
    boost::unordered_flat_map<Key, uint8_t, KeyHash> map;
  };

  static size_t ShardOf(const Key& k) { return KeyHash{}(k) % kShards; }

  // "<type>--xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (lowercase hex) -> the uuid in `k`, the
  // type in `type`; false for any other form.
  static bool ParseId(std::string_view id, Key* k, std::string_view* type) {
    constexpr size_t kUuid = 36;
    if (id.size() <= kUuid + 2 || id.compare(id.size() - kUuid - 2, 2, "--") != 0) return false;
    const auto* u = reinterpret_cast<const unsigned char*>(id.data() + id.size() - kUuid);
    if (u[8] != '-' || u[13] != '-' || u[18] != '-' || u[23] != '-') return false;
    // The 32 digits' positions; one table lookup each, any non-digit (upper case too) marks `bad`.
    static constexpr uint8_t kAt[32] = {0,  1,  2,  3,  4,  5,  6,  7,  9,  10, 11, 12, 14, 15, 16, 17,
                                        19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35};
    uint64_t half[2] = {0, 0};
    uint8_t bad = 0;
    for (int i = 0; i < 32; ++i) {
      const uint8_t v = kHexValue[u[kAt[i]]];
      bad |= v;
      half[i >> 4] = half[i >> 4] << 4 | (v & 0xF);
    }
    if (bad & 0x10) return false;
    k->hi = half[0];
    k->lo = half[1];
    *type = id.substr(0, id.size() - kUuid - 2);
    return true;
  }
  // A lowercase hex digit's value; 0x10 for every other byte.
  static constexpr std::array<uint8_t, 256> kHexValue = [] {
    std::array<uint8_t, 256> t{};
    t.fill(0x10);
    for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<uint8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<uint8_t>(c - 'a' + 10);
    return t;
  }();

  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Names {
    std::shared_mutex mu;
    std::unordered_map<std::string, uint32_t, NameHash, std::equal_to<>> numbers;  // found by string_view
  };
  static bool Number(Names& n, std::string_view name, bool add, uint32_t* out) {
    {
      std::shared_lock lock(n.mu);
      auto it = n.numbers.find(name);
      if (it != n.numbers.end()) return *out = it->second, true;
      if (!add) return false;
    }
    std::unique_lock lock(n.mu);
    if (auto it = n.numbers.find(name); it != n.numbers.end()) return *out = it->second, true;  // numbered meanwhile
    if (n.numbers.size() >= kMaxNames) return false;
    *out = n.numbers.emplace(std::string(name), static_cast<uint32_t>(n.numbers.size())).first->second;
    return true;
  }
  size_t per_shard_;
  std::array<Shard, kShards> shards_;
  Names recipients_, types_;
  std::atomic<size_t> entries_{0};
};

}  // namespace tearline::store::detail
