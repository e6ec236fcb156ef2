// The STIX pattern grammar, as a table: valid patterns and invalid ones with the
// position of the error.
#include <gtest/gtest.h>

#include "pattern/pattern.h"

namespace tearline::pattern {
namespace {

TEST(Pattern, AcceptsTheWholeGrammar) {
  const char* ok[] = {
      "[ipv4-addr:value = '198.51.100.7']",
      "[ipv4-addr:value == '198.51.100.7']",
      "[file:hashes.'SHA-256' = '4bac27393bdd9777ce02453256c5577cd02275510b2227f473d03f533924f877']",
      "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e' OR file:name = 'x.exe']",
      "[a-b:c = 1 AND a-b:d != 2 OR a-b:e <> 3]",
      "[network-traffic:dst_port > 1024 AND network-traffic:dst_port <= 65535]",
      "[network-traffic:src_port >= -1 AND network-traffic:x < 2.5]",
      "[ipv4-addr:value ISSUBSET '198.51.100.0/24']",
      "[ipv4-addr:value ISSUPERSET '198.51.100.7/32']",
      "[file:name LIKE 'lantern_%.apk']",
      "[file:name MATCHES '^lantern_.*\\\\.apk$']",
      "[file:name NOT MATCHES 'x' AND file:size NOT IN (1, 2, 3)]",
      "[file:name IN ('a', 'b')]",
      "[file:name IN ()]",
      "[EXISTS windows-registry-key:values]",
      "[email-message:from_ref.value = 'a@example.com']",
      "[network-traffic:extensions.'http-request-ext'.request_header.'Accept-Encoding' = 'gzip']",
      "[windows-registry-key:values[*].name = 'x']",
      "[windows-registry-key:values[0].name = 'x']",
      "[file:content_ref.payload_bin = b'aGVsbG8=']",
      "[file:magic_number_hex = h'ffd8']",
      "[file:created = t'2024-01-15T09:30:00.000Z']",
      "[x509-certificate:is_self_signed = true]",
      "[x509-certificate:is_self_signed = false]",
      "[file:name = 'it\\'s \\\\ ok']",
      "[a-b:c = 1] AND [a-b:d = 2]",
      "[a-b:c = 1] OR [a-b:d = 2] FOLLOWEDBY [a-b:e = 3]",
      "([a-b:c = 1] AND [a-b:d = 2]) WITHIN 300 SECONDS",
      "[a-b:c = 1] REPEATS 5 TIMES WITHIN 1.5 SECONDS",
      "[a-b:c = 1] START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00Z'",
      "(([a-b:c = 1]) FOLLOWEDBY ([a-b:d = 2] OR [a-b:e = 3])) REPEATS 2 TIMES",
      "[(a-b:c = 1 OR a-b:d = 2) AND a-b:e = 3]",
      "  [ a-b:c   =   1 ]  ",
  };
  for (const char* p : ok) {
    auto r = Parse(p);
    EXPECT_TRUE(r.ok()) << p << ": " << r.status().message();
  }
}

struct Bad {
  const char* pattern;
  size_t position;
};

TEST(Pattern, RejectsWithPosition) {
  const Bad bad[] = {
      {"[ipv4-addr:value = '198.51.100.7'", 33},
      {"ipv4-addr:value = '1'", 0},
      {"[ipv4-addr:value = '1'] AND", 27},
      {"[ipv4-addr value = '1']", 11},
      {"[ipv4-addr:value = ]", 19},
      {"[ipv4-addr:value = '1]", 19},
      {"[ipv4-addr:value === '1']", 19},
      {"[ipv4-addr:value ~ '1']", 17},
      {"[ipv4-addr:value = 01]", 19},
      {"[ipv4-addr:value > true]", 19},
      {"[file:name LIKE 5]", 11},
      {"[file:name = h'abc']", 13},
      {"[file:name = b'abc']", 13},
      {"[file:name = t'2023-02-29T00:00:00Z']", 13},
      {"[file:name = 'a\\x']", 13},
      {"[a-b:c = 1] WITHIN -5 SECONDS", 19},
      {"[a-b:c = 1] WITHIN 5", 20},
      {"[a-b:c = 1] REPEATS 0 TIMES", 20},
      {"[a-b:c = 1] REPEATS 2.5 TIMES", 20},
      {"[a-b:c = 1] START t'2024-01-01T00:00:00Z'", 41},
      {"[File:name = 'x']", 1},
      {"[file:a-b = 'x']", 6},
      {"[file:name[x] = 'x']", 11},
      {"[file:name IN ('a' 'b')]", 19},
      {"[]", 1},
      {"", 0},
      {"[a-b:c = 1] [a-b:d = 2]", 12},
  };
  for (const auto& b : bad) {
    auto r = Parse(b.pattern);
    ASSERT_FALSE(r.ok()) << b.pattern;
    std::string want = "at character " + std::to_string(b.position) + ":";
    EXPECT_EQ(r.status().message().rfind(want, 0), 0u) << b.pattern << " -> " << r.status().message();
  }
}

TEST(Pattern, BuildsTheTree) {
  auto r = Parse("([file:name = 'a' OR file:size > 10] AND [ipv4-addr:value ISSUBSET '10.0.0.0/8']) WITHIN 60 SECONDS "
                 "FOLLOWEDBY [domain-name:value IN ('x.example', 'y.example')] REPEATS 2 TIMES");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ObsExpr& root = *r->root;
  ASSERT_EQ(root.kind, ObsExpr::Kind::kFollowedBy);
  ASSERT_EQ(root.children.size(), 2u);
  const ObsExpr& left = *root.children[0];
  EXPECT_EQ(left.kind, ObsExpr::Kind::kAnd);
  ASSERT_EQ(left.qualifiers.size(), 1u);
  EXPECT_EQ(left.qualifiers[0].kind, Qualifier::Kind::kWithin);
  EXPECT_EQ(left.qualifiers[0].seconds, 60);
  const CompExpr& first = *left.children[0]->comparison;
  ASSERT_EQ(first.kind, CompExpr::Kind::kOr);
  EXPECT_EQ(first.children[0]->path.ToString(), "file:name");
  EXPECT_EQ(first.children[1]->op, CmpOp::kGt);
  EXPECT_EQ(first.children[1]->values[0].int_value, 10);
  const ObsExpr& right = *root.children[1];
  EXPECT_EQ(right.qualifiers[0].times, 2);
  EXPECT_EQ(right.comparison->op, CmpOp::kIn);
  EXPECT_EQ(right.comparison->values.size(), 2u);
  EXPECT_EQ(right.comparison->values[1].text, "y.example");
}

TEST(Pattern, PathsWithQuotedKeysAndIndexes) {
  auto r = Parse("[network-traffic:extensions.'http-request-ext'.request_header.'Accept'[*] = 'x']");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto& path = r->root->comparison->path;
  EXPECT_EQ(path.type, "network-traffic");
  ASSERT_EQ(path.steps.size(), 5u);
  EXPECT_EQ(path.steps[1].key, "http-request-ext");
  EXPECT_EQ(path.steps[4].kind, PathStep::Kind::kAnyIndex);
  EXPECT_EQ(path.ToString(), "network-traffic:extensions.'http-request-ext'.request_header.Accept[*]");
}

}  // namespace
}  // namespace tearline::pattern

namespace tearline::pattern {
namespace {

// Nesting is bounded: deep parentheses are an error with a position, never a stack overflow
// (a pattern of 2,000 '(' crashed the parser under ASan, found by fuzz_pattern).
TEST(Pattern, DeepNestingIsAnErrorNotACrash) {
  auto nested = [](int n, const std::string& open, const std::string& inner, const std::string& close) {
    std::string s;
    for (int i = 0; i < n; ++i) s += open;
    s += inner;
    for (int i = 0; i < n; ++i) s += close;
    return s;
  };
  EXPECT_TRUE(Parse(nested(60, "(", "[file:name = 'a']", ")")).ok());
  EXPECT_TRUE(Parse("[" + nested(60, "(", "file:name = 'a'", ")") + "]").ok());
  for (const std::string& p : {nested(100000, "(", "[file:name = 'a']", ")"), "[" + nested(100000, "(", "file:name = 'a'", ")") + "]",
                               std::string(200000, '('), "[" + std::string(200000, '(')}) {
    auto r = Parse(p);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("nested deeper than 64"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace tearline::pattern
