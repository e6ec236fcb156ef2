// Every operator, qualifier and constant type, matching and not matching, as a table.
#include <gtest/gtest.h>

#include "pattern/pattern.h"

namespace tearline::pattern {
namespace {

// Three observations:
//   od1 00:00:00-00:00:10, x1: an IP, a domain resolving to it, traffic from it, two files
//   od2 00:01:00-00:01:05, x3: a URL, an email from a@example.com, an artifact "hello"
//   od3 01:00:00-01:00:00, x1, deprecated embedded form: an IPv6 address, a certificate
constexpr const char* kBundle = R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[
 {"type":"observed-data","spec_version":"2.1","id":"observed-data--00000000-0000-4000-8000-000000000001",
  "created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z",
  "first_observed":"2024-01-01T00:00:00Z","last_observed":"2024-01-01T00:00:10Z","number_observed":1,
  "object_refs":["ipv4-addr--00000000-0000-4000-8000-000000000011","domain-name--00000000-0000-4000-8000-000000000012",
                 "network-traffic--00000000-0000-4000-8000-000000000013","file--00000000-0000-4000-8000-000000000014",
                 "file--00000000-0000-4000-8000-000000000015"]},
 {"type":"ipv4-addr","id":"ipv4-addr--00000000-0000-4000-8000-000000000011","value":"198.51.100.7"},
 {"type":"domain-name","id":"domain-name--00000000-0000-4000-8000-000000000012","value":"lantern-relief.example",
  "resolves_to_refs":["ipv4-addr--00000000-0000-4000-8000-000000000011"]},
 {"type":"network-traffic","id":"network-traffic--00000000-0000-4000-8000-000000000013",
  "src_ref":"ipv4-addr--00000000-0000-4000-8000-000000000011","dst_port":443,"protocols":["ipv4","tcp","tls"]},
 {"type":"file","id":"file--00000000-0000-4000-8000-000000000014","name":"lantern_1.apk","size":1024,
  "hashes":{"SHA-256":"4bac27393bdd9777ce02453256c5577cd02275510b2227f473d03f533924f877"},
  "magic_number_hex":"FFD8","ctime":"2024-01-01T00:00:00.500Z"},
 {"type":"file","id":"file--00000000-0000-4000-8000-000000000015","name":"other.txt","size":5},
 {"type":"observed-data","spec_version":"2.1","id":"observed-data--00000000-0000-4000-8000-000000000002",
  "created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z",
  "first_observed":"2024-01-01T00:01:00Z","last_observed":"2024-01-01T00:01:05Z","number_observed":3,
  "object_refs":["url--00000000-0000-4000-8000-000000000021","email-message--00000000-0000-4000-8000-000000000022",
                 "artifact--00000000-0000-4000-8000-000000000024"]},
 {"type":"url","id":"url--00000000-0000-4000-8000-000000000021","value":"https://lantern-relief.example/pay?id=7"},
 {"type":"email-message","id":"email-message--00000000-0000-4000-8000-000000000022","is_multipart":false,
  "from_ref":"email-addr--00000000-0000-4000-8000-000000000023","subject":"Überweisung"},
 {"type":"email-addr","id":"email-addr--00000000-0000-4000-8000-000000000023","value":"a@example.com"},
 {"type":"artifact","id":"artifact--00000000-0000-4000-8000-000000000024","payload_bin":"aGVsbG8="},
 {"type":"observed-data","spec_version":"2.1","id":"observed-data--00000000-0000-4000-8000-000000000003",
  "created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z",
  "first_observed":"2024-01-01T01:00:00Z","last_observed":"2024-01-01T01:00:00Z","number_observed":1,
  "objects":{"0":{"type":"ipv6-addr","value":"2001:db8::1"},"1":{"type":"x509-certificate","is_self_signed":true},
             "2":{"type":"network-traffic","src_ref":"0","protocols":["udp"]}}}
]})";

struct Case {
  const char* pattern;
  bool expected;
};

