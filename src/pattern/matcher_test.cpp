// The bulk matcher must find exactly what evaluating every indicator finds.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>

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

namespace tearline::pattern {
namespace {

// One observed-data (id suffix n) of one SCO of `type` with `value`, observed at second t.
std::string Obs(int n, const std::string& type, const std::string& value, int t) {
  char sid[40], ts[32];
  std::snprintf(sid, sizeof sid, "00000000-0000-4000-8000-%012d", n);
  std::snprintf(ts, sizeof ts, "2025-01-01T00:%02d:%02dZ", t / 60, t % 60);
  return R"({"type":")" + type + R"(","id":")" + type + "--" + sid + R"(","value":")" + value +
         R"("},{"type":"observed-data","id":"observed-data--)" + sid + R"(","first_observed":")" + ts +
         R"(","last_observed":")" + ts + R"(","number_observed":1,"object_refs":[")" + type + "--" + sid + R"("]})";
}
std::string Batch(std::initializer_list<std::string> parts) {
  std::string s = "[";
  for (const auto& p : parts) s += (s.size() > 1 ? "," : "") + p;
  return s + "]";
}
std::string OdId(int n) {
  char sid[80];
  std::snprintf(sid, sizeof sid, "observed-data--00000000-0000-4000-8000-%012d", n);
  return sid;
}

TEST(MatchStream, MultiObservationPatternsCombineBatchesAndReportEachMatchOnce) {
  Matcher m;
  ASSERT_TRUE(m.Add("indicator--followed", "[ipv4-addr:value = '10.0.0.1'] FOLLOWEDBY [domain-name:value = 'evil.example']").ok());
  ASSERT_TRUE(m.Add("indicator--simple", "[ipv4-addr:value = '10.0.0.1']").ok());
  MatchStream stream;
  auto b1 = stream.Match(m, Batch({Obs(1, "ipv4-addr", "10.0.0.1", 1), Obs(2, "ipv4-addr", "10.9.9.9", 1)}));
  ASSERT_TRUE(b1.ok()) << b1.status().message();
  ASSERT_EQ(b1->size(), 1u);
  EXPECT_EQ((*b1)[0].indicator_id, "indicator--simple");
  EXPECT_EQ(stream.kept(), 1u) << "only the observation carrying an anchor of the FOLLOWEDBY pattern";
  auto b2 = stream.Match(m, Batch({Obs(3, "domain-name", "evil.example", 5)}));
  ASSERT_TRUE(b2.ok());
  ASSERT_EQ(b2->size(), 1u) << "the simple pattern is not reported again";
  EXPECT_EQ((*b2)[0].indicator_id, "indicator--followed");
  EXPECT_EQ((*b2)[0].observed_data_ids, (std::vector<std::string>{OdId(1), OdId(3)}));
  auto b3 = stream.Match(m, Batch({Obs(4, "ipv4-addr", "10.9.9.9", 6)}));
  ASSERT_TRUE(b3.ok());
  EXPECT_TRUE(b3->empty()) << "a match of kept observations only is not reported again";
  auto b4 = stream.Match(m, Batch({Obs(5, "domain-name", "evil.example", 7)}));
  ASSERT_TRUE(b4.ok());
  ASSERT_EQ(b4->size(), 1u);
  EXPECT_EQ((*b4)[0].observed_data_ids, (std::vector<std::string>{OdId(1), OdId(5)})) << "a new match with a new observation";
  // Order matters for FOLLOWEDBY: a domain before the address does not match.
  MatchStream other;
  ASSERT_TRUE(other.Match(m, Batch({Obs(6, "domain-name", "evil.example", 1)})).ok());
  auto late = other.Match(m, Batch({Obs(7, "ipv4-addr", "10.0.0.1", 9)}));
  ASSERT_TRUE(late.ok());
  ASSERT_EQ(late->size(), 1u);
  EXPECT_EQ((*late)[0].indicator_id, "indicator--simple");
}

TEST(MatchStream, StateIsBoundedByTheWindowAndTheCount) {
  Matcher m;
  ASSERT_TRUE(m.Add("indicator--and", "[ipv4-addr:value = '10.0.0.1'] AND [domain-name:value = 'evil.example']").ok());
  ASSERT_TRUE(m.Add("indicator--within", "([ipv4-addr:value = '10.0.0.2'] AND [domain-name:value = 'bad.example']) WITHIN 60 SECONDS").ok());
  MatchStream::Options o;
  o.window_seconds = 100;
  o.max_kept = 3;
  MatchStream stream(o);
  ASSERT_TRUE(stream.Match(m, Batch({Obs(1, "ipv4-addr", "10.0.0.1", 0), Obs(2, "ipv4-addr", "10.0.0.2", 0)})).ok());
  EXPECT_EQ(stream.kept(), 2u);
  // 120 s later: the window moves to this batch's newest observation first.
  auto b2 = stream.Match(m, Batch({Obs(3, "domain-name", "bad.example", 120)}));
  ASSERT_TRUE(b2.ok());
  EXPECT_TRUE(b2->empty()) << "WITHIN 60 SECONDS: 120 s apart";
  EXPECT_EQ(stream.kept(), 1u) << "observations older than the 100 s window are dropped";
  auto b3 = stream.Match(m, Batch({Obs(4, "domain-name", "evil.example", 121)}));
  ASSERT_TRUE(b3.ok());
  EXPECT_TRUE(b3->empty()) << "the address seen at 0 s is out of the window";
  for (int k = 0; k < 10; ++k) ASSERT_TRUE(stream.Match(m, Batch({Obs(10 + k, "ipv4-addr", "10.0.0.1", 130 + k)})).ok());
  EXPECT_EQ(stream.kept(), 3u) << "at most max_kept observations";
}

