// The audit chain's entries in an append-only file of their own (private to src/store).
//
// Why not a SQLite table: every audited response appends an entry listing its objects (~8 KB
// for a page of 100), and through SQLite each one was written three times (WAL frame, B-tree
// page, checkpoint copy) and read back once; that was ~30% of the CPU of a TAXII page
// (docs/benchmarks.md, ninth session). Here an entry is written once and never rewritten.
//
// File ("<database>.audit-chain", ChainPath): a header line, then one record per entry:
//   u32 kRecordMagic, u32 n, payload (n bytes), u32 n, u32 kTrailerMagic        (little-endian)
//   payload: i64 seq, i64 time_us, then recipient, object_id, version, decision, reason,
//            prev_hash, hash, each as u32 length + bytes.
// The trailer makes the last record findable from the end of the file. Integrity against
// tampering is the hash chain's job (audit::Verify), not the file's: the format only tells a
// complete record from a torn one (a crash during an append), which is cut off on the next
// append or open (it was never acknowledged: responses wait for the sync).
//
// Concurrency: appends hold an exclusive lock on the file (flock: other processes, e.g. a CLI
// command beside a serving node; a mutex: this process's threads). Taking the lock brings the
// head up to date with what others appended. Reads need no lock: records are never changed,
// and a reader stops at the last complete record.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "audit/audit.h"
#include "common/status.h"

namespace tearline::store::detail {

class AuditChain {
 public:
  //! Opens (creating it when absent) the chain file at `path`; an empty path keeps the chain
  //! in memory (in-memory stores). Io when the file cannot be opened or is not a chain file.
  static Result<std::unique_ptr<AuditChain>> Open(const std::string& path);
  ~AuditChain();
  AuditChain(const AuditChain&) = delete;
  AuditChain& operator=(const AuditChain&) = delete;

  //! Exclusive use of the chain (threads and processes) while alive; see Acquire().
  class Lock {
   public:
    Lock(Lock&& o) noexcept : chain_(std::exchange(o.chain_, nullptr)) {}
    Lock& operator=(Lock&&) = delete;
    ~Lock();
    explicit operator bool() const { return chain_ != nullptr; }

   private:
    friend class AuditChain;
    explicit Lock(AuditChain* c) : chain_(c) {}
    AuditChain* chain_;
  };
  //! Takes the lock, then reads what other processes appended since (and cuts off a torn
  //! tail). On error the lock is not held.
  Result<Lock> Acquire();

  //! With the lock: the newest entry's (seq, hash); (0, genesis) when empty.
  std::pair<int64_t, std::string> Head(const Lock&) const { return {head_seq_, head_hash_}; }
  //! With the lock: sets seq, prev_hash and hash of `entries` to follow the head (or `after`,
  //! the last of entries chained but not yet written in the same lock) without writing them.
  static void Link(std::vector<audit::Entry>& entries, int64_t after_seq, std::string after_hash);
  //! With the lock: writes entries already linked to follow the head, in one write. Not synced
  //! (Sync). Invalid if they do not follow the head; Io if the write failed (cut off again).
  Status Write(const Lock&, const std::vector<audit::Entry>& entries);
  //! With the lock: Link() onto the head, then Write().
  Status Append(const Lock& l, std::vector<audit::Entry>& entries);

  //! Makes every entry written before the call durable (fdatasync); the seq it covers.
  //! `fd`: a descriptor from OpenSyncDescriptor to sync through (the kernel reports a failed
  //! write-back once to each open file), or -1: the chain's own.
  Result<int64_t> Sync(int fd = -1);
  //! A new read-only descriptor of the chain's file, for Sync (the caller closes it); -1 for
  //! an in-memory chain or when it cannot be opened (Sync then uses the chain's own).
  int OpenSyncDescriptor() const;
  //! The newest entry known durable (by Sync, or found in the file when opened): its (seq,
  //! hash), (0, genesis) when none; a head to sign without syncing.
  std::pair<int64_t, std::string> SyncedHead() const;

  //! Entries with seq > after, in order, at most `limit` (what is complete in the file now).
  //! Invalid when the file holds something that is not a record where one should start.
  Result<std::vector<audit::Entry>> Read(int64_t after, size_t limit);

 private:
  AuditChain() = default;
  Status FindHeadLocked();                 // from the end of the file; cuts a torn tail
  Status CatchUpLocked();                  // what others appended since end_
  Status TruncateLocked(uint64_t size);
  void NoteWrittenLocked();                // under index_mu_ and the lock: the head is written

  std::string path_;
  int fd_ = -1;
  std::mutex mu_;              // this process's holder of the lock (with flock on fd_)
  uint64_t end_ = 0;           // end of the last complete record (under the lock)
  int64_t head_seq_ = 0;
  std::string head_hash_ = audit::kGenesis;
  std::vector<audit::Entry> memory_;  // the in-memory chain (no file)

  mutable std::mutex index_mu_;
  std::map<int64_t, uint64_t> index_;  // seq -> offset of its record, a few known points (Read)
  int64_t synced_seq_ = 0;             // under index_mu_
  std::string synced_hash_ = audit::kGenesis;   // under index_mu_: synced_seq_'s hash
  int64_t written_seq_ = 0;            // under index_mu_: the head as last written
  std::string written_hash_ = audit::kGenesis;  // under index_mu_: written_seq_'s hash
};

}  // namespace tearline::store::detail
