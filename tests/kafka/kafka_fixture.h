// A ferryd process with both listeners for the tests of Kafka clients
// (kcat, librdkafka) against it, and the helpers they share.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli_run.h"
#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferryd_process.h"

namespace ferry::testing {

class KafkaBroker : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("ferry-kafka");
    start_ferryd("127.0.0.1:0");
  }
  /// Starts ferryd on the data dir (again, after a kill); `kafka_listen`
  /// "127.0.0.1:0" picks a port, the same one is kept across restarts.
  void start_ferryd(const std::string& kafka_listen) {
    ferryd_ = std::make_unique<ferryd_child>(
        FERRY_FERRYD,
        std::vector<std::string>{"--data-dir", (dir_ / "data").string(), "--listen",
                                 "tcp://127.0.0.1:*", "--kafka-listen", kafka_listen,
                                 "--metrics-listen", "127.0.0.1:0", "--log-level", "warn"},
        env_, dir_ / "ferryd.err");
    const auto metrics = ferryd_->line();  // "ferryd metrics on http://HOST:PORT/metrics"
    ASSERT_NE(metrics.find("http://"), std::string::npos) << metrics;
    metrics_ = metrics.substr(metrics.find("http://") + 7);
    metrics_ = metrics_.substr(0, metrics_.find('/'));
    const auto native = ferryd_->line();
    ASSERT_NE(native.find("tcp://"), std::string::npos) << native;
    native_ = native.substr(native.find("tcp://"));
    const auto kafka = ferryd_->line();
    ASSERT_NE(kafka.find("kafka listening on "), std::string::npos) << kafka;
    kafka_ = kafka.substr(kafka.rfind(' ') + 1);
  }
  /// kill -9 (the child is killed and reaped when destroyed).
  void kill_ferryd() { ferryd_.reset(); }
  void TearDown() override {
    ferryd_.reset();
    std::filesystem::remove_all(dir_);
  }

  void create(const std::string& topic, int partitions) {
    client::admin a(base_client_options(native_));
    client::topic_config c;
    c.partitions = partitions;
    ASSERT_TRUE(a.create_topic(topic, c)) << a.last_error_message();
  }
  run_result kcat(const std::string& args, const std::string& input = "") {
    std::string cmd = "timeout 60 kcat -b " + kafka_ + " " + args;
    if (!input.empty()) cmd = "printf '" + input + "' | " + cmd;
    return run_command(cmd, dir_ / "kcat.err");
  }
  std::vector<client::consumer_record> read_natively(const std::string& topic, int partitions,
                                                     std::size_t want) {
    auto o = client::consumer_options{};
    static_cast<client::client_options&>(o) = base_client_options(native_);
    client::consumer c(o);
    std::vector<client::topic_partition> tps;
    for (int p = 0; p < partitions; ++p) tps.push_back({topic, partition_id(p)});
    EXPECT_TRUE(c.assign(tps));
    EXPECT_TRUE(c.seek_to_beginning(tps));
    std::vector<client::consumer_record> got;
    for (int i = 0; i < 100 && got.size() < want; ++i) {
      auto r = c.poll(std::chrono::milliseconds(100));
      EXPECT_TRUE(r);
      if (!r) break;
      for (auto& x : r.value()) got.push_back(std::move(x));
    }
    return got;
  }

  std::filesystem::path dir_;
  std::unique_ptr<ferryd_child> ferryd_;
  std::string native_, kafka_;
  std::string metrics_;  ///< HOST:PORT of /metrics
  /// Extra environment for ferryd (FERRY_* settings), read at each start.
  std::vector<std::pair<std::string, std::string>> env_;
};

}  // namespace ferry::testing
