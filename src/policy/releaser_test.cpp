// The sharing rules as a table: object facts x recipient x audience -> decision.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "policy/policy.h"
#include "stix/stix.h"
#include "store/store.h"

namespace tearline::policy {
namespace {

const std::string kClear = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
const std::string kWhite = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";
const std::string kGreen = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const std::string kGreen1 = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
const std::string kAmber = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
const std::string kAmber1 = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";
const std::string kStrict = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";
const std::string kRed = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
const std::string kRed1 = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";
const std::string kStatement = "marking-definition--1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b";

const std::string kSouth = "identity--00000000-0000-4000-8000-000000000001";  // the recipient
const std::string kEast = "identity--00000000-0000-4000-8000-000000000002";   // another partner
const std::string kOfficer = "identity--00000000-0000-4000-8000-0000000000aa"; // a named individual at South

TEST(Tlp, MarkingIdsMapToLevels) {
  EXPECT_EQ(TlpOfMarking(kClear), Tlp::kClear);
  EXPECT_EQ(TlpOfMarking(kWhite), Tlp::kClear);
  EXPECT_EQ(TlpOfMarking(kGreen), Tlp::kGreen);
  EXPECT_EQ(TlpOfMarking(kGreen1), Tlp::kGreen);
  EXPECT_EQ(TlpOfMarking(kAmber), Tlp::kAmber);
  EXPECT_EQ(TlpOfMarking(kAmber1), Tlp::kAmber);
  EXPECT_EQ(TlpOfMarking(kStrict), Tlp::kAmberStrict);
  EXPECT_EQ(TlpOfMarking(kRed), Tlp::kRed);
  EXPECT_EQ(TlpOfMarking(kRed1), Tlp::kRed);
  EXPECT_FALSE(TlpOfMarking(kStatement));
  EXPECT_EQ(EffectiveTlp({kGreen, kStatement, kRed1, kAmber}, Tlp::kAmber), Tlp::kRed) << "the most restrictive wins";
  EXPECT_EQ(EffectiveTlp({kStatement}, Tlp::kAmber), Tlp::kAmber) << "the collection default applies";
  EXPECT_EQ(EffectiveTlp({}, Tlp::kGreen), Tlp::kGreen);
}

struct Case {
  const char* name;
  ObjectFacts object;
  PartnerRecipient to;
  Audience audience;
  Outcome expected;
};

PartnerRecipient South(Channel c = Channel::kOpen, std::vector<std::string> groups = {}) {
  return {kSouth, kOfficer, c, std::move(groups)};
}

TEST(Releaser, DecisionTable) {
  Audience none;                               // shared with nobody in particular
  Audience community{{}, {"ct-europe"}, Tlp::kAmber};
  Audience named{{kSouth}, {}, Tlp::kAmber};
  const Case cases[] = {
      {"clear to anyone", {{kClear}}, South(), none, Outcome::kRelease},
      {"white is clear", {{kWhite}}, South(), none, Outcome::kRelease},
      {"green needs the community", {{kGreen}}, South(), none, Outcome::kWithhold},
      {"green to a group member", {{kGreen}}, South(Channel::kOpen, {"ct-europe"}), community, Outcome::kRelease},
      {"green to a named audience partner", {{kGreen}}, South(), named, Outcome::kRelease},
      {"green to another group", {{kGreen}}, South(Channel::kOpen, {"other"}), community, Outcome::kWithhold},
      {"amber to the audience", {{kAmber}}, South(), named, Outcome::kRelease},
      {"amber to the distribution", {{kAmber}, "", false, {kSouth}}, South(), none, Outcome::kRelease},
      {"amber not named", {{kAmber}}, South(Channel::kOpen, {"ct-europe"}), community, Outcome::kWithhold},
      {"unmarked uses the default amber", {{}}, South(), named, Outcome::kRelease},
      {"unmarked default amber not named", {{}}, South(), none, Outcome::kWithhold},
      {"strict needs the distribution", {{kStrict}}, South(), named, Outcome::kWithhold},
      {"strict to the named organisation", {{kStrict}, "", false, {kSouth}}, South(), none, Outcome::kRelease},
      {"red needs the individual", {{kRed}, "", false, {kSouth}}, South(), named, Outcome::kWithhold},
      {"red to the named individual", {{kRed}, "", false, {kOfficer}}, South(), none, Outcome::kRelease},
      {"most restrictive wins", {{kClear, kRed1}}, South(), named, Outcome::kWithhold},
      // channel states
      {"restricted passes green", {{kGreen}}, South(Channel::kRestricted, {"ct-europe"}), community, Outcome::kRelease},
      {"restricted stops amber", {{kAmber}}, South(Channel::kRestricted), named, Outcome::kWithhold},
      {"suspended passes clear", {{kClear}}, South(Channel::kSuspended), none, Outcome::kRelease},
      {"suspended stops green", {{kGreen}}, South(Channel::kSuspended, {"ct-europe"}), community, Outcome::kWithhold},
      {"suspended passes a warning", {{kAmber}, "", false, {kSouth}, true}, South(Channel::kSuspended), none, Outcome::kRelease},
      {"closed stops clear", {{kClear}}, South(Channel::kClosed), none, Outcome::kWithhold},
      {"closed passes an approved warning", {{kAmber}, "", false, {}, true}, South(Channel::kClosed), none, Outcome::kRelease},
      // relay from another partner
      {"relay clear", {{kClear}, kEast}, South(), none, Outcome::kRelease},
      {"relay amber to the audience", {{kAmber}, kEast}, South(), named, Outcome::kRelease},
      {"never relay red", {{kRed}, kEast, false, {kOfficer}}, South(), none, Outcome::kWithhold},
      {"never relay amber+strict", {{kStrict}, kEast, false, {kSouth}}, South(), none, Outcome::kWithhold},
      {"never relay no_relay", {{kClear}, kEast, true}, South(), none, Outcome::kWithhold},
      {"back to its source is no relay", {{kStrict}, kSouth, true, {kSouth}}, South(), none, Outcome::kRelease},
  };
  for (const auto& c : cases) {
    Decision d = DecideForPartner(c.object, c.to, c.audience);
    EXPECT_EQ(d.outcome, c.expected) << c.name << " (" << d.reason << ")";
    EXPECT_FALSE(d.reason.empty()) << c.name;
  }
}

TEST(Releaser, DecisionsArePure) {
  ObjectFacts o{{kGreen}};
  Audience a{{}, {"g"}, Tlp::kAmber};
  auto first = DecideForPartner(o, South(Channel::kOpen, {"g"}), a);
  for (int i = 0; i < 100; ++i) {
    auto again = DecideForPartner(o, South(Channel::kOpen, {"g"}), a);
    EXPECT_EQ(again.outcome, first.outcome);
    EXPECT_EQ(again.reason, first.reason);
  }
}

// Objects read with Query::share_rows carry only the store's row: a local reader gets them as
// they are (one decision for all), a partner's are rendered from their own copy (Own()).
TEST(Releaser, ObjectsSharingTheStoresRowsAreReleasedWhole) {
  const std::string json = R"({"type":"malware","spec_version":"2.1","id":"malware--5687c175-5926-4090-8ce9-6d0162364911",)"
                           R"("created":"2024-01-15T09:30:00.000Z","modified":"2024-01-15T09:30:00.000Z","is_family":false,)"
                           R"("object_marking_refs":[")" + kClear + R"("]})";
  auto row = std::make_shared<store::StoredObject>();
  row->id = "malware--5687c175-5926-4090-8ce9-6d0162364911";
  row->type = "malware";
  row->modified = "2024-01-15T09:30:00.000Z";
  row->json = json;
  row->date_added = 7;
  auto shared = [&] {
    store::StoredObject o;
    o.date_added = row->date_added;
    o.row = row;
    return o;
  };
  Releaser releaser;
  Recipient local{"analyst", true};
  std::vector<Decision> why;
  auto out = releaser.Release({shared(), shared()}, local, &why);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].Id(), row->id);
  EXPECT_EQ(out[0].Json(), json);
  EXPECT_TRUE(out[0].id.empty()) << "a local reader's object stays shared";
  ASSERT_EQ(why.size(), 2u);
  EXPECT_EQ(why[1].object_id, row->id);
  ASSERT_TRUE(releaser.LocalDecision(local));
  EXPECT_EQ(releaser.LocalDecision(local)->outcome, Outcome::kRelease);
  EXPECT_EQ(releaser.LocalDecision(local)->reason, why[0].reason);
  EXPECT_FALSE(releaser.Release({shared()}, Recipient{"nobody", false}).size());
  PartnerRecipient south = South();
  Audience none;
  Recipient partner{"south", true, &south, &none, "identity--00000000-0000-4000-8000-0000000000ff"};
  auto rendered = releaser.Release({shared()}, partner, &why);
  ASSERT_EQ(rendered.size(), 1u);
  EXPECT_FALSE(rendered[0].row) << "rendered for a partner from its own copy";
  EXPECT_EQ(rendered[0].id, row->id);
  EXPECT_NE(rendered[0].json.find("\"is_family\":false"), std::string::npos) << rendered[0].json;
  EXPECT_FALSE(releaser.LocalDecision(partner));
}

