#include "cli/policy_cmds.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <cstdlib>
#include <pwd.h>
#include <unistd.h>

#include "policy/policy.h"
#include "stix/stix.h"
#include "store/store.h"

namespace tearline::cli {
namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "tearline: %s\n", msg.c_str());
  return 2;
}

Result<std::unique_ptr<store::Store>> Open(const std::string& db, bool create) {
  if (!create && !std::filesystem::exists(db)) return Status::Io("database " + db + " does not exist");
  return store::OpenSqlite(db);
}

bool ValidIdentity(const std::string& id) {
  stix::IdParts p;
  return stix::SplitId(id, &p) && p.type == "identity" && stix::UuidVersion(p.uuid) != 0;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

void Print(const store::Partner& p) {
  std::printf("%s  name=\"%s\"  channel=%s  tier=%d  principals=%s  groups=%s\n", p.identity.c_str(), p.name.c_str(),
              p.channel.c_str(), p.tier, Join(p.principals).c_str(), Join(p.groups).c_str());
}

std::string Operator() {
  const char* u = std::getenv("USER");
  if (u && *u) return std::string("cli:") + u;
  struct passwd* pw = getpwuid(getuid());
  return std::string("cli:") + (pw ? pw->pw_name : std::to_string(getuid()));
}

// Groups named must exist (a typo must not create a group nobody shares with).
bool GroupsExist(store::Store& db, const std::vector<std::string>& names, std::string* missing) {
  auto groups = db.ListGroups();
  if (!groups.ok()) {
    *missing = groups.status().message();
    return false;
  }
  for (const auto& n : names) {
    bool found = std::any_of(groups->begin(), groups->end(), [&](const store::Group& g) { return g.name == n; });
    if (!found) {
      *missing = "no trust group \"" + n + "\": create it with `tearline group add " + n + "`";
      return false;
    }
  }
  return true;
}

}  // namespace

bool AuditChange(store::Store& db, const std::string& db_path, const std::string& kind, const std::string& subject,
                 const std::string& what) {
  std::vector<audit::Entry> e;
  e.push_back({0, stix::NowMicros(), Operator(), subject, "", kind, what, "", ""});
  if (auto st = db.AppendAudit(std::move(e)); !st.ok()) {
    std::fprintf(stderr, "tearline: the change was made but could not be audited: %s\n", st.message().c_str());
    return false;
  }
  std::string err;
  auto key = audit::LoadOrCreateKey(store::NodeKeyPath(db_path), &err);
  if (!key) {
    std::fprintf(stderr, "tearline: no audit checkpoint: %s\n", err.c_str());
    return false;
  }
  if (auto cp = store::WriteCheckpoint(db, *key); !cp.ok()) {
    std::fprintf(stderr, "tearline: no audit checkpoint: %s\n", cp.status().message().c_str());
    return false;
  }
  return true;
}

int PartnerAdd(const PolicyOptions& o) {
  if (!ValidIdentity(o.identity)) return Fail("the partner must be a STIX identity id (identity--<uuid>)");
  std::string channel = o.channel.empty() ? "open" : o.channel;
  if (!policy::ParseChannel(channel)) return Fail("--channel must be open, restricted, suspended or closed");
  if (o.tier < -1 || o.tier > 1000) return Fail("--tier must be 0..1000");
  auto db = Open(o.db, true);
  if (!db.ok()) return Fail(db.status().message());
  std::string missing;
  if (!GroupsExist(**db, o.groups, &missing)) return Fail(missing);
  auto before = (*db)->GetPartner(o.identity);
  int tier = o.tier >= 0 ? o.tier : before.ok() ? before->tier : 0;
  store::Partner p{o.identity, o.name.empty() ? o.identity : o.name, channel, o.principals, o.groups, tier};
  if (auto st = (*db)->PutPartner(p); !st.ok()) return Fail(st.message());
  std::string what = std::string(before.ok() ? "updated" : "added") + ": name=" + p.name + " channel=" + p.channel +
                     " tier=" + std::to_string(p.tier) + " principals=" + Join(p.principals) + " groups=" + Join(p.groups);
  if (!AuditChange(**db, o.db, "partner", o.identity, what)) return 2;
  Print(p);
  return 0;
}

