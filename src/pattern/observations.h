// Private to src/pattern: the evaluator's view of observed-data.
#pragma once

#include <simdjson.h>

#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/timestamp.h"
#include "pattern/pattern.h"

namespace tearline::pattern {

struct Observation {
  std::string_view id;  // the observed-data id
  Timestamp first, last;
  int64_t first_us = 0, last_us = 0;  // microseconds, for WITHIN arithmetic
  int64_t count = 1;                   // number_observed
  std::vector<simdjson::dom::element> roots;  // the SCOs this observation reports
  //! Resolves a reference: an id (object_refs form) or an index key (embedded form).
  const std::unordered_map<std::string_view, simdjson::dom::element>* refs = nullptr;
};

struct Observations::Impl {
  simdjson::dom::parser parser;
  std::unordered_map<std::string_view, simdjson::dom::element> by_id;  // every object of the input
  std::vector<std::unordered_map<std::string_view, simdjson::dom::element>> embedded;  // per observation
  std::vector<Observation> list;
};

}  // namespace tearline::pattern
