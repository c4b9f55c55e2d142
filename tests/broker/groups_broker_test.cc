// Consumer groups over loopback with the raw protocol client: joins and
// rebalances, fenced and durable commits, member fetches, describe, list,
// delete.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "broker_fixture.h"
#include "ferry/broker/broker.h"
#include "wire_client.h"

namespace ferry::broker {
namespace {

using namespace std::chrono_literals;
using ferry::testing::make_batch;
using ferry::testing::reply_msg;
using ferry::testing::wire_client;
using wire::Body;
using wire::ErrorCode;
using tp = std::pair<std::string, std::int32_t>;

// --- the group messages, by hand ---------------------------------------------

std::uint64_t next_id() {
  static std::atomic<std::uint64_t> id{1'000'000};
  return ++id;
}

void send(wire_client& c, flatbuffers::FlatBufferBuilder& fbb, Body type,
          flatbuffers::Offset<void> body) {
  c.send_raw({protocol::finish_envelope(fbb, next_id(), type, body)});
}

// One reply of the expected type (an ErrorResponse is reported as a failure).
std::optional<reply_msg> expect_reply(wire_client& c, Body type,
                                      std::chrono::milliseconds timeout = 10s) {
  auto r = c.recv(timeout);
  if (!r || !r->env) return std::nullopt;
  if (r->env->body_type() != type) {
    ADD_FAILURE() << "expected " << wire::EnumNameBody(type) << ", got "
                  << wire::EnumNameBody(r->env->body_type())
                  << (r->env->body_type() == Body::ErrorResponse &&
                              r->env->body_as_ErrorResponse()->message()
                          ? ": " + r->env->body_as_ErrorResponse()->message()->str()
                          : "");
    return std::nullopt;
  }
  return r;
}

struct join_out {
  bool answered = false;
  ErrorCode error = ErrorCode::Internal;
  std::string message, member_id;
  std::int32_t generation = -1;
  std::vector<tp> assignment;
  wire::AssignStrategy strategy = wire::AssignStrategy::Sticky;
};

struct join_opts {
  wire::AssignStrategy strategy = wire::AssignStrategy::Sticky;
  std::int32_t session_ms = 10'000;
  std::int32_t rebalance_ms = 30'000;
};

void send_join(wire_client& c, const std::string& group, const std::string& member,
               const std::vector<std::string>& topics, join_opts o = {}) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<flatbuffers::String>> ts;
  for (const auto& t : topics) ts.push_back(fbb.CreateString(t));
  auto body = wire::CreateJoinGroupRequest(fbb, fbb.CreateString(group),
                                           member.empty() ? 0 : fbb.CreateString(member),
                                           fbb.CreateString("test-client"), fbb.CreateVector(ts),
                                           o.strategy, o.session_ms, o.rebalance_ms);
  send(c, fbb, Body::JoinGroupRequest, body.Union());
}

join_out read_join(wire_client& c, std::chrono::milliseconds timeout = 10s) {
  join_out out;
  auto r = c.recv(timeout);
  if (!r || !r->env) return out;
  out.answered = true;
  if (r->env->body_type() == Body::ErrorResponse) {
    out.error = r->env->body_as_ErrorResponse()->error();
    return out;
  }
  EXPECT_EQ(r->env->body_type(), Body::JoinGroupResponse);
  auto* j = r->env->body_as_JoinGroupResponse();
  if (j == nullptr) return out;
  out.error = j->error();
  out.message = j->message() ? j->message()->str() : "";
  out.member_id = j->member_id() ? j->member_id()->str() : "";
  out.generation = j->generation();
  out.strategy = j->strategy();
  if (j->assignment())
    for (const auto* x : *j->assignment())
      if (x->partitions())
        for (auto p : *x->partitions()) out.assignment.emplace_back(x->topic()->str(), p);
  std::sort(out.assignment.begin(), out.assignment.end());
  return out;
}

join_out join(wire_client& c, const std::string& group, const std::string& member,
              const std::vector<std::string>& topics, join_opts o = {}) {
  send_join(c, group, member, topics, o);
  return read_join(c);
}

std::pair<ErrorCode, std::string> heartbeat(wire_client& c, const std::string& group,
                                            const std::string& member, std::int32_t gen) {
  flatbuffers::FlatBufferBuilder fbb;
  auto m = wire::CreateGroupMember(fbb, fbb.CreateString(group), fbb.CreateString(member), gen);
  send(c, fbb, Body::HeartbeatRequest, wire::CreateHeartbeatRequest(fbb, m).Union());
  auto r = expect_reply(c, Body::HeartbeatResponse);
  if (!r) return {ErrorCode::Internal, "no reply"};
  auto* h = r->env->body_as_HeartbeatResponse();
  return {h->error(), h->message() ? h->message()->str() : ""};
}

ErrorCode leave(wire_client& c, const std::string& group, const std::string& member) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateLeaveGroupRequest(fbb, fbb.CreateString(group), fbb.CreateString(member));
  send(c, fbb, Body::LeaveGroupRequest, body.Union());
  auto r = expect_reply(c, Body::LeaveGroupResponse);
  return r ? r->env->body_as_LeaveGroupResponse()->error() : ErrorCode::Internal;
}

struct entry {
  std::string topic;
  std::int32_t partition;
  std::int64_t offset;
  std::string metadata;
};

struct member_ref {
  std::string group, id;
  std::int32_t generation;
};

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::CommitEntry>>> commit_entries(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<entry>& entries) {
  std::vector<flatbuffers::Offset<wire::CommitEntry>> v;
  for (const auto& e : entries)
    v.push_back(wire::CreateCommitEntry(fbb, fbb.CreateString(e.topic), e.partition, e.offset,
                                        e.metadata.empty() ? 0 : fbb.CreateString(e.metadata)));
  return fbb.CreateVector(v);
}

