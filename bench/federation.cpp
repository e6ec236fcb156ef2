// Federation benchmark (issue #6): publish-to-visible latency from node A's ingest to node
// B's store on loopback, and replication throughput.
//
//   build/bench_federation [--objects 10000] [--batch 100] [--rate OBJECTS_PER_S] [--dir DIR]
//
// Without --rate the client posts as fast as A accepts (saturation: latency then measures
// the backlog); with --rate the envelopes are paced to that offered load.
//
// Starts two `tearline serve` processes (A pushes to B), sends a warm-up envelope of 200
// identities through them (not measured), POSTs N new indicators to A's
// TAXII inbox in envelopes of --batch, waits until B has them all, then reads from both
// databases when each version was stored (date_added, the same machine clock) and reports
// p50/p95/p99/max of B.date_added - A.date_added and objects/s. Baseline in the same run:
// the time A itself needed to accept the POSTs (ingest throughput without federation work).
#include <curl/curl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string Run(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (p) pclose(p);
  while (!out.empty() && (out.back() == '\n')) out.pop_back();
  return out;
}

size_t OnBody(char* p, size_t s, size_t n, void* ud) {
  static_cast<std::string*>(ud)->append(p, s * n);
  return s * n;
}

long Post(const std::string& url, const std::string& token, const std::string& body) {
  CURL* c = curl_easy_init();
  std::string out;
  struct curl_slist* hs = nullptr;
  hs = curl_slist_append(hs, "Accept: application/taxii+json;version=2.1");
  hs = curl_slist_append(hs, "Content-Type: application/taxii+json;version=2.1");
  hs = curl_slist_append(hs, ("Authorization: Bearer " + token).c_str());
  hs = curl_slist_append(hs, "Expect:");
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hs);
  curl_easy_cleanup(c);
  return status;
}

int64_t Scalar(const std::string& db, const std::string& sql) {
  return std::atoll(Run("sqlite3 " + db + " \"" + sql + "\"").c_str());
}

}  // namespace

