// The group coordinator driven with a fake steady time and a recording
// join callback: joins, rebalances, fencing, liveness, partition changes.
#include "groups.h"

#include <gtest/gtest.h>

#include <random>

namespace ferry::broker {
namespace {

using namespace std::chrono_literals;
using wire::ErrorCode;

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest()
      : gc_(
            [] {
              group_coordinator::options o;
              o.min_session_timeout = 100ms;
              o.max_session_timeout = 60s;
              return o;
            }(),
            [this](std::string_view t) {
              auto it = parts_.find(std::string(t));
              return it == parts_.end() ? 0 : it->second;
            },
            [this](std::uint64_t token, join_outcome o) {
              EXPECT_FALSE(answers_.count(token)) << "join " << token << " answered twice";
              answers_[token] = std::move(o);
            }) {}

  // Sends a join; returns its token.
  std::uint64_t join(const std::string& member, std::vector<std::string> topics = {"t"},
                     const std::string& group = "g", assign_strategy s = assign_strategy::sticky,
                     std::chrono::milliseconds session = 10s,
                     std::chrono::milliseconds rebalance = 30s) {
    join_params p;
    p.group = group;
    p.member_id = member;
    p.client_id = "client";
    p.host = "127.0.0.1";
    p.topics = std::move(topics);
    p.strategy = s;
    p.session_timeout = session;
    p.rebalance_timeout = rebalance;
    const auto token = ++next_token_;
    gc_.join(token, std::move(p), now_);
    return token;
  }
  // A static member's join (group_instance_id `instance`); returns its token.
  std::uint64_t join_static(const std::string& member, const std::string& instance,
                            std::vector<std::string> topics = {"t"}) {
    join_params p;
    p.group = "g";
    p.member_id = member;
    p.instance_id = instance;
    p.client_id = "client";
    p.host = "127.0.0.1";
    p.topics = std::move(topics);
    const auto token = ++next_token_;
    gc_.join(token, std::move(p), now_);
    return token;
  }
  // Static members i-1 and i-2 through their first rebalance, stable at
  // generation 2; their answers.
  std::pair<join_outcome, join_outcome> two_static_members() {
    auto ta = join_static("", "i-1");
    EXPECT_NE(answer(ta), nullptr);
    auto tb = join_static("", "i-2");
    auto ta2 = join_static(answer(ta) ? answer(ta)->member_id : "", "i-1");
    EXPECT_NE(answer(tb), nullptr);
    EXPECT_NE(answer(ta2), nullptr);
    if (answer(tb) == nullptr || answer(ta2) == nullptr) return {};
    return {*answer(ta2), *answer(tb)};
  }
  // The answer to a join, if it has one.
  const join_outcome* answer(std::uint64_t token) const {
    auto it = answers_.find(token);
    return it == answers_.end() ? nullptr : &it->second;
  }
  // Joins as a new member and expects an answer at once.
  join_outcome join_now(std::vector<std::string> topics = {"t"}, const std::string& group = "g") {
    auto tok = join("", std::move(topics), group);
    auto* a = answer(tok);
    EXPECT_NE(a, nullptr) << "expected an immediate answer";
    return a ? *a : join_outcome{};
  }
  group_view describe(const std::string& group = "g") {
    auto v = gc_.describe(group, now_);
    EXPECT_TRUE(v.has_value()) << group;
    return v.value_or(group_view{});
  }
  void advance(std::chrono::milliseconds d) { now_ += d; }
  void tick() { gc_.tick(now_); }

  // No partition owned by two members; owners agree with the members'
  // assignments; owned partitions exist.
  void check_invariants(const std::string& group = "g") {
    auto v = gc_.describe(group, now_);
    if (!v) return;
    std::map<tp_key, std::string> from_members;
    for (const auto& m : v->members)
      for (const auto& tp : m.assignment) {
        auto [it, fresh] = from_members.emplace(tp, m.member_id);
        EXPECT_TRUE(fresh) << tp.first << "-" << tp.second << " assigned to " << it->second
                           << " and " << m.member_id;
      }
    for (const auto& [tp, who] : v->owners) {
      auto it = from_members.find(tp);
      ASSERT_NE(it, from_members.end()) << "owner " << who << " of " << tp.first << "-" << tp.second
                                        << " does not have it in its assignment";
      EXPECT_EQ(it->second, who);
      EXPECT_TRUE(gc_.owns(group, who, tp));
    }
    if (v->state == group_state::stable) {
      EXPECT_EQ(v->owners.size(), from_members.size())
          << "in a stable group every assigned partition has its owner";
    }
    if (v->state == group_state::empty) {
      EXPECT_TRUE(v->members.empty());
      EXPECT_TRUE(v->owners.empty());
    }
  }
  // Answers with the same generation split every partition of `topic`.
  static void expect_partition_cover(const std::vector<const join_outcome*>& outs,
                                     const std::string& topic, std::int32_t partitions) {
    std::map<tp_key, int> seen;
    for (const auto* o : outs) {
      ASSERT_NE(o, nullptr);
      EXPECT_EQ(o->error, ErrorCode::None) << o->message;
      EXPECT_EQ(o->generation, outs.front()->generation);
      for (const auto& tp : o->assignment) ++seen[tp];
    }
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(partitions));
    for (std::int32_t p = 0; p < partitions; ++p)
      EXPECT_EQ((seen[{topic, p}]), 1) << topic << "-" << p;
  }

  std::map<std::string, std::int32_t> parts_{{"t", 4}, {"u", 2}};
  std::map<std::uint64_t, join_outcome> answers_;
  std::uint64_t next_token_ = 0;
  steady_tp now_ = steady_tp{} + 1h;
  group_coordinator gc_;
};