const Case kCases[] = {
    // = and != on strings
    {"[ipv4-addr:value = '198.51.100.7']", true},
    {"[ipv4-addr:value = '198.51.100.8']", false},
    {"[ipv4-addr:value != '198.51.100.8']", true},
    {"[ipv4-addr:value != '198.51.100.7']", false},
    {"[ipv4-addr:value NOT = '198.51.100.7']", false},
    {"[email-message:subject = 'Überweisung']", true},
    // numbers and ordering
    {"[file:size = 1024]", true},
    {"[file:size = 1024.0]", true},
    {"[file:size > 1000]", true},
    {"[file:size > 5000]", false},
    {"[file:size < 6]", true},
    {"[file:size < 5]", false},
    {"[file:size <= 5]", true},
    {"[file:size >= 1025]", false},
    {"[network-traffic:dst_port >= 443 AND network-traffic:dst_port <= 443]", true},
    {"[file:name > 'lantern_0']", true},
    {"[file:size = '1024']", false},  // no string/number coercion
    // IN
    {"[ipv4-addr:value IN ('10.0.0.1', '198.51.100.7')]", true},
    {"[ipv4-addr:value IN ('10.0.0.1', '10.0.0.2')]", false},
    {"[ipv4-addr:value NOT IN ('10.0.0.1', '10.0.0.2')]", true},
    {"[network-traffic:dst_port IN (80, 443)]", true},
    // LIKE
    {"[file:name LIKE 'lantern_%.apk']", true},
    {"[file:name LIKE 'lantern__.apk']", true},
    {"[file:name LIKE 'lantern_.apk']", false},
    {"[email-message:subject LIKE '_berweisung']", true},
    {"[file:name LIKE 'LANTERN%']", false},
    // MATCHES
    {"[file:name MATCHES '^lantern_[0-9]+\\\\.apk$']", true},
    {"[file:name MATCHES '^other']", true},
    {"[file:name MATCHES '^x']", false},
    {"[url:value MATCHES 'relief\\\\.example/pay\\\\?id=[0-9]']", true},
    {"[file:name NOT MATCHES '^lantern']", true},  // other.txt does not match
    // ISSUBSET / ISSUPERSET on IPv4 and IPv6
    {"[ipv4-addr:value ISSUBSET '198.51.100.0/24']", true},
    {"[ipv4-addr:value ISSUBSET '198.51.101.0/24']", false},
    {"[ipv4-addr:value ISSUPERSET '198.51.100.7/32']", true},
    {"[ipv4-addr:value ISSUPERSET '198.51.100.0/24']", false},
    {"[ipv6-addr:value ISSUBSET '2001:db8::/32']", true},
    {"[ipv6-addr:value ISSUBSET '2001:db9::/32']", false},
    // EXISTS
    {"[EXISTS file:hashes.'SHA-256']", true},
    {"[EXISTS file:hashes.MD5]", false},
    // booleans, timestamps, hex, binary
    {"[x509-certificate:is_self_signed = true]", true},
    {"[x509-certificate:is_self_signed = false]", false},
    {"[file:ctime = t'2024-01-01T00:00:00.5Z']", true},
    {"[file:ctime > t'2024-01-01T00:00:00Z']", true},
    {"[file:ctime < t'2024-01-01T00:00:00Z']", false},
    {"[file:magic_number_hex = h'ffd8']", true},
    {"[file:magic_number_hex = h'ffd9']", false},
    {"[artifact:payload_bin = b'aGVsbG8=']", true},
    {"[artifact:payload_bin = h'68656c6c6f']", true},
    {"[artifact:payload_bin = b'aGVsbG9v']", false},
    // paths: quoted keys, references, lists
    {"[file:hashes.'SHA-256' = '4bac27393bdd9777ce02453256c5577cd02275510b2227f473d03f533924f877']", true},
    {"[network-traffic:src_ref.value = '198.51.100.7']", true},
    {"[network-traffic:src_ref.value = '2001:db8::1']", true},  // embedded form, index refs
    {"[email-message:from_ref.value = 'a@example.com']", true},
    {"[domain-name:resolves_to_refs[*].value = '198.51.100.7']", true},
    {"[domain-name:resolves_to_refs[0].value = '198.51.100.7']", true},
    {"[domain-name:resolves_to_refs[1].value = '198.51.100.7']", false},
    {"[network-traffic:protocols[*] = 'tls']", true},
    {"[network-traffic:protocols[0] = 'tls']", false},
    {"[network-traffic:protocols[2] = 'tls']", true},
    {"[file:missing = 'x']", false},
    {"[file:missing != 'x']", false},  // a path that does not resolve is false
    // comparisons on one type bind to the same object
    {"[file:name = 'lantern_1.apk' AND file:size = 1024]", true},
    {"[file:name = 'other.txt' AND file:size = 1024]", false},
    {"[file:name = 'other.txt' OR file:size = 1]", true},
    {"[(file:name = 'other.txt' OR file:name = 'x') AND file:size = 5]", true},
    {"[file:name = 'lantern_1.apk' AND ipv4-addr:value = '198.51.100.7']", true},
    {"[file:name = 'lantern_1.apk' AND url:value = 'x']", false},
    // observation operators
    {"[ipv4-addr:value = '198.51.100.7'] AND [url:value LIKE 'https://%']", true},
    {"[ipv4-addr:value = '198.51.100.7'] AND [ipv4-addr:value = '198.51.100.7']", false},  // needs two observations
    {"[ipv4-addr:value = '198.51.100.7'] AND [file:size = 5]", false},  // same observation cannot serve both
    {"[ipv4-addr:value = '10.0.0.1'] OR [x509-certificate:is_self_signed = true]", true},
    {"[ipv4-addr:value = '198.51.100.7'] FOLLOWEDBY [url:value LIKE 'https://%']", true},
    {"[url:value LIKE 'https://%'] FOLLOWEDBY [ipv4-addr:value = '198.51.100.7']", false},
    {"[ipv4-addr:value = '198.51.100.7'] FOLLOWEDBY [url:value LIKE 'https://%'] FOLLOWEDBY [ipv6-addr:value = '2001:db8::1']", true},
    // qualifiers
    {"([ipv4-addr:value = '198.51.100.7'] AND [url:value LIKE 'https://%']) WITHIN 120 SECONDS", true},
    {"([ipv4-addr:value = '198.51.100.7'] AND [url:value LIKE 'https://%']) WITHIN 30 SECONDS", false},
    {"([ipv4-addr:value = '198.51.100.7'] AND [x509-certificate:is_self_signed = true]) WITHIN 3600 SECONDS", true},
    {"([ipv4-addr:value = '198.51.100.7'] AND [x509-certificate:is_self_signed = true]) WITHIN 3599.5 SECONDS", false},
    {"[url:value LIKE 'https://%'] REPEATS 3 TIMES", true},
    {"[url:value LIKE 'https://%'] REPEATS 4 TIMES", false},
    {"[ipv4-addr:value = '198.51.100.7' OR ipv6-addr:value = '2001:db8::1'] REPEATS 2 TIMES", true},
    {"[ipv4-addr:value = '198.51.100.7' OR ipv6-addr:value = '2001:db8::1'] REPEATS 2 TIMES WITHIN 60 SECONDS", false},
    {"[ipv4-addr:value = '198.51.100.7'] START t'2024-01-01T00:00:00Z' STOP t'2024-01-01T00:00:11Z'", true},
    {"[ipv4-addr:value = '198.51.100.7'] START t'2024-01-01T00:00:00Z' STOP t'2024-01-01T00:00:10Z'", false},
    {"[ipv4-addr:value = '198.51.100.7'] START t'2024-01-01T00:00:01Z' STOP t'2024-01-02T00:00:00Z'", false},
};

