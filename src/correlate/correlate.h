// tearline correlation: what several partners saw.
//
// This is the public header of src/correlate. A correlation is recorded when
//  - the same observable (the same SCO id, which STIX makes deterministic) is
//    reported in observed-data created by two or more organisations, or
//  - the same indicator is sighted by two or more organisations (the sightings'
//    created_by_ref, else their where_sighted_refs).
// Each correlation becomes a STIX grouping (context "suspicious-activity") whose
// object_refs are the shared object and every contributing report; its id is
// derived from what is correlated, and its modified is the newest contribution,
// so running again over unchanged data stores nothing new (idempotent) and new
// contributions produce a new version. Groupings are stored in a collection and
// leave the node only through the Releaser like any object.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "store/store.h"

namespace tearline::correlate {

struct Correlation {
  std::string kind;                        //!< "observable" or "indicator"
  std::string shared_ref;                  //!< the SCO or indicator id
  std::vector<std::string> organisations;  //!< identity ids, sorted
  std::vector<std::string> reports;        //!< observed-data / sighting ids, sorted
  std::string first_seen, last_seen;       //!< modified of the oldest / newest contribution
  std::string grouping_json;               //!< the STIX grouping that records it
};

//! Finds correlations among the objects of `collection` (latest versions).
Result<std::vector<Correlation>> Find(store::Store& store, const std::string& collection);

//! Stores the groupings of `found` in `into` (created if missing). Returns how many were new.
Result<size_t> Record(store::Store& store, const std::string& into, const std::vector<Correlation>& found);

}  // namespace tearline::correlate
