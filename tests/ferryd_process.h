// Starts a real ferryd (FERRY_FERRYD) on a data directory for crash tests:
// it listens on `listen` (an ephemeral port unless given a fixed endpoint,
// e.g. to restart it where clients already look) and reports the endpoint
// on its first line of standard output, which this reads.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace ferry::testing {

struct ferryd_process {
  pid_t pid = -1;
  std::string endpoint;  // empty when ferryd did not report one
};

inline ferryd_process start_ferryd(const char* ferryd, const std::filesystem::path& dir,
                                   const std::string& listen = "tcp://127.0.0.1:*") {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  ferryd_process p;
  p.pid = ::fork();
  if (p.pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execl(ferryd, ferryd, "--data-dir", dir.c_str(), "--listen", listen.c_str(), "--log-level",
            "warn", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char c;
  while (::read(fds[0], &c, 1) == 1 && c != '\n') out.push_back(c);
  ::close(fds[0]);
  auto at = out.find("tcp://");
  EXPECT_NE(at, std::string::npos) << "ferryd did not report its endpoint: " << out;
  if (at != std::string::npos) p.endpoint = out.substr(at);
  return p;
}

}  // namespace ferry::testing
