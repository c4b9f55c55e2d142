#include "ferry/client/producer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>

#include "fake_broker.h"
#include "ferry/client/errc.h"
#include "ferry/client/partitioner.h"
#include "ferry/core/errc.h"
#include "ferry/protocol/errc.h"

namespace ferry::client {
namespace {

using namespace std::chrono_literals;
using testing::fake_broker;
using testing::fast_producer_options;
using testing::rec;
using testing::request;
using sclock = std::chrono::steady_clock;
using tp_key = std::pair<std::string, std::int32_t>;

// A broker that stores what it is sent: DescribeTopic reports `partitions`,
// every valid produce entry is appended at the partition's next offset.
struct fake_log {
  std::mutex mu;
  std::int32_t partitions = 3;
  std::map<tp_key, std::int64_t> next;
  std::map<tp_key, std::vector<std::string>> values;             // in stored order
  std::vector<std::vector<testing::produced>> produce_requests;  // every request's entries
  int describes = 0;

  void serve(fake_broker& f, request& r) {
    std::lock_guard lock(mu);
    if (r.type() == wire::Body::DescribeTopicRequest) {
      ++describes;
      f.reply_describe(r, partitions);
      return;
    }
    if (r.type() == wire::Body::InitProducerRequest) {  // idempotence is on by default
      flatbuffers::FlatBufferBuilder fbb;
      f.reply(r, fbb, wire::Body::InitProducerResponse,
              wire::CreateInitProducerResponse(fbb, wire::ErrorCode::None, 0, 7, 0).Union());
      return;
    }
    ASSERT_EQ(r.type(), wire::Body::ProduceRequest);
    auto entries = testing::produce_entries(r);
    std::vector<fake_broker::produce_result> results;
    for (const auto& e : entries) {
      std::string why;
      auto h = format::validate_batch(e.batch, format::validation::full, &why);
      EXPECT_TRUE(h) << why;
      if (!h) {
        results.push_back({e.topic, e.partition, wire::ErrorCode::InvalidBatch, -1, why});
        continue;
      }
      EXPECT_EQ(h.value().base_offset, offset(0));  // the broker stamps it
      const tp_key k{e.topic, e.partition};
      const auto base = next[k];
      next[k] += h.value().record_count;
      for (auto& v : testing::batch_values(e.batch)) values[k].push_back(v);
      results.push_back({e.topic, e.partition, wire::ErrorCode::None, base, ""});
    }
    produce_requests.push_back(std::move(entries));
    f.reply_produce(r, results);
  }
};

template <typename T>
bool ready_within(std::future<T>& f, std::chrono::milliseconds d) {
  return f.wait_for(d) == std::future_status::ready;
}

TEST(Producer, BatchesRecordsPerPartitionAndManyPartitionsPerRequest) {
  fake_log log;
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); });
  auto o = fast_producer_options(fb);
  o.linger = 10s;  // only flush() sends
  producer p(o);

  struct ack {
    std::int32_t partition;
    std::int64_t offset;
    std::string value;
  };
  std::mutex mu;
  std::vector<ack> acks;
  auto cb_for = [&](std::string v) {
    return [&, v](const result<record_metadata>& m) {
      ASSERT_TRUE(m) << m.error().message();
      std::lock_guard lock(mu);
      acks.push_back({m.value().partition.value(), m.value().offset.value(), v});
    };
  };
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(p.send(rec("a" + std::to_string(i), 0), cb_for("a" + std::to_string(i))));
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(p.send(rec("b" + std::to_string(i), 1), cb_for("b" + std::to_string(i))));
  ASSERT_TRUE(p.flush(2s));

  {
    std::lock_guard lock(log.mu);
    ASSERT_EQ(log.produce_requests.size(), 1u);  // both partitions in one request
    ASSERT_EQ(log.produce_requests[0].size(), 2u);
    EXPECT_EQ(log.values[tp_key("t", 0)],
              (std::vector<std::string>{"a0", "a1", "a2"}));  // one batch of three
    EXPECT_EQ(log.values[tp_key("t", 1)], (std::vector<std::string>{"b0", "b1"}));
  }
  std::lock_guard lock(mu);
  ASSERT_EQ(acks.size(), 5u);  // flush() returned after every callback
  std::map<std::int32_t, std::vector<std::pair<std::int64_t, std::string>>> per_partition;
  for (const auto& a : acks) per_partition[a.partition].emplace_back(a.offset, a.value);
  EXPECT_EQ(per_partition[0],
            (std::vector<std::pair<std::int64_t, std::string>>{{0, "a0"}, {1, "a1"}, {2, "a2"}}));
  EXPECT_EQ(per_partition[1],
            (std::vector<std::pair<std::int64_t, std::string>>{{0, "b0"}, {1, "b1"}}));
}

