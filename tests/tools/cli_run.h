// Runs the `ferry` CLI as a user would, for the CLI tests: a shell command
// line, with what it writes to standard output and standard error and its
// exit code; and reads rows of the tables it prints.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "ferry/client/admin.h"
#include "ferry/client/options.h"
#include "inproc_broker.h"

namespace ferry::testing {

struct run_result {
  int code = -1;  // -1: did not exit normally
  std::string out;
  std::string err;
};

/// Runs `command` through the shell with standard error sent to `err_file`
/// (read back into `err`).
inline run_result run_command(const std::string& command, const std::filesystem::path& err_file) {
  const std::string cmd = command + " 2>" + err_file.string();
  run_result r;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(err_file);
  r.err.assign(std::istreambuf_iterator<char>(e), std::istreambuf_iterator<char>());
  return r;
}

/// Whitespace-separated cells of the table line (in a command's output)
/// starting with the cells `first` (empty: none).
inline std::vector<std::string> table_row(const std::string& out,
                                          const std::vector<std::string>& first) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream cells(line);
    std::vector<std::string> v;
    std::string c;
    while (cells >> c) v.push_back(c);
    if (v.size() >= first.size() && std::equal(first.begin(), first.end(), v.begin())) return v;
  }
  return {};
}

/// Options of the CLI tests' in-process clients (which set up what the CLI
/// then shows) on `endpoint`: base_client_options with a 10 ms backoff.
inline client::client_options cli_client_options(const std::string& endpoint) {
  auto o = base_client_options(endpoint);
  o.retry_backoff = std::chrono::milliseconds(10);
  return o;
}

/// An administrative commit of `group` at `next` (the group must have no
/// members), checked: the CLI tests' way to give a group a known position.
inline void admin_commit(const client::client_options& options, const std::string& group,
                         const std::string& topic, int partition, std::int64_t next) {
  client::admin a(options);
  auto r = a.reset_offsets(group, {{{topic, partition_id(partition)}, offset(next), "", {}}});
  ASSERT_TRUE(r) << r.error().message() << ": " << a.last_error_message();
  ASSERT_EQ(r.value().size(), 1u);
  ASSERT_FALSE(r.value()[0].error) << r.value()[0].message;
}

/// Milliseconds since the epoch.
inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace ferry::testing
