#include "store/recent_ids.h"

#include <algorithm>
#include <climits>
#include <mutex>
#include <string>

namespace tearline::store::detail {

int64_t IdKey(std::string_view id) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<int64_t>(h & ((uint64_t{1} << 47) - 1));
}

int64_t DerivedKey(std::string_view derived_id) { return -1 - IdKey(derived_id); }

namespace {

// The snapshot's merge points and highest pk; the rows of a pk range with their keys.
constexpr const char* kProbeSql[] = {
    "SELECT coalesce((SELECT value FROM meta WHERE key='id_merged_pk'), '0'), "
    "(SELECT coalesce(max(pk), 0) FROM objects), "
    "coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key='deletes'), 0)",
    "SELECT pk, coll, id_key, derived_id FROM objects WHERE pk > ?1 AND pk <= ?2 ORDER BY pk",
};

// The keys of the object rows with pk in (after, upto], through `s` (kProbeSql[1]), passed to fn.
template <typename Fn>
bool ReadRows(sqlite3_stmt* s, int64_t after, int64_t upto, Fn&& fn) {
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, after);
  sqlite3_bind_int64(s, 2, upto);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const int64_t pk = sqlite3_column_int64(s, 0), coll = sqlite3_column_int64(s, 1);
    fn(RecentIds::Entry{coll, sqlite3_column_int64(s, 2), pk});
    const auto* d = static_cast<const char*>(sqlite3_column_blob(s, 3));
    const int n = sqlite3_column_bytes(s, 3);
    if (n > 0) fn(RecentIds::Entry{coll, DerivedKey(std::string_view(d, static_cast<size_t>(n))), pk});
  }
  sqlite3_reset(s);  // a pending read would pin the snapshot
  return rc == SQLITE_DONE;
}

}  // namespace

bool RecentIds::ParsePoints(std::string_view text, Points* out) {
  std::vector<int64_t> v;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string_view::npos) j = text.size();
    std::string_view part = text.substr(i, j - i);
    if (part.empty() || part.size() > 19) return false;
    int64_t n = 0;
    for (char c : part) {
      if (c < '0' || c > '9') return false;
      n = n * 10 + (c - '0');
    }
    v.push_back(n);
    i = j + 1;
  }
  if (v.size() == 1) v.assign(kSlices, v[0]);
  if (v.size() != kSlices) return false;
  std::copy(v.begin(), v.end(), out->begin());
  return true;
}

std::string RecentIds::FormatPoints(const Points& p) {
  std::string out;
  for (int i = 0; i < kSlices; ++i) out += (i ? "," : "") + std::to_string(p[static_cast<size_t>(i)]);
  return out;
}

int64_t RecentIds::View::Lowest() const { return *std::min_element(merged.begin(), merged.end()); }

RecentIds::Probe::~Probe() {
  for (auto* s : stmts_) sqlite3_finalize(s);
}

sqlite3_stmt* RecentIds::Probe::Get(int i) {
  if (!stmts_[i] && sqlite3_prepare_v3(db_, kProbeSql[i], -1, SQLITE_PREPARE_PERSISTENT, &stmts_[i], nullptr) != SQLITE_OK) {
    return nullptr;
  }
  return stmts_[i];
}

