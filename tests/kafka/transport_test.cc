// Ferry's client API over kafka:// (framework/client/transport.h) against
// ferryd's Kafka listener: librdkafka underneath, the same contracts as the
// native protocol, and the group's idempotency ledger as a topic.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"
#include "ferry/client/partitioner.h"
#include "ferry/client/producer.h"
#include "ferry/core/errc.h"
#include "ferry/schema/schema.h"
#include "inproc_broker.h"
#include "kafka_ledger.h"
#include "kafka_target.h"
#include "order_schema_variants.h"
#include "read_topic.h"

namespace ferry::testing {
namespace {

using namespace std::chrono_literals;

client::producer_record rec(std::string topic, std::optional<std::string> key, std::string value,
                            std::optional<int> partition = std::nullopt) {
  client::producer_record r;
  r.topic = std::move(topic);
  r.key = std::move(key);
  r.value = std::move(value);
  if (partition) r.partition = partition_id(*partition);
  return r;
}

class KafkaTransport : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("ferry-kafka-transport");
    broker::broker_config c;
    c.kafka_listen = "127.0.0.1:0";
    broker_.start(dir_, c);
    ASSERT_FALSE(broker_.kafka_endpoint().empty());
    if (on_cluster()) suffix_ = unique_suffix();
  }
  /// Against the cluster in FERRY_TEST_KAFKA (kafka_target.h) rather than
  /// the in-process broker's listener.
  static bool on_cluster() { return !external_kafka().empty(); }
  /// This test's name for a topic, group or subject (unique on a cluster).
  std::string own(std::string_view name) const { return scoped_name(name, suffix_); }
  void TearDown() override {
    broker_.stop();
    std::filesystem::remove_all(dir_);
  }
  client::client_options kafka() const {
    return base_client_options(on_cluster() ? external_kafka() : broker_.kafka_endpoint());
  }
  client::client_options native() const { return base_client_options(broker_.endpoint()); }
  client::consumer_options consumer_options(const std::string& group = "") const {
    client::consumer_options o;
    static_cast<client::client_options&>(o) = kafka();
    o.group_id = group;
    o.session_timeout = 6s;
    o.heartbeat_interval = 200ms;
    o.fetch_max_wait = 50ms;
    return o;
  }
  client::producer_options producer_options() const {
    client::producer_options o;
    static_cast<client::client_options&>(o) = kafka();
    o.linger = 1ms;
    return o;
  }

  std::filesystem::path dir_;
  std::string suffix_;  // of own() names; empty but on a cluster
  inproc_broker broker_;
};

