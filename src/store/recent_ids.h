// The recent level of the id index (schema 16), kept in memory instead of written.
//
// The rows of an id, and of a derived (tear-line variant) id, are found by a key (IdKey,
// DerivedKey below) in two levels, like a log-structured merge tree: id_index, a table, holds
// the keys of every object row up to a merge point (meta 'id_merged_pk': every row with
// pk <= it has its keys there); the rows stored after it are the recent level. Until schema 15
// that level was a table too (id_index_new): two random-key B-tree inserts per stored object,
// about a third of the committer's time per POSTed object (docs/benchmarks.md, tenth session).
// Now each process keeps it in memory (RecentIds), read from the objects table itself (the
// rows with pk > the merge point: their id_key and derived_id columns) and kept up to date by
// its writer as it stores rows. Every connection of the process sees it as the eponymous
// virtual table `id_recent` (coll, key, pk); the view id_lookup is id_index UNION ALL
// id_recent, so the SQL that finds rows by key is unchanged.
//
// Correctness rests on three rules:
// - What a connection sees of id_recent follows its own snapshot: the merge point is read
//   from meta in that snapshot and only entries above it are returned; a connection whose
//   snapshot holds rows the memory lacks (written by another process) first reads them
//   (CatchUp). Entries for rows the snapshot does not hold (stored later, or deleted) may be
//   returned: every query joins them to the objects table and compares whole ids.
// - Memory drops entries only up to the merge point before the last one seen; a snapshot
//   older than that (a read that lasted across two merges) gets the missing range read from
//   the objects table instead.
// - A pk is never used twice (meta 'pk_high' remembers the highest pk deleted; the writer
//   stores rows above it), so an entry never points at a different object than it was made for.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tearline::store::detail {

// The id_index key of an id (schema 13): FNV-1a 64 of its bytes, kept to 47 bits so SQLite
// stores it in six bytes. Part of the file format: it must never change.
int64_t IdKey(std::string_view id);
// The key of a derived (tear-line variant) id (schema 14): negative, never the key of an id.
int64_t DerivedKey(std::string_view derived_id);

class RecentIds {
 public:
  struct Entry {
    int64_t coll, key, pk;
  };
  // What one connection's snapshot says (Sync).
  struct View {
    int64_t merged = 0;  // meta 'id_merged_pk'
    int64_t max_pk = 0;  // the highest pk in objects
  };
  // Statements one connection uses for Sync and Collect (prepared on first use).
  class Probe {
   public:
    explicit Probe(sqlite3* db) : db_(db) {}
    ~Probe();
    Probe(const Probe&) = delete;
    Probe& operator=(const Probe&) = delete;
    sqlite3* db() const { return db_; }

   private:
    friend class RecentIds;
    sqlite3_stmt* Get(int i);
    sqlite3* db_;
    sqlite3_stmt* stmts_[3] = {};
  };

  // Reads the connection's snapshot (merge point, highest pk) and, unless a write transaction
  // of this process is adding entries (BeginWrite), catches up with the rows it holds that
  // memory lacks. False on a read error.
  bool Sync(Probe& probe, View* view);
  // The pks with (coll, key) above `merged`, appended to `out` (the writer's own lookups).
  void Find(int64_t coll, int64_t key, int64_t merged, std::vector<int64_t>* out) const;
  // What the virtual table returns to a connection whose snapshot is `view`: entries above
  // view.merged, with coll (if coll_set) and key (if key_set). Reads the objects table through
  // `probe` for a range memory no longer holds. False on a read error.
  bool Collect(Probe& probe, const View& view, bool coll_set, int64_t coll, bool key_set, int64_t key,
               std::vector<Entry>* out) const;

  // The writer's transaction: BeginWrite after Sync, Add for each row stored, then Committed
  // (entries kept; `merged_to` > 0 when the transaction moved the recent level into id_index
  // up to that pk; `removed`: keys of rows it deleted) or RolledBack (its entries dropped).
  void BeginWrite();
  void Add(int64_t coll, int64_t key, int64_t pk);
  void Committed(int64_t merged_to, const std::vector<Entry>& removed);
  void RolledBack();
  bool Writing() const;

  // Entries above the current merge point (the recent level's size, for the merge decision
  // and metrics); calls fn for each (the writer's key filter of id_index, at a merge).
  int64_t Above() const;
  void ForEachAbove(const std::function<void(const Entry&)>& fn) const;
  // The entries with pk in (merged, upto], sorted by (coll, key, pk): what a merge moves.
  std::vector<Entry> Sorted(int64_t merged, int64_t upto) const;
  // The highest pk memory covers (every committed row up to it is in memory), -1 before the
  // first Sync; the highest pk added (covered or pending).
  int64_t Covered() const;
  int64_t Highest() const;

 private:
  struct KeyHash {
    size_t operator()(const std::pair<int64_t, int64_t>& k) const {
      return std::hash<int64_t>()(k.second * 1000003 ^ k.first);
    }
  };
  void AddLocked(int64_t coll, int64_t key, int64_t pk);
  void NoteMergeLocked(int64_t merged);
  void RecountLocked();

  mutable std::shared_mutex mu_;
  std::unordered_multimap<std::pair<int64_t, int64_t>, int64_t, KeyHash> map_;
  int64_t covered_ = -1;     // every committed row with pk <= covered_ is in memory
  int64_t floor_ = 0;        // entries with pk <= floor_ were dropped (they are in id_index)
  int64_t last_merge_ = 0;   // the newest merge point seen
  int64_t highest_ = 0;      // the highest pk added
  int64_t above_ = 0;        // entries with pk > last_merge_
  bool writing_ = false;
};

// What a connection's id_recent reads through: the store's RecentIds (shared by its
// connections) and the connection's own Probe. Both must outlive the connection's statements;
// the Probe must be destroyed before the connection is closed (its statements would keep the
// connection open).
struct IdRecentBinding {
  RecentIds* ids = nullptr;
  RecentIds::Probe* probe = nullptr;
};

// Registers the eponymous virtual table id_recent on `db`. With binding == nullptr each
// statement reads the recent level from the file afresh (a connection outside a store, e.g.
// a test's or a tool's).
bool RegisterIdRecent(sqlite3* db, IdRecentBinding* binding);

}  // namespace tearline::store::detail
