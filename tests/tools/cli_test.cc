// The `ferry` CLI against an in-process broker: commands, JSON output and
// exit codes, run as a user would run them.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "ferry/broker/broker.h"

namespace {

struct run_result {
  int code = -1;
  std::string out;
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ferry::broker::broker_config c;
    c.data_dir = dir_;
    c.listen = "tcp://127.0.0.1:*";
    auto b = ferry::broker::broker::open(c);
    ASSERT_TRUE(b);
    broker_ = std::move(b).value();
    auto ep = broker_->start();
    ASSERT_TRUE(ep);
    endpoint_ = ep.value();
  }
  void TearDown() override {
    broker_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Runs `ferry ARGS` with FERRY_BROKER set; stdin from `input`.
  run_result ferry(const std::string& args, const std::string& input = "") {
    auto in = dir_ / "stdin.txt";
    {
      FILE* f = std::fopen(in.c_str(), "w");
      std::fputs(input.c_str(), f);
      std::fclose(f);
    }
    std::string cmd = "FERRY_BROKER=" + endpoint_ + " " + FERRY_CLI + " " + args + " < " +
                      in.string() + " 2>/dev/null";
    run_result r;
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    int status = ::pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  }
  static std::vector<nlohmann::json> lines(const std::string& s) {
    std::vector<nlohmann::json> out;
    std::istringstream in(s);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<ferry::broker::broker> broker_;
  std::string endpoint_;
};

TEST_F(CliTest, TopicsLifecycle) {
  EXPECT_EQ(ferry("topics create orders --partitions 3").code, 0);
  EXPECT_EQ(ferry("topics create orders --partitions 3").code, 1) << "already exists: refused";
  auto list = ferry("-o json topics list");
  ASSERT_EQ(list.code, 0);
  auto j = nlohmann::json::parse(list.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["topic"], "orders");
  EXPECT_EQ(j[0]["partitions"], 3);
  auto d = ferry("-o json topics describe orders");
  ASSERT_EQ(d.code, 0);
  EXPECT_EQ(nlohmann::json::parse(d.out)["partition_details"].size(), 3u);
  auto plan = ferry("topics delete orders");
  EXPECT_EQ(plan.code, 0);
  EXPECT_NE(plan.out.find("--execute"), std::string::npos);
  EXPECT_EQ(ferry("topics describe orders").code, 0) << "the plan changed nothing";
  EXPECT_EQ(ferry("topics delete orders --execute").code, 0);
  EXPECT_EQ(ferry("topics describe orders").code, 1);
}

TEST_F(CliTest, ProduceAndConsumeWithKeysAndJson) {
  ASSERT_EQ(ferry("topics create orders --partitions 2").code, 0);
  auto p = ferry("-o json produce orders --key-separator : --header src=test",
                 "c1:first\nc2:second\nc1:third\n");
  ASSERT_EQ(p.code, 0);
  auto acks = lines(p.out);
  ASSERT_EQ(acks.size(), 3u);
  for (auto& a : acks) EXPECT_EQ(a["topic"], "orders");
  auto c = ferry("-o json consume orders --from-beginning -e");
  ASSERT_EQ(c.code, 0);
  auto recs = lines(c.out);
  ASSERT_EQ(recs.size(), 3u);
  std::map<std::string, std::vector<std::string>> by_key;
  for (auto& r : recs) {
    by_key[r["key"]].push_back(r["value"]);
    EXPECT_EQ(r["headers"]["src"], "test");
  }
  EXPECT_EQ(by_key["c1"], (std::vector<std::string>{"first", "third"}))
      << "same key: same partition, in order";
  EXPECT_EQ(by_key["c2"], std::vector<std::string>{"second"});
  // --partition/--offset start exactly at a record seen above.
  for (auto& r : recs) {
    if (r["value"] != "third") continue;
    auto at = ferry("consume orders --partition " + std::to_string(r["partition"].get<int>()) +
                    " --offset " + std::to_string(r["offset"].get<long>()) + " -n 1");
    ASSERT_EQ(at.code, 0);
    EXPECT_EQ(at.out, "third\n");
  }
  auto n = ferry("consume orders --from-beginning -n 1");
  EXPECT_EQ(n.code, 0);
  EXPECT_EQ(std::count(n.out.begin(), n.out.end(), '\n'), 1);
  auto from = ferry("consume orders --from-time 2000-01-01T00:00:00Z -e");
  EXPECT_EQ(std::count(from.out.begin(), from.out.end(), '\n'), 3);
  auto future = ferry("consume orders --from-time 2999-01-01T00:00:00Z -e");
  EXPECT_EQ(future.code, 0);
  EXPECT_EQ(future.out, "");
}

TEST_F(CliTest, ExitCodesDistinguishFailures) {
  EXPECT_EQ(ferry("produce nope", "x\n").code, 1) << "refused: unknown topic";
  EXPECT_EQ(ferry("topics create").code, 2) << "usage error";
  EXPECT_EQ(ferry("consume x --offset 5").code, 2) << "--offset needs --partition";
  EXPECT_EQ(ferry("consume x --from-time yesterday").code, 2);
  EXPECT_EQ(ferry("--broker tcp://127.0.0.1:1 --timeout-ms 300 topics list").code, 3)
      << "unreachable";
}

TEST_F(CliTest, BenchPrintsOneJsonSummary) {
  auto b = ferry("-o json bench produce --records 2000 --size 64");
  ASSERT_EQ(b.code, 0);
  auto j = nlohmann::json::parse(b.out);
  EXPECT_EQ(j["records"], 2000);
  for (const char* k : {"records_per_sec", "mb_per_sec", "p50_ms", "p99_ms", "p999_ms"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_GT(j["records_per_sec"].get<double>(), 0);
  auto e = ferry("-o json bench e2e --records 200 --rate 1000");
  ASSERT_EQ(e.code, 0);
  EXPECT_EQ(nlohmann::json::parse(e.out)["records"], 200);
  auto list = ferry("-o json topics list");
  EXPECT_EQ(nlohmann::json::parse(list.out).size(), 0u) << "bench topics are removed afterwards";
}

}  // namespace
