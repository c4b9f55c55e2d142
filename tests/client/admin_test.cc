#include "ferry/client/admin.h"

#include <gtest/gtest.h>

#include <atomic>

#include "fake_broker.h"
#include "ferry/client/errc.h"
#include "ferry/core/errc.h"
#include "ferry/protocol/errc.h"

namespace ferry::client {
namespace {

using namespace std::chrono_literals;
using testing::fake_broker;
using testing::request;
using sclock = std::chrono::steady_clock;

client_options fast(const fake_broker& fb) {
  return testing::fast_options<client_options>(fb);
}

void answer_create(fake_broker& f, const request& r, wire::ErrorCode e, const std::string& msg) {
  flatbuffers::FlatBufferBuilder fbb;
  f.reply(r, fbb, wire::Body::CreateTopicResponse,
          wire::CreateCreateTopicResponseDirect(fbb, e, msg.c_str()).Union());
}

TEST(Admin, CreateTopicSendsTheConfigAndReportsTheBrokersMessage) {
  std::atomic<int> calls{0};
  std::atomic<bool> config_ok{false};
  fake_broker fb([&](fake_broker& f, request& r) {
    ASSERT_EQ(r.type(), wire::Body::CreateTopicRequest);
    const auto* req = r.envelope().body_as_CreateTopicRequest();
    const auto* c = req->config();
    config_ok = req->name()->str() == "orders" && c && c->partitions() == 6 &&
                c->retention_ms() == 3'600'000 && c->retention_bytes() == -2 &&
                c->max_message_bytes() == 1024 && c->segment_bytes() == 0;
    if (calls++ == 0) {
      answer_create(f, r, wire::ErrorCode::None, "");
    } else {
      answer_create(f, r, wire::ErrorCode::TopicAlreadyExists, "topic 'orders' already exists");
    }
  });
  admin a(fast(fb));
  topic_config cfg;
  cfg.partitions = 6;
  cfg.retention_ms = 3'600'000;
  cfg.max_message_bytes = 1024;
  auto ok = a.create_topic("orders", cfg);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_TRUE(config_ok);

  auto again = a.create_topic("orders", cfg);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), errc::topic_already_exists);
  EXPECT_EQ(a.last_error_message(), "topic 'orders' already exists");
}

TEST(Admin, InvalidTopicNameFailsWithoutAskingTheBroker) {
  fake_broker fb([](fake_broker&, request&) {});
  admin a(fast(fb));
  auto r = a.create_topic("no spaces/allowed", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::invalid_topic_name);
  EXPECT_FALSE(a.last_error_message().empty());
  EXPECT_EQ(fb.requests(), 0);
}

TEST(Admin, ListAndDescribeTopics) {
  fake_broker fb([](fake_broker& f, request& r) {
    flatbuffers::FlatBufferBuilder fbb;
    if (r.type() == wire::Body::ListTopicsRequest) {
      std::vector<flatbuffers::Offset<wire::TopicSummary>> ts{
          wire::CreateTopicSummaryDirect(fbb, "a", 1), wire::CreateTopicSummaryDirect(fbb, "b", 3)};
      f.reply(r, fbb, wire::Body::ListTopicsResponse,
              wire::CreateListTopicsResponseDirect(fbb, &ts).Union());
      return;
    }
    ASSERT_EQ(r.type(), wire::Body::DescribeTopicRequest);
    std::vector<flatbuffers::Offset<wire::PartitionInfo>> ps{
        wire::CreatePartitionInfoDirect(fbb, 0, 5, 20, 18, 4096, 2),
        wire::CreatePartitionInfoDirect(fbb, 1, 0, 0, 0, 0, 1, wire::ErrorCode::PartitionFailed,
                                        "fsync failed")};
    auto cfg = wire::CreateTopicConfig(fbb, 2, 1000, -1, 0, 1 << 20);
    f.reply(
        r, fbb, wire::Body::DescribeTopicResponse,
        wire::CreateDescribeTopicResponseDirect(fbb, wire::ErrorCode::None, nullptr, "b", cfg, &ps)
            .Union());
  });
  admin a(fast(fb));
  auto topics = a.list_topics();
  ASSERT_TRUE(topics) << topics.error().message();
  ASSERT_EQ(topics.value().size(), 2u);
  EXPECT_EQ(topics.value()[1].name, "b");
  EXPECT_EQ(topics.value()[1].partitions, 3);

  auto d = a.describe_topic("b");
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d.value().name, "b");
  EXPECT_EQ(d.value().config.partitions, 2);
  EXPECT_EQ(d.value().config.retention_ms, 1000);
  EXPECT_EQ(d.value().config.retention_bytes, -1);
  EXPECT_EQ(d.value().config.segment_bytes, 1 << 20);
  ASSERT_EQ(d.value().partitions.size(), 2u);
  const auto& p0 = d.value().partitions[0];
  EXPECT_EQ(p0.log_start, offset(5));
  EXPECT_EQ(p0.log_end, offset(20));
  EXPECT_EQ(p0.high_watermark, offset(18));
  EXPECT_EQ(p0.size_bytes, 4096);
  EXPECT_EQ(p0.segments, 2);
  EXPECT_FALSE(p0.error);
  EXPECT_EQ(d.value().partitions[1].error, errc::partition_failed);
  EXPECT_EQ(d.value().partitions[1].message, "fsync failed");
}

TEST(Admin, DescribeUnknownTopicCarriesTheMessage) {
  fake_broker fb([](fake_broker& f, request& r) {
    f.reply_describe(r, 0, wire::ErrorCode::UnknownTopic, 0, "no topic 'x'");
  });
  admin a(fast(fb));
  auto d = a.describe_topic("x");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error(), errc::unknown_topic);
  EXPECT_EQ(a.last_error_message(), "no topic 'x'");
}

TEST(Admin, ListOffsets) {
  fake_broker fb([](fake_broker& f, request& r) {
    const auto* e = r.envelope().body_as_ListOffsetsRequest()->entries()->Get(0);
    std::int64_t off = -1;
    switch (e->spec()) {
      case wire::OffsetSpec::Earliest:
        off = 5;
        break;
      case wire::OffsetSpec::Latest:
        off = 42;
        break;
      case wire::OffsetSpec::Timestamp:
        off = e->timestamp() <= 2000 ? 17 : -1;
        break;
    }
    f.reply_list_offsets(r, {{e->topic()->str(), e->partition(), wire::ErrorCode::None, off}});
  });
  admin a(fast(fb));
  auto earliest = a.list_offsets("t", partition_id(1), offset_spec::earliest);
  ASSERT_TRUE(earliest) << earliest.error().message();
  EXPECT_EQ(earliest.value(), offset(5));
  EXPECT_EQ(a.list_offsets("t", partition_id(1), offset_spec::latest).value(), offset(42));
  EXPECT_EQ(
      a.list_offsets("t", partition_id(1), offset_spec::timestamp, timestamp_ms(1500)).value(),
      offset(17));
  auto none = a.list_offsets("t", partition_id(1), offset_spec::timestamp, timestamp_ms(9999));
  ASSERT_TRUE(none);
  EXPECT_FALSE(none.value().has_value());  // no record at or after the timestamp
}

TEST(Admin, RetriesARetriableErrorThenSucceeds) {
  std::atomic<int> calls{0};
  fake_broker fb([&](fake_broker& f, request& r) {
    if (calls++ == 0) {
      f.reply_describe(r, 0, wire::ErrorCode::ShuttingDown, 0, "stopping");
    } else {
      f.reply_describe(r, 4);
    }
  });
  admin a(fast(fb));
  auto d = a.describe_topic("t");
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d.value().partitions.size(), 4u);
  EXPECT_EQ(calls.load(), 2);
}

TEST(Admin, IdempotentCallsRetryLostRepliesUntilTheDeadline) {
  fake_broker fb([](fake_broker&, request&) {});  // never answers
  auto o = fast(fb);
  o.request_timeout = 20ms;
  o.api_timeout = 70ms;
  admin a(o);
  const auto start = sclock::now();
  auto r = a.list_topics();
  const auto took = sclock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), protocol::errc::timed_out);
  EXPECT_GE(took, 60ms);
  EXPECT_LT(took, 1s);
  EXPECT_GE(fb.requests(), 2);  // retried
}

TEST(Admin, CreateTopicIsNotResentAfterALostReply) {
  fake_broker fb([](fake_broker&, request&) {});
  auto o = fast(fb);
  o.request_timeout = 20ms;
  o.api_timeout = 200ms;
  admin a(o);
  auto r = a.create_topic("t", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), protocol::errc::timed_out);
  EXPECT_EQ(fb.requests(), 1);  // it may have been created: not resent
}

TEST(Admin, ErrorResponseBecomesItsWireError) {
  fake_broker fb([](fake_broker& f, request& r) {
    f.reply_error(r, wire::ErrorCode::InvalidRequest, "bad frame");
  });
  admin a(fast(fb));
  auto r = a.delete_topic("t");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::invalid_request);
  EXPECT_EQ(a.last_error_message(), "bad frame");
}

// --- consumer groups ---------------------------------------------------------

TEST(AdminGroups, ListGroupsSortedByName) {
  fake_broker fb([](fake_broker& f, request& r) {
    ASSERT_EQ(r.type(), wire::Body::ListGroupsRequest);
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::GroupSummary>> gs{
        wire::CreateGroupSummaryDirect(fbb, "payments", "Stable", 2, 7),
        wire::CreateGroupSummaryDirect(fbb, "billing", "Empty", 0, 3)};
    f.reply(r, fbb, wire::Body::ListGroupsResponse,
            wire::CreateListGroupsResponseDirect(fbb, &gs).Union());
  });
  admin a(fast(fb));
  auto r = a.list_groups();
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r.value().size(), 2u);
  EXPECT_EQ(r.value()[0].group, "billing");
  EXPECT_EQ(r.value()[0].state, "Empty");
  EXPECT_EQ(r.value()[1].group, "payments");
  EXPECT_EQ(r.value()[1].members, 2);
  EXPECT_EQ(r.value()[1].generation, 7);
}

TEST(AdminGroups, DescribeGroupReadsMembersPartitionsAndLag) {
  std::atomic<bool> asked_for_orders{false};
  fake_broker fb([&](fake_broker& f, request& r) {
    ASSERT_EQ(r.type(), wire::Body::DescribeGroupRequest);
    asked_for_orders = r.envelope().body_as_DescribeGroupRequest()->group()->str() == "workers";
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<std::int32_t> ps{2, 0};
    std::vector<flatbuffers::Offset<wire::TopicPartitions>> asg{
        wire::CreateTopicPartitionsDirect(fbb, "orders", &ps)};
    std::vector<flatbuffers::Offset<flatbuffers::String>> topics{fbb.CreateString("orders")};
    std::vector<flatbuffers::Offset<wire::MemberDescription>> ms{
        wire::CreateMemberDescriptionDirect(fbb, "ferry-1", "ferry", "10.0.0.7", &topics, &asg,
                                            1500)};
    std::vector<flatbuffers::Offset<wire::GroupPartition>> parts{
        // not committed, unknown partition, committed with lag (reply order unsorted)
        wire::CreateGroupPartitionDirect(fbb, "orders", 2, 40, 100, 5'000, "ferry-1", "m"),
        wire::CreateGroupPartitionDirect(fbb, "orders", 0, -1, 10, -1, "ferry-1"),
        wire::CreateGroupPartitionDirect(fbb, "gone", 0, 7, -1, -1, nullptr, nullptr,
                                         wire::ErrorCode::UnknownTopic)};
    f.reply(r, fbb, wire::Body::DescribeGroupResponse,
            wire::CreateDescribeGroupResponseDirect(fbb, wire::ErrorCode::None, nullptr, "workers",
                                                    "Stable", 4, wire::AssignStrategy::RoundRobin,
                                                    &ms, &parts, 65'000)
                .Union());
  });
  admin a(fast(fb));
  auto r = a.describe_group("workers");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(asked_for_orders);
  const auto& d = r.value();
  EXPECT_EQ(d.group, "workers");
  EXPECT_EQ(d.state, "Stable");
  EXPECT_EQ(d.generation, 4);
  EXPECT_EQ(d.strategy, "round-robin");
  EXPECT_EQ(d.broker_time, timestamp_ms(65'000));
  ASSERT_EQ(d.members.size(), 1u);
  EXPECT_EQ(d.members[0].member_id, "ferry-1");
  EXPECT_EQ(d.members[0].host, "10.0.0.7");
  EXPECT_EQ(d.members[0].topics, std::vector<std::string>{"orders"});
  EXPECT_EQ(d.members[0].assignment, (std::vector<topic_partition>{{"orders", partition_id(0)},
                                                                   {"orders", partition_id(2)}}));
  EXPECT_EQ(d.members[0].since_seen, 1500ms);
  ASSERT_EQ(d.partitions.size(), 3u);
  // Sorted by topic, then partition.
  EXPECT_EQ(d.partitions[0].tp, (topic_partition{"gone", partition_id(0)}));
  EXPECT_EQ(d.partitions[0].error, errc::unknown_topic);
  EXPECT_FALSE(d.partitions[0].log_end);
  EXPECT_FALSE(d.partitions[0].lag());
  EXPECT_EQ(d.partitions[1].tp, (topic_partition{"orders", partition_id(0)}));
  EXPECT_FALSE(d.partitions[1].committed);
  EXPECT_FALSE(d.partitions[1].lag());
  const auto& p2 = d.partitions[2];
  EXPECT_EQ(p2.committed, offset(40));
  EXPECT_EQ(p2.log_end, offset(100));
  EXPECT_EQ(p2.lag(), 60);
  EXPECT_EQ(p2.oldest_unconsumed, timestamp_ms(5'000));
  EXPECT_EQ(p2.member_id, "ferry-1");
  EXPECT_EQ(p2.metadata, "m");
}

TEST(AdminGroups, DescribeUnknownGroupCarriesTheMessage) {
  fake_broker fb([](fake_broker& f, request& r) {
    flatbuffers::FlatBufferBuilder fbb;
    f.reply(r, fbb, wire::Body::DescribeGroupResponse,
            wire::CreateDescribeGroupResponseDirect(fbb, wire::ErrorCode::UnknownGroup,
                                                    "unknown group nope")
                .Union());
  });
  admin a(fast(fb));
  auto r = a.describe_group("nope");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::unknown_group);
  EXPECT_EQ(a.last_error_message(), "unknown group nope");
}

TEST(AdminGroups, InvalidGroupNameFailsWithoutAskingTheBroker) {
  fake_broker fb([](fake_broker&, request&) {});
  admin a(fast(fb));
  EXPECT_EQ(a.describe_group("").error(), errc::invalid_group_name);
  EXPECT_FALSE(a.last_error_message().empty());
  EXPECT_EQ(a.committed_offsets("a b").error(), errc::invalid_group_name);
  EXPECT_EQ(a.reset_offsets(".hidden", {}).error(), errc::invalid_group_name);
  EXPECT_EQ(a.delete_group(std::string(250, 'g')).error(), errc::invalid_group_name);
  EXPECT_EQ(a.committed_offsets("ok", {{"bad topic", partition_id(0)}}).error(),
            errc::invalid_topic_name);
  EXPECT_EQ(a.reset_offsets("ok", {{{"t", partition_id(0)}, offset(-1), "", {}}}).error(),
            ferry::errc::invalid_argument);
  EXPECT_EQ(fb.requests(), 0);
}

TEST(AdminGroups, CommittedOffsetsAsksForThePartitionsByTopic) {
  std::atomic<bool> request_ok{false};
  fake_broker fb([&](fake_broker& f, request& r) {
    ASSERT_EQ(r.type(), wire::Body::FetchOffsetsRequest);
    const auto* req = r.envelope().body_as_FetchOffsetsRequest();
    // {a: [0, 1], b: [3]}
    request_ok = req->group()->str() == "g" && req->partitions() &&
                 req->partitions()->size() == 2 &&
                 req->partitions()->Get(0)->topic()->str() == "a" &&
                 req->partitions()->Get(0)->partitions()->size() == 2 &&
                 req->partitions()->Get(1)->partitions()->Get(0) == 3;
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::CommittedOffset>> os{
        wire::CreateCommittedOffsetDirect(fbb, "b", 3, 12, "meta", 1234),
        wire::CreateCommittedOffsetDirect(fbb, "a", 1, -1),
        wire::CreateCommittedOffsetDirect(fbb, "a", 0, 0, nullptr, 99)};
    f.reply(
        r, fbb, wire::Body::FetchOffsetsResponse,
        wire::CreateFetchOffsetsResponseDirect(fbb, wire::ErrorCode::None, nullptr, &os).Union());
  });
  admin a(fast(fb));
  auto r = a.committed_offsets(
      "g", {{"a", partition_id(0)}, {"b", partition_id(3)}, {"a", partition_id(1)}});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(request_ok);
  ASSERT_EQ(r.value().size(), 3u);
  EXPECT_EQ(r.value()[0].tp, (topic_partition{"a", partition_id(0)}));
  EXPECT_EQ(r.value()[0].next, offset(0));
  EXPECT_EQ(r.value()[0].commit_time, timestamp_ms(99));
  EXPECT_FALSE(r.value()[1].next) << "-1: nothing committed";
  EXPECT_EQ(r.value()[2].next, offset(12));
  EXPECT_EQ(r.value()[2].metadata, "meta");
}

void answer_commit(fake_broker& f, const request& r, wire::ErrorCode request_error,
                   const std::string& msg) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::CommitResult>> rs;
  if (request_error == wire::ErrorCode::None) {
    // Answer in reverse order; the second entry is refused.
    const auto* es = r.envelope().body_as_CommitOffsetsRequest()->entries();
    for (flatbuffers::uoffset_t i = es->size(); i-- > 0;) {
      const auto* e = es->Get(i);
      const bool refuse = i == 1;
      rs.push_back(wire::CreateCommitResultDirect(
          fbb, e->topic()->c_str(), e->partition(),
          refuse ? wire::ErrorCode::OffsetOutOfRange : wire::ErrorCode::None,
          refuse ? "offset 999 is beyond the end of t-1 (10)" : nullptr));
    }
  }
  f.reply(r, fbb, wire::Body::CommitOffsetsResponse,
          wire::CreateCommitOffsetsResponseDirect(fbb, request_error,
                                                  msg.empty() ? nullptr : msg.c_str(), &rs)
              .Union());
}

TEST(AdminGroups, ResetOffsetsIsAnAdministrativeResetWithPerPartitionResults) {
  std::atomic<bool> request_ok{false};
  fake_broker fb([&](fake_broker& f, request& r) {
    ASSERT_EQ(r.type(), wire::Body::CommitOffsetsRequest);
    const auto* req = r.envelope().body_as_CommitOffsetsRequest();
    request_ok = req->group()->str() == "g" && req->member() == nullptr && req->reset() &&
                 req->entries()->size() == 2 && req->entries()->Get(0)->offset() == 3 &&
                 req->entries()->Get(0)->metadata()->str() == "replay";
    answer_commit(f, r, wire::ErrorCode::None, "");
  });
  admin a(fast(fb));
  auto r = a.reset_offsets("g", {{{"t", partition_id(0)}, offset(3), "replay", {}},
                                 {{"t", partition_id(1)}, offset(999), "", {}}});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(request_ok);
  ASSERT_EQ(r.value().size(), 2u);
  EXPECT_EQ(r.value()[0].tp, (topic_partition{"t", partition_id(0)}));
  EXPECT_FALSE(r.value()[0].error);
  EXPECT_EQ(r.value()[1].tp, (topic_partition{"t", partition_id(1)}));
  EXPECT_EQ(r.value()[1].error, errc::offset_out_of_range);
  EXPECT_EQ(r.value()[1].message, "offset 999 is beyond the end of t-1 (10)");
}

TEST(AdminGroups, ResetOffsetsRefusedWhileTheGroupHasMembers) {
  fake_broker fb([](fake_broker& f, request& r) {
    answer_commit(f, r, wire::ErrorCode::GroupNotEmpty, "group g has members; stop them first");
  });
  admin a(fast(fb));
  auto r = a.reset_offsets("g", {{{"t", partition_id(0)}, offset(0), "", {}}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::group_not_empty);
  EXPECT_EQ(a.last_error_message(), "group g has members; stop them first");
  EXPECT_EQ(fb.requests(), 1) << "a refusal is final";
}

TEST(AdminGroups, ResetOffsetsAndDeleteGroupAreResentOnlyWhenTheBrokerDidNothing) {
  std::atomic<int> calls{0};
  fake_broker fb([&](fake_broker& f, request& r) {
    if (calls++ % 2 == 0) {
      f.reply_error(r, wire::ErrorCode::ShuttingDown, "stopping");
      return;
    }
    if (r.type() == wire::Body::CommitOffsetsRequest) {
      answer_commit(f, r, wire::ErrorCode::None, "");
    } else {
      flatbuffers::FlatBufferBuilder fbb;
      f.reply(r, fbb, wire::Body::DeleteGroupResponse,
              wire::CreateDeleteGroupResponseDirect(fbb).Union());
    }
  });
  admin a(fast(fb));
  auto r = a.reset_offsets("g", {{{"t", partition_id(0)}, offset(0), "", {}}});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(calls.load(), 2);
  auto d = a.delete_group("g");
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(calls.load(), 4);

  // Lost replies: maybe applied, so not resent.
  fake_broker silent([](fake_broker&, request&) {});
  auto o = fast(silent);
  o.request_timeout = 20ms;
  o.api_timeout = 200ms;
  admin b(o);
  EXPECT_EQ(b.reset_offsets("g", {{{"t", partition_id(0)}, offset(0), "", {}}}).error(),
            protocol::errc::timed_out);
  EXPECT_EQ(b.delete_group("g").error(), protocol::errc::timed_out);
  EXPECT_EQ(silent.requests(), 2);
  // ... while describe, list and committed are retried.
  EXPECT_EQ(b.list_groups().error(), protocol::errc::timed_out);
  EXPECT_GE(silent.requests(), 4);
}

TEST(AdminGroups, DeleteGroupRefusalCarriesTheMessage) {
  fake_broker fb([](fake_broker& f, request& r) {
    ASSERT_EQ(r.type(), wire::Body::DeleteGroupRequest);
    EXPECT_EQ(r.envelope().body_as_DeleteGroupRequest()->group()->str(), "busy");
    flatbuffers::FlatBufferBuilder fbb;
    f.reply(r, fbb, wire::Body::DeleteGroupResponse,
            wire::CreateDeleteGroupResponseDirect(fbb, wire::ErrorCode::GroupNotEmpty,
                                                  "group busy has members")
                .Union());
  });
  admin a(fast(fb));
  auto r = a.delete_group("busy");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::group_not_empty);
  EXPECT_EQ(a.last_error_message(), "group busy has members");
}

}  // namespace
}  // namespace ferry::client
