// TAXII 2.1 integration tests: the real server on an ephemeral loopback port,
// driven by libcurl (and raw sockets for malformed HTTP).
#include <unistd.h>

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cerrno>
#include <filesystem>
#include <set>
#include <thread>

#include "http_client.h"
#include "net/net.h"
#include "policy/policy.h"
#include "stix/stix.h"
#include "store/store.h"
#include "taxii/audit_writer.h"
#include "taxii/taxii.h"
#include "test_util.h"

namespace tearline {
namespace {

using test::Http;
using test::HttpOptions;
using test::HttpResult;

constexpr const char* kPassword = "correct horse battery";
const std::string kTaxii = "application/taxii+json;version=2.1";

int64_t CacheHits(const std::string& metrics);  // tearline_response_cache_hits_total in /metrics

taxii::Config MakeConfig(const std::string& db) {
  taxii::Config c;
  c.database = db;
  c.listen_port = 0;
  c.public_discovery = true;
  c.default_api_root = "ct";
  c.max_content_length = 4 << 20;
  c.max_page_size = 1000;
  c.default_page_size = 100;
  c.request_timeout = std::chrono::milliseconds(1500);
  c.threads = 2;
  taxii::ApiRootConfig root{"ct", "Counterterrorism", "", {{"demo", "Demo", "the demo scenario"}, {"inbox", "Inbox", ""}}};
  c.api_roots.push_back(root);
  c.api_roots.push_back({"other", "Other root", "", {{"secret", "Secret", ""}}});
  return c;
}

class TaxiiTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(MakeConfig(dir_.path() + "/t.db")); }
  void TearDown() override { Stop(); }

  void Start(taxii::Config cfg, bool seed = true) {
    config_ = cfg;
    auto s = store::OpenSqlite(cfg.database);
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(s).value();
    demo_ = store_->EnsureCollection("demo")->id;
    inbox_ = store_->EnsureCollection("inbox")->id;
    secret_ = store_->EnsureCollection("secret")->id;
    if (seed) {
      stix::Validator v;
      auto r = v.Validate(test::ReadFile(std::string(TEARLINE_SOURCE_DIR) + "/samples/northern-lantern.json"));
      ASSERT_TRUE(r.ok());
      sample_count_ = r.objects.size();
      ASSERT_TRUE(store_->Put("demo", r.objects).ok());
      std::string hash = taxii::HashSecret(kPassword);
      ASSERT_TRUE(store_->PutPrincipal({"analyst", hash, {"demo", "inbox"}, {"inbox"}}).ok());
      ASSERT_TRUE(store_->PutPrincipal({"reader", "", {"demo"}, {}}).ok());
      ASSERT_TRUE(store_->PutPrincipal({"nobody", hash, {}, {}}).ok());
      token_ = *taxii::IssueToken(*store_, "reader");
    }
    metrics_ = std::make_unique<taxii::Metrics>();
    service_ = std::make_unique<taxii::Service>(cfg, *store_, releaser_, metrics_.get());
    net::ServerOptions opt;
    opt.port = 0;
    opt.threads = 2;
    opt.max_body_bytes = cfg.max_content_length;
    opt.request_timeout = cfg.request_timeout;
    opt.tls_cert_file = cfg.tls_cert;
    opt.tls_key_file = cfg.tls_key;
    opt.error_response = [](int s, std::string t, std::string d) { return taxii::Service::Error(s, t, d); };
    auto srv = net::Server::Start(
        opt, [this](const net::Request& r) { return service_->Handle(r, /*may_defer=*/true); },
        [this](const net::Request& r, const net::Response& res, std::chrono::microseconds took) {
          metrics_->Record(taxii::RouteOf(r.target), res.status, took);
        });
    ASSERT_TRUE(srv.ok()) << srv.status().message();
    server_ = std::move(srv).value();
    base_ = std::string(cfg.tls_cert.empty() ? "http" : "https") + "://127.0.0.1:" + std::to_string(server_->port());
  }

  void Stop() {
    if (server_) server_->Stop();
    server_.reset();
    service_.reset();
    store_.reset();
  }

  HttpOptions Analyst() const { return {std::string("analyst:") + kPassword, "", {"Accept: " + kTaxii}, ""}; }
  HttpOptions Reader() const { return {"", token_, {"Accept: " + kTaxii}, ""}; }
  std::string Coll(const std::string& id) const { return base_ + "/ct/collections/" + id + "/"; }

  static simdjson::dom::element Parse(simdjson::dom::parser& p, const std::string& body) {
    simdjson::dom::element e;
    EXPECT_FALSE(p.parse(body).get(e)) << body;
    return e;
  }

  // Follows `next` to the end; returns every object id@modified seen.
  std::vector<std::string> AllPages(const std::string& url, const HttpOptions& who, int* pages) {
    std::vector<std::string> out;
    std::string next;
    *pages = 0;
    while (true) {
      std::string u = url + (url.find('?') == std::string::npos ? "?" : "&") + (next.empty() ? "" : "next=" + next);
      auto r = Http("GET", u, who);
      EXPECT_EQ(r.status, 200) << u << ": " << r.body;
      if (r.status != 200) break;
      ++*pages;
      simdjson::dom::parser p;
      auto env = Parse(p, r.body);
      simdjson::dom::array objs;
      if (!env["objects"].get(objs)) {
        for (auto o : objs) {
          std::string_view id, mod;
          EXPECT_FALSE(o["id"].get(id));
          if (o["modified"].get(mod)) mod = "";
          out.push_back(std::string(id) + "@" + std::string(mod));
        }
        EXPECT_TRUE(r.headers.count("x-taxii-date-added-first"));
        EXPECT_TRUE(r.headers.count("x-taxii-date-added-last"));
      }
      bool more = false;
      EXPECT_FALSE(env["more"].get(more));
      if (!more) break;
      std::string_view n;
      EXPECT_FALSE(env["next"].get(n)) << "more without next";
      next = std::string(n);
    }
    return out;
  }

  test::TempDir dir_;
  taxii::Config config_;
  std::unique_ptr<store::Store> store_;
  policy::Releaser releaser_;
  std::unique_ptr<taxii::Metrics> metrics_;
  std::unique_ptr<taxii::Service> service_;
  std::unique_ptr<net::Server> server_;
  std::string base_, demo_, inbox_, secret_, token_;
  size_t sample_count_ = 0;
};

TEST_F(TaxiiTest, DiscoveryAndApiRoot) {
  auto d = Http("GET", base_ + "/taxii2/", {"", "", {"Accept: " + kTaxii}, ""});
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(d.headers["content-type"], kTaxii);
  EXPECT_NE(d.body.find("\"api_roots\":[\"" + base_ + "/ct/\",\"" + base_ + "/other/\"]"), std::string::npos) << d.body;
  EXPECT_NE(d.body.find("\"default\":\"" + base_ + "/ct/\""), std::string::npos);
  auto a = Http("GET", base_ + "/ct/", Analyst());
  ASSERT_EQ(a.status, 200);
  EXPECT_NE(a.body.find("\"versions\":[\"application/taxii+json;version=2.1\"]"), std::string::npos);
  EXPECT_NE(a.body.find("\"max_content_length\":4194304"), std::string::npos);
  EXPECT_EQ(Http("GET", base_ + "/nope/", Analyst()).status, 404);
  EXPECT_EQ(Http("GET", base_ + "/ct/", {}).status, 401) << "only discovery is public";
}

TEST_F(TaxiiTest, DiscoveryCanBePrivate) {
  Stop();
  auto cfg = MakeConfig(dir_.path() + "/t.db");
  cfg.public_discovery = false;
  Start(cfg, false);
  EXPECT_EQ(Http("GET", base_ + "/taxii2/").status, 401);
  EXPECT_EQ(Http("GET", base_ + "/taxii2/", Analyst()).status, 200);
}

TEST_F(TaxiiTest, Authentication) {
  auto none = Http("GET", base_ + "/ct/collections/");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.headers["www-authenticate"].find("Basic"), std::string::npos);
  EXPECT_NE(none.body.find("\"http_status\":\"401\""), std::string::npos);
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", {"analyst:wrong", "", {}, ""}).status, 401);
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", {"ghost:whatever", "", {}, ""}).status, 401);
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", {"", "tlt_bogus.secret", {}, ""}).status, 401);
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", {"", token_ + "x", {}, ""}).status, 401);
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", Reader()).status, 200);
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", Analyst()).status, 200);
  // Removing a principal applies to the next request, cached credentials or not.
  ASSERT_TRUE(store_->RemovePrincipal("reader").ok());
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", Reader()).status, 401);
  // So does a new password (`principal add` again): the old one, remembered as checked, fails
  // at once, the new one works.
  const std::string changed = "a changed password 2026";
  ASSERT_TRUE(store_->PutPrincipal({"analyst", taxii::HashSecret(changed), {"demo", "inbox"}, {"inbox"}}).ok());
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", Analyst()).status, 401) << "the old password still works";
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", {"analyst:" + changed, "", {}, ""}).status, 200);
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", {"analyst:" + changed, "", {}, ""}).status, 200);
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", Analyst()).status, 401);
}

// Requests arriving together with a credential not checked yet run one check (Argon2id) and
// share its result, instead of one check each: the stall of a node starting under load, or of a
// busy client whose remembered credential expired. A wrong credential presented together fails
// for every request.
TEST_F(TaxiiTest, RequestsArrivingTogetherCheckANewCredentialOnce) {
  auto checks = [&] {
    std::string m = Http("GET", base_ + "/metrics", Analyst()).body;
    auto at = m.find("\ntearline_auth_checks_total ");
    return at == std::string::npos ? int64_t{-1} : std::stoll(m.substr(at + 28));
  };
  checks();  // the analyst's own credential is remembered from here on
  const int64_t before = checks();
  ASSERT_GE(before, 1);
  auto fresh = taxii::IssueToken(*store_, "reader");
  ASSERT_TRUE(fresh.ok());
  auto together = [&](const std::string& token) {
    constexpr int kRequests = 12;
    std::vector<int> status(kRequests, 0);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int k = 0; k < kRequests; ++k) {
      threads.emplace_back([&, k] {
        ++ready;
        while (ready.load() < kRequests) std::this_thread::yield();
        status[k] = Http("GET", base_ + "/ct/collections/", {"", token, {}, ""}).status;
      });
    }
    for (auto& t : threads) t.join();
    return status;
  };
  for (int s : together(*fresh)) EXPECT_EQ(s, 200);
  EXPECT_EQ(checks() - before, 1) << "each request checked the new token itself";
  for (int s : together(*fresh + "x")) EXPECT_EQ(s, 401);
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", {"", *fresh, {}, ""}).status, 200);
}