TEST_F(KafkaTransport, ProducedRecordsArriveIntactOnTheSamePartitionsAsNatively) {
  client::admin a(kafka());
  ASSERT_TRUE(a.create_topic(own("orders"), {.partitions = 4})) << a.last_error_message();
  client::producer p(producer_options());
  std::vector<std::future<result<client::record_metadata>>> acks;
  for (int i = 0; i < 40; ++i) {
    client::producer_record r;
    r.topic = own("orders");
    r.key = "order-" + std::to_string(i);
    r.value =
        i == 7 ? std::optional<std::string>() : std::optional<std::string>("v" + std::to_string(i));
    r.headers = {{"trace", "t" + std::to_string(i)}, {"null-header", std::nullopt}};
    r.idempotency_key = "order-" + std::to_string(i) + "/paid";
    r.timestamp = timestamp_ms(1'700'000'000'000 + i);
    acks.push_back(p.send(std::move(r)));
  }
  ASSERT_TRUE(p.flush(10s));
  for (int i = 0; i < 40; ++i) {
    auto m = acks[static_cast<std::size_t>(i)].get();
    ASSERT_TRUE(m) << m.error().message();
    // Kafka's partitioner is Ferry's: murmur2 of the key.
    EXPECT_EQ(m.value().partition, client::partition_for_key("order-" + std::to_string(i), 4));
  }
  // Read natively: every field as it was sent.
  // (Over kafka:// when the test runs against a cluster, not ferryd.)
  auto got = read_topic(on_cluster() ? kafka() : native(), own("orders"));
  ASSERT_EQ(got.size(), 40u);
  std::map<std::string, client::consumer_record> by_key;
  for (auto& r : got) by_key[*r.key] = r;
  const auto& r7 = by_key.at("order-7");
  EXPECT_FALSE(r7.value.has_value());
  const auto& r3 = by_key.at("order-3");
  EXPECT_EQ(r3.value, "v3");
  EXPECT_EQ(r3.timestamp, timestamp_ms(1'700'000'000'003));
  ASSERT_NE(r3.header_value("trace"), nullptr);
  EXPECT_EQ(*r3.header_value("trace"), "t3");
  ASSERT_NE(r3.header_value("null-header"), nullptr);
  EXPECT_FALSE(r3.header_value("null-header")->has_value());
  ASSERT_NE(r3.header_value("ferry.idempotency-key"), nullptr);
  EXPECT_EQ(*r3.header_value("ferry.idempotency-key"), "order-3/paid");

  // And over kafka://, with assign() and positions.
  client::consumer c(consumer_options());
  std::vector<client::topic_partition> tps;
  for (int i = 0; i < 4; ++i) tps.push_back({own("orders"), partition_id(i)});
  ASSERT_TRUE(c.assign(tps)) << c.last_error_message();
  std::vector<client::consumer_record> again;
  for (int i = 0; i < 100 && again.size() < 40; ++i) {
    auto polled = c.poll(100ms);
    ASSERT_TRUE(polled) << polled.error().message() << ": " << c.last_error_message();
    for (auto& r : polled.value()) again.push_back(std::move(r));
  }
  ASSERT_EQ(again.size(), 40u);
  for (const auto& r : again) {
    const auto& n = by_key.at(*r.key);
    EXPECT_EQ(r.partition, n.partition);
    EXPECT_EQ(r.offset, n.offset);
    EXPECT_EQ(r.value, n.value);
    EXPECT_EQ(r.headers, n.headers);
  }
  for (const auto& tp : tps) {
    auto pos = c.position(tp);
    ASSERT_TRUE(pos);
    auto d = a.list_offsets(tp.topic, tp.partition, client::offset_spec::latest);
    ASSERT_TRUE(d && d.value());
    EXPECT_EQ(pos.value(), *d.value());
  }
}

TEST_F(KafkaTransport, SendFailsFastForUnknownTopicsAndBadUrls) {
  client::producer p(producer_options());
  auto r = p.send(rec(own("nope"), "k", "v"), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), client::errc::unknown_topic);

  auto bad = producer_options();
  bad.broker = "kafka://no-port-here";
  client::producer q(bad);
  auto s = q.send(rec(own("orders"), std::nullopt, "v"), {});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), ferry::errc::invalid_argument);

  auto props = producer_options();
  props.kafka["no.such.property"] = "1";
  client::producer u(props);
  EXPECT_EQ(u.send(rec(own("orders"), std::nullopt, "v"), {}).error(),
            ferry::errc::invalid_argument);
}

TEST_F(KafkaTransport, PassedThroughPropertiesCannotWeakenAcknowledgements) {
  client::admin a(kafka());
  ASSERT_TRUE(a.create_topic(own("t"), {.partitions = 1}));
  auto o = producer_options();
  o.kafka["acks"] = "0";  // would report every record "delivered" at offset -1
  o.kafka["enable.idempotence"] = "false";
  o.kafka["linger.ms"] = "2";  // tuning stays the caller's
  client::producer p(o);
  auto m = p.send(rec(own("t"), "k", "v"));
  ASSERT_TRUE(p.flush(10s));
  auto got = m.get();
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got.value().offset, offset(0)) << "acknowledged by the broker, with its offset";
}

