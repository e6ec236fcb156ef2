// The only translation unit that includes Boost.Beast/Asio (compile time, see TOOLCHAIN.md).
// One coroutine per connection; plain and TLS share the session template.
#include <pthread.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "net/net.h"

namespace tearline::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kTuple = asio::as_tuple(use_awaitable);

class ServerImpl final : public Server {
 public:
  ServerImpl(ServerOptions opt, Handler handler, Observer observer)
      : opt_(std::move(opt)), handler_(std::move(handler)), observer_(std::move(observer)),
        ioc_(static_cast<int>(Threads())), acceptor_(ioc_), tls_ctx_(ssl::context::tls_server) {}

  ~ServerImpl() override { Stop(std::chrono::milliseconds(0)); }

  Status Init() {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(opt_.address, ec);
    if (ec) return Status::Invalid("listen address \"" + opt_.address + "\" is not an IP address");
    tcp::endpoint ep(addr, opt_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status::Io("cannot listen on " + opt_.address + ":" + std::to_string(opt_.port) + ": " + ec.message());
    port_ = acceptor_.local_endpoint().port();
    tls_ = !opt_.tls_cert_file.empty() && !opt_.tls_key_file.empty();
    if (tls_) {
      tls_ctx_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                           ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
      tls_ctx_.use_certificate_chain_file(opt_.tls_cert_file, ec);
      if (ec) return Status::Io("TLS certificate " + opt_.tls_cert_file + ": " + ec.message());
      tls_ctx_.use_private_key_file(opt_.tls_key_file, ssl::context::pem, ec);
      if (ec) return Status::Io("TLS key " + opt_.tls_key_file + ": " + ec.message());
    }
    asio::co_spawn(ioc_, Accept(), asio::detached);
    for (size_t i = 0; i < Threads(); ++i) {
      threads_.emplace_back([this] {
        pthread_setname_np(pthread_self(), "tl-http");  // top -H, perf
        ioc_.run();
      });
    }
    return Status::Ok();
  }

  uint16_t port() const override { return port_; }

  void Stop(std::chrono::milliseconds grace) override {
    std::call_once(stop_once_, [&] {
      stopping_ = true;
      asio::post(acceptor_.get_executor(), [this] {
        boost::system::error_code ec;
        acceptor_.close(ec);
      });
      // Let requests already being handled finish and be written.
      auto deadline = std::chrono::steady_clock::now() + grace;
      while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      ioc_.stop();
      for (auto& t : threads_) {
        if (t.joinable()) t.join();
      }
      {
        // Deferred completions still to come post into the (stopped) io_context: wait for
        // them before it can be destroyed. Each is guaranteed to be called once.
        std::unique_lock lock(deferred_mu_);
        deferred_cv_.wait(lock, [&] { return deferred_ == 0; });
      }
      std::lock_guard lock(done_mu_);
      done_ = true;
      done_cv_.notify_all();
    });
  }

  void Wait() override {
    std::unique_lock lock(done_mu_);
    done_cv_.wait(lock, [&] { return done_; });
  }

 private:
  // Handlers hold no thread while they wait for a commit (Response::defer: a GET for its audit
  // entry, a POST for the store's group commit); what they do on a thread is CPU work and
  // SQLite reads. 2 per core by default (bench/taxii-load.sh on 2 cores, 64 connections: 4
  // threads served as many or more GET pages and POSTs than 8, 16 or 32, docs/benchmarks.md).
  size_t Threads() const {
    return opt_.threads ? opt_.threads : 2 * std::max<size_t>(1, std::thread::hardware_concurrency());
  }

  Response Error(int status, const std::string& title, const std::string& description) const {
    if (opt_.error_response) return opt_.error_response(status, title, description);
    Response r;
    r.status = status;
    r.Set("Content-Type", "text/plain");
    r.body = title + ": " + description + "\n";
    return r;
  }

  awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(ioc_), kTuple);
      if (ec) {
        if (stopping_ || ec == asio::error::operation_aborted) co_return;
        continue;  // e.g. EMFILE: keep serving the connections we have
      }
      if (connections_.load() >= opt_.max_connections) {
        // Over the connection limit: answer 503 and close, without reading the request.
        asio::co_spawn(socket.get_executor(), Reject(std::move(socket)), asio::detached);
        continue;
      }
      std::string remote;
      boost::system::error_code rec;
      // No Nagle delay: a response is written whole, but over TLS it leaves in several records
      // (writes), and the last one's small segment would otherwise wait for the peer's ACK
      // (up to its delayed-ACK time on a real network), as nginx's tcp_nodelay avoids. (On
      // plain HTTP a page leaves in one sendmsg: no change measured on loopback.)
      socket.set_option(tcp::no_delay(true), rec);
      auto ep = socket.remote_endpoint(rec);
      if (!rec) remote = ep.address().to_string();
      auto exec = socket.get_executor();
      if (tls_) {
        asio::co_spawn(exec, TlsSession(beast::tcp_stream(std::move(socket)), std::move(remote)), asio::detached);
      } else {
        asio::co_spawn(exec, Session(beast::tcp_stream(std::move(socket)), std::move(remote), false), asio::detached);
      }
    }
  }

  awaitable<void> Reject(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    stream.expires_after(std::chrono::seconds(2));
    Response r = Error(503, "Service Unavailable", "too many connections");
    http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
    for (auto& [k, v] : r.headers) res.set(k, v);
    res.body() = r.body;
    res.keep_alive(false);
    res.prepare_payload();
    co_await http::async_write(stream, res, kTuple);
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  }

  awaitable<void> TlsSession(beast::tcp_stream stream, std::string remote) {
    beast::ssl_stream<beast::tcp_stream> tls(std::move(stream), tls_ctx_);
    beast::get_lowest_layer(tls).expires_after(opt_.request_timeout);
    auto [ec] = co_await tls.async_handshake(ssl::stream_base::server, kTuple);
    if (ec) co_return;
    co_await Session(std::move(tls), std::move(remote), true);
  }

  struct Counter {
    std::atomic<size_t>& n;
    explicit Counter(std::atomic<size_t>& c) : n(c) { ++n; }
    ~Counter() { --n; }
  };

  // A connection's deadlines, kept by one timer that is not started and cancelled for every
  // request and every write (each cancel posted a completion to the pool, often waking
  // another thread for nothing): a deadline is only a time written here, and the timer,
  // when it fires, either finds it passed (and cancels the connection's operation in
  // progress) or sleeps until the current one. It lives in its own allocation, shared with
  // its pending wait, so a wait completing after the session has ended touches nothing of
  // the session; the session and the timer run on the connection's strand only.
  struct Watchdog {
    explicit Watchdog(tcp::socket& s) : socket(&s), timer(s.get_executor()) {}
    tcp::socket* socket;  // null once the session has ended
    asio::steady_timer timer;
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    bool armed = false;      // a wait is pending
    bool timed_out = false;  // the deadline passed and the operation in progress was cancelled

    //! The operation starting now (reading a request, writing a response) must end by then.
    static void Start(const std::shared_ptr<Watchdog>& w, std::chrono::milliseconds limit) {
      w->deadline = std::chrono::steady_clock::now() + limit;
      w->timed_out = false;
      if (!w->armed) Arm(w);
    }
    //! No deadline (the request is being handled, or the session is over).
    void Stop() { deadline = std::chrono::steady_clock::time_point::max(); }
    void End() {
      socket = nullptr;
      Stop();
      timer.cancel();
    }
    static void Arm(const std::shared_ptr<Watchdog>& w) {
      w->armed = true;
      w->timer.expires_at(w->deadline);
      w->timer.async_wait([w](boost::system::error_code ec) {
        w->armed = false;
        if (ec || !w->socket) return;
        if (w->deadline == std::chrono::steady_clock::time_point::max()) return;  // armed again by Start
        if (std::chrono::steady_clock::now() < w->deadline) return Arm(w);  // a later deadline: sleep on
        // Cancel, not close: after a read, the session can still answer 408.
        w->timed_out = true;
        w->Stop();
        boost::system::error_code ignored;
        w->socket->cancel(ignored);
      });
    }
  };

  template <class Stream>
  awaitable<void> Session(Stream stream, std::string remote, bool tls) {
    Counter conn(connections_);
    beast::flat_buffer buffer;
    auto& lowest = beast::get_lowest_layer(stream);
    lowest.expires_never();  // the watchdog keeps the deadlines (the TLS handshake had its own)
    auto watchdog = std::make_shared<Watchdog>(lowest.socket());
    struct EndWatch {
      Watchdog& w;
      ~EndWatch() { w.End(); }
    } end_watch{*watchdog};
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(opt_.max_header_bytes));
      parser.body_limit(opt_.max_body_bytes);
      // The whole request (headers and body) must arrive in time: slow clients get 408.
      // The watchdog cancels the read without closing the socket, so the 408 can be sent.
      Watchdog::Start(watchdog, opt_.request_timeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
      const bool timed_out = watchdog->timed_out;
      watchdog->Stop();
      if (timed_out && ec) ec = beast::error::timeout;
      if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
          ec == asio::error::operation_aborted) {
        break;
      }
      if (ec) {
        bool started = parser.got_some() || buffer.size() > 0;
        if (ec == beast::error::timeout && !started) break;  // idle keep-alive connection
        Response r = ec == http::error::body_limit     ? Error(413, "Payload Too Large", "the request body exceeds " + std::to_string(opt_.max_body_bytes) + " bytes")
                     : ec == http::error::header_limit ? Error(431, "Request Header Fields Too Large", "the request headers exceed " + std::to_string(opt_.max_header_bytes) + " bytes")
                     : ec == beast::error::timeout     ? Error(408, "Request Timeout", "the request did not arrive in time")
                                                       : Error(400, "Bad Request", "malformed HTTP request: " + ec.message());
        co_await Write(stream, r, false, 11, watchdog);
        if (observer_) {
          // Limit violations and malformed requests are logged and counted like any other.
          Request bad;
          bad.method = parser.is_header_done() ? std::string(parser.get().method_string()) : "-";
          bad.target = parser.is_header_done() ? std::string(parser.get().target()) : "-";
          bad.remote = remote;
          bad.tls = tls;
          observer_(bad, r, std::chrono::microseconds(0));
        }
        break;
      }
      auto started_at = std::chrono::steady_clock::now();
      Counter busy(in_flight_);
      auto& msg = parser.get();
      Request req;
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      for (const auto& f : msg) req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      req.body = std::move(msg.body());
      req.remote = remote;
      req.tls = tls;
      Response res;
      try {
        res = handler_(req);
      } catch (const std::exception& e) {
        res = Error(500, "Internal Server Error", "the request could not be handled");
      }
      while (res.defer) {
        // Wait for the handler's condition (e.g. a durable commit) without a thread, then let
        // the handler finish the response here (it may defer again).
        Response::Finish finish = co_await AwaitDeferred(std::exchange(res.defer, nullptr));
        if (!finish) break;
        try {
          finish(res);
        } catch (const std::exception& e) {
          res = Error(500, "Internal Server Error", "the request could not be handled");
        }
      }
      bool keep = msg.keep_alive() && !stopping_;
      bool ok = co_await Write(stream, res, keep, msg.version(), watchdog);
      if (observer_) {
        observer_(req, res, std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_at));
      }
      if (!ok || !keep) break;
    }
    beast::error_code ec;
    beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ec);
  }

  // Resumes the session when the deferred response's completion runs (on any thread): the
  // completion posts the coroutine back to its own executor. Stop() waits for completions
  // still outstanding after the pool has stopped, so none touches a destroyed io_context.
  awaitable<Response::Finish> AwaitDeferred(std::function<void(std::function<void(Response::Finish)>)> defer) {
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>, void(Response::Finish)>(
        [this, &defer](auto handler) {
          using H = decltype(handler);
          auto h = std::make_shared<H>(std::move(handler));
          {
            std::lock_guard lock(deferred_mu_);
            ++deferred_;
          }
          defer([this, h](Response::Finish finish) mutable {
            {
              // Nothing of the io_context (the handler, the strand executor) may be held past
              // the count going down: Stop() may then destroy it (UBSan found the executor
              // copy released after the io_context was gone).
              auto ex = asio::get_associated_executor(*h, ioc_.get_executor());
              asio::post(ex, [h = std::move(h), finish = std::move(finish)]() mutable { (*h)(std::move(finish)); });
            }
            std::lock_guard lock(deferred_mu_);
            if (--deferred_ == 0) deferred_cv_.notify_all();
          });
        },
        use_awaitable);
  }

  // The body moves into Beast's message and back afterwards (pages are tens of KB: no copy).
  // A response must be written within the request timeout (a client that stops reading is
  // cut off): the watchdog cancels the write, and the session ends.
  template <class Stream>
  awaitable<bool> Write(Stream& stream, Response& r, bool keep_alive, unsigned version, const std::shared_ptr<Watchdog>& watchdog) {
    http::response<http::string_body> res{static_cast<http::status>(r.status), version};
    for (const auto& [k, v] : r.headers) res.insert(k, v);
    res.body() = std::move(r.body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    Watchdog::Start(watchdog, opt_.request_timeout);
    auto [ec, n] = co_await http::async_write(stream, res, kTuple);
    watchdog->Stop();
    r.body = std::move(res.body());
    co_return !ec;
  }

  ServerOptions opt_;
  Handler handler_;
  Observer observer_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  ssl::context tls_ctx_;
  bool tls_ = false;
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> connections_{0};
  std::atomic<size_t> in_flight_{0};
  std::mutex deferred_mu_;
  std::condition_variable deferred_cv_;
  size_t deferred_ = 0;  // deferred responses whose completion has not run yet
  std::once_flag stop_once_;
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  bool done_ = false;
};

}  // namespace

Result<std::unique_ptr<Server>> Server::Start(ServerOptions options, Handler handler, Observer observer) {
  auto s = std::make_unique<ServerImpl>(std::move(options), std::move(handler), std::move(observer));
  if (auto st = s->Init(); !st.ok()) return st;
  return std::unique_ptr<Server>(std::move(s));
}

}  // namespace tearline::net