TEST_F(TaxiiTest, CollectionsFollowPermissions) {
  auto a = Http("GET", base_ + "/ct/collections/", Analyst());
  ASSERT_EQ(a.status, 200);
  EXPECT_NE(a.body.find(demo_), std::string::npos);
  EXPECT_NE(a.body.find(inbox_), std::string::npos);
  EXPECT_NE(a.body.find("\"media_types\":[\"application/stix+json;version=2.1\"]"), std::string::npos);
  auto r = Http("GET", base_ + "/ct/collections/", Reader());
  EXPECT_NE(r.body.find(demo_), std::string::npos);
  EXPECT_EQ(r.body.find(inbox_), std::string::npos);
  auto n = Http("GET", base_ + "/ct/collections/", {std::string("nobody:") + kPassword, "", {}, ""});
  EXPECT_EQ(n.status, 200);
  EXPECT_EQ(n.body, "{}");
  auto one = Http("GET", Coll(inbox_), Analyst());
  ASSERT_EQ(one.status, 200);
  EXPECT_NE(one.body.find("\"can_read\":true,\"can_write\":true"), std::string::npos) << one.body;
  // A collection the caller cannot see answers exactly like one that does not exist.
  auto hidden = Http("GET", Coll(inbox_), Reader());
  auto missing = Http("GET", Coll("00000000-0000-4000-8000-000000000000"), Reader());
  EXPECT_EQ(hidden.status, 404);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(hidden.body.substr(0, 20), missing.body.substr(0, 20));
  EXPECT_EQ(Http("GET", Coll(secret_), Analyst()).status, 404) << "collections live under their API root";
  EXPECT_EQ(Http("GET", base_ + "/other/collections/" + secret_ + "/", Analyst()).status, 404);
}

TEST_F(TaxiiTest, ObjectsPaginationReturnsEverythingOnce) {
  int pages = 0;
  auto all = AllPages(Coll(demo_) + "objects/?limit=7", Analyst(), &pages);
  std::set<std::string> unique(all.begin(), all.end());
  EXPECT_EQ(unique.size(), all.size()) << "an object was returned twice";
  EXPECT_EQ(all.size(), sample_count_ - 1) << "match[version] defaults to last: one campaign version less";
  EXPECT_EQ(pages, static_cast<int>((all.size() + 6) / 7));
  auto versions = AllPages(Coll(demo_) + "objects/?limit=5&match[version]=all", Analyst(), &pages);
  EXPECT_EQ(versions.size(), sample_count_);
  auto m = AllPages(Coll(demo_) + "manifest/?limit=4", Analyst(), &pages);
  EXPECT_EQ(m.size(), sample_count_ - 1);
  EXPECT_EQ(pages, static_cast<int>((m.size() + 3) / 4));
}

TEST_F(TaxiiTest, QueryParameters) {
  auto get = [&](const std::string& q) { return Http("GET", Coll(demo_) + "objects/" + q, Analyst()); };
  auto count = [&](const HttpResult& r) {
    simdjson::dom::parser p;
    simdjson::dom::element e = Parse(p, r.body);
    simdjson::dom::array a;
    return e["objects"].get(a) ? size_t{0} : a.size();
  };
  EXPECT_EQ(count(get("?match[type]=indicator")), 4u);
  EXPECT_EQ(count(get("?match%5Btype%5D=indicator,campaign")), 5u);
  EXPECT_EQ(count(get("?match[type]=campaign&match[version]=all")), 2u);
  auto first = get("?match[type]=campaign&match[version]=first");
  EXPECT_NE(first.body.find("\"modified\":\"2026-02-20T08:00:00.000Z\""), std::string::npos);
  auto last = get("?match[type]=campaign");
  EXPECT_NE(last.body.find("\"modified\":\"2026-03-07T18:30:00.000Z\""), std::string::npos);
  EXPECT_EQ(count(get("?match[type]=campaign&match[version]=2026-02-20T08:00:00Z")), 1u);
  EXPECT_EQ(count(get("?match[type]=campaign&match[version]=first,last")), 2u);
  EXPECT_EQ(count(get("?match[spec_version]=2.0")), 0u);
  EXPECT_EQ(count(get("?match[spec_version]=2.1&match[type]=indicator")), 4u);
  EXPECT_EQ(count(get("?match[id]=location--" + std::string("x"))), 0u);
  EXPECT_EQ(count(get("?added_after=2999-01-01T00:00:00Z")), 0u);
  EXPECT_EQ(get("?added_after=2999-01-01T00:00:00Z").body, "{\"more\":false}");
  EXPECT_EQ(count(get("?limit=100000")), sample_count_ - 1) << "limit is clamped, not refused";
  EXPECT_EQ(count(get("?unknown=1&match[type]=indicator")), 4u) << "unknown parameters are ignored";
  EXPECT_EQ(get("?limit=0").status, 400);
  EXPECT_EQ(get("?limit=abc").status, 400);
  EXPECT_EQ(get("?added_after=yesterday").status, 400);
  EXPECT_EQ(get("?match[version]=newest").status, 400);
  EXPECT_EQ(get("?next=garbage").status, 400);
  // A cursor is bound to its query.
  auto page = get("?limit=2");
  simdjson::dom::parser p;
  std::string_view next;
  ASSERT_FALSE(Parse(p, page.body)["next"].get(next));
  EXPECT_EQ(get("?limit=2&next=" + std::string(next)).status, 200);
  EXPECT_EQ(get("?limit=2&match[type]=indicator&next=" + std::string(next)).status, 400);
  // added_after paging by X-TAXII-Date-Added-Last neither skips nor repeats.
  std::set<std::string> seen;
  std::string after;
  for (int i = 0; i < 100; ++i) {
    auto r = get("?limit=3&match[version]=all" + (after.empty() ? "" : "&added_after=" + after));
    if (count(r) == 0) break;
    simdjson::dom::parser p2;
    simdjson::dom::array objs;
    ASSERT_FALSE(Parse(p2, r.body)["objects"].get(objs));
    for (auto o : objs) {
      std::string_view id, mod;
      ASSERT_FALSE(o["id"].get(id));
      if (o["modified"].get(mod)) mod = "";
      EXPECT_TRUE(seen.insert(std::string(id) + "@" + std::string(mod)).second);
    }
    after = r.headers["x-taxii-date-added-last"];
  }
  EXPECT_EQ(seen.size(), sample_count_);
}

TEST_F(TaxiiTest, ObjectVersionsManifestAndDelete) {
  std::string campaign;
  {
    auto r = Http("GET", Coll(demo_) + "objects/?match[type]=campaign", Analyst());
    simdjson::dom::parser p;
    std::string_view id;
    ASSERT_FALSE(Parse(p, r.body)["objects"].at(0)["id"].get(id));
    campaign = std::string(id);
  }
  auto one = Http("GET", Coll(demo_) + "objects/" + campaign + "/", Analyst());
  ASSERT_EQ(one.status, 200);
  EXPECT_NE(one.body.find("2026-03-07T18:30:00.000Z"), std::string::npos);
  auto all = Http("GET", Coll(demo_) + "objects/" + campaign + "/?match[version]=all", Analyst());
  EXPECT_NE(all.body.find("2026-02-20T08:00:00.000Z"), std::string::npos);
  auto versions = Http("GET", Coll(demo_) + "objects/" + campaign + "/versions/", Analyst());
  ASSERT_EQ(versions.status, 200);
  EXPECT_NE(versions.body.find("\"versions\":[\"2026-02-20T08:00:00.000Z\",\"2026-03-07T18:30:00.000Z\"]"), std::string::npos)
      << versions.body;
  auto manifest = Http("GET", Coll(demo_) + "manifest/?match[id]=" + campaign + "&match[version]=all", Analyst());
  EXPECT_NE(manifest.body.find("\"media_type\":\"application/stix+json;version=2.1\""), std::string::npos);
  EXPECT_NE(manifest.body.find("\"date_added\""), std::string::npos);
  EXPECT_EQ(Http("GET", Coll(demo_) + "objects/indicator--00000000-0000-4000-8000-000000000000/", Analyst()).status, 404);
  EXPECT_EQ(Http("GET", Coll(demo_) + "objects/indicator--00000000-0000-4000-8000-000000000000/versions/", Analyst()).status, 404);
  // DELETE needs write access: the analyst only reads demo.
  EXPECT_EQ(Http("DELETE", Coll(demo_) + "objects/" + campaign + "/", Analyst()).status, 403);
  // Post into the inbox, then delete there.
  std::string mal = R"({"type":"malware","spec_version":"2.1","id":"malware--5687c175-5926-4090-8ce9-6d0162364995",)"
                    R"("created":"2024-01-15T09:30:00.000Z","modified":"2024-01-15T09:30:00.000Z","is_family":false})";
  HttpOptions post = Analyst();
  post.headers.push_back("Content-Type: " + kTaxii);
  ASSERT_EQ(Http("POST", Coll(inbox_) + "objects/", post, "{\"objects\":[" + mal + "]}").status, 202);
  std::string url = Coll(inbox_) + "objects/malware--5687c175-5926-4090-8ce9-6d0162364995/";
  EXPECT_EQ(Http("GET", url, Analyst()).status, 200);
  // A second version; DELETE with match[version] removes only that one, without it every version (§5.7).
  std::string mal2 = mal;
  mal2.replace(mal2.find("\"modified\":\"2024-01-15T09:30:00.000Z\""), 37, "\"modified\":\"2024-02-15T09:30:00.000Z\"");
  ASSERT_EQ(Http("POST", Coll(inbox_) + "objects/", post, "{\"objects\":[" + mal2 + "]}").status, 202);
  EXPECT_EQ(Http("DELETE", url + "?match[version]=last", Analyst()).status, 200);
  auto left = Http("GET", url + "versions/", Analyst());
  EXPECT_NE(left.body.find("\"versions\":[\"2024-01-15T09:30:00.000Z\"]"), std::string::npos) << left.body;
  ASSERT_EQ(Http("POST", Coll(inbox_) + "objects/", post, "{\"objects\":[" + mal2 + "]}").status, 202);
  EXPECT_EQ(Http("DELETE", url, Analyst()).status, 200);
  EXPECT_EQ(Http("GET", url, Analyst()).status, 404);
  EXPECT_EQ(Http("GET", url + "versions/", Analyst()).status, 404);
  EXPECT_EQ(Http("DELETE", url, Analyst()).status, 404);
}

