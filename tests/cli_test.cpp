// The tearline command line as a user meets it: exit codes, messages, files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <sqlite3.h>

#include "audit/audit.h"
#include "stix/stix.h"
#include "store/store.h"
#include "taxii/taxii.h"
#include "test_util.h"

namespace tearline {
namespace {

using test::ReadFile;
using test::RunCommand;
using test::TempDir;
using test::WriteFile;

std::string Bin() { return TEARLINE_BINARY; }

const char* kIndicator =
    R"({"type":"indicator","spec_version":"2.1","id":"indicator--a6f12b93-270d-41b3-a42c-84798615a449",)"
    R"("created":"2024-01-15T09:30:00.000Z","modified":"2024-01-15T09:30:00.000Z","name":"relay",)"
    R"("pattern":"[ipv4-addr:value = '198.51.100.7']","pattern_type":"stix","valid_from":"2024-01-15T09:30:00Z"})";
const char* kMalware =
    R"({"type":"malware","spec_version":"2.1","id":"malware--5687c175-5926-4090-8ce9-6d0162364995",)"
    R"("created":"2024-01-15T09:30:00.000Z","modified":"2024-01-15T09:30:00.000Z","is_family":false})";

std::string Bundle(const std::vector<std::string>& objs) {
  std::string s = R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[)";
  for (size_t i = 0; i < objs.size(); ++i) s += (i ? "," : "") + objs[i];
  return s + "]}";
}

TEST(Cli, HelpAndUsageErrors) {
  std::string out;
  EXPECT_EQ(RunCommand(Bin() + " --help", &out), 0);
  for (const char* sub : {"validate", "import", "export", "stats"}) EXPECT_NE(out.find(sub), std::string::npos);
  for (const char* sub : {"validate", "import", "export", "stats"}) {
    EXPECT_EQ(RunCommand(Bin() + " " + sub + " --help", &out), 0) << sub;
    EXPECT_NE(out.find("--"), std::string::npos) << sub;
  }
  EXPECT_EQ(RunCommand(Bin(), &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " frobnicate", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " validate --bogus x.json", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " import x.json", &out), 2);  // --db/--collection missing
  EXPECT_NE(out.find("--db"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " export --db x.db --collection c --version newest", &out), 2);
}

TEST(Cli, ValidateExitCodesAndMessages) {
  TempDir tmp;
  std::string good = tmp.path() + "/good.json", bad = tmp.path() + "/bad.json";
  WriteFile(good, Bundle({kIndicator, kMalware}));
  std::string broken = kMalware;
  broken.replace(broken.find("\"is_family\":false"), 17, "\"is_family\":\"no\"");
  WriteFile(bad, Bundle({kIndicator, broken}));
  std::string out;
  EXPECT_EQ(RunCommand(Bin() + " validate " + good, &out), 0) << out;
  EXPECT_NE(out.find("2 objects checked: 2 valid"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " validate " + good + " " + bad, &out), 1) << out;
  EXPECT_NE(out.find(bad + ": error: object 1 (malware--5687c175-5926-4090-8ce9-6d0162364995): is_family: "),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("[property-type; STIX 2.1 §4.11 Malware]"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " validate " + tmp.path() + "/missing.json", &out), 2);
  EXPECT_NE(out.find("cannot read"), std::string::npos) << out;
  WriteFile(tmp.path() + "/one.json", kIndicator);
  EXPECT_EQ(RunCommand("cat " + tmp.path() + "/one.json | " + Bin() + " validate -", &out), 0) << out;
}

TEST(Cli, ImportExportStats) {
  TempDir tmp;
  std::string file = tmp.path() + "/b.json", db = tmp.path() + "/t.db";
  WriteFile(file, Bundle({kIndicator, kMalware}));
  std::string out;
  ASSERT_EQ(RunCommand(Bin() + " import --db " + db + " --collection intel " + file, &out), 0) << out;
  EXPECT_NE(out.find("2 objects: 2 stored, 0 duplicates, 0 conflicts, 0 rejected"), std::string::npos) << out;
  ASSERT_EQ(RunCommand(Bin() + " stats --db " + db, &out), 0);
  EXPECT_NE(out.find("indicator"), std::string::npos);
  EXPECT_NE(out.find("malware"), std::string::npos);

  ASSERT_EQ(RunCommand(Bin() + " export --db " + db + " --collection intel --type malware", &out), 0);
  stix::Validator v;
  auto r = v.Validate(out);
  ASSERT_TRUE(r.ok()) << out;
  ASSERT_EQ(r.objects.size(), 1u);
  EXPECT_TRUE(stix::JsonEqual(r.objects[0].json, kMalware));

  // --added-after in the future: a valid bundle without objects (an empty list is not allowed, §8).
  ASSERT_EQ(RunCommand(Bin() + " export --db " + db + " --collection intel --added-after 2999-01-01T00:00:00Z", &out), 0);
  auto empty = v.Validate(out);
  EXPECT_TRUE(empty.ok()) << out;
  EXPECT_EQ(empty.total, 0u);
  EXPECT_EQ(RunCommand(Bin() + " export --db " + db + " --collection intel --added-after yesterday", &out), 2);
  EXPECT_NE(out.find("RFC 3339"), std::string::npos);
  EXPECT_EQ(RunCommand(Bin() + " export --db " + db + " --collection nope", &out), 2);
  EXPECT_NE(out.find("no collection"), std::string::npos);
}

TEST(Cli, ConflictsAndJsonLines) {
  TempDir tmp;
  std::string db = tmp.path() + "/t.db", lines = tmp.path() + "/in.jsonl", changed = tmp.path() + "/c.json";
  WriteFile(lines, std::string(kIndicator) + "\n{not json\n" + kMalware + "\n");
  std::string out;
  EXPECT_EQ(RunCommand(Bin() + " import --db " + db + " --collection c " + lines, &out), 1) << out;
  EXPECT_NE(out.find("(line 2)"), std::string::npos) << out;
  EXPECT_NE(out.find("3 objects: 2 stored, 0 duplicates, 0 conflicts, 1 rejected"), std::string::npos) << out;
  std::string other = kIndicator;
  other.replace(other.find("\"relay\""), 7, "\"other\"");
  WriteFile(changed, other);
  EXPECT_EQ(RunCommand(Bin() + " import --db " + db + " --collection c " + changed, &out), 1) << out;
  EXPECT_NE(out.find("version-conflict"), std::string::npos) << out;
  ASSERT_EQ(RunCommand(Bin() + " export --db " + db + " --collection c --type indicator", &out), 0);
  EXPECT_NE(out.find("\"relay\""), std::string::npos) << "the first version stands";
}

TEST(Cli, BadInputChangesNothing) {
  TempDir tmp;
  std::string db = tmp.path() + "/t.db", good = tmp.path() + "/g.json", trunc = tmp.path() + "/t.json";
  WriteFile(good, Bundle({kIndicator}));
  std::string full = Bundle({kMalware});
  WriteFile(trunc, full.substr(0, full.size() / 2));
  std::string out, before, after;
  ASSERT_EQ(RunCommand(Bin() + " import --db " + db + " --collection c " + good, &out), 0);
  ASSERT_EQ(RunCommand(Bin() + " stats --db " + db, &before), 0);
  EXPECT_EQ(RunCommand(Bin() + " import --db " + db + " --collection c " + trunc, &out), 1);
  EXPECT_NE(out.find("json-syntax"), std::string::npos) << out;
  ASSERT_EQ(RunCommand(Bin() + " stats --db " + db, &after), 0);
  EXPECT_EQ(before, after);
}

TEST(Cli, MissingOrForeignDatabase) {
  TempDir tmp;
  std::string out;
  std::string missing = tmp.path() + "/none.db";
  EXPECT_EQ(RunCommand(Bin() + " stats --db " + missing, &out), 2);
  EXPECT_NE(out.find("does not exist"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(missing)) << "reading must not create a database";
  EXPECT_EQ(RunCommand(Bin() + " export --db " + missing + " --collection c", &out), 2);
  std::string junk = tmp.path() + "/junk.db";
  WriteFile(junk, "this is not a database, just text that is long enough to look like a header........");
  EXPECT_EQ(RunCommand(Bin() + " stats --db " + junk, &out), 2);
  EXPECT_NE(out.find("junk.db"), std::string::npos) << out;
  EXPECT_EQ(ReadFile(junk).substr(0, 12), "this is not ") << "a foreign file must not be modified";
  EXPECT_EQ(RunCommand(Bin() + " import --db " + tmp.path() + "/no/such/dir/x.db --collection c " + junk, &out), 2);
}

TEST(Cli, DemoScenarioIsValid) {
  std::string out;
  EXPECT_EQ(RunCommand(Bin() + " validate " + std::string(TEARLINE_SOURCE_DIR) + "/samples/northern-lantern.json", &out), 0)
      << out;
}

}  // namespace
}  // namespace tearline

namespace tearline {
namespace {

TEST(CliPattern, CheckAndEval) {
  TempDir tmp;
  std::string out;
  WriteFile(tmp.path() + "/p.txt", "[ipv4-addr:value = '203.0.113.45']");
  EXPECT_EQ(RunCommand(Bin() + " pattern check \"$(cat " + tmp.path() + "/p.txt)\"", &out), 0) << out;
  WriteFile(tmp.path() + "/bad.txt", "[ipv4-addr:value = '203.0.113.45'");
  EXPECT_EQ(RunCommand(Bin() + " pattern check \"$(cat " + tmp.path() + "/bad.txt)\"", &out), 1) << out;
  EXPECT_NE(out.find("at character 33"), std::string::npos) << out;
  std::string sample = std::string(TEARLINE_SOURCE_DIR) + "/samples/northern-lantern.json";
  EXPECT_EQ(RunCommand(Bin() + " pattern eval --pattern \"$(cat " + tmp.path() + "/p.txt)\" " + sample, &out), 0) << out;
  EXPECT_EQ(out, "true\n");
  WriteFile(tmp.path() + "/p2.txt", "[ipv4-addr:value = '203.0.113.46']");
  EXPECT_EQ(RunCommand(Bin() + " pattern eval --pattern \"$(cat " + tmp.path() + "/p2.txt)\" " + sample, &out), 1) << out;
  EXPECT_EQ(out, "false\n");
  EXPECT_EQ(RunCommand(Bin() + " pattern eval --pattern \"$(cat " + tmp.path() + "/bad.txt)\" " + sample, &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " pattern eval --pattern \"$(cat " + tmp.path() + "/p.txt)\" " + tmp.path() + "/none.json", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " pattern eval", &out), 2);
}

TEST(CliPattern, CasesFile) {
  TempDir tmp;
  std::string od = R"([{"type":"observed-data","id":"observed-data--00000000-0000-4000-8000-000000000001",)"
                   R"("first_observed":"2024-01-01T00:00:00Z","last_observed":"2024-01-01T00:00:00Z","number_observed":1,)"
                   R"("object_refs":["ipv4-addr--00000000-0000-4000-8000-000000000002"]},)"
                   R"({"type":"ipv4-addr","id":"ipv4-addr--00000000-0000-4000-8000-000000000002","value":"10.1.2.3"}])";
  std::string lines = "{\"pattern\":\"[ipv4-addr:value ISSUBSET '10.0.0.0/8']\",\"observed_data\":" + od + "}\n" +
                      "{\"pattern\":\"[ipv4-addr:value = '10.1.2.4']\",\"observed_data\":" + od + "}\n" +
                      "{\"pattern\":\"[ipv4-addr:value = \",\"observed_data\":" + od + "}\n" + "not json\n";
  WriteFile(tmp.path() + "/c.jsonl", lines);
  std::string out;
  EXPECT_EQ(RunCommand(Bin() + " pattern eval --cases " + tmp.path() + "/c.jsonl", &out), 0);
  EXPECT_EQ(out.substr(0, 11), "true\nfalse\n") << out;
  EXPECT_NE(out.find("\nerror: invalid pattern: at character"), std::string::npos) << out;
  size_t lines_out = std::count(out.begin(), out.end(), '\n');
  EXPECT_EQ(lines_out, 4u) << out;
}

}  // namespace
}  // namespace tearline

namespace tearline {
namespace {

TEST(CliServe, ConfigCheckServeAndGracefulStop) {
  TempDir tmp;
  std::string cfg = tmp.path() + "/t.toml", out;
  WriteFile(cfg, "[server]\naddress = \"127.0.0.1\"\nport = 0\n[database]\npath = \"" + tmp.path() +
                     "/t.db\"\n[[api_roots]]\npath = \"ct\"\n  [[api_roots.collections]]\n  name = \"demo\"\n");
  EXPECT_EQ(RunCommand(Bin() + " config check " + cfg, &out), 0) << out;
  // The row cache's budget is shown: its default follows the machine's memory (docs/configuration.md).
  EXPECT_NE(out.find("row cache " + std::to_string(taxii::DefaultObjectCacheMb()) + " MiB"), std::string::npos) << out;
  WriteFile(tmp.path() + "/bad.toml", "[server]\naddress = \"0.0.0.0\"\n[[api_roots]]\npath = \"ct\"\n");
  EXPECT_EQ(RunCommand(Bin() + " config check " + tmp.path() + "/bad.toml", &out), 1);
  EXPECT_NE(out.find("plain HTTP is allowed on loopback only"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " config check " + tmp.path() + "/missing.toml", &out), 2);
  // Serve, answer one request, stop on SIGTERM with exit 0.
  std::string script = Bin() + " serve --config " + cfg + " > " + tmp.path() + "/out 2>&1 & pid=$!; " +
                       "for i in $(seq 50); do grep -q serving " + tmp.path() + "/out && break; sleep 0.1; done; " +
                       "url=$(grep -o 'http://[^ ]*' " + tmp.path() + "/out); " +
                       "curl -s -o /dev/null -w '%{http_code}\\n' $url; sleep 1.5; " +
                       "echo logged=$(grep -c ' GET /taxii2/ 401 ' " + tmp.path() + "/out); " +
                       "kill -TERM $pid; wait $pid; echo exit=$?";
  WriteFile(tmp.path() + "/run.sh", script + "\n");
  EXPECT_EQ(RunCommand("bash " + tmp.path() + "/run.sh", &out), 0) << out;
  EXPECT_NE(out.find("401"), std::string::npos) << out;  // discovery is private by default
  EXPECT_NE(out.find("exit=0"), std::string::npos) << out;
  // The access line is written while the node runs (gathered for at most a second when idle).
  EXPECT_NE(out.find("logged=1"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " serve --config " + tmp.path() + "/bad.toml", &out), 2);
}

// The access log goes to stderr; a destination that stops reading (a paused terminal, a pipe
// into a stalled program) must not stop the node. Here stderr is a FIFO whose reader never
// reads: 3,000 requests on one connection (~100 bytes of access log each, far more than the
// pipe and the log's first buffer hold) are all answered, and SIGTERM still ends the node in a
// few seconds. (Before, every request thread waited behind the one blocked in write(2): the
// node stopped answering after ~1,000 requests.)
TEST(CliServe, AStalledAccessLogStopsNothing) {
  TempDir tmp;
  const std::string t = tmp.path(), cfg = t + "/t.toml";
  WriteFile(cfg, "[server]\naddress = \"127.0.0.1\"\nport = 0\n[database]\npath = \"" + t +
                     "/t.db\"\n[[api_roots]]\npath = \"ct\"\n  [[api_roots.collections]]\n  name = \"demo\"\n");
  std::string script = "set -u; mkfifo " + t + "/fifo; sleep 60 < " + t + "/fifo & reader=$!; " +
                       Bin() + " serve --config " + cfg + " > " + t + "/out 2> " + t + "/fifo & pid=$!; " +
                       "for i in $(seq 50); do grep -q serving " + t + "/out && break; sleep 0.1; done; " +
                       "url=$(grep -o 'http://[^ ]*' " + t + "/out); " +
                       "for i in $(seq 3000); do echo \"url = \\\"$url\\\"\"; echo 'output = \"/dev/null\"'; done > " + t + "/urls; " +
                       "timeout 60 curl -s -w '%{http_code}\\n' --config " + t + "/urls | sort | uniq -c; " +
                       "start=$(date +%s); kill -TERM $pid; wait $pid; echo exit=$? took=$(( $(date +%s) - start )); " +
                       "kill $reader";
  WriteFile(t + "/run.sh", script + "\n");
  std::string out;
  RunCommand("bash " + t + "/run.sh", &out);
  EXPECT_NE(out.find("3000 401"), std::string::npos) << out;
  EXPECT_NE(out.find("exit=0"), std::string::npos) << out;
  auto took = out.find("took=");
  ASSERT_NE(took, std::string::npos) << out;
  EXPECT_LE(std::stoi(out.substr(took + 5)), 20) << "the stop waits for the log a few seconds at most, not for its reader: " << out;
}

TEST(CliServe, Principals) {
  TempDir tmp;
  std::string db = tmp.path() + "/t.db", out;
  EXPECT_EQ(RunCommand("echo 'long enough secret' | " + Bin() + " principal add --db " + db +
                           " alice --read demo,inbox --write inbox --password-stdin", &out), 0) << out;
  EXPECT_EQ(RunCommand("echo short | " + Bin() + " principal add --db " + db + " bob --password-stdin", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " principal list --db " + db, &out), 0);
  EXPECT_NE(out.find("alice                read=demo,inbox write=inbox (password)"), std::string::npos) << out;
  EXPECT_EQ(out.find("long enough"), std::string::npos) << "secrets are never shown";
  EXPECT_EQ(RunCommand(Bin() + " principal token --db " + db + " alice", &out), 0);
  EXPECT_EQ(out.rfind("tlt_", 0), 0u) << out;
  EXPECT_EQ(RunCommand(Bin() + " principal token --db " + db + " nobody", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " principal remove --db " + db + " alice", &out), 0);
  EXPECT_EQ(RunCommand(Bin() + " principal remove --db " + db + " alice", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " principal list --db " + tmp.path() + "/none.db", &out), 2);
}

}  // namespace
}  // namespace tearline

namespace tearline {
namespace {

TEST(CliMatch, WritesValidSightings) {
  TempDir tmp;
  std::string sample = std::string(TEARLINE_SOURCE_DIR) + "/samples/northern-lantern.json", out;
  auto sightings = [](const std::string& text) {  // lines of JSON (stderr's summary line is merged in)
    std::string lines;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      if (text[start] == '{') lines += text.substr(start, end - start) + "\n";
      start = end + 1;
    }
    return lines;
  };
  std::string od =
      R"([{"type":"observed-data","spec_version":"2.1","id":"observed-data--3b1e7f43-7c9e-4a56-9bd8-7dfde5b2c501",)"
      R"("created":"2026-03-01T21:20:00.000Z","modified":"2026-03-01T21:20:00.000Z","first_observed":"2026-03-01T21:14:00Z",)"
      R"("last_observed":"2026-03-01T21:20:00Z","number_observed":3,"object_refs":["ipv4-addr--aa0b5a1e-5e3c-5d2e-9b1e-5c0f6c2b7a11"]},)"
      R"({"type":"ipv4-addr","spec_version":"2.1","id":"ipv4-addr--aa0b5a1e-5e3c-5d2e-9b1e-5c0f6c2b7a11","value":"203.0.113.45"}])";
  WriteFile(tmp.path() + "/obs.json", od);
  ASSERT_EQ(RunCommand(Bin() + " match --indicators " + sample + " --observations " + tmp.path() +
                           "/obs.json --identity identity--bcf37703-2aee-42eb-aacc-ad1622f17f99 2>/dev/null",
                       &out),
            0);
  out = sightings(out);
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_NE(out.find("\"count\":3"), std::string::npos);
  EXPECT_NE(out.find("\"observed_data_refs\":[\"observed-data--3b1e7f43-7c9e-4a56-9bd8-7dfde5b2c501\"]"), std::string::npos);
  stix::Validator v;
  auto r = v.Validate(out.substr(0, out.size() - 1));
  EXPECT_TRUE(r.ok()) << (r.diagnostics.empty() ? out : r.diagnostics[0].ToString());
  // JSON lines on stdin: one batch per line; the same batch twice gives two sightings.
  WriteFile(tmp.path() + "/obs.jsonl", od + "\n" + od + "\n");
  ASSERT_EQ(RunCommand("cat " + tmp.path() + "/obs.jsonl | " + Bin() + " match --indicators " + sample +
                           " --observations - 2>/dev/null",
                       &out),
            0);
  out = sightings(out);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  // Indicators from a collection in the store.
  std::string db = tmp.path() + "/t.db";
  ASSERT_EQ(RunCommand(Bin() + " import --db " + db + " --collection demo " + sample, &out), 0);
  ASSERT_EQ(RunCommand(Bin() + " match --db " + db + " --collection demo --observations " + tmp.path() + "/obs.json 2>/dev/null", &out), 0);
  out = sightings(out);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  // Errors: no indicators source, unreadable observations, bad observations.
  EXPECT_EQ(RunCommand(Bin() + " match --observations " + tmp.path() + "/obs.json", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " match --indicators " + sample + " --observations " + tmp.path() + "/none.json", &out), 2);
  WriteFile(tmp.path() + "/bad.json", "{not json");
  EXPECT_EQ(RunCommand(Bin() + " match --indicators " + sample + " --observations " + tmp.path() + "/bad.json", &out), 2);
}

TEST(CliMatch, AStreamCombinesObservationsOfSeveralLines) {
  TempDir tmp;
  WriteFile(tmp.path() + "/ind.json",
            R"([{"type":"indicator","spec_version":"2.1","id":"indicator--9a1c4b7e-1f2d-4c3b-8a5e-6d7f8e9a0b1c",)"
            R"("created":"2026-03-01T00:00:00.000Z","modified":"2026-03-01T00:00:00.000Z","pattern_type":"stix",)"
            R"("valid_from":"2026-03-01T00:00:00Z","pattern":"[ipv4-addr:value = '203.0.113.45'] FOLLOWEDBY )"
            R"([domain-name:value = 'c2.example'] WITHIN 600 SECONDS"}])");
  auto line = [](const std::string& n, const std::string& sco, const std::string& time) {
    return R"([{"type":"observed-data","spec_version":"2.1","id":"observed-data--00000000-0000-4000-8000-0000000000)" + n +
           R"(","created":")" + time + R"(","modified":")" + time + R"(","first_observed":")" + time +
           R"(","last_observed":")" + time + R"(","number_observed":1,"object_refs":[")" + sco + R"("]},)" +
           (sco.rfind("ipv4", 0) == 0 ? R"({"type":"ipv4-addr","id":")" + sco + R"(","value":"203.0.113.45"}])"
                                      : R"({"type":"domain-name","id":")" + sco + R"(","value":"c2.example"}])");
  };
  const std::string ip = "ipv4-addr--aa0b5a1e-5e3c-5d2e-9b1e-5c0f6c2b7a11", dn = "domain-name--bb0b5a1e-5e3c-5d2e-9b1e-5c0f6c2b7a12";
  WriteFile(tmp.path() + "/obs.jsonl", line("01", ip, "2026-03-01T10:00:00.000Z") + "\n" + line("02", dn, "2026-03-01T10:05:00.000Z") + "\n");
  std::string out;
  ASSERT_EQ(RunCommand(Bin() + " match --indicators " + tmp.path() + "/ind.json --observations " + tmp.path() +
                           "/obs.jsonl 2>/dev/null",
                       &out),
            0);
  out = out.substr(out.find('\n') + 1);  // after the summary line (stderr is merged)
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_NE(out.find(R"("observed_data_refs":["observed-data--00000000-0000-4000-8000-000000000001","observed-data--00000000-0000-4000-8000-000000000002"])"),
            std::string::npos)
      << out;
  // A window shorter than the gap between the lines: the first observation is gone.
  ASSERT_EQ(RunCommand(Bin() + " match --indicators " + tmp.path() + "/ind.json --window 60 --observations " + tmp.path() +
                           "/obs.jsonl 2>/dev/null",
                       &out),
            0);
  EXPECT_EQ(out.find("sighting"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " match --indicators " + tmp.path() + "/ind.json --window -5 --observations x 2>/dev/null", &out), 2);
}

}  // namespace
}  // namespace tearline

