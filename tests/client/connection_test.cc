#include "ferry/client/connection.h"

#include <gtest/gtest.h>

#include <mutex>
#include <optional>

#include "fake_broker.h"
#include "ferry/client/errc.h"
#include "ferry/protocol/errc.h"

namespace ferry::client {
namespace {

using namespace std::chrono_literals;
using testing::fake_broker;
using testing::request;
using sclock = std::chrono::steady_clock;

client_options options_for(const fake_broker& fb) {
  client_options o;
  o.broker = fb.endpoint();
  o.request_timeout = 2000ms;
  return o;
}

std::uint64_t send_list_topics(connection& c) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateListTopicsRequest(fbb);
  auto id = c.send(fbb, wire::Body::ListTopicsRequest, body.Union());
  EXPECT_TRUE(id) << id.error().message();
  return id ? id.value() : 0;
}

// Replies to a ListTopics request with one topic named `name`.
void answer_list_topics(fake_broker& fb, const request& r, const std::string& name,
                        std::optional<std::uint64_t> id = {}) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::TopicSummary>> ts{
      wire::CreateTopicSummaryDirect(fbb, name.c_str(), 1)};
  fb.reply(r, fbb, wire::Body::ListTopicsResponse,
           wire::CreateListTopicsResponseDirect(fbb, &ts).Union(), {}, id);
}

std::string topic_of(const reply& r) {
  return r.envelope().body_as_ListTopicsResponse()->topics()->Get(0)->name()->str();
}

TEST(Connection, MatchesPipelinedRepliesByRequestId) {
  std::optional<request> held;
  fake_broker fb([&](fake_broker& f, request& r) {
    if (!held) {
      held = std::move(r);
      return;
    }
    // Answer out of order, with an unknown id thrown in.
    answer_list_topics(f, r, "bogus", 999'999);
    answer_list_topics(f, r, "second");
    answer_list_topics(f, *held, "first");
  });
  connection c(options_for(fb));
  ASSERT_TRUE(c.status());
  const auto id1 = send_list_topics(c);
  const auto id2 = send_list_topics(c);
  EXPECT_NE(id1, id2);
  EXPECT_EQ(c.pending_count(), 2u);

  auto r2 = c.wait_for(id2, sclock::now() + 2s);
  ASSERT_TRUE(r2) << r2.error().message();
  EXPECT_EQ(r2.value().request_id, id2);
  EXPECT_EQ(topic_of(r2.value()), "second");
  auto r1 = c.wait_for(id1, sclock::now() + 2s);  // arrived meanwhile; kept for us
  ASSERT_TRUE(r1) << r1.error().message();
  EXPECT_EQ(topic_of(r1.value()), "first");
  EXPECT_EQ(c.pending_count(), 0u);

  // The reply for the unknown id was dropped, not delivered.
  auto none = c.next_reply(sclock::now() + 20ms);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none.value().has_value());
  EXPECT_EQ(fb.decode_failures(), 0);
}

TEST(Connection, TimesOutWhenTheBrokerNeverAnswersAndDropsTheLateReply) {
  std::mutex mu;
  std::optional<request> held;
  fake_broker fb([&](fake_broker& f, request& r) {
    std::lock_guard lock(mu);
    if (!held) {
      held = std::move(r);  // silent for now
      return;
    }
    answer_list_topics(f, *held, "late");
    answer_list_topics(f, r, "fresh");
  });
  connection c(options_for(fb));
  const auto id1 = send_list_topics(c);
  const auto start = sclock::now();
  auto r1 = c.wait_for(id1, start + 30ms);
  const auto took = sclock::now() - start;
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.error(), protocol::errc::timed_out);
  EXPECT_GE(took, 30ms);
  EXPECT_LT(took, 1s);
  EXPECT_FALSE(c.is_pending(id1));

  const auto id2 = send_list_topics(c);
  auto r2 = c.wait_for(id2, sclock::now() + 2s);
  ASSERT_TRUE(r2) << r2.error().message();
  EXPECT_EQ(topic_of(r2.value()), "fresh");  // the late reply to id1 never surfaces
  auto none = c.next_reply(sclock::now() + 20ms);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none.value().has_value());
}

TEST(Connection, DropsRepliesThatFailDecoding) {
  fake_broker fb([](fake_broker& f, request& r) {
    const std::vector<std::byte> garbage(64, std::byte{0x5a});
    f.send_raw(r.identity, garbage);  // never reaches the caller
  });
  connection c(options_for(fb));
  const auto id = send_list_topics(c);
  auto r = c.wait_for(id, sclock::now() + 50ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), protocol::errc::timed_out);
}

TEST(Connection, ABrokerRestartFailsPendingRequestsAtOnceAndReconnects) {
  auto first = std::make_unique<fake_broker>([](fake_broker&, request&) {});  // never answers
  const std::string endpoint = first->endpoint();
  connection c(options_for(*first));  // request_timeout 2 s
  const auto id1 = send_list_topics(c);
  auto early = c.next_reply(sclock::now() + 50ms);  // the request reaches the broker
  ASSERT_TRUE(early);
  EXPECT_FALSE(early.value().has_value());

  first.reset();  // the broker dies with the request
  const auto start = sclock::now();
  auto r1 = c.wait_for(id1, start + 2s);
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.error(), protocol::errc::disconnected);
  EXPECT_TRUE(is_retriable(r1.error()));
  EXPECT_LT(sclock::now() - start, 1s) << "noticed the disconnect only through the timeout";

  fake_broker second([](fake_broker& f, request& r) { answer_list_topics(f, r, "again"); }, {},
                     endpoint);
  const auto id2 = send_list_topics(c);  // ZeroMQ reconnects by itself
  auto r2 = c.wait_for(id2, sclock::now() + 2s);
  ASSERT_TRUE(r2) << r2.error().message();
  EXPECT_EQ(topic_of(r2.value()), "again");
  EXPECT_TRUE(c.take_lost().empty());  // id1 was reported by wait_for already
}

TEST(Connection, ReportsAMalformedEndpointOnEveryCall) {
  client_options o;
  o.broker = "not an endpoint";
  connection c(o);
  EXPECT_FALSE(c.status());
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateListTopicsRequest(fbb);
  EXPECT_FALSE(c.send(fbb, wire::Body::ListTopicsRequest, body.Union()));
}

}  // namespace
}  // namespace ferry::client
