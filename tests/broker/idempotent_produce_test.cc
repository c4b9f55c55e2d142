// The idempotent producer on the wire, against an in-process broker on a
// temporary directory: InitProducer, duplicates answered with the original
// offset and stored once (also within one request, and after a restart),
// fencing of an older epoch, gaps, unknown producers, corrupt retries, and
// a corrupt producer registry refusing the start.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "broker_fixture.h"
#include "ferry/broker/broker.h"
#include "wire_client.h"

namespace ferry::broker {
namespace {

using ferry::testing::wire_client;
using wire::ErrorCode;

struct produced {
  ErrorCode error = ErrorCode::Internal;
  std::int64_t base = -1;
  bool duplicate = false;
  std::string message;
};

struct identity {
  ErrorCode error = ErrorCode::Internal;
  std::int64_t id = -1;
  std::int16_t epoch = -1;
  std::string message;
};

identity init_producer(wire_client& c, std::optional<std::string> name = {}) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateInitProducerRequest(fbb, name ? fbb.CreateString(*name) : 0);
  auto r = c.call(fbb, wire::Body::InitProducerRequest, body.Union());
  identity out;
  if (!r || !r->env || r->env->body_type() != wire::Body::InitProducerResponse) return out;
  auto* b = r->env->body_as_InitProducerResponse();
  out = {b->error(), b->producer_id(), b->epoch(), b->message() ? b->message()->str() : ""};
  return out;
}

std::vector<std::byte> batch(std::int64_t pid, std::int16_t epoch, std::int32_t seq, int records,
                             const std::string& tag) {
  format::batch_builder b;
  for (int i = 0; i < records; ++i)
    b.add(system_clock::instance().wall_now(), "k", tag + "-" + std::to_string(i));
  return b.finish({producer_id(pid), producer_epoch(epoch), sequence_number(seq)});
}

std::vector<produced> produce(wire_client& c, const std::string& topic,
                              std::vector<std::vector<std::byte>> batches) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::ProduceEntry>> v;
  for (std::size_t i = 0; i < batches.size(); ++i)
    v.push_back(wire::CreateProduceEntry(fbb, fbb.CreateString(topic), 0,
                                         static_cast<std::uint32_t>(i + 1)));
  auto body = wire::CreateProduceRequest(fbb, fbb.CreateVector(v));
  auto r = c.call(fbb, wire::Body::ProduceRequest, body.Union(), std::move(batches));
  std::vector<produced> out;
  if (!r || !r->env || r->env->body_type() != wire::Body::ProduceResponse) return out;
  for (auto* x : *r->env->body_as_ProduceResponse()->results())
    out.push_back(
        {x->error(), x->base_offset(), x->duplicate(), x->message() ? x->message()->str() : ""});
  return out;
}

produced produce_one(wire_client& c, const std::string& topic, std::vector<std::byte> b) {
  auto v = produce(c, topic, {std::move(b)});
  return v.size() == 1 ? v[0] : produced{};
}

class IdempotentProduce : public ferry::testing::InprocBrokerTest {
 protected:
  IdempotentProduce() : InprocBrokerTest("ferry-idem") {}
  void SetUp() override {
    InprocBrokerTest::SetUp();
    if (HasFatalFailure()) return;
    wire_client c(endpoint());
    ASSERT_EQ(c.create_topic("t", 1), ErrorCode::None);
  }
  // Every record value stored in t-0, in offset order.
  std::vector<std::string> stored() { return stored_values("t", 0); }
};

