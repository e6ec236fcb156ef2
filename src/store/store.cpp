// Store helpers shared by every implementation: the opaque cursor.
#include <cstring>

#include "store/store.h"

namespace tearline::store {
namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

uint64_t Fnv(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h ^= 0xff;  // separator so ("ab","c") != ("a","bc")
  h *= 1099511628211ULL;
  return h;
}

}  // namespace

// Cursor = base64url of 16 bytes: date_added (8, big endian) + fingerprint (8).
// It names a position, not a capability: the caller's rights are re-checked on use.
std::string EncodeCursor(int64_t date_added, uint64_t fingerprint) {
  unsigned char raw[16];
  for (int i = 0; i < 8; ++i) raw[i] = static_cast<unsigned char>(static_cast<uint64_t>(date_added) >> (56 - 8 * i));
  for (int i = 0; i < 8; ++i) raw[8 + i] = static_cast<unsigned char>(fingerprint >> (56 - 8 * i));
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : raw) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      out += kB64[(acc >> (bits - 6)) & 63];
      bits -= 6;
    }
  }
  if (bits > 0) out += kB64[(acc << (6 - bits)) & 63];
  return out;
}

bool DecodeCursor(std::string_view cursor, int64_t* date_added, uint64_t* fingerprint) {
  if (cursor.size() != 22) return false;
  unsigned char raw[17] = {};
  uint32_t acc = 0;
  int bits = 0, n = 0;
  for (char c : cursor) {
    const char* p = std::strchr(kB64, c);
    if (!p || c == '\0') return false;
    acc = (acc << 6) | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      if (n < 16) raw[n] = static_cast<unsigned char>(acc >> (bits - 8));
      ++n;
      bits -= 8;
    }
  }
  if (n != 16) return false;
  uint64_t d = 0, f = 0;
  for (int i = 0; i < 8; ++i) d = (d << 8) | raw[i];
  for (int i = 0; i < 8; ++i) f = (f << 8) | raw[8 + i];
  *date_added = static_cast<int64_t>(d);
  *fingerprint = f;
  return true;
}

uint64_t QueryFingerprint(const Query& q) {
  uint64_t h = 1469598103934665603ULL;
  h = Fnv(h, q.collection);
  h = Fnv(h, q.added_after ? std::to_string(*q.added_after) : "-");
  for (const auto& v : q.ids) h = Fnv(h, "id:" + v);
  for (const auto& v : q.types) h = Fnv(h, "type:" + v);
  for (const auto& v : q.spec_versions) h = Fnv(h, "sv:" + v);
  h = Fnv(h, q.versions.all ? "all" : "");
  h = Fnv(h, q.versions.first ? "first" : "");
  h = Fnv(h, q.versions.last ? "last" : "");
  for (const auto& v : q.versions.versions) h = Fnv(h, "v:" + v);
  return h;
}

Result<int64_t> WriteCheckpoint(Store& store, const audit::NodeKey& key, bool sync) {
  auto head = sync ? store.AuditHead() : store.AuditSyncedHead();
  if (!head.ok()) return head.status();
  if (head->first == 0) return int64_t{0};
  auto cps = store.ReadCheckpoints(1);
  if (!cps.ok()) return cps.status();
  if (!cps->empty() && cps->back().seq >= head->first) return head->first;
  auto st = store.PutCheckpoint(audit::MakeCheckpoint(key, head->first, head->second, stix::NowMicros()));
  if (!st.ok()) return st;
  return head->first;
}

std::string NodeKeyPath(const std::string& database_path) { return database_path + ".key"; }

std::string AuditLogPath(const std::string& database_path) {
  if (database_path.empty() || database_path == ":memory:") return database_path;
  return database_path + ".audit";
}

std::string AuditChainPath(const std::string& database_path) {
  if (database_path.empty() || database_path == ":memory:") return "";
  return database_path + ".audit-chain";
}

}  // namespace tearline::store
