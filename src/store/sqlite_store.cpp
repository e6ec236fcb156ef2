// SQLite implementation of Store: the objects' file and the audit log's (AuditLogPath), WAL,
// every commit synced before it is acknowledged, so that an acknowledged write survives a
// process kill or power loss (DESIGN invariant 2): synchronous=FULL, except group commits,
// whose sync the syncer thread makes before their Puts are answered (StartCommitter).
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <charconv>
#include <type_traits>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <regex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "stix/id.h"
#include "store/audit_chain.h"
#include "store/recent_ids.h"
#include "store/page_index.h"
#include "store/release_history.h"
#include "store/store.h"

namespace tearline::store {
namespace {

constexpr int kSchemaVersion = 16;  // 2: statuses, principals, tokens; 3: partners, audiences; 4: audit;
                                   // 5: object source and derived id, node meta, release history, checkpoints
                                   // 6: peers, outbox, pull cursors, object signatures; 7: parties, warnings;
                                   // 8: the person (STIX identity) a principal is; 9: objects.policy_json;
                                   // 10: objects.latest; 11: the audit log in its own file, audit_intents
                                   // 12: derived ids indexed by their last 12 hex digits (objects_derived_tail)
                                   // 13: objects found by IdKey(id) (objects_id_key), not a (coll, id, version) index
                                   // 14: ids and derived ids found through id_index / id_index_new (id_lookup),
                                   //     not through indexes of the objects table
                                   // 15: the audit chain's entries in <db>.audit-chain (audit_chain.h), moved
                                   //     there on open (MoveLogTableLocked); an older tearline, which would
                                   //     start a second chain in log.audit, refuses the database
                                   // 16: id_index_new gone: the recent level of the id index is kept in
                                   //     memory (id_recent, recent_ids.h); meta 'id_merged_pk', 'pk_high'

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS collections(
  pk INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  taxii_id TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS objects(
  pk INTEGER PRIMARY KEY,
  coll INTEGER NOT NULL REFERENCES collections(pk),
  id TEXT NOT NULL,
  version TEXT NOT NULL,
  type TEXT NOT NULL,
  modified TEXT NOT NULL,
  spec_version TEXT NOT NULL,
  date_added INTEGER NOT NULL,
  revoked INTEGER NOT NULL,
  json TEXT NOT NULL,
  source TEXT NOT NULL DEFAULT '',
  derived_id TEXT NOT NULL DEFAULT '',
  policy_json TEXT NOT NULL DEFAULT '',
  latest INTEGER NOT NULL DEFAULT 0,
  id_key INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS objects_added ON objects(coll, date_added);
CREATE INDEX IF NOT EXISTS objects_type ON objects(coll, type, date_added);
-- The rows of an id, and of a derived (tear-line variant) id, are found by a key: IdKey(id) for
-- the id (>= 0), DerivedKey(derived_id) for the derived id (< 0); the ids are compared whole
-- after. STIX ids are random keys: an index of the objects table on them had one entry per
-- row at a random place, so a group commit of a few thousand objects dirtied nearly every page
-- of such an index and wrote it whole to the WAL (two indexes: ~20 MB per commit at 500,000
-- objects, growing with the collection; docs/benchmarks.md, seventh session). The keys are
-- kept in two levels instead, like a log-structured merge tree: id_index, and the keys of new
-- rows in the recent level (schema 16: in memory, the virtual table id_recent; recent_ids.h says how it
-- stays right), which the writer merges into id_index one key-range slice at a time, in key
-- order, while it holds about sqrt(size of id_index x 32768) entries (MaybeMergeIdIndexLocked;
-- meta 'id_merged_pk', one pk per slice: every row up to it has its keys of that slice in
-- id_index; every merge counts itself in meta 'id_merges', which the writers' filters of
-- id_index's keys depend on); id_lookup reads both.
-- (coll, id, version) is unique by the store's writes (PutLocked checks in the writing
-- transaction), not by an index. A plain sqlite3 shell cannot read id_lookup (no id_recent).
CREATE TABLE IF NOT EXISTS id_index(
  coll INTEGER NOT NULL, key INTEGER NOT NULL, pk INTEGER NOT NULL, PRIMARY KEY(coll, key, pk)) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS id_lookup AS
  SELECT coll, key, pk FROM id_index UNION ALL SELECT coll, key, pk FROM id_recent;
CREATE TABLE IF NOT EXISTS markings(id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS statuses(id TEXT PRIMARY KEY, owner TEXT NOT NULL, json TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS principals(
  name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, can_read TEXT NOT NULL, can_write TEXT NOT NULL,
  identity TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens(
  id TEXT PRIMARY KEY, principal TEXT NOT NULL, secret_hash TEXT NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partners(
  identity TEXT PRIMARY KEY, name TEXT NOT NULL, channel TEXT NOT NULL, principals TEXT NOT NULL, groups_ TEXT NOT NULL,
  tier INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS peers(
  identity TEXT PRIMARY KEY, url TEXT NOT NULL, token TEXT NOT NULL, push_collection TEXT NOT NULL,
  pull TEXT NOT NULL, public_key TEXT NOT NULL, last_contact INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, partner TEXT NOT NULL, collection TEXT NOT NULL, object_id TEXT NOT NULL,
  version TEXT NOT NULL, enqueued INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(partner, state, seq);
CREATE TABLE IF NOT EXISTS pull_cursors(
  partner TEXT NOT NULL, remote TEXT NOT NULL, added_after INTEGER NOT NULL, next TEXT NOT NULL,
  PRIMARY KEY(partner, remote)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signatures(
  coll INTEGER NOT NULL, id TEXT NOT NULL, version TEXT NOT NULL, json TEXT NOT NULL,
  PRIMARY KEY(coll, id, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parties(
  identity TEXT PRIMARY KEY, name TEXT NOT NULL, url TEXT NOT NULL, token TEXT NOT NULL, collection TEXT NOT NULL,
  public_key TEXT NOT NULL, matches TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS warnings(
  id TEXT PRIMARY KEY, party TEXT NOT NULL, source_id TEXT NOT NULL, rule TEXT NOT NULL, state TEXT NOT NULL,
  events TEXT NOT NULL, bundle TEXT NOT NULL, instruction TEXT NOT NULL, created INTEGER NOT NULL,
  attempts INTEGER NOT NULL, next_attempt INTEGER NOT NULL, delivered_at INTEGER NOT NULL, ack_at INTEGER NOT NULL,
  published_at INTEGER NOT NULL, last_error TEXT NOT NULL, ack TEXT NOT NULL, cap TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trust_groups(name TEXT PRIMARY KEY, description TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_intents(
  seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, recipient TEXT NOT NULL, object_id TEXT NOT NULL,
  version TEXT NOT NULL, decision TEXT NOT NULL, reason TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS releases(
  recipient TEXT NOT NULL, object_id TEXT NOT NULL, variant INTEGER NOT NULL, PRIMARY KEY(recipient, object_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audiences(
  collection TEXT PRIMARY KEY, partners TEXT NOT NULL, groups_ TEXT NOT NULL, default_tlp TEXT NOT NULL) WITHOUT ROWID;
)sql";

// The audit log's SQLite file (AuditLogPath): the signed checkpoints. Attached as "log" to the
// writer's connection only while Init upgrades older layouts (the chain's entries were rows of
// log.audit, schemas 11 to 14, and of main.audit before; they move to the chain's own file,
// audit_chain.h); afterwards it has a connection of its own (OpenLogConnection), so that no
// transaction of the objects' file locks it. Transactions over the objects' file and the chain
// write their entries to main.audit_intents too (CommitLocked, ReconcileLocked).
constexpr const char* kLogSchema = R"sql(
CREATE TABLE IF NOT EXISTS log.audit(
  seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, recipient TEXT NOT NULL, object_id TEXT NOT NULL,
  version TEXT NOT NULL, decision TEXT NOT NULL, reason TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log.checkpoints(
  seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, time_us INTEGER NOT NULL, public_key TEXT NOT NULL, signature TEXT NOT NULL);
)sql";

// Lists of collection names are kept as newline-separated text.
std::string JoinLines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : "\n") + x;
  return s;
}
std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> v;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string::npos) end = s.size();
    v.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return v;
}

// A Bloom filter of (collection pk, IdKey) pairs: 16 bits per key and 4 probes (~0.2% false
// positives). The writer keeps one of id_index's id keys (SqliteStore::SyncKeyFilterLocked).
class KeyFilter {
 public:
  void Reset(size_t capacity) {
    cap_ = 1 << 16;
    while (cap_ < capacity) cap_ <<= 1;
    bits_.assign(cap_ * 16 / 64, 0);
    keys_ = 0;
  }
  void Add(int64_t coll, int64_t key) {
    const uint64_t h = Hash(coll, key), h2 = (h >> 32) | 1, mask = cap_ * 16 - 1;
    for (uint64_t i = 0; i < 4; ++i) {
      const uint64_t b = (h + i * h2) & mask;
      bits_[b >> 6] |= uint64_t{1} << (b & 63);
    }
    ++keys_;
  }
  bool MayContain(int64_t coll, int64_t key) const {
    const uint64_t h = Hash(coll, key), h2 = (h >> 32) | 1, mask = cap_ * 16 - 1;
    for (uint64_t i = 0; i < 4; ++i) {
      const uint64_t b = (h + i * h2) & mask;
      if (!(bits_[b >> 6] & (uint64_t{1} << (b & 63)))) return false;
    }
    return true;
  }
  bool Full() const { return keys_ > cap_; }

 private:
  static uint64_t Hash(int64_t coll, int64_t key) {  // splitmix64 of both
    uint64_t x = static_cast<uint64_t>(key) ^ (static_cast<uint64_t>(coll) * 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
  std::vector<uint64_t> bits_;
  size_t cap_ = 0, keys_ = 0;
};

// detail::SetPlanCheck: statements whose plan scans the objects table, while checking.
std::atomic<bool> g_plan_check{false};
std::mutex g_scans_mu;
std::vector<std::string> g_scans;

void CheckPlan(sqlite3* db, const std::string& sql) {
  if (detail::PlanScansObjects(db, sql)) {
    std::lock_guard lock(g_scans_mu);
    g_scans.push_back(sql);
  }
}

}  // namespace

bool detail::PlanScansObjects(sqlite3* db, const std::string& sql) {
  // Statements that find rows by id: they name id_lookup or derived_id, or compare a key or an
  // id (a walk of a collection reading each row's key, as the page index's build, is not one).
  static const std::regex by_id(R"((id_lookup|\bid_key\s*(=|IN\b)|derived_id|\b([ox]\.)?id\s*(=|IN\b)))");
  if (!std::regex_search(sql, by_id)) return false;
  sqlite3_stmt* e = nullptr;
  if (sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &e, nullptr) != SQLITE_OK) return false;
  bool scans = false;
  while (sqlite3_step(e) == SQLITE_ROW) {
    std::string detail = reinterpret_cast<const char*>(sqlite3_column_text(e, 3));
    // The objects table (and its aliases o and x in the store's SQL), reached other than by
    // rowid: a SCAN, or a SEARCH of an index by collection (a walk of the collection).
    for (const char* verb : {"SCAN ", "SEARCH "}) {
      for (const char* table : {"objects", "o", "x"}) {
        std::string t = std::string(verb) + table;
        if (detail.compare(0, t.size(), t) != 0 || (detail.size() > t.size() && detail[t.size()] != ' ')) continue;
        if (detail.find("USING INTEGER PRIMARY KEY") == std::string::npos) scans = true;
      }
    }
  }
  sqlite3_finalize(e);
  return scans;
}

namespace {

// RAII prepared statement.
class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, const std::string& sql) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr) != SQLITE_OK) s_ = nullptr;
    if (s_ && g_plan_check.load(std::memory_order_relaxed)) CheckPlan(db, sql);
  }
  Stmt(Stmt&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Stmt() { sqlite3_finalize(s_); }
  sqlite3_stmt* get() const { return s_; }
  explicit operator bool() const { return s_ != nullptr; }
  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  void Bind(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data() ? v.data() : "", static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void BindNull(int i) { sqlite3_bind_null(s_, i); }
  // Text columns are read as blobs: sqlite3_column_text must NUL-terminate a value that still
  // points into the page, which costs SQLite a malloc and a copy per column (its bytes are the
  // same: every text is stored UTF-8). A std::string copy is made either way.
  void TextInto(int col, std::string& out) const {
    auto* p = static_cast<const char*>(sqlite3_column_blob(s_, col));
    if (p) out.assign(p, static_cast<size_t>(sqlite3_column_bytes(s_, col)));
    else out.clear();
  }
  //! The column's text, valid until the statement steps or resets.
  std::string_view View(int col) const {
    auto* p = static_cast<const char*>(sqlite3_column_blob(s_, col));
    return p ? std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(s_, col))) : std::string_view();
  }
  std::string Text(int col) const {
    std::string out;
    TextInto(col, out);
    return out;
  }
  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }

 private:
  sqlite3_stmt* s_ = nullptr;
};

// A read-only connection of the pool: WAL lets readers run beside the writer.
struct Reader {
  sqlite3* db = nullptr;
  std::mutex mu;
  std::unordered_map<std::string, Stmt> stmts;
  std::unique_ptr<detail::RecentIds::Probe> probe;  // id_recent's statements on this connection
  detail::IdRecentBinding binding;
  ~Reader() {
    stmts.clear();
    probe.reset();
    sqlite3_close_v2(db);
  }
};

// The keys of ids and derived ids (part of the file format): recent_ids.h.
using detail::DerivedKey;
using detail::IdKey;

// TEARLINE_SQL_PROFILE=1 in the environment: the writer connection's statements are timed
// (sqlite3_trace_v2) and, when the store closes, the 25 costliest (total time, count) are
// printed on stderr. How the group commit's time was split (docs/benchmarks.md, sixth session).
class SqlProfile {
 public:
  void Attach(sqlite3* db) {
    sqlite3_trace_v2(db, SQLITE_TRACE_PROFILE, &SqlProfile::Record, this);
  }
  ~SqlProfile() {
    std::vector<std::pair<int64_t, std::string>> top;
    for (const auto& [sql, t] : totals_) top.emplace_back(t.first, sql + "  (" + std::to_string(t.second) + " times)");
    std::sort(top.rbegin(), top.rend());
    std::fprintf(stderr, "tearline: SQL profile of the writer connection (total ms, statement):\n");
    for (size_t i = 0; i < top.size() && i < 25; ++i) {
      std::fprintf(stderr, "%10.1f  %s\n", static_cast<double>(top[i].first) / 1e6, top[i].second.c_str());
    }
  }

 private:
  static int Record(unsigned, void* self, void* stmt, void* nanos) {
    auto* me = static_cast<SqlProfile*>(self);
    const char* sql = sqlite3_sql(static_cast<sqlite3_stmt*>(stmt));
    std::lock_guard lock(me->mu_);
    std::string key = sql ? std::string(sql).substr(0, 120) : "?";
    std::replace(key.begin(), key.end(), '\n', ' ');
    auto& t = me->totals_[key];
    t.first += *static_cast<sqlite3_int64*>(nanos);
    ++t.second;
    return 0;
  }
  std::mutex mu_;
  std::unordered_map<std::string, std::pair<int64_t, int64_t>> totals_;  // ns, count
};

Stmt& CachedOn(sqlite3* db, std::unordered_map<std::string, Stmt>& stmts, const std::string& sql) {
  auto it = stmts.find(sql);
  if (it == stmts.end()) {
    // Queries differ by their IN-list lengths: the cache is kept bounded by dropping those. Only
    // those: a caller may hold a reference to a fixed statement while preparing another (the
    // page index reads rows and release history with two), and clearing everything left it
    // dangling. An IN-list statement is always stepped and reset before the next is prepared.
    if (stmts.size() > 256) std::erase_if(stmts, [](const auto& kv) { return kv.first.find(" IN (") != std::string::npos; });
    it = stmts.emplace(sql, Stmt(db, sql)).first;
  }
  return it->second;
}

// Every read of a scope in one read transaction: begun here unless the connection is in one
// already (a snapshot reader), committed when the scope ends.
class ReadTxn {
 public:
  explicit ReadTxn(sqlite3* db) : db_(db), mine_(sqlite3_get_autocommit(db) != 0) {
    if (mine_ && sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) mine_ = false, ok_ = false;
  }
  ~ReadTxn() {
    if (mine_) sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  }
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;
  bool ok() const { return ok_; }

 private:
  sqlite3* db_;
  bool mine_;
  bool ok_ = true;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, SqliteOptions opt, std::string path)
      : db_(db), opt_(opt), path_(std::move(path)), rows_(opt.object_cache_bytes) {
    BindIdRecent(db_, writer_probe_, writer_binding_);
  }
  ~SqliteStore() override {
    StopCommitter();
    StopCheckpointer();
    if (chain_sync_fd_ >= 0) ::close(chain_sync_fd_);
    shm_ = nullptr;  // the state connection's mapping, gone with it
    state_stmt_ = Stmt();
    sqlite3_close_v2(state_db_);
    sqlite3_close_v2(log_db_);
    readers_.clear();
    stmts_.clear();
    writer_probe_.reset();
    sqlite3_close_v2(db_);
    profile_.reset();  // prints, after the last statement
  }

  void ProfileSql() {
    profile_ = std::make_unique<SqlProfile>();
    profile_->Attach(db_);
  }

  // The recent level of the id index (id_recent, recent_ids.h) on connection `db`.
  void BindIdRecent(sqlite3* db, std::unique_ptr<detail::RecentIds::Probe>& probe, detail::IdRecentBinding& binding) {
    probe = std::make_unique<detail::RecentIds::Probe>(db);
    binding = {&recent_, probe.get()};
    detail::RegisterIdRecent(db, &binding);
  }

  //! Opens `n` extra read-only connections for queries (TAXII GETs run in parallel).
  void OpenReaders(const std::string& path, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      auto r = std::make_unique<Reader>();
      if (sqlite3_open_v2(path.c_str(), &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
        return;  // fewer readers is only slower
      }
      sqlite3_busy_timeout(r->db, 5000);
      BindIdRecent(r->db, r->probe, r->binding);
      // Memory-mapped reads: no pread copy per page (random lookups of referenced objects).
      sqlite3_exec(r->db, "PRAGMA query_only=1; PRAGMA cache_size=-16384; PRAGMA mmap_size=4294967296;", nullptr, nullptr,
                   nullptr);
      readers_.push_back(std::move(r));
    }
  }

  // Attaches the audit log's file as "log" to the writer's connection while Init upgrades older
  // layouts (detached at its end).
  bool AttachLog(sqlite3* db) const {
    Stmt a(db, "ATTACH DATABASE ? AS log");
    if (!a) return false;
    const std::string log = AuditLogPath(path_);  // bound SQLITE_STATIC: must outlive the step
    a.Bind(1, log);
    return sqlite3_step(a.get()) == SQLITE_DONE;
  }

  Status Init() {
    char* err = nullptr;
    if (!AttachLog(db_)) return Io("open the audit log " + AuditLogPath(path_));
    auto chain = detail::AuditChain::Open(AuditChainPath(path_));
    if (!chain.ok()) return chain.status();
    chain_ = std::move(chain).value();
    // page_size applies only when a file is created: 16 KiB pages halve the B-tree work for
    // ~2 KB STIX objects compared with the 4 KiB default (bench/ingest). The log keeps 4 KiB
    // pages: its entries are appended, and a commit rewrites its last, partly filled page.
    // (An unqualified journal_mode applies to every attached file, so page sizes come first.)
    const char* pragmas =
        "PRAGMA main.page_size=16384; PRAGMA log.page_size=4096; PRAGMA main.journal_mode=WAL;"
        "PRAGMA log.journal_mode=WAL; PRAGMA main.synchronous=FULL; PRAGMA log.synchronous=FULL;"
        "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; PRAGMA main.cache_size=-65536;";
    if (sqlite3_exec(db_, pragmas, nullptr, nullptr, &err) != SQLITE_OK) return Fail("configure database", err);
    // The log's tables: created with the file (a log file lost beside an existing database
    // is an empty chain, which `audit verify` reports against the signed checkpoints).
    if (sqlite3_exec(db_, kLogSchema, nullptr, nullptr, &err) != SQLITE_OK) return Fail("create the audit log", err);
    Stmt v(db_, "PRAGMA user_version");
    if (!v || sqlite3_step(v.get()) != SQLITE_ROW) return Io("read schema version");
    int64_t version = v.Int(0);
    sqlite3_reset(v.get());  // no statement may be pending when the upgrade drops tables
    if (version > kSchemaVersion) {
      return Status::Io("database schema version " + std::to_string(version) +
                        " is newer than this tearline (" + std::to_string(kSchemaVersion) + ")");
    }
    if (version == 0) {
      // A non-empty database that is not ours must not be modified.
      Stmt t(db_, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name NOT IN "
               "('collections','objects','markings','statuses','principals','tokens','partners','audiences','audit','meta',"
               "'audit_intents',"
               "'releases','checkpoints','trust_groups','peers','outbox','pull_cursors','signatures','sqlite_sequence',"
               "'parties','warnings')");
      if (t && sqlite3_step(t.get()) == SQLITE_ROW && t.Int(0) > 0) {
        return Status::Io("not a tearline database (it already holds other tables)");
      }
    }
    if (version > 0 && version < 11) {
      // 11: the audit chain and its checkpoints move to the log's file. Copied first in a
      // transaction that changes only the log (repeatable: a crash before the schema commit
      // below copies again, keeping what is there); dropped from main in the schema commit.
      Stmt t(db_, "SELECT count(*) FROM main.sqlite_master WHERE type='table' AND name='audit'");
      bool moved = t && sqlite3_step(t.get()) == SQLITE_ROW && t.Int(0) > 0;
      sqlite3_reset(t.get());
      if (moved) {
        const char* copy =
            "BEGIN IMMEDIATE; INSERT OR IGNORE INTO log.audit SELECT * FROM main.audit;"
            "INSERT OR IGNORE INTO log.checkpoints SELECT * FROM main.checkpoints; COMMIT";
        if (sqlite3_exec(db_, copy, nullptr, nullptr, &err) != SQLITE_OK) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          return Fail("move the audit log to its own file", err);
        }
      }
    }
    if (version < kSchemaVersion) {
      // Create or upgrade: every statement is CREATE ... IF NOT EXISTS.
      if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, &err) != SQLITE_OK) return Fail("begin", err);
      // Columns added since a table was first created (tables that do not exist yet are created
      // whole by kSchema below). Rows stored before get the default: derived ids are filled in
      // below, and an empty policy view means "use the full JSON".
      static const char* const kAdded[][3] = {
          {"objects", "source", "TEXT NOT NULL DEFAULT ''"},        // 5
          {"objects", "derived_id", "TEXT NOT NULL DEFAULT ''"},    // 5
          {"partners", "tier", "INTEGER NOT NULL DEFAULT 0"},       // 5
          {"principals", "identity", "TEXT NOT NULL DEFAULT ''"},   // 8
          {"objects", "policy_json", "TEXT NOT NULL DEFAULT ''"},   // 9
          {"objects", "latest", "INTEGER NOT NULL DEFAULT 0"},      // 10
          {"objects", "id_key", "INTEGER NOT NULL DEFAULT 0"},      // 13
      };
      for (const auto& [table, column, decl] : kAdded) {
        if (auto st = AddColumnIfMissing(table, column, decl); !st.ok()) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          return st;
        }
      }
      // 12: the full-width derived-id index goes (schema 12 indexed the last digits, 14 id_index).
      if (version > 0 && version < 12 && sqlite3_exec(db_, "DROP INDEX IF EXISTS objects_derived", nullptr, nullptr, &err) != SQLITE_OK) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return Fail("drop the derived-id index", err);
      }
      // 13: every stored object gets its IdKey (before kSchema builds the index on it), and the
      // (coll, id, version) index goes.
      if (version > 0 && version < 13) {
        if (sqlite3_exec(db_, "DROP INDEX IF EXISTS objects_key", nullptr, nullptr, &err) != SQLITE_OK) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          return Fail("drop the object key index", err);
        }
        if (auto st = FillIdKeys(); !st.ok()) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          return st;
        }
      }
      // 16: the rows of id_index_new (14, 15) go into id_index; the view is made again over id_recent.
      if (version >= 14 && version < 16 &&
          sqlite3_exec(db_,
                       "INSERT OR IGNORE INTO id_index(coll, key, pk) SELECT coll, key, pk FROM id_index_new "
                       "ORDER BY coll, key, pk; DROP VIEW IF EXISTS id_lookup; DROP TABLE IF EXISTS id_index_new",
                       nullptr, nullptr, &err) != SQLITE_OK) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return Fail("merge the id index's new level", err);
      }
      if (sqlite3_exec(db_, kSchema, nullptr, nullptr, &err) != SQLITE_OK) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return Fail("create schema", err);
      }
      // Until the end of an upgrade the (coll, id_key) index of schema 13 finds the versions of
      // an id (the flags of schema 10 below); schema 14 drops it after filling id_index.
      if (version > 0 && version < 14 &&
          sqlite3_exec(db_, "CREATE INDEX IF NOT EXISTS objects_id_key ON objects(coll, id_key)", nullptr, nullptr,
                       &err) != SQLITE_OK) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return Fail("index id keys", err);
      }
      if (version > 0 && version < 10) {
        // 10: the last version of each object is flagged (`latest`), so "match[version]=last"
        // (every TAXII GET by default) is a column test, not a max() per row.
        const char* flag = "UPDATE objects SET latest=(version=(SELECT max(version) FROM objects x "
                           "WHERE x.coll=objects.coll AND x.id_key=objects.id_key AND x.id=objects.id))";
        if (sqlite3_exec(db_, flag, nullptr, nullptr, &err) != SQLITE_OK) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          return Fail("flag last versions", err);
        }
      }
      if (version > 0 && version < 11 &&
          sqlite3_exec(db_, "DROP TABLE IF EXISTS main.audit; DROP TABLE IF EXISTS main.checkpoints", nullptr, nullptr,
                       &err) != SQLITE_OK) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return Fail("drop the moved audit tables", err);
      }
      if (auto st = EnsureNodeIdentity(version > 0 && version < 5); !st.ok()) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return st;
      }
      // 14: the ids and derived ids of the rows stored before (after EnsureNodeIdentity, which
      // fills derived ids older schemas lacked) go into id_index; the indexes it replaces go.
      if (version > 0 && version < 14) {
        if (auto st = FillIdIndex(); !st.ok()) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          return st;
        }
        if (sqlite3_exec(db_, "DROP INDEX IF EXISTS objects_id_key; DROP INDEX IF EXISTS objects_derived_tail", nullptr,
                         nullptr, &err) != SQLITE_OK) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          return Fail("drop the id indexes", err);
        }
      }
      // 16: every row stored so far has its keys in id_index (kept through 14 and 15, filled by
      // FillIdIndex before): the merge point is the last of them.
      if (version < 16) {
        Stmt top(db_, "SELECT coalesce(max(pk), 0) FROM objects");
        Stmt set(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES('id_merged_pk', ?)");
        if (!top || !set || sqlite3_step(top.get()) != SQLITE_ROW) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          return Io("set the id index's merge points");
        }
        detail::RecentIds::Points points;
        points.fill(top.Int(0));
        top = Stmt();
        const std::string text = detail::RecentIds::FormatPoints(points);
        set.Bind(1, text);
        if (sqlite3_step(set.get()) != SQLITE_DONE) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          return Io("set the id index's merge points");
        }
      }
      std::string uv = "PRAGMA user_version=" + std::to_string(kSchemaVersion) + "; COMMIT";
      if (sqlite3_exec(db_, uv.c_str(), nullptr, nullptr, &err) != SQLITE_OK) return Fail("commit schema", err);
    }
    Stmt n(db_, "SELECT value FROM meta WHERE key='node_identity'");
    if (!n || sqlite3_step(n.get()) != SQLITE_ROW) return Io("read node identity");
    node_identity_ = n.Text(0);
    n = Stmt();
    std::lock_guard lock(mu_);
    {
      auto chain_lock = chain_->Acquire();
      if (!chain_lock.ok()) return chain_lock.status();
      if (auto st = MoveLogTableLocked(*chain_lock); !st.ok()) return st;
    }
    // From here on the writer does not touch the log's file: with it attached, every BEGIN
    // IMMEDIATE of a group of Puts would also lock it, and a checkpoint written meanwhile on the
    // log's own connection (OnLog) would wait for the group.
    stmts_.clear();
    if (!Exec("DETACH DATABASE log")) return Io("detach the audit log");
    if (auto st = OpenLogConnection(); !st.ok()) return st;
    return ReconcileLocked();
  }

  // Appends to the chain the intents it lacks (a transaction over the objects' file whose
  // chain part was lost: crash or failed write), then deletes the intents the chain now holds.
  // The chain is written and synced first: an intent is deleted only once its entry is durable
  // there. Opening a store whose chain lacks nothing writes nothing (CLI commands run beside a
  // serving node). Outside any transaction, with mu_ held.
  Status ReconcileLocked() {
    int64_t head;
    bool appended;
    {
      // The chain's lock is released before the intents are deleted: a write to the objects'
      // file waits for its lock, and a transaction in another process holds that lock while it
      // waits for the chain's (CommitLocked).
      auto lock = chain_->Acquire();
      if (!lock.ok()) return lock.status();
      auto missing = MissingIntentsLocked(*lock);
      if (!missing.ok()) return missing.status();
      appended = !missing->empty();
      if (appended) {
        if (auto st = chain_->Write(*lock, *missing); !st.ok()) return st;
        if (auto synced = chain_->Sync(); !synced.ok()) return synced.status();
      }
      head = chain_->Head(*lock).first;
    }
    if (appended) {
      Stmt done(db_, "DELETE FROM audit_intents WHERE seq<=?");
      done.Bind(1, head);
      if (sqlite3_step(done.get()) != SQLITE_DONE) return Io("clear audit intents");
    }
    durable_seq_ = head;
    reconcile_ = false;
    return Status::Ok();
  }

  // The intents whose seq is beyond the chain's head, in order (with the chain's lock: another
  // process cannot write the chain meanwhile).
  Result<std::vector<audit::Entry>> MissingIntentsLocked(const detail::AuditChain::Lock& lock) {
    Stmt& pending = Cached("SELECT seq,time_us,recipient,object_id,version,decision,reason,prev_hash,hash "
                           "FROM audit_intents WHERE seq>? ORDER BY seq");
    if (!pending) return Io("read audit intents");
    pending.Reset();
    pending.Bind(1, chain_->Head(lock).first);
    std::vector<audit::Entry> out;
    int rc;
    while ((rc = sqlite3_step(pending.get())) == SQLITE_ROW) {
      out.push_back({pending.Int(0), pending.Int(1), pending.Text(2), pending.Text(3), pending.Text(4),
                     pending.Text(5), pending.Text(6), pending.Text(7), pending.Text(8)});
    }
    sqlite3_reset(pending.get());  // a pending read would pin an old snapshot of main
    if (rc != SQLITE_DONE) return Io("read audit intents");
    return out;
  }

  // The chain's entries were rows of log.audit before (schema 11 to 14): those beyond the
  // chain file's head are written to it, synced, and only then deleted from the table (a crash
  // in between moves nothing twice: the rows at or below the head are only deleted).
  Status MoveLogTableLocked(const detail::AuditChain::Lock& lock) {
    Stmt any(db_, "SELECT count(*) FROM log.audit");
    if (!any || sqlite3_step(any.get()) != SQLITE_ROW) return Io("read the former audit table");
    if (any.Int(0) == 0) return Status::Ok();
    any = Stmt();
    while (true) {
      Stmt rows(db_, "SELECT seq,time_us,recipient,object_id,version,decision,reason,prev_hash,hash FROM log.audit "
                     "WHERE seq>? ORDER BY seq LIMIT 10000");
      rows.Bind(1, chain_->Head(lock).first);
      std::vector<audit::Entry> page;
      int rc;
      while ((rc = sqlite3_step(rows.get())) == SQLITE_ROW) {
        page.push_back({rows.Int(0), rows.Int(1), rows.Text(2), rows.Text(3), rows.Text(4), rows.Text(5), rows.Text(6),
                        rows.Text(7), rows.Text(8)});
      }
      if (rc != SQLITE_DONE) return Io("read the former audit table");
      if (page.empty()) break;
      if (auto st = chain_->Write(lock, page); !st.ok()) return st;
    }
    if (auto synced = chain_->Sync(); !synced.ok()) return synced.status();
    if (!Exec("DELETE FROM log.audit")) return Io("empty the former audit table");
    return Status::Ok();
  }

  // Inside the schema transaction: adds `column` to `table` when the table exists without it.
  Status AddColumnIfMissing(const char* table, const char* column, const char* decl) {
    Stmt t(db_, std::string("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='") + table + "'");
    if (!t || sqlite3_step(t.get()) != SQLITE_ROW) return Io("read schema");
    if (t.Int(0) == 0) return Status::Ok();
    Stmt c(db_, std::string("SELECT count(*) FROM pragma_table_info('") + table + "') WHERE name='" + column + "'");
    if (!c || sqlite3_step(c.get()) != SQLITE_ROW) return Io("read schema");
    if (c.Int(0) > 0) return Status::Ok();
    std::string sql = std::string("ALTER TABLE ") + table + " ADD COLUMN " + column + " " + decl;
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) return Fail("upgrade schema", err);
    return Status::Ok();
  }

  // Inside the schema transaction (14): id_index of the rows stored before it, inserted in key
  // order (one pass over the B-tree's pages).
  Status FillIdIndex() {
    Stmt sel(db_, "SELECT coll, id_key, derived_id, pk FROM objects");
    Stmt ins(db_, "INSERT OR IGNORE INTO id_index(coll, key, pk) VALUES(?,?,?)");
    if (!sel || !ins) return Io("prepare id index");
    std::vector<std::array<int64_t, 3>> rows;
    int rc;
    std::string derived;
    while ((rc = sqlite3_step(sel.get())) == SQLITE_ROW) {
      rows.push_back({sel.Int(0), sel.Int(1), sel.Int(3)});
      sel.TextInto(2, derived);
      if (!derived.empty()) rows.push_back({sel.Int(0), DerivedKey(derived), sel.Int(3)});
    }
    if (rc != SQLITE_DONE) return Io("read ids");
    std::sort(rows.begin(), rows.end());
    for (const auto& [coll, key, pk] : rows) {
      ins.Reset();
      ins.Bind(1, coll);
      ins.Bind(2, key);
      ins.Bind(3, pk);
      if (sqlite3_step(ins.get()) != SQLITE_DONE) return Io("fill the id index");
    }
    return Status::Ok();
  }

  // Inside the schema transaction (13): objects.id_key of the rows stored before it.
  Status FillIdKeys() {
    Stmt sel(db_, "SELECT pk, id FROM objects");
    Stmt upd(db_, "UPDATE objects SET id_key=? WHERE pk=?");
    if (!sel || !upd) return Io("prepare id keys");
    std::vector<std::pair<int64_t, int64_t>> keys;
    int rc;
    while ((rc = sqlite3_step(sel.get())) == SQLITE_ROW) keys.emplace_back(sel.Int(0), IdKey(sel.Text(1)));
    if (rc != SQLITE_DONE) return Io("read ids");
    for (const auto& [pk, key] : keys) {
      upd.Reset();
      upd.Bind(1, key);
      upd.Bind(2, pk);
      if (sqlite3_step(upd.get()) != SQLITE_DONE) return Io("store id keys");
    }
    return Status::Ok();
  }

  // Inside the schema transaction: the node's identity, and (`fill`) derived ids of rows stored
  // before v5. Since then an empty derived id means the version cannot have a variant (Prepare).
  Status EnsureNodeIdentity(bool fill) {
    Stmt ins(db_, "INSERT OR IGNORE INTO meta(key, value) VALUES('node_identity', ?)");
    std::string id = "identity--" + stix::NewUuid4();
    ins.Bind(1, id);
    if (sqlite3_step(ins.get()) != SQLITE_DONE) return Io("create node identity");
    Stmt n(db_, "SELECT value FROM meta WHERE key='node_identity'");
    if (!n || sqlite3_step(n.get()) != SQLITE_ROW) return Io("read node identity");
    std::string node = n.Text(0);
    if (!fill) return Status::Ok();
    Stmt sel(db_, "SELECT pk, id FROM objects WHERE derived_id=''");
    Stmt upd(db_, "UPDATE objects SET derived_id=? WHERE pk=?");
    std::vector<std::pair<int64_t, std::string>> rows;
    while (sqlite3_step(sel.get()) == SQLITE_ROW) rows.emplace_back(sel.Int(0), sel.Text(1));
    for (const auto& [pk, oid] : rows) {
      std::string d = stix::DerivedId(oid, node);
      upd.Reset();
      upd.Bind(1, d);
      upd.Bind(2, pk);
      if (sqlite3_step(upd.get()) != SQLITE_DONE) return Io("fill derived ids");
    }
    return Status::Ok();
  }

  Result<std::string> NodeIdentity() override { return node_identity_; }

  Result<std::vector<StoredObject>> Latest(std::string_view collection, const std::vector<std::string>& ids) override {
    std::vector<StoredObject> out;
    if (ids.empty()) return out;
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<std::vector<StoredObject>> {
      int64_t coll;
      if (auto st = CollectionPkOn(db, stmts, collection, &coll); !st.ok()) return st;
      int rc;
      // In chunks, one statement each: the last version of every id in the chunk.
      constexpr size_t kChunk = 200;
      for (size_t start = 0; start < ids.size(); start += kChunk) {
        size_t n = std::min(kChunk, ids.size() - start);
        std::string sql = detail::RowsOfIdsSql(
            "id, type, modified, version, spec_version, date_added, json, source", n);
        AppendIn(sql, "id", n);
        sql += " AND latest=1";
        Stmt& s = CachedOn(db, stmts, sql);
        if (!s) return Status::Io(std::string("latest: ") + sqlite3_errmsg(db));
        s.Reset();
        s.Bind(1, coll);
        for (size_t k = 0; k < n; ++k) s.Bind(static_cast<int>(k) + 2, IdKey(ids[start + k]));
        for (size_t k = 0; k < n; ++k) s.Bind(static_cast<int>(n + k) + 2, ids[start + k]);
        while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
          out.push_back({s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4), s.Int(5), s.Text(6), s.Text(7)});
        }
        sqlite3_reset(s.get());
        if (rc != SQLITE_DONE) return Status::Io(std::string("latest: ") + sqlite3_errmsg(db));
      }
      return out;
    });
  }

  Result<std::vector<std::pair<int64_t, std::pair<std::string, std::string>>>> PolicyViews(
      std::string_view collection, const std::vector<int64_t>& date_added) override {
    using Out = std::vector<std::pair<int64_t, std::pair<std::string, std::string>>>;
    Out out;
    if (date_added.empty()) return out;
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<Out> {
      int64_t coll;
      if (auto st = CollectionPkOn(db, stmts, collection, &coll); !st.ok()) return st;
      int rc;
      constexpr size_t kChunk = 200;
      for (size_t start = 0; start < date_added.size(); start += kChunk) {
        size_t n = std::min(kChunk, date_added.size() - start);
        std::string sql = "SELECT date_added, id, CASE WHEN policy_json<>'' THEN policy_json ELSE json END "
                          "FROM objects INDEXED BY objects_added WHERE coll=?";
        AppendIn(sql, "date_added", n);
        Stmt& s = CachedOn(db, stmts, sql);
        if (!s) return Status::Io(std::string("policy views: ") + sqlite3_errmsg(db));
        s.Reset();
        s.Bind(1, coll);
        for (size_t k = 0; k < n; ++k) s.Bind(static_cast<int>(k) + 2, date_added[start + k]);
        while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back({s.Int(0), {s.Text(1), s.Text(2)}});
        sqlite3_reset(s.get());
        if (rc != SQLITE_DONE) return Status::Io(std::string("policy views: ") + sqlite3_errmsg(db));
      }
      return out;
    });
  }

  Result<std::vector<std::pair<std::string, bool>>> Held(std::string_view recipient,
                                                         const std::vector<std::string>& ids) override {
    std::vector<std::pair<std::string, bool>> out;
    if (ids.empty()) return out;
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts)
                          -> Result<std::vector<std::pair<std::string, bool>>> {
      constexpr size_t kChunk = 200;
      for (size_t start = 0; start < ids.size(); start += kChunk) {
        size_t n = std::min(kChunk, ids.size() - start);
        std::string sql = "SELECT object_id, variant FROM releases WHERE recipient=?";
        AppendIn(sql, "object_id", n);
        Stmt& s = CachedOn(db, stmts, sql);
        if (!s) return Status::Io(std::string("release history: ") + sqlite3_errmsg(db));
        s.Reset();
        s.Bind(1, recipient);
        for (size_t k = 0; k < n; ++k) s.Bind(static_cast<int>(k) + 2, ids[start + k]);
        int rc;
        while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.emplace_back(s.Text(0), s.Int(1) != 0);
        sqlite3_reset(s.get());
        if (rc != SQLITE_DONE) return Status::Io(std::string("release history: ") + sqlite3_errmsg(db));
      }
      return out;
    });
  }

  // Durable before it is returned: a checkpoint signs it, and one naming entries a power loss
  // took back would read as tampering.
  Result<std::pair<int64_t, std::string>> AuditHead() override {
    std::pair<int64_t, std::string> head;
    {
      auto lock = chain_->Acquire();
      if (!lock.ok()) return lock.status();
      head = chain_->Head(*lock);
    }
    if (auto synced = chain_->Sync(); !synced.ok()) return synced.status();
    return head;
  }
  Result<std::pair<int64_t, std::string>> AuditSyncedHead() override { return chain_->SyncedHead(); }

  // Checkpoints live in the log's SQLite file alone, written and read on its own connection,
  // not the store's writer (OpenLogConnection). The audit writer signs one every
  // 1000 entries; behind the writer it waited for whole groups of Puts (std::mutex is not fair),
  // and every audited read waited behind it: reads under POSTs had a p99 of ~0.7 s (ninth
  // session).
  template <typename F>
  auto OnLog(F f) {
    std::lock_guard lock(log_mu_);
    return f(log_db_);
  }

  Status PutCheckpoint(const Checkpoint& c) override {
    return OnLog([&](sqlite3* db) {
      Stmt s(db, "INSERT OR REPLACE INTO checkpoints(seq, hash, time_us, public_key, signature) VALUES(?,?,?,?,?)");
      s.Bind(1, c.seq);
      s.Bind(2, c.hash);
      s.Bind(3, c.time_us);
      s.Bind(4, c.public_key);
      s.Bind(5, c.signature);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return Status::Io(std::string("store checkpoint: ") + sqlite3_errmsg(db));
      return Status::Ok();
    });
  }

  Result<std::vector<Checkpoint>> ReadCheckpoints(size_t latest) override {
    return OnLog([&](sqlite3* db) -> Result<std::vector<Checkpoint>> {
      Stmt s(db, latest == 0 ? "SELECT seq, hash, time_us, public_key, signature FROM checkpoints ORDER BY seq"
                             : "SELECT * FROM (SELECT seq, hash, time_us, public_key, signature FROM checkpoints "
                               "ORDER BY seq DESC LIMIT ?) ORDER BY seq");
      if (latest > 0) s.Bind(1, static_cast<int64_t>(latest));
      std::vector<Checkpoint> out;
      int rc;
      while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back({s.Int(0), s.Text(1), s.Int(2), s.Text(3), s.Text(4)});
      if (rc != SQLITE_DONE) return Status::Io(std::string("read checkpoints: ") + sqlite3_errmsg(db));
      return out;
    });
  }

  Result<CollectionInfo> EnsureCollection(std::string_view name, std::string_view title) override {
    std::lock_guard lock(mu_);
    if (name.empty() || name.size() > 200) return Status::Invalid("collection name must be 1-200 characters");
    auto found = FindCollection(name);
    if (found.ok() || found.status().code() != Code::kNotFound) return found;
    Stmt ins(db_, "INSERT INTO collections(name, taxii_id, title) VALUES(?,?,?)");
    std::string id = stix::NewUuid4();
    ins.Bind(1, name);
    ins.Bind(2, id);
    ins.Bind(3, title.empty() ? name : title);
    if (Step(ins) != SQLITE_DONE) return Io("create collection");
    return FindCollection(name);
  }

  Result<CollectionInfo> GetCollection(std::string_view name_or_id) override {
    std::lock_guard lock(mu_);
    return FindCollection(name_or_id);
  }

  Result<std::vector<CollectionInfo>> ListCollections() override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "SELECT c.name, c.taxii_id, c.title, c.description, (SELECT count(*) FROM objects o WHERE o.coll=c.pk) "
           "FROM collections c ORDER BY c.name");
    if (!s) return Io("list collections");
    std::vector<CollectionInfo> out;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      out.push_back({s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Int(4)});
    }
    if (rc != SQLITE_DONE) return Io("list collections");
    return out;
  }

  // Group commit: concurrent Puts (TAXII POSTs) share one transaction and one fsync. Each
  // arrives in the queue; whoever finds no commit in progress leads: it runs every queued Put
  // in its own savepoint (a failing one is rolled back alone), commits once, and wakes the
  // others. A Put returns only after the commit that holds it (or with the error that undid it).
  struct PutJob {
    std::string_view collection;
    std::span<const stix::Object> objects;
    std::string_view source;
    const std::vector<std::string>* push_to;
    const std::vector<std::string>* signatures;
    const IngestRecord* record;
    // Computed by the caller before joining the group, so the group's serial work is the
    // inserts alone: each object's derived (tear-line variant) id and policy view.
    std::vector<std::string> derived, views;
    Result<PutResult> result = Status::Io("not run");
    bool done = false;
    std::function<void(Result<PutResult>)> callback;  // PutAsync: the job is owned by the committer
    std::vector<std::string> push_to_copy;
  };

  Result<PutResult> Put(std::string_view collection, std::span<const stix::Object> objects,
                        std::string_view source, const std::vector<std::string>& push_to,
                        const std::vector<std::string>* signatures, const IngestRecord* record) override {
    PutJob job{collection, objects, source, &push_to, signatures, record, {}, {}};
    Prepare(job);
    std::unique_lock q(group_mu_);
    group_.push_back(&job);
    group_cv_.notify_all();
    group_done_cv_.wait(q, [&] { return job.done; });
    return std::move(job.result);
  }

  void PutAsync(std::string_view collection, std::span<const stix::Object> objects, std::string_view source,
                const std::vector<std::string>& push_to, const std::vector<std::string>* signatures,
                const IngestRecord* record, std::function<void(Result<PutResult>)> done) override {
    auto job = std::make_unique<PutJob>(PutJob{collection, objects, source, nullptr, signatures, record, {}, {}});
    job->push_to_copy = push_to;  // small; one thing less the caller must keep alive
    job->push_to = &job->push_to_copy;
    job->callback = std::move(done);
    Prepare(*job);
    std::lock_guard q(group_mu_);
    group_.push_back(job.release());
    group_cv_.notify_all();
  }

  // Each object's derived id and policy view, computed by the caller before joining a group, so
  // the group's serial work is the inserts.
  //
  // A derived id is kept (column and id index) only for a version that may be released under
  // it (MayHaveVariant), so only such versions are found by a variant id (match[id]).
  void Prepare(PutJob& job) const {
    job.derived.reserve(job.objects.size());
    job.views.reserve(job.objects.size());
    for (const auto& o : job.objects) {
      job.derived.push_back(MayHaveVariant(o.json) ? stix::DerivedId(o.id, node_identity_) : std::string());
      job.views.push_back(KeptPolicyView(o.json));
    }
  }
  // The policy view is stored where it spares a manifest's decision most of the object (the
  // Releaser parses it instead of the JSON, once per version it has not seen): an object of at
  // least 1 KB whose view is at most half of it (a report or an indicator with a long
  // description). For a smaller object, or a view nearly as large (most objects: the view keeps
  // type, id, times and references), PolicyViews returns the JSON, and the row is ~30% smaller
  // (bytes written per object: the insert, the WAL, its checkpoint).
  static std::string KeptPolicyView(std::string_view json) {
    if (json.size() < 1024) return {};
    std::string view = stix::PolicyView(json);
    if (view.size() * 2 > json.size()) return {};
    return view;
  }
  // True when a version may leave under its derived id: as a tear-line variant (it carries
  // tearline's extension: the Releaser's step 4), or republished because a reference in it was
  // rewritten or removed for a recipient (policy/render.cpp: any `*_ref` / `*_refs` member at
  // any depth but `object_marking_refs` and granular markings). A version with neither (an
  // indicator, an observable without references) never does: no derived id, no key, half the
  // id index's merges for such objects. The test is on the compact JSON's text, erring only
  // towards a key too many (the same text in a string value, a granular marking's marking_ref).
  // Rows stored before keep theirs (a superset).
  static bool MayHaveVariant(std::string_view json) {
    if (json.find(stix::kTearlineExtensionId) != std::string_view::npos) return true;
    constexpr std::string_view kMarkings = "\"object_marking_refs";
    for (size_t p = json.find("_ref"); p != std::string_view::npos; p = json.find("_ref", p + 4)) {
      size_t end = p + 4;
      if (end < json.size() && json[end] == 's') ++end;
      if (json.substr(end, 2) != "\":") continue;  // not the end of a member name
      if (end >= kMarkings.size() && json.substr(end - kMarkings.size(), kMarkings.size()) == kMarkings) continue;
      return true;
    }
    return false;
  }

  // Group commit: one thread takes every Put waiting, stores them in one transaction (RunGroup)
  // with one fsync, then wakes the waiting callers and runs the callbacks of
  // asynchronous ones. Puts arriving meanwhile form the next group.
  //
  // Early lock release: the group's COMMIT does not sync (synchronous=NORMAL for that commit);
  // the committer hands the group to the syncer thread and goes on with the next group while
  // the syncer fdatasyncs both write-ahead logs, and only then are the group's Puts
  // acknowledged. A Put is never reported stored before it is durable; what readers may see
  // meanwhile is a committed group that a power loss (not a process crash: the page cache
  // survives that) could still take back, before anyone was told it was stored. The commit's
  // fsync was ~25% of a POST's wall time with the CPU idle (docs/benchmarks.md, seventh session).
  void StartCommitter() {
    OpenWalFiles();
    committer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "tl-commit");  // top -H, perf
      std::unique_lock q(group_mu_);
      while (true) {
        if (group_.empty() && !group_stop_ && IdleMergeMayBeDue()) {
          // Idle: a merge that is nearly due runs now rather than inside a later group.
          q.unlock();
          {
            std::lock_guard lock(mu_);
            IdleMergeLocked();
          }
          q.lock();
        }
        group_cv_.wait(q, [&] { return group_stop_ || !group_.empty(); });
        if (group_.empty()) return;  // stopping, nothing left
        std::vector<PutJob*> batch, rest;
        batch.swap(group_);
        q.unlock();
        int64_t head = 0;
        const bool unsynced = RunGroup(batch, &head, &rest);
        if (!rest.empty()) {
          // Cut short for waiting audit entries (RunGroupLocked): the Puts not run go first in
          // the next group.
          std::erase_if(batch, [&](PutJob* j) { return std::find(rest.begin(), rest.end(), j) != rest.end(); });
          std::lock_guard g(group_mu_);
          group_.insert(group_.begin(), rest.begin(), rest.end());
        }
        if (unsynced) {
          std::lock_guard s(sync_mu_);
          to_sync_.push_back({std::move(batch), head, true});
          sync_cv_.notify_one();
        } else {
          Complete(batch);
        }
        q.lock();
      }
    });
    if (wal_main_ < 0) return;
    syncer_ = std::thread([this] { SyncLoop(); });
  }

  // The syncer: takes every group queued (the objects' WAL and the audit chain written, not yet
  // durable), syncs, and answers them. One sync covers every group queued before it began
  // (fdatasync makes all the file's writes before the call durable). (Two syncers, so that a
  // group queued during a sync has its own at once: p99 of random pages -0.7 to -1.4 ms but
  // -5 to -11% of their rate, +5 to +12% CPU per page: more, smaller syncs; not kept,
  // docs/benchmarks.md, thirteenth session.)
  //
  // It syncs through descriptors of its own: the kernel reports a failed write-back once to
  // each open file (errseq), so on a descriptor shared with another sync (the chain's, which
  // checkpoints and synchronous appends sync too) the failure could be told to that one alone
  // while this one answered groups whose pages were lost.
  void SyncLoop() {
    pthread_setname_np(pthread_self(), "tl-sync");
    const int wal = ::open((path_ + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
    const int chain = chain_->OpenSyncDescriptor();
    std::unique_lock s(sync_mu_);
    while (true) {
      sync_cv_.wait(s, [&] { return sync_stop_ || !to_sync_.empty(); });
      if (to_sync_.empty()) break;  // stopping, nothing left
      std::vector<Unsynced> groups;
      groups.swap(to_sync_);
      s.unlock();
      // The objects' WAL only if one of them wrote to it (an empty sync still flushes the disk).
      bool main = false;
      for (const auto& g : groups) main |= g.main;
      std::string failed = SyncWals(main, wal, chain);
      if (failed.empty()) {
        for (const auto& g : groups) NoteSynced(g.head);  // their intents may go
      }
      for (auto& g : groups) {
        if (!failed.empty()) {
          for (PutJob* j : g.jobs) {
            if (j->result.ok()) j->result = Status::Io(failed);
          }
        }
        Complete(g.jobs);
      }
      s.lock();
    }
    s.unlock();
    if (wal >= 0) ::close(wal);
    if (chain >= 0) ::close(chain);
  }

  void StopCommitter() {
    if (committer_.joinable()) {
      {
        std::lock_guard q(group_mu_);
        group_stop_ = true;
      }
      group_cv_.notify_all();
      committer_.join();  // Puts already queued are stored first
    }
    if (syncer_.joinable()) {
      {
        std::lock_guard s(sync_mu_);
        sync_stop_ = true;
      }
      sync_cv_.notify_all();
      syncer_.join();  // and acknowledged once durable
    }
    if (wal_main_ >= 0) ::close(wal_main_);
    wal_main_ = -1;
  }

  // The objects' write-ahead log, for the syncer: it exists from the first connection in WAL
  // mode until the last one closes (this store's writer outlives the syncer). Without it
  // (in-memory or temporary stores) group commits sync in COMMIT as before. (The audit log's
  // SQLite file now holds only the signed checkpoints, written synchronously.)
  void OpenWalFiles() {
    if (path_.empty() || path_ == ":memory:") return;
    wal_main_ = ::open((path_ + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
  }

  // fdatasync of the objects' WAL (when `main`: a group wrote to it) and of the audit chain; ""
  // when done, else what failed. A failed sync is not retried: the kernel may have dropped the
  // dirty pages it could not write (fsyncgate), so the store refuses every later write until
  // the node is restarted (sync_failed_; RunGroup, ReadyLocked, the chain-only appends).
  // `wal` and `chain`: the syncer's own descriptors (SyncLoop; SyncChainOnly's for the chain
  // alone); -1 (one could not be opened): the store's.
  std::string SyncWals(bool main, int wal, int chain) {
    if (sync_failed_.load()) return sync_error_;
    if (opt_.sync_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt_.sync_delay_ms));
    std::string failed;
    if (opt_.fail_sync) {
      failed = "sync the write-ahead log: injected failure";
    } else if (main && ::fdatasync(wal >= 0 ? wal : wal_main_) != 0) {
      failed = std::string("sync the write-ahead log: ") + std::strerror(errno);
    } else if (auto synced = chain_->Sync(chain); !synced.ok()) {
      failed = synced.status().message();
    }
    wal_syncs_.fetch_add(1, std::memory_order_relaxed);
    if (failed.empty()) return {};
    return FailSync(failed).message();
  }

  // A sync failed: from now on the store refuses writes. sync_error_ is set once, before
  // sync_failed_ (readers check that first).
  Status FailSync(const std::string& what) {
    std::lock_guard lock(mu_);
    return FailSyncLocked(what);
  }
  Status FailSyncLocked(const std::string& what) {
    if (!sync_failed_.load()) {
      sync_error_ = what + "; the store takes no more writes until the node is restarted";
      sync_failed_ = true;
    }
    return Status::Io(sync_error_);
  }

  // A group's Puts are answered: waiting callers woken, asynchronous callbacks run.
  void Complete(const std::vector<PutJob*>& batch) {
    std::vector<std::unique_ptr<PutJob>> owned;
    {
      std::lock_guard q(group_mu_);
      for (PutJob* j : batch) {
        if (j->callback) owned.emplace_back(j);
        else j->done = true;
      }
    }
    group_done_cv_.notify_all();
    for (auto& j : owned) j->callback(std::move(j->result));
  }

  // True when the group committed without syncing (early lock release: the syncer must make it
  // durable before its Puts are answered; `head` the last chain entry it wrote); false when it
  // is done (synced, or failed).
  bool RunGroup(const std::vector<PutJob*>& batch, int64_t* head, std::vector<PutJob*>* rest) {
    // Audit entries waiting for the writer go first (std::mutex is not fair: the committer,
    // taking it again right after each group, kept a waiting audit batch out for several
    // groups, and every audited read waited with it).
    {
      std::unique_lock w(audit_wait_mu_);
      audit_wait_cv_.wait(w, [&] { return audit_waiting_.load() == 0; });
    }
    std::lock_guard lock(mu_);
    if (auto st = ReadyLocked(); !st.ok()) {
      for (PutJob* j : batch) j->result = st;
      return false;
    }
    const bool early = wal_main_ >= 0;
    if (early && !SyncCommitsLocked(false)) {
      for (PutJob* j : batch) j->result = Io("configure the group commit");
      return false;
    }
    if (opt_.group_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt_.group_delay_ms));
    bool committed = RunGroupLocked(batch, early ? head : nullptr, rest);
    if (early) SyncCommitsLocked(true);
    return early && committed;
  }

  // The committer found no Put waiting: if the recent level holds half the merge threshold or
  // more, one slice is merged now in a transaction of its own (not synced: it acknowledges
  // nothing, and the next group's sync covers it), so the groups that follow seldom merge.
  // Puts arriving meanwhile wait for it as they would for a group's merge. False if nothing was
  // due or it failed (a failed merge changes nothing: rolled back, tried again later).
  // Without the writer's lock (memory as of the last commit): only with the automatic threshold
  // (a fixed one, in tests, merges exactly at it, in groups), and half its least value reached.
  bool IdleMergeMayBeDue() const { return opt_.id_merge_threshold == 0 && recent_.Above() >= 65536 / 2; }
  bool IdleMergeLocked() {
    if (!IdleMergeMayBeDue()) return false;
    if (!id_counts_known_ && !CountIdRowsLocked()) return false;
    if (recent_.Above() < MergeThresholdLocked() / 2) return false;
    if (auto st = ReadyLocked(); !st.ok()) return false;
    if (wal_main_ >= 0 && !SyncCommitsLocked(false)) return false;
    const uint64_t merges = id_merges_.load(std::memory_order_relaxed);
    const bool ok = RunGroupLocked({}, nullptr, nullptr, true);
    if (wal_main_ >= 0) SyncCommitsLocked(true);
    return ok && id_merges_.load(std::memory_order_relaxed) > merges;
  }

  // `rest` (optional): when audit entries are waiting for the writer and the group has run for
  // kYieldToAuditUs, the Puts not yet run are left out of this transaction and returned there
  // (an audited read then waits for a few ms of a group, not for a whole one: ~25 ms under
  // POSTs; docs/benchmarks.md, eighth session).
  static constexpr int64_t kYieldToAuditUs = 5000;
  bool RunGroupLocked(const std::vector<PutJob*>& batch, int64_t* unsynced_head, std::vector<PutJob*>* rest = nullptr,
                      bool idle = false) {
    // One transaction for the group, without a savepoint per Put: a savepoint makes SQLite copy
    // every page a Put touches first (16 KiB each, the random-key indexes touch one per object)
    // into a sub-journal, ~20% of POST throughput (TEARLINE_SQL_PROFILE statement times, A/B in
    // docs/benchmarks.md). A Put that fails instead rolls the whole group back, and the group
    // runs again without it (each pass drops at least one Put: failures are rare, and an I/O
    // error that fails them all ends in as many short passes).
    std::vector<PutJob*> live = batch;
    while (true) {
      if (!BeginWithIdsLocked()) {
        for (PutJob* j : live) j->result = Io("begin transaction");
        return false;
      }
      SyncKeyFilterLocked();
      if (!SyncRecentIdsLocked()) {
        RollbackLocked();
        for (PutJob* j : live) j->result = Io("read the recent ids");
        return false;
      }
      PutJob* failed = nullptr;
      const int64_t started = stix::NowMicros();
      size_t k = 0;
      for (; k < live.size(); ++k) {
        if (k > 0 && rest && audit_waiting_.load() > 0 && stix::NowMicros() - started >= kYieldToAuditUs) break;
        PutJob* j = live[k];
        j->result = PutBody(*j);
        if (!j->result.ok()) {
          failed = j;
          break;
        }
      }
      if (!failed) {
        if (k < live.size()) {
          rest->assign(live.begin() + static_cast<std::ptrdiff_t>(k), live.end());
          live.resize(k);
        }
        break;
      }
      RollbackLocked();
      id_counts_known_ = false;
      std::erase(live, failed);  // its result stays the error
      for (PutJob* j : live) j->result = Status::Io("not run");  // set again by the next pass
      if (live.empty()) return false;
    }
    Status merged = MaybeMergeIdIndexLocked(idle);
    bool inject = opt_.fail_write_step >= 0 && write_steps_++ == opt_.fail_write_step;
    if (!merged.ok() || inject || !CommitLocked(unsynced_head)) {
      Status st = merged.ok() ? Io("commit") : merged;
      RollbackLocked();
      id_counts_known_ = false;
      for (PutJob* j : live) {
        if (j->result.ok()) j->result = st;
      }
      return false;
    }
    return true;
  }

  bool CountIdRowsLocked() {
    Stmt c(db_, "SELECT count(*) FROM id_index");
    if (!c || sqlite3_step(c.get()) != SQLITE_ROW) return false;
    id_rows_main_ = c.Int(0);
    id_counts_known_ = true;
    return true;
  }

  // Inside the group's transaction (SyncRecentIdsLocked done): the recent level goes into
  // id_index once it has grown past the threshold (SqliteOptions::id_merge_threshold; the
  // schema's comment says why two levels). With N rows in id_index, the merge rewrites most of
  // its pages once per ~sqrt(32768 N)/2 objects stored (4 times the factor of schema 14, when
  // the level was a table: in memory its size costs the rows a process reads when it starts,
  // about as many objects as the level has keys).
  //
  // `idle`: the committer has no Put waiting (IdleMergeLocked): a slice is merged from half the
  // threshold on, so under a steady load most merges run between groups, off the Puts' path.
  int64_t MergeThresholdLocked() const {
    return opt_.id_merge_threshold > 0
               ? opt_.id_merge_threshold
               : std::max<int64_t>(65536, static_cast<int64_t>(std::sqrt(static_cast<double>(id_rows_main_) * 32768.0)));
  }
  Status MaybeMergeIdIndexLocked(bool idle = false) {
    if (!id_counts_known_ && !CountIdRowsLocked()) return Io("count the id index");
    const int64_t threshold = MergeThresholdLocked();
    id_rows_main_seen_.store(id_rows_main_, std::memory_order_relaxed);
    if (!recent_synced_ || recent_.Above() < (idle ? threshold / 2 : threshold)) return Status::Ok();
    const int64_t started = stix::NowMicros();
    // One slice of the key space per merge, the one with the most keys: a group of Puts waits
    // for 1/kSlices of the pages of id_index, not for all of them.
    // Ties go round, from the slice after the last one merged (no slice waits forever).
    constexpr int kSlices = detail::RecentIds::kSlices;
    int slice = (last_slice_ + 1) % kSlices;
    for (int n = 1; n < kSlices; ++n) {
      const int i = (last_slice_ + 1 + n) % kSlices;
      if (recent_.AboveIn(i) > recent_.AboveIn(slice)) slice = i;
    }
    last_slice_ = slice;
    // In key order: one pass over the slice's pages of id_index. Memory holds, above the merge
    // point this transaction sees, every row up to the last pk given.
    const int64_t to = std::max(recent_.Covered(), next_pk_ - 1);
    const auto moving = recent_.Sorted(slice, recent_view_.merged[static_cast<size_t>(slice)], to);
    // The keys that move go into the writer's filter of the merged level first.
    if (filter_valid_) {
      for (const auto& e : moving) {
        if (e.key >= 0) filter_.Add(e.coll, e.key);
      }
      if (filter_.Full()) filter_valid_ = false;
    }
    Stmt& move = Cached("INSERT OR IGNORE INTO id_index(coll, key, pk) VALUES(?,?,?)");
    Stmt& point = Cached("INSERT INTO meta(key, value) VALUES('id_merged_pk', ?1) "
                         "ON CONFLICT(key) DO UPDATE SET value=?1");
    // Every merge counts (meta 'id_merges'): a writer whose filter predates a merge by another
    // process rebuilds it (SyncKeyFilterLocked).
    Stmt& count = Cached("INSERT INTO meta(key, value) VALUES('id_merges', '1') "
                         "ON CONFLICT(key) DO UPDATE SET value=CAST(value AS INTEGER)+1");
    int64_t moved = 0;
    for (const auto& e : moving) {
      move.Reset();
      move.Bind(1, e.coll);
      move.Bind(2, e.key);
      move.Bind(3, e.pk);
      if (Step(move) != SQLITE_DONE) return Io("merge the id index");
      moved += sqlite3_changes(db_);
    }
    merged_points_ = recent_view_.merged;
    merged_points_[static_cast<size_t>(slice)] = to;
    const std::string points = detail::RecentIds::FormatPoints(merged_points_);
    point.Reset();
    point.Bind(1, points);
    if (Step(point) != SQLITE_DONE) return Io("merge the id index");
    count.Reset();
    if (Step(count) != SQLITE_DONE) return Io("count the merge");
    ++filter_merges_;  // the filter was in step with the file at BEGIN (SyncKeyFilterLocked)
    merged_ = true;  // memory follows when the transaction commits
    id_rows_main_ += moved;
    id_merges_.fetch_add(1, std::memory_order_relaxed);
    id_merge_us_.fetch_add(static_cast<uint64_t>(stix::NowMicros() - started), std::memory_order_relaxed);
    return Status::Ok();
  }

  // At the start of a group's transaction (the write lock held): the filter of id_index's id
  // keys is usable only if no merge happened since it was built or last brought up to date
  // (meta 'id_merges', counted by every merge in its transaction). A key in id_index is then
  // always in the filter: keys merged by this writer are added as they move; rows deleted
  // leave their keys behind, which only costs a search. Otherwise (first use, a merge by
  // another process, a rolled back merge, a full filter) it is built again from id_index.
  void SyncKeyFilterLocked() {
    Stmt& merges = Cached("SELECT CAST(value AS INTEGER) FROM meta WHERE key='id_merges'");
    merges.Reset();
    int rc = sqlite3_step(merges.get());
    const int64_t now = rc == SQLITE_ROW ? merges.Int(0) : 0;
    sqlite3_reset(merges.get());
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      filter_valid_ = false;
      return;
    }
    if (filter_valid_ && now == filter_merges_) return;
    filter_valid_ = false;
    if (!id_counts_known_ && !CountIdRowsLocked()) return;
    // Room for the id keys there are (at most id_index's rows) and as many again: a full filter
    // is built again from the whole of id_index (~50 ms at a million rows, in a group's
    // transaction), so growth rebuilds it only each time the index doubles.
    filter_.Reset(2 * static_cast<size_t>(id_rows_main_) + 65536);
    if (!AddKeysToFilterLocked()) return;
    filter_merges_ = now;
    filter_valid_ = true;
  }

  // The id keys (>= 0) of id_index into the filter; false if the read failed or the filter is
  // full (it must then be built again).
  bool AddKeysToFilterLocked() {
    Stmt& keys = Cached("SELECT coll, key FROM id_index WHERE key >= 0");
    keys.Reset();
    int rc;
    while ((rc = sqlite3_step(keys.get())) == SQLITE_ROW) filter_.Add(keys.Int(0), keys.Int(1));
    sqlite3_reset(keys.get());
    return rc == SQLITE_DONE && !filter_.Full();
  }

  // One Put inside the group's transaction.
  Result<PutResult> PutBody(const PutJob& job) {
    const auto& objects = job.objects;
    const auto& push_to = *job.push_to;
    const auto* signatures = job.signatures;
    const auto* record = job.record;
    std::string_view source = job.source;
    int64_t coll;
    if (auto st = CollectionPk(job.collection, &coll); !st.ok()) return st;
    auto result = PutLocked(coll, objects, source, job.derived, job.views);
    if (result.ok() && (!push_to.empty() || signatures)) {
      // Deliveries and signatures of the stored versions, in the same transaction.
      std::string name = CollectionName(coll);
      Stmt& q = Cached("INSERT INTO outbox(partner, collection, object_id, version, enqueued, state) VALUES(?,?,?,?,?,'pending')");
      Stmt& sig = Cached("INSERT OR IGNORE INTO signatures(coll, id, version, json) VALUES(?,?,?,?)");
      int64_t now = stix::NowMicros();
      for (size_t k = 0; k < objects.size() && result.ok(); ++k) {
        if (result->outcomes[k] != PutOutcome::kStored) continue;
        for (const auto& partner : push_to) {
          if (partner == source) continue;  // never back to where it came from
          q.Reset();
          q.Bind(1, partner);
          q.Bind(2, name);
          q.Bind(3, objects[k].id);
          q.Bind(4, objects[k].version);
          q.Bind(5, now);
          if (Step(q) != SQLITE_DONE) result = Io("queue delivery");
        }
        if (signatures && k < signatures->size() && !(*signatures)[k].empty()) {
          sig.Reset();
          sig.Bind(1, coll);
          sig.Bind(2, objects[k].id);
          sig.Bind(3, objects[k].version);
          sig.Bind(4, (*signatures)[k]);
          if (Step(sig) != SQLITE_DONE) result = Io("store signatures");
        }
      }
    }
    if (result.ok() && record) {
      // The TAXII status and the ingest audit entry commit with the objects: one fsync.
      if (record->status) {
        std::string body = record->status(*result);
        Stmt& st = Cached("INSERT OR REPLACE INTO statuses(id, owner, json) VALUES(?,?,?)");
        st.Reset();
        st.Bind(1, record->status_id);
        st.Bind(2, record->status_owner);
        st.Bind(3, body);
        if (Step(st) != SQLITE_DONE) result = Io("store status");
      }
      if (result.ok() && record->audit) {
        auto entries = record->audit(*result);
        if (auto a = AppendAuditLocked(entries, {}); !a.ok()) result = a;
      }
    }
    return result;
  }

  Result<Page> Query(const store::Query& q) override { return Select(q, true); }
  Result<Page> Manifest(const store::Query& q) override { return Select(q, false); }

  Result<bool> HasMarkingDefinition(std::string_view id) override {
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<bool> {
      Stmt& s = CachedOn(db, stmts, "SELECT 1 FROM markings WHERE id=?");
      s.Reset();
      s.Bind(1, id);
      int rc = sqlite3_step(s.get());
      sqlite3_reset(s.get());
      if (rc == SQLITE_ROW) return true;
      if (rc == SQLITE_DONE) return false;
      return Status::Io(std::string("look up marking: ") + sqlite3_errmsg(db));
    });
  }

  Result<std::vector<TypeCount>> Stats() override {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "SELECT c.name, o.type, count(*), count(DISTINCT o.id) FROM objects o JOIN collections c ON c.pk=o.coll "
           "GROUP BY c.name, o.type ORDER BY c.name, o.type");
    if (!s) return Io("stats");
    std::vector<TypeCount> out;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back({s.Text(0), s.Text(1), s.Int(2), s.Int(3)});
    if (rc != SQLITE_DONE) return Io("stats");
    return out;
  }

  // The same facts the page index is keyed by (StateOn): the newest date_added and the delete counter.
  Result<std::string> CollectionGeneration(std::string_view collection) override {
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<std::string> {
      int64_t coll;
      if (auto st = CollectionPkOn(db, stmts, collection, &coll); !st.ok()) return st;
      auto state = StateOn(db, stmts, coll);
      if (!state.ok()) return state.status();
      return std::to_string(coll) + ":" + std::to_string(state->max_added) + ":" + std::to_string(state->deletes);
    });
  }

  // CollectionGeneration's form: "<collection pk>:<newest date_added>:<deletes>".
  static std::optional<std::array<int64_t, 3>> SplitGeneration(const std::string& g) {
    std::array<int64_t, 3> v{};
    const char* p = g.data();
    const char* end = g.data() + g.size();
    for (size_t i = 0; i < 3; ++i) {
      auto [next, ec] = std::from_chars(p, end, v[i]);
      if (ec != std::errc() || next == p || (i < 2 ? next == end || *next != ':' : next != end)) return std::nullopt;
      p = next + 1;
    }
    return v;
  }

  // The delete counter only grows, and inserts only raise the newest date_added.
  bool GenerationPrecedes(const std::string& earlier, const std::string& later) const override {
    auto a = SplitGeneration(earlier), b = SplitGeneration(later);
    if (!a || !b || (*a)[0] != (*b)[0]) return false;
    return (*a)[2] < (*b)[2] || ((*a)[2] == (*b)[2] && (*a)[1] < (*b)[1]);
  }

  Result<std::optional<std::vector<std::string>>> IdsStoredBetween(std::string_view collection, const std::string& from,
                                                                   const std::string& to, size_t max) override {
    using Out = Result<std::optional<std::vector<std::string>>>;
    auto a = SplitGeneration(from), b = SplitGeneration(to);
    if (!a || !b || (*a)[0] != (*b)[0] || (*a)[2] != (*b)[2] || (*a)[1] > (*b)[1]) return Out(std::nullopt);
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Out {
      // One read transaction: the delete counter and the rows of one state.
      ReadTxn txn(db);
      if (!txn.ok()) return Status::Io(std::string("begin: ") + sqlite3_errmsg(db));
      int64_t coll;
      if (auto st = CollectionPkOn(db, stmts, collection, &coll); !st.ok()) return st;
      if (coll != (*a)[0]) return Out(std::nullopt);
      auto state = StateOn(db, stmts, coll);
      if (!state.ok()) return state.status();
      // A delete since `from` may have taken versions stored between the two: they cannot be listed.
      if (state->deletes != (*a)[2]) return Out(std::nullopt);
      Stmt& q = CachedOn(db, stmts, "SELECT id FROM objects WHERE coll=? AND date_added>? AND date_added<=? ORDER BY date_added LIMIT ?");
      q.Reset();
      q.Bind(1, coll);
      q.Bind(2, (*a)[1]);
      q.Bind(3, (*b)[1]);
      q.Bind(4, static_cast<int64_t>(max) + 1);
      std::vector<std::string> ids;
      int rc;
      while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) q.TextInto(0, ids.emplace_back());
      sqlite3_reset(q.get());
      if (rc != SQLITE_DONE) return Status::Io(std::string("ids stored: ") + sqlite3_errmsg(db));
      if (ids.size() > max) return Out(std::nullopt);
      return Out(std::move(ids));
    });
  }

  Result<size_t> Delete(std::string_view collection, std::string_view id, const VersionFilter& vf) override {
    std::lock_guard lock(mu_);
    int64_t coll;
    if (auto st = CollectionPk(collection, &coll); !st.ok()) return st;
    // One transaction: the rows, the `latest` flag passed back to the version left, and the
    // delete counter change together (a reader, or a crash, never sees an object without its
    // last version flagged, or rows gone under an unchanged counter: the page index trusts it).
    if (!BeginWithIdsLocked()) return Io("begin delete");
    auto fail = [&](const char* what) -> Result<size_t> {
      Status st = Io(what);
      RollbackLocked();
      id_counts_known_ = false;  // counted again before the next merge decision
      return st;
    };
    // ?3 is the id's IdKey; versions to delete follow from ?4. The rows' keys leave the id
    // index with them (RETURNING: SQLite deletes every row before the first is returned).
    const std::string rows = "pk IN (SELECT pk FROM id_lookup WHERE coll=?1 AND key=?3) AND id=?2";
    std::string sql = "DELETE FROM objects WHERE " + rows;
    if (!vf.all && !vf.empty()) {
      std::string cond;
      if (vf.first) cond += "version=(SELECT min(version) FROM objects x WHERE " + rows + ")";
      if (vf.last) cond += std::string(cond.empty() ? "" : " OR ") + "version=(SELECT max(version) FROM objects x WHERE " + rows + ")";
      if (!vf.versions.empty()) {
        cond += std::string(cond.empty() ? "" : " OR ") + "version IN (";
        for (size_t i = 0; i < vf.versions.size(); ++i) cond += i ? ",?" : "?";
        cond += ")";
      }
      sql += " AND (" + cond + ")";
    }
    sql += " RETURNING pk, derived_id";
    Stmt s(db_, sql);
    if (!s) return fail("prepare delete");
    s.Bind(1, coll);
    s.Bind(2, id);
    s.Bind(3, IdKey(id));
    int i = 4;
    if (!vf.all) {
      for (const auto& v : vf.versions) s.Bind(i++, v);
    }
    std::vector<std::pair<int64_t, std::string>> gone;
    int rc;
    while ((rc = Step(s)) == SQLITE_ROW) gone.emplace_back(s.Int(0), s.Text(1));
    if (rc != SQLITE_DONE) return fail("delete");
    sqlite3_reset(s.get());
    const size_t n = gone.size();
    // The keys leave id_index now, the recent level once the transaction commits (CommittedLocked).
    Stmt& unkey = Cached("DELETE FROM id_index WHERE coll=?1 AND key IN (?2,?3) AND pk=?4");
    int64_t highest = 0;
    for (const auto& [pk, derived] : gone) {
      unkey.Reset();
      unkey.Bind(1, coll);
      unkey.Bind(2, IdKey(id));
      unkey.Bind(3, DerivedKey(derived));
      unkey.Bind(4, pk);
      if (Step(unkey) != SQLITE_DONE) return fail("unindex deleted object");
      recent_removed_.push_back({coll, IdKey(id), pk});
      if (!derived.empty()) recent_removed_.push_back({coll, DerivedKey(derived), pk});
      highest = std::max(highest, pk);
    }
    if (n > 0) {
      // A deleted pk is never given to another row (recent_ids.h): the highest one is kept.
      Stmt high(db_, "INSERT INTO meta(key, value) VALUES('pk_high', ?1) "
                     "ON CONFLICT(key) DO UPDATE SET value=max(CAST(value AS INTEGER), ?1)");
      high.Bind(1, highest);
      if (Step(high) != SQLITE_DONE) return fail("keep the highest deleted pk");
      // The last remaining version (if any) carries the flag again.
      Stmt flag(db_, "UPDATE objects SET latest=(version=(SELECT max(version) FROM objects x WHERE " + rows + ")) WHERE " + rows);
      flag.Bind(1, coll);
      flag.Bind(2, id);
      flag.Bind(3, IdKey(id));
      if (Step(flag) != SQLITE_DONE) return fail("flag last version");
      // A delete changes the collection's generation (what caches derived from it is stale).
      Stmt bump(db_, "INSERT INTO meta(key, value) VALUES('deletes', '1') "
                     "ON CONFLICT(key) DO UPDATE SET value=CAST(value AS INTEGER)+1 RETURNING CAST(value AS INTEGER)");
      if (Step(bump) != SQLITE_ROW) return fail("count delete");
      recent_deletes_ = bump.Int(0);  // this process's own delete: its keys leave memory at the commit
      sqlite3_reset(bump.get());
    }
    if (!Exec("COMMIT")) return fail("commit delete");
    CommittedLocked();
    return n;
  }

  Result<int64_t> SizeBytes() override {
    std::lock_guard lock(mu_);
    // Both files: the objects' and the audit log's.
    Stmt s(db_, "SELECT (SELECT page_count FROM pragma_page_count('main')) * (SELECT page_size FROM pragma_page_size('main')) + "
                "(SELECT page_count FROM pragma_page_count('log')) * (SELECT page_size FROM pragma_page_size('log'))");
    if (!s || sqlite3_step(s.get()) != SQLITE_ROW) return Io("database size");
    return s.Int(0);
  }

  Status PutStatus(std::string_view id, std::string_view owner, std::string_view json) override {
    std::lock_guard lock(mu_);
    Stmt& s = Cached("INSERT OR REPLACE INTO statuses(id, owner, json) VALUES(?,?,?)");
    s.Reset();
    s.Bind(1, id);
    s.Bind(2, owner);
    s.Bind(3, json);
    if (Step(s) != SQLITE_DONE) return Io("store status");
    return Status::Ok();
  }

  Result<std::pair<std::string, std::string>> GetStatus(std::string_view id) override {
    std::lock_guard lock(mu_);
    Stmt& s = Cached("SELECT json, owner FROM statuses WHERE id=?");
    s.Reset();
    s.Bind(1, id);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
      auto r = std::make_pair(s.Text(0), s.Text(1));
      sqlite3_reset(s.get());
      return r;
    }
    sqlite3_reset(s.get());
    if (rc == SQLITE_DONE) return Status::NotFound("no status " + std::string(id));
    return Io("read status");
  }

  Status PutPrincipal(const Principal& p) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "INSERT OR REPLACE INTO principals(name, password_hash, can_read, can_write, identity) VALUES(?,?,?,?,?)");
    std::string r = JoinLines(p.can_read), w = JoinLines(p.can_write);
    s.Bind(1, p.name);
    s.Bind(2, p.password_hash);
    s.Bind(3, r);
    s.Bind(4, w);
    s.Bind(5, p.identity);
    if (Step(s) != SQLITE_DONE) return Io("store principal");
    return Status::Ok();
  }

  Result<Principal> GetPrincipal(std::string_view name) override {
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<Principal> {
      Stmt& s = CachedOn(db, stmts, "SELECT name, password_hash, can_read, can_write, identity FROM principals WHERE name=?");
      s.Reset();
      s.Bind(1, name);
      int rc = sqlite3_step(s.get());
      if (rc == SQLITE_ROW) {
        Principal p{s.Text(0), s.Text(1), SplitLines(s.Text(2)), SplitLines(s.Text(3)), s.Text(4)};
        sqlite3_reset(s.get());
        return p;
      }
      sqlite3_reset(s.get());
      if (rc == SQLITE_DONE) return Status::NotFound("no principal " + std::string(name));
      return Status::Io(std::string("read principal: ") + sqlite3_errmsg(db));
    });
  }

  Result<std::vector<Principal>> ListPrincipals() override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "SELECT name, password_hash, can_read, can_write, identity FROM principals ORDER BY name");
    std::vector<Principal> out;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      out.push_back({s.Text(0), s.Text(1), SplitLines(s.Text(2)), SplitLines(s.Text(3)), s.Text(4)});
    }
    if (rc != SQLITE_DONE) return Io("list principals");
    return out;
  }

  Status RemovePrincipal(std::string_view name) override {
    std::lock_guard lock(mu_);
    if (!BeginLocked()) return Io("begin");
    Stmt a(db_, "DELETE FROM principals WHERE name=?");
    a.Bind(1, name);
    Stmt b(db_, "DELETE FROM tokens WHERE principal=?");
    b.Bind(1, name);
    if (Step(a) != SQLITE_DONE) {
      RollbackLocked();
      return Io("remove principal");
    }
    bool existed = sqlite3_changes(db_) > 0;
    if (Step(b) != SQLITE_DONE || !Exec("COMMIT")) {
      RollbackLocked();
      return Io("remove principal");
    }
    return existed ? Status::Ok() : Status::NotFound("no principal " + std::string(name));
  }

  Status PutToken(const Token& t) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "INSERT INTO tokens(id, principal, secret_hash, created) VALUES(?,?,?,?)");
    s.Bind(1, t.id);
    s.Bind(2, t.principal);
    s.Bind(3, t.secret_hash);
    s.Bind(4, t.created);
    if (Step(s) != SQLITE_DONE) return Io("store token");
    return Status::Ok();
  }

  Status PutPartner(const Partner& p) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "INSERT OR REPLACE INTO partners(identity, name, channel, principals, groups_, tier) VALUES(?,?,?,?,?,?)");
    std::string pr = JoinLines(p.principals), gr = JoinLines(p.groups);
    s.Bind(1, p.identity);
    s.Bind(2, p.name);
    s.Bind(3, p.channel);
    s.Bind(4, pr);
    s.Bind(5, gr);
    s.Bind(6, int64_t{p.tier});
    if (Step(s) != SQLITE_DONE) return Io("store partner");
    return Status::Ok();
  }

  Result<Partner> GetPartner(std::string_view identity) override {
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<Partner> {
      Stmt& s = CachedOn(db, stmts, "SELECT identity, name, channel, principals, groups_, tier FROM partners WHERE identity=?");
      s.Reset();
      s.Bind(1, identity);
      int rc = sqlite3_step(s.get());
      if (rc == SQLITE_ROW) {
        Partner p{s.Text(0), s.Text(1), s.Text(2), SplitLines(s.Text(3)), SplitLines(s.Text(4)), static_cast<int>(s.Int(5))};
        sqlite3_reset(s.get());
        return p;
      }
      sqlite3_reset(s.get());
      if (rc == SQLITE_DONE) return Status::NotFound("no partner " + std::string(identity));
      return Status::Io(std::string("read partner: ") + sqlite3_errmsg(db));
    });
  }

  Result<std::vector<Partner>> ListPartners() override {
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<std::vector<Partner>> {
      Stmt& s = CachedOn(db, stmts, "SELECT identity, name, channel, principals, groups_, tier FROM partners ORDER BY name, identity");
      s.Reset();
      std::vector<Partner> out;
      int rc;
      while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        out.push_back({s.Text(0), s.Text(1), s.Text(2), SplitLines(s.Text(3)), SplitLines(s.Text(4)), static_cast<int>(s.Int(5))});
      }
      sqlite3_reset(s.get());
      if (rc != SQLITE_DONE) return Status::Io(std::string("list partners: ") + sqlite3_errmsg(db));
      return out;
    });
  }

  Status RemovePartner(std::string_view identity) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "DELETE FROM partners WHERE identity=?");
    s.Bind(1, identity);
    if (Step(s) != SQLITE_DONE) return Io("remove partner");
    return sqlite3_changes(db_) > 0 ? Status::Ok() : Status::NotFound("no partner " + std::string(identity));
  }

  Status PutPeer(const Peer& p) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "INSERT OR REPLACE INTO peers(identity, url, token, push_collection, pull, public_key, last_contact, last_error) "
                "VALUES(?,?,?,?,?,?,?,?)");
    std::string pull = JoinLines(p.pull);
    s.Bind(1, p.identity);
    s.Bind(2, p.url);
    s.Bind(3, p.token);
    s.Bind(4, p.push_collection);
    s.Bind(5, pull);
    s.Bind(6, p.public_key);
    s.Bind(7, p.last_contact);
    s.Bind(8, p.last_error);
    if (Step(s) != SQLITE_DONE) return Io("store peer");
    return Status::Ok();
  }

  Result<Peer> GetPeer(std::string_view identity) override {
    // On a reader: every partner request asks whether its partner runs a node.
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<Peer> {
      Stmt& s = CachedOn(db, stmts,
                         "SELECT identity, url, token, push_collection, pull, public_key, last_contact, last_error "
                         "FROM peers WHERE identity=?");
      s.Reset();
      s.Bind(1, identity);
      int rc = sqlite3_step(s.get());
      if (rc == SQLITE_ROW) {
        Peer p{s.Text(0), s.Text(1), s.Text(2), s.Text(3), SplitLines(s.Text(4)), s.Text(5), s.Int(6), s.Text(7)};
        sqlite3_reset(s.get());
        return p;
      }
      sqlite3_reset(s.get());
      if (rc == SQLITE_DONE) return Status::NotFound("no federation settings for " + std::string(identity));
      return Status::Io(std::string("read peer: ") + sqlite3_errmsg(db));
    });
  }

  Result<std::vector<Peer>> ListPeers() override {
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<std::vector<Peer>> {
      Stmt& s = CachedOn(db, stmts,
                         "SELECT identity, url, token, push_collection, pull, public_key, last_contact, last_error "
                         "FROM peers ORDER BY identity");
      s.Reset();
      std::vector<Peer> out;
      int rc;
      while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        out.push_back({s.Text(0), s.Text(1), s.Text(2), s.Text(3), SplitLines(s.Text(4)), s.Text(5), s.Int(6), s.Text(7)});
      }
      sqlite3_reset(s.get());
      if (rc != SQLITE_DONE) return Status::Io(std::string("list peers: ") + sqlite3_errmsg(db));
      return out;
    });
  }

  Status TouchPeer(std::string_view identity, int64_t when, std::string_view error) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, error.empty() ? "UPDATE peers SET last_contact=?, last_error='' WHERE identity=?"
                              : "UPDATE peers SET last_error=?3 WHERE identity=?2");
    s.Bind(1, when);
    s.Bind(2, identity);
    if (!error.empty()) s.Bind(3, error);
    if (Step(s) != SQLITE_DONE) return Io("update peer");
    return Status::Ok();
  }

  Result<std::vector<OutboxItem>> DueOutbox(std::string_view partner, int64_t now, size_t limit,
                                            int64_t after_seq) override {
    // On a reader connection: the federator must not queue behind ingest commits.
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<std::vector<OutboxItem>> {
      // Strict order: nothing after an item that is still waiting for its retry time.
      Stmt& s = CachedOn(db, stmts,
                         "SELECT seq, partner, collection, object_id, version, enqueued, state, attempts, next_attempt, "
                         "last_error FROM outbox WHERE partner=? AND state='pending' AND seq>? ORDER BY seq LIMIT ?");
      s.Reset();
      s.Bind(1, partner);
      s.Bind(2, after_seq);
      s.Bind(3, static_cast<int64_t>(limit));
      std::vector<OutboxItem> out;
      int rc;
      while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        OutboxItem it{s.Int(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4), s.Int(5), s.Text(6), s.Int(7), s.Int(8), s.Text(9)};
        if (it.next_attempt > now) break;
        out.push_back(std::move(it));
      }
      sqlite3_reset(s.get());
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Status::Io(std::string("read outbox: ") + sqlite3_errmsg(db));
      return out;
    });
  }

  Status MarkOutbox(const std::vector<int64_t>& seqs, std::string_view state, std::string_view error,
                    int64_t retry_at) override {
    if (seqs.empty()) return Status::Ok();
    std::lock_guard lock(mu_);
    if (!BeginLocked()) return Io("begin");
    if (auto st = MarkOutboxLocked(seqs, state, error, retry_at); !st.ok()) {
      RollbackLocked();
      return st;
    }
    if (!Exec("COMMIT")) {
      RollbackLocked();
      return Io("commit outbox");
    }
    return Status::Ok();
  }

  // Inside a write transaction.
  Status MarkOutboxLocked(const std::vector<int64_t>& seqs, std::string_view state, std::string_view error,
                          int64_t retry_at) {
    Stmt& s = Cached(retry_at > 0
                         ? "UPDATE outbox SET attempts=attempts+1, next_attempt=?3, last_error=?2 WHERE seq=?1"
                         : "UPDATE outbox SET state=?3, last_error=?2 WHERE seq=?1");
    for (int64_t q : seqs) {
      s.Reset();
      s.Bind(1, q);
      s.Bind(2, error);
      if (retry_at > 0) s.Bind(3, retry_at);
      else s.Bind(3, state);
      if (Step(s) != SQLITE_DONE) return Io("update outbox");
    }
    return Status::Ok();
  }

  Status RecordPush(std::vector<audit::Entry> entries, std::vector<ReleaseRecord> releases,
                    const std::vector<int64_t>& sent, const std::vector<int64_t>& failed,
                    std::string_view error) override {
    if (entries.empty() && releases.empty() && sent.empty() && failed.empty()) return Status::Ok();
    std::lock_guard lock(mu_);
    if (auto st = ReadyLocked(); !st.ok()) return st;
    if (!BeginLocked()) return Io("begin push record");
    Status st = AppendAuditLocked(entries, releases);
    if (st.ok()) st = MarkOutboxLocked(sent, "sent", "", 0);
    if (st.ok()) st = MarkOutboxLocked(failed, "failed", error, 0);
    if (!st.ok()) {
      RollbackLocked();
      return st;
    }
    if (!CommitLocked()) {
      RollbackLocked();
      return Io("commit push record");
    }
    return Status::Ok();
  }

  Result<std::map<std::string, int64_t>> OutboxDepth(std::string_view partner, int64_t* oldest) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "SELECT state, count(*), min(enqueued) FROM outbox WHERE partner=? GROUP BY state");
    s.Bind(1, partner);
    std::map<std::string, int64_t> out;
    *oldest = 0;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      out[s.Text(0)] = s.Int(1);
      if (s.Text(0) == "pending") *oldest = s.Int(2);
    }
    if (rc != SQLITE_DONE) return Io("outbox depth");
    return out;
  }

  Result<int64_t> Requeue(std::string_view partner, int64_t since) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "UPDATE outbox SET state='pending', attempts=0, next_attempt=0, last_error='' "
                "WHERE partner=? AND state IN ('withheld','failed') AND enqueued>=?");
    s.Bind(1, partner);
    s.Bind(2, since);
    if (Step(s) != SQLITE_DONE) return Io("requeue");
    return static_cast<int64_t>(sqlite3_changes(db_));
  }

  Result<StoredObject> GetVersion(std::string_view collection, std::string_view id, std::string_view version,
                                  std::string* signatures) override {
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<StoredObject> {
      Stmt& s = CachedOn(db, stmts,
                         "SELECT o.id, o.type, o.modified, o.version, o.spec_version, o.date_added, o.json, o.source, "
                         "coalesce(g.json, '') FROM objects o LEFT JOIN signatures g "
                         "ON g.coll=o.coll AND g.id=o.id AND g.version=o.version "
                         "WHERE o.pk IN (SELECT l.pk FROM collections c JOIN id_lookup l ON l.coll=c.pk "
                         "WHERE (c.name=?1 OR c.taxii_id=?1) AND l.key=?4) AND o.id=?2 AND o.version=?3");
      s.Reset();
      s.Bind(1, collection);
      s.Bind(2, id);
      s.Bind(3, version);
      s.Bind(4, IdKey(id));
      int rc = sqlite3_step(s.get());
      if (rc == SQLITE_ROW) {
        StoredObject o{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4), s.Int(5), s.Text(6), s.Text(7)};
        if (signatures) *signatures = s.Text(8);
        sqlite3_reset(s.get());
        return o;
      }
      sqlite3_reset(s.get());
      if (rc == SQLITE_DONE) return Status::NotFound("no such version");
      return Status::Io(std::string("read version: ") + sqlite3_errmsg(db));
    });
  }

  Status PutPullCursor(std::string_view partner, std::string_view remote, int64_t added_after,
                       std::string_view next) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "INSERT OR REPLACE INTO pull_cursors(partner, remote, added_after, next) VALUES(?,?,?,?)");
    s.Bind(1, partner);
    s.Bind(2, remote);
    s.Bind(3, added_after);
    s.Bind(4, next);
    if (Step(s) != SQLITE_DONE) return Io("store pull position");
    return Status::Ok();
  }

  Result<std::pair<int64_t, std::string>> GetPullCursor(std::string_view partner, std::string_view remote) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "SELECT added_after, next FROM pull_cursors WHERE partner=? AND remote=?");
    s.Bind(1, partner);
    s.Bind(2, remote);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) return std::make_pair(s.Int(0), s.Text(1));
    if (rc == SQLITE_DONE) return std::make_pair(int64_t{0}, std::string());
    return Io("read pull position");
  }

  Status PutParty(const Party& p) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "INSERT OR REPLACE INTO parties(identity, name, url, token, collection, public_key, matches) VALUES(?,?,?,?,?,?,?)");
    std::string m = JoinLines(p.matches);
    s.Bind(1, p.identity);
    s.Bind(2, p.name);
    s.Bind(3, p.url);
    s.Bind(4, p.token);
    s.Bind(5, p.collection);
    s.Bind(6, p.public_key);
    s.Bind(7, m);
    if (Step(s) != SQLITE_DONE) return Io("store party");
    return Status::Ok();
  }

  Result<std::vector<Party>> ListParties() override {
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<std::vector<Party>> {
      Stmt& s = CachedOn(db, stmts, "SELECT identity, name, url, token, collection, public_key, matches FROM parties ORDER BY name");
      s.Reset();
      std::vector<Party> out;
      int rc;
      while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        out.push_back({s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4), s.Text(5), SplitLines(s.Text(6))});
      }
      sqlite3_reset(s.get());
      if (rc != SQLITE_DONE) return Status::Io(std::string("list parties: ") + sqlite3_errmsg(db));
      return out;
    });
  }

  static constexpr const char* kWarningColumns =
      "id, party, source_id, rule, state, events, bundle, instruction, created, attempts, next_attempt, delivered_at, "
      "ack_at, published_at, last_error, ack, cap";

  static Warning WarningRow(const Stmt& s) {
    Warning w;
    w.id = s.Text(0);
    w.party = s.Text(1);
    w.source_id = s.Text(2);
    w.rule = s.Text(3);
    w.state = s.Text(4);
    w.events = s.Text(5);
    w.bundle = s.Text(6);
    w.instruction = s.Text(7);
    w.created = s.Int(8);
    w.attempts = s.Int(9);
    w.next_attempt = s.Int(10);
    w.delivered_at = s.Int(11);
    w.ack_at = s.Int(12);
    w.published_at = s.Int(13);
    w.last_error = s.Text(14);
    w.ack = s.Text(15);
    w.cap = s.Text(16);
    return w;
  }

  Status PutWarning(const Warning& w) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, std::string("INSERT OR REPLACE INTO warnings(") + kWarningColumns + ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    s.Bind(1, w.id);
    s.Bind(2, w.party);
    s.Bind(3, w.source_id);
    s.Bind(4, w.rule);
    s.Bind(5, w.state);
    s.Bind(6, w.events);
    s.Bind(7, w.bundle);
    s.Bind(8, w.instruction);
    s.Bind(9, w.created);
    s.Bind(10, w.attempts);
    s.Bind(11, w.next_attempt);
    s.Bind(12, w.delivered_at);
    s.Bind(13, w.ack_at);
    s.Bind(14, w.published_at);
    s.Bind(15, w.last_error);
    s.Bind(16, w.ack);
    s.Bind(17, w.cap);
    if (Step(s) != SQLITE_DONE) return Io("store warning");
    return Status::Ok();
  }

  Result<Warning> GetWarning(std::string_view id) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, std::string("SELECT ") + kWarningColumns + " FROM warnings WHERE id=?");
    s.Bind(1, id);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) return WarningRow(s);
    if (rc == SQLITE_DONE) return Status::NotFound("no warning " + std::string(id));
    return Io("read warning");
  }

  Result<std::vector<Warning>> ListWarnings() override {
    std::lock_guard lock(mu_);
    Stmt s(db_, std::string("SELECT ") + kWarningColumns + " FROM warnings ORDER BY created, id");
    std::vector<Warning> out;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(WarningRow(s));
    if (rc != SQLITE_DONE) return Io("list warnings");
    return out;
  }

  Result<std::string> GetMeta(std::string_view key) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "SELECT value FROM meta WHERE key=?");
    s.Bind(1, key);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) return s.Text(0);
    if (rc == SQLITE_DONE) return std::string();
    return Io("read meta");
  }

  Status PutMeta(std::string_view key, std::string_view value) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?,?)");
    s.Bind(1, key);
    s.Bind(2, value);
    if (Step(s) != SQLITE_DONE) return Io("store meta");
    return Status::Ok();
  }

  Status PutGroup(const Group& g) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "INSERT OR REPLACE INTO trust_groups(name, description) VALUES(?,?)");
    s.Bind(1, g.name);
    s.Bind(2, g.description);
    if (Step(s) != SQLITE_DONE) return Io("store group");
    return Status::Ok();
  }

  Result<std::vector<Group>> ListGroups() override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "SELECT name, description FROM trust_groups ORDER BY name");
    std::vector<Group> out;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back({s.Text(0), s.Text(1)});
    if (rc != SQLITE_DONE) return Io("list groups");
    return out;
  }

  Status RemoveGroup(std::string_view name) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "DELETE FROM trust_groups WHERE name=?");
    s.Bind(1, name);
    if (Step(s) != SQLITE_DONE) return Io("remove group");
    return sqlite3_changes(db_) > 0 ? Status::Ok() : Status::NotFound("no trust group " + std::string(name));
  }

  Status PutAudience(const Audience& a) override {
    std::lock_guard lock(mu_);
    Stmt s(db_, "INSERT OR REPLACE INTO audiences(collection, partners, groups_, default_tlp) VALUES(?,?,?,?)");
    std::string pr = JoinLines(a.partners), gr = JoinLines(a.groups);
    s.Bind(1, a.collection);
    s.Bind(2, pr);
    s.Bind(3, gr);
    s.Bind(4, a.default_tlp);
    if (Step(s) != SQLITE_DONE) return Io("store audience");
    return Status::Ok();
  }

  Result<Audience> GetAudience(std::string_view collection) override {
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<Audience> {
      Stmt& s = CachedOn(db, stmts, "SELECT partners, groups_, default_tlp FROM audiences WHERE collection=?");
      s.Reset();
      s.Bind(1, collection);
      int rc = sqlite3_step(s.get());
      Audience a;
      a.collection = std::string(collection);
      if (rc == SQLITE_ROW) {
        a.partners = SplitLines(s.Text(0));
        a.groups = SplitLines(s.Text(1));
        a.default_tlp = s.Text(2);
      }
      sqlite3_reset(s.get());
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Status::Io(std::string("read audience: ") + sqlite3_errmsg(db));
      return a;
    });
  }

  Status AppendAudit(std::vector<audit::Entry> entries, std::vector<ReleaseRecord> releases, int64_t* first_seq) override {
    if (entries.empty() && releases.empty()) return Status::Ok();
    if (ChainOnly(releases)) {
      if (auto st = AppendChainOnly(entries); !st.ok()) return st;
      if (auto st = SyncChainOnly(entries.back().seq); !st.ok()) return st;
    } else {
      std::lock_guard lock(mu_);
      if (auto st = ReadyLocked(); !st.ok()) return st;
      if (auto st = AuditTransactionLocked(entries, releases, nullptr); !st.ok()) return st;
    }
    if (first_seq && !entries.empty()) *first_seq = entries.front().seq;
    return Status::Ok();
  }

  // Whether entries with `releases` go to the chain alone (AppendChainOnly): no release history
  // to record in the objects' file, and no intents left to reconcile first (that takes mu_).
  bool ChainOnly(const std::vector<ReleaseRecord>& releases) const { return releases.empty() && !reconcile_.load(); }

  // Entries that go to the chain alone: written under the chain's lock, not the store's writer;
  // durable once synced (SyncChainOnly).
  Status AppendChainOnly(std::vector<audit::Entry>& entries) {
    if (sync_failed_.load()) return Status::Io(sync_error_);
    auto lock = chain_->Acquire();
    if (!lock.ok()) return lock.status();
    return chain_->Append(*lock, entries);
  }

  // Makes the chain durable up to `head` for AppendAudit's entries alone, on the caller's thread
  // (the AuditWriter's: one thread fewer to wake per batch than handing it to the syncer).
  // Through a descriptor of its own, as the syncer (SyncLoop says why), and one sync at a time:
  // a failure the kernel reports to one sync on it is then recorded (sync_failed_) before the
  // next one starts, which refuses its entries instead of calling them durable. The syncer's
  // test hooks (sync_delay_ms, fail_sync) apply here too (SyncWals).
  Status SyncChainOnly(int64_t head) {
    std::lock_guard lock(chain_sync_mu_);
    if (chain_sync_fd_ == -2) chain_sync_fd_ = chain_->OpenSyncDescriptor();
    if (std::string failed = SyncWals(false, -1, chain_sync_fd_); !failed.empty()) return Status::Io(failed);
    NoteSynced(head);
    return Status::Ok();
  }

  // Everything up to chain entry `head` is durable: intents up to it may go (AppendAuditLocked).
  // An atomic, not mu_: the writer holds mu_ for a whole group, and the syncs would wait for it.
  void NoteSynced(int64_t head) {
    int64_t seen = synced_seq_.load();
    while (seen < head && !synced_seq_.compare_exchange_weak(seen, head)) {
    }
  }

  // One transaction appending `entries` and recording `releases` (AppendAudit, AppendAuditAsync);
  // `unsynced_head` as for CommitLocked.
  Status AuditTransactionLocked(std::vector<audit::Entry>& entries, const std::vector<ReleaseRecord>& releases,
                                int64_t* unsynced_head) {
    if (!BeginLocked()) return Io("begin audit");
    if (auto st = AppendAuditLocked(entries, releases); !st.ok()) {
      RollbackLocked();
      return st;
    }
    if (!CommitLocked(unsynced_head)) {
      RollbackLocked();
      return Io("commit audit");
    }
    // The seq and hashes the commit gave them (the caller reports the first seq).
    for (size_t k = 0; k < entries.size() && k < chained_.size(); ++k) entries[k] = chained_[k];
    return Status::Ok();
  }

  // Whether this connection's commits sync (synchronous=FULL) or leave it to the syncer
  // (NORMAL: early lock release). Run through sqlite3_exec, not kept prepared: this pragma
  // takes effect when it is compiled, so a prepared one is not reliably applied again.
  bool SyncCommitsLocked(bool sync) {
    return Exec(sync ? "PRAGMA main.synchronous=FULL" : "PRAGMA main.synchronous=NORMAL");
  }

  // Early lock release for the audit chain too (StartCommitter says why): the entries are
  // written without a sync; the syncer makes them durable, with the groups of Puts committed
  // meanwhile, and only then is `done` called. Entries without release history (a local
  // reader's pages) take only the chain's lock: an audited read no longer waits for a group of
  // Puts holding the store's writer. A partner's releases also record the release history in
  // the objects' file: that takes the writer.
  void AppendAuditAsync(std::vector<audit::Entry> entries, std::vector<ReleaseRecord> releases,
                        std::function<void(Status, int64_t)> done) override {
    bool stopping;
    {
      std::lock_guard s(sync_mu_);
      stopping = sync_stop_;
    }
    // No syncer (in-memory or temporary stores), or a store being closed: synced here.
    if (wal_main_ < 0 || !syncer_.joinable() || stopping) {
      return Store::AppendAuditAsync(std::move(entries), std::move(releases), std::move(done));
    }
    if (entries.empty() && releases.empty()) return done(Status::Ok(), 0);
    int64_t head = 0;
    Status st;
    if (ChainOnly(releases)) {
      st = AppendChainOnly(entries);
      if (st.ok()) head = entries.back().seq;
    } else {
      {
        std::lock_guard w(audit_wait_mu_);
        ++audit_waiting_;
      }
      std::unique_lock lock(mu_);
      {
        std::lock_guard w(audit_wait_mu_);
        --audit_waiting_;
      }
      audit_wait_cv_.notify_all();
      st = ReadyLocked();
      if (st.ok() && !SyncCommitsLocked(false)) st = Io("configure the audit commit");
      if (st.ok()) {
        st = AuditTransactionLocked(entries, releases, &head);
        SyncCommitsLocked(true);
      }
    }
    if (!st.ok()) return done(st, 0);
    const int64_t first = entries.empty() ? 0 : entries.front().seq;
    auto job = std::make_unique<PutJob>();
    job->result = PutResult{};
    job->callback = [done = std::move(done), first](Result<PutResult> r) {
      if (r.ok()) done(Status::Ok(), first);
      else done(r.status(), 0);
    };
    // The syncer takes what is queued until its queue is empty, stopping or not: only a call
    // racing with the store's destruction (never the AuditWriter, which the store outlives)
    // could come after it.
    std::lock_guard s(sync_mu_);
    to_sync_.push_back({{job.release()}, head, !releases.empty()});  // releases: main's tables too
    sync_cv_.notify_one();
  }

  // Inside a write transaction: queues `entries` for the chain (linked and written when the
  // transaction commits, CommitLocked) and records the release history. The entries also go
  // into audit_intents, in the transaction: should the chain's write be lost after the
  // objects' file committed (a crash, a failed write), the next open or write appends them
  // (ReconcileLocked). (Entries alone, with no release history, take AppendChainOnly.)
  Status AppendAuditLocked(const std::vector<audit::Entry>& entries, const std::vector<ReleaseRecord>& releases) {
    pending_.insert(pending_.end(), entries.begin(), entries.end());
    // The first form a recipient received stands (a recipient never gets both).
    Stmt& rel = Cached("INSERT OR IGNORE INTO releases(recipient, object_id, variant) VALUES(?,?,?)");
    for (const auto& r : releases) {
      rel.Reset();
      rel.Bind(1, r.recipient);
      rel.Bind(2, r.object_id);
      rel.Bind(3, int64_t{r.variant});
      if (Step(rel) != SQLITE_DONE) return Io("record release");
    }
    return Status::Ok();
  }

  static void BindEntry(Stmt& s, const audit::Entry& e) {
    s.Reset();
    s.Bind(1, e.seq);
    s.Bind(2, e.time_us);
    s.Bind(3, e.recipient);
    s.Bind(4, e.object_id);
    s.Bind(5, e.version);
    s.Bind(6, e.decision);
    s.Bind(7, e.reason);
    s.Bind(8, e.prev_hash);
    s.Bind(9, e.hash);
  }

  bool BeginLocked() {
    pending_.clear();
    recent_synced_ = false;
    merged_ = false;
    recent_removed_.clear();
    recent_deletes_ = 0;
    return Exec("BEGIN IMMEDIATE");
  }
  void RollbackLocked() {
    pending_.clear();
    Exec("ROLLBACK");
    if (recent_synced_) recent_.RolledBack();
    recent_synced_ = false;
    merged_ = false;
    recent_removed_.clear();
    recent_deletes_ = 0;
  }
  // After a COMMIT that succeeded: what the transaction did to the recent level of the id index.
  void CommittedLocked() {
    if (recent_synced_ || merged_ || !recent_removed_.empty()) {
      recent_.Committed(merged_ ? &merged_points_ : nullptr, recent_removed_, recent_deletes_);
    }
    recent_synced_ = false;
    merged_ = false;
    recent_removed_.clear();
    recent_deletes_ = 0;
  }

  // BEGIN IMMEDIATE for a transaction that stores or finds rows by id. The recent level is
  // brought up to date outside the write lock when this process has not read it yet, and every
  // 50 ms while another process holds the lock: a CLI command beside a busy server would
  // otherwise read, inside its transaction, every row stored while it started and waited (~0.3 s
  // at a million objects), and the server's groups would wait for that. Inside, only what was
  // stored since is read. (Uncontended, nothing is read twice.) Read errors are left to the
  // transaction's own read (SyncRecentIdsLocked).
  bool BeginWithIdsLocked() {
    const int64_t deadline = stix::NowMicros() + 5'000'000;  // SQLite's busy wait, as elsewhere
    bool warm = recent_.Covered() < 0;
    while (true) {
      if (warm && Exec("BEGIN")) {  // one read snapshot for the probe and the rows
        detail::RecentIds::View view;
        (void)recent_.Sync(*writer_probe_, &view);
        Exec("COMMIT");
      }
      warm = true;  // from here on: another process holds the lock
      sqlite3_busy_timeout(db_, 50);
      const bool ok = BeginLocked();
      const int code = sqlite3_errcode(db_);
      sqlite3_busy_timeout(db_, 5000);
      if (ok || code != SQLITE_BUSY || stix::NowMicros() > deadline) return ok;
    }
  }

  // In a write transaction that stores or finds rows by id: the recent level brought up to the
  // transaction's snapshot (rows other processes stored), its merge point, and the pk of the
  // next row: above every pk in the file and every pk ever deleted (meta 'pk_high'), so that a
  // pk never names two objects (recent_ids.h). From here until the transaction ends the
  // writer's rows go into recent_ as they are stored.
  bool SyncRecentIdsLocked() {
    if (recent_synced_) return true;
    detail::RecentIds::View& view = recent_view_;
    if (!recent_.Sync(*writer_probe_, &view)) return false;
    Stmt& high = Cached("SELECT coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key='pk_high'), 0)");
    high.Reset();
    if (sqlite3_step(high.get()) != SQLITE_ROW) return false;
    next_pk_ = std::max(view.max_pk, high.Int(0)) + 1;
    next_pk_given_ = next_pk_ != view.max_pk + 1;
    sqlite3_reset(high.get());
    recent_.BeginWrite();
    recent_synced_ = true;
    return true;
  }

  // COMMIT of a write transaction. Entries queued by AppendAuditLocked are linked to the
  // chain's head under its lock, written to audit_intents in the transaction, and written to
  // the chain once the COMMIT succeeded (the lock held throughout, so no other writer, thread
  // or process, links onto the same head). On success the entries are in the chain: synced
  // with the commit, or (`unsynced_head`: a group commit's early lock release) left to the
  // syncer, their head stored there; they count as durable (synced_seq_) only once it synced
  // them, and until then their intents stay. On failure of the chain's write after the
  // commit, the intents are reconciled before the next write.
  bool CommitLocked(int64_t* unsynced_head = nullptr) {
    chained_.clear();
    if (pending_.empty()) {  // nothing for the chain
      if (!Exec("COMMIT")) return false;
      CommittedLocked();
      return true;
    }
    auto lock = chain_->Acquire();
    if (!lock.ok()) return false;
    auto [seq, hash] = chain_->Head(*lock);
    detail::AuditChain::Link(pending_, seq, std::move(hash));
    // Intents of earlier transactions whose entries are durable in the chain are not needed.
    Stmt& old = Cached("DELETE FROM audit_intents WHERE seq<=?");
    old.Reset();
    old.Bind(1, std::max(durable_seq_, synced_seq_.load()));
    if (Step(old) != SQLITE_DONE) return false;
    Stmt& intent = Cached(
        "INSERT INTO audit_intents(seq,time_us,recipient,object_id,version,decision,reason,prev_hash,hash) "
        "VALUES(?,?,?,?,?,?,?,?,?)");
    for (const auto& e : pending_) {
      BindEntry(intent, e);
      if (Step(intent) != SQLITE_DONE) return false;
    }
    if (!Exec("COMMIT")) {
      reconcile_ = true;
      return false;
    }
    CommittedLocked();
    chained_ = std::move(pending_);
    pending_.clear();
    bool ok = chain_->Write(*lock, chained_).ok();
    if (ok && !unsynced_head) {
      auto synced = chain_->Sync();
      ok = synced.ok();
      if (!ok) FailSyncLocked(synced.status().message());
    }
    if (!ok) {
      reconcile_ = true;  // the intents are committed: the next write appends them
      return false;
    }
    (unsynced_head ? *unsynced_head : durable_seq_) = chained_.back().seq;
    return true;
  }

  // Before a write transaction that appends to the chain, with mu_ held.
  Status ReadyLocked() {
    if (sync_failed_.load()) return Status::Io(sync_error_);
    if (!reconcile_) return Status::Ok();
    return ReconcileLocked();
  }

  Result<std::vector<audit::Entry>> ReadAudit(int64_t after, size_t limit) override { return chain_->Read(after, limit); }

  Result<Token> GetToken(std::string_view id) override {
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) -> Result<Token> {
      Stmt& s = CachedOn(db, stmts, "SELECT id, principal, secret_hash, created FROM tokens WHERE id=?");
      s.Reset();
      s.Bind(1, id);
      int rc = sqlite3_step(s.get());
      if (rc == SQLITE_ROW) {
        Token t{s.Text(0), s.Text(1), s.Text(2), s.Int(3)};
        sqlite3_reset(s.get());
        return t;
      }
      sqlite3_reset(s.get());
      if (rc == SQLITE_DONE) return Status::NotFound("no token");
      return Status::Io(std::string("read token: ") + sqlite3_errmsg(db));
    });
  }

 private:
  Status Fail(const std::string& what, char* err) {
    std::string m = what + ": " + (err ? err : sqlite3_errmsg(db_));
    sqlite3_free(err);
    return Status::Io(m);
  }
  Status Io(const std::string& what) { return Status::Io(what + ": " + sqlite3_errmsg(db_)); }

  bool Exec(const char* sql) { return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK; }

  Stmt& Cached(const std::string& sql) {
    auto it = stmts_.find(sql);
    if (it == stmts_.end()) it = stmts_.emplace(sql, Stmt(db_, sql)).first;
    return it->second;
  }

  // sqlite3_step for writes, with the fault-injection seam.
  int Step(Stmt& s) {
    if (opt_.fail_write_step >= 0 && write_steps_++ == opt_.fail_write_step) return SQLITE_IOERR;
    return sqlite3_step(s.get());
  }

  Result<CollectionInfo> FindCollection(std::string_view name_or_id) {
    // object_count is left 0 here (counting is a scan); ListCollections fills it.
    Stmt s(db_, "SELECT name, taxii_id, title, description FROM collections c WHERE name=?1 OR taxii_id=?1");
    if (!s) return Io("find collection");
    s.Bind(1, name_or_id);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) return CollectionInfo{s.Text(0), s.Text(1), s.Text(2), s.Text(3), 0};
    if (rc == SQLITE_DONE) return Status::NotFound("no collection named \"" + std::string(name_or_id) + "\"");
    return Io("find collection");
  }

  std::string CollectionName(int64_t pk) {
    Stmt& s = Cached("SELECT name FROM collections WHERE pk=?");
    s.Reset();
    s.Bind(1, pk);
    std::string name = sqlite3_step(s.get()) == SQLITE_ROW ? s.Text(0) : std::string();
    sqlite3_reset(s.get());
    return name;
  }

  Status CollectionPk(std::string_view name_or_id, int64_t* pk) { return CollectionPkOn(db_, stmts_, name_or_id, pk); }

  // The collection's key, by name or TAXII id, on connection `db` (the writer's or a reader's).
  static Status CollectionPkOn(sqlite3* db, std::unordered_map<std::string, Stmt>& stmts, std::string_view name_or_id,
                               int64_t* pk) {
    Stmt& s = CachedOn(db, stmts, "SELECT pk FROM collections WHERE name=?1 OR taxii_id=?1");
    s.Reset();
    s.Bind(1, name_or_id);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
      *pk = s.Int(0);
      sqlite3_reset(s.get());
      return Status::Ok();
    }
    sqlite3_reset(s.get());
    if (rc == SQLITE_DONE) return Status::NotFound("no collection named \"" + std::string(name_or_id) + "\"");
    return Status::Io(std::string("find collection: ") + sqlite3_errmsg(db));
  }

  Result<PutResult> PutLocked(int64_t coll, std::span<const stix::Object> objects, std::string_view source,
                              const std::vector<std::string>& derived, const std::vector<std::string>& views) {
    PutResult r;
    r.outcomes.reserve(objects.size());
    r.date_added.reserve(objects.size());
    Stmt& max_added = Cached("SELECT max(date_added) FROM objects WHERE coll=?");
    max_added.Reset();
    max_added.Bind(1, coll);
    if (sqlite3_step(max_added.get()) != SQLITE_ROW) return Io("read date_added");
    int64_t last = max_added.IsNull(0) ? 0 : max_added.Int(0);
    sqlite3_reset(max_added.get());
    int64_t now = stix::NowMicros();

    // First arrival wins: the versions of the id already stored (found through id_lookup)
    // decide: the same version stored before makes a duplicate (same JSON) or a conflict, and
    // nothing is inserted. This check, inside the writing transaction, is what keeps
    // (coll, id, version) unique (no unique index on it since schema 13).
    // The row's pk is given (SyncRecentIdsLocked: never one used before), and its id's and
    // derived id's keys go into the recent level of the id index, in memory.
    if (!SyncRecentIdsLocked()) return Io("read the recent ids");
    // SQLite gives max(pk) + 1, next_pk_ unless the top rows were deleted: then the first row
    // gets its pk given (the rows after it follow on).
    Stmt& insert = Cached(
        "INSERT INTO objects(coll,id,version,type,modified,spec_version,date_added,revoked,json,source,derived_id,policy_json,"
        "latest,id_key,pk) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    // The last version carries the `latest` flag: a new last version takes it from the previous
    // one. The versions of an id: its rows' pks from each level (a plain search of id_index,
    // the recent level in memory), then the rows.
    Stmt& in_main = Cached("SELECT pk FROM id_index WHERE coll=? AND key=?");
    Stmt& version_of = Cached("SELECT version, latest FROM objects WHERE pk=? AND id=?");
    Stmt& unflag = Cached("UPDATE objects SET latest=0 WHERE pk=?");
    Stmt& existing = Cached("SELECT json FROM objects WHERE pk=?");
    Stmt& marking = Cached("INSERT OR IGNORE INTO markings(id) VALUES(?)");

    std::string stored_version;
    std::vector<int64_t> flagged;  // pks of the id's versions flagged `latest` (one, but a stray one is cleared too)
    std::vector<int64_t> pks;
    for (size_t k = 0; k < objects.size(); ++k) {
      const stix::Object& o = objects[k];
      const int64_t key = IdKey(o.id);
      bool had = false;
      std::string newest;
      int64_t same = -1;  // the pk of this very version, if stored
      flagged.clear();
      pks.clear();
      // The merged level is searched only if its filter may hold the key (a new id, the
      // common case, is not there).
      if (!filter_valid_ || filter_.MayContain(coll, key)) {
        in_main.Reset();
        in_main.Bind(1, coll);
        in_main.Bind(2, key);
        int lrc;
        while ((lrc = sqlite3_step(in_main.get())) == SQLITE_ROW) pks.push_back(in_main.Int(0));
        sqlite3_reset(in_main.get());
        if (lrc != SQLITE_DONE) return Io("read stored versions");
      }
      recent_.Find(coll, key, recent_view_, &pks);
      for (int64_t pk : pks) {  // rows with the key: this id's, or another's with the same key
        version_of.Reset();
        version_of.Bind(1, pk);
        version_of.Bind(2, o.id);
        int vrc = sqlite3_step(version_of.get());
        if (vrc == SQLITE_ROW) {
          version_of.TextInto(0, stored_version);
          if (!had || stored_version > newest) newest = stored_version;
          had = true;
          if (stored_version == o.version) same = pk;
          if (version_of.Int(1) != 0) flagged.push_back(pk);
        }
        sqlite3_reset(version_of.get());
        if (vrc != SQLITE_ROW && vrc != SQLITE_DONE) return Io("read stored versions");
      }
      if (same >= 0) {
        existing.Reset();
        existing.Bind(1, same);
        if (sqlite3_step(existing.get()) != SQLITE_ROW) return Io("read existing version");
        std::string stored = existing.Text(0);
        sqlite3_reset(existing.get());
        bool equal = stored == o.json || stix::JsonEqual(stored, o.json);
        r.outcomes.push_back(equal ? PutOutcome::kDuplicate : PutOutcome::kConflict);
        r.date_added.push_back(0);
        (equal ? r.duplicates : r.conflicts)++;
        continue;
      }
      const bool latest = !had || o.version > newest;
      int64_t added = std::max(now, last + 1);
      insert.Reset();
      insert.Bind(1, coll);
      insert.Bind(2, o.id);
      insert.Bind(3, o.version);
      insert.Bind(4, o.type);
      insert.Bind(5, o.modified);
      insert.Bind(6, o.spec_version);
      insert.Bind(7, added);
      insert.Bind(8, int64_t{o.revoked});
      insert.Bind(9, o.json);
      insert.Bind(10, source);
      insert.Bind(11, derived[k]);
      insert.Bind(12, views[k]);
      insert.Bind(13, int64_t{latest});
      insert.Bind(14, key);
      const int64_t pk = next_pk_;
      if (next_pk_given_) insert.Bind(15, pk);
      else insert.BindNull(15);
      if (Step(insert) != SQLITE_DONE) return Io("insert object");
      if (sqlite3_last_insert_rowid(db_) != pk) return Io("insert object: unexpected pk");
      ++next_pk_;
      next_pk_given_ = false;
      recent_.Add(coll, key, pk);
      if (!derived[k].empty()) recent_.Add(coll, DerivedKey(derived[k]), pk);
      last = added;
      if (latest) {
        // Flag cleared on the previous last version (the new row keeps its own).
        for (int64_t old : flagged) {
          unflag.Reset();
          unflag.Bind(1, old);
          if (Step(unflag) != SQLITE_DONE) return Io("flag last version");
        }
      }
      if (o.type == "marking-definition") {
        marking.Reset();
        marking.Bind(1, o.id);
        if (Step(marking) != SQLITE_DONE) return Io("index marking");
      }
      r.outcomes.push_back(PutOutcome::kStored);
      r.date_added.push_back(added);
      ++r.stored;
    }
    return r;
  }

  static void AppendIn(std::string& sql, std::string_view column, size_t n) {
    sql += " AND ";
    sql += column;
    sql += " IN (";
    for (size_t i = 0; i < n; ++i) sql += i ? ",?" : "?";
    sql += ")";
  }

  // The reader a ReadSnapshot() holds on this thread (owner: the store it belongs to).
  struct Pinned {
    const SqliteStore* owner = nullptr;
    Reader* reader = nullptr;
  };
  static Pinned& ThisThread() {
    thread_local Pinned pinned;
    return pinned;
  }

  class Snapshot final : public ReadScope {
   public:
    // BEGIN and COMMIT are prepared once per reader (sqlite3_exec parsed them on every request).
    Snapshot(const SqliteStore* owner, Reader& r, std::unique_lock<std::mutex> lock) : r_(r), lock_(std::move(lock)) {
      ok_ = Run("BEGIN");
      if (ok_) ThisThread() = {owner, &r_};
      else lock_.unlock();  // reads go the usual way (and must not find this reader locked by us)
    }
    ~Snapshot() override {
      if (!ok_) return;
      ThisThread() = {};
      if (!Run("COMMIT")) sqlite3_exec(r_.db, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    bool Run(const char* sql) {
      Stmt& s = CachedOn(r_.db, r_.stmts, sql);
      if (!s) return false;
      int rc = sqlite3_step(s.get());
      sqlite3_reset(s.get());
      return rc == SQLITE_DONE;
    }

   private:
    Reader& r_;
    std::unique_lock<std::mutex> lock_;
    bool ok_ = false;
  };

 public:
  // The objects' database state, read from the WAL-index header (WalHeaderToken) or, where
  // there is none mapped, from a connection of its own that only asks SQLite whether the file
  // changed: PRAGMA data_version moves with every commit of any other connection, in any
  // process. That query is a read transaction (two fcntl locks) under one mutex every GET of a
  // cached route took: ~6% of the HTTP threads' time on random pages (perf, eleventh session).
  std::string StateToken() override {
    if (std::string t = WalHeaderToken(); !t.empty()) return t;
    std::lock_guard lock(state_mu_);
    if (!state_db_) return {};
    if (!state_stmt_) state_stmt_ = Stmt(state_db_, "PRAGMA main.data_version");
    if (!state_stmt_) return {};
    int rc = sqlite3_step(state_stmt_.get());
    int64_t v = rc == SQLITE_ROW ? state_stmt_.Int(0) : -1;
    sqlite3_reset(state_stmt_.get());
    return v < 0 ? std::string() : std::to_string(v);
  }

  // The token of the last commit to the objects' WAL, from its wal-index header in the "-shm"
  // file as SQLite maps it (https://sqlite.org/walformat.html, 2.1 "The WAL-Index Header"; a
  // stable format: SQLite versions in different processes share it). The header is two copies
  // of 48 bytes; a commit (by any connection, in any process) increments iChange and rewrites
  // them, the second copy first; a reader takes them when both agree, as SQLite's own readers
  // do (walIndexTryHdr). A WAL restart after a checkpoint changes the salts: a new token for
  // the same content, which only costs the response cache a miss. "" while a writer is midway
  // (after a few tries) or with nothing mapped: StateToken asks SQLite instead.
  std::string WalHeaderToken() const {
    if (!shm_) return {};
    for (int attempt = 0; attempt < 8; ++attempt) {
      uint32_t first[12], second[12];  // the header's 32-bit words, in the machine's order
      for (size_t k = 0; k < 12; ++k) first[k] = shm_[k];
      std::atomic_thread_fence(std::memory_order_acquire);
      for (size_t k = 0; k < 12; ++k) second[k] = shm_[12 + k];
      const bool init = reinterpret_cast<const unsigned char*>(first)[12] == 1;  // isInit
      if (std::memcmp(first, second, sizeof first) != 0 || !init) continue;
      std::string text = "w";  // iChange, mxFrame, the two salts, in hex (every GET: no printf)
      for (int k : {2, 4, 8, 9}) {
        char hex[9];
        text.append(hex, std::to_chars(hex, hex + sizeof hex, first[k], 16).ptr).push_back('.');
      }
      return text;
    }
    return {};
  }

  // The objects' WAL is checkpointed by a thread of its own, not inside the commit that
  // crosses the threshold: that is the group commit of POSTs, the copy took ~14% of the
  // committer's time (perf), and POST gained ~10% without it (five alternating A/B pairs,
  // docs/benchmarks.md, sixth session). (So was the audit log's, while the chain's entries were
  // rows of it: its responses waited for the copy of ~16 MB. Its file now holds only the
  // checkpoints, on a connection of its own with SQLite's own checkpoints.)
  void StartCheckpointer() {
    if (path_.empty() || path_ == ":memory:") return;
    if (sqlite3_open_v2(path_.c_str(), &ckpt_db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
      sqlite3_close_v2(ckpt_db_);
      ckpt_db_ = nullptr;
      return;  // SQLite's own checkpoints stay on
    }
    sqlite3_busy_timeout(ckpt_db_, 5000);
    // A connection that has read nothing does not know the file is in WAL mode yet: its
    // checkpoints would do nothing (attaching the log used to read the schema first).
    sqlite3_exec(ckpt_db_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
    sqlite3_wal_hook(
        db_,
        [](void* self, sqlite3*, const char* schema, int pages) {
          auto* me = static_cast<SqliteStore*>(self);
          if (pages < 1000) return SQLITE_OK;  // SQLite's default threshold
          std::lock_guard lock(me->ckpt_mu_);
          if (std::string_view(schema) != "main") return SQLITE_OK;
          me->ckpt_main_due_ = true;
          me->ckpt_cv_.notify_one();
          return SQLITE_OK;
        },
        this);
    checkpointer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "tl-checkpoint");
      std::unique_lock lock(ckpt_mu_);
      while (true) {
        ckpt_cv_.wait(lock, [&] { return ckpt_stop_ || ckpt_main_due_; });
        if (ckpt_stop_) return;
        ckpt_main_due_ = false;
        lock.unlock();
        sqlite3_wal_checkpoint_v2(ckpt_db_, "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        lock.lock();
      }
    });
  }

  void StopCheckpointer() {
    if (checkpointer_.joinable()) {
      {
        std::lock_guard lock(ckpt_mu_);
        ckpt_stop_ = true;
      }
      ckpt_cv_.notify_all();
      checkpointer_.join();
    }
    sqlite3_close_v2(ckpt_db_);
    ckpt_db_ = nullptr;
  }

  // The log's SQLite file on a connection of its own, the only one after Init (checkpoints:
  // OnLog). In-memory and temporary stores get a private log of their own kind.
  Status OpenLogConnection() {
    if (sqlite3_open_v2(AuditLogPath(path_).c_str(), &log_db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      return Status::Io("open the audit log " + AuditLogPath(path_) + ": " + sqlite3_errmsg(log_db_));
    }
    sqlite3_busy_timeout(log_db_, 5000);
    char* err = nullptr;
    std::string schema = std::string(kLogSchema);
    for (size_t at; (at = schema.find("log.")) != std::string::npos;) schema.erase(at, 4);
    if (sqlite3_exec(log_db_, ("PRAGMA synchronous=FULL;" + schema).c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      return Fail("open the audit log", err);
    }
    return Status::Ok();
  }

  void OpenStateConnection(const std::string& path) {
    if (path.empty() || path == ":memory:") return;
    if (sqlite3_open_v2(path.c_str(), &state_db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
      sqlite3_close_v2(state_db_);
      state_db_ = nullptr;
      return;
    }
    sqlite3_busy_timeout(state_db_, 5000);
    sqlite3_exec(state_db_, "PRAGMA query_only=1", nullptr, nullptr, nullptr);
    if (!opt_.state_by_query) MapWalIndexHeader();
  }

  // The objects' wal-index header for WalHeaderToken: the state connection's own mapping of
  // the "-shm" file's first region, from SQLite's VFS (xShmMap of its file, which returns the
  // region the connection mapped on its first read). Not a mapping of our own: opening and
  // closing another descriptor of that file would drop every POSIX lock this process holds on
  // it (fcntl locks are per process and file), and another process would then take the
  // wal-index for one nobody uses and rebuild it under our readers. The region lives until the
  // connection closes (~SqliteStore forgets it first). None (no WAL, another VFS): nothing mapped.
  void MapWalIndexHeader() {
    // A first read: the connection learns the file is in WAL mode and maps the wal-index, whose
    // header is then initialised.
    if (sqlite3_exec(state_db_, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr) != SQLITE_OK) return;
    sqlite3_file* file = nullptr;
    if (sqlite3_file_control(state_db_, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK || !file ||
        !file->pMethods || file->pMethods->iVersion < 2 || !file->pMethods->xShmMap) {
      return;
    }
    void volatile* region = nullptr;
    constexpr int kRegion = 32768;  // the wal-index's region size (WALINDEX_PGSZ)
    if (file->pMethods->xShmMap(file, 0, kRegion, 0, &region) != SQLITE_OK || !region) return;
    shm_ = static_cast<const volatile uint32_t*>(region);
    if (WalHeaderToken().empty()) shm_ = nullptr;  // not a header we know
  }

  std::string MetricsText() override {
    auto n = [](const std::atomic<uint64_t>& a) { return std::to_string(a.load(std::memory_order_relaxed)); };
    return "# HELP tearline_store_pages_total Pages (GET objects, manifest) by how the store read them.\n"
           "# TYPE tearline_store_pages_total counter\n"
           "tearline_store_pages_total{source=\"index\"} " + n(pages_indexed_) + "\n"
           "tearline_store_pages_total{source=\"sql\"} " + n(pages_sql_) + "\n"
           "# HELP tearline_store_page_index_builds_total Collection page indexes built whole (first use, after a delete).\n"
           "# TYPE tearline_store_page_index_builds_total counter\n"
           "tearline_store_page_index_builds_total " + n(index_builds_) + "\n"
           "# HELP tearline_store_row_cache_lookups_total Rows of indexed pages, found in the row cache or read.\n"
           "# TYPE tearline_store_row_cache_lookups_total counter\n"
           "tearline_store_row_cache_lookups_total{result=\"hit\"} " + n(row_hits_) + "\n"
           "tearline_store_row_cache_lookups_total{result=\"miss\"} " + n(row_misses_) + "\n"
           "# HELP tearline_store_row_cache_bytes Bytes of rows held by the row cache.\n"
           "# TYPE tearline_store_row_cache_bytes gauge\n"
           "tearline_store_row_cache_bytes " + std::to_string(rows_.Bytes()) + "\n"
           "# HELP tearline_store_row_cache_budget_bytes The row cache's budget ([limits] object_cache_mb).\n"
           "# TYPE tearline_store_row_cache_budget_bytes gauge\n"
           "tearline_store_row_cache_budget_bytes " + std::to_string(rows_.budget()) + "\n"
           "# HELP tearline_store_row_cache_slots Slots of the row cache (grow with the rows it keeps).\n"
           "# TYPE tearline_store_row_cache_slots gauge\n"
           "tearline_store_row_cache_slots " + std::to_string(rows_.Slots()) + "\n"
           "# HELP tearline_store_release_history_entries Partners' release history rows kept in memory for their pages.\n"
           "# TYPE tearline_store_release_history_entries gauge\n"
           "tearline_store_release_history_entries " + std::to_string(history_.Entries()) + "\n"
           "# HELP tearline_store_wal_syncs_total Syncs of the write-ahead logs and the audit chain after commits (one may cover several).\n"
           "# TYPE tearline_store_wal_syncs_total counter\n"
           "tearline_store_wal_syncs_total " + n(wal_syncs_) + "\n"
           "# HELP tearline_store_id_index_merges_total Merges of the id index's new level into the merged one by this process.\n"
           "# TYPE tearline_store_id_index_merges_total counter\n"
           "tearline_store_id_index_merges_total " + n(id_merges_) + "\n"
           "# HELP tearline_store_id_index_merge_seconds_total Time spent merging (inside group commits).\n"
           "# TYPE tearline_store_id_index_merge_seconds_total counter\n"
           "tearline_store_id_index_merge_seconds_total " +
           std::to_string(static_cast<double>(id_merge_us_.load(std::memory_order_relaxed)) / 1e6) + "\n"
           "# HELP tearline_store_id_index_rows Rows of the id index's levels as the writer last counted them (before a merge).\n"
           "# TYPE tearline_store_id_index_rows gauge\n"
           "tearline_store_id_index_rows{level=\"new\"} " + std::to_string(recent_.Above()) + "\n"
           "tearline_store_id_index_rows{level=\"merged\"} " + std::to_string(id_rows_main_seen_.load(std::memory_order_relaxed)) + "\n";
  }

  std::unique_ptr<ReadScope> ReadSnapshot() override {
    if (readers_.empty() || ThisThread().owner) return nullptr;
    size_t n = readers_.size(), start = next_reader_++ % n;
    for (size_t i = 0; i < n; ++i) {
      Reader& r = *readers_[(start + i) % n];
      std::unique_lock l(r.mu, std::try_to_lock);
      if (l.owns_lock()) return std::make_unique<Snapshot>(this, r, std::move(l));
    }
    Reader& r = *readers_[start];
    return std::make_unique<Snapshot>(this, r, std::unique_lock(r.mu));
  }

 private:
  // Runs `f(db, stmts)` on this thread's snapshot reader, else on a free reader connection
  // (or the writer's when there are none).
  template <class F>
  std::invoke_result_t<F, sqlite3*, std::unordered_map<std::string, Stmt>&> WithReader(F f) {
    if (const Pinned& p = ThisThread(); p.owner == this) return f(p.reader->db, p.reader->stmts);
    if (readers_.empty()) {
      std::lock_guard lock(mu_);
      return f(db_, stmts_);
    }
    size_t n = readers_.size(), start = next_reader_++ % n;
    for (size_t i = 0; i < n; ++i) {
      Reader& r = *readers_[(start + i) % n];
      std::unique_lock l(r.mu, std::try_to_lock);
      if (l.owns_lock()) return f(r.db, r.stmts);
    }
    Reader& r = *readers_[start];
    std::lock_guard l(r.mu);
    return f(r.db, r.stmts);
  }

  Result<Page> Select(const store::Query& q, bool with_json) {
    return WithReader([&](sqlite3* db, std::unordered_map<std::string, Stmt>& stmts) { return SelectOn(db, stmts, q, with_json); });
  }

  Result<Page> SelectOn(sqlite3* db, std::unordered_map<std::string, Stmt>& stmts, const store::Query& q, bool with_json) {
    auto io = [&](const std::string& what) { return Status::Io(what + ": " + sqlite3_errmsg(db)); };
    if (q.limit == 0) return Status::Invalid("limit must be at least 1");
    int64_t coll;
    if (auto st = CollectionPkOn(db, stmts, q.collection, &coll); !st.ok()) return st;
    const uint64_t fp = QueryFingerprint(q);
    int64_t after = q.added_after.value_or(-1);
    if (!q.cursor.empty()) {
      int64_t pos;
      uint64_t cfp;
      if (!DecodeCursor(q.cursor, &pos, &cfp)) return Status::Invalid("the next cursor is malformed");
      if (cfp != fp) return Status::Invalid("the next cursor belongs to a different query");
      after = std::max(after, pos);
    }
    Page page;
    page.objects.reserve(std::min<size_t>(q.limit + 1, 1024));
    if (!q.spec_versions.empty() &&
        std::find(q.spec_versions.begin(), q.spec_versions.end(), "2.1") == q.spec_versions.end()) {
      return page;  // every stored object is STIX 2.1
    }
    if (auto fast = FastSelect(db, stmts, coll, q, after, with_json, fp)) {
      pages_indexed_.fetch_add(1, std::memory_order_relaxed);
      return std::move(*fast);
    }
    pages_sql_.fetch_add(1, std::memory_order_relaxed);
    const bool held = !q.held_for.empty();
    // The recipient goes in as a quoted literal: a parameter in the select list would shift the
    // numbering of the positional parameters after it.
    std::string who;
    for (char c : q.held_for) who += c == '\'' ? std::string("''") : std::string(1, c);
    // match[id] also finds objects by their derived (tear-line variant) id: those ids are
    // translated to original ids first, through their DerivedKey in id_lookup (whole ids
    // compared here: keys are hashes).
    std::vector<std::string> ids = q.ids;
    if (!q.ids.empty()) {
      Stmt& d = CachedOn(db, stmts, detail::DerivedLookupSql(q.ids.size()));
      if (!d) return io("prepare query");
      d.Reset();
      d.Bind(1, coll);
      const int n = static_cast<int>(q.ids.size());
      for (int k = 0; k < n; ++k) d.Bind(k + 2, DerivedKey(q.ids[k]));
      int drc;
      std::string derived;
      while ((drc = sqlite3_step(d.get())) == SQLITE_ROW) {
        d.TextInto(1, derived);
        if (std::find(q.ids.begin(), q.ids.end(), derived) == q.ids.end()) continue;  // same key, other id
        std::string found = d.Text(0);  // one row per version: keep each id once
        if (std::find(ids.begin(), ids.end(), found) == ids.end()) ids.push_back(std::move(found));
      }
      sqlite3_reset(d.get());
      if (drc != SQLITE_DONE) return io("query derived ids");
    }
    std::string sql = std::string("SELECT id, type, modified, version, spec_version, date_added, source") +
                      (with_json ? ", json" : "") +
                                        // (pages carry the whole JSON: the Releaser extracts facts from it once per version)
                      (held ? ", coalesce(r.variant, -1)" : "") + " FROM ";
    if (!ids.empty()) {
      // With match[id] the rows of the ids drive the query (CROSS JOIN fixes the order: the
      // planner would otherwise walk the collection in date order for the ORDER BY;
      // Store.IdLookupsNeverScanTheObjects). Their parameters come first.
      sql += "(SELECT pk AS row FROM id_lookup WHERE coll=?";
      AppendIn(sql, "key", ids.size());
      sql += ") k CROSS JOIN objects o ON o.pk=k.row";
    } else {
      sql += "objects o";
    }
    // The release history joins on its primary key (a LEFT JOIN keeps objects the outer loop).
    if (held) sql += " LEFT JOIN releases r ON r.recipient='" + who + "' AND r.object_id=o.id";
    sql += " WHERE coll=? AND date_added>?";
    if (!ids.empty()) AppendIn(sql, "id", ids.size());
    if (!q.types.empty()) AppendIn(sql, "type", q.types.size());
    const VersionFilter& vf = q.versions.empty() ? VersionFilter::Last() : q.versions;
    if (!vf.all) {
      std::string cond;
      // first is computed per id through id_lookup.
      if (vf.first) {
        cond += "version=(SELECT min(version) FROM objects x WHERE x.pk IN "
                "(SELECT pk FROM id_lookup WHERE coll=o.coll AND key=o.id_key) AND x.id=o.id)";
      }
      if (vf.last) {
        cond += std::string(cond.empty() ? "" : " OR ") +
                "latest=1";
      }
      if (!vf.versions.empty()) {
        cond += std::string(cond.empty() ? "" : " OR ") + "version IN (";
        for (size_t i = 0; i < vf.versions.size(); ++i) cond += i ? ",?" : "?";
        cond += ")";
      }
      sql += " AND (" + cond + ")";
    }
    sql += " ORDER BY date_added LIMIT ?";
    Stmt& s = CachedOn(db, stmts, sql);
    if (!s) return io("prepare query");
    s.Reset();
    int i = 1;
    if (!ids.empty()) s.Bind(i++, coll);
    for (const auto& v : ids) s.Bind(i++, IdKey(v));
    s.Bind(i++, coll);
    s.Bind(i++, after);
    for (const auto& v : ids) s.Bind(i++, v);
    for (const auto& v : q.types) s.Bind(i++, v);
    if (!vf.all) {
      for (const auto& v : vf.versions) s.Bind(i++, v);
    }
    s.Bind(i++, static_cast<int64_t>(q.limit) + 1);
    auto history = history_.For(held ? q.held_for : std::string_view());  // the rows found are kept
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      if (page.objects.size() == q.limit) {
        page.more = true;
        break;
      }
      // Built in place from SQLite's column buffers: one copy of each value, no temporaries.
      StoredObject& o = page.objects.emplace_back();
      s.TextInto(0, o.id);
      s.TextInto(1, o.type);
      s.TextInto(2, o.modified);
      s.TextInto(3, o.version);
      s.TextInto(4, o.spec_version);
      o.date_added = s.Int(5);
      s.TextInto(6, o.source);
      if (with_json) s.TextInto(7, o.json);
      if (held) {
        o.held = static_cast<int>(s.Int(with_json ? 8 : 7));
        if (o.held >= 0) history.Note(o.Id(), o.held);
      }
    }
    sqlite3_reset(s.get());
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return io("query");
    if (page.more) page.next = EncodeCursor(page.objects.back().date_added, fp);
    return page;
  }

  // --- The in-memory page index (page_index.h) ---------------------------------------------

  struct Indexed {
    std::shared_mutex mu;  // pages read `index` under it shared; an update changes it alone
    std::mutex update;     // one update at a time (others meanwhile read through SQL)
    detail::CollectionIndex index;
  };

  Indexed& IndexOf(int64_t coll) {
    std::lock_guard lock(indexes_mu_);
    auto& x = indexes_[coll];
    if (!x) x = std::make_unique<Indexed>();
    return *x;
  }

  // The collection's state as the read transaction on `db` sees it.
  static Result<detail::CollectionState> StateOn(sqlite3* db, std::unordered_map<std::string, Stmt>& stmts, int64_t coll) {
    Stmt& s = CachedOn(db, stmts,
                       "SELECT coalesce((SELECT max(date_added) FROM objects WHERE coll=?1), 0), "
                       "coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key='deletes'), 0)");
    s.Reset();
    s.Bind(1, coll);
    if (sqlite3_step(s.get()) != SQLITE_ROW) {
      sqlite3_reset(s.get());
      return Status::Io(std::string("read collection state: ") + sqlite3_errmsg(db));
    }
    detail::CollectionState st{s.Int(1), s.Int(0)};
    sqlite3_reset(s.get());
    return st;
  }

  // Brings `x` to `now` (the state of the read transaction on `db`) when `now` is newer:
  // the whole collection again after a delete, else only the versions added since, and the
  // `latest` flags those took from older versions of the same ids. False when `x` cannot
  // serve `now` (an older transaction, another update running, or a read failed).
  bool UpdateIndex(sqlite3* db, std::unordered_map<std::string, Stmt>& stmts, int64_t coll, Indexed& x,
                   const detail::CollectionState& now) {
    std::unique_lock update(x.update, std::try_to_lock);
    if (!update.owns_lock()) return false;
    detail::CollectionState had;
    {
      std::shared_lock read(x.mu);
      had = x.index.state;
    }
    if (had == now) return true;
    if (now.deletes < had.deletes || (now.deletes == had.deletes && now.max_added < had.max_added)) return false;
    if (now.deletes != had.deletes) {
      index_builds_.fetch_add(1, std::memory_order_relaxed);
      // Built from scratch, beside the index in use; swapped in at the end.
      detail::CollectionIndex fresh;
      Stmt& all = CachedOn(db, stmts, "SELECT date_added, pk, type, latest, id_key FROM objects WHERE coll=? ORDER BY date_added");
      all.Reset();
      all.Bind(1, coll);
      int rc;
      std::string type;
      while ((rc = sqlite3_step(all.get())) == SQLITE_ROW) {
        all.TextInto(2, type);
        const bool latest = all.Int(3) != 0;
        fresh.Append(all.Int(0), all.Int(1), type, latest);
        if (latest) fresh.NoteLatest(all.Int(4));
      }
      sqlite3_reset(all.get());
      if (rc != SQLITE_DONE) return false;
      fresh.state = now;
      std::unique_lock write(x.mu);
      std::swap(x.index, fresh);
      return true;
    }
    // Only additions: read them, and learn which older versions they made not the latest. An
    // id has one latest version; a version arriving as the latest supersedes the one
    // `latest_at` knows for its id (flags are read as they are now: of several versions of an
    // id arriving together, only the last one is the latest, and one older than the id's
    // latest arrives as not the latest and changes nothing). Ids whose key is shared, or whose
    // key leads to another id, are looked up in SQL.
    struct Added {
      int64_t date_added, pk, id_key;
      std::string type, id;
      bool latest;
    };
    std::vector<Added> added;
    std::vector<std::pair<int64_t, bool>> flags;  // (date_added, latest) of older versions read from SQL
    std::vector<uint32_t> superseded;             // positions of entries no longer the latest
    std::vector<std::pair<int64_t, uint32_t>> moved;  // id_key -> the new latest's position (or kSharedKey)
    Stmt& fresh = CachedOn(db, stmts,
                           "SELECT date_added, pk, type, latest, id, id_key FROM objects WHERE coll=? AND date_added>? ORDER BY date_added");
    Stmt& older = CachedOn(db, stmts,
                           // Each level joined to the rows (through the id_lookup view, SQLite
                           // would build a temporary table per id for the IN list).
                           "SELECT o.date_added, o.latest FROM id_index l JOIN objects o ON o.pk=l.pk "
                           "WHERE l.coll=?1 AND l.key=?2 AND o.id=?3 AND o.date_added<=?4 UNION ALL "
                           "SELECT o.date_added, o.latest FROM id_recent l JOIN objects o ON o.pk=l.pk "
                           "WHERE l.coll=?1 AND l.key=?2 AND o.id=?3 AND o.date_added<=?4");
    Stmt& id_at = CachedOn(db, stmts, "SELECT id FROM objects WHERE pk=?");
    fresh.Reset();
    fresh.Bind(1, coll);
    fresh.Bind(2, had.max_added);
    int rc;
    while ((rc = sqlite3_step(fresh.get())) == SQLITE_ROW) {
      added.push_back({fresh.Int(0), fresh.Int(1), fresh.Int(5), fresh.Text(2), fresh.Text(4), fresh.Int(3) != 0});
    }
    sqlite3_reset(fresh.get());
    if (rc != SQLITE_DONE) return false;
    auto from_sql = [&](const Added& a) {
      older.Reset();
      older.Bind(1, coll);
      older.Bind(2, IdKey(a.id));
      older.Bind(3, a.id);
      older.Bind(4, had.max_added);
      while ((rc = sqlite3_step(older.get())) == SQLITE_ROW) flags.emplace_back(older.Int(0), older.Int(1) != 0);
      sqlite3_reset(older.get());
      return rc == SQLITE_DONE;
    };
    {
      // Only this thread (holding `update`) changes latest_at and the entries' flags: read
      // without x.mu; the changes are made under it below.
      const auto& latest_at = x.index.latest_at;
      std::unordered_map<int64_t, uint32_t> batch;  // keys given a new latest by this update
      const uint32_t base = static_cast<uint32_t>(x.index.entries.size());
      for (size_t k = 0; k < added.size(); ++k) {
        const Added& a = added[k];
        if (!a.latest) continue;
        const uint32_t pos = base + static_cast<uint32_t>(k);
        if (batch.count(a.id_key)) {  // two latest ids of one key in one update: look both up
          batch[a.id_key] = detail::CollectionIndex::kSharedKey;
          if (!from_sql(a)) return false;
          continue;
        }
        auto it = latest_at.find(a.id_key);
        if (it == latest_at.end()) {
          batch[a.id_key] = pos;  // a new id
          continue;
        }
        bool same = false;
        if (it->second != detail::CollectionIndex::kSharedKey) {
          id_at.Reset();
          id_at.Bind(1, x.index.entries[it->second].pk);
          rc = sqlite3_step(id_at.get());
          same = rc == SQLITE_ROW && id_at.View(0) == a.id;
          sqlite3_reset(id_at.get());
          if (rc != SQLITE_ROW && rc != SQLITE_DONE) return false;
        }
        if (same) {
          superseded.push_back(it->second);
          batch[a.id_key] = pos;
        } else {
          batch[a.id_key] = detail::CollectionIndex::kSharedKey;
          if (!from_sql(a)) return false;
        }
      }
      moved.assign(batch.begin(), batch.end());
    }
    std::unique_lock write(x.mu);
    for (const auto& a : added) x.index.Append(a.date_added, a.pk, a.type, a.latest);
    for (uint32_t p : superseded) x.index.SetLatest(x.index.entries[p], false);
    for (const auto& [date_added, latest] : flags) {
      if (auto* e = x.index.At(date_added)) x.index.SetLatest(*e, latest);
    }
    for (const auto& [key, pos] : moved) x.index.latest_at[key] = pos;
    x.index.state = now;
    return true;
  }

  // The rows at picked[missing[..]].pk (missing in pk order) into rows[..], kept in the row
  // cache. Rows close together (a page's usually are: pks follow date_added for what one
  // collection receives) come from one walk of the table over their pk range, ~1 us a row;
  // scattered ones one lookup each (a descent of the table's B-tree, a statement step and
  // reset: ~3 us a row with its copy, measured with bench_query, fourteenth session).
  Status ReadRows(sqlite3* db, std::unordered_map<std::string, Stmt>& stmts,
                  const std::vector<detail::CollectionIndex::Entry>& picked, const std::vector<size_t>& missing,
                  int64_t deletes, std::vector<RowRef>& rows) {
    static constexpr const char* kColumns = "pk, id, type, modified, version, spec_version, date_added, source, json";
    auto take = [&](Stmt& st, size_t k) {
      std::string_view fields[Row::kFields];
      fields[Row::kId] = st.View(1);
      fields[Row::kType] = st.View(2);
      fields[Row::kModified] = st.View(3);
      fields[Row::kVersion] = st.View(4);
      fields[Row::kSpecVersion] = st.View(5);
      fields[Row::kSource] = st.View(7);
      fields[Row::kJson] = st.View(8);
      RowRef row = Row::Make(st.Int(6), fields);
      rows_.Put(deletes, picked[k].pk, row);
      rows[k] = std::move(row);
    };
    const int64_t lo = picked[missing.front()].pk, hi = picked[missing.back()].pk;
    // A walk reads every row in [lo, hi]: worth it while they are mostly the page's.
    if (missing.size() >= 4 && static_cast<uint64_t>(hi - lo) < 2 * missing.size()) {
      Stmt& range = CachedOn(db, stmts, std::string("SELECT ") + kColumns + " FROM objects WHERE pk BETWEEN ? AND ?");
      range.Reset();
      range.Bind(1, lo);
      range.Bind(2, hi);
      size_t next = 0;  // a row not found (or a failed step) leaves it short: an error
      while (next < missing.size() && sqlite3_step(range.get()) == SQLITE_ROW) {
        const int64_t pk = range.Int(0);
        if (pk == picked[missing[next]].pk) take(range, missing[next++]);
      }
      sqlite3_reset(range.get());
      if (next < missing.size()) return Status::Io(std::string("read objects: ") + sqlite3_errmsg(db));
      return Status::Ok();
    }
    Stmt& one = CachedOn(db, stmts, std::string("SELECT ") + kColumns + " FROM objects WHERE pk=?");
    for (size_t k : missing) {
      one.Reset();
      one.Bind(1, picked[k].pk);
      if (sqlite3_step(one.get()) != SQLITE_ROW) {
        sqlite3_reset(one.get());
        return Status::Io(std::string("read object: ") + sqlite3_errmsg(db));
      }
      take(one, k);
      sqlite3_reset(one.get());
    }
    return Status::Ok();
  }

  // A page from the in-memory index and the row cache, in one read transaction; nullopt when
  // the query needs SQL (match[id], match[version] first or by timestamp, the writer's
  // connection, which may see uncommitted rows) or the index cannot serve this transaction.
  std::optional<Result<Page>> FastSelect(sqlite3* db, std::unordered_map<std::string, Stmt>& stmts, int64_t coll,
                                         const store::Query& q, int64_t after, bool with_json, uint64_t fp) {
    const VersionFilter& vf = q.versions.empty() ? VersionFilter::Last() : q.versions;
    const bool latest_only = vf.last && !vf.first && !vf.all && vf.versions.empty();
    if (opt_.object_cache_bytes == 0 || db == db_ || !q.ids.empty() || !(latest_only || vf.all)) return std::nullopt;
    // Every read below in one transaction (a snapshot reader is in one already).
    ReadTxn txn(db);
    if (!txn.ok()) return std::nullopt;
    auto now = StateOn(db, stmts, coll);
    if (!now.ok()) return std::nullopt;
    Indexed& x = IndexOf(coll);
    std::vector<detail::CollectionIndex::Entry> picked;
    for (int attempt = 0; attempt < 2; ++attempt) {
      {
        std::shared_lock read(x.mu);
        if (x.index.state == *now) {
          std::vector<uint32_t> types;
          for (const auto& t : q.types) {
            if (auto id = x.index.FindType(t)) types.push_back(*id);
          }
          if (!q.types.empty() && types.empty()) return Result<Page>(Page{});  // no such type here
          picked = x.index.Scan(after, latest_only, types, q.limit + 1);
          break;
        }
      }
      if (attempt == 1 || !UpdateIndex(db, stmts, coll, x, *now)) return std::nullopt;
    }
    Page page;
    page.more = picked.size() > q.limit;
    if (page.more) picked.resize(q.limit);
    page.objects.reserve(picked.size());
    // The page's rows from the cache; those it lacks read from SQL afterwards, all at once.
    std::vector<RowRef> rows(picked.size());
    {
      std::vector<int64_t> pks(picked.size());
      for (size_t k = 0; k < picked.size(); ++k) pks[k] = picked[k].pk;
      rows_.FindMany(now->deletes, pks, rows.data());
    }
    std::vector<size_t> missing;  // positions in picked, in pk order (picked is in date_added order)
    for (size_t k = 0; k < picked.size(); ++k) {
      if (!rows[k] || rows[k]->date_added() != picked[k].date_added) missing.push_back(k);
    }
    const uint64_t misses = missing.size(), hits = picked.size() - misses;  // added once per page: the counters' line is shared by every HTTP thread
    if (!missing.empty()) {
      std::sort(missing.begin(), missing.end(), [&](size_t a, size_t b) { return picked[a].pk < picked[b].pk; });
      if (auto st = ReadRows(db, stmts, picked, missing, now->deletes, rows); !st.ok()) return Result<Page>(st);
    }
    // The release history only for a partner's page (a local reader's page looked the
    // statement up by its text, a string built and hashed, for nothing).
    Stmt* held = q.held_for.empty() ? nullptr
                                    : &CachedOn(db, stmts, "SELECT variant FROM releases WHERE recipient=? AND object_id=?");
    auto given_before = history_.For(held ? q.held_for : std::string_view());  // a local reader's: no lookup at all
    const int slot = given_before.RowSlot();
    for (size_t k = 0; k < picked.size(); ++k) {
      RowRef cached = std::move(rows[k]);
      const Row* row = cached.get();  // alive while `cached` or the page's object holds it
      StoredObject& o = page.objects.emplace_back();
      o.date_added = cached->date_added();
      if (with_json && q.share_rows) {
        o.row = std::move(cached);  // the fields stay in the row (Query::share_rows)
      } else {
        o.id = cached->Get(Row::kId);
        o.type = cached->Get(Row::kType);
        o.modified = cached->Get(Row::kModified);
        o.version = cached->Get(Row::kVersion);
        o.spec_version = cached->Get(Row::kSpecVersion);
        o.source = cached->Get(Row::kSource);
        if (with_json) o.json = cached->Get(Row::kJson);
      }
      if (held) {
        // What was given stands: a row once read needs no seek again (release_history.h).
        if (slot >= 0 && (o.held = row->HeldHint(static_cast<unsigned>(slot))) >= 0) continue;  // noted on the row
        if (auto given = given_before.Find(o.Id())) {
          o.held = *given;
          if (slot >= 0) row->NoteHeld(static_cast<unsigned>(slot), o.held);
          continue;
        }
        held->Reset();
        held->Bind(1, q.held_for);
        held->Bind(2, o.Id());
        int rc = sqlite3_step(held->get());
        o.held = rc == SQLITE_ROW ? static_cast<int>(held->Int(0)) : -1;
        sqlite3_reset(held->get());
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
          return Result<Page>(Status::Io(std::string("read release history: ") + sqlite3_errmsg(db)));
        }
        if (rc == SQLITE_ROW) {
          given_before.Note(o.Id(), o.held);
          if (slot >= 0) row->NoteHeld(static_cast<unsigned>(slot), o.held);
        }
      }
    }
    row_hits_.fetch_add(hits, std::memory_order_relaxed);  // (a page that failed is not counted)
    row_misses_.fetch_add(misses, std::memory_order_relaxed);
    if (page.more) page.next = EncodeCursor(page.objects.back().date_added, fp);
    return Result<Page>(std::move(page));
  }

  sqlite3* db_;
  SqliteOptions opt_;
  std::mutex mu_;
  std::mutex group_mu_;  // the Put queue (taken before mu_, never while holding it)
  std::condition_variable group_cv_, group_done_cv_;
  std::vector<PutJob*> group_;
  bool group_stop_ = false;
  std::thread committer_;
  // Early lock release (StartCommitter): committed groups waiting for the syncer.
  int wal_main_ = -1;
  sqlite3* log_db_ = nullptr;  // the log's file alone (OpenLogConnection), under log_mu_
  std::mutex log_mu_;
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  // AppendAuditAsync callers waiting for mu_: the next group waits for them (RunGroup).
  std::mutex audit_wait_mu_;
  std::condition_variable audit_wait_cv_;
  std::atomic<int> audit_waiting_{0};
  struct Unsynced {
    std::vector<PutJob*> jobs;
    int64_t head;  // the last chain entry it wrote (0: none)
    bool main;     // it wrote to the objects' file (else only the log's)
  };
  std::vector<Unsynced> to_sync_;
  bool sync_stop_ = false;
  std::thread syncer_;  // SyncLoop
  std::atomic<bool> sync_failed_{false};
  std::string sync_error_;  // set once, under mu_, before sync_failed_
  std::atomic<uint64_t> wal_syncs_{0};
  std::unordered_map<std::string, Stmt> stmts_;
  std::vector<std::unique_ptr<Reader>> readers_;
  std::atomic<size_t> next_reader_{0};
  int write_steps_ = 0;
  std::string node_identity_;
  std::string path_;
  sqlite3* ckpt_db_ = nullptr;  // the log checkpointer's connection
  std::thread checkpointer_;
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_main_due_ = false, ckpt_stop_ = false;
  std::mutex state_mu_;  // the StateToken connection
  sqlite3* state_db_ = nullptr;
  const volatile uint32_t* shm_ = nullptr;  // the objects' wal-index header (MapWalIndexHeader), or null
  Stmt state_stmt_;
  std::mutex indexes_mu_;
  std::unordered_map<int64_t, std::unique_ptr<Indexed>> indexes_;  // by collection pk
  detail::RowCache rows_;
  // Partners' release history rows read by pages (release_history.h): an eighth of the row
  // cache's budget at ~48 bytes an entry.
  detail::ReleaseHistoryCache history_{opt_.object_cache_bytes / 8 / 48};
  std::atomic<uint64_t> pages_indexed_{0}, pages_sql_{0}, index_builds_{0}, row_hits_{0}, row_misses_{0};
  std::unique_ptr<SqlProfile> profile_;
  // Rows in id_index, as this writer knows them (MaybeMergeIdIndexLocked): counted once, then
  // kept; another process's merges make it low, which only delays a merge.
  int64_t id_rows_main_ = 0;
  bool id_counts_known_ = false;
  // The id keys of id_index, for the write path's probe (SyncKeyFilterLocked): valid when in
  // step with meta 'id_merges' = filter_merges_.
  KeyFilter filter_;
  bool filter_valid_ = false;
  int64_t filter_merges_ = -1;
  // The recent level of the id index (recent_ids.h), shared by the connections; the writer's
  // view of it in the open write transaction (SyncRecentIdsLocked): the merge point, the pk of
  // the next row, the keys of rows it deleted and the merge point it moved the level to (both
  // applied to recent_ once the transaction commits).
  detail::RecentIds recent_;
  std::unique_ptr<detail::RecentIds::Probe> writer_probe_;
  detail::IdRecentBinding writer_binding_;
  bool recent_synced_ = false;
  detail::RecentIds::View recent_view_;
  detail::RecentIds::Points merged_points_{};
  int64_t next_pk_ = 1;
  bool merged_ = false;
  int last_slice_ = -1;  // the slice the last merge moved
  int64_t recent_deletes_ = 0;
  bool next_pk_given_ = false;  // next_pk_ is not what SQLite would give
  std::vector<detail::RecentIds::Entry> recent_removed_;
  // For /metrics (MetricsText runs on other threads).
  std::atomic<uint64_t> id_merges_{0}, id_merge_us_{0};
  std::atomic<int64_t> id_rows_main_seen_{0};
  int64_t durable_seq_ = 0;  // the chain's head at the last synced write by a commit (intents up to it are done)
  std::atomic<int64_t> synced_seq_{0};  // the same for group commits, once the syncer has synced them
  std::atomic<bool> reconcile_{false};  // a commit failed: the chain may lack intents committed in main
  std::unique_ptr<detail::AuditChain> chain_;  // the audit chain's file (audit_chain.h)
  std::mutex chain_sync_mu_;  // SyncChainOnly: one at a time
  int chain_sync_fd_ = -2;    // SyncChainOnly's descriptor; -2 not opened yet, -1 none (the chain's own)
  std::vector<audit::Entry> pending_;  // entries of the open write transaction (AppendAuditLocked)
  std::vector<audit::Entry> chained_;  // the entries the last CommitLocked linked and wrote
};

}  // namespace

namespace detail {
void SetPlanCheck(bool on) {
  g_plan_check = on;
  std::lock_guard lock(g_scans_mu);
  g_scans.clear();
}

std::vector<std::string> ScanningStatements() {
  std::lock_guard lock(g_scans_mu);
  return g_scans;
}

std::string DerivedLookupSql(size_t n) {
  return RowsOfIdsSql("id, derived_id", n);
}

std::string RowsOfIdsSql(std::string_view columns, size_t n) {
  std::string sql = "SELECT " + std::string(columns) + " FROM objects WHERE pk IN (SELECT pk FROM id_lookup WHERE coll=?1 AND key IN (";
  for (size_t i = 0; i < n; ++i) sql += "?" + std::to_string(i + 2) + (i + 1 < n ? "," : "");
  return sql + "))";
}

}  // namespace detail

Result<std::unique_ptr<Store>> OpenSqlite(const std::string& path, SqliteOptions options) {
  // SQLite's memory statistics take one process-wide mutex on every allocation: with several
  // read connections serving TAXII GETs in parallel that mutex was the hottest lock of the
  // server (perf, bench/taxii-load.sh). It must be switched off before SQLite initialises.
  static const bool configured = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return true;
  }();
  (void)configured;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return Status::Io("cannot open database " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  auto store = std::make_unique<SqliteStore>(db, options, path);
  if (const char* p = std::getenv("TEARLINE_SQL_PROFILE"); p && *p && std::string_view(p) != "0") store->ProfileSql();
  if (auto st = store->Init(); !st.ok()) return Status::Io("database " + path + ": " + st.message());
  store->OpenReaders(path, options.read_connections);
  store->StartCommitter();
  store->OpenStateConnection(path);
  store->StartCheckpointer();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace tearline::store
