// A topic creation that fails leaves nothing (issue 24, item 1): under a
// file-descriptor limit too low for its partitions, `topics create` is
// refused, the topic is not listed, nothing of it stays in the data
// directory, and a restart with more fds neither brings it back nor is
// blocked by it. Run against a real ferryd under prlimit(1).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "ferry/client/admin.h"
#include "ferryd_process.h"
#include "inproc_broker.h"

namespace {

namespace fs = std::filesystem;

struct running {
  std::unique_ptr<ferry::testing::ferryd_child> child;
  std::string endpoint;
};

running start(const fs::path& data, const std::string& nofile) {
  std::vector<std::string> args;
  const std::vector<std::pair<std::string, std::string>> env;
  const char* program = FERRY_FERRYD;
  if (!nofile.empty()) {
    program = "/usr/bin/prlimit";
    args = {"--nofile=" + nofile + ":" + nofile, FERRY_FERRYD};
  }
  for (const char* a : {"--data-dir", "", "--listen", "tcp://127.0.0.1:*", "--log-level", "warn"})
    args.emplace_back(a);
  args[args.size() - 5] = data.string();
  running r;
  r.child = std::make_unique<ferry::testing::ferryd_child>(program, args, env,
                                                           data.parent_path() / "ferryd.err");
  const auto line = r.child->line();  // "ferryd listening on tcp://..."
  const auto at = line.find("tcp://");
  EXPECT_NE(at, std::string::npos) << line;
  if (at != std::string::npos) r.endpoint = line.substr(at);
  return r;
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(TopicCreate, AFailedCreationUnderAnFdLimitLeavesNothing) {
  const auto dir = ferry::testing::make_temp_dir("ferry-create");
  const auto data = dir / "data";
  {
    auto b = start(data, "200");
    ASSERT_FALSE(b.endpoint.empty());
    ferry::client::admin a(ferry::testing::base_client_options(b.endpoint));
    ASSERT_TRUE(a.create_topic("small", {.partitions = 4})) << a.last_error_message();
    auto big = a.create_topic("P2k", {.partitions = 2000});
    ASSERT_FALSE(big) << "2000 partitions cannot open under 200 fds";
    EXPECT_NE(a.last_error_message().find("nothing was created"), std::string::npos)
        << a.last_error_message();
    auto listed = a.list_topics();
    ASSERT_TRUE(listed);
    ASSERT_EQ(listed.value().size(), 1u);
    EXPECT_EQ(listed.value()[0].name, "small");
    EXPECT_EQ(entries(data / "topics"), std::vector<std::string>{"small"})
        << "no P2k, no leftover of its staging";
    ::kill(b.child->pid(), SIGTERM);
    EXPECT_EQ(b.child->wait_exit(), 0);
  }
  // A start with the default limit: the failed topic is not there, and the
  // start is not refused.
  auto b = start(data, "");
  ASSERT_FALSE(b.endpoint.empty());
  ferry::client::admin a(ferry::testing::base_client_options(b.endpoint));
  auto listed = a.list_topics();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed.value().size(), 1u);
  EXPECT_EQ(listed.value()[0].name, "small");
  ::kill(b.child->pid(), SIGTERM);
  EXPECT_EQ(b.child->wait_exit(), 0);
  fs::remove_all(dir);
}

// What a crash in the middle of a creation leaves (a .creating- directory)
// is removed at start, with a log line; the topic never appears.
TEST(TopicCreate, AStagedCreationLeftByACrashIsRemovedAtStart) {
  const auto dir = ferry::testing::make_temp_dir("ferry-create");
  const auto data = dir / "data";
  {
    auto first = start(data, "");  // a data directory of this format
    ::kill(first.child->pid(), SIGTERM);
    EXPECT_EQ(first.child->wait_exit(), 0);
  }
  fs::create_directories(data / "topics" / ".creating-1-1" / "0");
  {
    std::FILE* f = std::fopen((data / "topics" / ".creating-1-1" / "topic.json").c_str(), "w");
    std::fputs("{\"format\":1,\"name\":\"ghost\",\"partitions\":1}", f);
    std::fclose(f);
  }
  auto b = start(data, "");
  ASSERT_FALSE(b.endpoint.empty());
  ferry::client::admin a(ferry::testing::base_client_options(b.endpoint));
  auto listed = a.list_topics();
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed.value().empty());
  EXPECT_TRUE(entries(data / "topics").empty());
  ::kill(b.child->pid(), SIGTERM);
  EXPECT_EQ(b.child->wait_exit(), 0);
  std::ifstream err(dir / "ferryd.err");
  const std::string log((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find("a topic creation that did not finish"), std::string::npos) << log;
  fs::remove_all(dir);
}

}  // namespace
