// Broker over loopback with a raw protocol client: requests, errors, bad
// input, long polling, restart, graceful stop.
#include "ferry/broker/broker.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "broker_fixture.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "wire_client.h"

namespace ferry::broker {
namespace {

using ferry::testing::make_batch;
using ferry::testing::values_in;
using ferry::testing::wire_client;
using wire::ErrorCode;

class BrokerTest : public ferry::testing::InprocBrokerTest {
 protected:
  BrokerTest() : InprocBrokerTest("ferry-broker") {}
  void SetUp() override {
    InprocBrokerTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NE(endpoint().find("tcp://127.0.0.1:"), std::string::npos);
  }
  broker_config config() const override {
    auto c = InprocBrokerTest::config();
    c.topics.segment_bytes = 64 << 10;
    c.retention_check_interval = std::chrono::milliseconds(50);
    return c;
  }
  // Stops the broker and starts it with `c` (on the same port).
  void restart_with(broker_config c) {
    broker_.stop();
    start(std::move(c));
    ASSERT_NE(endpoint().find("tcp://127.0.0.1:"), std::string::npos);
  }
  int port() const { return std::stoi(endpoint().substr(endpoint().rfind(':') + 1)); }
};

TEST_F(BrokerTest, ASecondBrokerOnTheSameDataDirectoryIsRefused) {
  // The fixture's broker is running on data_dir(): another one must not
  // recover and append to the same files.
  broker_config c = config();
  c.data_dir = dir_;
  c.listen = "tcp://127.0.0.1:*";
  auto second = broker::open(c);
  ASSERT_FALSE(second) << "a second broker opened a data directory in use";
  EXPECT_EQ(second.error(), ::ferry::make_error_code(::ferry::errc::already_exists));
  // The lock file names the owner.
  std::ifstream lock(dir_ / "LOCK");
  std::string pid;
  lock >> pid;
  EXPECT_EQ(pid, std::to_string(::getpid()));
  // Released when the owner stops: the same directory opens again.
  broker_.stop();
  auto third = broker::open(c);
  ASSERT_TRUE(third) << third.error().message();
}

TEST_F(BrokerTest, CreateListDescribeDeleteTopics) {
  wire_client c(endpoint());
  EXPECT_EQ(c.create_topic("orders", 3), ErrorCode::None);
  EXPECT_EQ(c.create_topic("orders", 3), ErrorCode::TopicAlreadyExists);
  EXPECT_EQ(c.create_topic("bad/name", 1), ErrorCode::InvalidTopicName);
  EXPECT_EQ(c.create_topic("zero", -5), ErrorCode::InvalidConfig);
  EXPECT_NE(c.last_message().find("partitions"), std::string::npos) << c.last_message();

  flatbuffers::FlatBufferBuilder fbb;
  auto r = c.call(fbb, wire::Body::ListTopicsRequest, wire::CreateListTopicsRequest(fbb).Union());
  ASSERT_TRUE(r && r->env);
  auto* topics = r->env->body_as_ListTopicsResponse()->topics();
  ASSERT_EQ(topics->size(), 1u);
  EXPECT_EQ(topics->Get(0)->name()->str(), "orders");
  EXPECT_EQ(topics->Get(0)->partitions(), 3);

  flatbuffers::FlatBufferBuilder fbb2;
  auto d = c.call(fbb2, wire::Body::DescribeTopicRequest,
                  wire::CreateDescribeTopicRequest(fbb2, fbb2.CreateString("orders")).Union());
  ASSERT_TRUE(d && d->env);
  auto* desc = d->env->body_as_DescribeTopicResponse();
  ASSERT_EQ(desc->error(), ErrorCode::None);
  ASSERT_EQ(desc->partitions()->size(), 3u);
  EXPECT_EQ(desc->partitions()->Get(2)->log_end(), 0);

  flatbuffers::FlatBufferBuilder fbb3;
  auto del = c.call(fbb3, wire::Body::DeleteTopicRequest,
                    wire::CreateDeleteTopicRequest(fbb3, fbb3.CreateString("orders")).Union());
  ASSERT_TRUE(del && del->env);
  EXPECT_EQ(del->env->body_as_DeleteTopicResponse()->error(), ErrorCode::None);
  EXPECT_EQ(c.produce_one("orders", 0, make_batch(1)).error, ErrorCode::UnknownTopic);
  EXPECT_EQ(c.create_topic("orders", 1), ErrorCode::None) << "a deleted name can be reused";
}

TEST_F(BrokerTest, ProduceThenFetchReturnsTheSameRecords) {
  wire_client c(endpoint());
  ASSERT_EQ(c.create_topic("orders", 2), ErrorCode::None);
  auto res = c.produce({{"orders", 0, make_batch(3, 0)},
                        {"orders", 1, make_batch(2, 100)},
                        {"orders", 0, make_batch(2, 3)}});
  ASSERT_EQ(res.size(), 3u);
  EXPECT_EQ(res[0].error, ErrorCode::None);
  EXPECT_EQ(res[0].base, 0);
  EXPECT_EQ(res[1].base, 0);
  EXPECT_EQ(res[2].base, 3) << "two batches for one partition in one request keep their order";
  auto f = c.fetch("orders", 0, 0);
  ASSERT_EQ(f.error, ErrorCode::None);
  EXPECT_EQ(f.high_watermark, 5);
  EXPECT_EQ(values_in(f.data), (std::vector<std::string>{"v0", "v1", "v2", "v3", "v4"}));
  auto f1 = c.fetch("orders", 1, 1);
  EXPECT_EQ(values_in(f1.data, 1), (std::vector<std::string>{"v101"}));
}

TEST_F(BrokerTest, ErrorsAreSpecificAndHarmless) {
  wire_client c(endpoint());
  ASSERT_EQ(c.create_topic("t", 1, 1024), ErrorCode::None);
  auto unknown = c.produce_one("nope", 0, make_batch(1));
  EXPECT_EQ(unknown.error, ErrorCode::UnknownTopic);
  EXPECT_NE(unknown.message.find("ferry topics create"), std::string::npos) << unknown.message;
  EXPECT_EQ(c.produce_one("t", 5, make_batch(1)).error, ErrorCode::UnknownPartition);
  auto big = c.produce_one("t", 0, make_batch(1, 0, 4000));
  EXPECT_EQ(big.error, ErrorCode::RecordTooLarge);
  EXPECT_NE(big.message.find("max_message_bytes"), std::string::npos) << big.message;
  auto corrupt = make_batch(2);
  corrupt.back() ^= std::byte{1};
  EXPECT_EQ(c.produce_one("t", 0, corrupt).error, ErrorCode::InvalidBatch);
  EXPECT_EQ(c.fetch("t", 0, 5).error, ErrorCode::OffsetOutOfRange);
  EXPECT_EQ(c.fetch("t", 9, 0).error, ErrorCode::UnknownPartition);
  // None of it hurt: the partition still works and holds nothing bad.
  EXPECT_EQ(c.produce_one("t", 0, make_batch(1)).base, 0);
  EXPECT_EQ(values_in(c.fetch("t", 0, 0).data), std::vector<std::string>{"v0"});
}

TEST_F(BrokerTest, GarbageFramesGetAnErrorAndTheBrokerKeepsServing) {
  wire_client bad(endpoint());
  wire_client good(endpoint());
  ASSERT_EQ(good.create_topic("t", 1), ErrorCode::None);
  std::mt19937 rng(3);
  auto garbage = [&](std::size_t n) {
    std::vector<std::byte> v(n);
    for (auto& b : v) b = static_cast<std::byte>(rng());
    return v;
  };
  // Random bytes, empty frame, a valid envelope cut short, wrong identifier.
  flatbuffers::FlatBufferBuilder fbb;
  auto valid = protocol::finish_envelope(fbb, 7, wire::Body::ListTopicsRequest,
                                         wire::CreateListTopicsRequest(fbb).Union());
  std::vector<std::vector<std::byte>> inputs = {
      garbage(1),
      garbage(100),
      garbage(5000),
      {},
      std::vector<std::byte>(valid.begin(), valid.begin() + 10)};
  auto wrong_id = valid;
  wrong_id[4] = std::byte{'X'};
  inputs.push_back(wrong_id);
  for (auto& in : inputs) {
    bad.send_raw({in});
    auto r = bad.recv();
    ASSERT_TRUE(r && r->env) << "every bad frame gets an answer";
    ASSERT_EQ(r->env->body_type(), wire::Body::ErrorResponse);
    EXPECT_EQ(r->env->body_as_ErrorResponse()->error(), ErrorCode::InvalidRequest);
  }
  // A produce whose entry points at a data frame that does not exist.
  flatbuffers::FlatBufferBuilder fbb2;
  std::vector<flatbuffers::Offset<wire::ProduceEntry>> v{
      wire::CreateProduceEntry(fbb2, fbb2.CreateString("t"), 0, 3)};
  auto r = bad.call(fbb2, wire::Body::ProduceRequest,
                    wire::CreateProduceRequest(fbb2, fbb2.CreateVector(v)).Union());
  ASSERT_TRUE(r && r->env);
  EXPECT_EQ(r->env->body_type(), wire::Body::ErrorResponse);
  EXPECT_NE(r->env->body_as_ErrorResponse()->message()->str().find("frame"), std::string::npos);
  // A response sent as a request.
  flatbuffers::FlatBufferBuilder fbb3;
  auto r2 =
      bad.call(fbb3, wire::Body::ListTopicsResponse, wire::CreateListTopicsResponse(fbb3).Union());
  ASSERT_TRUE(r2 && r2->env);
  EXPECT_EQ(r2->env->body_type(), wire::Body::ErrorResponse);
  // The good client never noticed.
  EXPECT_EQ(good.produce_one("t", 0, make_batch(2)).base, 0);
  EXPECT_EQ(values_in(good.fetch("t", 0, 0).data).size(), 2u);
}

TEST_F(BrokerTest, FetchSizeIsCappedByTheBroker) {
  auto cfg = config();
  cfg.max_fetch_bytes = 64 << 10;
  restart_with(cfg);
  wire_client c(endpoint());
  ASSERT_EQ(c.create_topic("t", 1), ErrorCode::None);
  for (int i = 0; i < 40; ++i)
    ASSERT_EQ(c.produce_one("t", 0, make_batch(4, 4 * i, 4000)).error, ErrorCode::None);
  auto f = c.fetch("t", 0, 0, 0, 0x7fffffff);  // asks for 2 GiB
  ASSERT_EQ(f.error, ErrorCode::None);
  EXPECT_FALSE(f.data.empty());
  EXPECT_LE(f.data.size(), static_cast<std::size_t>(64 << 10) + 20000)
      << "at most the cap plus one batch";
}

TEST_F(BrokerTest, NamesStartingWithADotAreReserved) {
  wire_client c(endpoint());
  EXPECT_EQ(c.create_topic(".deleted-orders", 1), ErrorCode::InvalidTopicName);
  EXPECT_EQ(c.create_topic(".hidden", 1), ErrorCode::InvalidTopicName);
  EXPECT_EQ(c.create_topic("ok.name_1-x", 1), ErrorCode::None);
}

TEST_F(BrokerTest, DeleteAndRecreateQuicklyKeepsThemApart) {
  wire_client c(endpoint());
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(c.create_topic("churn", 1), ErrorCode::None) << round;
    ASSERT_EQ(c.produce_one("churn", 0, make_batch(1, round)).base, 0)
        << "a new topic starts empty";
    flatbuffers::FlatBufferBuilder fbb;
    auto del = c.call(fbb, wire::Body::DeleteTopicRequest,
                      wire::CreateDeleteTopicRequest(fbb, fbb.CreateString("churn")).Union());
    ASSERT_TRUE(del && del->env);
    ASSERT_EQ(del->env->body_as_DeleteTopicResponse()->error(), ErrorCode::None) << round;
  }
  restart();
  wire_client c2(endpoint());
  EXPECT_EQ(c2.fetch("churn", 0, 0).error, ErrorCode::UnknownTopic)
      << "deleted topics stay deleted";
}

TEST_F(BrokerTest, TooManyEntriesIsRefusedWithTheLimit) {
  wire_client c(endpoint());
  ASSERT_EQ(c.create_topic("t", 1), ErrorCode::None);
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::FetchEntry>> v;
  for (int i = 0; i < 5000; ++i)
    v.push_back(wire::CreateFetchEntry(fbb, fbb.CreateString("t"), 0, 0));
  auto r = c.call(fbb, wire::Body::FetchRequest,
                  wire::CreateFetchRequest(fbb, fbb.CreateVector(v)).Union());
  ASSERT_TRUE(r && r->env);
  ASSERT_EQ(r->env->body_type(), wire::Body::ErrorResponse);
  EXPECT_NE(r->env->body_as_ErrorResponse()->message()->str().find("limit"), std::string::npos);
}

TEST_F(BrokerTest, ManyPartitionsInOneRequest) {
  wire_client c(endpoint());
  constexpr int kParts = 64;
  ASSERT_EQ(c.create_topic("wide", kParts), ErrorCode::None);
  std::vector<std::tuple<std::string, int, std::vector<std::byte>>> entries;
  for (int p = 0; p < kParts; ++p) entries.emplace_back("wide", p, make_batch(3, p * 3));
  auto res = c.produce(entries);
  ASSERT_EQ(res.size(), static_cast<std::size_t>(kParts));
  for (auto& r : res) {
    EXPECT_EQ(r.error, ErrorCode::None);
    EXPECT_EQ(r.base, 0);
  }
  for (int p = 0; p < kParts; p += 7) {
    auto vals = values_in(c.fetch("wide", p, 0).data);
    ASSERT_EQ(vals.size(), 3u);
    EXPECT_EQ(vals[0], "v" + std::to_string(p * 3));
  }
}

TEST_F(BrokerTest, LongPollWakesWhenDataArrives) {
  wire_client consumer(endpoint());
  wire_client producer(endpoint());
  ASSERT_EQ(producer.create_topic("t", 1), ErrorCode::None);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(producer.produce_one("t", 0, make_batch(1)).error, ErrorCode::None);
  });
  // Waits up to 20 s; only new data (not the deadline) can make it return
  // records, so getting them proves the wake-up.
  auto f = consumer.fetch("t", 0, 0, 20000);
  t.join();
  ASSERT_TRUE(f.answered);
  EXPECT_EQ(values_in(f.data), std::vector<std::string>{"v0"});
}

