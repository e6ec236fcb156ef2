// Private to src/pattern: the evaluator's view of observed-data.
#pragma once

#include <simdjson.h>

#include <memory>
#include <span>
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "common/timestamp.h"
#include "pattern/pattern.h"

namespace tearline::pattern {

//! Objects by id (object_refs form) or by index key (embedded form): open
//! addressing over views into the parsed input, no allocation per entry. When a
//! key occurs twice the first object wins.
class RefMap {
 public:
  void Reserve(size_t n) {
    size_t cap = 8;
    while (cap < n * 2) cap *= 2;
    if (cap > slots_.size()) Rehash(cap);
  }
  void Add(std::string_view key, simdjson::dom::element e) {
    if ((size_ + 1) * 2 > slots_.size()) Rehash(std::max<size_t>(8, slots_.size() * 2));
    for (size_t i = Hash(key) & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      if (!slots_[i].used) {
        slots_[i] = {key, e, true};
        ++size_;
        return;
      }
      if (slots_[i].key == key) return;
    }
  }
  const simdjson::dom::element* Find(std::string_view key) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = Hash(key) & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      if (!slots_[i].used) return nullptr;
      if (slots_[i].key == key) return &slots_[i].el;
    }
  }

 private:
  struct Slot {
    std::string_view key;
    simdjson::dom::element el;
    bool used = false;
  };
  static size_t Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }
  void Rehash(size_t cap) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{});
    size_ = 0;
    for (const Slot& s : old) {
      if (s.used) Add(s.key, s.el);
    }
  }
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

struct Observation {
  std::string_view id;  // the observed-data id
  simdjson::dom::element object;        // the observed-data itself (MatchStream keeps it as JSON)
  int64_t first_us = 0, last_us = 0;  // microseconds, for WITHIN arithmetic
  int64_t count = 1;                   // number_observed
  std::span<const simdjson::dom::element> roots;  // the SCOs this observation reports (in Impl::roots)
  //! Resolves a reference: an id (object_refs form) or an index key (embedded form).
  const RefMap* refs = nullptr;
};

struct Observations::Impl {
  Impl();
  ~Impl();  // gives the parser back to the pool
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  //! Taken from a process-wide pool: a parser and its padded input buffer keep
  //! their memory, so a stream of batches does not allocate megabytes per batch.
  struct Parser {
    simdjson::dom::parser dom;
    std::string padded;  // the input copied with SIMDJSON_PADDING bytes after it
  };
  std::unique_ptr<Parser> parser;
  simdjson::dom::array objects;  // the input's objects (the array, or the bundle's/envelope's)
  RefMap by_id;                  // every object of the input
  std::vector<RefMap> embedded;  // per observation (deprecated embedded form)
  std::vector<simdjson::dom::element> roots;  // every observation's SCOs, one run each
  std::vector<Observation> list;
};

}  // namespace tearline::pattern
