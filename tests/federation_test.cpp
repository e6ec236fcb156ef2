// Federation between nodes (issue #6), end to end: separate `tearline serve` processes with
// separate databases on loopback, configured with the CLI as an operator would.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <regex>
#include <set>
#include <thread>

#include "audit/audit.h"
#include "federation/federation.h"
#include "stix/stix.h"
#include "store/store.h"
#include "test_util.h"

namespace tearline {
namespace {

using test::RunCommand;
using test::TempDir;

std::string Bin() { return TEARLINE_BINARY; }

int FreePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

std::string Sql(const std::string& db, const std::string& query) {
  std::string out;
  RunCommand("sqlite3 " + db + " \"" + query + "\"", &out);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// How many entries of the audit chain of the node's database at `db` satisfy `pred` (read
// through the store, beside the running node: the chain is a file of its own).
size_t CountAudit(const std::string& db, const std::function<bool(const audit::Entry&)>& pred) {
  auto s = store::OpenSqlite(db);
  if (!s.ok()) return 0;
  auto all = (*s)->ReadAudit(0, 1000000);
  return all.ok() ? static_cast<size_t>(std::count_if(all->begin(), all->end(), pred)) : 0;
}
std::string FirstAuditObject(const std::string& db, const std::string& decision) {
  auto s = store::OpenSqlite(db);
  if (!s.ok()) return "";
  auto all = (*s)->ReadAudit(0, 1000000);
  if (!all.ok()) return "";
  for (const auto& e : *all) {
    if (e.decision == decision) return e.object_id;
  }
  return "";
}

// One node: its database, config and `tearline serve` process.
class Node {
 public:
  Node(const std::string& dir, const std::string& name, const std::string& collection)
      : dir_(dir), name_(name), collection_(collection), port_(FreePort()) {
    db_ = dir + "/" + name + ".db";
    config_ = dir + "/" + name + ".toml";
    test::WriteFile(config_, "[server]\nport = " + std::to_string(port_) + "\n[database]\npath = \"" + db_ +
                                 "\"\n[federation]\npoll_interval_ms = 50\nretry_base_ms = 100\nretry_max_ms = 400\n"
                                 "[[api_roots]]\npath = \"ct\"\n  [[api_roots.collections]]\n  name = \"" + collection +
                                 "\"\n");
    std::string out;
    // Create the database and its collection (serve would too).
    test::WriteFile(dir + "/empty.json", "{\"type\":\"bundle\",\"id\":\"bundle--00000000-0000-4000-8000-000000000000\"}");
    RunCommand(Bin() + " import --db " + db_ + " --collection " + collection + " " + dir + "/empty.json", &out);
    RunCommand(Bin() + " node key --db " + db_, &out);
    identity_ = out.substr(0, out.find(' '));
    key_ = out.substr(out.find(' ') + 1, 64);
    collection_id_ = Sql(db_, "SELECT taxii_id FROM collections WHERE name='" + collection + "'");
  }
  ~Node() { Kill(SIGTERM); }

  void Start() {
    pid_ = fork();
    if (pid_ == 0) {
      std::string log = dir_ + "/" + name_ + ".log";
      freopen(log.c_str(), "a", stdout);
      freopen(log.c_str(), "a", stderr);
      execl(Bin().c_str(), Bin().c_str(), "serve", "--config", config_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 100; ++i) {
      std::string log = test::ReadFile(dir_ + "/" + name_ + ".log");
      size_t at = log.rfind("serving");
      if (at != std::string::npos && at >= started_at_) {
        started_at_ = log.size();
        EXPECT_NE(log.find(":" + std::to_string(port_) + "/", at), std::string::npos) << name_ << " serves elsewhere: " << log;
        return;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << name_ << " exited: " << log;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << name_ << " did not start: " << test::ReadFile(dir_ + "/" + name_ + ".log");
  }
  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  std::string Cli(const std::string& args) {
    std::string out;
    // (always --db: ids like "identity--db12..." contain "--db" themselves)
    int rc = RunCommand(Bin() + " " + args + " --db " + db_, &out);
    EXPECT_EQ(rc, 0) << args << ": " << out;
    return out;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/ct/"; }

  std::string dir_, name_, collection_, db_, config_, identity_, key_, collection_id_;
  int port_;
  pid_t pid_ = -1;
  size_t started_at_ = 0;
};

// `from` sends to `to`: `to` gives `from` a principal, partner record and trusted key;
// `from` knows `to` as a partner in `group` and pushes `from.collection` to `to.collection`.
void Link(Node& from, Node& to, const std::string& group, const std::string& channel, int tier, std::string url = "") {
  std::string principal = "node-" + from.name_;
  to.Cli("principal add " + principal + " --read " + to.collection_ + " --write " + to.collection_);
  std::string token = to.Cli("principal token " + principal);
  token.erase(token.find_last_not_of("\n") + 1);
  to.Cli("partner add " + from.identity_ + " --name " + from.name_ + " --principal " + principal);
  to.Cli("partner set-peer " + from.identity_ + " --url " + from.url());
  to.Cli("partner trust-key " + from.identity_ + " " + from.key_);
  std::string out;
  RunCommand(Bin() + " group add --db " + from.db_ + " " + group, &out);
  from.Cli("partner add " + to.identity_ + " --name " + to.name_ + " --group " + group + " --channel " + channel +
           " --tier " + std::to_string(tier));
  from.Cli("collection share " + from.collection_ + " --group " + group);
  from.Cli("partner set-peer " + to.identity_ + " --url " + (url.empty() ? to.url() : url) + " --token " + token +
           " --push-collection " + to.collection_id_);
  from.Cli("partner trust-key " + to.identity_ + " " + to.key_);
}

std::set<std::string> Ids(const std::string& db, const std::string& where = "1") {
  std::set<std::string> out;
  std::string rows = Sql(db, "SELECT id || '@' || modified FROM objects WHERE " + where);
  size_t start = 0;
  while (start < rows.size()) {
    size_t end = rows.find('\n', start);
    if (end == std::string::npos) end = rows.size();
    out.insert(rows.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// What `export --as` says the partner may receive, as id@modified.
std::set<std::string> ExpectedFor(Node& from, const std::string& partner) {
  std::string bundle = from.Cli("export --collection " + from.collection_ + " --as " + partner + " --version all");
  simdjson::dom::parser p;
  simdjson::dom::element e;
  std::set<std::string> out;
  if (p.parse(bundle).get(e)) return out;
  simdjson::dom::array objs;
  if (e["objects"].get(objs)) return out;
  for (auto o : objs) {
    std::string_view id, mod;
    if (o["id"].get(id)) continue;
    if (o["modified"].get(mod)) mod = "";
    out.insert(std::string(id) + "@" + std::string(mod));
  }
  return out;
}

bool WaitFor(const std::function<bool()>& cond, int seconds = 20) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cond();
}

const std::string kSample = std::string(TEARLINE_SOURCE_DIR) + "/samples/northern-lantern.json";

TEST(Federation, ThreeNodesOpenClosedAndRelay) {
  TempDir tmp;
  Node a(tmp.path(), "a", "intel"), b(tmp.path(), "b", "inbox"), c(tmp.path(), "c", "inbox");
  Link(a, b, "ct-europe", "open", 0);
  Link(a, c, "ct-gulf", "closed", 5);
  Link(b, c, "relay", "open", 5);  // B passes on what it received, if the rules allow
  a.Start();
  b.Start();
  c.Start();
  a.Cli("import --collection intel " + kSample);
  std::set<std::string> for_b = ExpectedFor(a, b.identity_);
  ASSERT_GT(for_b.size(), 5u);
  ASSERT_TRUE(WaitFor([&] { return Ids(b.db_) == for_b; })) << "B has " << Ids(b.db_).size() << " of " << for_b.size();
  // A's view: all sent or withheld; nothing pending; C's channel is closed: all withheld.
  ASSERT_TRUE(WaitFor([&] { return Sql(a.db_, "SELECT count(*) FROM outbox WHERE state='pending'") == "0"; }));
  EXPECT_EQ(Sql(a.db_, "SELECT count(*) FROM outbox WHERE partner='" + c.identity_ + "' AND state!='withheld'"), "0");
  // Every object B stored is signed by A, and the signatures verify there.
  EXPECT_EQ(Sql(b.db_, "SELECT count(*) FROM signatures"), std::to_string(for_b.size()));
  EXPECT_EQ(Sql(b.db_, "SELECT count(DISTINCT source) FROM objects"), "1");
  EXPECT_EQ(Sql(b.db_, "SELECT source FROM objects LIMIT 1"), a.identity_);
  // The tear-line variant came under its derived id; the original never left A.
  EXPECT_EQ(Sql(b.db_, "SELECT count(*) FROM objects WHERE id='indicator--dc4c1e5c-08d9-4307-b578-4e2876fa7b17'"), "0");
  EXPECT_EQ(Sql(b.db_, "SELECT count(*) FROM objects WHERE json LIKE '%LANTERN-3%'"), "0");
  // Relay B -> C: what B got from A and may pass on reaches C with A's signature and B's.
  ASSERT_TRUE(WaitFor([&] { return !Ids(c.db_).empty() && Sql(b.db_, "SELECT count(*) FROM outbox WHERE state='pending'") == "0"; }));
  std::set<std::string> at_c = Ids(c.db_);
  for (const auto& x : at_c) EXPECT_TRUE(for_b.count(x)) << x << " reached C but B never had it";
  std::string two = Sql(c.db_, "SELECT json FROM signatures LIMIT 1");
  EXPECT_NE(two.find(a.key_), std::string::npos) << "the original signature travels with a relayed object";
  EXPECT_NE(two.find(b.key_), std::string::npos) << "the relayer signs too";
  // Nothing returns to A (loops): A stored nothing from its partners.
  EXPECT_EQ(Sql(a.db_, "SELECT count(*) FROM objects WHERE source!=''"), "0");
  // Audits on both sides; peer status tells the operator.
  EXPECT_GT(CountAudit(a.db_, [&](const audit::Entry& e) { return e.recipient == "federation@" + b.identity_; }), 0u);
  std::string status = a.Cli("peer status");
  EXPECT_NE(status.find("0 pending"), std::string::npos) << status;
  EXPECT_NE(status.find("channel closed"), std::string::npos) << status;
  for (Node* n : {&a, &b, &c}) {
    std::string out;
    EXPECT_EQ(RunCommand(Bin() + " audit verify --db " + n->db_, &out), 0) << n->name_ << out;
  }
}

// A proxy that changes one byte of every request body it forwards (a tamperer on the path).
class TamperingProxy {
 public:
  //! drop_first > 0: instead of tampering, the first `drop_first` requests are cut off after
  //! half of their body has been forwarded (a link that fails mid-body); later ones pass.
  explicit TamperingProxy(int target_port, int drop_first = 0)
      : target_(target_port), port_(FreePort()), drop_first_(drop_first) {
    listen_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port_));
    bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(listen_, 16);
    thread_ = std::thread([this] { Run(); });
  }
  ~TamperingProxy() {
    stop_ = true;
    shutdown(listen_, SHUT_RDWR);
    close(listen_);
    thread_.join();
  }
  int port() const { return port_; }
  std::atomic<int> tampered{0};

 private:
  void Run() {
    while (!stop_) {
      int c = accept(listen_, nullptr, nullptr);
      if (c < 0) return;
      Handle(c);
      close(c);
    }
  }
  void Handle(int c) {
    std::string req;
    char buf[65536];
    size_t need = std::string::npos;
    while (true) {
      ssize_t n = recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      req.append(buf, n);
      size_t hend = req.find("\r\n\r\n");
      if (hend != std::string::npos && need == std::string::npos) {
        size_t cl = req.find("Content-Length: ");
        need = hend + 4 + (cl != std::string::npos && cl < hend ? std::stoul(req.substr(cl + 16)) : 0);
      }
      if (need != std::string::npos && req.size() >= need) break;
    }
    // Flip one letter inside the first object's JSON (same length: the HTTP framing stays valid).
    size_t body = req.find("\r\n\r\n") + 4;
    size_t at = drop_first_ > 0 ? std::string::npos : req.find("\"name\":\"", body);
    bool cut = drop_first_ > 0 && dropped_ < drop_first_;
    if (at != std::string::npos) {
      char& ch = req[at + 8];
      ch = ch == 'X' ? 'Y' : 'X';
      ++tampered;
    }
    req = std::regex_replace(req, std::regex("Connection: keep-alive"), "Connection: close");
    int t = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(target_));
    if (connect(t, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(t);
      return;
    }
    if (cut) {
      // Half the body, then the link dies: the server must store nothing of it.
      ++dropped_;
      send(t, req.data(), body + (req.size() - body) / 2, MSG_NOSIGNAL);
      close(t);
      return;
    }
    send(t, req.data(), req.size(), MSG_NOSIGNAL);
    shutdown(t, SHUT_WR);
    ssize_t n;
    while ((n = recv(t, buf, sizeof buf, 0)) > 0) send(c, buf, n, MSG_NOSIGNAL);
    close(t);
  }
  int target_, port_, listen_;
  int drop_first_ = 0;
  std::atomic<int> dropped_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A large envelope is verified on several threads: each object keeps its own verdict.
TEST(Federation, SignaturesOfALargeEnvelopeAreCheckedOneByOne) {
  std::string path = ::testing::TempDir() + "/tearline-sig-" + std::to_string(getpid()) + ".key";
  std::remove(path.c_str());
  std::string err;
  auto key = audit::LoadOrCreateKey(path, &err);
  ASSERT_TRUE(key) << err;
  std::string bundle = R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[)";
  for (int i = 0; i < 150; ++i) {
    char id[64];
    std::snprintf(id, sizeof id, "a6f12b93-270d-41b3-a42c-%012d", i);
    bundle += std::string(i ? "," : "") + R"({"type":"indicator","spec_version":"2.1","id":"indicator--)" + id +
              R"(","created":"2024-01-01T00:00:00.000Z","modified":"2024-01-01T00:00:00.000Z","name":"n)" +
              std::to_string(i) + R"(","pattern":"[ipv4-addr:value = '198.51.100.7']","pattern_type":"stix",)"
              R"("valid_from":"2024-01-01T00:00:00Z"})";
  }
  bundle += "]}";
  stix::Validator v;
  auto r = v.Validate(bundle);
  ASSERT_TRUE(r.ok());
  std::vector<federation::ToSign> to_sign;
  for (const auto& o : r.objects) to_sign.push_back({o.id, o.modified, o.json, {}});
  const std::string node = "identity--0b0e0c00-0000-4000-8000-00000000a001";
  std::string envelope = federation::SignedEnvelope(to_sign, *key, node);
  // Objects 70 and 149 arrive changed after signing.
  auto received = r.objects;
  for (size_t k : {70u, 149u}) {
    auto at = received[k].json.find("\"name\":\"n");
    ASSERT_NE(at, std::string::npos);
    received[k].json.replace(at, 9, "\"name\":\"X");
  }
  store::Peer peer;
  peer.identity = node;
  peer.public_key = key->public_hex;
  std::vector<std::string> stored;
  auto errors = federation::CheckSignatures(envelope, received, peer, &stored);
  ASSERT_EQ(errors.size(), 150u);
  for (size_t k = 0; k < errors.size(); ++k) {
    if (k == 70 || k == 149) {
      EXPECT_NE(errors[k].find("does not verify"), std::string::npos) << k;
      EXPECT_TRUE(stored[k].empty()) << k;
    } else {
      EXPECT_TRUE(errors[k].empty()) << k << ": " << errors[k];
      EXPECT_FALSE(stored[k].empty()) << k;
    }
  }
  std::remove(path.c_str());
}

TEST(Federation, ATamperedObjectIsRejectedAndAudited) {
  TempDir tmp;
  Node a(tmp.path(), "a", "intel"), b(tmp.path(), "b", "inbox");
  TamperingProxy proxy(b.port_);
  Link(a, b, "ct-europe", "open", 0, "http://127.0.0.1:" + std::to_string(proxy.port()) + "/ct/");
  a.Start();
  b.Start();
  a.Cli("import --collection intel " + kSample);
  ASSERT_TRUE(WaitFor([&] { return Sql(a.db_, "SELECT count(*) FROM outbox WHERE state='failed'") != "0"; }))
      << a.Cli("peer status");
  EXPECT_GT(proxy.tampered.load(), 0);
  // B refused each tampered object (one per POST), stored the others, and audited the refusal.
  EXPECT_GT(CountAudit(b.db_, [](const audit::Entry& e) { return e.decision == "reject"; }), 0u);
  std::string reason = FirstAuditObject(b.db_, "reject");
  EXPECT_NE(reason.find("does not verify"), std::string::npos) << reason;
  EXPECT_EQ(Sql(b.db_, "SELECT count(*) FROM objects WHERE json LIKE '%\"name\":\"X%' OR json LIKE '%\"name\":\"Y%'"), "0");
  std::string status = a.Cli("peer status");
  EXPECT_NE(status.find("rejected by the partner"), std::string::npos) << status;
}

TEST(Federation, ALinkThatDropsMidBodyLosesAndDuplicatesNothing) {
  TempDir tmp;
  Node a(tmp.path(), "a", "intel"), b(tmp.path(), "b", "inbox");
  TamperingProxy proxy(b.port_, 3);
  Link(a, b, "ct-europe", "open", 0, "http://127.0.0.1:" + std::to_string(proxy.port()) + "/ct/");
  a.Start();
  b.Start();
  a.Cli("import --collection intel " + kSample);
  std::set<std::string> for_b = ExpectedFor(a, b.identity_);
  ASSERT_TRUE(WaitFor([&] { return Ids(b.db_) == for_b; })) << Ids(b.db_).size() << " of " << for_b.size();
  ASSERT_TRUE(WaitFor([&] { return Sql(a.db_, "SELECT count(*) FROM outbox WHERE state='pending'") == "0"; }));
  EXPECT_EQ(Sql(b.db_, "SELECT count(*) FROM objects"), std::to_string(for_b.size())) << "nothing duplicated";
  EXPECT_EQ(Sql(a.db_, "SELECT count(*) FROM outbox WHERE state='failed'"), "0");
  EXPECT_NE(Sql(a.db_, "SELECT max(attempts) FROM outbox"), "0") << "the cut requests were retried";
}

TEST(Federation, PartnerDownThenBackAndKilledNodesLoseNothing) {
  TempDir tmp;
  Node a(tmp.path(), "a", "intel"), b(tmp.path(), "b", "inbox");
  Link(a, b, "ct-europe", "open", 0);
  a.Start();  // B is down: its port refuses connections
  a.Cli("import --collection intel " + kSample);
  std::set<std::string> for_b = ExpectedFor(a, b.identity_);
  ASSERT_TRUE(WaitFor([&] { return Sql(a.db_, "SELECT max(attempts) FROM outbox") >= "2"; }));
  std::string status = a.Cli("peer status");
  EXPECT_NE(status.find("unreachable"), std::string::npos) << status;
  EXPECT_EQ(status.find("0 pending"), std::string::npos) << status;
  // A is killed with work pending, B comes back, A restarts: the backlog drains once.
  a.Kill(SIGKILL);
  b.Start();
  a.Start();
  ASSERT_TRUE(WaitFor([&] { return Ids(b.db_) == for_b; })) << "B has " << Ids(b.db_).size() << " of " << for_b.size();
  ASSERT_TRUE(WaitFor([&] { return Sql(a.db_, "SELECT count(*) FROM outbox WHERE state='pending'") == "0"; }));
  EXPECT_EQ(Sql(b.db_, "SELECT count(*) FROM objects"), std::to_string(for_b.size())) << "nothing duplicated";
  // B killed and restarted under new traffic: a second version arrives exactly once.
  b.Kill(SIGKILL);
  std::string v2 = test::ReadFile(kSample);
  size_t at = v2.find("\"modified\": \"2026-02-20T08:00:00.000Z\",\n   \"created_by_ref\": \"identity--bcf37703-2aee-42eb-aacc-ad1622f17f99\",\n   \"name\": \"Armed assault");
  ASSERT_NE(at, std::string::npos);
  const std::string m1 = "\"modified\": \"2026-02-20T08:00:00.000Z\",", m2 = "\"modified\": \"2026-03-01T08:00:00.000Z\",";
  v2.replace(at, m1.size(), m2);
  test::WriteFile(tmp.path() + "/v2.json", v2);
  a.Cli("import --collection intel " + tmp.path() + "/v2.json");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  b.Start();
  ASSERT_TRUE(WaitFor([&] { return Ids(b.db_).size() == for_b.size() + 1; })) << Ids(b.db_).size();
  ASSERT_TRUE(WaitFor([&] { return Sql(a.db_, "SELECT count(*) FROM outbox WHERE state='pending'") == "0"; }));
  EXPECT_EQ(Sql(b.db_, "SELECT count(*) FROM objects"), std::to_string(for_b.size() + 1));
  // Closing the channel stops what is queued; reopening does not send it until an operator asks.
  a.Cli("partner set-channel " + b.identity_ + " closed");
  std::string v3 = v2;
  v3.replace(v3.find(m2), m2.size(), "\"modified\": \"2026-03-02T08:00:00.000Z\",");
  test::WriteFile(tmp.path() + "/v3.json", v3);
  a.Cli("import --collection intel " + tmp.path() + "/v3.json");
  ASSERT_TRUE(WaitFor([&] { return Sql(a.db_, "SELECT count(*) FROM outbox WHERE state='pending'") == "0"; }));
  a.Cli("partner set-channel " + b.identity_ + " open");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(Sql(b.db_, "SELECT count(*) FROM objects"), std::to_string(for_b.size() + 1)) << "withheld while closed";
  a.Cli("partner resend " + b.identity_ + " --since 2020-01-01T00:00:00Z");
  ASSERT_TRUE(WaitFor([&] { return Ids(b.db_).size() == for_b.size() + 2; })) << Ids(b.db_).size();
}

TEST(Federation, PullKeepsItsPositionAndChecksSignatures) {
  TempDir tmp;
  Node a(tmp.path(), "a", "intel"), b(tmp.path(), "b", "inbox");
  // B pulls A's collection (no push); A serves B's node as a partner and signs what it releases.
  std::string out;
  a.Cli("principal add node-b --read intel");
  std::string token = a.Cli("principal token node-b");
  token.erase(token.find_last_not_of("\n") + 1);
  RunCommand(Bin() + " group add --db " + a.db_ + " ct-europe", &out);
  a.Cli("partner add " + b.identity_ + " --name b --principal node-b --group ct-europe");
  a.Cli("collection share intel --group ct-europe");
  a.Cli("partner set-peer " + b.identity_ + " --url " + b.url());
  a.Cli("partner trust-key " + b.identity_ + " " + b.key_);
  b.Cli("partner add " + a.identity_ + " --name a");
  b.Cli("partner set-peer " + a.identity_ + " --url " + a.url() + " --token " + token + " --pull " + a.collection_id_ + "=from-a");
  b.Cli("partner trust-key " + a.identity_ + " " + a.key_);
  std::set<std::string> for_b = ExpectedFor(a, b.identity_);
  a.Cli("import --collection intel " + kSample);
  a.Start();
  b.Start();
  ASSERT_TRUE(WaitFor([&] { return Ids(b.db_) == for_b; })) << Ids(b.db_).size() << " of " << for_b.size();
  EXPECT_EQ(Sql(b.db_, "SELECT count(*) FROM signatures"), std::to_string(for_b.size()));
  EXPECT_NE(Sql(b.db_, "SELECT added_after FROM pull_cursors"), "0");
  // A wrong key: B refuses what it pulls, and says so.
  b.Kill(SIGTERM);
  b.Cli("partner trust-key " + a.identity_ + " " + std::string(64, 'a'));
  Sql(b.db_, "DELETE FROM pull_cursors");
  Sql(b.db_, "DELETE FROM objects");
  b.Start();
  ASSERT_TRUE(WaitFor([&] { return CountAudit(b.db_, [](const audit::Entry& e) { return e.decision == "reject"; }) > 0; }));
  EXPECT_EQ(Sql(b.db_, "SELECT count(*) FROM objects"), "0");
}


TEST(DutyToWarn, WarningAcrossAClosedChannelIsAcknowledgedAndPublished) {
  TempDir tmp;
  Node a(tmp.path(), "a", "intel"), c(tmp.path(), "c", "inbox");
  std::string out;
  // C gives A a way in (its warning inbox) and knows A's key; A gives C a way back for receipts.
  c.Cli("principal add node-a --read inbox --write inbox");
  std::string c_token = c.Cli("principal token node-a");
  c_token.erase(c_token.find_last_not_of("\n") + 1);
  a.Cli("principal add node-c --read intel --write intel");
  std::string a_token = a.Cli("principal token node-c");
  a_token.erase(a_token.find_last_not_of("\n") + 1);
  c.Cli("partner add " + a.identity_ + " --name a --principal node-a");
  c.Cli("partner set-peer " + a.identity_ + " --url " + a.url() + " --token " + a_token + " --push-collection " + a.collection_id_);
  c.Cli("partner trust-key " + a.identity_ + " " + a.key_);
  // A and C do not cooperate: the channel is closed. C is a party A must warn about threats to country XC.
  a.Cli("partner add " + c.identity_ + " --name c --channel closed --principal node-c");
  a.Cli("partner set-peer " + c.identity_ + " --url " + c.url());
  a.Cli("partner trust-key " + c.identity_ + " " + c.key_);
  a.Cli("party add " + c.identity_ + " --name 'Country C' --url " + c.url() + " --token " + c_token + " --collection " +
        c.collection_id_ + " --key " + c.key_ + " --match country:XC");
  const std::string ext = "extension-definition--5d8a3c1e-7b2f-4c6a-9e41-0f3b8d27a6c5";
  const std::string amber = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";
  const std::string white = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";
  test::WriteFile(tmp.path() + "/threat.json", R"({"type":"bundle","id":"bundle--11111111-2222-4333-8444-555555555555","objects":[)"
      R"({"type":"location","spec_version":"2.1","id":"location--0c0c0c0c-0000-4000-8000-00000000000c","created":"2026-03-01T00:00:00.000Z","modified":"2026-03-01T00:00:00.000Z","name":"Capital of C","country":"XC","object_marking_refs":[")" + white + R"("]},)"
      R"({"type":"campaign","spec_version":"2.1","id":"campaign--0c0c0c0c-0000-4000-8000-0000000000aa","created":"2026-03-01T00:00:00.000Z","modified":"2026-03-01T00:00:00.000Z","name":"Operation Crowded Hall","description":"Our source HUMINT-9 reports an armed assault planned on a concert hall.","confidence":90,"x_source":"HUMINT-9, handler meeting 2026-02-27","object_marking_refs":[")" + amber + R"("],)"
      R"("extensions":{")" + ext + R"(":{"extension_type":"property-extension","releasable":{"name":"Planned armed assault on a crowded venue","description":"A violent group plans an armed assault on a crowded concert venue in the coming weeks."},"sensitive":["x_source"]}}},)"
      R"({"type":"relationship","spec_version":"2.1","id":"relationship--0c0c0c0c-0000-4000-8000-0000000000bb","created":"2026-03-01T00:00:00.000Z","modified":"2026-03-01T00:00:00.000Z","relationship_type":"targets","source_ref":"campaign--0c0c0c0c-0000-4000-8000-0000000000aa","target_ref":"location--0c0c0c0c-0000-4000-8000-00000000000c","object_marking_refs":[")" + amber + R"("]}]})");
  a.Start();
  c.Start();
  a.Cli("import --collection intel " + tmp.path() + "/threat.json");
  // The rule fires: a draft, built from sanitized copies only.
  std::string id;
  ASSERT_TRUE(WaitFor([&] {
    std::string list = a.Cli("warn list");
    auto at = list.find("report--");
    if (at == std::string::npos) return false;
    id = list.substr(at, 44);
    return true;
  }));
  std::string show = a.Cli("warn show " + id);
  EXPECT_NE(show.find("draft"), std::string::npos) << show;
  EXPECT_NE(show.find("A violent group plans an armed assault"), std::string::npos) << show;
  EXPECT_EQ(show.find("HUMINT-9"), std::string::npos) << "sources and methods never enter a warning";
  EXPECT_EQ(show.find("campaign--0c0c0c0c-0000-4000-8000-0000000000aa"), std::string::npos) << "nor original ids";
  // Decisions are recorded; waive and reject need a reason.
  EXPECT_NE(RunCommand(Bin() + " warn waive --db " + a.db_ + " " + id + " --by officer1", &out), 0) << out;
  EXPECT_NE(RunCommand(Bin() + " warn approve --db " + a.db_ + " " + id, &out), 0) << "who approves is required";
  a.Cli("warn approve " + id + " --by officer1 --reason 'credible, specific threat' --instruction "
        "'Avoid large gatherings at concert venues in the capital; report suspicious behaviour to the police.'");
  // Delivered across the closed channel, and acknowledged by C's node with a signed note.
  ASSERT_TRUE(WaitFor([&] { return a.Cli("warn status " + id).find(id + ": acknowledged") != std::string::npos; }, 30))
      << a.Cli("warn status " + id) << a.Cli("peer status") << c.Cli("peer status");
  std::string status = a.Cli("warn status " + id);
  for (const char* step : {"  draft ", "  approved ", "  delivered ", "  acknowledged "}) {
    EXPECT_NE(status.find(step), std::string::npos) << step << "\n" << status;
  }
  // C received the warning, and nothing else of A's: no original, no AMBER intelligence.
  EXPECT_EQ(Sql(c.db_, "SELECT count(*) FROM objects WHERE id='" + id + "'"), "1");
  EXPECT_EQ(Sql(c.db_, "SELECT count(*) FROM objects WHERE json LIKE '%HUMINT%' OR id LIKE '%0c0c0c0c-0000-4000-8000-0000000000aa'"), "0");
  EXPECT_EQ(Sql(c.db_, "SELECT count(*) FROM objects WHERE source='" + a.identity_ + "'"), "4") << "report + 3 sanitized objects";
  EXPECT_EQ(Sql(a.db_, "SELECT count(*) FROM outbox WHERE partner='" + c.identity_ + "' AND state='sent'"), "0")
      << "only the warning path crossed the closed channel";
  // Every step is audited on A.
  for (const char* kind : {"warning-draft", "warning-approved", "warning-acknowledged"}) {
    EXPECT_GT(CountAudit(a.db_, [&](const audit::Entry& e) { return e.decision == kind; }), 0u) << kind;
  }
  EXPECT_GT(CountAudit(a.db_, [](const audit::Entry& e) { return e.reason.rfind("approved duty-to-warn warning", 0) == 0; }), 0u);
  // Public advisory: CAP 1.2 (schema-valid), Atom, and a TLP:CLEAR STIX report; only approved text.
  std::string cap = a.Cli("warn publish " + id + " --by officer2");
  test::WriteFile(tmp.path() + "/alert.xml", cap);
  std::string schema = std::string(TEARLINE_SOURCE_DIR) + "/tests/data/cap-1.2.xsd";
  EXPECT_EQ(RunCommand("xmllint --noout --schema " + schema + " " + tmp.path() + "/alert.xml", &out), 0) << out << cap;
  EXPECT_NE(cap.find("<instruction>Avoid large gatherings"), std::string::npos) << cap;
  EXPECT_NE(cap.find("<areaDesc>Capital of C (XC)</areaDesc>"), std::string::npos) << cap;
  EXPECT_EQ(cap.find("HUMINT"), std::string::npos);
  std::string feed;
  ASSERT_EQ(RunCommand("curl -sf " + a.url().substr(0, a.url().size() - 3) + "advisories/feed.atom", &feed), 0) << feed;
  test::WriteFile(tmp.path() + "/feed.atom", feed);
  EXPECT_EQ(RunCommand("xmllint --noout " + tmp.path() + "/feed.atom", &out), 0) << out << feed;
  EXPECT_NE(feed.find("<entry>"), std::string::npos) << feed;
  auto href = feed.find(".cap.xml");
  ASSERT_NE(href, std::string::npos) << feed;
  std::string link = feed.substr(feed.rfind("href=\"", href) + 6, href + 8 - feed.rfind("href=\"", href) - 6);
  std::string served;
  ASSERT_EQ(RunCommand("curl -sf '" + link + "'", &served), 0) << link;
  EXPECT_EQ(served, cap);
  EXPECT_EQ(Sql(a.db_, "SELECT count(*) FROM objects o JOIN collections c ON c.pk=o.coll WHERE c.name='public' AND o.json LIKE '%613f2e26%'"), "2");
  EXPECT_NE(RunCommand(Bin() + " warn publish --db " + a.db_ + " " + id + " --by officer2", &out), 0) << "published once";
  EXPECT_EQ(RunCommand(Bin() + " audit verify --db " + a.db_, &out), 0) << out;
}

TEST(DutyToWarn, TwoPersonRuleAndWaiver) {
  TempDir tmp;
  Node a(tmp.path(), "a", "intel");
  std::string out;
  const std::string party = "identity--0d0d0d0d-0000-4000-8000-00000000000d";
  a.Cli("party add " + party + " --name D --url http://127.0.0.1:9/ct/ --collection 0d0d0d0d-0000-4000-8000-00000000000d --key " +
        std::string(64, 'd') + " --match city:Northport");
  a.Cli("import --collection intel " + kSample);
  // The sample's campaign targets Northport with confidence 85: one draft per target object matched.
  std::string scan = a.Cli("warn scan --collection intel");
  EXPECT_NE(scan.find("1 new warning drafts"), std::string::npos) << scan;
  EXPECT_NE(a.Cli("warn scan --collection intel").find("0 new warning drafts"), std::string::npos) << "idempotent";
  std::string list = a.Cli("warn list");
  std::string id = list.substr(list.find("report--"), 44);
  Sql(a.db_, "INSERT OR REPLACE INTO meta(key, value) VALUES('warn.two_person', 'true')");
  a.Cli("warn approve " + id + " --by alice --reason first");
  EXPECT_NE(a.Cli("warn status " + id).find(": draft"), std::string::npos) << "one approval is not enough";
  EXPECT_NE(RunCommand(Bin() + " warn approve --db " + a.db_ + " " + id + " --by alice", &out), 0) << "not twice by the same person";
  EXPECT_NE(out.find("someone else"), std::string::npos) << out;
  a.Cli("warn approve " + id + " --by bob --reason second");
  EXPECT_NE(a.Cli("warn status " + id).find(": approved"), std::string::npos);
  EXPECT_NE(RunCommand(Bin() + " warn waive --db " + a.db_ + " " + id + " --by carol --reason x", &out), 0) << "decided already";
  // The other path: a waiver, recorded with its reason.
  Sql(a.db_, "UPDATE warnings SET state='draft', events='[]'");
  a.Cli("warn waive " + id + " --by carol --reason 'warning would expose the source'");
  std::string status = a.Cli("warn status " + id);
  EXPECT_NE(status.find("waived"), std::string::npos) << status;
  EXPECT_NE(status.find("would expose the source"), std::string::npos) << status;
  EXPECT_GT(CountAudit(a.db_, [](const audit::Entry& e) { return e.decision == "warning-waived"; }), 0u);
}

}  // namespace
}  // namespace tearline
