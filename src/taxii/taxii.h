// tearline TAXII 2.1: request -> (principal, query) -> store -> Releaser -> response.
//
// This is the public header of src/taxii. Service::Handle is a plain function
// from net::Request to net::Response, so every endpoint is testable without a
// socket; `tearline serve` puts it behind net::Server. Sections refer to
// TAXII Version 2.1, OASIS Standard (docs/taxii-conformance.md).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <optional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "net/net.h"
#include "pattern/pattern.h"
#include "policy/policy.h"
#include "store/store.h"

namespace tearline::taxii {

inline constexpr const char* kTaxiiMediaType = "application/taxii+json;version=2.1";
inline constexpr const char* kStixMediaType = "application/stix+json;version=2.1";

struct CollectionConfig {
  std::string name;         //!< store collection name
  std::string title;
  std::string description;
};

struct ApiRootConfig {
  std::string path;         //!< URL segment, e.g. "api1"
  std::string title;
  std::string description;
  std::vector<CollectionConfig> collections;
};

//! The default of [limits] object_cache_mb: an eighth of the memory this process may use (the
//! machine's, or its cgroup's limit when lower), at least 256 MiB. A random page of a collection
//! whose rows are not all in the cache reads the others through SQL (a 1,000,000-object
//! collection needs ~870 MB: docs/benchmarks.md, fourteenth session). The budget is filled only
//! by rows read, so an idle or small node does not use it.
size_t DefaultObjectCacheMb();

//! tearline.toml, with documented defaults (docs/configuration.md).
struct Config {
  std::string listen_address = "127.0.0.1";
  uint16_t listen_port = 8443;
  std::string tls_cert;      //!< PEM; plain HTTP only when both are empty and the address is loopback
  std::string tls_key;
  std::string database = "var/tearline.db";
  std::string public_url;    //!< base URL in discovery; default http(s)://address:port
  std::string title = "tearline node";
  std::string description;
  std::string contact;
  bool public_discovery = false;
  std::string default_api_root;
  std::vector<ApiRootConfig> api_roots;
  // limits
  size_t max_content_length = 10 << 20;
  size_t max_page_size = 1000;     //!< larger `limit` values are clamped
  size_t default_page_size = 100;
  size_t max_header_bytes = 16 << 10;
  size_t max_connections = 1024;
  size_t threads = 0;
  std::chrono::milliseconds request_timeout{10000};
  size_t response_cache_mb = 64;  //!< read responses kept for identical requests (0: off)
  //! Rows kept by the store's page index (0: pages are SQL queries). Default: DefaultObjectCacheMb().
  size_t object_cache_mb = DefaultObjectCacheMb();
  std::string log_format = "text";  //!< text or json
  // [matching]: observed-data posted to `watch` is matched against the indicators of
  // `indicators`; the sightings (where_sighted_refs `identity`) are stored in `sightings`.
  std::string match_watch;
  std::string match_indicators;
  std::string match_sightings = "sightings";
  std::string match_identity;
  int64_t match_window_seconds = 86400;  //!< multi-observation patterns span POSTs within this window
  size_t match_max_kept = 10000;         //!< earlier observations kept for them, at most
  // [audit]: sign the chain's head every N entries (and on shutdown) with the node key.
  size_t checkpoint_every = 1000;
  std::string node_key;  //!< key file; default "<database>.key"
  // [federation]: push/pull workers (src/federation); partners' nodes are configured with the CLI.
  int64_t federation_poll_ms = 500;
  int64_t federation_retry_base_ms = 500;
  int64_t federation_retry_max_ms = 60000;
  size_t federation_batch = 200;
  int64_t federation_timeout_ms = 15000;
  // [warn]: duty-to-warn rules (src/warn); parties are registered with the CLI.
  int64_t warn_min_confidence = 50;
  bool warn_two_person = false;
  std::string warn_public_collection = "public";
};

class Watcher;
class AuditWriter;
class ResponseCache;

//! This node's identity for where_sighted_refs when none is configured: a UUIDv5 of the host name.
std::string NodeIdentity();

//! A STIX sighting (new id, created/modified now) for one match of the bulk matcher.
std::string SightingJson(const pattern::Matcher::Sighting& s, const std::string& where_sighted);

//! Parses a TOML config; errors name the key and what is wrong.
Result<Config> ParseConfig(std::string_view toml_text);
Result<Config> LoadConfig(const std::string& path);

//! Argon2id (libsodium) helpers for principals and tokens.
std::string HashSecret(std::string_view secret);
bool VerifySecret(std::string_view hash, std::string_view secret);
//! A new random bearer token "tlt_<id>.<secret>" for `principal`; stores its hash.
Result<std::string> IssueToken(store::Store& store, std::string_view principal);

//! Prometheus metrics of a running server (text exposition format 0.0.4).
class Metrics {
 public:
  //! Records one finished request. Thread safe.
  void Record(std::string_view route, int status, std::chrono::microseconds elapsed);
  //! The exposition text; counts objects and the database size through `store`.
  std::string Render(store::Store& store) const;

