#include "warn/warn.h"

#include <simdjson.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>

#include "stix/stix.h"

namespace tearline::warn {
namespace {

constexpr std::string_view kTlpAmber1 = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";
constexpr std::string_view kTlpWhite1 = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";

std::string Q(std::string_view s) {
  std::string out;
  stix::AppendJsonString(out, s);
  return out;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Appends one decision to the warning's record.
void AddEvent(store::Warning& w, std::string_view state, std::string_view who, std::string_view reason) {
  std::string e = "{\"state\":" + Q(state) + ",\"by\":" + Q(who) + ",\"at\":" + Q(stix::FormatMicros(stix::NowMicros())) +
                  ",\"reason\":" + Q(reason) + "}";
  if (w.events.empty() || w.events == "[]") w.events = "[" + e + "]";
  else w.events = w.events.substr(0, w.events.size() - 1) + "," + e + "]";
}

Status Audit(store::Store& store, std::string_view who, std::string_view subject, std::string_view kind,
             std::string_view reason) {
  std::vector<audit::Entry> e;
  e.push_back({0, stix::NowMicros(), std::string(who), std::string(subject), "", std::string(kind), std::string(reason), "", ""});
  return store.AppendAudit(std::move(e));
}

// Warning records change from two threads of a node (delivery worker, receipt of an
// acknowledgement): each read-modify-write happens under this lock, on a fresh read.
std::mutex& RecordLock() {
  static std::mutex m;
  return m;
}

std::string Str(simdjson::dom::element e, const char* key) {
  std::string_view v;
  return e[key].get(v) ? std::string() : std::string(v);
}

int64_t Confidence(simdjson::dom::element e) {
  int64_t c = 0;
  return e["confidence"].get(c) ? 0 : c;
}

bool Matches(const store::Party& p, simdjson::dom::element target, std::string* which) {
  std::string id = Str(target, "id"), country = Lower(Str(target, "country")), city = Lower(Str(target, "city"));
  std::vector<std::string> sectors;
  simdjson::dom::array a;
  if (!target["sectors"].get(a)) {
    for (auto x : a) {
      std::string_view s;
      if (!x.get(s)) sectors.push_back(Lower(std::string(s)));
    }
  }
  for (const auto& m : p.matches) {
    auto colon = m.find(':');
    if (colon == std::string::npos) continue;
    std::string kind = m.substr(0, colon), value = m.substr(colon + 1);
    bool hit = ((kind == "location" || kind == "identity") && value == id) ||
               (kind == "country" && !country.empty() && Lower(value) == country) ||
               (kind == "city" && !city.empty() && Lower(value) == city) ||
               (kind == "sector" && std::count(sectors.begin(), sectors.end(), Lower(value)) > 0);
    if (hit) {
      *which = m;
      return true;
    }
  }
  return false;
}

std::string XmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

// CAP 1.2 §3.3.2 DateTime: "2002-05-24T16:49:00-07:00", no fractional seconds, no "Z".
std::string CapTime(int64_t us) {
  std::string t = stix::FormatMicros(us);  // 2026-03-01T12:00:00.000000Z
  return t.substr(0, 19) + "+00:00";
}

std::string UuidOf(std::string_view stix_id) {
  auto p = stix_id.find("--");
  return p == std::string_view::npos ? std::string(stix_id) : std::string(stix_id.substr(p + 2));
}

}  // namespace

Result<std::vector<std::string>> Scan(store::Store& store, std::string_view collection, const Rules& rules) {
  std::vector<std::string> created;
  auto parties = store.ListParties();
  if (!parties.ok()) return parties.status();
  if (parties->empty()) return created;  // nothing to match yet: keep the position for later
  auto coll = store.GetCollection(collection);
  if (!coll.ok()) return coll.status();
  std::string pos_key = "warn_scan:" + coll->name;
  auto pos = store.GetMeta(pos_key);
  if (!pos.ok()) return pos.status();
  auto node = store.NodeIdentity();
  if (!node.ok()) return node.status();
  // Existing warnings are read only when a relationship qualifies (Scan runs after every ingest).
  std::optional<std::vector<store::Warning>> existing;

  store::Query q;
  q.collection = coll->name;
  q.types = {"relationship"};
  q.limit = 1000;
  if (!pos->empty()) q.added_after = std::atoll(pos->c_str());
  int64_t last = q.added_after.value_or(0);
  simdjson::dom::parser p1, p2, p3;
  while (true) {
    auto page = store.Query(q);
    if (!page.ok()) return page.status();
    for (const auto& rel : page->objects) {
      last = std::max(last, rel.date_added);
      simdjson::dom::element r;
      if (p1.parse(rel.json).get(r) || Str(r, "relationship_type") != "targets") continue;
      std::string src = Str(r, "source_ref"), dst = Str(r, "target_ref");
      auto objs = store.Latest(coll->name, {src, dst});
      if (!objs.ok()) return objs.status();
      const store::StoredObject *so = nullptr, *to = nullptr;
      for (const auto& o : *objs) {
        if (o.id == src) so = &o;
        if (o.id == dst) to = &o;
      }
      if (!so || !to) continue;
      if (std::find(rules.source_types.begin(), rules.source_types.end(), so->type) == rules.source_types.end()) continue;
      if (to->type != "location" && to->type != "identity") continue;
      simdjson::dom::element s, t;
      if (p2.parse(so->json).get(s) || p3.parse(to->json).get(t)) continue;
      int64_t confidence = std::max(Confidence(s), Confidence(r));
      if (confidence < rules.min_confidence) continue;
      for (const auto& party : *parties) {
        std::string which;
        if (!Matches(party, t, &which)) continue;
        if (!existing) {
          auto all = store.ListWarnings();
          if (!all.ok()) return all.status();
          existing = std::move(*all);
        }
        bool drafted = std::any_of(existing->begin(), existing->end(), [&](const store::Warning& w) {
          return w.party == party.identity && w.source_id == src;
        });
        if (drafted) continue;
        // The draft: sanitized copies only (tear-line variants; anything else the objects
        // refer to is left out), and a report that names nothing else.
        auto resolve = [&](std::string_view id) {
          return id == src || id == dst ? policy::RefForm::kVariant : policy::RefForm::kWithheld;
        };
        policy::Decision variant{policy::Outcome::kReleaseVariant, "warning draft", {}, {}};
        policy::Decision as_is{policy::Outcome::kRelease, "warning draft", {}, {}};
        bool v1, v2, v3;
        auto sv = policy::Render(so->json, variant, *node, resolve, &v1);
        auto tv = policy::Render(to->json, variant, *node, resolve, &v2);
        auto rv = policy::Render(rel.json, as_is, *node, resolve, &v3);
        if (!sv || !tv || !rv) continue;
        simdjson::dom::parser vp;
        simdjson::dom::element se;
        if (vp.parse(*sv).get(se)) continue;
        std::string what = Str(se, "name").empty() ? so->type : Str(se, "name");
        std::string place = Str(t, "name").empty() ? dst : Str(t, "name");
        std::string description = Str(se, "description");
        std::string now = stix::FormatMicros(stix::NowMicros());
        std::string report_id = "report--" + stix::NewUuid4();
        std::string report =
            "{\"type\":\"report\",\"spec_version\":\"2.1\",\"id\":" + Q(report_id) + ",\"created\":" + Q(now) +
            ",\"modified\":" + Q(now) + ",\"created_by_ref\":" + Q(*node) + ",\"name\":" +
            Q("Warning: " + what + " targeting " + place) + ",\"description\":" +
            Q(description.empty() ? what + " is assessed to target " + place + "." : description) +
            ",\"report_types\":[\"threat-report\"],\"labels\":[\"duty-to-warn\"],\"published\":" + Q(now) +
            ",\"confidence\":" + std::to_string(confidence) + ",\"object_refs\":[" +
            Q(policy::VariantId(src, *node)) + "," + Q(policy::VariantId(dst, *node)) + "," +
            Q(policy::VariantId(rel.id, *node)) + "],\"object_marking_refs\":[" + Q(kTlpAmber1) + "]}";
        // Every object of the warning is valid STIX before anyone sees the draft.
        std::string bundle = "[" + report + "," + *sv + "," + *tv + "," + *rv + "]";
        stix::Validator val;
        auto vr = val.Validate("{\"objects\":" + bundle + "}");
        if (!vr.ok()) {
          (void)Audit(store, "warn-rule", src, "warning-error",
                      "draft not valid STIX: " + (vr.diagnostics.empty() ? "" : vr.diagnostics[0].ToString()));
          continue;
        }
        store::Warning w;
        w.id = report_id;
        w.party = party.identity;
        w.source_id = src;
        w.rule = so->type + " targets " + place + " (" + which + "), confidence " + std::to_string(confidence) +
                 " >= " + std::to_string(rules.min_confidence);
        w.state = "draft";
        w.bundle = bundle;
        w.created = stix::NowMicros();
        AddEvent(w, "draft", "rule", w.rule);
        if (auto st = store.PutWarning(w); !st.ok()) return st;
        if (auto st = Audit(store, "warn-rule", report_id + "\nsource " + src + "\nparty " + party.identity,
                            "warning-draft", "rule fired: " + w.rule);
            !st.ok()) {
          return st;
        }
        existing->push_back(w);
        created.push_back(report_id);
      }
    }
    if (!page->more) break;
    q.cursor = page->next;
  }
  if (auto st = store.PutMeta(pos_key, std::to_string(last)); !st.ok()) return st;
  return created;
}

Status Decide(store::Store& store, std::string_view id, std::string_view action, std::string_view who,
              std::string_view reason, std::string_view instruction, const Rules& rules) {
  if (who.empty()) return Status::Invalid("say who decides (--by NAME)");
  if (action != "approve" && action != "waive" && action != "reject") {
    return Status::Invalid("the decision is approve, waive or reject");
  }
  if ((action == "waive" || action == "reject") && reason.empty()) {
    return Status::Invalid(std::string(action) + " needs a reason (--reason): the decision is recorded");
  }
  auto w = store.GetWarning(id);
  if (!w.ok()) return w.status();
  if (w->state != "draft") return Status::Invalid("warning " + std::string(id) + " is " + w->state + ", not a draft");
  std::string kind;
  if (action == "approve") {
    // Two-person rule: a second, different approver completes the approval.
    int approvals = 0;
    bool again = false;
    simdjson::dom::parser p;
    simdjson::dom::element ev;
    if (!p.parse(w->events).get(ev)) {
      for (auto e : ev.get_array()) {
        if (Str(e, "state") != "approval") continue;
        ++approvals;
        again |= Str(e, "by") == who;
      }
    }
    if (again) return Status::Invalid(std::string(who) + " has already approved; the two-person rule needs someone else");
    if (!instruction.empty()) w->instruction = std::string(instruction);
    // The node's configured rule (recorded by `serve`) applies to every approver, CLI included.
    auto recorded = store.GetMeta("warn.two_person");
    bool two_person = rules.two_person || (recorded.ok() && *recorded == "true");
    if (two_person && approvals == 0) {
      AddEvent(*w, "approval", who, reason.empty() ? "first approval" : reason);
      kind = "warning-approval";
    } else {
      AddEvent(*w, "approval", who, reason);
      AddEvent(*w, "approved", who, reason);
      w->state = "approved";
      w->next_attempt = 0;
      kind = "warning-approved";
    }
  } else {
    w->state = action == "waive" ? "waived" : "rejected";
    AddEvent(*w, w->state, who, reason);
    kind = "warning-" + w->state;
  }
  if (auto st = store.PutWarning(*w); !st.ok()) return st;
  return Audit(store, "cli:" + std::string(who), std::string(id) + "\nparty " + w->party, kind, std::string(reason));
}

Result<size_t> DeliverDue(store::Store& store, const policy::Releaser& releaser, const audit::NodeKey& key,
                          const federation::Options& options) {
  auto all = store.ListWarnings();
  if (!all.ok()) return all.status();
  auto parties = store.ListParties();
  if (!parties.ok()) return parties.status();
  auto node = store.NodeIdentity();
  if (!node.ok()) return node.status();
  size_t delivered = 0;
  int64_t now = stix::NowMicros();
  for (auto& w : *all) {
    if (w.state != "approved" || w.next_attempt > now) continue;
    auto party = std::find_if(parties->begin(), parties->end(), [&](const store::Party& p) { return p.identity == w.party; });
    auto retry = [&](const std::string& error) {
      std::lock_guard lock(RecordLock());
      auto fresh = store.GetWarning(w.id);
      if (!fresh.ok() || fresh->state != "approved") return;
      fresh->next_attempt = stix::NowMicros() + federation::RetryDelayUs(fresh->attempts, options);
      ++fresh->attempts;
      fresh->last_error = error;
      (void)store.PutWarning(*fresh);
    };
    if (party == parties->end()) {
      retry("no party record for " + w.party);
      continue;
    }
    // The same Releaser as every other path: an approved warning addressed to the party.
    std::vector<store::StoredObject> objs;
    simdjson::dom::parser p;
    simdjson::dom::element arr;
    if (p.parse(w.bundle).get(arr)) {
      retry("the warning's objects are unreadable");
      continue;
    }
    for (auto o : arr.get_array()) {
      store::StoredObject so;
      so.id = Str(o, "id");
      so.modified = Str(o, "modified");
      so.json = simdjson::minify(o);
      objs.push_back(std::move(so));
    }
    policy::PartnerRecipient pr{party->identity, "", policy::Channel::kClosed, {}, 0};
    if (auto partner = store.GetPartner(party->identity); partner.ok()) pr = policy::ToRecipient(*partner);
    policy::Audience aud;
    policy::Recipient to{"warning", true, &pr, &aud};
    to.node_identity = *node;
    to.approved_warning = true;
    size_t n = objs.size();
    std::vector<policy::Decision> why;
    auto released = releaser.Release(std::move(objs), to, &why);
    if (released.size() != n) {
      retry("the Releaser withheld part of the warning");
      continue;
    }
    std::vector<federation::ToSign> to_sign;
    for (const auto& r : released) to_sign.push_back({r.id, r.modified, r.json, {}});
    std::string body = federation::SignedEnvelope(to_sign, key, *node);
    std::string url = party->url + (party->url.empty() || party->url.back() == '/' ? "" : "/") + "collections/" +
                      party->collection + "/objects/";
    auto rep = federation::HttpCall("POST", url, party->token, body, options.timeout_ms);
    bool failures = rep.body.find("\"failure_count\":0") == std::string::npos;
    if (rep.status != 202 || failures) {
      retry(rep.status == 0 ? "unreachable: " + rep.error
                            : "HTTP " + std::to_string(rep.status) + ": " + rep.body.substr(0, 300));
      continue;
    }
    {
      // The party may have acknowledged already (its receipt can overtake this update).
      std::lock_guard lock(RecordLock());
      auto fresh = store.GetWarning(w.id);
      if (!fresh.ok()) return fresh.status();
      w = std::move(*fresh);
      if (w.state == "approved") w.state = "delivered";
      w.delivered_at = stix::NowMicros();
      w.last_error.clear();
      AddEvent(w, "delivered", "node", "to " + party->name + " at " + url);
      if (auto st = store.PutWarning(w); !st.ok()) return st;
    }
    std::string ids;
    for (const auto& r : released) ids += (ids.empty() ? "" : "\n") + r.id + "@" + r.modified;
    std::vector<audit::Entry> e;
    e.push_back({0, stix::NowMicros(), "warning@" + party->identity, ids, std::to_string(released.size()) + " objects",
                 "release", "approved duty-to-warn warning " + w.id + " delivered, signed", "", ""});
    if (auto st = store.AppendAudit(std::move(e)); !st.ok()) return st;
    ++delivered;
  }
  return delivered;
}

Status RecordAcknowledgements(store::Store& store, const std::vector<stix::Object>& objects, std::string_view source) {
  simdjson::dom::parser p;
  for (const auto& o : objects) {
    if (o.type != "note") continue;
    simdjson::dom::element e;
    simdjson::dom::array refs;
    if (p.parse(o.json).get(e) || e["object_refs"].get(refs)) continue;
    for (auto r : refs) {
      std::string_view id;
      if (r.get(id) || !id.starts_with("report--")) continue;
      std::lock_guard lock(RecordLock());
      auto w = store.GetWarning(id);
      if (!w.ok() || w->party != source || (w->state != "delivered" && w->state != "approved")) continue;
      w->state = "acknowledged";
      w->ack_at = stix::NowMicros();
      w->ack = o.json;
      AddEvent(*w, "acknowledged", std::string(source), "signed note " + o.id);
      if (auto st = store.PutWarning(*w); !st.ok()) return st;
      if (auto st = Audit(store, "federation@" + std::string(source), std::string(id) + "\nnote " + o.id,
                          "warning-acknowledged", "the party's node acknowledged the warning (signed note)");
          !st.ok()) {
        return st;
      }
    }
  }
  return Status::Ok();
}

std::vector<std::string> AcknowledgementsFor(const std::vector<stix::Object>& objects, std::string_view node) {
  std::vector<std::string> out;
  simdjson::dom::parser p;
  for (const auto& o : objects) {
    if (o.type != "report") continue;
    simdjson::dom::element e;
    simdjson::dom::array labels;
    if (p.parse(o.json).get(e) || e["labels"].get(labels)) continue;
    bool warning = false;
    for (auto l : labels) {
      std::string_view s;
      warning |= !l.get(s) && s == "duty-to-warn";
    }
    if (!warning) continue;
    std::string now = stix::FormatMicros(stix::NowMicros());
    out.push_back("{\"type\":\"note\",\"spec_version\":\"2.1\",\"id\":" + Q("note--" + stix::NewUuid4()) +
                  ",\"created\":" + Q(now) + ",\"modified\":" + Q(now) + ",\"created_by_ref\":" + Q(node) +
                  ",\"abstract\":\"Warning received\",\"content\":" +
                  Q("The warning " + o.id + " was received and stored at " + now + ".") + ",\"object_refs\":[" +
                  Q(o.id) + "],\"object_marking_refs\":[" + Q(kTlpWhite1) + "]}");
  }
  return out;
}

Summary Summarize(const store::Warning& w) {
  Summary s;
  simdjson::dom::parser p;
  simdjson::dom::element arr;
  if (p.parse(w.bundle).get(arr)) return s;
  for (auto o : arr.get_array()) {
    std::string type = Str(o, "type");
    if (type == "report") {
      s.headline = Str(o, "name");
      s.description = Str(o, "description");
      s.confidence = Confidence(o);
    } else if (type == "location" || type == "identity") {
      s.area = Str(o, "name");
      s.country = Str(o, "country");
    }
  }
  return s;
}

std::string CapAlert(const store::Warning& w, std::string_view sender, int64_t sent_us) {
  Summary s = Summarize(w);
  std::string certainty = s.confidence >= 50 ? "Likely" : "Possible";
  std::string area = s.area.empty() ? "Unspecified area" : s.area;
  if (!s.country.empty()) area += " (" + s.country + ")";
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\n";
  x += "  <identifier>" + XmlEscape("tearline-" + UuidOf(w.id)) + "</identifier>\n";
  x += "  <sender>" + XmlEscape("urn:stix:" + std::string(sender)) + "</sender>\n";
  x += "  <sent>" + CapTime(sent_us) + "</sent>\n  <status>Actual</status>\n  <msgType>Alert</msgType>\n";
  x += "  <scope>Public</scope>\n  <info>\n    <language>en</language>\n    <category>Security</category>\n";
  x += "    <event>" + XmlEscape("Threat of a terrorist attack") + "</event>\n";
  x += "    <urgency>Future</urgency>\n    <severity>Severe</severity>\n    <certainty>" + certainty + "</certainty>\n";
  x += "    <headline>" + XmlEscape(s.headline) + "</headline>\n";
  x += "    <description>" + XmlEscape(s.description) + "</description>\n";
  x += "    <instruction>" + XmlEscape(w.instruction) + "</instruction>\n";
  x += "    <area>\n      <areaDesc>" + XmlEscape(area) + "</areaDesc>\n    </area>\n  </info>\n</alert>\n";
  return x;
}

Status Publish(store::Store& store, const policy::Releaser& releaser, std::string_view id, std::string_view who,
               const Rules& rules) {
  if (who.empty()) return Status::Invalid("say who publishes (--by NAME)");
  auto w = store.GetWarning(id);
  if (!w.ok()) return w.status();
  if (w->state != "approved" && w->state != "delivered" && w->state != "acknowledged") {
    return Status::Invalid("only an approved warning can be published (it is " + w->state + ")");
  }
  if (w->published_at) return Status::Invalid("warning " + std::string(id) + " is already published");
  if (w->instruction.empty()) {
    return Status::Invalid("a public advisory needs an approved instruction: approve with --instruction");
  }
  auto node = store.NodeIdentity();
  if (!node.ok()) return node.status();
  int64_t now_us = stix::NowMicros();
  Summary s = Summarize(*w);
  // The STIX form, TLP:CLEAR, in the public collection: only the approved text.
  std::string now = stix::FormatMicros(now_us);
  std::string loc_id = "location--" + stix::NewUuid4(), rep_id = "report--" + stix::NewUuid4();
  std::string location = "{\"type\":\"location\",\"spec_version\":\"2.1\",\"id\":" + Q(loc_id) + ",\"created\":" + Q(now) +
                         ",\"modified\":" + Q(now) + ",\"created_by_ref\":" + Q(*node) + ",\"name\":" +
                         Q(s.area.empty() ? "Unspecified area" : s.area) +
                         (s.country.empty() ? "" : ",\"country\":" + Q(s.country)) + ",\"object_marking_refs\":[" +
                         Q(kTlpWhite1) + "]}";
  std::string report = "{\"type\":\"report\",\"spec_version\":\"2.1\",\"id\":" + Q(rep_id) + ",\"created\":" + Q(now) +
                       ",\"modified\":" + Q(now) + ",\"created_by_ref\":" + Q(*node) + ",\"name\":" + Q(s.headline) +
                       ",\"description\":" + Q(s.description + "\n\n" + w->instruction) +
                       ",\"report_types\":[\"threat-report\"],\"labels\":[\"public-advisory\"],\"published\":" + Q(now) +
                       ",\"object_refs\":[" + Q(loc_id) + "],\"object_marking_refs\":[" + Q(kTlpWhite1) + "]}";
  stix::Validator val;
  auto vr = val.Validate("{\"objects\":[" + location + "," + report + "]}");
  if (!vr.ok()) return Status::Invalid("the public advisory is not valid STIX: " + vr.diagnostics[0].ToString());
  // The public is a recipient like any other: the advisory leaves only if the Releaser lets
  // an anonymous member of the public (no group, no name, an open channel) have all of it.
  {
    std::vector<store::StoredObject> objs;
    for (const auto& o : vr.objects) objs.push_back({o.id, o.type, o.modified, o.version, "2.1", 0, o.json, ""});
    policy::PartnerRecipient anyone{"identity--00000000-0000-4000-8000-000000000000", "", policy::Channel::kOpen, {}, 0};
    policy::Audience nobody;
    policy::Recipient public_recipient{"public", true, &anyone, &nobody};
    public_recipient.node_identity = *node;
    auto out = releaser.Release(std::move(objs), public_recipient);
    if (out.size() != vr.objects.size() || out[0].json != vr.objects[0].json || out[1].json != vr.objects[1].json) {
      return Status::Invalid("the Releaser does not let the public advisory reach the public");
    }
  }
  if (auto c = store.EnsureCollection(rules.public_collection); !c.ok()) return c.status();
  if (auto put = store.Put(rules.public_collection, vr.objects); !put.ok()) return put.status();
  w->cap = CapAlert(*w, *node, now_us);
  w->published_at = now_us;
  AddEvent(*w, "published", who, "CAP 1.2 alert, Atom entry, STIX report " + rep_id + " (TLP:CLEAR)");
  if (auto st = store.PutWarning(*w); !st.ok()) return st;
  return Audit(store, "cli:" + std::string(who), std::string(id) + "\npublic report " + rep_id, "warning-published",
               "public advisory: " + s.headline);
}

std::string AtomFeed(const std::vector<store::Warning>& warnings, std::string_view base, std::string_view node) {
  std::vector<const store::Warning*> pub;
  for (const auto& w : warnings) {
    if (w.published_at) pub.push_back(&w);
  }
  std::sort(pub.begin(), pub.end(), [](auto* a, auto* b) { return a->published_at > b->published_at; });
  std::string updated = CapTime(pub.empty() ? stix::NowMicros() : pub.front()->published_at);
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n";
  x += "  <title>tearline public advisories</title>\n";
  x += "  <id>urn:uuid:" + XmlEscape(UuidOf(node)) + "</id>\n  <updated>" + updated + "</updated>\n";
  x += "  <author><name>" + XmlEscape(std::string(node)) + "</name></author>\n";
  x += "  <link rel=\"self\" href=\"" + XmlEscape(std::string(base) + "/advisories/feed.atom") + "\"/>\n";
  for (const auto* w : pub) {
    Summary s = Summarize(*w);
    x += "  <entry>\n    <title>" + XmlEscape(s.headline) + "</title>\n";
    x += "    <id>urn:uuid:" + XmlEscape(UuidOf(w->id)) + "</id>\n";
    x += "    <updated>" + CapTime(w->published_at) + "</updated>\n";
    x += "    <summary>" + XmlEscape(s.description) + "</summary>\n";
    x += "    <content type=\"text\">" + XmlEscape(w->instruction) + "</content>\n";
    x += "    <link rel=\"alternate\" type=\"application/cap+xml\" href=\"" +
         XmlEscape(std::string(base) + "/advisories/" + UuidOf(w->id) + ".cap.xml") + "\"/>\n  </entry>\n";
  }
  return x + "</feed>\n";
}

}  // namespace tearline::warn
