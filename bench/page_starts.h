// bench/: where pages of a collection start, for benches that read pages starting at random
// objects of it.
//
// A random *object*, not a random time between the first and the newest date_added: objects
// arrive in batches (one POST, one import transaction), so their date_added values bunch, and a
// random time mostly falls in a gap between batches and starts its page at the next batch's
// first object. On the generated 1,000,000-object collection 30,000 such pages touched 204,000
// distinct objects instead of ~836,000 (docs/benchmarks.md, fourteenth session): the benches
// read a quarter of the collection and its caches looked better than they are.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/store.h"

namespace tearline::bench {

//! For every object of `collection` in the database at `db` (its last version), the added_after
//! at which a page starts with it (its date_added minus one microsecond), in date_added order;
//! empty when the collection is empty or unreadable. Read through a store of its own without a
//! row cache, so the bench's store starts cold.
inline std::vector<int64_t> PageStarts(const std::string& db, const std::string& collection) {
  std::vector<int64_t> out;
  store::SqliteOptions options;
  options.object_cache_bytes = 0;
  auto opened = store::OpenSqlite(db, options);
  if (!opened.ok()) return {};
  store::Store& s = **opened;
  store::Query q;
  q.collection = collection;
  q.limit = 10000;
  while (true) {
    auto page = s.Manifest(q);
    if (!page.ok()) return {};
    for (const auto& o : page->objects) out.push_back(o.date_added - 1);
    if (!page->more || page->objects.empty()) break;
    q.cursor = page->next;
  }
  return out;
}

}  // namespace tearline::bench