TEST(Producer, LingerSendsWithoutFlush) {
  fake_log log;
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); });
  auto o = fast_producer_options(fb);
  o.linger = 50ms;
  producer p(o);
  auto f0 = p.send(rec("x", 2));
  auto f1 = p.send(rec("y", 2));
  ASSERT_TRUE(ready_within(f0, 2s));
  ASSERT_TRUE(ready_within(f1, 2s));
  auto m0 = f0.get();
  auto m1 = f1.get();
  ASSERT_TRUE(m0) << m0.error().message();
  ASSERT_TRUE(m1);
  EXPECT_EQ(m0.value().topic, "t");
  EXPECT_EQ(m0.value().partition, partition_id(2));
  EXPECT_EQ(m0.value().offset, offset(0));
  EXPECT_EQ(m1.value().offset, offset(1));
  std::lock_guard lock(log.mu);
  EXPECT_EQ(log.produce_requests.size(), 1u);  // lingered into one batch
}

TEST(Producer, FullBatchesAreSentWithoutWaitingForLinger) {
  fake_log log;
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); });
  auto o = fast_producer_options(fb);
  o.linger = 10s;
  o.batch_bytes = 300;
  producer p(o);
  std::vector<std::future<result<record_metadata>>> fs;
  for (int i = 0; i < 10; ++i)
    fs.push_back(p.send(rec(std::string(100, static_cast<char>('a' + i)), 0)));
  // The first batches filled up and went out although linger is 10 s.
  ASSERT_TRUE(ready_within(fs[0], 2s));
  ASSERT_TRUE(p.flush(2s));
  for (std::size_t i = 0; i < fs.size(); ++i) {
    auto m = fs[i].get();
    ASSERT_TRUE(m) << m.error().message();
    EXPECT_EQ(m.value().offset, offset(static_cast<std::int64_t>(i)));
  }
  std::lock_guard lock(log.mu);
  std::size_t batches = 0;
  for (const auto& req : log.produce_requests) {
    for (const auto& e : req) {
      ++batches;
      EXPECT_LE(e.batch.size(), 300u);
      EXPECT_EQ(testing::batch_values(e.batch).size(),
                2u);  // two 100-byte records fit in 300 bytes
    }
  }
  EXPECT_EQ(batches, 5u);
}

TEST(Producer, KeepsPerPartitionOrderWithOneRequestInFlightPerPartition) {
  // The fake holds every produce request until its next tick, so requests
  // overlap; it checks that no partition is ever in two of them.
  fake_log log;
  std::vector<request> held;
  std::set<tp_key> held_partitions;
  std::atomic<int> violations{0};
  std::atomic<std::size_t> max_held{0};
  std::atomic<int> multi_partition_requests{0};
  fake_broker fb(
      [&](fake_broker& f, request& r) {
        if (r.type() != wire::Body::ProduceRequest) return log.serve(f, r);
        auto entries = testing::produce_entries(r);
        if (entries.size() > 1) ++multi_partition_requests;
        for (const auto& e : entries) {
          if (!held_partitions.insert({e.topic, e.partition}).second) ++violations;
        }
        held.push_back(std::move(r));
        max_held = std::max(max_held.load(), held.size());
      },
      [&](fake_broker& f) {
        for (auto& r : held) log.serve(f, r);
        held.clear();
        held_partitions.clear();
      });
  auto o = fast_producer_options(fb);
  o.batch_bytes = 120;  // about two records per batch: many batches
  o.max_in_flight = 8;
  producer p(o);

  std::mutex mu;
  std::map<std::int32_t, std::vector<std::pair<std::int64_t, std::string>>> acks;
  constexpr int kRecords = 150;
  for (int i = 0; i < kRecords; ++i) {
    const std::int32_t part = i % 3;
    std::string v = "p" + std::to_string(part) + "-" + std::to_string(i);
    ASSERT_TRUE(p.send(rec(v, part), [&, part, v](const result<record_metadata>& m) {
      ASSERT_TRUE(m) << m.error().message();
      std::lock_guard lock(mu);
      acks[part].emplace_back(m.value().offset.value(), v);
    }));
  }
  ASSERT_TRUE(p.flush(5s));
  EXPECT_EQ(violations.load(), 0);
  EXPECT_GT(multi_partition_requests.load(), 0);

  std::lock_guard lock(mu);
  std::lock_guard log_lock(log.mu);
  for (std::int32_t part = 0; part < 3; ++part) {
    std::vector<std::string> sent;
    for (int i = part; i < kRecords; i += 3)
      sent.push_back("p" + std::to_string(part) + "-" + std::to_string(i));
    EXPECT_EQ(log.values[tp_key("t", part)], sent)
        << "partition " << part << " stored out of order";
    ASSERT_EQ(acks[part].size(), sent.size());
    for (std::size_t i = 0; i < sent.size();
         ++i) {  // callbacks in send order, with consecutive offsets
      EXPECT_EQ(acks[part][i].first, static_cast<std::int64_t>(i));
      EXPECT_EQ(acks[part][i].second, sent[i]);
    }
  }
}

