// tearline STIX 2.1: parse documents, validate every object, produce storable objects.
//
// This is the public header of src/stix. Everything that enters a node passes
// through Validator::Validate: it reads a bundle, a TAXII envelope, a single
// object or JSON lines, checks every MUST of STIX 2.1 that can be checked on
// one object or one document, and returns the valid objects in compact JSON
// plus one Diagnostic per problem. Invalid objects are never returned, so
// nothing invalid can be stored (DESIGN.md invariant 1).
//
// Threads: a Validator holds a simdjson parser and is not thread safe; use one
// per thread. The free functions are thread safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "stix/id.h"
#include "common/timestamp.h"

namespace tearline::stix {

// Timestamps (§2.15) live in common/ because the pattern language uses them too.
using tearline::CompareTimestamps;
using tearline::FormatMicros;
using tearline::NowMicros;
using tearline::ParseTimestamp;
using tearline::Timestamp;
using tearline::ToMicros;
using tearline::VersionKey;

//! tearline's own property-extension (docs/extension.md); checked on ingest like any STIX rule.
inline constexpr std::string_view kTearlineExtensionId = "extension-definition--5d8a3c1e-7b2f-4c6a-9e41-0f3b8d27a6c5";

//! Bounds on input (DESIGN.md invariant 7). Exceeding one is an error, never a crash.
struct Limits {
  size_t max_document_bytes = size_t{1} << 30;  //!< one input document (1 GiB)
  size_t max_object_bytes = size_t{8} << 20;    //!< one STIX object in compact form (8 MiB)
  size_t max_depth = 64;                        //!< JSON nesting depth
  size_t max_objects = 5'000'000;               //!< objects in one document
};

enum class Severity { kError, kWarning };

//! One finding. Every error names the object (position and id), the property
//! path, the rule broken and the section of the specification.
struct Diagnostic {
  static constexpr size_t kDocument = static_cast<size_t>(-1);  //!< index for document-level findings

  Severity severity = Severity::kError;
  size_t index = kDocument;  //!< position of the object in the input, 0-based
  std::string object_id;     //!< id of the object, when it has a usable one
  std::string path;          //!< property path, e.g. "external_references[2].url"
  std::string rule;          //!< short stable rule id, e.g. "timestamp-format"
  std::string section;       //!< e.g. "STIX 2.1 §2.15 Timestamp"
  std::string message;       //!< what is wrong, for a human

  //! "error: object 3 (indicator--…): external_references[2].url: <message> [rule; section]"
  std::string ToString() const;
};

//! A valid object, ready to store.
struct Object {
  size_t index = 0;          //!< position in the input
  std::string type;
  std::string id;
  std::string spec_version;  //!< "2.1" (also for SCOs that omit it)
  std::string modified;      //!< as given; empty when the object has none
  std::string version;       //!< sortable version key (VersionKey of modified, else of created, else "")
  bool revoked = false;
  std::string json;          //!< compact JSON, members and values as given
};

//! What was found in one document.
struct ValidationResult {
  std::vector<Object> objects;           //!< the valid objects, input order
  std::vector<Diagnostic> diagnostics;   //!< errors and warnings, input order
  size_t total = 0;                      //!< objects seen in the document
  size_t rejected = 0;                   //!< objects with at least one error
  bool document_error = false;           //!< the document as a whole was unreadable

  size_t error_count() const;
  size_t warning_count() const;
  bool ok() const { return !document_error && rejected == 0; }
};

enum class Form {
  kAuto,       //!< a bundle, a TAXII envelope or one object, told apart by content
  kJsonLines,  //!< one object (or bundle) per line
};

//! Answers whether a marking-definition id that is not in the document exists
//! elsewhere (e.g. already stored). Predefined TLP markings are always known.
using MarkingLookup = std::function<bool(std::string_view id)>;

class Validator {
 public:
  explicit Validator(Limits limits = {});
  ~Validator();
  Validator(const Validator&) = delete;
  Validator& operator=(const Validator&) = delete;

  //! Optional: resolves marking references outside the document.
  void set_marking_lookup(MarkingLookup lookup) { marking_lookup_ = std::move(lookup); }

  //! Parses and validates a whole document. Never throws on bad input; a
  //! document that cannot be read yields document_error and no objects.
  ValidationResult Validate(std::string_view bytes, Form form = Form::kAuto);

  //! Same, but when `bytes` has kPadding spare capacity (reserve it before
  //! filling) the input is parsed in place instead of copied.
  ValidationResult Validate(const std::string& bytes, Form form = Form::kAuto);
  static constexpr size_t kPadding = 64;

  ValidationResult Validate(const char* bytes, Form form = Form::kAuto) {
    return Validate(std::string_view(bytes), form);
  }

 private:
  class Impl;
  Limits limits_;
  MarkingLookup marking_lookup_;
  std::unique_ptr<Impl> impl_;
};

//! True if `id` is one of the predefined TLP 1.0 (STIX 2.1 §7.2.1.4) or the
//! OASIS TLP 2.0 marking-definition ids.
bool IsWellKnownMarking(std::string_view id);

//! True if `type` is an SCO type defined by STIX 2.1 §6.
bool IsScoType(std::string_view type);
//! True if `type` is an SDO type defined by STIX 2.1 §4.
bool IsSdoType(std::string_view type);

//! RFC 8785 canonical form of a JSON text; empty string if it does not parse.
std::string CanonicalJson(std::string_view json_text);
//! The same, appended to `out` (false, nothing appended, if it does not parse). Uses a
//! parser kept per thread: no allocation once it has grown.
bool CanonicalJsonInto(std::string& out, std::string_view json_text);

//! Appends `s` as a JSON string literal (quotes and minimal escapes).
void AppendJsonString(std::string& out, std::string_view s);

//! Semantic equality of two JSON texts (member order ignored).
bool JsonEqual(std::string_view a, std::string_view b);

//! The object reduced to what sharing decisions read (compact JSON): type, id, spec_version,
//! created, modified, revoked, object_marking_refs, granular_markings, tearline's extension,
//! and every top-level property that holds a *_ref / *_refs at any depth. Stored with each
//! version so manifests can be decided without the whole object.
std::string PolicyView(std::string_view json);

//! True when `property` is required on objects of `type` (common or type-specific,
//! STIX 2.1 catalogue); false for custom types' own properties.
bool IsRequiredProperty(std::string_view type, std::string_view property);

}  // namespace tearline::stix