TEST_F(BrokerTest, LongPollReturnsEmptyAtItsDeadline) {
  wire_client c(endpoint());
  ASSERT_EQ(c.create_topic("t", 1), ErrorCode::None);
  auto f = c.fetch("t", 0, 0, 50);
  ASSERT_TRUE(f.answered);
  EXPECT_EQ(f.error, ErrorCode::None);
  EXPECT_TRUE(f.data.empty());
}

TEST_F(BrokerTest, RecordsSurviveARestartBetweenProduceAndConsume) {
  {
    wire_client c(endpoint());
    ASSERT_EQ(c.create_topic("orders", 2), ErrorCode::None);
    for (int i = 0; i < 20; ++i)
      ASSERT_EQ(c.produce_one("orders", i % 2, make_batch(5, i * 5, 2000)).error, ErrorCode::None);
  }
  restart();
  wire_client c(endpoint());
  std::vector<std::string> all;
  for (int p = 0; p < 2; ++p) {
    std::int64_t at = 0;
    for (;;) {
      auto f = c.fetch("orders", p, at);
      ASSERT_EQ(f.error, ErrorCode::None);
      if (f.data.empty()) break;
      auto vals = values_in(f.data, at);
      all.insert(all.end(), vals.begin(), vals.end());
      at += static_cast<std::int64_t>(vals.size());
    }
    EXPECT_EQ(at, 50);
  }
  EXPECT_EQ(all.size(), 100u);
}

