// An in-process broker, a producer and helpers to drive a worker step by
// step on a manual clock (concurrency 0: handlers run on the test thread).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/producer.h"
#include "ferry/core/clock.h"
#include "ferry/runtime/worker.h"
#include "inproc_broker.h"
#include "kafka_target.h"
#include "read_topic.h"

namespace ferry::testing {

using namespace std::chrono_literals;

/// How the worker (and the test's own clients) reach the broker.
enum class transport { native, kafka };

class WorkerFixture : public ::testing::Test {
 protected:
  /// native: ferryd's protocol (tcp://); kafka: the broker's Kafka listener
  /// through kafka:// (librdkafka).
  virtual transport under_test() const { return transport::native; }

  void SetUp() override {
    dir_ = make_temp_dir("ferry-runtime");
    ASSERT_FALSE(dir_.empty());
    broker::broker_config c;
    c.kafka_listen = "127.0.0.1:0";
    broker_.start(dir_, c);
    if (on_cluster()) suffix_ = unique_suffix();
  }
  /// Over kafka:// to the cluster in FERRY_TEST_KAFKA (kafka_target.h),
  /// not to the in-process broker.
  bool on_cluster() const { return under_test() == transport::kafka && !external_kafka().empty(); }
  /// This test's own name for a topic or group: `name` itself on the
  /// in-process broker; on a cluster with a suffix unique to the test
  /// (before the first '.', so "orders.dlq" stays "orders"'s dead letters).
  std::string own(std::string_view name) const { return scoped_name(name, suffix_); }
  void TearDown() override {
    broker_.stop();
    std::filesystem::remove_all(dir_);
  }
  void restart_broker() { broker_.restart(); }
  /// A restart that forgets the groups' members (as before membership was
  /// persisted, or after losing groups/members.json): members must rejoin
  /// and their partitions are lost.
  void restart_broker_forgetting_members() {
    broker_.stop();
    std::filesystem::remove(dir_ / "groups" / "members.json");
    broker_.restart();
  }

  /// Client options over the transport under test.
  client::client_options base() const {
    if (on_cluster()) return base_client_options(external_kafka());
    return base_client_options(under_test() == transport::kafka ? broker_.kafka_endpoint()
                                                                : broker_.endpoint());
  }
  /// Client options over ferryd's native protocol, whatever is under test.
  client::client_options native() const { return base_client_options(broker_.endpoint()); }
  runtime::worker_options worker_options(const std::string& group) {
    runtime::worker_options o;
    static_cast<client::client_options&>(o.consumer) = base();
    o.consumer.group_id = group;
    o.consumer.session_timeout = 3s;
    o.consumer.heartbeat_interval = 100ms;
    o.consumer.fetch_max_wait = 20ms;
    static_cast<client::client_options&>(o.producer) = base();
    o.producer.linger = 0ms;
    o.concurrency = 0;
    o.clock = &clock_;
    o.random = [] { return 1.0; };  // jitter off in effect: the full backoff
    o.worker_name = "test-worker";
    return o;
  }
  void create(const std::string& topic, int partitions = 1) {
    client::admin a(base());
    ASSERT_TRUE(a.create_topic(topic, {.partitions = partitions}));
  }
  /// Sends records (key, value, idempotency key), all to `partition`.
  void produce(const std::string& topic,
               const std::vector<std::tuple<std::string, std::string, std::string>>& recs,
               int partition = 0) {
    client::producer_options po;
    static_cast<client::client_options&>(po) = base();
    client::producer p(po);
    for (const auto& [k, v, idem] : recs) {
      client::producer_record r;
      r.topic = topic;
      r.key = k;
      r.value = v;
      if (!idem.empty()) r.idempotency_key = idem;
      r.partition = partition_id(partition);
      ASSERT_TRUE(p.send(std::move(r), {}));
    }
    ASSERT_TRUE(p.flush(10s));
  }
  /// Every record of a topic (all partitions), from the start.
  std::vector<client::consumer_record> read_all(const std::string& topic) {
    return read_topic(base(), topic);
  }
  /// Steps the worker until `pred` holds (real-time bound, no sleeps beyond
  /// the polls themselves).
  bool step_until(runtime::worker& w, const std::function<bool()>& pred,
                  std::chrono::milliseconds limit = 15s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > end) return false;
      auto r = w.run_once(10ms);
      EXPECT_TRUE(r) << r.error().message() << ": " << w.last_error();
      if (!r) return false;
    }
    return true;
  }
  /// Steps for a while, for things that must NOT happen.
  void step_for(runtime::worker& w, std::chrono::milliseconds d) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end) {
      auto r = w.run_once(10ms);
      EXPECT_TRUE(r) << r.error().message();
    }
  }
  std::optional<std::int64_t> committed(const std::string& group, const std::string& topic,
                                        int partition = 0) {
    client::admin a(base());
    auto c = a.committed_offsets(group, {{topic, partition_id(partition)}});
    if (!c || c.value().empty() || !c.value()[0].next) return std::nullopt;
    return c.value()[0].next->value();
  }

  std::filesystem::path dir_;
  std::string suffix_;  // of own() names; empty but on a cluster
  inproc_broker broker_;
  manual_clock clock_;
};

/// The same tests over both transports (TEST_P(WorkerTest, ...)).
class WorkerTest : public WorkerFixture, public ::testing::WithParamInterface<transport> {
 protected:
  transport under_test() const override { return GetParam(); }
};

inline std::string transport_name(const ::testing::TestParamInfo<transport>& p) {
  return p.param == transport::kafka ? "kafka" : "native";
}

}  // namespace ferry::testing
