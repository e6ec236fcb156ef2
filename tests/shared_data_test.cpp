// End-to-end tests on the real data in ../shared/data (skipped when absent):
// every invalid input is rejected naming the rule its README gives, every
// tricky valid input is accepted, ATT&CK round-trips through import/export.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "pattern/pattern.h"
#include "stix/stix.h"
#include "store/store.h"
#include "test_util.h"

namespace tearline {
namespace {

namespace fs = std::filesystem;
using test::DataDir;
using test::ReadFile;
using test::RunCommand;
using test::TempDir;

#define REQUIRE_DATA()                                                                  \
  if (!fs::exists(DataDir())) GTEST_SKIP() << "shared data not found at " << DataDir() \
                                           << " (tests on real data skipped)"

// Rows of the table in invalid/README.md: file -> rule column.
std::map<std::string, std::string> InvalidRules() {
  std::map<std::string, std::string> rules;
  std::istringstream in(ReadFile(DataDir() + "/invalid/README.md"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, '|')) cells.push_back(cell);
    if (cells.size() < 6) continue;
    std::string file = cells[1];
    file = file.substr(file.find('`') + 1);
    file = file.substr(0, file.find('`'));
    rules[file] = cells[4];
  }
  return rules;
}

// "§7.2.3" style tokens of a rule cell.
std::vector<std::string> SectionTokens(const std::string& text) {
  std::vector<std::string> out;
  std::regex re("§([0-9]+(\\.[0-9]+)*)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
    out.push_back((*it)[1]);
  }
  return out;
}

bool SectionNames(const std::string& section, const std::string& token) {
  std::regex re("§" + std::regex_replace(token, std::regex("\\."), "\\.") + "(?![0-9.])");
  // std::regex has no lookahead in ECMAScript? It does (ECMAScript grammar supports (?!...)).
  return std::regex_search(section, re);
}

TEST(SharedData, EveryInvalidFileIsRejectedWithItsRule) {
  REQUIRE_DATA();
  auto rules = InvalidRules();
  ASSERT_EQ(rules.size(), 60u) << "the README table should list 60 files";
  TempDir tmp;
  auto store = store::OpenSqlite(tmp.path() + "/t.db");
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->EnsureCollection("c").ok());
  for (const auto& [file, rule] : rules) {
    std::string path = DataDir() + "/invalid/" + file;
    std::string bytes = file.ends_with(".xz") ? test::Unxz(path) : ReadFile(path);
    stix::Validator v;
    v.set_marking_lookup([&](std::string_view id) { return *(*store)->HasMarkingDefinition(id); });
    auto r = v.Validate(bytes);
    EXPECT_FALSE(r.ok()) << file << " was accepted";
    std::string all;
    bool named = false;
    auto tokens = SectionTokens(rule);
    for (const auto& d : r.diagnostics) {
      if (d.severity != stix::Severity::kError) continue;
      all += "  " + d.ToString() + "\n";
      EXPECT_FALSE(d.message.empty());
      for (const auto& t : tokens) named |= SectionNames(d.section, t);
      if (tokens.empty()) named |= d.rule.rfind("limit", 0) == 0;  // resource limits (no spec section)
    }
    EXPECT_TRUE(named) << file << ": README names \"" << rule << "\"; errors were:\n" << all;
    // Nothing of it is stored.
    auto put = (*store)->Put("c", r.objects);
    ASSERT_TRUE(put.ok());
    EXPECT_EQ(put->stored, 0u) << file << ": stored " << put->stored << " objects";
  }
  auto colls = (*store)->ListCollections();
  EXPECT_EQ((*colls)[0].object_count, 0);
}

TEST(SharedData, EveryTrickyValidFileIsAcceptedAndRoundTrips) {
  REQUIRE_DATA();
  TempDir tmp;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(DataDir() + "/valid-edge")) {
    if (entry.path().extension() != ".json") continue;
    ++files;
    std::string name = entry.path().filename().string();
    std::string db = tmp.path() + "/" + name + ".db";
    std::string out;
    int rc = RunCommand(std::string(TEARLINE_BINARY) + " import --db '" + db + "' --collection c '" +
                            entry.path().string() + "'",
                        &out);
    EXPECT_EQ(rc, 0) << name << ":\n" << out;
    rc = RunCommand(std::string(TEARLINE_BINARY) + " export --version all --db '" + db + "' --collection c", &out);
    ASSERT_EQ(rc, 0) << name;
    auto in_objs = test::ObjectsByVersion(ReadFile(entry.path().string()));
    auto out_objs = test::ObjectsByVersion(out);
    EXPECT_EQ(in_objs.size(), out_objs.size()) << name;
    for (const auto& [key, json] : in_objs) {
      auto it = out_objs.find(key);
      ASSERT_NE(it, out_objs.end()) << name << ": " << key << " missing from export";
      EXPECT_TRUE(stix::JsonEqual(json, it->second)) << name << ": " << key << " changed\nin:  " << json
                                                     << "\nout: " << it->second;
    }
  }
  EXPECT_EQ(files, 24);
}

struct AttackFile {
  const char* name;
  size_t objects;
};

TEST(SharedData, AttackImportsExportsAndReimports) {
  REQUIRE_DATA();
  TempDir tmp;
  const AttackFile files[] = {{"enterprise-attack", 24772}, {"mobile-attack", 2536}, {"ics-attack", 1826}};
  for (const auto& f : files) {
    std::string json = tmp.path() + "/" + f.name + ".json";
    test::WriteFile(json, test::Unxz(DataDir() + "/attack/" + f.name + ".json.xz"));
    std::string db = tmp.path() + "/" + f.name + ".db";
    std::string out;
    int rc = RunCommand(std::string(TEARLINE_BINARY) + " import --db " + db + " --collection attack " + json, &out);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(std::to_string(f.objects) + " objects: " + std::to_string(f.objects) +
                       " stored, 0 duplicates, 0 conflicts, 0 rejected"),
              std::string::npos)
        << out;
    rc = RunCommand(std::string(TEARLINE_BINARY) + " export --version all --db " + db + " --collection attack", &out);
    ASSERT_EQ(rc, 0);
    auto in_objs = test::ObjectsByVersion(ReadFile(json));
    auto out_objs = test::ObjectsByVersion(out);
    ASSERT_EQ(in_objs.size(), f.objects);
    ASSERT_EQ(out_objs.size(), f.objects);
    size_t custom = 0;
    for (const auto& [key, in] : in_objs) {
      auto it = out_objs.find(key);
      ASSERT_NE(it, out_objs.end()) << key;
      ASSERT_TRUE(stix::JsonEqual(in, it->second)) << key;
      custom += in.find("\"x_mitre_") != std::string::npos;
    }
    EXPECT_GT(custom, f.objects / 2) << "x_mitre_* properties should be everywhere";
    rc = RunCommand(std::string(TEARLINE_BINARY) + " import --db " + db + " --collection attack " + json, &out);
    EXPECT_EQ(rc, 0);
    EXPECT_NE(out.find("0 stored, " + std::to_string(f.objects) + " duplicates"), std::string::npos) << out;
  }
}

TEST(SharedData, AttackDomainsShareObjectsInOneCollection) {
  REQUIRE_DATA();
  TempDir tmp;
  std::string db = tmp.path() + "/all.db";
  std::string args;
  size_t total = 0;
  std::set<std::string> distinct;
  std::map<std::string, std::string> seen;  // (id@modified) -> json
  size_t conflicts = 0;
  for (const char* f : {"enterprise-attack", "mobile-attack", "ics-attack"}) {
    std::string json = tmp.path() + "/" + f + ".json";
    test::WriteFile(json, test::Unxz(DataDir() + "/attack/" + f + ".json.xz"));
    args += " " + json;
    for (const auto& [key, obj] : test::ObjectsByVersion(ReadFile(json))) {
      ++total;
      auto it = seen.find(key);
      if (it == seen.end()) seen[key] = obj;
      else if (!stix::JsonEqual(it->second, obj)) ++conflicts;
    }
  }
  std::string out;
  int rc = RunCommand(std::string(TEARLINE_BINARY) + " import --db " + db + " --collection attack" + args, &out);
  // Same (id, modified) with different content in two MITRE domains is reported as a conflict.
  EXPECT_EQ(rc, conflicts ? 1 : 0) << out;
  EXPECT_NE(out.find("total: " + std::to_string(seen.size()) + " stored, " +
                     std::to_string(total - seen.size() - conflicts) + " duplicates, " + std::to_string(conflicts) +
                     " conflicts, 0 rejected"),
            std::string::npos)
      << out;
}