struct commit_out {
  ErrorCode error = ErrorCode::Internal;  // request level
  std::string message;
  std::vector<ErrorCode> results;  // per entry
  std::vector<std::string> messages;
};

commit_out commit(wire_client& c, const std::string& group, const std::optional<member_ref>& m,
                  const std::vector<entry>& entries, bool reset = false) {
  flatbuffers::FlatBufferBuilder fbb;
  auto es = commit_entries(fbb, entries);
  flatbuffers::Offset<wire::GroupMember> mem = 0;
  if (m)
    mem = wire::CreateGroupMember(fbb, fbb.CreateString(m->group), fbb.CreateString(m->id),
                                  m->generation);
  auto body = wire::CreateCommitOffsetsRequest(fbb, fbb.CreateString(group), mem, es, reset);
  send(c, fbb, Body::CommitOffsetsRequest, body.Union());
  commit_out out;
  auto r = expect_reply(c, Body::CommitOffsetsResponse);
  if (!r) return out;
  auto* x = r->env->body_as_CommitOffsetsResponse();
  out.error = x->error();
  out.message = x->message() ? x->message()->str() : "";
  if (x->results())
    for (const auto* e : *x->results()) {
      out.results.push_back(e->error());
      out.messages.push_back(e->message() ? e->message()->str() : "");
    }
  EXPECT_EQ(out.results.size(), entries.size()) << "one result per entry";
  return out;
}

// A member's commit of one entry that carries idempotency keys.
ErrorCode commit_keys(wire_client& c, const member_ref& m, const entry& e,
                      const std::vector<std::string>& keys) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::CommitEntry>> v{wire::CreateCommitEntry(
      fbb, fbb.CreateString(e.topic), e.partition, e.offset, 0, fbb.CreateVectorOfStrings(keys))};
  auto mem =
      wire::CreateGroupMember(fbb, fbb.CreateString(m.group), fbb.CreateString(m.id), m.generation);
  auto body = wire::CreateCommitOffsetsRequest(fbb, fbb.CreateString(m.group), mem,
                                               fbb.CreateVector(v), false);
  send(c, fbb, Body::CommitOffsetsRequest, body.Union());
  auto r = c.recv(10s);
  if (!r || !r->env) return ErrorCode::Internal;
  if (r->env->body_type() == Body::ErrorResponse) return r->env->body_as_ErrorResponse()->error();
  auto* x = r->env->body_as_CommitOffsetsResponse();
  if (x == nullptr || x->error() != ErrorCode::None || !x->results() || x->results()->size() != 1)
    return x ? x->error() : ErrorCode::Internal;
  return x->results()->Get(0)->error();
}

// Which keys the group's ledger holds (window 0: all it keeps).
std::vector<bool> ledger_has(wire_client& c, const std::string& group,
                             const std::vector<std::string>& keys) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateLedgerLookupRequest(fbb, fbb.CreateString(group),
                                              fbb.CreateVectorOfStrings(keys), 0);
  send(c, fbb, Body::LedgerLookupRequest, body.Union());
  std::vector<bool> out;
  auto r = expect_reply(c, Body::LedgerLookupResponse);
  if (!r) return out;
  auto* x = r->env->body_as_LedgerLookupResponse();
  if (x->processed_ms())
    for (auto ms : *x->processed_ms()) out.push_back(ms >= 0);
  return out;
}

// Committed offsets of a group: (topic, partition) -> (offset, metadata).
std::map<tp, std::pair<std::int64_t, std::string>> fetch_offsets(wire_client& c,
                                                                 const std::string& group,
                                                                 const std::vector<tp>& only = {}) {
  flatbuffers::FlatBufferBuilder fbb;
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::TopicPartitions>>> parts = 0;
  if (!only.empty()) {
    std::map<std::string, std::vector<std::int32_t>> by_topic;
    for (const auto& [t, p] : only) by_topic[t].push_back(p);
    std::vector<flatbuffers::Offset<wire::TopicPartitions>> v;
    for (const auto& [t, ps] : by_topic)
      v.push_back(wire::CreateTopicPartitionsDirect(fbb, t.c_str(), &ps));
    parts = fbb.CreateVector(v);
  }
  auto body = wire::CreateFetchOffsetsRequest(fbb, fbb.CreateString(group), parts);
  send(c, fbb, Body::FetchOffsetsRequest, body.Union());
  std::map<tp, std::pair<std::int64_t, std::string>> out;
  auto r = expect_reply(c, Body::FetchOffsetsResponse);
  if (!r) return out;
  auto* x = r->env->body_as_FetchOffsetsResponse();
  EXPECT_EQ(x->error(), ErrorCode::None);
  if (x->offsets())
    for (const auto* o : *x->offsets())
      out[{o->topic()->str(), o->partition()}] = {o->offset(),
                                                  o->metadata() ? o->metadata()->str() : ""};
  return out;
}

std::int64_t committed(wire_client& c, const std::string& group, const std::string& topic,
                       std::int32_t p) {
  auto all = fetch_offsets(c, group, {{topic, p}});
  auto it = all.find({topic, p});
  return it == all.end() ? -2 : it->second.first;
}

