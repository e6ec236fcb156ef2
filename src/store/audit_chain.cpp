#include "store/audit_chain.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tearline::store::detail {
namespace {

constexpr std::string_view kHeader = "tearline audit chain 1\n";
constexpr uint32_t kRecordMagic = 0x31524c54;   // "TLR1"
constexpr uint32_t kTrailerMagic = 0x31455454;  // "TTE1"
constexpr size_t kFrame = 16;                   // magic, n, ..., n, magic
constexpr uint32_t kMaxPayload = 1u << 30;      // an entry lists at most a page of objects

void Put32(std::string& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b += static_cast<char>((v >> (8 * i)) & 0xff);
}
void Put64(std::string& b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b += static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t Get32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
uint64_t Get64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

void Encode(std::string& out, const audit::Entry& e) {
  const size_t start = out.size();
  Put32(out, kRecordMagic);
  Put32(out, 0);  // the payload's length, set below
  Put64(out, static_cast<uint64_t>(e.seq));
  Put64(out, static_cast<uint64_t>(e.time_us));
  for (const std::string* f : {&e.recipient, &e.object_id, &e.version, &e.decision, &e.reason, &e.prev_hash, &e.hash}) {
    Put32(out, static_cast<uint32_t>(f->size()));
    out += *f;
  }
  const uint32_t n = static_cast<uint32_t>(out.size() - start - 8);
  for (int i = 0; i < 4; ++i) out[start + 4 + i] = static_cast<char>((n >> (8 * i)) & 0xff);
  Put32(out, n);
  Put32(out, kTrailerMagic);
}

// The record at p (avail bytes there). kIncomplete: more bytes are needed (*size: how many the
// record needs in all, once its length is known); kBad: not a record.
enum class Parsed { kOk, kIncomplete, kBad };
Parsed Parse(const char* p, size_t avail, audit::Entry* e, size_t* size) {
  *size = 8;
  if (avail < 8) return Parsed::kIncomplete;
  if (Get32(p) != kRecordMagic) return Parsed::kBad;
  const uint32_t n = Get32(p + 4);
  if (n > kMaxPayload || n < 16 + 7 * 4) return Parsed::kBad;
  *size = kFrame + n;
  if (avail < *size) return Parsed::kIncomplete;
  const char* t = p + 8 + n;
  if (Get32(t) != n || Get32(t + 4) != kTrailerMagic) return Parsed::kBad;
  const char* q = p + 8;
  const char* end = q + n;
  e->seq = static_cast<int64_t>(Get64(q));
  e->time_us = static_cast<int64_t>(Get64(q + 8));
  q += 16;
  for (std::string* f : {&e->recipient, &e->object_id, &e->version, &e->decision, &e->reason, &e->prev_hash, &e->hash}) {
    if (end - q < 4) return Parsed::kBad;
    const uint32_t len = Get32(q);
    q += 4;
    if (static_cast<size_t>(end - q) < len) return Parsed::kBad;
    f->assign(q, len);
    q += len;
  }
  e->body_digest.clear();
  return q == end ? Parsed::kOk : Parsed::kBad;
}

Status Errno(const std::string& what, const std::string& path) {
  return Status::Io(what + " " + path + ": " + std::strerror(errno));
}

bool PreadAll(int fd, char* buf, size_t n, uint64_t off) {
  while (n > 0) {
    ssize_t r = ::pread(fd, buf, n, static_cast<off_t>(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return true;
}

uint64_t FileSize(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

Result<std::unique_ptr<AuditChain>> AuditChain::Open(const std::string& path) {
  std::unique_ptr<AuditChain> c(new AuditChain());
  c->path_ = path;
  if (path.empty()) return c;
  c->fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (c->fd_ < 0) return Errno("open the audit chain", path);
  auto lock = c->Acquire();  // writes the header of a new file, finds the head
  if (!lock.ok()) return lock.status();
  std::lock_guard i(c->index_mu_);
  c->synced_seq_ = c->written_seq_ = c->head_seq_;  // what a crash left in the file stays
  c->synced_hash_ = c->written_hash_ = c->head_hash_;
  return c;
}

AuditChain::~AuditChain() {
  if (fd_ >= 0) ::close(fd_);
}

AuditChain::Lock::~Lock() {
  if (!chain_) return;
  if (chain_->fd_ >= 0) ::flock(chain_->fd_, LOCK_UN);
  chain_->mu_.unlock();
}

Result<AuditChain::Lock> AuditChain::Acquire() {
  mu_.lock();
  if (fd_ < 0) return Lock(this);
  int rc;
  while ((rc = ::flock(fd_, LOCK_EX)) != 0 && errno == EINTR) {
  }
  if (rc != 0) {
    Status st = Errno("lock the audit chain", path_);
    mu_.unlock();
    return st;
  }
  Lock lock(this);  // released on every path below
  if (end_ == 0) {  // first lock of this process: the header, then the head
    const uint64_t size = FileSize(fd_);
    if (size == 0) {
      if (::pwrite(fd_, kHeader.data(), kHeader.size(), 0) != static_cast<ssize_t>(kHeader.size()) || ::fdatasync(fd_) != 0) {
        return Errno("write the audit chain's header", path_);
      }
    } else {
      std::string h(kHeader.size(), '\0');
      if (size < kHeader.size() || !PreadAll(fd_, h.data(), h.size(), 0) || h != kHeader) {
        return Status::Io(path_ + " is not a tearline audit chain");
      }
    }
    end_ = kHeader.size();
    if (auto st = FindHeadLocked(); !st.ok()) return st;
    std::lock_guard i(index_mu_);
    if (head_seq_ > 0) index_[1] = kHeader.size();
    return lock;
  }
  if (auto st = CatchUpLocked(); !st.ok()) return st;
  return lock;
}

Status AuditChain::TruncateLocked(uint64_t size) {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0 || ::fdatasync(fd_) != 0) return Errno("cut off the torn end of", path_);
  return Status::Ok();
}

// The last complete record is found from the end: the trailer names where it starts (two
// reads of the file's end). A torn end (a crash during a write) is searched backward for the
// last complete record and cut off.
Status AuditChain::FindHeadLocked() {
  const uint64_t size = FileSize(fd_);
  const uint64_t h = kHeader.size();
  head_seq_ = 0;
  head_hash_ = audit::kGenesis;
  end_ = h;
  if (size < h) return Status::Io(path_ + ": shorter than its header; the chain file is damaged");
  auto found = [&](const audit::Entry& e, uint64_t record_start, uint64_t record_end) {
    head_seq_ = e.seq;
    head_hash_ = e.hash;
    end_ = record_end;
    std::lock_guard i(index_mu_);
    std::erase_if(index_, [&](const auto& point) { return point.second >= record_start; });  // after a cut
    index_[e.seq] = record_start;
  };
  audit::Entry e;
  size_t got;
  // The usual case: the file ends with a complete record.
  if (size >= h + kFrame) {
    char trailer[8];
    if (!PreadAll(fd_, trailer, sizeof trailer, size - 8)) return Errno("read the audit chain", path_);
    const uint64_t n = Get32(trailer);
    if (Get32(trailer + 4) == kTrailerMagic && n + kFrame <= size - h) {
      std::string record(n + kFrame, '\0');
      if (!PreadAll(fd_, record.data(), record.size(), size - record.size())) return Errno("read the audit chain", path_);
      if (Parse(record.data(), record.size(), &e, &got) == Parsed::kOk && got == record.size()) {
        found(e, size - record.size(), size);
        return Status::Ok();
      }
    }
  }
  // A torn end: the end of the file, up to 64 MiB (a torn write is one batch of entries; a
  // record is far smaller), read once; the last complete record in it is the head.
  const uint64_t window = std::min<uint64_t>(size - h, 64ull << 20);
  std::string buf(window, '\0');
  if (!PreadAll(fd_, buf.data(), buf.size(), size - window)) return Errno("read the audit chain", path_);
  for (uint64_t end = window; end >= kFrame; --end) {
    const char* t = buf.data() + end - 8;
    if (Get32(t + 4) != kTrailerMagic) continue;
    const uint64_t n = Get32(t);
    if (n + kFrame > end) continue;
    const uint64_t start = end - kFrame - n;
    if (Parse(buf.data() + start, end - start, &e, &got) != Parsed::kOk || got != end - start) continue;
    found(e, size - window + start, size - window + end);
    return TruncateLocked(end_);
  }
  if (window < size - h) return Status::Io(path_ + ": no complete entry in the last 64 MiB; the chain file is damaged");
  {
    std::lock_guard i(index_mu_);
    index_.clear();
  }
  return size == h ? Status::Ok() : TruncateLocked(h);  // nothing complete: a first write torn
}

// Records other processes appended since end_ (under the lock, so a record that ends early is
// a torn one: its writer died; it is cut off).
Status AuditChain::CatchUpLocked() {
  const uint64_t size = FileSize(fd_);
  if (size == end_) return Status::Ok();
  if (size < end_) return FindHeadLocked();
  std::string buf(size - end_, '\0');
  if (!PreadAll(fd_, buf.data(), buf.size(), end_)) return Errno("read the audit chain", path_);
  size_t at = 0;
  audit::Entry e;
  while (at < buf.size()) {
    size_t n;
    if (Parse(buf.data() + at, buf.size() - at, &e, &n) != Parsed::kOk) break;
    if (e.seq % 4096 == 1) {
      std::lock_guard i(index_mu_);
      index_[e.seq] = end_ + at;
    }
    head_seq_ = e.seq;
    head_hash_ = e.hash;
    at += n;
  }
  end_ += at;
  {
    std::lock_guard i(index_mu_);
    NoteWrittenLocked();
  }
  return end_ == size ? Status::Ok() : TruncateLocked(end_);
}

void AuditChain::Link(std::vector<audit::Entry>& entries, int64_t after_seq, std::string after_hash) {
  for (auto& e : entries) {
    e.seq = ++after_seq;
    e.prev_hash = std::move(after_hash);
    e.hash = audit::LinkHash(e.prev_hash, e.seq, e.body_digest.empty() ? audit::BodyDigest(e) : e.body_digest);
    after_hash = e.hash;
  }
}

Status AuditChain::Append(const Lock& l, std::vector<audit::Entry>& entries) {
  Link(entries, head_seq_, head_hash_);
  return Write(l, entries);
}

Status AuditChain::Write(const Lock&, const std::vector<audit::Entry>& entries) {
  if (entries.empty()) return Status::Ok();
  int64_t seq = head_seq_;
  const std::string* prev = &head_hash_;
  for (const auto& e : entries) {
    if (e.seq != seq + 1 || e.prev_hash != *prev) {
      return Status::Invalid("audit entry " + std::to_string(e.seq) + " does not follow the chain's head " + std::to_string(seq));
    }
    seq = e.seq;
    prev = &e.hash;
  }
  if (fd_ < 0) {
    memory_.insert(memory_.end(), entries.begin(), entries.end());
  } else {
    std::string buf;
    size_t bytes = 0;
    for (const auto& e : entries) bytes += 64 + e.recipient.size() + e.object_id.size() + e.version.size() + e.decision.size() +
                                           e.reason.size() + e.prev_hash.size() + e.hash.size();
    buf.reserve(bytes);
    std::vector<std::pair<int64_t, uint64_t>> points;
    for (const auto& e : entries) {
      if (e.seq % 4096 == 1) points.emplace_back(e.seq, end_ + buf.size());
      Encode(buf, e);
    }
    size_t done = 0;
    while (done < buf.size()) {
      ssize_t w = ::pwrite(fd_, buf.data() + done, buf.size() - done, static_cast<off_t>(end_ + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        Status st = Errno("append to the audit chain", path_);
        (void)::ftruncate(fd_, static_cast<off_t>(end_));  // no torn record left behind when possible
        return st;
      }
      done += static_cast<size_t>(w);
    }
    std::lock_guard i(index_mu_);
    for (const auto& [s, off] : points) index_[s] = off;
    end_ += buf.size();
  }
  head_seq_ = entries.back().seq;
  head_hash_ = entries.back().hash;
  std::lock_guard i(index_mu_);
  NoteWrittenLocked();
  if (fd_ < 0) {
    synced_seq_ = written_seq_;
    synced_hash_ = written_hash_;
  }
  return Status::Ok();
}

void AuditChain::NoteWrittenLocked() {
  if (head_seq_ < written_seq_) return;
  written_seq_ = head_seq_;
  written_hash_ = head_hash_;
}

int AuditChain::OpenSyncDescriptor() const {
  return fd_ < 0 ? -1 : ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
}

Result<int64_t> AuditChain::Sync(int fd) {
  int64_t seq;
  std::string hash;
  {
    std::lock_guard i(index_mu_);
    seq = written_seq_;
    if (fd_ < 0 || seq <= synced_seq_) return synced_seq_;
    hash = written_hash_;
  }
  if (::fdatasync(fd >= 0 ? fd : fd_) != 0) return Errno("sync the audit chain", path_);
  std::lock_guard i(index_mu_);
  if (seq > synced_seq_) {
    synced_seq_ = seq;
    synced_hash_ = std::move(hash);
  }
  return synced_seq_;
}

std::pair<int64_t, std::string> AuditChain::SyncedHead() const {
  std::lock_guard i(index_mu_);
  return {synced_seq_, synced_hash_};
}

Result<std::vector<audit::Entry>> AuditChain::Read(int64_t after, size_t limit) {
  std::vector<audit::Entry> out;
  if (fd_ < 0) {
    std::lock_guard l(mu_);
    for (size_t k = static_cast<size_t>(std::max<int64_t>(after, 0)); k < memory_.size() && out.size() < limit; ++k) {
      out.push_back(memory_[k]);
    }
    return out;
  }
  uint64_t at = kHeader.size();
  {
    std::lock_guard i(index_mu_);
    auto it = index_.upper_bound(after + 1);
    if (it != index_.begin()) at = std::prev(it)->second;
  }
  const uint64_t size = FileSize(fd_);
  std::string buf;  // the file from buf_at on; `used` bytes of it parsed
  uint64_t buf_at = at;
  size_t used = 0;
  audit::Entry e;
  while (out.size() < limit) {
    size_t need;
    Parsed r = Parse(buf.data() + used, buf.size() - used, &e, &need);
    if (r == Parsed::kOk) {
      if (e.seq > after) out.push_back(e);
      used += need;
      continue;
    }
    const uint64_t next = buf_at + used;
    if (r == Parsed::kBad) {
      // Invalid, not Io: the file was read, what it holds is not a chain (audit verify: exit 1).
      return Status::Invalid(path_ + ": no audit entry where one should start (offset " + std::to_string(next) +
                             "); the chain file is damaged");
    }
    // Incomplete in buf: read on from this record (a MiB, or the whole record). One that runs
    // past the end of the file is being written by another process (or was torn): the end.
    if (next + need > size) break;
    std::string more(std::min<uint64_t>(size - next, std::max<uint64_t>(need, 1u << 20)), '\0');
    if (!PreadAll(fd_, more.data(), more.size(), next)) return Errno("read the audit chain", path_);
    buf = std::move(more);
    buf_at = next;
    used = 0;
  }
  if (!out.empty()) {
    std::lock_guard i(index_mu_);
    index_[out.back().seq + 1] = buf_at + used;  // the next page starts here
  }
  return out;
}

}  // namespace tearline::store::detail

namespace tearline::store {

Status WriteAuditChainFile(const std::string& path, const std::vector<audit::Entry>& entries) {
  std::string buf(detail::kHeader);
  for (const auto& e : entries) detail::Encode(buf, e);
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return detail::Errno("create", tmp);
  bool ok = ::write(fd, buf.data(), buf.size()) == static_cast<ssize_t>(buf.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) return detail::Errno("write", path);
  return Status::Ok();
}

}  // namespace tearline::store
