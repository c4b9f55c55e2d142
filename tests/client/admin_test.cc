#include "ferry/client/admin.h"

#include <gtest/gtest.h>

#include <atomic>

#include "fake_broker.h"
#include "ferry/client/errc.h"
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

}  // namespace
}  // namespace ferry::client
