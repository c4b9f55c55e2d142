// Consumer groups end to end: an in-process broker and real clients.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"
#include "ferry/client/producer.h"
#include "inproc_broker.h"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using client::consumer;
using client::consumer_options;
using client::offset_commit;
using client::topic_partition;

class GroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir("ferry-groups");
    ASSERT_FALSE(dir_.empty());
    broker_.start(dir_);
  }
  void TearDown() override {
    broker_.stop();
    std::filesystem::remove_all(dir_);
  }
  void restart() { broker_.restart(); }

  client::client_options base() const { return testing::base_client_options(broker_.endpoint()); }
  consumer_options member_options(const std::string& group) const {
    consumer_options o;
    static_cast<client::client_options&>(o) = base();
    o.group_id = group;
    o.client_id = "test";
    o.session_timeout = 2s;
    o.heartbeat_interval = 100ms;
    o.fetch_max_wait = 100ms;
    return o;
  }

  void create(const std::string& topic, int partitions) {
    client::admin a(base());
    ASSERT_TRUE(a.create_topic(topic, {.partitions = partitions}));
  }
  // Produces `n` records keyed "k<i>" with value "<i>", spread over partitions.
  void produce(const std::string& topic, int partitions, int from, int n) {
    client::producer_options po;
    static_cast<client::client_options&>(po) = base();
    client::producer p(po);
    for (int i = from; i < from + n; ++i) {
      client::producer_record r;
      r.topic = topic;
      r.value = std::to_string(i);
      r.partition = partition_id(i % partitions);
      ASSERT_TRUE(p.send(std::move(r), {}));
    }
    ASSERT_TRUE(p.flush(10s));
  }

  std::filesystem::path dir_;
  testing::inproc_broker broker_;
};

// Polls until `pred` or the deadline; collects what it gets.
template <typename Pred>
std::vector<client::consumer_record> poll_until(consumer& c, Pred pred,
                                                std::chrono::milliseconds limit = 10s) {
  std::vector<client::consumer_record> got;
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred(got) && std::chrono::steady_clock::now() < end) {
    auto r = c.poll(50ms);
    EXPECT_TRUE(r) << r.error().message() << " " << c.last_error_message();
    if (!r) break;
    for (auto& x : r.value()) got.push_back(std::move(x));
  }
  return got;
}

// How often each rebalance callback ran.
struct callback_counts : client::rebalance_listener {
  int assigned = 0, revoked = 0, lost = 0;
  void on_assigned(consumer&, const std::vector<topic_partition>&) override { ++assigned; }
  void on_revoked(consumer&, const std::vector<topic_partition>&) override { ++revoked; }
  void on_lost(consumer&, const std::vector<topic_partition>&) override { ++lost; }
};

std::vector<offset_commit> next_offsets(const std::vector<client::consumer_record>& recs) {
  std::map<topic_partition, std::int64_t> last;
  for (const auto& r : recs) last[{r.topic, r.partition}] = r.offset.value() + 1;
  std::vector<offset_commit> out;
  for (const auto& [tp, o] : last) out.push_back({tp, offset(o), {}, {}});
  return out;
}

TEST_F(GroupTest, SingleMemberGetsEverythingAndCommitsDurably) {
  create("orders", 4);
  produce("orders", 4, 0, 100);
  consumer c(member_options("billing"));
  ASSERT_TRUE(c.subscribe({"orders"}));
  auto got = poll_until(c, [](auto& g) { return g.size() >= 100; });
  ASSERT_EQ(got.size(), 100u);
  EXPECT_EQ(c.assignment().size(), 4u);
  EXPECT_EQ(c.generation(), 1);
  ASSERT_TRUE(c.commit()) << c.last_error_message();
  auto committed = c.committed();
  ASSERT_TRUE(committed);
  std::int64_t sum = 0;
  for (const auto& cp : committed.value()) sum += cp.next ? cp.next->value() : 0;
  EXPECT_EQ(sum, 100);
  ASSERT_TRUE(c.close());

  restart();
  produce("orders", 4, 100, 20);
  consumer again(member_options("billing"));
  ASSERT_TRUE(again.subscribe({"orders"}));
  auto rest = poll_until(again, [](auto& g) { return g.size() >= 20; });
  ASSERT_EQ(rest.size(), 20u);  // only what was not committed
  for (const auto& r : rest) EXPECT_GE(std::stoi(*r.value), 100);
}

