// tearline HTTP(S) server: plain types in, plain types out.
//
// This is the public header of src/net. It knows nothing of STIX or TAXII:
// a Handler turns a Request into a Response. Boost.Beast/Asio stay inside
// server.cpp, the only translation unit that includes them.
//
// Every connection has the same shape (STYLE.md): bounded header size, bounded
// body (413 before the body is buffered), a deadline per request (408 for a
// slow client), a bounded number of connections, keep-alive, clean shutdown.
#pragma once

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace tearline::net {

struct Request {
  std::string method;   //!< "GET", "POST", ...
  std::string target;   //!< path and query as sent, e.g. "/taxii2/?x=1"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote;   //!< peer address
  bool tls = false;

  //! First header with this name (case-insensitive), or empty.
  std::string_view Header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
          })) {
        return v;
      }
    }
    return {};
  }
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  //! A response that may leave only once something finishes elsewhere (the durable commit of
  //! the audit entry recording its release, the group commit storing posted objects). The
  //! server calls `defer` once with a completion; the deferred work calls that completion
  //! exactly once, from any thread, with a function that finishes the response (nullptr: send
  //! it as it is). The server runs that function on one of its own threads, then sends the
  //! response. No thread is held while waiting.
  using Finish = std::function<void(Response&)>;
  std::function<void(std::function<void(Finish)>)> defer;
  void Set(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
};

//! Called on a pool thread for every complete request. Must not throw.
using Handler = std::function<Response(const Request&)>;

//! Called once per request after the response is written (access log, metrics).
using Observer = std::function<void(const Request&, const Response&, std::chrono::microseconds elapsed)>;

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;                 //!< 0: an ephemeral port (see Server::port())
  std::string tls_cert_file;         //!< PEM chain; TLS when both files are set
  std::string tls_key_file;
  size_t threads = 0;                //!< 0: two per core (handlers wait for commits without a thread)
  size_t max_body_bytes = 10 << 20;
  size_t max_header_bytes = 16 << 10;
  std::chrono::milliseconds request_timeout{10000};  //!< a whole request (or keep-alive idle) must end within this
  size_t max_connections = 1024;
  //! Responses to limit violations (413, 431, 408, 400, 503) are built by the
  //! server itself with this function so they look like the application's errors.
  std::function<Response(int status, std::string title, std::string description)> error_response;
};

class Server {
 public:
  //! Binds and starts serving on a background thread pool. Io on bind/TLS errors.
  static Result<std::unique_ptr<Server>> Start(ServerOptions options, Handler handler, Observer observer = {});

  virtual ~Server() = default;
  //! The bound port (useful with port 0).
  virtual uint16_t port() const = 0;
  //! Stops accepting, lets in-flight requests finish (up to `grace`), closes
  //! every connection and joins the threads. Idempotent.
  virtual void Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000)) = 0;
  //! Blocks until Stop() has completed.
  virtual void Wait() = 0;
};

}  // namespace tearline::net