TEST_F(CoordinatorTest, FirstJoinCompletesAtOnceWithGenerationOne) {
  auto tok = join("");
  const auto* a = answer(tok);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->error, ErrorCode::None) << a->message;
  EXPECT_EQ(a->generation, 1);
  EXPECT_FALSE(a->member_id.empty()) << "the broker picks an id for a new member";
  EXPECT_EQ(a->member_id.rfind("client-", 0), 0u) << a->member_id;
  std::vector<tp_key> all{{"t", 0}, {"t", 1}, {"t", 2}, {"t", 3}};
  EXPECT_EQ(a->assignment, all);
  auto v = describe();
  EXPECT_EQ(v.state, group_state::stable);
  EXPECT_EQ(v.generation, 1);
  ASSERT_EQ(v.members.size(), 1u);
  EXPECT_EQ(v.members[0].host, "127.0.0.1");
  EXPECT_TRUE(gc_.owns("g", a->member_id, {"t", 3}));
  EXPECT_FALSE(gc_.owns("g", a->member_id, {"t", 4}));
  EXPECT_FALSE(gc_.owns("other", a->member_id, {"t", 0}));
  EXPECT_TRUE(gc_.heartbeat("g", a->member_id, 1, now_));
  EXPECT_TRUE(gc_.check_fetch("g", a->member_id, 1, now_));
  EXPECT_TRUE(gc_.has_members("g"));
  check_invariants();
}

TEST_F(CoordinatorTest, SecondMemberRebalancesAfterTheFirstRejoins) {
  auto a = join_now();
  ASSERT_EQ(a.generation, 1);
  (void)gc_.take_wakeup();

  auto tok_b = join("");
  EXPECT_EQ(answer(tok_b), nullptr) << "waits for the first member to rejoin";
  EXPECT_TRUE(gc_.take_wakeup()) << "parked member fetches must be woken";
  EXPECT_FALSE(gc_.take_wakeup()) << "once";
  EXPECT_EQ(describe().state, group_state::preparing_rebalance);
  check_invariants();

  auto hb = gc_.heartbeat("g", a.member_id, 1, now_);
  EXPECT_EQ(hb.error, ErrorCode::RebalanceInProgress) << hb.message;
  EXPECT_EQ(gc_.check_fetch("g", a.member_id, 1, now_).error, ErrorCode::RebalanceInProgress);
  // Until it rejoins the first member keeps its partitions and may commit.
  EXPECT_TRUE(gc_.check_commit("g", a.member_id, 1, now_));
  EXPECT_TRUE(gc_.owns("g", a.member_id, {"t", 2}));

  advance(10ms);
  auto tok_a = join(a.member_id);
  const auto* a2 = answer(tok_a);
  const auto* b2 = answer(tok_b);
  ASSERT_NE(a2, nullptr);
  ASSERT_NE(b2, nullptr);
  EXPECT_EQ(a2->generation, 2);
  EXPECT_EQ(b2->generation, 2);
  EXPECT_EQ(a2->member_id, a.member_id);
  EXPECT_NE(b2->member_id, a.member_id);
  expect_partition_cover({a2, b2}, "t", 4);
  EXPECT_EQ(a2->assignment.size(), 2u);
  EXPECT_EQ(b2->assignment.size(), 2u);
  EXPECT_EQ(describe().state, group_state::stable);
  check_invariants();

  // Fencing: the old generation, and strangers, are refused.
  EXPECT_EQ(gc_.check_commit("g", a.member_id, 1, now_).error, ErrorCode::StaleGeneration);
  EXPECT_EQ(gc_.heartbeat("g", a.member_id, 1, now_).error, ErrorCode::StaleGeneration);
  EXPECT_EQ(gc_.check_fetch("g", a.member_id, 1, now_).error, ErrorCode::StaleGeneration);
  EXPECT_EQ(gc_.check_commit("g", "nobody", 2, now_).error, ErrorCode::UnknownMember);
  EXPECT_EQ(gc_.check_commit("nogroup", a.member_id, 2, now_).error, ErrorCode::UnknownMember);
  EXPECT_EQ(gc_.heartbeat("g", "nobody", 2, now_).error, ErrorCode::UnknownMember);
  EXPECT_TRUE(gc_.check_commit("g", a.member_id, 2, now_));
  EXPECT_TRUE(gc_.heartbeat("g", b2->member_id, 2, now_));
  for (const auto& tp : a2->assignment) {
    EXPECT_TRUE(gc_.owns("g", a.member_id, tp));
    EXPECT_FALSE(gc_.owns("g", b2->member_id, tp));
  }
  for (const auto& tp : b2->assignment) EXPECT_TRUE(gc_.owns("g", b2->member_id, tp));
}

TEST_F(CoordinatorTest, KnownMemberRejoiningAStableGroupGetsItsShareAtOnce) {
  auto a = join_now();
  auto tok = join(a.member_id);
  const auto* again = answer(tok);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->generation, 1) << "no rebalance for a rejoin that changes nothing";
  EXPECT_EQ(again->assignment, a.assignment);
  // A rejoin with other topics rebalances (alone: at once).
  auto tok2 = join(a.member_id, {"t", "u"});
  ASSERT_NE(answer(tok2), nullptr);
  EXPECT_EQ(answer(tok2)->generation, 2);
  EXPECT_EQ(answer(tok2)->assignment.size(), 6u);
}

