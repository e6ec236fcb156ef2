// STIX 2.1 pattern evaluation (§9.5 comparison and observation operators,
// §9.6 qualifiers, §9.7 type coercion). See Matches() in pattern.h for the
// semantics chosen where the specification leaves room.
#include <arpa/inet.h>
#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <hs.h>
#include <re2/set.h>
#include <climits>
#include <deque>
#include <functional>
#include <set>
#include <unordered_map>

#include "pattern/observations.h"

namespace tearline::pattern {
namespace dom = simdjson::dom;
namespace {

constexpr size_t kMaxBindings = 10000;     // per expression node; bounds AND/FOLLOWEDBY products
constexpr size_t kMaxAssignments = 4096;   // object combinations tried per observation

// ---------- values and coercion ----------

struct Value {
  dom::element el;
  std::string_view key;  // the property name the value came from (for _hex / _bin coercion)
};

bool EndsWith(std::string_view s, std::string_view suf) { return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf; }

bool DecodeBase64(std::string_view in, std::string* out) {
  static constexpr std::string_view kAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    size_t v = kAlpha.find(c);
    if (v == std::string_view::npos) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool DecodeHex(std::string_view in, std::string* out) {
  out->clear();
  if (in.size() % 2) return false;
  for (size_t i = 0; i < in.size(); i += 2) {
    int hi = HexDigit(in[i]), lo = HexDigit(in[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

// Bytes of a property that holds binary data: *_hex as hex, payload_bin/*_bin as base64.
bool PropertyBytes(const Value& v, std::string* out) {
  std::string_view s;
  if (v.el.get(s)) return false;
  if (EndsWith(v.key, "_hex")) return DecodeHex(s, out);
  if (EndsWith(v.key, "_bin")) return DecodeBase64(s, out);
  return false;
}

// ---------- IP networks for ISSUBSET / ISSUPERSET ----------

struct Net {
  int family = 0;  // 4 or 6
  std::array<unsigned char, 16> addr{};
  int prefix = 0;
};

bool ParseNet(std::string_view text, Net* n) {
  int prefix = -1;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || !std::all_of(p.begin(), p.end(), ::isdigit)) return false;
    prefix = 0;
    for (char c : p) prefix = prefix * 10 + (c - '0');
    text = text.substr(0, slash);
  }
  char s[INET6_ADDRSTRLEN + 8];  // the address part, NUL-terminated for inet_pton
  if (text.size() >= sizeof s || text.find('\0') != std::string_view::npos) return false;
  std::memcpy(s, text.data(), text.size());
  s[text.size()] = '\0';
  if (inet_pton(AF_INET, s, n->addr.data()) == 1) {
    n->family = 4;
    n->prefix = prefix < 0 ? 32 : prefix;
    return n->prefix <= 32;
  }
  if (inet_pton(AF_INET6, s, n->addr.data()) == 1) {
    n->family = 6;
    n->prefix = prefix < 0 ? 128 : prefix;
    return n->prefix <= 128;
  }
  return false;
}

// True if network `inner` lies within network `outer`.
bool NetWithin(const Net& inner, const Net& outer) {
  if (inner.family != outer.family || inner.prefix < outer.prefix) return false;
  int full = outer.prefix / 8, rest = outer.prefix % 8;
  if (std::memcmp(inner.addr.data(), outer.addr.data(), full) != 0) return false;
  if (rest == 0) return true;
  unsigned char mask = static_cast<unsigned char>(0xFF << (8 - rest));
  return (inner.addr[full] & mask) == (outer.addr[full] & mask);
}

// ---------- LIKE (SQL wildcards % and _, _ is one UTF-8 character) ----------

size_t Utf8Len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

bool Like(std::string_view s, std::string_view p) {
  size_t si = 0, pi = 0, star_p = std::string_view::npos, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '%') {
      star_p = pi++;
      star_s = si;
    } else if (pi < p.size() && p[pi] == '_') {
      si += Utf8Len(static_cast<unsigned char>(s[si]));
      ++pi;
    } else if (pi < p.size() && p[pi] == s[si]) {
      ++si;
      ++pi;
    } else if (star_p != std::string_view::npos) {
      pi = star_p + 1;
      star_s += Utf8Len(static_cast<unsigned char>(s[star_s]));
      si = star_s;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '%') ++pi;
  return pi == p.size();
}

// ---------- the evaluation context ----------

class Evaluator {
 public:
  explicit Evaluator(const Observations::Impl& obs) : obs_(obs) {}

  //! Restricts observation expressions (by node) to the listed observations; nodes
  //! not in the map see every observation. The bulk matcher's candidate lists.
  void Restrict(const std::unordered_map<const ObsExpr*, std::vector<uint32_t>>* only) { only_ = only; }

  Result<bool> Run(const ObsExpr& root) {
    auto b = Eval(root);
    if (!error_.empty()) return Status::Invalid(error_);
    return !b.empty();
  }

  Result<std::vector<MatchResult>> All(const ObsExpr& root) {
    auto bindings = Eval(root);
    if (!error_.empty()) return Status::Invalid(error_);
    std::vector<MatchResult> out;
    out.reserve(bindings.size());
    for (auto& b : bindings) {
      MatchResult m;
      m.observations.assign(b.obs.begin(), b.obs.end());
      m.first_us = b.first_us;
      m.last_us = b.last_us;
      for (uint32_t i : b.obs) m.count += obs_.list[i].count;
      out.push_back(std::move(m));
    }
    return out;
  }

  //! Whether comparison expression `c` (object types `types`) holds for observation `i`.
  bool MatchOne(const CompExpr& c, const std::vector<std::string_view>& types, size_t i) {
    return MatchesObservation(c, types, obs_.list[i]);
  }

  //! Values of `path` in the objects of observation `i` (for the matcher's keys).
  void PathValues(size_t i, const ObjectPath& path, std::vector<Value>* out) {
    const Observation& o = obs_.list[i];
    for (dom::element sco : o.roots) {
      std::string_view t;
      if (sco["type"].get(t) || t != path.type) continue;
      Resolve(o, sco, path.steps, 0, "", false, out);
    }
  }

  //! Values of `path` in one object `sco` (of the path's type) of observation `o`.
  void ValuesOf(const Observation& o, dom::element sco, const ObjectPath& path, std::vector<Value>* out) {
    Resolve(o, sco, path.steps, 0, "", false, out);
  }

 private:
  struct Binding {
    std::vector<uint32_t> obs;  // sorted observation indexes
    int64_t first_us = 0, last_us = 0;
    int64_t count = 0;
  };

  // ----- observation expressions -----

  std::vector<Binding> Eval(const ObsExpr& e) {
    std::vector<Binding> out;
    switch (e.kind) {
      case ObsExpr::Kind::kObservation: {
        std::vector<std::string_view> types;
        Types(*e.comparison, &types);
        const std::vector<uint32_t>* only = nullptr;
        if (only_) {
          auto it = only_->find(&e);
          if (it != only_->end()) only = &it->second;
        }
        size_t n = only ? only->size() : obs_.list.size();
        for (size_t j = 0; j < n && out.size() < kMaxBindings; ++j) {
          uint32_t i = only ? (*only)[j] : static_cast<uint32_t>(j);
          if (MatchesObservation(*e.comparison, types, obs_.list[i])) {
            const Observation& o = obs_.list[i];
            out.push_back({{i}, o.first_us, o.last_us, o.count});
          }
        }
        break;
      }
      case ObsExpr::Kind::kOr:
        for (const auto& c : e.children) {
          auto part = Eval(*c);
          out.insert(out.end(), part.begin(), part.end());
        }
        break;
      case ObsExpr::Kind::kAnd:
      case ObsExpr::Kind::kFollowedBy: {
        out = Eval(*e.children[0]);
        for (size_t k = 1; k < e.children.size(); ++k) {
          out = Join(out, Eval(*e.children[k]), e.kind == ObsExpr::Kind::kFollowedBy);
        }
        break;
      }
    }
    for (const auto& q : e.qualifiers) out = Qualify(std::move(out), q);
    Dedupe(out);
    return out;
  }

  static bool Disjoint(const Binding& a, const Binding& b) {
    size_t i = 0, j = 0;
    while (i < a.obs.size() && j < b.obs.size()) {
      if (a.obs[i] == b.obs[j]) return false;
      a.obs[i] < b.obs[j] ? ++i : ++j;
    }
    return true;
  }

  static Binding Merge(const Binding& a, const Binding& b) {
    Binding m;
    std::merge(a.obs.begin(), a.obs.end(), b.obs.begin(), b.obs.end(), std::back_inserter(m.obs));
    m.first_us = std::min(a.first_us, b.first_us);
    m.last_us = std::max(a.last_us, b.last_us);
    m.count = a.count + b.count;
    return m;
  }

  // AND: distinct observations satisfying both sides. FOLLOWEDBY: additionally
  // everything on the left was observed no later than the right began.
  static std::vector<Binding> Join(const std::vector<Binding>& left, const std::vector<Binding>& right, bool ordered) {
    std::vector<Binding> out;
    for (const auto& l : left) {
      for (const auto& r : right) {
        if (ordered && l.last_us > r.first_us) continue;
        if (!Disjoint(l, r)) continue;
        out.push_back(Merge(l, r));
        if (out.size() >= kMaxBindings) return out;
      }
    }
    return out;
  }

  std::vector<Binding> Qualify(std::vector<Binding> in, const Qualifier& q) {
    std::vector<Binding> out;
    switch (q.kind) {
      case Qualifier::Kind::kWithin: {
        auto window = static_cast<int64_t>(q.seconds * 1e6);
        for (auto& b : in) {
          if (b.last_us - b.first_us <= window) out.push_back(std::move(b));
        }
        break;
      }
      case Qualifier::Kind::kStartStop: {
        auto start = ParseTimestamp(q.start), stop = ParseTimestamp(q.stop);
        int64_t s = start ? ToMicros(*start) : 0, t = stop ? ToMicros(*stop) : 0;
        for (auto& b : in) {
          if (b.first_us >= s && b.last_us < t) out.push_back(std::move(b));
        }
        break;
      }
      case Qualifier::Kind::kRepeats: {
        // For each match (in time order) take it and the following disjoint matches
        // until number_observed adds up to n: the tightest repetition starting there.
        std::sort(in.begin(), in.end(), [](const Binding& a, const Binding& b) { return a.first_us < b.first_us; });
        for (size_t i = 0; i < in.size() && out.size() < kMaxBindings; ++i) {
          Binding acc = in[i];
          for (size_t j = i + 1; j < in.size() && acc.count < q.times; ++j) {
            if (Disjoint(acc, in[j])) acc = Merge(acc, in[j]);
          }
          if (acc.count >= q.times) {
            acc.count = 1;  // a repetition counts once in an enclosing REPEATS
            out.push_back(std::move(acc));
          }
        }
        break;
      }
    }
    return out;
  }

  static void Dedupe(std::vector<Binding>& v) {
    std::sort(v.begin(), v.end(), [](const Binding& a, const Binding& b) { return a.obs < b.obs; });
    v.erase(std::unique(v.begin(), v.end(), [](const Binding& a, const Binding& b) { return a.obs == b.obs; }), v.end());
  }

  // ----- comparison expressions against one observation -----

  static void Types(const CompExpr& c, std::vector<std::string_view>* out) {
    if (c.kind == CompExpr::Kind::kCmp) {
      if (std::find(out->begin(), out->end(), c.path.type) == out->end()) out->push_back(c.path.type);
    } else {
      for (const auto& ch : c.children) Types(*ch, out);
    }
  }

  // Comparisons on the same object type bind to one object: try every
  // assignment of an object per type and accept if one satisfies the tree.
  bool MatchesObservation(const CompExpr& c, const std::vector<std::string_view>& tv, const Observation& o) {
    candidates_.resize(tv.size());
    for (auto& v : candidates_) v.clear();
    for (dom::element sco : o.roots) {
      std::string_view t;
      if (sco["type"].get(t)) continue;
      for (size_t k = 0; k < tv.size(); ++k) {
        if (tv[k] == t) candidates_[k].push_back(sco);
      }
    }
    // Quick exit: no object of any referenced type means every comparison is false.
    bool any = false;
    for (const auto& v : candidates_) any |= !v.empty();
    if (!any) return Test(c, o, Assignment{});
    std::vector<size_t> pick(tv.size(), 0);
    Assignment assignment;
    for (size_t tries = 0; tries < kMaxAssignments; ++tries) {
      assignment.clear();
      for (size_t k = 0; k < tv.size(); ++k) {
        assignment.emplace_back(tv[k], candidates_[k].empty() ? nullptr : &candidates_[k][pick[k]]);
      }
      if (Test(c, o, assignment)) return true;
      size_t k = 0;
      for (; k < tv.size(); ++k) {
        if (candidates_[k].size() > 1 && ++pick[k] < candidates_[k].size()) break;
        pick[k] = 0;
      }
      if (k == tv.size()) return false;
    }
    return false;
  }

  using Assignment = std::vector<std::pair<std::string_view, const dom::element*>>;
  std::vector<std::vector<dom::element>> candidates_;

  bool Test(const CompExpr& c, const Observation& o, const Assignment& a) {
    switch (c.kind) {
      case CompExpr::Kind::kAnd:
        for (const auto& ch : c.children) {
          if (!Test(*ch, o, a)) return false;
        }
        return true;
      case CompExpr::Kind::kOr:
        for (const auto& ch : c.children) {
          if (Test(*ch, o, a)) return true;
        }
        return false;
      case CompExpr::Kind::kCmp:
        break;
    }
    const dom::element* obj = nullptr;
    for (const auto& [t, e] : a) {
      if (t == c.path.type) obj = e;
    }
    if (!obj) return false;
    std::vector<Value> values;
    Resolve(o, *obj, c.path.steps, 0, "", false, &values);
    if (c.op == CmpOp::kExists) return !values.empty() != c.negated;
    for (const auto& v : values) {
      if (Compare(c, v) != c.negated) return true;
    }
    return false;
  }

  // Follows the path; *_ref values and members of *_refs lists are dereferenced
  // to the objects they name within the observation.
  void Resolve(const Observation& o, dom::element cur, const std::vector<PathStep>& steps, size_t i,
               std::string_view key, bool from_refs, std::vector<Value>* out) {
    if (i == steps.size()) {
      out->push_back({cur, key});
      return;
    }
    const PathStep& s = steps[i];
    if (s.kind == PathStep::Kind::kKey) {
      dom::object obj;
      dom::element next;
      if (cur.get(obj) || obj[s.key].get(next)) return;
      std::string_view ref;
      if (EndsWith(s.key, "_ref") && !next.get(ref)) {
        const dom::element* found = o.refs->Find(ref);
        if (!found) return;
        next = *found;
      }
      Resolve(o, next, steps, i + 1, s.key, EndsWith(s.key, "_refs"), out);
      return;
    }
    dom::array arr;
    if (cur.get(arr)) return;
    auto visit = [&](dom::element item) {
      std::string_view ref;
      if (from_refs && !item.get(ref)) {
        const dom::element* found = o.refs->Find(ref);
        if (!found) return;
        item = *found;
      }
      Resolve(o, item, steps, i + 1, key, false, out);
    };
    if (s.kind == PathStep::Kind::kAnyIndex) {
      for (dom::element item : arr) visit(item);
    } else {
      dom::element item;
      if (s.index >= 0 && !arr.at(static_cast<size_t>(s.index)).get(item)) visit(item);
    }
  }

  // One property value against the comparison's literal(s), §9.7 coercions.
  bool Compare(const CompExpr& c, const Value& v) {
    switch (c.op) {
      case CmpOp::kIn:
        for (const auto& lit : c.values) {
          if (Order(lit, v) == 0) return true;
        }
        return false;
      case CmpOp::kEq: return Order(c.values[0], v) == 0;
      case CmpOp::kNe: {
        int r = Order(c.values[0], v);
        return r != 0 && r != kIncomparable;
      }
      case CmpOp::kLt: { int r = Order(c.values[0], v); return r != kIncomparable && r < 0; }
      case CmpOp::kLe: { int r = Order(c.values[0], v); return r != kIncomparable && r <= 0; }
      case CmpOp::kGt: { int r = Order(c.values[0], v); return r != kIncomparable && r > 0; }
      case CmpOp::kGe: { int r = Order(c.values[0], v); return r != kIncomparable && r >= 0; }
      case CmpOp::kLike: {
        std::string_view s;
        return !v.el.get(s) && Like(s, c.values[0].text);
      }
      case CmpOp::kMatches: {
        std::string_view s;
        if (v.el.get(s)) return false;
        const RE2* re = Regex(c.values[0].text);
        return re && RE2::PartialMatch(s, *re);
      }
      case CmpOp::kIsSubset:
      case CmpOp::kIsSuperset: {
        std::string_view s;
        Net value, lit;
        if (v.el.get(s) || !ParseNet(s, &value) || !ParseNet(c.values[0].text, &lit)) return false;
        return c.op == CmpOp::kIsSubset ? NetWithin(value, lit) : NetWithin(lit, value);
      }
      case CmpOp::kExists: return true;
    }
    return false;
  }

  static constexpr int kIncomparable = 2;

  // Orders the property value against the literal: -1, 0, 1, or kIncomparable
  // when the types do not coerce (then only != ... is false too).
  int Order(const Literal& lit, const Value& v) {
    auto cmp = [](auto a, auto b) { return a < b ? -1 : a > b ? 1 : 0; };
    switch (lit.kind) {
      case Literal::Kind::kString: {
        std::string_view s;
        if (v.el.get(s)) return kIncomparable;
        return cmp(s.compare(lit.text), 0);
      }
      case Literal::Kind::kInt:
      case Literal::Kind::kFloat: {
        double lhs = lit.kind == Literal::Kind::kInt ? static_cast<double>(lit.int_value) : lit.float_value;
        int64_t i;
        uint64_t u;
        double d;
        if (lit.kind == Literal::Kind::kInt && !v.el.get(i)) return cmp(i, lit.int_value);
        if (!v.el.get(u)) return cmp(static_cast<double>(u), lhs);
        if (!v.el.get(d)) return cmp(d, lhs);
        return kIncomparable;
      }
      case Literal::Kind::kBool: {
        bool b;
        if (v.el.get(b)) return kIncomparable;
        return b == lit.bool_value ? 0 : kIncomparable;
      }
      case Literal::Kind::kTimestamp: {
        std::string_view s;
        if (v.el.get(s)) return kIncomparable;
        auto a = ParseTimestamp(s), b = ParseTimestamp(lit.text);
        if (!a || !b) return kIncomparable;
        return CompareTimestamps(*a, *b);
      }
      case Literal::Kind::kHex:
      case Literal::Kind::kBinary: {
        std::string lit_bytes, val_bytes;
        bool ok = lit.kind == Literal::Kind::kHex ? DecodeHex(lit.text, &lit_bytes) : DecodeBase64(lit.text, &lit_bytes);
        if (!ok) return kIncomparable;
        if (!PropertyBytes(v, &val_bytes)) {
          // Not a binary/hex property: a hex literal still compares with a hex string.
          std::string_view s;
          if (lit.kind != Literal::Kind::kHex || v.el.get(s) || !DecodeHex(s, &val_bytes)) return kIncomparable;
        }
        return cmp(val_bytes.compare(lit_bytes), 0);
      }
    }
    return kIncomparable;
  }

  const RE2* Regex(const std::string& text) {
    auto it = regex_cache_.find(text);
    if (it != regex_cache_.end()) return it->second.get();
    RE2::Options opt;
    opt.set_log_errors(false);
    opt.set_dot_nl(false);
    auto re = std::make_unique<RE2>(text, opt);
    if (!re->ok()) {
      if (error_.empty()) error_ = "MATCHES regular expression '" + text + "' is not supported: " + re->error();
      regex_cache_[text] = nullptr;
      return nullptr;
    }
    return (regex_cache_[text] = std::move(re)).get();
  }

  const Observations::Impl& obs_;
  const std::unordered_map<const ObsExpr*, std::vector<uint32_t>>* only_ = nullptr;
  std::map<std::string, std::unique_ptr<RE2>> regex_cache_;
  std::string error_;

 public:
  const std::string& error() const { return error_; }
};

// ---------- the bulk matcher's anchors ----------

void CompTypes(const CompExpr& c, std::set<std::string_view>* out) {
  if (c.kind == CompExpr::Kind::kCmp) {
    out->insert(c.path.type);
  } else {
    for (const auto& ch : c.children) CompTypes(*ch, out);
  }
}

// Canonical text of a value for equality keys, appended to `out`: numbers that are
// integral compare equal whatever their JSON form (1024 == 1024.0), as the evaluator does.
bool AppendValueKey(dom::element v, std::string* out) {
  std::string_view s;
  int64_t i;
  uint64_t u;
  double d;
  bool b;
  if (!v.get(s)) out->append("s:").append(s);
  else if (!v.get(i)) out->append("n:").append(std::to_string(i));
  else if (!v.get(u)) out->append("n:").append(std::to_string(u));
  else if (!v.get(d)) out->append(d == static_cast<double>(static_cast<int64_t>(d)) ? "n:" + std::to_string(static_cast<int64_t>(d)) : "f:" + std::to_string(d));
  else if (!v.get(b)) out->append(b ? "b:true" : "b:false");
  else return false;
  return true;
}

bool LiteralKey(const Literal& l, std::string* out) {
  switch (l.kind) {
    case Literal::Kind::kString: *out = "s:" + l.text; return true;
    case Literal::Kind::kInt: *out = "n:" + std::to_string(l.int_value); return true;
    case Literal::Kind::kFloat:
      *out = l.float_value == static_cast<double>(static_cast<int64_t>(l.float_value))
                 ? "n:" + std::to_string(static_cast<int64_t>(l.float_value))
                 : "f:" + std::to_string(l.float_value);
      return true;
    case Literal::Kind::kBool: *out = l.bool_value ? "b:true" : "b:false"; return true;
    default: return false;  // hex/binary/timestamp equality needs coercion: not anchored
  }
}

// A necessary condition for a comparison to hold: an exact value, an IP network
// (ISSUBSET) or a regular expression (MATCHES, LIKE) on a path.
struct Anchor {
  enum class Kind { kExact, kCidr, kRegex };
  Kind kind = Kind::kExact;
  std::string path;   // ObjectPath::ToString()
  std::string value;  // value key; masked network bytes; regex text
  int family = 0, prefix = 0;
};

struct AnchorSet {
  bool any = true;  // true: no necessary condition known
  std::vector<Anchor> anchors;
};

// Appends the address bytes of `n` with everything after `prefix` bits cleared.
void AppendMaskedNet(const Net& n, int prefix, std::string* out) {
  size_t bytes = n.family == 4 ? 4 : 16;
  for (size_t i = 0; i < bytes; ++i) {
    int keep = std::clamp(prefix - static_cast<int>(i) * 8, 0, 8);
    out->push_back(static_cast<char>(n.addr[i] & static_cast<unsigned char>(keep == 0 ? 0 : 0xFF << (8 - keep))));
  }
}

std::string MaskedNet(const Net& n, int prefix) {
  std::string out;
  AppendMaskedNet(n, prefix, &out);
  return out;
}

// Hash index from "path\x1fvalue" keys to posting lists (indicator or leaf ids).
// Open addressing over (64-bit hash, entry) slots: most lookups are misses (an
// observed value no indicator names), and a miss touches one slot and no key.
class KeyIndex {
 public:
  //! The posting list of `key`, created empty if new (build time).
  std::vector<uint32_t>& operator[](std::string_view key) {
    if ((entries_.size() + 1) * 10 > slots_.size() * 7) Grow();
    uint64_t h = Hash(key);
    auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      Slot& s = slots_[i];
      if (s.entry == 0) {
        entries_.push_back({std::string(key), {}, h});
        s = {tag, static_cast<uint32_t>(entries_.size())};
        return entries_.back().list;
      }
      if (s.tag == tag && entries_[s.entry - 1].key == key) return entries_[s.entry - 1].list;
    }
  }

  void clear() {
    slots_.clear();
    entries_.clear();
  }

  static uint64_t Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }
  //! Starts loading the slot a lookup of hash `h` reads first.
  void Prefetch(uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[h & (slots_.size() - 1)]);
  }

