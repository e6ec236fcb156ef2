// The bulk matcher must find exactly what evaluating every indicator finds.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "pattern/pattern.h"

namespace tearline::pattern {
namespace {

// A small universe of values so that indicators and observations meet often.
std::string Ip(std::mt19937& r) { return "198.51.100." + std::to_string(r() % 200); }
std::string Domain(std::mt19937& r) { return "host" + std::to_string(r() % 300) + ".example"; }
std::string Hash(std::mt19937& r) {
  std::string h = std::to_string(r() % 150);
  return std::string(64 - h.size(), 'a') + h;
}

std::string RandomPattern(std::mt19937& r) {
  switch (r() % 20) {
    case 0: return "[ipv4-addr:value = '" + Ip(r) + "']";
    case 1: return "[domain-name:value = '" + Domain(r) + "']";
    case 2: return "[file:hashes.'SHA-256' = '" + Hash(r) + "']";
    case 3: return "[ipv4-addr:value IN ('" + Ip(r) + "', '" + Ip(r) + "')]";
    case 4: return "[ipv4-addr:value = '" + Ip(r) + "' OR domain-name:value = '" + Domain(r) + "']";
    case 5: return "[network-traffic:dst_port = " + std::to_string(r() % 4 == 0 ? 443 : 8000 + r() % 50) +
                   " AND network-traffic:dst_ref.value = '" + Ip(r) + "']";
    case 6: return "[domain-name:value MATCHES '^host" + std::to_string(r() % 30) + "\\\\.']";  // regex set
    case 7: return "[ipv4-addr:value = '" + Ip(r) + "'] FOLLOWEDBY [domain-name:value = '" + Domain(r) + "']";
    case 8: return "[ipv4-addr:value ISSUBSET '198.51.100." + std::to_string((r() % 25) * 8) + "/29']";  // network index
    case 10: return "[network-traffic:dst_port >= " + std::to_string(8040 + r() % 10) + "]";  // unanchored range
    case 11: return "[file:name LIKE 'f" + std::to_string(r() % 4) + "_.exe']";  // LIKE through the regex set
    // Multi-observation shapes: the matcher selects them through a trigger set of
    // their observation expressions (one operand of AND / FOLLOWEDBY, all of OR).
    case 12: return "[ipv4-addr:value = '" + Ip(r) + "'] OR [file:name = 'f" + std::to_string(r() % 40) + ".exe']";
    case 13: return "([domain-name:value = '" + Domain(r) + "'] AND [file:name = 'f" + std::to_string(r() % 5) +
                    ".exe']) OR [file:hashes.'SHA-256' = '" + Hash(r) + "']";
    case 14: return "[ipv4-addr:value = '" + Ip(r) + "'] AND [network-traffic:dst_port >= " +
                    std::to_string(8000 + r() % 50) + "]";  // an unanchored operand
    case 15: return "[file:name = 'f" + std::to_string(r() % 40) + ".exe'] REPEATS 2 TIMES";
    // Regexes the matcher indexes by literal prefix ("^hos?t12\\." -> "hot12.", "host12.")
    // and ones it must not (a top-level |), or only in part (a repetition ends the prefix).
    case 16: return "[domain-name:value MATCHES '^hos?t" + std::to_string(r() % 300) + "\\\\.ex']";
    case 17: return "[domain-name:value MATCHES '^host" + std::to_string(r() % 300) + "\\\\.|^host" +
                    std::to_string(r() % 300) + "\\\\.']";
    case 18: return "[domain-name:value MATCHES '^host" + std::to_string(r() % 30) + "+\\\\.']";
    case 19: return "[domain-name:value MATCHES '^host" + std::to_string(r() % 30) + "{0,1}\\\\.ex']";
    default: return "([file:name = 'f" + std::to_string(r() % 40) + ".exe'] AND [ipv4-addr:value = '" + Ip(r) +
                    "']) WITHIN 600 SECONDS";
  }
}

std::string RandomBatch(std::mt19937& r, size_t n, size_t start) {
  std::string s = "[";
  for (size_t i = 0; i < n; ++i) {
    size_t k = start + i;
    std::string sco, refs, id = std::to_string(k);
    std::string sid = "-0000-4000-8000-" + std::string(12 - std::min<size_t>(12, id.size()), '0') + id;
    switch (r() % 4) {
      case 0:
        sco = R"({"type":"ipv4-addr","id":"ipv4-addr--00000000)" + sid + R"(","value":")" + Ip(r) + R"("})";
        refs = "\"ipv4-addr--00000000" + sid + "\"";
        break;
      case 1:
        sco = R"({"type":"domain-name","id":"domain-name--00000000)" + sid + R"(","value":")" + Domain(r) + R"("})";
        refs = "\"domain-name--00000000" + sid + "\"";
        break;
      case 2:
        sco = R"({"type":"file","id":"file--00000000)" + sid + R"(","name":"f)" + std::to_string(r() % 40) +
              R"(.exe","hashes":{"SHA-256":")" + Hash(r) + R"("}})";
        refs = "\"file--00000000" + sid + "\"";
        break;
      default:
        sco = R"({"type":"ipv4-addr","id":"ipv4-addr--00000001)" + sid + R"(","value":")" + Ip(r) + R"("},)" +
              R"({"type":"network-traffic","id":"network-traffic--00000000)" + sid + R"(","dst_ref":"ipv4-addr--00000001)" +
              sid + R"(","dst_port":)" + std::to_string(r() % 4 == 0 ? 443 : 8000 + r() % 50) + R"(,"protocols":["tcp"]})";
        refs = "\"network-traffic--00000000" + sid + "\",\"ipv4-addr--00000001" + sid + "\"";
    }
    int64_t t = static_cast<int64_t>(k) * 7;
    char ts[32], te[32];
    std::snprintf(ts, sizeof ts, "2025-01-01T%02lld:%02lld:%02lldZ", (long long)(t / 3600 % 24), (long long)(t / 60 % 60), (long long)(t % 60));
    std::snprintf(te, sizeof te, "2025-01-01T%02lld:%02lld:%02lldZ", (long long)(t / 3600 % 24), (long long)(t / 60 % 60), (long long)(t % 60));
    s += (i ? "," : "") + sco + R"(,{"type":"observed-data","id":"observed-data--00000000)" + sid +
         R"(","first_observed":")" + ts + R"(","last_observed":")" + te + R"(","number_observed":)" +
         std::to_string(1 + r() % 3) + R"(,"object_refs":[)" + refs + "]}";
  }
  return s + "]";
}