TEST_F(BrokerTest, SilentConnectionsDoNotBlockOthers) {
  // Plain TCP connections that never speak ZMTP.
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    fds.push_back(fd);
  }
  wire_client c(endpoint());
  EXPECT_EQ(c.create_topic("t", 1), ErrorCode::None);
  EXPECT_EQ(c.produce_one("t", 0, make_batch(1)).error, ErrorCode::None);
  for (int fd : fds) ::close(fd);
}

TEST_F(BrokerTest, OversizedMessageDropsOnlyThatPeer) {
  auto c = config();
  c.socket.max_message_bytes = 1 << 20;
  c.topics.max_message_bytes = 512 << 10;
  c.max_fetch_bytes = 256 << 10;
  restart_with(c);
  wire_client good(endpoint());
  ASSERT_EQ(good.create_topic("t", 1), ErrorCode::None);
  {
    wire_client bad(endpoint());
    bad.send_raw(
        {std::vector<std::byte>(2 << 20)});  // over ZMQ_MAXMSGSIZE: libzmq drops the connection
    EXPECT_FALSE(bad.recv(std::chrono::milliseconds(300)).has_value());
  }
  EXPECT_EQ(good.produce_one("t", 0, make_batch(1)).error, ErrorCode::None);
}

TEST_F(BrokerTest, GracefulStopAnswersWhatWasQueued) {
  wire_client c(endpoint());
  ASSERT_EQ(c.create_topic("t", 1), ErrorCode::None);
  // A parked long poll is answered at stop, not dropped.
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::FetchEntry>> v{
      wire::CreateFetchEntry(fbb, fbb.CreateString("t"), 0, 0)};
  std::vector<std::vector<std::byte>> frames;
  frames.push_back(
      protocol::finish_envelope(fbb, 42, wire::Body::FetchRequest,
                                wire::CreateFetchRequest(fbb, fbb.CreateVector(v), 30000).Union()));
  c.send_raw(std::move(frames));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  broker_.get()->stop();  // stopped, not closed: c waits for its answer
  auto r = c.recv(std::chrono::milliseconds(5000));
  ASSERT_TRUE(r && r->env);
  EXPECT_EQ(r->env->request_id(), 42u);
  EXPECT_EQ(r->env->body_type(), wire::Body::FetchResponse);
}

TEST_F(BrokerTest, RetentionRunsInTheBackground) {
  wire_client c(endpoint());
  flatbuffers::FlatBufferBuilder fbb;
  auto conf = wire::CreateTopicConfig(fbb, 1, -2, 20000, 0, 8192);
  auto r = c.call(fbb, wire::Body::CreateTopicRequest,
                  wire::CreateCreateTopicRequest(fbb, fbb.CreateString("t"), conf).Union());
  ASSERT_TRUE(r && r->env);
  ASSERT_EQ(r->env->body_as_CreateTopicResponse()->error(), ErrorCode::None);
  for (int i = 0; i < 40; ++i)
    ASSERT_EQ(c.produce_one("t", 0, make_batch(2, 2 * i, 1000)).error, ErrorCode::None);
  std::int64_t start = 0;
  for (int tries = 0; tries < 100 && start == 0; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto f = c.fetch("t", 0, 0);
    if (f.error == ErrorCode::OffsetOutOfRange) start = 1;
  }
  EXPECT_EQ(start, 1) << "offset 0 was deleted by retention";
}

}  // namespace
}  // namespace ferry::broker
