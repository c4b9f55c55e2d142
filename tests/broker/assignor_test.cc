// Partition assignment: validity of every strategy, sticky balance and
// minimal movement, Kafka's range and round-robin layouts.
#include "assignor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace ferry::broker {
namespace {

using counts_t = std::map<std::string, std::int32_t, std::less<>>;
using result_t = std::map<std::string, std::vector<tp_key>>;
using owners_t = std::map<tp_key, std::string>;

constexpr assign_strategy kAll[] = {assign_strategy::sticky, assign_strategy::range,
                                    assign_strategy::round_robin};

std::vector<member_subscription> uniform(int members, std::set<std::string> topics,
                                         const std::string& prefix = "m") {
  std::vector<member_subscription> out;
  for (int i = 0; i < members; ++i) out.push_back({prefix + std::to_string(i), topics});
  return out;
}

std::vector<tp_key> tps(const std::string& topic, std::vector<std::int32_t> parts) {
  std::vector<tp_key> out;
  for (auto p : parts) out.emplace_back(topic, p);
  return out;
}

owners_t owners_of(const result_t& r) {
  owners_t o;
  for (const auto& [id, list] : r)
    for (const auto& tp : list) o[tp] = id;
  return o;
}

// Every member appears; every partition of a subscribed, existing topic goes
// to exactly one member subscribed to it; nothing else is handed out; lists
// are sorted.
void expect_valid(const result_t& r, const std::vector<member_subscription>& members,
                  const counts_t& counts) {
  std::map<std::string, const member_subscription*> by_id;
  for (const auto& m : members) by_id[m.member_id] = &m;
  ASSERT_EQ(r.size(), by_id.size()) << "every member appears, no one else";
  std::map<tp_key, int> seen;
  for (const auto& [id, list] : r) {
    ASSERT_TRUE(by_id.count(id)) << "unknown member " << id;
    EXPECT_TRUE(std::is_sorted(list.begin(), list.end())) << id;
    for (const auto& tp : list) {
      ++seen[tp];
      EXPECT_TRUE(by_id[id]->topics.count(tp.first))
          << id << " got " << tp.first << "-" << tp.second << " without subscribing to it";
      auto c = counts.find(tp.first);
      ASSERT_NE(c, counts.end()) << "partition of a missing topic " << tp.first;
      EXPECT_TRUE(tp.second >= 0 && tp.second < c->second) << tp.first << "-" << tp.second;
    }
  }
  std::set<std::string> subscribed;
  for (const auto& m : members) subscribed.insert(m.topics.begin(), m.topics.end());
  std::size_t expected = 0;
  for (const auto& t : subscribed) {
    auto c = counts.find(t);
    if (c == counts.end()) continue;
    for (std::int32_t p = 0; p < c->second; ++p) {
      ++expected;
      EXPECT_EQ((seen[{t, p}]), 1) << t << "-" << p << " must have exactly one owner";
    }
  }
  EXPECT_EQ(seen.size(), expected);
}

std::pair<std::size_t, std::size_t> min_max(const result_t& r) {
  std::size_t lo = SIZE_MAX, hi = 0;
  for (const auto& [_, l] : r) {
    lo = std::min(lo, l.size());
    hi = std::max(hi, l.size());
  }
  return {lo, hi};
}

// Partitions whose owner differs between two assignments (a partition that
// had no owner before does not count).
std::size_t moved(const owners_t& before, const owners_t& after) {
  std::size_t n = 0;
  for (const auto& [tp, who] : before) {
    auto it = after.find(tp);
    if (it != after.end() && it->second != who) ++n;
  }
  return n;
}

// The fewest partitions that must change owner to reach a balanced
// assignment (uniform subscriptions): the members that own the most keep
// ceil(N/M), the others floor(N/M); partitions of members that left or
// partitions without an owner are free.
std::size_t min_moves(const owners_t& previous, const std::vector<member_subscription>& members,
                      std::size_t partitions) {
  std::map<std::string, std::size_t> had;
  for (const auto& m : members) had[m.member_id] = 0;
  std::size_t orphaned_owned = 0;  // owned before by a member that is gone: must move
  for (const auto& [_, who] : previous) {
    if (had.count(who))
      ++had[who];
    else
      ++orphaned_owned;
  }
  std::vector<std::size_t> counts;
  for (const auto& [_, n] : had) counts.push_back(n);
  std::sort(counts.rbegin(), counts.rend());
  const std::size_t m = counts.size(), floor_share = partitions / m, extra = partitions % m;
  std::size_t moves = orphaned_owned;
  for (std::size_t i = 0; i < m; ++i) {
    const std::size_t target = floor_share + (i < extra ? 1 : 0);
    if (counts[i] > target) moves += counts[i] - target;
  }
  return moves;
}

TEST(AssignorTest, EveryStrategyGivesEachPartitionToExactlyOneSubscriber) {
  const counts_t counts{{"a", 7}, {"b", 3}, {"c", 1}};
  for (auto s : kAll) {
    SCOPED_TRACE(strategy_name(s));
    for (int members = 1; members <= 9; ++members) {
      auto subs = uniform(members, {"a", "b", "c"});
      auto r = assign_partitions(s, subs, counts, {});
      expect_valid(r, subs, counts);
    }
  }
}

TEST(AssignorTest, NoMembersOrNoTopicsGiveNothing) {
  for (auto s : kAll) {
    SCOPED_TRACE(strategy_name(s));
    EXPECT_TRUE(assign_partitions(s, {}, {{"a", 3}}, {}).empty());
    auto subs = uniform(2, {"a"});
    auto r = assign_partitions(s, subs, {}, {});
    ASSERT_EQ(r.size(), 2u);
    for (const auto& [_, l] : r) EXPECT_TRUE(l.empty());
  }
}

TEST(AssignorTest, MissingTopicsAreSkipped) {
  const counts_t counts{{"a", 4}};
  std::vector<member_subscription> subs{{"m0", {"a", "gone"}}, {"m1", {"a"}}, {"m2", {"gone"}}};
  for (auto s : kAll) {
    SCOPED_TRACE(strategy_name(s));
    auto r = assign_partitions(s, subs, counts, {});
    expect_valid(r, subs, counts);
    EXPECT_TRUE(r["m2"].empty()) << "m2 subscribes only to a topic that does not exist";
    EXPECT_EQ(r["m0"].size() + r["m1"].size(), 4u);
  }
}

TEST(AssignorTest, HeterogeneousSubscriptionsGoOnlyToSubscribers) {
  // m1 alone subscribes to "solo"; "shared" goes to everyone.
  const counts_t counts{{"shared", 6}, {"solo", 5}};
  std::vector<member_subscription> subs{
      {"m0", {"shared"}}, {"m1", {"shared", "solo"}}, {"m2", {"shared"}}};
  for (auto s : kAll) {
    SCOPED_TRACE(strategy_name(s));
    auto r = assign_partitions(s, subs, counts, {});
    expect_valid(r, subs, counts);
    std::size_t solo = 0;
    for (const auto& tp : r["m1"]) solo += tp.first == "solo";
    EXPECT_EQ(solo, 5u) << "only m1 may own solo's partitions";
  }
}

TEST(AssignorTest, RangeMatchesKafkasRangeAssignor) {
  {
    auto subs = uniform(2, {"t"});
    auto r = assign_partitions(assign_strategy::range, subs, {{"t", 5}}, {});
    EXPECT_EQ(r["m0"], tps("t", {0, 1, 2}));
    EXPECT_EQ(r["m1"], tps("t", {3, 4}));
  }
  {
    // Kafka's javadoc example: t0 and t1 with 3 partitions, C0 and C1.
    std::vector<member_subscription> subs{{"C1", {"t0", "t1"}}, {"C0", {"t0", "t1"}}};
    auto r = assign_partitions(assign_strategy::range, subs, {{"t0", 3}, {"t1", 3}}, {});
    std::vector<tp_key> c0{{"t0", 0}, {"t0", 1}, {"t1", 0}, {"t1", 1}};
    std::vector<tp_key> c1{{"t0", 2}, {"t1", 2}};
    EXPECT_EQ(r["C0"], c0) << "member id order, whatever the input order";
    EXPECT_EQ(r["C1"], c1);
  }
  {
    // 3 members, 8 partitions: 3, 3, 2. Per topic over its own subscribers.
    std::vector<member_subscription> subs{{"a", {"x", "y"}}, {"b", {"x"}}, {"c", {"x", "y"}}};
    auto r = assign_partitions(assign_strategy::range, subs, {{"x", 8}, {"y", 3}}, {});
    std::vector<tp_key> a{{"x", 0}, {"x", 1}, {"x", 2}, {"y", 0}, {"y", 1}};
    std::vector<tp_key> b{{"x", 3}, {"x", 4}, {"x", 5}};
    std::vector<tp_key> c{{"x", 6}, {"x", 7}, {"y", 2}};
    EXPECT_EQ(r["a"], a);
    EXPECT_EQ(r["b"], b);
    EXPECT_EQ(r["c"], c);
  }
  {
    // More members than partitions: the last ones get nothing.
    auto subs = uniform(4, {"t"});
    auto r = assign_partitions(assign_strategy::range, subs, {{"t", 2}}, {});
    EXPECT_EQ(r["m0"], tps("t", {0}));
    EXPECT_EQ(r["m1"], tps("t", {1}));
    EXPECT_TRUE(r["m2"].empty());
    EXPECT_TRUE(r["m3"].empty());
  }
}

TEST(AssignorTest, RoundRobinMatchesKafkasRoundRobinAssignor) {
  {
    // Kafka's javadoc example 1.
    std::vector<member_subscription> subs{{"C0", {"t0", "t1"}}, {"C1", {"t0", "t1"}}};
    auto r = assign_partitions(assign_strategy::round_robin, subs, {{"t0", 3}, {"t1", 3}}, {});
    std::vector<tp_key> c0{{"t0", 0}, {"t0", 2}, {"t1", 1}};
    std::vector<tp_key> c1{{"t0", 1}, {"t1", 0}, {"t1", 2}};
    EXPECT_EQ(r["C0"], c0);
    EXPECT_EQ(r["C1"], c1);
  }
  {
    // Example 2: C0 subscribes to t0; C1 to t0, t1; C2 to t0, t1, t2.
    std::vector<member_subscription> subs{
        {"C2", {"t0", "t1", "t2"}}, {"C0", {"t0"}}, {"C1", {"t0", "t1"}}};
    auto r = assign_partitions(assign_strategy::round_robin, subs,
                               {{"t0", 1}, {"t1", 2}, {"t2", 3}}, {});
    std::vector<tp_key> c2{{"t1", 1}, {"t2", 0}, {"t2", 1}, {"t2", 2}};
    EXPECT_EQ(r["C0"], tps("t0", {0}));
    EXPECT_EQ(r["C1"], tps("t1", {0}));
    EXPECT_EQ(r["C2"], c2);
  }
}

TEST(AssignorTest, StickyIsBalancedWithUniformSubscriptions) {
  for (int parts = 0; parts <= 25; ++parts)
    for (int members = 1; members <= 7; ++members) {
      auto subs = uniform(members, {"t"});
      const counts_t counts{{"t", parts}};
      auto r = assign_partitions(assign_strategy::sticky, subs, counts, {});
      expect_valid(r, subs, counts);
      auto [lo, hi] = min_max(r);
      EXPECT_LE(hi - lo, 1u) << parts << " partitions over " << members << " members";
    }
}

TEST(AssignorTest, StickyMovesOnlyTheLeaversPartitions) {
  for (int parts : {8, 12}) {
    SCOPED_TRACE(parts);
    const counts_t counts{{"t", parts}};
    auto four = uniform(4, {"t"});
    auto before = assign_partitions(assign_strategy::sticky, four, counts, {});
    auto owners = owners_of(before);
    for (int leaver = 0; leaver < 4; ++leaver) {
      SCOPED_TRACE(leaver);
      auto three = four;
      three.erase(three.begin() + leaver);
      auto after = assign_partitions(assign_strategy::sticky, three, counts, owners);
      expect_valid(after, three, counts);
      auto [lo, hi] = min_max(after);
      EXPECT_LE(hi - lo, 1u);
      const std::string gone = "m" + std::to_string(leaver);
      for (const auto& [id, list] : after)
        for (const auto& tp : before.at(id))
          EXPECT_NE(std::find(list.begin(), list.end(), tp), list.end())
              << id << " lost " << tp.first << "-" << tp.second << " though only " << gone
              << " left";
      EXPECT_EQ(moved(owners, owners_of(after)), before.at(gone).size());
    }
  }
}

TEST(AssignorTest, StickyJoinMovesTheMinimumForBalance) {
  for (int parts : {5, 8, 12, 13}) {
    for (int members = 1; members <= 6; ++members) {
      SCOPED_TRACE(::testing::Message() << parts << " partitions, " << members << " + 1 members");
      const counts_t counts{{"t", parts}};
      auto subs = uniform(members, {"t"});
      auto owners = owners_of(assign_partitions(assign_strategy::sticky, subs, counts, {}));
      subs.push_back({"new", {"t"}});
      auto after = assign_partitions(assign_strategy::sticky, subs, counts, owners);
      expect_valid(after, subs, counts);
      auto [lo, hi] = min_max(after);
      EXPECT_LE(hi - lo, 1u);
      EXPECT_EQ(moved(owners, owners_of(after)),
                min_moves(owners, subs, static_cast<std::size_t>(parts)));
      EXPECT_EQ(after["new"].size(), static_cast<std::size_t>(parts / (members + 1)))
          << "the newcomer gets the floor share, the rest stays put";
    }
  }
}

TEST(AssignorTest, StickyKeepsAStableGroupUnchanged) {
  const counts_t counts{{"a", 5}, {"b", 7}};
  auto subs = uniform(3, {"a", "b"});
  auto first = assign_partitions(assign_strategy::sticky, subs, counts, {});
  auto again = assign_partitions(assign_strategy::sticky, subs, counts, owners_of(first));
  EXPECT_EQ(first, again);
}

// Random groups, subscriptions and previous owners for every strategy;
// sticky, with uniform subscriptions, must also be balanced and move no more
// than needed.
TEST(AssignorTest, RandomizedProperties) {
  for (std::uint32_t seed = 1; seed <= 400; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    counts_t counts;
    const int topics = pick(1, 4);
    for (int t = 0; t < topics; ++t) counts["t" + std::to_string(t)] = pick(0, 20);
    const bool same = pick(0, 1) == 1;
    std::set<std::string> all;
    for (int t = 0; t <= topics; ++t) all.insert("t" + std::to_string(t));  // t<topics>: missing
    std::vector<member_subscription> subs;
    const int members = pick(1, 8);
    for (int i = 0; i < members; ++i) {
      member_subscription m{"c" + std::to_string(pick(0, 1000)) + "-" + std::to_string(i), {}};
      if (same) {
        m.topics = all;
      } else {
        for (const auto& t : all)
          if (pick(0, 2) > 0) m.topics.insert(t);
      }
      subs.push_back(std::move(m));
    }
    // Previous owners: members of this group, members that left, and holes.
    owners_t previous;
    for (const auto& [t, n] : counts)
      for (std::int32_t p = 0; p < n + 2; ++p) {
        const int who = pick(-2, members);
        if (who < 0) continue;
        previous[{t, p}] = who == members ? "gone" : subs[static_cast<std::size_t>(who)].member_id;
      }
    for (auto s : kAll) {
      SCOPED_TRACE(strategy_name(s));
      auto r = assign_partitions(s, subs, counts, previous);
      expect_valid(r, subs, counts);
      if (s != assign_strategy::sticky || !same) continue;
      auto [lo, hi] = min_max(r);
      EXPECT_LE(hi - lo, 1u);
      // Only partitions that still exist count as previously owned.
      owners_t live;
      std::size_t n = 0;
      for (const auto& [t, c] : counts) {
        n += static_cast<std::size_t>(c);
        for (std::int32_t p = 0; p < c; ++p)
          if (auto it = previous.find({t, p}); it != previous.end()) live[{t, p}] = it->second;
      }
      EXPECT_EQ(moved(live, owners_of(r)), min_moves(live, subs, n));
    }
  }
}

}  // namespace
}  // namespace ferry::broker