bool RecentIds::Sync(Probe& probe, View* view) {
  sqlite3_stmt* s = probe.Get(0);
  if (!s) return false;
  sqlite3_reset(s);
  if (sqlite3_step(s) != SQLITE_ROW) {
    sqlite3_reset(s);
    return false;
  }
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  const bool parsed = text && ParsePoints(text, &view->merged);
  view->max_pk = sqlite3_column_int64(s, 1);
  view->deletes = sqlite3_column_int64(s, 2);
  sqlite3_reset(s);
  if (!parsed) return false;
  {
    // A snapshot older than a delete memory already reflects: memory lacks rows this snapshot
    // still holds, so it reads the recent level from the objects table (Collect). Only reads
    // that overlap a delete pay that.
    std::shared_lock lock(mu_);
    view->stale = covered_ >= 0 && view->deletes < deletes_;
    if (view->stale) return true;
  }
  while (true) {
    int64_t from;
    bool rebuild;
    {
      std::shared_lock lock(mu_);
      // Rows deleted by another process: memory is read again (a merge must not move their
      // keys into id_index). Its own deletes are taken out as they commit (Committed).
      rebuild = !writing_ && covered_ >= 0 && view->deletes > deletes_;
      const bool behind = covered_ < 0 || (!writing_ && view->max_pk > covered_);
      bool newer = false;
      for (int i = 0; i < kSlices; ++i) newer |= view->merged[static_cast<size_t>(i)] > slices_[static_cast<size_t>(i)].last_merge;
      if (!behind && !newer && !rebuild) return true;
      from = covered_ < 0 || rebuild ? view->Lowest() : covered_;
    }
    // Rows another process stored (or, when memory is read whole, those above the lowest merge
    // point) are read without the lock, then added: a thread that added them meanwhile leaves
    // nothing to do.
    std::vector<Entry> rows;
    if (view->max_pk > from) {
      sqlite3_stmt* r = probe.Get(1);
      if (!r || !ReadRows(r, from, view->max_pk, [&](const Entry& e) { rows.push_back(e); })) return false;
    }
    std::unique_lock lock(mu_);
    if (rebuild && !writing_ && view->deletes > deletes_) {
      for (Slice& sl : slices_) sl = Slice();
      covered_ = -1;
    }
    if (covered_ < 0) {
      if (from != view->Lowest()) continue;  // emptied by another thread meanwhile: read whole
      deletes_ = std::max(deletes_, view->deletes);
      covered_ = highest_ = from;
      for (int i = 0; i < kSlices; ++i) {
        auto& sl = slices_[static_cast<size_t>(i)];
        sl.floor = sl.last_merge = view->merged[static_cast<size_t>(i)];
      }
    } else if (from > covered_) {
      continue;  // cannot happen (covered_ only grows while memory is not emptied); read again
    }
    if (!writing_ && view->max_pk > covered_) {
      if (view->deletes < deletes_) {
        // A snapshot older than a delete memory knows of (below): the rows it holds above what
        // memory covers were deleted since (top rows: a newer snapshot's highest pk is lower),
        // and must not go into memory (a merge would index them).
        view->stale = true;
      } else {
        for (const Entry& e : rows) {
          if (e.pk > covered_ && e.pk > slices_[static_cast<size_t>(SliceOf(e.key))].floor) AddLocked(e.coll, e.key, e.pk);
        }
        covered_ = view->max_pk;
        highest_ = std::max(highest_, covered_);
      }
    }
    NoteMergeLocked(view->merged);
    return true;
  }
}

void RecentIds::Find(int64_t coll, int64_t key, const View& view, std::vector<int64_t>* out) const {
  const auto slice = static_cast<size_t>(SliceOf(key));
  std::shared_lock lock(mu_);
  slices_[slice].ForKey(coll, key, [&](int64_t pk) {
    if (pk > view.merged[slice]) out->push_back(pk);
  });
}

bool RecentIds::Collect(Probe& probe, const View& view, bool coll_set, int64_t coll, bool key_set, int64_t key,
                        std::vector<Entry>* out) const {
  auto wanted = [&](const Entry& e) { return (!coll_set || e.coll == coll) && (!key_set || e.key == key); };
  if (view.stale) {  // the whole level from the objects table (Sync)
    sqlite3_stmt* r = probe.Get(1);
    return r && ReadRows(r, view.Lowest(), view.max_pk, [&](const Entry& e) {
             if (e.pk > view.merged[static_cast<size_t>(SliceOf(e.key))] && wanted(e)) out->push_back(e);
           });
  }
  Points floors;
  {
    std::shared_lock lock(mu_);
    for (int i = 0; i < kSlices; ++i) {
      const auto si = static_cast<size_t>(i);
      floors[si] = slices_[si].floor;
      if (key_set && SliceOf(key) != i) continue;
      const Slice& sl = slices_[si];
      const int64_t above = std::max(view.merged[si], sl.floor);
      if (coll_set && key_set) {
        sl.ForKey(coll, key, [&](int64_t pk) {
          if (pk > above) out->push_back({coll, key, pk});
        });
      } else {
        sl.ForAll([&](const Entry& e) {
          if (e.pk > above && wanted(e)) out->push_back(e);
        });
      }
    }
  }
  // A snapshot older than a slice's merge before last: the range memory dropped, from the objects.
  int64_t from = INT64_MAX, to = 0;
  for (int i = 0; i < kSlices; ++i) {
    const auto si = static_cast<size_t>(i);
    if ((key_set && SliceOf(key) != i) || view.merged[si] >= floors[si]) continue;
    from = std::min(from, view.merged[si]);
    to = std::max(to, floors[si]);
  }
  sqlite3_stmt* r = probe.Get(1);
  if (from < to && !(r && ReadRows(r, from, to, [&](const Entry& e) {
        const auto si = static_cast<size_t>(SliceOf(e.key));
        if (e.pk > view.merged[si] && e.pk <= floors[si] && wanted(e)) out->push_back(e);
      }))) {
    return false;
  }
  return true;
}

