// Group commit for the audit log (private to src/taxii): concurrent requests hand
// their entries to one writer thread, which appends everything pending in one write to the
// audit chain; their completions run once it is durable. A response leaves only after its
// release is durably audited (Response::defer), and the fsync is shared by all requests
// waiting together.
//
// Entries alone (a local reader's pages, a partner's pages of objects released before) are
// written and synced by this thread (Store::AppendAudit): while it syncs, the next batch
// gathers. Entries with release history (a partner's first releases) take one transaction in
// the objects' file (Store::AppendAuditAsync): the store's syncer makes them durable with its
// group commits, and this thread goes on meanwhile. (Every batch went through the syncer
// before: a second thread to wake per batch, under load one more wait for a core; syncing
// here gave 5-7% more random pages per second at 8-10% less CPU per page, docs/benchmarks.md,
// eighteenth session.)
#pragma once

#include <pthread.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "store/store.h"

namespace tearline::taxii {

class AuditWriter {
 public:
  //! With a key, the chain's head is signed every `checkpoint_every` entries and on shutdown.
  explicit AuditWriter(store::Store& store, std::optional<audit::NodeKey> key = std::nullopt,
                       size_t checkpoint_every = 1000)
      : store_(store), key_(std::move(key)), every_(checkpoint_every), thread_([this] { Loop(); }) {
    if (key_) signer_ = std::thread([this] { Sign(); });
  }
  ~AuditWriter() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    sign_cv_.notify_all();
    thread_.join();
    {
      // The batches' completions use this writer (Durable): wait for the last of them.
      std::unique_lock lock(mu_);
      durable_cv_.wait(lock, [&] { return in_flight_ == 0; });
    }
    if (signer_.joinable()) signer_.join();
    if (key_) (void)store::WriteCheckpoint(store_, *key_);  // syncs: the last head is signed
  }

  //! Queues `entries` (and `releases`, the release history written in the same transaction)
  //! without waiting: `done(true, seq)` runs on the store's syncer thread (or the writer's)
  //! once they are durably committed, `seq` the one given to the first of `entries`;
  //! `done(false, 0)` if the commit failed or the writer stopped first. `done` is called exactly once and must not block.
  void Submit(std::vector<audit::Entry> entries, std::vector<store::ReleaseRecord> releases,
              std::function<void(bool, int64_t)> done) {
    for (auto& e : entries) e.body_digest = audit::BodyDigest(e);  // on the caller's thread
    {
      std::lock_guard lock(mu_);
      if (!stop_) {
        // The writer waits only with nothing pending: it needs waking by the first submission
        // of a batch alone (each notify of a waiting thread is a futex call).
        const bool wake = pending_.empty();
        offsets_.push_back(pending_.size());  // where this submission's entries start in the batch
        pending_.insert(pending_.end(), std::make_move_iterator(entries.begin()), std::make_move_iterator(entries.end()));
        pending_releases_.insert(pending_releases_.end(), std::make_move_iterator(releases.begin()),
                                 std::make_move_iterator(releases.end()));
        callbacks_.push_back(std::move(done));
        if (wake) cv_.notify_one();
        return;
      }
    }
    done(false, 0);
  }

 private:
  void Loop() {
    pthread_setname_np(pthread_self(), "tl-audit");  // top -H, perf
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || !pending_.empty(); });
      if (pending_.empty() && stop_) return;
      std::vector<audit::Entry> batch;
      batch.swap(pending_);
      std::vector<store::ReleaseRecord> releases;
      releases.swap(pending_releases_);
      std::vector<std::function<void(bool, int64_t)>> callbacks;
      callbacks.swap(callbacks_);
      std::vector<size_t> offsets;
      offsets.swap(offsets_);
      ++in_flight_;
      lock.unlock();
      const size_t n = batch.size();
      auto finish = [this, n, callbacks = std::move(callbacks), offsets = std::move(offsets)](Status st, int64_t first) {
        for (size_t k = 0; k < callbacks.size(); ++k) {
          callbacks[k](st.ok(), st.ok() && first > 0 ? first + static_cast<int64_t>(offsets[k]) : 0);
        }
        Durable(st.ok() ? n : 0);
      };
      if (releases.empty()) {
        int64_t first = 0;
        Status st = store_.AppendAudit(std::move(batch), {}, &first);  // written and synced here
        finish(st, first);
      } else {
        // The callbacks run once the batch is durable, on the store's syncer thread.
        store_.AppendAuditAsync(std::move(batch), std::move(releases), std::move(finish));
      }
      lock.lock();
    }
  }

  // A batch of `n` entries is durable (0: it failed): a checkpoint is due every `every_`
  // durable entries, counted here so that the newest durable entry the signer signs (it does
  // not sync the chain itself) covers the entries that made it due.
  void Durable(size_t n) {
    std::lock_guard lock(mu_);
    since_checkpoint_ += n;
    if (key_ && since_checkpoint_ >= every_) {
      since_checkpoint_ = 0;
      sign_due_ = true;
      sign_cv_.notify_one();
    }
    if (--in_flight_ == 0) durable_cv_.notify_all();
  }

  // Checkpoints are signed on a thread of their own: one commits to the log's file (an fsync:
  // milliseconds), every `every_` entries (at 12,000 audited reads/s, 12 times a second), and
  // every batch of entries waited meanwhile; the p99 of the reads. It signs the newest entry
  // already made durable (by this writer's syncs or the store's syncer): syncing the chain for
  // it (as the last checkpoint, on shutdown, does) was one more fdatasync of the chain.
  void Sign() {
    pthread_setname_np(pthread_self(), "tl-sign");
    std::unique_lock lock(mu_);
    while (true) {
      sign_cv_.wait(lock, [&] { return stop_ || sign_due_; });
      if (stop_) return;  // the destructor signs the last head
      sign_due_ = false;
      lock.unlock();
      (void)store::WriteCheckpoint(store_, *key_, /*sync=*/false);  // a missed checkpoint is retried at the next one
      lock.lock();
    }
  }

  store::Store& store_;
  std::optional<audit::NodeKey> key_;
  size_t every_;
  size_t since_checkpoint_ = 0;  // durable entries since the last checkpoint was due; under mu_, as the rest
  size_t in_flight_ = 0;         // batches appended, not yet durable (or failed)
  std::condition_variable durable_cv_;
  bool sign_due_ = false;
  std::condition_variable sign_cv_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<audit::Entry> pending_;
  std::vector<store::ReleaseRecord> pending_releases_;
  std::vector<std::function<void(bool, int64_t)>> callbacks_;  // of Submit, for the entries in pending_
  std::vector<size_t> offsets_;  // per callback: the index in pending_ of its first entry
  bool stop_ = false;
  std::thread signer_;  // Sign(), when there is a key
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace tearline::taxii