TEST_F(CoordinatorTest, RetriedJoinSupersedesTheWaitingOne) {
  auto a = join_now();
  auto b = join("b-fixed");
  ASSERT_EQ(answer(b), nullptr);
  auto b_retry = join("b-fixed");
  ASSERT_NE(answer(b), nullptr) << "the older join is answered";
  EXPECT_EQ(answer(b)->error, ErrorCode::RebalanceInProgress);
  EXPECT_EQ(answer(b_retry), nullptr);
  auto a2 = join(a.member_id);
  ASSERT_NE(answer(b_retry), nullptr);
  EXPECT_EQ(answer(b_retry)->member_id, "b-fixed");
  expect_partition_cover({answer(a2), answer(b_retry)}, "t", 4);
  EXPECT_EQ(describe().members.size(), 2u);
  check_invariants();
}

TEST_F(CoordinatorTest, LeaveRebalancesTheOthers) {
  auto a = join_now();
  auto tb = join("");
  auto ta = join(a.member_id);
  ASSERT_NE(answer(tb), nullptr);
  const std::string b = answer(tb)->member_id;
  ASSERT_EQ(answer(ta)->generation, 2);
  (void)gc_.take_wakeup();

  EXPECT_TRUE(gc_.leave("g", b, now_));
  EXPECT_TRUE(gc_.take_wakeup());
  EXPECT_EQ(describe().state, group_state::preparing_rebalance);
  for (std::int32_t p = 0; p < 4; ++p)
    EXPECT_FALSE(gc_.owns("g", b, {"t", p})) << "a member that left owns nothing";
  check_invariants();
  EXPECT_EQ(gc_.leave("g", b, now_).error, ErrorCode::UnknownMember);
  EXPECT_EQ(gc_.heartbeat("g", b, 2, now_).error, ErrorCode::UnknownMember);
  EXPECT_EQ(gc_.heartbeat("g", a.member_id, 2, now_).error, ErrorCode::RebalanceInProgress);
  auto ta3 = join(a.member_id);
  ASSERT_NE(answer(ta3), nullptr);
  EXPECT_EQ(answer(ta3)->generation, 3);
  EXPECT_EQ(answer(ta3)->assignment.size(), 4u);
  check_invariants();

  // The last member leaving empties the group.
  EXPECT_TRUE(gc_.leave("g", a.member_id, now_));
  auto v = describe();
  EXPECT_EQ(v.state, group_state::empty);
  EXPECT_TRUE(v.members.empty());
  EXPECT_FALSE(gc_.has_members("g"));
  ASSERT_TRUE(gc_.emptied_at("g").has_value());
  EXPECT_EQ(*gc_.emptied_at("g"), now_);
  check_invariants();
  // The generation carries on when the group is used again.
  EXPECT_EQ(join_now().generation, 4);
}

TEST_F(CoordinatorTest, LeaveWhileWaitingInJoinAnswersTheJoin) {
  auto a = join_now();
  auto tb = join("b");
  EXPECT_TRUE(gc_.leave("g", "b", now_));
  ASSERT_NE(answer(tb), nullptr);
  EXPECT_EQ(answer(tb)->error, ErrorCode::UnknownMember);
  // a alone again, but it must still rejoin: the group is rebalancing.
  EXPECT_EQ(gc_.heartbeat("g", a.member_id, 1, now_).error, ErrorCode::RebalanceInProgress);
  auto ta = join(a.member_id);
  ASSERT_NE(answer(ta), nullptr);
  EXPECT_EQ(answer(ta)->generation, 2);
  EXPECT_EQ(answer(ta)->assignment.size(), 4u);
}

TEST_F(CoordinatorTest, SessionTimeoutRemovesASilentMember) {
  auto a = join_now();
  auto tb = join("", {"t"}, "g", assign_strategy::sticky, 1s);
  auto ta = join(a.member_id);
  ASSERT_NE(answer(tb), nullptr);
  ASSERT_NE(answer(ta), nullptr);
  const std::string b = answer(tb)->member_id;
  (void)gc_.take_wakeup();

  // a heartbeats, b is silent.
  for (int i = 0; i < 9; ++i) {
    advance(100ms);
    ASSERT_TRUE(gc_.heartbeat("g", a.member_id, 2, now_));
    tick();
  }
  EXPECT_EQ(describe().members.size(), 2u) << "b is within its 1 s session";
  advance(150ms);
  ASSERT_TRUE(gc_.heartbeat("g", a.member_id, 2, now_));
  tick();
  auto v = describe();
  ASSERT_EQ(v.members.size(), 1u) << "b timed out";
  EXPECT_EQ(v.members[0].member_id, a.member_id);
  EXPECT_EQ(v.state, group_state::preparing_rebalance);
  EXPECT_TRUE(gc_.take_wakeup());
  check_invariants();
  EXPECT_EQ(gc_.check_commit("g", b, 2, now_).error, ErrorCode::UnknownMember);
  auto ta3 = join(a.member_id);
  ASSERT_NE(answer(ta3), nullptr);
  EXPECT_EQ(answer(ta3)->generation, 3);
  EXPECT_EQ(answer(ta3)->assignment.size(), 4u);
}

TEST_F(CoordinatorTest, FetchesAndCommitsCountAsHeartbeats) {
  auto a = join("", {"t"}, "g", assign_strategy::sticky, 1s);
  const std::string id = answer(a)->member_id;
  for (int i = 0; i < 10; ++i) {
    advance(600ms);
    if (i % 2 == 0)
      ASSERT_TRUE(gc_.check_fetch("g", id, 1, now_));
    else
      ASSERT_TRUE(gc_.check_commit("g", id, 1, now_));
    tick();
  }
  EXPECT_TRUE(gc_.has_members("g"));
  advance(1100ms);
  tick();
  EXPECT_FALSE(gc_.has_members("g")) << "silent for more than its session";
  EXPECT_EQ(describe().state, group_state::empty);
}

