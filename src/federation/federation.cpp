#include "federation/federation.h"

#include <future>
#include <thread>

#include <curl/curl.h>
#include <simdjson.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <unordered_map>

#include "stix/stix.h"

namespace tearline::federation {
namespace {

void Quote(std::string& out, std::string_view s) { stix::AppendJsonString(out, s); }

using Reply = HttpReply;

size_t OnBody(char* p, size_t s, size_t n, void* ud) {
  static_cast<std::string*>(ud)->append(p, s * n);
  return s * n;
}
size_t OnHeader(char* p, size_t s, size_t n, void* ud) {
  std::string line(p, s * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string k = line.substr(0, colon), v = line.substr(colon + 1);
    std::transform(k.begin(), k.end(), k.begin(), [](unsigned char c) { return std::tolower(c); });
    while (!v.empty() && (v.front() == ' ')) v.erase(0, 1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n')) v.pop_back();
    (*static_cast<std::map<std::string, std::string>*>(ud))[k] = v;
  }
  return s * n;
}

}  // namespace

HttpReply HttpCall(const std::string& method, const std::string& url, const std::string& token, const std::string& body,
                   int64_t timeout_ms) {
  static const bool init = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  Reply r;
  CURL* c = init ? curl_easy_init() : nullptr;
  if (!c) {
    r.error = "libcurl unavailable";
    return r;
  }
  struct curl_slist* hs = nullptr;
  hs = curl_slist_append(hs, "Accept: application/taxii+json;version=2.1");
  if (!token.empty()) hs = curl_slist_append(hs, ("Authorization: Bearer " + token).c_str());
  if (method == "POST") {
    hs = curl_slist_append(hs, "Content-Type: application/taxii+json;version=2.1");
    hs = curl_slist_append(hs, "Expect:");  // no 100-continue round trip
  }
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<int64_t>(timeout_ms, 5000)));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) r.error = curl_easy_strerror(rc);
  else curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(hs);
  curl_easy_cleanup(c);
  return r;
}

namespace {

Reply Http(const std::string& method, const std::string& url, const std::string& token, const std::string& body,
           int64_t timeout_ms) {
  return HttpCall(method, url, token, body, timeout_ms);
}

std::string Trail(std::string url) {
  if (url.empty() || url.back() != '/') url += '/';
  return url;
}

}  // namespace

// ---- signatures ----

std::string SignedMessage(std::string_view object_json) {
  return "tearline-object-signature\n" + stix::CanonicalJson(object_json);
}

Signature Sign(const audit::NodeKey& key, std::string_view node_identity, std::string_view object_json) {
  return {std::string(node_identity), key.public_hex, audit::SignHex(key, SignedMessage(object_json))};
}

// ---- batch signatures: one Ed25519 signature over a Merkle tree of the objects ----
// Tree shape, leaf/node prefixes and inclusion proofs as in RFC 9162 §2.1 (the
// Certificate Transparency log tree), with SHA-256.

using Hash32 = std::array<unsigned char, 32>;

namespace {
// SHA-256 through OpenSSL (SHA extensions / AVX2 where the CPU has them: several times
// libsodium's portable code, and hashing is most of a batch signature's cost).
Hash32 Sha256(std::string_view data) {
  Hash32 h;
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), h.data(), &len, EVP_sha256(), nullptr);
  return h;
}
}  // namespace

std::array<unsigned char, 32> LeafHash(std::string_view object_json) {
  std::string buf("\0tearline-object\n", 17);  // 0x00 leaf prefix (RFC 9162), then the domain
  stix::CanonicalJsonInto(buf, object_json);
  return Sha256(buf);
}

