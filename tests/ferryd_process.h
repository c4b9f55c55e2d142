// Real ferryd processes (FERRY_FERRYD) for tests.
//
// start_ferryd: for crash tests - it listens on `listen` (an ephemeral port
// unless given a fixed endpoint, e.g. to restart it where clients already
// look) and reports the endpoint on its first line of standard output,
// which this reads; the caller kills and reaps it.
//
// ferryd_child: any arguments and extra environment, stdout read line by
// line ("ferryd metrics on ...", "ferryd listening on ..."), stderr to a
// file if asked; killed (SIGKILL) and reaped at destruction unless waited
// for.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace ferry::testing {

struct ferryd_process {
  pid_t pid = -1;
  std::string endpoint;  // empty when ferryd did not report one
  std::string kafka;     // kafka://HOST:PORT with a Kafka listener
};

/// `kafka_listen` (e.g. "127.0.0.1:0", or the port of an earlier start):
/// also the Kafka listener, reported in ferryd_process::kafka.
inline ferryd_process start_ferryd(const char* ferryd, const std::filesystem::path& dir,
                                   const std::string& listen = "tcp://127.0.0.1:*",
                                   const std::string& kafka_listen = "") {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  ferryd_process p;
  p.pid = ::fork();
  if (p.pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    if (kafka_listen.empty())
      ::execl(ferryd, ferryd, "--data-dir", dir.c_str(), "--listen", listen.c_str(), "--log-level",
              "warn", static_cast<char*>(nullptr));
    else
      ::execl(ferryd, ferryd, "--data-dir", dir.c_str(), "--listen", listen.c_str(),
              "--kafka-listen", kafka_listen.c_str(), "--log-level", "warn",
              static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char c;
  while (::read(fds[0], &c, 1) == 1 && c != '\n') out.push_back(c);
  auto at = out.find("tcp://");
  EXPECT_NE(at, std::string::npos) << "ferryd did not report its endpoint: " << out;
  if (at != std::string::npos) p.endpoint = out.substr(at);
  if (!kafka_listen.empty()) {
    std::string k;  // "ferryd kafka listening on HOST:PORT"
    while (::read(fds[0], &c, 1) == 1 && c != '\n') k.push_back(c);
    EXPECT_NE(k.find("kafka listening on "), std::string::npos) << k;
    if (const auto sp = k.rfind(' '); sp != std::string::npos)
      p.kafka = "kafka://" + k.substr(sp + 1);
  }
  ::close(fds[0]);
  return p;
}

class ferryd_child {
 public:
  ferryd_child(const char* ferryd, const std::vector<std::string>& args,
               const std::vector<std::pair<std::string, std::string>>& env = {},
               const std::filesystem::path& stderr_file = {}) {
    // Everything the child needs is built before fork(): it only execs.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> argv{const_cast<char*>(ferryd)}, envp;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);  // dup2 onto stdout clears it for the child's end
    const int err = stderr_file.empty() ? -1
                                        : ::open(stderr_file.c_str(),
                                                 O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      if (err >= 0) ::dup2(err, 2);
      ::close(fds[0]);
      ::close(fds[1]);
      ::execve(ferryd, argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    if (err >= 0) ::close(err);
    out_ = ::fdopen(fds[0], "r");
  }
  ~ferryd_child() {
    if (!reaped_ && pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ != nullptr) ::fclose(out_);
  }
  ferryd_child(const ferryd_child&) = delete;
  ferryd_child& operator=(const ferryd_child&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  /// The next line of its stdout without the newline; "" once it closed.
  std::string line() {
    std::string s;
    for (int c; (c = std::fgetc(out_)) != EOF && c != '\n';) s.push_back(static_cast<char>(c));
    return s;
  }
  /// Waits for it to exit: its exit status, or -1 when a signal ended it.
  int wait_exit() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  bool reaped_ = false;
};

}  // namespace ferry::testing
