// A small libcurl client and raw-socket helpers for the TAXII integration tests.
#pragma once

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace tearline::test {

struct HttpResult {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

inline size_t CurlWrite(char* p, size_t s, size_t n, void* ud) {
  static_cast<std::string*>(ud)->append(p, s * n);
  return s * n;
}

inline size_t CurlHeader(char* p, size_t s, size_t n, void* ud) {
  std::string line(p, s * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string k = line.substr(0, colon), v = line.substr(colon + 1);
    for (auto& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    v.erase(0, v.find_first_not_of(' '));
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n')) v.pop_back();
    (*static_cast<std::map<std::string, std::string>*>(ud))[k] = v;
  }
  return s * n;
}

struct HttpOptions {
  std::string user;  // "name:password" for Basic
  std::string bearer;
  std::vector<std::string> headers;
  std::string cacert;  // for https
};

inline HttpResult Http(const std::string& method, const std::string& url, const HttpOptions& o = {},
                       const std::string& body = "") {
  HttpResult r;
  CURL* c = curl_easy_init();
  curl_slist* hs = nullptr;
  for (const auto& h : o.headers) hs = curl_slist_append(hs, h.c_str());
  if (!o.bearer.empty()) hs = curl_slist_append(hs, ("Authorization: Bearer " + o.bearer).c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  if (!o.user.empty()) curl_easy_setopt(c, CURLOPT_USERPWD, o.user.c_str());
  if (!o.cacert.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, o.cacert.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, CurlWrite);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, CurlHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(hs);
  curl_easy_cleanup(c);
  return r;
}

//! A raw loopback connection to a test server: what is sent, when, and whether responses are
//! read stay with the test (malformed HTTP, deadlines, clients that stop reading).
class RawConnection {
 public:
  explicit RawConnection(int port, int receive_buffer = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawConnection() { close(fd_); }
  bool connected() const { return connected_; }
  void CloseSending() { shutdown(fd_, SHUT_WR); }
  bool Send(const std::string& bytes) {
    for (size_t sent = 0; sent < bytes.size();) {
      ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  //! Reads until the server closes the connection (true) or `wait_ms` passes without a byte
  //! (false); what arrived is appended to `out`.
  bool ReadToEnd(std::string* out, int wait_ms) {
    timeval tv{wait_ms / 1000, (wait_ms % 1000) * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[65536];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        out->append(buf, static_cast<size_t>(n));
        continue;
      }
      return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);  // closed (or reset), or timed out
    }
  }
  //! Reads one response (headers and a Content-Length body); empty if none arrives in time.
  std::string ReadResponse(int wait_ms) {
    timeval tv{wait_ms / 1000, (wait_ms % 1000) * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    for (;;) {
      auto end = pending_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        auto cl = pending_.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) length = std::stoul(pending_.substr(cl + 16));
        if (pending_.size() >= end + 4 + length) {
          std::string r = pending_.substr(0, end + 4 + length);
          pending_.erase(0, r.size());
          return r;
        }
      }
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return {};
      pending_.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string pending_;
};

//! Sends raw bytes on a fresh loopback connection and returns what comes back
//! until the server closes or `wait_ms` passes.
inline std::string RawExchange(int port, const std::string& bytes, int wait_ms = 3000, bool half_close = false) {
  RawConnection c(port);
  if (!c.connected()) return "(connect failed)";
  c.Send(bytes);
  if (half_close) c.CloseSending();
  std::string out;
  c.ReadToEnd(&out, wait_ms);
  return out;
}

}  // namespace tearline::test