namespace {

Hash32 NodeHash(const Hash32& left, const Hash32& right) {
  char buf[65];
  buf[0] = 0x01;
  std::memcpy(buf + 1, left.data(), 32);
  std::memcpy(buf + 33, right.data(), 32);
  return Sha256(std::string_view(buf, sizeof buf));
}

std::string Hex(const Hash32& h) {
  char out[65];
  sodium_bin2hex(out, sizeof out, h.data(), h.size());
  return std::string(out, 64);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool FromHex(std::string_view hex, Hash32* h) {  // public data: no need for constant time
  if (hex.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*h)[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return true;
}

// MTH(D[lo:hi]) of RFC 9162 §2.1.1, appending to each leaf's path the sibling hash
// of every subtree it is in (deepest first, as the inclusion proof lists them).
Hash32 BuildTree(const std::vector<Hash32>& leaves, size_t lo, size_t hi, std::vector<std::vector<Hash32>>* paths) {
  if (hi - lo == 1) return leaves[lo];
  size_t k = 1;
  while (k * 2 < hi - lo) k *= 2;  // the largest power of two smaller than the size
  Hash32 left = BuildTree(leaves, lo, lo + k, paths);
  Hash32 right = BuildTree(leaves, lo + k, hi, paths);
  for (size_t m = lo; m < lo + k; ++m) (*paths)[m].push_back(right);
  for (size_t m = lo + k; m < hi; ++m) (*paths)[m].push_back(left);
  return NodeHash(left, right);
}

// The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or false if it cannot be a
// proof for leaf `index` of a tree of `count` leaves.
bool RootFromProof(const Hash32& leaf, uint64_t index, uint64_t count, const std::vector<std::string>& path, Hash32* root) {
  if (count == 0 || index >= count) return false;
  uint64_t fn = index, sn = count - 1;
  Hash32 r = leaf;
  for (const auto& hex : path) {
    Hash32 p;
    if (!FromHex(hex, &p) || sn == 0) return false;
    if ((fn & 1) || fn == sn) {
      r = NodeHash(p, r);
      if (!(fn & 1)) {
        while (!(fn & 1) && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return false;
  *root = r;
  return true;
}

}  // namespace

std::string BatchMessage(const std::array<unsigned char, 32>& root, uint64_t count) {
  return "tearline-batch-signature\n" + std::to_string(count) + "\n" + Hex(root);
}

std::vector<Signature> SignBatch(const audit::NodeKey& key, std::string_view node_identity,
                                 const std::vector<std::string_view>& object_jsons) {
  const size_t n = object_jsons.size();
  if (n == 0) return {};
  std::vector<Hash32> leaves(n);
  // The canonical forms are most of the cost now: two threads for a large envelope.
  auto hash_range = [&](size_t from, size_t step) {
    for (size_t i = from; i < n; i += step) leaves[i] = LeafHash(object_jsons[i]);
  };
  if (n >= 64 && std::thread::hardware_concurrency() > 1) {
    std::thread helper(hash_range, 1, 2);
    hash_range(0, 2);
    helper.join();
  } else {
    hash_range(0, 1);
  }
  std::vector<std::vector<Hash32>> paths(n);
  Hash32 root = BuildTree(leaves, 0, n, &paths);
  std::string sig = audit::SignHex(key, BatchMessage(root, n));
  std::vector<Signature> out(n);
  for (size_t i = 0; i < n; ++i) {
    Signature& s = out[i];
    s.node = std::string(node_identity);
    s.key = key.public_hex;
    s.sig = sig;
    s.count = n;
    s.index = i;
    for (const auto& h : paths[i]) s.path.push_back(Hex(h));
  }
  return out;
}

std::optional<std::string> BatchMessageFor(const std::array<unsigned char, 32>& leaf, const Signature& s) {
  Hash32 root;
  if (!RootFromProof(leaf, s.index, s.count, s.path, &root)) return std::nullopt;
  return BatchMessage(root, s.count);
}

std::optional<std::string> BatchMessageFor(std::string_view object_json, const Signature& s) {
  return BatchMessageFor(LeafHash(object_json), s);
}

bool Verify(std::string_view object_json, const Signature& s) {
  if (s.count == 0) return audit::VerifyHex(s.key, SignedMessage(object_json), s.sig);
  auto message = BatchMessageFor(object_json, s);
  return message && audit::VerifyHex(s.key, *message, s.sig);
}

std::string SignaturesMember(const std::vector<ToSign>& objects, const audit::NodeKey& key,
                             std::string_view node_identity) {
  // One object: a direct signature over its canonical form; several: one batch signature.
  std::vector<Signature> ours;
  if (objects.size() == 1) {
    ours.push_back(Sign(key, node_identity, objects[0].json));
  } else {
    std::vector<std::string_view> jsons;
    for (const auto& o : objects) jsons.push_back(o.json);
    ours = SignBatch(key, node_identity, jsons);
  }
  std::string member = "{";
  for (size_t k = 0; k < objects.size(); ++k) {
    const auto& o = objects[k];
    std::vector<Signature> sigs = SignaturesFromJson(o.carried);
    sigs.push_back(std::move(ours[k]));
    if (k) member += ",";
    Quote(member, SignatureKey(o.id, o.modified));
    member += ":" + ToJson(sigs);
  }
  return member + "}";
}

std::string SignedEnvelope(const std::vector<ToSign>& objects, const audit::NodeKey& key,
                           std::string_view node_identity) {
  std::string body = "{\"objects\":[";
  for (size_t k = 0; k < objects.size(); ++k) body += (k ? "," : "") + std::string(objects[k].json);
  return body + "],\"" + std::string(kSignaturesMember) + "\":" + SignaturesMember(objects, key, node_identity) + "}";
}

std::string ToJson(const std::vector<Signature>& sigs) {
  std::string out = "[";
  for (size_t i = 0; i < sigs.size(); ++i) {
    out += i ? ",{\"node\":" : "{\"node\":";
    Quote(out, sigs[i].node);
    out += ",\"key\":";
    Quote(out, sigs[i].key);
    out += ",\"sig\":";
    Quote(out, sigs[i].sig);
    if (sigs[i].count > 0) {
      out += ",\"merkle\":{\"count\":" + std::to_string(sigs[i].count) + ",\"index\":" + std::to_string(sigs[i].index) +
             ",\"path\":[";
      for (size_t k = 0; k < sigs[i].path.size(); ++k) {
        if (k) out += ",";
        Quote(out, sigs[i].path[k]);
      }
      out += "]}";
    }
    out += "}";
  }
  return out + "]";
}

namespace {
std::vector<Signature> FromElement(simdjson::dom::element e) {
  std::vector<Signature> out;
  simdjson::dom::array a;
  if (e.get(a)) return out;
  for (auto x : a) {
    std::string_view n, k, s;
    if (x["node"].get(n) || x["key"].get(k) || x["sig"].get(s)) continue;
    Signature sig{std::string(n), std::string(k), std::string(s)};
    simdjson::dom::object merkle;
    if (!x["merkle"].get(merkle)) {
      uint64_t count = 0, index = 0;
      simdjson::dom::array path;
      if (merkle["count"].get(count) || merkle["index"].get(index) || merkle["path"].get(path) || count == 0) {
        sig.count = 1;  // malformed proof: kept, and it will not verify (index 1 of 1 is no leaf)
        sig.index = 1;
      } else {
        sig.count = count;
        sig.index = index;
        for (auto h : path) {
          std::string_view hex;
          sig.path.emplace_back(h.get(hex) ? std::string_view("-") : hex);
        }
      }
    }
    out.push_back(std::move(sig));
  }
  return out;
}
}  // namespace

std::vector<Signature> SignaturesFromJson(std::string_view json) {
  simdjson::dom::parser p;
  simdjson::dom::element e;
  if (json.empty() || p.parse(json.data(), json.size()).get(e)) return {};
  return FromElement(e);
}

std::string SignatureKey(std::string_view id, std::string_view modified) {
  return std::string(id) + "|" + std::string(modified);
}

std::vector<std::pair<std::string, std::vector<Signature>>> EnvelopeSignatures(std::string_view envelope) {
  std::vector<std::pair<std::string, std::vector<Signature>>> out;
  simdjson::dom::parser p;
  simdjson::dom::element e;
  if (p.parse(envelope.data(), envelope.size()).get(e)) return out;
  simdjson::dom::object sigs;
  if (e[kSignaturesMember].get(sigs)) return out;
  for (auto [k, v] : sigs) out.emplace_back(std::string(k), FromElement(v));
  return out;
}

std::vector<std::string> CheckSignatures(std::string_view envelope, const std::vector<stix::Object>& objects,
                                         const store::Peer& peer, std::vector<std::string>* stored) {
  auto all = EnvelopeSignatures(envelope);
  std::unordered_map<std::string, std::vector<Signature>> by_key(all.begin(), all.end());
  std::vector<std::string> errors(objects.size());
  stored->assign(objects.size(), "");
  // Objects of one batch share a signature over one root: verify each (key, root
  // message, signature) once. Ed25519 verification is deterministic, so a cached
  // verdict is the verdict.
  std::mutex cache_mu;
  std::unordered_map<std::string, bool> verdicts;
  // `leaf`: the object's leaf hash, computed once for all the proofs it carries (a relayed
  // object has one per node).
  auto verify = [&](std::string_view json, const Signature& s, std::optional<Hash32>& leaf) {
    if (s.count == 0) return Verify(json, s);
    if (!leaf) leaf = LeafHash(json);
    auto message = BatchMessageFor(*leaf, s);
    if (!message) return false;
    std::string cache_key = s.key + "\n" + s.sig + "\n" + *message;
    {
      std::lock_guard lock(cache_mu);
      if (auto it = verdicts.find(cache_key); it != verdicts.end()) return it->second;
    }
    bool ok = audit::VerifyHex(s.key, *message, s.sig);
    std::lock_guard lock(cache_mu);
    verdicts.emplace(std::move(cache_key), ok);
    return ok;
  };
  auto check = [&](size_t i) {
    const auto& o = objects[i];
    auto it = by_key.find(SignatureKey(o.id, o.modified));
    if (peer.public_key.empty()) {
      errors[i] = "the partner's node key is not trusted yet (tearline partner trust-key)";
      return;
    }
    if (it == by_key.end() || it->second.empty()) {
      errors[i] = "unsigned: objects from a partner node must carry its signature (" + std::string(kSignaturesMember) + ")";
      return;
    }
    bool by_sender = false, bad = false;
    std::optional<Hash32> leaf;
    for (const auto& s : it->second) {
      bool ok = verify(o.json, s, leaf);
      if (s.key == peer.public_key) by_sender |= ok;
      if (!ok) bad = true;
    }
    if (bad) errors[i] = "a signature does not verify: the object was changed after it was signed";
    else if (!by_sender) errors[i] = "not signed by the sending partner's node key";
    else (*stored)[i] = ToJson(it->second);
  };
  // Per object: a canonical form and its hashes (batch proofs) or an Ed25519 verification
  // (single signatures): split over the cores (each object's slot is written by exactly
  // one thread; the lookup table is only read, the verdict cache under its lock).
  const size_t n = objects.size();
  const size_t parts = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), 4);
  if (n < 64 || parts < 2) {
    for (size_t i = 0; i < n; ++i) check(i);
    return errors;
  }
  std::vector<std::thread> helpers;
  for (size_t p = 1; p < parts; ++p) {
    helpers.emplace_back([&, p] {
      for (size_t i = p; i < n; i += parts) check(i);
    });
  }
  for (size_t i = 0; i < n; i += parts) check(i);
  for (auto& t : helpers) t.join();
  return errors;
}

int64_t RetryDelayUs(int64_t attempts, const Options& options) {
  int64_t delay = std::min<int64_t>(options.retry_max_ms, options.retry_base_ms << std::min<int64_t>(attempts, 20));
  thread_local std::mt19937_64 rng(std::random_device{}());
  delay = delay / 2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(delay / 2 + 1));
  return delay * 1000;
}

Result<std::vector<std::string>> PushTargets(store::Store& store, std::string_view collection) {
  std::vector<std::string> out;
  auto peers = store.ListPeers();
  if (!peers.ok()) return peers.status();
  if (peers->empty()) return out;
  auto coll = store.GetCollection(collection);
  if (!coll.ok()) return coll.status();
  auto audience = store.GetAudience(coll->name);
  if (!audience.ok()) return audience.status();
  for (const auto& peer : *peers) {
    if (peer.push_collection.empty()) continue;
    auto partner = store.GetPartner(peer.identity);
    if (!partner.ok()) continue;
    bool named = std::count(audience->partners.begin(), audience->partners.end(), peer.identity) > 0;
    bool grouped = std::any_of(partner->groups.begin(), partner->groups.end(), [&](const std::string& g) {
      return std::count(audience->groups.begin(), audience->groups.end(), g) > 0;
    });
    if (named || grouped) out.push_back(peer.identity);
  }
  return out;
}

// ---- the worker ----

struct Federator::Prepared {
  size_t accounted = 0;       // due items taken (released, withheld or gone)
  int64_t last_seq = 0;       // the last of them: the next batch starts after it
  int64_t first_attempts = 0;
  std::string collection;
  store::Partner partner;     // as decided on
  store::Audience audience;
  std::vector<store::StoredObject> released;
  std::vector<policy::Decision> why;
  std::map<int64_t, size_t> released_seq;  // outbox seq -> index in released
  std::string body;           // the signed envelope
};

namespace {
bool SamePolicyInputs(const store::Partner& a, const store::Partner& b, const store::Audience& x, const store::Audience& y) {
  return a.identity == b.identity && a.channel == b.channel && a.principals == b.principals && a.groups == b.groups &&
         a.tier == b.tier && x.partners == y.partners && x.groups == y.groups && x.default_tlp == y.default_tlp;
}
}  // namespace

Federator::Federator(store::Store& store, const policy::Releaser& releaser, audit::NodeKey key, Options options)
    : store_(store), releaser_(releaser), key_(std::move(key)), opt_(options) {
  auto id = store_.NodeIdentity();
  node_ = id.ok() ? *id : "";
}

Federator::~Federator() { Stop(); }

void Federator::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void Federator::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Federator::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void Federator::Loop() {
  int64_t last_pull = 0;
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(opt_.poll_interval_ms), [&] { return stop_ || woken_; });
      if (stop_) return;
      woken_ = false;
    }
    auto peers = store_.ListPeers();
    if (!peers.ok()) continue;
    bool pull_due = stix::NowMicros() - last_pull >= opt_.poll_interval_ms * 1000;
    for (const auto& p : *peers) {
      // Drain what is due for this partner (bounded, so one partner cannot starve the others).
      // The next batch is prepared (read, decided, rendered, signed) while the current
      // one is in flight; batches are still sent one at a time, in order. If a send
      // fails the prepared batch is dropped: its items stay pending behind the retry.
      auto batch = Prepare(p, 0);
      for (int round = 0; round < 20 && batch.ok() && *batch; ++round) {
        std::shared_ptr<Prepared> current = *batch;
        std::future<Result<std::shared_ptr<Prepared>>> next;
        if (round + 1 < 20) {
          next = std::async(std::launch::async, [this, &p, after = current->last_seq] { return Prepare(p, after); });
        }
        auto n = Send(p, *current);
        batch = next.valid() ? next.get() : Result<std::shared_ptr<Prepared>>(std::shared_ptr<Prepared>());
        if (!n.ok() || *n == 0) break;
      }
      if (pull_due && !p.pull.empty()) (void)PullOnce(p);
    }
    if (pull_due) last_pull = stix::NowMicros();
    if (extra_) extra_();
  }
}

