#include "store/recent_ids.h"

#include <algorithm>
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

// The snapshot's merge point and highest pk; the rows of a pk range with their keys.
constexpr const char* kProbeSql[] = {
    "SELECT coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key='id_merged_pk'), 0), "
    "(SELECT coalesce(max(pk), 0) FROM objects)",
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
  view->merged = sqlite3_column_int64(s, 0);
  view->max_pk = sqlite3_column_int64(s, 1);
  sqlite3_reset(s);
  int64_t from;
  {
    std::shared_lock lock(mu_);
    const bool behind = covered_ < 0 || (!writing_ && view->max_pk > covered_);
    if (!behind && view->merged <= last_merge_) return true;
    from = covered_ < 0 ? view->merged : covered_;
  }
  // Rows another process stored (or, the first time, those above the merge point) are read
  // without the lock, then added: a thread that added them meanwhile leaves nothing to do.
  std::vector<Entry> rows;
  if (view->max_pk > from) {
    sqlite3_stmt* r = probe.Get(1);
    if (!r || !ReadRows(r, from, view->max_pk, [&](const Entry& e) { rows.push_back(e); })) return false;
  }
  std::unique_lock lock(mu_);
  if (covered_ < 0) covered_ = floor_ = last_merge_ = highest_ = from;
  if (!writing_ && view->max_pk > covered_) {
    for (const Entry& e : rows) {
      if (e.pk > covered_) AddLocked(e.coll, e.key, e.pk);
    }
    covered_ = view->max_pk;
    highest_ = std::max(highest_, covered_);
  }
  NoteMergeLocked(view->merged);
  return true;
}

void RecentIds::Find(int64_t coll, int64_t key, int64_t merged, std::vector<int64_t>* out) const {
  std::shared_lock lock(mu_);
  auto [b, e] = map_.equal_range({coll, key});
  for (auto it = b; it != e; ++it) {
    if (it->second > merged) out->push_back(it->second);
  }
}

bool RecentIds::Collect(Probe& probe, const View& view, bool coll_set, int64_t coll, bool key_set, int64_t key,
                        std::vector<Entry>* out) const {
  auto wanted = [&](const Entry& e) { return (!coll_set || e.coll == coll) && (!key_set || e.key == key); };
  int64_t floor;
  {
    std::shared_lock lock(mu_);
    floor = floor_;
    const int64_t above = std::max(view.merged, floor_);
    if (coll_set && key_set) {
      auto [b, e] = map_.equal_range({coll, key});
      for (auto it = b; it != e; ++it) {
        if (it->second > above) out->push_back({coll, key, it->second});
      }
    } else {
      for (const auto& [k, pk] : map_) {
        Entry e{k.first, k.second, pk};
        if (pk > above && wanted(e)) out->push_back(e);
      }
    }
  }
  if (view.merged >= floor) return true;
  // A snapshot older than the merge before last: the range memory dropped, from the objects.
  sqlite3_stmt* r = probe.Get(1);
  return r && ReadRows(r, view.merged, floor, [&](const Entry& e) {
           if (wanted(e)) out->push_back(e);
         });
}

void RecentIds::BeginWrite() {
  std::unique_lock lock(mu_);
  writing_ = true;
}

void RecentIds::Add(int64_t coll, int64_t key, int64_t pk) {
  std::unique_lock lock(mu_);
  AddLocked(coll, key, pk);
}

void RecentIds::Committed(int64_t merged_to, const std::vector<Entry>& removed) {
  std::unique_lock lock(mu_);
  writing_ = false;
  covered_ = std::max(covered_, highest_);
  for (const Entry& r : removed) {
    auto [b, e] = map_.equal_range({r.coll, r.key});
    for (auto it = b; it != e; ++it) {
      if (it->second != r.pk) continue;
      if (r.pk > last_merge_) --above_;
      map_.erase(it);
      break;
    }
  }
  NoteMergeLocked(merged_to);
}

void RecentIds::RolledBack() {
  std::unique_lock lock(mu_);
  writing_ = false;
  if (highest_ <= covered_) return;
  std::erase_if(map_, [&](const auto& kv) { return kv.second > covered_; });
  highest_ = covered_;
  RecountLocked();
}

bool RecentIds::Writing() const {
  std::shared_lock lock(mu_);
  return writing_;
}

int64_t RecentIds::Above() const {
  std::shared_lock lock(mu_);
  return above_;
}

void RecentIds::ForEachAbove(const std::function<void(const Entry&)>& fn) const {
  std::shared_lock lock(mu_);
  for (const auto& [k, pk] : map_) {
    if (pk > last_merge_) fn({k.first, k.second, pk});
  }
}

std::vector<RecentIds::Entry> RecentIds::Sorted(int64_t merged, int64_t upto) const {
  std::vector<Entry> out;
  {
    std::shared_lock lock(mu_);
    out.reserve(static_cast<size_t>(above_));
    for (const auto& [k, pk] : map_) {
      if (pk > merged && pk <= upto) out.push_back({k.first, k.second, pk});
    }
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

int64_t RecentIds::Highest() const {
  std::shared_lock lock(mu_);
  return highest_;
}

void RecentIds::AddLocked(int64_t coll, int64_t key, int64_t pk) {
  map_.emplace(std::make_pair(coll, key), pk);
  highest_ = std::max(highest_, pk);
  if (pk > last_merge_) ++above_;
}

// A merge point newer than the last one seen: entries up to the last one go (snapshots between
// the two still find theirs in memory; older ones read the dropped range from the objects).
void RecentIds::NoteMergeLocked(int64_t merged) {
  if (merged <= last_merge_) return;
  floor_ = last_merge_;
  last_merge_ = merged;
  std::erase_if(map_, [&](const auto& kv) { return kv.second <= floor_; });
  RecountLocked();
}

void RecentIds::RecountLocked() {
  above_ = 0;
  for (const auto& kv : map_) above_ += kv.second > last_merge_;
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
  if ((!c->synced && !c->ids->Sync(*c->probe, &c->view)) ||
      !c->ids->Collect(*c->probe, c->view, coll_set, coll, key_set, key, &c->rows)) {
    sqlite3_free(v->zErrMsg);
    v->zErrMsg = sqlite3_mprintf("id_recent: cannot read the objects: %s", sqlite3_errmsg(v->db));
    return SQLITE_ERROR;
  }
  c->synced = true;
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
