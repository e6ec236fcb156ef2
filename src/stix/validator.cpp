// Document-level validation: bundle (§8), TAXII envelope, single object, JSON lines.
#include <simdjson.h>

#include "stix/checker.h"
#include "stix/json.h"
#include "stix/schema.h"
#include "stix/stix.h"

namespace tearline::stix {
namespace dom = simdjson::dom;

namespace {
constexpr std::string_view kSecBundle = "STIX 2.1 §8 Bundle";
}

std::string Diagnostic::ToString() const {
  std::string s = severity == Severity::kError ? "error: " : "warning: ";
  if (index == kDocument) {
    s += "document";
  } else {
    s += "object " + std::to_string(index);
  }
  if (!object_id.empty()) s += " (" + object_id + ")";
  s += ": ";
  if (!path.empty()) s += path + ": ";
  s += message;
  s += " [" + rule + "; " + section + "]";
  return s;
}

size_t ValidationResult::error_count() const {
  size_t n = 0;
  for (const auto& d : diagnostics) n += d.severity == Severity::kError;
  return n;
}

size_t ValidationResult::warning_count() const { return diagnostics.size() - error_count(); }

class Validator::Impl {
 public:
  explicit Impl(const Limits& limits) : limits_(limits), parser_(limits.max_document_bytes) {
    // The depth bound survives the parser's own re-allocations for larger documents.
    if (parser_.allocate(size_t{1} << 16, limits.max_depth)) throw std::bad_alloc();
  }

  ValidationResult Run(std::string_view bytes, Form form, const MarkingLookup& lookup, bool padded) {
    padded_ = padded;
    ValidationResult r;
    lookup_ = &lookup;
    if (bytes.size() > limits_.max_document_bytes) {
      DocError(r, "limit-document-size", "limits (max_document_bytes)",
               "document is " + std::to_string(bytes.size()) + " bytes; the limit is " +
                   std::to_string(limits_.max_document_bytes));
      return r;
    }
    if (form == Form::kJsonLines) {
      RunLines(bytes, r);
    } else {
      RunDocument(bytes, r);
    }
    return r;
  }

 private:
  static void DocError(ValidationResult& r, std::string rule, std::string section, std::string msg) {
    r.document_error = true;
    r.diagnostics.push_back({Severity::kError, Diagnostic::kDocument, "", "", std::move(rule),
                             std::move(section), std::move(msg)});
  }

  // A whole document: bundle, envelope or single object.
  void RunDocument(std::string_view bytes, ValidationResult& r) {
    dom::element root;
    json::Error err;
    if (!json::Parse(parser_, bytes, &root, &err, padded_)) {
      DocError(r, err.rule, err.section, err.message);
      return;
    }
    std::vector<dom::element> items;
    if (!Unwrap(root, r, &items)) return;
    CheckItems(items, 0, r);
  }