TEST_F(KafkaTransport, SeekPauseAndResumeKeepPositions) {
  client::admin a(kafka());
  ASSERT_TRUE(a.create_topic(own("t"), {.partitions = 1}));
  client::producer p(producer_options());
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(p.send(rec(own("t"), std::nullopt, std::to_string(i), 0), {}));
  ASSERT_TRUE(p.flush(10s));
  client::consumer c(consumer_options());
  const client::topic_partition tp{own("t"), partition_id(0)};
  auto as = c.assign({tp});
  ASSERT_TRUE(as) << as.error().message() << ": " << c.last_error_message();
  ASSERT_TRUE(c.seek(tp, offset(5)));
  auto first = c.poll(2s);
  ASSERT_TRUE(first);
  ASSERT_FALSE(first.value().empty());
  EXPECT_EQ(first.value().front().offset, offset(5));
  const auto next = first.value().back().offset.value() + 1;
  ASSERT_TRUE(c.pause({tp}));
  auto none = c.poll(200ms);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none.value().empty());
  ASSERT_TRUE(c.resume({tp}));
  std::vector<std::int64_t> rest;
  for (int i = 0; i < 50 && (rest.empty() || rest.back() < 19); ++i) {
    auto got = c.poll(100ms);
    ASSERT_TRUE(got);
    for (const auto& r : got.value()) rest.push_back(r.offset.value());
  }
  if (next <= 19) {
    ASSERT_FALSE(rest.empty());
    EXPECT_EQ(rest.front(), next);  // nothing skipped while paused
    EXPECT_EQ(rest.back(), 19);
  }
  ASSERT_TRUE(c.seek_to_beginning({}));
  auto from_start = c.poll(2s);
  ASSERT_TRUE(from_start);
  ASSERT_FALSE(from_start.value().empty());
  EXPECT_EQ(from_start.value().front().offset, offset(0));
}

// poll() takes librdkafka's messages in batches; a batch larger than what
// poll() may return, records spread over partitions, and wakeup() from
// another thread must all still work.
TEST_F(KafkaTransport, PollReturnsEveryRecordOnceAndWakesUpWhenAsked) {
  client::admin a(kafka());
  ASSERT_TRUE(a.create_topic(own("t"), {.partitions = 3}));
  client::producer p(producer_options());
  constexpr int kRecords = 25'000;  // more than one poll() returns (10,000)
  for (int i = 0; i < kRecords; ++i)
    ASSERT_TRUE(p.send(rec(own("t"), std::nullopt, std::to_string(i), i % 3), {}));
  ASSERT_TRUE(p.flush(20s));
  client::consumer c(consumer_options());
  std::vector<client::topic_partition> tps;
  for (int i = 0; i < 3; ++i) tps.push_back({own("t"), partition_id(i)});
  ASSERT_TRUE(c.assign(tps)) << c.last_error_message();
  std::map<int, std::vector<std::int64_t>> offsets;  // per partition, in order
  std::size_t total = 0, largest = 0;
  for (int i = 0; i < 500 && total < kRecords; ++i) {
    auto got = c.poll(200ms);
    ASSERT_TRUE(got) << c.last_error_message();
    largest = std::max(largest, got.value().size());
    for (const auto& r : got.value()) offsets[r.partition.value()].push_back(r.offset.value());
    total += got.value().size();
  }
  ASSERT_EQ(total, static_cast<std::size_t>(kRecords));
  EXPECT_LE(largest, 10'000u);
  for (const auto& [partition, seen] : offsets) {
    ASSERT_FALSE(seen.empty());
    for (std::size_t i = 0; i < seen.size(); ++i)
      ASSERT_EQ(seen[i], static_cast<std::int64_t>(i)) << "partition " << partition;
  }
  // Nothing more: a long poll that wakeup() from another thread ends.
  std::thread waker([&] {
    std::this_thread::sleep_for(200ms);
    c.wakeup();
  });
  const auto start = std::chrono::steady_clock::now();
  auto idle = c.poll(30s);
  waker.join();
  ASSERT_TRUE(idle);
  EXPECT_TRUE(idle.value().empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s) << "wakeup() did not end the poll";
}

// A group member with nothing committed and auto_offset_reset none: every
// partition's reset error reaches the caller (one per poll()), none is
// dropped because several came in one batch.
TEST_F(KafkaTransport, EveryPartitionsResetErrorIsReported) {
  client::admin a(kafka());
  ASSERT_TRUE(a.create_topic(own("t"), {.partitions = 3}));
  client::producer p(producer_options());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(p.send(rec(own("t"), std::nullopt, "v", i), {}));
  ASSERT_TRUE(p.flush(10s));
  auto o = consumer_options(own("strict"));
  o.auto_offset_reset = client::offset_reset::none;
  client::consumer c(o);
  ASSERT_TRUE(c.subscribe({own("t")}));
  std::set<std::string> reported;
  for (int i = 0; i < 100 && reported.size() < 3; ++i) {
    auto got = c.poll(100ms);
    if (got) {
      EXPECT_TRUE(got.value().empty()) << "a record without a position";
      continue;
    }
    EXPECT_EQ(got.error(), client::errc::offset_out_of_range) << c.last_error_message();
    for (int part = 0; part < 3; ++part)
      if (c.last_error_message().find(own("t") + "-" + std::to_string(part)) != std::string::npos)
        reported.insert(std::to_string(part));
  }
  EXPECT_EQ(reported, (std::set<std::string>{"0", "1", "2"}));
}

TEST_F(KafkaTransport, GroupCommitsKeepMetadataAndTheLedgerRemembersKeys) {
  client::admin a(kafka());
  ASSERT_TRUE(a.create_topic(own("orders"), {.partitions = 2}));
  client::producer p(producer_options());
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(p.send(rec(own("orders"), "k" + std::to_string(i), "v"), {}));
  ASSERT_TRUE(p.flush(10s));

  struct listener : client::rebalance_listener {
    std::vector<client::topic_partition> assigned;
    void on_assigned(client::consumer&, const std::vector<client::topic_partition>& tps) override {
      assigned = tps;
    }
  } l;
  client::consumer c(consumer_options(own("workers")));
  ASSERT_TRUE(c.subscribe({own("orders")}, &l));
  std::size_t n = 0;
  std::map<client::topic_partition, std::int64_t> next;
  for (int i = 0; i < 200 && n < 10; ++i) {
    auto got = c.poll(100ms);
    ASSERT_TRUE(got) << got.error().message() << ": " << c.last_error_message();
    for (const auto& r : got.value()) {
      ++n;
      next[{r.topic, r.partition}] = r.offset.value() + 1;
    }
  }
  ASSERT_EQ(n, 10u);
  EXPECT_EQ(l.assigned.size(), 2u);
  EXPECT_FALSE(c.member_id().empty());
  std::vector<client::offset_commit> commits;
  const std::string meta(3000, 'm');  // Kafka keeps up to 4096 bytes
  for (const auto& [tp, o] : next)
    commits.push_back(
        {tp, offset(o), meta, {"key-" + tp.topic + std::to_string(tp.partition.value())}});
  ASSERT_TRUE(c.commit(commits)) << c.last_error_message();
  auto committed = c.committed();
  ASSERT_TRUE(committed);
  ASSERT_EQ(committed.value().size(), next.size());
  for (const auto& cp : committed.value()) {
    ASSERT_TRUE(cp.next);
    EXPECT_EQ(cp.next->value(), next.at(cp.tp));
    EXPECT_EQ(cp.metadata, meta);
  }
  auto too_big = commits;
  too_big[0].metadata.assign(5000, 'x');
  EXPECT_EQ(c.commit(too_big).error(), ferry::errc::invalid_argument);
  ASSERT_TRUE(c.close());

  // Another member of the group (a restarted worker) sees the keys.
  client::consumer d(consumer_options(own("workers")));
  auto found =
      d.ledger_lookup({"key-" + own("orders") + "0", "key-" + own("orders") + "1", "never-seen"});
  ASSERT_TRUE(found) << d.last_error_message();
  ASSERT_EQ(found.value().size(), 3u);
  EXPECT_TRUE(found.value()[0].has_value());
  EXPECT_TRUE(found.value()[1].has_value());
  EXPECT_FALSE(found.value()[2].has_value());
  // A different group has its own ledger.
  client::consumer e(consumer_options(own("others")));
  auto theirs = e.ledger_lookup({"key-" + own("orders") + "0"});
  ASSERT_TRUE(theirs);
  EXPECT_FALSE(theirs.value()[0].has_value());

  // The admin API sees the group's offsets (all it committed).
  auto offsets = a.committed_offsets(own("workers"));
  ASSERT_TRUE(offsets) << a.last_error_message();
  EXPECT_EQ(offsets.value().size(), 2u);
  auto groups = a.list_groups();
  ASSERT_TRUE(groups) << a.last_error_message();
  bool listed = false;
  for (const auto& g : groups.value()) listed = listed || g.group == own("workers");
  EXPECT_TRUE(listed);

  bool ledger_seen = false;
  auto before = a.list_topics();
  ASSERT_TRUE(before);
  for (const auto& t : before.value())
    ledger_seen = ledger_seen || t.name.starts_with("__ferry_ledger." + own("workers") + ".");
  EXPECT_TRUE(ledger_seen) << "__ferry_ledger.workers.<hash>";

  // Deleting the group (DeleteGroups on ferryd's listener) takes its
  // offsets and its ledger topic.
  ASSERT_TRUE(a.delete_group(own("workers"))) << a.last_error_message();
  auto after = a.committed_offsets(own("workers"));
  ASSERT_TRUE(after);
  EXPECT_TRUE(after.value().empty());
  auto left = a.list_topics();
  ASSERT_TRUE(left);
  for (const auto& t : left.value())
    EXPECT_FALSE(t.name.starts_with("__ferry_ledger." + own("workers") + "."))
        << t.name << " was left";
  client::consumer f(consumer_options(own("workers")));
  auto gone = f.ledger_lookup({"key-" + own("orders") + "0"});
  ASSERT_TRUE(gone) << f.last_error_message();
  EXPECT_FALSE(gone.value()[0].has_value());
  EXPECT_EQ(a.delete_group(own("workers")).error(), client::errc::unknown_group);
}

// The ledger's local index keeps at most max_keys keys, the oldest
// recorded going first; a key recorded again counts from then on, and the
// index holds each key once whatever the order of records and evictions.
TEST_F(KafkaTransport, TheLedgerIndexEvictsTheOldestKeysAndKeepsRerecordedOnes) {
  std::string why;
  client::kafka::ledger l(kafka(), own("bounded"), /*max_keys=*/3);
  auto known = [&](const std::vector<std::string>& keys) {
    auto r = l.lookup(keys, 0ms, &why);
    EXPECT_TRUE(r) << why;
    std::vector<bool> out;
    if (r)
      for (const auto& t : r.value()) out.push_back(t.has_value());
    return out;
  };
  // Long keys (not stored inline in std::string) and short ones.
  const std::string a(40, 'a'), b = "b", c(30, 'c');
  ASSERT_TRUE(l.record({a, b, c}, &why)) << why;
  EXPECT_EQ(known({a, b, c}), (std::vector<bool>{true, true, true}));
  std::this_thread::sleep_for(2ms);           // a later timestamp for what follows
  ASSERT_TRUE(l.record({a}, &why)) << why;    // again: now the newest
  ASSERT_TRUE(l.record({"d"}, &why)) << why;  // b, the oldest, goes
  EXPECT_EQ(l.size(), 3u);
  EXPECT_EQ(known({a, b, c, "d"}), (std::vector<bool>{true, false, true, true}));
  std::this_thread::sleep_for(2ms);
  ASSERT_TRUE(l.record({"e", "f"}, &why)) << why;  // c and a's old copy, then a
  EXPECT_EQ(l.size(), 3u);
  EXPECT_EQ(known({a, c, "d", "e", "f"}), (std::vector<bool>{false, false, true, true, true}));
  // A member starting afresh reads every key back from the topic.
  client::kafka::ledger fresh(kafka(), own("bounded"));
  auto all = fresh.lookup({a, b, c, "d", "e", "f"}, 0ms, &why);
  ASSERT_TRUE(all) << why;
  for (const auto& t : all.value()) EXPECT_TRUE(t.has_value());
  EXPECT_EQ(fresh.size(), 6u);
}

TEST_F(KafkaTransport, GroupsWhoseNamesDifferOnlyInDotsAndUnderscoresKeepSeparateLedgers) {
  client::admin a(kafka());
  ASSERT_TRUE(a.create_topic(own("t"), {.partitions = 1}));
  // The suffix goes at the end: the names still differ only in '.' and '_'.
  for (const std::string& g : {"a.b" + suffix_, "a_b" + suffix_}) {
    client::consumer c(consumer_options(g));
    ASSERT_TRUE(c.assign({{own("t"), partition_id(0)}}));
    ASSERT_TRUE(c.commit({{{own("t"), partition_id(0)}, offset(0), "", {"key-of-" + g}}}))
        << g << ": " << c.last_error_message();
  }
  client::consumer dot(consumer_options("a.b" + suffix_));
  auto found = dot.ledger_lookup({"key-of-a.b" + suffix_, "key-of-a_b" + suffix_});
  ASSERT_TRUE(found) << dot.last_error_message();
  EXPECT_TRUE(found.value()[0].has_value());
  EXPECT_FALSE(found.value()[1].has_value());
}

TEST_F(KafkaTransport, AdminManagesTopicsAndSaysWhatNeedsFerryd) {
  client::admin a(kafka());
  ASSERT_TRUE(a.create_topic(own("t1"), {.partitions = 3, .retention_ms = 3'600'000}))
      << a.last_error_message();
  auto dup = a.create_topic(own("t1"), {.partitions = 3});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error(), client::errc::topic_already_exists);
  auto d = a.describe_topic(own("t1"));
  ASSERT_TRUE(d) << a.last_error_message();
  EXPECT_EQ(d.value().partitions.size(), 3u);
  EXPECT_EQ(d.value().config.retention_ms, 3'600'000);
  auto topics = a.list_topics();
  ASSERT_TRUE(topics);
  bool seen = false;
  for (const auto& t : topics.value()) seen = seen || (t.name == own("t1") && t.partitions == 3);
  EXPECT_TRUE(seen);
  auto missing = a.describe_topic(own("nope"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), client::errc::unknown_topic);

  auto enforce = a.set_topic_schema(own("t1"), "", true);
  ASSERT_FALSE(enforce);
  EXPECT_EQ(enforce.error(), ferry::errc::not_supported);
  EXPECT_NE(a.last_error_message().find("not supported over kafka://"), std::string::npos)
      << a.last_error_message();

  ASSERT_TRUE(a.delete_topic(own("t1"))) << a.last_error_message();
  EXPECT_FALSE(a.describe_topic(own("t1")));
}

