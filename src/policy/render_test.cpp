// Tear-line variants, granular markings and references as a recipient receives them.
#include <gtest/gtest.h>
#include <simdjson.h>

#include "policy/policy.h"
#include "stix/stix.h"

namespace tearline::policy {
namespace {

const std::string kNode = "identity--7e0c4b1a-2f3d-4e5a-8b6c-9d0e1f2a3b4c";
const std::string kAmber = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
const std::string kGreen = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const std::string kRed = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
const std::string kSouth = "identity--00000000-0000-4000-8000-000000000001";

const std::string kIndicator = std::string(R"({"type":"indicator","spec_version":"2.1","id":"indicator--11111111-1111-4111-8111-111111111111",)") +
    R"("created":"2024-03-01T10:00:00.000Z","modified":"2024-03-02T10:00:00.000Z","created_by_ref":"identity--22222222-2222-4222-8222-222222222222",)" +
    R"("name":"Handler relay","description":"Seen by our source HUMINT-7 at the relay","pattern":"[ipv4-addr:value = '203.0.113.7']",)" +
    R"("pattern_type":"stix","valid_from":"2024-03-01T10:00:00Z","labels":["relay","humint","c2"],)" +
    R"("x_collection":{"method":"intercept","handler":"K-17"},"object_marking_refs":[")" + kAmber + R"("],)" +
    R"("external_references":[{"source_name":"internal","external_id":"OP-9"}],)" +
    R"("extensions":{")" + std::string(kExtensionId) + R"(":{"extension_type":"property-extension","distribution":[")" + kSouth +
    R"("],"releasable":{"description":"A relay server used by the cell","object_marking_refs":[")" + kGreen +
    R"("]},"sensitive":["x_collection.handler","labels.[1]"],"no_relay":true},)" +
    R"("extension-definition--99999999-9999-4999-8999-999999999999":{"extension_type":"property-extension","x":1}}})";

simdjson::dom::element ParseOrDie(simdjson::dom::parser& p, const std::string& json) {
  simdjson::dom::element e;
  EXPECT_FALSE(p.parse(json).get(e)) << json;
  return e;
}

TEST(Facts, ExtensionIsRead) {
  auto f = ExtractFacts(kIndicator, kSouth);
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->has_extension);
  EXPECT_TRUE(f->no_relay);
  EXPECT_EQ(f->distribution, std::vector<std::string>{kSouth});
  EXPECT_EQ(f->min_full_tier, 1) << "something to sanitize: originals need tier 1 by default";
  EXPECT_TRUE(f->variant_markings_given);
  EXPECT_EQ(f->variant_marking_refs, std::vector<std::string>{kGreen});
  EXPECT_EQ(f->source_partner, kSouth);
  EXPECT_FALSE(ExtractFacts("not json"));
  auto plain = ExtractFacts(R"({"type":"x","revoked":true,"granular_markings":[{"marking_ref":"m","selectors":["a","b.[0]"]}]})");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->has_extension);
  EXPECT_EQ(plain->min_full_tier, 0);
  EXPECT_TRUE(plain->revoked);
  ASSERT_EQ(plain->granular.size(), 1u);
  EXPECT_EQ(plain->granular[0].selectors, (std::vector<std::string>{"a", "b.[0]"}));
}

