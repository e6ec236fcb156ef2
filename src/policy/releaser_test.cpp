// The sharing rules as a table: object facts x recipient x audience -> decision.
#include <gtest/gtest.h>

#include <algorithm>

#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include "policy/policy.h"
#include "stix/stix.h"
#include "store/store.h"
#include "test_util.h"

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
    o.row = row->MakeRow();
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

// A SQLite store in a directory of its own (test_util.h's TempDir: removed with every file
// the store put beside it).
struct TempStore {
  test::TempDir dir;
  Result<std::unique_ptr<store::Store>> store = store::OpenSqlite(dir.path() + "/releaser.db");
};

// ReleaseFrom keeps the facts of stored versions between calls. A version deleted and stored
// again with other markings (same id and modified) must be decided on its new content.
TEST(Releaser, CachedFactsFollowADeletedAndRestoredVersion) {
  TempStore t;
  {
    auto& store = t.store;
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
}

// Decisions kept between pages are kept once per distinct decision, without the object's id
// (CollectionCache::Known): a page read again gets, for every object, the decision it got the
// first time, and the original id of each (the copies for callers with their own, the object's
// id where the shared one has none); objects decided alike share one decision. Withheld objects
// stay withheld from the kept decisions.
TEST(Releaser, KeptDecisionsAreSharedAndStillNameEachObject) {
  TempStore t;
  auto& store = t.store;
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->EnsureCollection("c").ok());
  std::string objects;
  for (int n = 0; n < 12; ++n) {
    char id[64];
    std::snprintf(id, sizeof id, "indicator--a6f12b93-270d-41b3-a42c-%012d", n);
    if (n) objects += ",";
    objects += R"({"type":"indicator","spec_version":"2.1","id":")" + std::string(id) +
               R"(","created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","name":"x",)"
               R"("pattern":"[ipv4-addr:value = '198.51.100.7']","pattern_type":"stix",)"
               R"("valid_from":"2024-01-01T00:00:00Z","object_marking_refs":[")" + (n % 4 == 3 ? kRed : kGreen) + R"("]})";
  }
  stix::Validator v;
  auto r = v.Validate(R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[)" + objects + "]}");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE((*store)->Put("c", r.objects).ok());
  PartnerRecipient south{kSouth, "", Channel::kOpen, {"g"}, 1};
  Audience audience{{}, {"g"}, Tlp::kAmber};
  Recipient to{"south", true, &south, &audience};
  Releaser releaser;
  auto read = [&] {
    store::Query q;
    q.collection = "c";
    q.held_for = kSouth;
    q.share_rows = true;
    auto p = (*store)->Query(q);
    EXPECT_TRUE(p.ok());
    return std::move(p->objects);
  };
  std::vector<Decision> first, again;
  auto out1 = releaser.ReleaseFrom(**store, "c", read(), to, &first);
  ASSERT_TRUE(out1.ok());
  ASSERT_EQ(out1->size(), 9u) << "the TLP:RED ones withheld";
  ASSERT_EQ(first.size(), 9u);
  EXPECT_EQ(releaser.cache_stats().decisions, 12u) << "withheld ones are kept too";
  auto out2 = releaser.ReleaseFrom(**store, "c", read(), to, &again);
  ASSERT_TRUE(out2.ok());
  ASSERT_EQ(out2->size(), 9u) << "withheld again from the kept decisions";
  ASSERT_EQ(again.size(), 9u);
  for (size_t k = 0; k < 9; ++k) {
    EXPECT_EQ((*out2)[k].Id(), (*out1)[k].Id());
    EXPECT_EQ(again[k].object_id, (*out2)[k].Id()) << k;
    EXPECT_EQ(again[k].object_id, first[k].object_id) << k;
    EXPECT_EQ(again[k].outcome, first[k].outcome) << k;
    EXPECT_EQ(again[k].reason, first[k].reason) << k;
    EXPECT_EQ(again[k].first_release, first[k].first_release) << k;
  }
  std::vector<SharedDecision> shared;
  auto out3 = releaser.ReleaseFrom(**store, "c", read(), to, &shared);
  ASSERT_TRUE(out3.ok());
  ASSERT_EQ(shared.size(), 9u);
  std::set<const Decision*> distinct;
  for (size_t k = 0; k < 9; ++k) {
    ASSERT_TRUE(shared[k]);
    EXPECT_TRUE(shared[k]->object_id.empty() || shared[k]->object_id == (*out3)[k].Id()) << k;
    EXPECT_EQ(shared[k]->reason, first[k].reason) << k;
    distinct.insert(shared[k].get());
  }
  EXPECT_EQ(distinct.size(), 1u) << "nine objects decided alike share one kept decision";
}

