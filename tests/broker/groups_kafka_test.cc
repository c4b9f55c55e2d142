// Kafka-protocol groups on the coordinator, with a fake steady time: new
// members get their id first (KIP-394), the protocol all members support
// is chosen by preference, the leader alone sees the members, SyncGroup
// relays the leader's assignment (followers wait for it), a rebalance or
// a silent leader answers waiting syncs, and a group speaks one protocol
// at a time.
#include <gtest/gtest.h>

#include <map>

#include "ferry/kafka/wire.h"
#include "groups.h"

namespace ferry::broker {
namespace {

using namespace std::chrono_literals;
using wire::ErrorCode;

// A consumer protocol Subscription v0 (topics, no user data) or Assignment v0.
std::string subscription(const std::vector<std::string>& topics) {
  kafka::writer w;
  w.i16(0);
  w.array(static_cast<std::int32_t>(topics.size()));
  for (const auto& t : topics) w.string(t);
  w.nullable_bytes(std::nullopt);
  std::string out;
  for (const auto& chunk : std::move(w).take())
    out.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
  return out;
}
std::string assignment(const std::string& topic, const std::vector<std::int32_t>& parts) {
  kafka::writer w;
  w.i16(0);
  w.array(1);
  w.string(topic);
  w.array(static_cast<std::int32_t>(parts.size()));
  for (auto p : parts) w.i32(p);
  w.nullable_bytes(std::nullopt);
  std::string out;
  for (const auto& chunk : std::move(w).take())
    out.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
  return out;
}

class KafkaCoordinatorTest : public ::testing::Test {
 protected:
  KafkaCoordinatorTest()
      : gc_(
            [] {
              group_coordinator::options o;
              o.min_session_timeout = 100ms;
              o.max_session_timeout = 60s;
              return o;
            }(),
            [](std::string_view) { return 4; },
            [this](std::uint64_t token, join_outcome o) {
              EXPECT_FALSE(answers_.count(token)) << "request " << token << " answered twice";
              answers_[token] = std::move(o);
            }) {}

  std::uint64_t join(const std::string& member, std::vector<std::string> protocols = {"range"},
                     bool v4 = true, const std::string& group = "g") {
    kafka_join_params p;
    p.group = group;
    p.member_id = member;
    p.client_id = "rdkafka";
    p.host = "127.0.0.1";
    p.protocol_type = "consumer";
    for (auto& name : protocols) p.protocols.push_back({name, subscription({"t"})});
    p.session_timeout = 10s;
    p.rebalance_timeout = 5s;
    p.member_id_required = v4;
    const auto token = ++next_;
    gc_.kafka_join(token, std::move(p), now_);
    return token;
  }
  // A new member through MEMBER_ID_REQUIRED: its id, and the token of its second join.
  std::pair<std::string, std::uint64_t> join_new(std::vector<std::string> protocols = {"range"}) {
    const auto first = join("", protocols);
    const auto* a = answer(first);
    EXPECT_TRUE(a && a->member_id_required);
    const std::string id = a ? a->member_id : "";
    return {id, join(id, protocols)};
  }
  std::uint64_t sync(const std::string& member, std::int32_t generation,
                     std::vector<std::pair<std::string, std::string>> assignments = {}) {
    kafka_sync_params p;
    p.group = "g";
    p.member_id = member;
    p.generation = generation;
    p.assignments = std::move(assignments);
    const auto token = ++next_;
    gc_.kafka_sync(token, std::move(p), now_);
    return token;
  }
  const join_outcome* answer(std::uint64_t token) const {
    auto it = answers_.find(token);
    return it == answers_.end() ? nullptr : &it->second;
  }

