#include "taxii/watcher.h"

#include <simdjson.h>
#include <unistd.h>

namespace tearline::taxii {

Status Watcher::Refresh() {
  // Anything added to the indicator collection since the last load? (one indexed row)
  store::Query probe;
  probe.collection = config_.match_indicators;
  probe.types = {"indicator"};
  probe.versions.all = true;
  probe.added_after = indicators_seen_;
  probe.limit = 1;
  auto newer = store_.Manifest(probe);
  if (!newer.ok()) return newer.status();
  if (newer->objects.empty() && indicators_seen_ >= 0) return Status::Ok();
  pattern::Matcher fresh;
  store::Query q;
  q.collection = config_.match_indicators;
  q.types = {"indicator"};
  q.limit = 5000;
  simdjson::dom::parser parser;
  int64_t newest = 0;
  while (true) {
    auto page = store_.Query(q);
    if (!page.ok()) return page.status();
    for (const auto& o : page->objects) {
      newest = std::max(newest, o.date_added);
      simdjson::dom::element e;
      std::string_view pattern, pattern_type;
      if (parser.parse(o.json).get(e) || e["pattern"].get(pattern) || e["pattern_type"].get(pattern_type) ||
          pattern_type != "stix") {
        continue;
      }
      (void)fresh.Add(o.id, pattern);  // stored indicators were validated; skip any that still fail
    }
    if (!page->more) break;
    q.cursor = page->next;
  }
  // Later additions of other types must not hide new indicators: remember the collection's newest.
  store::Query all;
  all.collection = config_.match_indicators;
  all.versions.all = true;
  all.added_after = std::max<int64_t>(newest, indicators_seen_);
  all.limit = 1000;
  while (true) {
    auto page = store_.Manifest(all);
    if (!page.ok()) return page.status();
    for (const auto& o : page->objects) newest = std::max(newest, o.date_added);
    if (!page->more) break;
    all.cursor = page->next;
  }
  matcher_ = std::move(fresh);
  indicators_seen_ = std::max(newest, indicators_seen_);
  return Status::Ok();
}

Result<size_t> Watcher::OnPosted(const std::vector<stix::Object>& posted) {
  bool any = false;
  for (const auto& o : posted) any |= o.type == "observed-data";
  if (!any) return size_t{0};
  std::lock_guard lock(mu_);
  if (auto st = Refresh(); !st.ok()) return st;
  if (matcher_.size() == 0) return size_t{0};
  std::string array = "[";
  for (size_t i = 0; i < posted.size(); ++i) array += (i ? "," : "") + posted[i].json;
  array += "]";
  auto found = stream_.Match(matcher_, array);
  if (!found.ok()) return found.status();
  if (found->empty()) return size_t{0};
  std::string identity = config_.match_identity.empty() ? NodeIdentity() : config_.match_identity;
  std::string env = "{\"objects\":[";
  for (size_t k = 0; k < found->size(); ++k) env += (k ? "," : "") + SightingJson((*found)[k], identity);
  env += "]}";
  stix::Validator v;
  auto r = v.Validate(env);
  if (!r.ok()) return Status::Invalid("a sighting is invalid: " + (r.diagnostics.empty() ? std::string("?") : r.diagnostics[0].ToString()));
  if (auto c = store_.EnsureCollection(config_.match_sightings); !c.ok()) return c.status();
  auto put = store_.Put(config_.match_sightings, r.objects);
  if (!put.ok()) return put.status();
  return put->stored;
}

std::string NodeIdentity() {
  char host[256] = "tearline";
  gethostname(host, sizeof host - 1);
  return "identity--" + stix::Uuid5(stix::kStixScoNamespace, std::string("tearline-node:") + host);
}

std::string SightingJson(const pattern::Matcher::Sighting& s, const std::string& where_sighted) {
  std::string now = FormatMicros(NowMicros());
  std::string j = "{\"type\":\"sighting\",\"spec_version\":\"2.1\",\"id\":\"sighting--" + stix::NewUuid4() +
                  "\",\"created\":\"" + now + "\",\"modified\":\"" + now + "\",\"sighting_of_ref\":";
  stix::AppendJsonString(j, s.indicator_id);
  j += ",\"observed_data_refs\":[";
  for (size_t i = 0; i < s.observed_data_ids.size(); ++i) {
    if (i) j += ",";
    stix::AppendJsonString(j, s.observed_data_ids[i]);
  }
  j += "],\"count\":" + std::to_string(std::min<int64_t>(s.count, 999999999)) + ",\"first_seen\":\"" +
       FormatMicros(s.first_us) + "\",\"last_seen\":\"" + FormatMicros(s.last_us) + "\",\"where_sighted_refs\":[";
  stix::AppendJsonString(j, where_sighted);
  return j + "]}";
}

}  // namespace tearline::taxii