// A partner reading two collections in turn keeps what was decided in each: a page of one
// collection does not empty the other's cache (it did: one generation was kept, for the last
// collection read), a new version in one empties that one's alone.
TEST(Releaser, EachCollectionKeepsItsOwnCache) {
  TempStore t;
  auto& store = t.store;
  ASSERT_TRUE(store.ok());
  auto put = [&](const std::string& coll, int n) {
    ASSERT_TRUE((*store)->EnsureCollection(coll).ok());
    std::string bundle = R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[)"
                         R"({"type":"indicator","spec_version":"2.1","id":"indicator--a6f12b93-270d-41b3-a42c-00000000000)" +
                         std::to_string(n) + R"(","created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","name":"x",)"
                         R"("pattern":"[ipv4-addr:value = '198.51.100.7']","pattern_type":"stix",)"
                         R"("valid_from":"2024-01-01T00:00:00Z","object_marking_refs":[")" + std::string(kGreen) + R"("]}]})";
    stix::Validator v;
    auto r = v.Validate(bundle);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE((*store)->Put(coll, r.objects).ok());
  };
  put("c", 1);
  put("d", 2);
  PartnerRecipient south{kSouth, "", Channel::kOpen, {"g"}, 1};
  Audience audience{{}, {"g"}, Tlp::kAmber};
  Recipient to{"south", true, &south, &audience};
  Releaser releaser;
  auto page = [&](const std::string& coll) {
    store::Query q;
    q.collection = coll;
    q.held_for = kSouth;
    auto p = (*store)->Query(q);
    EXPECT_TRUE(p.ok());
    auto out = releaser.ReleaseFrom(**store, coll, std::move(p->objects), to);
    EXPECT_TRUE(out.ok());
    return out->size();
  };
  EXPECT_EQ(page("c"), 1u);
  EXPECT_EQ(releaser.cache_stats().decisions, 1u);
  EXPECT_EQ(page("d"), 1u);
  EXPECT_EQ(page("c"), 1u);
  auto st = releaser.cache_stats();
  EXPECT_EQ(st.collections, 2u);
  EXPECT_EQ(st.decisions, 2u) << "each collection's decision kept";
  put("d", 3);  // a new object in d: c's cache stays (d's too: nothing cached depends on it)
  EXPECT_EQ(page("d"), 2u);
  EXPECT_EQ(releaser.cache_stats().decisions, 3u);
  EXPECT_EQ(page("c"), 1u);
  EXPECT_EQ(releaser.cache_stats().decisions, 3u);
}

