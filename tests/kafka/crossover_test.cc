// The header contract for producers in other languages (docs/kafka.md),
// through a Kafka client no one here wrote: records kcat produces with
// ferry.idempotency-key are handled once by a Ferry worker, as a C++
// producer's are; a topic that enforces schema ids takes kcat's records
// with a registered ferry.schema-id and refuses the others with
// INVALID_RECORD, storing none of them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ferry/client/admin.h"
#include "ferry/runtime/worker.h"
#include "ferry/schema/schema.h"
#include "kafka_fixture.h"

namespace ferry::testing {
namespace {

using namespace std::chrono_literals;

class KafkaCrossover : public KafkaBroker {};

TEST_F(KafkaCrossover, AWorkerHandlesEachIdempotencyKeyFromAKafkaProducerOnce) {
  create("payments", 1);
  // Three records, two of them the same business event (a producer retry
  // above the client, as a service that re-sends after a timeout would).
  auto r = kcat("-P -t payments -K: -H ferry.idempotency-key=ord-1/paid",
                "ord-1:first\\nord-1:resent\\n");
  ASSERT_EQ(r.code, 0) << r.err;
  r = kcat("-P -t payments -K: -H ferry.idempotency-key=ord-2/paid", "ord-2:other\\n");
  ASSERT_EQ(r.code, 0) << r.err;

  runtime::worker_options o;
  static_cast<client::client_options&>(o.consumer) = base_client_options(native_);
  static_cast<client::client_options&>(o.producer) = base_client_options(native_);
  o.consumer.group_id = "payments-workers";
  o.consumer.fetch_max_wait = 20ms;
  o.concurrency = 0;
  runtime::worker w(o);
  std::vector<std::string> handled;
  std::vector<std::string> keys;
  runtime::subscription s;
  s.topics = {"payments"};
  s.handler = [&](const runtime::message& m) -> result<void> {
    handled.emplace_back(m.value().value_or(""));
    keys.emplace_back(m.idempotency_key().value_or(""));
    return success();
  };
  ASSERT_TRUE(w.subscribe(std::move(s)));
  client::admin a(base_client_options(native_));
  const auto end = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    auto step = w.run_once(10ms);
    ASSERT_TRUE(step) << step.error().message() << ": " << w.last_error();
    auto c = a.committed_offsets("payments-workers", {{"payments", partition_id(0)}});
    if (c && !c.value().empty() && c.value()[0].next && c.value()[0].next->value() == 3) break;
    ASSERT_LT(std::chrono::steady_clock::now(), end) << "the worker did not commit all three";
  }
  EXPECT_EQ(handled, (std::vector<std::string>{"first", "other"}));
  EXPECT_EQ(keys, (std::vector<std::string>{"ord-1/paid", "ord-2/paid"}));
  EXPECT_EQ(w.stats().duplicates_skipped, 1u);
  ASSERT_TRUE(w.close());
}

TEST_F(KafkaCrossover, ATopicThatEnforcesSchemaIdsRefusesKafkaRecordsWithoutOne) {
  create("orders", 1);
  std::string diagnostics;
  auto compiled = schema::compile(
      "namespace shop;\ntable Order { id:ulong; customer:string; }\nroot_type Order;\n",
      "order.fbs", {}, &diagnostics);
  ASSERT_TRUE(compiled) << diagnostics;
  client::admin a(base_client_options(native_));
  auto id = a.register_schema("orders-value", compiled.value().bfbs, compiled.value().source);
  ASSERT_TRUE(id) << a.last_error_message();
  ASSERT_TRUE(a.set_topic_schema("orders", "", true)) << a.last_error_message();
  const auto with_id = "ferry.schema-id=" + std::to_string(id.value().id);

  auto ok = kcat("-P -t orders -H " + with_id, "order with its schema id\\n");
  EXPECT_EQ(ok.code, 0) << ok.err;
  auto refused = kcat("-P -t orders", "order without one\\n");
  // INVALID_RECORD, in librdkafka's words.
  EXPECT_NE(refused.code, 0);
  EXPECT_NE(refused.err.find("failed to validate record"), std::string::npos) << refused.err;
  auto wrong = kcat("-P -t orders -H ferry.schema-id=999", "order with an unknown id\\n");
  EXPECT_NE(wrong.code, 0);
  EXPECT_NE(wrong.err.find("failed to validate record"), std::string::npos) << wrong.err;

  auto got = read_natively("orders", 1, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, "order with its schema id");
  auto t = a.describe_topic("orders");
  ASSERT_TRUE(t);
  EXPECT_EQ(t.value().partitions[0].high_watermark.value(), 1) << "the refused ones stored nothing";
}

}  // namespace
}  // namespace ferry::testing
