// `tearline partner|group|collection ...` (private to src/cli): the sharing model.
#pragma once

#include <string>
#include <vector>

namespace tearline::cli {

struct PolicyOptions {
  std::string db;
  std::string identity;                  //!< partner identity
  std::string name;                      //!< partner name / group name / collection
  std::string channel;
  std::vector<std::string> principals, groups;
  std::string partner, group, default_tlp;
};

int PartnerAdd(const PolicyOptions& o);
int PartnerList(const PolicyOptions& o);
int PartnerShow(const PolicyOptions& o);
int PartnerSetChannel(const PolicyOptions& o);
int PartnerRemove(const PolicyOptions& o);
int GroupMember(const PolicyOptions& o, bool add);
int GroupList(const PolicyOptions& o);
int CollectionShare(const PolicyOptions& o, bool share);

}  // namespace tearline::cli