  //! The posting list of `key`, or nullptr.
  const std::vector<uint32_t>* find(std::string_view key) const { return find(key, Hash(key)); }

  //! The same with the key's Hash() computed by the caller.
  const std::vector<uint32_t>* find(std::string_view key, uint64_t h) const {
    if (slots_.empty()) return nullptr;
    auto tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      const Slot& s = slots_[i];
      if (s.entry == 0) return nullptr;
      if (s.tag == tag && entries_[s.entry - 1].key == key) return &entries_[s.entry - 1].list;
    }
  }

 private:
  struct Slot {             // 8 bytes: 100k keys fit in 1 MB of slots
    uint32_t tag = 0;       // the hash's high half
    uint32_t entry = 0;     // index in entries_ + 1; 0: empty
  };
  struct Entry {
    std::string key;
    std::vector<uint32_t> list;
    uint64_t hash;
  };
  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(std::max<size_t>(64, old.size() * 2), Slot{});
    for (const Slot& s : old) {
      if (s.entry == 0) continue;
      size_t i = entries_[s.entry - 1].hash & (slots_.size() - 1);
      while (slots_[i].entry != 0) i = (i + 1) & (slots_.size() - 1);
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::deque<Entry> entries_;  // stable references
};

// SQL LIKE as an anchored RE2 expression (% any run, _ one character).
std::string LikeToRegex(std::string_view like) {
  std::string re = "^";
  for (char c : like) {
    if (c == '%') re += "(?s:.*)";
    else if (c == '_') re += "(?s:.)";
    else re += RE2::QuoteMeta(std::string(1, c));
  }
  return re + "$";
}

// A regular expression anchored with ^ whose first characters are literal (single
// characters made optional with ?, as in "^https?://", allowed) can only match a
// value that starts with one of a few literal strings: those go to `out`. False
// when `re` is not of that form, or the strings would be shorter than 3 bytes or
// more than 16: the regex is then left to Hyperscan / RE2. Conservative: anything
// not understood ends the prefix (a shorter prefix is still a necessary condition)
// or disqualifies the regex (a top-level | could match without the prefix).
bool LiteralPrefixes(std::string_view re, std::vector<std::string>* out) {
  constexpr size_t kMinPrefix = 3, kMaxVariants = 16;
  if (re.empty() || re[0] != '^' || re.find("\\Q") != std::string_view::npos || re.find("[:") != std::string_view::npos) {
    return false;
  }
  // No alternation outside groups and classes.
  int depth = 0;
  bool in_class = false;
  for (size_t i = 0; i < re.size(); ++i) {
    char c = re[i];
    if (c == '\\') {
      ++i;
    } else if (in_class) {
      if (c == ']') in_class = false;
    } else if (c == '[') {
      in_class = true;
      if (i + 1 < re.size() && re[i + 1] == '^') ++i;
      if (i + 1 < re.size() && re[i + 1] == ']') ++i;  // a leading ] is literal
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      --depth;
    } else if (c == '|' && depth <= 0) {
      return false;
    }
  }
  std::vector<std::string> variants(1);
  size_t i = 1;
  while (i < re.size()) {
    auto c = static_cast<unsigned char>(re[i]);
    char lit;
    size_t next;
    if (c == '\\') {
      if (i + 1 >= re.size()) break;
      auto d = static_cast<unsigned char>(re[i + 1]);
      if (std::isalnum(d) || d >= 0x80) break;  // \d, \x41, \b, ...: not a literal byte
      lit = static_cast<char>(d);
      next = i + 2;
    } else if (c >= 0x80 || std::strchr(".[](){}*+?|^$", c)) {
      break;  // a class, group, repetition or a multi-byte character a quantifier may follow
    } else {
      lit = static_cast<char>(c);
      next = i + 1;
    }
    char q = next < re.size() ? re[next] : '\0';
    if (q == '?') {
      if (next + 1 < re.size() && (re[next + 1] == '?' || re[next + 1] == '+')) break;
      size_t n = variants.size();
      if (n * 2 > kMaxVariants) break;
      for (size_t k = 0; k < n; ++k) variants.push_back(variants[k] + lit);
      i = next + 1;
      continue;
    }
    if (q == '*' || q == '{') break;  // zero or more of it: the prefix ends before it
    for (auto& v : variants) v += lit;
    if (q == '+') break;
    i = next;
  }
  for (const auto& v : variants) {
    if (v.size() < kMinPrefix) return false;
  }
  *out = std::move(variants);
  return true;
}

AnchorSet Anchors(const CompExpr& c) {
  AnchorSet a;
  switch (c.kind) {
    case CompExpr::Kind::kCmp: {
      if (c.negated) return a;
      std::string path = c.path.ToString();
      if (c.op == CmpOp::kEq || c.op == CmpOp::kIn) {
        for (const auto& lit : c.values) {
          std::string k;
          if (!LiteralKey(lit, &k)) return AnchorSet{};
          a.anchors.push_back({Anchor::Kind::kExact, path, k});
        }
      } else if (c.op == CmpOp::kIsSubset) {
        Net n;
        if (!ParseNet(c.values[0].text, &n)) return a;
        a.anchors.push_back({Anchor::Kind::kCidr, path, MaskedNet(n, n.prefix), n.family, n.prefix});
      } else if (c.op == CmpOp::kMatches || c.op == CmpOp::kLike) {
        std::string re = c.op == CmpOp::kMatches ? c.values[0].text : LikeToRegex(c.values[0].text);
        RE2::Options opt;
        opt.set_log_errors(false);
        if (!RE2(re, opt).ok()) return a;  // the evaluator reports it; here: no anchor
        a.anchors.push_back({Anchor::Kind::kRegex, path, re});
      } else {
        return a;
      }
      a.any = a.anchors.empty();
      return a;
    }
    case CompExpr::Kind::kAnd: {
      // Every child must hold: the child with the fewest anchors is a necessary condition.
      AnchorSet best;
      for (const auto& ch : c.children) {
        AnchorSet x = Anchors(*ch);
        if (!x.any && (best.any || x.anchors.size() < best.anchors.size())) best = std::move(x);
      }
      return best;
    }
    case CompExpr::Kind::kOr: {
      for (const auto& ch : c.children) {
        AnchorSet x = Anchors(*ch);
        if (x.any) return AnchorSet{};
        a.anchors.insert(a.anchors.end(), x.anchors.begin(), x.anchors.end());
      }
      a.any = false;
      return a;
    }
  }
  return a;
}

AnchorSet Anchors(const ObsExpr& e) {
  switch (e.kind) {
    case ObsExpr::Kind::kObservation: return Anchors(*e.comparison);
    case ObsExpr::Kind::kAnd:
    case ObsExpr::Kind::kFollowedBy: {
      AnchorSet best;
      for (const auto& ch : e.children) {
        AnchorSet x = Anchors(*ch);
        if (!x.any && (best.any || x.anchors.size() < best.anchors.size())) best = std::move(x);
      }
      return best;
    }
    case ObsExpr::Kind::kOr: {
      AnchorSet a;
      for (const auto& ch : e.children) {
        AnchorSet x = Anchors(*ch);
        if (x.any) return AnchorSet{};
        a.anchors.insert(a.anchors.end(), x.anchors.begin(), x.anchors.end());
      }
      a.any = false;
      return a;
    }
  }
  return AnchorSet{};
}

}  // namespace

