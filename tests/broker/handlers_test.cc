// The native handlers without ZeroMQ: a broker_core on a temporary
// directory, requests built as bytes and decoded as the front-end does,
// rounds run by the test on its own thread (which takes the core thread's
// role), answers recorded.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <deque>
#include <filesystem>

#include "core.h"
#include "ferry/core/clock.h"
#include "ferry/format/batch.h"
#include "ferry/protocol/codec.h"
#include "handlers/native.h"
#include "janitor.h"
#include "metrics_snapshot.h"
#include "pipeline.h"

namespace ferry::broker {
namespace {

using namespace ferry::wire;
using steady = std::chrono::steady_clock;

struct recorded {
  std::uint64_t id;
  native_response response;
  const Envelope* env() const { return GetEnvelope(response.envelope.data()); }
};

class recorder final : public native_responder {
 public:
  void respond(native_request& q, native_response r) override {
    got.push_back({q.id(), std::move(r)});
  }
  std::vector<recorded> got;
};

std::filesystem::path make_temp_dir() {
  std::string tmpl = "/tmp/ferry-handlers-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
  return tmpl;
}

class Handlers : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir();
    cfg_.data_dir = dir_;
    core_ = std::make_unique<broker_core>(cfg_, stats_, janitor_);
    line_ = std::make_unique<pipeline>(*core_, snapshot_);
    thread_role_scope role(core_thread);
    ASSERT_TRUE(open_core(*core_, *line_));
  }
  void TearDown() override {
    {
      thread_role_scope role(core_thread);
      line_->finish();
    }
    line_.reset();
    core_.reset();
    janitor_.stop();
    std::filesystem::remove_all(dir_);
  }

  /// Queues a request (envelope + data frames) for the next round.
  std::uint64_t queue(flatbuffers::FlatBufferBuilder& fbb, Body type,
                      flatbuffers::Offset<void> body, std::vector<std::vector<std::byte>> data = {},
                      int wait_ms = 0) {
    const auto id = ++next_id_;
    auto q = std::make_unique<native_request>();
    auto head =
        std::make_shared<std::vector<std::byte>>(protocol::finish_envelope(fbb, id, type, body));
    q->frames.push_back({*head, head});
    for (auto& d : data) {
      auto owned = std::make_shared<std::vector<std::byte>>(std::move(d));
      q->frames.push_back({*owned, owned});
    }
    std::string why;
    auto env = protocol::decode_envelope(q->frames[0].bytes, q->frames.size(),
                                         protocol::direction::request, {}, &why);
    EXPECT_TRUE(env) << why;
    q->env = env.value();
    q->received = steady::now();
    q->deadline = q->received + std::chrono::milliseconds(wait_ms);
    q->responder = &answers_;
    queued_.push_back(native_work(std::move(q)));
    return id;
  }

  /// Runs one round with what is queued.
  void round_now() {
    thread_role_scope role(core_thread);
    line_->run_round(std::move(queued_), steady::now(), false);
    queued_.clear();
  }

  const recorded* answer(std::uint64_t id) const {
    for (const auto& r : answers_.got)
      if (r.id == id) return &r;
    return nullptr;
  }

  std::uint64_t create_topic(const std::string& name, int partitions) {
    flatbuffers::FlatBufferBuilder fbb;
    auto conf = CreateTopicConfig(fbb, partitions, -2, -2, 0, 0);
    return queue(fbb, Body::CreateTopicRequest,
                 CreateCreateTopicRequest(fbb, fbb.CreateString(name), conf).Union());
  }

  std::uint64_t produce(const std::string& topic, int partition, int records) {
    format::batch_builder b;
    for (int i = 0; i < records; ++i) b.add(timestamp_ms(1000 + i), "k", "value");
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<ProduceEntry>> v{
        CreateProduceEntry(fbb, fbb.CreateString(topic), partition, 1)};
    std::vector<std::vector<std::byte>> data;
    data.push_back(b.finish());
    return queue(fbb, Body::ProduceRequest, CreateProduceRequest(fbb, fbb.CreateVector(v)).Union(),
                 std::move(data));
  }

  std::uint64_t fetch(const std::string& topic, int partition, std::int64_t offset, int wait_ms) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<FetchEntry>> v{
        CreateFetchEntry(fbb, fbb.CreateString(topic), partition, offset, 1 << 20)};
    return queue(fbb, Body::FetchRequest,
                 CreateFetchRequest(fbb, fbb.CreateVector(v), wait_ms).Union(), {}, wait_ms);
  }

  std::filesystem::path dir_;
  broker_config cfg_;
  metrics::registry registry_;
  broker_metrics stats_{registry_};
  janitor janitor_;
  metrics_snapshot snapshot_;
  std::unique_ptr<broker_core> core_;
  std::unique_ptr<pipeline> line_;
  recorder answers_;
  std::deque<work> queued_;
  std::uint64_t next_id_ = 0;
};

TEST_F(Handlers, EveryRequestOfTheProtocolHasOneHandler) {
  for (const auto& api : protocol::kApis)
    EXPECT_NE(find_native_handler(api.request), nullptr) << api.name;
  EXPECT_EQ(native_handlers().size(), protocol::kApis.size());
  EXPECT_EQ(find_native_handler(Body::ProduceResponse), nullptr);
  EXPECT_EQ(find_native_handler(Body::ErrorResponse), nullptr);
}

