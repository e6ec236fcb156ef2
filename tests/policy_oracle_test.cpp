// The oracle test (issue #4): a second, deliberately naive implementation of the sharing
// rules, written from the text and not calling src/policy's decision code,
// compared with DecideForPartner on 1,000,000 seeded random cases. Zero disagreements.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "policy/policy.h"

namespace tearline {
namespace {

// ---- The naive rules. Levels as words; "most restrictive wins" by walking a ranking. ----
const std::vector<std::pair<std::string, std::string>> kMarkingWords = {
    {"marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9", "clear"},   // TLP 1.0 white
    {"marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da", "green"},
    {"marking-definition--f88d31f6-486f-44da-b317-01333bde0b82", "amber"},
    {"marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed", "red"},
    {"marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487", "clear"},   // TLP 2.0
    {"marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb", "green"},
    {"marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421", "amber"},
    {"marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003", "amber+strict"},
    {"marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1", "red"},
};
const std::string kStatement = "marking-definition--0f0e0d0c-0b0a-4908-8706-050403020100";
const std::vector<std::string> kRanking = {"clear", "green", "amber", "amber+strict", "red"};

std::string WordOf(const std::string& marking) {
  for (const auto& [id, w] : kMarkingWords) {
    if (id == marking) return w;
  }
  return "";
}

std::string Strictest(const std::vector<std::string>& markings, const std::string& fallback) {
  int best = -1;
  for (const auto& m : markings) {
    std::string w = WordOf(m);
    for (int i = 0; i < 5; ++i) {
      if (kRanking[i] == w && i > best) best = i;
    }
  }
  return best < 0 ? fallback : kRanking[best];
}

bool In(const std::vector<std::string>& v, const std::string& x) {
  for (const auto& y : v) {
    if (!x.empty() && y == x) return true;
  }
  return false;
}

struct NaiveCase {
  std::vector<std::string> markings, distribution, variant_markings;
  bool variant_markings_given = false;
  std::string source;  // "", the recipient, or another partner
  bool no_relay = false, warning = false, revoked = false, extension = false;
  int min_full_tier = 0;
  std::vector<std::pair<std::string, std::vector<std::string>>> granular;
  // recipient
  std::string org, person, channel;
  std::vector<std::string> groups;
  int tier = 0;
  // collection
  std::vector<std::string> audience_orgs, audience_groups;
  std::string default_level;
  std::string held;  // "", "original", "variant"
};

// May information at `level` reach the recipient (TLP + channel + relay)?
bool LevelOk(const NaiveCase& c, const std::string& level) {
  bool relayed = !c.source.empty() && c.source != c.org;
  if (relayed && (level == "red" || level == "amber+strict")) return false;
  if (c.channel == "restricted" && level != "clear" && level != "green") return false;
  if (c.channel == "suspended" && level != "clear") return false;
  if (level == "clear") return true;
  if (level == "green") {
    for (const auto& g : c.groups) {
      if (In(c.audience_groups, g)) return true;
    }
    return In(c.audience_orgs, c.org);
  }
  if (level == "amber") return In(c.distribution, c.org) || In(c.audience_orgs, c.org);
  if (level == "amber+strict") return In(c.distribution, c.org);
  if (level == "red") return In(c.distribution, c.person);
  return false;
}

// Returns "withhold", "release" or "variant"; `strip` gets the hidden selectors.
std::string Naive(const NaiveCase& c, std::vector<std::string>* strip) {
  if (c.warning) return "release";  // an approved warning addressed to the recipient: any channel
  if (c.channel == "closed") return "withhold";
  bool relayed = !c.source.empty() && c.source != c.org;
  std::string original_level = Strictest(c.markings, c.default_level);
  if (relayed && (c.no_relay || original_level == "red" || original_level == "amber+strict")) return "withhold";
  if (c.revoked && c.held.empty()) return "withhold";
  std::string form;
  bool whole = c.tier >= c.min_full_tier;
  if (c.held == "variant" && c.extension) form = "variant";
  else if (c.held == "original") form = whole ? "release" : "withhold";
  else if (whole) form = "release";
  else form = c.extension ? "variant" : "withhold";
  if (form == "withhold") return form;
  std::string level = original_level;
  if (form == "variant" && c.variant_markings_given) level = Strictest(c.variant_markings, c.default_level);
  if (!LevelOk(c, level)) return "withhold";
  for (const auto& [m, sels] : c.granular) {
    std::string w = WordOf(m);
    if (!w.empty() && !LevelOk(c, w)) strip->insert(strip->end(), sels.begin(), sels.end());
  }
  return form;
}

TEST(PolicyOracle, AMillionRandomCasesAgree) {
  std::mt19937_64 rng(20261203);
  auto coin = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  std::vector<std::string> markings;
  for (const auto& [id, w] : kMarkingWords) markings.push_back(id);
  markings.push_back(kStatement);
  const std::vector<std::string> orgs = {"identity--00000000-0000-4000-8000-000000000001",
                                         "identity--00000000-0000-4000-8000-000000000002",
                                         "identity--00000000-0000-4000-8000-000000000003"};
  const std::vector<std::string> people = {"identity--00000000-0000-4000-8000-0000000000a1",
                                           "identity--00000000-0000-4000-8000-0000000000a2"};
  const std::vector<std::string> groups = {"ct-europe", "ct-gulf", "cert-net"};
  const std::vector<std::string> channels = {"open", "restricted", "suspended", "closed"};
  const std::vector<std::string> levels = {"clear", "green", "amber", "amber+strict", "red"};
  size_t disagreements = 0;
  std::map<std::string, size_t> outcomes;
  for (int n = 0; n < 1'000'000; ++n) {
    NaiveCase c;
    for (int k = static_cast<int>(rng() % 4); k > 0; --k) c.markings.push_back(pick(markings));
    for (int k = static_cast<int>(rng() % 3); k > 0; --k) c.distribution.push_back(coin(50) ? pick(orgs) : pick(people));
    c.variant_markings_given = coin(30);
    if (c.variant_markings_given) {
      for (int k = static_cast<int>(rng() % 3); k > 0; --k) c.variant_markings.push_back(pick(markings));
    }
    c.source = coin(50) ? "" : pick(orgs);
    c.no_relay = coin(20);
    c.warning = coin(10);
    c.revoked = coin(10);
    c.extension = coin(50);
    c.min_full_tier = c.extension ? static_cast<int>(rng() % 3) : 0;
    for (int k = static_cast<int>(rng() % 3); k > 0; --k) {
      c.granular.push_back({pick(markings), {coin(50) ? "description" : "labels.[0]"}});
    }
    c.org = pick(orgs);
    c.person = coin(50) ? pick(people) : "";
    c.channel = pick(channels);
    for (const auto& g : groups) {
      if (coin(40)) c.groups.push_back(g);
    }
    c.tier = static_cast<int>(rng() % 3);
    for (const auto& o : orgs) {
      if (coin(30)) c.audience_orgs.push_back(o);
    }
    for (const auto& g : groups) {
      if (coin(30)) c.audience_groups.push_back(g);
    }
    c.default_level = pick(levels);
    c.held = coin(70) ? "" : (coin(50) ? "original" : "variant");

    std::vector<std::string> naive_strip;
    std::string expected = Naive(c, &naive_strip);

    policy::ObjectFacts f;
    f.marking_refs = c.markings;
    f.source_partner = c.source;
    f.no_relay = c.no_relay;
    f.distribution = c.distribution;
    f.approved_warning_for = c.warning;
    f.revoked = c.revoked;
    f.has_extension = c.extension;
    f.min_full_tier = c.min_full_tier;
    f.variant_markings_given = c.variant_markings_given;
    f.variant_marking_refs = c.variant_markings;
    for (const auto& [m, s] : c.granular) f.granular.push_back({m, s});
    policy::PartnerRecipient to{c.org, c.person, *policy::ParseChannel(c.channel), c.groups, c.tier};
    policy::Audience a{c.audience_orgs, c.audience_groups, *policy::ParseTlp(c.default_level)};
    policy::Held held = c.held.empty() ? policy::Held::kNothing
                        : c.held == "original" ? policy::Held::kOriginal
                                               : policy::Held::kVariant;
    auto d = policy::DecideForPartner(f, to, a, held);
    std::string got = d.outcome == policy::Outcome::kWithhold ? "withhold"
                      : d.outcome == policy::Outcome::kRelease ? "release"
                                                               : "variant";
    bool same = got == expected && (got == "withhold" || d.strip == naive_strip);
    if (!same && ++disagreements <= 5) {
      ADD_FAILURE() << "case " << n << ": oracle " << expected << ", Releaser " << got << " (" << d.reason << ")";
    }
    ++outcomes[expected];
  }
  EXPECT_EQ(disagreements, 0u);
  // The random cases reach every outcome often (the comparison is not vacuous).
  EXPECT_GT(outcomes["withhold"], 100000u);
  EXPECT_GT(outcomes["release"], 50000u);
  EXPECT_GT(outcomes["variant"], 20000u);
}

}  // namespace
}  // namespace tearline
