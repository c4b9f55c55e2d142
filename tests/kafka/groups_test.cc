// Kafka consumer groups against ferryd, with clients no one here wrote:
// kcat's balanced consumer (-G) and librdkafka consumers through joins
// and leaves, with commits that Ferry's admin API shows and ListOffsets by
// time; and one group coordinator for both protocols, so a group is
// Kafka's or Ferry's at any one time.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"
#include "ferry/client/producer.h"
#include "kafka_fixture.h"

namespace ferry::testing {
namespace {

using namespace std::chrono_literals;

class KafkaGroups : public KafkaBroker {
 protected:
  // A librdkafka consumer in `group`, default (range) assignment, manual commits.
  rd_kafka_t* consumer(const std::string& group, const std::string& client_id,
                       const std::string& extra_key = "", const std::string& extra_value = "") {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    auto set = [&](const char* k, const std::string& v) {
      EXPECT_EQ(rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err), RD_KAFKA_CONF_OK) << err;
    };
    set("bootstrap.servers", kafka_);
    set("group.id", group);
    set("client.id", client_id);
    set("enable.auto.commit", "false");
    set("auto.offset.reset", "earliest");
    set("session.timeout.ms", "6000");
    set("heartbeat.interval.ms", "200");
    if (!extra_key.empty()) set(extra_key.c_str(), extra_value);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    EXPECT_NE(rk, nullptr) << err;
    rd_kafka_poll_set_consumer(rk);
    return rk;
  }
  static void subscribe(rd_kafka_t* rk, const std::string& topic) {
    auto* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic.c_str(), RD_KAFKA_PARTITION_UA);
    EXPECT_EQ(rd_kafka_subscribe(rk, list), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(list);
  }
  static std::set<int> assignment(rd_kafka_t* rk) {
    rd_kafka_topic_partition_list_t* list = nullptr;
    std::set<int> out;
    if (rd_kafka_assignment(rk, &list) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
    for (int i = 0; i < list->cnt; ++i) out.insert(list->elems[i].partition);
    rd_kafka_topic_partition_list_destroy(list);
    return out;
  }

  // Every consumer has partitions, and together they hold `n` partitions,
  // each once (disjoint and complete).
  static bool splits(const std::vector<rd_kafka_t*>& rks, std::size_t n) {
    std::set<int> all;
    std::size_t total = 0;
    for (auto* rk : rks) {
      auto mine = assignment(rk);
      if (mine.empty()) return false;
      total += mine.size();
      all.insert(mine.begin(), mine.end());
    }
    return total == n && all.size() == n;
  }

  struct seen {
    std::multiset<std::string> values;
    std::map<int, std::int64_t> next;  // per partition: the offset after the last one read
    std::vector<std::string> errors;
  };
  // Polls every consumer (each must be polled for its rebalances to run)
  // until `done` or 30 s; records go to `s`, then each consumer commits
  // what it read (synchronously).
  bool poll_until(const std::vector<rd_kafka_t*>& rks, seen& s, const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      for (auto* rk : rks) {
        bool read = false;
        for (int i = 0; i < 50; ++i) {
          rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, i == 0 ? 20 : 0);
          if (m == nullptr) break;
          if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            s.values.insert(std::string(static_cast<const char*>(m->payload), m->len));
            s.next[m->partition] = m->offset + 1;
            read = true;
          } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            s.errors.push_back(rd_kafka_message_errstr(m));
          }
          rd_kafka_message_destroy(m);
        }
        if (read) {
          const auto e = rd_kafka_commit(rk, nullptr, 0);
          // A commit racing a rebalance may be refused; the next one covers it.
          if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS &&
              e != RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
            s.errors.push_back(std::string("commit: ") + rd_kafka_err2str(e));
        }
      }
      if (done()) return true;
    }
    return false;
  }
  void produce(const std::string& topic, int from, int count, std::int64_t ts = 0) {
    auto po = client::producer_options{};
    static_cast<client::client_options&>(po) = base_client_options(native_);
    client::producer p(po);
    for (int i = from; i < from + count; ++i) {
      client::producer_record r;
      r.topic = topic;
      r.key = "order-" + std::to_string(i % 13);
      r.value = "v" + std::to_string(i);
      if (ts != 0) r.timestamp = timestamp_ms{ts};
      ASSERT_TRUE(p.send(std::move(r), [](const result<client::record_metadata>&) {}));
    }
    ASSERT_TRUE(p.flush(10s));
  }
  std::optional<client::group_description> describe(const std::string& group) {
    client::admin a(base_client_options(native_));
    auto d = a.describe_group(group);
    if (!d) return std::nullopt;
    return d.value();
  }
};

// kcat's balanced consumer reads what Ferry's producer wrote and commits on
// close; the committed offsets are what ferry groups describe shows.
TEST_F(KafkaGroups, KcatBalancedConsumerReadsAndCommits) {
  create("orders", 3);
  produce("orders", 0, 30);
  auto r = kcat("-G kcat-group -X auto.offset.reset=earliest -c 30 -f '%s\\n' orders");
  ASSERT_EQ(r.code, 0) << r.err;
  std::multiset<std::string> got;
  std::string line;
  for (char ch : r.out) {
    if (ch == '\n') {
      got.insert(line);
      line.clear();
    } else {
      line += ch;
    }
  }
  ASSERT_EQ(got.size(), 30u) << r.out;
  for (int i = 0; i < 30; ++i) EXPECT_EQ(got.count("v" + std::to_string(i)), 1u) << i;
  auto d = describe("kcat-group");
  ASSERT_TRUE(d);
  std::int64_t committed = 0;
  for (const auto& p : d->partitions) {
    ASSERT_TRUE(p.committed && p.log_end) << p.tp.partition.value();
    EXPECT_EQ(p.committed->value(), p.log_end->value()) << "partition " << p.tp.partition.value();
    committed += p.committed->value();
  }
  EXPECT_EQ(committed, 30);
}

// Static membership with librdkafka's group.instance.id (KIP-345): a
// consumer closed without leaving and started again under its instance id
// gets its partitions back in the same generation, with no rebalance; a
// second live consumer with the same id fences the first (librdkafka's
// fatal FENCED_INSTANCE_ID). The dynamic restart is the negative control in
// LibrdkafkaGroupThroughJoinsAndLeaves (every join there is a rebalance).
TEST_F(KafkaGroups, LibrdkafkaStaticMemberRestartKeepsItsPartitionsAndTwinsAreFenced) {
  create("billing", 4);
  produce("billing", 0, 100);
  seen s;
  auto* a = consumer("static-workers", "worker-a", "group.instance.id", "inst-a");
  auto* b = consumer("static-workers", "worker-b", "group.instance.id", "inst-b");
  subscribe(a, "billing");
  subscribe(b, "billing");
  auto covers = [](const std::vector<rd_kafka_t*>& rks) { return splits(rks, 4); };
  ASSERT_TRUE(poll_until({a, b}, s, [&] { return covers({a, b}); }));
  auto before = describe("static-workers");
  ASSERT_TRUE(before);
  ASSERT_EQ(before->members.size(), 2u);
  std::set<std::string> instances;
  for (const auto& m : before->members) instances.insert(m.instance_id);
  EXPECT_EQ(instances, (std::set<std::string>{"inst-a", "inst-b"}));
  const auto a_parts = assignment(a);

  // A static member's close does not leave: its place waits for it.
  rd_kafka_consumer_close(a);
  rd_kafka_destroy(a);
  auto closed = describe("static-workers");
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->members.size(), 2u);

  auto* a2 = consumer("static-workers", "worker-a2", "group.instance.id", "inst-a");
  subscribe(a2, "billing");
  ASSERT_TRUE(poll_until({a2, b}, s, [&] { return covers({a2, b}); }));
  EXPECT_EQ(assignment(a2), a_parts) << "the restart takes the same partitions";
  auto after = describe("static-workers");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->generation, before->generation) << "no rebalance";
  EXPECT_EQ(after->members.size(), 2u);
  EXPECT_TRUE(s.errors.empty()) << s.errors.front();

  // A twin with the same instance id: it takes the place, a2 is fenced.
  auto* twin = consumer("static-workers", "worker-twin", "group.instance.id", "inst-a");
  subscribe(twin, "billing");
  char why[512] = "";
  rd_kafka_resp_err_t fatal = RD_KAFKA_RESP_ERR_NO_ERROR;
  ASSERT_TRUE(poll_until({a2, b, twin}, s,
                         [&] {
                           fatal = rd_kafka_fatal_error(a2, why, sizeof why);
                           return fatal != RD_KAFKA_RESP_ERR_NO_ERROR && covers({twin, b});
                         }))
      << "a2's fatal error: " << rd_kafka_err2name(fatal) << " " << why;
  EXPECT_EQ(fatal, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID) << why;
  auto last = describe("static-workers");
  ASSERT_TRUE(last);
  EXPECT_EQ(last->generation, before->generation) << "the twin took the place without a rebalance";
  EXPECT_EQ(last->members.size(), 2u);
  rd_kafka_destroy(a2);  // fenced: close would fail
  for (auto* rk : {b, twin}) {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
}

