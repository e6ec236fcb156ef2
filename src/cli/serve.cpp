#include "cli/serve.h"
#include "cli/policy_cmds.h"
#include "federation/federation.h"
#include "warn/warn.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>

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

// The access log's sink: lines gathered in memory and written to stderr once 64 KB are
// pending or 200 ms after the last write (checked as lines come), at the latest by the
// logger's flush every second (spdlog::flush_every), and on shutdown. spdlog's stderr sink
// wrote and flushed every line: a write(2) per request, ~3% of the HTTP threads' time on
// random pages (perf, twelfth session). Access lines are operations data, not the audit log
// (every release is in the audit chain, synced before its response leaves).
class BufferedStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  ~BufferedStderrSink() override { flush_(); }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    pending_.append(formatted.data(), formatted.size());
    const auto now = std::chrono::steady_clock::now();
    if (pending_.size() >= 64 * 1024 || now - written_ >= std::chrono::milliseconds(200)) flush_();
  }
  void flush_() override {
    if (!pending_.empty()) std::fwrite(pending_.data(), 1, pending_.size(), stderr);
    std::fflush(stderr);
    pending_.clear();
    written_ = std::chrono::steady_clock::now();
  }

 private:
  std::string pending_;
  std::chrono::steady_clock::time_point written_ = std::chrono::steady_clock::now();
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
  auto log = std::make_shared<spdlog::logger>("access", std::make_shared<BufferedStderrSink>());
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
  log->flush();  // the lines before this one
  std::fprintf(stderr, "tearline: %s received, finishing in-flight requests\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
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
