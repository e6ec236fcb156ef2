// tearline audit: a hash-chained log of every release (who got what, under which decision).
//
// This is the public header of src/audit. Each entry's hash is SHA-256 over the
// previous entry's hash and the entry's fields, so changing, removing or
// reordering any entry breaks every hash after it; Verify() finds the first
// broken link. Pure functions; the store persists the entries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tearline::audit {

struct Entry {
  int64_t seq = 0;          //!< 1, 2, 3, ... (assigned by the store)
  int64_t time_us = 0;      //!< when it was released
  std::string recipient;    //!< principal, and "@partner-identity" when acting for a partner
  std::string object_id;    //!< released objects, "id@modified" one per line
  std::string version;      //!< a summary, e.g. "3 objects"
  std::string decision;     //!< "release" or "release-variant"
  std::string reason;       //!< the Releaser's reason
  std::string prev_hash;    //!< hash of entry seq-1 (64 zeros for the first)
  std::string hash;         //!< EntryHash(*this)
};

inline const std::string kGenesis(64, '0');

//! Hex SHA-256 over prev_hash and every field (length-prefixed, so fields cannot run together).
std::string EntryHash(const Entry& e);

struct VerifyResult {
  bool ok = true;
  int64_t entries = 0;
  int64_t first_bad_seq = 0;  //!< 0 when ok
  std::string message;
};

//! Checks that `chain` (in seq order, starting at seq 1) links and hashes correctly.
VerifyResult Verify(const std::vector<Entry>& chain);

}  // namespace tearline::audit