TEST(Render, VariantIsSanitizedAndHasItsOwnId) {
  Decision d{Outcome::kReleaseVariant, "test", {}, {}};
  bool as_variant = false;
  auto out = Render(kIndicator, d, kNode, nullptr, &as_variant);
  ASSERT_TRUE(out);
  EXPECT_TRUE(as_variant);
  simdjson::dom::parser p;
  auto v = ParseOrDie(p, *out);
  std::string_view id, by, desc, modified;
  ASSERT_FALSE(v["id"].get(id));
  EXPECT_EQ(id, VariantId("indicator--11111111-1111-4111-8111-111111111111", kNode));
  EXPECT_EQ(stix::UuidVersion(id.substr(11)), 5);
  ASSERT_FALSE(v["created_by_ref"].get(by));
  EXPECT_EQ(by, kNode);
  ASSERT_FALSE(v["description"].get(desc));
  EXPECT_EQ(desc, "A relay server used by the cell");
  ASSERT_FALSE(v["modified"].get(modified));
  EXPECT_EQ(modified, "2024-03-02T10:00:00.000Z") << "updates flow: modified follows the original";
  EXPECT_EQ(out->find("11111111-1111-4111-8111-111111111111"), std::string::npos) << "the original id never leaks";
  EXPECT_EQ(out->find("HUMINT"), std::string::npos);
  EXPECT_EQ(out->find("K-17"), std::string::npos) << "sensitive path removed";
  EXPECT_NE(out->find("intercept"), std::string::npos) << "only the named path goes";
  EXPECT_EQ(out->find("humint"), std::string::npos) << "list element removed";
  EXPECT_NE(out->find("[\"relay\",\"c2\"]"), std::string::npos) << *out;
  EXPECT_EQ(out->find("external_references"), std::string::npos);
  EXPECT_EQ(out->find(kExtensionId), std::string::npos);
  EXPECT_NE(out->find("extension-definition--99999999"), std::string::npos) << "other extensions stay";
  EXPECT_NE(out->find(kGreen), std::string::npos) << "the variant's own markings";
  EXPECT_EQ(out->find(kAmber), std::string::npos);
  // The variant is valid STIX.
  stix::Validator val;
  auto r = val.Validate(*out);
  EXPECT_EQ(r.objects.size(), 1u) << (r.diagnostics.empty() ? "" : r.diagnostics[0].ToString());
  // Deterministic.
  EXPECT_EQ(*Render(kIndicator, d, kNode, nullptr, &as_variant), *out);
}

TEST(Render, OriginalIsUnchangedWhenNothingApplies) {
  Decision d{Outcome::kRelease, "test", {}, {}};
  bool as_variant = true;
  auto out = Render(kIndicator, d, kNode, [](std::string_view) { return RefForm::kOriginal; }, &as_variant);
  ASSERT_TRUE(out);
  EXPECT_FALSE(as_variant);
  EXPECT_EQ(*out, kIndicator);
}

TEST(Render, GranularMarkedPropertiesAreWithheld) {
  std::string o = std::string(R"({"type":"campaign","spec_version":"2.1","id":"campaign--33333333-3333-4333-8333-333333333333",)") +
                  R"("created":"2024-03-01T10:00:00.000Z","modified":"2024-03-01T10:00:00.000Z","name":"Lantern",)" +
                  R"("description":"Built by the handler in K-17","aliases":["LNT","NL-1"],"granular_markings":[)" +
                  R"({"marking_ref":")" + kRed + R"(","selectors":["description","aliases.[1]"]},)" +
                  R"({"marking_ref":")" + kGreen + R"(","selectors":["name"]}]})";
  auto f = ExtractFacts(o);
  ASSERT_TRUE(f);
  PartnerRecipient south{kSouth, "", Channel::kOpen, {"g"}};
  Audience a{{}, {"g"}, Tlp::kGreen};
  Decision d = DecideForPartner(*f, south, a);
  ASSERT_EQ(d.outcome, Outcome::kRelease);
  EXPECT_EQ(d.strip, (std::vector<std::string>{"description", "aliases.[1]"}));
  bool as_variant = true;
  auto out = Render(o, d, kNode, nullptr, &as_variant);
  ASSERT_TRUE(out);
  EXPECT_FALSE(as_variant) << "granular withholding keeps the id (the producer marked it so)";
  EXPECT_EQ(out->find("K-17"), std::string::npos);
  EXPECT_EQ(out->find("NL-1"), std::string::npos);
  EXPECT_NE(out->find("\"aliases\":[\"LNT\"]"), std::string::npos) << *out;
  EXPECT_EQ(out->find(kRed), std::string::npos) << "the marking of withheld properties goes with them";
  EXPECT_NE(out->find(kGreen), std::string::npos);
  stix::Validator val;
  EXPECT_EQ(val.Validate(*out).objects.size(), 1u);
  // A required property under a marking the recipient may not see withholds the object.
  Decision name_hidden = d;
  name_hidden.strip = {"name"};
  EXPECT_FALSE(Render(o, name_hidden, kNode, nullptr, &as_variant));
}