TEST_F(TaxiiTest, AddObjectsAndStatus) {
  HttpOptions post = Analyst();
  post.headers.push_back("Content-Type: " + kTaxii);
  std::string good = R"({"type":"malware","spec_version":"2.1","id":"malware--5687c175-5926-4090-8ce9-6d0162364995",)"
                     R"("created":"2024-01-15T09:30:00.000Z","modified":"2024-01-15T09:30:00.000Z","is_family":false})";
  std::string bad = R"({"type":"indicator","spec_version":"2.1","id":"indicator--a6f12b93-270d-41b3-a42c-84798615a449"})";
  auto r = Http("POST", Coll(inbox_) + "objects/", post, "{\"objects\":[" + good + "," + bad + "]}");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_NE(r.body.find("\"status\":\"complete\""), std::string::npos);
  EXPECT_NE(r.body.find("\"total_count\":2,\"success_count\":1"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"failure_count\":1"), std::string::npos);
  EXPECT_NE(r.body.find("required property \\\"pattern\\\" is missing"), std::string::npos) << r.body;
  simdjson::dom::parser p;
  std::string_view status_id;
  ASSERT_FALSE(Parse(p, r.body)["id"].get(status_id));
  std::string sid(status_id);
  auto s = Http("GET", base_ + "/ct/status/" + sid + "/", Analyst());
  EXPECT_EQ(s.status, 200);
  EXPECT_EQ(s.body, r.body);
  EXPECT_EQ(Http("GET", base_ + "/ct/status/" + sid + "/", Reader()).status, 404) << "statuses belong to their caller";
  // The same object again: a success (idempotent), stored once.
  auto again = Http("POST", Coll(inbox_) + "objects/", post, "{\"objects\":[" + good + "]}");
  EXPECT_NE(again.body.find("\"success_count\":1"), std::string::npos);
  // Each item names the object and its version; a duplicate says so, a conflict is a failure.
  const std::string item = R"({"id":"malware--5687c175-5926-4090-8ce9-6d0162364995","version":"2024-01-15T09:30:00.000Z")";
  EXPECT_NE(r.body.find("\"successes\":[" + item + "}]"), std::string::npos) << r.body;
  EXPECT_NE(again.body.find("\"successes\":[" + item + ",\"message\":\"already stored\"}]"), std::string::npos) << again.body;
  std::string changed = good;
  changed.insert(changed.size() - 1, ",\"description\":\"changed\"");
  std::string other = R"({"type":"malware","spec_version":"2.1","id":"malware--5687c175-5926-4090-8ce9-6d0162364996",)"
                      R"("created":"2024-01-15T09:30:00.000Z","modified":"2024-01-15T09:30:00.000Z","is_family":false})";
  auto conflict = Http("POST", Coll(inbox_) + "objects/", post, "{\"objects\":[" + other + "," + changed + "]}");
  EXPECT_NE(conflict.body.find("\"success_count\":1,\"successes\":[{\"id\":\"malware--5687c175-5926-4090-8ce9-6d0162364996\""),
            std::string::npos) << conflict.body;
  EXPECT_NE(conflict.body.find("\"failure_count\":1,\"failures\":[" + item +
                               ",\"message\":\"a different object with this id and modified is already stored; the stored one stands\"}]"),
            std::string::npos) << conflict.body;
  // Statuses survive a restart.
  Stop();
  Start(MakeConfig(dir_.path() + "/t.db"), false);
  EXPECT_EQ(Http("GET", base_ + "/ct/status/" + sid + "/", Analyst()).body, r.body);
}

TEST_F(TaxiiTest, ErrorStatuses) {
  HttpOptions post = Analyst();
  post.headers.push_back("Content-Type: " + kTaxii);
  std::string url = Coll(inbox_) + "objects/";
  EXPECT_EQ(Http("POST", url, Analyst(), "{\"objects\":[]}").status, 415) << "Content-Type is required";
  HttpOptions json_ct = Analyst();
  json_ct.headers.push_back("Content-Type: application/json");
  EXPECT_EQ(Http("POST", url, json_ct, "{}").status, 415);
  EXPECT_EQ(Http("POST", url, post, "not json").status, 400);
  EXPECT_EQ(Http("POST", url, post, "[1,2]").status, 422);
  EXPECT_EQ(Http("POST", url, post, R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[]})").status, 422);
  EXPECT_EQ(Http("POST", url, post, "{\"objects\":[]}").status, 400);
  EXPECT_EQ(Http("POST", url, post, std::string(5 << 20, ' ')).status, 413);
  HttpOptions html = Analyst();
  html.headers = {"Accept: text/html"};
  EXPECT_EQ(Http("GET", Coll(demo_) + "objects/", html).status, 406);
  HttpOptions any = Analyst();
  any.headers = {"Accept: */*"};
  EXPECT_EQ(Http("GET", Coll(demo_) + "objects/", any).status, 200);
  auto put = Http("PUT", Coll(demo_) + "objects/", Analyst(), "x");
  EXPECT_EQ(put.status, 405);
  EXPECT_EQ(put.headers["allow"], "GET, POST");
  EXPECT_EQ(Http("POST", Coll(demo_) + "objects/", post, "{\"objects\":[]}").status, 403) << "read-only collection";
  EXPECT_EQ(Http("GET", Coll(demo_) + "objects/", {std::string("nobody:") + kPassword, "", {}, ""}).status, 404);
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/" + demo_ + "/nothing/", Analyst()).status, 404);
  EXPECT_EQ(Http("GET", base_ + "/ct/status/nope/", Analyst()).status, 404);
  auto err = Http("GET", base_ + "/ct/status/nope/", Analyst());
  EXPECT_NE(err.body.find("\"title\":"), std::string::npos);
  EXPECT_NE(err.body.find("\"http_status\":\"404\""), std::string::npos);
}

TEST_F(TaxiiTest, EveryReadRouteGoesThroughTheReleaser) {
  std::string campaign_url;
  {
    auto r = Http("GET", Coll(demo_) + "objects/?match[type]=campaign", Analyst());
    simdjson::dom::parser p;
    std::string_view id;
    ASSERT_FALSE(Parse(p, r.body)["objects"].at(0)["id"].get(id));
    campaign_url = Coll(demo_) + "objects/" + std::string(id) + "/";
  }
  for (const std::string& url : {Coll(demo_) + "objects/", Coll(demo_) + "manifest/", campaign_url, campaign_url + "versions/"}) {
    uint64_t before = releaser_.released_calls();
    auto r = Http("GET", url, Analyst());
    EXPECT_EQ(r.status, 200) << url;
    EXPECT_EQ(releaser_.released_calls(), before + 1) << url << " bypassed the Releaser";
  }
  // Asked again, a response may come from the response cache: the Releaser's decision for the
  // same recipient, query and database state (any change to that state is a miss; tests
  // RepeatedReadsAreServedFreshAndEachIsAudited, PartnersReceiveWhatTheSharingRulesAllow).
  // Nothing else is served: a route never seen before always reaches the Releaser.
}

