// One case per validation rule, negative and positive, as a table.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "stix/stix.h"

namespace tearline::stix {
namespace {

// A JSON object built member by member; values are raw JSON text.
struct Obj {
  std::vector<std::pair<std::string, std::string>> members;
  Obj& Set(const std::string& k, const std::string& raw) {
    for (auto& [key, v] : members) {
      if (key == k) {
        v = raw;
        return *this;
      }
    }
    members.emplace_back(k, raw);
    return *this;
  }
  Obj& Del(const std::string& k) {
    std::erase_if(members, [&](const auto& m) { return m.first == k; });
    return *this;
  }
  std::string Json() const {
    std::string s = "{";
    for (const auto& [k, v] : members) s += (s.size() > 1 ? "," : "") + ("\"" + k + "\":" + v);
    return s + "}";
  }
};

std::string Q(const std::string& s) { return "\"" + s + "\""; }

constexpr const char* kTs = "\"2024-01-15T09:30:00.000Z\"";
constexpr const char* kIdentity = "identity--3a3d7bd1-9c2a-4b5b-8d4e-1f2a3b4c5d6e";
constexpr const char* kMalware = "malware--5687c175-5926-4090-8ce9-6d0162364995";
constexpr const char* kTlpAmber = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";

Obj Sdo(const std::string& type, const std::string& uuid = "a6f12b93-270d-41b3-a42c-84798615a449") {
  Obj o;
  o.Set("type", Q(type)).Set("spec_version", Q("2.1")).Set("id", Q(type + "--" + uuid));
  o.Set("created", kTs).Set("modified", kTs);
  return o;
}
Obj Indicator() {
  return Sdo("indicator")
      .Set("pattern", Q("[ipv4-addr:value = '198.51.100.7']"))
      .Set("pattern_type", Q("stix"))
      .Set("valid_from", kTs);
}
Obj Malware() { return Sdo("malware").Set("name", Q("x")).Set("is_family", "true"); }
Obj Relationship() {
  return Sdo("relationship")
      .Set("relationship_type", Q("indicates"))
      .Set("source_ref", Q("indicator--a6f12b93-270d-41b3-a42c-84798615a449"))
      .Set("target_ref", Q(kMalware));
}
Obj Sco(const std::string& type) {
  Obj o;
  o.Set("type", Q(type)).Set("spec_version", Q("2.1")).Set("id", Q(type + "--741019a6-c339-5e5d-ad1e-6fa3dec47bb4"));
  return o;
}
Obj File() { return Sco("file").Set("name", Q("a.exe")); }
Obj Location() { return Sdo("location").Set("country", Q("de")); }
Obj Marking() {
  Obj o;
  o.Set("type", Q("marking-definition")).Set("spec_version", Q("2.1"));
  o.Set("id", Q("marking-definition--1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b")).Set("created", kTs);
  o.Set("definition_type", Q("statement")).Set("definition", R"({"statement":"Copyright 2024"})");
  return o;
}
Obj ObservedData() {
  return Sdo("observed-data")
      .Set("first_observed", kTs)
      .Set("last_observed", kTs)
      .Set("number_observed", "1")
      .Set("object_refs", "[\"ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4\"]");
}
Obj ExtDef() {
  return Sdo("extension-definition")
      .Set("created_by_ref", Q(kIdentity))
      .Set("name", Q("ext"))
      .Set("schema", Q("https://example.com/schema.json"))
      .Set("version", Q("1.0"))
      .Set("extension_types", "[\"property-extension\"]");
}

struct Case {
  std::string name;
  std::string json;
  std::string rule;  // expected error rule; empty = valid
  bool warning = false;  // the rule is expected as a warning, and the object stays valid
};

std::vector<Case> Cases() {
  const std::string ext_id = "extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e";
  return {
      // ---- valid baselines
      {"indicator ok", Indicator().Json(), ""},
      {"malware ok", Malware().Json(), ""},
      {"relationship ok", Relationship().Json(), ""},
      {"file ok", File().Json(), ""},
      {"sco without spec_version ok", File().Del("spec_version").Json(), ""},
      {"location ok", Location().Json(), ""},
      {"marking ok", Marking().Json(), ""},
      {"observed-data ok", ObservedData().Json(), ""},
      {"extension-definition ok", ExtDef().Json(), ""},
      {"malware is_family false without name ok", Malware().Set("is_family", "false").Del("name").Json(), ""},
      {"custom object type ok", Sdo("x-acme-widget").Set("colour", Q("red")).Json(), ""},
      {"custom x_ property ok", Indicator().Set("x_acme_score", "5").Json(), ""},
      {"leap second ok", Indicator().Set("valid_from", Q("2016-12-31T23:59:60Z")).Json(), ""},
      {"nanosecond modified ok", Indicator().Set("modified", Q("2024-01-15T09:30:00.000000001Z")).Json(), ""},
      {"confidence bounds ok", Indicator().Set("confidence", "100").Json(), ""},
      {"sighting count 0 ok",
       Sdo("sighting").Set("sighting_of_ref", Q("indicator--a6f12b93-270d-41b3-a42c-84798615a449")).Set("count", "0").Json(), ""},
      {"granular lang-only ok",
       Indicator().Set("description", Q("d")).Set("granular_markings", R"([{"lang":"de","selectors":["description"]}])").Json(), ""},
      {"granular list selector ok",
       Indicator().Set("labels", R"(["a"])").Set("granular_markings", "[{\"marking_ref\":\"" + std::string(kTlpAmber) + "\",\"selectors\":[\"labels.[0]\"]}]").Json(), ""},
      {"known tlp marking ok", Indicator().Set("object_marking_refs", "[\"" + std::string(kTlpAmber) + "\"]").Json(), ""},
      {"non-stix pattern not parsed", Indicator().Set("pattern_type", Q("sigma")).Set("pattern", Q("title: x\\n[")).Json(), ""},
      {"property extension ok",
       Indicator().Set("extensions", "{\"" + ext_id + "\":{\"extension_type\":\"property-extension\",\"rank\":5}}").Json(), ""},
      {"new-sdo custom type ok",
       Sdo("acme-ticket").Set("extensions", "{\"" + ext_id + "\":{\"extension_type\":\"new-sdo\"}}").Json(), ""},

      // ---- type, id, spec_version (§3.1, §2.9, §3.2)
      {"tearline extension ok",
      Indicator().Set("extensions", R"({"extension-definition--5d8a3c1e-7b2f-4c6a-9e41-0f3b8d27a6c5":{"extension_type":"property-extension","distribution":["identity--00000000-0000-4000-8000-000000000001"],"releasable":{"description":"x"},"sensitive":["x_src"],"no_relay":true,"min_full_tier":2}})").Json(), ""},
      {"tearline distribution not identities",
      Indicator().Set("extensions", R"({"extension-definition--5d8a3c1e-7b2f-4c6a-9e41-0f3b8d27a6c5":{"extension_type":"property-extension","distribution":["campaign--00000000-0000-4000-8000-000000000001"]}})").Json(), "tearline-extension"},
      {"tearline releasable replaces the id",
      Indicator().Set("extensions", R"({"extension-definition--5d8a3c1e-7b2f-4c6a-9e41-0f3b8d27a6c5":{"extension_type":"property-extension","releasable":{"id":"indicator--00000000-0000-4000-8000-000000000001"}}})").Json(), "tearline-extension"},
      {"tearline sensitive not strings",
      Indicator().Set("extensions", R"({"extension-definition--5d8a3c1e-7b2f-4c6a-9e41-0f3b8d27a6c5":{"extension_type":"property-extension","sensitive":[1]}})").Json(), "tearline-extension"},
      {"tearline no_relay not boolean",
      Indicator().Set("extensions", R"({"extension-definition--5d8a3c1e-7b2f-4c6a-9e41-0f3b8d27a6c5":{"extension_type":"property-extension","no_relay":"yes"}})").Json(), "tearline-extension"},
      {"tearline min_full_tier negative",
      Indicator().Set("extensions", R"({"extension-definition--5d8a3c1e-7b2f-4c6a-9e41-0f3b8d27a6c5":{"extension_type":"property-extension","min_full_tier":-1}})").Json(), "tearline-extension"},
      {"tearline unknown property",
      Indicator().Set("extensions", R"({"extension-definition--5d8a3c1e-7b2f-4c6a-9e41-0f3b8d27a6c5":{"extension_type":"property-extension","share_with":"everyone"}})").Json(), "tearline-extension"},
      {"type missing", Indicator().Del("type").Json(), "required-property"},
      {"type not string", Indicator().Set("type", "5").Json(), "property-type"},
      {"type uppercase", Indicator().Set("type", Q("Indicator")).Json(), "type-name-syntax"},
      {"type underscore", Sdo("x-acme").Set("type", Q("x_acme")).Json(), "type-name-syntax"},
      {"type too short", Sdo("ab").Json(), "type-name-syntax"},
      {"id missing", Indicator().Del("id").Json(), "required-property"},
      {"id not uuid", Indicator().Set("id", Q("indicator--1234")).Json(), "id-syntax"},
      {"id wrong variant", Indicator().Set("id", Q("indicator--a6f12b93-270d-41b3-142c-84798615a449")).Json(), "id-syntax"},
      {"id type mismatch", Indicator().Set("id", Q(kMalware)).Json(), "id-type-mismatch"},
      {"sdo id not v4 warns", Indicator().Set("id", Q("indicator--a6f12b93-270d-51b3-a42c-84798615a449")).Json(), "id-uuid-version", true},
      {"spec_version missing on sdo", Indicator().Del("spec_version").Json(), "spec-version-required"},
      {"spec_version 2.0", Indicator().Set("spec_version", Q("2.0")).Json(), "spec-version-value"},
      {"spec_version 2.0 on sco", File().Set("spec_version", Q("2.0")).Json(), "spec-version-value"},

      // ---- common properties
      {"created missing", Indicator().Del("created").Json(), "required-property"},
      {"modified missing", Indicator().Del("modified").Json(), "required-property"},
      {"created second precision", Indicator().Set("created", Q("2024-01-15T09:30:00Z")).Set("modified", Q("2024-01-15T09:30:00.000Z")).Json(), "timestamp-precision"},
      {"modified before created", Indicator().Set("modified", Q("2024-01-14T09:30:00.000Z")).Json(), "timestamp-order"},
      {"created_by_ref not identity", Indicator().Set("created_by_ref", Q(kMalware)).Json(), "ref-target-type"},
      {"created_by_ref not an id", Indicator().Set("created_by_ref", Q("someone")).Json(), "ref-syntax"},
      {"revoked not boolean", Indicator().Set("revoked", Q("true")).Json(), "property-type"},
      {"labels empty", Indicator().Set("labels", "[]").Json(), "empty-list"},
      {"labels not strings", Indicator().Set("labels", "[1]").Json(), "property-type"},
      {"confidence too high", Indicator().Set("confidence", "101").Json(), "integer-range"},
      {"confidence negative", Indicator().Set("confidence", "-1").Json(), "integer-range"},
      {"confidence float", Indicator().Set("confidence", "50.5").Json(), "property-type"},
      {"lang not string", Indicator().Set("lang", "1").Json(), "property-type"},
      {"null value", Indicator().Set("description", "null").Json(), "null-value"},
      {"created on sco", File().Set("created", kTs).Json(), "property-not-applicable"},
      {"defanged on sdo", Indicator().Set("defanged", "true").Json(), "property-not-applicable"},
      {"modified on marking", Marking().Set("modified", kTs).Json(), "property-not-applicable"},
      {"not an object", R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[[1,2]]})", "object-not-json-object"},
      {"duplicate member", R"({"type":"indicator","type":"indicator"})", "json-duplicate-key"},

      // ---- custom properties (§11.1)
      {"custom property uppercase", Indicator().Set("x_ACME", "1").Json(), "property-name-syntax"},
      {"custom property too short", Indicator().Set("xy", "1").Json(), "property-name-syntax"},
      {"custom property without x_ warns", Indicator().Set("acme_score", "1").Json(), "custom-property-prefix", true},

      // ---- external references (§2.5)
      {"extref no source_name", Indicator().Set("external_references", R"([{"url":"https://e.com"}])").Json(), "external-reference-source-name"},
      {"extref only source_name", Indicator().Set("external_references", R"([{"source_name":"x"}])").Json(), "external-reference-content"},
      {"extref not list", Indicator().Set("external_references", R"({"source_name":"x"})").Json(), "property-type"},
      {"extref bad hash", Indicator().Set("external_references", R"([{"source_name":"x","url":"u","hashes":{"MD5":"abc"}}])").Json(), "hash-value"},
      {"extref ok", Indicator().Set("external_references", R"([{"source_name":"x","external_id":"T1"}])").Json(), ""},

      // ---- kill chain phases (§2.8)
      {"kill chain missing phase", Indicator().Set("kill_chain_phases", R"([{"kill_chain_name":"k"}])").Json(), "kill-chain-phase"},

      // ---- markings (§7.2)
      {"object_marking_refs wrong type", Indicator().Set("object_marking_refs", "[\"" + std::string(kIdentity) + "\"]").Json(), "ref-target-type"},
      {"object_marking_refs unknown", Indicator().Set("object_marking_refs", R"(["marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ee"])").Json(), "marking-ref-unknown"},
      {"granular neither ref nor lang", Indicator().Set("description", Q("d")).Set("granular_markings", R"([{"selectors":["description"]}])").Json(), "granular-marking-ref-or-lang"},
      {"granular both ref and lang", Indicator().Set("description", Q("d")).Set("granular_markings", "[{\"lang\":\"de\",\"marking_ref\":\"" + std::string(kTlpAmber) + "\",\"selectors\":[\"description\"]}]").Json(), "granular-marking-ref-or-lang"},
      {"granular empty selectors", Indicator().Set("granular_markings", "[{\"marking_ref\":\"" + std::string(kTlpAmber) + "\",\"selectors\":[]}]").Json(), "granular-marking-selectors"},
      {"granular selector missing property", Indicator().Set("granular_markings", "[{\"marking_ref\":\"" + std::string(kTlpAmber) + "\",\"selectors\":[\"x_missing\"]}]").Json(), "granular-marking-selector"},
      {"granular selector bad index", Indicator().Set("labels", R"(["a"])").Set("granular_markings", "[{\"marking_ref\":\"" + std::string(kTlpAmber) + "\",\"selectors\":[\"labels.[3]\"]}]").Json(), "granular-marking-selector"},
      {"predefined tlp altered", Marking().Set("id", "\"marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9\"").Set("created", Q("2017-01-20T00:00:00.000Z")).Set("definition_type", Q("tlp")).Set("definition", R"({"tlp":"red"})").Json(), "tlp-predefined"},
      {"predefined tlp exact ok", Marking().Set("id", "\"marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9\"").Set("created", Q("2017-01-20T00:00:00.000Z")).Set("definition_type", Q("tlp")).Set("definition", R"({"tlp":"white"})").Set("name", Q("TLP:WHITE")).Json(), ""},
      {"statement marking without statement", Marking().Set("definition", R"({"text":"x"})").Json(), "marking-statement"},
      {"tlp marking bad colour", Marking().Set("definition_type", Q("tlp")).Set("definition", R"({"tlp":"purple"})").Json(), "marking-tlp"},
      {"marking without definition", Marking().Del("definition").Del("definition_type").Json(), "required-property"},

      // ---- hashes, dictionaries, binary, hex (§2.4, §2.6, §2.7, §2.10)
      {"sha256 wrong length", File().Set("hashes", R"({"SHA-256":"abc"})").Json(), "hash-value"},
      {"md5 not hex", File().Set("hashes", R"({"MD5":"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"})").Json(), "hash-value"},
      {"custom hash warns", File().Set("hashes", R"({"x-acme":"abc"})").Json(), "hash-algorithm", true},
      {"hashes empty", File().Set("hashes", "{}").Json(), "empty-dictionary"},
      {"dictionary bad key", Sco("process").Set("environment_variables", R"({"bad key!":"v"})").Json(), "dictionary-key"},
      {"payload_bin not base64", Sco("artifact").Set("payload_bin", Q("not base64!")).Json(), "binary-base64"},
      {"magic number not hex", File().Set("magic_number_hex", Q("xyz")).Json(), "hex-syntax"},

      // ---- extensions (§7.3)
      {"extension not object", Indicator().Set("extensions", "{\"" + ext_id + "\":5}").Json(), "extension-value"},
      {"extension bad type", Indicator().Set("extensions", "{\"" + ext_id + "\":{\"extension_type\":\"new-widget\"}}").Json(), "extension-type"},
      {"new-sdo on predefined type", Indicator().Set("extensions", "{\"" + ext_id + "\":{\"extension_type\":\"new-sdo\"}}").Json(), "extension-type"},
      {"extension bad key", Indicator().Set("extensions", R"({"Bad Key":{"a":1}})").Json(), "extension-name"},
      {"custom extension warns", Indicator().Set("extensions", R"({"x-acme-ext":{"a":1}})").Json(), "custom-extension", true},
      {"extension-definition bad type", ExtDef().Set("extension_types", R"(["new-widget"])").Json(), "extension-type"},
      {"extension-definition needs creator", ExtDef().Del("created_by_ref").Json(), "required-property"},
      {"toplevel extension needs properties", ExtDef().Set("extension_types", R"(["toplevel-property-extension"])").Json(), "required-property"},

      // ---- SDO rules (§4)
      {"indicator bad pattern", Indicator().Set("pattern", Q("[ipv4-addr:value = '1.2.3.4'")).Json(), "pattern-syntax"},
      {"indicator missing pattern_type", Indicator().Del("pattern_type").Json(), "required-property"},
      {"indicator valid_until before valid_from", Indicator().Set("valid_until", Q("2024-01-01T00:00:00Z")).Json(), "timestamp-order"},
      {"indicator valid_until equal valid_from", Indicator().Set("valid_until", kTs).Json(), "timestamp-order"},
      {"indicator date-only timestamp", Indicator().Set("valid_from", Q("2024-01-15")).Json(), "timestamp-format"},
      {"indicator impossible date", Indicator().Set("valid_from", Q("2023-02-29T00:00:00Z")).Json(), "timestamp-format"},
      {"indicator offset timestamp", Indicator().Set("valid_from", Q("2024-01-15T09:30:00+00:00")).Json(), "timestamp-format"},
      {"malware missing is_family", Malware().Del("is_family").Json(), "required-property"},
      {"malware family without name", Malware().Del("name").Json(), "required-property"},
      {"malware sample_refs wrong type", Malware().Set("sample_refs", "[\"" + std::string(kIdentity) + "\"]").Json(), "ref-target-type"},
      {"campaign last_seen before first_seen", Sdo("campaign").Set("name", Q("c")).Set("first_seen", Q("2024-02-01T00:00:00Z")).Set("last_seen", Q("2024-01-01T00:00:00Z")).Json(), "timestamp-order"},
      {"report missing published", Sdo("report").Set("name", Q("r")).Set("object_refs", "[\"" + std::string(kMalware) + "\"]").Json(), "required-property"},
      {"report empty object_refs", Sdo("report").Set("name", Q("r")).Set("published", kTs).Set("object_refs", "[]").Json(), "empty-list"},
      {"opinion bad value", Sdo("opinion").Set("opinion", Q("maybe")).Set("object_refs", "[\"" + std::string(kMalware) + "\"]").Json(), "enum-value"},
      {"grouping missing context", Sdo("grouping").Set("object_refs", "[\"" + std::string(kMalware) + "\"]").Json(), "required-property"},
      {"location without place", Sdo("location").Set("name", Q("x")).Json(), "required-one-of"},
      {"location latitude alone", Location().Set("latitude", "10.0").Json(), "location-coordinates"},
      {"location latitude range", Sdo("location").Set("latitude", "91.0").Set("longitude", "0.0").Json(), "number-range"},
      {"location precision without coordinates", Location().Set("precision", "5.0").Json(), "location-coordinates"},
      {"malware-analysis needs result", Sdo("malware-analysis").Set("product", Q("av")).Json(), "required-one-of"},
      {"malware-analysis result enum", Sdo("malware-analysis").Set("product", Q("av")).Set("result", Q("evil")).Json(), "enum-value"},
      {"observed-data number_observed zero", ObservedData().Set("number_observed", "0").Json(), "integer-range"},
      {"observed-data both objects and refs", ObservedData().Set("objects", R"({"0":{"type":"ipv4-addr","value":"1.2.3.4"}})").Json(), "observed-data-objects"},
      {"observed-data neither objects nor refs", ObservedData().Del("object_refs").Json(), "observed-data-objects"},
      {"observed-data deprecated objects warns", ObservedData().Del("object_refs").Set("objects", R"({"0":{"type":"ipv4-addr","value":"1.2.3.4"}})").Json(), "deprecated-property", true},
      {"observed-data objects entry without type", ObservedData().Del("object_refs").Set("objects", R"({"0":{"value":"1.2.3.4"}})").Json(), "observed-object"},
      {"observed-data last before first", ObservedData().Set("last_observed", Q("2024-01-01T00:00:00Z")).Json(), "timestamp-order"},
      {"language-content missing contents", Sdo("language-content").Set("object_ref", Q(kMalware)).Json(), "required-property"},
      {"language-content empty language", Sdo("language-content").Set("object_ref", Q(kMalware)).Set("contents", R"({"de":{}})").Json(), "language-contents"},

      // ---- SRO rules (§5)
      {"relationship missing target", Relationship().Del("target_ref").Json(), "required-property"},
      {"relationship to marking", Relationship().Set("target_ref", Q(kTlpAmber)).Json(), "ref-target-type"},
      {"relationship to relationship", Relationship().Set("target_ref", Q("relationship--a6f12b93-270d-41b3-a42c-84798615a449")).Json(), "ref-target-type"},
      {"relationship type bad chars", Relationship().Set("relationship_type", Q("Indicates Malware")).Json(), "relationship-type-syntax"},
      {"relationship stop before start", Relationship().Set("start_time", Q("2024-02-01T00:00:00Z")).Set("stop_time", Q("2024-01-01T00:00:00Z")).Json(), "timestamp-order"},
      {"sighting count too large", Sdo("sighting").Set("sighting_of_ref", Q(kMalware)).Set("count", "1000000000").Json(), "integer-range"},
      {"sighting of an sco", Sdo("sighting").Set("sighting_of_ref", Q("file--741019a6-c339-5e5d-ad1e-6fa3dec47bb4")).Json(), "ref-target-type"},
      {"sighting where_sighted wrong type", Sdo("sighting").Set("sighting_of_ref", Q(kMalware)).Set("where_sighted_refs", "[\"" + std::string(kMalware) + "\"]").Json(), "ref-target-type"},

      // ---- SCO rules (§6)
      {"file no hashes or name", Sco("file").Json(), "required-one-of"},
      {"file size negative", File().Set("size", "-1").Json(), "integer-range"},
      {"artifact url without hashes", Sco("artifact").Set("url", Q("https://e.com/x")).Json(), "required-property"},
      {"artifact url and payload", Sco("artifact").Set("url", Q("u")).Set("payload_bin", Q("AAAA")).Set("hashes", R"({"MD5":"d41d8cd98f00b204e9800998ecf8427e"})").Json(), "artifact-content"},
      {"network-traffic needs endpoint", Sco("network-traffic").Set("protocols", R"(["tcp"])").Json(), "required-one-of"},
      {"network-traffic active with end", Sco("network-traffic").Set("protocols", R"(["tcp"])").Set("src_ref", Q("ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4")).Set("is_active", "true").Set("end", kTs).Json(), "network-traffic-active"},
      {"network-traffic port range", Sco("network-traffic").Set("protocols", R"(["tcp"])").Set("src_ref", Q("ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4")).Set("src_port", "70000").Json(), "integer-range"},
      {"email multipart with body", Sco("email-message").Set("is_multipart", "true").Set("body", Q("hi")).Json(), "email-multipart"},
      {"process with no properties", Sco("process").Json(), "required-one-of"},
      {"autonomous-system too large", Sco("autonomous-system").Set("number", "4294967296").Json(), "integer-range"},
      {"domain resolves_to wrong type", Sco("domain-name").Set("value", Q("e.com")).Set("resolves_to_refs", "[\"" + std::string(kMalware) + "\"]").Json(), "ref-target-type"},
      {"ipv4 value missing", Sco("ipv4-addr").Json(), "required-property"},
  };
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class RuleTest : public ::testing::TestWithParam<Case> {};

TEST_P(RuleTest, Holds) {
  const Case& c = GetParam();
  Validator v;
  auto r = v.Validate(c.json);
  std::string all;
  bool found = false;
  for (const auto& d : r.diagnostics) {
    all += d.ToString() + "\n";
    if (d.rule == c.rule && (d.severity == Severity::kWarning) == c.warning) found = true;
    // Every diagnostic names a rule and a section.
    EXPECT_FALSE(d.rule.empty());
    EXPECT_FALSE(d.section.empty());
  }
  if (c.rule.empty() || c.warning) {
    EXPECT_EQ(r.error_count(), 0u) << all;
    EXPECT_EQ(r.objects.size(), 1u) << all;
  }
  if (!c.rule.empty()) {
    EXPECT_TRUE(found) << "expected rule " << c.rule << ", got:\n" << all;
    if (!c.warning) {
      EXPECT_TRUE(r.objects.empty()) << "an invalid object must not be returned";
    }
  }
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string n;
  for (char ch : info.param.name) n += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Rules, RuleTest, ::testing::ValuesIn(Cases()), CaseName);

// ---- document level

TEST(Document, BundleEnvelopeAndObjectForms) {
  Validator v;
  std::string obj = Indicator().Json();
  EXPECT_EQ(v.Validate(obj).objects.size(), 1u);
  auto env = v.Validate("{\"objects\":[" + obj + "],\"more\":false}");
  EXPECT_TRUE(env.ok());
  EXPECT_EQ(env.objects.size(), 1u);
  auto bundle = v.Validate(R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[)" + obj + "]}");
  EXPECT_TRUE(bundle.ok());
  auto empty = v.Validate(R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d"})");
  EXPECT_TRUE(empty.ok());
  EXPECT_EQ(empty.total, 0u);
}

TEST(Document, OneBadObjectDoesNotStopTheOthers) {
  Validator v;
  std::string good = Indicator().Json();
  std::string bad = Indicator().Set("confidence", "500").Json();
  auto r = v.Validate(R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[)" + bad + "," +
                      good + "," + Malware().Del("is_family").Json() + "]}");
  EXPECT_EQ(r.total, 3u);
  EXPECT_EQ(r.rejected, 2u);
  ASSERT_EQ(r.objects.size(), 1u);
  EXPECT_EQ(r.objects[0].index, 1u);
  ASSERT_GE(r.diagnostics.size(), 2u);
  EXPECT_EQ(r.diagnostics[0].index, 0u);
  EXPECT_EQ(r.diagnostics[0].path, "confidence");
  EXPECT_EQ(r.diagnostics[0].object_id, "indicator--a6f12b93-270d-41b3-a42c-84798615a449");
  EXPECT_NE(r.diagnostics[0].section.find("§3.2"), std::string::npos);
}

TEST(Document, MarkingDefinedInTheSameBundleIsKnown) {
  Validator v;
  Obj m = Marking();
  std::string ind = Indicator().Set("object_marking_refs", R"(["marking-definition--1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b"])").Json();
  auto r = v.Validate(R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[)" + ind + "," + m.Json() + "]}");
  EXPECT_TRUE(r.ok()) << (r.diagnostics.empty() ? "" : r.diagnostics[0].ToString());
}

TEST(Document, MarkingLookupResolvesStoredMarkings) {
  Validator v;
  std::string ind = Indicator().Set("object_marking_refs", R"(["marking-definition--1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b"])").Json();
  EXPECT_FALSE(v.Validate(ind).ok());
  v.set_marking_lookup([](std::string_view id) { return id == "marking-definition--1b2c3d4e-5f60-4718-8a9b-0c1d2e3f4a5b"; });
  EXPECT_TRUE(v.Validate(ind).ok());
}

TEST(Document, JsonLinesReportBadLinesAndKeepGoodOnes) {
  Validator v;
  std::string text = Indicator().Json() + "\n{broken\n\n" + Malware().Json() + "\r\n";
  auto r = v.Validate(text, Form::kJsonLines);
  EXPECT_EQ(r.total, 3u);
  EXPECT_EQ(r.objects.size(), 2u);
  EXPECT_EQ(r.rejected, 1u);
  ASSERT_FALSE(r.diagnostics.empty());
  EXPECT_EQ(r.diagnostics[0].path, "(line 2)");
}

struct DocCase {
  std::string name, text, rule;
};

TEST(Document, BadDocumentsAreRejectedWhole) {
  std::vector<DocCase> cases = {
      {"empty", "", "json-empty"},
      {"truncated", R"({"type":"bundle","id":"bun)", "json-syntax"},
      {"trailing garbage", R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d"} x)", "json-syntax"},
      {"not utf8", "{\"type\":\"\xe9\"}", "json-utf8"},
      {"lone surrogate", R"({"type":"\ud800"})", "json-surrogate"},
      {"nan", R"({"confidence": NaN})", "json-number"},
      {"raw control char", "{\"type\":\"a\nb\"}", "json-string"},
      {"top-level array", "[]", "document-shape"},
      {"top-level scalar", "5", "document-shape"},
      {"bundle objects not list", R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":{}})", "objects-not-list"},
      {"bundle objects empty", R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[]})", "empty-list"},
      {"bundle missing id", R"({"type":"bundle","objects":[{}]})", "bundle-id"},
      {"bundle wrong id", R"({"type":"bundle","id":"report--5d0092c5-5f74-4287-9642-33f4c354e56d"})", "bundle-id"},
      {"bundle missing type", R"({"id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[{}]})", "bundle-type"},
      {"deep nesting", std::string(10000, '[') + std::string(10000, ']'), "limit-depth"},
  };
  for (const auto& c : cases) {
    Validator v;
    auto r = v.Validate(c.text);
    EXPECT_TRUE(r.document_error) << c.name;
    EXPECT_TRUE(r.objects.empty()) << c.name;
    ASSERT_FALSE(r.diagnostics.empty()) << c.name;
    EXPECT_EQ(r.diagnostics[0].rule, c.rule) << c.name << ": " << r.diagnostics[0].ToString();
  }
}

