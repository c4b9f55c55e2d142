// The broker's metrics (docs/observability.md) against known traffic: what
// a scrape of the registry says must match what was produced, fetched,
// committed and refused.
#include <gtest/gtest.h>

#include <thread>

#include "broker_fixture.h"
#include "ferry/client/admin.h"
#include "metrics_scrape.h"

namespace ferry::testing {
namespace {

using std::chrono::milliseconds;

class BrokerMetricsTest : public InprocBrokerTest {
 protected:
  BrokerMetricsTest() : InprocBrokerTest("ferry-broker-metrics") {}

  std::string scrape() { return broker_.get()->metrics().expose(); }
  double value(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    auto text = scrape();
    auto v = sample_value(text, name, labels);
    EXPECT_TRUE(v) << name << " missing in\n" << text;
    return v.value_or(-1);
  }
  client::admin admin() {
    client::client_options o;
    o.broker = endpoint();
    return client::admin(o);
  }
  void create(const std::string& topic, int partitions) {
    client::topic_config c;
    c.partitions = partitions;
    ASSERT_TRUE(admin().create_topic(topic, c));
  }
};

TEST_F(BrokerMetricsTest, RecordsAndBytesInAndOutMatchWhatWasProducedAndFetched) {
  create("orders", 2);
  create("audit", 1);
  wire_client c(endpoint());
  auto b0 = make_batch(7);
  auto b1 = make_batch(3, 7);
  auto b2 = make_batch(2);
  const auto bytes = b0.size() + b1.size();
  auto r = c.produce({{"orders", 0, b0}, {"orders", 1, b1}, {"audit", 0, b2}});
  ASSERT_EQ(r.size(), 3u);
  for (const auto& e : r) ASSERT_EQ(e.error, wire::ErrorCode::None) << e.message;

  EXPECT_EQ(value("ferry_broker_records_in_total", {{"topic", "orders"}}), 10);
  EXPECT_EQ(value("ferry_broker_bytes_in_total", {{"topic", "orders"}}),
            static_cast<double>(bytes));
  EXPECT_EQ(value("ferry_broker_records_in_total", {{"topic", "audit"}}), 2);
  EXPECT_EQ(value("ferry_broker_records_out_total", {{"topic", "orders"}}), 0);

  // A fetch from offset 4 of partition 0 returns the whole stored batch but
  // counts the 3 records from 4 on; partition 1 from 0: 3 records.
  auto f0 = c.fetch("orders", 0, 4);
  auto f1 = c.fetch("orders", 1, 0);
  ASSERT_EQ(f0.error, wire::ErrorCode::None);
  ASSERT_EQ(f1.error, wire::ErrorCode::None);
  EXPECT_EQ(value("ferry_broker_records_out_total", {{"topic", "orders"}}), 6);
  EXPECT_EQ(value("ferry_broker_bytes_out_total", {{"topic", "orders"}}),
            static_cast<double>(f0.data.size() + f1.data.size()));
}

TEST_F(BrokerMetricsTest, PartitionGaugesLatencyAndFsyncHistograms) {
  create("orders", 2);
  wire_client c(endpoint());
  ASSERT_EQ(c.produce_one("orders", 0, make_batch(5)).error, wire::ErrorCode::None);
  ASSERT_EQ(c.produce_one("orders", 0, make_batch(4)).error, wire::ErrorCode::None);
  (void)c.fetch("orders", 0, 0);
  const auto text = scrape();
  const std::map<std::string, std::string> p0 = {{"topic", "orders"}, {"partition", "0"}};
  const std::map<std::string, std::string> p1 = {{"topic", "orders"}, {"partition", "1"}};
  EXPECT_EQ(sample_value(text, "ferry_partition_high_watermark", p0), 9);
  EXPECT_EQ(sample_value(text, "ferry_partition_high_watermark", p1), 0);
  EXPECT_EQ(sample_value(text, "ferry_partition_log_start_offset", p0), 0);
  EXPECT_EQ(sample_value(text, "ferry_partition_segments", p0), 1);
  EXPECT_GT(sample_value(text, "ferry_partition_log_size_bytes", p0).value_or(0), 0);
  EXPECT_EQ(sample_value(text, "ferry_partition_failed", p0), 0);
  EXPECT_EQ(sample_value(text, "ferry_broker_topics"), 1);
  EXPECT_LT(sample_value(text, "ferry_broker_metrics_snapshot_age_seconds").value_or(99), 1.0);
  EXPECT_EQ(sample_value(text, "ferry_broker_produce_latency_seconds_count"), 2);
  EXPECT_EQ(sample_value(text, "ferry_broker_fetch_latency_seconds_count"), 1);
  EXPECT_EQ(sample_value(text, "ferry_broker_requests_total", {{"type", "Produce"}}), 2);
  // Each acknowledged produce was covered by an fsync of its partition.
  EXPECT_GE(
      sample_value(text, "ferry_storage_fsync_duration_seconds_count", {{"file", "partition"}})
          .value_or(0),
      2);
  EXPECT_EQ(sample_value(text, "ferry_broker_produce_latency_seconds_bucket", {{"le", "+Inf"}}), 2);
}

TEST_F(BrokerMetricsTest, ConsumerGroupLagInRecordsAndSeconds) {
  create("orders", 2);
  {
    // Records from a minute ago: the lag in seconds is their age.
    format::batch_builder b;
    const auto old = system_clock::instance().wall_now().value() - 60'000;
    for (int i = 0; i < 7; ++i) b.add(timestamp_ms(old + i), "k", "v");
    wire_client c(endpoint());
    ASSERT_EQ(c.produce_one("orders", 0, b.finish()).error, wire::ErrorCode::None);
    ASSERT_EQ(c.produce_one("orders", 1, make_batch(3)).error, wire::ErrorCode::None);
  }
  auto a = admin();
  std::vector<client::offset_commit> commits(2);
  commits[0].tp = {"orders", partition_id(0)};
  commits[0].next = offset(4);
  commits[1].tp = {"orders", partition_id(1)};
  commits[1].next = offset(3);
  auto reset = a.reset_offsets("billing", commits);
  ASSERT_TRUE(reset);
  const auto text = scrape();
  const std::map<std::string, std::string> g0 = {
      {"group", "billing"}, {"topic", "orders"}, {"partition", "0"}};
  const std::map<std::string, std::string> g1 = {
      {"group", "billing"}, {"topic", "orders"}, {"partition", "1"}};
  EXPECT_EQ(sample_value(text, "ferry_consumergroup_committed_offset", g0), 4);
  EXPECT_EQ(sample_value(text, "ferry_consumergroup_lag", g0), 3);
  EXPECT_EQ(sample_value(text, "ferry_consumergroup_lag", g1), 0);
  // The oldest unconsumed record (offset 4) was stamped 60 s - 4 ms ago.
  const auto age = sample_value(text, "ferry_consumergroup_lag_seconds", g0).value_or(-1);
  EXPECT_GE(age, 59.9);
  EXPECT_LT(age, 120);
  EXPECT_EQ(sample_value(text, "ferry_consumergroup_lag_seconds", g1), 0);
  EXPECT_EQ(sample_value(text, "ferry_consumergroup_members", {{"group", "billing"}}), 0);
}

// A partition the group never committed counts, from the log start; and
// the same lag is exported under kafka_exporter's names.
TEST_F(BrokerMetricsTest, UncommittedPartitionsCountAndKafkaExporterNamesMatch) {
  create("orders", 3);
  {
    wire_client c(endpoint());
    ASSERT_EQ(c.produce_one("orders", 0, make_batch(4)).error, wire::ErrorCode::None);
    ASSERT_EQ(c.produce_one("orders", 2, make_batch(5)).error, wire::ErrorCode::None);
  }
  auto a = admin();
  std::vector<client::offset_commit> commits(1);
  commits[0].tp = {"orders", partition_id(0)};
  commits[0].next = offset(1);
  ASSERT_TRUE(a.reset_offsets("billing", commits));
  const auto text = scrape();
  auto g = [](const char* p) {
    return std::map<std::string, std::string>{
        {"group", "billing"}, {"topic", "orders"}, {"partition", p}};
  };
  auto k = [](const char* p) {
    return std::map<std::string, std::string>{
        {"consumergroup", "billing"}, {"topic", "orders"}, {"partition", p}};
  };
  EXPECT_EQ(sample_value(text, "ferry_consumergroup_lag", g("0")), 3);
  EXPECT_EQ(sample_value(text, "ferry_consumergroup_lag", g("1")), 0);
  EXPECT_EQ(sample_value(text, "ferry_consumergroup_lag", g("2")), 5) << "never committed";
  EXPECT_FALSE(sample_value(text, "ferry_consumergroup_committed_offset", g("2")));
  EXPECT_EQ(sample_value(text, "kafka_consumergroup_lag", k("2")), 5);
  EXPECT_EQ(sample_value(text, "kafka_consumergroup_lag_sum",
                         {{"consumergroup", "billing"}, {"topic", "orders"}}),
            8);
  EXPECT_EQ(sample_value(text, "kafka_topic_partition_current_offset",
                         {{"topic", "orders"}, {"partition", "2"}}),
            5);
  EXPECT_EQ(sample_value(text, "kafka_topic_partition_oldest_offset",
                         {{"topic", "orders"}, {"partition", "2"}}),
            0);
}

TEST_F(BrokerMetricsTest, LagSecondsFollowsTheCommittedOffset) {
  create("orders", 1);
  const auto now = system_clock::instance().wall_now().value();
  {
    format::batch_builder old_batch, newer_batch;
    for (int i = 0; i < 3; ++i) old_batch.add(timestamp_ms(now - 60'000), "k", "v");
    for (int i = 0; i < 3; ++i) newer_batch.add(timestamp_ms(now - 10'000), "k", "v");
    wire_client c(endpoint());
    ASSERT_EQ(c.produce_one("orders", 0, old_batch.finish()).error, wire::ErrorCode::None);
    ASSERT_EQ(c.produce_one("orders", 0, newer_batch.finish()).error, wire::ErrorCode::None);
  }
  auto commit_at = [&](std::int64_t at) {
    std::vector<client::offset_commit> commits(1);
    commits[0].tp = {"orders", partition_id(0)};
    commits[0].next = offset(at);
    ASSERT_TRUE(admin().reset_offsets("billing", commits));
  };
  const std::map<std::string, std::string> g = {
      {"group", "billing"}, {"topic", "orders"}, {"partition", "0"}};
  commit_at(1);
  auto age = sample_value(scrape(), "ferry_consumergroup_lag_seconds", g).value_or(-1);
  EXPECT_GE(age, 59.9);
  EXPECT_LT(age, 70);
  // A newer committed offset: the age of the record there (read again,
  // not the previous scrape's).
  commit_at(4);
  age = sample_value(scrape(), "ferry_consumergroup_lag_seconds", g).value_or(-1);
  EXPECT_GE(age, 9.9);
  EXPECT_LT(age, 20);
  commit_at(6);
  EXPECT_EQ(sample_value(scrape(), "ferry_consumergroup_lag_seconds", g), 0);
}

TEST_F(BrokerMetricsTest, RefusalsAreCountedByErrorCode) {
  create("orders", 1);
  wire_client c(endpoint());
  EXPECT_EQ(c.produce_one("nope", 0, make_batch(1)).error, wire::ErrorCode::UnknownTopic);
  EXPECT_EQ(c.produce_one("nope", 0, make_batch(1)).error, wire::ErrorCode::UnknownTopic);
  EXPECT_EQ(c.produce_one("orders", 3, make_batch(1)).error, wire::ErrorCode::UnknownPartition);
  EXPECT_EQ(c.fetch("orders", 0, 50).error, wire::ErrorCode::OffsetOutOfRange);
  const auto before = parse_exposition(scrape());
  auto refusals = [](const std::vector<metric_sample>& all) {
    double n = 0;
    for (const auto& m : all)
      if (m.name == "ferry_broker_refused_total") n += m.value;
    return n;
  };
  c.send_raw({{std::byte{1}, std::byte{2}, std::byte{3}}});  // not an envelope
  // Answered with an error (counted) rather than dropped: wait for it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (refusals(parse_exposition(scrape())) == refusals(before) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(refusals(parse_exposition(scrape())), refusals(before) + 1);
  const auto text = scrape();
  EXPECT_EQ(sample_value(text, "ferry_broker_refused_total", {{"code", "UnknownTopic"}}), 2);
  EXPECT_EQ(sample_value(text, "ferry_broker_refused_total", {{"code", "UnknownPartition"}}), 1);
  EXPECT_EQ(sample_value(text, "ferry_broker_refused_total", {{"code", "OffsetOutOfRange"}}), 1);
  EXPECT_FALSE(sample_value(text, "ferry_broker_refused_total", {{"code", "None"}}));
  EXPECT_EQ(sample_value(text, "ferry_broker_records_in_total", {{"topic", "orders"}}), 0);
}

TEST_F(BrokerMetricsTest, ConnectionsAreCountedWhileOpen) {
  // Connection events arrive asynchronously: wait for the expected count.
  auto settles_at = [&](double want) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    double v = value("ferry_broker_connections");
    while (v != want && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
      v = value("ferry_broker_connections");
    }
    return v;
  };
  const auto before = value("ferry_broker_connections");
  {
    wire_client c(endpoint());
    create("orders", 1);  // the admin client connects and disconnects too
    ASSERT_EQ(c.produce_one("orders", 0, make_batch(1)).error, wire::ErrorCode::None);
    EXPECT_EQ(settles_at(before + 1), before + 1);
    EXPECT_GE(value("ferry_broker_connections_accepted_total"), 2);
  }
  EXPECT_EQ(settles_at(before), before);
}

TEST_F(BrokerMetricsTest, ADeletedTopicLeavesNoSeries) {
  create("orders", 1);
  create("gone", 1);
  wire_client c(endpoint());
  ASSERT_EQ(c.produce_one("gone", 0, make_batch(1)).error, wire::ErrorCode::None);
  ASSERT_TRUE(admin().delete_topic("gone"));
  const auto text = scrape();
  EXPECT_EQ(text.find("topic=\"gone\""), std::string::npos) << text;
  EXPECT_NE(text.find("topic=\"orders\""), std::string::npos);
}

TEST_F(BrokerMetricsTest, CountersSurviveInTheRegistryGivenToOpen) {
  // ferryd's case: the registry outlives (and exists before) the broker.
  auto reg = std::make_shared<metrics::registry>();
  create("orders", 3);
  broker_.stop();
  broker::broker_config cfg = config();
  cfg.data_dir = dir_;
  auto b = broker::broker::open(cfg, reg);
  ASSERT_TRUE(b) << b.error().message();
  // Before start(): the partition values loaded from disk are there.
  const auto before = reg->expose();
  EXPECT_EQ(sample_value(before, "ferry_broker_topics"), 1);
  EXPECT_EQ(
      sample_value(before, "ferry_partition_segments", {{"topic", "orders"}, {"partition", "2"}}),
      1);
  auto ep = b.value()->start();
  ASSERT_TRUE(ep);
  EXPECT_EQ(&b.value()->metrics(), reg.get());
  b.value()->stop();
  b.value().reset();
  // The broker removed its collector: scraping after it is gone is safe.
  EXPECT_FALSE(sample_value(reg->expose(), "ferry_broker_topics"));
  EXPECT_TRUE(sample_value(reg->expose(), "ferry_broker_produce_latency_seconds_count"));
}

}  // namespace
}  // namespace ferry::testing