TEST_F(TaxiiTest, MalformedHttpGets4xxAndTheServerStaysHealthy) {
  int port = server_->port();
  auto status_of = [](const std::string& resp) { return resp.size() > 12 ? resp.substr(9, 3) : resp; };
  EXPECT_EQ(status_of(test::RawExchange(port, "GARBAGE\r\n\r\n")), "400");
  EXPECT_EQ(status_of(test::RawExchange(port, "GET /taxii2/ HTTP/9.9\r\n\r\n")), "400");
  EXPECT_EQ(status_of(test::RawExchange(port, "GET /taxii2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n")), "431");
  std::string many = "GET /taxii2/ HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 2000; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(status_of(test::RawExchange(port, many + "\r\n")), "431");
  EXPECT_EQ(status_of(test::RawExchange(port, "POST /ct/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n")), "400");
  EXPECT_EQ(status_of(test::RawExchange(port, "POST /ct/ HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc")), "413");
  // Truncated body: the client stops sending; the request deadline answers 408.
  EXPECT_EQ(status_of(test::RawExchange(port, "POST /ct/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc", 4000)), "408");
  // Slowloris: headers that never end.
  EXPECT_EQ(status_of(test::RawExchange(port, "GET /taxii2/ HTTP/1.1\r\nHost: x\r\n", 4000)), "408");
  // Percent-encoding garbage in the path.
  EXPECT_EQ(Http("GET", base_ + "/ct/%zz/", Analyst()).status, 400);
  EXPECT_EQ(Http("GET", base_ + "/taxii2/").status, 200) << "the server must still serve";
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// The request timeout (1.5 s here) bounds each request of a keep-alive connection, each
// response's write, and an idle connection's wait; not the connection's life.
TEST_F(TaxiiTest, EachRequestOfAConnectionHasItsOwnDeadline) {
  test::RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  const std::string get = "GET /taxii2/ HTTP/1.1\r\nHost: x\r\n\r\n";
  // Three requests 0.9 s apart: 1.8 s in all, longer than one deadline, each within its own.
  for (int i = 0; i < 3; ++i) {
    if (i) std::this_thread::sleep_for(std::chrono::milliseconds(900));
    ASSERT_TRUE(c.Send(get));
    std::string r = c.ReadResponse(5000);
    ASSERT_EQ(r.substr(0, 12), "HTTP/1.1 200") << "request " << i << ": " << r;
  }
  // A request arriving in parts, all within its deadline, is answered.
  ASSERT_TRUE(c.Send("GET /taxii2/ HTTP/1.1\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  ASSERT_TRUE(c.Send("Host: x\r\n\r\n"));
  EXPECT_EQ(c.ReadResponse(5000).substr(0, 12), "HTTP/1.1 200");
  // Then idle: the server closes the connection after the deadline, without a 408 (no
  // request was started), long before the 10 s the client waits.
  std::string rest;
  EXPECT_TRUE(c.ReadToEnd(&rest, 10000)) << "the idle connection was not closed";
  EXPECT_EQ(rest, "");
  // A request started and not finished gets 408, on a connection that served one before.
  test::RawConnection d(server_->port());
  ASSERT_TRUE(d.Send(get));
  EXPECT_EQ(d.ReadResponse(5000).substr(0, 12), "HTTP/1.1 200");
  ASSERT_TRUE(d.Send("GET /taxii2/ HTTP/1.1\r\nHost: x\r\n"));
  std::string late;
  EXPECT_TRUE(d.ReadToEnd(&late, 10000));
  EXPECT_EQ(late.substr(0, 12), "HTTP/1.1 408") << late;
}

// A client that sends requests and stops reading the responses is cut off once a write has
// waited for it longer than the request timeout; the server stays healthy.
TEST_F(TaxiiTest, AClientThatStopsReadingIsCutOff) {
  test::RawConnection c(server_->port(), 4096);
  ASSERT_TRUE(c.connected());
  // 300 pipelined requests for every demo object: several MB of responses, more than the
  // sockets' buffers hold.
  std::string req = "GET /ct/collections/" + demo_ + "/objects/?limit=1000 HTTP/1.1\r\nHost: x\r\nAccept: " + kTaxii +
                    "\r\nAuthorization: Bearer " + token_ + "\r\n\r\n";
  std::string all;
  for (int i = 0; i < 300; ++i) all += req;
  ASSERT_TRUE(c.Send(all));
  std::this_thread::sleep_for(std::chrono::milliseconds(4000));  // the write stalls past its deadline
  std::string got;
  EXPECT_TRUE(c.ReadToEnd(&got, 10000)) << "the stalled connection was not closed";
  size_t answered = Count(got, "HTTP/1.1 200");
  EXPECT_GT(answered, 0u);
  EXPECT_LT(answered, 300u) << "every response was written to a client that did not read";
  EXPECT_EQ(Http("GET", base_ + "/taxii2/").status, 200) << "the server must still serve";
}

TEST_F(TaxiiTest, MetricsInPrometheusFormat) {
  EXPECT_EQ(Http("GET", base_ + "/taxii2/").status, 200);
  EXPECT_EQ(Http("GET", Coll(demo_) + "objects/?limit=2", Analyst()).status, 200);
  EXPECT_EQ(Http("GET", Coll(demo_) + "objects/?limit=0", Analyst()).status, 400);
  test::RawExchange(server_->port(), "GET /taxii2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n");
  EXPECT_EQ(Http("GET", base_ + "/metrics").status, 401) << "only discovery may be public";
  std::vector<std::string> lines = {
      "tearline_http_requests_total{route=\"/taxii2/\",status=\"200\"} 1",
      "tearline_http_requests_total{route=\"/{api_root}/collections/{id}/objects/\",status=\"200\"} 1",
      "tearline_http_requests_total{route=\"/{api_root}/collections/{id}/objects/\",status=\"400\"} 1",
      "tearline_http_requests_total{route=\"other\",status=\"431\"} 1",
      "# TYPE tearline_http_request_duration_seconds histogram",
      "tearline_http_request_duration_seconds_count{route=\"/taxii2/\"}",
      "tearline_objects_stored{collection=\"demo\"} " + std::to_string(sample_count_),
      "tearline_store_size_bytes "};
  // A request is recorded just after its response is written: give the server a moment.
  HttpResult m;
  for (int attempt = 0; attempt < 30; ++attempt) {
    m = Http("GET", base_ + "/metrics", {std::string("analyst:") + kPassword, "", {"Accept: application/openmetrics-text"}, ""});
    bool all = std::all_of(lines.begin(), lines.end(), [&](const std::string& l) { return m.body.find(l) != std::string::npos; });
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_EQ(m.headers["content-type"], "text/plain; version=0.0.4");
  for (const auto& line : lines) EXPECT_NE(m.body.find(line), std::string::npos) << line << "\n" << m.body;
  EXPECT_EQ(taxii::RouteOf("/ct/collections/abc/objects/x/versions/?limit=1"), "/{api_root}/collections/{id}/objects/{object_id}/versions/");
  EXPECT_EQ(taxii::RouteOf("/a/b/c/d/e/f/g"), "other");
}

TEST_F(TaxiiTest, ObservedDataPostedToAWatchedCollectionIsMatched) {
  Stop();
  auto cfg = MakeConfig(dir_.path() + "/t.db");
  cfg.match_watch = "inbox";
  cfg.match_indicators = "demo";
  cfg.match_sightings = "sightings";
  cfg.match_identity = "identity--bcf37703-2aee-42eb-aacc-ad1622f17f99";
  Start(cfg, false);
  HttpOptions post = Analyst();
  post.headers.push_back("Content-Type: " + kTaxii);
  std::string od =
      R"({"type":"observed-data","spec_version":"2.1","id":"observed-data--3b1e7f43-7c9e-4a56-9bd8-7dfde5b2c501",)"
      R"("created":"2026-03-01T21:20:00.000Z","modified":"2026-03-01T21:20:00.000Z","first_observed":"2026-03-01T21:14:00Z",)"
      R"("last_observed":"2026-03-01T21:20:00Z","number_observed":2,"object_refs":["ipv4-addr--aa0b5a1e-5e3c-5d2e-9b1e-5c0f6c2b7a11"]})";
  std::string ip = R"({"type":"ipv4-addr","spec_version":"2.1","id":"ipv4-addr--aa0b5a1e-5e3c-5d2e-9b1e-5c0f6c2b7a11","value":"203.0.113.45"})";
  auto r = Http("POST", Coll(inbox_) + "objects/", post, "{\"objects\":[" + od + "," + ip + "]}");
  ASSERT_EQ(r.status, 202) << r.body;
  store::Query q;
  q.collection = "sightings";
  auto page = store_->Query(q);
  ASSERT_TRUE(page.ok()) << page.status().message();
  ASSERT_EQ(page->objects.size(), 1u);
  const std::string& s = page->objects[0].json;
  EXPECT_NE(s.find("\"observed_data_refs\":[\"observed-data--3b1e7f43-7c9e-4a56-9bd8-7dfde5b2c501\"]"), std::string::npos) << s;
  EXPECT_NE(s.find("\"count\":2"), std::string::npos) << s;
  EXPECT_NE(s.find("\"where_sighted_refs\":[\"identity--bcf37703-2aee-42eb-aacc-ad1622f17f99\"]"), std::string::npos);
  // Objects posted elsewhere are not matched.
  auto none = Http("POST", Coll(demo_) + "objects/", post, "{\"objects\":[" + od + "]}");
  EXPECT_EQ(none.status, 403);
  // A new indicator is picked up without a restart.
  std::string ind = R"({"type":"indicator","spec_version":"2.1","id":"indicator--0f4b8a3c-1d2e-4f5a-8b6c-7d8e9f0a1b2c",)"
                    R"("created":"2026-03-03T00:00:00.000Z","modified":"2026-03-03T00:00:00.000Z","pattern":"[ipv4-addr:value = '192.0.2.9']",)"
                    R"("pattern_type":"stix","valid_from":"2026-03-03T00:00:00Z"})";
  stix::Validator v;
  ASSERT_TRUE(store_->Put("demo", v.Validate(ind).objects).ok());
  std::string od2 = od, ip2 = ip;
  od2.replace(od2.find("3b1e7f43"), 8, "4c2f8054");
  ip2.replace(ip2.find("203.0.113.45"), 12, "192.0.2.9");
  ASSERT_EQ(Http("POST", Coll(inbox_) + "objects/", post, "{\"objects\":[" + od2 + "," + ip2 + "]}").status, 202);
  page = store_->Query(q);
  EXPECT_EQ(page->objects.size(), 2u);
}

TEST_F(TaxiiTest, PartnersReceiveWhatTheSharingRulesAllow) {
  const std::string south = "identity--00000000-0000-4000-8000-000000000001";
  ASSERT_TRUE(store_->PutPrincipal({"south", taxii::HashSecret(kPassword), {"demo"}, {}}).ok());
  ASSERT_TRUE(store_->PutPartner({south, "Southland", "open", {"south"}, {"ct-europe"}}).ok());
  HttpOptions who{std::string("south:") + kPassword, "", {"Accept: " + kTaxii}, ""};
  // Each read is made four times, the last from the response cache (a first release changes the
  // release history, hence the state, once), so every sharing change below meets a warm cache.
  auto get = [&] {
    int64_t hits = CacheHits(Http("GET", base_ + "/metrics", Analyst()).body);
    std::string first = Http("GET", Coll(demo_) + "objects/?limit=1000", who).body;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(Http("GET", Coll(demo_) + "objects/?limit=1000", who).body, first);
    EXPECT_GT(CacheHits(Http("GET", base_ + "/metrics", Analyst()).body), hits) << "no read came from the cache";
    return first;
  };
  // Not shared with anyone: TLP:CLEAR only (the node's identity and the city are WHITE).
  std::string body = get();
  EXPECT_NE(body.find("\"type\":\"location\""), std::string::npos) << body;
  EXPECT_EQ(body.find("\"type\":\"attack-pattern\""), std::string::npos);
  EXPECT_EQ(body.find("\"type\":\"campaign\""), std::string::npos);
  {  // the Releaser keeps the partner's decisions on the collection between requests (/metrics)
    const std::string m = Http("GET", base_ + "/metrics", Analyst()).body;
    EXPECT_NE(m.find("\ntearline_releaser_cached_collections 1\n"), std::string::npos) << m;
    EXPECT_NE(m.find("\ntearline_releaser_caches_emptied_total 0\n"), std::string::npos) << "nothing changed in the collection";
    auto at = m.find("\ntearline_releaser_cached_decisions ");
    ASSERT_NE(at, std::string::npos);
    EXPECT_GT(std::stoll(m.substr(at + 36)), 0);
  }
  // Shared with the trust group: TLP:GREEN too.
  ASSERT_TRUE(store_->PutAudience({"demo", {}, {"ct-europe"}, "amber"}).ok());
  body = get();
  EXPECT_NE(body.find("\"type\":\"attack-pattern\""), std::string::npos);
  EXPECT_NE(body.find("\"type\":\"report\""), std::string::npos);
  EXPECT_EQ(body.find("\"type\":\"campaign\""), std::string::npos) << "TLP:AMBER needs the organisation named";
  // Shared with the partner by name: TLP:AMBER (and unmarked objects, default AMBER); never TLP:RED.
  ASSERT_TRUE(store_->PutAudience({"demo", {south}, {"ct-europe"}, "amber"}).ok());
  body = get();
  EXPECT_NE(body.find("\"type\":\"campaign\""), std::string::npos);
  EXPECT_NE(body.find("\"type\":\"ipv4-addr\""), std::string::npos);
  EXPECT_EQ(body.find("\"type\":\"note\""), std::string::npos) << "TLP:RED is for named individuals";
  EXPECT_EQ(body.find("Relay server used by Cell K-17 handlers"), std::string::npos);
  // A channel change applies to the next request.
  auto channel = [&](const char* state) {
    auto p = store_->GetPartner(south);
    ASSERT_TRUE(p.ok());
    p->channel = state;
    ASSERT_TRUE(store_->PutPartner(*p).ok());
  };
  channel("restricted");
  body = get();
  EXPECT_EQ(body.find("\"type\":\"campaign\""), std::string::npos);
  EXPECT_NE(body.find("\"type\":\"report\""), std::string::npos);
  channel("suspended");
  body = get();
  EXPECT_EQ(body.find("\"type\":\"report\""), std::string::npos);
  EXPECT_NE(body.find("\"type\":\"location\""), std::string::npos);
  channel("closed");
  EXPECT_EQ(get(), "{\"more\":false}");
  // Every release was audited, naming the partner; the chain verifies.
  auto log = store_->ReadAudit(0, 100000);
  ASSERT_TRUE(log.ok());
  ASSERT_FALSE(log->empty());
  EXPECT_EQ(log->back().recipient, "south@" + south);
  EXPECT_TRUE(audit::Verify(*log).ok);
  // The same objects for a local analyst are unaffected.
  EXPECT_NE(Http("GET", Coll(demo_) + "objects/?limit=1000", Analyst()).body.find("\"type\":\"note\""), std::string::npos);
}

// A partner's repeated read served from the response cache is audited as a repeat of the full
// entry, in the audit chain alone: the repeat writes nothing to the objects' file (no release
// history, no intents), so the state of the store (and every cached response) stays.
TEST_F(TaxiiTest, RepeatsToAPartnerLeaveTheObjectsFileAlone) {
  const std::string south = "identity--00000000-0000-4000-8000-000000000001";
  ASSERT_TRUE(store_->PutPrincipal({"south", taxii::HashSecret(kPassword), {"demo"}, {}}).ok());
  ASSERT_TRUE(store_->PutPartner({south, "Southland", "open", {"south"}, {"ct-europe"}}).ok());
  ASSERT_TRUE(store_->PutAudience({"demo", {south}, {"ct-europe"}, "amber"}).ok());
  HttpOptions who{std::string("south:") + kPassword, "", {"Accept: " + kTaxii}, ""};
  const std::string page = Coll(demo_) + "objects/?limit=1000";
  std::string first = Http("GET", page, who).body;
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Http("GET", page, who).body, first);  // first releases, then cached
  const std::string state = store_->StateToken();
  ASSERT_FALSE(state.empty());
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Http("GET", page, who).body, first);
  EXPECT_EQ(store_->StateToken(), state) << "a repeat wrote the objects' file";
  auto log = store_->ReadAudit(0, 100000);
  ASSERT_TRUE(log.ok());
  ASSERT_GE(log->size(), 3u);
  for (size_t k = log->size() - 3; k < log->size(); ++k) {
    EXPECT_GT(audit::SameAsSeq((*log)[k].object_id), 0) << (*log)[k].object_id;
    EXPECT_EQ((*log)[k].recipient, "south@" + south);
  }
  EXPECT_TRUE(audit::Verify(*log).ok);
}

// Permissions and partners are read once per state of the store (Service::PrincipalOf,
// PartnersOf), not per request: a change must still apply to the very next request, whether
// it revokes a read, grants one, or makes the principal act for a partner.
TEST_F(TaxiiTest, PermissionChangesApplyToTheNextRequest) {
  const std::string objects = Coll(demo_) + "objects/?limit=1000";
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Http("GET", objects, Reader()).status, 200);
  ASSERT_TRUE(store_->PutPrincipal({"reader", "", {}, {}}).ok());
  EXPECT_EQ(Http("GET", objects, Reader()).status, 404) << "a revoked read must not be served from the memo";
  ASSERT_TRUE(store_->PutPrincipal({"reader", "", {"demo"}, {}}).ok());
  std::string local = Http("GET", objects, Reader()).body;
  EXPECT_NE(local.find("\"type\":\"note\""), std::string::npos);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(Http("GET", objects, Reader()).body, local);
  // The reader now acts for a partner whose channel is closed: nothing is released to it.
  const std::string west = "identity--00000000-0000-4000-8000-00000000000e";
  ASSERT_TRUE(store_->PutPartner({west, "Westland", "closed", {"reader"}, {}}).ok());
  EXPECT_EQ(Http("GET", objects, Reader()).body, "{\"more\":false}");
  ASSERT_TRUE(store_->RemovePartner(west).ok());
  EXPECT_EQ(Http("GET", objects, Reader()).body, local);
}

// Issue #4 "every path, the same decision": a partner that must not see an object finds no
// trace of it on any route (ids, references, counts, page boundaries, headers, error texts),
// and receives the tear-line variant of a sanitized object under the variant's own id.
TEST_F(TaxiiTest, WithheldObjectsLeaveNoTraceOnAnyRoute) {
  const std::string south = "identity--00000000-0000-4000-8000-000000000001";
  const std::string sanitized = "indicator--dc4c1e5c-08d9-4307-b578-4e2876fa7b17";
  ASSERT_TRUE(store_->PutPrincipal({"south", taxii::HashSecret(kPassword), {"demo"}, {}}).ok());
  ASSERT_TRUE(store_->PutPartner({south, "Southland", "open", {"south"}, {"ct-europe"}, 0}).ok());
  ASSERT_TRUE(store_->PutAudience({"demo", {}, {"ct-europe"}, "amber"}).ok());
  HttpOptions who{std::string("south:") + kPassword, "", {"Accept: " + kTaxii}, ""};
  auto node = store_->NodeIdentity();
  ASSERT_TRUE(node.ok());
  const std::string variant_id = policy::VariantId(sanitized, *node);

  // What the partner receives, following `next` with a page size of 1000.
  int pages = 0;
  auto received = AllPages(Coll(demo_) + "objects/?limit=1000", who, &pages);
  std::set<std::string> got_ids;
  for (const auto& x : received) got_ids.insert(x.substr(0, x.find('@')));
  ASSERT_GT(got_ids.size(), 5u);
  ASSERT_LT(got_ids.size(), sample_count_ - 5) << "the scenario withholds AMBER and RED objects";
  EXPECT_TRUE(got_ids.count(variant_id)) << "the GREEN tear-line variant of an AMBER indicator";
  // Every stored id that the partner did not receive is withheld from it.
  std::set<std::string> withheld;
  {
    store::Query q;
    q.collection = "demo";
    q.limit = 100000;
    auto all = store_->Manifest(q);
    ASSERT_TRUE(all.ok());
    for (const auto& o : all->objects) {
      if (!got_ids.count(o.id)) withheld.insert(o.id);
    }
  }
  ASSERT_TRUE(withheld.count(sanitized)) << "the original of a variant is withheld";
  ASSERT_TRUE(withheld.count("campaign--961b5a42-df3c-44e7-9249-ee3d41e70835"));
  auto no_trace = [&](const std::string& body, const std::string& where) {
    for (const auto& id : withheld) EXPECT_EQ(body.find(id), std::string::npos) << where << " names " << id;
    EXPECT_EQ(body.find("LANTERN-3"), std::string::npos) << where << ": a sensitive property";
    EXPECT_EQ(body.find("NL-CT-2026-0147"), std::string::npos) << where << ": an external reference of the original";
  };
  // Objects: every page size gives the same objects, and every page but the last is full.
  for (int limit : {1, 2, 3, 7}) {
    std::string next;
    std::set<std::string> seen;
    while (true) {
      auto r = Http("GET", Coll(demo_) + "objects/?limit=" + std::to_string(limit) + (next.empty() ? "" : "&next=" + next), who);
      ASSERT_EQ(r.status, 200) << r.body;
      no_trace(r.body + r.headers["x-taxii-date-added-first"], "objects page");
      simdjson::dom::parser p;
      auto env = Parse(p, r.body);
      simdjson::dom::array objs;
      size_t n = env["objects"].get(objs) ? 0 : objs.size();
      for (size_t k = 0; k < n; ++k) seen.insert(std::string(objs.at(k)["id"].get_string().value()));
      bool more = false;
      ASSERT_FALSE(env["more"].get(more));
      if (!more) {
        EXPECT_GE(n, 1u) << "no empty last page that betrays withheld objects after the last one";
        break;
      }
      EXPECT_EQ(n, static_cast<size_t>(limit)) << "a short page with more=true reveals withheld objects";
      next = std::string(env["next"].get_string().value());
    }
    EXPECT_EQ(seen, got_ids) << "limit " << limit;
  }
  // Manifest: the same ids, nothing else; the headers come from released objects.
  auto manifest = Http("GET", Coll(demo_) + "manifest/?limit=1000", who);
  ASSERT_EQ(manifest.status, 200);
  no_trace(manifest.body, "manifest");
  for (const auto& id : got_ids) EXPECT_NE(manifest.body.find(id), std::string::npos) << id;
  // One object, versions, match[id]: a withheld id is exactly "not found".
  const std::string absent = "indicator--00000000-0000-4000-8000-00000000beef";
  auto not_found = Http("GET", Coll(demo_) + "objects/" + absent + "/", who);
  auto not_found_versions = Http("GET", Coll(demo_) + "objects/" + absent + "/versions/", who);
  auto empty_match = Http("GET", Coll(demo_) + "objects/?match[id]=" + absent, who);
  ASSERT_EQ(not_found.status, 404);
  for (const auto& id : withheld) {
    auto one = Http("GET", Coll(demo_) + "objects/" + id + "/", who);
    EXPECT_EQ(one.status, 404) << id;
    EXPECT_EQ(one.body, not_found.body) << id;
    EXPECT_FALSE(one.headers.count("x-taxii-date-added-first")) << id;
    auto v = Http("GET", Coll(demo_) + "objects/" + id + "/versions/", who);
    EXPECT_EQ(v.status, not_found_versions.status) << id;
    EXPECT_EQ(v.body, not_found_versions.body) << id;
    auto m = Http("GET", Coll(demo_) + "objects/?match[id]=" + id, who);
    EXPECT_EQ(m.body, empty_match.body) << id;
    auto mm = Http("GET", Coll(demo_) + "manifest/?match[id]=" + id, who);
    EXPECT_EQ(mm.body, empty_match.body) << id;
  }
  // The variant is reachable by its own id, on every route.
  auto v = Http("GET", Coll(demo_) + "objects/" + variant_id + "/", who);
  ASSERT_EQ(v.status, 200) << v.body;
  EXPECT_NE(v.body.find("Site used to recruit for and collect payments"), std::string::npos) << v.body;
  EXPECT_NE(v.body.find("\"created_by_ref\":\"" + *node + "\""), std::string::npos) << v.body;
  no_trace(v.body, "variant");
  EXPECT_EQ(Http("GET", Coll(demo_) + "objects/" + variant_id + "/versions/", who).status, 200);
  EXPECT_NE(Http("GET", Coll(demo_) + "manifest/?match[id]=" + variant_id, who).body.find(variant_id), std::string::npos);
  // The variant is valid STIX, and so is everything else the partner received.
  {
    std::string body = Http("GET", Coll(demo_) + "objects/?limit=1000", who).body;
    stix::Validator val;
    auto r = val.Validate(body);
    EXPECT_EQ(r.objects.size(), got_ids.size()) << (r.diagnostics.empty() ? "" : r.diagnostics[0].ToString());
  }
  // The link between original and variant stays in the audit log only.
  auto log = store_->ReadAudit(0, 100000);
  ASSERT_TRUE(log.ok());
  bool linked = false;
  for (const auto& e : *log) linked |= e.object_id.find(sanitized + "@2026-02-20T08:00:00.000Z as " + variant_id) != std::string::npos;
  EXPECT_TRUE(linked);
  // Raising the partner's tier does not hand it the original: it holds the variant.
  ASSERT_TRUE(store_->PutPartner({south, "Southland", "open", {"south"}, {"ct-europe"}, 5}).ok());
  ASSERT_TRUE(store_->PutAudience({"demo", {south}, {"ct-europe"}, "amber"}).ok());
  EXPECT_EQ(Http("GET", Coll(demo_) + "objects/" + sanitized + "/", who).status, 404);
  EXPECT_EQ(Http("GET", Coll(demo_) + "objects/" + variant_id + "/", who).status, 200);
  // A new partner of that tier, named in the audience, receives the original and never the variant.
  const std::string east = "identity--00000000-0000-4000-8000-000000000002";
  ASSERT_TRUE(store_->PutPrincipal({"east", taxii::HashSecret(kPassword), {"demo"}, {}}).ok());
  ASSERT_TRUE(store_->PutPartner({east, "Eastland", "open", {"east"}, {}, 2}).ok());
  ASSERT_TRUE(store_->PutAudience({"demo", {south, east}, {"ct-europe"}, "amber"}).ok());
  HttpOptions east_who{std::string("east:") + kPassword, "", {"Accept: " + kTaxii}, ""};
  auto orig = Http("GET", Coll(demo_) + "objects/" + sanitized + "/", east_who);
  EXPECT_EQ(orig.status, 200);
  EXPECT_NE(orig.body.find("LANTERN-3"), std::string::npos);
  EXPECT_EQ(Http("GET", Coll(demo_) + "objects/" + variant_id + "/", east_who).status, 404);
}

// TLP:RED reaches only the individuals named in the object's distribution: the principal
// who is that person, not a colleague acting for the same partner, and it is never relayed.
TEST_F(TaxiiTest, TlpRedReachesOnlyTheNamedPerson) {
  const std::string south = "identity--00000000-0000-4000-8000-000000000001";
  const std::string officer = "identity--00000000-0000-4000-8000-0000000000a1";
  const std::string red = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";
  const std::string ext = "extension-definition--5d8a3c1e-7b2f-4c6a-9e41-0f3b8d27a6c5";
  std::string obj = R"({"type":"indicator","spec_version":"2.1","id":"indicator--0e0e0e0e-0000-4000-8000-0000000000e1",)"
                    R"("created":"2026-03-01T00:00:00.000Z","modified":"2026-03-01T00:00:00.000Z","name":"For the liaison officer only",)"
                    R"("pattern":"[ipv4-addr:value = '198.51.100.9']","pattern_type":"stix","valid_from":"2026-03-01T00:00:00Z",)"
                    R"("object_marking_refs":[")" + red + R"("],"extensions":{")" + ext +
                    R"(":{"extension_type":"property-extension","distribution":[")" + officer + R"("]}}})";
  stix::Validator v;
  auto r = v.Validate(obj);
  ASSERT_TRUE(r.ok()) << (r.diagnostics.empty() ? "" : r.diagnostics[0].ToString());
  ASSERT_TRUE(store_->Put("demo", r.objects).ok());
  ASSERT_TRUE(store_->PutPrincipal({"liaison", taxii::HashSecret(kPassword), {"demo"}, {}, officer}).ok());
  ASSERT_TRUE(store_->PutPrincipal({"colleague", taxii::HashSecret(kPassword), {"demo"}, {}, ""}).ok());
  ASSERT_TRUE(store_->PutPartner({south, "Southland", "open", {"liaison", "colleague"}, {}, 0}).ok());
  ASSERT_TRUE(store_->PutAudience({"demo", {south}, {}, "amber"}).ok());
  auto get = [&](const char* user) {
    HttpOptions who{std::string(user) + ":" + kPassword, "", {"Accept: " + kTaxii}, ""};
    return Http("GET", Coll(demo_) + "objects/indicator--0e0e0e0e-0000-4000-8000-0000000000e1/", who);
  };
  EXPECT_EQ(get("liaison").status, 200);
  EXPECT_EQ(get("colleague").status, 404);
  // Once relayed (it came from another partner), not even the named person gets it.
  auto again = v.Validate(obj);
  ASSERT_TRUE(store_->EnsureCollection("inbox").ok());
  ASSERT_TRUE(store_->Put("inbox", again.objects, "identity--00000000-0000-4000-8000-000000000002").ok());
  ASSERT_TRUE(store_->PutPrincipal({"liaison", taxii::HashSecret(kPassword), {"demo", "inbox"}, {}, officer}).ok());
  ASSERT_TRUE(store_->PutAudience({"inbox", {south}, {}, "amber"}).ok());
  HttpOptions who{std::string("liaison:") + kPassword, "", {"Accept: " + kTaxii}, ""};
  EXPECT_EQ(Http("GET", Coll(inbox_) + "objects/indicator--0e0e0e0e-0000-4000-8000-0000000000e1/", who).status, 404);
}

TEST_F(TaxiiTest, AuditLogVerifiesAndShowsTampering) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Http("GET", Coll(demo_) + "objects/?limit=5", Analyst()).status, 200);
  std::string out;
  std::string db = config_.database;
  ASSERT_EQ(test::RunCommand(std::string(TEARLINE_BINARY) + " audit verify --db " + db, &out), 0) << out;
  EXPECT_NE(out.find("3 entries, chain intact"), std::string::npos) << out;
  ASSERT_EQ(test::RunCommand(std::string(TEARLINE_BINARY) + " audit list --db " + db + " --limit 2", &out), 0);
  EXPECT_NE(out.find("5 objects"), std::string::npos) << out;
  EXPECT_NE(out.find("analyst"), std::string::npos);
  auto chain = store_->ReadAudit(0, 100);
  ASSERT_TRUE(chain.ok());
  ASSERT_GE(chain->size(), 3u);
  (*chain)[1].recipient = "mallory";
  ASSERT_TRUE(store::WriteAuditChainFile(store::AuditChainPath(db), *chain).ok());
  EXPECT_EQ(test::RunCommand(std::string(TEARLINE_BINARY) + " audit verify --db " + db, &out), 1);
  EXPECT_NE(out.find("entry 2: content does not match its hash"), std::string::npos) << out;
}

