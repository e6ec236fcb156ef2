#include "common/timestamp.h"

#include <gtest/gtest.h>

namespace tearline {
namespace {

TEST(Timestamp, AcceptsRfc3339Utc) {
  for (const char* ok : {"2024-01-15T09:30:00Z", "2024-01-15T09:30:00.1Z", "2024-01-15T09:30:00.123456789Z",
                         "2016-12-31T23:59:60Z", "2024-02-29T00:00:00.000Z", "0001-01-01T00:00:00Z"}) {
    EXPECT_TRUE(ParseTimestamp(ok)) << ok;
  }
}

TEST(Timestamp, RejectsEverythingElse) {
  for (const char* bad : {"2024-01-15", "2024-01-15T09:30:00", "2024-01-15T09:30:00+00:00", "2024-01-15 09:30:00Z",
                          "2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "2024-01-15T24:00:00Z",
                          "2024-01-15T09:30:00.Z", "2024-01-15T09:30:00z", "2024-01-15T09:30:00ZZ", ""}) {
    EXPECT_FALSE(ParseTimestamp(bad)) << bad;
  }
}

TEST(Timestamp, VersionKeysSortLikeInstants) {
  EXPECT_EQ(VersionKey("2024-01-15T09:30:00.1Z"), VersionKey("2024-01-15T09:30:00.100Z"));
  EXPECT_LT(VersionKey("2024-01-15T09:30:00.123Z"), VersionKey("2024-01-15T09:30:00.123001Z"));
  EXPECT_LT(VersionKey("2024-01-15T09:30:00.999999999Z"), VersionKey("2024-01-15T09:30:01Z"));
  EXPECT_LT(VersionKey("2024-01-15T09:30:00.1234567891Z"), VersionKey("2024-01-15T09:30:00.1234567892Z"));
  EXPECT_LT(VersionKey("2024-01-15T09:30:00.123456789Z"), VersionKey("2024-01-15T09:30:00.1234567891Z"));
  EXPECT_EQ(VersionKey("nope"), "");
}

TEST(Timestamp, CompareAndMicros) {
  auto a = *ParseTimestamp("2024-01-15T09:30:00.123Z");
  auto b = *ParseTimestamp("2024-01-15T09:30:00.123000Z");
  auto c = *ParseTimestamp("2024-01-15T09:30:00.1231Z");
  EXPECT_EQ(CompareTimestamps(a, b), 0);
  EXPECT_LT(CompareTimestamps(a, c), 0);
  EXPECT_EQ(FormatMicros(ToMicros(a)), "2024-01-15T09:30:00.123000Z");
  EXPECT_EQ(FormatMicros(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatMicros(-1), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(FormatMicros(253402300799999999), "9999-12-31T23:59:59.999999Z");
  EXPECT_EQ(FormatMicros(951782400000001), "2000-02-29T00:00:00.000001Z");
  EXPECT_EQ(FormatMicros(-62135596800000000), "0001-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatMicros(253402300800000000), "10000-01-01T00:00:00.000000Z") << "past year 9999: as printf writes it";
  // Every formatted time parses back to itself (a day a month apart, over four centuries).
  for (int64_t t = -2208988800000000; t < 7258118400000000; t += 2629743123456) {
    auto ts = ParseTimestamp(FormatMicros(t));
    ASSERT_TRUE(ts) << t;
    ASSERT_EQ(ToMicros(*ts), t) << FormatMicros(t);
  }
  EXPECT_EQ(ToMicros(*ParseTimestamp("2000-03-01T00:00:00Z")), 951868800000000LL);
}

TEST(Timestamp, ParseMicrosEqualsParseThenToMicros) {
  for (const char* t : {"2024-01-15T09:30:00.123Z", "2024-01-15T09:30:00.1234567Z", "2000-03-01T00:00:00Z",
                        "1969-12-31T23:59:59.5Z", "2016-12-31T23:59:60Z"}) {
    ASSERT_TRUE(ParseMicros(t).has_value()) << t;
    EXPECT_EQ(*ParseMicros(t), ToMicros(*ParseTimestamp(t))) << t;
  }
  for (const char* t : {"2024-02-30T00:00:00Z", "2024-01-15T09:30:00", "2024-01-15T09:30:00.Z", "2024-01-15 09:30:00Z"}) {
    EXPECT_FALSE(ParseMicros(t).has_value()) << t;
  }
}

}  // namespace
}  // namespace tearline
