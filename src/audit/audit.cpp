#include "audit/audit.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <charconv>
#include <cstdio>
#include <map>

namespace tearline::audit {
namespace {

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    hex += kHex[p[i] >> 4];
    hex += kHex[p[i] & 0xF];
  }
  return hex;
}

bool Unhex(std::string_view hex, unsigned char* out, size_t n) {
  if (hex.size() != 2 * n) return false;
  size_t len = 0;
  return sodium_hex2bin(out, n, hex.data(), hex.size(), nullptr, &len, nullptr) == 0 && len == n;
}

// SHA-256 fed field by field (no buffer of the whole entry: an entry listing a page of
// objects is ~8 KB, and every audited response digests one on its request's thread). The
// digest is fetched from OpenSSL's provider once, not looked up by EVP_sha256() per call.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, Md(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view s) { EVP_DigestUpdate(ctx_, s.data(), s.size()); }
  //! A field as "<length>:<bytes>;" (so fields cannot run together), hashed without building it.
  void Field(std::string_view s) {
    char len[24];
    char* end = std::to_chars(len, len + sizeof len - 1, s.size()).ptr;  // decimal, as "%zu" (no printf per field)
    *end++ = ':';
    Update(std::string_view(len, static_cast<size_t>(end - len)));
    Update(s);
    Update(";");
  }
  std::string Hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, digest, &len);
    return audit::Hex(digest, len);
  }

 private:
  static const EVP_MD* Md() {
    static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // never freed: lives as long as the process
    return md;
  }
  EVP_MD_CTX* ctx_;
};

}  // namespace

std::string BodyDigest(const Entry& e) {
  Sha256 h;
  h.Field(std::to_string(e.time_us));
  h.Field(e.recipient);
  h.Field(e.object_id);
  h.Field(e.version);
  h.Field(e.decision);
  h.Field(e.reason);
  return h.Hex();
}

std::string LinkHash(std::string_view prev_hash, int64_t seq, std::string_view body_digest) {
  Sha256 h;
  h.Field(prev_hash);
  h.Field(std::to_string(seq));
  h.Field(body_digest);
  return h.Hex();
}

std::string EntryHash(const Entry& e) { return LinkHash(e.prev_hash, e.seq, BodyDigest(e)); }

std::string CheckpointMessage(int64_t seq, std::string_view hash) {
  return "tearline audit checkpoint\n" + std::to_string(seq) + "\n" + std::string(hash);
}

std::optional<NodeKey> LoadOrCreateKey(const std::string& path, std::string* error) {
  if (sodium_init() < 0) {
    *error = "libsodium failed to initialise";
    return std::nullopt;
  }
  NodeKey key;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) {
    if (st.st_mode & 077) {
      *error = "the node key " + path + " is readable by others (mode " + std::to_string(st.st_mode & 0777) +
               "); chmod 600 it";
      return std::nullopt;
    }
    FILE* f = std::fopen(path.c_str(), "r");
    char buf[256] = {};
    size_t n = f ? std::fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) std::fclose(f);
    std::string_view text(buf, n);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    unsigned char seed[crypto_sign_SEEDBYTES];
    if (!Unhex(text, seed, sizeof seed)) {
      *error = "the node key " + path + " is not a hex Ed25519 seed";
      return std::nullopt;
    }
    crypto_sign_seed_keypair(pk, key.secret.data(), seed);
    sodium_memzero(seed, sizeof seed);
  } else {
    unsigned char seed[crypto_sign_SEEDBYTES];
    randombytes_buf(seed, sizeof seed);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
      *error = "cannot create the node key " + path;
      return std::nullopt;
    }
    std::string text = Hex(seed, sizeof seed) + "\n";
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
      ::unlink(path.c_str());
      *error = "cannot write the node key " + path;
      return std::nullopt;
    }
    crypto_sign_seed_keypair(pk, key.secret.data(), seed);
    sodium_memzero(seed, sizeof seed);
  }
  key.public_hex = Hex(pk, sizeof pk);
  return key;
}

std::string SignHex(const NodeKey& key, std::string_view message) {
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                       key.secret.data());
  return Hex(sig, sizeof sig);
}

bool VerifyHex(std::string_view public_hex, std::string_view message, std::string_view signature_hex) {
  if (sodium_init() < 0) return false;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sig[crypto_sign_BYTES];
  if (!Unhex(public_hex, pk, sizeof pk) || !Unhex(signature_hex, sig, sizeof sig)) return false;
  return crypto_sign_verify_detached(sig, reinterpret_cast<const unsigned char*>(message.data()), message.size(), pk) ==
         0;
}