 private:
  static constexpr double kBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  struct Histogram {
    uint64_t buckets[std::size(kBuckets)] = {};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
};

//! The route template of a request target, for metric labels, e.g.
//! "/{api_root}/collections/{id}/objects/{object_id}/versions/". Unknown shapes give "other".
std::string RouteOf(std::string_view target);

class Service {
 public:
  //! `store` and `releaser` are borrowed and must outlive the service; so does
  //! `metrics` when given (GET /metrics serves it).
  Service(Config config, store::Store& store, const policy::Releaser& releaser, const Metrics* metrics = nullptr);

  ~Service();

  //! Thread safe. Never throws. A response that releases objects leaves only once its audit
  //! entry is durably committed: with `may_defer` that wait is left to the caller through
  //! Response::defer (the HTTP server does it without holding a thread); otherwise Handle
  //! waits itself and returns the final response.
  net::Response Handle(const net::Request& request, bool may_defer = false);

  //! A TAXII error message resource (§3.6.1) as a response.
  static net::Response Error(int status, std::string title, std::string description);

  const Config& config() const { return config_; }
  //! Why the service cannot run safely (e.g. the node key is unreadable); empty when fine.
  const std::string& startup_error() const { return startup_error_; }
  //! Called after objects were stored and queued for partner nodes (serve wakes the Federator).
  void set_on_stored(std::function<void()> f) { on_stored_ = std::move(f); }
  //! The node key (loaded at construction); nullopt when it could not be loaded.
  const std::optional<audit::NodeKey>& node_key() const { return node_key_; }

 private:
  struct Caller;
  net::Response HandleNow(const net::Request& request);
  net::Response Dispatch(const net::Request& req, const Caller& who, const std::vector<std::string>& seg,
                         const std::multimap<std::string, std::string>& params);
  //! `again`: called again because a remembered HTTP Basic check was against an older password.
  bool Authenticate(const net::Request& req, Caller* who, bool again = false);
  // The principal and the partner list as of the caller's state token (Caller::state): read
  // from the store once per state of the objects' database, not on every request. Without a
  // token (routes that are not cached, stores without tokens) they are read every time.
  Result<store::Principal> PrincipalOf(const Caller& who, const std::string& name);
  Result<std::vector<store::Partner>> PartnersOf(const Caller& who);
  void MemoForLocked(const std::string& token);

  Config config_;
  std::string startup_error_;
  std::optional<audit::NodeKey> node_key_;
  std::function<void()> on_stored_;
  store::Store& store_;
  //! Store collection info per configured collection name, resolved once (ids never change).
  std::unordered_map<std::string, store::CollectionInfo> collections_;
  const policy::Releaser& releaser_;
  const Metrics* metrics_;
  std::unique_ptr<Watcher> watcher_;  // store-backed matching, when configured
  std::unique_ptr<AuditWriter> audit_;  // group commit of release records
  std::unique_ptr<ResponseCache> cache_;  // read responses for identical requests (response_cache.h)
  // Successful credential checks, cached so Argon2id runs once per credential
  // and not per request: key = SHA-256 of the presented credential.
  // One check per credential at a time (Authenticate): requests presenting a credential being
  // checked wait for that check's result instead of running their own.
  struct Verified {
    std::string principal;
    std::chrono::steady_clock::time_point until;
    std::string password_hash;  // HTTP Basic: the principal's hash it was checked against
  };
  std::mutex cache_mu_;
  std::condition_variable auth_cv_;   // a check ended
  std::unordered_map<std::string, Verified> auth_cache_;
  std::unordered_set<std::string> auth_checking_;  // keys whose check runs
  std::atomic<uint64_t> auth_checks_{0};            // Argon2id verifications run (/metrics)
  // PrincipalOf/PartnersOf: what was read under `state_` (any commit gives a new token, so a
  // permission or partner change applies to the next request, as when read every time).
  std::mutex state_mu_;
  std::string state_;
  std::unordered_map<std::string, store::Principal> state_principals_;
  std::optional<std::vector<store::Partner>> state_partners_;
};

}  // namespace tearline::taxii