TEST_F(CoordinatorTest, AMemberThatDoesNotRejoinInTimeIsRemoved) {
  // The deadline is the longest rebalance timeout of the members: 2 s.
  auto ta = join("", {"t"}, "g", assign_strategy::sticky, 10s, 1s);
  ASSERT_NE(answer(ta), nullptr);
  const auto a = *answer(ta);
  auto tb = join("", {"t"}, "g", assign_strategy::sticky, 10s, 2s);
  ASSERT_EQ(answer(tb), nullptr);
  // a keeps heartbeating (so its session does not expire) but never rejoins.
  for (int i = 0; i < 19; ++i) {
    advance(100ms);
    EXPECT_EQ(gc_.heartbeat("g", a.member_id, 1, now_).error, ErrorCode::RebalanceInProgress);
    tick();
  }
  EXPECT_EQ(answer(tb), nullptr) << "the rebalance deadline (2 s) has not passed";
  advance(200ms);
  tick();
  ASSERT_NE(answer(tb), nullptr);
  EXPECT_EQ(answer(tb)->error, ErrorCode::None);
  EXPECT_EQ(answer(tb)->generation, 2);
  EXPECT_EQ(answer(tb)->assignment.size(), 4u) << "the straggler's partitions too";
  auto v = describe();
  ASSERT_EQ(v.members.size(), 1u);
  EXPECT_EQ(v.members[0].member_id, answer(tb)->member_id);
  EXPECT_EQ(gc_.heartbeat("g", a.member_id, 1, now_).error, ErrorCode::UnknownMember);
  EXPECT_EQ(gc_.check_commit("g", a.member_id, 1, now_).error, ErrorCode::UnknownMember);
  for (std::int32_t p = 0; p < 4; ++p) EXPECT_FALSE(gc_.owns("g", a.member_id, {"t", p}));
  check_invariants();
}

TEST_F(CoordinatorTest, AMemberWaitingInJoinIsNotTimedOut) {
  auto a = join_now();
  auto tb = join("", {"t"}, "g", assign_strategy::sticky, 500ms, 5s);
  ASSERT_EQ(answer(tb), nullptr);
  for (int i = 0; i < 20; ++i) {
    advance(100ms);
    (void)gc_.heartbeat("g", a.member_id, 1, now_);
    tick();
  }
  EXPECT_EQ(answer(tb), nullptr) << "b waits in its join, well past its 500 ms session";
  EXPECT_EQ(describe().members.size(), 2u);
  auto ta = join(a.member_id);
  expect_partition_cover({answer(ta), answer(tb)}, "t", 4);
}

TEST_F(CoordinatorTest, PartitionCountChangeRebalancesAtTheNextTick) {
  auto a = join_now({"t", "u"});
  ASSERT_EQ(a.assignment.size(), 6u);
  (void)gc_.take_wakeup();
  advance(100ms);
  tick();
  EXPECT_EQ(describe().state, group_state::stable) << "nothing changed";
  EXPECT_FALSE(gc_.take_wakeup());

  parts_["u"] = 5;
  advance(100ms);
  tick();
  EXPECT_EQ(describe().state, group_state::preparing_rebalance);
  EXPECT_TRUE(gc_.take_wakeup());
  EXPECT_EQ(gc_.heartbeat("g", a.member_id, 1, now_).error, ErrorCode::RebalanceInProgress);
  auto ta = join(a.member_id, {"t", "u"});
  ASSERT_NE(answer(ta), nullptr);
  EXPECT_EQ(answer(ta)->generation, 2);
  EXPECT_EQ(answer(ta)->assignment.size(), 9u);

  // A subscribed topic that disappears, then one that appears.
  parts_.erase("u");
  advance(100ms);
  tick();
  EXPECT_EQ(describe().state, group_state::preparing_rebalance);
  auto ta2 = join(a.member_id, {"t", "u"});
  ASSERT_NE(answer(ta2), nullptr);
  EXPECT_EQ(answer(ta2)->assignment.size(), 4u);
  advance(100ms);
  tick();
  EXPECT_EQ(describe().state, group_state::stable) << "a missing topic stays missing: no change";
  parts_["u"] = 1;
  advance(100ms);
  tick();
  EXPECT_EQ(describe().state, group_state::preparing_rebalance) << "the topic was created";
}

TEST_F(CoordinatorTest, UnsubscribedTopicChangesDoNotRebalance) {
  (void)join_now({"t"});
  parts_["u"] = 7;
  advance(100ms);
  tick();
  EXPECT_EQ(describe().state, group_state::stable);
}

TEST_F(CoordinatorTest, HeterogeneousSubscriptionsThroughARebalance) {
  for (auto s : {assign_strategy::sticky, assign_strategy::range, assign_strategy::round_robin}) {
    SCOPED_TRACE(strategy_name(s));
    const std::string g = std::string("h-") + strategy_name(s);
    auto ta = join("a", {"t"}, g, s);
    ASSERT_NE(answer(ta), nullptr);
    auto tb = join("b", {"t", "u"}, g, s);
    auto ta2 = join("a", {"t"}, g, s);
    ASSERT_NE(answer(tb), nullptr);
    ASSERT_NE(answer(ta2), nullptr);
    EXPECT_EQ(answer(tb)->generation, 2);
    std::set<tp_key> all;
    for (const auto& tp : answer(ta2)->assignment) {
      EXPECT_EQ(tp.first, "t") << "a does not subscribe to u";
      all.insert(tp);
    }
    std::size_t u = 0;
    for (const auto& tp : answer(tb)->assignment) {
      u += tp.first == "u";
      EXPECT_TRUE(all.insert(tp).second);
    }
    EXPECT_EQ(u, 2u) << "b alone owns u";
    EXPECT_EQ(all.size(), 6u);
    check_invariants(g);
    // b changes its subscription to u only: a rebalance gives a all of t.
    auto tb3 = join("b", {"u"}, g, s);
    EXPECT_EQ(answer(tb3), nullptr) << "a must rejoin first";
    EXPECT_EQ(gc_.heartbeat(g, "a", 2, now_).error, ErrorCode::RebalanceInProgress);
    auto ta3 = join("a", {"t"}, g, s);
    ASSERT_NE(answer(ta3), nullptr);
    ASSERT_NE(answer(tb3), nullptr);
    EXPECT_EQ(answer(ta3)->assignment.size(), 4u);
    EXPECT_EQ(answer(tb3)->assignment.size(), 2u);
    check_invariants(g);
  }
}