  group_coordinator gc_;
  steady_tp now_{std::chrono::steady_clock::now()};
  std::map<std::uint64_t, join_outcome> answers_;
  std::uint64_t next_ = 0;
};

TEST_F(KafkaCoordinatorTest, LeaderGetsTheMembersAndRelaysTheAssignment) {
  auto [a, ta] = join_new({"cooperative-sticky", "range"});
  ASSERT_NE(answer(ta), nullptr) << "the only member: the rebalance completes at once";
  EXPECT_EQ(answer(ta)->error, ErrorCode::None);
  EXPECT_EQ(answer(ta)->leader, a);
  EXPECT_EQ(answer(ta)->members.size(), 1u);
  EXPECT_EQ(answer(ta)->protocol, "cooperative-sticky");
  EXPECT_EQ(gc_.describe("g", now_)->state, group_state::completing_rebalance);
  auto s = sync(a, 1, {{a, assignment("t", {0, 1, 2, 3})}});
  ASSERT_NE(answer(s), nullptr);
  EXPECT_EQ(answer(s)->assignment_bytes, assignment("t", {0, 1, 2, 3}));

  // b supports only range: the group moves to range, the one all support.
  auto [b, tb] = join_new({"range"});
  EXPECT_EQ(answer(tb), nullptr) << "waits for a to rejoin";
  EXPECT_EQ(gc_.heartbeat("g", a, 1, now_).error, ErrorCode::RebalanceInProgress);
  auto ta2 = join(a, {"cooperative-sticky", "range"});
  ASSERT_NE(answer(ta2), nullptr);
  ASSERT_NE(answer(tb), nullptr);
  EXPECT_EQ(answer(ta2)->protocol, "range");
  EXPECT_EQ(answer(ta2)->generation, 2);
  EXPECT_EQ(answer(ta2)->leader, a) << "the leader stays while it is a member";
  EXPECT_EQ(answer(ta2)->members.size(), 2u);
  EXPECT_TRUE(answer(tb)->members.empty()) << "only the leader sees the members";

  // The follower's SyncGroup waits for the leader's.
  auto sb = sync(b, 2);
  EXPECT_EQ(answer(sb), nullptr);
  EXPECT_EQ(gc_.heartbeat("g", b, 2, now_).error, ErrorCode::None)
      << "heartbeats are fine while the leader assigns";
  EXPECT_EQ(gc_.check_commit("g", b, 2, now_).error, ErrorCode::RebalanceInProgress);
  auto sa = sync(a, 2, {{a, assignment("t", {0, 1})}, {b, assignment("t", {2, 3})}});
  ASSERT_NE(answer(sb), nullptr);
  EXPECT_EQ(answer(sb)->assignment_bytes, assignment("t", {2, 3}));
  EXPECT_EQ(answer(sa)->assignment_bytes, assignment("t", {0, 1}));
  auto v = gc_.describe("g", now_).value();
  EXPECT_EQ(v.state, group_state::stable);
  EXPECT_EQ(v.kind, group_protocol::kafka);
  EXPECT_EQ(v.owners.at({"t", 3}), b) << "assignments decoded for ferry groups describe";
  for (const auto& m : v.members) EXPECT_EQ(m.topics, std::vector<std::string>{"t"});
  EXPECT_TRUE(gc_.check_commit("g", b, 2, now_));
  EXPECT_EQ(gc_.check_commit("g", b, 1, now_).error, ErrorCode::StaleGeneration);
}

TEST_F(KafkaCoordinatorTest, MemberIdsAreGivenOutFirstAndUnknownIdsRefused) {
  auto first = join("");
  ASSERT_NE(answer(first), nullptr);
  EXPECT_TRUE(answer(first)->member_id_required);
  EXPECT_FALSE(gc_.has_members("g")) << "not a member before it joins with its id";
  auto unknown = join("rdkafka-made-up");
  ASSERT_NE(answer(unknown), nullptr);
  EXPECT_EQ(answer(unknown)->error, ErrorCode::UnknownMember);
  // An old client (JoinGroup v3) becomes a member at once.
  auto old = join("", {"range"}, /*v4=*/false);
  ASSERT_NE(answer(old), nullptr);
  EXPECT_FALSE(answer(old)->member_id_required);
  EXPECT_EQ(answer(old)->error, ErrorCode::None);
  EXPECT_TRUE(gc_.has_members("g"));
}

TEST_F(KafkaCoordinatorTest, NoCommonProtocolIsRefused) {
  auto [a, ta] = join_new({"range"});
  ASSERT_NE(answer(ta), nullptr);
  auto t = join("", {"roundrobin"});
  ASSERT_NE(answer(t), nullptr);
  EXPECT_EQ(answer(t)->error, ErrorCode::InconsistentGroupProtocol);
  EXPECT_NE(answer(t)->message.find("range"), std::string::npos) << answer(t)->message;
}

TEST_F(KafkaCoordinatorTest, ARebalanceOrASilentLeaderAnswersWaitingSyncs) {
  auto [a, ta] = join_new();
  (void)sync(a, 1, {{a, assignment("t", {0, 1, 2, 3})}});
  auto [b, tb] = join_new();
  auto ta2 = join(a);
  ASSERT_NE(answer(tb), nullptr);
  ASSERT_NE(answer(ta2), nullptr);
  // b waits for the assignment; a third member arrives first.
  auto sb = sync(b, 2);
  EXPECT_EQ(answer(sb), nullptr);
  auto [c, tc] = join_new();
  ASSERT_NE(answer(sb), nullptr);
  EXPECT_EQ(answer(sb)->error, ErrorCode::RebalanceInProgress);
  auto ta3 = join(a);
  auto tb3 = join(b);
  ASSERT_NE(answer(tc), nullptr);
  EXPECT_EQ(answer(ta3)->generation, 3);
  // The leader never sends the assignment: after the rebalance timeout it
  // is removed and the others rebalance without it.
  auto sb3 = sync(b, 3);
  auto sc3 = sync(c, 3);
  now_ += 6s;
  gc_.tick(now_);
  ASSERT_NE(answer(sb3), nullptr);
  EXPECT_EQ(answer(sb3)->error, ErrorCode::RebalanceInProgress);
  ASSERT_NE(answer(sc3), nullptr);
  auto v = gc_.describe("g", now_).value();
  EXPECT_EQ(v.members.size(), 2u);
  for (const auto& m : v.members) EXPECT_NE(m.member_id, a);
  (void)tb3;
}

TEST_F(KafkaCoordinatorTest, AGroupSpeaksOneProtocolWhileItHasMembers) {
  auto [a, ta] = join_new();
  join_params p;
  p.group = "g";
  p.topics = {"t"};
  gc_.join(++next_, p, now_);
  ASSERT_NE(answer(next_), nullptr);
  EXPECT_EQ(answer(next_)->error, ErrorCode::InconsistentGroupProtocol);
  EXPECT_NE(answer(next_)->message.find("Kafka-protocol group"), std::string::npos);
  EXPECT_TRUE(gc_.leave("g", a, now_));
  // Empty now: a Ferry consumer takes it, and then a Kafka client is refused.
  gc_.join(++next_, p, now_);
  ASSERT_NE(answer(next_), nullptr);
  EXPECT_EQ(answer(next_)->error, ErrorCode::None);
  EXPECT_EQ(gc_.protocol_of("g"), group_protocol::ferry);
  auto k = join("");
  ASSERT_NE(answer(k), nullptr);
  EXPECT_EQ(answer(k)->error, ErrorCode::InconsistentGroupProtocol);
  EXPECT_NE(answer(k)->message.find("Ferry-protocol group"), std::string::npos);
}

}  // namespace
}  // namespace ferry::broker
