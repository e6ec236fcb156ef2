#include "stix/json.h"

#include <gtest/gtest.h>

namespace tearline::stix::json {
namespace {

TEST(Json, FindsDuplicateKeysAtAnyDepth) {
  simdjson::dom::parser p;
  simdjson::dom::element e;
  Error err;
  ASSERT_TRUE(Parse(p, R"({"a":{"b":[{"c":1,"c":2}]}})", &e, &err));
  std::string path, name;
  ASSERT_TRUE(FindDuplicateKey(e, &path, &name));
  EXPECT_EQ(path, "a.b[0]");
  EXPECT_EQ(name, "c");
  ASSERT_TRUE(Parse(p, R"({"a":{"b":[{"c":1,"d":2}]}})", &e, &err));
  EXPECT_FALSE(FindDuplicateKey(e, &path, &name));
}

TEST(Json, CompactKeepsOrderValuesAndEscapes) {
  simdjson::dom::parser p;
  simdjson::dom::element e;
  Error err;
  ASSERT_TRUE(Parse(p, "{ \"z\" : 1 ,\r\n \"a\" : \"x\\u0000y\\u2028\" , \"n\": 9007199254740993, \"f\": -0.0 }", &e, &err));
  EXPECT_EQ(Compact(e), "{\"z\":1,\"a\":\"x\\u0000y\xe2\x80\xa8\",\"n\":9007199254740993,\"f\":-0.0}");
}

TEST(Json, QuotesControlCharacters) {
  std::string s;
  AppendQuoted(s, std::string("a\"\\\n\x01", 5));
  EXPECT_EQ(s, "\"a\\\"\\\\\\n\\u0001\"");
}

}  // namespace
}  // namespace tearline::stix::json
