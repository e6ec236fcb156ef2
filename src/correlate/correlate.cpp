#include "correlate/correlate.h"

#include <simdjson.h>

#include <map>
#include <set>

#include "stix/stix.h"

namespace tearline::correlate {
namespace {

// Namespace for correlation grouping ids (UUIDv5 of the correlated object).
constexpr std::string_view kNamespace = "4a0bd3c6-59a4-4b5f-9f35-2f7a8e1c6d10";

struct Evidence {
  std::set<std::string> organisations;
  std::set<std::string> reports;
  std::string first, last;  // VersionKey-ordered modified values (as given)
  std::string first_key, last_key;
};

void Note(Evidence& e, const std::string& org, const std::string& report, std::string_view modified) {
  e.organisations.insert(org);
  e.reports.insert(report);
  std::string key = VersionKey(modified);
  if (e.first_key.empty() || key < e.first_key) {
    e.first_key = key;
    e.first = std::string(modified);
  }
  if (e.last_key.empty() || key > e.last_key) {
    e.last_key = key;
    e.last = std::string(modified);
  }
}

std::string Grouping(const std::string& kind, const std::string& shared, const Evidence& e) {
  std::string id = "grouping--" + stix::Uuid5(kNamespace, kind + ":" + shared);
  std::string orgs;
  for (const auto& o : e.organisations) orgs += (orgs.empty() ? "" : ", ") + o;
  std::string j = "{\"type\":\"grouping\",\"spec_version\":\"2.1\",\"id\":\"" + id + "\",\"created\":\"" + e.first +
                  "\",\"modified\":\"" + e.last + "\",\"name\":";
  stix::AppendJsonString(j, (kind == "observable" ? "Observable reported by " : "Indicator sighted by ") +
                                std::to_string(e.organisations.size()) + " organisations");
  j += ",\"description\":";
  stix::AppendJsonString(j, shared + " was " + (kind == "observable" ? "reported" : "sighted") + " by " + orgs);
  j += ",\"context\":\"suspicious-activity\",\"object_refs\":[";
  stix::AppendJsonString(j, shared);
  for (const auto& r : e.reports) {
    j += ",";
    stix::AppendJsonString(j, r);
  }
  return j + "]}";
}

}  // namespace

Result<std::vector<Correlation>> Find(store::Store& store, const std::string& collection) {
  std::map<std::string, Evidence> observables, indicators;
  store::Query q;
  q.collection = collection;
  q.types = {"observed-data", "sighting"};
  q.limit = 5000;
  simdjson::dom::parser parser;
  while (true) {
    auto page = store.Query(q);
    if (!page.ok()) return page.status();
    for (const auto& o : page->objects) {
      simdjson::dom::element e;
      if (parser.parse(o.json).get(e)) continue;
      std::string_view creator, modified;
      if (e["modified"].get(modified)) continue;
      bool has_creator = !e["created_by_ref"].get(creator);
      if (o.type == "observed-data") {
        if (!has_creator) continue;  // no organisation to count
        simdjson::dom::array refs;
        if (e["object_refs"].get(refs)) continue;
        for (auto r : refs) {
          std::string_view ref;
          if (!r.get(ref)) Note(observables[std::string(ref)], std::string(creator), o.id, modified);
        }
      } else {
        std::string_view of;
        if (e["sighting_of_ref"].get(of) || !of.starts_with("indicator--")) continue;
        std::vector<std::string> orgs;
        if (has_creator) {
          orgs.emplace_back(creator);
        } else {
          simdjson::dom::array where;
          if (!e["where_sighted_refs"].get(where)) {
            for (auto w : where) {
              std::string_view id;
              if (!w.get(id) && id.starts_with("identity--")) orgs.emplace_back(id);
            }
          }
        }
        for (const auto& org : orgs) Note(indicators[std::string(of)], org, o.id, modified);
      }
    }
    if (!page->more) break;
    q.cursor = page->next;
  }
  std::vector<Correlation> out;
  auto emit = [&](const std::string& kind, const std::map<std::string, Evidence>& m) {
    for (const auto& [shared, e] : m) {
      if (e.organisations.size() < 2) continue;
      out.push_back({kind, shared, {e.organisations.begin(), e.organisations.end()},
                     {e.reports.begin(), e.reports.end()}, e.first, e.last, Grouping(kind, shared, e)});
    }
  };
  emit("observable", observables);
  emit("indicator", indicators);
  return out;
}

Result<size_t> Record(store::Store& store, const std::string& into, const std::vector<Correlation>& found) {
  if (auto c = store.EnsureCollection(into); !c.ok()) return c.status();
  if (found.empty()) return size_t{0};
  std::string envelope = "{\"objects\":[";
  for (size_t i = 0; i < found.size(); ++i) envelope += (i ? "," : "") + found[i].grouping_json;
  envelope += "]}";
  stix::Validator v;
  auto r = v.Validate(envelope);
  if (!r.ok()) {
    return Status::Invalid("a correlation grouping is invalid: " +
                           (r.diagnostics.empty() ? std::string("?") : r.diagnostics[0].ToString()));
  }
  auto put = store.Put(into, r.objects);
  if (!put.ok()) return put.status();
  return put->stored;
}

}  // namespace tearline::correlate