int PartnerList(const PolicyOptions& o) {
  auto db = Open(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  auto list = (*db)->ListPartners();
  if (!list.ok()) return Fail(list.status().message());
  for (const auto& p : *list) Print(p);
  return 0;
}

int PartnerShow(const PolicyOptions& o) {
  auto db = Open(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  auto p = (*db)->GetPartner(o.identity);
  if (!p.ok()) return Fail(p.status().message());
  Print(*p);
  auto colls = (*db)->ListCollections();
  if (colls.ok()) {
    for (const auto& c : *colls) {
      auto a = (*db)->GetAudience(c.name);
      if (!a.ok()) continue;
      bool named = std::count(a->partners.begin(), a->partners.end(), p->identity) > 0;
      bool grouped = std::any_of(p->groups.begin(), p->groups.end(), [&](const std::string& g) {
        return std::count(a->groups.begin(), a->groups.end(), g) > 0;
      });
      if (named || grouped) {
        std::printf("  collection %s (%s%s), default TLP %s\n", c.name.c_str(), named ? "named" : "",
                    named && grouped ? ", via group" : grouped ? "via group" : "", a->default_tlp.c_str());
      }
    }
  }
  return 0;
}

int PartnerSetChannel(const PolicyOptions& o) {
  if (!policy::ParseChannel(o.channel)) return Fail("the channel must be open, restricted, suspended or closed");
  auto db = Open(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  auto p = (*db)->GetPartner(o.identity);
  if (!p.ok()) return Fail(p.status().message());
  std::string before = p->channel;
  p->channel = o.channel;
  if (auto st = (*db)->PutPartner(*p); !st.ok()) return Fail(st.message());
  if (!AuditChange(**db, o.db, "channel", o.identity, before + " -> " + o.channel)) return 2;
  std::printf("%s: channel %s -> %s (applies to the next request)\n", o.identity.c_str(), before.c_str(), o.channel.c_str());
  return 0;
}

int PartnerRemove(const PolicyOptions& o) {
  auto db = Open(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  if (auto st = (*db)->RemovePartner(o.identity); !st.ok()) return Fail(st.message());
  if (!AuditChange(**db, o.db, "partner", o.identity, "removed")) return 2;
  std::printf("partner %s removed\n", o.identity.c_str());
  return 0;
}

int GroupMember(const PolicyOptions& o, bool add) {
  auto db = Open(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  auto p = (*db)->GetPartner(o.identity);
  if (!p.ok()) return Fail(p.status().message());
  std::string missing;
  if (add && !GroupsExist(**db, {o.name}, &missing)) return Fail(missing);
  auto& g = p->groups;
  bool present = std::count(g.begin(), g.end(), o.name) > 0;
  if (add && !present) g.push_back(o.name);
  if (!add && !present) return Fail(o.identity + " is not a member of " + o.name);
  if (!add) g.erase(std::remove(g.begin(), g.end(), o.name), g.end());
  if (auto st = (*db)->PutPartner(*p); !st.ok()) return Fail(st.message());
  if (!AuditChange(**db, o.db, "group", o.identity, std::string(add ? "joined " : "left ") + o.name)) return 2;
  std::printf("group %s: %s %s\n", o.name.c_str(), add ? "added" : "removed", o.identity.c_str());
  return 0;
}

int GroupList(const PolicyOptions& o) {
  auto db = Open(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  auto list = (*db)->ListPartners();
  if (!list.ok()) return Fail(list.status().message());
  std::map<std::string, std::set<std::string>> groups;
  if (auto all = (*db)->ListGroups(); all.ok()) {
    for (const auto& g : *all) groups[g.name];
  }
  for (const auto& p : *list) {
    for (const auto& g : p.groups) groups[g].insert(p.identity);
  }
  for (const auto& [g, members] : groups) {
    std::printf("%s:", g.c_str());
    for (const auto& m : members) std::printf(" %s", m.c_str());
    std::printf("\n");
  }
  return 0;
}

int GroupAdd(const PolicyOptions& o) {
  if (o.name.empty() || o.name.size() > 100 || o.name.find_first_of(",\n") != std::string::npos) {
    return Fail("a group name is 1-100 characters, without commas or newlines");
  }
  auto db = Open(o.db, true);
  if (!db.ok()) return Fail(db.status().message());
  if (auto st = (*db)->PutGroup({o.name, o.description}); !st.ok()) return Fail(st.message());
  if (!AuditChange(**db, o.db, "group", o.name, "created: " + o.description)) return 2;
  std::printf("group %s created\n", o.name.c_str());
  return 0;
}

int GroupRemove(const PolicyOptions& o) {
  auto db = Open(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  // A group still in use is not removed silently: members and audiences would change meaning.
  std::vector<std::string> uses;
  if (auto partners = (*db)->ListPartners(); partners.ok()) {
    for (const auto& p : *partners) {
      if (std::count(p.groups.begin(), p.groups.end(), o.name)) uses.push_back("member " + p.identity);
    }
  }
  if (auto colls = (*db)->ListCollections(); colls.ok()) {
    for (const auto& c : *colls) {
      auto a = (*db)->GetAudience(c.name);
      if (a.ok() && std::count(a->groups.begin(), a->groups.end(), o.name)) uses.push_back("collection " + c.name);
    }
  }
  if (!uses.empty()) return Fail("group " + o.name + " is still in use (" + Join(uses) + "); remove those first");
  if (auto st = (*db)->RemoveGroup(o.name); !st.ok()) return Fail(st.message());
  if (!AuditChange(**db, o.db, "group", o.name, "removed")) return 2;
  std::printf("group %s removed\n", o.name.c_str());
  return 0;
}

int PartnerSetPeer(const PolicyOptions& o) {
  if (o.url.rfind("http://", 0) != 0 && o.url.rfind("https://", 0) != 0) {
    return Fail("--url must be the partner node's TAXII API root (http:// or https://)");
  }
  for (const auto& p : o.pull) {
    auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == p.size()) {
      return Fail("--pull takes REMOTE_COLLECTION_ID=LOCAL_COLLECTION, not \"" + p + "\"");
    }
  }
  auto db = Open(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  if (auto p = (*db)->GetPartner(o.identity); !p.ok()) return Fail(p.status().message() + " (add the partner first)");
  store::Peer peer;
  if (auto old = (*db)->GetPeer(o.identity); old.ok()) peer = *old;
  peer.identity = o.identity;
  peer.url = o.url;
  if (!o.token.empty()) peer.token = o.token;
  peer.push_collection = o.push_collection;
  peer.pull = o.pull;
  if (auto st = (*db)->PutPeer(peer); !st.ok()) return Fail(st.message());
  if (!AuditChange(**db, o.db, "peer", o.identity,
                   "node at " + peer.url + " push=" + peer.push_collection + " pull=" + Join(peer.pull))) {
    return 2;
  }
  std::printf("%s: node %s, push to %s, pull %s%s\n", o.identity.c_str(), peer.url.c_str(),
              peer.push_collection.empty() ? "(none)" : peer.push_collection.c_str(), Join(peer.pull).c_str(),
              peer.public_key.empty() ? "; trust its key with `tearline partner trust-key`" : "");
  return 0;
}

int PartnerTrustKey(const PolicyOptions& o) {
  bool hex = o.key.size() == 64 && o.key.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex) return Fail("KEY must be the partner node's Ed25519 public key: 64 lowercase hex digits (`tearline node key`)");
  auto db = Open(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  auto peer = (*db)->GetPeer(o.identity);
  if (!peer.ok()) return Fail(peer.status().message() + " (run `tearline partner set-peer` first)");
  std::string before = peer->public_key;
  peer->public_key = o.key;
  if (auto st = (*db)->PutPeer(*peer); !st.ok()) return Fail(st.message());
  if (!AuditChange(**db, o.db, "peer", o.identity, "trusted key " + o.key + (before.empty() ? "" : " (was " + before + ")"))) {
    return 2;
  }
  std::printf("%s: node key %s trusted\n", o.identity.c_str(), o.key.c_str());
  return 0;
}

int PartnerResend(const PolicyOptions& o) {
  auto ts = stix::ParseTimestamp(o.since);
  if (!ts) return Fail("--since must be an RFC 3339 timestamp like 2026-12-01T00:00:00Z");
  auto db = Open(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  if (auto p = (*db)->GetPeer(o.identity); !p.ok()) return Fail(p.status().message());
  auto n = (*db)->Requeue(o.identity, stix::ToMicros(*ts));
  if (!n.ok()) return Fail(n.status().message());
  if (!AuditChange(**db, o.db, "resend", o.identity,
                   std::to_string(*n) + " withheld or failed deliveries since " + o.since + " queued again")) {
    return 2;
  }
  std::printf("%lld deliveries queued again for %s (the sharing rules decide again when they are sent)\n",
              static_cast<long long>(*n), o.identity.c_str());
  return 0;
}

int PeerStatus(const PolicyOptions& o) {
  auto db = Open(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  auto peers = (*db)->ListPeers();
  if (!peers.ok()) return Fail(peers.status().message());
  if (peers->empty()) std::printf("no partner nodes (tearline partner set-peer)\n");
  int64_t now = stix::NowMicros();
  for (const auto& p : *peers) {
    auto partner = (*db)->GetPartner(p.identity);
    int64_t oldest = 0;
    auto depth = (*db)->OutboxDepth(p.identity, &oldest);
    if (!depth.ok()) return Fail(depth.status().message());
    auto count = [&](const char* s) {
      auto it = depth->find(s);
      return it == depth->end() ? int64_t{0} : it->second;
    };
    std::printf("%s (%s)\n  channel %s; node %s; key %s\n  last contact %s\n", p.identity.c_str(),
                partner.ok() ? partner->name.c_str() : "no partner record", partner.ok() ? partner->channel.c_str() : "-",
                p.url.c_str(), p.public_key.empty() ? "NOT TRUSTED" : (p.public_key.substr(0, 16) + "...").c_str(),
                p.last_contact ? stix::FormatMicros(p.last_contact).c_str() : "never");
    std::printf("  outbox: %lld pending, %lld sent, %lld withheld, %lld failed; lag %s\n",
                static_cast<long long>(count("pending")), static_cast<long long>(count("sent")),
                static_cast<long long>(count("withheld")), static_cast<long long>(count("failed")),
                oldest ? (std::to_string((now - oldest) / 1000) + " ms").c_str() : "none");
    std::printf("  errors: %s\n", p.last_error.empty() ? "none" : p.last_error.c_str());
  }
  return 0;
}

int CollectionShare(const PolicyOptions& o, bool share) {
  if (o.partner.empty() == o.group.empty() && o.default_tlp.empty()) {
    return Fail("give --partner IDENTITY or --group NAME (or --default-tlp)");
  }
  if (!o.default_tlp.empty() && !policy::ParseTlp(o.default_tlp)) {
    return Fail("--default-tlp must be clear, green, amber, amber+strict or red");
  }
  if (!o.partner.empty() && !ValidIdentity(o.partner)) return Fail("--partner must be an identity id");
  auto db = Open(o.db, false);
  if (!db.ok()) return Fail(db.status().message());
  if (auto c = (*db)->GetCollection(o.name); !c.ok()) return Fail(c.status().message());
  auto a = (*db)->GetAudience(o.name);
  if (!a.ok()) return Fail(a.status().message());
  auto apply = [&](std::vector<std::string>& list, const std::string& x) {
    if (x.empty()) return;
    list.erase(std::remove(list.begin(), list.end(), x), list.end());
    if (share) list.push_back(x);
  };
  apply(a->partners, o.partner);
  apply(a->groups, o.group);
  if (!o.default_tlp.empty()) a->default_tlp = o.default_tlp;
  if (!o.group.empty() && share) {
    std::string missing;
    if (!GroupsExist(**db, {o.group}, &missing)) return Fail(missing);
  }
  if (auto st = (*db)->PutAudience(*a); !st.ok()) return Fail(st.message());
  if (!AuditChange(**db, o.db, "audience", o.name,
                   "partners=" + Join(a->partners) + " groups=" + Join(a->groups) + " default_tlp=" + a->default_tlp)) {
    return 2;
  }
  std::printf("collection %s: partners=%s groups=%s default TLP %s\n", o.name.c_str(), Join(a->partners).c_str(),
              Join(a->groups).c_str(), a->default_tlp.c_str());
  return 0;
}

}  // namespace tearline::cli
