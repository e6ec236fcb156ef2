// Lexer and recursive-descent parser for the STIX 2.1 pattern grammar (§9).
//
// Grammar (precedence from loosest to tightest):
//   pattern      := obs_followed EOF
//   obs_followed := obs_or ("FOLLOWEDBY" obs_or)*
//   obs_or       := obs_and ("OR" obs_and)*
//   obs_and      := obs_unit ("AND" obs_unit)*
//   obs_unit     := ("[" cmp_or "]" | "(" obs_followed ")") qualifier*
//   qualifier    := WITHIN number SECONDS | REPEATS int TIMES | START t'..' STOP t'..'
//   cmp_or       := cmp_and ("OR" cmp_and)*
//   cmp_and      := cmp_unit ("AND" cmp_unit)*
//   cmp_unit     := "(" cmp_or ")" | EXISTS path | path ["NOT"] op value
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include "common/text.h"
#include "common/timestamp.h"
#include "pattern/pattern.h"

namespace tearline::pattern {
namespace {

enum class Tok {
  kEnd, kLBracket, kRBracket, kLParen, kRParen, kColon, kDot, kComma, kStar,
  kEq, kNe, kLt, kLe, kGt, kGe,
  kIdent,   // identifiers and keywords
  kInt, kFloat, kString, kHex, kBinary, kTimestamp,
  kError,
};

struct Token {
  Tok kind = Tok::kEnd;
  size_t pos = 0;
  std::string text;  // identifier text, decoded string, literal body
  std::string error;
};

bool IsIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; }

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  Token Next() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    Token t;
    t.pos = i_;
    if (i_ >= s_.size()) return t;
    char c = s_[i_];
    auto one = [&](Tok k) {
      ++i_;
      t.kind = k;
      return t;
    };
    switch (c) {
      case '[': return one(Tok::kLBracket);
      case ']': return one(Tok::kRBracket);
      case '(': return one(Tok::kLParen);
      case ')': return one(Tok::kRParen);
      case ':': return one(Tok::kColon);
      case ',': return one(Tok::kComma);
      case '*': return one(Tok::kStar);
      case '=':
        i_ += (i_ + 1 < s_.size() && s_[i_ + 1] == '=') ? 2 : 1;
        t.kind = Tok::kEq;
        return t;
      case '!':
        if (i_ + 1 < s_.size() && s_[i_ + 1] == '=') {
          i_ += 2;
          t.kind = Tok::kNe;
          return t;
        }
        return Fail(t, "'!' must be followed by '='");
      case '<':
        if (i_ + 1 < s_.size() && s_[i_ + 1] == '=') { i_ += 2; t.kind = Tok::kLe; return t; }
        if (i_ + 1 < s_.size() && s_[i_ + 1] == '>') { i_ += 2; t.kind = Tok::kNe; return t; }
        return one(Tok::kLt);
      case '>':
        if (i_ + 1 < s_.size() && s_[i_ + 1] == '=') { i_ += 2; t.kind = Tok::kGe; return t; }
        return one(Tok::kGt);
      case '\'':
        return String(t, Tok::kString);
      default:
        break;
    }
    if ((c == 'h' || c == 'b' || c == 't') && i_ + 1 < s_.size() && s_[i_ + 1] == '\'') {
      ++i_;
      return String(t, c == 'h' ? Tok::kHex : c == 'b' ? Tok::kBinary : Tok::kTimestamp);
    }
    if (c == '.' && !(i_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_ + 1])))) {
      return one(Tok::kDot);
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.') return Number(t);
    if (IsIdentStart(c)) {
      size_t start = i_;
      while (i_ < s_.size() && IsIdentChar(s_[i_])) ++i_;
      t.kind = Tok::kIdent;
      t.text.assign(s_.substr(start, i_ - start));
      return t;
    }
    return Fail(t, std::string("unexpected character '") + c + "'");
  }

 private:
  Token Fail(Token t, std::string msg) {
    t.kind = Tok::kError;
    t.error = std::move(msg);
    return t;
  }

  // '...' with only \' and \\ escapes (§9.3 string constants).
  Token String(Token t, Tok kind) {
    ++i_;  // opening quote
    std::string out;
    while (true) {
      if (i_ >= s_.size()) return Fail(t, "unterminated quoted literal");
      char c = s_[i_];
      if (c == '\'') {
        ++i_;
        break;
      }
      if (c == '\\') {
        if (i_ + 1 >= s_.size() || (s_[i_ + 1] != '\'' && s_[i_ + 1] != '\\')) {
          return Fail(t, "invalid escape in string literal (only \\' and \\\\ are allowed)");
        }
        out += s_[i_ + 1];
        i_ += 2;
        continue;
      }
      out += c;
      ++i_;
    }
    t.kind = kind;
    t.text = std::move(out);
    return t;
  }

  Token Number(Token t) {
    size_t start = i_;
    if (s_[i_] == '-' || s_[i_] == '+') ++i_;
    size_t digits = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    bool is_float = false;
    if (i_ < s_.size() && s_[i_] == '.') {
      is_float = true;
      ++i_;
      size_t frac = i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
      if (i_ == frac) return Fail(t, "a float needs digits after '.'");
    } else if (i_ == digits) {
      return Fail(t, "a number needs digits");
    } else if (s_[digits] == '0' && i_ - digits > 1) {
      return Fail(t, "integers must not have leading zeros");
    }
    t.kind = is_float ? Tok::kFloat : Tok::kInt;
    t.text.assign(s_.substr(start, i_ - start));
    return t;
  }

  std::string_view s_;
  size_t i_ = 0;
};

bool IsKeyword(const std::string& s) {
  static const char* kKw[] = {"AND", "OR", "NOT", "FOLLOWEDBY", "LIKE", "MATCHES", "ISSUPERSET", "ISSUBSET",
                              "EXISTS", "IN", "START", "STOP", "SECONDS", "TIMES", "WITHIN", "REPEATS"};
  return std::any_of(std::begin(kKw), std::end(kKw), [&](const char* k) { return s == k; });
}

bool ValidTimestamp(std::string_view s) { return ParseTimestamp(s).has_value(); }

class Parser {
 public:
  explicit Parser(std::string_view s) : lex_(s) { Advance(); }

  Result<Pattern> Run() {
    Pattern p;
    p.root = ObsFollowed();
    if (!failed_ && cur_.kind != Tok::kEnd) Expect("end of pattern or FOLLOWEDBY/AND/OR");
    if (failed_) return Status::Invalid(error_);
    return p;
  }

 private:
  void Advance() {
    cur_ = lex_.Next();
    if (cur_.kind == Tok::kError) Fail(cur_.pos, cur_.error);
  }

  // Parentheses nest by recursion: bounded, so a pattern of a million '(' is an error, not a
  // stack overflow (found by fuzz_pattern under ASan).
  static constexpr int kMaxNesting = 64;
  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.nesting_ > kMaxNesting) p.Fail(p.cur_.pos, "parentheses nested deeper than " + std::to_string(kMaxNesting));
    }
    ~Nest() { --p.nesting_; }
    bool ok() const { return p.nesting_ <= kMaxNesting && !p.failed_; }
  };

  void Fail(size_t pos, const std::string& msg) {
    if (failed_) return;
    failed_ = true;
    error_ = "at character " + std::to_string(pos) + ": " + msg;
  }

  std::string Describe(const Token& t) {
    switch (t.kind) {
      case Tok::kEnd: return "end of pattern";
      case Tok::kIdent: return "'" + t.text + "'";
      case Tok::kString: return "string '" + t.text + "'";
      case Tok::kInt:
      case Tok::kFloat: return "number " + t.text;
      case Tok::kLBracket: return "'['";
      case Tok::kRBracket: return "']'";
      case Tok::kLParen: return "'('";
      case Tok::kRParen: return "')'";
      default: return "another token";
    }
  }

  void Expect(const std::string& what) { Fail(cur_.pos, "expected " + what + ", found " + Describe(cur_)); }

  bool IsKw(std::string_view kw) const { return cur_.kind == Tok::kIdent && cur_.text == kw; }

  bool Accept(Tok k) {
    if (failed_ || cur_.kind != k) return false;
    Advance();
    return true;
  }

  bool AcceptKw(std::string_view kw) {
    if (failed_ || !IsKw(kw)) return false;
    Advance();
    return true;
  }

  std::unique_ptr<ObsExpr> Combine(ObsExpr::Kind kind, std::unique_ptr<ObsExpr> first,
                                   std::unique_ptr<ObsExpr> (Parser::*next)(), std::string_view kw) {
    if (!IsKw(kw) || failed_) return first;
    auto node = std::make_unique<ObsExpr>();
    node->kind = kind;
    node->children.push_back(std::move(first));
    while (!failed_ && AcceptKw(kw)) node->children.push_back((this->*next)());
    return node;
  }

  std::unique_ptr<ObsExpr> ObsFollowed() { return Combine(ObsExpr::Kind::kFollowedBy, ObsOr(), &Parser::ObsOr, "FOLLOWEDBY"); }
  std::unique_ptr<ObsExpr> ObsOr() { return Combine(ObsExpr::Kind::kOr, ObsAnd(), &Parser::ObsAnd, "OR"); }
  std::unique_ptr<ObsExpr> ObsAnd() { return Combine(ObsExpr::Kind::kAnd, ObsUnit(), &Parser::ObsUnit, "AND"); }

  std::unique_ptr<ObsExpr> ObsUnit() {
    std::unique_ptr<ObsExpr> e;
    if (Accept(Tok::kLBracket)) {
      e = std::make_unique<ObsExpr>();
      e->comparison = CmpOr();
      if (!failed_ && !Accept(Tok::kRBracket)) Expect("']' closing the observation expression");
    } else if (Accept(Tok::kLParen)) {
      Nest nest(*this);
      if (!nest.ok()) return std::make_unique<ObsExpr>();
      e = ObsFollowed();
      if (!failed_ && !Accept(Tok::kRParen)) Expect("')'");
    } else {
      Expect("'[' or '(' starting an observation expression");
      return std::make_unique<ObsExpr>();
    }
    while (!failed_) {
      Qualifier q;
      if (AcceptKw("WITHIN")) {
        q.kind = Qualifier::Kind::kWithin;
        if (cur_.kind != Tok::kInt && cur_.kind != Tok::kFloat) {
          Expect("a positive number of seconds after WITHIN");
          break;
        }
        q.seconds = std::strtod(cur_.text.c_str(), nullptr);
        if (q.seconds <= 0 || cur_.text[0] == '-' || cur_.text[0] == '+') Fail(cur_.pos, "WITHIN needs a positive number");
        Advance();
        if (!AcceptKw("SECONDS")) Expect("SECONDS");
      } else if (AcceptKw("REPEATS")) {
        q.kind = Qualifier::Kind::kRepeats;
        if (cur_.kind != Tok::kInt) {
          Expect("a positive integer after REPEATS");
          break;
        }
        q.times = std::strtoll(cur_.text.c_str(), nullptr, 10);
        if (q.times <= 0 || cur_.text[0] == '-' || cur_.text[0] == '+') Fail(cur_.pos, "REPEATS needs a positive integer");
        Advance();
        if (!AcceptKw("TIMES")) Expect("TIMES");
      } else if (AcceptKw("START")) {
        q.kind = Qualifier::Kind::kStartStop;
        if (!TimestampLit(&q.start)) break;
        if (!AcceptKw("STOP")) {
          Expect("STOP");
          break;
        }
        if (!TimestampLit(&q.stop)) break;
        if (q.stop <= q.start) {
          // Lexical order equals time order only for equal fraction lengths; good enough for a
          // syntax check, the evaluator compares instants.
        }
      } else {
        break;
      }
      e->qualifiers.push_back(std::move(q));
    }
    return e;
  }

  bool TimestampLit(std::string* out) {
    if (cur_.kind != Tok::kTimestamp) {
      Expect("a timestamp literal t'...'");
      return false;
    }
    if (!ValidTimestamp(cur_.text)) {
      Fail(cur_.pos, "invalid timestamp t'" + cur_.text + "'");
      return false;
    }
    *out = cur_.text;
    Advance();
    return true;
  }

  std::unique_ptr<CompExpr> CombineCmp(CompExpr::Kind kind, std::unique_ptr<CompExpr> first,
                                       std::unique_ptr<CompExpr> (Parser::*next)(), std::string_view kw) {
    if (!IsKw(kw) || failed_) return first;
    auto node = std::make_unique<CompExpr>();
    node->kind = kind;
    node->children.push_back(std::move(first));
    while (!failed_ && AcceptKw(kw)) node->children.push_back((this->*next)());
    return node;
  }

  std::unique_ptr<CompExpr> CmpOr() { return CombineCmp(CompExpr::Kind::kOr, CmpAnd(), &Parser::CmpAnd, "OR"); }
  std::unique_ptr<CompExpr> CmpAnd() { return CombineCmp(CompExpr::Kind::kAnd, CmpUnit(), &Parser::CmpUnit, "AND"); }

  std::unique_ptr<CompExpr> CmpUnit() {
    auto c = std::make_unique<CompExpr>();
    if (Accept(Tok::kLParen)) {
      Nest nest(*this);
      if (!nest.ok()) return c;
      c = CmpOr();
      if (!failed_ && !Accept(Tok::kRParen)) Expect("')'");
      return c;
    }
    if (AcceptKw("EXISTS")) {
      c->op = CmpOp::kExists;
      Path(&c->path);
      return c;
    }
    if (!Path(&c->path)) return c;
    if (AcceptKw("NOT")) c->negated = true;
    size_t op_pos = cur_.pos;
    switch (cur_.kind) {
      case Tok::kEq: c->op = CmpOp::kEq; break;
      case Tok::kNe: c->op = CmpOp::kNe; break;
      case Tok::kLt: c->op = CmpOp::kLt; break;
      case Tok::kLe: c->op = CmpOp::kLe; break;
      case Tok::kGt: c->op = CmpOp::kGt; break;
      case Tok::kGe: c->op = CmpOp::kGe; break;
      case Tok::kIdent:
        if (cur_.text == "IN") c->op = CmpOp::kIn;
        else if (cur_.text == "LIKE") c->op = CmpOp::kLike;
        else if (cur_.text == "MATCHES") c->op = CmpOp::kMatches;
        else if (cur_.text == "ISSUBSET") c->op = CmpOp::kIsSubset;
        else if (cur_.text == "ISSUPERSET") c->op = CmpOp::kIsSuperset;
        else {
          Expect("a comparison operator (=, !=, <, <=, >, >=, IN, LIKE, MATCHES, ISSUBSET, ISSUPERSET)");
          return c;
        }
        break;
      default:
        Expect("a comparison operator (=, !=, <, <=, >, >=, IN, LIKE, MATCHES, ISSUBSET, ISSUPERSET)");
        return c;
    }
    Advance();
    if (c->op == CmpOp::kIn) {
      if (!Accept(Tok::kLParen)) {
        Expect("'(' starting the IN set");
        return c;
      }
      if (!Accept(Tok::kRParen)) {
        do {
          Literal l;
          if (!Value(&l, false)) return c;
          c->values.push_back(std::move(l));
        } while (Accept(Tok::kComma));
        if (!failed_ && !Accept(Tok::kRParen)) Expect("',' or ')' in the IN set");
      }
      return c;
    }
    bool ordered = c->op == CmpOp::kLt || c->op == CmpOp::kLe || c->op == CmpOp::kGt || c->op == CmpOp::kGe;
    bool string_only = c->op == CmpOp::kLike || c->op == CmpOp::kMatches || c->op == CmpOp::kIsSubset ||
                       c->op == CmpOp::kIsSuperset;
    Literal l;
    if (!Value(&l, ordered)) return c;
    if (string_only && l.kind != Literal::Kind::kString) {
      Fail(op_pos, "this operator needs a string literal");
      return c;
    }
    c->values.push_back(std::move(l));
    return c;
  }

  bool Path(ObjectPath* p) {
    if (cur_.kind != Tok::kIdent || IsKeyword(cur_.text)) {
      Expect("an object path (type:property)");
      return false;
    }
    p->type = cur_.text;
    size_t type_pos = cur_.pos;
    Advance();
    const std::string& t = p->type;
    bool ok_type = t.size() >= 3 && std::all_of(t.begin(), t.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
    if (!ok_type) {
      Fail(type_pos, "object type '" + t + "' must be lowercase a-z, 0-9 and hyphens, at least 3 characters");
      return false;
    }
    if (!Accept(Tok::kColon)) {
      Expect("':' after the object type");
      return false;
    }
    if (!PathKey(p)) return false;
    while (!failed_) {
      if (Accept(Tok::kDot)) {
        if (!PathKey(p)) return false;
      } else if (Accept(Tok::kLBracket)) {
        PathStep s;
        if (Accept(Tok::kStar)) {
          s.kind = PathStep::Kind::kAnyIndex;
        } else if (cur_.kind == Tok::kInt) {
          s.kind = PathStep::Kind::kIndex;
          s.index = std::strtoll(cur_.text.c_str(), nullptr, 10);
          if (s.index < 0) {
            Fail(cur_.pos, "list index must not be negative");
            return false;
          }
          Advance();
        } else {
          Expect("a list index or '*'");
          return false;
        }
        if (!Accept(Tok::kRBracket)) {
          Expect("']' closing the list index");
          return false;
        }
        p->steps.push_back(std::move(s));
      } else {
        break;
      }
    }
    return !failed_;
  }

  bool PathKey(ObjectPath* p) {
    PathStep s;
    if (cur_.kind == Tok::kString) {
      s.key = cur_.text;
    } else if (cur_.kind == Tok::kIdent && cur_.text.find('-') == std::string::npos) {
      s.key = cur_.text;
    } else {
      Expect("a property name (identifier or quoted string)");
      return false;
    }
    Advance();
    p->steps.push_back(std::move(s));
    return true;
  }

  bool Value(Literal* l, bool orderable) {
    size_t pos = cur_.pos;
    switch (cur_.kind) {
      case Tok::kInt: {
        l->kind = Literal::Kind::kInt;
        const char* b = cur_.text.c_str();
        if (*b == '+') ++b;
        auto r = std::from_chars(b, cur_.text.c_str() + cur_.text.size(), l->int_value);
        if (r.ec != std::errc()) {
          Fail(pos, "integer out of range");
          return false;
        }
        break;
      }
      case Tok::kFloat:
        l->kind = Literal::Kind::kFloat;
        l->float_value = std::strtod(cur_.text.c_str(), nullptr);
        break;
      case Tok::kString:
        l->kind = Literal::Kind::kString;
        l->text = cur_.text;
        break;
      case Tok::kHex:
        l->kind = Literal::Kind::kHex;
        l->text = cur_.text;
        if (cur_.text.size() % 2 != 0 ||
            !std::all_of(cur_.text.begin(), cur_.text.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); })) {
          Fail(pos, "hex literal h'...' must hold an even number of hex digits");
          return false;
        }
        break;
      case Tok::kBinary:
        l->kind = Literal::Kind::kBinary;
        l->text = cur_.text;
        if (!IsBase64(cur_.text)) {
          Fail(pos, "binary literal b'...' must be base64");
          return false;
        }
        break;
      case Tok::kTimestamp:
        l->kind = Literal::Kind::kTimestamp;
        l->text = cur_.text;
        if (!ValidTimestamp(cur_.text)) {
          Fail(pos, "invalid timestamp t'" + cur_.text + "'");
          return false;
        }
        break;
      case Tok::kIdent:
        if (!orderable && (cur_.text == "true" || cur_.text == "false")) {
          l->kind = Literal::Kind::kBool;
          l->bool_value = cur_.text == "true";
          break;
        }
        [[fallthrough]];
      default:
        Expect(orderable ? "an orderable literal (number, string, binary, hex or timestamp)" : "a literal value");
        return false;
    }
    Advance();
    return true;
  }

  Lexer lex_;
  Token cur_;
  bool failed_ = false;
  int nesting_ = 0;
  std::string error_;
};

}  // namespace

std::string ObjectPath::ToString() const {
  std::string s = type + ":";
  bool first = true;
  for (const auto& st : steps) {
    if (st.kind == PathStep::Kind::kKey) {
      if (!first) s += '.';
      bool plain = !st.key.empty() && std::all_of(st.key.begin(), st.key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
      });
      s += plain ? st.key : "'" + st.key + "'";
    } else if (st.kind == PathStep::Kind::kIndex) {
      s += "[" + std::to_string(st.index) + "]";
    } else {
      s += "[*]";
    }
    first = false;
  }
  return s;
}

Result<Pattern> Parse(std::string_view text) { return Parser(text).Run(); }

Status CheckSyntax(std::string_view text) {
  auto r = Parse(text);
  return r.ok() ? Status::Ok() : r.status();
}

}  // namespace tearline::pattern