TEST_F(CoordinatorTest, StrategyMismatchIsRefused) {
  auto a = join_now();
  auto tok = join("", {"t"}, "g", assign_strategy::range);
  ASSERT_NE(answer(tok), nullptr);
  EXPECT_EQ(answer(tok)->error, ErrorCode::InvalidRequest);
  EXPECT_NE(answer(tok)->message.find("sticky"), std::string::npos) << answer(tok)->message;
  EXPECT_EQ(describe().members.size(), 1u);
  EXPECT_EQ(describe().state, group_state::stable) << "a refused join does not rebalance";
  // Once empty, the group takes the strategy of its next member.
  ASSERT_TRUE(gc_.leave("g", a.member_id, now_));
  auto tok2 = join("", {"t"}, "g", assign_strategy::range);
  ASSERT_NE(answer(tok2), nullptr);
  EXPECT_EQ(answer(tok2)->error, ErrorCode::None);
  EXPECT_EQ(answer(tok2)->strategy, assign_strategy::range);
  EXPECT_EQ(describe().strategy, assign_strategy::range);
}

TEST_F(CoordinatorTest, SessionTimeoutOutsideTheBoundsIsRefused) {
  for (auto session : {99ms, 60001ms}) {
    auto tok = join("", {"t"}, "g", assign_strategy::sticky, session);
    ASSERT_NE(answer(tok), nullptr);
    EXPECT_EQ(answer(tok)->error, ErrorCode::InvalidRequest);
    EXPECT_NE(answer(tok)->message.find("session timeout"), std::string::npos);
  }
  EXPECT_FALSE(gc_.has_members("g"));
  auto ok = join("", {"t"}, "g", assign_strategy::sticky, 100ms);
  EXPECT_EQ(answer(ok)->error, ErrorCode::None);
}

TEST_F(CoordinatorTest, AbortAllAnswersWaitingJoins) {
  auto a = join_now();
  auto tb = join("");
  auto tc = join("", {"t"}, "other");  // completes at once
  ASSERT_NE(answer(tc), nullptr);
  ASSERT_EQ(answer(tb), nullptr);
  gc_.abort_all(ErrorCode::ShuttingDown, "stopping");
  ASSERT_NE(answer(tb), nullptr);
  EXPECT_EQ(answer(tb)->error, ErrorCode::ShuttingDown);
  EXPECT_EQ(answer(tb)->message, "stopping");
  gc_.abort_all(ErrorCode::ShuttingDown, "stopping");  // nothing answered twice
  (void)a;
}

TEST_F(CoordinatorTest, GroupsAreIndependent) {
  auto a = join_now({"t"}, "g1");
  auto b = join_now({"t"}, "g2");
  EXPECT_EQ(a.assignment.size(), 4u);
  EXPECT_EQ(b.assignment.size(), 4u) << "each group consumes every partition";
  EXPECT_TRUE(gc_.owns("g1", a.member_id, {"t", 0}));
  EXPECT_FALSE(gc_.owns("g2", a.member_id, {"t", 0}));
  EXPECT_EQ(gc_.heartbeat("g2", a.member_id, 1, now_).error, ErrorCode::UnknownMember);
  auto all = gc_.list(now_);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "g1");
  EXPECT_EQ(all[1].name, "g2");
}

TEST_F(CoordinatorTest, EraseOnlyForgetsEmptyGroups) {
  auto a = join_now();
  EXPECT_FALSE(gc_.erase("g"));
  EXPECT_TRUE(gc_.describe("g", now_).has_value());
  ASSERT_TRUE(gc_.leave("g", a.member_id, now_));
  EXPECT_TRUE(gc_.erase("g"));
  EXPECT_FALSE(gc_.describe("g", now_).has_value());
  EXPECT_TRUE(gc_.erase("never"));
}

TEST_F(CoordinatorTest, DescribeReportsTimeSinceLastSeen) {
  auto a = join_now();
  advance(250ms);
  auto v = describe();
  ASSERT_EQ(v.members.size(), 1u);
  EXPECT_EQ(v.members[0].since_seen, 250ms);
  ASSERT_TRUE(gc_.heartbeat("g", a.member_id, 1, now_));
  EXPECT_EQ(describe().members[0].since_seen, 0ms);
}

TEST_F(CoordinatorTest, NextDeadlineOnlyWithMembers) {
  EXPECT_EQ(gc_.next_deadline(), steady_tp::max());
  auto a = join_now();
  tick();
  EXPECT_LE(gc_.next_deadline(), now_ + 1s);
  ASSERT_TRUE(gc_.leave("g", a.member_id, now_));
  EXPECT_EQ(gc_.next_deadline(), steady_tp::max());
}

