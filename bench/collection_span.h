// bench/: the range of date_added of a collection (microseconds), for benches that read pages
// starting at random points of it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "store/store.h"

namespace tearline::bench {

//! The first and the newest date_added of `collection` (the newest found by bisection: a page
//! after it is empty); nullopt when the collection is empty or unreadable.
inline std::optional<std::pair<int64_t, int64_t>> CollectionSpan(store::Store& s, const std::string& collection) {
  store::Query all;
  all.collection = collection;
  all.limit = 1;
  auto first = s.Query(all);
  if (!first.ok() || first->objects.empty()) return std::nullopt;
  const int64_t lo = first->objects[0].date_added;
  int64_t hi = lo;
  for (int64_t step = int64_t{1} << 40; step > 0;) {
    all.added_after = hi + step;
    auto p = s.Query(all);
    if (p.ok() && !p->objects.empty()) hi += step;
    else step /= 2;
  }
  return std::pair{lo, hi};
}

}  // namespace tearline::bench
