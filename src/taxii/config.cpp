// tearline.toml: every key documented in docs/configuration.md; unknown keys are errors.
#include <toml++/toml.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "taxii/taxii.h"

namespace tearline::taxii {
namespace {

struct Reader {
  std::string error;

  void Fail(const std::string& key, const std::string& what) {
    if (error.empty()) error = key + ": " + what;
  }

  void Unknown(const toml::table& t, const std::string& prefix, std::set<std::string> known) {
    for (const auto& [k, v] : t) {
      if (!known.count(std::string(k.str()))) Fail(prefix + std::string(k.str()), "unknown key");
    }
  }

  void Str(const toml::table& t, const std::string& prefix, const char* key, std::string* out) {
    if (auto n = t.get(key)) {
      if (auto s = n->value<std::string>()) *out = *s;
      else Fail(prefix + key, "must be a string");
    }
  }

  template <class T>
  void Int(const toml::table& t, const std::string& prefix, const char* key, T* out, int64_t min, int64_t max) {
    if (auto n = t.get(key)) {
      auto v = n->value<int64_t>();
      if (!v || !n->is_integer()) Fail(prefix + key, "must be an integer");
      else if (*v < min || *v > max) Fail(prefix + key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
      else *out = static_cast<T>(*v);
    }
  }

  void Bool(const toml::table& t, const std::string& prefix, const char* key, bool* out) {
    if (auto n = t.get(key)) {
      if (auto b = n->value<bool>(); b && n->is_boolean()) *out = *b;
      else Fail(prefix + key, "must be true or false");
    }
  }
};

bool ValidSegment(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return s != "taxii2" && s != "." && s != "..";
}

}  // namespace

Result<Config> ParseConfig(std::string_view text) {
  toml::table root;
  try {
    root = toml::parse(text);
  } catch (const toml::parse_error& e) {
    std::ostringstream m;
    m << "line " << e.source().begin.line << ", column " << e.source().begin.column << ": " << e.description();
    return Status::Invalid("invalid TOML: " + m.str());
  }
  Config c;
  Reader r;
  r.Unknown(root, "", {"server", "limits", "database", "discovery", "api_roots", "matching", "audit", "federation", "warn"});
  if (auto* w = root["warn"].as_table()) {
    r.Unknown(*w, "warn.", {"min_confidence", "two_person", "public_collection"});
    r.Int(*w, "warn.", "min_confidence", &c.warn_min_confidence, 0, 100);
    if (auto b = (*w)["two_person"].value<bool>()) c.warn_two_person = *b;
    else if (w->contains("two_person")) r.Fail("warn.two_person", "must be true or false");
    r.Str(*w, "warn.", "public_collection", &c.warn_public_collection);
  } else if (root.contains("warn")) {
    r.Fail("warn", "must be a table");
  }
  if (auto* f = root["federation"].as_table()) {
    r.Unknown(*f, "federation.", {"poll_interval_ms", "retry_base_ms", "retry_max_ms", "batch", "timeout_ms"});
    r.Int(*f, "federation.", "poll_interval_ms", &c.federation_poll_ms, 10, 3600000);
    r.Int(*f, "federation.", "retry_base_ms", &c.federation_retry_base_ms, 10, 3600000);
    r.Int(*f, "federation.", "retry_max_ms", &c.federation_retry_max_ms, 10, 86400000);
    r.Int(*f, "federation.", "batch", &c.federation_batch, 1, 10000);
    r.Int(*f, "federation.", "timeout_ms", &c.federation_timeout_ms, 100, 600000);
  } else if (root.contains("federation")) {
    r.Fail("federation", "must be a table");
  }
  if (auto* a = root["audit"].as_table()) {
    r.Unknown(*a, "audit.", {"checkpoint_every", "node_key"});
    r.Int(*a, "audit.", "checkpoint_every", &c.checkpoint_every, 1, 100000000);
    r.Str(*a, "audit.", "node_key", &c.node_key);
  } else if (root.contains("audit")) {
    r.Fail("audit", "must be a table");
  }
  if (auto* m = root["matching"].as_table()) {
    r.Unknown(*m, "matching.", {"watch", "indicators", "sightings", "identity", "window_seconds", "max_kept"});
    r.Int(*m, "matching.", "window_seconds", &c.match_window_seconds, 0, int64_t{10} * 365 * 86400);
    r.Int(*m, "matching.", "max_kept", &c.match_max_kept, 0, 10000000);
    r.Str(*m, "matching.", "watch", &c.match_watch);
    r.Str(*m, "matching.", "indicators", &c.match_indicators);
    r.Str(*m, "matching.", "sightings", &c.match_sightings);
    r.Str(*m, "matching.", "identity", &c.match_identity);
    if (c.match_watch.empty() || c.match_indicators.empty()) {
      r.Fail("matching", "watch and indicators are both required");
    }
    if (!c.match_identity.empty() && c.match_identity.rfind("identity--", 0) != 0) {
      r.Fail("matching.identity", "must be an identity id (identity--<uuid>)");
    }
  }
  if (auto* s = root["server"].as_table()) {
    r.Unknown(*s, "server.", {"address", "port", "tls_cert", "tls_key", "public_url", "threads", "public_discovery", "log_format"});
    r.Str(*s, "server.", "address", &c.listen_address);
    r.Int(*s, "server.", "port", &c.listen_port, 0, 65535);
    r.Str(*s, "server.", "tls_cert", &c.tls_cert);
    r.Str(*s, "server.", "tls_key", &c.tls_key);
    r.Str(*s, "server.", "public_url", &c.public_url);
    r.Int(*s, "server.", "threads", &c.threads, 0, 256);
    r.Bool(*s, "server.", "public_discovery", &c.public_discovery);
    r.Str(*s, "server.", "log_format", &c.log_format);
  } else if (root.contains("server")) {
    r.Fail("server", "must be a table");
  }
  if (auto* l = root["limits"].as_table()) {
    r.Unknown(*l, "limits.", {"max_content_length", "max_page_size", "default_page_size", "max_header_bytes", "max_connections", "request_timeout_ms", "response_cache_mb", "object_cache_mb"});
    r.Int(*l, "limits.", "max_content_length", &c.max_content_length, 1024, int64_t{1} << 32);
    r.Int(*l, "limits.", "max_page_size", &c.max_page_size, 1, 100000);
    r.Int(*l, "limits.", "default_page_size", &c.default_page_size, 1, 100000);
    r.Int(*l, "limits.", "max_header_bytes", &c.max_header_bytes, 1024, 1 << 20);
    r.Int(*l, "limits.", "max_connections", &c.max_connections, 1, 1000000);
    r.Int(*l, "limits.", "response_cache_mb", &c.response_cache_mb, 0, 1 << 20);
    r.Int(*l, "limits.", "object_cache_mb", &c.object_cache_mb, 0, 1 << 20);
    int64_t ms = c.request_timeout.count();
    r.Int(*l, "limits.", "request_timeout_ms", &ms, 100, 3600000);
    c.request_timeout = std::chrono::milliseconds(ms);
  }
  if (auto* d = root["database"].as_table()) {
    r.Unknown(*d, "database.", {"path"});
    r.Str(*d, "database.", "path", &c.database);
  }
  if (auto* d = root["discovery"].as_table()) {
    r.Unknown(*d, "discovery.", {"title", "description", "contact", "default"});
    r.Str(*d, "discovery.", "title", &c.title);
    r.Str(*d, "discovery.", "description", &c.description);
    r.Str(*d, "discovery.", "contact", &c.contact);
    r.Str(*d, "discovery.", "default", &c.default_api_root);
  }
  if (auto* roots = root["api_roots"].as_array()) {
    size_t i = 0;
    for (auto& node : *roots) {
      std::string p = "api_roots[" + std::to_string(i++) + "].";
      auto* t = node.as_table();
      if (!t) {
        r.Fail(p, "must be a table ([[api_roots]])");
        continue;
      }
      r.Unknown(*t, p, {"path", "title", "description", "collections"});
      ApiRootConfig a;
      r.Str(*t, p, "path", &a.path);
      r.Str(*t, p, "title", &a.title);
      r.Str(*t, p, "description", &a.description);
      if (!ValidSegment(a.path)) r.Fail(p + "path", "must be 1-64 characters of letters, digits, '-', '_', '.' (not \"taxii2\")");
      if (auto* cols = (*t)["collections"].as_array()) {
        size_t j = 0;
        for (auto& cn : *cols) {
          std::string cp = p + "collections[" + std::to_string(j++) + "].";
          auto* ct = cn.as_table();
          if (!ct) {
            r.Fail(cp, "must be a table");
            continue;
          }
          r.Unknown(*ct, cp, {"name", "title", "description"});
          CollectionConfig cc;
          r.Str(*ct, cp, "name", &cc.name);
          r.Str(*ct, cp, "title", &cc.title);
          r.Str(*ct, cp, "description", &cc.description);
          if (cc.name.empty()) r.Fail(cp + "name", "is required");
          if (cc.title.empty()) cc.title = cc.name;
          a.collections.push_back(std::move(cc));
        }
      }
      if (a.title.empty()) a.title = a.path;
      c.api_roots.push_back(std::move(a));
    }
  }
  std::set<std::string> paths;
  for (const auto& a : c.api_roots) {
    if (!paths.insert(a.path).second) r.Fail("api_roots", "path \"" + a.path + "\" appears twice");
  }
  if (c.api_roots.empty()) r.Fail("api_roots", "at least one [[api_roots]] is required");
  if (!c.default_api_root.empty() && !paths.count(c.default_api_root)) {
    r.Fail("discovery.default", "\"" + c.default_api_root + "\" is not one of the api_roots");
  }
  if (c.log_format != "text" && c.log_format != "json") r.Fail("server.log_format", "must be \"text\" or \"json\"");
  if (c.tls_cert.empty() != c.tls_key.empty()) r.Fail("server.tls_cert", "tls_cert and tls_key go together");
  bool loopback = c.listen_address == "127.0.0.1" || c.listen_address == "::1" || c.listen_address.rfind("127.", 0) == 0;
  if (c.tls_cert.empty() && !loopback) {
    r.Fail("server.address", "plain HTTP is allowed on loopback only; set tls_cert and tls_key to listen on " + c.listen_address);
  }
  if (c.default_page_size > c.max_page_size) r.Fail("limits.default_page_size", "must not exceed limits.max_page_size");
  if (!r.error.empty()) return Status::Invalid(r.error);
  return c;
}

namespace {
size_t ComputeObjectCacheMb() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 256;  // unknown: the floor
  uint64_t bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
  // A limit on this process's memory: its cgroup's and every group's above it (from
  // /proc/self/cgroup): v2 memory.max ("max" when none), v1 memory.limit_in_bytes.
  std::vector<std::string> limits = {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
  {
    std::ifstream self("/proc/self/cgroup");
    std::string line;
    while (std::getline(self, line)) {
      std::string root, file;
      if (line.rfind("0::/", 0) == 0) {
        root = "/sys/fs/cgroup", file = "/memory.max";
      } else if (auto at = line.find(":memory:/"); at != std::string::npos) {
        root = "/sys/fs/cgroup/memory", file = "/memory.limit_in_bytes";
      } else {
        continue;
      }
      for (std::string group = line.substr(line.find(":/") + 1); group.size() > 1; group.resize(group.rfind('/'))) {
        limits.push_back(root + group + file);
      }
    }
  }
  for (const auto& limit : limits) {
    std::ifstream in(limit);
    uint64_t v = 0;
    if (in >> v && v > 0 && v < bytes) bytes = v;
  }
  // At most 1 TiB (the largest value the key accepts).
  return std::clamp<size_t>(static_cast<size_t>(bytes / 8 >> 20), 256, size_t{1} << 20);
}
}  // namespace

// Read once: every Config built (each parse, each test) starts from it.
size_t DefaultObjectCacheMb() {
  static const size_t mb = ComputeObjectCacheMb();
  return mb;
}

Result<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Io("cannot read config " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = ParseConfig(ss.str());
  if (!c.ok()) return Status::Invalid(path + ": " + c.status().message());
  return c;
}

}  // namespace tearline::taxii