// Three librdkafka consumers through joins and leaves: at each stable point
// the members' assignments split the partitions between them; every record
// is read; commits land in the one offset store (ferry groups describe
// shows the members while they are in, the offsets after); ListOffsets by
// time finds the first record at or after a timestamp.
TEST_F(KafkaGroups, LibrdkafkaGroupThroughJoinsAndLeaves) {
  create("billing", 6);
  const std::int64_t t0 = 1'700'000'000'000;
  produce("billing", 0, 300, t0);
  seen s;
  auto* a = consumer("billing-workers", "worker-a");
  subscribe(a, "billing");
  auto covers = [](const std::vector<rd_kafka_t*>& rks) { return splits(rks, 6); };
  ASSERT_TRUE(poll_until({a}, s, [&] { return covers({a}) && s.values.size() >= 100; }))
      << "a alone: " << assignment(a).size() << " partitions, " << s.values.size() << " read";

  auto* b = consumer("billing-workers", "worker-b");
  subscribe(b, "billing");
  ASSERT_TRUE(poll_until({a, b}, s, [&] { return covers({a, b}); }));
  {
    auto d = describe("billing-workers");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->members.size(), 2u);
    EXPECT_EQ(d->state, "Stable");
    EXPECT_EQ(d->strategy, "kafka consumer/range");
    std::set<std::string> clients;
    std::size_t owned = 0;
    for (const auto& m : d->members) {
      clients.insert(m.client_id);
      owned += m.assignment.size();
      EXPECT_EQ(m.topics, std::vector<std::string>{"billing"});
    }
    EXPECT_EQ(clients, (std::set<std::string>{"worker-a", "worker-b"}));
    EXPECT_EQ(owned, 6u) << "assignments decoded from the leader's SyncGroup";
  }

  auto* c = consumer("billing-workers", "worker-c");
  subscribe(c, "billing");
  ASSERT_TRUE(poll_until({a, b, c}, s, [&] { return covers({a, b, c}); }));
  produce("billing", 300, 300, t0 + 60'000);

  // b leaves (LeaveGroup): a and c take its partitions.
  rd_kafka_consumer_close(b);
  rd_kafka_destroy(b);
  ASSERT_TRUE(poll_until({a, c}, s,
                         [&] {
                           return covers({a, c}) && s.values.size() >= 600;
                         }))
      << s.values.size() << " read";
  std::set<std::string> unique(s.values.begin(), s.values.end());
  EXPECT_EQ(unique.size(), 600u) << "every record read (some twice across a rebalance)";
  EXPECT_TRUE(s.errors.empty()) << s.errors.front();

  // ListOffsets by time, through a group member.
  auto* q = rd_kafka_topic_partition_list_new(6);
  for (int p = 0; p < 6; ++p)
    rd_kafka_topic_partition_list_add(q, "billing", p)->offset = t0 + 30'000;
  ASSERT_EQ(rd_kafka_offsets_for_times(a, q, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::int64_t first_late = 0;
  for (int i = 0; i < q->cnt; ++i) {
    EXPECT_EQ(q->elems[i].err, RD_KAFKA_RESP_ERR_NO_ERROR);
    first_late += q->elems[i].offset;  // = the records before t0 + 30 s in the partition
  }
  rd_kafka_topic_partition_list_destroy(q);
  EXPECT_EQ(first_late, 300);

  rd_kafka_consumer_close(a);
  rd_kafka_destroy(a);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  auto d = describe("billing-workers");
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->members.empty()) << "both left";
  std::int64_t committed = 0;
  for (const auto& p : d->partitions) {
    ASSERT_TRUE(p.committed && p.log_end) << p.tp.partition.value();
    EXPECT_EQ(p.committed->value(), p.log_end->value()) << "partition " << p.tp.partition.value();
    committed += p.committed->value();
  }
  EXPECT_EQ(committed, 600);
}

// One coordinator, one protocol per group: a Ferry consumer cannot join a
// group while Kafka clients are in it, and a Kafka consumer cannot join a
// group of Ferry's consumers; each is told why.
TEST_F(KafkaGroups, AGroupSpeaksOneProtocolAtATime) {
  create("mixed", 2);
  produce("mixed", 0, 10);
  seen s;
  auto* k = consumer("mixed-group", "kafka-member");
  subscribe(k, "mixed");
  ASSERT_TRUE(poll_until({k}, s, [&] { return assignment(k).size() == 2; }));

  auto fo = client::consumer_options{};
  static_cast<client::client_options&>(fo) = base_client_options(native_);
  fo.group_id = "mixed-group";
  client::consumer ferry_member(fo);
  ASSERT_TRUE(ferry_member.subscribe({"mixed"}));
  auto polled = ferry_member.poll(3s);
  ASSERT_FALSE(polled);
  EXPECT_EQ(polled.error(), client::errc::inconsistent_group_protocol) << polled.error().message();
  rd_kafka_consumer_close(k);
  rd_kafka_destroy(k);

  // The other way round: Ferry's consumer holds "ferry-group".
  fo.group_id = "ferry-group";
  client::consumer holder(fo);
  ASSERT_TRUE(holder.subscribe({"mixed"}));
  for (int i = 0; i < 50 && holder.assignment().empty(); ++i) (void)holder.poll(100ms);
  ASSERT_EQ(holder.assignment().size(), 2u);
  auto* late = consumer("ferry-group", "kafka-latecomer");
  subscribe(late, "mixed");
  seen t;
  const bool refused = poll_until({late}, t, [&] {
    (void)holder.poll(10ms);  // keeps the Ferry member alive
    for (const auto& e : t.errors)
      if (e.find("nconsistent") != std::string::npos) return true;
    return false;
  });
  EXPECT_TRUE(refused) << (t.errors.empty() ? "no error" : t.errors.front());
  EXPECT_TRUE(assignment(late).empty());
  rd_kafka_consumer_close(late);
  rd_kafka_destroy(late);
}

}  // namespace
}  // namespace ferry::testing
