// An in-process broker::broker for integration tests, on 127.0.0.1: the
// first start takes an ephemeral port and restarts keep it, so clients
// reconnect to the restarted broker by themselves. With a temporary data
// directory (make_temp_dir) and the client options the tests share.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "ferry/broker/broker.h"
#include "ferry/client/options.h"

namespace ferry::testing {

/// A new directory /tmp/<prefix>-XXXXXX; empty (and a test failure) when
/// it could not be made.
inline std::filesystem::path make_temp_dir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl << " failed";
    return {};
  }
  return tmpl;
}

/// Client options on `endpoint`: 5 s requests, 10 s API calls, 20 ms backoff.
inline client::client_options base_client_options(const std::string& endpoint) {
  client::client_options o;
  o.broker = endpoint;
  o.request_timeout = std::chrono::seconds(5);
  o.api_timeout = std::chrono::seconds(10);
  o.retry_backoff = std::chrono::milliseconds(20);
  return o;
}

class inproc_broker {
 public:
  /// Opens and starts a broker on `data_dir` (the rest from `config`, but
  /// for the listen address). Failures are test failures.
  void start(const std::filesystem::path& data_dir, broker::broker_config config = {}) {
    config_ = std::move(config);
    config_.data_dir = data_dir;
    open_and_start();
  }
  /// Stops the broker (gracefully) and starts it again on the same data
  /// directory and port.
  void restart() {
    stop();
    open_and_start();
  }
  /// Stops and closes the broker; nothing when it does not run.
  void stop() {
    if (broker_) broker_->stop();
    broker_.reset();
  }
  [[nodiscard]] const std::string& endpoint() const { return endpoint_; }
  /// kafka://HOST:PORT of the Kafka listener (config kafka_listen set, e.g.
  /// "127.0.0.1:0"; the port is kept across restarts); empty without one.
  [[nodiscard]] std::string kafka_endpoint() const {
    return kafka_port_ ? "kafka://127.0.0.1:" + std::to_string(kafka_port_) : std::string();
  }
  /// The running broker (null when stopped): to stop it without closing it,
  /// e.g. while a client still waits for what stop() answers.
  [[nodiscard]] broker::broker* get() const { return broker_.get(); }

 private:
  void open_and_start() {
    auto c = config_;
    c.listen = port_ ? "tcp://127.0.0.1:" + std::to_string(port_) : "tcp://127.0.0.1:*";
    if (kafka_port_) c.kafka_listen = "127.0.0.1:" + std::to_string(kafka_port_);
    auto b = broker::broker::open(std::move(c));
    ASSERT_TRUE(b) << b.error().message();
    broker_ = std::move(b).value();
    auto ep = broker_->start();
    ASSERT_TRUE(ep) << ep.error().message();
    endpoint_ = ep.value();
    port_ = std::stoi(endpoint_.substr(endpoint_.rfind(':') + 1));
    if (const auto k = broker_->kafka_address(); !k.empty())
      kafka_port_ = std::stoi(k.substr(k.rfind(':') + 1));
  }

  broker::broker_config config_;
  std::unique_ptr<broker::broker> broker_;
  std::string endpoint_;
  int port_ = 0;
  int kafka_port_ = 0;
};

}  // namespace ferry::testing