TEST_F(GroupTest, TwoMembersShareAndCleanLeaveMovesPartitionsQuickly) {
  create("orders", 4);
  struct recorder : client::rebalance_listener {
    std::vector<std::vector<topic_partition>> assigned, revoked;
    std::vector<client::consumer_record>* done = nullptr;
    void on_assigned(consumer&, const std::vector<topic_partition>& p) override {
      assigned.push_back(p);
    }
    void on_revoked(consumer& c, const std::vector<topic_partition>& p) override {
      revoked.push_back(p);
      if (done) {
        EXPECT_TRUE(c.commit(next_offsets(*done))) << c.last_error_message();
      }
    }
  } la, lb;
  consumer a(member_options("g")), b(member_options("g"));
  ASSERT_TRUE(a.subscribe({"orders"}, &la));
  (void)poll_until(a, [&](auto&) { return a.assignment().size() == 4; });
  ASSERT_EQ(a.assignment().size(), 4u);
  ASSERT_TRUE(b.subscribe({"orders"}, &lb));
  // Both must poll for the rebalance to complete.
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < end &&
         !(a.assignment().size() == 2 && b.assignment().size() == 2)) {
    ASSERT_TRUE(a.poll(20ms));
    ASSERT_TRUE(b.poll(20ms));
  }
  ASSERT_EQ(a.assignment().size(), 2u);
  ASSERT_EQ(b.assignment().size(), 2u);
  EXPECT_EQ(a.generation(), b.generation());
  const auto asg_a = a.assignment(), asg_b = b.assignment();
  std::set<topic_partition> all(asg_a.begin(), asg_a.end());
  all.insert(asg_b.begin(), asg_b.end());
  EXPECT_EQ(all.size(), 4u);
  EXPECT_EQ(la.revoked.size(), 1u);  // a gave up everything before the new generation

  produce("orders", 4, 0, 200);
  std::vector<client::consumer_record> ga, gb;
  la.done = &ga;
  while (ga.size() + gb.size() < 200 && std::chrono::steady_clock::now() < end + 10s) {
    auto ra = a.poll(20ms);
    ASSERT_TRUE(ra);
    for (auto& r : ra.value()) ga.push_back(r);
    auto rb = b.poll(20ms);
    ASSERT_TRUE(rb);
    for (auto& r : rb.value()) gb.push_back(r);
  }
  ASSERT_EQ(ga.size() + gb.size(), 200u);
  ASSERT_TRUE(a.commit(next_offsets(ga)));
  produce("orders", 4, 200, 100);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(a.close());  // revokes (commits) and leaves
  auto rest = poll_until(b, [&](auto&) { return b.assignment().size() == 4; });
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(b.assignment().size(), 4u);
  EXPECT_LT(took, 2s) << "a clean leave should move partitions without waiting for timeouts";
  for (auto& r : rest) gb.push_back(r);
  auto more = poll_until(b, [&](auto& g) { return g.size() + gb.size() >= 300; });
  for (auto& r : more) gb.push_back(r);
  // Everything from 200 on reached b; nothing a committed came again.
  std::set<int> seen_b;
  for (const auto& r : gb) seen_b.insert(std::stoi(*r.value));
  for (int i = 200; i < 300; ++i) EXPECT_TRUE(seen_b.count(i)) << i;
  std::set<int> seen_a;
  for (const auto& r : ga) seen_a.insert(std::stoi(*r.value));
  for (const auto& r : gb)
    if (std::stoi(*r.value) < 200) {
      EXPECT_FALSE(seen_a.count(std::stoi(*r.value)));
    }
}