Result<size_t> Federator::PushOnce(const store::Peer& peer) {
  auto batch = Prepare(peer, 0);
  if (!batch.ok()) return batch.status();
  if (!*batch) return size_t{0};
  return Send(peer, **batch);
}

Result<std::shared_ptr<Federator::Prepared>> Federator::Prepare(const store::Peer& peer, int64_t after_seq) {
  if (peer.push_collection.empty() || peer.url.empty()) return std::shared_ptr<Prepared>();
  int64_t now = stix::NowMicros();
  auto due = store_.DueOutbox(peer.identity, now, opt_.batch, after_seq);
  if (!due.ok()) return due.status();
  if (due->empty()) return std::shared_ptr<Prepared>();
  // One POST carries items of one local collection (the audience is per collection).
  std::vector<store::OutboxItem> items;
  for (auto& it : *due) {
    if (!items.empty() && it.collection != items.front().collection) break;
    items.push_back(std::move(it));
  }
  auto out = std::make_shared<Prepared>();
  Prepared& b = *out;
  b.accounted = items.size();
  b.last_seq = items.back().seq;
  b.first_attempts = items.front().attempts;
  b.collection = items.front().collection;
  const std::string& coll = b.collection;
  auto partner = store_.GetPartner(peer.identity);
  if (!partner.ok()) {
    std::vector<int64_t> seqs;
    for (const auto& it : items) seqs.push_back(it.seq);
    (void)store_.MarkOutbox(seqs, "withheld", "no partner record", 0);
    return out;
  }
  auto audience = store_.GetAudience(coll);
  if (!audience.ok()) return audience.status();
  b.partner = *partner;
  b.audience = *audience;
  policy::PartnerRecipient pr = policy::ToRecipient(*partner);
  policy::Audience aud = policy::ToAudience(*audience);
  policy::Recipient to{"federation", true, &pr, &aud};
  to.node_identity = node_;

  std::vector<store::StoredObject> objects;
  std::vector<std::string> stored_sigs;
  std::vector<int64_t> gone;
  std::map<std::string, int64_t> seq_of;  // original id|version -> outbox seq
  for (const auto& it : items) {
    std::string sigs;
    auto o = store_.GetVersion(coll, it.object_id, it.version, &sigs);
    if (!o.ok()) {
      gone.push_back(it.seq);  // deleted meanwhile
      continue;
    }
    seq_of[o->id + "|" + o->version] = it.seq;
    objects.push_back(std::move(*o));
    stored_sigs.push_back(std::move(sigs));
  }
  std::map<std::string, std::string> sigs_of;  // original id -> stored signatures JSON
  for (size_t k = 0; k < objects.size(); ++k) sigs_of[objects[k].id + "|" + objects[k].version] = stored_sigs[k];
  auto released = releaser_.ReleaseFrom(store_, coll, objects, to, &b.why);
  if (!released.ok()) return released.status();
  b.released = std::move(*released);
  // Which outbox items were released (by original id), which withheld (decided now: a
  // channel closed since they were queued stops them).
  for (size_t k = 0; k < b.released.size(); ++k) {
    auto it = seq_of.find(b.why[k].object_id + "|" + b.released[k].version);
    if (it != seq_of.end()) b.released_seq[it->second] = k;
  }
  std::vector<int64_t> withheld = gone;
  for (const auto& [key, seq] : seq_of) {
    if (!b.released_seq.count(seq)) withheld.push_back(seq);
  }
  if (auto st = store_.MarkOutbox(withheld, "withheld", "not released to this partner when sent", 0); !st.ok()) return st;
  if (b.released.empty()) return out;

  // The envelope: the objects as released, signed by this node (relayed originals keep
  // the signatures they came with).
  std::vector<ToSign> to_sign;
  for (size_t k = 0; k < b.released.size(); ++k) {
    const auto& r = b.released[k];
    // An original keeps the signatures it came with (relay); a variant is a new object.
    std::string_view carried;
    if (b.why[k].outcome == policy::Outcome::kRelease) carried = sigs_of[b.why[k].object_id + "|" + r.version];
    to_sign.push_back({r.id, r.modified, r.json, carried});
  }
  b.body = SignedEnvelope(to_sign, key_, node_);
  return out;
}

