#include "stix/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

namespace tearline::stix::json {
namespace dom = simdjson::dom;

namespace {

// After simdjson reports a string error, tell a lone surrogate escape
// (I-JSON) from an unescaped control character (RFC 8259 §7).
bool HasLoneSurrogateEscape(std::string_view t) {
  auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  for (size_t i = 0; i + 6 <= t.size(); ++i) {
    if (t[i] != '\\') continue;
    if (t[i + 1] != 'u') {
      ++i;  // skip the escaped character
      continue;
    }
    if (!hex(t[i + 2]) || !hex(t[i + 3]) || !hex(t[i + 4]) || !hex(t[i + 5])) continue;
    unsigned v = std::stoul(std::string(t.substr(i + 2, 4)), nullptr, 16);
    if (v >= 0xDC00 && v <= 0xDFFF) return true;  // low surrogate without a high one
    if (v >= 0xD800 && v <= 0xDBFF) {
      if (i + 12 > t.size() || t[i + 6] != '\\' || t[i + 7] != 'u') return true;
      unsigned lo = std::stoul(std::string(t.substr(i + 8, 4)), nullptr, 16);
      if (lo < 0xDC00 || lo > 0xDFFF) return true;
      i += 11;
    } else {
      i += 5;
    }
  }
  return false;
}

// A bare NaN / Infinity where a value is expected (outside strings, roughly).
bool HasNonFiniteLiteral(std::string_view t) {
  for (std::string_view word : {"NaN", "Infinity"}) {
    for (size_t p = t.find(word); p != std::string_view::npos; p = t.find(word, p + 1)) {
      size_t q = p;
      while (q > 0 && (t[q - 1] == ' ' || t[q - 1] == '\t' || t[q - 1] == '\n' || t[q - 1] == '\r' || t[q - 1] == '-')) --q;
      if (q > 0 && (t[q - 1] == ':' || t[q - 1] == '[' || t[q - 1] == ',')) return true;
    }
  }
  return false;
}

Error MapError(simdjson::error_code code, std::string_view text, size_t max_depth) {
  using simdjson::error_code;
  if (text.size() >= 2 && ((static_cast<unsigned char>(text[0]) == 0xFF && static_cast<unsigned char>(text[1]) == 0xFE) ||
                           (static_cast<unsigned char>(text[0]) == 0xFE && static_cast<unsigned char>(text[1]) == 0xFF))) {
    return {"input is UTF-16 (byte order mark found); JSON exchanged between systems must be UTF-8",
            "RFC 8259 §8.1", "json-utf8"};
  }
  if (code != error_code::UTF8_ERROR && code != error_code::DEPTH_ERROR && HasNonFiniteLiteral(text)) {
    return {"NaN and Infinity are not JSON numbers", "RFC 8259 §6", "json-number"};
  }
  switch (code) {
    case error_code::EMPTY:
      return {"empty input: no JSON value found", "RFC 8259 §2", "json-empty"};
    case error_code::UTF8_ERROR:
      return {"input is not valid UTF-8 (invalid, overlong or non-UTF-8 encoded bytes)",
              "RFC 8259 §8.1; RFC 3629 §3", "json-utf8"};
    case error_code::DEPTH_ERROR:
      return {"JSON nesting is deeper than the limit of " + std::to_string(max_depth) +
                  " levels",
              "RFC 8259 §9 (parser limits)", "limit-depth"};
    case error_code::UNCLOSED_STRING:
      return {"unterminated string: the document is truncated or a quote is missing", "RFC 8259 §2; §7",
              "json-syntax"};
    case error_code::STRING_ERROR:
    case error_code::UNESCAPED_CHARS:
      if (HasLoneSurrogateEscape(text)) {
        return {"string contains an escaped lone surrogate (not a Unicode scalar value)",
                "RFC 8259 §8.2; RFC 7493 §2.1", "json-surrogate"};
      }
      return {"malformed string: unescaped control character, bad escape or unterminated string",
              "RFC 8259 §7", "json-string"};
    case error_code::NUMBER_ERROR:
    case error_code::NUMBER_OUT_OF_RANGE:
      return {"malformed or out-of-range number (NaN and Infinity are not JSON)", "RFC 8259 §6",
              "json-number"};
    case error_code::T_ATOM_ERROR:
    case error_code::F_ATOM_ERROR:
    case error_code::N_ATOM_ERROR:
      return {"invalid literal (only true, false and null; NaN/Infinity are not JSON)",
              "RFC 8259 §3; §6", "json-literal"};
    case error_code::CAPACITY:
      return {"document larger than the parser capacity", "limits", "limit-size"};
    default:
      return {std::string("malformed JSON structure (") + simdjson::error_message(code) +
                  "): missing or extra commas, brackets, comments or trailing content",
              "RFC 8259 §2; §4; §5", "json-syntax"};
  }
}

// One step of the path from the root to the element being walked.
struct Step {
  std::string_view key;  // empty for an array index
  size_t index;
};

std::string FormatPath(const std::vector<Step>& steps) {
  std::string p;
  for (const auto& s : steps) {
    if (s.key.empty()) {
      p += "[" + std::to_string(s.index) + "]";
    } else {
      if (!p.empty()) p += '.';
      p.append(s.key);
    }
  }
  return p.empty() ? "(top level)" : p;
}

// True if two members of `obj` share a name. Small objects (the common case)
// compare pairwise with no allocation; large ones sort a scratch vector.
bool HasDuplicate(dom::object obj, std::string_view* dup) {
  size_t n = obj.size();
  if (n < 2) return false;
  if (n <= 24) {
    std::string_view keys[24];
    size_t k = 0;
    for (auto field : obj) {
      for (size_t j = 0; j < k; ++j) {
        if (keys[j].size() == field.key.size() && keys[j] == field.key) {
          *dup = field.key;
          return true;
        }
      }
      keys[k++] = field.key;
    }
    return false;
  }
  thread_local std::vector<std::string_view> keys;
  keys.clear();
  for (auto field : obj) keys.push_back(field.key);
  std::sort(keys.begin(), keys.end());
  auto it = std::adjacent_find(keys.begin(), keys.end());
  if (it == keys.end()) return false;
  *dup = *it;
  return true;
}

bool DupWalk(dom::element e, std::vector<Step>& steps, std::string* out_path, std::string* name) {
  if (e.is_object()) {
    dom::object obj = e.get_object().value_unsafe();
    std::string_view dup;
    if (HasDuplicate(obj, &dup)) {
      *out_path = FormatPath(steps);
      *name = std::string(dup);
      return true;
    }
    for (auto field : obj) {
      if (!field.value.is_object() && !field.value.is_array()) continue;
      steps.push_back({field.key, 0});
      if (DupWalk(field.value, steps, out_path, name)) return true;
      steps.pop_back();
    }
  } else if (e.is_array()) {
    dom::array arr = e.get_array().value_unsafe();
    size_t i = 0;
    for (dom::element child : arr) {
      if (child.is_object() || child.is_array()) {
        steps.push_back({{}, i});
        if (DupWalk(child, steps, out_path, name)) return true;
        steps.pop_back();
      }
      ++i;
    }
  }
  return false;
}

// UTF-16 code unit order for JCS member sorting.
bool Utf16Less(std::string_view a, std::string_view b) {
  auto units = [](std::string_view s) {
    std::vector<uint16_t> u;
    for (size_t i = 0; i < s.size();) {
      unsigned char c = s[i];
      uint32_t cp;
      int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
      for (int k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (s[i + k] & 0x3F);
      i += len;
      if (cp >= 0x10000) {
        cp -= 0x10000;
        u.push_back(static_cast<uint16_t>(0xD800 + (cp >> 10)));
        u.push_back(static_cast<uint16_t>(0xDC00 + (cp & 0x3FF)));
      } else {
        u.push_back(static_cast<uint16_t>(cp));
      }
    }
    return u;
  };
  // ASCII fast path: byte order equals code unit order.
  bool ascii = std::all_of(a.begin(), a.end(), [](char c) { return (c & 0x80) == 0; }) &&
               std::all_of(b.begin(), b.end(), [](char c) { return (c & 0x80) == 0; });
  if (ascii) return a < b;
  auto ua = units(a), ub = units(b);
  return std::lexicographical_compare(ua.begin(), ua.end(), ub.begin(), ub.end());
}

// ECMAScript Number::toString for finite doubles (RFC 8785 §3.2.2.3).
void AppendEsNumber(std::string& out, double d) {
  if (d == 0) {
    out += '0';
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view s(buf, res.ptr - buf);
  bool neg = s[0] == '-';
  if (neg) s.remove_prefix(1);
  size_t epos = s.find('e');
  std::string digits;
  for (char c : s.substr(0, epos)) {
    if (c != '.') digits += c;
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int exp = std::stoi(std::string(s.substr(epos + 1)));
  int k = static_cast<int>(digits.size());
  int n = exp + 1;
  if (neg) out += '-';
  if (k <= n && n <= 21) {
    out += digits;
    out.append(n - k, '0');
  } else if (0 < n && n <= 21) {
    out += digits.substr(0, n);
    out += '.';
    out += digits.substr(n);
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(-n, '0');
    out += digits;
  } else {
    out += digits[0];
    if (k > 1) {
      out += '.';
      out += digits.substr(1);
    }
    out += 'e';
    out += n - 1 >= 0 ? '+' : '-';
    out += std::to_string(std::abs(n - 1));
  }
}

}  // namespace

void CanonicalInto(std::string& out, dom::element e) {
  switch (e.type()) {
    case dom::element_type::OBJECT: {
      std::vector<std::pair<std::string_view, dom::element>> members;
      dom::object obj = e.get_object().value_unsafe();
      for (auto f : obj) members.emplace_back(f.key, f.value);
      std::sort(members.begin(), members.end(),
                [](const auto& a, const auto& b) { return Utf16Less(a.first, b.first); });
      out += '{';
      bool first = true;
      for (auto& [k, v] : members) {
        if (!first) out += ',';
        first = false;
        AppendQuoted(out, k);
        out += ':';
        CanonicalInto(out, v);
      }
      out += '}';
      break;
    }
    case dom::element_type::ARRAY: {
      out += '[';
      bool first = true;
      dom::array arr = e.get_array().value_unsafe();
      for (dom::element c : arr) {
        if (!first) out += ',';
        first = false;
        CanonicalInto(out, c);
      }
      out += ']';
      break;
    }
    case dom::element_type::STRING:
      AppendQuoted(out, e.get_string().value_unsafe());
      break;
    case dom::element_type::INT64:
      AppendEsNumber(out, static_cast<double>(e.get_int64().value_unsafe()));
      break;
    case dom::element_type::UINT64:
      AppendEsNumber(out, static_cast<double>(e.get_uint64().value_unsafe()));
      break;
    case dom::element_type::DOUBLE:
      AppendEsNumber(out, e.get_double().value_unsafe());
      break;
    case dom::element_type::BOOL:
      out += e.get_bool().value_unsafe() ? "true" : "false";
      break;
    case dom::element_type::NULL_VALUE:
      out += "null";
      break;
  }
}

namespace {

bool IsNumber(dom::element_type t) {
  return t == dom::element_type::INT64 || t == dom::element_type::UINT64 ||
         t == dom::element_type::DOUBLE;
}

}  // namespace

bool Parse(dom::parser& parser, std::string_view text, dom::element* out, Error* err, bool padded) {
  auto result = parser.parse(text.data(), text.size(), /*realloc_if_needed=*/!padded);
  if (result.error()) {
    *err = MapError(result.error(), text, parser.max_depth());
    return false;
  }
  *out = result.value_unsafe();
  return true;
}

bool FindDuplicateKey(dom::element e, std::string* path, std::string* name) {
  thread_local std::vector<Step> steps;
  steps.clear();
  return DupWalk(e, steps, path, name);
}

std::string Compact(dom::element e) {
  // One builder per thread, reused: its buffer grows once instead of per object.
  thread_local simdjson::internal::string_builder<> builder;
  builder.clear();
  builder.append(e);
  std::string_view out = builder.str();
  return std::string(out);
}

std::string Canonical(dom::element e) {
  std::string out;
  CanonicalInto(out, e);
  return out;
}

bool Equal(dom::element a, dom::element b) {
  auto ta = a.type(), tb = b.type();
  if (IsNumber(ta) && IsNumber(tb)) {
    if (ta == tb && ta == dom::element_type::INT64) return a.get_int64().value_unsafe() == b.get_int64().value_unsafe();
    if (ta == tb && ta == dom::element_type::UINT64) return a.get_uint64().value_unsafe() == b.get_uint64().value_unsafe();
    return a.get_double().value_unsafe() == b.get_double().value_unsafe();
  }
  if (ta != tb) return false;
  switch (ta) {
    case dom::element_type::OBJECT: {
      dom::object oa = a.get_object().value_unsafe(), ob = b.get_object().value_unsafe();
      if (oa.size() != ob.size()) return false;
      for (auto f : oa) {
        dom::element other;
        if (ob.at_key(f.key).get(other)) return false;
        if (!Equal(f.value, other)) return false;
      }
      return true;
    }
    case dom::element_type::ARRAY: {
      dom::array aa = a.get_array().value_unsafe(), ab = b.get_array().value_unsafe();
      if (aa.size() != ab.size()) return false;
      auto ib = ab.begin();
      for (dom::element x : aa) {
        if (!Equal(x, *ib)) return false;
        ++ib;
      }
      return true;
    }
    case dom::element_type::STRING:
      return a.get_string().value_unsafe() == b.get_string().value_unsafe();
    case dom::element_type::BOOL:
      return a.get_bool().value_unsafe() == b.get_bool().value_unsafe();
    default:
      return true;  // null == null
  }
}

void AppendQuoted(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + s.size() + 2);
  out += '"';
  size_t run = 0;  // start of the current run of characters copied as they are
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s, run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
    }
  }
  out.append(s, run, s.size() - run);
  out += '"';
}

}  // namespace tearline::stix::json
