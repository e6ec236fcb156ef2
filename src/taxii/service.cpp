// TAXII 2.1 endpoints (§4 Discovery and API roots, §5 Collections). Every
// path that returns stored objects goes through policy::Releaser.
#include <simdjson.h>
#include <sodium.h>

#include <algorithm>
#include <future>
#include <optional>
#include <map>
#include <set>

#include "stix/stix.h"
#include "taxii/taxii.h"
#include "taxii/audit_writer.h"
#include "taxii/response_cache.h"
#include "taxii/watcher.h"
#include "federation/federation.h"
#include "warn/warn.h"

namespace tearline::taxii {
namespace {

// What the Releaser keeps between requests (partners' pages: policy.h, Releaser::CacheStats).
std::string ReleaserMetrics(const policy::Releaser& r) {
  const auto st = r.cache_stats();
  return "# HELP tearline_releaser_cached_collections Collections whose partner decisions are cached (for their current state).\n"
         "# TYPE tearline_releaser_cached_collections gauge\n"
         "tearline_releaser_cached_collections " + std::to_string(st.collections) + "\n"
         "# HELP tearline_releaser_cached_decisions Partner decisions on stored versions kept between requests.\n"
         "# TYPE tearline_releaser_cached_decisions gauge\n"
         "tearline_releaser_cached_decisions " + std::to_string(st.decisions) + "\n"
         "# HELP tearline_releaser_cached_references How partners receive referenced objects, kept between requests.\n"
         "# TYPE tearline_releaser_cached_references gauge\n"
         "tearline_releaser_cached_references " + std::to_string(st.references) + "\n"
         "# HELP tearline_releaser_caches_emptied_total Times a collection's cache started over (a delete, or a new version of an object it depended on).\n"
         "# TYPE tearline_releaser_caches_emptied_total counter\n"
         "tearline_releaser_caches_emptied_total " + std::to_string(st.emptied) + "\n";
}

using net::Request;
using net::Response;

// ---------- small JSON writer ----------

class Json {
 public:
  Json() = default;
  explicit Json(size_t reserve) { out_.reserve(reserve); }
  Json& Open() { return Raw("{"), first_ = true, *this; }
  Json& Close() { return Raw("}"), first_ = false, *this; }
  Json& Key(std::string_view k) {
    if (!first_) out_ += ',';
    first_ = false;
    stix::AppendJsonString(out_, k);
    out_ += ':';
    return *this;
  }
  Json& Str(std::string_view k, std::string_view v) {
    Key(k);
    stix::AppendJsonString(out_, v);
    return *this;
  }
  Json& Num(std::string_view k, int64_t v) {
    Key(k);
    out_ += std::to_string(v);
    return *this;
  }
  Json& Bool(std::string_view k, bool v) {
    Key(k);
    out_ += v ? "true" : "false";
    return *this;
  }
  Json& RawValue(std::string_view k, std::string_view json) {
    Key(k);
    out_ += json;
    return *this;
  }
  Json& Raw(std::string_view s) {
    out_ += s;
    return *this;
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
  bool first_ = true;
};

std::string StrArray(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    stix::AppendJsonString(s, v[i]);
  }
  return s + "]";
}

Response JsonResponse(int status, std::string body) {
  Response r;
  r.status = status;
  r.Set("Content-Type", kTaxiiMediaType);
  r.body = std::move(body);
  return r;
}

// ---------- URL handling ----------

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool PercentDecode(std::string_view in, std::string* out, bool plus_is_space) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = Hex(in[i + 1]), lo = Hex(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi << 4 | lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

struct Url {
  std::vector<std::string> segments;
  std::multimap<std::string, std::string> params;
};

bool ParseUrl(std::string_view target, Url* url) {
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  if (path.empty() || path[0] != '/') return false;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string seg;
    if (!PercentDecode(path.substr(start, end - start), &seg, false)) return false;
    if (!seg.empty()) url->segments.push_back(std::move(seg));
    start = end + 1;
  }
  if (q == std::string_view::npos) return true;
  std::string_view query = target.substr(q + 1);
  start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(start, end - start);
    size_t eq = pair.find('=');
    std::string k, v;
    if (!PercentDecode(pair.substr(0, eq), &k, true)) return false;
    if (eq != std::string_view::npos && !PercentDecode(pair.substr(eq + 1), &v, true)) return false;
    if (!k.empty()) url->params.emplace(std::move(k), std::move(v));
    start = end + 1;
  }
  return true;
}

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    std::string part = s.substr(start, end - start);
    part.erase(0, part.find_first_not_of(' '));
    part.erase(part.find_last_not_of(' ') + 1);
    if (!part.empty()) out.push_back(part);
    start = end + 1;
  }
  return out;
}

// ---------- media types (§1.6.8) ----------

std::string Normalize(std::string_view v) {
  std::string s;
  for (char c : v) {
    if (c != ' ' && c != '\t') s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

bool AcceptsTaxii(std::string_view accept) {
  if (accept.empty()) return true;
  std::string a = Normalize(accept);
  size_t start = 0;
  while (start <= a.size()) {
    size_t end = a.find(',', start);
    if (end == std::string::npos) end = a.size();
    std::string item = a.substr(start, end - start);
    // drop a q-value parameter
    if (auto qpos = item.find(";q="); qpos != std::string::npos) item.resize(qpos);
    if (item == "application/taxii+json;version=2.1" || item == "application/taxii+json" || item == "*/*" ||
        item == "application/*") {
      return true;
    }
    start = end + 1;
  }
  return false;
}

bool IsTaxiiContentType(std::string_view ct) {
  std::string c = Normalize(ct);
  return c == "application/taxii+json;version=2.1" || c == "application/taxii+json";
}

std::string MicrosText(int64_t us) { return FormatMicros(us); }

}  // namespace

struct Service::Caller {
  bool authenticated = false;
  store::Principal principal;
  // A GET reads in one store snapshot (credentials, permissions, partner, page, references):
  // one consistent view, one cache validation. Ended before the release is audited.
  std::unique_ptr<store::Store::ReadScope>* snapshot = nullptr;
  std::string state;  // Store::StateToken() before the snapshot (response cache keys)
  void EndSnapshot() const {
    if (snapshot) snapshot->reset();
  }
};

Service::Service(Config config, store::Store& store, const policy::Releaser& releaser, const Metrics* metrics)
    : config_(std::move(config)), store_(store), releaser_(releaser), metrics_(metrics) {
  if (sodium_init() < 0) abort();
  for (const auto& root : config_.api_roots) {
    for (const auto& c : root.collections) {
      auto info = store_.EnsureCollection(c.name, c.title);
      if (info.ok()) collections_[c.name] = *info;  // a failure shows as "not found" per request
    }
  }
  if (!config_.match_watch.empty()) watcher_ = std::make_unique<Watcher>(config_, store_);
  // The node's Ed25519 key signs audit checkpoints (created 0600 on first start).
  std::string key_path = config_.node_key.empty() ? store::NodeKeyPath(config_.database) : config_.node_key;
  std::string err;
  auto key = audit::LoadOrCreateKey(key_path, &err);
  if (!key) startup_error_ = err;
  node_key_ = key;
  audit_ = std::make_unique<AuditWriter>(store_, std::move(key), config_.checkpoint_every);
  cache_ = std::make_unique<ResponseCache>(config_.response_cache_mb << 20);
}

Service::~Service() = default;

Response Service::Error(int status, std::string title, std::string description) {
  Json j;
  j.Open().Str("title", title).Str("description", description).Str("http_status", std::to_string(status)).Close();
  Response r = JsonResponse(status, j.Take());
  if (status == 401) r.Set("WWW-Authenticate", "Basic realm=\"tearline\", Bearer");
  return r;
}

std::string HashSecret(std::string_view secret) {
  if (sodium_init() < 0) abort();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, secret.data(), secret.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    return {};
  }
  return out;
}