// An object released as an original but changed for the recipient because of what it refers
// to is republished under a derived id (Render): every object that refers to it must name it
// by that id, at any depth of the reference graph, and an object withheld because of its own
// references (a relationship to a withheld object) must not be named at all. Whatever a partner
// receives refers only to what it receives (or to objects this collection does not hold).
TEST(Releaser, ReferencesFollowHowEachReferredObjectIsReleased) {
  TempStore t;
  auto& store = t.store;
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->EnsureCollection("c").ok());
  const std::string ext = std::string(kExtensionId);
  auto obj = [](const std::string& type, const std::string& id, const std::string& marking, const std::string& rest) {
    return R"({"type":")" + type + R"(","spec_version":"2.1","id":")" + id +
           R"(","created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","object_marking_refs":[")" +
           marking + R"("],)" + rest + "}";
  };
  const std::string m = "malware--0a000000-0000-4000-8000-000000000001";       // variant (tier)
  const std::string i = "indicator--0a000000-0000-4000-8000-000000000002";     // original
  const std::string r = "relationship--0a000000-0000-4000-8000-000000000003";  // i -> m: republished
  const std::string w = "indicator--0a000000-0000-4000-8000-000000000004";     // RED: withheld
  const std::string r2 = "relationship--0a000000-0000-4000-8000-000000000005"; // i -> w: withheld
  const std::string rep = "report--0a000000-0000-4000-8000-000000000006";      // r, r2, i: republished
  const std::string note = "note--0a000000-0000-4000-8000-000000000007";       // rep: republished
  const std::string far = "note--0a000000-0000-4000-8000-000000000008";        // note: republished
  const std::string outside = "identity--0a000000-0000-4000-8000-000000000009"; // not in the collection
  const std::string pattern = R"("pattern":"[ipv4-addr:value = '198.51.100.7']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z")";
  std::vector<std::string> objects = {
      obj("malware", m, kGreen, R"("name":"m","is_family":false,"extensions":{")" + ext +
                                    R"(":{"extension_type":"property-extension","min_full_tier":2}})"),
      obj("indicator", i, kGreen, R"("name":"i",)" + pattern),
      obj("relationship", r, kGreen, R"("relationship_type":"indicates","source_ref":")" + i + R"(","target_ref":")" + m + R"(")"),
      obj("indicator", w, kRed, R"("name":"w",)" + pattern),
      obj("relationship", r2, kGreen, R"("relationship_type":"related-to","source_ref":")" + i + R"(","target_ref":")" + w + R"(")"),
      obj("report", rep, kGreen, R"("name":"rep","published":"2024-01-01T00:00:00Z","object_refs":[")" + r + R"(",")" + r2 +
                                     R"(",")" + i + R"("])"),
      obj("note", note, kGreen, R"("content":"see the report","object_refs":[")" + rep + R"(",")" + outside + R"("])"),
      obj("note", far, kGreen, R"("content":"see the note","object_refs":[")" + note + R"("])"),
  };
  std::string bundle = R"({"type":"bundle","id":"bundle--0a000000-0000-4000-8000-0000000000ff","objects":[)";
  for (size_t k = 0; k < objects.size(); ++k) bundle += (k ? "," : "") + objects[k];
  bundle += "]}";
  stix::Validator v;
  auto valid = v.Validate(bundle);
  ASSERT_TRUE(valid.ok()) << (valid.diagnostics.empty() ? "" : valid.diagnostics.front().ToString());
  ASSERT_TRUE((*store)->Put("c", valid.objects).ok());

  PartnerRecipient south{kSouth, "", Channel::kOpen, {"g"}, 0};
  Audience audience{{}, {"g"}, Tlp::kAmber};
  Recipient to{"south", true, &south, &audience};
  to.node_identity = "identity--7e0c4b1a-2f3d-4e5a-8b6c-9d0e1f2a3b4c";
  auto as_variant = [&](const std::string& id) { return VariantId(id, to.node_identity); };
  // What the partner receives when it reads `ids` (all objects when empty): id -> JSON. Read
  // both ways: a page whose objects share the store's cached rows (as the server reads them;
  // the Releaser copies those it changes) releases what a page of copies does.
  auto release_as = [&](std::vector<std::string> ids, bool share_rows) {
    Releaser releaser;  // a new one each time: nothing decided in an earlier read is reused
    store::Query q;
    q.collection = "c";
    q.held_for = kSouth;
    q.ids = std::move(ids);
    q.share_rows = share_rows;
    (void)(*store)->Query(q);  // the row cache filled: the second read shares its rows
    auto page = (*store)->Query(q);
    EXPECT_TRUE(page.ok());
    if (share_rows && q.ids.empty()) {
      EXPECT_TRUE(std::all_of(page->objects.begin(), page->objects.end(), [](const auto& o) { return o.row && o.id.empty(); }))
          << "the page shares the store's rows";
    }
    auto out = releaser.ReleaseFrom(**store, "c", std::move(page->objects), to);
    EXPECT_TRUE(out.ok());
    std::map<std::string, std::string> got;
    for (const auto& o : *out) got[std::string(o.Id())] = o.Json();
    return got;
  };
  auto release = [&](std::vector<std::string> ids) {
    auto copies = release_as(ids, false);
    EXPECT_EQ(release_as(ids, true), copies) << "shared rows and copies";
    return copies;
  };
  // The references of a received object, but its creator (the node, for what it republished).
  auto refs = [&](const std::string& json) {
    auto v = ReferencedIds(json);
    std::set<std::string> out(v.begin(), v.end());
    out.erase(to.node_identity);
    return out;
  };

  // Each object read alone names the others as the partner receives them.
  auto alone = release({far});
  ASSERT_EQ(alone.size(), 1u);
  ASSERT_TRUE(alone.count(as_variant(far))) << "its reference changed: republished";
  EXPECT_EQ(refs(alone[as_variant(far)]), std::set<std::string>{as_variant(note)}) << "three references away from m";
  alone = release({note});
  ASSERT_TRUE(alone.count(as_variant(note)));
  EXPECT_EQ(refs(alone[as_variant(note)]), (std::set<std::string>{as_variant(rep), outside}))
      << "a reference to an object the collection does not hold stays";
  alone = release({rep});
  ASSERT_TRUE(alone.count(as_variant(rep)));
  EXPECT_EQ(refs(alone[as_variant(rep)]), (std::set<std::string>{as_variant(r), i}))
      << "the relationship to a withheld object is withheld: not named";
  EXPECT_TRUE(release({r2}).empty());

  // Everything at once: the same forms, and every reference names something received.
  auto all = release({});
  EXPECT_EQ(all.size(), 6u);
  for (const auto& id : {as_variant(m), i, as_variant(r), as_variant(rep), as_variant(note), as_variant(far)}) {
    EXPECT_TRUE(all.count(id)) << id;
  }
  for (const auto& [id, json] : all) {
    for (const auto& ref : refs(json)) EXPECT_TRUE(all.count(ref) || ref == outside) << id << " names " << ref;
  }
}

