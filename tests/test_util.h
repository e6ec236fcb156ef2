// Helpers for the end-to-end tests (tests/ only).
#pragma once

#include <simdjson.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace tearline::test {

inline std::string DataDir() { return TEARLINE_SHARED_DATA; }

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
}

//! Runs a shell command, capturing stdout and stderr together. Returns the exit code.
inline int RunCommand(const std::string& cmd, std::string* output) {
  output->clear();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline std::string Unxz(const std::string& path) {
  std::string out;
  RunCommand("xz -dc '" + path + "'", &out);
  return out;
}

//! A fresh directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tearline-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

//! The objects of a bundle keyed "id@modified" (modified empty when absent), compact JSON.
inline std::map<std::string, std::string> ObjectsByVersion(const std::string& bundle) {
  std::map<std::string, std::string> out;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(bundle).get(root)) return out;
  simdjson::dom::array objects;
  if (root["objects"].get(objects)) return out;
  for (simdjson::dom::element o : objects) {
    std::string_view id, modified;
    if (o["id"].get(id)) continue;
    if (o["modified"].get(modified)) modified = {};
    out[std::string(id) + "@" + std::string(modified)] = simdjson::minify(o);
  }
  return out;
}

}  // namespace tearline::test
