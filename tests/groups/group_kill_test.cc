// Committed offsets survive kill -9 of ferryd right after the commit was
// acknowledged, and a broker restart in general.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/producer.h"
#include "ferryd_process.h"

#ifndef FERRY_FERRYD
#error "FERRY_FERRYD must name the ferryd executable"
#endif

namespace ferry {
namespace {

using namespace std::chrono_literals;

using ferry::testing::ferryd_process;

ferryd_process start_ferryd(const std::filesystem::path& dir) {
  return ferry::testing::start_ferryd(FERRY_FERRYD, dir);
}

client::client_options opts(const std::string& endpoint) {
  client::client_options o;
  o.broker = endpoint;
  o.request_timeout = 5s;
  o.api_timeout = 10s;
  o.retry_backoff = 20ms;
  return o;
}

TEST(GroupKill, AcknowledgedCommitsSurviveKillDashNine) {
  char tmpl[] = "/tmp/ferry-groupkill-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir = tmpl;
  constexpr int kPartitions = 3, kCycles = 4, kPerCycle = 60;
  std::map<int, std::int64_t> acked;  // partition -> highest acknowledged commit
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    auto d = start_ferryd(dir);
    ASSERT_FALSE(d.endpoint.empty());
    {
      client::admin admin(opts(d.endpoint));
      if (cycle == 0) {
        ASSERT_TRUE(admin.create_topic("orders", {.partitions = kPartitions}));
      } else {
        // Everything acknowledged before the kill is still committed.
        auto c = admin.committed_offsets("g");
        ASSERT_TRUE(c) << admin.last_error_message();
        std::map<int, std::int64_t> now;
        for (const auto& cp : c.value()) now[cp.tp.partition.value()] = cp.next->value();
        for (const auto& [p, o] : acked) EXPECT_GE(now[p], o) << "partition " << p;
      }
      client::producer_options po;
      static_cast<client::client_options&>(po) = opts(d.endpoint);
      client::producer prod(po);
      for (int i = 0; i < kPerCycle; ++i) {
        client::producer_record r;
        r.topic = "orders";
        r.value = std::to_string(i);
        r.partition = partition_id(i % kPartitions);
        ASSERT_TRUE(prod.send(std::move(r), {}));
      }
      ASSERT_TRUE(prod.flush(10s));
    }
    client::consumer_options co;
    static_cast<client::client_options&>(co) = opts(d.endpoint);
    co.group_id = "g";
    co.fetch_max_wait = 50ms;
    co.heartbeat_interval = 100ms;
    client::consumer c(co);
    ASSERT_TRUE(c.subscribe({"orders"}));
    int got = 0;
    const auto end = std::chrono::steady_clock::now() + 20s;
    while (got < kPerCycle && std::chrono::steady_clock::now() < end) {
      auto recs = c.poll(50ms);
      ASSERT_TRUE(recs) << recs.error().message();
      if (recs.value().empty()) continue;
      got += static_cast<int>(recs.value().size());
      std::map<client::topic_partition, std::int64_t> next;
      for (const auto& r : recs.value()) next[{r.topic, r.partition}] = r.offset.value() + 1;
      std::vector<client::offset_commit> commits;
      for (const auto& [tp, o] : next) commits.push_back({tp, offset(o), {}, {}});
      // Each acknowledged commit must survive what follows.
      ASSERT_TRUE(c.commit(commits)) << c.last_error_message();
      for (const auto& oc : commits)
        acked[oc.tp.partition.value()] = std::max(acked[oc.tp.partition.value()], oc.next.value());
    }
    EXPECT_EQ(got, kPerCycle);
    // Kill right after the last acknowledgement (the last cycle stops cleanly).
    ::kill(d.pid, cycle == kCycles - 1 ? SIGTERM : SIGKILL);
    ::waitpid(d.pid, nullptr, 0);
  }
  auto d = start_ferryd(dir);
  client::admin admin(opts(d.endpoint));
  auto c = admin.committed_offsets("g");
  ASSERT_TRUE(c);
  std::int64_t total = 0;
  for (const auto& cp : c.value()) {
    EXPECT_EQ(cp.next->value(), acked[cp.tp.partition.value()]);
    total += cp.next->value();
  }
  EXPECT_EQ(total, kCycles * kPerCycle);
  ::kill(d.pid, SIGKILL);
  ::waitpid(d.pid, nullptr, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry
