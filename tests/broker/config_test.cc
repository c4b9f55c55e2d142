// Broker configuration: defaults < TOML < FERRY_* environment, and clear
// errors for bad values; ferryd --check-config exit codes.
#include "ferry/broker/config.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

namespace ferry::broker {
namespace {

env_lookup fake_env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::filesystem::path write_toml(const std::string& text) {
  auto p = std::filesystem::temp_directory_path() /
           ("ferry-config-test-" + std::to_string(::getpid()) + ".toml");
  std::ofstream(p) << text;
  return p;
}

TEST(BrokerConfig, LayersDefaultsFileAndEnvironment) {
  auto file = write_toml(R"(
data_dir = "/var/lib/ferry"
listen = "tcp://127.0.0.1:7500"
[topics]
partitions = 6
retention_ms = 3600000
[storage]
flush = "interval"
flush_interval_ms = 200
)");
  std::string err;
  auto c = load_config(
      file, fake_env({{"FERRY_TOPICS_PARTITIONS", "12"}, {"FERRY_LISTEN", "tcp://127.0.0.1:7600"}}),
      err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c.value().data_dir, "/var/lib/ferry");
  EXPECT_EQ(c.value().listen, "tcp://127.0.0.1:7600") << "environment beats the file";
  EXPECT_EQ(c.value().topics.partitions, 12);
  EXPECT_EQ(c.value().topics.retention_ms, 3600000);
  EXPECT_EQ(c.value().flush, storage::flush_mode::interval);
  EXPECT_EQ(c.value().flush_interval.count(), 200);
  EXPECT_EQ(c.value().topics.segment_bytes, 64ll << 20) << "unset keys keep their defaults";
  EXPECT_TRUE(validate(c.value(), err)) << err;
  std::filesystem::remove(file);
}

TEST(BrokerConfig, BadValuesAreRefusedWithTheKeyAndWhatIsAllowed) {
  struct bad_case {
    std::string toml;
    std::string expect;
  };
  for (const auto& [toml, expect] : std::vector<bad_case>{
           {"data_dir = 5", "data_dir"},
           {"[topics]\npartitions = \"six\"", "topics.partitions"},
           {"[storage]\nflush = \"sometimes\"", "storage.flush"},
           {"[topicz]\npartitions = 1", "unknown key 'topicz.partitions'"},
           {"listen = \"http://x\"", "listen"},
           {"data_dir = ", "ferry"},  // TOML syntax error: file:line:col
       }) {
    auto file = write_toml(toml);
    std::string err;
    auto c = load_config(file, fake_env({}), err);
    EXPECT_FALSE(c) << toml;
    EXPECT_NE(err.find(expect), std::string::npos) << "for '" << toml << "' got: " << err;
    std::filesystem::remove(file);
  }
  std::string err;
  EXPECT_FALSE(load_config(std::nullopt, fake_env({{"FERRY_TOPICS_PARTITIONS", "-3x"}}), err));
  EXPECT_NE(err.find("FERRY_TOPICS_PARTITIONS"), std::string::npos) << err;
}

TEST(BrokerConfig, ValidateChecksRangesAndCombinations) {
  std::string err;
  broker_config c;
  EXPECT_FALSE(validate(c, err));
  EXPECT_NE(err.find("data_dir"), std::string::npos);
  c.data_dir = "/tmp/x";
  EXPECT_TRUE(validate(c, err)) << err;
  c.topics.partitions = 0;
  EXPECT_FALSE(validate(c, err));
  EXPECT_NE(err.find("topics.partitions"), std::string::npos);
  c.topics.partitions = 1;
  c.socket.max_message_bytes = c.topics.max_message_bytes;
  EXPECT_FALSE(validate(c, err)) << "room for the envelope is required";
  EXPECT_NE(err.find("network.max_message_bytes"), std::string::npos);
  c.socket.max_message_bytes = broker_config{}.socket.max_message_bytes;
  c.ledger_retention = std::chrono::milliseconds(1000);
  EXPECT_FALSE(validate(c, err)) << "below a minute";
  EXPECT_NE(err.find("groups.ledger_retention_ms"), std::string::npos) << err;
  c.ledger_retention = broker_config{}.ledger_retention;
  c.ledger_max_keys = 0;
  EXPECT_FALSE(validate(c, err));
  EXPECT_NE(err.find("groups.ledger_max_keys"), std::string::npos) << err;
  c.ledger_max_keys = 1;
  EXPECT_TRUE(validate(c, err)) << err;
}

int run(const std::string& cmd) {
  int status = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(FerrydCheckConfig, ExitCodes) {
  const std::string ferryd = FERRY_FERRYD;
  EXPECT_EQ(run(ferryd + " --data-dir /tmp/ferry-check --check-config"), 0);
  EXPECT_EQ(run(ferryd + " --check-config"), 2) << "no data dir";
  auto bad = write_toml("[storage]\nflush = \"never\"\n");
  EXPECT_EQ(run(ferryd + " --data-dir /tmp/x --config " + bad.string() + " --check-config"), 2);
  std::filesystem::remove(bad);
  EXPECT_EQ(run("FERRY_TOPICS_PARTITIONS=0 " + ferryd + " --data-dir /tmp/x --check-config"), 2);
  EXPECT_EQ(run(ferryd + " --data-dir /tmp/x --flush sometimes --check-config"), 2);
  EXPECT_EQ(run(ferryd + " --no-such-flag"), 2);
}

}  // namespace
}  // namespace ferry::broker
