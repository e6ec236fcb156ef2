// `tearline partner|group|collection ...` (private to src/cli): the sharing model.
#pragma once

#include <string>
#include <vector>

#include "store/store.h"

namespace tearline::cli {

struct PolicyOptions {
  std::string db;
  std::string identity;                  //!< partner identity
  std::string name;                      //!< partner name / group name / collection
  std::string channel;
  std::vector<std::string> principals, groups;
  std::string partner, group, default_tlp;
  int tier = -1;                         //!< partner add: -1 keeps the current tier (0 for new partners)
  std::string description;               //!< group add
  // federation
  std::string url, token, push_collection, key, since;
  std::vector<std::string> pull;
};

//! Records an operator's change in the audit log (who: "cli:<user>") and signs a
//! checkpoint with the node key, as every short-lived command does before it exits.
//! Returns false (after printing why) when the change could not be audited.
bool AuditChange(store::Store& db, const std::string& db_path, const std::string& kind,
                 const std::string& subject, const std::string& what);

int PartnerAdd(const PolicyOptions& o);
int PartnerList(const PolicyOptions& o);
int PartnerShow(const PolicyOptions& o);
int PartnerSetChannel(const PolicyOptions& o);
int PartnerRemove(const PolicyOptions& o);
int GroupMember(const PolicyOptions& o, bool add);
int GroupAdd(const PolicyOptions& o);
int PartnerSetPeer(const PolicyOptions& o);
int PartnerTrustKey(const PolicyOptions& o);
int PartnerResend(const PolicyOptions& o);
int PeerStatus(const PolicyOptions& o);
int GroupRemove(const PolicyOptions& o);
int GroupList(const PolicyOptions& o);
int CollectionShare(const PolicyOptions& o, bool share);

}  // namespace tearline::cli
