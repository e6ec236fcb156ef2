#include "audit/audit.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

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

// The hashes are a file format: logs written by earlier builds must keep verifying. The
// expected values are SHA-256 over the documented forms, computed outside tearline:
// body = "<len>:<bytes>;" for time_us, recipient, object_id, version, decision, reason;
// link = the same form of prev_hash, seq and the body digest.
TEST(Audit, DigestsFollowTheDocumentedForm) {
  const Entry e = Chain(1)[0];
  EXPECT_EQ(BodyDigest(e), "4e14b996916f2e68be43d5192ae252bc6613813825c5787c6cda6c1aa1df774d");
  EXPECT_EQ(e.hash, "3a496dc8101234e01061127c82b718c9396a135af0f5d40e737ca3ab40830ca9");
  EXPECT_EQ(LinkHash(kGenesis, 1, BodyDigest(e)), e.hash);
}

// A repeat ("same as entry N", a response served again from the cache) must name an earlier
// entry that lists a release to the same recipient; anything else fails verification.
TEST(Audit, RepeatsNameAnEarlierReleaseToTheSameRecipient) {
  auto build = [](std::vector<std::pair<std::string, std::string>> rows) {
    std::vector<Entry> c;
    std::string prev = kGenesis;
    int64_t seq = 0;
    for (auto& [who, what] : rows) {
      Entry e{++seq, 1700000000000000 + seq, who, what, "3 objects", "release", "TLP:GREEN"};
      e.prev_hash = prev;
      e.hash = EntryHash(e);
      prev = e.hash;
      c.push_back(e);
    }
    return c;
  };
  EXPECT_EQ(SameAsSeq(SameAs(42)), 42);
  EXPECT_EQ(SameAsSeq("indicator--1@2024-01-01T00:00:00.000Z"), 0);
  EXPECT_EQ(SameAsSeq("same as entry "), 0);
  EXPECT_EQ(SameAsSeq("same as entry 4x"), 0);
  auto good = build({{"a", "indicator--1@x\nindicator--2@x"}, {"b", "indicator--3@x"}, {"a", SameAs(1)}, {"b", SameAs(2)}});
  auto r = Verify(good);
  EXPECT_TRUE(r.ok) << r.message;
  auto other_recipient = build({{"a", "indicator--1@x"}, {"b", SameAs(1)}});
  EXPECT_FALSE(Verify(other_recipient).ok);
  EXPECT_EQ(Verify(other_recipient).first_bad_seq, 2);
  EXPECT_FALSE(Verify(build({{"a", SameAs(2)}, {"a", "indicator--1@x"}})).ok) << "a later entry";
  EXPECT_FALSE(Verify(build({{"a", SameAs(1)}})).ok) << "itself";
  EXPECT_FALSE(Verify(build({{"a", "indicator--1@x"}, {"a", SameAs(1)}, {"a", SameAs(2)}})).ok) << "a repeat of a repeat";
  EXPECT_FALSE(Verify(build({{"a", "indicator--1@x"}, {"a", SameAs(9)}})).ok) << "no such entry";
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

std::vector<Entry> Rehash(std::vector<Entry> c) {
  std::string prev = kGenesis;
  for (auto& e : c) {
    e.prev_hash = prev;
    e.hash = EntryHash(e);
    prev = e.hash;
  }
  return c;
}

TEST(Audit, SignedCheckpointsCatchARewrittenChain) {
  std::string dir = ::testing::TempDir();
  std::string path = dir + "/tearline-audit-test-" + std::to_string(::getpid()) + ".key";
  std::remove(path.c_str());
  std::string err;
  auto key = LoadOrCreateKey(path, &err);
  ASSERT_TRUE(key) << err;
  auto again = LoadOrCreateKey(path, &err);
  ASSERT_TRUE(again) << err;
  EXPECT_EQ(again->public_hex, key->public_hex) << "the key is kept";
  auto chain = Chain(6);
  std::vector<Checkpoint> cps = {MakeCheckpoint(*key, 3, chain[2].hash, 1), MakeCheckpoint(*key, 6, chain[5].hash, 2)};
  auto ok = Verify(chain, cps, key->public_hex);
  EXPECT_TRUE(ok.ok) << ok.message;
  EXPECT_EQ(ok.checkpoints, 2);
  EXPECT_EQ(ok.unsigned_tail, 0);
  // Whoever rewrites an entry and recomputes every hash is caught by the signature.
  auto forged = chain;
  forged[1].recipient = "nobody";
  forged = Rehash(forged);
  EXPECT_TRUE(Verify(forged).ok) << "without checkpoints a full rewrite is invisible";
  auto r = Verify(forged, cps, key->public_hex);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_seq, 3);
  EXPECT_NE(r.message.find("signed checkpoint"), std::string::npos) << r.message;
  // Truncating below a checkpoint is caught too.
  auto cut = chain;
  cut.resize(4);
  EXPECT_FALSE(Verify(cut, cps, key->public_hex).ok);
  // A checkpoint from another key, or a bad signature.
  EXPECT_FALSE(Verify(chain, cps, std::string(64, 'a')).ok);
  auto bad = cps;
  bad[0].signature[0] = bad[0].signature[0] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(Verify(chain, bad).ok);
  std::remove(path.c_str());
}

TEST(Audit, PartnerExportVerifiesWithThePublicKeyAlone) {
  std::string path = ::testing::TempDir() + "/tearline-audit-export-" + std::to_string(::getpid()) + ".key";
  std::remove(path.c_str());
  std::string err;
  auto key = LoadOrCreateKey(path, &err);
  ASSERT_TRUE(key) << err;
  auto chain = Chain(5);
  chain[1].recipient = "south@identity--s";
  chain[3].recipient = "south@identity--s";
  chain = Rehash(chain);
  std::vector<Checkpoint> cps = {MakeCheckpoint(*key, 5, chain[4].hash, 1)};
  auto lines = ExportFor(chain, cps, "identity--s");
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_TRUE(lines[1].full);
  EXPECT_FALSE(lines[0].full);
  std::string text = ExportToJsonLines(lines, cps);
  EXPECT_EQ(text.find("analyst@identity--x"), std::string::npos) << "other recipients are only digests";
  std::vector<ExportLine> parsed;
  std::vector<Checkpoint> parsed_cps;
  ASSERT_TRUE(ParseExport(text, &parsed, &parsed_cps, &err)) << err;
  auto r = VerifyExport(parsed, parsed_cps, key->public_hex);
  EXPECT_TRUE(r.ok) << r.message;
  parsed[1].entry.reason = "changed";
  EXPECT_FALSE(VerifyExport(parsed, parsed_cps, key->public_hex).ok);
  EXPECT_FALSE(ParseExport("{\"entry\":{\"seq\":\"x\"}}\n", &parsed, &parsed_cps, &err));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tearline::audit