// Static membership (group_instance_id): a closed static member keeps its
// place; its restart takes the same partitions back in the same
// generation while the other member goes on without a revocation.
TEST_F(GroupTest, StaticMemberRestartGetsItsPartitionsBackWithoutARebalance) {
  create("orders", 4);
  callback_counts la, lb;
  auto oa = member_options("g"), ob = member_options("g");
  oa.group_instance_id = "orders-a";
  ob.group_instance_id = "orders-b";
  oa.session_timeout = ob.session_timeout = 30s;  // longer than the test: nothing may expire
  auto a = std::make_unique<consumer>(oa);
  consumer b(ob);
  ASSERT_TRUE(a->subscribe({"orders"}, &la));
  ASSERT_TRUE(b.subscribe({"orders"}, &lb));
  const auto end = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < end &&
         !(a->assignment().size() == 2 && b.assignment().size() == 2)) {
    ASSERT_TRUE(a->poll(20ms)) << a->last_error_message();
    ASSERT_TRUE(b.poll(20ms)) << b.last_error_message();
  }
  ASSERT_EQ(a->assignment().size(), 2u);
  ASSERT_EQ(b.assignment().size(), 2u);
  const auto generation = b.generation();
  const auto asg_a = a->assignment();
  const std::string old_member = a->member_id();
  const int b_revoked = lb.revoked;

  ASSERT_TRUE(a->close());
  a.reset();
  client::admin admin(base());
  auto d = admin.describe_group("g");
  ASSERT_TRUE(d) << admin.last_error_message();
  ASSERT_EQ(d.value().members.size(), 2u) << "a static member's close() does not leave";
  std::set<std::string> instances;
  for (const auto& m : d.value().members) instances.insert(m.instance_id);
  EXPECT_EQ(instances, (std::set<std::string>{"orders-a", "orders-b"}));

  consumer a2(oa);
  ASSERT_TRUE(a2.subscribe({"orders"}));
  (void)poll_until(a2, [&](auto&) { return a2.assignment().size() == 2; });
  ASSERT_EQ(a2.assignment(), asg_a) << "the restart gets the same partitions";
  EXPECT_EQ(a2.generation(), generation) << "and no rebalance happened";
  EXPECT_NE(a2.member_id(), old_member);
  // b keeps fetching and committing in the same generation, never revoked.
  produce("orders", 4, 0, 40);
  std::vector<client::consumer_record> got_b;
  const auto end2 = std::chrono::steady_clock::now() + 10s;
  while (got_b.size() < 20 && std::chrono::steady_clock::now() < end2) {
    auto r = b.poll(20ms);
    ASSERT_TRUE(r) << b.last_error_message();
    for (auto& x : r.value()) got_b.push_back(std::move(x));
    ASSERT_TRUE(a2.poll(20ms)) << a2.last_error_message();
  }
  EXPECT_EQ(got_b.size(), 20u);
  ASSERT_TRUE(b.commit(next_offsets(got_b))) << b.last_error_message();
  EXPECT_EQ(b.generation(), generation);
  EXPECT_EQ(lb.revoked, b_revoked);
  EXPECT_EQ(lb.lost, 0);
  // unsubscribe() does leave, static or not.
  ASSERT_TRUE(a2.unsubscribe());
  d = admin.describe_group("g");
  ASSERT_TRUE(d);
  EXPECT_EQ(d.value().members.size(), 1u);
}

// Two live processes with one group_instance_id: the later one takes the
// place, and the earlier one is fenced for good (it does not rejoin and
// fence the other back).
TEST_F(GroupTest, SecondLiveInstanceWithTheSameIdFencesTheFirst) {
  create("orders", 2);
  auto o = member_options("g");
  o.group_instance_id = "orders-1";
  o.session_timeout = 30s;
  struct recorder : client::rebalance_listener {
    int lost = 0;
    void on_lost(consumer&, const std::vector<topic_partition>&) override { ++lost; }
  } l1;
  consumer first(o);
  ASSERT_TRUE(first.subscribe({"orders"}, &l1));
  (void)poll_until(first, [&](auto&) { return first.assignment().size() == 2; });
  ASSERT_EQ(first.assignment().size(), 2u);
  const auto generation = first.generation();

  consumer second(o);
  ASSERT_TRUE(second.subscribe({"orders"}));
  (void)poll_until(second, [&](auto&) { return second.assignment().size() == 2; });
  ASSERT_EQ(second.assignment().size(), 2u);
  EXPECT_EQ(second.generation(), generation);

  // The first learns at its next request (fetch or heartbeat).
  std::error_code ec;
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (!ec && std::chrono::steady_clock::now() < end) {
    auto r = first.poll(50ms);
    if (!r) ec = r.error();
  }
  EXPECT_EQ(ec, client::errc::fenced_instance_id);
  EXPECT_NE(first.last_error_message().find("orders-1"), std::string::npos)
      << first.last_error_message();
  EXPECT_EQ(l1.lost, 1) << "its partitions are reported lost";
  EXPECT_TRUE(first.assignment().empty());
  // For good: the next polls say the same and do not rejoin.
  auto again = first.poll(200ms);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), client::errc::fenced_instance_id);
  auto commit = first.commit({{{"orders", partition_id(0)}, offset(0), {}, {}}});
  EXPECT_FALSE(commit);
  // The second still owns both partitions in the same generation.
  produce("orders", 2, 0, 10);
  auto got = poll_until(second, [](auto& g) { return g.size() >= 10; });
  EXPECT_EQ(got.size(), 10u);
  ASSERT_TRUE(second.commit(next_offsets(got))) << second.last_error_message();
  EXPECT_EQ(second.generation(), generation);
  client::admin admin(base());
  auto d = admin.describe_group("g");
  ASSERT_TRUE(d);
  ASSERT_EQ(d.value().members.size(), 1u);
  EXPECT_EQ(d.value().members.front().member_id, second.member_id());
}

