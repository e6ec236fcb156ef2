#include "stix/id.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>

namespace tearline::stix {
namespace {

TEST(Id, UuidVersions) {
  EXPECT_EQ(UuidVersion("a6f12b93-270d-41b3-a42c-84798615a449"), 4);
  EXPECT_EQ(UuidVersion("28bb3599-77cd-5a82-a950-b5bc3caf07c4"), 5);
  EXPECT_EQ(UuidVersion("a6f12b93-270d-41b3-142c-84798615a449"), 0);  // NCS variant
  EXPECT_EQ(UuidVersion("a6f12b93270d41b3a42c84798615a449"), 0);
  EXPECT_EQ(UuidVersion("not-a-uuid"), 0);
}

TEST(Id, Uuid5MatchesTheStixDeterministicIds) {
  // Values from STIX 2.1 §2.9 practice, cross-checked in ../shared/data/valid-edge/README.md.
  EXPECT_EQ(Uuid5(kStixScoNamespace, R"({"value":"198.51.100.3"})"), "28bb3599-77cd-5a82-a950-b5bc3caf07c4");
  EXPECT_EQ(Uuid5(kStixScoNamespace, R"({"value":"example.com"})"), "bedb4899-d24b-5401-bc86-8f6b4cc18ec7");
}

TEST(Id, NewUuid4IsV4AndUnique) {
  auto a = NewUuid4(), b = NewUuid4();
  EXPECT_EQ(UuidVersion(a), 4);
  EXPECT_NE(a, b);
}

// UUIDv7 (RFC 9562 §5.7): version 7, variant 10, the time in milliseconds first, so ids made
// in a later millisecond sort after; a known time gives its known prefix.
TEST(Id, NewUuid7IsV7AndOrderedByTime) {
  auto a = NewUuid7();
  EXPECT_EQ(UuidVersion(a), 7);
  EXPECT_NE(std::string("89ab").find(a[19]), std::string::npos) << a;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  char hex[16];
  std::snprintf(hex, sizeof hex, "%012llx", static_cast<unsigned long long>(ms));
  const std::string now = std::string(hex, 8) + "-" + std::string(hex + 8, 4);
  EXPECT_LE(a.substr(0, 13), now);
  EXPECT_GE(a.substr(0, 13), now.substr(0, 9)) << "the same hour or so";
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  auto b = NewUuid7();
  EXPECT_LT(a, b);
}

TEST(Id, Names) {
  EXPECT_TRUE(IsValidTypeName("x-acme-widget"));
  EXPECT_FALSE(IsValidTypeName("x_acme"));
  EXPECT_FALSE(IsValidTypeName("ab"));
  EXPECT_FALSE(IsValidTypeName("a--b"));
  EXPECT_TRUE(IsValidPropertyName("x_acme_score"));
  EXPECT_FALSE(IsValidPropertyName("x_ACME"));
  EXPECT_FALSE(IsValidPropertyName("x-acme"));
  IdParts p;
  ASSERT_TRUE(SplitId("indicator--a6f12b93-270d-41b3-a42c-84798615a449", &p));
  EXPECT_EQ(p.type, "indicator");
  EXPECT_FALSE(SplitId("indicator", &p));
}

}  // namespace
}  // namespace tearline::stix
