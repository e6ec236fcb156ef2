// bench/ingest: how fast a STIX bundle goes from bytes to committed rows.
//
//   build/bench_ingest [BUNDLE.json|BUNDLE.json.xz] [--runs N]
//
// Default input: ../shared/data/attack/enterprise-attack.json.xz (24,772 objects).
// Prints, best of N runs each:
//   parse-only   simdjson DOM parse of the whole document (the limit: nothing can be faster)
//   validate     parse + every STIX 2.1 check + compact serialization
//   end-to-end   validate + Store::Put into a fresh SQLite file (WAL, synchronous=FULL), committed
// and the end-to-end / parse-only ratio, plus peak RSS of the process.
#include <simdjson.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "stix/stix.h"
#include "store/store.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string ReadAll(const std::string& path) {
  if (path.ends_with(".xz")) {
    std::string cmd = "xz -dc '" + path + "'";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return {};
    std::string out;
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

}  // namespace

int main(int argc, char** argv) {
  std::string path = std::string(TEARLINE_SOURCE_DIR) + "/../shared/data/attack/enterprise-attack.json.xz";
  int runs = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else path = a;
  }
  if (!std::filesystem::exists(path)) {
    std::fprintf(stderr, "bench_ingest: %s not found (pass a bundle path)\n", path.c_str());
    return 2;
  }
  std::string data = ReadAll(path);
  data.reserve(data.size() + tearline::stix::Validator::kPadding);
  double mb = data.size() / 1e6;
  std::printf("input: %s (%.1f MB)\n", path.c_str(), mb);

  double best_parse = 1e9;
  {
    simdjson::dom::parser parser;
    for (int r = 0; r < runs + 1; ++r) {
      auto t0 = Clock::now();
      simdjson::dom::element e;
      if (parser.parse(data).get(e)) {
        std::fprintf(stderr, "bench_ingest: input does not parse\n");
        return 2;
      }
      best_parse = std::min(best_parse, Seconds(t0, Clock::now()));
    }
  }

  double best_validate = 1e9;
  size_t objects = 0;
  {
    tearline::stix::Validator v;
    for (int r = 0; r < runs; ++r) {
      auto t0 = Clock::now();
      auto res = v.Validate(data);
      best_validate = std::min(best_validate, Seconds(t0, Clock::now()));
      objects = res.objects.size();
      if (!res.ok()) std::fprintf(stderr, "note: %zu objects rejected\n", res.rejected);
    }
  }

  double best_e2e = 1e9;
  for (int r = 0; r < runs; ++r) {
    std::string db = (std::filesystem::temp_directory_path() / "tearline-bench-ingest.db").string();
    for (auto suffix : {"", "-wal", "-shm", ".audit", ".audit-wal", ".audit-shm", ".audit-chain"}) std::filesystem::remove(db + suffix);
    auto t0 = Clock::now();
    auto store = tearline::store::OpenSqlite(db);
    if (!store.ok()) {
      std::fprintf(stderr, "bench_ingest: %s\n", store.status().message().c_str());
      return 2;
    }
    (void)(*store)->EnsureCollection("bench");
    tearline::stix::Validator v;
    auto res = v.Validate(data);
    auto put = (*store)->Put("bench", res.objects);
    if (!put.ok()) {
      std::fprintf(stderr, "bench_ingest: %s\n", put.status().message().c_str());
      return 2;
    }
    best_e2e = std::min(best_e2e, Seconds(t0, Clock::now()));
    store->reset();
    for (auto suffix : {"", "-wal", "-shm", ".audit", ".audit-wal", ".audit-shm", ".audit-chain"}) std::filesystem::remove(db + suffix);
  }

  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("objects:     %zu\n", objects);
  std::printf("parse-only:  %8.3f s  %8.0f MB/s  %10.0f objects/s\n", best_parse, mb / best_parse, objects / best_parse);
  std::printf("validate:    %8.3f s  %8.0f MB/s  %10.0f objects/s\n", best_validate, mb / best_validate,
              objects / best_validate);
  std::printf("end-to-end:  %8.3f s  %8.0f MB/s  %10.0f objects/s  (fresh SQLite file, committed)\n", best_e2e,
              mb / best_e2e, objects / best_e2e);
  std::printf("ratio end-to-end / parse-only throughput: %.3f\n", best_parse / best_e2e);
  std::printf("peak RSS: %.0f MB\n", ru.ru_maxrss / 1024.0);
  return 0;
}