// A Releaser kept between reads (as the server keeps it) releases what a new one would, while
// objects arrive: a new object nothing cached depends on leaves the collection's cache as it
// is; one that a cached object refers to (present before or not yet), or a new version of a
// cached object, empties it.
TEST(Releaser, ACacheKeptWhileObjectsArriveReleasesWhatANewOneWould) {
  TempStore t;
  auto& store = t.store;
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->EnsureCollection("c").ok());
  auto obj = [](const std::string& type, const std::string& id, const std::string& modified, const std::string& marking,
                const std::string& rest) {
    return R"({"type":")" + type + R"(","spec_version":"2.1","id":")" + id + R"(","created":"2024-01-01T00:00:00.000Z","modified":")" +
           modified + R"(","object_marking_refs":[")" + marking + R"("],)" + rest + "}";
  };
  const std::string t0 = "2024-01-01T00:00:00.000Z", t1 = "2024-02-01T00:00:00.000Z";
  const std::string pattern = R"("pattern":"[ipv4-addr:value = '198.51.100.7']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z")";
  const std::string i = "indicator--0b000000-0000-4000-8000-000000000001";
  const std::string m = "malware--0b000000-0000-4000-8000-000000000002";
  const std::string r = "relationship--0b000000-0000-4000-8000-000000000003";  // i -> m
  const std::string n = "note--0b000000-0000-4000-8000-000000000004";          // names x before x arrives
  const std::string x = "indicator--0b000000-0000-4000-8000-000000000005";
  const std::string j = "indicator--0b000000-0000-4000-8000-000000000006";     // unrelated
  auto put = [&](std::vector<std::string> objects) {
    std::string bundle = R"({"type":"bundle","id":"bundle--0b000000-0000-4000-8000-0000000000ff","objects":[)";
    for (size_t k = 0; k < objects.size(); ++k) bundle += (k ? "," : "") + objects[k];
    bundle += "]}";
    stix::Validator v;
    auto valid = v.Validate(bundle);
    ASSERT_TRUE(valid.ok()) << (valid.diagnostics.empty() ? "" : valid.diagnostics.front().ToString());
    ASSERT_TRUE((*store)->Put("c", valid.objects).ok());
  };
  put({obj("indicator", i, t0, kGreen, R"("name":"i",)" + pattern),
       obj("malware", m, t0, kGreen, R"("name":"m","is_family":false)"),
       obj("relationship", r, t0, kGreen, R"("relationship_type":"indicates","source_ref":")" + i + R"(","target_ref":")" + m + R"(")"),
       obj("note", n, t0, kGreen, R"("content":"see x","object_refs":[")" + x + R"("])")});
  PartnerRecipient south{kSouth, "", Channel::kOpen, {"g"}, 1};
  Audience audience{{}, {"g"}, Tlp::kAmber};
  Recipient to{"south", true, &south, &audience};
  to.node_identity = "identity--7e0c4b1a-2f3d-4e5a-8b6c-9d0e1f2a3b4c";
  Releaser kept;
  auto release = [&](const Releaser& releaser, std::vector<std::string> ids) {
    store::Query q;
    q.collection = "c";
    q.held_for = kSouth;
    q.ids = std::move(ids);
    auto page = (*store)->Query(q);
    EXPECT_TRUE(page.ok());
    auto out = releaser.ReleaseFrom(**store, "c", std::move(page->objects), to);
    EXPECT_TRUE(out.ok());
    std::map<std::string, std::string> got;
    for (const auto& o : *out) got[std::string(o.Id())] = o.Json();
    return got;
  };
  // Read alone, then all at once, by the kept Releaser and by a new one: the same.
  auto same = [&](const std::string& when) {
    for (const auto& ids : std::vector<std::vector<std::string>>{{n}, {r}, {}}) {
      auto cached = release(kept, ids);
      Releaser fresh;
      EXPECT_EQ(cached, release(fresh, ids)) << when;
    }
    return release(kept, {});
  };
  auto names = [](const std::map<std::string, std::string>& got, const std::string& id) {
    for (const auto& [k, json] : got) {
      if (json.find(id) != std::string::npos) return true;
    }
    return false;
  };
  auto got = same("at first");
  EXPECT_EQ(got.size(), 4u);
  EXPECT_TRUE(names(got, x)) << "a reference to an object the collection does not hold (yet) stays";
  EXPECT_EQ(kept.cache_stats().emptied, 0u);

  put({obj("indicator", j, t0, kGreen, R"("name":"j",)" + pattern)});
  got = same("after an unrelated object");
  EXPECT_EQ(got.size(), 5u);
  EXPECT_EQ(kept.cache_stats().emptied, 0u) << "nothing cached depends on j: the cache was kept";

  put({obj("indicator", x, t0, kRed, R"("name":"x",)" + pattern)});
  got = same("after x arrived, TLP:RED");
  EXPECT_FALSE(names(got, x)) << "x is withheld: nothing names it any more";
  EXPECT_EQ(kept.cache_stats().emptied, 1u) << "the note refers to x";

  put({obj("malware", m, t1, kRed, R"("name":"m","is_family":false)")});
  got = same("after m's new version, TLP:RED");
  EXPECT_FALSE(got.count(m));
  EXPECT_FALSE(got.count(r)) << "a relationship to a withheld object is withheld";
  EXPECT_FALSE(names(got, m));
  EXPECT_TRUE(got.count(i));
  EXPECT_EQ(kept.cache_stats().emptied, 2u);
}