void send_member_fetch(wire_client& c, const std::string& topic, std::int32_t p,
                       std::int64_t offset, std::int32_t max_wait_ms, const member_ref& m,
                       const std::vector<entry>& commits = {}) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::FetchEntry>> v{
      wire::CreateFetchEntry(fbb, fbb.CreateString(topic), p, offset, 1 << 20)};
  auto es = fbb.CreateVector(v);
  auto mem =
      wire::CreateGroupMember(fbb, fbb.CreateString(m.group), fbb.CreateString(m.id), m.generation);
  auto cs = commits.empty() ? 0 : commit_entries(fbb, commits);
  auto body = wire::CreateFetchRequest(fbb, es, max_wait_ms, 1, 8 << 20, mem, cs);
  send(c, fbb, Body::FetchRequest, body.Union());
}

struct member_fetch_out {
  bool answered = false;
  ErrorCode group_error = ErrorCode::Internal;
  std::string group_message;
  std::vector<ErrorCode> commit_results;
  std::size_t results = 0;
  std::vector<std::byte> data;
};

member_fetch_out read_member_fetch(wire_client& c, std::chrono::milliseconds timeout = 10s) {
  member_fetch_out out;
  auto r = expect_reply(c, Body::FetchResponse, timeout);
  if (!r) return out;
  out.answered = true;
  auto* f = r->env->body_as_FetchResponse();
  out.group_error = f->group_error();
  out.group_message = f->group_message() ? f->group_message()->str() : "";
  if (f->commit_results())
    for (const auto* x : *f->commit_results()) out.commit_results.push_back(x->error());
  if (f->results()) {
    out.results = f->results()->size();
    for (const auto* x : *f->results())
      if (x->frame() != 0) {
        auto b = protocol::bytes_of(r->frames[x->frame()]);
        out.data.assign(b.begin(), b.end());
      }
  }
  return out;
}

std::optional<reply_msg> describe(wire_client& c, const std::string& group) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateDescribeGroupRequest(fbb, fbb.CreateString(group));
  send(c, fbb, Body::DescribeGroupRequest, body.Union());
  return expect_reply(c, Body::DescribeGroupResponse);
}

ErrorCode delete_group(wire_client& c, const std::string& group) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateDeleteGroupRequest(fbb, fbb.CreateString(group));
  send(c, fbb, Body::DeleteGroupRequest, body.Union());
  auto r = expect_reply(c, Body::DeleteGroupResponse);
  return r ? r->env->body_as_DeleteGroupResponse()->error() : ErrorCode::Internal;
}

ErrorCode delete_topic(wire_client& c, const std::string& topic) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateDeleteTopicRequest(fbb, fbb.CreateString(topic));
  send(c, fbb, Body::DeleteTopicRequest, body.Union());
  auto r = expect_reply(c, Body::DeleteTopicResponse);
  return r ? r->env->body_as_DeleteTopicResponse()->error() : ErrorCode::Internal;
}

struct group_summary {
  std::string state;
  std::int32_t members = 0, generation = 0;
};

std::map<std::string, group_summary> list_groups(wire_client& c) {
  flatbuffers::FlatBufferBuilder fbb;
  send(c, fbb, Body::ListGroupsRequest, wire::CreateListGroupsRequest(fbb).Union());
  std::map<std::string, group_summary> out;
  auto r = expect_reply(c, Body::ListGroupsResponse);
  if (!r) return out;
  for (const auto* g : *r->env->body_as_ListGroupsResponse()->groups())
    out[g->group()->str()] = {g->state()->str(), g->members(), g->generation()};
  return out;
}

// A batch of `n` records whose timestamps are ts, ts + 1000, ...
std::vector<std::byte> batch_at(int n, std::int64_t ts, int first = 0) {
  format::batch_builder b;
  for (int i = 0; i < n; ++i)
    b.add(timestamp_ms(ts + 1000 * i), "k" + std::to_string(first + i),
          "v" + std::to_string(first + i));
  return b.finish();
}

std::vector<tp> all_of(const std::string& topic, std::int32_t n) {
  std::vector<tp> out;
  for (std::int32_t p = 0; p < n; ++p) out.emplace_back(topic, p);
  return out;
}

// --- fixture ------------------------------------------------------------------

class GroupBrokerTest : public ferry::testing::InprocBrokerTest {
 protected:
  GroupBrokerTest() : InprocBrokerTest("ferry-groups") {}
  broker_config config() const override {
    auto c = InprocBrokerTest::config();
    c.topics.segment_bytes = 64 << 10;
    c.topics.retention_ms = -1;  // records carry chosen (old) timestamps
    c.retention_check_interval = 50ms;
    return c;
  }
  // A topic with `partitions` partitions, each holding `records` records.
  void topic(wire_client& c, const std::string& name, int partitions, int records) {
    ASSERT_EQ(c.create_topic(name, partitions), ErrorCode::None);
    if (records == 0) return;
    for (int p = 0; p < partitions; ++p)
      ASSERT_EQ(c.produce_one(name, p, make_batch(records)).error, ErrorCode::None);
  }
};

// --- tests ----------------------------------------------------------------------

TEST_F(GroupBrokerTest, JoinGroupGivesAMemberIdGenerationOneAndEveryPartition) {
  wire_client c(endpoint());
  topic(c, "orders", 3, 0);
  auto j = join(c, "g", "", {"orders", "missing"});
  ASSERT_TRUE(j.answered);
  EXPECT_EQ(j.error, ErrorCode::None) << j.message;
  EXPECT_EQ(j.member_id.rfind("test-client-", 0), 0u) << j.member_id;
  EXPECT_EQ(j.generation, 1);
  EXPECT_EQ(j.assignment, all_of("orders", 3)) << "the missing topic is skipped";
  EXPECT_EQ(j.strategy, wire::AssignStrategy::Sticky);
  EXPECT_EQ(heartbeat(c, "g", j.member_id, 1).first, ErrorCode::None);
  EXPECT_EQ(heartbeat(c, "g", "stranger", 1).first, ErrorCode::UnknownMember);
  EXPECT_EQ(heartbeat(c, "g", j.member_id, 0).first, ErrorCode::StaleGeneration);
}