TEST(Render, ReferencesFollowWhatTheRecipientReceives) {
  const std::string hidden = "campaign--44444444-4444-4444-8444-444444444444";
  const std::string sanitized = "intrusion-set--55555555-5555-4555-8555-555555555555";
  const std::string plain = "location--66666666-6666-4666-8666-666666666666";
  auto resolve = [&](std::string_view id) {
    if (id == hidden) return RefForm::kWithheld;
    if (id == sanitized) return RefForm::kVariant;
    if (id == plain) return RefForm::kOriginal;
    return RefForm::kUnknown;
  };
  Decision d{Outcome::kRelease, "test", {}, {}};
  bool as_variant = false;
  std::string rel = R"({"type":"relationship","spec_version":"2.1","id":"relationship--77777777-7777-4777-8777-777777777777",)"
                    R"("created":"2024-03-01T10:00:00.000Z","modified":"2024-03-01T10:00:00.000Z","relationship_type":"targets",)"
                    R"("source_ref":")" + hidden + R"(","target_ref":")" + plain + R"("})";
  EXPECT_FALSE(Render(rel, d, kNode, resolve, &as_variant)) << "a relationship about a withheld object is withheld";
  std::string rel2 = rel;
  rel2.replace(rel2.find(hidden), hidden.size(), sanitized);
  auto out = Render(rel2, d, kNode, resolve, &as_variant);
  ASSERT_TRUE(out);
  EXPECT_TRUE(as_variant) << "rewritten references make a republished copy";
  EXPECT_NE(out->find(VariantId(sanitized, kNode)), std::string::npos);
  EXPECT_EQ(out->find(sanitized), std::string::npos) << "the original id of a variant never leaks";
  EXPECT_EQ(out->find("77777777-7777-4777-8777-777777777777"), std::string::npos);
  std::string report = R"({"type":"report","spec_version":"2.1","id":"report--88888888-8888-4888-8888-888888888888",)"
                       R"("created":"2024-03-01T10:00:00.000Z","modified":"2024-03-01T10:00:00.000Z","name":"r","published":"2024-03-01T10:00:00Z",)"
                       R"("object_refs":[")" + hidden + R"(",")" + sanitized + R"(",")" + plain + R"("]})";
  out = Render(report, d, kNode, resolve, &as_variant);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->find(hidden), std::string::npos);
  EXPECT_NE(out->find(plain), std::string::npos);
  EXPECT_NE(out->find(VariantId(sanitized, kNode)), std::string::npos);
  stix::Validator val;
  EXPECT_EQ(val.Validate(*out).objects.size(), 1u);
  std::string only_hidden = R"({"type":"report","spec_version":"2.1","id":"report--88888888-8888-4888-8888-888888888888",)"
                            R"("created":"2024-03-01T10:00:00.000Z","modified":"2024-03-01T10:00:00.000Z","name":"r","published":"2024-03-01T10:00:00Z",)"
                            R"("object_refs":[")" + hidden + R"("]})";
  EXPECT_FALSE(Render(only_hidden, d, kNode, resolve, &as_variant)) << "object_refs is required and would be empty";
}