namespace tearline {
namespace {

std::string Od(const std::string& n, const std::string& org, const std::string& modified, const std::string& sco) {
  return R"({"type":"observed-data","spec_version":"2.1","id":"observed-data--00000000-0000-4000-8000-0000000000)" + n +
         R"(","created":")" + modified + R"(","modified":")" + modified + R"(","created_by_ref":")" + org +
         R"(","first_observed":"2026-03-01T00:00:00Z","last_observed":"2026-03-01T00:00:00Z","number_observed":1,"object_refs":[")" +
         sco + R"("]})";
}

std::string Sighting(const std::string& n, const std::string& org, const std::string& indicator) {
  return R"({"type":"sighting","spec_version":"2.1","id":"sighting--00000000-0000-4000-8000-0000000000)" + n +
         R"(","created":"2026-03-02T00:00:00.000Z","modified":"2026-03-02T00:00:00.000Z","created_by_ref":")" + org +
         R"(","sighting_of_ref":")" + indicator + R"("})";
}

TEST(CliCorrelations, ObservablesAndSightingsFromSeveralOrganisations) {
  TempDir tmp;
  const std::string a = "identity--00000000-0000-4000-8000-00000000000a", b = "identity--00000000-0000-4000-8000-00000000000b",
                    c = "identity--00000000-0000-4000-8000-00000000000c";
  const std::string ip = "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4", other = "ipv4-addr--00000000-0000-5000-8000-000000000001";
  const std::string ind = "indicator--a6f12b93-270d-41b3-a42c-84798615a449";
  std::string db = tmp.path() + "/t.db", out;
  WriteFile(tmp.path() + "/one.json", Bundle({Od("01", a, "2026-03-01T00:00:00.000Z", ip), Od("02", b, "2026-03-01T01:00:00.000Z", ip),
                                              Od("03", a, "2026-03-01T02:00:00.000Z", other), Sighting("11", a, ind),
                                              Sighting("12", b, ind)}));
  ASSERT_EQ(RunCommand(Bin() + " import --db " + db + " --collection intel " + tmp.path() + "/one.json", &out), 0) << out;
  ASSERT_EQ(RunCommand(Bin() + " correlations --db " + db + " --collection intel", &out), 0) << out;
  EXPECT_NE(out.find("observable " + ip + "  organisations=" + a + "," + b), std::string::npos) << out;
  EXPECT_NE(out.find("indicator  " + ind), std::string::npos) << out;
  EXPECT_EQ(out.find(other), std::string::npos) << "one organisation is no correlation";
  EXPECT_NE(out.find("2 correlations; 2 new groupings"), std::string::npos) << out;
  ASSERT_EQ(RunCommand(Bin() + " export --db " + db + " --collection correlations", &out), 0);
  EXPECT_NE(out.find("\"context\":\"suspicious-activity\""), std::string::npos) << out;
  stix::Validator v;
  EXPECT_TRUE(v.Validate(out).ok()) << out;
  // Idempotent; a third organisation makes a new version of the grouping.
  ASSERT_EQ(RunCommand(Bin() + " correlations --db " + db + " --collection intel", &out), 0);
  EXPECT_NE(out.find("0 new groupings"), std::string::npos) << out;
  WriteFile(tmp.path() + "/two.json", Bundle({Od("04", c, "2026-03-05T00:00:00.000Z", ip)}));
  ASSERT_EQ(RunCommand(Bin() + " import --db " + db + " --collection intel " + tmp.path() + "/two.json", &out), 0);
  ASSERT_EQ(RunCommand(Bin() + " correlations --db " + db + " --collection intel", &out), 0);
  EXPECT_NE(out.find("1 new groupings"), std::string::npos) << out;
  ASSERT_EQ(RunCommand(Bin() + " export --db " + db + " --collection correlations --version all --type grouping", &out), 0);
  EXPECT_EQ(test::ObjectsByVersion(out).size(), 3u) << out;
  EXPECT_EQ(RunCommand(Bin() + " correlations --db " + tmp.path() + "/none.db", &out), 2);
}

}  // namespace
}  // namespace tearline

