// The recent level of the id index (schema 16), kept in memory instead of written.
//
// The rows of an id, and of a derived (tear-line variant) id, are found by a key (IdKey,
// DerivedKey below) in two levels, like a log-structured merge tree: id_index, a table, and
// the recent level. The key space is cut into kSlices ranges ("slices"); each slice has a merge
// point (meta 'id_merged_pk': kSlices pks, comma-separated): every row with pk <= it has its
// keys of that slice in id_index; the keys above it are the recent level. Until schema 15 that
// level was a table too (id_index_new): two random-key B-tree inserts per stored object, and
// merges of the whole level at once (one group of Puts stalled for the whole merge). Now each
// process keeps it in memory (RecentIds), read from the objects table itself (the rows above
// the lowest merge point: their id_key and derived_id columns) and kept up to date by its
// writer as it stores rows; a merge moves one slice (1/kSlices of id_index's pages). Every
// connection of the process sees the level as the eponymous virtual table `id_recent`
// (coll, key, pk); the view id_lookup is id_index UNION ALL id_recent, so the SQL that finds
// rows by key is unchanged.
//
// Correctness rests on three rules:
// - What a connection sees of id_recent follows its own snapshot: the merge points are read
//   from meta in that snapshot and only entries above them are returned; a connection whose
//   snapshot holds rows the memory lacks (written by another process) first reads them
//   (Sync). Entries for rows the snapshot does not hold (stored later, or deleted) may be
//   returned: every query joins them to the objects table and compares whole ids.
// - Memory drops a slice's entries only up to its merge point before the last one seen; a
//   snapshot older than that (a read that lasted across two merges of a slice) gets the
//   missing range read from the objects table instead.
// - Rows another process deleted make memory be read again (their keys must not be merged
//   into id_index); this process's own deletes take their keys out as they commit. A snapshot
//   older than the last delete memory reflects neither uses memory (it lacks rows the snapshot
//   still holds) nor adds to it (they may be deleted top rows): it reads the level from the
//   objects table for itself.
// - A pk is never used twice (meta 'pk_high' remembers the highest pk deleted; the writer
//   stores rows above it), so an entry never points at a different object than it was made for.
#pragma once

#include <sqlite3.h>

#include <array>
#include <climits>
#include <cstdint>
#include <string>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string_view>
#include <vector>

namespace tearline::store::detail {

// The id_index key of an id (schema 13): FNV-1a 64 of its bytes, kept to 47 bits so SQLite
// stores it in six bytes. Part of the file format: it must never change.
int64_t IdKey(std::string_view id);
// The key of a derived (tear-line variant) id (schema 14): negative, never the key of an id.
int64_t DerivedKey(std::string_view derived_id);

class RecentIds {
 public:
  static constexpr int kSlices = 16;
  // The slice of a key: keys are 48-bit signed (IdKey >= 0, DerivedKey < 0), cut in ranges.
  static int SliceOf(int64_t key) { return static_cast<int>(static_cast<uint64_t>(key + (int64_t{1} << 47)) >> 44) & (kSlices - 1); }
  using Points = std::array<int64_t, kSlices>;
  // meta 'id_merged_pk' <-> Points (one value stands for every slice; malformed: false).
  static bool ParsePoints(std::string_view text, Points* out);
  static std::string FormatPoints(const Points& p);

  struct Entry {
    int64_t coll, key, pk;
  };
  // What one connection's snapshot says (Sync).
  struct View {
    Points merged{};     // meta 'id_merged_pk'
    int64_t max_pk = 0;  // the highest pk in objects
    int64_t deletes = 0;  // meta 'deletes': counts the transactions that deleted rows
    bool stale = false;   // older than a delete memory reflects: the level is read from the objects (Sync)
    int64_t Lowest() const;
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
    sqlite3_stmt* stmts_[2] = {};
  };

  // Reads the connection's snapshot (merge points, highest pk) and, unless a write transaction
  // of this process is adding entries (BeginWrite), catches up with the rows it holds that
  // memory lacks. False on a read error.
  bool Sync(Probe& probe, View* view);
  // The pks with (coll, key) above its slice's merge point in `view`, appended to `out` (the
  // writer's own lookups).
  void Find(int64_t coll, int64_t key, const View& view, std::vector<int64_t>* out) const;
  // What the virtual table returns to a connection whose snapshot is `view`: entries above
  // their slice's merge point, with coll (if coll_set) and key (if key_set). Reads the objects
  // table through `probe` for ranges memory no longer holds. False on a read error.
  bool Collect(Probe& probe, const View& view, bool coll_set, int64_t coll, bool key_set, int64_t key,
               std::vector<Entry>* out) const;

