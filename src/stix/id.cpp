#include "stix/id.h"

#include <openssl/rand.h>
#include <openssl/evp.h>

#include <array>
#include <cctype>
#include <chrono>
#include <stdexcept>

namespace tearline::stix {
namespace {

struct HexTable {
  signed char v[256];
  constexpr HexTable() : v() {
    for (int i = 0; i < 256; ++i) v[i] = -1;
    for (int i = 0; i < 10; ++i) v['0' + i] = static_cast<signed char>(i);
    for (int i = 0; i < 6; ++i) {
      v['a' + i] = static_cast<signed char>(10 + i);
      v['A' + i] = static_cast<signed char>(10 + i);
    }
  }
};
constexpr HexTable kHexTable;

inline int HexVal(char c) { return kHexTable.v[static_cast<unsigned char>(c)]; }

std::string FormatUuid(const std::array<unsigned char, 16>& b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += kHex[b[i] >> 4];
    s += kHex[b[i] & 0xF];
  }
  return s;
}

bool ParseUuidBytes(std::string_view u, std::array<unsigned char, 16>* out) {
  // Byte k of the UUID starts at text offset kPos[k] (8-4-4-4-12 with hyphens).
  static constexpr unsigned char kPos[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
  if (u.size() != 36 || u[8] != '-' || u[13] != '-' || u[18] != '-' || u[23] != '-') return false;
  int bad = 0;
  for (int k = 0; k < 16; ++k) {
    int hi = HexVal(u[kPos[k]]), lo = HexVal(u[kPos[k] + 1]);
    bad |= hi | lo;
    (*out)[k] = static_cast<unsigned char>((hi << 4) | (lo & 0xF));
  }
  return bad >= 0;
}

}  // namespace

bool IsValidTypeName(std::string_view t) {
  if (t.size() < 3 || t.size() > 250) return false;
  for (char c : t) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return t.find("--") == std::string_view::npos;
}

bool IsValidPropertyName(std::string_view n) {
  if (n.size() < 3 || n.size() > 250) return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

int UuidVersion(std::string_view u) {
  std::array<unsigned char, 16> b{};
  if (!ParseUuidBytes(u, &b)) return 0;
  if ((b[8] & 0xC0) != 0x80) return 0;  // RFC 4122 variant 10xx
  int v = b[6] >> 4;
  return v >= 1 && v <= 8 ? v : 0;
}

bool SplitId(std::string_view id, IdParts* parts) {
  size_t p = id.find("--");
  if (p == std::string_view::npos) return false;
  parts->type = id.substr(0, p);
  parts->uuid = id.substr(p + 2);
  return true;
}

// Random bytes from `from` on, then the version nibble and the RFC 4122 variant.
static std::string RandomUuid(std::array<unsigned char, 16> b, size_t from, unsigned char version) {
  if (RAND_bytes(b.data() + from, static_cast<int>(b.size() - from)) != 1) throw std::runtime_error("RAND_bytes failed");
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | (version << 4));
  b[8] = (b[8] & 0x3F) | 0x80;
  return FormatUuid(b);
}

std::string NewUuid7() {
  std::array<unsigned char, 16> b{};
  const uint64_t ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  for (int i = 0; i < 6; ++i) b[i] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
  return RandomUuid(b, 6, 7);
}

std::string NewUuid4() { return RandomUuid({}, 0, 4); }

std::string Uuid5(std::string_view ns, std::string_view name) {
  std::array<unsigned char, 16> nsb{};
  if (!ParseUuidBytes(ns, &nsb)) throw std::invalid_argument("bad namespace uuid");
  // SHA-1 fetched from OpenSSL's provider once (EVP_sha1() looked it up on every call: half
  // the cost of a derived id, computed for every object stored), one context per thread.
  static EVP_MD* const sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  struct Ctx {
    EVP_MD_CTX* p = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(p); }
  };
  thread_local Ctx ctx;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!sha1 || !ctx.p || EVP_DigestInit_ex(ctx.p, sha1, nullptr) != 1 || EVP_DigestUpdate(ctx.p, nsb.data(), nsb.size()) != 1 ||
      EVP_DigestUpdate(ctx.p, name.data(), name.size()) != 1 || EVP_DigestFinal_ex(ctx.p, digest, &len) != 1) {
    throw std::runtime_error("SHA-1 failed");
  }
  std::array<unsigned char, 16> b{};
  std::copy(digest, digest + 16, b.begin());
  b[6] = (b[6] & 0x0F) | 0x50;
  b[8] = (b[8] & 0x3F) | 0x80;
  return FormatUuid(b);
}

std::string DerivedId(std::string_view original_id, std::string_view node_identity) {
  IdParts orig, node;
  if (!SplitId(original_id, &orig)) return {};
  std::string ns = SplitId(node_identity, &node) ? std::string(node.uuid) : std::string(kStixScoNamespace);
  return std::string(orig.type) + "--" + Uuid5(ns, original_id);
}

}  // namespace tearline::stix
