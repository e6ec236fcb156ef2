#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/cli.h"

namespace tearline::cli {

Result<std::string> ReadInput(const std::string& path, size_t max_bytes) {
  std::string data;
  if (path == "-") {
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) {
      data.append(buf, n);
      if (data.size() > max_bytes) return Status::Limit("standard input is larger than " + std::to_string(max_bytes) + " bytes");
    }
    if (std::ferror(stdin)) return Status::Io("cannot read standard input");
    return data;
  }
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Status::Io("cannot read " + path + ": " + std::strerror(errno));
  auto size = in.tellg();
  if (size < 0) return Status::Io("cannot read " + path + " (not a regular file?)");
  if (static_cast<size_t>(size) > max_bytes) {
    return Status::Limit(path + " is " + std::to_string(size) + " bytes; the limit is " + std::to_string(max_bytes));
  }
  data.reserve(static_cast<size_t>(size) + 64);  // parser padding: parse in place, no copy
  data.resize(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(data.data(), size)) return Status::Io("cannot read " + path + ": " + std::strerror(errno));
  return data;
}

Progress::Progress(std::string label, size_t total)
    : label_(std::move(label)), total_(total), tty_(isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() { Finish(); }

void Progress::Update(size_t done) {
  if (!tty_ || total_ == 0) return;
  constexpr int kWidth = 30;
  int filled = static_cast<int>(kWidth * done / total_);
  std::string bar(filled, '#');
  bar.append(kWidth - filled, ' ');
  std::fprintf(stderr, "\r%s [%s] %zu/%zu", label_.c_str(), bar.c_str(), done, total_);
  std::fflush(stderr);
}

void Progress::Finish() {
  if (!tty_ || finished_) return;
  finished_ = true;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
}

}  // namespace tearline::cli
