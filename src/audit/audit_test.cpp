#include "audit/audit.h"

#include <gtest/gtest.h>

namespace tearline::audit {
namespace {

std::vector<Entry> Chain(int n) {
  std::vector<Entry> c;
  std::string prev = kGenesis;
  for (int i = 1; i <= n; ++i) {
    Entry e{i, 1700000000000000 + i, "analyst@identity--x", "indicator--" + std::to_string(i), "2024-01-01T00:00:00.000Z",
            "release", "TLP:GREEN to the community"};
    e.prev_hash = prev;
    e.hash = EntryHash(e);
    prev = e.hash;
    c.push_back(e);
  }
  return c;
}

TEST(Audit, IntactChainVerifies) {
  auto r = Verify(Chain(5));
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.entries, 5);
  EXPECT_TRUE(Verify({}).ok);
  EXPECT_EQ(EntryHash(Chain(1)[0]).size(), 64u);
}

TEST(Audit, TamperingIsFound) {
  auto changed = Chain(5);
  changed[2].recipient = "someone-else";
  EXPECT_EQ(Verify(changed).first_bad_seq, 3);
  auto rehashed = changed;
  rehashed[2].hash = EntryHash(rehashed[2]);  // recomputing one hash breaks the next link
  EXPECT_EQ(Verify(rehashed).first_bad_seq, 4);
  auto removed = Chain(5);
  removed.erase(removed.begin() + 1);
  EXPECT_EQ(Verify(removed).first_bad_seq, 3);
  auto swapped = Chain(5);
  std::swap(swapped[1], swapped[2]);
  EXPECT_FALSE(Verify(swapped).ok);
  // Field boundaries are unambiguous: moving text between fields changes the hash.
  Entry a{1, 1, "ab", "c"}, b{1, 1, "a", "bc"};
  a.prev_hash = b.prev_hash = kGenesis;
  EXPECT_NE(EntryHash(a), EntryHash(b));
}

}  // namespace
}  // namespace tearline::audit
