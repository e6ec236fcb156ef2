#include "pattern/observations.h"

#include <cstring>
#include <mutex>

namespace tearline::pattern {
namespace dom = simdjson::dom;

namespace {
std::mutex pool_mu;
std::vector<std::unique_ptr<Observations::Impl::Parser>> pool;  // idle parsers
constexpr size_t kPoolMax = 8;
constexpr size_t kKeepCapacity = size_t{64} << 20;  // a parser grown beyond this is not kept
}  // namespace

Observations::Impl::Impl() {
  std::lock_guard lock(pool_mu);
  if (!pool.empty()) {
    parser = std::move(pool.back());
    pool.pop_back();
  }
  if (!parser) parser = std::make_unique<Parser>();
}

Observations::Impl::~Impl() {
  if (!parser || parser->dom.capacity() > kKeepCapacity || parser->padded.capacity() > kKeepCapacity) return;
  std::lock_guard lock(pool_mu);
  if (pool.size() < kPoolMax) pool.push_back(std::move(parser));
}

Observations::Observations() : impl_(std::make_unique<Impl>()) {}
Observations::~Observations() = default;
Observations::Observations(Observations&&) noexcept = default;
Observations& Observations::operator=(Observations&&) noexcept = default;
size_t Observations::size() const { return impl_->list.size(); }

Result<Observations> Observations::FromJson(std::string_view json) {
  Observations out;
  Impl& im = *out.impl_;
  dom::element root;
  std::string& padded = im.parser->padded;
  padded.resize(json.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(padded.data(), json.data(), json.size());
  std::memset(padded.data() + json.size(), 0, simdjson::SIMDJSON_PADDING);
  if (auto err = im.parser->dom.parse(padded.data(), json.size(), false).get(root)) {
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
  im.objects = objects;
  // One pass for the types and ids, one over the observed-data.
  struct Observed {
    dom::object e;
    size_t position;  // in the input, for messages
    dom::element element;
  };
  std::vector<Observed> observed;
  im.by_id.Reserve(objects.size());  // a hint (saturates for huge arrays)
  size_t index = 0;
  for (dom::element e : objects) {
    ++index;
    dom::object o;
    if (e.get(o)) continue;
    // "id" and "type" in one pass over the members (the first of a duplicated key counts).
    bool seen_id = false, seen_type = false;
    for (auto field : o) {
      if (!seen_id && field.key == "id") {
        seen_id = true;
        std::string_view id;
        if (!field.value.get(id)) im.by_id.Add(id, e);
      } else if (!seen_type && field.key == "type") {
        seen_type = true;
        std::string_view type;
        if (!field.value.get(type) && type == "observed-data") observed.push_back({o, index, e});
      }
      if (seen_id && seen_type) break;
    }
  }
  im.embedded.reserve(observed.size());  // never reallocates under the `refs` pointers
  im.list.reserve(observed.size());
  std::vector<std::pair<size_t, size_t>> runs;  // per observation: its run in im.roots
  runs.reserve(observed.size());
  for (const auto& [e, position, element] : observed) {
    Observation ob;
    ob.object = element;
    std::string_view first, last;
    int64_t count = 0;
    // One pass over the members; as with a lookup by key, the first of a duplicated key counts.
    bool have_first = false, have_last = false, have_count = false, have_refs = false, have_embedded = false;
    bool seen_first = false, seen_last = false, seen_count = false, seen_id = false, seen_refs = false, seen_objects = false;
    dom::array refs;
    dom::object embedded;
    for (auto field : e) {
      std::string_view k = field.key;
      if (k == "first_observed" && !seen_first) {
        seen_first = true;
        have_first = !field.value.get(first);
      } else if (k == "last_observed" && !seen_last) {
        seen_last = true;
        have_last = !field.value.get(last);
      } else if (k == "number_observed" && !seen_count) {
        seen_count = true;
        have_count = !field.value.get(count);
      } else if (k == "id" && !seen_id) {
        seen_id = true;
        if (field.value.get(ob.id)) ob.id = {};
      } else if (k == "object_refs" && !seen_refs) {
        seen_refs = true;
        have_refs = !field.value.get(refs);
      } else if (k == "objects" && !seen_objects) {
        seen_objects = true;
        have_embedded = !field.value.get(embedded);
      }
    }
    if (!have_first || !have_last || !have_count) {
      return Status::Invalid("observed-data #" + std::to_string(position) +
                             " needs first_observed, last_observed and number_observed");
    }
    auto f = ParseMicros(first), l = ParseMicros(last);
    if (!f || !l) return Status::Invalid("observed-data #" + std::to_string(position) + " has a malformed timestamp");
    ob.first_us = *f;
    ob.last_us = *l;
    ob.count = count < 1 ? 1 : count;
    size_t run_start = im.roots.size();
    if (have_refs) {
      ob.refs = &im.by_id;
      for (dom::element r : refs) {
        std::string_view ref;
        if (r.get(ref)) continue;
        if (const dom::element* found = im.by_id.Find(ref)) im.roots.push_back(*found);
      }
    } else if (have_embedded) {
      auto& map = im.embedded.emplace_back();
      for (auto field : embedded) {
        map.Add(field.key, field.value);
        im.roots.push_back(field.value);
      }
      ob.refs = &map;
    }
    runs.emplace_back(run_start, im.roots.size());
    im.list.push_back(std::move(ob));
  }
  for (size_t k = 0; k < im.list.size(); ++k) {  // im.roots no longer moves
    im.list[k].roots = std::span<const dom::element>(im.roots.data() + runs[k].first, runs[k].second - runs[k].first);
  }
  return out;
}

}  // namespace tearline::pattern
