// `tearline party ...` and `tearline warn ...` (private to src/cli): duty to warn.
#include "cli/warn_cmds.h"

#include <simdjson.h>

#include <cstdio>
#include <filesystem>

#include "cli/policy_cmds.h"
#include "policy/policy.h"
#include "stix/stix.h"
#include "store/store.h"
#include "warn/warn.h"

namespace tearline::cli {
namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "tearline: %s\n", msg.c_str());
  return 2;
}

Result<std::unique_ptr<store::Store>> Open(const std::string& db) {
  if (!std::filesystem::exists(db)) return Status::Io("database " + db + " does not exist");
  return store::OpenSqlite(db);
}

warn::Rules RulesOf(const WarnOptions& o) {
  warn::Rules r;
  r.min_confidence = o.min_confidence;
  r.two_person = o.two_person;
  r.public_collection = o.public_collection;
  return r;
}

std::string When(int64_t us) { return us ? stix::FormatMicros(us) : "-"; }

}  // namespace

int PartyAdd(const WarnOptions& o) {
  stix::IdParts parts;
  if (!stix::SplitId(o.identity, &parts) || parts.type != "identity" || stix::UuidVersion(parts.uuid) == 0) {
    return Fail("the party must be a STIX identity id (identity--<uuid>)");
  }
  if (o.url.rfind("http://", 0) != 0 && o.url.rfind("https://", 0) != 0) {
    return Fail("--url must be the party node's TAXII API root (http:// or https://)");
  }
  if (o.collection.empty()) return Fail("--collection: the id of the party's warning inbox collection");
  bool hex = o.key.size() == 64 && o.key.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex) return Fail("--key must be the party node's Ed25519 public key (64 lowercase hex digits)");
  if (o.matches.empty()) return Fail("give at least one --match (location:ID, country:CC, city:NAME, identity:ID, sector:NAME)");
  for (const auto& m : o.matches) {
    auto colon = m.find(':');
    std::string kind = colon == std::string::npos ? "" : m.substr(0, colon);
    if (kind != "location" && kind != "country" && kind != "city" && kind != "identity" && kind != "sector") {
      return Fail("--match " + m + ": expected location:ID, country:CC, city:NAME, identity:ID or sector:NAME");
    }
  }
  auto db = Open(o.db);
  if (!db.ok()) return Fail(db.status().message());
  store::Party p{o.identity, o.name.empty() ? o.identity : o.name, o.url, o.token, o.collection, o.key, o.matches};
  if (auto st = (*db)->PutParty(p); !st.ok()) return Fail(st.message());
  std::string m;
  for (const auto& x : o.matches) m += (m.empty() ? "" : ",") + x;
  if (!AuditChange(**db, o.db, "party", o.identity, "warning endpoint " + o.url + " collection " + o.collection + " matches " + m)) {
    return 2;
  }
  std::printf("party %s (%s): warnings to %scollections/%s/, matches %s\n", o.identity.c_str(), p.name.c_str(),
              o.url.c_str(), o.collection.c_str(), m.c_str());
  return 0;
}

int PartyList(const WarnOptions& o) {
  auto db = Open(o.db);
  if (!db.ok()) return Fail(db.status().message());
  auto list = (*db)->ListParties();
  if (!list.ok()) return Fail(list.status().message());
  for (const auto& p : *list) {
    std::string m;
    for (const auto& x : p.matches) m += (m.empty() ? "" : ",") + x;
    std::printf("%s  name=\"%s\"  endpoint=%scollections/%s/  matches=%s\n", p.identity.c_str(), p.name.c_str(),
                p.url.c_str(), p.collection.c_str(), m.c_str());
  }
  return 0;
}

int WarnScan(const WarnOptions& o) {
  auto db = Open(o.db);
  if (!db.ok()) return Fail(db.status().message());
  auto drafts = warn::Scan(**db, o.collection, RulesOf(o));
  if (!drafts.ok()) return Fail(drafts.status().message());
  for (const auto& d : *drafts) std::printf("draft %s\n", d.c_str());
  std::printf("%zu new warning drafts\n", drafts->size());
  return 0;
}

