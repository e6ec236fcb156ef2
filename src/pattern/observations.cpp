#include "pattern/observations.h"

namespace tearline::pattern {
namespace dom = simdjson::dom;

Observations::Observations() : impl_(std::make_unique<Impl>()) {}
Observations::~Observations() = default;
Observations::Observations(Observations&&) noexcept = default;
Observations& Observations::operator=(Observations&&) noexcept = default;
size_t Observations::size() const { return impl_->list.size(); }

Result<Observations> Observations::FromJson(std::string_view json) {
  Observations out;
  Impl& im = *out.impl_;
  dom::element root;
  if (auto err = im.parser.parse(json.data(), json.size(), true).get(root)) {
    return Status::Invalid(std::string("observations are not valid JSON: ") + simdjson::error_message(err));
  }
  dom::array objects;
  if (root.is_array()) {
    objects = root.get_array().value_unsafe();
  } else if (root.is_object()) {
    dom::element o;
    if (root["objects"].get(o) || o.get(objects)) {
      std::string_view type;
      if (!root["type"].get(type) && type == "observed-data") {
        return Status::Invalid("a single observed-data needs its SCOs: pass a bundle or an array");
      }
      return Status::Invalid("expected a bundle, an envelope or a JSON array of STIX objects");
    }
  } else {
    return Status::Invalid("expected a bundle, an envelope or a JSON array of STIX objects");
  }
  for (dom::element e : objects) {
    std::string_view id;
    if (!e["id"].get(id)) im.by_id.emplace(id, e);
  }
  // Count embedded maps first so the vector never reallocates under the pointers.
  size_t n_obs = 0;
  for (dom::element e : objects) {
    std::string_view type;
    if (!e["type"].get(type) && type == "observed-data") ++n_obs;
  }
  im.embedded.reserve(n_obs);
  size_t index = 0;
  for (dom::element e : objects) {
    ++index;
    std::string_view type;
    if (e["type"].get(type) || type != "observed-data") continue;
    Observation ob;
    std::string_view first, last;
    int64_t count = 0;
    if (e["first_observed"].get(first) || e["last_observed"].get(last) || e["number_observed"].get(count)) {
      return Status::Invalid("observed-data #" + std::to_string(index) +
                             " needs first_observed, last_observed and number_observed");
    }
    auto f = ParseTimestamp(first), l = ParseTimestamp(last);
    if (!f || !l) return Status::Invalid("observed-data #" + std::to_string(index) + " has a malformed timestamp");
    ob.first = *f;
    ob.last = *l;
    ob.first_us = ToMicros(*f);
    ob.last_us = ToMicros(*l);
    ob.count = count < 1 ? 1 : count;
    if (e["id"].get(ob.id)) ob.id = {};
    dom::array refs;
    dom::object embedded;
    if (!e["object_refs"].get(refs)) {
      ob.refs = &im.by_id;
      for (dom::element r : refs) {
        std::string_view ref;
        if (r.get(ref)) continue;
        auto it = im.by_id.find(ref);
        if (it != im.by_id.end()) ob.roots.push_back(it->second);
      }
    } else if (!e["objects"].get(embedded)) {
      auto& map = im.embedded.emplace_back();
      for (auto field : embedded) {
        map.emplace(field.key, field.value);
        ob.roots.push_back(field.value);
      }
      ob.refs = &map;
    }
    im.list.push_back(std::move(ob));
  }
  return out;
}

}  // namespace tearline::pattern