// alter_topic over kafka:// is Kafka's AlterConfigs (which replaces every
// config of the topic, so the others are sent again) and CreatePartitions;
// ferryd's listener serves both, and a refused change alters nothing.
TEST_F(KafkaTransport, AlterTopicKeepsWhatItDoesNotChangeAndRefusesFewerPartitions) {
  client::admin a(kafka());
  ASSERT_TRUE(a.create_topic(
      own("t2"), {.partitions = 2, .retention_ms = 3'600'000, .max_message_bytes = 100'000}))
      << a.last_error_message();
  // A plan changes nothing.
  client::topic_changes plan;
  plan.partitions = 4;
  plan.retention_ms = 60'000;
  plan.validate_only = true;
  auto planned = a.alter_topic(own("t2"), plan);
  ASSERT_TRUE(planned) << a.last_error_message();
  EXPECT_EQ(planned.value().partitions, 4);
  auto same = a.describe_topic(own("t2"));
  ASSERT_TRUE(same);
  EXPECT_EQ(same.value().config.partitions, 2);
  EXPECT_EQ(same.value().config.retention_ms, 3'600'000);

  // Retention only: max.message.bytes stays as it was.
  client::topic_changes retention;
  retention.retention_ms = 60'000;
  auto r = a.alter_topic(own("t2"), retention);
  ASSERT_TRUE(r) << a.last_error_message();
  EXPECT_EQ(r.value().retention_ms, 60'000);
  EXPECT_EQ(r.value().max_message_bytes, 100'000);
  EXPECT_EQ(r.value().partitions, 2);

  // More partitions, and the new ones take records.
  client::topic_changes more;
  more.partitions = 4;
  more.retention_bytes = 1 << 30;
  auto m = a.alter_topic(own("t2"), more);
  ASSERT_TRUE(m) << a.last_error_message();
  EXPECT_EQ(m.value().partitions, 4);
  EXPECT_EQ(m.value().retention_bytes, 1 << 30);
  EXPECT_EQ(m.value().retention_ms, 60'000);
  client::producer p(producer_options());
  auto sent = p.send(rec(own("t2"), "k", "v", 3));
  ASSERT_TRUE(p.flush(10s));
  auto md = sent.get();
  ASSERT_TRUE(md) << md.error().message();
  EXPECT_EQ(md.value().partition, partition_id(3));

  // Fewer partitions, a value out of range: refused, nothing changed.
  client::topic_changes fewer;
  fewer.partitions = 1;
  fewer.retention_ms = 1'000;
  auto f = a.alter_topic(own("t2"), fewer);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error(), client::errc::invalid_config);
  client::topic_changes bad;
  bad.retention_ms = 1'000;
  bad.max_message_bytes = -5;
  auto b = a.alter_topic(own("t2"), bad);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error(), client::errc::invalid_config) << a.last_error_message();
  auto now = a.describe_topic(own("t2"));
  ASSERT_TRUE(now);
  EXPECT_EQ(now.value().config.partitions, 4);
  EXPECT_EQ(now.value().config.retention_ms, 60'000);
  EXPECT_EQ(now.value().config.max_message_bytes, 100'000);
  auto unknown = a.alter_topic(own("nope"), retention);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error(), client::errc::unknown_topic);
}

schema::compiled_schema compiled(const std::string& file) {
  std::string diagnostics;
  auto c = schema::compile_file(std::string(FERRY_ORDERS_DIR) + "/" + file, {}, &diagnostics);
  EXPECT_TRUE(c) << diagnostics;
  return c ? std::move(c).value() : schema::compiled_schema{};
}

TEST_F(KafkaTransport, TheSchemaRegistryInATopicDecidesAsFerrydDoes) {
  const auto v1 = compiled("v1/order_placed.fbs");
  const auto v2 = compiled("v2/order_placed.fbs");
  std::string diagnostics;
  auto int32_total = schema::compile(kOrderPlacedInt32Total, "bad.fbs", {}, &diagnostics);
  ASSERT_TRUE(int32_total) << diagnostics;

  client::admin a(kafka());
  auto empty = a.list_subjects();
  ASSERT_TRUE(empty) << a.last_error_message();
  if (!on_cluster()) {  // a cluster's registry keeps what earlier runs registered
    EXPECT_TRUE(empty.value().subjects.empty());
  }
  auto first = a.register_schema(own("orders-value"), v1.bfbs, v1.source);
  ASSERT_TRUE(first) << a.last_error_message();
  EXPECT_EQ(first.value().version, 1);
  EXPECT_TRUE(first.value().created);
  auto again = a.register_schema(own("orders-value"), v1.bfbs, v1.source);
  ASSERT_TRUE(again);
  EXPECT_EQ(again.value().id, first.value().id);
  EXPECT_FALSE(again.value().created);

  std::vector<client::schema_finding> violations;
  auto bad = a.register_schema(own("orders-value"), int32_total.value().bfbs, {},
                               client::schema_action::register_schema, &violations);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), client::errc::incompatible_schema);
  ASSERT_FALSE(violations.empty());
  EXPECT_EQ(violations.front().rule, "field_type_changed");

  // Two clients register at once: the log orders them and every client
  // reads the same ids and versions.
  client::admin b(kafka());
  auto r2 = a.register_schema(own("orders-value"), v2.bfbs, v2.source);
  auto r3 = b.register_schema(own("payments-value"), v1.bfbs, v1.source);
  ASSERT_TRUE(r2) << a.last_error_message();
  ASSERT_TRUE(r3) << b.last_error_message();
  EXPECT_EQ(r2.value().version, 2);
  EXPECT_EQ(r3.value().id, first.value().id) << "the same bytes keep their id across subjects";
  client::admin c(kafka());
  auto by_id = c.get_schema(r2.value().id);
  ASSERT_TRUE(by_id) << c.last_error_message();
  EXPECT_EQ(by_id.value().bfbs, v2.bfbs);
  if (!on_cluster()) {  // on a cluster, the subject of an earlier run that had the bytes first
    EXPECT_EQ(by_id.value().subject, own("orders-value"));
  }
  auto latest = c.get_schema(own("orders-value"));
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest.value().version, 2);
  EXPECT_EQ(c.get_schema(999).error(), client::errc::unknown_schema);
  EXPECT_EQ(c.get_schema(own("nope-value")).error(), client::errc::unknown_subject);

  // Modes are records too.
  ASSERT_TRUE(a.set_compatibility(own("orders-value"), schema::mode::none));
  auto now_allowed = b.register_schema(own("orders-value"), int32_total.value().bfbs, {});
  ASSERT_TRUE(now_allowed) << b.last_error_message();
  EXPECT_EQ(now_allowed.value().version, 3);
  auto listing = c.list_subjects();
  ASSERT_TRUE(listing);
  // This test's subjects (a cluster's registry may hold others).
  std::vector<client::subject_info> mine;
  for (const auto& sub : listing.value().subjects)
    if (sub.subject == own("orders-value") || sub.subject == own("payments-value"))
      mine.push_back(sub);
  if (!on_cluster()) {
    EXPECT_EQ(listing.value().subjects.size(), 2u);
  }
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0].subject, own("orders-value"));
  EXPECT_EQ(mine[0].mode, schema::mode::none);
  EXPECT_EQ(mine[0].versions.size(), 3u);
}

}  // namespace
}  // namespace ferry::testing
