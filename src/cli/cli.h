// The single `tearline` binary: subcommands validate, import, export, stats.
//
// Exit codes everywhere: 0 success; 1 the input was read but something in it
// was rejected (invalid objects, conflicts); 2 usage errors, missing files,
// unreadable databases and other I/O failures.
#pragma once

#include <cstdio>
#include <string>

#include "common/status.h"

namespace tearline::cli {

//! Runs the command line; returns the process exit code.
int Run(int argc, char** argv);

//! Reads a whole file ("-" is stdin). Fails with Io/Limit and a clear message.
Result<std::string> ReadInput(const std::string& path, size_t max_bytes);

//! A progress bar on stderr when stderr is a terminal; silent otherwise.
class Progress {
 public:
  Progress(std::string label, size_t total);
  ~Progress();
  void Update(size_t done);
  void Finish();

 private:
  std::string label_;
  size_t total_;
  bool tty_;
  bool finished_ = false;
};

}  // namespace tearline::cli
