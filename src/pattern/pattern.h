// tearline STIX patterning (STIX 2.1 §9): the language, parsed into an AST.
//
// This is the public header of src/pattern. It depends on nothing else of
// tearline. Parse() accepts exactly the STIX 2.1 pattern grammar; errors give
// the character position (0-based) and what was expected there.
// Threads: all functions are pure and thread safe.
#pragma once

#include <cstdint>
#include <climits>
#include <deque>
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
//! set of "anchors" that any match must contain: exact values (= and IN), IP
//! networks (ISSUBSET) and regular expressions (MATCHES, LIKE: by literal prefix
//! when anchored with ^, else Hyperscan/RE2::Set); an observation batch is turned
//! into its keys once, and only indicators with an anchor present are evaluated.
//! Patterns without anchors (ranges, EXISTS, !=, NOT) are always evaluated.
//! docs/patterning.md describes the indexes and their cost.
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
  //! Hyperscan compilation is the expensive part: ~2 s per 1,000 regular expressions
  //! without a literal prefix, here.
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

  //! Whether some indicator combines several observations (AND, OR, FOLLOWEDBY
  //! between observation expressions, or a qualifier): only those need a stream's state.
  bool has_multi_observation() const;

 private:
  friend class MatchStream;
  //! Match() where observations [0, first_new) are earlier ones kept by a stream: they
  //! take part only in multi-observation matches, which are reported only when they use
  //! an observation from first_new on. `keep` gets, per new observation, whether a
  //! stream must keep it (it carries an anchor of a multi-observation pattern, or such a
  //! pattern has an operand without anchors).
  Result<std::vector<Sighting>> MatchFrom(const Observations& batch, size_t first_new, std::vector<char>* keep) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

//! Matches a stream of observation batches with state, so that multi-observation
//! patterns also combine observations of earlier batches (issue #5: "bounded state per
//! indicator over a sliding time window"). The state is bounded: only observations
//! that carry an anchor of a multi-observation pattern are kept (every observation
//! when such a pattern has an operand without anchors), only while their
//! last_observed is within `window_seconds` of the newest last_observed seen, and at
//! most `max_kept` of them (the oldest go first). They are kept as JSON (the
//! observed-data and its objects), so the state survives replacing the Matcher when
//! indicators change.
class MatchStream {
 public:
  struct Options {
    int64_t window_seconds = 86400;
    size_t max_kept = 10000;
  };
  MatchStream() : MatchStream(Options{}) {}
  explicit MatchStream(Options options) : opt_(options) {}

  //! Sightings for one batch (a bundle, envelope or JSON array of observed-data and
  //! SCOs): single-observation patterns on this batch alone; multi-observation
  //! patterns on the kept observations and this batch, reported when a match uses an
  //! observation of this batch (a sighting's observed_data_ids then also name the
  //! earlier observations it combines). Invalid for a batch Observations refuses
  //! (nothing is kept from it).
  Result<std::vector<Matcher::Sighting>> Match(const Matcher& matcher, std::string_view batch_json);
  size_t kept() const { return kept_.size(); }

 private:
  struct Kept {
    std::string json;  // the observed-data and its objects, comma-separated
    int64_t last_us;
  };
  Options opt_;
  std::deque<Kept> kept_;
  int64_t newest_us_ = INT64_MIN;
};

}  // namespace tearline::pattern
