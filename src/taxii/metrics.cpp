// GET /metrics: requests by route and status, a latency histogram per route,
// objects stored per collection, database size (Prometheus text format 0.0.4).
#include <cstdio>

#include "taxii/taxii.h"

namespace tearline::taxii {

void Metrics::Record(std::string_view route, int status, std::chrono::microseconds elapsed) {
  double seconds = static_cast<double>(elapsed.count()) / 1e6;
  std::lock_guard lock(mu_);
  ++requests_[{std::string(route), status}];
  Histogram& h = latency_[std::string(route)];
  for (size_t i = 0; i < std::size(kBuckets); ++i) {
    if (seconds <= kBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

std::string Metrics::Render(store::Store& store) const {
  std::string out;
  char buf[256];
  {
    std::lock_guard lock(mu_);
    out += "# HELP tearline_http_requests_total HTTP requests by route and status.\n";
    out += "# TYPE tearline_http_requests_total counter\n";
    for (const auto& [key, n] : requests_) {
      std::snprintf(buf, sizeof buf, "tearline_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", key.first.c_str(),
                    key.second, static_cast<unsigned long long>(n));
      out += buf;
    }
    out += "# HELP tearline_http_request_duration_seconds Time from a complete request to the written response.\n";
    out += "# TYPE tearline_http_request_duration_seconds histogram\n";
    for (const auto& [route, h] : latency_) {
      for (size_t i = 0; i < std::size(kBuckets); ++i) {
        std::snprintf(buf, sizeof buf, "tearline_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                      route.c_str(), kBuckets[i], static_cast<unsigned long long>(h.buckets[i]));
        out += buf;
      }
      std::snprintf(buf, sizeof buf,
                    "tearline_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                    "tearline_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                    "tearline_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                    route.c_str(), static_cast<unsigned long long>(h.count), route.c_str(), h.sum, route.c_str(),
                    static_cast<unsigned long long>(h.count));
      out += buf;
    }
  }
  out += "# HELP tearline_objects_stored Object versions stored, by collection.\n";
  out += "# TYPE tearline_objects_stored gauge\n";
  if (auto colls = store.ListCollections(); colls.ok()) {
    for (const auto& c : *colls) {
      std::snprintf(buf, sizeof buf, "tearline_objects_stored{collection=\"%s\"} %lld\n", c.name.c_str(),
                    static_cast<long long>(c.object_count));
      out += buf;
    }
  }
  out += "# HELP tearline_store_size_bytes Size of the database.\n# TYPE tearline_store_size_bytes gauge\n";
  if (auto size = store.SizeBytes(); size.ok()) out += "tearline_store_size_bytes " + std::to_string(*size) + "\n";
  return out;
}

std::string RouteOf(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  std::vector<std::string_view> seg;
  size_t start = 1;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) seg.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  if (seg.size() == 1 && seg[0] == "taxii2") return "/taxii2/";
  if (seg.size() == 1 && seg[0] == "metrics") return "/metrics";
  if (seg.size() == 1) return "/{api_root}/";
  if (seg.size() == 3 && seg[1] == "status") return "/{api_root}/status/{id}/";
  if (seg.size() >= 2 && seg[1] == "collections") {
    static const char* kShapes[] = {"", "", "/{api_root}/collections/", "/{api_root}/collections/{id}/"};
    if (seg.size() <= 3) return kShapes[seg.size()];
    if (seg.size() == 4 && seg[3] == "manifest") return "/{api_root}/collections/{id}/manifest/";
    if (seg.size() == 4 && seg[3] == "objects") return "/{api_root}/collections/{id}/objects/";
    if (seg.size() == 5 && seg[3] == "objects") return "/{api_root}/collections/{id}/objects/{object_id}/";
    if (seg.size() == 6 && seg[3] == "objects" && seg[5] == "versions") {
      return "/{api_root}/collections/{id}/objects/{object_id}/versions/";
    }
  }
  return "other";
}

}  // namespace tearline::taxii