  // JSON lines: each non-blank line is an object, a bundle or an envelope. A bad
  // line is reported and skipped; the others are still checked.
  void RunLines(std::string_view bytes, ValidationResult& r) {
    // Parse every line first so markings defined on later lines are known.
    struct Line {
      std::string text;
      size_t number;
    };
    std::vector<Line> lines;
    size_t start = 0, number = 0;
    while (start < bytes.size()) {
      size_t end = bytes.find('\n', start);
      if (end == std::string_view::npos) end = bytes.size();
      ++number;
      std::string_view line = bytes.substr(start, end - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t") != std::string_view::npos) lines.push_back({std::string(line), number});
      start = end + 1;
    }
    // Two passes over separate parsers would double memory; instead validate line by line and
    // collect marking ids from a quick pre-scan of every line.
    DocumentContext ctx;
    ctx.lookup = lookup_;
    for (const auto& l : lines) {
      dom::element root;
      json::Error err;
      if (!json::Parse(parser_, l.text, &root, &err)) continue;
      std::vector<dom::element> items;
      ValidationResult scratch;
      if (!Unwrap(root, scratch, &items)) continue;
      CollectMarkings(items, &ctx);
    }
    size_t index = 0;
    for (const auto& l : lines) {
      dom::element root;
      json::Error err;
      if (!json::Parse(parser_, l.text, &root, &err)) {
        r.diagnostics.push_back({Severity::kError, index, "", "(line " + std::to_string(l.number) + ")",
                                 err.rule, err.section, err.message});
        ++index;
        ++r.total;
        ++r.rejected;
        continue;
      }
      std::vector<dom::element> items;
      ValidationResult line_result;
      if (!Unwrap(root, line_result, &items)) {
        for (auto& d : line_result.diagnostics) {
          d.index = index;
          d.path = "(line " + std::to_string(l.number) + ")";
          r.diagnostics.push_back(std::move(d));
        }
        ++index;
        ++r.total;
        ++r.rejected;
        continue;
      }
      CheckItemsWith(items, index, ctx, r);
      index += items.size();
    }
  }

  // Finds the list of objects in a parsed document. Reports document errors.
  bool Unwrap(dom::element root, ValidationResult& r, std::vector<dom::element>* items) {
    dom::object obj;
    if (root.get(obj)) {
      DocError(r, "document-shape", std::string(kSecBundle) + "; TAXII 2.1 §3.7 Envelope",
               "the top-level value must be a STIX bundle, a TAXII envelope or a STIX object, not " +
                   std::string(root.is_array() ? "a JSON array" : "a JSON scalar"));
      return false;
    }
    dom::element type_el, id_el, objects_el;
    bool has_type = !root["type"].get(type_el);
    bool has_id = !root["id"].get(id_el);
    bool has_objects = !root["objects"].get(objects_el);
    std::string_view type, id;
    if (has_type && type_el.get(type)) type = {};
    if (has_id && id_el.get(id)) id = {};
    bool bundle_like = type == "bundle" || (!has_type && has_id && id.starts_with("bundle--"));
    if (!has_type && !has_id && (has_objects || obj.size() == 0 || !root["more"].error())) {
      // TAXII envelope (TAXII 2.1 §3.7): {"more": bool, "next": str, "objects": [...]}
      if (!has_objects) return true;
      return Objects(objects_el, r, items, "TAXII 2.1 §3.7 Envelope");
    }
    if (!bundle_like) {
      items->push_back(root);
      return true;
    }
    bool ok = true;
    std::string dup_path, dup_name;
    dom::object top = obj;
    {
      // duplicate members of the bundle object itself (objects are checked one by one later)
      std::vector<std::string_view> keys;
      for (auto f : top) keys.push_back(f.key);
      std::sort(keys.begin(), keys.end());
      auto it = std::adjacent_find(keys.begin(), keys.end());
      if (it != keys.end()) {
        DocError(r, "json-duplicate-key", "RFC 8259 §4; RFC 7493 §2.3",
                 "bundle member \"" + std::string(*it) + "\" appears more than once");
        ok = false;
      }
    }
    if (!has_type) {
      DocError(r, "bundle-type", std::string(kSecBundle), "bundle property \"type\" is required and must be \"bundle\"");
      ok = false;
    }
    IdParts parts;
    if (!has_id) {
      DocError(r, "bundle-id", std::string(kSecBundle), "bundle property \"id\" is required");
      ok = false;
    } else if (id.empty() || !SplitId(id, &parts) || parts.type != "bundle" || UuidVersion(parts.uuid) == 0) {
      DocError(r, "bundle-id", std::string(kSecBundle) + "; §2.9 Identifier",
               "bundle id must be \"bundle--<UUID>\", found \"" + std::string(id) + "\"");
      ok = false;
    }
    if (!ok) return false;
    if (!has_objects) return true;  // a bundle without objects is valid (§8)
    return Objects(objects_el, r, items, std::string(kSecBundle));
  }

  bool Objects(dom::element objects, ValidationResult& r, std::vector<dom::element>* items,
               const std::string& section) {
    dom::array arr;
    if (objects.get(arr)) {
      DocError(r, "objects-not-list", section, "\"objects\" must be a list of STIX objects");
      return false;
    }
    if (arr.size() == 0) {
      DocError(r, "empty-list", section + "; §2.12 List", "\"objects\" must not be an empty list; omit it instead");
      return false;
    }
    if (arr.size() > limits_.max_objects) {
      DocError(r, "limit-objects", "limits (max_objects)",
               "document holds " + std::to_string(arr.size()) + " objects; the limit is " +
                   std::to_string(limits_.max_objects));
      return false;
    }
    items->reserve(arr.size());
    for (dom::element e : arr) items->push_back(e);
    return true;
  }

  static void CollectMarkings(const std::vector<dom::element>& items, DocumentContext* ctx) {
    for (dom::element e : items) {
      std::string_view type, id;
      if (!e["type"].get(type) && type == "marking-definition" && !e["id"].get(id)) {
        ctx->marking_ids.emplace(id);
      }
    }
  }

  void CheckItems(const std::vector<dom::element>& items, size_t first_index, ValidationResult& r) {
    DocumentContext ctx;
    ctx.lookup = lookup_;
    CollectMarkings(items, &ctx);
    CheckItemsWith(items, first_index, ctx, r);
  }

  void CheckItemsWith(const std::vector<dom::element>& items, size_t first_index, const DocumentContext& ctx,
                      ValidationResult& r) {
    size_t index = first_index;
    for (dom::element e : items) {
      ++r.total;
      ObjectChecker checker(index, ctx, &r.diagnostics);
      Object obj;
      bool ok = checker.Check(e, &obj);
      std::string compact;
      if (ok) {
        compact = json::Compact(e);
        if (compact.size() > limits_.max_object_bytes) {
          checker.Error("", "limit-object-size", "limits (max_object_bytes); TAXII 2.1 max_content_length",
                        "object is " + std::to_string(compact.size()) + " bytes; the limit is " +
                            std::to_string(limits_.max_object_bytes));
          ok = false;
        }
      }
      if (ok) {
        obj.json = std::move(compact);
        r.objects.push_back(std::move(obj));
      } else {
        ++r.rejected;
      }
      ++index;
    }
  }

  Limits limits_;
  dom::parser parser_;
  const MarkingLookup* lookup_ = nullptr;
  bool padded_ = false;
};

Validator::Validator(Limits limits) : limits_(limits), impl_(std::make_unique<Impl>(limits)) {}
Validator::~Validator() = default;

ValidationResult Validator::Validate(std::string_view bytes, Form form) {
  return impl_->Run(bytes, form, marking_lookup_, false);
}

ValidationResult Validator::Validate(const std::string& bytes, Form form) {
  static_assert(kPadding >= simdjson::SIMDJSON_PADDING);
  bool padded = bytes.capacity() - bytes.size() >= kPadding;
  return impl_->Run(bytes, form, marking_lookup_, padded);
}

namespace {
bool HoldsRefs(dom::element e) {
  dom::object o;
  dom::array a;
  if (!e.get(o)) {
    for (auto [k, v] : o) {
      if (k.ends_with("_ref") || k.ends_with("_refs") || HoldsRefs(v)) return true;
    }
  } else if (!e.get(a)) {
    for (auto x : a) {
      if (HoldsRefs(x)) return true;
    }
  }
  return false;
}
}  // namespace

std::string PolicyView(std::string_view text) {
  thread_local dom::parser p;
  dom::element e;
  dom::object o;
  if (p.parse(text.data(), text.size()).get(e) || e.get(o)) return std::string(text);
  std::string out = "{";
  for (auto [k, v] : o) {
    bool keep = k == "type" || k == "id" || k == "spec_version" || k == "created" || k == "modified" || k == "revoked" ||
                k == "object_marking_refs" || k == "granular_markings" || k.ends_with("_ref") || k.ends_with("_refs");
    if (k == "extensions") {
      // tearline's own, and every extension that refers to objects (e.g. archive-ext contains_refs).
      dom::object exts;
      std::string kept;
      if (!v.get(exts)) {
        for (auto [ek, ev] : exts) {
          if (ek != kTearlineExtensionId && !HoldsRefs(ev)) continue;
          kept += kept.empty() ? "" : ",";
          json::AppendQuoted(kept, ek);
          kept += ":" + json::Compact(ev);
        }
      }
      if (!kept.empty()) {
        out += out.size() > 1 ? "," : "";
        json::AppendQuoted(out, k);
        out += ":{" + kept + "}";
      }
      continue;
    }
    if (!keep && !HoldsRefs(v)) continue;
    out += out.size() > 1 ? "," : "";
    json::AppendQuoted(out, k);
    out += ':';
    std::string_view str;
    if (!v.get(str)) json::AppendQuoted(out, str);  // most kept members are strings
    else out += json::Compact(v);
  }
  return out + "}";
}

std::string CanonicalJson(std::string_view text) {
  std::string out;
  CanonicalJsonInto(out, text);
  return out;
}

bool CanonicalJsonInto(std::string& out, std::string_view text) {
  thread_local dom::parser p;
  struct Shrink {  // a parser grown by a large document does not keep that memory
    dom::parser& p;
    ~Shrink() {
      if (p.capacity() > (size_t{4} << 20)) p = dom::parser{};
    }
  };
  Shrink shrink{p};
  dom::element e;
  json::Error err;
  if (!json::Parse(p, text, &e, &err)) return false;
  json::CanonicalInto(out, e);
  return true;
}

void AppendJsonString(std::string& out, std::string_view s) { json::AppendQuoted(out, s); }

bool JsonEqual(std::string_view a, std::string_view b) {
  if (a == b) return true;
  dom::parser pa, pb;
  dom::element ea, eb;
  json::Error err;
  if (!json::Parse(pa, a, &ea, &err) || !json::Parse(pb, b, &eb, &err)) return false;
  return json::Equal(ea, eb);
}

bool IsRequiredProperty(std::string_view type, std::string_view property) {
  if (property == "type" || property == "id") return true;
  const schema::TypeSpec* spec = schema::FindType(type);
  schema::Category cat = spec ? spec->category : schema::Category::kSdo;  // custom: the SDO common properties
  auto info = schema::FindProperty(spec, cat, property);
  return info.prop && info.prop->required;
}

}  // namespace tearline::stix