// ReleaseFrom keeps the facts of stored versions between calls. A version deleted and stored
// again with other markings (same id and modified) must be decided on its new content.
TEST(Releaser, CachedFactsFollowADeletedAndRestoredVersion) {
  namespace fs = std::filesystem;
  std::string path = (fs::temp_directory_path() / ("tearline-releaser-" + std::to_string(getpid()) + ".db")).string();
  auto remove = [&] {
    for (auto x : {"", "-wal", "-shm", ".audit", ".audit-wal", ".audit-shm", ".audit-chain"}) fs::remove(path + x);
  };
  remove();
  {
    auto store = store::OpenSqlite(path);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->EnsureCollection("c").ok());
    auto put = [&](const std::string& marking) {
      std::string bundle = R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[)"
                           R"({"type":"indicator","spec_version":"2.1","id":"indicator--a6f12b93-270d-41b3-a42c-000000000001",)"
                           R"("created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","name":"x",)"
                           R"("pattern":"[ipv4-addr:value = '198.51.100.7']","pattern_type":"stix",)"
                           R"("valid_from":"2024-01-01T00:00:00Z","object_marking_refs":[")" + marking + R"("]}]})";
      stix::Validator v;
      auto r = v.Validate(bundle);
      ASSERT_TRUE(r.ok());
      auto st = (*store)->Put("c", r.objects);
      ASSERT_TRUE(st.ok()) << st.status().message();
    };
    PartnerRecipient south{kSouth, "", Channel::kOpen, {"g"}, 1};
    Audience audience{{}, {"g"}, Tlp::kAmber};
    Recipient to{"south", true, &south, &audience};
    Releaser releaser;
    auto page = [&] {
      store::Query q;
      q.collection = "c";
      q.held_for = kSouth;
      auto p = (*store)->Query(q);
      EXPECT_TRUE(p.ok());
      auto out = releaser.ReleaseFrom(**store, "c", std::move(p->objects), to);
      EXPECT_TRUE(out.ok());
      return out->size();
    };
    put(kGreen);
    EXPECT_EQ(page(), 1u);
    EXPECT_EQ(page(), 1u) << "decided again from the cached facts";
    // Cached decisions belong to the recipient's state: a closed channel withholds at once.
    south.channel = Channel::kClosed;
    EXPECT_EQ(page(), 0u) << "the channel was closed: a cached release must not be reused";
    south.channel = Channel::kOpen;
    south.groups = {"other"};
    EXPECT_EQ(page(), 0u) << "no longer in the group the collection is shared with";
    south.groups = {"g"};
    EXPECT_EQ(page(), 1u);
    store::VersionFilter all;
    all.all = true;
    ASSERT_EQ(*(*store)->Delete("c", "indicator--a6f12b93-270d-41b3-a42c-000000000001", all), 1u);
    put(kRed);
    EXPECT_EQ(page(), 0u) << "the restored version is TLP:RED: the cached GREEN facts must not be used";
  }
  remove();
}

}  // namespace
}  // namespace tearline::policy
