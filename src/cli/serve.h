// `tearline serve`, `tearline config check`, `tearline principal ...` (private to src/cli).
#pragma once

#include <string>
#include <vector>

namespace tearline::cli {

int Serve(const std::string& config_path);
int ConfigCheck(const std::string& config_path);

struct PrincipalOptions {
  std::string db;
  std::string name;
  std::vector<std::string> read, write;
  bool password_stdin = false;
  std::string identity;  //!< the person (STIX identity id) the principal is
};
int PrincipalAdd(const PrincipalOptions& o);
int PrincipalList(const PrincipalOptions& o);
int PrincipalRemove(const PrincipalOptions& o);
int PrincipalToken(const PrincipalOptions& o);

}  // namespace tearline::cli