TEST(Facts, PolicyViewKeepsEveryFactTheRulesRead) {
  // The stored view decides manifests and pages: it must yield the same facts and references.
  const std::string file = R"({"type":"file","spec_version":"2.1","id":"file--11111111-1111-4111-8111-1111111111f1",)"
                           R"("name":"drop.zip","object_marking_refs":[")" + kGreen + R"("],)"
                           R"("extensions":{"archive-ext":{"contains_refs":["file--22222222-2222-4222-8222-2222222222f2"]},)"
                           R"("ntfs-ext":{"sid":"S-1-5"}}})";
  for (const std::string& json : {kIndicator, file}) {
    std::string view = stix::PolicyView(json);
    EXPECT_LT(view.size(), json.size());
    EXPECT_EQ(ReferencedIds(view), ReferencedIds(json)) << view;
    auto a = ExtractFacts(json), b = ExtractFacts(view);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->marking_refs, b->marking_refs);
    EXPECT_EQ(a->distribution, b->distribution);
    EXPECT_EQ(a->has_extension, b->has_extension);
    EXPECT_EQ(a->min_full_tier, b->min_full_tier);
    EXPECT_EQ(a->no_relay, b->no_relay);
    EXPECT_EQ(a->variant_marking_refs, b->variant_marking_refs);
    EXPECT_EQ(a->refs, b->refs);
  }
  EXPECT_EQ(stix::PolicyView(kIndicator).find("HUMINT"), std::string::npos) << "descriptions are not facts";
  EXPECT_NE(stix::PolicyView(file).find("contains_refs"), std::string::npos);
  EXPECT_EQ(stix::PolicyView(file).find("ntfs-ext"), std::string::npos);
}

struct Row {
  const char* name;
  ObjectFacts object;
  PartnerRecipient to;
  Held held;
  Outcome expected;
};

TEST(Releaser, TiersVariantsHistoryAndRevocation) {
  const std::string clear = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";
  Audience named{{kSouth}, {}, Tlp::kAmber};
  ObjectFacts sanitizable;
  sanitizable.marking_refs = {kAmber};
  sanitizable.has_extension = true;
  sanitizable.min_full_tier = 2;
  ObjectFacts lowered = sanitizable;
  lowered.variant_markings_given = true;
  lowered.variant_marking_refs = {clear};
  ObjectFacts revoked;
  revoked.marking_refs = {kAmber};
  revoked.revoked = true;
  ObjectFacts tiered_plain;  // no extension: no variant can be made
  tiered_plain.min_full_tier = 1;
  auto south = [](int tier, Channel c = Channel::kOpen) { return PartnerRecipient{kSouth, "", c, {}, tier}; };
  const Row rows[] = {
      {"tier high enough: original", sanitizable, south(2), Held::kNothing, Outcome::kRelease},
      {"tier too low: variant", sanitizable, south(1), Held::kNothing, Outcome::kReleaseVariant},
      {"holds the variant: stays on the variant", sanitizable, south(3), Held::kVariant, Outcome::kReleaseVariant},
      {"holds the original, tier lowered: nothing", sanitizable, south(0), Held::kOriginal, Outcome::kWithhold},
      {"holds the original: original", sanitizable, south(2), Held::kOriginal, Outcome::kRelease},
      {"variant is still TLP:AMBER on a restricted channel", sanitizable, south(0, Channel::kRestricted), Held::kNothing, Outcome::kWithhold},
      {"variant with its own TLP:CLEAR on a restricted channel", lowered, south(0, Channel::kRestricted), Held::kNothing, Outcome::kReleaseVariant},
      {"original keeps TLP:AMBER on a restricted channel", lowered, south(2, Channel::kRestricted), Held::kNothing, Outcome::kWithhold},
      {"revoked, never received", revoked, south(0), Held::kNothing, Outcome::kWithhold},
      {"revoked, received earlier", revoked, south(0), Held::kOriginal, Outcome::kRelease},
      {"min tier without an extension: withheld", tiered_plain, south(0), Held::kNothing, Outcome::kWithhold},
  };
  for (const auto& r : rows) {
    auto d = DecideForPartner(r.object, r.to, named, r.held);
    EXPECT_EQ(d.outcome, r.expected) << r.name << " (" << d.reason << ")";
  }
}

}  // namespace
}  // namespace tearline::policy