TEST(TaxiiConfig, MatchingSection) {
  auto ok = taxii::ParseConfig("[[api_roots]]\npath = \"a\"\n[matching]\nwatch = \"inbox\"\nindicators = \"intel\"\n");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->match_sightings, "sightings");
  auto bad = taxii::ParseConfig("[[api_roots]]\npath = \"a\"\n[matching]\nwatch = \"inbox\"\n");
  EXPECT_FALSE(bad.ok());
  auto bad_id = taxii::ParseConfig("[[api_roots]]\npath = \"a\"\n[matching]\nwatch = \"i\"\nindicators = \"j\"\nidentity = \"me\"\n");
  EXPECT_FALSE(bad_id.ok());
}

TEST(TaxiiConfig, ResponseCacheSize) {
  auto dflt = taxii::ParseConfig("[[api_roots]]\npath = \"a\"\n");
  ASSERT_TRUE(dflt.ok());
  EXPECT_EQ(dflt->response_cache_mb, 64u);
  auto off = taxii::ParseConfig("[[api_roots]]\npath = \"a\"\n[limits]\nresponse_cache_mb = 0\n");
  ASSERT_TRUE(off.ok()) << off.status().message();
  EXPECT_EQ(off->response_cache_mb, 0u);
  auto bad = taxii::ParseConfig("[[api_roots]]\npath = \"a\"\n[limits]\nresponse_cache_mb = -1\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("limits.response_cache_mb"), std::string::npos) << bad.status().message();
  // The row cache's default follows the memory: an eighth of it, at least 256 MiB.
  const uint64_t phys_mb = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE) >> 20;
  EXPECT_EQ(dflt->object_cache_mb, taxii::DefaultObjectCacheMb());
  EXPECT_GE(dflt->object_cache_mb, 256u);
  EXPECT_LE(dflt->object_cache_mb, std::max<uint64_t>(256, phys_mb / 8));
  auto rows = taxii::ParseConfig("[[api_roots]]\npath = \"a\"\n[limits]\nobject_cache_mb = 0\n");
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  EXPECT_EQ(rows->object_cache_mb, 0u);
  auto huge = taxii::ParseConfig("[[api_roots]]\npath = \"a\"\n[limits]\nobject_cache_mb = \"lots\"\n");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("limits.object_cache_mb"), std::string::npos) << huge.status().message();
}

