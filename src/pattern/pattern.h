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

// ---- Evaluation (STIX 2.1 §9.5-§9.7) ----

//! The observed-data of one input and the cyber-observable objects they refer
//! to, ready for evaluation. Holds its own parsed copy of the input.
class Observations {
 public:
  //! Reads a STIX bundle, a TAXII envelope or a JSON array of objects. Every
  //! observed-data becomes one observation; its SCOs come from object_refs
  //! (resolved among the input's objects) or the deprecated embedded
  //! `objects`. Invalid if the JSON is malformed or an observed-data lacks
  //! first_observed/last_observed/number_observed.
  static Result<Observations> FromJson(std::string_view json);

  Observations();
  ~Observations();
  Observations(Observations&&) noexcept;
  Observations& operator=(Observations&&) noexcept;

  size_t size() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

//! Decides whether `pattern` matches `observations`:
//!  - a comparison expression is evaluated against one observation at a time;
//!    comparisons on the same object type bind to the same object, and a path
//!    that does not resolve makes its comparison false (also under NOT);
//!  - AND/OR/FOLLOWEDBY combine matches of distinct observations; FOLLOWEDBY
//!    needs the left side's last_observed <= the right side's first_observed;
//!  - WITHIN n SECONDS bounds the span first_observed..last_observed of the
//!    observations used; REPEATS n TIMES needs n matches, an observation
//!    counting number_observed times; START/STOP keeps observations with
//!    start <= first_observed and last_observed < stop.
//! Invalid for a MATCHES regular expression the engine cannot compile.
Result<bool> Matches(const Pattern& pattern, const Observations& observations);

//! One way a pattern matched: the observations used and their time span.
struct MatchResult {
  std::vector<size_t> observations;  //!< indexes into the Observations, ascending
  int64_t first_us = 0, last_us = 0; //!< first_observed / last_observed span, microseconds
  int64_t count = 0;                 //!< number_observed summed over the observations
};

//! Every match of `pattern` (bounded; see kMaxBindings in evaluator.cpp).
Result<std::vector<MatchResult>> FindMatches(const Pattern& pattern, const Observations& observations);

//! The observed-data id of observation `i`.
std::string ObservationId(const Observations& observations, size_t i);

//! Many indicators compiled into one engine. Each indicator's pattern yields a
//! set of "anchor" keys (type, path, value) that any match must contain, taken
//! from its = and IN comparisons; an observation batch is turned into its keys
//! once, and only indicators with an anchor present are evaluated. Patterns
//! without anchors (only ranges, LIKE, MATCHES, EXISTS, !=, NOT) are always
//! evaluated.
class Matcher {
 public:
  Matcher();
  ~Matcher();
  Matcher(Matcher&&) noexcept;
  Matcher& operator=(Matcher&&) noexcept;

  //! Adds an indicator. Invalid if the pattern does not parse.
  Status Add(std::string indicator_id, std::string_view pattern);
  size_t size() const;
  size_t unanchored() const;  //!< indicators evaluated for every batch

  //! Builds the multi-pattern databases now (Match() does it lazily otherwise).
  //! Hyperscan compilation is the expensive part: ~2 s per 1,000 regular expressions here.
  void Compile();

  struct Sighting {
    std::string indicator_id;
    std::vector<std::string> observed_data_ids;  //!< every observation of every match, in input order
    int64_t count = 0;                           //!< number_observed summed over those observations
    int64_t first_us = 0, last_us = 0;
  };
  //! One sighting per indicator that matches the batch, in the order indicators were added.
  Result<std::vector<Sighting>> Match(const Observations& batch) const;
  //! The same answer by evaluating every indicator: the reference for tests and benchmarks.
  Result<std::vector<Sighting>> MatchNaive(const Observations& batch) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tearline::pattern