// Requests whose snapshots began before a commit run beside requests that began after it: an
// older one reads without the cache and leaves it to the newer ones (it emptied it, and the
// next newer request emptied it again, at nearly every request while objects were arriving).
TEST(Releaser, AnOlderSnapshotLeavesTheCacheToTheNewerOnes) {
  TempStore t;
  auto& store = t.store;
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->EnsureCollection("c").ok());
  auto indicator = [](const std::string& id, const std::string& marking) {
    return R"({"type":"indicator","spec_version":"2.1","id":")" + id +
           R"(","created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","object_marking_refs":[")" + marking +
           R"("],"name":"i","pattern":"[ipv4-addr:value = '198.51.100.7']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"})";
  };
  auto put = [&](const std::string& object) {
    stix::Validator v;
    auto valid = v.Validate(R"({"type":"bundle","id":"bundle--0c000000-0000-4000-8000-0000000000ff","objects":[)" + object + "]}");
    ASSERT_TRUE(valid.ok());
    ASSERT_TRUE((*store)->Put("c", valid.objects).ok());
  };
  put(indicator("indicator--0c000000-0000-4000-8000-000000000001", kGreen));
  put(indicator("indicator--0c000000-0000-4000-8000-000000000002", kRed));
  PartnerRecipient south{kSouth, "", Channel::kOpen, {"g"}, 1};
  Audience audience{{}, {"g"}, Tlp::kAmber};
  Recipient to{"south", true, &south, &audience};
  to.node_identity = "identity--7e0c4b1a-2f3d-4e5a-8b6c-9d0e1f2a3b4c";
  auto release = [&](const Releaser& releaser) {
    store::Query q;
    q.collection = "c";
    q.held_for = kSouth;
    auto page = (*store)->Query(q);
    EXPECT_TRUE(page.ok());
    auto out = releaser.ReleaseFrom(**store, "c", std::move(page->objects), to);
    EXPECT_TRUE(out.ok());
    std::vector<std::string> ids;
    for (const auto& o : *out) ids.emplace_back(o.Id());
    return ids;
  };
  Releaser kept;
  EXPECT_EQ(release(kept).size(), 1u) << "the TLP:RED indicator is withheld";
  {
    auto older = (*store)->ReadSnapshot();  // this thread's reads: the state before the next put
    ASSERT_TRUE(older);
    EXPECT_EQ(release(kept).size(), 1u);
    put(indicator("indicator--0c000000-0000-4000-8000-000000000003", kGreen));
    std::vector<std::string> newer;
    std::thread([&] { newer = release(kept); }).join();  // another request, after the put
    EXPECT_EQ(newer.size(), 2u);
    const auto before = kept.cache_stats();
    EXPECT_EQ(before.emptied, 0u) << "an unrelated insert keeps the cache";
    ASSERT_GT(before.decisions, 0u);
    // The older snapshot, after the newer request: released as a new Releaser would (without
    // the object it cannot see), and the cache is the newer one's still.
    Releaser fresh;
    EXPECT_EQ(release(kept), release(fresh));
    EXPECT_EQ(release(kept).size(), 1u);
    EXPECT_EQ(kept.cache_stats().emptied, 0u) << "the older snapshot emptied the cache";
    EXPECT_EQ(kept.cache_stats().decisions, before.decisions);
  }
  EXPECT_EQ(release(kept).size(), 2u);
  EXPECT_EQ(kept.cache_stats().emptied, 0u);
}
}  // namespace
}  // namespace tearline::policy
