#include "stix/checker.h"

#include <algorithm>
#include <cctype>

#include "common/text.h"
#include "pattern/pattern.h"
#include "stix/json.h"

namespace tearline::stix {
namespace dom = simdjson::dom;
using schema::Category;
using schema::Kind;
using schema::Prop;

namespace {

constexpr std::string_view kSecCommon = "STIX 2.1 §3.2 Common Properties";
constexpr std::string_view kSecId = "STIX 2.1 §2.9 Identifier";
constexpr std::string_view kSecTimestamp = "STIX 2.1 §2.15 Timestamp";
constexpr std::string_view kSecList = "STIX 2.1 §2.12 List";
constexpr std::string_view kSecNames = "STIX 2.1 §3.1 Property Names and String Literals";
constexpr std::string_view kSecCustomProp = "STIX 2.1 §11.1 Custom Properties";
constexpr std::string_view kSecHashes = "STIX 2.1 §2.7 Hashes";
constexpr std::string_view kSecExtRef = "STIX 2.1 §2.5 External Reference";
constexpr std::string_view kSecKillChain = "STIX 2.1 §2.8 Kill Chain Phase";
constexpr std::string_view kSecGranular = "STIX 2.1 §7.2.3 Granular Markings";
constexpr std::string_view kSecObjMarking = "STIX 2.1 §7.2.2 Object Markings";
constexpr std::string_view kSecExtensions = "STIX 2.1 §7.3 Extension Definition";
constexpr std::string_view kSecDict = "STIX 2.1 §2.6 Dictionary";

std::string Join(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  std::string s(a);
  s += '.';
  s += b;
  return s;
}

std::string Index(std::string_view a, size_t i) { return std::string(a) + "[" + std::to_string(i) + "]"; }

const char* KindName(dom::element_type t) {
  switch (t) {
    case dom::element_type::ARRAY: return "a list";
    case dom::element_type::OBJECT: return "an object";
    case dom::element_type::STRING: return "a string";
    case dom::element_type::INT64:
    case dom::element_type::UINT64: return "an integer";
    case dom::element_type::DOUBLE: return "a number";
    case dom::element_type::BOOL: return "a boolean";
    default: return "null";
  }
}

bool Has(dom::element obj, std::string_view key) { return !obj[key].error(); }

std::string_view Str(dom::element obj, std::string_view key) {
  std::string_view s;
  if (obj[key].get(s)) return {};
  return s;
}

bool IsHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// Dictionary keys (§2.6): ASCII letters, digits, hyphen, underscore, at most 250 chars.
bool IsDictKey(std::string_view k) {
  if (k.empty() || k.size() > 250) return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

// Hex lengths of the hash-algorithm-ov values (§10.10) whose format is fixed.
int HashHexLength(std::string_view alg) {
  if (alg == "MD5") return 32;
  if (alg == "SHA-1") return 40;
  if (alg == "SHA-256" || alg == "SHA3-256") return 64;
  if (alg == "SHA-512" || alg == "SHA3-512") return 128;
  return 0;
}

bool IsKnownHash(std::string_view alg) {
  return HashHexLength(alg) > 0 || alg == "SSDEEP" || alg == "TLSH";
}

constexpr std::string_view kPredefinedExtensions[] = {
    "archive-ext", "ntfs-ext", "pdf-ext", "raster-image-ext", "windows-pebinary-ext",
    "http-request-ext", "icmp-ext", "socket-ext", "tcp-ext", "windows-process-ext",
    "windows-service-ext", "unix-account-ext"};

constexpr std::string_view kExtensionTypes[] = {"new-sdo", "new-sco", "new-sro", "property-extension",
                                                "toplevel-property-extension"};

bool Contains(const auto& range, std::string_view v) {
  return std::find(std::begin(range), std::end(range), v) != std::end(range);
}

// The category of a type not defined by the spec: an extension may declare it
// new-sco / new-sro (§7.3); otherwise it is treated as an SDO (§11.2).
Category CustomCategory(dom::element obj) {
  dom::object ext;
  if (obj["extensions"].get(ext)) return Category::kSdo;
  for (auto f : ext) {
    std::string_view et;
    if (f.value["extension_type"].get(et)) continue;
    if (et == "new-sco") return Category::kSco;
    if (et == "new-sro") return Category::kSro;
  }
  return Category::kSdo;
}

struct TlpDef {
  std::string_view id, color, name;
};
constexpr TlpDef kTlp1[] = {
    {"marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9", "white", "TLP:WHITE"},
    {"marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da", "green", "TLP:GREEN"},
    {"marking-definition--f88d31f6-486f-44da-b317-01333bde0b82", "amber", "TLP:AMBER"},
    {"marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed", "red", "TLP:RED"},
};
constexpr std::string_view kTlp2[] = {
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",  // CLEAR
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",  // GREEN
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",  // AMBER
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",  // AMBER+STRICT
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",  // RED
};

}  // namespace

bool IsWellKnownMarking(std::string_view id) {
  for (const auto& t : kTlp1) {
    if (t.id == id) return true;
  }
  return Contains(kTlp2, id);
}

bool IsScoType(std::string_view type) {
  const auto* s = schema::FindType(type);
  return s && s->category == Category::kSco;
}

bool IsSdoType(std::string_view type) {
  const auto* s = schema::FindType(type);
  return s && s->category == Category::kSdo;
}

bool DocumentContext::MarkingKnown(std::string_view id) const {
  if (IsWellKnownMarking(id)) return true;
  if (marking_ids.count(std::string(id))) return true;
  return lookup && *lookup && (*lookup)(id);
}

void ObjectChecker::Error(std::string path, std::string_view rule, std::string_view section, std::string msg) {
  has_error_ = true;
  out_->push_back({Severity::kError, index_, id_, std::move(path), std::string(rule), std::string(section),
                   std::move(msg)});
}

void ObjectChecker::Warn(std::string path, std::string_view rule, std::string_view section, std::string msg) {
  out_->push_back({Severity::kWarning, index_, id_, std::move(path), std::string(rule), std::string(section),
                   std::move(msg)});
}

bool ObjectChecker::Check(dom::element e, Object* result) {
  dom::object obj;
  if (e.get(obj)) {
    Error("", "object-not-json-object", "STIX 2.1 §8 Bundle",
          std::string("a STIX object must be a JSON object, found ") + KindName(e.type()));
    return false;
  }
  std::string dup_path, dup_name;
  if (json::FindDuplicateKey(e, &dup_path, &dup_name)) {
    Error(dup_path == "(top level)" ? "" : dup_path, "json-duplicate-key", "RFC 8259 §4; RFC 7493 §2.3",
          "member name \"" + dup_name + "\" appears more than once");
  }

  dom::element early_id;
  std::string_view early;
  if (!e["id"].get(early_id) && !early_id.get(early)) id_ = std::string(early);

  // type (§3.2, §3.1)
  std::string_view type;
  dom::element tv;
  if (e["type"].get(tv)) {
    Error("type", "required-property", std::string(kSecCommon), "required property \"type\" is missing");
  } else if (tv.get(type)) {
    Error("type", "property-type", std::string(kSecCommon), "\"type\" must be a string");
  } else if (!IsValidTypeName(type)) {
    Error("type", "type-name-syntax", std::string(kSecNames) + "; §11.2 Custom Objects",
          "type \"" + std::string(type) +
              "\" must be 3-250 characters of lowercase a-z, 0-9 and single hyphens");
  }
  type_ = std::string(type);

  // id (§2.9)
  std::string_view id;
  dom::element idv;
  if (e["id"].get(idv)) {
    Error("id", "required-property", std::string(kSecCommon), "required property \"id\" is missing");
  } else if (idv.get(id)) {
    Error("id", "property-type", std::string(kSecId), "\"id\" must be a string");
  } else {
    id_ = std::string(id);
    IdParts parts;
    if (!SplitId(id, &parts) || UuidVersion(parts.uuid) == 0) {
      Error("id", "id-syntax", std::string(kSecId),
            "id \"" + id_ + "\" must be \"<type>--<RFC 4122 UUID>\"");
    } else if (!type.empty() && parts.type != type) {
      Error("id", "id-type-mismatch", std::string(kSecId),
            "id prefix \"" + std::string(parts.type) + "\" differs from type \"" + type_ + "\"");
    }
  }

  spec_ = schema::FindType(type);
  category_ = spec_ ? spec_->category : CustomCategory(e);
  section_ = spec_ ? spec_->section : std::string_view("STIX 2.1 §11.2 Custom Objects");

  // UUID version advice (§2.9: SHOULD v4 for SDO/SRO/meta, SHOULD v5 for SCO).
  if (!id_.empty()) {
    IdParts parts;
    if (SplitId(id_, &parts)) {
      int v = UuidVersion(parts.uuid);
      if (v != 0 && category_ == Category::kSco && v != 5 && v != 4) {
        Warn("id", "id-uuid-version", std::string(kSecId), "SCO ids SHOULD use UUIDv5");
      } else if (v != 0 && category_ != Category::kSco && v != 4) {
        Warn("id", "id-uuid-version", std::string(kSecId), "ids of this object type SHOULD use UUIDv4");
      }
    }
  }

  // spec_version (§3.2): "2.1"; required except on SCOs.
  std::string_view sv;
  dom::element svv;
  if (e["spec_version"].get(svv)) {
    if (category_ != Category::kSco) {
      Error("spec_version", "spec-version-required", std::string(kSecCommon),
            "spec_version is required; an object without it is STIX 2.0 content, not 2.1");
    }
  } else if (svv.get(sv) || sv != "2.1") {
    Error("spec_version", "spec-version-value", std::string(kSecCommon),
          "spec_version must be \"2.1\" for STIX 2.1 content");
  }

  // Every property: known common, known type-specific, or custom.
  for (auto field : obj) {
    std::string_view name = field.key;
    if (field.value.is_null()) {
      Error(std::string(name), "null-value", std::string(kSecNames),
            "property \"" + std::string(name) + "\" is null; omit the property instead");
      continue;
    }
    schema::PropertyInfo info = schema::FindProperty(spec_, category_, name);
    if (info.forbidden) {
      Error(std::string(name), "property-not-applicable", std::string(kSecCommon),
            "property \"" + std::string(name) + "\" must not be present on this kind of object");
      continue;
    }
    if (info.prop) {
      if (name != "type" && name != "id" && name != "spec_version") {
        std::string_view own = section_;
        if (info.common) section_ = kSecCommon;
        CheckProperty(*info.prop, name, field.value);
        section_ = own;
      }
      continue;
    }
    if (!IsValidPropertyName(name)) {
      Error(std::string(name), "property-name-syntax", std::string(kSecCustomProp),
            "property name \"" + std::string(name) +
                "\" must be 3-250 characters of lowercase a-z, 0-9 and underscore");
    } else if (spec_ && name.substr(0, 2) != "x_") {
      Warn(std::string(name), "custom-property-prefix", std::string(kSecCustomProp),
           "custom property \"" + std::string(name) +
               "\" SHOULD start with x_ or be declared by an extension-definition");
    }
  }

  // Required properties.
  for (const auto& p : schema::CommonProps(type, category_)) {
    if (p.required && p.name != "type" && p.name != "id" && p.name != "spec_version" && !Has(e, p.name)) {
      Error(std::string(p.name), "required-property", std::string(kSecCommon),
            "required property \"" + std::string(p.name) + "\" is missing");
    }
  }
  if (spec_) {
    for (const auto& p : spec_->props) {
      if (p.required && !Has(e, p.name)) {
        Error(std::string(p.name), "required-property", section_,
              "required property \"" + std::string(p.name) + "\" is missing");
      }
    }
  }

  CheckCommonTimes(e);
  CheckSelectors(e);
  CheckTypeRules(e);

  if (has_error_) return false;
  result->index = index_;
  result->type = type_;
  result->id = id_;
  result->spec_version = "2.1";
  result->modified = std::string(Str(e, "modified"));
  result->version = VersionKey(result->modified);
  bool revoked = false;
  if (!e["revoked"].get(revoked)) result->revoked = revoked;
  return true;
}

void ObjectChecker::CheckProperty(const Prop& prop, std::string_view path, dom::element v) {
  auto want = [&](const char* what) {
    Error(std::string(path), "property-type", section_,
          "\"" + std::string(path) + "\" must be " + what + ", found " + KindName(v.type()));
  };
  switch (prop.kind) {
    case Kind::kString:
      if (!v.is_string()) want("a string");
      break;
    case Kind::kStringList:
      CheckStringList(path, v);
      break;
    case Kind::kInteger: {
      int64_t i;
      uint64_t u;
      if (!v.get(i)) {
        if (i < prop.min || i > prop.max) {
          Error(std::string(path), "integer-range", section_,
                "\"" + std::string(path) + "\" is " + std::to_string(i) + ", outside " +
                    std::to_string(prop.min) + ".." + std::to_string(prop.max));
        }
      } else if (!v.get(u)) {
        Error(std::string(path), "integer-range", section_,
              "\"" + std::string(path) + "\" is " + std::to_string(u) + ", outside the allowed range");
      } else {
        want("an integer");
      }
      break;
    }
    case Kind::kNumber:
      if (!v.is_number()) want("a number");
      break;
    case Kind::kBoolean:
      if (!v.is_bool()) want("a boolean");
      break;
    case Kind::kTimestamp:
      CheckTimestampValue(path, v);
      break;
    case Kind::kRef: {
      std::string_view s;
      if (v.get(s)) {
        want("an identifier string");
      } else {
        CheckRef(path, s, prop.allowed);
        if (path == "object_marking_refs" || prop.allowed == std::vector<std::string_view>{"marking-definition"}) {
          CheckMarkingRef(path, s);
        }
      }
      break;
    }
    case Kind::kRefList: {
      dom::array arr;
      if (v.get(arr)) {
        want("a list of identifiers");
        break;
      }
      if (arr.size() == 0) {
        Error(std::string(path), "empty-list", std::string(kSecList), "lists must not be empty");
      }
      size_t i = 0;
      for (dom::element item : arr) {
        std::string p = Index(path, i++);
        std::string_view s;
        if (item.get(s)) {
          Error(p, "property-type", section_, "\"" + p + "\" must be an identifier string");
          continue;
        }
        CheckRef(p, s, prop.allowed);
        if (path == "object_marking_refs") CheckMarkingRef(p, s);
      }
      break;
    }
    case Kind::kExternalReferences:
      CheckExternalReferences(path, v);
      break;
    case Kind::kKillChainPhases:
      CheckKillChainPhases(path, v);
      break;
    case Kind::kGranularMarkings:
      CheckGranularMarkings(path, v);
      break;
    case Kind::kHashes:
      CheckHashes(path, v);
      break;
    case Kind::kDictionary:
      CheckDictionary(path, v);
      break;
    case Kind::kExtensions:
      CheckExtensions(path, v);
      break;
    case Kind::kBinary: {
      std::string_view s;
      if (v.get(s)) want("a base64 string");
      else if (!IsBase64(s)) {
        Error(std::string(path), "binary-base64", "STIX 2.1 §2.4 Binary", "\"" + std::string(path) + "\" is not valid base64");
      }
      break;
    }
    case Kind::kHex: {
      std::string_view s;
      if (v.get(s)) want("a hex string");
      else if (!IsHex(s) || s.size() % 2 != 0) {
        Error(std::string(path), "hex-syntax", "STIX 2.1 §2.10 Hexadecimal",
              "\"" + std::string(path) + "\" must be an even number of hex digits");
      }
      break;
    }
    case Kind::kEnum: {
      std::string_view s;
      if (v.get(s)) want("a string");
      else if (!Contains(prop.allowed, s)) {
        std::string values;
        for (auto a : prop.allowed) values += (values.empty() ? "" : ", ") + std::string(a);
        Error(std::string(path), "enum-value", section_,
              "\"" + std::string(s) + "\" is not one of: " + values);
      }
      break;
    }
    case Kind::kObject:
      if (!v.is_object()) want("an object");
      break;
    case Kind::kObjectList: {
      dom::array arr;
      if (v.get(arr)) want("a list of objects");
      else if (arr.size() == 0) Error(std::string(path), "empty-list", std::string(kSecList), "lists must not be empty");
      else {
        size_t i = 0;
        for (dom::element item : arr) {
          if (!item.is_object()) {
            Error(Index(path, i), "property-type", section_, "list entries must be objects");
          }
          ++i;
        }
      }
      break;
    }
    case Kind::kObservedObjects: {
      dom::object o;
      if (v.get(o)) {
        want("an object keyed by index");
        break;
      }
      if (o.size() == 0) {
        Error(std::string(path), "empty-dictionary", section_, "\"objects\" must not be empty");
      }
      for (auto f : o) {
        std::string p = Join(path, f.key);
        dom::object sco;
        if (f.value.get(sco) || !sco["type"].is_string()) {
          Error(p, "observed-object", section_, "each entry must be a cyber-observable object with a type");
        }
      }
      Warn(std::string(path), "deprecated-property", section_, "\"objects\" is deprecated; use object_refs");
      break;
    }
    case Kind::kLanguageContents: {
      dom::object o;
      if (v.get(o)) {
        want("an object keyed by language");
        break;
      }
      if (o.size() == 0) {
        Error(std::string(path), "empty-dictionary", section_, "contents must not be empty");
      }
      for (auto f : o) {
        dom::object inner;
        if (f.value.get(inner) || inner.size() == 0) {
          Error(Join(path, f.key), "language-contents", section_,
                "each language must map to a non-empty object of translated properties");
        }
      }
      break;
    }
  }
}

void ObjectChecker::CheckRef(std::string_view path, std::string_view ref,
                             const std::vector<std::string_view>& allowed) {
  IdParts parts;
  if (!SplitId(ref, &parts) || !IsValidTypeName(parts.type) || UuidVersion(parts.uuid) == 0) {
    Error(std::string(path), "ref-syntax", std::string(kSecId),
          "\"" + std::string(ref) + "\" is not an identifier (<type>--<UUID>)");
    return;
  }
  std::string_view t = parts.type;
  const auto* target = schema::FindType(t);
  auto ok = [&] {
    for (auto a : allowed) {
      if (a == t) return true;
      if (a == "<any>") return t != "bundle";
      bool custom = target == nullptr && t != "bundle";
      if (a == "<sdo>" && ((target && target->category == Category::kSdo) || custom)) return true;
      if (a == "<sco>" && ((target && target->category == Category::kSco) || custom)) return true;
    }
    return false;
  };
  if (!ok()) {
    std::string list;
    for (auto a : allowed) {
      std::string name = a == "<sdo>" ? "any SDO" : a == "<sco>" ? "any SCO" : std::string(a);
      list += (list.empty() ? "" : ", ") + name;
    }
    std::string_view section = path.starts_with("object_marking_refs") ? kSecObjMarking
                               : path == "created_by_ref"              ? kSecCommon
                                                                       : section_;
    Error(std::string(path), "ref-target-type", section,
          "\"" + std::string(ref) + "\" is a " + std::string(t) + "; \"" + std::string(path) + "\" must reference " + list);
  }
}

void ObjectChecker::CheckMarkingRef(std::string_view path, std::string_view ref) {
  if (!ref.starts_with("marking-definition--")) return;  // type error reported by CheckRef
  if (!doc_.MarkingKnown(ref)) {
    Error(std::string(path), "marking-ref-unknown", std::string(kSecObjMarking) + "; §7.2.1.4 TLP",
          "marking-definition " + std::string(ref) +
              " is neither in the document, predefined, nor stored: it cannot be enforced");
  }
}

void ObjectChecker::CheckTimestampValue(std::string_view path, dom::element v) {
  std::string_view s;
  if (v.get(s)) {
    Error(std::string(path), "property-type", std::string(kSecTimestamp),
          "\"" + std::string(path) + "\" must be a timestamp string");
    return;
  }
  if (!ParseTimestamp(s)) {
    Error(std::string(path), "timestamp-format", std::string(kSecTimestamp),
          "\"" + std::string(s) + "\" is not an RFC 3339 UTC timestamp YYYY-MM-DDTHH:MM:SS[.s+]Z");
  }
}

void ObjectChecker::CheckStringList(std::string_view path, dom::element v) {
  dom::array arr;
  if (v.get(arr)) {
    Error(std::string(path), "property-type", section_, "\"" + std::string(path) + "\" must be a list of strings");
    return;
  }
  if (arr.size() == 0) {
    Error(std::string(path), "empty-list", std::string(kSecList), "lists must not be empty; omit the property");
  }
  size_t i = 0;
  for (dom::element item : arr) {
    if (!item.is_string()) {
      Error(Index(path, i), "property-type", section_, "list entries must be strings");
    }
    ++i;
  }
}

void ObjectChecker::CheckExternalReferences(std::string_view path, dom::element v) {
  dom::array arr;
  if (v.get(arr)) {
    Error(std::string(path), "property-type", std::string(kSecExtRef), "external_references must be a list");
    return;
  }
  if (arr.size() == 0) Error(std::string(path), "empty-list", std::string(kSecList), "lists must not be empty");
  size_t i = 0;
  for (dom::element item : arr) {
    std::string p = Index(path, i++);
    dom::object ref;
    if (item.get(ref)) {
      Error(p, "property-type", std::string(kSecExtRef), "an external reference must be an object");
      continue;
    }
    if (!item["source_name"].is_string()) {
      Error(Join(p, "source_name"), "external-reference-source-name", std::string(kSecExtRef),
            "source_name is required and must be a string");
    }
    for (std::string_view k : {"description", "url", "external_id"}) {
      dom::element x;
      if (!item[k].get(x) && !x.is_string()) {
        Error(Join(p, k), "property-type", std::string(kSecExtRef), std::string(k) + " must be a string");
      }
    }
    if (!Has(item, "description") && !Has(item, "url") && !Has(item, "external_id")) {
      Error(p, "external-reference-content", std::string(kSecExtRef),
            "besides source_name, at least one of description, url or external_id is required");
    }
    dom::element h;
    if (!item["hashes"].get(h)) CheckHashes(Join(p, "hashes"), h);
  }
}

void ObjectChecker::CheckKillChainPhases(std::string_view path, dom::element v) {
  dom::array arr;
  if (v.get(arr)) {
    Error(std::string(path), "property-type", std::string(kSecKillChain), "kill_chain_phases must be a list");
    return;
  }
  if (arr.size() == 0) Error(std::string(path), "empty-list", std::string(kSecList), "lists must not be empty");
  size_t i = 0;
  for (dom::element item : arr) {
    std::string p = Index(path, i++);
    if (!item.is_object() || !item["kill_chain_name"].is_string() || !item["phase_name"].is_string()) {
      Error(p, "kill-chain-phase", std::string(kSecKillChain),
            "a kill chain phase needs string kill_chain_name and phase_name");
    }
  }
}

void ObjectChecker::CheckGranularMarkings(std::string_view path, dom::element v) {
  dom::array arr;
  if (v.get(arr)) {
    Error(std::string(path), "property-type", std::string(kSecGranular), "granular_markings must be a list");
    return;
  }
  if (arr.size() == 0) Error(std::string(path), "empty-list", std::string(kSecList), "lists must not be empty");
  size_t i = 0;
  for (dom::element item : arr) {
    std::string p = Index(path, i++);
    if (!item.is_object()) {
      Error(p, "property-type", std::string(kSecGranular), "a granular marking must be an object");
      continue;
    }
    bool has_ref = Has(item, "marking_ref"), has_lang = Has(item, "lang");
    if (has_ref == has_lang) {
      Error(p, "granular-marking-ref-or-lang", std::string(kSecGranular),
            "exactly one of marking_ref and lang must be present");
    }
    std::string_view ref;
    if (has_ref) {
      if (item["marking_ref"].get(ref)) {
        Error(Join(p, "marking_ref"), "property-type", std::string(kSecGranular), "marking_ref must be a string");
      } else {
        CheckRef(Join(p, "marking_ref"), ref, {"marking-definition"});
        CheckMarkingRef(Join(p, "marking_ref"), ref);
      }
    }
    if (has_lang && !item["lang"].is_string()) {
      Error(Join(p, "lang"), "property-type", std::string(kSecGranular), "lang must be a string");
    }
    dom::array sel;
    if (item["selectors"].get(sel) || sel.size() == 0) {
      Error(Join(p, "selectors"), "granular-marking-selectors", std::string(kSecGranular),
            "selectors must be a non-empty list of strings");
    }
  }
}

// Selectors (§7.2.3.1) must point to properties present in the object.
void ObjectChecker::CheckSelectors(dom::element obj) {
  dom::array gms;
  if (obj["granular_markings"].get(gms)) return;
  size_t gi = 0;
  for (dom::element gm : gms) {
    dom::array sel;
    if (gm["selectors"].get(sel)) {
      ++gi;
      continue;
    }
    size_t si = 0;
    for (dom::element s : sel) {
      std::string p = Index(Join(Index("granular_markings", gi), "selectors"), si++);
      std::string_view selector;
      if (s.get(selector)) {
        Error(p, "property-type", std::string(kSecGranular), "a selector must be a string");
        continue;
      }
      dom::element cur = obj;
      bool ok = !selector.empty();
      size_t start = 0;
      while (ok && start <= selector.size()) {
        size_t dot = selector.find('.', start);
        std::string_view tok = selector.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (tok.size() >= 3 && tok.front() == '[' && tok.back() == ']') {
          std::string_view num = tok.substr(1, tok.size() - 2);
          dom::array arr;
          size_t idx = 0;
          ok = !num.empty() && std::all_of(num.begin(), num.end(), ::isdigit) && !cur.get(arr);
          if (ok) {
            idx = std::stoul(std::string(num));
            ok = !cur.at(idx).get(cur);
          }
        } else {
          ok = !tok.empty() && cur.is_object() && !cur[tok].get(cur);
        }
        if (dot == std::string_view::npos) break;
        start = dot + 1;
      }
      if (!ok) {
        Error(p, "granular-marking-selector", std::string(kSecGranular),
              "selector \"" + std::string(selector) + "\" does not refer to a property of this object");
      }
    }
    ++gi;
  }
}

void ObjectChecker::CheckHashes(std::string_view path, dom::element v) {
  dom::object h;
  if (v.get(h)) {
    Error(std::string(path), "property-type", std::string(kSecHashes), "hashes must be an object");
    return;
  }
  if (h.size() == 0) Error(std::string(path), "empty-dictionary", std::string(kSecHashes), "hashes must not be empty");
  for (auto f : h) {
    std::string p = Join(path, f.key);
    std::string_view value;
    if (!IsDictKey(f.key)) {
      Error(p, "dictionary-key", std::string(kSecDict), "hash algorithm name \"" + std::string(f.key) + "\" is not a valid key");
    }
    if (f.value.get(value)) {
      Error(p, "property-type", std::string(kSecHashes), "a hash value must be a string");
      continue;
    }
    int len = HashHexLength(f.key);
    if (len > 0 && (static_cast<int>(value.size()) != len || !IsHex(value))) {
      Error(p, "hash-value", std::string(kSecHashes) + "; §10.10 hash-algorithm-ov",
            std::string(f.key) + " must be " + std::to_string(len) + " hex digits, found " +
                std::to_string(value.size()) + " characters");
    } else if (!IsKnownHash(f.key)) {
      Warn(p, "hash-algorithm", std::string(kSecHashes),
           "hash algorithm \"" + std::string(f.key) + "\" SHOULD come from hash-algorithm-ov");
    }
  }
}

void ObjectChecker::CheckDictionary(std::string_view path, dom::element v) {
  dom::object d;
  if (v.get(d)) {
    Error(std::string(path), "property-type", std::string(kSecDict), "\"" + std::string(path) + "\" must be an object");
    return;
  }
  for (auto f : d) {
    if (!IsDictKey(f.key)) {
      Error(Join(path, f.key), "dictionary-key", std::string(kSecDict),
            "dictionary key must be 1-250 ASCII letters, digits, hyphens or underscores");
    }
  }
}

void ObjectChecker::CheckExtensions(std::string_view path, dom::element v) {
  dom::object ext;
  if (v.get(ext)) {
    Error(std::string(path), "property-type", std::string(kSecExtensions), "extensions must be an object");
    return;
  }
  if (ext.size() == 0) Error(std::string(path), "empty-dictionary", std::string(kSecExtensions), "extensions must not be empty");
  for (auto f : ext) {
    std::string p = Join(path, f.key);
    dom::object body;
    if (f.value.get(body)) {
      Error(p, "extension-value", std::string(kSecExtensions), "an extension must be an object");
      continue;
    }
    if (f.key.starts_with("extension-definition--")) {
      IdParts parts;
      SplitId(f.key, &parts);
      if (UuidVersion(parts.uuid) == 0) {
        Error(p, "ref-syntax", std::string(kSecId), "extension key is not an extension-definition identifier");
      }
      std::string_view et;
      dom::element etv;
      if (!f.value["extension_type"].get(etv)) {
        if (etv.get(et) || !Contains(kExtensionTypes, et)) {
          Error(Join(p, "extension_type"), "extension-type", std::string(kSecExtensions),
                "extension_type must be one of new-sdo, new-sco, new-sro, property-extension, "
                "toplevel-property-extension");
        } else if (spec_ && et.starts_with("new-")) {
          // A custom type's category follows its new-* extension; a predefined type cannot be "new".
          Error(Join(p, "extension_type"), "extension-type", std::string(kSecExtensions),
                "a " + std::string(et) + " extension cannot be attached to the predefined type " + type_);
        }
      }
      if (body.size() == 0) {
        Error(p, "extension-value", std::string(kSecExtensions), "an extension must not be empty");
      }
      if (f.key == kTearlineExtensionId) CheckTearlineExtension(p, body);
    } else if (Contains(kPredefinedExtensions, f.key)) {
      if (body.size() == 0) {
        Error(p, "extension-value", "STIX 2.1 §6 Predefined Extensions", "an extension must not be empty");
      }
    } else if (!IsValidTypeName(f.key)) {
      Error(p, "extension-name", std::string(kSecExtensions),
            "extension key must be an extension-definition id or a predefined extension name");
    } else {
      Warn(p, "custom-extension", "STIX 2.1 §11.3 Custom Object Extensions",
           "custom extension \"" + std::string(f.key) + "\" SHOULD be defined by an extension-definition");
    }
  }
}

// tearline's own property-extension (docs/extension.md): a malformed release control
// must be refused, never guessed at, since it decides who receives what.
void ObjectChecker::CheckTearlineExtension(const std::string& p, dom::object body) {
  constexpr std::string_view kSec = "tearline docs/extension.md";
  for (auto f : body) {
    std::string q = Join(p, f.key);
    if (f.key == "extension_type") continue;
    if (f.key == "distribution") {
      dom::array a;
      if (f.value.get(a) || a.size() == 0) {
        Error(q, "tearline-extension", kSec, "distribution must be a non-empty list of identity ids");
        continue;
      }
      for (auto x : a) {
        std::string_view id;
        IdParts parts;
        if (x.get(id) || !SplitId(id, &parts) || parts.type != "identity" || UuidVersion(parts.uuid) == 0) {
          Error(q, "tearline-extension", kSec, "distribution entries must be identity ids (organisations or individuals)");
        }
      }
    } else if (f.key == "releasable") {
      dom::object r;
      if (f.value.get(r) || r.size() == 0) {
        Error(q, "tearline-extension", kSec, "releasable must be a non-empty object of replacement property values");
        continue;
      }
      for (auto x : r) {
        if (x.key == "id" || x.key == "type" || x.key == "spec_version" || x.key == "created" || x.key == "modified" ||
            x.key == "created_by_ref" || x.key == "extensions") {
          Error(Join(q, x.key), "tearline-extension", kSec, std::string(x.key) + " cannot be replaced in a tear-line variant");
        }
      }
    } else if (f.key == "sensitive") {
      dom::array a;
      if (f.value.get(a) || a.size() == 0) {
        Error(q, "tearline-extension", kSec, "sensitive must be a non-empty list of property paths");
        continue;
      }
      for (auto x : a) {
        std::string_view path;
        if (x.get(path) || path.empty() || path == "id" || path == "type" || path == "spec_version" ||
            path == "created" || path == "modified") {
          Error(q, "tearline-extension", kSec, "sensitive entries are property paths (not id, type, spec_version, created, modified)");
        }
      }
    } else if (f.key == "no_relay") {
      if (!f.value.is_bool()) Error(q, "tearline-extension", kSec, "no_relay must be true or false");
    } else if (f.key == "min_full_tier") {
      int64_t t = 0;
      if (f.value.get(t) || t < 0 || t > 1000) Error(q, "tearline-extension", kSec, "min_full_tier must be an integer 0..1000");
    } else {
      Error(q, "tearline-extension", kSec,
            "unknown property of tearline's extension (distribution, releasable, sensitive, no_relay, min_full_tier)");
    }
  }
}

void ObjectChecker::CheckOrder(dom::element obj, std::string_view first, std::string_view second, bool strict,
                               std::string_view section) {
  std::string_view a, b;
  if (obj[first].get(a) || obj[second].get(b)) return;
  auto ta = ParseTimestamp(a), tb = ParseTimestamp(b);
  if (!ta || !tb) return;
  int c = CompareTimestamps(*tb, *ta);
  if (c < 0 || (strict && c == 0)) {
    Error(std::string(second), "timestamp-order", std::string(section),
          std::string(second) + " (" + std::string(b) + ") must be " + (strict ? "later than" : "later than or equal to") +
              " " + std::string(first) + " (" + std::string(a) + ")");
  }
}

// created/modified: millisecond precision at least, and modified >= created (§3.2).
void ObjectChecker::CheckCommonTimes(dom::element obj) {
  for (std::string_view k : {"created", "modified"}) {
    std::string_view s;
    if (obj[k].get(s)) continue;
    auto ts = ParseTimestamp(s);
    if (ts && ts->fraction_digits() < 3) {
      Error(std::string(k), "timestamp-precision", std::string(kSecCommon),
            std::string(k) + " must be precise to at least the millisecond (3 fractional digits)");
    }
  }
  CheckOrder(obj, "created", "modified", false, kSecCommon);
}

void ObjectChecker::CheckAtLeastOne(dom::element obj, std::initializer_list<std::string_view> names,
                                    std::string_view section) {
  for (auto n : names) {
    if (Has(obj, n)) return;
  }
  std::string list;
  for (auto n : names) list += (list.empty() ? "" : ", ") + std::string(n);
  Error("", "required-one-of", std::string(section), "at least one of " + list + " is required");
}

void ObjectChecker::CheckTypeRules(dom::element obj) {
  std::string_view t = type_;
  if (t == "campaign" || t == "intrusion-set" || t == "threat-actor" || t == "infrastructure" ||
      t == "malware" || t == "sighting") {
    CheckOrder(obj, "first_seen", "last_seen", false, section_);
  }
  if (t == "indicator") CheckIndicator(obj);
  if (t == "observed-data") {
    CheckOrder(obj, "first_observed", "last_observed", false, section_);
    if (Has(obj, "objects") == Has(obj, "object_refs")) {
      Error("object_refs", "observed-data-objects", section_, "exactly one of objects and object_refs must be present");
    }
  }
  if (t == "relationship") {
    CheckOrder(obj, "start_time", "stop_time", true, section_);
    std::string_view rt;
    if (!obj["relationship_type"].get(rt) && !IsValidTypeName(rt)) {
      Error("relationship_type", "relationship-type-syntax", std::string(section_) + "; §3.1",
            "relationship_type \"" + std::string(rt) + "\" must be lowercase a-z, 0-9 and hyphens, 3-250 chars");
    }
  }
  if (t == "malware") {
    bool fam = false;
    if (!obj["is_family"].get(fam) && fam && !Has(obj, "name")) {
      Error("name", "required-property", section_, "name is required when is_family is true");
    }
  }
  if (t == "malware-analysis") CheckAtLeastOne(obj, {"result", "analysis_sco_refs"}, section_);
  if (t == "location") CheckLocation(obj);
  if (t == "marking-definition") CheckMarkingDefinition(obj);
  if (t == "extension-definition") CheckExtensionDefinition(obj);
  if (t == "language-content") {
    // object_modified pins a version; nothing more to check on one object.
  }
  if (category_ == Category::kSco) CheckScoRules(obj);
}

void ObjectChecker::CheckIndicator(dom::element obj) {
  CheckOrder(obj, "valid_from", "valid_until", true, section_);
  std::string_view pt, pattern;
  if (obj["pattern_type"].get(pt) || obj["pattern"].get(pattern)) return;
  if (pt != "stix") return;  // sigma, yara, snort, ... are opaque to us
  auto st = pattern::CheckSyntax(pattern);
  if (!st.ok()) {
    Error("pattern", "pattern-syntax", "STIX 2.1 §4.7 Indicator; §9 STIX Patterning", st.message());
  }
}

void ObjectChecker::CheckLocation(dom::element obj) {
  bool lat = Has(obj, "latitude"), lon = Has(obj, "longitude");
  if (!Has(obj, "region") && !Has(obj, "country") && !(lat && lon)) {
    Error("", "required-one-of", section_, "one of region, country, or latitude and longitude is required");
  }
  if (lat != lon) {
    Error(lat ? "longitude" : "latitude", "location-coordinates", section_,
          "latitude and longitude must be given together");
  }
  if (Has(obj, "precision") && !(lat && lon)) {
    Error("precision", "location-coordinates", section_, "precision requires latitude and longitude");
  }
  double d;
  if (!obj["latitude"].get(d) && (d < -90 || d > 90)) {
    Error("latitude", "number-range", section_, "latitude must be within -90.0..90.0");
  }
  if (!obj["longitude"].get(d) && (d < -180 || d > 180)) {
    Error("longitude", "number-range", section_, "longitude must be within -180.0..180.0");
  }
  if (!obj["precision"].get(d) && d < 0) {
    Error("precision", "number-range", section_, "precision must be >= 0.0");
  }
}

void ObjectChecker::CheckPredefinedTlp(dom::element obj) {
  for (const auto& t : kTlp1) {
    if (id_ != t.id) continue;
    std::string_view dt = Str(obj, "definition_type"), created = Str(obj, "created"), name = Str(obj, "name");
    std::string_view color;
    bool color_ok = !obj["definition"]["tlp"].get(color) && color == t.color;
    if (dt != "tlp" || !color_ok || created != "2017-01-20T00:00:00.000Z" || (!name.empty() && name != t.name)) {
      Error("definition", "tlp-predefined", "STIX 2.1 §7.2.1.4 TLP Marking",
            "the predefined " + std::string(t.name) + " marking-definition (" + std::string(t.id) +
                ") must be exactly as the specification defines it");
    }
  }
}

void ObjectChecker::CheckMarkingDefinition(dom::element obj) {
  CheckPredefinedTlp(obj);
  bool has_dt = Has(obj, "definition_type"), has_def = Has(obj, "definition");
  if (!Has(obj, "extensions") && !(has_dt && has_def)) {
    Error("definition", "required-property", section_,
          "definition_type and definition are required unless the marking is defined by an extension");
  }
  if (has_dt != has_def) {
    Error(has_dt ? "definition" : "definition_type", "required-property", section_,
          "definition_type and definition go together");
  }
  std::string_view dt = Str(obj, "definition_type");
  if (dt == "statement" && !obj["definition"]["statement"].is_string()) {
    Error("definition.statement", "marking-statement", "STIX 2.1 §7.2.1.3 Statement Marking",
          "a statement marking needs definition.statement (string)");
  }
  if (dt == "tlp") {
    std::string_view c;
    if (obj["definition"]["tlp"].get(c) || (c != "white" && c != "green" && c != "amber" && c != "red")) {
      Error("definition.tlp", "marking-tlp", "STIX 2.1 §7.2.1.4 TLP Marking",
            "a tlp marking needs definition.tlp of white, green, amber or red");
    }
  }
}

void ObjectChecker::CheckExtensionDefinition(dom::element obj) {
  dom::array types;
  if (obj["extension_types"].get(types)) return;
  bool toplevel = false;
  size_t i = 0;
  for (dom::element e : types) {
    std::string_view s;
    if (!e.get(s) && !Contains(kExtensionTypes, s)) {
      Error(Index("extension_types", i), "extension-type", std::string(section_) + " (extension-type-enum)",
            "\"" + std::string(s) + "\" is not an extension type");
    }
    if (s == "toplevel-property-extension") toplevel = true;
    ++i;
  }
  if (toplevel && !Has(obj, "extension_properties")) {
    Error("extension_properties", "required-property", section_,
          "extension_properties is required for a toplevel-property-extension");
  }
}

void ObjectChecker::CheckScoRules(dom::element obj) {
  std::string_view t = type_;
  if (t == "file") CheckAtLeastOne(obj, {"hashes", "name"}, section_);
  if (t == "artifact") {
    bool bin = Has(obj, "payload_bin"), url = Has(obj, "url");
    if (bin && url) Error("url", "artifact-content", section_, "payload_bin and url must not both be present");
    if (url && !Has(obj, "hashes")) Error("hashes", "required-property", section_, "hashes is required when url is present");
    if (Has(obj, "decryption_key") && !Has(obj, "encryption_algorithm")) {
      Error("decryption_key", "artifact-content", section_, "decryption_key requires encryption_algorithm");
    }
  }
  if (t == "network-traffic") {
    CheckAtLeastOne(obj, {"src_ref", "dst_ref"}, section_);
    CheckOrder(obj, "start", "end", false, section_);
    bool active = false;
    if (!obj["is_active"].get(active) && active && Has(obj, "end")) {
      Error("end", "network-traffic-active", section_, "end must not be present when is_active is true");
    }
  }
  if (t == "email-message") {
    bool multi = false;
    if (!obj["is_multipart"].get(multi)) {
      if (multi && Has(obj, "body")) Error("body", "email-multipart", section_, "body must not be present when is_multipart is true");
      if (!multi && Has(obj, "body_multipart")) {
        Error("body_multipart", "email-multipart", section_, "body_multipart must not be present when is_multipart is false");
      }
    }
  }
  if (t == "process" || t == "user-account" || t == "windows-registry-key" || t == "x509-certificate") {
    dom::object o = obj.get_object().value_unsafe();
    size_t own = 0;
    for (auto f : o) {
      if (!schema::FindCommon(t, category_, f.key) || f.key == "extensions") ++own;
    }
    if (own == 0) {
      Error("", "required-one-of", section_, "at least one property of this object type is required");
    }
  }
}

}  // namespace tearline::stix