// Persisted membership: a broker restart keeps the group - same
// generation, same member ids, nobody revoked or lost - and the members go
// on fetching and committing. Without the file (the negative control) the
// same restart makes them rejoin.
TEST_F(GroupTest, BrokerRestartKeepsTheGroupWithoutARejoin) {
  create("orders", 4);
  for (const bool keep_file : {true, false}) {
    SCOPED_TRACE(keep_file ? "with the membership file" : "without it (control)");
    const std::string group = keep_file ? "kept" : "control";
    callback_counts la, lb;
    auto o = member_options(group);
    o.session_timeout = 10s;
    consumer a(o), b(o);
    ASSERT_TRUE(a.subscribe({"orders"}, &la));
    ASSERT_TRUE(b.subscribe({"orders"}, &lb));
    const auto end = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < end &&
           !(a.assignment().size() == 2 && b.assignment().size() == 2)) {
      ASSERT_TRUE(a.poll(20ms));
      ASSERT_TRUE(b.poll(20ms));
    }
    ASSERT_EQ(a.assignment().size() + b.assignment().size(), 4u);
    const auto generation = a.generation();
    const auto ida = a.member_id(), idb = b.member_id();
    const int ra = la.revoked, rb = lb.revoked;

    broker_.stop();
    if (!keep_file) std::filesystem::remove(dir_ / "groups" / "members.json");
    broker_.restart();
    produce("orders", 4, 0, 40);
    // A fresh group reads from the start: the control's group also gets the
    // first pass's 40 records.
    const std::size_t expected = keep_file ? 40 : 80;
    std::vector<client::consumer_record> got;
    const auto end2 = std::chrono::steady_clock::now() + 20s;
    while (got.size() < expected && std::chrono::steady_clock::now() < end2) {
      for (auto* c : {&a, &b}) {
        auto r = c->poll(20ms);
        if (!r) continue;  // the restart's lost replies
        for (auto& x : r.value()) got.push_back(std::move(x));
      }
    }
    EXPECT_EQ(got.size(), expected);
    if (keep_file) {
      EXPECT_EQ(a.generation(), generation);
      EXPECT_EQ(a.member_id(), ida);
      EXPECT_EQ(b.member_id(), idb);
      EXPECT_EQ(la.revoked, ra);
      EXPECT_EQ(lb.revoked, rb);
      EXPECT_EQ(la.lost + lb.lost, 0);
      ASSERT_TRUE(a.commit()) << a.last_error_message();
      ASSERT_TRUE(b.commit()) << b.last_error_message();
      client::admin admin(base());
      auto d = admin.describe_group(group);
      ASSERT_TRUE(d);
      EXPECT_EQ(d.value().generation, generation);
      EXPECT_EQ(d.value().members.size(), 2u);
    } else {
      EXPECT_GT(la.lost + lb.lost + la.revoked - ra + lb.revoked - rb, 0)
          << "without the file the members must have rejoined";
    }
    ASSERT_TRUE(a.close());
    ASSERT_TRUE(b.close());
  }
}

TEST_F(GroupTest, ZombieIsFencedAfterSessionTimeout) {
  create("orders", 2);
  auto zo = member_options("g");
  zo.session_timeout = 300ms;
  zo.heartbeat_interval = 10s;  // never heartbeats: looks dead to the broker
  consumer zombie(zo);
  ASSERT_TRUE(zombie.subscribe({"orders"}));
  (void)poll_until(zombie, [&](auto&) { return zombie.assignment().size() == 2; });
  ASSERT_EQ(zombie.assignment().size(), 2u);
  produce("orders", 2, 0, 10);
  auto got = poll_until(zombie, [](auto& g) { return g.size() >= 10; });
  ASSERT_EQ(got.size(), 10u);
  std::this_thread::sleep_for(600ms);  // the broker drops it
  consumer live(member_options("g"));
  ASSERT_TRUE(live.subscribe({"orders"}));
  auto again = poll_until(live, [&](auto&) { return live.assignment().size() == 2; });
  ASSERT_EQ(live.assignment().size(), 2u);
  auto r = zombie.commit(next_offsets(got));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error() == client::errc::unknown_member ||
              r.error() == client::errc::stale_generation)
      << r.error().message();
  // The live member starts from the beginning: the zombie's work never counted.
  auto more = poll_until(live, [&](auto& g) { return g.size() + again.size() >= 10; });
  EXPECT_EQ(again.size() + more.size(), 10u);
}