TEST_F(GroupBrokerTest, JoinGroupOutsideTheSessionBoundsIsRefused) {
  wire_client c(endpoint());
  topic(c, "t", 1, 0);
  auto j = join(c, "g", "", {"t"}, {wire::AssignStrategy::Sticky, 400'000, 30'000});
  ASSERT_TRUE(j.answered);
  EXPECT_EQ(j.error, ErrorCode::InvalidRequest);
  EXPECT_NE(j.message.find("session timeout"), std::string::npos) << j.message;
}

TEST_F(GroupBrokerTest, SecondMemberIsAnsweredOnlyAfterTheFirstRejoins) {
  wire_client a(endpoint()), b(endpoint());
  topic(a, "t", 4, 0);
  auto a1 = join(a, "g", "", {"t"});
  ASSERT_EQ(a1.generation, 1);
  send_join(b, "g", "", {"t"});
  EXPECT_FALSE(b.recv(150ms)) << "b waits for a to rejoin";
  auto hb = heartbeat(a, "g", a1.member_id, 1);
  EXPECT_EQ(hb.first, ErrorCode::RebalanceInProgress) << hb.second;
  EXPECT_FALSE(b.recv(50ms));
  auto a2 = join(a, "g", a1.member_id, {"t"});
  auto b2 = read_join(b);
  ASSERT_TRUE(a2.answered && b2.answered);
  EXPECT_EQ(a2.error, ErrorCode::None) << a2.message;
  EXPECT_EQ(b2.error, ErrorCode::None) << b2.message;
  EXPECT_EQ(a2.generation, 2);
  EXPECT_EQ(b2.generation, 2);
  EXPECT_EQ(a2.member_id, a1.member_id);
  EXPECT_NE(b2.member_id, a1.member_id);
  EXPECT_EQ(a2.assignment.size(), 2u);
  EXPECT_EQ(b2.assignment.size(), 2u);
  std::set<tp> both(a2.assignment.begin(), a2.assignment.end());
  both.insert(b2.assignment.begin(), b2.assignment.end());
  EXPECT_EQ(both.size(), 4u) << "disjoint, covering every partition";
  EXPECT_EQ(heartbeat(a, "g", a1.member_id, 2).first, ErrorCode::None);
  EXPECT_EQ(heartbeat(b, "g", b2.member_id, 2).first, ErrorCode::None);
}

TEST_F(GroupBrokerTest, MemberCommitsAreFencedValidatedAndDurable) {
  wire_client a(endpoint()), b(endpoint());
  topic(a, "t", 2, 5);
  auto a1 = join(a, "g", "", {"t"});
  ASSERT_EQ(a1.generation, 1);
  member_ref ma{"g", a1.member_id, 1};
  auto c1 = commit(a, "g", ma, {{"t", 0, 3, "first"}, {"t", 1, 2, ""}});
  EXPECT_EQ(c1.error, ErrorCode::None) << c1.message;
  EXPECT_EQ(c1.results, (std::vector<ErrorCode>{ErrorCode::None, ErrorCode::None}));
  EXPECT_EQ(committed(a, "g", "t", 0), 3);

  // b joins; while the group rebalances a may still commit what it owns.
  send_join(b, "g", "", {"t"});
  ASSERT_FALSE(b.recv(100ms));
  auto c2 = commit(a, "g", ma, {{"t", 0, 4, "during"}});
  EXPECT_EQ(c2.error, ErrorCode::None) << c2.message;
  EXPECT_EQ(c2.results, std::vector<ErrorCode>{ErrorCode::None});
  auto a2 = join(a, "g", a1.member_id, {"t"});
  auto b2 = read_join(b);
  ASSERT_EQ(a2.generation, 2);
  ASSERT_EQ(b2.generation, 2);
  ASSERT_EQ(a2.assignment.size(), 1u);
  const auto mine = a2.assignment[0];
  const auto theirs = b2.assignment.at(0);

  // Generation 1 is fenced now, and changes nothing.
  auto stale = commit(a, "g", ma, {{mine.first, mine.second, 5, "stale"}});
  EXPECT_EQ(stale.error, ErrorCode::StaleGeneration) << stale.message;
  EXPECT_EQ(stale.results, std::vector<ErrorCode>{ErrorCode::StaleGeneration});
  auto before = fetch_offsets(a, "g");
  EXPECT_EQ(before.at({"t", 0}), std::make_pair(std::int64_t{4}, std::string("during")));
  EXPECT_EQ(before.at({"t", 1}).first, 2);

  // Validation per entry, with the current generation.
  ma.generation = 2;
  const std::int64_t mine_now = before.at(mine).first;
  auto v = commit(a, "g", ma,
                  {{mine.first, mine.second, mine_now - 1, ""},
                   {theirs.first, theirs.second, 5, ""},
                   {mine.first, mine.second, 6, ""},
                   {"nope", 0, 1, ""},
                   {"t", 7, 1, ""},
                   {mine.first, mine.second, 5, "ok"}});
  EXPECT_EQ(v.error, ErrorCode::None) << v.message;
  ASSERT_EQ(v.results.size(), 6u);
  EXPECT_EQ(v.results[0], ErrorCode::OffsetRegression) << v.messages[0];
  EXPECT_EQ(v.results[1], ErrorCode::NotAssigned) << v.messages[1];
  EXPECT_EQ(v.results[2], ErrorCode::OffsetOutOfRange) << v.messages[2];
  EXPECT_EQ(v.results[3], ErrorCode::UnknownTopic);
  EXPECT_EQ(v.results[4], ErrorCode::UnknownPartition);
  EXPECT_EQ(v.results[5], ErrorCode::None) << v.messages[5];
  // Two commits in one request cannot move an offset backwards either.
  auto twice =
      commit(a, "g", ma, {{mine.first, mine.second, 5, ""}, {mine.first, mine.second, 4, ""}});
  EXPECT_EQ(twice.results, (std::vector<ErrorCode>{ErrorCode::None, ErrorCode::OffsetRegression}));
  auto unknown = commit(a, "g", member_ref{"g", "stranger", 2}, {{"t", 0, 5, ""}});
  EXPECT_EQ(unknown.error, ErrorCode::UnknownMember);

  const auto expected = fetch_offsets(a, "g");
  EXPECT_EQ(expected.at(mine), std::make_pair(std::int64_t{5}, std::string("")));
  EXPECT_EQ(expected.at(theirs).first, theirs.second == 0 ? 4 : 2) << "b's partition untouched";

  // Durable: a restart on the same data directory keeps them.
  restart();
  wire_client c(endpoint());
  EXPECT_EQ(fetch_offsets(c, "g"), expected);
  // The membership is kept too (groups/members.json): the members go on in
  // their generation without a rejoin; a stranger is still refused.
  EXPECT_EQ(heartbeat(c, "g", a1.member_id, 2).first, ErrorCode::None);
  EXPECT_EQ(heartbeat(c, "g", "stranger", 2).first, ErrorCode::UnknownMember);
}

