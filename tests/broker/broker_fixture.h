// A fixture for wire-level broker tests: an in-process broker
// (tests/inproc_broker.h) on a temporary data directory, started before each
// test on an ephemeral port and stopped after it; restarts keep the port.
// A suite derives from it, names the directory's prefix and may override
// config() to change the broker's configuration.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "ferry/broker/broker.h"
#include "inproc_broker.h"
#include "wire_client.h"

namespace ferry::testing {

class InprocBrokerTest : public ::testing::Test {
 protected:
  /// `dir_prefix`: the data directory is /tmp/<dir_prefix>-XXXXXX.
  explicit InprocBrokerTest(std::string dir_prefix) : dir_prefix_(std::move(dir_prefix)) {}

  void SetUp() override {
    dir_ = make_temp_dir(dir_prefix_);
    ASSERT_FALSE(dir_.empty());
    start(config());
  }
  void TearDown() override {
    broker_.stop();
    std::filesystem::remove_all(dir_);
  }

  /// The configuration SetUp starts the broker with: data_dir is dir_,
  /// an ephemeral port on 127.0.0.1 (on a start, inproc_broker sets both),
  /// the rest the defaults unless a suite overrides this.
  virtual broker::broker_config config() const {
    broker::broker_config c;
    c.data_dir = dir_;
    c.listen = "tcp://127.0.0.1:*";
    return c;
  }
  /// Starts the broker on dir_ with `c` (after a stop: on the same port).
  void start(broker::broker_config c) { broker_.start(dir_, std::move(c)); }
  /// Stops the broker gracefully and starts it again on the same data
  /// directory, configuration and port.
  void restart() { broker_.restart(); }
  [[nodiscard]] const std::string& endpoint() const { return broker_.endpoint(); }

  /// Every record value stored in `topic` partition `partition`, in offset
  /// order (fetched from offset 0 to the high watermark).
  std::vector<std::string> stored_values(const std::string& topic, std::int32_t partition) {
    wire_client c(endpoint());
    std::vector<std::string> out;
    std::int64_t at = 0;
    for (;;) {
      auto f = c.fetch(topic, partition, at);
      EXPECT_EQ(f.error, wire::ErrorCode::None);
      if (f.data.empty()) break;
      auto v = values_in(f.data, at);
      out.insert(out.end(), v.begin(), v.end());
      at = f.high_watermark;
    }
    return out;
  }

  std::filesystem::path dir_;
  inproc_broker broker_;

 private:
  std::string dir_prefix_;
};

}  // namespace ferry::testing