// Random joins, rejoins, leaves, heartbeats, silences and partition changes
// with fake time. After every step: no partition has two owners, and the
// members answered with the group's current generation split the partitions
// of the subscribed topic exactly.
TEST_F(CoordinatorTest, StaticMemberRestartTakesItsPlaceWithoutARebalance) {
  auto ta = join_static("", "i-1");
  ASSERT_NE(answer(ta), nullptr);
  const auto a1 = *answer(ta);
  auto tb = join_static("", "i-2");
  auto ta2 = join_static(a1.member_id, "i-1");  // a rejoins for the rebalance b started
  ASSERT_NE(answer(tb), nullptr);
  ASSERT_NE(answer(ta2), nullptr);
  const auto a = *answer(ta2), b = *answer(tb);
  ASSERT_EQ(a.error, ErrorCode::None) << a.message;
  ASSERT_EQ(a.generation, 2);
  ASSERT_EQ(a.assignment.size(), 2u);

  // a's process is killed and started again: it joins as a new member with
  // its instance id, and is answered at once with the same partitions.
  advance(3s);
  auto tr = join_static("", "i-1");
  const auto* r = answer(tr);
  ASSERT_NE(r, nullptr) << "a static member's restart is answered at once";
  EXPECT_EQ(r->error, ErrorCode::None) << r->message;
  EXPECT_NE(r->member_id, a.member_id) << "a new process gets a new member id";
  EXPECT_EQ(r->generation, 2) << "no rebalance";
  EXPECT_EQ(r->assignment, a.assignment);
  auto v = describe();
  EXPECT_EQ(v.state, group_state::stable);
  EXPECT_EQ(v.members.size(), 2u);
  for (const auto& tp : a.assignment) {
    EXPECT_TRUE(gc_.owns("g", r->member_id, tp));
    EXPECT_FALSE(gc_.owns("g", a.member_id, tp));
  }
  check_invariants();
  // b goes on undisturbed.
  EXPECT_TRUE(gc_.heartbeat("g", b.member_id, 2, now_, "i-2"));
  EXPECT_TRUE(gc_.check_fetch("g", b.member_id, 2, now_, "i-2"));
  // The old process, if it were still alive, is fenced everywhere.
  EXPECT_EQ(gc_.heartbeat("g", a.member_id, 2, now_, "i-1").error, ErrorCode::FencedInstanceId);
  EXPECT_EQ(gc_.check_fetch("g", a.member_id, 2, now_, "i-1").error, ErrorCode::FencedInstanceId);
  auto commit = gc_.check_commit("g", a.member_id, 2, now_, "i-1");
  EXPECT_EQ(commit.error, ErrorCode::FencedInstanceId);
  EXPECT_NE(commit.message.find("group_instance_id i-1"), std::string::npos) << commit.message;
  // Its rejoin with its old member id is fenced too: it cannot take the
  // place back from the process that replaced it.
  auto told = join_static(a.member_id, "i-1");
  ASSERT_NE(answer(told), nullptr);
  EXPECT_EQ(answer(told)->error, ErrorCode::FencedInstanceId);
  EXPECT_EQ(describe().generation, 2);
  // The new process is the member now.
  EXPECT_TRUE(gc_.check_commit("g", r->member_id, 2, now_, "i-1"));
}

TEST_F(CoordinatorTest, DynamicMemberRestartRebalances) {
  // The negative control of the test above: without an instance id the
  // restarted process is a third member, and the group rebalances.
  auto a = join_now();
  auto tb = join("");
  auto ta2 = join(a.member_id);
  ASSERT_NE(answer(tb), nullptr);
  ASSERT_NE(answer(ta2), nullptr);
  ASSERT_EQ(answer(ta2)->generation, 2);
  auto tr = join("");
  EXPECT_EQ(answer(tr), nullptr) << "a new dynamic member waits for the rebalance";
  EXPECT_EQ(describe().state, group_state::preparing_rebalance);
  EXPECT_EQ(gc_.heartbeat("g", answer(tb)->member_id, 2, now_).error,
            ErrorCode::RebalanceInProgress);
}

TEST_F(CoordinatorTest, StaticMemberWhoseSessionExpiresIsRemoved) {
  [[maybe_unused]] const auto [a, b] = two_static_members();
  ASSERT_FALSE(b.member_id.empty());
  // Only b heartbeats; a's session (10 s) runs out.
  for (int i = 0; i < 12; ++i) {
    advance(1s);
    (void)gc_.heartbeat("g", b.member_id, 2, now_, "i-2");
    tick();
  }
  auto hb = gc_.heartbeat("g", b.member_id, 2, now_, "i-2");
  EXPECT_EQ(hb.error, ErrorCode::RebalanceInProgress) << "a static member's expiry rebalances";
  auto tb2 = join_static(b.member_id, "i-2");
  ASSERT_NE(answer(tb2), nullptr);
  EXPECT_EQ(answer(tb2)->generation, 3);
  EXPECT_EQ(answer(tb2)->assignment.size(), 4u);
  EXPECT_EQ(describe().members.size(), 1u);
  // A restart of a after that is an ordinary join: a rebalance.
  auto tr = join_static("", "i-1");
  EXPECT_EQ(answer(tr), nullptr);
  check_invariants();
}

TEST_F(CoordinatorTest, StaticRestartWithOtherTopicsRebalances) {
  auto ta = join_static("", "i-1");
  ASSERT_NE(answer(ta), nullptr);
  ASSERT_EQ(answer(ta)->generation, 1);
  auto tr = join_static("", "i-1", {"t", "u"});
  const auto* r = answer(tr);
  ASSERT_NE(r, nullptr) << "the only member: the rebalance completes at once";
  EXPECT_EQ(r->generation, 2) << "a changed subscription needs a new assignment";
  EXPECT_EQ(r->assignment.size(), 6u);
  EXPECT_EQ(describe().members.size(), 1u);
}