Result<bool> Matches(const Pattern& pattern, const Observations& observations) {
  if (!pattern.root) return Status::Invalid("empty pattern");
  Evaluator ev(observations.impl());
  return ev.Run(*pattern.root);
}

Result<std::vector<MatchResult>> FindMatches(const Pattern& pattern, const Observations& observations) {
  if (!pattern.root) return Status::Invalid("empty pattern");
  Evaluator ev(observations.impl());
  return ev.All(*pattern.root);
}

std::string ObservationId(const Observations& observations, size_t i) {
  return std::string(observations.impl().list.at(i).id);
}

// (id, observation) pairs gathered by the key pass and sorted once: the posting
// lists of a batch without a map insertion per hit.
class Selection {
 public:
  void Add(uint32_t id, uint32_t obs) { pairs_.push_back(uint64_t{id} << 32 | obs); }
  void Finish() {
    std::sort(pairs_.begin(), pairs_.end());
    pairs_.erase(std::unique(pairs_.begin(), pairs_.end()), pairs_.end());
  }
  //! Calls f(id, observations) for each id, in increasing id order (after Finish).
  template <typename F>
  void ForEach(F&& f) const {
    std::vector<uint32_t> obs;
    for (size_t a = 0; a < pairs_.size();) {
      auto id = static_cast<uint32_t>(pairs_[a] >> 32);
      obs.clear();
      size_t b = a;
      for (; b < pairs_.size() && (pairs_[b] >> 32) == id; ++b) obs.push_back(static_cast<uint32_t>(pairs_[b]));
      f(id, obs);
      a = b;
    }
  }
  //! The observations selected for `id` (after Finish).
  std::vector<uint32_t> Of(uint32_t id) const {
    std::vector<uint32_t> out;
    for (auto it = std::lower_bound(pairs_.begin(), pairs_.end(), uint64_t{id} << 32);
         it != pairs_.end() && (*it >> 32) == id; ++it) {
      out.push_back(static_cast<uint32_t>(*it));
    }
    return out;
  }

