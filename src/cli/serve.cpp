#include "cli/serve.h"
#include "cli/policy_cmds.h"
#include "federation/federation.h"
#include "warn/warn.h"

#include <signal.h>
#include <unistd.h>

#include <pthread.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "common/timestamp.h"
#include "net/net.h"
#include "policy/policy.h"
#include "stix/stix.h"
#include "store/store.h"
#include "taxii/taxii.h"

namespace tearline::cli {
namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "tearline: %s\n", msg.c_str());
  return 2;
}

// The access log's sink. The request threads gather lines in memory; a thread of its own
// writes them to stderr, 64 KB at a time or 200 ms after the last hand-over (checked as lines
// come), at the latest at the logger's flush every second, and on shutdown. A request thread
// never writes to stderr itself: when it did, a log destination that stopped reading (a paused
// terminal, a pipe into a stalled program) stopped the whole node, every request thread waiting
// for the sink's lock behind the one blocked in write(2). Lines beyond kMaxPending waiting (a
// destination slower than the requests) are dropped and counted, and the count is logged when
// lines are handed over again. Access lines are operations data, not the audit log (every
// release is in the audit chain, synced before its response leaves). (spdlog's stderr sink
// wrote and flushed every line: a write(2) per request, ~3% of the HTTP threads' time on random
// pages, twelfth session.)
class AccessLogSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  static constexpr size_t kMaxPending = 4 << 20;

  explicit AccessLogSink(bool json) : json_(json), state_(std::make_shared<State>()) {
    // Detached, holding the state: on shutdown it is waited for a few seconds at most (Drain), a
    // destination that never reads again must not hold the node's exit.
    std::thread([s = state_] { WriteLoop(*s); }).detach();
  }
  ~AccessLogSink() override {
    Drain(std::chrono::seconds(3));
    std::lock_guard l(state_->mu);
    state_->stop = true;
    state_->cv.notify_all();
  }
  //! A line of the node's own (not an access line) into the same stream, written the same way:
  //! a blocked stderr must not hold the thread that says it.
  void Note(const std::string& line) {
    std::lock_guard lock(mutex_);
    Gather(line + "\n");
    std::lock_guard l(state_->mu);
    HandOverLocked();
  }
  //! Hands over what is gathered and waits until it is written, at most `limit` (the sink's
  //! lock is not held while waiting: requests go on logging).
  void Drain(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    auto written = [&] { return state_->out.empty() && !state_->writing; };
    for (int round = 0; round < 2; ++round) {  // what the writer has, then what was gathered here
      {
        std::unique_lock l(state_->mu);
        if (!state_->cv.wait_until(l, until, written)) return;
      }
      std::lock_guard lock(mutex_);
      std::lock_guard l(state_->mu);
      HandOverLocked();
    }
    std::unique_lock l(state_->mu);
    state_->cv.wait_until(l, until, written);
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    if (!Gather({formatted.data(), formatted.size()})) return;
    if (pending_.size() >= 64 * 1024 || std::chrono::steady_clock::now() - handed_ >= std::chrono::milliseconds(200)) {
      std::lock_guard l(state_->mu);
      HandOverLocked();
    }
  }
  void flush_() override {
    std::lock_guard l(state_->mu);
    HandOverLocked();
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::string out;       // handed over, not yet taken by the writer
    bool writing = false;  // the writer is writing what it took
    bool stop = false;
  };
  // Under the sink's lock: `text` (whole lines) gathered, or dropped and counted when
  // kMaxPending are waiting already.
  bool Gather(std::string_view text) {
    if (pending_.size() + text.size() > kMaxPending) {
      ++dropped_;
      return false;
    }
    pending_.append(text);
    return true;
  }
  // With state_->mu (and the sink's lock): gives the writer what is gathered, unless it has
  // not taken the last hand-over yet (then the lines wait here, up to kMaxPending).
  void HandOverLocked() {
    handed_ = std::chrono::steady_clock::now();
    if (!state_->out.empty()) return;
    if (dropped_ > 0) {
      const std::string n = std::to_string(dropped_);
      const std::string when = FormatMicros(NowMicros());
      pending_ += json_ ? "{\"time\":\"" + when + "\",\"access_lines_dropped\":" + n + "}\n"
                        : when + " tearline: " + n + " access log lines dropped: the log's destination did not keep up\n";
      dropped_ = 0;
    }
    if (pending_.empty()) return;
    state_->out.swap(pending_);
    state_->cv.notify_one();
  }
  static void WriteLoop(State& s) {
    pthread_setname_np(pthread_self(), "tl-log");
    std::unique_lock l(s.mu);
    while (true) {
      s.cv.wait(l, [&] { return s.stop || !s.out.empty(); });
      if (s.out.empty()) return;
      std::string buf;
      buf.swap(s.out);
      s.writing = true;
      l.unlock();
      for (size_t done = 0; done < buf.size();) {
        const ssize_t n = ::write(STDERR_FILENO, buf.data() + done, buf.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // e.g. EPIPE: the reader is gone; these lines are lost
        done += static_cast<size_t>(n);
      }
      l.lock();
      s.writing = false;
      s.cv.notify_all();
    }
  }

  const bool json_;
  std::shared_ptr<State> state_;
  std::string pending_;  // gathered, under the sink's lock
  uint64_t dropped_ = 0;
  std::chrono::steady_clock::time_point handed_ = std::chrono::steady_clock::now();
};

}  // namespace