TEST(Producer, KeyedRecordsGoWhereKafkasDefaultPartitionerSends) {
  fake_log log;
  log.partitions = 5;
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); });
  producer p(fast_producer_options(fb));
  std::vector<std::pair<std::string, std::future<result<record_metadata>>>> fs;
  for (int i = 0; i < 40; ++i) {
    std::string key = "order-" + std::to_string(i);
    fs.emplace_back(key, p.send(rec("v", std::nullopt, key)));
  }
  ASSERT_TRUE(p.flush(2s));
  for (auto& [key, f] : fs) {
    auto m = f.get();
    ASSERT_TRUE(m) << m.error().message();
    EXPECT_EQ(m.value().partition, partition_for_key(key, 5)) << key;
  }
  std::lock_guard lock(log.mu);
  std::set<std::int32_t> used;
  for (const auto& req : log.produce_requests) {
    for (const auto& e : req) {
      used.insert(e.partition);
      for (const auto& key : testing::batch_keys(e.batch))
        EXPECT_EQ(partition_for_key(key, 5).value(), e.partition);
    }
  }
  EXPECT_GT(used.size(), 1u);
}

TEST(Producer, RecordsWithoutKeyGoRoundRobinPerBatch) {
  fake_log log;
  log.partitions = 3;
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); });
  auto o = fast_producer_options(fb);
  o.linger = 10s;
  producer p(o);
  std::vector<std::int32_t> partitions;
  for (int round = 0; round < 4; ++round) {
    std::vector<std::future<result<record_metadata>>> fs;
    for (int i = 0; i < 4; ++i) fs.push_back(p.send(rec("v")));
    ASSERT_TRUE(p.flush(2s));
    std::set<std::int32_t> in_round;
    for (auto& f : fs) in_round.insert(f.get().value().partition.value());
    ASSERT_EQ(in_round.size(), 1u) << "one batch, one partition";
    partitions.push_back(*in_round.begin());
  }
  for (std::size_t i = 1; i < partitions.size(); ++i)
    EXPECT_EQ(partitions[i], (partitions[i - 1] + 1) % 3);
}

TEST(Producer, RetriesARetriableErrorThenDelivers) {
  fake_log log;
  std::mutex mu;
  std::vector<std::vector<std::byte>> attempts;
  fake_broker fb([&](fake_broker& f, request& r) {
    if (r.type() == wire::Body::ProduceRequest) {
      auto entries = testing::produce_entries(r);
      std::lock_guard lock(mu);
      attempts.push_back(entries.at(0).batch);
      if (attempts.size() == 1) {
        f.reply_produce(r, {{"t", 0, wire::ErrorCode::ShuttingDown, -1, "stopping"}});
        return;
      }
    }
    log.serve(f, r);
  });
  producer p(fast_producer_options(fb));
  auto fut = p.send(rec("v", 0));
  ASSERT_TRUE(ready_within(fut, 3s));
  auto m = fut.get();
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m.value().offset, offset(0));
  std::lock_guard lock(mu);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0], attempts[1]);  // the same batch, resent
}

