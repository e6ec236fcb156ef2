// Per-object validation (private to src/stix). ObjectChecker walks one STIX
// object and records every problem it finds; it never stops at the first.
#pragma once

#include <simdjson.h>

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "stix/schema.h"
#include "stix/stix.h"

namespace tearline::stix {

//! Document-wide facts an object check may consult.
struct DocumentContext {
  std::unordered_set<std::string> marking_ids;  //!< marking-definitions present in the document
  const MarkingLookup* lookup = nullptr;        //!< markings stored elsewhere (may be null)
  bool MarkingKnown(std::string_view id) const;
};

class ObjectChecker {
 public:
  ObjectChecker(size_t index, const DocumentContext& doc, std::vector<Diagnostic>* out)
      : index_(index), doc_(doc), out_(out) {}

  //! Checks `obj` (any JSON value). Returns true when no error was found and
  //! fills `result` (except json, which the caller sets).
  bool Check(simdjson::dom::element obj, Object* result);

  void CheckTearlineExtension(const std::string& path, simdjson::dom::object body);
  void Error(std::string path, std::string_view rule, std::string_view section, std::string msg);
  void Warn(std::string path, std::string_view rule, std::string_view section, std::string msg);

 private:
  void CheckProperty(const schema::Prop& prop, std::string_view path, simdjson::dom::element v);
  void CheckRef(std::string_view path, std::string_view ref, const std::vector<std::string_view>& allowed);
  void CheckTimestampValue(std::string_view path, simdjson::dom::element v);
  void CheckStringList(std::string_view path, simdjson::dom::element v);
  void CheckExternalReferences(std::string_view path, simdjson::dom::element v);
  void CheckKillChainPhases(std::string_view path, simdjson::dom::element v);
  void CheckGranularMarkings(std::string_view path, simdjson::dom::element v);
  void CheckHashes(std::string_view path, simdjson::dom::element v);
  void CheckDictionary(std::string_view path, simdjson::dom::element v);
  void CheckExtensions(std::string_view path, simdjson::dom::element v);
  void CheckMarkingRef(std::string_view path, std::string_view ref);
  void CheckSelectors(simdjson::dom::element obj);
  void CheckTypeRules(simdjson::dom::element obj);
  void CheckCommonTimes(simdjson::dom::element obj);
  void CheckOrder(simdjson::dom::element obj, std::string_view first, std::string_view second,
                  bool strict, std::string_view section);
  void CheckMarkingDefinition(simdjson::dom::element obj);
  void CheckPredefinedTlp(simdjson::dom::element obj);
  void CheckExtensionDefinition(simdjson::dom::element obj);
  void CheckLocation(simdjson::dom::element obj);
  void CheckIndicator(simdjson::dom::element obj);
  void CheckScoRules(simdjson::dom::element obj);
  void CheckAtLeastOne(simdjson::dom::element obj, std::initializer_list<std::string_view> names,
                       std::string_view section);

  size_t index_;
  const DocumentContext& doc_;
  std::vector<Diagnostic>* out_;
  std::string id_;
  std::string type_;
  std::string_view section_;  // the type's own spec section (static storage)
  const schema::TypeSpec* spec_ = nullptr;
  schema::Category category_ = schema::Category::kSdo;
  bool has_error_ = false;
};

}  // namespace tearline::stix
