// JSON helpers shared by the STIX subsystem (private to src/stix and its tests).
//
// Parsing is simdjson's DOM parser with a depth bound; on top of it we enforce
// the I-JSON rules (RFC 7493) that simdjson does not: no duplicate member
// names. Errors carry the RFC section they break.
#pragma once

#include <simdjson.h>

#include <string>
#include <string_view>

namespace tearline::stix::json {

struct Error {
  std::string message;  //!< what is wrong, human readable
  std::string section;  //!< e.g. "RFC 8259 §8.1"
  std::string rule;     //!< short rule id, e.g. "json-utf8"
};

//! Parses `text` into `out` (borrowing parser's buffers). Returns false and
//! fills `err` when the text is not one well-formed JSON value, is not UTF-8,
//! or nests deeper than the parser's max depth.
//! `padded` promises SIMDJSON_PADDING readable bytes after the text, which
//! saves a copy of the whole input.
bool Parse(simdjson::dom::parser& parser, std::string_view text, simdjson::dom::element* out,
           Error* err, bool padded = false);

//! Finds the first object (depth first) that has the same member name twice.
//! Returns the JSON path of that object and the name, or false when none.
bool FindDuplicateKey(simdjson::dom::element e, std::string* path, std::string* name);

//! Compact JSON of `e`, members in the order given.
std::string Compact(simdjson::dom::element e);

//! RFC 8785 (JCS) canonical form of `e`: members sorted by UTF-16 code units,
//! numbers in ECMAScript form, minimal string escapes.
std::string Canonical(simdjson::dom::element e);
//! The same, appended to `out`.
void CanonicalInto(std::string& out, simdjson::dom::element e);

//! Semantic equality: same members (any order) with equal values; numbers
//! compare by value.
bool Equal(simdjson::dom::element a, simdjson::dom::element b);

//! Appends `s` to `out` as a JSON string literal (quotes included).
void AppendQuoted(std::string& out, std::string_view s);

}  // namespace tearline::stix::json