TEST_F(IdempotentProduce, ARetriedBatchIsStoredOnceAndAnsweredWithItsOriginalOffset) {
  wire_client c(endpoint());
  auto id = init_producer(c);
  ASSERT_EQ(id.error, ErrorCode::None) << id.message;
  EXPECT_GE(id.id, 0);
  EXPECT_EQ(id.epoch, 0);
  auto first = batch(id.id, 0, 0, 3, "a");
  auto a = produce_one(c, "t", first);
  ASSERT_EQ(a.error, ErrorCode::None) << a.message;
  EXPECT_EQ(a.base, 0);
  EXPECT_FALSE(a.duplicate);
  auto again = produce_one(c, "t", first);
  ASSERT_EQ(again.error, ErrorCode::None) << again.message;
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.base, 0);
  auto b = produce_one(c, "t", batch(id.id, 0, 3, 2, "b"));
  ASSERT_EQ(b.error, ErrorCode::None) << b.message;
  EXPECT_EQ(b.base, 3);
  EXPECT_FALSE(b.duplicate);
  EXPECT_EQ(stored(), (std::vector<std::string>{"a-0", "a-1", "a-2", "b-0", "b-1"}));
}

TEST_F(IdempotentProduce, ADuplicateInTheSameRoundAsItsOriginalIsAnsweredWithIt) {
  wire_client c(endpoint());
  auto id = init_producer(c);
  ASSERT_EQ(id.error, ErrorCode::None);
  auto b = batch(id.id, 0, 0, 2, "x");
  // One request: both entries are handled in one disk round, one sync.
  auto r = produce(c, "t", {b, b});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].error, ErrorCode::None);
  EXPECT_FALSE(r[0].duplicate);
  EXPECT_EQ(r[1].error, ErrorCode::None);
  EXPECT_TRUE(r[1].duplicate);
  EXPECT_EQ(r[1].base, r[0].base);
  EXPECT_EQ(stored(), (std::vector<std::string>{"x-0", "x-1"}));
}

TEST_F(IdempotentProduce, ANamedInitFencesTheOlderEpoch) {
  wire_client c(endpoint());
  auto old = init_producer(c, "orders-writer");
  ASSERT_EQ(old.error, ErrorCode::None) << old.message;
  EXPECT_EQ(old.epoch, 0);
  ASSERT_EQ(produce_one(c, "t", batch(old.id, 0, 0, 1, "old")).error, ErrorCode::None);
  auto now = init_producer(c, "orders-writer");
  ASSERT_EQ(now.error, ErrorCode::None);
  EXPECT_EQ(now.id, old.id);
  EXPECT_EQ(now.epoch, 1);
  auto zombie = produce_one(c, "t", batch(old.id, 0, 1, 1, "zombie"));
  EXPECT_EQ(zombie.error, ErrorCode::ProducerFenced);
  EXPECT_NE(zombie.message.find("fenced"), std::string::npos) << zombie.message;
  // Even a retry of the zombie's stored batch is fenced now.
  EXPECT_EQ(produce_one(c, "t", batch(old.id, 0, 0, 1, "old")).error, ErrorCode::ProducerFenced);
  auto fresh = produce_one(c, "t", batch(now.id, 1, 0, 1, "new"));
  EXPECT_EQ(fresh.error, ErrorCode::None) << fresh.message;
  EXPECT_EQ(fresh.base, 1);
  // An epoch the broker never handed out.
  EXPECT_EQ(produce_one(c, "t", batch(now.id, 2, 0, 1, "future")).error,
            ErrorCode::InvalidProducer);
  EXPECT_EQ(stored(), (std::vector<std::string>{"old-0", "new-0"}));
}

TEST_F(IdempotentProduce, AGapIsOutOfOrderSequenceAndNothingIsWritten) {
  wire_client c(endpoint());
  auto id = init_producer(c);
  ASSERT_EQ(produce_one(c, "t", batch(id.id, 0, 0, 2, "a")).error, ErrorCode::None);
  auto gap = produce_one(c, "t", batch(id.id, 0, 5, 1, "gap"));
  EXPECT_EQ(gap.error, ErrorCode::OutOfOrderSequence);
  EXPECT_EQ(gap.base, -1);
  EXPECT_NE(gap.message.find("expected sequence 2"), std::string::npos) << gap.message;
  EXPECT_EQ(produce_one(c, "t", batch(id.id, 0, 2, 1, "b")).error, ErrorCode::None);
  EXPECT_EQ(stored(), (std::vector<std::string>{"a-0", "a-1", "b-0"}));
}