Checkpoint MakeCheckpoint(const NodeKey& key, int64_t seq, std::string_view hash, int64_t time_us) {
  return {seq, std::string(hash), time_us, key.public_hex, SignHex(key, CheckpointMessage(seq, hash))};
}

namespace {

// The shared walk: links given as (seq, digest, stated hash, stated prev or empty).
struct LinkView {
  int64_t seq;
  std::string digest;
  std::string hash;
  const std::string* prev;  // nullptr: not stated (export links)
};

VerifyResult Walk(const std::vector<LinkView>& links, const std::vector<Checkpoint>& checkpoints,
                  std::string_view trusted_key) {
  VerifyResult r;
  auto bad = [&](int64_t seq, const std::string& why) {
    r.ok = false;
    r.first_bad_seq = seq;
    r.message = "entry " + std::to_string(seq) + ": " + why;
    return r;
  };
  std::string prev = kGenesis;
  int64_t expected = 1;
  std::map<int64_t, std::string> hashes;
  for (const auto& l : links) {
    ++r.entries;
    if (l.seq != expected) {
      return bad(l.seq, l.seq > expected ? "sequence gap: entry " + std::to_string(expected) + " is missing"
                                          : "out of order or inserted: expected entry " + std::to_string(expected));
    }
    if (l.prev && *l.prev != prev) return bad(l.seq, "does not link to the previous entry");
    if (LinkHash(prev, l.seq, l.digest) != l.hash) {
      return bad(l.seq, l.prev ? "content does not match its hash (changed)" : "link does not match its hash");
    }
    hashes[l.seq] = l.hash;
    prev = l.hash;
    ++expected;
  }
  int64_t last_signed = 0;
  for (const auto& c : checkpoints) {
    if (!trusted_key.empty() && c.public_key != trusted_key) {
      return bad(c.seq, "checkpoint signed by another key (" + c.public_key.substr(0, 16) + "...)");
    }
    if (!VerifyHex(c.public_key, CheckpointMessage(c.seq, c.hash), c.signature)) {
      return bad(c.seq, "checkpoint signature is invalid");
    }
    auto it = hashes.find(c.seq);
    if (it == hashes.end()) return bad(c.seq, "a signed checkpoint names this entry, which is missing (removed)");
    if (it->second != c.hash) return bad(c.seq, "differs from the signed checkpoint (the chain was rewritten)");
    ++r.checkpoints;
    last_signed = std::max(last_signed, c.seq);
  }
  r.unsigned_tail = r.entries - last_signed;
  r.message = std::to_string(r.entries) + " entries, chain intact, " + std::to_string(r.checkpoints) +
              " signed checkpoints valid";
  if (r.unsigned_tail > 0) r.message += "; " + std::to_string(r.unsigned_tail) + " entries after the last checkpoint";
  return r;
}

}  // namespace

std::string SameAs(int64_t seq) { return "same as entry " + std::to_string(seq); }

int64_t SameAsSeq(std::string_view object_id) {
  constexpr std::string_view kPrefix = "same as entry ";
  if (!object_id.starts_with(kPrefix) || object_id.size() == kPrefix.size() || object_id.size() > kPrefix.size() + 18) return 0;
  int64_t seq = 0;
  for (char c : object_id.substr(kPrefix.size())) {
    if (c < '0' || c > '9') return 0;
    seq = seq * 10 + (c - '0');
  }
  return seq;
}

VerifyResult Verify(const std::vector<Entry>& chain, const std::vector<Checkpoint>& checkpoints,
                    std::string_view trusted_key) {
  std::vector<LinkView> links;
  links.reserve(chain.size());
  for (const auto& e : chain) links.push_back({e.seq, BodyDigest(e), e.hash, &e.prev_hash});
  VerifyResult r = Walk(links, checkpoints, trusted_key);
  if (!r.ok) return r;
  // Repeats name an earlier full entry for the same recipient (chain[k] is seq k + 1 here).
  for (const auto& e : chain) {
    const int64_t ref = SameAsSeq(e.object_id);
    if (ref == 0) continue;
    const Entry* full = ref < e.seq && ref >= 1 ? &chain[static_cast<size_t>(ref - 1)] : nullptr;
    if (!full || full->recipient != e.recipient || SameAsSeq(full->object_id) != 0 || full->object_id.empty()) {
      r.ok = false;
      r.first_bad_seq = e.seq;
      r.message = "entry " + std::to_string(e.seq) + ": repeats entry " + std::to_string(ref) +
                  ", which is not an earlier release to the same recipient";
      return r;
    }
  }
  return r;
}

