// Membership churn with real processes: members (group_member_child) are
// killed with SIGKILL, started, and stopped cleanly in a loop while records
// keep arriving. Checks the group invariants:
//   - no partition is owned by two members in the same generation;
//   - no committed offset ever goes backwards (watched from outside);
//   - every produced record is delivered (at least once) to some member;
//   - every commit a member saw acknowledged is covered by the final
//     committed offsets (acknowledged commits are durable).
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "ferry/broker/broker.h"
#include "ferry/client/admin.h"
#include "ferry/client/producer.h"

#ifndef FERRY_MEMBER_CHILD
#error "FERRY_MEMBER_CHILD must name the group_member_child executable"
#endif

namespace ferry {
namespace {

using namespace std::chrono_literals;

constexpr int kPartitions = 6;

pid_t spawn(const std::string& endpoint, const std::string& out) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl(FERRY_MEMBER_CHILD, FERRY_MEMBER_CHILD, endpoint.c_str(), "churn", "orders",
            out.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

TEST(GroupChurn, KillJoinLeaveLoopKeepsTheInvariants) {
  char tmpl[] = "/tmp/ferry-churn-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir = tmpl;
  broker::broker_config cfg;
  cfg.data_dir = dir / "data";
  cfg.listen = "tcp://127.0.0.1:*";
  auto b = broker::broker::open(cfg);
  ASSERT_TRUE(b) << b.error().message();
  auto ep = b.value()->start();
  ASSERT_TRUE(ep);
  const std::string endpoint = ep.value();

  client::client_options co;
  co.broker = endpoint;
  co.request_timeout = 5s;
  client::admin admin(co);
  ASSERT_TRUE(admin.create_topic("orders", {.partitions = kPartitions}));

  // Producer thread: a steady stream of numbered records.
  std::atomic<bool> producing{true};
  std::atomic<int> produced{0};
  std::thread producer_thread([&] {
    client::producer_options po;
    static_cast<client::client_options&>(po) = co;
    client::producer p(po);
    int i = 0;
    while (producing) {
      for (int k = 0; k < 50; ++k, ++i) {
        client::producer_record r;
        r.topic = "orders";
        r.key = "k" + std::to_string(i);
        r.value = std::to_string(i);
        if (!p.send(std::move(r), {})) ADD_FAILURE() << "send failed";
      }
      std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(p.flush(20s));
    produced = i;
  });

  // Watcher: committed offsets never go backwards.
  std::atomic<bool> watching{true};
  std::atomic<int> regressions{0};
  std::thread watcher([&] {
    client::admin a(co);
    std::map<int, std::int64_t> last;
    while (watching) {
      if (auto c = a.committed_offsets("churn")) {
        for (const auto& cp : c.value()) {
          if (!cp.next) continue;
          auto& l = last[cp.tp.partition.value()];
          if (cp.next->value() < l) {
            ++regressions;
            ADD_FAILURE() << "partition " << cp.tp.partition.value() << " went back from " << l
                          << " to " << cp.next->value();
          }
          l = std::max(l, cp.next->value());
        }
      }
      std::this_thread::sleep_for(20ms);
    }
  });

  std::mt19937 rng(42);
  std::vector<std::pair<pid_t, std::string>> live;
  std::vector<std::string> outputs;
  int next_id = 0;
  auto start_one = [&] {
    auto out = (dir / ("member-" + std::to_string(next_id++) + ".log")).string();
    outputs.push_back(out);
    live.emplace_back(spawn(endpoint, out), out);
  };
  int kills = 0, leaves = 0;
  for (int i = 0; i < 3; ++i) start_one();
  const auto churn_end = std::chrono::steady_clock::now() + 8s;
  while (std::chrono::steady_clock::now() < churn_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 500));
    const auto action = rng() % 3;
    if (action == 0 && live.size() > 1) {
      auto idx = rng() % live.size();
      ::kill(live[idx].first, SIGKILL);
      ::waitpid(live[idx].first, nullptr, 0);
      live.erase(live.begin() + static_cast<long>(idx));
      ++kills;
    } else if (action == 1 && live.size() > 1) {
      auto idx = rng() % live.size();
      ::kill(live[idx].first, SIGTERM);
      int st = 0;
      ::waitpid(live[idx].first, &st, 0);
      EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
      live.erase(live.begin() + static_cast<long>(idx));
      ++leaves;
    } else if (live.size() < 4) {
      start_one();
    }
  }
  producing = false;
  producer_thread.join();
  const int total = produced;
  // Let the survivors finish: committed == log end everywhere.
  const auto drain_end = std::chrono::steady_clock::now() + 30s;
  bool drained = false;
  while (!drained && std::chrono::steady_clock::now() < drain_end) {
    std::this_thread::sleep_for(100ms);
    auto d = admin.describe_group("churn");
    if (!d) continue;
    std::int64_t lag = 0;
    int seen = 0;
    for (const auto& p : d.value().partitions) {
      ++seen;
      lag += p.lag().value_or(1);
    }
    drained = seen == kPartitions && lag == 0;
  }
  EXPECT_TRUE(drained) << "the group did not catch up";
  for (auto& [pid, _] : live) ::kill(pid, SIGTERM);
  for (auto& [pid, _] : live) ::waitpid(pid, nullptr, 0);
  watching = false;
  watcher.join();

  // Read every member's log.
  std::map<int, std::map<int, std::string>> owner;  // generation -> partition -> member
  std::set<int> delivered;
  std::map<int, std::int64_t> acked_commit;  // partition -> highest acknowledged
  for (const auto& out : outputs) {
    std::ifstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string kind;
      ls >> kind;
      if (kind == "A") {
        int gen;
        std::string member, parts;
        ls >> gen >> member >> parts;
        if (parts == "-") continue;
        std::stringstream ps(parts);
        std::string p;
        while (std::getline(ps, p, ',')) {
          auto [it, fresh] = owner[gen].emplace(std::stoi(p), member);
          EXPECT_TRUE(fresh || it->second == member)
              << "partition " << p << " owned by " << it->second << " and " << member
              << " in generation " << gen;
        }
      } else if (kind == "R") {
        int gen, p;
        std::int64_t off;
        std::string value;
        ls >> gen >> p >> off >> value;
        delivered.insert(std::stoi(value));
      } else if (kind == "C") {
        int gen, p;
        std::int64_t next;
        ls >> gen >> p >> next;
        acked_commit[p] = std::max(acked_commit[p], next);
      }
    }
  }
  int missing = 0;
  for (int i = 0; i < total; ++i)
    if (!delivered.count(i)) ++missing;
  EXPECT_EQ(missing, 0) << "of " << total << " records";
  auto final_offsets = admin.committed_offsets("churn");
  ASSERT_TRUE(final_offsets);
  for (const auto& cp : final_offsets.value())
    EXPECT_GE(cp.next.value_or(offset(0)).value(), acked_commit[cp.tp.partition.value()]);
  EXPECT_EQ(regressions, 0);
  EXPECT_GT(owner.size(), 3u) << "expected several generations";
  std::printf("churn: %d records, %d kills, %d clean leaves, %zu generations, %zu members\n", total,
              kills, leaves, owner.size(), outputs.size());
  b.value()->stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry
