// tearline STIX patterning (STIX 2.1 §9): the language, parsed into an AST.
//
// This is the public header of src/pattern. It depends on nothing else of
// tearline. Parse() accepts exactly the STIX 2.1 pattern grammar; errors give
// the character position (0-based) and what was expected there.
// Threads: all functions are pure and thread safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tearline::pattern {

struct Literal {
  enum class Kind { kInt, kFloat, kString, kBool, kBinary, kHex, kTimestamp };
  Kind kind = Kind::kString;
  int64_t int_value = 0;
  double float_value = 0;
  bool bool_value = false;
  std::string text;  //!< decoded string; hex digits; base64 text; timestamp text
};

struct PathStep {
  enum class Kind { kKey, kIndex, kAnyIndex };
  Kind kind = Kind::kKey;
  std::string key;
  int64_t index = 0;
};

//! `file:hashes.'SHA-256'` = {type "file", steps [hashes, SHA-256]}.
struct ObjectPath {
  std::string type;
  std::vector<PathStep> steps;
  std::string ToString() const;
};

enum class CmpOp { kEq, kNe, kGt, kLt, kGe, kLe, kIn, kLike, kMatches, kIsSubset, kIsSuperset, kExists };

//! A comparison expression tree: a leaf comparison, or AND/OR of children.
struct CompExpr {
  enum class Kind { kCmp, kAnd, kOr };
  Kind kind = Kind::kCmp;
  // leaf
  ObjectPath path;
  CmpOp op = CmpOp::kEq;
  bool negated = false;
  std::vector<Literal> values;  //!< one value; the set for IN; none for EXISTS
  // inner node
  std::vector<std::unique_ptr<CompExpr>> children;
};

struct Qualifier {
  enum class Kind { kWithin, kRepeats, kStartStop };
  Kind kind = Kind::kWithin;
  double seconds = 0;      //!< WITHIN
  int64_t times = 0;       //!< REPEATS
  std::string start, stop; //!< START/STOP timestamps
};

//! An observation expression tree.
struct ObsExpr {
  enum class Kind { kObservation, kAnd, kOr, kFollowedBy };
  Kind kind = Kind::kObservation;
  std::unique_ptr<CompExpr> comparison;            //!< kObservation
  std::vector<std::unique_ptr<ObsExpr>> children;  //!< kAnd/kOr/kFollowedBy
  std::vector<Qualifier> qualifiers;               //!< applied to this expression
};

struct Pattern {
  std::unique_ptr<ObsExpr> root;
};

//! Parses a STIX 2.1 pattern. The error message reads
//! "at character N: expected X, found Y".
Result<Pattern> Parse(std::string_view text);

//! Parse() without keeping the tree.
Status CheckSyntax(std::string_view text);

}  // namespace tearline::pattern
