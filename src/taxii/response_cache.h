// Responses of read routes kept for identical requests (private to src/taxii).
//
// A TAXII read response is a function of the request (route, collection, query), of who asks
// (principal, partner) and of the objects' database. An entry is therefore keyed by all of
// them, the last through Store::ReadScope::StateToken(): any commit to the objects' database,
// by this process or another (a CLI import, a permission change, a release history record),
// gives new tokens, so a stale entry can never be found again; it ages out of the LRU.
// What a hit skips is the store query, the Releaser and the rendering; not the
// authentication, not the permission checks before it, and not the audit entry: every
// release is recorded, cached or not.
//
// Admission: a response is kept only when its key was asked for recently without being kept
// (a second request within the last few thousand misses), so a stream of distinct pages
// (a client paging through a collection) does not churn the cache.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/store.h"

namespace tearline::taxii {

struct CachedResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The audit record a release of this response makes (empty `ids`: nothing to audit).
  std::string ids, summary, decision, reasons;
  std::vector<store::ReleaseRecord> history;
  //! The seq of an audit entry listing this release in full, once one is durable (0: none
  //! yet): repeats of the response are audited as audit::SameAs(it). Shared by the copies of
  //! one record (the request's and the cache's).
  std::shared_ptr<std::atomic<int64_t>> audited = std::make_shared<std::atomic<int64_t>>(0);
  size_t Bytes() const { return body.size() + ids.size() + reasons.size() + 256 + history.size() * 96; }
};

class ResponseCache {
 public:
  explicit ResponseCache(size_t max_bytes) : max_bytes_(max_bytes), recent_(kRecent, 0) {}

  bool enabled() const { return max_bytes_ > 0; }

  std::shared_ptr<const CachedResponse> Find(const std::string& key) {
    if (!enabled()) return nullptr;
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) {
      ++misses_;
      return nullptr;
    }
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second.second);
    return it->second.first;
  }

  //! Prometheus text lines (GET /metrics).
  std::string Metrics() {
    std::lock_guard lock(mu_);
    return "# HELP tearline_response_cache_hits_total Read responses served from the response cache.\n"
           "# TYPE tearline_response_cache_hits_total counter\n"
           "tearline_response_cache_hits_total " + std::to_string(hits_) + "\n"
           "# HELP tearline_response_cache_misses_total Cacheable read responses computed.\n"
           "# TYPE tearline_response_cache_misses_total counter\n"
           "tearline_response_cache_misses_total " + std::to_string(misses_) + "\n"
           "# HELP tearline_response_cache_bytes Bytes held by the response cache.\n"
           "# TYPE tearline_response_cache_bytes gauge\n"
           "tearline_response_cache_bytes " + std::to_string(bytes_) + "\n";
  }

  //! After a miss: whether the response computed for `key` should be kept (Put). The first
  //! miss of a key is only remembered; a second one within the last few thousand admits it.
  bool Admit(const std::string& key) {
    if (!enabled()) return false;
    uint64_t h = std::hash<std::string>{}(key) | 1;
    std::lock_guard lock(mu_);
    uint64_t& slot = recent_[h % kRecent];
    if (slot != h) {
      slot = h;
      return false;
    }
    slot = 0;
    return true;
  }

  void Put(const std::string& key, std::shared_ptr<const CachedResponse> value) {
    if (!enabled() || value->Bytes() > max_bytes_ / 8) return;
    std::lock_guard lock(mu_);
    if (map_.count(key)) return;
    bytes_ += value->Bytes() + key.size();
    lru_.push_front(key);
    map_.emplace(key, std::make_pair(std::move(value), lru_.begin()));
    while (bytes_ > max_bytes_ && !lru_.empty()) {
      auto last = map_.find(lru_.back());
      bytes_ -= last->second.first->Bytes() + last->first.size();
      map_.erase(last);
      lru_.pop_back();
    }
  }

 private:
  static constexpr size_t kRecent = 4096;
  const size_t max_bytes_;
  std::mutex mu_;
  std::list<std::string> lru_;  // most recent first
  std::unordered_map<std::string, std::pair<std::shared_ptr<const CachedResponse>, std::list<std::string>::iterator>> map_;
  size_t bytes_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
  std::vector<uint64_t> recent_;  // hashes of keys missed once and not kept
};

}  // namespace tearline::taxii