Result<size_t> Federator::Send(const store::Peer& peer, Prepared& b) {
  if (b.released.empty()) return b.accounted;
  const std::string& coll = b.collection;
  // Decided a moment ago, possibly while the batch before was in flight: if the partner
  // or the audience changed since (a channel closed), decide again instead of sending.
  auto partner_now = store_.GetPartner(peer.identity);
  auto audience_now = store_.GetAudience(coll);
  if (!partner_now.ok() || !audience_now.ok() || !SamePolicyInputs(b.partner, *partner_now, b.audience, *audience_now)) {
    return size_t{0};
  }
  std::vector<int64_t> all_seqs;
  for (const auto& [seq, k] : b.released_seq) all_seqs.push_back(seq);
  auto retry = [&](const std::string& error) -> Result<size_t> {
    int64_t delay_us = RetryDelayUs(b.first_attempts, opt_);
    (void)store_.MarkOutbox(all_seqs, "pending", error, stix::NowMicros() + delay_us);
    (void)store_.TouchPeer(peer.identity, 0, error);
    return Status::Io(error);
  };
  std::string url = Trail(peer.url) + "collections/" + peer.push_collection + "/objects/";
  Reply rep = Http("POST", url, peer.token, b.body, opt_.timeout_ms);
  if (rep.status != 202) {
    return retry(rep.status == 0 ? "unreachable: " + rep.error
                                 : "HTTP " + std::to_string(rep.status) + ": " + rep.body.substr(0, 300));
  }
  // Follow the status resource until every object is accounted for (TAXII 2.1 §4.3).
  std::string status_body = rep.body;
  for (int polls = 0; polls < 50; ++polls) {
    simdjson::dom::parser p;
    simdjson::dom::element st;
    if (p.parse(status_body).get(st)) return retry("the partner's status resource is not JSON");
    int64_t pending = 0;
    if (st["pending_count"].get(pending)) pending = 0;
    if (pending == 0) break;
    std::string_view sid;
    if (st["id"].get(sid)) return retry("status without id");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    Reply s = Http("GET", Trail(peer.url) + "status/" + std::string(sid) + "/", peer.token, "", opt_.timeout_ms);
    if (s.status != 200) return retry("status poll: HTTP " + std::to_string(s.status) + " " + s.error);
    status_body = s.body;
  }
  simdjson::dom::parser p;
  simdjson::dom::element st;
  if (p.parse(status_body).get(st)) return retry("the partner's status resource is not JSON");
  std::map<std::string, std::string> failed;  // rendered id -> message
  simdjson::dom::array fails;
  if (!st["failures"].get(fails)) {
    for (auto f : fails) {
      std::string_view id, msg;
      if (f["id"].get(id)) continue;
      if (f["message"].get(msg)) msg = "rejected";
      failed[std::string(id)] = std::string(msg);
    }
  }
  std::vector<int64_t> sent, rejected;
  std::string first_error;
  std::vector<audit::Entry> entries;
  std::vector<store::ReleaseRecord> history;
  std::string ids;
  for (const auto& [seq, k] : b.released_seq) {
    const auto& r = b.released[k];
    auto f = failed.find(r.id);
    if (f != failed.end()) {
      rejected.push_back(seq);
      if (first_error.empty()) first_error = r.id + ": " + f->second;
      continue;
    }
    sent.push_back(seq);
    bool variant = b.why[k].outcome == policy::Outcome::kReleaseVariant;
    ids += (ids.empty() ? "" : "\n") + b.why[k].object_id + "@" + r.modified + (variant ? " as " + r.id : "");
    if (b.why[k].first_release) history.push_back({peer.identity, b.why[k].object_id, variant});
  }
  if (!sent.empty()) {
    entries.push_back({0, stix::NowMicros(), "federation@" + peer.identity, ids, std::to_string(sent.size()) + " objects",
                       "release", "pushed to the partner's node (" + coll + "), signed", "", ""});
  }
  // Audit, history and outbox states in one commit.
  if (auto a = store_.RecordPush(std::move(entries), std::move(history), sent, rejected, first_error); !a.ok()) return a;
  // Last contact is kept to the second (one write per second at most, not one per batch).
  int64_t now_us = stix::NowMicros();
  if (!peer.last_error.empty() || now_us - peer.last_contact > 1000000 || !first_error.empty()) {
    (void)store_.TouchPeer(peer.identity, now_us, "");
    if (!first_error.empty()) (void)store_.TouchPeer(peer.identity, 0, "rejected by the partner: " + first_error);
  }
  return b.accounted;
}