// /metrics says how the store read pages: through its page index (rows from its row cache)
// or SQL (match[id] here).
TEST_F(TaxiiTest, MetricsShowHowTheStoreReadPages) {
  auto value = [](const std::string& metrics, const std::string& name) -> int64_t {
    auto at = metrics.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::stoll(metrics.substr(at + name.size() + 2));
  };
  ASSERT_EQ(Http("GET", Coll(demo_) + "objects/?limit=3", Analyst()).status, 200);
  ASSERT_EQ(Http("GET", Coll(demo_) + "objects/?limit=4", Analyst()).status, 200);
  ASSERT_EQ(Http("GET", Coll(demo_) + "objects/?match%5Bid%5D=indicator--nothing", Analyst()).status, 200);
  std::string m = Http("GET", base_ + "/metrics", Analyst()).body;
  EXPECT_GE(value(m, "tearline_store_pages_total{source=\"index\"}"), 2) << m;
  EXPECT_GE(value(m, "tearline_store_pages_total{source=\"sql\"}"), 1) << m;
  EXPECT_GE(value(m, "tearline_store_page_index_builds_total"), 1) << m;
  EXPECT_GE(value(m, "tearline_store_row_cache_lookups_total{result=\"hit\"}"), 3) << "the second page reads the first's rows again";
  EXPECT_GT(value(m, "tearline_store_row_cache_bytes"), 0);
  EXPECT_EQ(value(m, "tearline_store_row_cache_budget_bytes"), int64_t{256} << 20) << "the store's own default here";
  // The write path's counters are exposed too (the demo data was stored before the server ran).
  EXPECT_GE(value(m, "tearline_store_wal_syncs_total"), 0) << m;
  EXPECT_GE(value(m, "tearline_store_id_index_merges_total"), 0) << m;
  EXPECT_GE(value(m, "tearline_store_id_index_rows{level=\"new\"}"), 0) << m;
}

// A page that has more after it costs one store page (the store is asked for one object more
// than the page), not a second store page to learn that there is more; paging through the
// collection by `next` returns every object once.
TEST_F(TaxiiTest, APageIsOneStoreRead) {
  auto pages = [&] {
    std::string m = Http("GET", base_ + "/metrics", Analyst()).body;
    int64_t n = 0;
    for (const char* source : {"index", "sql"}) {
      std::string name = std::string("\ntearline_store_pages_total{source=\"") + source + "\"} ";
      auto at = m.find(name);
      if (at != std::string::npos) n += std::stoll(m.substr(at + name.size()));
    }
    return n;
  };
  const int64_t before = pages();
  int requests = 0;
  auto seen = AllPages(Coll(demo_) + "objects/?limit=2", Analyst(), &requests);
  EXPECT_GT(requests, 2);
  EXPECT_EQ(pages() - before, requests) << "store pages read for " << requests << " TAXII pages";
  int one = 0;
  auto all = AllPages(Coll(demo_) + "objects/?limit=1000", Analyst(), &one);
  EXPECT_EQ(one, 1);
  std::sort(seen.begin(), seen.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(seen, all);
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
}

// With the response cache off, repeated reads are computed every time (no hit is counted).
TEST_F(TaxiiTest, ResponseCacheCanBeTurnedOff) {
  Stop();
  auto cfg = MakeConfig(dir_.path() + "/off.db");
  cfg.response_cache_mb = 0;
  Start(cfg);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(Http("GET", Coll(demo_) + "objects/?limit=5", Analyst()).status, 200);
  EXPECT_EQ(CacheHits(Http("GET", base_ + "/metrics", Analyst()).body), 0);
}

TEST_F(TaxiiTest, Tls) {
  Stop();
  std::string cert = dir_.path() + "/cert.pem", key = dir_.path() + "/key.pem", out;
  ASSERT_EQ(test::RunCommand("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + key +
                                 " -out " + cert + " -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1",
                             &out),
            0)
      << out;
  auto cfg = MakeConfig(dir_.path() + "/t.db");
  cfg.tls_cert = cert;
  cfg.tls_key = key;
  Start(cfg, false);
  HttpOptions o = Analyst();
  o.cacert = cert;
  auto r = Http("GET", base_ + "/ct/collections/", o);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(Http("GET", base_ + "/taxii2/", {"", "", {}, cert}).body.find("https://127.0.0.1"), std::string::npos);
  // Plain HTTP to the TLS port gets nothing useful and does not hurt the server.
  test::RawExchange(server_->port(), "GET /taxii2/ HTTP/1.1\r\nHost: x\r\n\r\n", 1000);
  EXPECT_EQ(Http("GET", base_ + "/ct/collections/", o).status, 200);
}

TEST_F(TaxiiTest, AttackEnterpriseOverHttpReadsBackExactlyOnce) {
  if (!std::filesystem::exists(test::DataDir())) GTEST_SKIP() << "shared data not found at " << test::DataDir();
  std::string bundle = test::Unxz(test::DataDir() + "/attack/enterprise-attack.json.xz");
  simdjson::dom::parser p;
  simdjson::dom::array objs;
  ASSERT_FALSE(Parse(p, bundle)["objects"].get(objs));
  HttpOptions post = Analyst();
  post.headers.push_back("Content-Type: " + kTaxii);
  std::set<std::string> expected;
  std::string batch;
  size_t in_batch = 0, total = 0;
  auto flush = [&] {
    auto r = Http("POST", Coll(inbox_) + "objects/", post, "{\"objects\":[" + batch + "]}");
    ASSERT_EQ(r.status, 202) << r.body.substr(0, 300);
    EXPECT_NE(r.body.find("\"failure_count\":0"), std::string::npos) << r.body.substr(0, 500);
    batch.clear();
    in_batch = 0;
  };
  // Marking definitions go first: objects referencing a marking nobody has seen are refused
  // (docs/validation.md), so a client sends the markings before what they mark.
  std::vector<simdjson::dom::element> ordered;
  for (auto o : objs) {
    std::string_view type;
    if (!o["type"].get(type) && type == "marking-definition") ordered.push_back(o);
  }
  for (auto o : objs) {
    std::string_view type;
    if (o["type"].get(type) || type != "marking-definition") ordered.push_back(o);
  }
  for (auto o : ordered) {
    std::string_view id, mod;
    ASSERT_FALSE(o["id"].get(id));
    if (o["modified"].get(mod)) mod = "";
    expected.insert(std::string(id) + "@" + std::string(mod));
    batch += (in_batch ? "," : "") + simdjson::minify(o);
    ++total;
    if (++in_batch == 400) flush();
  }
  if (in_batch) flush();
  int pages = 0;
  auto got = AllPages(Coll(inbox_) + "objects/?limit=1000&match[version]=all", Analyst(), &pages);
  std::set<std::string> unique(got.begin(), got.end());
  EXPECT_EQ(got.size(), unique.size()) << "an object came back twice";
  EXPECT_EQ(unique, expected);
  EXPECT_EQ(total, 24772u);
  EXPECT_EQ(pages, 25);
}

}  // namespace
}  // namespace tearline

namespace tearline {
namespace {

// Response::defer: a response waiting for its condition (the audit's durable commit) holds no
// thread. One server thread, eight requests all waiting at once; each is sent only when its
// completion runs, a failed completion becomes a 500 with the handler's description, and a
// completion may run on any thread.
TEST(HttpServer, DeferredResponsesHoldNoThread) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, std::function<void(bool)>>> waiting;
  net::ServerOptions opt;
  opt.port = 0;
  opt.threads = 1;
  opt.error_response = [](int s, std::string t, std::string d) { return taxii::Service::Error(s, t, d); };
  auto srv = net::Server::Start(opt, [&](const net::Request& req) {
    net::Response r;
    r.body = "released " + req.target;
    std::string target = req.target;
    r.defer = [&, target](std::function<void(net::Response::Finish)> done) {
      std::lock_guard lock(mu);
      waiting.emplace_back(target, [done](bool ok) {
        if (ok) return done(nullptr);
        done([](net::Response& out) { out = taxii::Service::Error(500, "Internal Server Error", "the release could not be audited"); });
      });
      cv.notify_all();
    };
    return r;
  });
  ASSERT_TRUE(srv.ok()) << srv.status().message();
  const std::string base = "http://127.0.0.1:" + std::to_string((*srv)->port());
  constexpr int kRequests = 8;
  std::vector<test::HttpResult> results(kRequests);
  std::vector<std::thread> clients;
  for (int i = 0; i < kRequests; ++i) {
    clients.emplace_back([&, i] { results[i] = Http("GET", base + "/r" + std::to_string(i)); });
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return waiting.size() == kRequests; }))
        << "only " << waiting.size() << " requests reached the handler: a waiting response held the thread";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (const auto& r : results) EXPECT_EQ(r.status, 0) << "a response left before its completion ran";
  // Complete from another thread: even-numbered succeed, odd-numbered fail.
  std::thread completer([&] {
    std::lock_guard lock(mu);
    for (auto& [target, done] : waiting) done(std::stoi(target.substr(2)) % 2 == 0);
  });
  completer.join();
  for (auto& c : clients) c.join();
  for (int i = 0; i < kRequests; ++i) {
    if (i % 2 == 0) {
      EXPECT_EQ(results[i].status, 200);
      EXPECT_EQ(results[i].body, "released /r" + std::to_string(i));
    } else {
      EXPECT_EQ(results[i].status, 500);
      EXPECT_NE(results[i].body.find("the release could not be audited"), std::string::npos) << results[i].body;
      EXPECT_EQ(results[i].body.find("released"), std::string::npos);
    }
  }
  (*srv)->Stop();
}

}  // namespace
}  // namespace tearline