void RecentIds::BeginWrite() {
  std::unique_lock lock(mu_);
  writing_ = true;
}

void RecentIds::Add(int64_t coll, int64_t key, int64_t pk) {
  std::unique_lock lock(mu_);
  AddLocked(coll, key, pk);
}

void RecentIds::Committed(const Points* merged, const std::vector<Entry>& removed, int64_t deletes) {
  std::unique_lock lock(mu_);
  writing_ = false;
  deletes_ = std::max(deletes_, deletes);
  covered_ = std::max(covered_, highest_);
  for (const Entry& r : removed) {
    Slice& sl = slices_[static_cast<size_t>(SliceOf(r.key))];
    if (sl.Remove(r.coll, r.key, r.pk) && r.pk > sl.last_merge) --sl.above;
  }
  if (merged) NoteMergeLocked(*merged);
}

void RecentIds::RolledBack() {
  std::unique_lock lock(mu_);
  writing_ = false;
  if (highest_ <= covered_) return;
  for (Slice& sl : slices_) {
    sl.DropAbove(covered_);
    Recount(sl);
  }
  highest_ = covered_;
}

int64_t RecentIds::Above() const {
  std::shared_lock lock(mu_);
  int64_t n = 0;
  for (const Slice& sl : slices_) n += sl.above;
  return n;
}

int64_t RecentIds::AboveIn(int slice) const {
  std::shared_lock lock(mu_);
  return slices_[static_cast<size_t>(slice)].above;
}

std::vector<RecentIds::Entry> RecentIds::Sorted(int slice, int64_t merged, int64_t upto) const {
  std::vector<Entry> out;
  {
    std::shared_lock lock(mu_);
    const Slice& sl = slices_[static_cast<size_t>(slice)];
    out.reserve(static_cast<size_t>(sl.above));
    sl.ForAll([&](const Entry& e) {
      if (e.pk > merged && e.pk <= upto) out.push_back(e);
    });
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    return a.coll != b.coll ? a.coll < b.coll : a.key != b.key ? a.key < b.key : a.pk < b.pk;
  });
  return out;
}

int64_t RecentIds::Covered() const {
  std::shared_lock lock(mu_);
  return covered_;
}

void RecentIds::AddLocked(int64_t coll, int64_t key, int64_t pk) {
  Slice& sl = slices_[static_cast<size_t>(SliceOf(key))];
  sl.Add(coll, key, pk);
  highest_ = std::max(highest_, pk);
  if (pk > sl.last_merge) ++sl.above;
}

// Merge points newer than the last ones seen: a slice's entries up to its last one go
// (snapshots between the two still find theirs in memory; older ones read the dropped range
// from the objects).
void RecentIds::NoteMergeLocked(const Points& merged) {
  for (int i = 0; i < kSlices; ++i) {
    Slice& sl = slices_[static_cast<size_t>(i)];
    const int64_t m = merged[static_cast<size_t>(i)];
    if (m <= sl.last_merge) continue;
    sl.floor = sl.last_merge;
    sl.last_merge = m;
    sl.KeepAbove(sl.floor);
    Recount(sl);
  }
}

void RecentIds::Recount(Slice& sl) { sl.above = sl.CountAbove(sl.last_merge); }

// ---- Slice ----

namespace {
// Over the key and the slot's 32 bits of the collection (Slot): entries that share a slot
// must share its probe sequence.
size_t HashKey(int64_t coll, int64_t key) {
  const auto c = static_cast<uint32_t>(static_cast<int32_t>(coll));
  uint64_t h = static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ull ^ uint64_t{c} * 0xC2B2AE3D27D4EB4Full;
  return static_cast<size_t>(h ^ (h >> 29));
}
}  // namespace

int32_t RecentIds::Slice::Head(int64_t coll, int64_t key) const {
  if (slots_.empty()) return -1;
  const size_t mask = slots_.size() - 1;
  for (size_t i = HashKey(coll, key) & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.head == kFree) return -1;  // the end of the probe
    if (s.key == key && s.coll == static_cast<int32_t>(coll)) return s.head;
  }
}

RecentIds::Slice::Slot& RecentIds::Slice::SlotFor(int64_t coll, int64_t key) {
  const size_t mask = slots_.size() - 1;
  for (size_t i = HashKey(coll, key) & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.head == kFree || (s.key == key && s.coll == static_cast<int32_t>(coll))) return s;
  }
}