 private:
  std::vector<uint64_t> pairs_;
};

struct Matcher::Impl {
  struct RegexIndex;
  struct Indicator {
    std::string id;
    Pattern pattern;
    bool simple = false;                  // one observation expression, no qualifiers
    std::vector<std::string_view> types;  // its object types (views into the AST)
    std::vector<uint32_t> leaves;         // anchored observation expressions (ids in `leaves`)
    std::vector<const ObsExpr*> leaf_nodes;  // the same, as nodes of `pattern`
  };
  // Observation expressions of multi-observation patterns, indexed like indicators
  // (ids with kLeafBit) so each is evaluated only on observations carrying its anchors.
  static constexpr uint32_t kLeafBit = 0x80000000u;
  std::vector<const ObsExpr*> leaves;
  std::vector<uint32_t> leaf_owner;  // per leaf: its indicator
  size_t multi = 0;                  // multi-observation indicators
  bool multi_unanchored = false;     // one of them has an operand without anchors
  // Per leaf, the posting lists its anchors are in (a regex's by index, as the
  // owners vector may move), to estimate how often it is hit.
  struct LeafAnchor {
    const std::vector<uint32_t>* list;
    const RegexIndex* rx;
    int rx_id;
    int weight;  // exact 1, regex 8, network 16: how broad one anchor tends to be
  };
  std::vector<std::vector<LeafAnchor>> leaf_anchors;
  // Per leaf: whether a hit on it makes its indicator a candidate (Prepare). A
  // multi-observation indicator needs hits on a "trigger" set of its leaves that
  // every match must touch: all operands of an OR, one operand of an AND or
  // FOLLOWEDBY (the one whose anchors are shared by the fewest indicators).
  std::vector<char> leaf_trigger;
  std::vector<Indicator> indicators;
  KeyIndex index;  // "path\x1fvalue" -> indicators
  // ISSUBSET: per path the (family, prefix) lengths in use; "path\x1ffamily/prefix\x1fbytes" -> indicators.
  std::map<std::string, std::set<std::pair<int, int>>> cidr_lengths;
  KeyIndex cidr_index;
  // MATCHES / LIKE: one RE2::Set per path, compiled before the first batch.
  // MATCHES / LIKE anchors of one path: one Hyperscan database in prefilter mode
  // (it may select too much, never too little; candidates are evaluated fully), and
  // an RE2::Set for the expressions Hyperscan cannot take.
  struct RegexIndex {
    std::vector<std::vector<uint32_t>> owners;  // per regex
    std::vector<std::string> texts;             // per regex
    std::map<std::string, int> ids;             // regex text -> index
    bool compiled = false;
    bool failed = false;  // neither engine could take the set: its owners see every observation
    hs_database_t* hs_db = nullptr;
    hs_scratch_t* hs_scratch = nullptr;
    std::unique_ptr<RE2::Set> re2;
    std::vector<int> re2_ids;  // RE2::Set index -> regex index
    // Regexes with literal prefixes (LiteralPrefixes): looked up by the value's
    // first L bytes for each prefix length L in use, instead of being scanned.
    KeyIndex prefixes;                   // literal prefix -> regex indexes
    std::vector<size_t> prefix_lengths;  // ascending
    // Hyperscan scratch space is per concurrent scan: clones kept for reuse by later batches.
    std::mutex pool_mu;
    std::vector<hs_scratch_t*> pool;