TEST(Evaluator, Table) {
  auto obs = Observations::FromJson(kBundle);
  ASSERT_TRUE(obs.ok()) << obs.status().message();
  ASSERT_EQ(obs->size(), 3u);
  for (const auto& c : kCases) {
    auto p = Parse(c.pattern);
    ASSERT_TRUE(p.ok()) << c.pattern << ": " << p.status().message();
    auto r = Matches(*p, *obs);
    ASSERT_TRUE(r.ok()) << c.pattern << ": " << r.status().message();
    EXPECT_EQ(*r, c.expected) << c.pattern;
  }
}

TEST(Evaluator, UnsupportedRegexIsAnError) {
  auto obs = Observations::FromJson(kBundle);
  auto p = Parse("[file:name MATCHES '(a)\\\\1']");  // backreference
  ASSERT_TRUE(p.ok());
  auto r = Matches(*p, *obs);
  EXPECT_FALSE(r.ok());
}

TEST(Evaluator, BadObservationInputs) {
  EXPECT_FALSE(Observations::FromJson("{").ok());
  EXPECT_FALSE(Observations::FromJson("5").ok());
  EXPECT_FALSE(Observations::FromJson(R"([{"type":"observed-data","first_observed":"2024-01-01T00:00:00Z"}])").ok());
  auto empty = Observations::FromJson("[]");
  ASSERT_TRUE(empty.ok());
  auto p = Parse("[ipv4-addr:value = '1.2.3.4']");
  EXPECT_FALSE(*Matches(*p, *empty));
}

}  // namespace
}  // namespace tearline::pattern
