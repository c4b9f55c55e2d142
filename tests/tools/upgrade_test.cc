// ferryd --upgrade-data-dir: a data directory written by Ferry's format 1
// (tests/fixtures/format1: the order pipeline plus a topic whose first
// segments retention removed, made by a format-1 build with make.sh) is
// refused as it is, converted offline, and then serves exactly what the
// format-1 broker served: the same records at the same offsets (keys,
// values decoded through the registry, headers, timestamps), the same log
// start and end offsets, the same committed offsets, the same schemas, and
// the idempotency ledger keys.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli_run.h"
#include "ferry/client/consumer.h"
#include "ferryd_process.h"

namespace ferry::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> sorted_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  std::sort(out.begin(), out.end());
  return out;
}

class Upgrade : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("ferry-upgrade");
    auto r =
        run_command("tar -xzf " FERRY_FORMAT1_FIXTURE " -C " + dir_.string(), dir_ / "tar.err");
    ASSERT_EQ(r.code, 0) << r.err;
    data_ = dir_ / "demo" / "data";
    expected_ = dir_ / "expected";
  }
  void TearDown() override { fs::remove_all(dir_); }

  run_result cli(const std::string& args) {
    return run_command(std::string(FERRY_CLI) + " --broker " + endpoint_ + " " + args,
                       dir_ / "cli.err");
  }

  fs::path dir_, data_, expected_;
  std::string endpoint_;
};

TEST_F(Upgrade, Format1IsRefusedThenConvertedLosslessly) {
  // As it is: refused, naming the command.
  {
    ferryd_child d(FERRY_FERRYD, {"--data-dir", data_.string(), "--listen", "tcp://127.0.0.1:*"},
                   {}, dir_ / "refused.err");
    EXPECT_EQ(d.wait_exit(), 1);
    const auto err = read_text(dir_ / "refused.err");
    EXPECT_NE(err.find("format 1"), std::string::npos) << err;
    EXPECT_NE(err.find("--upgrade-data-dir"), std::string::npos) << err;
  }
  // The conversion.
  auto up = run_command(
      std::string(FERRY_FERRYD) + " --data-dir " + data_.string() + " --upgrade-data-dir",
      dir_ / "upgrade.err");
  ASSERT_EQ(up.code, 0) << up.err;
  EXPECT_NE(up.out.find("upgraded"), std::string::npos) << up.out;
  EXPECT_TRUE(fs::exists(data_ / "format1-backup" / "topics"));
  EXPECT_EQ(read_text(data_ / "FORMAT"), "ferry data format 2\n");
  // A second run has nothing to do.
  auto again = run_command(
      std::string(FERRY_FERRYD) + " --data-dir " + data_.string() + " --upgrade-data-dir",
      dir_ / "again.err");
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("already in format 2"), std::string::npos) << again.err;

  ferryd_child d(FERRY_FERRYD, {"--data-dir", data_.string(), "--listen", "tcp://127.0.0.1:*",
                                "--log-level", "warn"});
  const auto line = d.line();
  ASSERT_NE(line.find("tcp://"), std::string::npos) << line;
  endpoint_ = line.substr(line.find("tcp://"));

  // Every topic: the same partitions and offsets, the same records.
  int topics = 0;
  for (const auto& e : fs::directory_iterator(expected_)) {
    const auto name = e.path().filename().string();
    if (name.rfind("topic-", 0) != 0) continue;
    const auto topic = name.substr(6, name.size() - 6 - 5);
    SCOPED_TRACE(topic);
    ++topics;
    const auto want = json::parse(read_text(e.path()));
    auto got_r = cli("-o json topics describe " + topic);
    ASSERT_EQ(got_r.code, 0) << got_r.err;
    const auto got = json::parse(got_r.out);
    ASSERT_EQ(got["partitions"], want["partitions"]);
    for (std::size_t p = 0; p < want["partition_details"].size(); ++p) {
      const auto& w = want["partition_details"][p];
      const auto& g = got["partition_details"][p];
      EXPECT_EQ(g["log_start_offset"], w["log_start_offset"]);
      EXPECT_EQ(g["log_end_offset"], w["log_end_offset"]);
      EXPECT_EQ(g["high_watermark"], w["high_watermark"]);
      EXPECT_EQ(g["segments"], w["segments"]);
    }
    auto records = cli("-o json consume " + topic + " --from-beginning -e --decode");
    ASSERT_EQ(records.code, 0) << records.err;
    EXPECT_EQ(sorted_lines(records.out),
              sorted_lines(read_text(expected_ / ("records-" + topic + ".jsonl"))));
  }
  EXPECT_GE(topics, 9);

  // Committed offsets of every group.
  for (const char* g : {"payment", "inventory", "shipping"}) {
    SCOPED_TRACE(g);
    const auto want = json::parse(read_text(expected_ / (std::string("group-") + g + ".json")));
    auto got_r = cli(std::string("-o json groups describe ") + g);
    ASSERT_EQ(got_r.code, 0) << got_r.err;
    const auto got = json::parse(got_r.out);
    ASSERT_EQ(got["partitions"].size(), want["partitions"].size());
    for (std::size_t i = 0; i < want["partitions"].size(); ++i) {
      EXPECT_EQ(got["partitions"][i]["topic"], want["partitions"][i]["topic"]);
      EXPECT_EQ(got["partitions"][i]["current_offset"], want["partitions"][i]["current_offset"]);
    }
  }
  // The schema registry.
  auto schemas = cli("-o json schema list");
  ASSERT_EQ(schemas.code, 0) << schemas.err;
  EXPECT_EQ(json::parse(schemas.out), json::parse(read_text(expected_ / "schemas.json")));

  // The idempotency ledger: every key inventory processed is still known.
  std::vector<std::string> keys;
  for (const auto& l : sorted_lines(read_text(expected_ / "records-orders.jsonl"))) {
    const auto r = json::parse(l);
    if (r["headers"].contains("ferry.idempotency-key"))
      keys.push_back(r["headers"]["ferry.idempotency-key"].get<std::string>());
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  ASSERT_GE(keys.size(), 50u);
  client::consumer_options co;
  co.broker = endpoint_;
  co.group_id = "inventory";
  client::consumer c(co);
  auto found = c.ledger_lookup(keys, std::chrono::milliseconds(0));
  ASSERT_TRUE(found) << found.error().message();
  std::size_t known = 0;
  for (const auto& f : found.value()) known += f.has_value();
  EXPECT_EQ(known, keys.size()) << "every key inventory processed";
}

}  // namespace
}  // namespace ferry::testing
