#include "stix/schema.h"

#include <algorithm>
#include <unordered_map>

namespace tearline::stix::schema {
namespace {

using K = Kind;
constexpr int64_t kMaxCount = 999'999'999;

// Shorthands for the tables below.
Prop Req(std::string_view n, Kind k, std::vector<std::string_view> a = {}) { return {n, k, true, std::move(a)}; }
Prop Opt(std::string_view n, Kind k, std::vector<std::string_view> a = {}) { return {n, k, false, std::move(a)}; }
Prop Int(std::string_view n, bool req, int64_t min, int64_t max) { return {n, K::kInteger, req, {}, min, max}; }

const std::vector<Prop>& SdoCommon() {
  static const std::vector<Prop> v = {
      Req("type", K::kString), Req("spec_version", K::kString), Req("id", K::kString),
      Opt("created_by_ref", K::kRef, {"identity"}), Req("created", K::kTimestamp),
      Req("modified", K::kTimestamp), Opt("revoked", K::kBoolean), Opt("labels", K::kStringList),
      Int("confidence", false, 0, 100), Opt("lang", K::kString),
      Opt("external_references", K::kExternalReferences),
      Opt("object_marking_refs", K::kRefList, {"marking-definition"}),
      Opt("granular_markings", K::kGranularMarkings), Opt("extensions", K::kExtensions)};
  return v;
}

const std::vector<Prop>& ScoCommon() {
  static const std::vector<Prop> v = {
      Req("type", K::kString), Opt("spec_version", K::kString), Req("id", K::kString),
      Opt("object_marking_refs", K::kRefList, {"marking-definition"}),
      Opt("granular_markings", K::kGranularMarkings), Opt("defanged", K::kBoolean),
      Opt("extensions", K::kExtensions)};
  return v;
}

// marking-definition (§7.2.1): no modified, revoked, labels, confidence, lang.
const std::vector<Prop>& MarkingCommon() {
  static const std::vector<Prop> v = {
      Req("type", K::kString), Req("spec_version", K::kString), Req("id", K::kString),
      Opt("created_by_ref", K::kRef, {"identity"}), Req("created", K::kTimestamp),
      Opt("external_references", K::kExternalReferences),
      Opt("object_marking_refs", K::kRefList, {"marking-definition"}),
      Opt("granular_markings", K::kGranularMarkings), Opt("extensions", K::kExtensions)};
  return v;
}

std::vector<TypeSpec> BuildTypes() {
  std::vector<TypeSpec> t;
  auto sdo = [&](std::string_view type, std::string_view sec, std::vector<Prop> p) {
    t.push_back({type, Category::kSdo, sec, std::move(p)});
  };
  auto sco = [&](std::string_view type, std::string_view sec, std::vector<Prop> p) {
    t.push_back({type, Category::kSco, sec, std::move(p)});
  };
  const std::vector<std::string_view> kSdoAny = {"<sdo>"};
  const std::vector<std::string_view> kAny = {"<any>"};

  sdo("attack-pattern", "STIX 2.1 §4.1 Attack Pattern",
      {Req("name", K::kString), Opt("description", K::kString), Opt("aliases", K::kStringList),
       Opt("kill_chain_phases", K::kKillChainPhases)});
  sdo("campaign", "STIX 2.1 §4.2 Campaign",
      {Req("name", K::kString), Opt("description", K::kString), Opt("aliases", K::kStringList),
       Opt("first_seen", K::kTimestamp), Opt("last_seen", K::kTimestamp), Opt("objective", K::kString)});
  sdo("course-of-action", "STIX 2.1 §4.3 Course of Action",
      {Req("name", K::kString), Opt("description", K::kString)});
  sdo("grouping", "STIX 2.1 §4.4 Grouping",
      {Opt("name", K::kString), Opt("description", K::kString), Req("context", K::kString),
       Req("object_refs", K::kRefList, kAny)});
  sdo("identity", "STIX 2.1 §4.5 Identity",
      {Req("name", K::kString), Opt("description", K::kString), Opt("roles", K::kStringList),
       Opt("identity_class", K::kString), Opt("sectors", K::kStringList),
       Opt("contact_information", K::kString)});
  sdo("incident", "STIX 2.1 §4.6 Incident",
      {Req("name", K::kString), Opt("description", K::kString), Opt("kill_chain_phases", K::kKillChainPhases)});
  sdo("indicator", "STIX 2.1 §4.7 Indicator",
      {Opt("name", K::kString), Opt("description", K::kString), Opt("indicator_types", K::kStringList),
       Req("pattern", K::kString), Req("pattern_type", K::kString), Opt("pattern_version", K::kString),
       Req("valid_from", K::kTimestamp), Opt("valid_until", K::kTimestamp),
       Opt("kill_chain_phases", K::kKillChainPhases)});
  sdo("infrastructure", "STIX 2.1 §4.8 Infrastructure",
      {Req("name", K::kString), Opt("description", K::kString), Opt("infrastructure_types", K::kStringList),
       Opt("aliases", K::kStringList), Opt("kill_chain_phases", K::kKillChainPhases),
       Opt("first_seen", K::kTimestamp), Opt("last_seen", K::kTimestamp)});
  sdo("intrusion-set", "STIX 2.1 §4.9 Intrusion Set",
      {Req("name", K::kString), Opt("description", K::kString), Opt("aliases", K::kStringList),
       Opt("first_seen", K::kTimestamp), Opt("last_seen", K::kTimestamp), Opt("goals", K::kStringList),
       Opt("resource_level", K::kString), Opt("primary_motivation", K::kString),
       Opt("secondary_motivations", K::kStringList)});
  sdo("location", "STIX 2.1 §4.10 Location",
      {Opt("name", K::kString), Opt("description", K::kString), Opt("latitude", K::kNumber),
       Opt("longitude", K::kNumber), Opt("precision", K::kNumber), Opt("region", K::kString),
       Opt("country", K::kString), Opt("administrative_area", K::kString), Opt("city", K::kString),
       Opt("street_address", K::kString), Opt("postal_code", K::kString)});
  sdo("malware", "STIX 2.1 §4.11 Malware",
      {Opt("name", K::kString), Opt("description", K::kString), Opt("malware_types", K::kStringList),
       Req("is_family", K::kBoolean), Opt("aliases", K::kStringList),
       Opt("kill_chain_phases", K::kKillChainPhases), Opt("first_seen", K::kTimestamp),
       Opt("last_seen", K::kTimestamp), Opt("operating_system_refs", K::kRefList, {"software"}),
       Opt("architecture_execution_envs", K::kStringList), Opt("implementation_languages", K::kStringList),
       Opt("capabilities", K::kStringList), Opt("sample_refs", K::kRefList, {"file", "artifact"})});
  sdo("malware-analysis", "STIX 2.1 §4.12 Malware Analysis",
      {Req("product", K::kString), Opt("version", K::kString), Opt("host_vm_ref", K::kRef, {"software"}),
       Opt("operating_system_ref", K::kRef, {"software"}),
       Opt("installed_software_refs", K::kRefList, {"software"}), Opt("configuration_version", K::kString),
       Opt("modules", K::kStringList), Opt("analysis_engine_version", K::kString),
       Opt("analysis_definition_version", K::kString), Opt("submitted", K::kTimestamp),
       Opt("analysis_started", K::kTimestamp), Opt("analysis_ended", K::kTimestamp),
       Opt("result_name", K::kString),
       Opt("result", K::kEnum, {"malicious", "suspicious", "benign", "unknown"}),
       Opt("analysis_sco_refs", K::kRefList, {"<sco>"}),
       Opt("sample_ref", K::kRef, {"file", "network-traffic", "artifact"})});
  sdo("note", "STIX 2.1 §4.13 Note",
      {Opt("abstract", K::kString), Req("content", K::kString), Opt("authors", K::kStringList),
       Req("object_refs", K::kRefList, kAny)});
  sdo("observed-data", "STIX 2.1 §4.14 Observed Data",
      {Req("first_observed", K::kTimestamp), Req("last_observed", K::kTimestamp),
       Int("number_observed", true, 1, kMaxCount), Opt("objects", K::kObservedObjects),
       Opt("object_refs", K::kRefList, {"<sco>", "relationship"})});
  sdo("opinion", "STIX 2.1 §4.15 Opinion",
      {Opt("explanation", K::kString), Opt("authors", K::kStringList),
       Req("opinion", K::kEnum, {"strongly-disagree", "disagree", "neutral", "agree", "strongly-agree"}),
       Req("object_refs", K::kRefList, kAny)});
  sdo("report", "STIX 2.1 §4.16 Report",
      {Req("name", K::kString), Opt("description", K::kString), Opt("report_types", K::kStringList),
       Req("published", K::kTimestamp), Req("object_refs", K::kRefList, kAny)});
  sdo("threat-actor", "STIX 2.1 §4.17 Threat Actor",
      {Req("name", K::kString), Opt("description", K::kString), Opt("threat_actor_types", K::kStringList),
       Opt("aliases", K::kStringList), Opt("first_seen", K::kTimestamp), Opt("last_seen", K::kTimestamp),
       Opt("roles", K::kStringList), Opt("goals", K::kStringList), Opt("sophistication", K::kString),
       Opt("resource_level", K::kString), Opt("primary_motivation", K::kString),
       Opt("secondary_motivations", K::kStringList), Opt("personal_motivations", K::kStringList)});
  sdo("tool", "STIX 2.1 §4.18 Tool",
      {Req("name", K::kString), Opt("description", K::kString), Opt("tool_types", K::kStringList),
       Opt("aliases", K::kStringList), Opt("kill_chain_phases", K::kKillChainPhases),
       Opt("tool_version", K::kString)});
  sdo("vulnerability", "STIX 2.1 §4.19 Vulnerability",
      {Req("name", K::kString), Opt("description", K::kString)});

  t.push_back({"relationship", Category::kSro, "STIX 2.1 §5.1 Relationship",
               {Req("relationship_type", K::kString), Opt("description", K::kString),
                Req("source_ref", K::kRef, {"<sdo>", "<sco>"}), Req("target_ref", K::kRef, {"<sdo>", "<sco>"}),
                Opt("start_time", K::kTimestamp), Opt("stop_time", K::kTimestamp)}});
  t.push_back({"sighting", Category::kSro, "STIX 2.1 §5.2 Sighting",
               {Opt("description", K::kString), Opt("first_seen", K::kTimestamp),
                Opt("last_seen", K::kTimestamp), Int("count", false, 0, kMaxCount),
                Req("sighting_of_ref", K::kRef, kSdoAny),
                Opt("observed_data_refs", K::kRefList, {"observed-data"}),
                Opt("where_sighted_refs", K::kRefList, {"identity", "location"}),
                Opt("summary", K::kBoolean)}});

  const std::vector<std::string_view> kIp = {"ipv4-addr", "ipv6-addr", "mac-addr", "domain-name"};
  sco("artifact", "STIX 2.1 §6.1 Artifact",
      {Opt("mime_type", K::kString), Opt("payload_bin", K::kBinary), Opt("url", K::kString),
       Opt("hashes", K::kHashes),
       Opt("encryption_algorithm", K::kEnum, {"AES-256-GCM", "ChaCha20-Poly1305", "mime-type-indicated"}),
       Opt("decryption_key", K::kString)});
  sco("autonomous-system", "STIX 2.1 §6.2 Autonomous System",
      {Int("number", true, 0, 4294967295LL), Opt("name", K::kString), Opt("rir", K::kString)});
  sco("directory", "STIX 2.1 §6.3 Directory",
      {Req("path", K::kString), Opt("path_enc", K::kString), Opt("ctime", K::kTimestamp),
       Opt("mtime", K::kTimestamp), Opt("atime", K::kTimestamp),
       Opt("contains_refs", K::kRefList, {"file", "directory"})});
  sco("domain-name", "STIX 2.1 §6.4 Domain Name",
      {Req("value", K::kString), Opt("resolves_to_refs", K::kRefList, {"ipv4-addr", "ipv6-addr", "domain-name"})});
  sco("email-addr", "STIX 2.1 §6.5 Email Address",
      {Req("value", K::kString), Opt("display_name", K::kString),
       Opt("belongs_to_ref", K::kRef, {"user-account"})});
  sco("email-message", "STIX 2.1 §6.6 Email Message",
      {Req("is_multipart", K::kBoolean), Opt("date", K::kTimestamp), Opt("content_type", K::kString),
       Opt("from_ref", K::kRef, {"email-addr"}), Opt("sender_ref", K::kRef, {"email-addr"}),
       Opt("to_refs", K::kRefList, {"email-addr"}), Opt("cc_refs", K::kRefList, {"email-addr"}),
       Opt("bcc_refs", K::kRefList, {"email-addr"}), Opt("message_id", K::kString),
       Opt("subject", K::kString), Opt("received_lines", K::kStringList),
       Opt("additional_header_fields", K::kDictionary), Opt("body", K::kString),
       Opt("body_multipart", K::kObjectList), Opt("raw_email_ref", K::kRef, {"artifact"})});
  sco("file", "STIX 2.1 §6.7 File",
      {Opt("hashes", K::kHashes), Int("size", false, 0, std::numeric_limits<int64_t>::max()),
       Opt("name", K::kString), Opt("name_enc", K::kString), Opt("magic_number_hex", K::kHex),
       Opt("mime_type", K::kString), Opt("ctime", K::kTimestamp), Opt("mtime", K::kTimestamp),
       Opt("atime", K::kTimestamp), Opt("parent_directory_ref", K::kRef, {"directory"}),
       Opt("contains_refs", K::kRefList, {"<sco>"}), Opt("content_ref", K::kRef, {"artifact"})});
  sco("ipv4-addr", "STIX 2.1 §6.8 IPv4 Address",
      {Req("value", K::kString), Opt("resolves_to_refs", K::kRefList, {"mac-addr"}),
       Opt("belongs_to_refs", K::kRefList, {"autonomous-system"})});
  sco("ipv6-addr", "STIX 2.1 §6.9 IPv6 Address",
      {Req("value", K::kString), Opt("resolves_to_refs", K::kRefList, {"mac-addr"}),
       Opt("belongs_to_refs", K::kRefList, {"autonomous-system"})});
  sco("mac-addr", "STIX 2.1 §6.10 MAC Address", {Req("value", K::kString)});
  sco("mutex", "STIX 2.1 §6.11 Mutex", {Req("name", K::kString)});
  sco("network-traffic", "STIX 2.1 §6.12 Network Traffic",
      {Opt("start", K::kTimestamp), Opt("end", K::kTimestamp), Opt("is_active", K::kBoolean),
       Opt("src_ref", K::kRef, kIp), Opt("dst_ref", K::kRef, kIp), Int("src_port", false, 0, 65535),
       Int("dst_port", false, 0, 65535), Req("protocols", K::kStringList),
       Int("src_byte_count", false, 0, std::numeric_limits<int64_t>::max()),
       Int("dst_byte_count", false, 0, std::numeric_limits<int64_t>::max()),
       Int("src_packets", false, 0, std::numeric_limits<int64_t>::max()),
       Int("dst_packets", false, 0, std::numeric_limits<int64_t>::max()), Opt("ipfix", K::kDictionary),
       Opt("src_payload_ref", K::kRef, {"artifact"}), Opt("dst_payload_ref", K::kRef, {"artifact"}),
       Opt("encapsulates_refs", K::kRefList, {"network-traffic"}),
       Opt("encapsulated_by_ref", K::kRef, {"network-traffic"})});
  sco("process", "STIX 2.1 §6.13 Process",
      {Opt("is_hidden", K::kBoolean), Opt("pid", K::kInteger), Opt("created_time", K::kTimestamp),
       Opt("cwd", K::kString), Opt("command_line", K::kString), Opt("environment_variables", K::kDictionary),
       Opt("opened_connection_refs", K::kRefList, {"network-traffic"}),
       Opt("creator_user_ref", K::kRef, {"user-account"}), Opt("image_ref", K::kRef, {"file"}),
       Opt("parent_ref", K::kRef, {"process"}), Opt("child_refs", K::kRefList, {"process"})});
  sco("software", "STIX 2.1 §6.14 Software",
      {Req("name", K::kString), Opt("cpe", K::kString), Opt("swid", K::kString),
       Opt("languages", K::kStringList), Opt("vendor", K::kString), Opt("version", K::kString)});
  sco("url", "STIX 2.1 §6.15 URL", {Req("value", K::kString)});
  sco("user-account", "STIX 2.1 §6.16 User Account",
      {Opt("user_id", K::kString), Opt("credential", K::kString), Opt("account_login", K::kString),
       Opt("account_type", K::kString), Opt("display_name", K::kString),
       Opt("is_service_account", K::kBoolean), Opt("is_privileged", K::kBoolean),
       Opt("can_escalate_privs", K::kBoolean), Opt("is_disabled", K::kBoolean),
       Opt("account_created", K::kTimestamp), Opt("account_expires", K::kTimestamp),
       Opt("credential_last_changed", K::kTimestamp), Opt("account_first_login", K::kTimestamp),
       Opt("account_last_login", K::kTimestamp)});
  sco("windows-registry-key", "STIX 2.1 §6.17 Windows Registry Key",
      {Opt("key", K::kString), Opt("values", K::kObjectList), Opt("modified_time", K::kTimestamp),
       Opt("creator_user_ref", K::kRef, {"user-account"}),
       Int("number_of_subkeys", false, 0, std::numeric_limits<int64_t>::max())});
  sco("x509-certificate", "STIX 2.1 §6.18 X.509 Certificate",
      {Opt("is_self_signed", K::kBoolean), Opt("hashes", K::kHashes), Opt("version", K::kString),
       Opt("serial_number", K::kString), Opt("signature_algorithm", K::kString), Opt("issuer", K::kString),
       Opt("validity_not_before", K::kTimestamp), Opt("validity_not_after", K::kTimestamp),
       Opt("subject", K::kString), Opt("subject_public_key_algorithm", K::kString),
       Opt("subject_public_key_modulus", K::kString), Opt("subject_public_key_exponent", K::kInteger),
       Opt("x509_v3_extensions", K::kObject)});

  t.push_back({"marking-definition", Category::kMeta, "STIX 2.1 §7.2.1 Marking Definition",
               {Opt("name", K::kString), Opt("definition_type", K::kString), Opt("definition", K::kObject)}});
  t.push_back({"language-content", Category::kMeta, "STIX 2.1 §7.1 Language Content",
               {Req("object_ref", K::kRef, kAny), Opt("object_modified", K::kTimestamp),
                Req("contents", K::kLanguageContents)}});
  t.push_back({"extension-definition", Category::kMeta, "STIX 2.1 §7.3 Extension Definition",
               {Req("name", K::kString), Opt("description", K::kString), Req("schema", K::kString),
                Req("version", K::kString),
                Req("extension_types", K::kStringList),  // enum checked in the rule
                Opt("extension_properties", K::kStringList)}});
  return t;
}

const std::unordered_map<std::string_view, TypeSpec>& Types() {
  static const auto* m = [] {
    auto* map = new std::unordered_map<std::string_view, TypeSpec>();
    static const std::vector<TypeSpec> kTypes = BuildTypes();
    for (const auto& t : kTypes) map->emplace(t.type, t);
    return map;
  }();
  return *m;
}

const std::vector<Prop>& ExtensionDefinitionCommon() {
  // §7.3: like an SDO, but created_by_ref is required.
  static const std::vector<Prop> v = [] {
    auto c = SdoCommon();
    for (auto& p : c) {
      if (p.name == "created_by_ref") p.required = true;
    }
    return c;
  }();
  return v;
}

}  // namespace

const TypeSpec* FindType(std::string_view type) {
  const auto& m = Types();
  auto it = m.find(type);
  return it == m.end() ? nullptr : &it->second;
}

const std::vector<Prop>& CommonProps(std::string_view type, Category category) {
  if (type == "marking-definition") return MarkingCommon();
  if (type == "extension-definition") return ExtensionDefinitionCommon();
  return category == Category::kSco ? ScoCommon() : SdoCommon();
}

const Prop* FindCommon(std::string_view type, Category category, std::string_view name) {
  for (const auto& p : CommonProps(type, category)) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

bool CommonForbidden(std::string_view type, Category category, std::string_view name) {
  static constexpr std::string_view kSdoOnly[] = {"created_by_ref", "created", "modified", "revoked",
                                                  "labels", "confidence", "lang", "external_references"};
  static constexpr std::string_view kNotOnMarking[] = {"modified", "revoked", "labels", "confidence", "lang"};
  if (category == Category::kSco) {
    return std::find(std::begin(kSdoOnly), std::end(kSdoOnly), name) != std::end(kSdoOnly);
  }
  if (type == "marking-definition") {
    return std::find(std::begin(kNotOnMarking), std::end(kNotOnMarking), name) != std::end(kNotOnMarking);
  }
  return name == "defanged";
}

namespace {

using PropertyMap = std::unordered_map<std::string_view, PropertyInfo>;

PropertyMap BuildMap(std::string_view type, Category category, const TypeSpec* spec) {
  PropertyMap m;
  for (const auto& p : CommonProps(type, category)) m[p.name] = {&p, true, false};
  if (spec) {
    for (const auto& p : spec->props) m.emplace(p.name, PropertyInfo{&p, false, false});
  }
  for (std::string_view n : {"created_by_ref", "created", "modified", "revoked", "labels", "confidence", "lang",
                             "external_references", "defanged"}) {
    if (CommonForbidden(type, category, n)) m[n] = {nullptr, true, true};
  }
  return m;
}

}  // namespace

PropertyInfo FindProperty(const TypeSpec* spec, Category category, std::string_view name) {
  static const auto* maps = [] {
    auto* all = new std::unordered_map<const void*, PropertyMap>();
    for (const auto& [type, t] : Types()) (*all)[&t] = BuildMap(type, t.category, &t);
    return all;
  }();
  static const PropertyMap kCustom[] = {BuildMap("", Category::kSdo, nullptr), BuildMap("", Category::kSro, nullptr),
                                        BuildMap("", Category::kSco, nullptr), BuildMap("", Category::kMeta, nullptr)};
  const PropertyMap& m = spec ? maps->at(spec) : kCustom[static_cast<int>(category)];
  auto it = m.find(name);
  return it == m.end() ? PropertyInfo{} : it->second;
}

}  // namespace tearline::stix::schema