TEST_F(CoordinatorTest, StaticMemberReplacedWhileWaitingInJoin) {
  auto ta = join_static("", "i-1");
  ASSERT_NE(answer(ta), nullptr);
  const auto a = *answer(ta);
  auto tb = join("");  // b starts a rebalance; a has not rejoined yet
  ASSERT_EQ(answer(tb), nullptr);
  auto ta2 = join_static(a.member_id, "i-1");  // a rejoins and waits...
  // (b's join already waits, a's rejoin completes the round.)
  ASSERT_NE(answer(ta2), nullptr);
  ASSERT_NE(answer(tb), nullptr);
  // Next round: c joins, and while a waits in JoinGroup its process is
  // replaced; the waiting join is answered FencedInstanceId.
  auto tc = join("");
  ASSERT_EQ(answer(tc), nullptr);
  auto ta3 = join_static(a.member_id, "i-1");
  ASSERT_EQ(answer(ta3), nullptr);
  auto tr = join_static("", "i-1");
  ASSERT_NE(answer(ta3), nullptr);
  EXPECT_EQ(answer(ta3)->error, ErrorCode::FencedInstanceId);
  auto tb2 = join(answer(tb)->member_id);
  ASSERT_NE(answer(tr), nullptr);
  ASSERT_NE(answer(tb2), nullptr);
  ASSERT_NE(answer(tc), nullptr);
  std::vector<const join_outcome*> outs{answer(tr), answer(tb2), answer(tc)};
  expect_partition_cover(outs, "t", 4);
  EXPECT_EQ(describe().members.size(), 3u);
  check_invariants();
}

TEST_F(CoordinatorTest, InvalidInstanceIdIsRefused) {
  auto t = join_static("", "bad id!");
  ASSERT_NE(answer(t), nullptr);
  EXPECT_EQ(answer(t)->error, ErrorCode::InvalidRequest);
  EXPECT_NE(answer(t)->message.find("group_instance_id"), std::string::npos);
  auto v = gc_.describe("g", now_);
  EXPECT_TRUE(!v || v->members.empty()) << "nobody joined";
}

// Persisted membership: a snapshot of a stable group comes back in a new
// coordinator with the same generation, members and owners; a member's
// session starts over at the restore; a group mid-rebalance is left out;
// a snapshot that does not parse restores nothing and says why.
TEST_F(CoordinatorTest, SnapshotRestoresStableGroupsOnly) {
  auto ta = join_static("", "i-1");
  ASSERT_NE(answer(ta), nullptr);
  auto tb = join("");
  auto ta2 = join_static(answer(ta)->member_id, "i-1");
  ASSERT_NE(answer(tb), nullptr);
  ASSERT_NE(answer(ta2), nullptr);
  (void)join("", {"t"}, "busy");  // a second group...
  (void)join("", {"t"}, "busy");  // ...rebalancing: not in the snapshot
  ASSERT_TRUE(gc_.take_dirty());
  const auto text = gc_.snapshot();
  const auto before = describe();

  group_coordinator other(
      {}, [](std::string_view) { return 4; }, [](std::uint64_t, join_outcome) {});
  std::string why;
  const auto later = now_ + 5s;
  EXPECT_EQ(other.restore(text, later, &why), 1u) << why;
  EXPECT_TRUE(why.empty());
  auto v = other.describe("g", later);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->state, group_state::stable);
  EXPECT_EQ(v->generation, before.generation);
  EXPECT_EQ(v->owners, before.owners);
  ASSERT_EQ(v->members.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(v->members[i].member_id, before.members[i].member_id);
    EXPECT_EQ(v->members[i].assignment, before.members[i].assignment);
    EXPECT_EQ(v->members[i].instance_id, before.members[i].instance_id);
    EXPECT_EQ(v->members[i].since_seen, 0ms) << "sessions start over at the restore";
  }
  EXPECT_FALSE(other.describe("busy", later).has_value());
  // The restored members go on in their generation.
  EXPECT_TRUE(other.heartbeat("g", answer(tb)->member_id, before.generation, later));
  EXPECT_TRUE(other.check_commit("g", answer(ta2)->member_id, before.generation, later, "i-1"));

  group_coordinator broken(
      {}, [](std::string_view) { return 4; }, [](std::uint64_t, join_outcome) {});
  EXPECT_EQ(broken.restore("{\"v\":1,\"groups\":[{\"name\":3}]}", later, &why), 0u);
  EXPECT_FALSE(why.empty());
  EXPECT_EQ(broken.restore("not json", later, &why), 0u);
  EXPECT_TRUE(broken.list(later).empty());
}

