// The STIX 2.1 object catalogue as data: per type, its properties and their
// kinds. Cross-property rules (e.g. "modified >= created") live in validator.cpp.
// Private to src/stix.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string_view>
#include <vector>

namespace tearline::stix::schema {

enum class Kind {
  kString,
  kStringList,
  kInteger,
  kNumber,
  kBoolean,
  kTimestamp,
  kRef,            //!< identifier; `allowed` lists permitted target types
  kRefList,
  kExternalReferences,
  kKillChainPhases,
  kGranularMarkings,
  kHashes,
  kDictionary,
  kExtensions,
  kBinary,         //!< base64 (§2.4)
  kHex,            //!< hex string (§2.10)
  kEnum,           //!< closed vocabulary; `allowed` holds the values
  kObject,         //!< a JSON object checked by a type-specific rule
  kObjectList,     //!< a non-empty list of JSON objects checked by a type-specific rule
  kObservedObjects,//!< observed-data "objects" (deprecated §4.14)
  kLanguageContents,
};

enum class Category { kSdo, kSro, kSco, kMeta };

struct Prop {
  std::string_view name;
  Kind kind;
  bool required = false;
  std::vector<std::string_view> allowed = {};  //!< ref target types ("<sdo>", "<sco>", "<any>") or enum values
  int64_t min = std::numeric_limits<int64_t>::min();
  int64_t max = std::numeric_limits<int64_t>::max();
};

struct TypeSpec {
  std::string_view type;
  Category category;
  std::string_view section;  //!< e.g. "STIX 2.1 §4.7 Indicator"
  std::vector<Prop> props;
};

//! The spec of a STIX-defined type, or nullptr for custom types.
const TypeSpec* FindType(std::string_view type);

//! Common properties (§3.2) of objects of `type` in `category`.
const std::vector<Prop>& CommonProps(std::string_view type, Category category);

//! The common property `name` of `type`, or nullptr.
const Prop* FindCommon(std::string_view type, Category category, std::string_view name);

//! Common properties that MUST NOT appear on `type` (§3.2 "not applicable").
bool CommonForbidden(std::string_view type, Category category, std::string_view name);

//! What a property name means on an object of `spec` (nullptr for a custom
//! type of `category`): a common property, a type-specific one, a common
//! property that must not appear, or (prop == nullptr, !forbidden) custom.
struct PropertyInfo {
  const Prop* prop = nullptr;
  bool common = false;
  bool forbidden = false;
};
PropertyInfo FindProperty(const TypeSpec* spec, Category category, std::string_view name);

}  // namespace tearline::stix::schema
