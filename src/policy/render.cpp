// Render: the JSON a recipient receives for a released object (tear-line variants,
// rewritten references, granular-marked properties withheld). Boost.JSON, because
// the object is changed; objects that need no change are returned as stored.
#include <boost/json.hpp>

#include <set>

#include "policy/policy.h"
#include "stix/stix.h"

namespace tearline::policy {
namespace {

namespace bj = boost::json;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A granular-marking selector (STIX 2.1 §7.2.3.1): "a.b.[2].c".
struct Step {
  std::string key;
  long index = -1;  // >= 0: a list position
};
std::vector<Step> ParseSelector(std::string_view sel) {
  std::vector<Step> steps;
  size_t start = 0;
  while (start <= sel.size()) {
    size_t dot = sel.find('.', start);
    std::string_view part = sel.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    Step s;
    if (part.size() >= 3 && part.front() == '[' && part.back() == ']') {
      s.index = std::strtol(std::string(part.substr(1, part.size() - 2)).c_str(), nullptr, 10);
    } else {
      s.key = std::string(part);
    }
    steps.push_back(std::move(s));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return steps;
}

// A placeholder for list elements removed by selector; swept after all removals so
// positions named by later selectors stay valid.
const bj::string kRemoved = "\x01tearline-removed\x01";

// Removes what `sel` designates. Returns false if it designates nothing.
bool RemovePath(bj::object& root, std::string_view sel) {
  auto steps = ParseSelector(sel);
  if (steps.empty() || steps[0].key.empty()) return false;
  bj::value* parent = nullptr;
  bj::value* cur = nullptr;
  auto it = root.find(steps[0].key);
  if (it == root.end()) return false;
  if (steps.size() == 1) {
    root.erase(it);
    return true;
  }
  cur = &it->value();
  for (size_t i = 1; i < steps.size(); ++i) {
    parent = cur;
    const Step& s = steps[i];
    bool last = i + 1 == steps.size();
    if (s.index >= 0) {
      auto* arr = cur->if_array();
      if (!arr || static_cast<size_t>(s.index) >= arr->size()) return false;
      if (last) {
        (*arr)[s.index] = kRemoved;
        return true;
      }
      cur = &(*arr)[s.index];
    } else {
      auto* obj = cur->if_object();
      if (!obj) return false;
      auto f = obj->find(s.key);
      if (f == obj->end()) return false;
      if (last) {
        obj->erase(f);
        return true;
      }
      cur = &f->value();
    }
  }
  (void)parent;
  return false;
}

bool SelectorExists(const bj::object& root, std::string_view sel) {
  auto steps = ParseSelector(sel);
  const bj::value* cur = nullptr;
  if (steps.empty()) return false;
  auto it = root.find(steps[0].key);
  if (steps[0].key.empty() || it == root.end()) return false;
  cur = &it->value();
  for (size_t i = 1; i < steps.size(); ++i) {
    if (steps[i].index >= 0) {
      auto* arr = cur->if_array();
      if (!arr || static_cast<size_t>(steps[i].index) >= arr->size()) return false;
      cur = &(*arr)[steps[i].index];
    } else {
      auto* obj = cur->if_object();
      if (!obj) return false;
      auto f = obj->find(steps[i].key);
      if (f == obj->end()) return false;
      cur = &f->value();
    }
  }
  return !(cur->is_string() && cur->get_string() == kRemoved);
}

// Drops placeholders, and lists or objects emptied by removals (STIX lists are never empty).
void Sweep(bj::value& v) {
  if (auto* arr = v.if_array()) {
    bj::array kept;
    for (auto& x : *arr) {
      if (x.is_string() && x.get_string() == kRemoved) continue;
      Sweep(x);
      kept.push_back(std::move(x));
    }
    *arr = std::move(kept);
  } else if (auto* obj = v.if_object()) {
    for (auto it = obj->begin(); it != obj->end();) {
      Sweep(it->value());
      bool empty = (it->value().is_array() && it->value().get_array().empty()) ||
                   (it->value().is_object() && it->value().get_object().empty());
      it = empty ? obj->erase(it) : std::next(it);
    }
  }
}

struct RefContext {
  const std::function<RefForm(std::string_view)>& resolve;
  std::string_view node_identity;
  bool changed = false;
  bool withhold = false;
};

RefForm Resolve(RefContext& c, std::string_view id) { return c.resolve ? c.resolve(id) : RefForm::kUnknown; }

// Rewrites or removes references below `v`; `top` marks the object's own properties.
void RewriteRefs(bj::object& obj, RefContext& c, std::string_view type, bool top) {
  for (auto it = obj.begin(); it != obj.end();) {
    std::string_view k = it->key();
    bj::value& v = it->value();
    if (k == "object_marking_refs" || k == "granular_markings") {
      ++it;
      continue;
    }
    bool required = top && stix::IsRequiredProperty(type, k);
    if (EndsWith(k, "_ref") && v.is_string()) {
      std::string id(v.get_string());
      RefForm f = Resolve(c, id);
      if (f == RefForm::kVariant) {
        v = VariantId(id, c.node_identity);
        c.changed = true;
      } else if (f == RefForm::kWithheld) {
        // A relationship or sighting about a withheld object is withheld itself.
        if (required || (top && (k == "source_ref" || k == "target_ref" || k == "sighting_of_ref"))) {
          c.withhold = true;
          return;
        }
        it = obj.erase(it);
        c.changed = true;
        continue;
      }
    } else if (EndsWith(k, "_refs") && v.is_array()) {
      bj::array kept;
      for (auto& x : v.get_array()) {
        if (!x.is_string()) {
          kept.push_back(x);
          continue;
        }
        std::string id(x.get_string());
        RefForm f = Resolve(c, id);
        if (f == RefForm::kWithheld) {
          c.changed = true;
        } else if (f == RefForm::kVariant) {
          kept.push_back(bj::string(VariantId(id, c.node_identity)));
          c.changed = true;
        } else {
          kept.push_back(x);
        }
      }
      if (kept.empty()) {
        if (required) {
          c.withhold = true;
          return;
        }
        it = obj.erase(it);
        continue;
      }
      v = std::move(kept);
    } else if (auto* o = v.if_object()) {
      RewriteRefs(*o, c, type, false);
      if (c.withhold) return;
    } else if (auto* a = v.if_array()) {
      for (auto& x : *a) {
        if (auto* xo = x.if_object()) RewriteRefs(*xo, c, type, false);
        if (c.withhold) return;
      }
    }
    ++it;
  }
}

}  // namespace

bool RendersUnchanged(std::string_view json, const Decision& decision,
                      const std::function<RefForm(std::string_view)>& resolve, const std::vector<std::string>* refs) {
  // An original with nothing to strip whose references all stay as they are.
  if (decision.outcome == Outcome::kReleaseVariant || !decision.strip.empty()) return false;
  if (!resolve) return true;
  std::vector<std::string> own;
  if (!refs) {
    own = ReferencedIds(json);
    refs = &own;
  }
  for (const auto& id : *refs) {
    RefForm f = resolve(id);
    if (f == RefForm::kVariant || f == RefForm::kWithheld) return false;
  }
  return true;
}

std::optional<std::string> Render(std::string_view json, const Decision& decision, std::string_view node_identity,
                                  const std::function<RefForm(std::string_view)>& resolve, bool* as_variant,
                                  const std::vector<std::string>* refs) {
  *as_variant = false;
  bool variant = decision.outcome == Outcome::kReleaseVariant;
  if (RendersUnchanged(json, decision, resolve, refs)) return std::string(json);
  boost::system::error_code ec;
  bj::value root = bj::parse(json, ec);
  if (ec || !root.is_object()) return std::nullopt;
  bj::object& obj = root.get_object();
  std::string type = obj.contains("type") && obj.at("type").is_string() ? std::string(obj.at("type").get_string()) : "";

  RefContext ctx{resolve, node_identity};
  RewriteRefs(obj, ctx, type, true);
  if (ctx.withhold) return std::nullopt;

  if (variant) {
    // The tear-line variant (docs/extension.md): releasable values replace the originals,
    // sensitive paths and sources go, the extension itself goes.
    bj::object ext;
    if (auto* exts = obj.if_contains("extensions"); exts && exts->is_object()) {
      if (auto* e = exts->get_object().if_contains(kExtensionId); e && e->is_object()) ext = e->get_object();
      exts->get_object().erase(kExtensionId);
      if (exts->get_object().empty()) obj.erase("extensions");
    }
    if (auto* sens = ext.if_contains("sensitive"); sens && sens->is_array()) {
      for (const auto& p : sens->get_array()) {
        if (p.is_string()) RemovePath(obj, p.get_string());
      }
    }
    obj.erase("external_references");
    if (auto* rel = ext.if_contains("releasable"); rel && rel->is_object()) {
      static const std::set<std::string_view> kFixed = {"type", "id", "spec_version", "created", "modified",
                                                        "created_by_ref", "extensions"};
      for (const auto& [k, v] : rel->get_object()) {
        if (!kFixed.count(k)) obj[k] = v;
      }
    }
  }
  // Granular-marked properties the recipient may not see.
  std::set<std::string> stripped(decision.strip.begin(), decision.strip.end());
  for (const auto& sel : decision.strip) RemovePath(obj, sel);
  // Granular markings whose properties are gone (or were withheld) go too.
  if (auto* gm = obj.if_contains("granular_markings"); gm && gm->is_array()) {
    bj::array kept;
    for (auto& g : gm->get_array()) {
      bool keep = g.is_object();
      if (keep) {
        if (auto* sels = g.get_object().if_contains("selectors"); sels && sels->is_array()) {
          for (const auto& s : sels->get_array()) {
            if (!s.is_string() || stripped.count(std::string(s.get_string())) || !SelectorExists(obj, s.get_string())) {
              keep = false;
            }
          }
        }
      }
      if (keep) kept.push_back(std::move(g));
    }
    *gm = std::move(kept);
  }
  Sweep(root);
  // A removal must not leave an object without a required property.
  for (const char* p : {"type", "id", "spec_version", "created", "modified"}) {
    if (json.find(std::string("\"") + p + "\":") != std::string_view::npos && !obj.contains(p)) return std::nullopt;
  }
  for (const auto& sel : decision.strip) {
    auto top = sel.substr(0, sel.find('.'));
    if (!obj.contains(top) && stix::IsRequiredProperty(type, top)) return std::nullopt;
  }
  if (variant || ctx.changed) {
    // Republished with changes: a new deterministic id, published by this node (§3.6).
    if (auto* id = obj.if_contains("id"); id && id->is_string()) *id = VariantId(id->get_string(), node_identity);
    // SCOs (no `created`) carry no created_by_ref (§3.2).
    if (obj.contains("created") && !node_identity.empty()) obj["created_by_ref"] = node_identity;
    *as_variant = true;
  }
  return bj::serialize(root);
}

}  // namespace tearline::policy
