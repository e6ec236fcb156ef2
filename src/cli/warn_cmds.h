// `tearline party|warn ...` (private to src/cli): duty to warn (src/warn).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tearline::cli {

struct WarnOptions {
  std::string db, id, identity, name, url, token, collection, key, by, reason, instruction;
  std::vector<std::string> matches;
  int64_t min_confidence = 50;
  bool two_person = false;
  std::string public_collection = "public";
};

int PartyAdd(const WarnOptions& o);
int PartyList(const WarnOptions& o);
int WarnScan(const WarnOptions& o);
int WarnList(const WarnOptions& o);
int WarnShow(const WarnOptions& o);
int WarnDecide(const WarnOptions& o, const std::string& action);
int WarnStatus(const WarnOptions& o);
int WarnPublish(const WarnOptions& o);

}  // namespace tearline::cli
