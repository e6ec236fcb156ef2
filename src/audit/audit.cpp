#include "audit/audit.h"

#include <openssl/evp.h>

namespace tearline::audit {
namespace {

void Field(std::string& buf, const std::string& s) {
  buf += std::to_string(s.size());
  buf += ':';
  buf += s;
  buf += ';';
}

}  // namespace

std::string EntryHash(const Entry& e) {
  std::string buf;
  Field(buf, e.prev_hash);
  Field(buf, std::to_string(e.seq));
  Field(buf, std::to_string(e.time_us));
  Field(buf, e.recipient);
  Field(buf, e.object_id);
  Field(buf, e.version);
  Field(buf, e.decision);
  Field(buf, e.reason);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(buf.data(), buf.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xF];
  }
  return hex;
}

VerifyResult Verify(const std::vector<Entry>& chain) {
  VerifyResult r;
  std::string prev = kGenesis;
  int64_t expected_seq = 1;
  for (const auto& e : chain) {
    ++r.entries;
    std::string why;
    if (e.seq != expected_seq) why = "sequence gap: expected " + std::to_string(expected_seq);
    else if (e.prev_hash != prev) why = "does not link to the previous entry";
    else if (EntryHash(e) != e.hash) why = "content does not match its hash";
    if (!why.empty()) {
      r.ok = false;
      r.first_bad_seq = e.seq;
      r.message = "entry " + std::to_string(e.seq) + ": " + why;
      return r;
    }
    prev = e.hash;
    ++expected_seq;
  }
  r.message = std::to_string(r.entries) + " entries, chain intact";
  return r;
}

}  // namespace tearline::audit