namespace tearline {
namespace {

TEST(CliPolicy, PartnersGroupsAndAudiences) {
  TempDir tmp;
  std::string db = tmp.path() + "/t.db", out;
  const std::string south = "identity--00000000-0000-4000-8000-000000000001";
  ASSERT_EQ(RunCommand(Bin() + " import --db " + db + " --collection demo " + std::string(TEARLINE_SOURCE_DIR) +
                           "/samples/northern-lantern.json", &out), 0);
  EXPECT_EQ(RunCommand(Bin() + " partner add --db " + db + " " + south + " --name Southland --principal south", &out), 0) << out;
  EXPECT_EQ(RunCommand(Bin() + " partner add --db " + db + " not-an-identity", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " partner add --db " + db + " " + south + " --channel half-open", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " group member add --db " + db + " ct-europe " + south, &out), 2) << "groups are created first";
  EXPECT_NE(out.find("tearline group add ct-europe"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " group add --db " + db + " ct-europe --description 'European CT cooperation'", &out), 0) << out;
  EXPECT_EQ(RunCommand(Bin() + " group add --db " + db + " empty-group", &out), 0) << out;
  EXPECT_EQ(RunCommand(Bin() + " group member add --db " + db + " ct-europe " + south, &out), 0) << out;
  EXPECT_EQ(RunCommand(Bin() + " group list --db " + db, &out), 0);
  EXPECT_NE(out.find("empty-group:"), std::string::npos) << out;
  EXPECT_NE(out.find("ct-europe: " + south), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " collection share --db " + db + " demo --group ct-europe --default-tlp green", &out), 0) << out;
  EXPECT_EQ(RunCommand(Bin() + " collection share --db " + db + " nope --group ct-europe", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " collection share --db " + db + " demo --default-tlp purple", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " partner show --db " + db + " " + south, &out), 0);
  EXPECT_NE(out.find("collection demo (via group), default TLP green"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " partner set-channel --db " + db + " " + south + " suspended", &out), 0);
  EXPECT_NE(out.find("open -> suspended"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " partner set-channel --db " + db + " " + south + " ajar", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " partner list --db " + db, &out), 0);
  EXPECT_NE(out.find("channel=suspended  tier=0  principals=south  groups=ct-europe"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " group remove --db " + db + " ct-europe", &out), 2) << "still in use";
  EXPECT_NE(out.find("member " + south), std::string::npos) << out;
  EXPECT_NE(out.find("collection demo"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " group member remove --db " + db + " ct-europe " + south, &out), 0);
  EXPECT_EQ(RunCommand(Bin() + " group member remove --db " + db + " ct-europe " + south, &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " collection unshare --db " + db + " demo --group ct-europe", &out), 0);
  EXPECT_NE(out.find("groups= default TLP green"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " group remove --db " + db + " ct-europe", &out), 0) << out;
  EXPECT_EQ(RunCommand(Bin() + " group remove --db " + db + " ct-europe", &out), 2);
  EXPECT_EQ(RunCommand(Bin() + " partner remove --db " + db + " " + south, &out), 0);
  EXPECT_EQ(RunCommand(Bin() + " partner remove --db " + db + " " + south, &out), 2);
  // Every change above is in the audit log, and the chain with its checkpoints verifies.
  EXPECT_EQ(RunCommand(Bin() + " audit list --db " + db + " --limit 100", &out), 0);
  for (const char* kind : {" ingest ", " partner ", " group ", " audience ", " channel "}) {
    EXPECT_NE(out.find(kind), std::string::npos) << kind << "\n" << out;
  }
  EXPECT_EQ(RunCommand(Bin() + " audit verify --db " + db, &out), 0) << out;
  EXPECT_NE(out.find("signed checkpoints valid"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " partner list --db " + tmp.path() + "/none.db", &out), 2);
}

// The audit chain of the database at `db`, read through the store.
std::vector<audit::Entry> ReadChain(const std::string& db) {
  auto s = store::OpenSqlite(db);
  EXPECT_TRUE(s.ok());
  auto all = (*s)->ReadAudit(0, 100000);
  EXPECT_TRUE(all.ok());
  return all.ok() ? *all : std::vector<audit::Entry>{};
}

// Rewrites the chain file recomputing every hash (what an attacker with the files could do):
// only the signed checkpoints can reveal it.
void RewriteAuditWithValidHashes(const std::string& db) {
  std::vector<audit::Entry> rows = ReadChain(db);
  ASSERT_GT(rows.size(), 2u);
  rows[1].reason = "forged";
  std::string prev = audit::kGenesis;
  for (auto& e : rows) {
    e.prev_hash = prev;
    e.hash = audit::EntryHash(e);
    prev = e.hash;
  }
  ASSERT_TRUE(store::WriteAuditChainFile(store::AuditChainPath(db), rows).ok());
}

TEST(CliAudit, TamperingInEveryWayIsFoundAndPartnersVerifyTheirExport) {
  TempDir tmp;
  std::string db = tmp.path() + "/t.db", out;
  const std::string south = "identity--00000000-0000-4000-8000-000000000001";
  ASSERT_EQ(RunCommand(Bin() + " import --db " + db + " --collection demo " + std::string(TEARLINE_SOURCE_DIR) +
                           "/samples/northern-lantern.json", &out), 0) << out;
  ASSERT_EQ(RunCommand(Bin() + " group add --db " + db + " ct-europe", &out), 0) << out;
  ASSERT_EQ(RunCommand(Bin() + " partner add --db " + db + " " + south + " --name Southland --group ct-europe", &out), 0) << out;
  ASSERT_EQ(RunCommand(Bin() + " partner set-channel --db " + db + " " + south + " restricted", &out), 0) << out;
  ASSERT_EQ(RunCommand(Bin() + " collection share --db " + db + " demo --group ct-europe", &out), 0) << out;
  ASSERT_EQ(RunCommand(Bin() + " node key --db " + db, &out), 0) << out;
  std::string key = out.substr(out.find(' ') + 1, 64);
  ASSERT_EQ(key.size(), 64u) << out;
  EXPECT_EQ(std::filesystem::status(db + ".key").permissions() & std::filesystem::perms::group_all,
            std::filesystem::perms::none) << "the node key is 0600";
  ASSERT_EQ(RunCommand(Bin() + " audit verify --db " + db + " --key " + key, &out), 0) << out;
  EXPECT_NE(out.find("5 entries, chain intact, 5 signed checkpoints valid"), std::string::npos) << out;

  // export --as shows what the partner would receive: GREEN on a restricted channel, no AMBER or RED.
  ASSERT_EQ(RunCommand(Bin() + " export --db " + db + " --collection demo --as " + south, &out), 0) << out;
  EXPECT_NE(out.find("\"type\":\"attack-pattern\""), std::string::npos);
  EXPECT_EQ(out.find("\"type\":\"campaign\""), std::string::npos);
  EXPECT_EQ(out.find("\"type\":\"note\""), std::string::npos);
  EXPECT_EQ(RunCommand(Bin() + " export --db " + db + " --collection demo --as identity--00000000-0000-4000-8000-00000000dead", &out), 2);

  // The partner's export verifies with the public key alone; a changed byte or another key fails.
  std::string exported = tmp.path() + "/south.audit.jsonl";
  ASSERT_EQ(RunCommand(Bin() + " audit export --db " + db + " --for " + south + " --out " + exported, &out), 0) << out;
  ASSERT_EQ(RunCommand(Bin() + " audit verify --file " + exported + " --key " + key, &out), 0) << out;
  EXPECT_NE(out.find("entries about you"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bin() + " audit verify --file " + exported + " --key " + std::string(64, '1'), &out), 1) << out;
  ASSERT_EQ(RunCommand("sed -i 's/restricted/open/' " + exported, &out), 0);
  EXPECT_EQ(RunCommand(Bin() + " audit verify --file " + exported + " --key " + key, &out), 1) << out;
  EXPECT_EQ(RunCommand(Bin() + " audit verify --file " + exported, &out), 2) << "the key is required";

  // Four ways to tamper with the chain's file, each on a fresh copy; verify names the entry.
  struct Tamper {
    const char* what;
    std::function<void(std::vector<audit::Entry>&)> change;
    std::string expect;
  };
  const Tamper tampers[] = {
      {"changed", [](auto& c) { c[2].reason = "nothing happened"; }, "entry 3: content does not match its hash"},
      {"removed", [](auto& c) { c.erase(c.begin() + 2); }, "entry 4: sequence gap: entry 3 is missing"},
      {"inserted",
       [](auto& c) {
         audit::Entry forged = c[1];
         forged.recipient = "cli:mallory";
         c.insert(c.begin() + 2, forged);
         for (size_t k = 2; k < c.size(); ++k) c[k].seq = static_cast<int64_t>(k) + 1;
       },
       "entry 3: does not link to the previous entry"},
      {"reordered", [](auto& c) { std::swap(c[1], c[2]); std::swap(c[1].seq, c[2].seq); },
       "entry 2: does not link to the previous entry"},
  };
  auto copy_node = [&](const std::string& copy) {
    std::filesystem::copy_file(db, copy);
    std::filesystem::copy_file(store::AuditLogPath(db), store::AuditLogPath(copy));
    std::filesystem::copy_file(store::AuditChainPath(db), store::AuditChainPath(copy));
    std::filesystem::copy_file(db + ".key", copy + ".key");
  };
  for (const auto& t : tampers) {
    std::string copy = tmp.path() + "/" + t.what + ".db";
    copy_node(copy);
    std::vector<audit::Entry> chain = ReadChain(copy);
    ASSERT_GE(chain.size(), 5u);
    t.change(chain);
    ASSERT_TRUE(store::WriteAuditChainFile(store::AuditChainPath(copy), chain).ok()) << t.what;
    EXPECT_EQ(RunCommand(Bin() + " audit verify --db " + copy, &out), 1) << t.what << out;
    EXPECT_NE(out.find(t.expect), std::string::npos) << t.what << ": " << out;
  }
  // Bytes changed in the file's structure: verify fails and says so, never skips the entry.
  {
    std::string copy = tmp.path() + "/damaged.db";
    copy_node(copy);
    std::fstream f(store::AuditChainPath(copy), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(27);  // the first record's length
    f.write("\xff\xff\xff\xff", 4);
    f.close();
    EXPECT_EQ(RunCommand(Bin() + " audit verify --db " + copy, &out), 1) << out;
    EXPECT_NE(out.find("damaged"), std::string::npos) << out;
  }
  // A rewrite that recomputes every hash is caught by the signed checkpoints.
  std::string copy = tmp.path() + "/rewritten.db";
  copy_node(copy);
  RewriteAuditWithValidHashes(copy);
  EXPECT_EQ(RunCommand(Bin() + " audit verify --db " + copy, &out), 1) << out;
  EXPECT_NE(out.find("differs from the signed checkpoint"), std::string::npos) << out;
}

}  // namespace
}  // namespace tearline
