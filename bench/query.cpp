// bench/query: the store's page query alone, the core of every TAXII GET objects.
//
//   build/bench_query --db PATH [--collection bench] [--pages N] [--limit 100] [--type T] [--cache-mb 256] [--envelope]
//
// Reads N pages of `limit` objects (last versions, the TAXII default) starting at random
// objects of the collection (seeded), on one thread, and prints microseconds per page and per
// object: through SQL alone (object_cache_bytes 0) and through the page index with its row
// cache (--cache-mb: its budget, 256 MiB the store's default), and that sharing the cached rows (Query::share_rows, what the
// server does for local readers): the same pages in the same run. Run it on the database
// bench/taxii-load.sh generates (build/bench-taxii/).
// --envelope: each page is also written out as the server writes a local reader's page (the
// envelope with every object's JSON, the audit entry's "id@modified" lines), timed apart.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "page_starts.h"
#include "store/store.h"

int main(int argc, char** argv) {
  std::string db, collection = "bench", type;
  size_t pages = 20000, limit = 100, cache_mb = 256;
  bool envelope = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_query: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--db") db = next();
    else if (a == "--collection") collection = next();
    else if (a == "--pages") pages = std::stoul(next());
    else if (a == "--limit") limit = std::stoul(next());
    else if (a == "--type") type = next();
    else if (a == "--cache-mb") cache_mb = std::stoul(next());
    else if (a == "--envelope") envelope = true;
    else {
      std::fprintf(stderr, "usage: bench_query --db PATH [--collection C] [--pages N] [--limit L] [--type T] [--cache-mb M] [--envelope]\n");
      return 2;
    }
  }
  if (db.empty() || pages == 0 || limit == 0) {
    std::fprintf(stderr, "bench_query: --db is required; --pages and --limit must be positive\n");
    return 2;
  }
  const auto starts = tearline::bench::PageStarts(db, collection);
  if (starts.empty()) {
    std::fprintf(stderr, "bench_query: collection \"%s\" is empty or unreadable\n", collection.c_str());
    return 1;
  }
  double per_page[3] = {0, 0, 0};
  for (int indexed = 0; indexed < 3; ++indexed) {  // SQL, page index, page index sharing rows
    tearline::store::SqliteOptions options;
    options.object_cache_bytes = indexed ? cache_mb << 20 : 0;
    auto store = tearline::store::OpenSqlite(db, options);
    if (!store.ok()) {
      std::fprintf(stderr, "bench_query: %s\n", store.status().message().c_str());
      return 1;
    }
    auto& s = **store;
    std::mt19937_64 rng(42);
    size_t objects = 0, bytes = 0;
    double written_us = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (size_t p = 0; p < pages; ++p) {
      tearline::store::Query q;
      q.collection = collection;
      q.limit = limit;
      q.added_after = starts[rng() % starts.size()];
      if (!type.empty()) q.types = {type};
      q.share_rows = indexed == 2;  // what the TAXII server does for a local reader
      auto page = s.Query(q);
      if (!page.ok()) {
        std::fprintf(stderr, "bench_query: %s\n", page.status().message().c_str());
        return 1;
      }
      objects += page->objects.size();
      if (envelope) {
        auto w0 = std::chrono::steady_clock::now();
        size_t size = 64;
        for (const auto& o : page->objects) size += o.Json().size() + 1;
        std::string body;
        body.reserve(size);
        body += "{\"more\":true,\"objects\":[";
        std::string ids;
        ids.reserve(page->objects.size() * 80);
        for (size_t k = 0; k < page->objects.size(); ++k) {
          if (k) body += ',', ids += '\n';
          body += page->objects[k].Json();
          ids += page->objects[k].Id();
          ids += '@';
          ids += page->objects[k].Modified();
        }
        body += "]}";
        bytes += body.size() + ids.size();
        written_us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - w0).count();
      }
    }
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (envelope) {
      std::printf("%-18s written out: %.1f us/page (%.0f bytes/page), of the %.1f below\n",
                  indexed == 0 ? "SQL" : indexed == 1 ? "page index" : "page index, shared", written_us / pages,
                  static_cast<double>(bytes) / pages, us / pages);
    }
    per_page[indexed] = us / pages;
    std::printf("%-18s %zu pages, %zu objects: %.1f us/page, %.3f us/object\n",
                indexed == 0 ? "SQL" : indexed == 1 ? "page index" : "page index, shared",
                pages, objects, us / pages, objects ? us / objects : 0.0);
  }
  std::printf("page index vs SQL: %.2fx faster (its first pass builds the index and fills the row cache); "
              "sharing rows: %.2fx\n",
              per_page[0] / per_page[1], per_page[0] / per_page[2]);
  return 0;
}