  // The writer's transaction: BeginWrite after Sync, Add for each row stored, then Committed
  // (entries kept; `merged`: the merge points the transaction wrote, if it merged a slice;
  // `removed`: keys of rows it deleted, `deletes` meta 'deletes' after it) or RolledBack (its
  // entries dropped).
  void BeginWrite();
  void Add(int64_t coll, int64_t key, int64_t pk);
  void Committed(const Points* merged, const std::vector<Entry>& removed, int64_t deletes);
  void RolledBack();

  // Entries above their slice's merge point (the recent level's size, for the merge decision
  // and metrics), and in one slice.
  int64_t Above() const;
  int64_t AboveIn(int slice) const;
  // The entries of `slice` with pk in (merged, upto], sorted by (coll, key, pk): what a merge
  // of that slice moves.
  std::vector<Entry> Sorted(int slice, int64_t merged, int64_t upto) const;
  // The highest pk memory covers (every committed row up to it is in memory), -1 before the
  // first Sync.
  int64_t Covered() const;

 private:
  // One slice's entries, in pk order (rows are added in pk order: a writer's own, and those
  // read from the file above what memory covers), each linked to the previous entry of its key;
  // an open-addressing table finds a key's last entry. Dropping the entries up to a merge
  // point rebuilds the slice from what is left; a rollback cuts the newest entries off.
  class Slice {
   public:
    void Add(int64_t coll, int64_t key, int64_t pk);
    template <typename Fn>
    void ForKey(int64_t coll, int64_t key, Fn&& fn) const {
      for (int32_t i = Head(coll, key); i >= 0; i = items_[static_cast<size_t>(i)].prev) {
        const Item& it = items_[static_cast<size_t>(i)];
        if (!it.dead && it.coll == coll && it.key == key) fn(it.pk);
      }
    }
    template <typename Fn>
    void ForAll(Fn&& fn) const {
      for (const Item& it : items_) {
        if (!it.dead) fn(Entry{it.coll, it.key, it.pk});
      }
    }
    bool Remove(int64_t coll, int64_t key, int64_t pk);  // false if not there
    void DropAbove(int64_t pk);                           // the entries with a larger pk
    void KeepAbove(int64_t pk);                           // only the entries with a larger pk
    int64_t CountAbove(int64_t pk) const;

    int64_t floor = 0;       // entries with pk <= floor were dropped (they are in id_index)
    int64_t last_merge = 0;  // the newest merge point seen
    int64_t above = 0;       // entries with pk > last_merge

   private:
    struct Item {
      int64_t coll, key, pk;
      int32_t prev;  // the previous entry of the same key, -1 for none
      bool dead;     // its row was deleted
    };
    // 16 bytes: the collection's pk kept to 32 bits (two collections whose pks agree there share
    // a slot's chain; ForKey and Remove compare the entries' whole keys).
    struct Slot {
      int64_t key;
      int32_t coll;
      int32_t head;  // the key's last entry, -1 for none, kFree: a free slot (ends a probe)
    };
    static constexpr int32_t kFree = INT32_MIN;
    int32_t Head(int64_t coll, int64_t key) const;
    Slot& SlotFor(int64_t coll, int64_t key);  // the key's slot, or the free one it would take
    void Link(size_t i);
    void Rehash(size_t capacity);
    std::vector<Item> items_;
    std::vector<Slot> slots_;
    size_t used_ = 0;
  };
  void AddLocked(int64_t coll, int64_t key, int64_t pk);
  void NoteMergeLocked(const Points& merged);
  static void Recount(Slice& s);

  mutable std::shared_mutex mu_;
  std::array<Slice, kSlices> slices_;
  int64_t covered_ = -1;  // every committed row with pk <= covered_ is in memory
  int64_t highest_ = 0;   // the highest pk added
  int64_t deletes_ = 0;   // meta 'deletes' memory reflects (Sync reads it again when another process deleted)
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