TEST_F(Handlers, ProduceIsAnsweredAfterTheSyncAndFetchReadsItBack) {
  const auto created = create_topic("orders", 2);
  const auto produced = produce("orders", 1, 3);
  round_now();
  ASSERT_NE(answer(created), nullptr);
  EXPECT_EQ(answer(created)->env()->body_as_CreateTopicResponse()->error(), ErrorCode::None);
  const auto* p = answer(produced);
  ASSERT_NE(p, nullptr);
  const auto* res = p->env()->body_as_ProduceResponse()->results()->Get(0);
  EXPECT_EQ(res->error(), ErrorCode::None);
  EXPECT_EQ(res->base_offset(), 0);

  const auto fetched = fetch("orders", 1, 0, 0);
  round_now();
  const auto* f = answer(fetched);
  ASSERT_NE(f, nullptr);
  const auto* fr = f->env()->body_as_FetchResponse()->results()->Get(0);
  EXPECT_EQ(fr->error(), ErrorCode::None);
  EXPECT_EQ(fr->high_watermark(), 3);
  ASSERT_EQ(fr->frame(), 1u);
  ASSERT_EQ(f->response.data.size(), 1u);
  EXPECT_EQ(format::decode_records(f->response.data[0]).size(), 3u);
}

TEST_F(Handlers, ALongPollIsParkedUntilItsOwnPartitionGetsData) {
  create_topic("orders", 2);
  round_now();
  const auto waiting = fetch("orders", 0, 0, 30'000);
  round_now();
  EXPECT_EQ(answer(waiting), nullptr) << "no data yet: parked";
  {
    thread_role_scope role(core_thread);
    EXPECT_EQ(core_->fetches.size(), 1u);
  }
  produce("orders", 1, 2);  // another partition
  round_now();
  EXPECT_EQ(answer(waiting), nullptr) << "data on another partition does not answer it";
  produce("orders", 0, 1);
  round_now();
  const auto* f = answer(waiting);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->env()->body_as_FetchResponse()->results()->Get(0)->high_watermark(), 1);
  thread_role_scope role(core_thread);
  EXPECT_EQ(core_->fetches.size(), 0u);
}

TEST_F(Handlers, DeletingATopicAnswersItsParkedFetches) {
  create_topic("orders", 1);
  round_now();
  const auto waiting = fetch("orders", 0, 0, 30'000);
  round_now();
  ASSERT_EQ(answer(waiting), nullptr);
  flatbuffers::FlatBufferBuilder fbb;
  const auto deleted = queue(fbb, Body::DeleteTopicRequest,
                             CreateDeleteTopicRequest(fbb, fbb.CreateString("orders")).Union());
  round_now();
  ASSERT_NE(answer(deleted), nullptr);
  EXPECT_EQ(answer(deleted)->env()->body_as_DeleteTopicResponse()->error(), ErrorCode::None);
  const auto* f = answer(waiting);
  ASSERT_NE(f, nullptr) << "the deletion answered the parked fetch";
  EXPECT_EQ(f->env()->body_as_FetchResponse()->results()->Get(0)->error(), ErrorCode::UnknownTopic);
}

TEST_F(Handlers, AProduceBeforeADeletionInTheSameRoundIsAnsweredFirst) {
  create_topic("orders", 1);
  round_now();
  const auto produced = produce("orders", 0, 1);
  flatbuffers::FlatBufferBuilder fbb;
  const auto deleted = queue(fbb, Body::DeleteTopicRequest,
                             CreateDeleteTopicRequest(fbb, fbb.CreateString("orders")).Union());
  round_now();
  ASSERT_EQ(answers_.got.size(), 3u);
  EXPECT_EQ(answers_.got[1].id, produced) << "synced and answered before the topic went";
  EXPECT_EQ(answers_.got[1].env()->body_as_ProduceResponse()->results()->Get(0)->error(),
            ErrorCode::None);
  EXPECT_EQ(answers_.got[2].id, deleted);
}

TEST_F(Handlers, UnknownTopicsAreAnsweredWithWhatToDo) {
  const auto produced = produce("nope", 0, 1);
  round_now();
  const auto* res = answer(produced)->env()->body_as_ProduceResponse()->results()->Get(0);
  EXPECT_EQ(res->error(), ErrorCode::UnknownTopic);
  EXPECT_NE(res->message()->str().find("ferry topics create"), std::string::npos);
}

TEST_F(Handlers, HeartbeatOfAnUnknownMemberIsRefused) {
  flatbuffers::FlatBufferBuilder fbb;
  auto m = CreateGroupMember(fbb, fbb.CreateString("g"), fbb.CreateString("m-1"), 3);
  const auto id = queue(fbb, Body::HeartbeatRequest, CreateHeartbeatRequest(fbb, m).Union());
  round_now();
  ASSERT_NE(answer(id), nullptr);
  EXPECT_NE(answer(id)->env()->body_as_HeartbeatResponse()->error(), ErrorCode::None);
}

}  // namespace
}  // namespace ferry::broker
