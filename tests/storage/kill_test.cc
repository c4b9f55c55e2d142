// Process crashes on the real file system: a child process appends to a
// partition log and is killed -- by SIGKILL at random moments, or by
// _exit() at each named crash point (FERRY_CRASH_AT). After every death the
// log is reopened and checked: every acknowledged record is there with its
// value, offsets are dense, nothing is duplicated, and appends continue.
// (Power loss, which also drops the page cache, is covered by mem_env tests.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "ferry/core/crash_point.h"
#include "test_util.h"

namespace ferry::storage {
namespace {

struct child_run {
  int status = 0;
  std::int64_t acked = 0;  // highest acknowledged high watermark reported
  std::string output;
};

// Runs the child with `env_crash` as FERRY_CRASH_AT; SIGKILLs it after
// `kill_after` if that is non-zero.
child_run run_child(const fs::path& dir, long batches, const std::string& env_crash,
                    std::chrono::milliseconds kill_after = std::chrono::milliseconds(0),
                    long retention_bytes = -1) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    if (!env_crash.empty()) ::setenv("FERRY_CRASH_AT", env_crash.c_str(), 1);
    std::string b = std::to_string(batches), r = std::to_string(retention_bytes);
    ::execl(FERRY_KILL_CHILD, FERRY_KILL_CHILD, dir.c_str(), b.c_str(), r.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  if (kill_after.count() > 0) {
    std::this_thread::sleep_for(kill_after);
    ::kill(pid, SIGKILL);
  }
  child_run out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
    out.output.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  ::waitpid(pid, &out.status, 0);
  std::istringstream lines(out.output);
  std::string word;
  std::int64_t v;
  while (lines >> word) {
    if (word == "acked" && lines >> v) out.acked = std::max(out.acked, v);
  }
  return out;
}

struct check_result {
  std::int64_t start = 0, end = 0, lost = 0, bad_values = 0;
};

check_result check_log(const fs::path& dir, std::int64_t acked) {
  check_result c;
  log_config cfg;
  cfg.name = "kill-0";
  cfg.segment_bytes = 8192;
  cfg.index_interval_bytes = 512;
  cfg.retention_time = std::chrono::milliseconds(-1);
  auto opened = partition_log::open(posix_env(), dir, cfg, system_clock::instance());
  EXPECT_TRUE(opened) << (opened ? "" : opened.error().message());
  if (!opened) return c;
  auto& log = *opened.value();
  c.start = log.log_start_offset().value();
  c.end = log.log_end_offset().value();
  if (c.end < acked) c.lost = acked - c.end;
  auto recs = testing::read_all(log);
  for (std::size_t i = 0; i < recs.size(); ++i) {
    auto want = c.start + static_cast<std::int64_t>(i);
    if (recs[i].first != want || recs[i].second.rfind("v" + std::to_string(want) + ".", 0) != 0)
      ++c.bad_values;
  }
  EXPECT_EQ(static_cast<std::int64_t>(recs.size()), c.end - c.start);
  return c;
}

class KillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-kill-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(KillTest, EveryNamedCrashPointRecoversAcknowledgedRecords) {
  const char* points[] = {"log.append.after_write",    "log.sync.after_fdatasync",
                          "log.sync.before_ack",       "log.roll.after_sync",
                          "log.roll.after_index",      "log.roll.after_create",
                          "log.retention.after_rename"};
  for (const char* point : points) {
    for (int hit : {1, 2, 5}) {
      SCOPED_TRACE(std::string(point) + ":" + std::to_string(hit));
      auto dir = root_ / (std::string(point) + "-" + std::to_string(hit));
      auto run = run_child(dir, 400, std::string(point) + ":" + std::to_string(hit),
                           std::chrono::milliseconds(0), 64 * 1024);
      ASSERT_TRUE(WIFEXITED(run.status)) << run.output;
      ASSERT_EQ(WEXITSTATUS(run.status), kCrashExitCode)
          << "the crash point was never reached: " << run.output;
      auto c = check_log(dir, run.acked);
      EXPECT_EQ(c.lost, 0);
      EXPECT_EQ(c.bad_values, 0);
      EXPECT_GE(c.end, run.acked);
      EXPECT_LE(c.start, run.acked) << "retention only removes whole old segments";
      // The log carries on after the crash, at the right offset.
      auto again = run_child(dir, 20, "");
      ASSERT_TRUE(WIFEXITED(again.status) && WEXITSTATUS(again.status) == 0) << again.output;
      EXPECT_NE(again.output.find("start " + std::to_string(c.end)), std::string::npos)
          << again.output;
      auto c2 = check_log(dir, again.acked);
      EXPECT_EQ(c2.lost, 0);
      EXPECT_EQ(c2.bad_values, 0);
    }
  }
}

TEST_F(KillTest, RandomSigkillLosesNoAcknowledgedRecord) {
  std::mt19937 rng(7);
  auto dir = root_ / "random";
  std::int64_t cycles = 0, acked_total = 0, lost = 0, bad = 0;
  for (int cycle = 0; cycle < 12; ++cycle) {
    auto run = run_child(dir, 1'000'000, "", std::chrono::milliseconds(5 + rng() % 60));
    ASSERT_TRUE(WIFSIGNALED(run.status) && WTERMSIG(run.status) == SIGKILL) << run.output;
    auto c = check_log(dir, run.acked);
    ++cycles;
    acked_total = std::max(acked_total, run.acked);
    lost += c.lost;
    bad += c.bad_values;
  }
  std::printf("kill -9 cycles=%lld acked=%lld lost=%lld bad_or_duplicate=%lld\n",
              static_cast<long long>(cycles), static_cast<long long>(acked_total),
              static_cast<long long>(lost), static_cast<long long>(bad));
  EXPECT_GT(acked_total, 0) << "the child never acknowledged anything: the test proved nothing";
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(bad, 0);
}

}  // namespace
}  // namespace ferry::storage