    hs_scratch_t* TakeScratch() {
      if (!hs_scratch) return nullptr;
      {
        std::lock_guard lock(pool_mu);
        if (!pool.empty()) {
          hs_scratch_t* s = pool.back();
          pool.pop_back();
          return s;
        }
      }
      hs_scratch_t* s = nullptr;
      return hs_clone_scratch(hs_scratch, &s) == HS_SUCCESS ? s : nullptr;
    }
    void GiveScratch(hs_scratch_t* s) {
      if (!s) return;
      std::lock_guard lock(pool_mu);
      pool.push_back(s);
    }

    RegexIndex() = default;
    RegexIndex(const RegexIndex&) = delete;
    ~RegexIndex() { Reset(); }

    void Reset() {
      for (hs_scratch_t* s : pool) hs_free_scratch(s);
      pool.clear();
      if (hs_scratch) hs_free_scratch(hs_scratch);
      if (hs_db) hs_free_database(hs_db);
      hs_scratch = nullptr;
      hs_db = nullptr;
      re2.reset();
      re2_ids.clear();
      prefixes.clear();
      prefix_lengths.clear();
      compiled = failed = false;
    }

    void Compile() {
      if (compiled || failed) return;
      std::vector<int> for_re2;
      std::vector<int> for_hs;
      std::vector<std::string> literal;
      for (size_t i = 0; i < texts.size(); ++i) {
        if (!LiteralPrefixes(texts[i], &literal)) {
          for_hs.push_back(static_cast<int>(i));
          continue;
        }
        for (const auto& prefix : literal) {
          auto& ids = prefixes[prefix];
          if (ids.empty() || ids.back() != i) ids.push_back(static_cast<uint32_t>(i));
          if (std::find(prefix_lengths.begin(), prefix_lengths.end(), prefix.size()) == prefix_lengths.end()) {
            prefix_lengths.push_back(prefix.size());
          }
        }
      }
      std::sort(prefix_lengths.begin(), prefix_lengths.end());
      bool hs_ok = hs_valid_platform() == HS_SUCCESS;
      while (hs_ok && !for_hs.empty()) {
        std::vector<const char*> exprs;
        std::vector<unsigned> flags, ids;
        for (int i : for_hs) {
          exprs.push_back(texts[static_cast<size_t>(i)].c_str());
          flags.push_back(HS_FLAG_PREFILTER | HS_FLAG_SINGLEMATCH | HS_FLAG_UTF8 | HS_FLAG_DOTALL);
          ids.push_back(static_cast<unsigned>(i));
        }
        hs_compile_error_t* err = nullptr;
        hs_error_t rc = hs_compile_multi(exprs.data(), flags.data(), ids.data(), static_cast<unsigned>(exprs.size()),
                                         HS_MODE_BLOCK, nullptr, &hs_db, &err);
        if (rc == HS_SUCCESS) break;
        int bad = err ? err->expression : -1;
        if (err) hs_free_compile_error(err);
        hs_db = nullptr;
        if (bad < 0) {  // not one expression's fault: give all to RE2
          for_re2.insert(for_re2.end(), for_hs.begin(), for_hs.end());
          for_hs.clear();
          break;
        }
        for_re2.push_back(for_hs[static_cast<size_t>(bad)]);
        for_hs.erase(for_hs.begin() + bad);
      }
      if (!hs_ok) for_re2 = for_hs;
      if (hs_db && hs_alloc_scratch(hs_db, &hs_scratch) != HS_SUCCESS) {
        failed = true;
        return;
      }
      if (!for_re2.empty()) {
        RE2::Options opt;
        opt.set_log_errors(false);
        opt.set_max_mem(int64_t{512} << 20);
        re2 = std::make_unique<RE2::Set>(opt, RE2::UNANCHORED);
        for (int i : for_re2) {
          if (re2->Add(texts[static_cast<size_t>(i)], nullptr) >= 0) re2_ids.push_back(i);
        }
        if (!re2->Compile()) {
          failed = true;
          return;
        }
      }
      compiled = true;
    }