// items_[i] becomes its key's last entry.
void RecentIds::Slice::Link(size_t i) {
  Item& it = items_[i];
  Slot& s = SlotFor(it.coll, it.key);
  if (s.head == kFree) {
    ++used_;
    s.head = -1;
  }
  s.coll = static_cast<int32_t>(it.coll);
  s.key = it.key;
  it.prev = s.head;
  s.head = static_cast<int32_t>(i);
}

void RecentIds::Slice::Rehash(size_t capacity) {
  slots_.assign(capacity, Slot{0, 0, kFree});
  used_ = 0;
  for (size_t i = 0; i < items_.size(); ++i) Link(i);
}

void RecentIds::Slice::Add(int64_t coll, int64_t key, int64_t pk) {
  items_.push_back({coll, key, pk, -1, false});
  if ((used_ + 1) * 2 > slots_.size()) Rehash(std::max<size_t>(64, slots_.size() * 2));  // links it too
  else Link(items_.size() - 1);
}

bool RecentIds::Slice::Remove(int64_t coll, int64_t key, int64_t pk) {
  for (int32_t i = Head(coll, key); i >= 0; i = items_[static_cast<size_t>(i)].prev) {
    Item& it = items_[static_cast<size_t>(i)];
    if (it.pk == pk && !it.dead && it.coll == coll && it.key == key) {
      it.dead = true;
      return true;
    }
  }
  return false;
}

void RecentIds::Slice::DropAbove(int64_t pk) {
  while (!items_.empty() && items_.back().pk > pk) {
    const Item it = items_.back();
    items_.pop_back();
    SlotFor(it.coll, it.key).head = it.prev;  // it was its key's last entry
  }
}

void RecentIds::Slice::KeepAbove(int64_t pk) {
  std::vector<Item> kept;
  for (const Item& it : items_) {
    if (it.pk > pk && !it.dead) kept.push_back(it);
  }
  items_ = std::move(kept);
  size_t cap = 64;
  while (cap < items_.size() * 4 + 2) cap *= 2;  // room to grow before the next rehash
  Rehash(cap);
}

int64_t RecentIds::Slice::CountAbove(int64_t pk) const {
  int64_t n = 0;
  for (const Item& it : items_) n += it.pk > pk && !it.dead;
  return n;
}

// ---- the virtual table id_recent(coll, key, pk) ----

