// Store-backed matching (private to src/taxii): observed-data posted to a watched
// collection is matched against the indicators of another collection as it arrives.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "pattern/pattern.h"
#include "stix/stix.h"
#include "taxii/taxii.h"

namespace tearline::taxii {

class Watcher {
 public:
  Watcher(const Config& config, store::Store& store)
      : config_(config), store_(store), stream_(pattern::MatchStream::Options{config.match_window_seconds, config.match_max_kept}) {}

  //! Whether objects posted to collection `name` are matched.
  bool Watches(const std::string& name) const { return name == config_.match_watch; }

  //! Matches the observed-data among `posted` (with the SCOs posted beside them)
  //! and stores the sightings. Returns how many sightings were stored.
  Result<size_t> OnPosted(const std::vector<stix::Object>& posted);

 private:
  Status Refresh();  // rebuilds the matcher when the indicator collection changed

  const Config& config_;
  store::Store& store_;
  std::mutex mu_;
  pattern::Matcher matcher_;
  //! Multi-observation patterns also combine observations of earlier POSTs (bounded;
  //! [matching] window_seconds, max_kept). Kept across reloads of the indicators.
  pattern::MatchStream stream_;
  int64_t indicators_seen_ = -1;  // newest date_added loaded
};

}  // namespace tearline::taxii