    //! Indexes of the regexes that may match `value`, found by scanning (the
    //! literal-prefix ones are looked up by the caller in `prefixes`).
    void Candidates(std::string_view value, hs_scratch_t* scratch, std::vector<int>* out) const {
      if (hs_db && scratch) {
        hs_scan(hs_db, value.data(), static_cast<unsigned>(value.size()), 0, scratch,
                [](unsigned id, unsigned long long, unsigned long long, unsigned, void* ctx) -> int {
                  static_cast<std::vector<int>*>(ctx)->push_back(static_cast<int>(id));
                  return 0;
                },
                out);
      }
      if (re2) {
        std::vector<int> hits;
        if (re2->Match(value, &hits)) {
          for (int h : hits) out->push_back(re2_ids[static_cast<size_t>(h)]);
        }
      }
    }
  };
  std::map<std::string, RegexIndex> regexes;
  std::mutex compile_mu;
  std::map<std::string, ObjectPath> paths;                       // every anchored path, by text
  std::set<std::string> exact_paths;                             // paths with `=` / IN anchors
  std::vector<uint32_t> always;                                  // unanchored indicators

  // The key pass's view of the anchored paths, grouped by object type (built by
  // Prepare() after the last Add): an observation's object is looked at only
  // through the paths of its own type.
  struct PathKeys {
    std::string text;  // ObjectPath::ToString()
    ObjectPath path;
    bool exact = false;  // some indicator names an exact value on this path
    std::vector<std::tuple<int, int, std::string>> cidr;  // (family, prefix, "family/prefix") in use
    RegexIndex* rx = nullptr;
  };
  std::vector<std::pair<std::string, std::vector<PathKeys>>> by_type;
  bool prepared = false;

  //! Compiles the regex indexes and builds `by_type`. Caller holds compile_mu.
  void Prepare() {
    for (auto& [path, rx] : regexes) rx.Compile();
    if (prepared) return;
    by_type.clear();
    for (const auto& [text, path] : paths) {
      PathKeys pk{text, path, exact_paths.count(text) > 0, {}, nullptr};
      if (auto it = cidr_lengths.find(text); it != cidr_lengths.end()) {
        for (const auto& [family, prefix] : it->second) {
          pk.cidr.emplace_back(family, prefix, std::to_string(family) + "/" + std::to_string(prefix));
        }
      }
      if (auto it = regexes.find(text); it != regexes.end()) pk.rx = &it->second;
      std::string_view type = path.type;  // (a structured binding cannot be captured before C++20 in clang)
      auto group = std::find_if(by_type.begin(), by_type.end(), [type](const auto& g) { return g.first == type; });
      if (group == by_type.end()) group = by_type.insert(by_type.end(), {std::string(type), {}});
      group->second.push_back(std::move(pk));
    }
    leaf_trigger.assign(leaves.size(), 0);
    for (const Indicator& ind : indicators) {
      if (ind.leaves.empty()) continue;
      std::vector<uint32_t> trigger;
      if (Trigger(*ind.pattern.root, ind, &trigger) < 0) trigger = ind.leaves;  // not expected: every leaf triggers
      for (uint32_t leaf : trigger) leaf_trigger[leaf] = 1;
    }
    prepared = true;
  }

  //! The cost of the trigger set of `e` (see leaf_trigger), written to `out`; -1
  //! when `e` has an unanchored operand that every match may go through.
  double Trigger(const ObsExpr& e, const Indicator& ind, std::vector<uint32_t>* out) const {
    switch (e.kind) {
      case ObsExpr::Kind::kObservation: {
        for (size_t k = 0; k < ind.leaf_nodes.size(); ++k) {
          if (ind.leaf_nodes[k] != &e) continue;
          uint32_t leaf = ind.leaves[k];
          double cost = 0;
          for (const LeafAnchor& a : leaf_anchors[leaf]) {
            size_t owners = a.list ? a.list->size() : a.rx->owners[static_cast<size_t>(a.rx_id)].size();
            cost += static_cast<double>(a.weight) * static_cast<double>(owners);
          }
          out->assign(1, leaf);
          return cost;
        }
        return -1;
      }
      case ObsExpr::Kind::kOr: {
        double total = 0;
        std::vector<uint32_t> all, part;
        for (const auto& ch : e.children) {
          part.clear();
          double c = Trigger(*ch, ind, &part);
          if (c < 0) return -1;
          total += c;
          all.insert(all.end(), part.begin(), part.end());
        }
        *out = std::move(all);
        return total;
      }
      case ObsExpr::Kind::kAnd:
      case ObsExpr::Kind::kFollowedBy: {
        double best = -1;
        std::vector<uint32_t> part;
        for (const auto& ch : e.children) {
          part.clear();
          double c = Trigger(*ch, ind, &part);
          if (c >= 0 && (best < 0 || c < best)) {
            best = c;
            *out = part;
          }
        }
        return best;
      }
    }
    return -1;
  }

  //! Whether observation expression `e` of `ind` can match at all given the
  //! observations carrying its leaves' anchors: an anchored leaf needs one, AND and
  //! FOLLOWEDBY need every operand, OR one. A cheap test before the full evaluation.
  static bool Feasible(const ObsExpr& e, const Indicator& ind, const std::vector<char>& leaf_hit) {
    switch (e.kind) {
      case ObsExpr::Kind::kObservation: {
        for (size_t k = 0; k < ind.leaf_nodes.size(); ++k) {
          if (ind.leaf_nodes[k] == &e) return leaf_hit[ind.leaves[k]] != 0;
        }
        return true;  // unanchored: it may match anything
      }
      case ObsExpr::Kind::kOr:
        for (const auto& ch : e.children) {
          if (Feasible(*ch, ind, leaf_hit)) return true;
        }
        return false;
      case ObsExpr::Kind::kAnd:
      case ObsExpr::Kind::kFollowedBy:
        for (const auto& ch : e.children) {
          if (!Feasible(*ch, ind, leaf_hit)) return false;
        }
        return true;
    }
    return true;
  }

  static Sighting Make(const Observations& batch, const std::string& id, const std::set<size_t>& used) {
    Sighting s;
    s.indicator_id = id;
    s.first_us = INT64_MAX;
    s.last_us = INT64_MIN;
    for (size_t i : used) {
      const Observation& o = batch.impl().list[i];
      s.observed_data_ids.emplace_back(o.id);
      s.count += o.count;
      s.first_us = std::min(s.first_us, o.first_us);
      s.last_us = std::max(s.last_us, o.last_us);
    }
    return s;
  }

  //! Evaluates simple indicators only on the observations that selected them.
  Result<std::vector<Sighting>> RunSelected(const Observations& batch, const Selection& selected,
                                            const Selection& leaf_obs, const std::vector<char>& leaf_hit,
                                            size_t first_new) const {
    std::vector<Sighting> out;
    Evaluator ev(batch.impl());
    Status failed = Status::Ok();
    selected.ForEach([&](uint32_t k, const std::vector<uint32_t>& obs) {
      if (!failed.ok()) return;
      const Indicator& ind = indicators[k];
      std::set<size_t> used;
      if (ind.simple) {
        for (uint32_t i : obs) {
          if (ev.MatchOne(*ind.pattern.root->comparison, ind.types, i)) used.insert(i);
        }
        if (!ev.error().empty()) {
          failed = Status::Invalid(ev.error());
          return;
        }
      } else {
        if (!Feasible(*ind.pattern.root, ind, leaf_hit)) return;
        Evaluator full(batch.impl());
        std::unordered_map<const ObsExpr*, std::vector<uint32_t>> only;
        for (uint32_t leaf : ind.leaves) only[leaves[leaf]] = leaf_obs.Of(leaf);
        full.Restrict(&only);
        auto matches = full.All(*ind.pattern.root);
        if (!matches.ok()) {
          failed = matches.status();
          return;
        }
        for (const auto& m : *matches) {
          // A match of kept observations only was reported with an earlier batch.
          if (!m.observations.empty() && m.observations.back() >= first_new) {
            used.insert(m.observations.begin(), m.observations.end());
          }
        }
      }
      if (!used.empty()) out.push_back(Make(batch, ind.id, used));
    });
    if (!failed.ok()) return failed;
    return out;
  }