int WarnList(const WarnOptions& o) {
  auto db = Open(o.db);
  if (!db.ok()) return Fail(db.status().message());
  auto list = (*db)->ListWarnings();
  if (!list.ok()) return Fail(list.status().message());
  for (const auto& w : *list) {
    auto s = warn::Summarize(w);
    std::printf("%s  %-12s  party=%s  %s\n", w.id.c_str(), w.state.c_str(), w.party.c_str(), s.headline.c_str());
  }
  return 0;
}

int WarnShow(const WarnOptions& o) {
  auto db = Open(o.db);
  if (!db.ok()) return Fail(db.status().message());
  auto w = (*db)->GetWarning(o.id);
  if (!w.ok()) return Fail(w.status().message());
  auto s = warn::Summarize(*w);
  std::printf("warning %s\n  state: %s\n  party: %s\n  rule: %s\n  headline: %s\n  text: %s\n  instruction: %s\n",
              w->id.c_str(), w->state.c_str(), w->party.c_str(), w->rule.c_str(), s.headline.c_str(),
              s.description.c_str(), w->instruction.empty() ? "-" : w->instruction.c_str());
  std::printf("  objects (what the party would receive):\n%s\n", w->bundle.c_str());
  return 0;
}

int WarnDecide(const WarnOptions& o, const std::string& action) {
  auto db = Open(o.db);
  if (!db.ok()) return Fail(db.status().message());
  auto st = warn::Decide(**db, o.id, action, o.by, o.reason, o.instruction, RulesOf(o));
  if (!st.ok()) return Fail(st.message());
  std::string err;
  if (auto key = audit::LoadOrCreateKey(store::NodeKeyPath(o.db), &err)) (void)store::WriteCheckpoint(**db, *key);
  auto w = (*db)->GetWarning(o.id);
  std::printf("warning %s: %s\n", o.id.c_str(), w.ok() ? w->state.c_str() : action.c_str());
  return 0;
}

int WarnStatus(const WarnOptions& o) {
  auto db = Open(o.db);
  if (!db.ok()) return Fail(db.status().message());
  auto w = (*db)->GetWarning(o.id);
  if (!w.ok()) return Fail(w.status().message());
  std::printf("warning %s: %s\n", w->id.c_str(), w->state.c_str());
  simdjson::dom::parser p;
  simdjson::dom::element ev;
  if (!p.parse(w->events).get(ev)) {
    for (auto e : ev.get_array()) {
      std::string_view state, by, at, reason;
      if (e["state"].get(state) || e["by"].get(by) || e["at"].get(at) || e["reason"].get(reason)) continue;
      std::printf("  %-13s %s  by %s  %s\n", std::string(state).c_str(), std::string(at).c_str(),
                  std::string(by).c_str(), std::string(reason).c_str());
    }
  }
  std::printf("  delivered: %s\n  acknowledged: %s\n  published: %s\n", When(w->delivered_at).c_str(),
              When(w->ack_at).c_str(), When(w->published_at).c_str());
  if (!w->last_error.empty()) std::printf("  last delivery error (%lld attempts): %s\n", static_cast<long long>(w->attempts), w->last_error.c_str());
  return 0;
}

int WarnPublish(const WarnOptions& o) {
  auto db = Open(o.db);
  if (!db.ok()) return Fail(db.status().message());
  policy::Releaser releaser;
  auto st = warn::Publish(**db, releaser, o.id, o.by, RulesOf(o));
  if (!st.ok()) return Fail(st.message());
  std::string err;
  if (auto key = audit::LoadOrCreateKey(store::NodeKeyPath(o.db), &err)) (void)store::WriteCheckpoint(**db, *key);
  auto w = (*db)->GetWarning(o.id);
  if (w.ok()) std::printf("%s", w->cap.c_str());
  return 0;
}

}  // namespace tearline::cli