TEST(Producer, FailsAfterDeliveryTimeoutWhenTheBrokerStaysSilent) {
  fake_log log;
  std::atomic<int> produce_attempts{0};
  fake_broker fb([&](fake_broker& f, request& r) {
    if (r.type() == wire::Body::ProduceRequest) {
      ++produce_attempts;  // and never answer
      return;
    }
    log.serve(f, r);
  });
  auto o = fast_producer_options(fb);
  o.request_timeout = 30ms;
  o.delivery_timeout = 150ms;
  producer p(o);
  const auto start = sclock::now();
  auto fut = p.send(rec("v", 0));
  ASSERT_TRUE(ready_within(fut, 3s));
  const auto took = sclock::now() - start;
  auto m = fut.get();
  ASSERT_FALSE(m) << "reported success for a record the broker never acknowledged";
  EXPECT_EQ(m.error(), protocol::errc::timed_out);
  EXPECT_GE(took, 140ms);
  EXPECT_LT(took, 2s);
  EXPECT_GE(produce_attempts.load(), 2);  // retried before giving up
}

TEST(Producer, DeliversAcrossABrokerRestartWithoutWaitingForTheRequestTimeout) {
  fake_log log;
  std::atomic<int> swallowed{0};
  auto first = std::make_unique<fake_broker>([&](fake_broker& f, request& r) {
    if (r.type() == wire::Body::ProduceRequest) {
      ++swallowed;  // the broker dies before answering
      return;
    }
    log.serve(f, r);
  });
  const std::string endpoint = first->endpoint();
  auto o = fast_producer_options(*first);
  o.request_timeout = 10s;  // recovery must not depend on it
  o.delivery_timeout = 20s;
  producer p(o);
  auto fut = p.send(rec("v", 0));
  for (int i = 0; i < 200 && swallowed.load() == 0; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(swallowed.load(), 1);
  first.reset();
  const auto start = sclock::now();
  fake_broker second([&](fake_broker& f, request& r) { log.serve(f, r); }, {}, endpoint);
  ASSERT_TRUE(ready_within(fut, 3s)) << "not resent after the disconnect";
  auto m = fut.get();
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m.value().offset, offset(0));
  EXPECT_LT(sclock::now() - start, 3s);
}

TEST(Producer, NonRetriableErrorsFailAtOnce) {
  std::atomic<int> produce_attempts{0};
  fake_log log;
  fake_broker fb([&](fake_broker& f, request& r) {
    if (r.type() != wire::Body::ProduceRequest) return log.serve(f, r);
    const auto e = testing::produce_entries(r).at(0);
    if (produce_attempts++ == 0) {
      f.reply_produce(
          r, {{e.topic, e.partition, wire::ErrorCode::RecordTooLarge, -1, "batch above 1 MiB"}});
    } else {
      f.reply_error(r, wire::ErrorCode::InvalidRequest, "nope");
    }
  });
  producer p(fast_producer_options(fb));
  auto a = p.send(rec("v", 0)).get();
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error(), errc::record_too_large);
  auto b = p.send(rec("v", 0)).get();
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error(), errc::invalid_request);
  EXPECT_EQ(produce_attempts.load(), 2);
}

TEST(Producer, BackPressureBlocksSendUntilSpaceOrMaxBlock) {
  fake_log log;
  testing::produce_gate gate([&](fake_broker& f, request& r) { log.serve(f, r); });
  fake_broker fb(gate.handler(), gate.tick());
  auto o = fast_producer_options(fb);
  o.buffer_bytes = 4096;
  const std::string big(1000, 'x');

  {  // Blocks for max_block, then fails.
    auto o1 = o;
    o1.max_block = 40ms;
    producer p(o1);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(p.send(rec(big, 0), nullptr));
    const auto start = sclock::now();
    auto r = p.send(rec(big, 0), nullptr);
    const auto took = sclock::now() - start;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), ferry::errc::timed_out);
    EXPECT_GE(took, 35ms);
    EXPECT_LT(took, 1s);
    gate.release = true;
    ASSERT_TRUE(p.flush(2s));
    gate.release = false;
  }
  {  // Unblocks as soon as acknowledgements free space.
    auto o2 = o;
    o2.max_block = 5s;
    producer p(o2);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(p.send(rec(big, 1), nullptr));
    std::atomic<bool> done{false};
    result<void> blocked_result = success();
    std::thread t([&] {
      blocked_result = p.send(rec(big, 1), nullptr);
      done = true;
    });
    std::this_thread::sleep_for(30ms);
    EXPECT_FALSE(done.load()) << "send() should block while the buffer is full";
    gate.release = true;
    t.join();
    EXPECT_TRUE(blocked_result);
    ASSERT_TRUE(p.flush(2s));
  }
}