TEST(Document, LimitsAreEnforced) {
  Limits lim;
  lim.max_document_bytes = 100;
  Validator small(lim);
  auto r = small.Validate(std::string(200, ' '));
  ASSERT_FALSE(r.diagnostics.empty());
  EXPECT_EQ(r.diagnostics[0].rule, "limit-document-size");

  Limits obj_lim;
  obj_lim.max_object_bytes = 300;
  Validator v(obj_lim);
  auto big = v.Validate(Indicator().Set("description", Q(std::string(1000, 'a'))).Json());
  EXPECT_TRUE(big.objects.empty());
  ASSERT_FALSE(big.diagnostics.empty());
  EXPECT_EQ(big.diagnostics[0].rule, "limit-object-size");
}

TEST(Document, ObjectFieldsAndCompactJson) {
  Validator v;
  auto r = v.Validate(std::string("{ \"type\" : \"indicator\",\n") + Indicator().Json().substr(20));
  ASSERT_EQ(r.objects.size(), 1u) << (r.diagnostics.empty() ? "" : r.diagnostics[0].ToString());
  const Object& o = r.objects[0];
  EXPECT_EQ(o.type, "indicator");
  EXPECT_EQ(o.id, "indicator--a6f12b93-270d-41b3-a42c-84798615a449");
  EXPECT_EQ(o.modified, "2024-01-15T09:30:00.000Z");
  EXPECT_EQ(o.version, "2024-01-15T09:30:00.000000000");
  EXPECT_EQ(o.json.find('\n'), std::string::npos);
  EXPECT_EQ(o.json.rfind("{\"type\":\"indicator\"", 0), 0u);  // compact, members in the order given
  EXPECT_TRUE(JsonEqual(o.json, Indicator().Json()));
}