TEST(Matcher, SameSightingsAsEvaluatingEveryIndicator) {
  std::mt19937 r(2026);
  Matcher m;
  // TEARLINE_QUICK (set by `make sanitize`, where -O0 + ASan is ~20x slower) scales the corpus down.
  const bool quick = std::getenv("TEARLINE_QUICK") != nullptr;
  const size_t kIndicators = quick ? 2000 : 10000, kObservations = quick ? 2000 : 10000, kBatch = 500;
  for (size_t i = 0; i < kIndicators; ++i) {
    ASSERT_TRUE(m.Add("indicator--" + std::to_string(i), RandomPattern(r)).ok());
  }
  EXPECT_GT(m.unanchored(), 0u);
  EXPECT_LT(m.unanchored(), kIndicators / 3);
  size_t sightings = 0;
  for (size_t start = 0; start < kObservations; start += kBatch) {
    auto obs = Observations::FromJson(RandomBatch(r, kBatch, start));
    ASSERT_TRUE(obs.ok()) << obs.status().message();
    auto bulk = m.Match(*obs);
    auto naive = m.MatchNaive(*obs);
    ASSERT_TRUE(bulk.ok() && naive.ok());
    ASSERT_EQ(bulk->size(), naive->size()) << "batch at " << start;
    for (size_t k = 0; k < bulk->size(); ++k) {
      EXPECT_EQ((*bulk)[k].indicator_id, (*naive)[k].indicator_id);
      EXPECT_EQ((*bulk)[k].observed_data_ids, (*naive)[k].observed_data_ids);
      EXPECT_EQ((*bulk)[k].count, (*naive)[k].count);
      EXPECT_EQ((*bulk)[k].first_us, (*naive)[k].first_us);
      EXPECT_EQ((*bulk)[k].last_us, (*naive)[k].last_us);
    }
    sightings += bulk->size();
  }
  EXPECT_GT(sightings, quick ? 100u : 1000u) << "the corpus should produce many matches";
}

TEST(Matcher, RefusesBadPatternsAndFindsMatches) {
  Matcher m;
  EXPECT_FALSE(m.Add("indicator--1", "[ipv4-addr:value = ").ok());
  ASSERT_TRUE(m.Add("indicator--2", "[ipv4-addr:value = '10.0.0.1']").ok());
  auto obs = Observations::FromJson(R"([{"type":"observed-data","id":"observed-data--1","first_observed":"2025-01-01T00:00:00Z",)"
                                    R"("last_observed":"2025-01-01T00:00:05Z","number_observed":4,"object_refs":["ipv4-addr--1"]},)"
                                    R"({"type":"ipv4-addr","id":"ipv4-addr--1","value":"10.0.0.1"}])");
  ASSERT_TRUE(obs.ok());
  auto s = m.Match(*obs);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->size(), 1u);
  EXPECT_EQ((*s)[0].indicator_id, "indicator--2");
  EXPECT_EQ((*s)[0].observed_data_ids, std::vector<std::string>{"observed-data--1"});
  EXPECT_EQ((*s)[0].count, 4);
  EXPECT_EQ((*s)[0].last_us - (*s)[0].first_us, 5000000);
}

}  // namespace
}  // namespace tearline::pattern