// A snapshot can predate a static takeover (written just before the
// broker died): the process that took the place must not be fenced by
// the restored holder. Until the restored member is heard from, a request
// with the instance id and an unknown member id is told to rejoin, and
// its rejoin takes the place. Once the restored member is heard from, the
// instance id fences again.
TEST_F(CoordinatorTest, ARestoredHolderDoesNotFenceTheProcessThatReplacedIt) {
  auto ta = join_static("", "i-1");
  ASSERT_NE(answer(ta), nullptr);
  const auto old = *answer(ta);
  const auto text = gc_.snapshot();  // before the takeover
  auto tn = join_static("", "i-1");  // the takeover the snapshot missed
  ASSERT_NE(answer(tn), nullptr);
  const auto taker = *answer(tn);

  std::map<std::uint64_t, join_outcome> got;
  group_coordinator after(
      {}, [](std::string_view) { return 4; },
      [&](std::uint64_t t, join_outcome o) { got[t] = std::move(o); });
  std::string why;
  ASSERT_EQ(after.restore(text, now_, &why), 1u) << why;
  auto hb = after.heartbeat("g", taker.member_id, taker.generation, now_, "i-1");
  EXPECT_EQ(hb.error, ErrorCode::UnknownMember) << hb.message;
  join_params p;
  p.group = "g";
  p.member_id = taker.member_id;
  p.instance_id = "i-1";
  p.topics = {"t"};
  after.join(1, std::move(p), now_);
  ASSERT_TRUE(got.count(1));
  EXPECT_EQ(got[1].error, ErrorCode::None) << got[1].message;
  EXPECT_EQ(got[1].generation, old.generation) << "it takes the place, no rebalance";
  EXPECT_EQ(got[1].assignment, old.assignment);
  // Now the restored id is the stale one, and it is fenced.
  EXPECT_EQ(after.heartbeat("g", old.member_id, old.generation, now_, "i-1").error,
            ErrorCode::FencedInstanceId);

  // The other order: the restored member is heard from first, then the
  // instance id fences a stranger at once.
  group_coordinator again(
      {}, [](std::string_view) { return 4; }, [](std::uint64_t, join_outcome) {});
  ASSERT_EQ(again.restore(text, now_, &why), 1u) << why;
  EXPECT_TRUE(again.heartbeat("g", old.member_id, old.generation, now_, "i-1"));
  EXPECT_EQ(again.heartbeat("g", "someone-else", old.generation, now_, "i-1").error,
            ErrorCode::FencedInstanceId);
}

// Kafka's --remove-members: a LeaveGroup naming only an instance id
// removes the member holding it (the group rebalances); an id nobody holds
// is UnknownMember and changes nothing.
TEST_F(CoordinatorTest, LeaveByInstanceIdRemovesItsHolder) {
  [[maybe_unused]] const auto [a, b] = two_static_members();
  ASSERT_FALSE(b.member_id.empty());
  EXPECT_EQ(gc_.leave_instance("g", "nobody", now_).error, ErrorCode::UnknownMember);
  EXPECT_EQ(describe().members.size(), 2u);
  EXPECT_TRUE(gc_.leave_instance("g", "i-1", now_));
  auto v = describe();
  ASSERT_EQ(v.members.size(), 1u);
  EXPECT_EQ(v.members.front().instance_id, std::optional<std::string>("i-2"));
  EXPECT_EQ(gc_.heartbeat("g", b.member_id, 2, now_, "i-2").error, ErrorCode::RebalanceInProgress);
  check_invariants();
}

TEST_F(CoordinatorTest, RandomizedInvariants) {
  int stable_checks = 0, rebalances = 0;
  for (std::uint32_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const std::string group = "r" + std::to_string(seed);
    const auto strategy = static_cast<assign_strategy>(pick(0, 2));
    std::map<std::string, std::uint64_t> pending;  // member -> waiting join token
    std::map<std::string, join_outcome> believed;  // member -> last successful answer
    std::set<std::string> silent;
    parts_["t"] = pick(1, 10);
    for (int step = 0; step < 150; ++step) {
      const int op = pick(0, 9);
      auto existing = gc_.describe(group, now_);
      auto members = existing ? existing->members : std::vector<member_view>{};
      auto random_member = [&]() -> std::string {
        if (members.empty()) return "";
        return members[static_cast<std::size_t>(pick(0, static_cast<int>(members.size()) - 1))]
            .member_id;
      };
      if (op <= 1 || members.empty()) {
        pending["new-" + std::to_string(step)] = join("", {"t"}, group, strategy, 1s, 2s);
      } else if (op <= 4) {
        auto m = random_member();
        pending[m] = join(m, {"t"}, group, strategy, 1s, 2s);
        silent.erase(m);
      } else if (op == 5) {
        auto m = random_member();
        (void)gc_.leave(group, m, now_);
        believed.erase(m);
      } else if (op == 6) {
        silent.insert(random_member());
      } else if (op == 7 && pick(0, 3) == 0) {
        parts_["t"] = pick(1, 10);
      } else {
        advance(std::chrono::milliseconds(pick(10, 400)));
        for (const auto& m : members)
          if (!silent.count(m.member_id) && believed.count(m.member_id))
            (void)gc_.heartbeat(group, m.member_id, believed[m.member_id].generation, now_);
        tick();
      }
      // Collect answers.
      for (auto it = pending.begin(); it != pending.end();) {
        if (const auto* a = answer(it->second)) {
          if (a->error == ErrorCode::None) {
            believed[a->member_id] = *a;
          } else {
            believed.erase(a->member_id);
          }
          it = pending.erase(it);
        } else {
          ++it;
        }
      }
      check_invariants(group);
      auto v = describe(group);
      if (v.state != group_state::stable) continue;
      std::vector<const join_outcome*> current;
      for (const auto& m : v.members) {
        auto b = believed.find(m.member_id);
        ASSERT_NE(b, believed.end()) << "a member of a stable group has had its answer";
        ASSERT_EQ(b->second.generation, v.generation);
        EXPECT_EQ(b->second.assignment, m.assignment);
        current.push_back(&b->second);
      }
      if (current.empty()) continue;
      ++stable_checks;
      rebalances = std::max(rebalances, v.generation);
      // A rebalance that started with a partition count not yet assigned:
      // only check the split the members were told about.
      std::int32_t covered = 0;
      for (const auto* c : current) covered += static_cast<std::int32_t>(c->assignment.size());
      expect_partition_cover(current, "t", covered);
      if (::testing::Test::HasFailure()) return;
    }
  }
  EXPECT_GT(stable_checks, 1000) << "the random walk should spend time in stable groups";
  EXPECT_GT(rebalances, 10) << "and go through many generations";
}

}  // namespace
}  // namespace ferry::broker
