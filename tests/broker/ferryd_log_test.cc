// ferryd --log-format json: every line a real ferryd writes to stderr is one
// JSON object, also when a message holds a quote, a newline and non-ASCII
// text (here: the data directory's name, in the refusal of a second ferryd
// on the same directory); --log-level applies per module.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "ferryd_process.h"

namespace {

namespace fs = std::filesystem;

using ferry::testing::ferryd_child;

// Every line of the file parsed as JSON, with the fields every line has.
std::vector<nlohmann::json> json_lines(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  EXPECT_TRUE(text.empty() || text.back() == '\n') << "a torn last line: " << text;
  std::vector<nlohmann::json> out;
  std::istringstream lines(text);
  const std::regex ts(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  for (std::string line; std::getline(lines, line);) {
    try {
      auto j = nlohmann::json::parse(line);
      EXPECT_TRUE(j.is_object()) << line;
      for (const char* key : {"ts", "level", "logger", "msg"})
        EXPECT_TRUE(j.contains(key) && j[key].is_string()) << key << " in " << line;
      EXPECT_TRUE(j["pid"].is_number_integer()) << line;
      EXPECT_TRUE(std::regex_match(j.value("ts", ""), ts)) << line;
      out.push_back(std::move(j));
    } catch (const nlohmann::json::exception& e) {
      ADD_FAILURE() << "not a JSON line (" << e.what() << "): " << line;
    }
  }
  return out;
}

TEST(FerrydLog, JsonLinesParseWithQuotesAndNewlinesInMessages) {
  const fs::path base =
      fs::temp_directory_path() / ("ferryd-log-test-" + std::to_string(::getpid()));
  fs::remove_all(base);
  fs::create_directories(base);
  // A directory name no log line can hold unescaped.
  const fs::path data = base / "data \"quoted\"\nsecond line caf\xc3\xa9 \\ \t";
  const fs::path err_a = base / "a.err";
  const fs::path err_b = base / "b.err";

  ferryd_child a(FERRY_FERRYD,
                 {"--data-dir", data.string(), "--listen", "tcp://127.0.0.1:*", "--log-format",
                  "json", "--log-level", "info,ferryd=warn"},
                 {}, err_a);
  const auto first_line = a.line();
  ASSERT_NE(first_line.find("tcp://127.0.0.1:"), std::string::npos)
      << "ferryd did not start: " << first_line;
  const std::string endpoint = first_line.substr(first_line.find("tcp://"));

  // A second broker on the same directory is refused, naming the directory.
  ferryd_child b(FERRY_FERRYD,
                 {"--data-dir", data.string(), "--listen", "tcp://127.0.0.1:*", "--log-format",
                  "json", "--log-level", "info"},
                 {}, err_b);
  EXPECT_EQ(b.wait_exit(), 1);
  ::kill(a.pid(), SIGTERM);
  EXPECT_EQ(a.wait_exit(), 0);

  auto refused = json_lines(err_b);
  ASSERT_FALSE(refused.empty());
  bool named_dir = false;
  bool ferryd_said_why = false;
  for (const auto& j : refused) {
    EXPECT_EQ(j["pid"], b.pid());
    const auto msg = j["msg"].get<std::string>();
    if (j["logger"] == "ferry.broker" && j["level"] == "error" &&
        msg.find("data directory " + data.string() + " is in use by another ferryd (pid " +
                 std::to_string(a.pid()) + ")") == 0)
      named_dir = true;
    if (j["logger"] == "ferry.ferryd" && j["level"] == "error" &&
        msg.find("cannot open data directory " + data.string() + ":") == 0)
      ferryd_said_why = true;
  }
  EXPECT_TRUE(named_dir) << "the refusal, with the directory's name decoded intact";
  EXPECT_TRUE(ferryd_said_why) << "ferryd's own exit reason goes through the logger too";

  auto served = json_lines(err_a);
  bool listening = false;
  for (const auto& j : served) {
    EXPECT_NE(j["logger"], "ferry.ferryd")
        << "ferryd=warn hides its info line (SIGTERM received): " << j.dump();
    if (j["logger"] == "ferry.broker" && j["level"] == "info" &&
        j["msg"] == "listening on " + endpoint)
      listening = true;
  }
  EXPECT_TRUE(listening) << "broker info lines pass the default level";
  fs::remove_all(base);
}

// The same run in text: ferryd's own lines go through the logger (with
// timestamp, level and logger name), not bare fprintf.
TEST(FerrydLog, TextFormatIsTheDefault) {
  const fs::path base =
      fs::temp_directory_path() / ("ferryd-log-text-test-" + std::to_string(::getpid()));
  fs::remove_all(base);
  ferryd_child a(FERRY_FERRYD,
                 {"--data-dir", (base / "data").string(), "--listen", "tcp://127.0.0.1:*",
                  "--flush", "interval", "--log-level", "warn"},
                 {}, base.string() + ".err");
  const auto first_line = a.line();
  ASSERT_NE(first_line.find("tcp://"), std::string::npos) << first_line;
  ::kill(a.pid(), SIGTERM);
  EXPECT_EQ(a.wait_exit(), 0);
  std::ifstream in(base.string() + ".err");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_TRUE(std::regex_search(
      ss.str(),
      std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d warning \[ferry\.ferryd\] )"
                 R"(flush=interval acknowledges records before they are on disk)")))
      << ss.str();
  EXPECT_EQ(ss.str().find('{'), std::string::npos) << ss.str();
  fs::remove_all(base);
  fs::remove(base.string() + ".err");
}

}  // namespace