int ConfigCheck(const std::string& path) {
  auto c = taxii::LoadConfig(path);
  if (!c.ok()) {
    std::fprintf(stderr, "tearline: %s\n", c.status().message().c_str());
    return c.status().code() == Code::kIo ? 2 : 1;
  }
  size_t collections = 0;
  for (const auto& a : c->api_roots) collections += a.collections.size();
  std::printf("%s: ok (%zu API roots, %zu collections, listening on %s:%u, %s, row cache %zu MiB)\n", path.c_str(),
              c->api_roots.size(), collections, c->listen_address.c_str(), c->listen_port,
              c->tls_cert.empty() ? "plain HTTP" : "TLS", c->object_cache_mb);
  return 0;
}

int Serve(const std::string& path) {
  auto cfg = taxii::LoadConfig(path);
  if (!cfg.ok()) return Fail(cfg.status().message());
  const taxii::Config& c = *cfg;
  if (auto parent = std::filesystem::path(c.database).parent_path(); !parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
  }
  store::SqliteOptions options;
  options.object_cache_bytes = c.object_cache_mb << 20;
  auto store = store::OpenSqlite(c.database, options);
  if (!store.ok()) return Fail(store.status().message());
  for (const auto& a : c.api_roots) {
    for (const auto& col : a.collections) {
      if (auto r = (*store)->EnsureCollection(col.name, col.title); !r.ok()) return Fail(r.status().message());
    }
  }
  policy::Releaser releaser;

  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  // A reader of stdout or stderr that goes away (the log piped into a program that ended) must
  // not end the node: writes then fail with EPIPE instead (sockets never raise it: MSG_NOSIGNAL).
  signal(SIGPIPE, SIG_IGN);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  net::ServerOptions opt;
  opt.address = c.listen_address;
  opt.port = c.listen_port;
  opt.tls_cert_file = c.tls_cert;
  opt.tls_key_file = c.tls_key;
  opt.threads = c.threads;
  opt.max_body_bytes = c.max_content_length;
  opt.max_header_bytes = c.max_header_bytes;
  opt.request_timeout = c.request_timeout;
  opt.max_connections = c.max_connections;
  opt.error_response = [](int status, std::string title, std::string description) {
    return taxii::Service::Error(status, std::move(title), std::move(description));
  };
  // Access log: one line per request on stderr, text or JSON lines (spdlog, UTC timestamps).
  bool json_log = c.log_format == "json";
  auto sink = std::make_shared<AccessLogSink>(json_log);
  auto log = std::make_shared<spdlog::logger>("access", sink);
  spdlog::register_logger(log);  // for flush_every
  struct Unregister {
    ~Unregister() { spdlog::drop("access"); }  // on every return: the registry's flusher holds it no longer
  } unregister;
  spdlog::flush_every(std::chrono::seconds(1));
  log->set_pattern(json_log ? "%v" : "%Y-%m-%dT%H:%M:%S.%fZ %v", spdlog::pattern_time_type::utc);
  taxii::Metrics metrics;
  auto observer = [&](const net::Request& req, const net::Response& res, std::chrono::microseconds took) {
    metrics.Record(taxii::RouteOf(req.target), res.status, took);
    if (json_log) {
      std::string line = "{\"time\":\"" + FormatMicros(NowMicros()) + "\",\"remote\":";
      stix::AppendJsonString(line, req.remote);
      line += ",\"method\":";
      stix::AppendJsonString(line, req.method);
      line += ",\"target\":";
      stix::AppendJsonString(line, req.target);
      line += ",\"status\":" + std::to_string(res.status) + ",\"bytes\":" + std::to_string(res.body.size()) +
              ",\"micros\":" + std::to_string(took.count()) + "}";
      log->info(line);
    } else {
      log->info("{} {} {} {} {}B {}us", req.remote, req.method, req.target, res.status, res.body.size(), took.count());
    }
  };
  taxii::Service service(c, **store, releaser, &metrics);
  if (!service.startup_error().empty()) return Fail(service.startup_error());
  // Federation: push the outbox to partner nodes and pull their collections (src/federation).
  federation::Options fo;
  fo.poll_interval_ms = c.federation_poll_ms;
  fo.retry_base_ms = c.federation_retry_base_ms;
  fo.retry_max_ms = c.federation_retry_max_ms;
  fo.batch = c.federation_batch;
  fo.timeout_ms = c.federation_timeout_ms;
  federation::Federator federator(**store, releaser, *service.node_key(), fo);
  service.set_on_stored([&federator] { federator.Wake(); });
  // Approved duty-to-warn warnings are delivered by the same worker (retried until delivered).
  // The warning rules also run here over every served collection (imports, pulls), incrementally.
  warn::Rules rules;
  rules.min_confidence = c.warn_min_confidence;
  rules.two_person = c.warn_two_person;
  rules.public_collection = c.warn_public_collection;
  if (auto st = (*store)->PutMeta("warn.two_person", c.warn_two_person ? "true" : "false"); !st.ok()) {
    return Fail(st.message());
  }
  federator.set_extra([&] {
    for (const auto& root : c.api_roots) {
      for (const auto& coll : root.collections) (void)warn::Scan(**store, coll.name, rules);
    }
    (void)warn::DeliverDue(**store, releaser, *service.node_key(), fo);
  });
  federator.Start();
  auto server = net::Server::Start(opt, [&](const net::Request& r) { return service.Handle(r, /*may_defer=*/true); }, observer);
  if (!server.ok()) return Fail(server.status().message());
  std::string scheme = c.tls_cert.empty() ? "http" : "https";
  std::printf("tearline: serving TAXII 2.1 on %s://%s:%u/taxii2/ (database %s)\n", scheme.c_str(),
              c.listen_address.c_str(), (*server)->port(), c.database.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  sink->Note(std::string("tearline: ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + " received, finishing in-flight requests");
  (*server)->Stop();
  federator.Stop();
  log->flush();
  return 0;
}

int PrincipalAdd(const PrincipalOptions& o) {
  auto store = store::OpenSqlite(o.db);
  if (!store.ok()) return Fail(store.status().message());
  std::string password;
  if (o.password_stdin) {
    std::getline(std::cin, password);
    if (!password.empty() && password.back() == '\r') password.pop_back();
    if (password.size() < 8) return Fail("the password must have at least 8 characters");
  }
  if (!o.identity.empty()) {
    stix::IdParts parts;
    if (!stix::SplitId(o.identity, &parts) || parts.type != "identity" || stix::UuidVersion(parts.uuid) == 0) {
      return Fail("--identity must be a STIX identity id (identity--<uuid>)");
    }
  }
  store::Principal p{o.name, password.empty() ? "" : taxii::HashSecret(password), o.read, o.write, o.identity};
  if (auto st = (*store)->PutPrincipal(p); !st.ok()) return Fail(st.message());
  std::string r, w;
  for (const auto& x : o.read) r += (r.empty() ? "" : ",") + x;
  for (const auto& x : o.write) w += (w.empty() ? "" : ",") + x;
  if (!AuditChange(**store, o.db, "principal", o.name, "set: read=" + r + " write=" + w +
                                                           (o.identity.empty() ? "" : " identity=" + o.identity) +
                                                           (password.empty() ? "" : " password set"))) {
    return 2;
  }
  std::printf("principal %s: read [%zu], write [%zu]%s\n", o.name.c_str(), o.read.size(), o.write.size(),
              password.empty() ? ", no password (use a token)" : ", password set");
  return 0;
}

int PrincipalList(const PrincipalOptions& o) {
  if (!std::filesystem::exists(o.db)) return Fail("database " + o.db + " does not exist");
  auto store = store::OpenSqlite(o.db);
  if (!store.ok()) return Fail(store.status().message());
  auto list = (*store)->ListPrincipals();
  if (!list.ok()) return Fail(list.status().message());
  for (const auto& p : *list) {
    std::string r, w;
    for (const auto& x : p.can_read) r += (r.empty() ? "" : ",") + x;
    for (const auto& x : p.can_write) w += (w.empty() ? "" : ",") + x;
    std::printf("%-20s read=%s write=%s%s%s\n", p.name.c_str(), r.c_str(), w.c_str(),
                p.password_hash.empty() ? "" : " (password)", p.identity.empty() ? "" : (" identity=" + p.identity).c_str());
  }
  return 0;
}

int PrincipalRemove(const PrincipalOptions& o) {
  auto store = store::OpenSqlite(o.db);
  if (!store.ok()) return Fail(store.status().message());
  auto st = (*store)->RemovePrincipal(o.name);
  if (!st.ok()) return Fail(st.message());
  if (!AuditChange(**store, o.db, "principal", o.name, "removed (with its tokens)")) return 2;
  std::printf("principal %s removed (with its tokens)\n", o.name.c_str());
  return 0;
}

int PrincipalToken(const PrincipalOptions& o) {
  auto store = store::OpenSqlite(o.db);
  if (!store.ok()) return Fail(store.status().message());
  auto t = taxii::IssueToken(**store, o.name);
  if (!t.ok()) return Fail(t.status().message());
  // The token id (before the dot) is recorded, never the secret.
  if (!AuditChange(**store, o.db, "principal", o.name, "token issued: " + t->substr(0, t->find('.')))) return 2;
  std::printf("%s\n", t->c_str());
  return 0;
}

}  // namespace tearline::cli