TEST(Canonical, Rfc8785Form) {
  EXPECT_EQ(CanonicalJson(R"({"b":1,"a":[true,null,"x"],"c":{"z":1.0,"y":-0.0}})"),
            R"({"a":[true,null,"x"],"b":1,"c":{"y":0,"z":1}})");
  EXPECT_EQ(CanonicalJson(R"([1e21,1e20,0.000001,1e-7,123.456,"\u00e9\n"])"),
            "[1e+21,100000000000000000000,0.000001,1e-7,123.456,\"\xc3\xa9\\n\"]");
  // Keys sort by UTF-16 code units: U+FB33 (one unit) after U+1F600 (a surrogate pair, D83D...).
  EXPECT_EQ(CanonicalJson("{\"\xef\xac\xb3\":1,\"\xf0\x9f\x98\x80\":2}"), "{\"\xf0\x9f\x98\x80\":2,\"\xef\xac\xb3\":1}");
}

TEST(Canonical, SemanticEquality) {
  EXPECT_TRUE(JsonEqual(R"({"a":1,"b":[1,2]})", R"({ "b" : [1,2], "a" : 1.0 })"));
  EXPECT_FALSE(JsonEqual(R"({"a":1})", R"({"a":2})"));
  EXPECT_FALSE(JsonEqual(R"({"a":[1,2]})", R"({"a":[2,1]})"));
  EXPECT_FALSE(JsonEqual(R"({"a":1})", R"({"a":1,"b":1})"));
}

}  // namespace
}  // namespace tearline::stix