  Result<std::vector<Sighting>> Run(const Observations& batch, const std::vector<uint32_t>& which) const {
    std::vector<Sighting> out;
    for (uint32_t k : which) {
      const Indicator& ind = indicators[k];
      Evaluator ev(batch.impl());
      auto matches = ev.All(*ind.pattern.root);
      if (!matches.ok()) return matches.status();
      if (matches->empty()) continue;
      std::set<size_t> used;
      for (const auto& m : *matches) used.insert(m.observations.begin(), m.observations.end());
      Sighting s;
      s.indicator_id = ind.id;
      s.first_us = INT64_MAX;
      s.last_us = INT64_MIN;
      for (size_t i : used) {
        const Observation& o = batch.impl().list[i];
        s.observed_data_ids.emplace_back(o.id);
        s.count += o.count;
        s.first_us = std::min(s.first_us, o.first_us);
        s.last_us = std::max(s.last_us, o.last_us);
      }
      out.push_back(std::move(s));
    }
    return out;
  }
};

Matcher::Matcher() : impl_(std::make_unique<Impl>()) {}
Matcher::~Matcher() = default;
Matcher::Matcher(Matcher&&) noexcept = default;
Matcher& Matcher::operator=(Matcher&&) noexcept = default;
size_t Matcher::size() const { return impl_->indicators.size(); }
size_t Matcher::unanchored() const { return impl_->always.size(); }

void Matcher::Compile() {
  std::lock_guard lock(impl_->compile_mu);
  impl_->Prepare();
}

Status Matcher::Add(std::string indicator_id, std::string_view pattern_text) {
  auto p = Parse(pattern_text);
  if (!p.ok()) return p.status();
  auto k = static_cast<uint32_t>(impl_->indicators.size());
  impl_->prepared = false;
  AnchorSet a = Anchors(*p->root);
    auto register_anchors = [&](const AnchorSet& set, uint32_t owner) {
    for (const auto& an : set.anchors) {
      std::vector<uint32_t>* list = nullptr;
      if (an.kind == Anchor::Kind::kExact) {
        impl_->exact_paths.insert(an.path);
        list = &impl_->index[an.path + '\x1f' + an.value];
      } else if (an.kind == Anchor::Kind::kCidr) {
        impl_->cidr_lengths[an.path].insert({an.family, an.prefix});
        list = &impl_->cidr_index[an.path + '\x1f' + std::to_string(an.family) + "/" + std::to_string(an.prefix) + '\x1f' + an.value];
      } else {
        auto& rx = impl_->regexes[an.path];
        auto it = rx.ids.find(an.value);
        if (it == rx.ids.end()) {
          rx.Reset();  // recompiled before the next batch
          it = rx.ids.emplace(an.value, static_cast<int>(rx.texts.size())).first;
          rx.texts.push_back(an.value);
          rx.owners.emplace_back();
        }
        list = &rx.owners[static_cast<size_t>(it->second)];
      }
      if (list->empty() || list->back() != owner) list->push_back(owner);
      if (owner & Impl::kLeafBit) {
        Impl::LeafAnchor la{nullptr, nullptr, -1, an.kind == Anchor::Kind::kExact ? 1 : an.kind == Anchor::Kind::kCidr ? 16 : 8};
        if (an.kind == Anchor::Kind::kRegex) {
          la.rx = &impl_->regexes[an.path];
          la.rx_id = la.rx->ids.at(an.value);
        } else {
          la.list = list;
        }
        impl_->leaf_anchors[owner & ~Impl::kLeafBit].push_back(la);
      }
    }
    };
  const bool simple = p->root->kind == ObsExpr::Kind::kObservation && p->root->qualifiers.empty();
  if (a.any) {
    impl_->always.push_back(k);
  } else {
    // A multi-observation pattern is selected through its observation expressions'
    // anchors (below): its own anchors are a union of some of theirs, so any match
    // makes one of its anchored expressions carry a hit.
    if (simple) register_anchors(a, k);
    std::function<void(const CompExpr&)> collect = [&](const CompExpr& c) {
      if (c.kind == CompExpr::Kind::kCmp) {
        impl_->paths.emplace(c.path.ToString(), c.path);
      } else {
        for (const auto& ch : c.children) collect(*ch);
      }
    };
    std::function<void(const ObsExpr&)> walk = [&](const ObsExpr& e) {
      if (e.comparison) collect(*e.comparison);
      for (const auto& ch : e.children) walk(*ch);
    };
    walk(*p->root);
  }
  Impl::Indicator ind{std::move(indicator_id), std::move(p).value()};
  const ObsExpr& root = *ind.pattern.root;
  ind.simple = root.kind == ObsExpr::Kind::kObservation && root.qualifiers.empty();
  if (!ind.simple && !a.any) {
    // Index each observation expression on its own anchors (paths were collected above).
    std::function<void(const ObsExpr&)> leaves = [&](const ObsExpr& e) {
      if (e.kind == ObsExpr::Kind::kObservation) {
        AnchorSet la = Anchors(*e.comparison);
        if (la.any) {
          impl_->multi_unanchored = true;  // this operand may match any observation
          return;
        }
        auto leaf = static_cast<uint32_t>(impl_->leaves.size());
        impl_->leaves.push_back(&e);
        impl_->leaf_owner.push_back(k);
        impl_->leaf_anchors.emplace_back();
        ind.leaves.push_back(leaf);
        ind.leaf_nodes.push_back(&e);
        register_anchors(la, leaf | Impl::kLeafBit);
        return;
      }
      for (const auto& ch : e.children) leaves(*ch);
    };
    leaves(root);
  }
  if (ind.simple) {
    std::set<std::string_view> types;
    CompTypes(*root.comparison, &types);
    ind.types.assign(types.begin(), types.end());
  } else {
    ++impl_->multi;
    if (a.any) impl_->multi_unanchored = true;
  }
  impl_->indicators.push_back(std::move(ind));
  return Status::Ok();
}

bool Matcher::has_multi_observation() const { return impl_->multi > 0; }

Result<std::vector<Matcher::Sighting>> Matcher::Match(const Observations& batch) const {
  return MatchFrom(batch, 0, nullptr);
}