TEST(MatchStream, StateSurvivesANewMatcherAndUnanchoredOperandsKeepEverything) {
  Matcher first;
  ASSERT_TRUE(first.Add("indicator--and", "[ipv4-addr:value = '10.0.0.1'] AND [domain-name:value = 'evil.example']").ok());
  MatchStream stream;
  ASSERT_TRUE(stream.Match(first, Batch({Obs(1, "ipv4-addr", "10.0.0.1", 0)})).ok());
  Matcher second;  // the indicators changed: a new engine, the same stream
  ASSERT_TRUE(second.Add("indicator--and", "[ipv4-addr:value = '10.0.0.1'] AND [domain-name:value = 'evil.example']").ok());
  ASSERT_TRUE(second.Add("indicator--other", "[email-addr:value = 'x@example.org']").ok());
  auto b2 = stream.Match(second, Batch({Obs(2, "domain-name", "evil.example", 3)}));
  ASSERT_TRUE(b2.ok());
  ASSERT_EQ(b2->size(), 1u);
  EXPECT_EQ((*b2)[0].indicator_id, "indicator--and");

  Matcher loose;  // an operand without anchors: any observation may complete a match
  ASSERT_TRUE(loose.Add("indicator--loose", "[ipv4-addr:value = '10.0.0.1'] AND [domain-name:value != 'good.example']").ok());
  MatchStream all;
  ASSERT_TRUE(all.Match(loose, Batch({Obs(1, "domain-name", "a.test", 0), Obs(2, "url", "x", 0)})).ok());
  EXPECT_EQ(all.kept(), 2u);
  auto hit = all.Match(loose, Batch({Obs(3, "ipv4-addr", "10.0.0.1", 2)}));
  ASSERT_TRUE(hit.ok());
  ASSERT_EQ(hit->size(), 1u);
  EXPECT_EQ((*hit)[0].observed_data_ids, (std::vector<std::string>{OdId(1), OdId(3)}));
  // A bad batch is refused and changes nothing.
  EXPECT_FALSE(all.Match(loose, "[{\"type\":\"observed-data\"}]").ok());
  EXPECT_EQ(all.kept(), 3u);
}

TEST(MatchStream, ABatchThatFailsChangesNothing) {
  Matcher good;
  ASSERT_TRUE(good.Add("indicator--and", "[ipv4-addr:value = '10.0.0.1'] AND [domain-name:value = 'evil.example']").ok());
  Matcher bad;  // a regular expression RE2 cannot take: evaluating it is an error
  ASSERT_TRUE(bad.Add("indicator--bad", "[ipv4-addr:value = '10.0.0.1'] AND [domain-name:value MATCHES '(a)\\\\1']").ok());
  MatchStream::Options o;
  o.window_seconds = 100;
  MatchStream stream(o);
  ASSERT_TRUE(stream.Match(good, Batch({Obs(1, "ipv4-addr", "10.0.0.1", 0)})).ok());
  ASSERT_EQ(stream.kept(), 1u);
  // Far later, and failing: the window must not have moved past the kept address.
  auto failed = stream.Match(bad, Batch({Obs(2, "ipv4-addr", "10.0.0.1", 3000), Obs(4, "domain-name", "a.example", 3000)}));
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(stream.kept(), 1u);
  auto hit = stream.Match(good, Batch({Obs(3, "domain-name", "evil.example", 50)}));
  ASSERT_TRUE(hit.ok());
  ASSERT_EQ(hit->size(), 1u);
  EXPECT_EQ((*hit)[0].observed_data_ids, (std::vector<std::string>{OdId(1), OdId(3)}));
}

TEST(MatchStream, BatchByBatchFindsWhatTheWholeStreamAtOnceFinds) {
  // With a window and a bound that drop nothing, matching batch by batch reports, per
  // indicator, exactly the observations that matching everything at once reports.
  std::mt19937 r(77);
  Matcher m;
  for (int i = 0; i < 600; ++i) ASSERT_TRUE(m.Add("indicator--" + std::to_string(i), RandomPattern(r)).ok());
  ASSERT_TRUE(m.has_multi_observation());
  MatchStream::Options o;
  o.window_seconds = int64_t{1} << 40;
  o.max_kept = 1u << 30;
  MatchStream stream(o);
  std::map<std::string, std::set<std::string>> by_batches, at_once;
  std::string whole = "[";
  for (size_t start = 0; start < 1000; start += 100) {
    std::string batch = RandomBatch(r, 100, start);
    whole += (whole.size() > 1 ? "," : "") + batch.substr(1, batch.size() - 2);
    auto found = stream.Match(m, batch);
    ASSERT_TRUE(found.ok()) << found.status().message();
    for (const auto& s : *found) by_batches[s.indicator_id].insert(s.observed_data_ids.begin(), s.observed_data_ids.end());
  }
  whole += "]";
  auto obs = Observations::FromJson(whole);
  ASSERT_TRUE(obs.ok());
  auto all = m.Match(*obs);
  ASSERT_TRUE(all.ok());
  for (const auto& s : *all) at_once[s.indicator_id].insert(s.observed_data_ids.begin(), s.observed_data_ids.end());
  EXPECT_EQ(by_batches, at_once);
  EXPECT_GT(at_once.size(), 50u);
}

}  // namespace
}  // namespace tearline::pattern