namespace tearline {
namespace {

int64_t CacheHits(const std::string& metrics) {
  auto at = metrics.find("\ntearline_response_cache_hits_total ");
  return at == std::string::npos ? -1 : std::stoll(metrics.substr(at + 36));
}

// Identical reads are served from the response cache, yet every one is audited, and any change
// to the objects' database (new objects, a permission taken away) is seen by the next request.
TEST_F(TaxiiTest, RepeatedReadsAreServedFreshAndEachIsAudited) {
  const std::string url = Coll(inbox_) + "objects/?limit=50";
  HttpOptions post = Analyst();
  post.headers.push_back("Content-Type: " + kTaxii);
  auto object = [](int n) {
    return R"({"type":"malware","spec_version":"2.1","id":"malware--5687c175-5926-4090-8ce9-6d01623649)" +
           std::to_string(10 + n) + R"(","created":"2024-01-15T09:30:00.000Z","modified":"2024-01-15T09:30:00.000Z","is_family":false})";
  };
  ASSERT_EQ(Http("POST", Coll(inbox_) + "objects/", post, "{\"objects\":[" + object(1) + "]}").status, 202);
  int64_t hits_before = CacheHits(Http("GET", base_ + "/metrics", Analyst()).body);
  ASSERT_GE(hits_before, 0);
  int64_t audited = store_->AuditHead()->first;
  std::string first = Http("GET", url, Analyst()).body;
  ASSERT_NE(first.find("5687c175-5926-4090-8ce9-6d0162364911"), std::string::npos) << first;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Http("GET", url, Analyst()).body, first);
  EXPECT_EQ(store_->AuditHead()->first, audited + 5) << "every release is audited, cached or not";
  EXPECT_GE(CacheHits(Http("GET", base_ + "/metrics", Analyst()).body), hits_before + 3) << "the cache was not used";
  auto log = store_->ReadAudit(audited, 10);
  ASSERT_EQ(log->size(), 5u);
  // The two misses list the objects; the hits repeat the entry of the miss that filled the
  // cache (same recipient and decision), by its seq: ~150 bytes instead of the list.
  EXPECT_EQ((*log)[1].object_id, (*log)[0].object_id);
  // A local reader's entry: every object as id@modified (read from the store's shared rows),
  // under the one decision that covers them all.
  EXPECT_NE((*log)[0].object_id.find("malware--5687c175-5926-4090-8ce9-6d0162364911@2024-01-15T09:30:00.000Z"),
            std::string::npos);
  EXPECT_EQ((*log)[0].decision, "release");
  EXPECT_EQ((*log)[0].reason, "read permission (local principal)");
  for (size_t k = 2; k < 5; ++k) {
    EXPECT_EQ((*log)[k].object_id, audit::SameAs((*log)[1].seq)) << k;
    EXPECT_EQ((*log)[k].recipient, (*log)[1].recipient);
    EXPECT_EQ((*log)[k].decision, (*log)[1].decision);
  }
  auto chain = store_->ReadAudit(0, 100000);
  auto verified = audit::Verify(*chain, *store_->ReadCheckpoints());
  EXPECT_TRUE(verified.ok) << verified.message;
  // A new object: the next read has it.
  ASSERT_EQ(Http("POST", Coll(inbox_) + "objects/", post, "{\"objects\":[" + object(2) + "]}").status, 202);
  EXPECT_NE(Http("GET", url, Analyst()).body.find("5687c175-5926-4090-8ce9-6d0162364912"), std::string::npos);
  // Read permission taken away (as `tearline principal` would, through the database).
  ASSERT_TRUE(store_->PutPrincipal({"analyst", taxii::HashSecret(kPassword), {"demo"}, {"inbox"}}).ok());
  EXPECT_EQ(Http("GET", url, Analyst()).status, 403);
  // The same response for another principal is its own entry.
  ASSERT_TRUE(store_->PutPrincipal({"reader", "", {"demo", "inbox"}, {}}).ok());
  auto other = Http("GET", url, Reader());
  EXPECT_EQ(other.status, 200);
  EXPECT_EQ(store_->ReadAudit(0, 100000)->back().recipient, "reader");
}

}  // namespace
// The audit writer acknowledges a batch only once it is durable, on both of its paths: entries
// alone (a local reader's pages: written and synced on the writer's thread) and entries with
// release history (a partner's first releases: one transaction, synced by the store's syncer).
// When the sync fails, every submission of the batch is refused (the response becomes a 500)
// with no seq, and so is every later one.
TEST(AuditWriter, AcknowledgesOnlyDurableEntriesOnBothPathsAndRefusesThemWhenTheSyncFails) {
  test::TempDir dir;
  const std::string path = dir.path() + "/a.db";
  auto entry = [](int i) {
    return audit::Entry{0, 1700000000000000 + i, "partner", "indicator--" + std::to_string(i), "1 objects", "release", "shared", "", ""};
  };
  {
    store::SqliteOptions slow;
    slow.sync_delay_ms = 100;  // each sync held back: an early acknowledgement would be seen
    auto store = store::OpenSqlite(path, slow);
    ASSERT_TRUE(store.ok());
    taxii::AuditWriter writer(**store);
    std::atomic<int> acknowledged{0}, early{0};
    std::mutex mu;
    std::set<int64_t> seqs;
    auto done = [&](bool ok, int64_t seq) {
      EXPECT_TRUE(ok);
      if ((*store)->AuditSyncedHead()->first < seq) ++early;
      std::lock_guard lock(mu);
      seqs.insert(seq);
      ++acknowledged;
    };
    for (int i = 0; i < 20; ++i) {
      std::vector<store::ReleaseRecord> releases;
      if (i % 3 == 0) releases.push_back({"partner", "indicator--" + std::to_string(i), false});
      writer.Submit({entry(i)}, std::move(releases), done);
    }
    for (int i = 0; i < 1000 && acknowledged.load() < 20; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(acknowledged.load(), 20);
    EXPECT_EQ(early.load(), 0) << "acknowledged before the chain was synced";
    EXPECT_EQ(seqs.size(), 20u) << "each submission its own seq";
    EXPECT_EQ(*seqs.begin(), 1);
    EXPECT_EQ(*seqs.rbegin(), 20);
    auto held = (*store)->Held("partner", {"indicator--0", "indicator--1", "indicator--3"});
    ASSERT_TRUE(held.ok());
    EXPECT_EQ(held->size(), 2u) << "the release history of the submissions that had one";
  }
  store::SqliteOptions failing;
  failing.fail_sync = true;
  auto store = store::OpenSqlite(path, failing);
  ASSERT_TRUE(store.ok());
  std::atomic<int> refused{0};
  {
    taxii::AuditWriter writer(**store);
    for (int i = 20; i < 24; ++i) {
      std::vector<store::ReleaseRecord> releases;
      if (i == 21) releases.push_back({"partner", "indicator--21", false});
      writer.Submit({entry(i)}, std::move(releases), [&](bool ok, int64_t seq) {
        EXPECT_FALSE(ok) << "acknowledged although the sync failed";
        EXPECT_EQ(seq, 0);
        ++refused;
      });
      for (int k = 0; k < 400 && refused.load() <= i - 20; ++k) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  EXPECT_EQ(refused.load(), 4);
}

// The audit writer signs a checkpoint every N entries on a thread of its own (a checkpoint
// commits: the batches of entries behind it waited), of the newest entry already synced; every
// one of them verifies with the node's key, and the last head is signed when the writer stops.
TEST(AuditWriter, SignsCheckpointsOffTheWritersThread) {
  test::TempDir dir;
  auto store = store::OpenSqlite(dir.path() + "/a.db");
  ASSERT_TRUE(store.ok());
  std::string err;
  auto key = audit::LoadOrCreateKey(dir.path() + "/a.key", &err);
  ASSERT_TRUE(key) << err;
  {
    taxii::AuditWriter writer(**store, *key, 10);
    std::atomic<int> acknowledged{0};
    for (int i = 0; i < 35; ++i) {
      writer.Submit({{0, 1700000000000000 + i, "analyst", "indicator--" + std::to_string(i), "1 objects", "release", "read", "", ""}},
                    {}, [&](bool ok, int64_t seq) {
                      EXPECT_TRUE(ok);
                      EXPECT_GT(seq, 0);
                      ++acknowledged;
                    });
    }
    for (int i = 0; i < 1000 && acknowledged.load() < 35; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(acknowledged.load(), 35);
    bool signed_meanwhile = false;
    for (int i = 0; i < 1000 && !signed_meanwhile; ++i) {
      signed_meanwhile = (*store)->ReadCheckpoints(1)->size() == 1;
      if (!signed_meanwhile) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_TRUE(signed_meanwhile) << "no checkpoint after 35 entries, one due every 10";
  }
  auto chain = (*store)->ReadAudit(0, 100);
  auto cps = (*store)->ReadCheckpoints();
  ASSERT_TRUE(chain.ok() && cps.ok());
  EXPECT_EQ(chain->size(), 35u);
  ASSERT_GE(cps->size(), 1u);
  EXPECT_EQ(cps->back().seq, 35) << "the last head is signed when the writer stops";
  auto r = audit::Verify(*chain, *cps, key->public_hex);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.unsigned_tail, 0);
}

}  // namespace tearline
