// tearline audit: a hash-chained log of every release (who got what, under which decision),
// of ingest and of policy changes, with checkpoints signed by the node's Ed25519 key.
//
// Each entry's hash links the previous hash, its sequence number and the SHA-256
// digest of its fields: hash = SHA-256(prev_hash, seq, BodyDigest(entry)). Changing,
// removing, inserting or reordering an entry breaks a link that Verify() names.
// Someone able to rewrite the whole database could recompute every hash, so every N
// entries (and on shutdown) the node signs (seq, hash): a rewritten chain no longer
// matches its signed checkpoints. Because a link needs only the body digest, a
// partner can be given its own entries in full and everyone else's as digests
// (ExportFor), and still verify the chain up to a checkpoint with the node's public key.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tearline::audit {

struct Entry {
  int64_t seq = 0;          //!< 1, 2, 3, ... (assigned by the store)
  int64_t time_us = 0;      //!< when it happened
  std::string recipient;    //!< who: principal, "@partner-identity" when acting for a partner
  std::string object_id;    //!< what: objects "id@modified" one per line, or the subject of a change
  std::string version;      //!< a summary, e.g. "3 objects"
  std::string decision;     //!< "release", "release-variant", "ingest", "partner", "channel", "principal", ...
  std::string reason;       //!< the Releaser's reason, or the change
  std::string prev_hash;    //!< hash of entry seq-1 (64 zeros for the first)
  std::string hash;         //!< EntryHash(*this)
  //! BodyDigest(*this) when the caller computed it already (not stored): the chain's single
  //! writer then only links it (LinkHash), the digest of a large entry is computed in parallel.
  std::string body_digest;
};

inline const std::string kGenesis(64, '0');

//! Hex SHA-256 of the entry's fields (length-prefixed, so fields cannot run together).
std::string BodyDigest(const Entry& e);
//! Hex SHA-256 linking `prev_hash`, `seq` and a body digest.
std::string LinkHash(std::string_view prev_hash, int64_t seq, std::string_view body_digest);
//! LinkHash(e.prev_hash, e.seq, BodyDigest(e)).
std::string EntryHash(const Entry& e);

//! A signed statement that the chain had `hash` at `seq`.
struct Checkpoint {
  int64_t seq = 0;
  std::string hash;
  int64_t time_us = 0;
  std::string public_key;  //!< hex Ed25519 public key
  std::string signature;   //!< hex, over CheckpointMessage(seq, hash)
};
std::string CheckpointMessage(int64_t seq, std::string_view hash);

//! The object_id of an entry that repeats a release listed in full by entry `seq` of the same
//! chain (same recipient, decision and objects): "same as entry <seq>". Used for responses
//! served again from the TAXII response cache.
std::string SameAs(int64_t seq);
//! The seq an object_id of SameAs form names, or 0 for any other object_id.
int64_t SameAsSeq(std::string_view object_id);

//! The node's Ed25519 key pair (libsodium).
struct NodeKey {
  std::string public_hex;
  std::array<unsigned char, 64> secret{};
};
//! Loads the key at `path`, or creates it (file mode 0600) when absent. nullopt and
//! `*error` when the file is unreadable, malformed or readable by others.
std::optional<NodeKey> LoadOrCreateKey(const std::string& path, std::string* error);
std::string SignHex(const NodeKey& key, std::string_view message);
bool VerifyHex(std::string_view public_hex, std::string_view message, std::string_view signature_hex);
//! A checkpoint over (seq, hash) signed by `key`.
Checkpoint MakeCheckpoint(const NodeKey& key, int64_t seq, std::string_view hash, int64_t time_us);

struct VerifyResult {
  bool ok = true;
  int64_t entries = 0;
  int64_t checkpoints = 0;
  int64_t first_bad_seq = 0;  //!< 0 when ok
  int64_t unsigned_tail = 0;  //!< entries after the last valid checkpoint
  std::string message;
};

//! Checks that `chain` (in seq order, starting at seq 1) links and hashes correctly,
//! that every checkpoint is validly signed (by `trusted_key` when given) and matches the
//! chain, and that an entry of SameAs form names an earlier entry that lists objects for the
//! same recipient.
VerifyResult Verify(const std::vector<Entry>& chain, const std::vector<Checkpoint>& checkpoints = {},
                    std::string_view trusted_key = {});

//! One line of a partner's audit export: a full entry (its own) or a link (seq,
//! digest, hash) of somebody else's entry.
struct ExportLine {
  bool full = false;
  Entry entry;               //!< full: every field; otherwise seq and hash
  std::string body_digest;   //!< for links
};
//! The export for `partner_identity`: its entries in full, the rest as links, up to the last checkpoint.
std::vector<ExportLine> ExportFor(const std::vector<Entry>& chain, const std::vector<Checkpoint>& checkpoints,
                                  std::string_view partner_identity);
//! JSON lines: {"entry":{...}} / {"link":{...}} / {"checkpoint":{...}}.
std::string ExportToJsonLines(const std::vector<ExportLine>& lines, const std::vector<Checkpoint>& checkpoints);
//! Parses ExportToJsonLines output; false and `*error` when malformed.
bool ParseExport(std::string_view text, std::vector<ExportLine>* lines, std::vector<Checkpoint>* checkpoints,
                 std::string* error);
//! Verifies an export with the node's public key: every link, every checkpoint signature.
VerifyResult VerifyExport(const std::vector<ExportLine>& lines, const std::vector<Checkpoint>& checkpoints,
                          std::string_view trusted_key);

}  // namespace tearline::audit