int main(int argc, char** argv) {
  int n = 10000, batch = 100;
  double rate = 0;
  std::string dir = "build/bench-federation", bin = "build/tearline";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--objects") n = std::atoi(argv[i + 1]);
    else if (a == "--batch") batch = std::atoi(argv[i + 1]);
    else if (a == "--rate") rate = std::atof(argv[i + 1]);
    else if (a == "--dir") dir = argv[i + 1];
    else if (a == "--bin") bin = argv[i + 1];
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto node = [&](const std::string& name, int port, const std::string& coll) {
    std::ofstream(dir + "/" + name + ".toml")
        << "[server]\nport = " << port << "\n[database]\npath = \"" << dir << "/" << name
        << ".db\"\n[federation]\npoll_interval_ms = 200\nbatch = 500\n[[api_roots]]\npath = \"ct\"\n"
        << "  [[api_roots.collections]]\n  name = \"" << coll << "\"\n";
    std::ofstream(dir + "/empty.json") << R"({"type":"bundle","id":"bundle--00000000-0000-4000-8000-000000000000"})";
    Run(bin + " import --db " + dir + "/" + name + ".db --collection " + coll + " " + dir + "/empty.json");
  };
  node("a", 18711, "intel");
  node("b", 18712, "inbox");
  std::string a = dir + "/a.db", b = dir + "/b.db";
  std::string a_key = Run(bin + " node key --db " + a), b_key = Run(bin + " node key --db " + b);
  std::string a_id = a_key.substr(0, a_key.find(' ')), b_id = b_key.substr(0, b_key.find(' '));
  a_key = a_key.substr(a_key.find(' ') + 1);
  b_key = b_key.substr(b_key.find(' ') + 1);
  // B accepts A's releases; A pushes its "intel" collection to B.
  Run(bin + " principal add --db " + b + " node-a --read inbox --write inbox");
  std::string b_token = Run(bin + " principal token --db " + b + " node-a");
  Run(bin + " partner add --db " + b + " " + a_id + " --principal node-a");
  Run(bin + " partner set-peer --db " + b + " " + a_id + " --url http://127.0.0.1:18711/ct/");
  Run(bin + " partner trust-key --db " + b + " " + a_id + " " + a_key);
  std::string b_inbox = Run("sqlite3 " + b + " \"SELECT taxii_id FROM collections WHERE name='inbox'\"");
  Run(bin + " group add --db " + a + " g");
  Run(bin + " partner add --db " + a + " " + b_id + " --group g");
  Run(bin + " collection share --db " + a + " intel --group g --default-tlp green");
  Run(bin + " partner set-peer --db " + a + " " + b_id + " --url http://127.0.0.1:18712/ct/ --token " + b_token +
      " --push-collection " + b_inbox);
  Run(bin + " partner trust-key --db " + a + " " + b_id + " " + b_key);
  Run(bin + " principal add --db " + a + " analyst --read intel --write intel");
  std::string a_token = Run(bin + " principal token --db " + a + " analyst");
  std::string a_intel = Run("sqlite3 " + a + " \"SELECT taxii_id FROM collections WHERE name='intel'\"");

  std::vector<pid_t> pids;
  for (const char* name : {"a", "b"}) {
    pid_t pid = fork();
    if (pid == 0) {
      std::string log = dir + "/" + name + ".log", cfg = dir + "/" + name + ".toml";
      freopen(log.c_str(), "w", stdout);
      freopen(log.c_str(), "w", stderr);
      execl(bin.c_str(), bin.c_str(), "serve", "--config", cfg.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    pids.push_back(pid);
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));

  std::mt19937_64 rng(7);
  // Warm-up (not measured): a first envelope through A to B, so connections, caches and
  // the databases' first pages are in place; then the measured run.
  const int warmup = 200;
  {
    std::string body = "{\"objects\":[";
    for (int k = 0; k < warmup; ++k) {
      char uuid[40];
      std::snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012d", k);
      body += std::string(k ? "," : "") + R"({"type":"identity","spec_version":"2.1","id":"identity--)" + uuid +
              R"(","created":"2026-12-01T00:00:00.000Z","modified":"2026-12-01T00:00:00.000Z","name":"warm-up )" +
              std::to_string(k) + R"("})";
    }
    body += "]}";
    if (Post("http://127.0.0.1:18711/ct/collections/" + a_intel + "/objects/", a_token, body) != 202) {
      std::fprintf(stderr, "POST to A failed\n");
      return 2;
    }
    for (int i = 0; i < 300 && Scalar(b, "SELECT count(*) FROM objects WHERE type='identity'") < warmup; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; i += batch) {
    if (rate > 0) std::this_thread::sleep_until(t0 + std::chrono::microseconds(static_cast<int64_t>(i / rate * 1e6)));
    std::string body = "{\"objects\":[";
    for (int k = i; k < std::min(n, i + batch); ++k) {
      char uuid[40];
      uint64_t r = rng();
      std::snprintf(uuid, sizeof uuid, "%08x-%04x-4%03x-8%03x-%012llx", static_cast<unsigned>(k), static_cast<unsigned>(r & 0xffff),
                    static_cast<unsigned>((r >> 16) & 0xfff), static_cast<unsigned>((r >> 28) & 0xfff),
                    static_cast<unsigned long long>((r >> 8) & 0xffffffffffffULL));
      body += std::string(k > i ? "," : "") + R"({"type":"indicator","spec_version":"2.1","id":"indicator--)" + uuid +
              R"(","created":"2026-12-01T00:00:00.000Z","modified":"2026-12-01T00:00:00.000Z","name":"bench )" +
              std::to_string(k) + R"(","pattern":"[ipv4-addr:value = '10.)" + std::to_string(k / 65536 % 256) + "." +
              std::to_string(k / 256 % 256) + "." + std::to_string(k % 256) +
              R"(']","pattern_type":"stix","valid_from":"2026-12-01T00:00:00Z"})";
    }
    body += "]}";
    if (Post("http://127.0.0.1:18711/ct/collections/" + a_intel + "/objects/", a_token, body) != 202) {
      std::fprintf(stderr, "POST to A failed\n");
      return 2;
    }
  }
  double ingest_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int i = 0; i < 1200; ++i) {
    if (Scalar(b, "SELECT count(*) FROM objects WHERE type='indicator'") >= n) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (pid_t p : pids) {
    kill(p, SIGTERM);
    waitpid(p, nullptr, 0);
  }
  std::string lat = Run("sqlite3 " + b + " \"ATTACH '" + a + "' AS a; SELECT o.date_added - x.date_added FROM objects o "
                        "JOIN a.objects x ON x.id=o.id AND x.version=o.version WHERE o.type='indicator' ORDER BY 1\"");
  std::vector<int64_t> v;
  size_t start = 0;
  while (start < lat.size()) {
    size_t end = lat.find('\n', start);
    if (end == std::string::npos) end = lat.size();
    v.push_back(std::atoll(lat.substr(start, end - start).c_str()));
    start = end + 1;
  }
  if (v.size() < static_cast<size_t>(n)) {
    std::fprintf(stderr, "only %zu of %d objects reached B\n", v.size(), n);
    return 1;
  }
  auto pct = [&](double p) { return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))] / 1000.0; };
  int64_t span = Scalar(b, "ATTACH '" + a + "' AS a; SELECT (SELECT max(date_added) FROM objects) - (SELECT min(date_added) FROM a.objects WHERE type='indicator')");
  std::printf("objects: %d in envelopes of %d, %s, A and B on loopback (2 cores shared with the client)\n", n, batch,
              rate > 0 ? ("offered load " + std::to_string(static_cast<int>(rate)) + " objects/s").c_str() : "as fast as A accepts");
  std::printf("publish-to-visible latency (A stored -> B stored): p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms\n",
              pct(0.50), pct(0.95), pct(0.99), v.back() / 1000.0);
  std::printf("replication throughput: %.0f objects/s (first stored at A to last stored at B)\n", n / (span / 1e6));
  std::printf("baseline, same run: A accepted the POSTs at %.0f objects/s; end to end (client clock) %.2f s\n",
              n / ingest_s, total_s);
  return 0;
}
