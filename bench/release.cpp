// bench/release: a partner's page through the Releaser, against a local reader's page.
//
//   build/bench_release --db PATH [--collection bench] [--pages N] [--limit 100]
//
// Reads N pages of `limit` objects starting at random objects of the collection (seeded) and
// releases each (Releaser::ReleaseFrom) to:
//   local   a local principal with read permission (no rules: the baseline);
//   warm    a partner (tier 1, a trust group the collection is shared with at TLP:GREEN), one
//           Releaser for all pages: its caches of facts, decisions and referenced objects' forms
//           fill up as the pages go (what a node serving a partner does between changes);
//   cold    the same partner, a new Releaser per page: every page reads and decides what its
//           objects refer to, and what that refers to, from the store (the first read after a
//           change to the collection: every change empties those caches).
// Prints microseconds per page for each and the ratios to `local`, measured in the same run.
// Run it on the database bench/taxii-load.sh generates (build/bench-taxii/).
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <string>

#include "page_starts.h"
#include "policy/policy.h"
#include "store/store.h"

namespace {

namespace pol = tearline::policy;
namespace st = tearline::store;

int Fail(const std::string& what) {
  std::fprintf(stderr, "bench_release: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string db, collection = "bench";
  size_t pages = 2000, limit = 100;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_release: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--db") db = next();
    else if (a == "--collection") collection = next();
    else if (a == "--pages") pages = std::stoul(next());
    else if (a == "--limit") limit = std::stoul(next());
    else {
      std::fprintf(stderr, "usage: bench_release --db PATH [--collection C] [--pages N] [--limit L]\n");
      return 2;
    }
  }
  if (db.empty() || pages == 0 || limit == 0) {
    std::fprintf(stderr, "bench_release: --db is required; --pages and --limit must be positive\n");
    return 2;
  }
  auto store = st::OpenSqlite(db);
  if (!store.ok()) return Fail(store.status().message());
  auto& s = **store;
  const auto starts = tearline::bench::PageStarts(db, collection);
  if (starts.empty()) return Fail("collection \"" + collection + "\" is empty or unreadable");
  const std::string partner_id = "identity--0b0e0c00-0000-4000-8000-00000000bec0";
  pol::PartnerRecipient partner{partner_id, "", pol::Channel::kOpen, {"bench-group"}, 1};
  pol::Audience audience{{}, {"bench-group"}, pol::Tlp::kGreen};
  pol::Recipient local{"reader", true, nullptr, nullptr};
  pol::Recipient to{"partner", true, &partner, &audience};
  to.node_identity = "identity--7e0c4b1a-2f3d-4e5a-8b6c-9d0e1f2a3b4c";

  const char* names[] = {"local", "warm", "cold"};
  double per_page[3] = {0, 0, 0};
  for (int mode = 0; mode < 3; ++mode) {
    std::mt19937_64 rng(42);  // the same pages in every mode
    pol::Releaser shared;
    size_t released = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (size_t p = 0; p < pages; ++p) {
      st::Query q;
      q.collection = collection;
      q.limit = limit;
      q.added_after = starts[rng() % starts.size()];
      if (mode) q.held_for = partner_id;
      auto page = s.Query(q);
      if (!page.ok()) return Fail(page.status().message());
      std::optional<pol::Releaser> fresh;  // cold: a new one for this page (only then built)
      if (mode == 2) fresh.emplace();
      const pol::Releaser& releaser = fresh ? *fresh : shared;
      auto out = releaser.ReleaseFrom(s, collection, std::move(page->objects), mode ? to : local);
      if (!out.ok()) return Fail(out.status().message());
      released += out->size();
    }
    per_page[mode] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / pages;
    std::printf("%-6s %zu pages, %zu objects released: %.1f us/page\n", names[mode], pages, released, per_page[mode]);
  }
  std::printf("partner/local: warm %.2fx, cold %.2fx the time of a local reader's page\n", per_page[1] / per_page[0],
              per_page[2] / per_page[0]);
  return 0;
}