TEST(Producer, FailsFastOnInvalidRecords) {
  fake_log log;
  fake_broker fb([&](fake_broker& f, request& r) {
    if (r.type() == wire::Body::DescribeTopicRequest &&
        r.envelope().body_as_DescribeTopicRequest()->name()->str() == "missing") {
      f.reply_describe(r, 0, wire::ErrorCode::UnknownTopic, 0, "no such topic");
      return;
    }
    if (r.type() == wire::Body::DescribeTopicRequest &&
        r.envelope().body_as_DescribeTopicRequest()->name()->str() == "small") {
      f.reply_describe(r, 1, wire::ErrorCode::None, 500);
      return;
    }
    log.serve(f, r);
  });
  auto o = fast_producer_options(fb);
  o.buffer_bytes = 64 << 10;
  producer p(o);
  std::atomic<int> callbacks{0};
  auto cb = [&](const result<record_metadata>&) { ++callbacks; };

  auto bad_name = rec("v");
  bad_name.topic = "bad name";
  EXPECT_EQ(p.send(bad_name, cb).error(), errc::invalid_topic_name);
  EXPECT_EQ(p.send(rec(std::string(70 << 10, 'x')), cb).error(),
            errc::record_too_large);                                    // above buffer_bytes
  EXPECT_EQ(p.send(rec("v", 7), cb).error(), errc::unknown_partition);  // topic has 3
  auto negative_ts = rec("v");
  negative_ts.timestamp = timestamp_ms(-5);
  EXPECT_EQ(p.send(negative_ts, cb).error(), ferry::errc::invalid_argument);
  auto missing = rec("v");
  missing.topic = "missing";
  EXPECT_EQ(p.send(missing, cb).error(), errc::unknown_topic);
  auto too_big_for_topic = rec(std::string(600, 'x'));
  too_big_for_topic.topic = "small";  // max_message_bytes 500
  EXPECT_EQ(p.send(too_big_for_topic, cb).error(), errc::record_too_large);
  ASSERT_TRUE(p.flush(1s));
  EXPECT_EQ(callbacks.load(), 0);
}

TEST(Producer, RefreshesPartitionCountAfterUnknownPartition) {
  fake_log log;
  std::atomic<int> produces{0};
  fake_broker fb([&](fake_broker& f, request& r) {
    if (r.type() == wire::Body::ProduceRequest && produces++ == 0) {
      f.reply_produce(r, {{"t", 2, wire::ErrorCode::UnknownPartition, -1, "partition 2 is gone"}});
      return;
    }
    log.serve(f, r);
  });
  producer p(fast_producer_options(fb));
  auto first = p.send(rec("v", 2)).get();
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error(), errc::unknown_partition);
  auto second = p.send(rec("v", 1)).get();
  ASSERT_TRUE(second) << second.error().message();
  std::lock_guard lock(log.mu);
  EXPECT_EQ(log.describes, 2);  // looked up again
}

TEST(Producer, CloseDeliversWhatWasSentAndRefusesMore) {
  fake_log log;
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); });
  auto o = fast_producer_options(fb);
  o.linger = 10s;
  producer p(o);
  std::atomic<int> ok{0};
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(p.send(rec("v", 0), [&](const result<record_metadata>& m) {
      if (m) ++ok;
    }));
  ASSERT_TRUE(p.close(2s));
  EXPECT_EQ(ok.load(), 5);
  EXPECT_EQ(p.send(rec("v", 0), nullptr).error(), ferry::errc::shutting_down);
  EXPECT_TRUE(p.close());  // idempotent
}

TEST(Producer, FlushFromACallbackIsRefusedInsteadOfDeadlocking) {
  fake_log log;
  fake_broker fb([&](fake_broker& f, request& r) { log.serve(f, r); });
  producer p(fast_producer_options(fb));
  std::promise<std::error_code> inner;
  ASSERT_TRUE(p.send(rec("v", 0), [&](const result<record_metadata>&) {
    auto r = p.flush(1s);
    inner.set_value(r ? std::error_code() : r.error());
  }));
  auto f = inner.get_future();
  ASSERT_TRUE(ready_within(f, 2s));
  EXPECT_EQ(f.get(), ferry::errc::invalid_argument);
}

}  // namespace
}  // namespace ferry::client