bool VerifySecret(std::string_view hash, std::string_view secret) {
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  std::string h(hash);
  return crypto_pwhash_str_verify(h.c_str(), secret.data(), secret.size()) == 0;
}

Result<std::string> IssueToken(store::Store& store, std::string_view principal) {
  if (sodium_init() < 0) abort();
  if (auto p = store.GetPrincipal(principal); !p.ok()) return p.status();
  unsigned char id_raw[9], secret_raw[24];
  randombytes_buf(id_raw, sizeof id_raw);
  randombytes_buf(secret_raw, sizeof secret_raw);
  char id[32], secret[64];
  sodium_bin2base64(id, sizeof id, id_raw, sizeof id_raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_bin2base64(secret, sizeof secret, secret_raw, sizeof secret_raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  store::Token t{id, std::string(principal), HashSecret(secret), NowMicros()};
  if (auto st = store.PutToken(t); !st.ok()) return st;
  return "tlt_" + std::string(id) + "." + secret;
}

bool Service::Authenticate(const Request& req, Caller* who, bool again) {
  std::string_view auth = req.Header("Authorization");
  if (auth.empty()) return false;
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(auth.data()), auth.size());
  std::string key(reinterpret_cast<char*>(digest), sizeof digest);
  // A credential's check (Argon2id: ~100 ms of CPU and 64 MiB here, by design) runs once at a
  // time: requests presenting it meanwhile wait for that check's result. Without this, every
  // request in flight when the entry was missing (a node starting under load, or every five
  // minutes when the entry expired) ran its own check, each taking a pool thread for it.
  // A busy client's entry is checked again by one of its requests in its last minute, while the
  // others go on with it, so it does not expire under them.
  auto now = std::chrono::steady_clock::now();
  std::string name;
  std::string checked_against;  // HTTP Basic: the password hash the remembered check was against
  bool check = false;
  {
    std::unique_lock lock(cache_mu_);
    // The remembered check, while valid.
    auto cached = [&]() -> const Verified* {
      auto it = auth_cache_.find(key);
      return it != auth_cache_.end() && it->second.until > now ? &it->second : nullptr;
    };
    const Verified* entry = cached();  // every request: one lookup when remembered
    bool waited = false;
    while (!entry && auth_checking_.count(key)) {
      auth_cv_.wait(lock);
      waited = true;
      now = std::chrono::steady_clock::now();
      entry = cached();
    }
    if (entry) {
      name = entry->principal;
      checked_against = entry->password_hash;
      if (entry->until - now < std::chrono::minutes(1) && !auth_checking_.count(key)) {
        auth_checking_.insert(key);
        check = true;
      }
    } else if (waited) {
      return false;  // the check this request waited for failed: the same credential fails
    } else {
      auth_checking_.insert(key);
      check = true;
    }
  }
  if (check) {
    auth_checks_.fetch_add(1, std::memory_order_relaxed);
    // However the check ends (an exception too), it is no longer running and its waiters learn
    // its result: remembered when it succeeded, forgotten when it failed.
    struct Ending {
      Service& service;
      const std::string& key;
      std::string principal;      // set when the credential is valid
      std::string password_hash;  // HTTP Basic: what it was checked against
      ~Ending() {
        {
          std::lock_guard lock(service.cache_mu_);
          service.auth_checking_.erase(key);
          if (!principal.empty()) {
            if (service.auth_cache_.size() > 10000) service.auth_cache_.clear();
            service.auth_cache_[key] = {principal, std::chrono::steady_clock::now() + std::chrono::minutes(5), password_hash};
          } else {
            service.auth_cache_.erase(key);  // a refresh that fails ends the entry at once
          }
        }
        service.auth_cv_.notify_all();
      }
    } ending{*this, key, {}, {}};
    std::string_view scheme = auth.substr(0, auth.find(' '));
    std::string_view cred = auth.size() > scheme.size() ? auth.substr(scheme.size() + 1) : std::string_view();
    std::string lower = Normalize(scheme);
    std::string checked;
    bool ok = false;
    if (lower == "basic") {
      std::string decoded(cred.size(), '\0');
      size_t len = 0;
      if (sodium_base642bin(reinterpret_cast<unsigned char*>(decoded.data()), decoded.size(), cred.data(), cred.size(),
                            nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) == 0) {
        decoded.resize(len);
        size_t colon = decoded.find(':');
        if (colon != std::string::npos) {
          std::string user = decoded.substr(0, colon), pass = decoded.substr(colon + 1);
          auto p = store_.GetPrincipal(user);
          ok = p.ok() && VerifySecret(p->password_hash, pass);
          if (!p.ok()) VerifySecret(HashSecret("timing-equaliser"), pass);  // same cost for unknown users
          if (ok) {
            checked = user;
            ending.password_hash = p->password_hash;
          }
        }
      }
    } else if (lower == "bearer" && cred.rfind("tlt_", 0) == 0) {
      std::string_view rest = cred.substr(4);
      size_t dot = rest.find('.');
      if (dot != std::string_view::npos) {
        auto t = store_.GetToken(rest.substr(0, dot));
        ok = t.ok() && VerifySecret(t->secret_hash, rest.substr(dot + 1));
        if (ok) checked = t->principal;
      }
    }
    if (!ok || checked.empty()) return false;
    ending.principal = checked;
    name = std::move(checked);
  }
  // Permissions are read fresh for every state of the store: a change applies to the next request.
  auto p = PrincipalOf(*who, name);
  if (!p.ok()) return false;
  if (!check && !checked_against.empty() && p->password_hash != checked_against) {
    // The password was changed (`principal add` again) since this one was checked: what is
    // remembered no longer counts; checked again (against the new hash: the old one fails).
    // Once: a second mismatch (reads of two states of the store) is refused, the safe side.
    if (again) return false;
    {
      std::lock_guard lock(cache_mu_);
      auto it = auth_cache_.find(key);
      if (it != auth_cache_.end() && it->second.password_hash == checked_against) auth_cache_.erase(it);
    }
    return Authenticate(req, who, true);
  }
  who->authenticated = true;
  who->principal = std::move(p).value();
  return true;
}

// With state_mu_ held: the memo as of `token`. Another token (in general a newer state;
// tokens are not ordered, and a request still under an older one only costs the next request a
// read) starts it over, so whatever is kept under a token was read by a request holding it.
void Service::MemoForLocked(const std::string& token) {
  if (state_ == token) return;
  state_ = token;
  state_principals_.clear();
  state_partners_.reset();
}

Result<store::Principal> Service::PrincipalOf(const Caller& who, const std::string& name) {
  if (who.state.empty()) return store_.GetPrincipal(name);
  {
    std::lock_guard lock(state_mu_);
    if (state_ == who.state) {
      if (auto it = state_principals_.find(name); it != state_principals_.end()) return it->second;
    }
  }
  auto p = store_.GetPrincipal(name);
  if (!p.ok()) return p;
  std::lock_guard lock(state_mu_);
  MemoForLocked(who.state);
  if (state_principals_.size() < 1000) state_principals_.emplace(name, *p);
  return p;
}

Result<std::vector<store::Partner>> Service::PartnersOf(const Caller& who) {
  if (who.state.empty()) return store_.ListPartners();
  {
    std::lock_guard lock(state_mu_);
    if (state_ == who.state && state_partners_) return *state_partners_;
  }
  auto list = store_.ListPartners();
  if (!list.ok()) return list;
  std::lock_guard lock(state_mu_);
  MemoForLocked(who.state);
  state_partners_ = *list;
  return list;
}

net::Response Service::Handle(const Request& req, bool may_defer) {
  Response r = HandleNow(req);
  while (r.defer && !may_defer) {
    auto done = std::make_shared<std::promise<Response::Finish>>();
    auto finished = done->get_future();
    std::exchange(r.defer, nullptr)([done](Response::Finish f) { done->set_value(std::move(f)); });
    Response::Finish finish = finished.get();
    if (!finish) break;
    try {
      finish(r);
    } catch (const std::exception&) {
      return Error(500, "Internal Server Error", "the request could not be handled");
    }
  }
  return r;
}

net::Response Service::HandleNow(const Request& req) {
  try {
    Url url;
    if (!ParseUrl(req.target, &url)) return Error(400, "Bad Request", "the request target is not a valid URL path");
    bool discovery = url.segments.size() == 1 && url.segments[0] == "taxii2";
    // Public advisories (duty to warn): no authentication, only what was approved and published.
    if (url.segments.size() == 2 && url.segments[0] == "advisories") {
      if (req.method != "GET") return Error(405, "Method Not Allowed", "allowed: GET");
      auto all = store_.ListWarnings();
      if (!all.ok()) return Error(500, "Internal Server Error", "the store could not answer");
      Response r;
      if (url.segments[1] == "feed.atom") {
        auto node = store_.NodeIdentity();
        std::string base = !config_.public_url.empty() ? config_.public_url
                                                       : std::string(req.tls ? "https://" : "http://") + std::string(req.Header("Host"));
        r.Set("Content-Type", "application/atom+xml");
        r.body = warn::AtomFeed(*all, base, node.ok() ? *node : "");
        return r;
      }
      for (const auto& w : *all) {
        if (w.published_at && url.segments[1] == w.id.substr(w.id.find("--") + 2) + ".cap.xml") {
          r.Set("Content-Type", "application/cap+xml");
          r.body = w.cap;
          return r;
        }
      }
      return Error(404, "Not Found", "no such advisory");
    }
    Caller who;
    // Taken before the snapshot's first read: names a state no newer than what it reads.
    // (Only routes under a collection are cached: objects, an object, the manifest.)
    if (req.method == "GET" && cache_->enabled() && url.segments.size() >= 4) who.state = store_.StateToken();
    std::unique_ptr<store::Store::ReadScope> snapshot;
    if (req.method == "GET") snapshot = store_.ReadSnapshot();
    who.snapshot = &snapshot;
    bool authed = Authenticate(req, &who);
    if (!authed && !(discovery && config_.public_discovery)) {
      return Error(401, "Unauthorized", "authenticate with HTTP Basic or a bearer token");
    }
    // Operations: Prometheus exposition (any authenticated principal; scrapers send their own Accept).
    if (url.segments.size() == 1 && url.segments[0] == "metrics" && metrics_) {
      if (req.method != "GET") return Error(405, "Method Not Allowed", "allowed: GET");
      Response r;
      r.Set("Content-Type", "text/plain; version=0.0.4");
      r.body = metrics_->Render(store_) + store_.MetricsText() + cache_->Metrics() +
               "# HELP tearline_auth_checks_total Credential checks run (Argon2id; verified credentials are remembered).\n"
               "# TYPE tearline_auth_checks_total counter\n"
               "tearline_auth_checks_total " + std::to_string(auth_checks_.load()) + "\n" + ReleaserMetrics(releaser_);
      return r;
    }
    if (!AcceptsTaxii(req.Header("Accept"))) {
      return Error(406, "Not Acceptable", std::string("this server produces ") + kTaxiiMediaType);
    }
    return Dispatch(req, who, url.segments, url.params);
  } catch (const std::exception& e) {
    return Error(500, "Internal Server Error", "the request could not be handled");
  }
}

namespace {

bool Allowed(const std::vector<std::string>& list, const store::CollectionInfo& c) {
  return std::any_of(list.begin(), list.end(), [&](const std::string& s) { return s == "*" || s == c.name || s == c.id; });
}

}  // namespace

net::Response Service::Dispatch(const Request& req, const Caller& who, const std::vector<std::string>& seg,
                                const std::multimap<std::string, std::string>& params) {
  auto method_not_allowed = [&](const char* allow) {
    Response r = Error(405, "Method Not Allowed", std::string("allowed: ") + allow);
    r.Set("Allow", allow);
    return r;
  };
  auto base_url = [&] {
    if (!config_.public_url.empty()) return config_.public_url;
    return std::string(req.tls ? "https://" : "http://") + std::string(req.Header("Host"));
  };

  // §4.1 Server discovery
  if (seg.size() == 1 && seg[0] == "taxii2") {
    if (req.method != "GET") return method_not_allowed("GET");
    std::vector<std::string> roots;
    for (const auto& a : config_.api_roots) roots.push_back(base_url() + "/" + a.path + "/");
    Json j;
    j.Open().Str("title", config_.title);
    if (!config_.description.empty()) j.Str("description", config_.description);
    if (!config_.contact.empty()) j.Str("contact", config_.contact);
    if (!config_.default_api_root.empty()) j.Str("default", base_url() + "/" + config_.default_api_root + "/");
    j.RawValue("api_roots", StrArray(roots)).Close();
    return JsonResponse(200, j.Take());
  }
  if (seg.empty()) return Error(404, "Not Found", "no resource at this path");
  const ApiRootConfig* root = nullptr;
  for (const auto& a : config_.api_roots) {
    if (a.path == seg[0]) root = &a;
  }
  if (!root) return Error(404, "Not Found", "no API root \"" + seg[0] + "\"");

  // §4.2 API root information
  if (seg.size() == 1) {
    if (req.method != "GET") return method_not_allowed("GET");
    Json j;
    j.Open().Str("title", root->title);
    if (!root->description.empty()) j.Str("description", root->description);
    j.RawValue("versions", StrArray({kTaxiiMediaType})).Num("max_content_length", static_cast<int64_t>(config_.max_content_length)).Close();
    return JsonResponse(200, j.Take());
  }

  // §4.3 Status
  if (seg.size() == 3 && seg[1] == "status") {
    if (req.method != "GET") return method_not_allowed("GET");
    auto st = store_.GetStatus(seg[2]);
    if (!st.ok() || st->second != who.principal.name) return Error(404, "Not Found", "no status \"" + seg[2] + "\"");
    return JsonResponse(200, st->first);
  }

  if (seg[1] != "collections" || seg.size() > 6) return Error(404, "Not Found", "no resource at this path");

  // Collections visible to this caller in this API root.
  auto visible = [&](const CollectionConfig& cc, store::CollectionInfo* info, bool* r, bool* w) {
    auto it = collections_.find(cc.name);
    if (it == collections_.end()) return false;
    *info = it->second;
    *r = Allowed(who.principal.can_read, *info);
    *w = Allowed(who.principal.can_write, *info);
    return *r || *w;
  };

  // §5.1 Collections
  if (seg.size() == 2) {
    if (req.method != "GET") return method_not_allowed("GET");
    std::string list;
    for (const auto& cc : root->collections) {
      store::CollectionInfo info;
      bool r, w;
      if (!visible(cc, &info, &r, &w)) continue;
      Json j;
      j.Open().Str("id", info.id).Str("title", cc.title);
      if (!cc.description.empty()) j.Str("description", cc.description);
      j.Bool("can_read", r).Bool("can_write", w).RawValue("media_types", StrArray({kStixMediaType})).Close();
      list += (list.empty() ? "" : ",") + j.Take();
    }
    return JsonResponse(200, list.empty() ? "{}" : "{\"collections\":[" + list + "]}");
  }

  // Find the collection by TAXII id; one the caller cannot see is "not found" (no existence leak).
  const CollectionConfig* coll = nullptr;
  store::CollectionInfo info;
  bool can_read = false, can_write = false;
  for (const auto& cc : root->collections) {
    store::CollectionInfo i;
    bool r, w;
    if (visible(cc, &i, &r, &w) && i.id == seg[2]) {
      coll = &cc;
      info = i;
      can_read = r;
      can_write = w;
    }
  }
  if (!coll) return Error(404, "Not Found", "no collection \"" + seg[2] + "\"");
  // A principal that acts for a partner organisation receives what the sharing rules allow that
  // partner (channel, TLP, audience); read fresh on every request so changes apply at once.
  std::optional<policy::PartnerRecipient> partner;
  policy::Audience audience;
  if (auto partners = PartnersOf(who); partners.ok()) {
    for (const auto& p : *partners) {
      if (std::find(p.principals.begin(), p.principals.end(), who.principal.name) != p.principals.end()) {
        partner = policy::ToRecipient(p);
        partner->individual = who.principal.identity;  // the person, for TLP:RED distributions
        if (auto a = store_.GetAudience(info.name); a.ok()) audience = policy::ToAudience(*a);
        break;
      }
    }
  }
  policy::Recipient to{who.principal.name, can_read, partner ? &*partner : nullptr, &audience};
  if (partner) {
    auto node = store_.NodeIdentity();
    to.node_identity = node.ok() ? *node : "";
  }
  const std::string recipient_name = who.principal.name + (partner ? "@" + partner->identity : "");
  // What a release records (one entry per response): every object ("id@modified", "as <variant
  // id>" for variants: the link stays here), the decision and the reasons; for partners, the
  // release history of first releases.
  // `local`: a local reader's one decision for every object (`why` is then empty).
  auto audit_record = [&](const std::vector<store::StoredObject>& objs, const std::vector<policy::SharedDecision>& why,
                          const policy::Decision* local, CachedResponse& rec) {
    if (objs.empty()) return;
    bool any_variant = false;
    rec.ids.reserve(objs.size() * 80);
    if (local) rec.reasons = local->reason;
    for (size_t k = 0; k < objs.size(); ++k) {
      const policy::Decision* d = k < why.size() ? why[k].get() : nullptr;
      bool variant = d && d->outcome == policy::Outcome::kReleaseVariant;
      const std::string_view original = d && !d->object_id.empty() ? std::string_view(d->object_id) : objs[k].Id();
      if (k) rec.ids += '\n';
      rec.ids += original;
      rec.ids += '@';
      rec.ids += objs[k].Modified();
      if (variant) {
        rec.ids += " as ";
        rec.ids += objs[k].Id();
      }
      any_variant |= variant;
      if (d && rec.reasons.find(d->reason) == std::string::npos) {
        if (!rec.reasons.empty()) rec.reasons += "; ";
        rec.reasons += d->reason;
      }
      if (partner && d && d->first_release) rec.history.push_back({partner->identity, std::string(original), variant});
    }
    rec.summary = std::to_string(objs.size()) + " objects";
    rec.decision = any_variant ? "release-variant" : "release";
  };
  // Every object that leaves in a response is recorded in the hash-chained audit log, and (for
  // partners) in the release history, in one transaction. The response waits for the entry's
  // durable group commit (Response::defer: the server holds no thread meanwhile) and becomes a
  // 500 if it fails.
  //
  // A response served again from the response cache repeats a release the log already lists
  // object by object: its entry names that entry instead ("same as entry N", N earlier in the
  // same chain, so covered by every hash after it), the recipient, decision and reasons being
  // the same (the cache key holds the recipient). A 100-object page is ~7 KB of entry; a
  // repeat is ~150 bytes (docs/policy.md, "Audit log").
  auto audit_release = [&](const CachedResponse& rec, Response& r) {
    who.EndSnapshot();  // the reads are done; the audit commit must not wait behind a snapshot
    if (rec.ids.empty()) return;
    auto entries = std::make_shared<std::vector<audit::Entry>>();
    const int64_t first = rec.audited ? rec.audited->load() : 0;
    entries->push_back({0, NowMicros(), recipient_name, first > 0 ? audit::SameAs(first) : rec.ids, rec.summary,
                        rec.decision, rec.reasons, "", ""});
    auto records = std::make_shared<std::vector<store::ReleaseRecord>>(rec.history);
    // Only a full entry is a reference for later repeats.
    auto audited = first > 0 ? nullptr : rec.audited;
    r.defer = [audit = audit_.get(), entries, records, audited](std::function<void(Response::Finish)> done) {
      audit->Submit(std::move(*entries), std::move(*records), [done = std::move(done), audited](bool ok, int64_t seq) {
        if (ok && audited && seq > 0) {
          int64_t none = 0;
          audited->compare_exchange_strong(none, seq);
        }
        if (ok) return done(nullptr);
        done([](Response& out) { out = Error(500, "Internal Server Error", "the release could not be audited"); });
      });
    };
  };

  // Read responses for identical requests (response_cache.h): keyed by the route, the
  // collection, the object, every query parameter as sent, the recipient and its read right,
  // and the state of the objects' database this request reads (taken before its snapshot).
  auto cache_key = [&](std::string_view route) -> std::string {
    if (!cache_->enabled() || who.state.empty()) return {};
    const std::string& token = who.state;
    std::string k;
    k.reserve(256);
    k.append(route).append("\n").append(info.name).append("\n").append(seg.size() > 4 ? seg[4] : "").append("\n");
    k.append(recipient_name).append(can_read ? "\nr\n" : "\n-\n");
    for (const auto& [name, v] : params) k.append(name).append("=").append(v).append("\n");
    k.append(token);
    return k;
  };
  // A hit: the stored response, audited again as a new release.
  auto from_cache = [&](const std::string& key) -> std::optional<Response> {
    if (key.empty()) return std::nullopt;
    auto hit = cache_->Find(key);
    if (!hit) return std::nullopt;
    Response r;
    r.status = hit->status;
    r.headers = hit->headers;
    r.body = hit->body;
    audit_release(*hit, r);
    return r;
  };
  // A miss: keeps the response (without its deferral) and its audit record when admitted.
  auto keep = [&](const std::string& key, const Response& r, const CachedResponse& rec) {
    if (key.empty() || r.status != 200 || !cache_->Admit(key)) return;
    auto c = std::make_shared<CachedResponse>(rec);
    c->status = r.status;
    c->headers = r.headers;
    c->body = r.body;
    cache_->Put(key, std::move(c));
  };
  // A released page leaving as `r`: its audit record, kept with the response, then audited.
  auto release = [&](const std::string& key, Response& r, const std::vector<store::StoredObject>& objs,
                     const std::vector<policy::SharedDecision>& why, const std::optional<policy::Decision>& local) {
    CachedResponse rec;
    audit_record(objs, why, local ? &*local : nullptr, rec);
    keep(key, r, rec);
    audit_release(rec, r);
  };

  // §5.2 Collection
  if (seg.size() == 3) {
    if (req.method != "GET") return method_not_allowed("GET");
    Json j;
    j.Open().Str("id", info.id).Str("title", coll->title);
    if (!coll->description.empty()) j.Str("description", coll->description);
    j.Bool("can_read", can_read).Bool("can_write", can_write).RawValue("media_types", StrArray({kStixMediaType})).Close();
    return JsonResponse(200, j.Take());
  }

  // Query parameters shared by manifest, objects, object and versions (§3.4).
  store::Query q;
  q.collection = info.name;
  q.limit = config_.default_page_size;
  std::string bad;
  bool version_given = false;
  for (const auto& [k, v] : params) {
    if (k == "added_after") {
      auto ts = ParseTimestamp(v);
      if (!ts) bad = "added_after must be an RFC 3339 timestamp";
      else q.added_after = ToMicros(*ts);
    } else if (k == "limit") {
      char* end = nullptr;
      long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || n < 1) bad = "limit must be a positive integer";
      else q.limit = std::min<size_t>(static_cast<size_t>(n), config_.max_page_size);
    } else if (k == "next") {
      q.cursor = v;
    } else if (k == "match[id]") {
      for (auto& x : SplitComma(v)) q.ids.push_back(x);
    } else if (k == "match[type]") {
      for (auto& x : SplitComma(v)) q.types.push_back(x);
    } else if (k == "match[spec_version]") {
      for (auto& x : SplitComma(v)) q.spec_versions.push_back(x);
    } else if (k == "match[version]") {
      version_given = true;
      q.versions = {};
      for (auto& x : SplitComma(v)) {
        if (x == "all") q.versions.all = true;
        else if (x == "first") q.versions.first = true;
        else if (x == "last") q.versions.last = true;
        else if (auto key = VersionKey(x); !key.empty()) q.versions.versions.push_back(key);
        else bad = "match[version] values are first, last, all or RFC 3339 timestamps";
      }
    }  // unknown parameters are ignored (§3.4)
  }
  if (!bad.empty()) return Error(400, "Bad Request", bad);
  if (q.versions.empty()) q.versions = store::VersionFilter::Last();

  auto page_headers = [](Response& r, const std::vector<store::StoredObject>& objs) {
    if (objs.empty()) return;
    auto [mn, mx] = std::minmax_element(objs.begin(), objs.end(),
                                        [](const auto& a, const auto& b) { return a.date_added < b.date_added; });
    r.Set("X-TAXII-Date-Added-First", MicrosText(mn->date_added));
    r.Set("X-TAXII-Date-Added-Last", MicrosText(mx->date_added));
  };
  auto page_error = [&](const Status& st) {
    if (st.code() == Code::kInvalid) return Error(400, "Bad Request", st.message());
    return Error(500, "Internal Server Error", "the store could not answer");
  };

  // One page as the recipient receives it. Withheld objects leave no trace: the page is
  // filled from further store pages until `limit` released objects (plus one to know
  // whether there is more) are found, and `next` points after the last released object,
  // so neither the count, nor `more`, nor a page boundary, nor a header reveals them.
  // For a partner every object is rendered (variants, references) and, with match[id],
  // only what the recipient knows by that id is returned.
  struct Released {
    std::vector<store::StoredObject> objects;  // may share the store's rows (read them through the accessors)
    std::vector<policy::SharedDecision> decisions;  // a partner's, one per object (pages with bodies)
    std::optional<policy::Decision> local;     // a local reader's, the same for every object
    bool more = false;
    std::string next;
  };
  const bool peer_partner = partner && store_.GetPeer(partner->identity).ok();
  // For a partner node: the envelope member with this node's signature of every object.
  auto sign_member = [&](const std::vector<store::StoredObject>& objs) {
    if (!peer_partner || !node_key_ || objs.empty()) return std::string();
    std::vector<federation::ToSign> to_sign;
    for (const auto& o : objs) to_sign.push_back({o.Id(), o.Modified(), o.Json(), {}});
    return federation::SignaturesMember(to_sign, *node_key_, to.node_identity);
  };
  auto release_page = [&](store::Query query, bool bodies) -> Result<Released> {
    Released out;
    const size_t limit = query.limit;
    const bool for_partner = partner.has_value();  // partners need bodies to be decided and rendered
    // The page may share the store's cached rows: a local reader's objects leave as stored, and
    // the Releaser copies a partner's only when it changes them (a variant, a rendering).
    query.share_rows = true;
    const uint64_t fp = store::QueryFingerprint(query);
    if (for_partner) query.held_for = partner->identity;  // the release history comes with the page
    // One object more than the page from the store: whether there is more is then known without
    // reading a second store page (the limit is not part of a cursor's fingerprint).
    query.limit = limit + 1;
    out.objects.reserve(std::min<size_t>(limit + 1, 1024));
    if (for_partner && bodies) out.decisions.reserve(std::min<size_t>(limit + 1, 1024));
    if (!for_partner) out.local = releaser_.LocalDecision(to);
    while (true) {
      // A partner's manifest is decided on each object's facts (kept by the Releaser between
      // requests): rows come without a body, and the Releaser reads the policy view of the
      // versions it has not seen (or must render), never the whole object.
      auto page = bodies ? store_.Query(query) : store_.Manifest(query);
      if (!page.ok()) return page.status();
      std::vector<policy::SharedDecision> why;
      // Manifests are not audited (ids only): their decisions are not kept.
      // A local reader's decision is one for all (out.local): none is kept per object.
      auto released = releaser_.ReleaseFrom(store_, info.name, std::move(page->objects), to,
                                            bodies && for_partner ? &why : nullptr);
      if (!released.ok()) return released.status();
      auto& objs = *released;
      if (out.objects.empty() && !peer_partner && query.ids.empty()) {
        // Nothing to filter out (the usual page): the store's page becomes the response's as it
        // is, without moving each object into a second vector.
        if (objs.size() > limit + 1) objs.resize(limit + 1);
        if (why.size() > objs.size()) why.resize(objs.size());
        out.objects = std::move(objs);
        out.decisions = std::move(why);
      } else {
        for (size_t k = 0; k < objs.size() && out.objects.size() <= limit; ++k) {
          // A partner node never gets back what it sent us (federation loops).
          if (peer_partner && objs[k].Source() == partner->identity) continue;
          // match[id] names what the recipient knows: the original id or the variant id.
          if (!query.ids.empty() && std::find(query.ids.begin(), query.ids.end(), objs[k].Id()) == query.ids.end()) continue;
          out.objects.push_back(std::move(objs[k]));
          if (k < why.size()) out.decisions.push_back(std::move(why[k]));
        }
      }
      if (out.objects.size() > limit || !page->more) break;
      query.cursor = page->next;
    }
    if (out.objects.size() > limit) {
      out.objects.resize(limit);
      if (out.decisions.size() > limit) out.decisions.resize(limit);
      out.more = true;
      out.next = store::EncodeCursor(out.objects.back().date_added, fp);
    }
    return out;
  };

  // An envelope (§3.7) written once into one buffer: the objects' JSON is copied only there.
  auto envelope = [&](const Released& page) {
    std::string sig = sign_member(page.objects);
    size_t size = 64 + page.next.size() + sig.size();
    for (const auto& o : page.objects) size += o.Json().size() + 1;
    Json j(size);
    j.Open().Bool("more", page.more);
    if (page.more) j.Str("next", page.next);
    if (!page.objects.empty()) {
      j.Key("objects").Raw("[");
      for (size_t k = 0; k < page.objects.size(); ++k) {
        if (k) j.Raw(",");
        j.Raw(page.objects[k].Json());
      }
      j.Raw("]");
    }
    if (!sig.empty()) j.RawValue(federation::kSignaturesMember, sig);
    return j.Close().Take();
  };

  // §5.3 Manifest
  if (seg.size() == 4 && seg[3] == "manifest") {
    if (req.method != "GET") return method_not_allowed("GET");
    if (!can_read) return Error(403, "Forbidden", "no read access to this collection");
    const std::string key = cache_key("manifest");
    if (auto hit = from_cache(key)) return std::move(*hit);
    auto page = release_page(q, false);
    if (!page.ok()) return page_error(page.status());
    const auto& objs = page->objects;
    Json j(128 + objs.size() * 200);
    j.Open().Bool("more", page->more);
    if (page->more) j.Str("next", page->next);
    if (!objs.empty()) {
      j.Key("objects").Raw("[");
      for (size_t k = 0; k < objs.size(); ++k) {
        const auto& o = objs[k];
        if (k) j.Raw(",");
        j.Open().Str("id", o.id).Str("date_added", MicrosText(o.date_added))
            .Str("version", o.modified.empty() ? MicrosText(o.date_added) : o.modified).Str("media_type", kStixMediaType).Close();
      }
      j.Raw("]");
    }
    Response r = JsonResponse(200, j.Close().Take());
    page_headers(r, objs);
    keep(key, r, CachedResponse{});  // manifests are not audited (ids only)
    return r;
  }

  if (seg.size() < 4 || seg[3] != "objects") return Error(404, "Not Found", "no resource at this path");

  // §5.4 Get objects / §5.5 Add objects
  if (seg.size() == 4) {
    if (req.method == "POST") {
      if (!can_write) return Error(403, "Forbidden", "no write access to this collection");
      if (!IsTaxiiContentType(req.Header("Content-Type"))) {
        return Error(415, "Unsupported Media Type", std::string("send the body as ") + kTaxiiMediaType);
      }
      if (req.body.size() > config_.max_content_length) {
        return Error(413, "Payload Too Large", "the body exceeds max_content_length (" + std::to_string(config_.max_content_length) + " bytes)");
      }
      // The body must be a TAXII envelope (§3.7): an object with "objects" and no "type".
      {
        simdjson::dom::parser p;
        simdjson::dom::element root;
        if (p.parse(req.body).get(root)) return Error(400, "Bad Request", "the body is not well-formed JSON");
        simdjson::dom::object o;
        if (root.get(o) || !root["type"].error() || root["objects"].error()) {
          return Error(422, "Unprocessable Entity", "the body must be a TAXII envelope {\"objects\": [...]}");
        }
      }
      thread_local stix::Validator validator;
      validator.set_marking_lookup([this](std::string_view id) {
        auto r = store_.HasMarkingDefinition(id);
        return r.ok() && *r;
      });
      auto vr = validator.Validate(req.body);
      if (vr.document_error) {
        std::string msg = vr.diagnostics.empty() ? "invalid envelope" : vr.diagnostics[0].ToString();
        return Error(400, "Bad Request", msg);
      }
      // Everything the group commit and the rest of the request need, kept alive until the
      // response is finished (the Put completes on the store's thread, Response::defer).
      struct Ingest {
        stix::ValidationResult vr;
        int64_t request_time = 0;
        std::vector<std::string> signatures;
        std::vector<std::pair<std::string, std::string>> unsigned_objects;  // id, why
        bool from_peer = false;
        std::map<size_t, std::pair<std::string, std::string>> rejected;   // index -> (id, message)
        std::string status_id, body, collection, recipient;
        // Built before the Put, on this thread: each object's status item without its end, so
        // the group commit, which runs the status callback below, only copies them.
        // item_end[k]: where object k's item ends in stored_items.
        std::string stored_items;
        std::vector<size_t> item_end;
        std::optional<policy::PartnerRecipient> partner;
        std::vector<std::string> targets;
        store::IngestRecord record;
      };
      auto in = std::make_shared<Ingest>();
      Ingest* st = in.get();
      st->vr = std::move(vr);
      st->request_time = NowMicros();
      st->collection = info.name;
      st->recipient = recipient_name;
      st->partner = partner;
      // A partner's node must sign what it sends (src/federation): unsigned or badly signed
      // objects are refused and audited; the signatures are kept for relaying.
      if (partner) {
        if (auto peer = store_.GetPeer(partner->identity); peer.ok()) {
          st->from_peer = true;
          std::vector<std::string> sig_json;
          auto errors = federation::CheckSignatures(req.body, st->vr.objects, *peer, &sig_json);
          std::vector<stix::Object> good;
          for (size_t k = 0; k < st->vr.objects.size(); ++k) {
            if (!errors[k].empty()) {
              st->unsigned_objects.emplace_back(st->vr.objects[k].id, errors[k]);
              continue;
            }
            good.push_back(std::move(st->vr.objects[k]));
            st->signatures.push_back(std::move(sig_json[k]));
          }
          st->vr.objects = std::move(good);
        }
      }
      // Rejected objects: one failure each, with every error the validator found.
      for (const auto& d : st->vr.diagnostics) {
        if (d.severity != stix::Severity::kError) continue;
        auto& e = st->rejected[d.index];
        e.first = d.object_id;
        e.second += (e.second.empty() ? "" : "; ") + d.ToString();
      }
      // The status resource and the audit entries are written in the transaction that stores
      // the objects (one durable commit), from the outcome of each object.
      // Time-ordered (UUIDv7): statuses are stored in id order, so each is appended to the
      // table's B-tree instead of landing on a random page (one per POST, in the group commit).
      st->status_id = stix::NewUuid7();
      store::IngestRecord& record = st->record;
      record.status_id = st->status_id;
      record.status_owner = who.principal.name;
      st->item_end.reserve(st->vr.objects.size());
      st->stored_items.reserve(st->vr.objects.size() * 96);
      for (const auto& o : st->vr.objects) {
        Json j;
        j.Open().Str("id", o.id);
        if (!o.modified.empty()) j.Str("version", o.modified);
        st->stored_items += j.Take();  // an open item: "}" or a message and "}" follow
        st->item_end.push_back(st->stored_items.size());
      }
      record.status = [st](const store::PutResult& put) {
        std::string successes, failures;
        successes.reserve(st->stored_items.size() + st->vr.objects.size() + 2);
        size_t n_ok = 0, n_fail = 0;
        size_t begin = 0;
        for (size_t k = 0; k < st->vr.objects.size(); ++k) {
          std::string_view item(st->stored_items.data() + begin, st->item_end[k] - begin);
          begin = st->item_end[k];
          if (put.outcomes[k] == store::PutOutcome::kConflict) {
            if (!failures.empty()) failures += ',';
            failures.append(item).append(
                ",\"message\":\"a different object with this id and modified is already stored; the stored one stands\"}");
            ++n_fail;
          } else {
            if (!successes.empty()) successes += ',';
            successes.append(item);
            successes += put.outcomes[k] == store::PutOutcome::kDuplicate ? ",\"message\":\"already stored\"}" : "}";
            ++n_ok;
          }
        }
        for (const auto& [idx, e] : st->rejected) {
          Json j;
          j.Open().Str("id", e.first.empty() ? "(object " + std::to_string(idx) + ")" : e.first).Str("message", e.second).Close();
          failures += (failures.empty() ? "" : ",") + j.Take();
          ++n_fail;
        }
        for (const auto& [id, why] : st->unsigned_objects) {
          Json j;
          j.Open().Str("id", id).Str("message", why).Close();
          failures += (failures.empty() ? "" : ",") + j.Take();
          ++n_fail;
        }
        Json json;
        json.Open().Str("id", st->status_id).Str("status", "complete").Str("request_timestamp", MicrosText(st->request_time))
            .Num("total_count", static_cast<int64_t>(st->vr.total)).Num("success_count", static_cast<int64_t>(n_ok));
        if (!successes.empty()) json.RawValue("successes", "[" + successes + "]");
        json.Num("failure_count", static_cast<int64_t>(n_fail));
        if (!failures.empty()) json.RawValue("failures", "[" + failures + "]");
        json.Num("pending_count", 0).Close();
        st->body = json.Take();
        return st->body;
      };
      record.audit = [st](const store::PutResult& put) {
        // Ingest is audited: who sent which versions, and what became of them; and refusals.
        std::vector<audit::Entry> entries;
        std::string ids, refused;
        ids.reserve(st->vr.objects.size() * 72);
        for (size_t k = 0; k < st->vr.objects.size(); ++k) {
          if (put.outcomes[k] != store::PutOutcome::kStored) continue;
          if (!ids.empty()) ids += '\n';
          ids.append(st->vr.objects[k].id).append("@").append(st->vr.objects[k].modified);
        }
        entries.push_back({0, NowMicros(), st->recipient, ids, std::to_string(put.stored) + " objects", "ingest",
                           "TAXII add objects to " + st->collection + ": " + std::to_string(put.stored) + " stored, " +
                               std::to_string(put.duplicates) + " duplicates, " + std::to_string(put.conflicts) +
                               " conflicts, " + std::to_string(st->rejected.size()) + " rejected",
                           "", ""});
        for (const auto& [id, why] : st->unsigned_objects) refused += (refused.empty() ? "" : "\n") + id + ": " + why;
        if (!refused.empty()) {
          entries.push_back({0, NowMicros(), st->recipient, refused, std::to_string(st->unsigned_objects.size()) + " objects",
                             "reject", "objects from a partner node without a valid signature", "", ""});
        }
        return entries;
      };
      // What is stored is queued for the partner nodes the collection is pushed to, in the same transaction.
      auto targets = federation::PushTargets(store_, info.name);
      if (!targets.ok()) return Error(500, "Internal Server Error", "the objects could not be stored; nothing was acknowledged");
      st->targets = std::move(*targets);
      who.EndSnapshot();  // the reads are done
      // Stored by the group commit without holding this thread: the response is finished (status,
      // acknowledgements, matching) on a server thread once the commit has ended.
      Response accepted = JsonResponse(202, "");
      accepted.defer = [this, in](std::function<void(Response::Finish)> done) {
        Ingest* st = in.get();
        // Objects a partner sends are remembered as its own: relaying them obeys its markings.
        store_.PutAsync(st->collection, st->vr.objects, st->partner ? std::string_view(st->partner->identity) : std::string_view(),
                        st->targets, st->from_peer ? &st->signatures : nullptr, &st->record,
                        [this, in, done = std::move(done)](Result<store::PutResult> put) {
                          done([this, in, put = std::move(put)](Response& r) {
                            Ingest* st = in.get();
                            if (!put.ok()) {
                              r = Error(500, "Internal Server Error", "the objects could not be stored; nothing was acknowledged");
                              return;
                            }
                            if (put->stored > 0 && !st->targets.empty() && on_stored_) on_stored_();
                            if (put->stored > 0 && st->from_peer) {
                              std::vector<stix::Object> stored;
                              for (size_t k = 0; k < st->vr.objects.size(); ++k) {
                                if (put->outcomes[k] == store::PutOutcome::kStored) stored.push_back(st->vr.objects[k]);
                              }
                              // (The warning rules run in serve's worker over every collection, not on this path.)
                              // A partner node acknowledging our warning; or a warning to us, which we acknowledge.
                              (void)warn::RecordAcknowledgements(store_, stored, st->partner->identity);
                              auto node = store_.NodeIdentity();
                              auto acks = warn::AcknowledgementsFor(stored, node.ok() ? *node : "");
                              if (!acks.empty()) {
                                std::string env = "{\"objects\":[";
                                for (size_t k = 0; k < acks.size(); ++k) env += (k ? "," : "") + acks[k];
                                stix::Validator av;
                                auto ar = av.Validate(env + "]}");
                                auto peer = store_.GetPeer(st->partner->identity);
                                std::vector<std::string> back;
                                if (peer.ok() && !peer->push_collection.empty()) back.push_back(st->partner->identity);
                                if (ar.ok() && store_.Put(st->collection, ar.objects, {}, back).ok() && on_stored_) on_stored_();
                              }
                            }
                            if (watcher_ && watcher_->Watches(st->collection)) {
                              // Matching is best effort: the objects are stored and acknowledged either way.
                              (void)watcher_->OnPosted(st->vr.objects);
                            }
                            r = JsonResponse(202, st->body);
                          });
                        });
      };
      return accepted;
    }
    if (req.method != "GET") return method_not_allowed("GET, POST");
    if (!can_read) return Error(403, "Forbidden", "no read access to this collection");
    const std::string key = cache_key("objects");
    if (auto hit = from_cache(key)) return std::move(*hit);
    auto page = release_page(q, true);
    if (!page.ok()) return page_error(page.status());
    Response r = JsonResponse(200, envelope(*page));
    page_headers(r, page->objects);
    release(key, r, page->objects, page->decisions, page->local);
    return r;
  }

  const std::string& object_id = seg[4];
  q.ids = {object_id};

  // §5.6 Get an object / §5.7 Delete an object
  if (seg.size() == 5) {
    if (req.method == "DELETE") {
      if (!can_read || !can_write) return Error(403, "Forbidden", "deleting needs read and write access");
      // §5.7: without match[version] every version of the object is deleted.
      store::VersionFilter which = q.versions;
      if (!version_given) {
        which = {};
        which.all = true;
      }
      auto n = store_.Delete(info.name, object_id, which);
      if (!n.ok()) return page_error(n.status());
      if (*n == 0) return Error(404, "Not Found", "no such object");
      return JsonResponse(200, "");
    }
    if (req.method != "GET") return method_not_allowed("GET, DELETE");
    if (!can_read) return Error(403, "Forbidden", "no read access to this collection");
    const std::string key = cache_key("object");
    if (auto hit = from_cache(key)) return std::move(*hit);
    auto page = release_page(q, true);
    if (!page.ok()) return page_error(page.status());
    if (page->objects.empty()) return Error(404, "Not Found", "no such object");
    Response r = JsonResponse(200, envelope(*page));
    page_headers(r, page->objects);
    release(key, r, page->objects, page->decisions, page->local);
    return r;
  }

  // §5.8 Object versions
  if (seg.size() == 6 && seg[5] == "versions") {
    if (req.method != "GET") return method_not_allowed("GET");
    if (!can_read) return Error(403, "Forbidden", "no read access to this collection");
    q.versions = {};
    q.versions.all = true;
    auto page = release_page(q, false);
    if (!page.ok()) return page_error(page.status());
    const auto& objs = page->objects;
    if (objs.empty() && q.cursor.empty()) return Error(404, "Not Found", "no such object");
    std::vector<std::string> versions;
    for (const auto& o : objs) versions.push_back(o.modified.empty() ? MicrosText(o.date_added) : o.modified);
    Json j;
    j.Open().Bool("more", page->more);
    if (page->more) j.Str("next", page->next);
    if (!versions.empty()) j.RawValue("versions", StrArray(versions));
    Response r = JsonResponse(200, j.Close().Take());
    page_headers(r, objs);
    return r;
  }
  return Error(404, "Not Found", "no resource at this path");
}

}  // namespace tearline::taxii