TEST_F(GroupTest, AsyncCommitsRideOnFetches) {
  create("orders", 1);
  produce("orders", 1, 0, 50);
  consumer c(member_options("g"));
  ASSERT_TRUE(c.subscribe({"orders"}));
  auto got = poll_until(c, [](auto& g) { return g.size() >= 50; });
  ASSERT_EQ(got.size(), 50u);
  bool called = false;
  std::error_code err;
  c.commit_async(next_offsets(got), [&](const std::vector<client::commit_result>& r) {
    called = true;
    for (const auto& x : r)
      if (x.error) err = x.error;
  });
  (void)poll_until(
      c, [&](auto&) { return called; }, 5s);
  EXPECT_TRUE(called);
  EXPECT_FALSE(err) << err.message();
  auto cm = c.committed();
  ASSERT_TRUE(cm);
  ASSERT_EQ(cm.value().size(), 1u);
  EXPECT_EQ(cm.value()[0].next->value(), 50);
  // Backwards is refused.
  auto back = c.commit({{{"orders", partition_id(0)}, offset(10), {}, {}}});
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error(), client::errc::offset_regression);
}

TEST_F(GroupTest, MemberThatStopsPollingLeavesAndRejoinsAtItsNextPoll) {
  create("orders", 2);
  struct recorder : client::rebalance_listener {
    int lost = 0;
    void on_lost(consumer&, const std::vector<topic_partition>& p) override {
      lost += static_cast<int>(p.size());
    }
  } l;
  auto o = member_options("g");
  o.heartbeat_interval = 50ms;
  o.max_poll_interval = 300ms;
  consumer c(o);
  ASSERT_TRUE(c.subscribe({"orders"}, &l));
  (void)poll_until(c, [&](auto&) { return c.assignment().size() == 2; });
  ASSERT_EQ(c.assignment().size(), 2u);
  const auto first = c.generation();
  std::this_thread::sleep_for(800ms);  // no poll(): the heartbeat thread leaves
  client::admin a(base());
  auto d = a.describe_group("g");
  ASSERT_TRUE(d) << a.last_error_message();
  EXPECT_TRUE(d.value().members.empty()) << "the member should have left the group";
  (void)poll_until(c, [&](auto&) { return c.generation() > first && c.assignment().size() == 2; });
  EXPECT_EQ(l.lost, 2);
  EXPECT_GT(c.generation(), first);
  EXPECT_EQ(c.assignment().size(), 2u);
}

TEST_F(GroupTest, CloseSendsQueuedAsyncCommitsBeforeLeaving) {
  create("orders", 1);
  produce("orders", 1, 0, 30);
  consumer c(member_options("g"));
  ASSERT_TRUE(c.subscribe({"orders"}));
  auto got = poll_until(c, [](auto& g) { return g.size() >= 30; });
  ASSERT_EQ(got.size(), 30u);
  bool called = false;
  c.commit_async(next_offsets(got), [&](const std::vector<client::commit_result>& r) {
    called = true;
    for (const auto& x : r) EXPECT_FALSE(x.error) << x.error.message();
  });
  ASSERT_TRUE(c.close());  // no poll() in between: close() must send them
  EXPECT_TRUE(called);
  client::admin a(base());
  auto cm = a.committed_offsets("g");
  ASSERT_TRUE(cm);
  ASSERT_EQ(cm.value().size(), 1u);
  EXPECT_EQ(cm.value()[0].next->value(), 30);
}

TEST_F(GroupTest, PauseStopsFetchingAPartition) {
  create("orders", 2);
  produce("orders", 2, 0, 20);
  consumer c(member_options("g"));
  struct pauser : client::rebalance_listener {
    void on_assigned(consumer& c, const std::vector<topic_partition>&) override {
      EXPECT_TRUE(c.pause({{"orders", partition_id(1)}}));
    }
  } listener;
  ASSERT_TRUE(c.subscribe({"orders"}, &listener));
  auto got = poll_until(c, [](auto& g) { return g.size() >= 10; });
  auto more = poll_until(
      c, [](auto&) { return false; }, 300ms);
  for (auto& r : more) got.push_back(r);
  EXPECT_EQ(got.size(), 10u);
  for (const auto& r : got) EXPECT_EQ(r.partition.value(), 0);
  ASSERT_TRUE(c.resume({{"orders", partition_id(1)}}));
  auto rest = poll_until(c, [](auto& g) { return g.size() >= 10; });
  EXPECT_EQ(rest.size(), 10u);
}

}  // namespace
}  // namespace ferry