Result<std::vector<Matcher::Sighting>> Matcher::MatchFrom(const Observations& batch, size_t first_new,
                                                          std::vector<char>* keep) const {
  // One pass over the batch: the keys it contains select indicators, each with the
  // observations that selected it. Unanchored indicators see every observation.
  // Observations before first_new (kept by a stream) only select leaves.
  Selection selected;  // indicator -> observations carrying one of its anchors
  Selection leaf_obs;  // leaf -> observations carrying its anchors
  auto n = static_cast<uint32_t>(batch.size());
  for (uint32_t k : impl_->always) {
    for (uint32_t i = static_cast<uint32_t>(first_new); i < n; ++i) selected.Add(k, i);
  }
  std::vector<char> leaf_hit(impl_->leaves.size(), 0);  // leaves with at least one observation
  std::vector<uint32_t> hit_leaves;  // trigger leaves hit (see Impl::leaf_trigger)
  std::vector<char> obs_in_leaf(keep ? n : 0, 0);  // observations carrying a leaf's anchor
  auto select = [&](const std::vector<uint32_t>& ks, size_t i) {
    for (uint32_t k : ks) {
      if (k & Impl::kLeafBit) {
        uint32_t leaf = k & ~Impl::kLeafBit;
        if (keep) obs_in_leaf[i] = 1;
        leaf_obs.Add(leaf, static_cast<uint32_t>(i));
        if (!leaf_hit[leaf]) {
          leaf_hit[leaf] = 1;
          if (impl_->leaf_trigger[leaf]) hit_leaves.push_back(leaf);
        }
      } else if (i >= first_new) {
        selected.Add(k, static_cast<uint32_t>(i));
      }
    }
  };
  {
    std::lock_guard lock(impl_->compile_mu);
    impl_->Prepare();
    for (auto& [path, rx] : impl_->regexes) {
      if (rx.failed) {
        for (const auto& owners : rx.owners) {
          for (uint32_t i = 0; i < n; ++i) select(owners, i);
        }
      }
    }
  }
  std::vector<int> regex_hits;
  // Hyperscan scratch is per concurrent scan: one per regex index for this call.
  std::vector<std::pair<Impl::RegexIndex*, hs_scratch_t*>> scratch;
  for (auto& [path, rx] : impl_->regexes) scratch.emplace_back(&rx, rx.TakeScratch());
  struct GiveBack {
    std::vector<std::pair<Impl::RegexIndex*, hs_scratch_t*>>& v;
    ~GiveBack() {
      for (auto& [rx, s] : v) rx->GiveScratch(s);
    }
  } give_back{scratch};
  auto scratch_of = [&](const Impl::RegexIndex* rx) -> hs_scratch_t* {
    for (auto& [r, s] : scratch) {
      if (r == rx) return s;
    }
    return nullptr;
  };
  Evaluator ev(batch.impl());
  std::vector<Value> values;
  std::string key;  // reused: keys are built without allocating once it has grown
  // Index lookups are gathered for the whole batch, their first slots prefetched, and
  // then resolved: most are misses in a table far larger than the L1 cache, and
  // this way their memory latencies overlap instead of adding up.
  struct Probe {
    uint64_t hash;
    size_t offset, size;                // the key in `arena`
    uint32_t obs;
    const KeyIndex* index;
    const Impl::RegexIndex* rx;         // set for literal-prefix lookups (the list holds regex ids)
  };
  std::vector<Probe> probes;
  std::string arena;
  auto probe = [&](const KeyIndex& index, std::string_view k, size_t i, const Impl::RegexIndex* rx) {
    uint64_t h = KeyIndex::Hash(k);
    index.Prefetch(h);
    probes.push_back({h, arena.size(), k.size(), static_cast<uint32_t>(i), &index, rx});
    arena.append(k);
  };
  for (size_t i = 0; i < batch.size(); ++i) {
    const Observation& o = batch.impl().list[i];
    for (dom::element sco : o.roots) {
      std::string_view type;
      if (sco["type"].get(type)) continue;
      auto group = std::find_if(impl_->by_type.begin(), impl_->by_type.end(), [&](const auto& g) { return g.first == type; });
      if (group == impl_->by_type.end()) continue;
      for (const Impl::PathKeys& pk : group->second) {
        values.clear();
        ev.ValuesOf(o, sco, pk.path, &values);
        for (const auto& v : values) {
          key.assign(pk.text).push_back('\x1f');
          if (pk.exact && AppendValueKey(v.el, &key)) probe(impl_->index, key, i, nullptr);
          std::string_view sv;
          if (v.el.get(sv)) continue;
          Net n;
          if (!pk.cidr.empty() && ParseNet(sv, &n)) {
            for (const auto& [family, prefix, label] : pk.cidr) {
              if (family != n.family || prefix > n.prefix) continue;
              key.assign(pk.text).append(1, '\x1f').append(label).push_back('\x1f');
              AppendMaskedNet(n, prefix, &key);
              probe(impl_->cidr_index, key, i, nullptr);
            }
          }
          if (pk.rx && pk.rx->compiled) {
            for (size_t len : pk.rx->prefix_lengths) {
              if (len > sv.size()) break;
              probe(pk.rx->prefixes, sv.substr(0, len), i, pk.rx);
            }
            regex_hits.clear();
            pk.rx->Candidates(sv, scratch_of(pk.rx), &regex_hits);
            for (int id : regex_hits) select(pk.rx->owners[static_cast<size_t>(id)], i);
          }
        }
      }
    }
  }
  for (const Probe& p : probes) {
    const auto* list = p.index->find(std::string_view(arena).substr(p.offset, p.size), p.hash);
    if (!list) continue;
    if (!p.rx) {
      select(*list, p.obs);
    } else {
      for (uint32_t id : *list) select(p.rx->owners[id], p.obs);
    }
  }
  // Multi-observation indicators are candidates through their leaves (the list
  // of observations is taken from leaf_obs when they are evaluated).
  for (uint32_t leaf : hit_leaves) selected.Add(impl_->leaf_owner[leaf], 0);
  selected.Finish();
  leaf_obs.Finish();
  if (keep) {
    keep->assign(n - first_new, 0);
    for (size_t i = first_new; i < n; ++i) (*keep)[i - first_new] = impl_->multi_unanchored || obs_in_leaf[i];
  }
  return impl_->RunSelected(batch, selected, leaf_obs, leaf_hit, first_new);
}

Result<std::vector<Matcher::Sighting>> Matcher::MatchNaive(const Observations& batch) const {
  std::vector<uint32_t> all(impl_->indicators.size());
  for (uint32_t k = 0; k < all.size(); ++k) all[k] = k;
  return impl_->Run(batch, all);
}

Result<std::vector<Matcher::Sighting>> MatchStream::Match(const Matcher& matcher, std::string_view batch_json) {
  auto batch = Observations::FromJson(batch_json);  // checked alone: its messages name its own positions
  if (!batch.ok()) return batch.status();
  if (!matcher.has_multi_observation() || batch->size() == 0) return matcher.Match(*batch);
  // The window moves with the newest observation seen, this batch's included: what fell
  // out of it takes no part in matching the batch. (The state changes only once the
  // batch has been matched: a batch that fails leaves it as it was.)
  int64_t newest = newest_us_;
  for (const Observation& o : batch->impl().list) newest = std::max(newest, o.last_us);
  const int64_t horizon = newest - opt_.window_seconds * 1000000;
  // The kept observations (in the window) first, then this batch's objects, as one array.
  std::string merged = "[";
  size_t first_new = 0;
  for (const Kept& k : kept_) {
    if (k.last_us < horizon) continue;
    if (merged.size() > 1) merged += ',';
    merged += k.json;
    ++first_new;
  }
  std::optional<Result<Observations>> merged_obs;  // kept + batch; the batch alone when nothing is kept
  if (first_new > 0) {
    for (simdjson::dom::element e : batch->impl().objects) {  // as FromJson read them
      if (merged.size() > 1) merged += ',';
      merged += simdjson::minify(e);
    }
    merged += ']';
    merged_obs = Observations::FromJson(merged);
    if (!merged_obs->ok()) return merged_obs->status();
    if ((*merged_obs)->size() != first_new + batch->size()) {
      return Status::Invalid("observations changed when merged with the kept ones");
    }
  }
  const Observations* all = merged_obs ? &**merged_obs : &*batch;
  std::vector<char> keep;
  auto found = matcher.MatchFrom(*all, first_new, &keep);
  if (!found.ok()) return found.status();
  newest_us_ = newest;
  std::erase_if(kept_, [&](const Kept& k) { return k.last_us < horizon; });
  // Keep what a later multi-observation match may need; forget what is out of the window.
  const auto& list = all->impl().list;
  for (size_t j = 0; j < keep.size(); ++j) {
    if (!keep[j] || list[first_new + j].last_us < horizon) continue;
    const Observation& o = list[first_new + j];
    std::string json = simdjson::minify(o.object);
    if (o.refs == &all->impl().by_id) {  // object_refs form (the embedded form holds its objects)
      for (simdjson::dom::element sco : o.roots) json += "," + simdjson::minify(sco);
    }
    kept_.push_back({std::move(json), o.last_us});
  }
  while (kept_.size() > opt_.max_kept) kept_.pop_front();
  return found;
}

}  // namespace tearline::pattern
