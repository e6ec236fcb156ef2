#include "stix/id.h"

#include <gtest/gtest.h>

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