std::vector<ExportLine> ExportFor(const std::vector<Entry>& chain, const std::vector<Checkpoint>& checkpoints,
                                  std::string_view partner) {
  int64_t upto = checkpoints.empty() ? 0 : checkpoints.back().seq;
  std::vector<ExportLine> out;
  std::string tag = "@" + std::string(partner);
  for (const auto& e : chain) {
    if (e.seq > upto) break;
    bool about = e.recipient.find(tag) != std::string::npos || e.recipient == partner ||
                 e.object_id == partner;  // releases to it, and changes of its partner record
    ExportLine l;
    l.full = about;
    if (about) {
      l.entry = e;
    } else {
      l.entry.seq = e.seq;
      l.entry.hash = e.hash;
      l.body_digest = BodyDigest(e);
    }
    out.push_back(std::move(l));
  }
  return out;
}

std::string ExportToJsonLines(const std::vector<ExportLine>& lines, const std::vector<Checkpoint>& checkpoints) {
  namespace bj = boost::json;
  std::string out;
  for (const auto& l : lines) {
    bj::object o;
    if (l.full) {
      const Entry& e = l.entry;
      o["entry"] = {{"seq", e.seq},           {"time_us", e.time_us},   {"recipient", e.recipient},
                    {"object_id", e.object_id}, {"version", e.version}, {"decision", e.decision},
                    {"reason", e.reason},     {"prev_hash", e.prev_hash}, {"hash", e.hash}};
    } else {
      o["link"] = {{"seq", l.entry.seq}, {"digest", l.body_digest}, {"hash", l.entry.hash}};
    }
    out += bj::serialize(o) + "\n";
  }
  for (const auto& c : checkpoints) {
    bj::object o;
    o["checkpoint"] = {{"seq", c.seq}, {"hash", c.hash}, {"time_us", c.time_us}, {"public_key", c.public_key},
                       {"signature", c.signature}};
    out += bj::serialize(o) + "\n";
  }
  return out;
}

bool ParseExport(std::string_view text, std::vector<ExportLine>* lines, std::vector<Checkpoint>* checkpoints,
                 std::string* error) {
  namespace bj = boost::json;
  size_t start = 0, number = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++number;
    if (line.empty()) continue;
    boost::system::error_code ec;
    bj::value v = bj::parse(line, ec);
    auto fail = [&](const char* why) {
      *error = "line " + std::to_string(number) + ": " + why;
      return false;
    };
    if (ec || !v.is_object()) return fail("not a JSON object");
    try {
      const auto& o = v.get_object();
      auto str = [](const bj::value& x, const char* k) { return std::string(x.at(k).as_string()); };
      if (auto* e = o.if_contains("entry")) {
        ExportLine l;
        l.full = true;
        l.entry = {e->at("seq").as_int64(), e->at("time_us").as_int64(), str(*e, "recipient"), str(*e, "object_id"),
                   str(*e, "version"), str(*e, "decision"), str(*e, "reason"), str(*e, "prev_hash"), str(*e, "hash")};
        lines->push_back(std::move(l));
      } else if (auto* k = o.if_contains("link")) {
        ExportLine l;
        l.entry.seq = k->at("seq").as_int64();
        l.entry.hash = str(*k, "hash");
        l.body_digest = str(*k, "digest");
        lines->push_back(std::move(l));
      } else if (auto* c = o.if_contains("checkpoint")) {
        checkpoints->push_back({c->at("seq").as_int64(), str(*c, "hash"), c->at("time_us").as_int64(),
                                str(*c, "public_key"), str(*c, "signature")});
      } else {
        return fail("expected entry, link or checkpoint");
      }
    } catch (const std::exception&) {
      return fail("a field is missing or has the wrong type");
    }
  }
  return true;
}

VerifyResult VerifyExport(const std::vector<ExportLine>& lines, const std::vector<Checkpoint>& checkpoints,
                          std::string_view trusted_key) {
  std::vector<LinkView> links;
  links.reserve(lines.size());
  for (const auto& l : lines) {
    if (l.full) links.push_back({l.entry.seq, BodyDigest(l.entry), l.entry.hash, &l.entry.prev_hash});
    else links.push_back({l.entry.seq, l.body_digest, l.entry.hash, nullptr});
  }
  VerifyResult r = Walk(links, checkpoints, trusted_key);
  if (r.ok && checkpoints.empty()) {
    r.ok = false;
    r.message = "no signed checkpoint: the export cannot be verified against the node key";
  }
  return r;
}

}  // namespace tearline::audit
