// kill -9 of ferryd under librdkafka's idempotent producer (acks=all):
// the producer keeps sending through the crash and the restart on the same
// address; afterwards every record it was told is stored is read back at
// the partition and offset it was told, and no record is stored twice -
// the producer's sequence numbers survive the crash with the log.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "ferry/client/admin.h"
#include "kafka_fixture.h"

namespace ferry::testing {
namespace {

using namespace std::chrono_literals;

class KafkaCrash : public KafkaBroker {};

struct delivered {
  std::mutex mu;
  std::map<std::string, std::pair<int, std::int64_t>> at;  // value -> partition, offset
  std::map<std::string, std::string> failed;               // value -> error
  std::atomic<int> acked{0};
};

TEST_F(KafkaCrash, AcknowledgedRecordsSurviveKill9UnderAnIdempotentProducer) {
  create("ledger", 3);
  delivered d;
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const char* k, const char* v) {
    ASSERT_EQ(rd_kafka_conf_set(conf, k, v, err, sizeof err), RD_KAFKA_CONF_OK) << err;
  };
  set("bootstrap.servers", kafka_.c_str());
  set("enable.idempotence", "true");
  set("acks", "all");
  set("linger.ms", "2");
  set("message.timeout.ms", "120000");
  set("retry.backoff.ms", "50");
  set("reconnect.backoff.ms", "50");
  set("reconnect.backoff.max.ms", "200");
  rd_kafka_conf_set_opaque(conf, &d);
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* k = static_cast<delivered*>(opaque);
    std::string value(static_cast<const char*>(m->payload), m->len);
    std::lock_guard lock(k->mu);
    if (m->err) {
      k->failed[value] = rd_kafka_err2str(m->err);
    } else {
      k->at[value] = {m->partition, m->offset};
      ++k->acked;
    }
  });
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;

  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, "ledger", nullptr);
  constexpr int kRecords = 20000;
  std::atomic<bool> sent_all{false};
  std::thread sender([&] {
    for (int i = 0; i < kRecords; ++i) {
      const std::string key = "acct-" + std::to_string(i % 101);
      const std::string value = "entry-" + std::to_string(i);
      for (;;) {
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                             const_cast<char*>(value.data()), value.size(), key.data(), key.size(),
                             nullptr) == 0)
          break;
        const auto e = rd_kafka_last_error();
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) return;
        rd_kafka_poll(rk, 10);
      }
      if (i % 64 == 0) rd_kafka_poll(rk, 0);
      if (i == kRecords / 2) std::this_thread::sleep_for(50ms);  // spread across the crash
    }
    sent_all = true;
  });

  // Crash once a few thousand are acknowledged, while more are in flight.
  for (int i = 0; i < 6000 && d.acked < 3000; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_GE(d.acked.load(), 3000) << "the producer is not getting acknowledgements";
  const int before = d.acked;
  kill_ferryd();
  std::this_thread::sleep_for(300ms);
  start_ferryd(kafka_);  // same address: the producer reconnects
  sender.join();
  ASSERT_TRUE(sent_all) << "rd_kafka_produce failed: " << rd_kafka_err2str(rd_kafka_last_error());
  ASSERT_EQ(rd_kafka_flush(rk, 180000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  EXPECT_LT(before, kRecords) << "the crash happened with records still to send";
  std::cerr << "acknowledged before the crash: " << before << "\n";

  // Read the whole log back.
  client::admin a(base_client_options(native_));
  auto t = a.describe_topic("ledger");
  ASSERT_TRUE(t) << a.last_error_message();
  std::size_t stored = 0;
  for (const auto& p : t.value().partitions)
    stored += static_cast<std::size_t>(p.high_watermark.value());
  auto got = read_natively("ledger", 3, stored);
  ASSERT_EQ(got.size(), stored);
  std::map<std::string, int> copies;
  std::map<std::pair<int, std::int64_t>, std::string> by_position;
  for (const auto& r : got) {
    ++copies[r.value.value_or("")];
    by_position[{r.partition.value(), r.offset.value()}] = r.value.value_or("");
  }
  for (const auto& [value, n] : copies) EXPECT_EQ(n, 1) << value << " stored " << n << " times";
  std::lock_guard lock(d.mu);
  EXPECT_EQ(d.at.size() + d.failed.size(), static_cast<std::size_t>(kRecords));
  for (const auto& [value, pos] : d.at) {
    auto it = by_position.find(pos);
    ASSERT_NE(it, by_position.end())
        << value << " acknowledged at " << pos.first << "/" << pos.second << " is not in the log";
    EXPECT_EQ(it->second, value) << "at " << pos.first << "/" << pos.second;
  }
  // With 120 s to deliver, nothing should fail; report any that did.
  EXPECT_TRUE(d.failed.empty()) << d.failed.size() << " failed, e.g. "
                                << (d.failed.empty() ? "" : d.failed.begin()->second);
}

}  // namespace
}  // namespace ferry::testing