namespace {

struct Vtab : sqlite3_vtab {
  sqlite3* db = nullptr;
  IdRecentBinding* binding = nullptr;  // null: each cursor reads from the file
};

struct Cursor : sqlite3_vtab_cursor {
  std::vector<RecentIds::Entry> rows;
  size_t at = 0;
  bool synced = false;
  RecentIds::View view;
  // A stale snapshot's whole level, read from the file once per statement (not once per value
  // of an IN list: each read is up to the level's size in rows).
  std::vector<RecentIds::Entry> file_rows;
  bool file_loaded = false;
  // Without a binding: the cursor's own (its statements finalized when it closes).
  std::unique_ptr<RecentIds> own_ids;
  std::unique_ptr<RecentIds::Probe> own_probe;
  RecentIds* ids = nullptr;
  RecentIds::Probe* probe = nullptr;
};

int Connect(sqlite3* db, void* aux, int, const char* const*, sqlite3_vtab** out, char** err) {
  int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(coll INTEGER, key INTEGER, pk INTEGER)");
  if (rc != SQLITE_OK) return rc;
  sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
  auto* v = new Vtab();
  v->db = db;
  v->binding = static_cast<IdRecentBinding*>(aux);
  *out = v;
  (void)err;
  return SQLITE_OK;
}

int Disconnect(sqlite3_vtab* v) {
  delete static_cast<Vtab*>(v);
  return SQLITE_OK;
}

// idxNum: bit 1 an equality on coll, bit 2 on key (their values in that order).
int BestIndex(sqlite3_vtab*, sqlite3_index_info* info) {
  int coll = -1, key = -1;
  for (int i = 0; i < info->nConstraint; ++i) {
    const auto& c = info->aConstraint[i];
    if (!c.usable || c.op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (c.iColumn == 0 && coll < 0) coll = i;
    if (c.iColumn == 1 && key < 0) key = i;
  }
  int n = 0, idx = 0;
  if (coll >= 0) {
    info->aConstraintUsage[coll].argvIndex = ++n;
    info->aConstraintUsage[coll].omit = 1;
    idx |= 1;
  }
  if (key >= 0) {
    info->aConstraintUsage[key].argvIndex = ++n;
    info->aConstraintUsage[key].omit = 1;
    idx |= 2;
  }
  info->idxNum = idx;
  info->estimatedCost = idx == 3 ? 2.0 : idx ? 50000.0 : 100000.0;
  info->estimatedRows = idx == 3 ? 2 : idx ? 25000 : 50000;
  return SQLITE_OK;
}

int Open(sqlite3_vtab* base, sqlite3_vtab_cursor** out) {
  auto* v = static_cast<Vtab*>(base);
  auto* c = new Cursor();
  if (v->binding) {
    c->ids = v->binding->ids;
    c->probe = v->binding->probe;
  } else {
    c->own_ids = std::make_unique<RecentIds>();
    c->own_probe = std::make_unique<RecentIds::Probe>(v->db);
    c->ids = c->own_ids.get();
    c->probe = c->own_probe.get();
  }
  *out = c;
  return SQLITE_OK;
}

int Close(sqlite3_vtab_cursor* c) {
  delete static_cast<Cursor*>(c);
  return SQLITE_OK;
}

int Filter(sqlite3_vtab_cursor* base, int idx, const char*, int argc, sqlite3_value** argv) {
  auto* c = static_cast<Cursor*>(base);
  auto* v = static_cast<Vtab*>(base->pVtab);
  c->rows.clear();
  c->at = 0;
  int64_t vals[2] = {0, 0};
  for (int i = 0; i < argc && i < 2; ++i) {
    if (sqlite3_value_numeric_type(argv[i]) != SQLITE_INTEGER) return SQLITE_OK;  // equal to no key
    vals[i] = sqlite3_value_int64(argv[i]);
  }
  const bool coll_set = idx & 1, key_set = idx & 2;
  const int64_t coll = coll_set ? vals[0] : 0, key = key_set ? vals[coll_set ? 1 : 0] : 0;
  // One snapshot per statement: the repeated filters of an IN list share it.
  bool ok = c->synced || c->ids->Sync(*c->probe, &c->view);
  c->synced = ok;
  if (ok && c->view.stale) {
    if (!c->file_loaded) ok = c->ids->Collect(*c->probe, c->view, false, 0, false, 0, &c->file_rows);
    c->file_loaded = ok;
    for (const auto& e : c->file_rows) {
      if ((!coll_set || e.coll == coll) && (!key_set || e.key == key)) c->rows.push_back(e);
    }
  } else if (ok) {
    ok = c->ids->Collect(*c->probe, c->view, coll_set, coll, key_set, key, &c->rows);
  }
  if (!ok) {
    sqlite3_free(v->zErrMsg);
    v->zErrMsg = sqlite3_mprintf("id_recent: cannot read the recent ids (meta 'id_merged_pk' malformed, or: %s)",
                                 sqlite3_errmsg(v->db));
    return SQLITE_ERROR;
  }
  return SQLITE_OK;
}

int Next(sqlite3_vtab_cursor* c) {
  ++static_cast<Cursor*>(c)->at;
  return SQLITE_OK;
}

int Eof(sqlite3_vtab_cursor* base) {
  auto* c = static_cast<Cursor*>(base);
  return c->at >= c->rows.size();
}

int Column(sqlite3_vtab_cursor* base, sqlite3_context* ctx, int i) {
  auto* c = static_cast<Cursor*>(base);
  const auto& e = c->rows[c->at];
  sqlite3_result_int64(ctx, i == 0 ? e.coll : i == 1 ? e.key : e.pk);
  return SQLITE_OK;
}

int Rowid(sqlite3_vtab_cursor* base, sqlite3_int64* out) {
  *out = static_cast<sqlite3_int64>(static_cast<Cursor*>(base)->at);
  return SQLITE_OK;
}

sqlite3_module MakeModule() {
  sqlite3_module m{};
  m.iVersion = 0;
  m.xCreate = nullptr;  // eponymous only: no CREATE VIRTUAL TABLE, nothing in the file
  m.xConnect = Connect;
  m.xBestIndex = BestIndex;
  m.xDisconnect = Disconnect;
  m.xDestroy = Disconnect;
  m.xOpen = Open;
  m.xClose = Close;
  m.xFilter = Filter;
  m.xNext = Next;
  m.xEof = Eof;
  m.xColumn = Column;
  m.xRowid = Rowid;
  return m;
}

const sqlite3_module kModule = MakeModule();

}  // namespace

bool RegisterIdRecent(sqlite3* db, IdRecentBinding* binding) {
  return sqlite3_create_module_v2(db, "id_recent", &kModule, binding, nullptr) == SQLITE_OK;
}

}  // namespace tearline::store::detail
