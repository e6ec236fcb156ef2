// Batch signatures (federation.h): one Ed25519 signature over an RFC 9162 Merkle tree of
// an envelope's objects, each object verifiable on its own with its inclusion proof.
#include <gtest/gtest.h>
#include <sodium.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "audit/audit.h"
#include "federation/federation.h"

namespace tearline::federation {
namespace {

using Hash32 = std::array<unsigned char, 32>;

const std::string kNode = "identity--0b0e0c00-0000-4000-8000-00000000a001";

struct Key {
  std::string path = "/tmp/tearline-sigtest-" + std::to_string(getpid()) + ".key";
  std::optional<audit::NodeKey> key;
  Key() {
    std::string err;
    key = audit::LoadOrCreateKey(path, &err);
  }
  ~Key() { std::remove(path.c_str()); }
};

std::vector<std::string> Objects(size_t n) {
  std::vector<std::string> out;
  for (size_t k = 0; k < n; ++k) {
    out.push_back(R"({"type":"note","id":"note--00000000-0000-4000-8000-)" + std::string(12 - std::to_string(k).size(), '0') +
                  std::to_string(k) + R"(","content":"n)" + std::to_string(k) + R"("})");
  }
  return out;
}

std::vector<std::string_view> Views(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

Hash32 Node(const Hash32& l, const Hash32& r) {
  unsigned char buf[65] = {0x01};
  std::copy(l.begin(), l.end(), buf + 1);
  std::copy(r.begin(), r.end(), buf + 33);
  Hash32 h;
  crypto_hash_sha256(h.data(), buf, sizeof buf);
  return h;
}

std::string Hex(const Hash32& h) {
  char out[65];
  sodium_bin2hex(out, sizeof out, h.data(), h.size());
  return out;
}

TEST(Signatures, EveryLeafOfEveryTreeSizeVerifiesAndOnlyForItsObject) {
  Key k;
  ASSERT_TRUE(k.key);
  for (size_t n = 1; n <= 40; ++n) {
    auto objects = Objects(n);
    auto sigs = SignBatch(*k.key, kNode, Views(objects));
    ASSERT_EQ(sigs.size(), n);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_TRUE(Verify(objects[i], sigs[i])) << n << "/" << i;
      EXPECT_EQ(sigs[i].count, n);
      EXPECT_EQ(sigs[i].index, i);
      if (n > 1) {
        EXPECT_FALSE(Verify(objects[(i + 1) % n], sigs[i])) << "another object with this proof, " << n << "/" << i;
        Signature moved = sigs[i];
        moved.index = (i + 1) % n;
        EXPECT_FALSE(Verify(objects[i], moved)) << "another position, " << n << "/" << i;
      }
      Signature grown = sigs[i];
      grown.count = n + 1;
      EXPECT_FALSE(Verify(objects[i], grown)) << "another tree size, " << n << "/" << i;
    }
  }
}

TEST(Signatures, ThreeLeavesHaveTheRfc9162TreeShape) {
  Key k;
  ASSERT_TRUE(k.key);
  auto objects = Objects(3);
  Hash32 l0 = LeafHash(objects[0]), l1 = LeafHash(objects[1]), l2 = LeafHash(objects[2]);
  // MTH of 3 leaves: the left subtree holds the largest power of two below 3 (2 leaves).
  Hash32 left = Node(l0, l1), root = Node(left, l2);
  auto sigs = SignBatch(*k.key, kNode, Views(objects));
  ASSERT_EQ(sigs.size(), 3u);
  EXPECT_EQ(sigs[0].path, (std::vector<std::string>{Hex(l1), Hex(l2)}));
  EXPECT_EQ(sigs[1].path, (std::vector<std::string>{Hex(l0), Hex(l2)}));
  EXPECT_EQ(sigs[2].path, (std::vector<std::string>{Hex(left)}));
  EXPECT_TRUE(audit::VerifyHex(k.key->public_hex, BatchMessage(root, 3), sigs[0].sig));
  EXPECT_EQ(sigs[0].sig, sigs[2].sig) << "one signature for the envelope";
  // The leaf hash covers the canonical form: member order and spacing do not matter.
  EXPECT_EQ(LeafHash(R"({"b":1,"a":"x"})"), LeafHash(R"({ "a" : "x", "b" : 1 })"));
}

TEST(Signatures, ATamperedProofDoesNotVerifyAndAProofSurvivesARelay) {
  Key k;
  ASSERT_TRUE(k.key);
  auto objects = Objects(9);
  auto sigs = SignBatch(*k.key, kNode, Views(objects));
  Signature flipped = sigs[4];
  flipped.path[0][0] = flipped.path[0][0] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(Verify(objects[4], flipped));
  Signature shortened = sigs[4];
  shortened.path.pop_back();
  EXPECT_FALSE(Verify(objects[4], shortened));
  Signature longer = sigs[4];
  longer.path.push_back(longer.path[0]);
  EXPECT_FALSE(Verify(objects[4], longer));
  Signature garbage = sigs[4];
  garbage.path[1] = "not hex";
  EXPECT_FALSE(Verify(objects[4], garbage));
  Signature other_key = sigs[4];
  other_key.key = std::string(64, 'a');
  EXPECT_FALSE(Verify(objects[4], other_key));
  // Stored and relayed as JSON, read back: still proves this node released the object.
  auto back = SignaturesFromJson(ToJson({sigs[4]}));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_TRUE(Verify(objects[4], back[0]));
  EXPECT_EQ(back[0].path, sigs[4].path);
  // A proof with a malformed "merkle" member is kept but never verifies.
  auto bad = SignaturesFromJson(R"([{"node":"n","key":")" + sigs[4].key + R"(","sig":")" + sigs[4].sig +
                                R"(","merkle":{"count":"nine"}}])");
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_FALSE(Verify(objects[4], bad[0]));
}

}  // namespace
}  // namespace tearline::federation