Result<size_t> Federator::PullOnce(const store::Peer& peer) {
  size_t stored = 0;
  for (const auto& spec : peer.pull) {
    auto eq = spec.find('=');
    if (eq == std::string::npos) continue;
    std::string remote = spec.substr(0, eq), local = spec.substr(eq + 1);
    auto coll = store_.EnsureCollection(local);
    if (!coll.ok()) return coll.status();
    for (int page = 0; page < 100; ++page) {
      auto pos = store_.GetPullCursor(peer.identity, remote);
      if (!pos.ok()) return pos.status();
      std::string url = Trail(peer.url) + "collections/" + remote + "/objects/?limit=" + std::to_string(opt_.batch);
      if (!pos->second.empty()) url += "&next=" + pos->second;
      else if (pos->first > 0) url += "&added_after=" + stix::FormatMicros(pos->first);
      Reply rep = Http("GET", url, peer.token, "", opt_.timeout_ms);
      if (rep.status != 200) {
        std::string err = rep.status == 0 ? "unreachable: " + rep.error : "pull HTTP " + std::to_string(rep.status);
        (void)store_.TouchPeer(peer.identity, 0, err);
        if (rep.status == 400 && !pos->second.empty()) (void)store_.PutPullCursor(peer.identity, remote, pos->first, "");
        return Status::Io(err);
      }
      stix::Validator v;
      v.set_marking_lookup([this](std::string_view id) {
        auto r = store_.HasMarkingDefinition(id);
        return r.ok() && *r;
      });
      auto vr = v.Validate(rep.body);
      std::vector<std::string> sigs;
      auto errors = CheckSignatures(rep.body, vr.objects, peer, &sigs);
      std::vector<stix::Object> good;
      std::vector<std::string> good_sigs;
      std::string rejected;
      for (size_t k = 0; k < vr.objects.size(); ++k) {
        if (!errors[k].empty()) {
          rejected += (rejected.empty() ? "" : "\n") + vr.objects[k].id + ": " + errors[k];
          continue;
        }
        good.push_back(std::move(vr.objects[k]));
        good_sigs.push_back(std::move(sigs[k]));
      }
      auto targets = PushTargets(store_, local);
      std::vector<std::string> push_to = targets.ok() ? *targets : std::vector<std::string>{};
      auto put = store_.Put(local, good, peer.identity, push_to, &good_sigs);
      if (!put.ok()) return put.status();
      stored += put->stored;
      std::vector<audit::Entry> entries;
      if (put->stored > 0) {
        entries.push_back({0, stix::NowMicros(), "federation@" + peer.identity, std::to_string(put->stored) + " objects",
                           std::to_string(put->stored) + " objects", "ingest",
                           "pulled from the partner's node into " + local + ", signatures verified", "", ""});
      }
      if (!rejected.empty()) {
        entries.push_back({0, stix::NowMicros(), "federation@" + peer.identity, rejected, "", "reject",
                           "pulled objects refused: bad or missing signatures", "", ""});
      }
      if (!entries.empty()) (void)store_.AppendAudit(std::move(entries));
      // The position moves only after the page is stored: a crash re-reads it (idempotent).
      simdjson::dom::parser p;
      simdjson::dom::element env;
      bool more = false;
      std::string next;
      if (!p.parse(rep.body).get(env)) {
        if (env["more"].get(more)) more = false;
        std::string_view n;
        if (more && !env["next"].get(n)) next = std::string(n);
      }
      int64_t after = pos->first;
      auto last = rep.headers.find("x-taxii-date-added-last");
      if (last != rep.headers.end()) {
        if (auto ts = stix::ParseTimestamp(last->second)) after = std::max(after, stix::ToMicros(*ts));
      }
      if (auto st = store_.PutPullCursor(peer.identity, remote, more ? pos->first : after, more ? next : ""); !st.ok()) {
        return st;
      }
      (void)store_.TouchPeer(peer.identity, stix::NowMicros(), "");
      if (!more) break;
    }
  }
  return stored;
}

}  // namespace tearline::federation