// The keys of a commit entry are recorded only with that entry's offset, in
// the same durable write: a refused entry records none of its keys, and
// the ledger survives a restart.
TEST_F(GroupBrokerTest, LedgerKeysAreRecordedOnlyWithTheirAcceptedCommit) {
  wire_client a(endpoint());
  topic(a, "t", 2, 5);
  auto j = join(a, "g", "", {"t"});
  ASSERT_EQ(j.generation, 1);
  const member_ref m{"g", j.member_id, 1};
  EXPECT_EQ(commit_keys(a, m, {"t", 0, 3, ""}, {"order-1/paid", "order-2/paid"}), ErrorCode::None);
  EXPECT_EQ(commit_keys(a, m, {"t", 1, 99, ""}, {"order-3/paid"}), ErrorCode::OffsetOutOfRange);
  EXPECT_EQ(commit_keys(a, member_ref{"g", j.member_id, 7}, {"t", 1, 2, ""}, {"order-4/paid"}),
            ErrorCode::StaleGeneration);
  EXPECT_EQ(commit_keys(a, m, {"t", 1, 2, ""}, {""}), ErrorCode::InvalidRequest)
      << "an empty idempotency key is refused";
  EXPECT_EQ(commit_keys(a, m, {"t", 1, 2, ""}, {std::string(1025, 'k')}), ErrorCode::InvalidRequest)
      << "a key above 1024 bytes is refused";
  const std::vector<std::string> ask{"order-1/paid", "order-2/paid", "order-3/paid",
                                     "order-4/paid"};
  EXPECT_EQ(ledger_has(a, "g", ask), (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(ledger_has(a, "other", ask), (std::vector<bool>{false, false, false, false}));
  restart();
  wire_client b(endpoint());
  EXPECT_EQ(ledger_has(b, "g", ask), (std::vector<bool>{true, true, false, false}));
}

TEST_F(GroupBrokerTest, AdminCommitsOnlyWhileTheGroupIsEmpty) {
  wire_client c(endpoint());
  topic(c, "t", 1, 10);
  auto j = join(c, "g", "", {"t"});
  ASSERT_TRUE(commit(c, "g", member_ref{"g", j.member_id, 1}, {{"t", 0, 8, ""}}).results.at(0) ==
              ErrorCode::None);
  auto refused = commit(c, "g", std::nullopt, {{"t", 0, 2, ""}}, true);
  EXPECT_EQ(refused.error, ErrorCode::GroupNotEmpty) << refused.message;
  EXPECT_EQ(committed(c, "g", "t", 0), 8);
  EXPECT_EQ(leave(c, "g", j.member_id), ErrorCode::None);
  EXPECT_EQ(leave(c, "g", j.member_id), ErrorCode::UnknownMember);
  auto forward_only = commit(c, "g", std::nullopt, {{"t", 0, 2, ""}});
  EXPECT_EQ(forward_only.error, ErrorCode::None);
  EXPECT_EQ(forward_only.results, std::vector<ErrorCode>{ErrorCode::OffsetRegression});
  auto reset = commit(c, "g", std::nullopt, {{"t", 0, 2, "reset"}}, true);
  EXPECT_EQ(reset.error, ErrorCode::None) << reset.message;
  EXPECT_EQ(reset.results, std::vector<ErrorCode>{ErrorCode::None});
  EXPECT_EQ(committed(c, "g", "t", 0), 2) << "a reset may go backwards";
  auto beyond = commit(c, "g", std::nullopt, {{"t", 0, 11, ""}}, true);
  EXPECT_EQ(beyond.results, std::vector<ErrorCode>{ErrorCode::OffsetOutOfRange});
  // A group never seen can be given offsets from outside too.
  EXPECT_EQ(commit(c, "fresh", std::nullopt, {{"t", 0, 10, ""}}).results,
            std::vector<ErrorCode>{ErrorCode::None});
  EXPECT_EQ(committed(c, "fresh", "t", 0), 10);
}

TEST_F(GroupBrokerTest, ParkedMemberFetchIsAnsweredWhenAnotherMemberJoins) {
  wire_client a(endpoint()), b(endpoint());
  topic(a, "t", 2, 0);
  auto a1 = join(a, "g", "", {"t"});
  ASSERT_EQ(a1.generation, 1);
  member_ref ma{"g", a1.member_id, 1};
  // Nothing to read: the fetch parks for up to 8 s.
  send_member_fetch(a, "t", 0, 0, 8000, ma);
  ASSERT_FALSE(a.recv(200ms)) << "parked";
  const auto t0 = std::chrono::steady_clock::now();
  send_join(b, "g", "", {"t"});
  auto f = read_member_fetch(a, 5s);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(f.answered);
  EXPECT_EQ(f.group_error, ErrorCode::RebalanceInProgress) << f.group_message;
  EXPECT_EQ(f.results, 0u) << "no data with a group error";
  EXPECT_LT(took, 2s) << "answered when the rebalance started, not at the fetch's deadline";
  // A new fetch is refused at once until a rejoins.
  send_member_fetch(a, "t", 0, 0, 8000, ma);
  auto again = read_member_fetch(a, 2s);
  ASSERT_TRUE(again.answered);
  EXPECT_EQ(again.group_error, ErrorCode::RebalanceInProgress);
  auto a2 = join(a, "g", a1.member_id, {"t"});
  ASSERT_EQ(read_join(b).generation, 2);
  ASSERT_EQ(a2.generation, 2);
  // The stale generation is refused too; the current one fetches.
  send_member_fetch(a, "t", 0, 0, 0, ma);
  EXPECT_EQ(read_member_fetch(a).group_error, ErrorCode::StaleGeneration);
  ma.generation = 2;
  ASSERT_EQ(a.produce_one(a2.assignment[0].first, a2.assignment[0].second, make_batch(2)).error,
            ErrorCode::None);
  send_member_fetch(a, a2.assignment[0].first, a2.assignment[0].second, 0, 1000, ma);
  auto ok = read_member_fetch(a);
  EXPECT_EQ(ok.group_error, ErrorCode::None) << ok.group_message;
  EXPECT_EQ(ferry::testing::values_in(ok.data), (std::vector<std::string>{"v0", "v1"}));
}

TEST_F(GroupBrokerTest, ParkedMemberFetchIsAnsweredWhenAMemberTimesOut) {
  wire_client a(endpoint()), b(endpoint());
  topic(a, "t", 2, 0);
  auto a1 = join(a, "g", "", {"t"}, {wire::AssignStrategy::Sticky, 10'000, 30'000});
  send_join(b, "g", "", {"t"}, {wire::AssignStrategy::Sticky, 300, 30'000});
  ASSERT_FALSE(b.recv(50ms));
  auto a2 = join(a, "g", a1.member_id, {"t"});
  auto b2 = read_join(b);
  ASSERT_EQ(a2.generation, 2);
  ASSERT_EQ(b2.generation, 2);
  // b falls silent; a waits for data in a long poll and hears of the
  // rebalance as soon as b's session (300 ms) runs out.
  send_member_fetch(a, "t", a2.assignment[0].second, 0, 8000, {"g", a1.member_id, 2});
  const auto t0 = std::chrono::steady_clock::now();
  auto f = read_member_fetch(a, 5s);
  ASSERT_TRUE(f.answered);
  EXPECT_EQ(f.group_error, ErrorCode::RebalanceInProgress) << f.group_message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  auto a3 = join(a, "g", a1.member_id, {"t"});
  EXPECT_EQ(a3.generation, 3);
  EXPECT_EQ(a3.assignment, all_of("t", 2));
  EXPECT_EQ(heartbeat(b, "g", b2.member_id, 2).first, ErrorCode::UnknownMember);
}

TEST_F(GroupBrokerTest, FetchWithCommitsCommitsAndReportsThem) {
  wire_client a(endpoint()), b(endpoint());
  topic(a, "t", 2, 5);
  auto a1 = join(a, "g", "", {"t"});
  member_ref ma{"g", a1.member_id, 1};
  send_member_fetch(a, "t", 0, 3, 0, ma, {{"t", 0, 3, "m0"}, {"t", 1, 9, ""}, {"t", 1, 5, ""}});
  auto f = read_member_fetch(a);
  ASSERT_TRUE(f.answered);
  EXPECT_EQ(f.group_error, ErrorCode::None) << f.group_message;
  EXPECT_EQ(f.commit_results, (std::vector<ErrorCode>{ErrorCode::None, ErrorCode::OffsetOutOfRange,
                                                      ErrorCode::None}));
  EXPECT_EQ(ferry::testing::values_in(f.data, 3), (std::vector<std::string>{"v3", "v4"}));
  auto offs = fetch_offsets(a, "g");
  EXPECT_EQ(offs.at({"t", 0}), std::make_pair(std::int64_t{3}, std::string("m0")));
  EXPECT_EQ(offs.at({"t", 1}).first, 5);

  // A rebalance: the fetch is refused but its commits (still allowed) count.
  send_join(b, "g", "", {"t"});
  ASSERT_FALSE(b.recv(100ms));
  send_member_fetch(a, "t", 0, 4, 0, ma, {{"t", 0, 4, ""}});
  auto during = read_member_fetch(a);
  EXPECT_EQ(during.group_error, ErrorCode::RebalanceInProgress);
  EXPECT_EQ(during.commit_results, std::vector<ErrorCode>{ErrorCode::None});
  EXPECT_EQ(committed(a, "g", "t", 0), 4);
  ASSERT_EQ(join(a, "g", a1.member_id, {"t"}).generation, 2);
  ASSERT_EQ(read_join(b).generation, 2);
  // Generation 1 is fenced: neither data nor commits.
  send_member_fetch(a, "t", 0, 0, 0, ma, {{"t", 0, 5, ""}});
  auto stale = read_member_fetch(a);
  EXPECT_EQ(stale.group_error, ErrorCode::StaleGeneration);
  EXPECT_EQ(stale.commit_results, std::vector<ErrorCode>{ErrorCode::StaleGeneration});
  EXPECT_EQ(stale.results, 0u);
  EXPECT_EQ(committed(a, "g", "t", 0), 4);
}

TEST_F(GroupBrokerTest, DescribeGroupShowsMembersOwnersOffsetsAndLag) {
  wire_client a(endpoint());
  ASSERT_EQ(a.create_topic("t", 2), ErrorCode::None);
  const std::int64_t ts0 = system_clock::instance().wall_now().value() - 3'600'000;
  ASSERT_EQ(a.produce_one("t", 0, batch_at(5, ts0)).error, ErrorCode::None);
  ASSERT_EQ(a.produce_one("t", 0, batch_at(3, ts0 + 10'000, 5)).error, ErrorCode::None);
  ASSERT_EQ(a.produce_one("t", 1, batch_at(2, ts0 + 50'000)).error, ErrorCode::None);
  auto j = join(a, "g", "", {"t"});
  ASSERT_EQ(j.generation, 1);
  member_ref m{"g", j.member_id, 1};
  // t-0 at 6: the record at 6 is the second of the second batch; t-1 at its end.
  auto c = commit(a, "g", m, {{"t", 0, 6, "meta"}, {"t", 1, 2, ""}});
  ASSERT_EQ(c.results, (std::vector<ErrorCode>{ErrorCode::None, ErrorCode::None}));

  auto r = describe(a, "g");
  ASSERT_TRUE(r);
  auto* d = r->env->body_as_DescribeGroupResponse();
  EXPECT_EQ(d->error(), ErrorCode::None);
  EXPECT_EQ(d->group()->str(), "g");
  EXPECT_EQ(d->state()->str(), "Stable");
  EXPECT_EQ(d->generation(), 1);
  EXPECT_EQ(d->strategy(), wire::AssignStrategy::Sticky);
  const auto wall = system_clock::instance().wall_now().value();
  EXPECT_LE(std::abs(d->broker_time_ms() - wall), 5000);
  ASSERT_EQ(d->members()->size(), 1u);
  auto* mem = d->members()->Get(0);
  EXPECT_EQ(mem->member_id()->str(), j.member_id);
  EXPECT_EQ(mem->client_id()->str(), "test-client");
  EXPECT_NE(mem->host()->str().find("127.0.0.1"), std::string::npos) << mem->host()->str();
  ASSERT_EQ(mem->topics()->size(), 1u);
  EXPECT_EQ(mem->topics()->Get(0)->str(), "t");
  ASSERT_EQ(mem->assignment()->size(), 1u);
  EXPECT_EQ(mem->assignment()->Get(0)->partitions()->size(), 2u);
  EXPECT_LT(mem->last_seen_ms_ago(), 5000);
  ASSERT_EQ(d->partitions()->size(), 2u);
  auto* p0 = d->partitions()->Get(0);
  auto* p1 = d->partitions()->Get(1);
  EXPECT_EQ(p0->topic()->str(), "t");
  EXPECT_EQ(p0->partition(), 0);
  EXPECT_EQ(p0->committed(), 6);
  EXPECT_EQ(p0->log_end(), 8);
  EXPECT_EQ(p0->oldest_unconsumed_timestamp(), ts0 + 10'000 + 1000)
      << "the timestamp of the record at the committed offset";
  EXPECT_EQ(p0->member_id()->str(), j.member_id);
  EXPECT_EQ(p0->metadata()->str(), "meta");
  EXPECT_EQ(p0->error(), ErrorCode::None);
  EXPECT_EQ(p1->partition(), 1);
  EXPECT_EQ(p1->committed(), 2);
  EXPECT_EQ(p1->log_end(), 2);
  EXPECT_EQ(p1->oldest_unconsumed_timestamp(), -1) << "nothing left to consume";

  // Committed at the start of a batch, and nothing committed at all.
  ASSERT_EQ(commit(a, "g", m, {{"t", 0, 7, ""}}).results.at(0), ErrorCode::None);
  ASSERT_EQ(leave(a, "g", j.member_id), ErrorCode::None);
  ASSERT_EQ(commit(a, "g", std::nullopt, {{"t", 0, 0, ""}, {"t", 1, 1, ""}}, true).error,
            ErrorCode::None);
  r = describe(a, "g");
  ASSERT_TRUE(r);
  d = r->env->body_as_DescribeGroupResponse();
  EXPECT_EQ(d->state()->str(), "Empty");
  EXPECT_EQ(d->members()->size(), 0u);
  ASSERT_EQ(d->partitions()->size(), 2u);
  EXPECT_EQ(d->partitions()->Get(0)->oldest_unconsumed_timestamp(), ts0);
  EXPECT_EQ(d->partitions()->Get(1)->oldest_unconsumed_timestamp(), ts0 + 50'000 + 1000);
  EXPECT_EQ(d->partitions()->Get(0)->member_id(), nullptr) << "no owner without members";

  auto unknown = describe(a, "never");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->env->body_as_DescribeGroupResponse()->error(), ErrorCode::UnknownGroup);
}

TEST_F(GroupBrokerTest, ListGroupsShowsLiveAndStoredGroups) {
  wire_client a(endpoint()), b(endpoint());
  topic(a, "t", 2, 3);
  auto j = join(a, "live", "", {"t"});
  send_join(b, "live", "", {"t"});
  ASSERT_FALSE(b.recv(100ms));
  ASSERT_EQ(commit(a, "stored", std::nullopt, {{"t", 0, 1, ""}}).error, ErrorCode::None);
  auto groups = list_groups(a);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups["live"].state, "PreparingRebalance");
  EXPECT_EQ(groups["live"].members, 2);
  EXPECT_EQ(groups["live"].generation, 1);
  EXPECT_EQ(groups["stored"].state, "Empty");
  EXPECT_EQ(groups["stored"].members, 0);
  ASSERT_EQ(join(a, "live", j.member_id, {"t"}).generation, 2);
  ASSERT_EQ(read_join(b).generation, 2);
  groups = list_groups(a);
  EXPECT_EQ(groups["live"].state, "Stable");
  EXPECT_EQ(groups["live"].generation, 2);
  // Stored groups outlive a restart, and so do Stable ones with their
  // members (groups/members.json).
  restart();
  wire_client c(endpoint());
  groups = list_groups(c);
  EXPECT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups.count("stored"), 1u);
  EXPECT_EQ(groups["live"].state, "Stable");
  EXPECT_EQ(groups["live"].generation, 2);
  EXPECT_EQ(groups["live"].members, 2);
}

TEST_F(GroupBrokerTest, DeleteGroupOnlyWhenEmpty) {
  wire_client c(endpoint());
  topic(c, "t", 1, 3);
  auto j = join(c, "g", "", {"t"});
  ASSERT_EQ(commit(c, "g", member_ref{"g", j.member_id, 1}, {{"t", 0, 2, ""}}).error,
            ErrorCode::None);
  EXPECT_EQ(delete_group(c, "g"), ErrorCode::GroupNotEmpty);
  EXPECT_EQ(committed(c, "g", "t", 0), 2);
  ASSERT_EQ(leave(c, "g", j.member_id), ErrorCode::None);
  EXPECT_EQ(delete_group(c, "g"), ErrorCode::None);
  auto d = describe(c, "g");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->env->body_as_DescribeGroupResponse()->error(), ErrorCode::UnknownGroup);
  EXPECT_TRUE(fetch_offsets(c, "g").empty());
  EXPECT_EQ(committed(c, "g", "t", 0), -1);
  EXPECT_EQ(list_groups(c).count("g"), 0u);
  EXPECT_EQ(delete_group(c, "g"), ErrorCode::UnknownGroup);
  restart();
  wire_client c2(endpoint());
  EXPECT_TRUE(fetch_offsets(c2, "g").empty()) << "the deletion is durable";
  // The name can be used again.
  auto again = join(c2, "g", "", {"t"});
  EXPECT_EQ(again.error, ErrorCode::None);
}

TEST_F(GroupBrokerTest, DeletingATopicDropsItsCommittedOffsets) {
  wire_client c(endpoint());
  topic(c, "t", 2, 4);
  topic(c, "keep", 1, 4);
  ASSERT_EQ(
      commit(c, "g1", std::nullopt, {{"t", 0, 3, ""}, {"t", 1, 2, ""}, {"keep", 0, 1, ""}}).results,
      (std::vector<ErrorCode>{ErrorCode::None, ErrorCode::None, ErrorCode::None}));
  ASSERT_EQ(commit(c, "g2", std::nullopt, {{"t", 1, 4, ""}}).error, ErrorCode::None);
  ASSERT_EQ(delete_topic(c, "t"), ErrorCode::None);
  auto g1 = fetch_offsets(c, "g1");
  EXPECT_EQ(g1.size(), 1u);
  EXPECT_EQ(g1.count({"keep", 0}), 1u);
  EXPECT_TRUE(fetch_offsets(c, "g2").empty());
  // A new topic of the same name starts without the old offsets, also after
  // a restart.
  topic(c, "t", 2, 0);
  EXPECT_EQ(committed(c, "g1", "t", 0), -1);
  restart();
  wire_client c2(endpoint());
  EXPECT_EQ(fetch_offsets(c2, "g1").size(), 1u);
  EXPECT_TRUE(fetch_offsets(c2, "g2").empty());
}

TEST_F(GroupBrokerTest, CreatingASubscribedTopicRebalances) {
  wire_client a(endpoint());
  topic(a, "t", 1, 0);
  auto j = join(a, "g", "", {"t", "later"});
  ASSERT_EQ(j.assignment, all_of("t", 1));
  ASSERT_EQ(a.create_topic("later", 2), ErrorCode::None);
  // The coordinator notices at its next scan (every 50 ms).
  ErrorCode hb = ErrorCode::None;
  for (int i = 0; i < 100 && hb == ErrorCode::None; ++i) {
    std::this_thread::sleep_for(10ms);
    hb = heartbeat(a, "g", j.member_id, 1).first;
  }
  EXPECT_EQ(hb, ErrorCode::RebalanceInProgress);
  auto j2 = join(a, "g", j.member_id, {"t", "later"});
  EXPECT_EQ(j2.generation, 2);
  EXPECT_EQ(j2.assignment, (std::vector<tp>{{"later", 0}, {"later", 1}, {"t", 0}}));
}

TEST_F(GroupBrokerTest, StoppingTheBrokerAnswersWaitingJoins) {
  wire_client a(endpoint()), b(endpoint());
  topic(a, "t", 1, 0);
  ASSERT_EQ(join(a, "g", "", {"t"}).generation, 1);
  send_join(b, "g", "", {"t"});
  ASSERT_FALSE(b.recv(100ms));
  const auto t0 = std::chrono::steady_clock::now();
  broker_.get()->stop();  // stopped, not closed: b waits for its answer
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "a waiting join does not hold up stop";
  auto r = read_join(b, 2s);
  ASSERT_TRUE(r.answered);
  EXPECT_EQ(r.error, ErrorCode::ShuttingDown);
}

}  // namespace
}  // namespace ferry::broker