TEST(SharedData, AttackVersionsAcrossReleases) {
  REQUIRE_DATA();
  TempDir tmp;
  std::string old_json = tmp.path() + "/m17.json", new_json = tmp.path() + "/m18.json";
  test::WriteFile(old_json, test::Unxz(DataDir() + "/attack/mobile-attack-17.1.json.xz"));
  test::WriteFile(new_json, test::Unxz(DataDir() + "/attack/mobile-attack.json.xz"));
  std::string db = tmp.path() + "/m.db";
  std::string out;
  ASSERT_EQ(RunCommand(std::string(TEARLINE_BINARY) + " import --db " + db + " --collection m " + old_json, &out), 0) << out;
  ASSERT_EQ(RunCommand(std::string(TEARLINE_BINARY) + " import --db " + db + " --collection m " + new_json, &out), 0) << out;

  // Expected from the inputs: per id, the versions present in either release.
  std::map<std::string, std::set<std::string>> versions;  // id -> version keys
  for (const auto& path : {old_json, new_json}) {
    for (const auto& [key, json] : test::ObjectsByVersion(ReadFile(path))) {
      auto at = key.find('@');
      versions[key.substr(0, at)].insert(stix::VersionKey(key.substr(at + 1)));
    }
  }
  size_t multi = 0, all_count = 0;
  for (const auto& [id, vs] : versions) {
    multi += vs.size() > 1;
    all_count += vs.size();
  }
  ASSERT_GT(multi, 100u) << "the two releases should share many ids with new versions";

  auto check = [&](const std::string& which) {
    ASSERT_EQ(RunCommand(std::string(TEARLINE_BINARY) + " export --version " + which + " --db " + db + " --collection m", &out), 0);
    auto got = test::ObjectsByVersion(out);
    std::map<std::string, std::set<std::string>> got_versions;
    for (const auto& [key, json] : got) {
      auto at = key.find('@');
      got_versions[key.substr(0, at)].insert(stix::VersionKey(key.substr(at + 1)));
    }
    ASSERT_EQ(got_versions.size(), versions.size()) << which;
    for (const auto& [id, vs] : versions) {
      const auto& g = got_versions[id];
      if (which == "all") {
        EXPECT_EQ(g, vs) << id;
      } else if (which == "first") {
        EXPECT_EQ(g, std::set<std::string>{*vs.begin()}) << id;
      } else {
        EXPECT_EQ(g, std::set<std::string>{*vs.rbegin()}) << id;
      }
    }
    if (which == "all") {
      EXPECT_EQ(got.size(), all_count);
    }
  };
  check("all");
  check("first");
  check("last");
}

TEST(SharedData, OtherRealWorldBundlesValidate) {
  REQUIRE_DATA();
  stix::Validator v;
  for (const char* f : {"/other/opencti-datasets/companies.json", "/other/opencti-datasets/geography.json",
                        "/other/opencti-datasets/sectors.json", "/other/disarm/DISARM.json",
                        "/other/attack-flow/attack-flow-example.json", "/other/attack-flow/attack-flow-extension-2.0.0.json"}) {
    auto r = v.Validate(ReadFile(DataDir() + f));
    EXPECT_TRUE(r.ok()) << f << ": " << (r.diagnostics.empty() ? "" : r.diagnostics[0].ToString());
    EXPECT_GT(r.objects.size(), 0u) << f;
  }
  auto capec = v.Validate(test::Unxz(DataDir() + "/capec/stix-capec-2.1.json.xz"));
  EXPECT_TRUE(capec.ok());
  EXPECT_EQ(capec.objects.size(), 2683u);
  // MITRE ATLAS is documented as nonconforming (modified < created; a custom object without created).
  auto atlas = v.Validate(ReadFile(DataDir() + "/other/mitre-atlas/stix-atlas.json"));
  EXPECT_FALSE(atlas.ok());
  EXPECT_GT(atlas.objects.size(), 0u) << "the valid ATLAS objects are still accepted";
}

}  // namespace
}  // namespace tearline

namespace tearline {
namespace {

// The OASIS examples (spec-derived): every file validates, except the one whose object
// references a marking-definition that exists nowhere (refused on purpose, docs/validation.md).
TEST(SharedData, OasisExamplesValidateAndTheirPatternsParse) {
  REQUIRE_DATA();
  size_t files = 0, patterns = 0;
  for (const auto& entry : fs::recursive_directory_iterator(DataDir() + "/oasis-examples")) {
    if (entry.path().extension() != ".json") continue;
    ++files;
    std::string text = ReadFile(entry.path().string());
    stix::Validator v;
    auto r = v.Validate(text);
    bool expected_bad = entry.path().filename() == "interop-objectmarking-test.json";
    if (expected_bad) {
      ASSERT_FALSE(r.diagnostics.empty());
      EXPECT_EQ(r.diagnostics[0].rule, "marking-ref-unknown");
    } else {
      EXPECT_TRUE(r.ok()) << entry.path() << ": " << (r.diagnostics.empty() ? "" : r.diagnostics[0].ToString());
    }
    simdjson::dom::parser p;
    simdjson::dom::element root;
    if (p.parse(text).get(root)) continue;
    simdjson::dom::array objs;
    if (root["objects"].get(objs)) continue;
    for (auto o : objs) {
      std::string_view type, pattern_type, pat;
      if (o["type"].get(type) || type != "indicator" || o["pattern"].get(pat)) continue;
      if (!o["pattern_type"].get(pattern_type) && pattern_type != "stix") continue;
      ++patterns;
      auto parsed = pattern::Parse(pat);
      EXPECT_TRUE(parsed.ok()) << entry.path() << ": " << pat << ": " << parsed.status().message();
    }
  }
  EXPECT_GT(files, 20u);
  EXPECT_GT(patterns, 20u);
}

}  // namespace
}  // namespace tearline
