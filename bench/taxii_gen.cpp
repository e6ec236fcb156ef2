// bench/taxii_gen: a realistic, reproducible collection for the TAXII load test.
//
//   build/bench_taxii_gen --db PATH [--objects N] [--seed S]
//
// Writes N valid STIX 2.1 objects (default 1,000,000) into collection "bench" of
// the SQLite store: identities, indicators with STIX patterns over IPv4/domain/
// URL/file-hash observables, the observables themselves (deterministic SCO ids),
// observed-data, sightings, relationships and reports, in that mix. Every object
// goes through the validator, like an import.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "stix/stix.h"
#include "store/store.h"

namespace {

std::string Uuid4(std::mt19937_64& rng) {
  uint64_t a = rng(), b = rng();
  a = (a & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;
  b = (b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08llx-%04llx-%04llx-%04llx-%012llx", (unsigned long long)(a >> 32),
                (unsigned long long)((a >> 16) & 0xFFFF), (unsigned long long)(a & 0xFFFF), (unsigned long long)(b >> 48),
                (unsigned long long)(b & 0xFFFFFFFFFFFFULL));
  return buf;
}

std::string Ts(int64_t base, int64_t offset_s) {
  return tearline::FormatMicros((base + offset_s) * 1000000).substr(0, 23) + "Z";
}

}  // namespace

int main(int argc, char** argv) {
  std::string db;
  size_t n = 1000000;
  uint64_t seed = 42;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--db") db = argv[i + 1];
    else if (a == "--objects") n = std::stoull(argv[i + 1]);
    else if (a == "--seed") seed = std::stoull(argv[i + 1]);
  }
  if (db.empty()) {
    std::fprintf(stderr, "usage: bench_taxii_gen --db PATH [--objects N] [--seed S]\n");
    return 2;
  }
  auto store = tearline::store::OpenSqlite(db);
  if (!store.ok() || !(*store)->EnsureCollection("bench").ok()) {
    std::fprintf(stderr, "bench_taxii_gen: cannot open %s\n", db.c_str());
    return 2;
  }
  std::mt19937_64 rng(seed);
  const int64_t base = 1735689600;  // 2025-01-01
  std::vector<std::string> identities, indicators, observed;
  std::unordered_set<std::string> addresses;  // ipv4-addr values already made
  tearline::stix::Validator validator;
  auto t0 = std::chrono::steady_clock::now();
  size_t made = 0;
  while (made < n) {
    std::string batch = "{\"objects\":[";
    size_t in_batch = 0;
    while (in_batch < 5000 && made < n) {
      std::string obj;
      int64_t t = static_cast<int64_t>(rng() % (300 * 86400));
      std::string created = Ts(base, t), id;
      unsigned kind = made < 50 ? 0 : static_cast<unsigned>(rng() % 100);
      if (kind == 0) {
        id = "identity--" + Uuid4(rng);
        obj = R"({"type":"identity","spec_version":"2.1","id":")" + id + R"(","created":")" + created +
              R"(","modified":")" + created + R"(","name":"Organisation )" + std::to_string(made) +
              R"(","identity_class":"organization","sectors":["government-national"]})";
        identities.push_back(id);
      } else if (kind < 35) {
        id = "indicator--" + Uuid4(rng);
        unsigned a = rng() % 256, b = rng() % 256, c = rng() % 256;
        std::string pattern;
        switch (rng() % 4) {
          case 0: pattern = "[ipv4-addr:value = '198.51." + std::to_string(a) + "." + std::to_string(b) + "']"; break;
          case 1: pattern = "[domain-name:value = 'host" + std::to_string(a * 65536 + b * 256 + c) + ".example']"; break;
          case 2: pattern = "[url:value MATCHES '^https://cdn" + std::to_string(a) + "\\\\\\\\.example/.*']"; break;
          default: {
            char h[65];
            for (int k = 0; k < 64; ++k) h[k] = "0123456789abcdef"[rng() % 16];
            h[64] = 0;
            pattern = std::string("[file:hashes.'SHA-256' = '") + h + "' OR ipv4-addr:value ISSUBSET '203.0.113.0/24']";
          }
        }
        obj = R"({"type":"indicator","spec_version":"2.1","id":")" + id + R"(","created":")" + created +
              R"(","modified":")" + created + R"(","created_by_ref":")" + identities[rng() % identities.size()] +
              R"(","name":"Indicator )" + std::to_string(made) + R"(","indicator_types":["malicious-activity"],"pattern":")" +
              pattern + R"(","pattern_type":"stix","valid_from":")" + created + R"(","confidence":)" +
              std::to_string(rng() % 101) + R"(,"object_marking_refs":["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"]})";
        indicators.push_back(id);
      } else if (kind < 55) {
        // An SCO's id is derived from its value (STIX 2.1 section 2.9): an address drawn twice is
        // one object, stored once. Draw until a new one comes, so N objects are N objects.
        std::string value;
        do {
          value = std::to_string(1 + rng() % 223) + "." + std::to_string(rng() % 256) + "." +
                  std::to_string(rng() % 256) + "." + std::to_string(1 + rng() % 254);
        } while (!addresses.insert(value).second);
        id = "ipv4-addr--" + tearline::stix::Uuid5(tearline::stix::kStixScoNamespace, "{\"value\":\"" + value + "\"}");
        obj = R"({"type":"ipv4-addr","spec_version":"2.1","id":")" + id + R"(","value":")" + value + R"("})";
        observed.push_back(id);
      } else if (kind < 70) {
        if (observed.empty()) continue;
        id = "observed-data--" + Uuid4(rng);
        obj = R"({"type":"observed-data","spec_version":"2.1","id":")" + id + R"(","created":")" + created +
              R"(","modified":")" + created + R"(","first_observed":")" + created + R"(","last_observed":")" +
              Ts(base, t + 60) + R"(","number_observed":)" + std::to_string(1 + rng() % 20) + R"(,"object_refs":[")" +
              observed[rng() % observed.size()] + R"("]})";
      } else if (kind < 80) {
        if (indicators.empty()) continue;
        id = "sighting--" + Uuid4(rng);
        obj = R"({"type":"sighting","spec_version":"2.1","id":")" + id + R"(","created":")" + created +
              R"(","modified":")" + created + R"(","sighting_of_ref":")" + indicators[rng() % indicators.size()] +
              R"(","count":)" + std::to_string(1 + rng() % 50) + R"(,"where_sighted_refs":[")" +
              identities[rng() % identities.size()] + R"("]})";
      } else if (kind < 97) {
        if (indicators.size() < 2) continue;
        id = "relationship--" + Uuid4(rng);
        obj = R"({"type":"relationship","spec_version":"2.1","id":")" + id + R"(","created":")" + created +
              R"(","modified":")" + created + R"(","relationship_type":"related-to","source_ref":")" +
              indicators[rng() % indicators.size()] + R"(","target_ref":")" + indicators[rng() % indicators.size()] + R"("})";
      } else {
        if (indicators.empty()) continue;
        id = "report--" + Uuid4(rng);
        obj = R"({"type":"report","spec_version":"2.1","id":")" + id + R"(","created":")" + created +
              R"(","modified":")" + created + R"(","name":"Weekly threat report )" + std::to_string(made) +
              R"(","report_types":["threat-report"],"published":")" + created + R"(","object_refs":[")" +
              indicators[rng() % indicators.size()] + R"("]})";
      }
      batch += (in_batch ? "," : "") + obj;
      ++in_batch;
      ++made;
    }
    batch += "]}";
    auto r = validator.Validate(batch);
    if (!r.ok()) {
      std::fprintf(stderr, "bench_taxii_gen: generated an invalid object: %s\n",
                   r.diagnostics.empty() ? "?" : r.diagnostics[0].ToString().c_str());
      return 1;
    }
    auto put = (*store)->Put("bench", r.objects);
    if (!put.ok()) {
      std::fprintf(stderr, "bench_taxii_gen: %s\n", put.status().message().c_str());
      return 2;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("generated %zu objects into %s (collection \"bench\") in %.1f s\n", made, db.c_str(), secs);
  return 0;
}