TEST_F(IdempotentProduce, UnknownProducersAndCorruptRetriesAreRefused) {
  wire_client c(endpoint());
  auto id = init_producer(c);
  auto unknown = produce_one(c, "t", batch(id.id + 100000, 0, 0, 1, "u"));
  EXPECT_EQ(unknown.error, ErrorCode::InvalidProducer);
  EXPECT_NE(unknown.message.find("InitProducer"), std::string::npos) << unknown.message;
  auto good = batch(id.id, 0, 0, 1, "g");
  ASSERT_EQ(produce_one(c, "t", good).error, ErrorCode::None);
  auto flipped = good;
  flipped.back() ^= std::byte{1};  // a bit flip in the retry's payload
  EXPECT_EQ(produce_one(c, "t", flipped).error, ErrorCode::InvalidBatch);
  EXPECT_EQ(stored(), (std::vector<std::string>{"g-0"}));
}

TEST_F(IdempotentProduce, BatchesWithoutProducerIdAreStoredEveryTime) {
  wire_client c(endpoint());
  auto plain = batch(-1, -1, -1, 1, "p");
  auto a = produce_one(c, "t", plain);
  auto b = produce_one(c, "t", plain);
  ASSERT_EQ(a.error, ErrorCode::None);
  ASSERT_EQ(b.error, ErrorCode::None);
  EXPECT_FALSE(b.duplicate);
  EXPECT_EQ(b.base, 1);
  EXPECT_EQ(stored(), (std::vector<std::string>{"p-0", "p-0"}));
}

TEST_F(IdempotentProduce, DuplicatesAreDetectedAndIdsAndEpochsKeptAfterARestart) {
  std::vector<std::byte> last;
  std::int64_t last_base = -1;
  identity anon, named;
  {
    wire_client c(endpoint());
    anon = init_producer(c);
    named = init_producer(c, "w");
    ASSERT_EQ(named.error, ErrorCode::None);
    for (int i = 0; i < 4; ++i) {
      last = batch(anon.id, 0, 2 * i, 2, "r" + std::to_string(i));
      auto r = produce_one(c, "t", last);
      ASSERT_EQ(r.error, ErrorCode::None);
      last_base = r.base;
    }
  }
  restart();
  wire_client c(endpoint());
  auto again = produce_one(c, "t", last);
  ASSERT_EQ(again.error, ErrorCode::None) << again.message;
  EXPECT_TRUE(again.duplicate) << "the restarted broker forgot the producer's last batch";
  EXPECT_EQ(again.base, last_base);
  EXPECT_EQ(produce_one(c, "t", batch(anon.id, 0, 20, 1, "gap")).error,
            ErrorCode::OutOfOrderSequence);
  EXPECT_EQ(produce_one(c, "t", batch(anon.id, 0, 8, 1, "next")).error, ErrorCode::None);
  auto fresh = init_producer(c);
  ASSERT_EQ(fresh.error, ErrorCode::None);
  EXPECT_GT(fresh.id, std::max(anon.id, named.id)) << "a producer id was handed out twice";
  auto renamed = init_producer(c, "w");
  EXPECT_EQ(renamed.id, named.id);
  EXPECT_EQ(renamed.epoch, 1);
  EXPECT_EQ(stored().size(), 9u);
}

TEST_F(IdempotentProduce, ACorruptProducerRegistryRefusesTheStart) {
  {
    wire_client c(endpoint());
    ASSERT_EQ(init_producer(c, "w").error, ErrorCode::None);
  }
  broker_.stop();
  const auto file = dir_ / "producers";
  ASSERT_TRUE(std::filesystem::exists(file));
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('9');
  }
  auto b = broker::open(config());
  EXPECT_FALSE(b) << "a corrupt producers file must not be reset silently";
  std::filesystem::remove(file);
  auto ok = broker::open(config());
  EXPECT_TRUE(ok) << "without the file the broker starts (ids continue after those in the logs)";
}

}  // namespace
}  // namespace ferry::broker
