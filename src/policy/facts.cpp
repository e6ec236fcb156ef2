// What the sharing rules read from an object: markings, tearline's extension,
// revocation, granular markings, references. simdjson, read only.
#include <simdjson.h>

#include "policy/policy.h"
#include "stix/id.h"

namespace tearline::policy {
namespace {

void Strings(simdjson::simdjson_result<simdjson::dom::element> e, std::vector<std::string>* out) {
  simdjson::dom::array a;
  if (e.get(a)) return;
  for (auto x : a) {
    std::string_view s;
    if (!x.get(s)) out->emplace_back(s);
  }
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Every *_ref / *_refs value at any depth, except marking references.
void CollectRefs(simdjson::dom::element e, std::vector<std::string>* out) {
  simdjson::dom::object o;
  simdjson::dom::array a;
  if (!e.get(o)) {
    for (auto [k, v] : o) {
      if (k == "object_marking_refs" || k == "granular_markings") continue;
      std::string_view s;
      if (EndsWith(k, "_ref") && !v.get(s)) {
        out->emplace_back(s);
      } else if (EndsWith(k, "_refs") && v.is_array()) {
        Strings(simdjson::simdjson_result<simdjson::dom::element>(simdjson::dom::element(v)), out);
      } else {
        CollectRefs(v, out);
      }
    }
  } else if (!e.get(a)) {
    for (auto x : a) CollectRefs(x, out);
  }
}

}  // namespace

const std::string& ExtensionDefinitionJson() {
  static const std::string kJson = std::string(R"({"type":"extension-definition","spec_version":"2.1","id":")") +
      std::string(kExtensionId) +
      R"(","created":"2026-12-03T00:00:00.000Z","modified":"2026-12-03T00:00:00.000Z",)"
      R"("created_by_ref":"identity--5d8a3c1e-7b2f-4c6a-9e41-0f3b8d27a6c5","name":"tearline release control",)"
      R"("description":"Who may receive this object and what a lower-trust recipient gets instead (a tear-line variant).",)"
      R"("schema":"Property-extension with: distribution (list of identity ids: organisations and individuals named as recipients), )"
      R"(releasable (object: property name to the replacement value used in the tear-line variant), sensitive (list of property paths in granular-marking selector syntax, removed from the variant), )"
      R"(no_relay (boolean: recipients must not pass the object on), min_full_tier (integer >= 0: partners of a lower trust tier receive the variant). See docs/extension.md of tearline.",)"
      R"("version":"1.0.0","extension_types":["property-extension"],)"
      R"("object_marking_refs":["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"]})";
  return kJson;
}

std::optional<ObjectFacts> ExtractFacts(std::string_view json, std::string_view source_partner) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element e;
  if (parser.parse(json.data(), json.size()).get(e) || !e.is_object()) return std::nullopt;
  ObjectFacts f;
  f.source_partner = std::string(source_partner);
  Strings(e["object_marking_refs"], &f.marking_refs);
  bool revoked = false;
  if (!e["revoked"].get(revoked)) f.revoked = revoked;
  simdjson::dom::array gm;
  if (!e["granular_markings"].get(gm)) {
    for (auto g : gm) {
      GranularMarking m;
      std::string_view ref;
      if (!g["marking_ref"].get(ref)) m.marking_ref = std::string(ref);
      Strings(g["selectors"], &m.selectors);
      f.granular.push_back(std::move(m));
    }
  }
  CollectRefs(e, &f.refs);
  simdjson::dom::element ext;
  if (!e["extensions"][kExtensionId].get(ext) && ext.is_object()) {
    f.has_extension = true;
    Strings(ext["distribution"], &f.distribution);
    bool b = false;
    if (!ext["no_relay"].get(b)) f.no_relay = b;
    bool sanitizes = false;
    simdjson::dom::object rel;
    if (!ext["releasable"].get(rel)) {
      sanitizes = rel.size() > 0;
      simdjson::dom::element m;
      if (!rel["object_marking_refs"].get(m)) {
        f.variant_markings_given = true;
        Strings(rel["object_marking_refs"], &f.variant_marking_refs);
      }
    }
    simdjson::dom::array sens;
    if (!ext["sensitive"].get(sens) && sens.size() > 0) sanitizes = true;
    // Without an explicit tier, an object that names something to sanitize is sent
    // whole only to partners of tier 1 and above.
    int64_t tier = sanitizes ? 1 : 0;
    int64_t given = 0;
    if (!ext["min_full_tier"].get(given)) tier = given;
    f.min_full_tier = static_cast<int>(std::clamp<int64_t>(tier, 0, 1000));
  }
  return f;
}

std::vector<std::string> ReferencedIds(std::string_view json) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element e;
  std::vector<std::string> out;
  if (parser.parse(json.data(), json.size()).get(e)) return out;
  CollectRefs(e, &out);
  return out;
}

std::string VariantId(std::string_view original_id, std::string_view node_identity) {
  return stix::DerivedId(original_id, node_identity);
}

}  // namespace tearline::policy
