// The producer's idempotence against a scripted broker: InitProducer before
// the first batch (retried), producer id / epoch / per-partition sequence
// numbers in every batch, identical bytes on a retry, duplicate acks,
// fencing, out-of-order and lost outcomes (new identity), sequences given
// back by a definite refusal, and a broker without InitProducer.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>

#include "fake_broker.h"
#include "ferry/client/errc.h"
#include "ferry/client/producer.h"
#include "ferry/core/errc.h"
#include "ferry/protocol/errc.h"

namespace ferry::client {
namespace {

using namespace std::chrono_literals;
using testing::fake_broker;
using testing::fast_producer_options;
using testing::rec;
using testing::request;

// One stored batch as the fake saw it.
struct seen_batch {
  std::int32_t partition = 0;
  format::batch_header header;
  std::vector<std::byte> bytes;
  std::vector<std::string> values;
};

// A scripted broker that hands out producer ids 100, 101, ... (epoch 0, or
// `epoch` for named producers) and stores every produce entry unless a
// script says otherwise for the n-th produce request (1-based).
struct scripted {
  enum class action { store, silent, error, duplicate };
  std::mutex mu;
  std::int64_t next_id = 100;
  std::int16_t epoch = 0;
  std::vector<std::string> init_names;  // "" for anonymous
  int inits = 0;
  int init_drops = 0;  // InitProducer requests to leave unanswered
  std::optional<wire::ErrorCode> init_error;
  std::map<int, action> script;
  wire::ErrorCode error = wire::ErrorCode::None;  // for action::error
  int produces = 0;
  std::map<std::int32_t, std::int64_t> next_offset;
  std::vector<seen_batch> attempts;  // every produce entry, in arrival order

  void serve(fake_broker& f, request& r) {
    std::lock_guard lock(mu);
    if (r.type() == wire::Body::DescribeTopicRequest) {
      f.reply_describe(r, 2);
      return;
    }
    if (r.type() == wire::Body::InitProducerRequest) {
      ++inits;
      const auto* n = r.envelope().body_as_InitProducerRequest()->name();
      init_names.push_back(n ? n->str() : "");
      if (init_drops > 0) {
        --init_drops;
        return;
      }
      if (init_error) {
        f.reply_error(r, *init_error, "unexpected message type");
        return;
      }
      flatbuffers::FlatBufferBuilder fbb;
      f.reply(r, fbb, wire::Body::InitProducerResponse,
              wire::CreateInitProducerResponse(fbb, wire::ErrorCode::None, 0, next_id++,
                                               n ? epoch : std::int16_t{0})
                  .Union());
      return;
    }
    ASSERT_EQ(r.type(), wire::Body::ProduceRequest);
    const int n = ++produces;
    const auto act = script.count(n) ? script[n] : action::store;
    if (act == action::silent) {
      for (auto& e : testing::produce_entries(r)) record(e);
      return;
    }
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::ProduceResult>> v;
    for (auto& e : testing::produce_entries(r)) {
      const auto& s = record(e);
      std::int64_t base = -1;
      auto err = wire::ErrorCode::None;
      bool dup = false;
      if (act == action::error) {
        err = error;
      } else if (act == action::duplicate) {
        base = 0;
        dup = true;
      } else {
        base = next_offset[e.partition];
        next_offset[e.partition] += s.header.record_count;
      }
      v.push_back(wire::CreateProduceResult(fbb, fbb.CreateString(e.topic), e.partition, err, base,
                                            0, dup));
    }
    f.reply(r, fbb, wire::Body::ProduceResponse,
            wire::CreateProduceResponse(fbb, fbb.CreateVector(v)).Union());
  }

  const seen_batch& record(const testing::produced& e) {
    auto h = format::validate_batch(e.batch, format::validation::full);
    EXPECT_TRUE(h);
    attempts.push_back({e.partition, h ? h.value() : format::batch_header{}, e.batch,
                        testing::batch_values(e.batch)});
    return attempts.back();
  }
};

TEST(IdempotentProducer, StampsIdEpochAndPerPartitionSequences) {
  scripted s;
  s.epoch = 3;
  fake_broker fb([&](fake_broker& f, request& r) { s.serve(f, r); });
  auto o = fast_producer_options(fb);
  o.producer_name = "writer-1";
  o.linger = 10s;  // only flush() sends
  producer p(o);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(p.send(rec("a" + std::to_string(i), 0), nullptr));
  ASSERT_TRUE(p.send(rec("b0", 1), nullptr));
  ASSERT_TRUE(p.flush(3s));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(p.send(rec("c" + std::to_string(i), 0), nullptr));
  ASSERT_TRUE(p.flush(3s));

  std::lock_guard lock(s.mu);
  EXPECT_EQ(s.inits, 1);
  ASSERT_EQ(s.init_names, std::vector<std::string>{"writer-1"});
  ASSERT_EQ(s.attempts.size(), 3u);
  for (const auto& b : s.attempts) {
    EXPECT_EQ(b.header.pid, producer_id(100));
    EXPECT_EQ(b.header.epoch, producer_epoch(3));
  }
  std::map<std::int32_t, std::vector<std::int32_t>> seqs;
  for (const auto& b : s.attempts) seqs[b.partition].push_back(b.header.base_sequence.value());
  EXPECT_EQ(seqs[0], (std::vector<std::int32_t>{0, 3}));  // advanced by the record count
  EXPECT_EQ(seqs[1], (std::vector<std::int32_t>{0}));     // each partition has its own
  EXPECT_EQ(p.stats().id, 100);
  EXPECT_EQ(p.stats().epoch, 3);
}

TEST(IdempotentProducer, ARetryResendsTheIdenticalBatchAndADuplicateAckIsSuccess) {
  scripted s;
  s.script[1] = scripted::action::silent;     // the reply is lost
  s.script[2] = scripted::action::duplicate;  // the broker had stored it
  fake_broker fb([&](fake_broker& f, request& r) { s.serve(f, r); });
  auto o = fast_producer_options(fb);
  o.request_timeout = 100ms;
  o.linger = 10s;  // one batch of both records, sent by flush()
  producer p(o);
  auto a = p.send(rec("x", 0));
  auto b = p.send(rec("y", 0));
  ASSERT_TRUE(p.flush(5s));
  auto ra = a.get();
  auto rb = b.get();
  ASSERT_TRUE(ra) << ra.error().message();
  ASSERT_TRUE(rb) << rb.error().message();
  EXPECT_EQ(ra.value().offset, offset(0));  // the original's offsets
  EXPECT_EQ(rb.value().offset, offset(1));
  EXPECT_EQ(p.stats().duplicates, 1u);
  std::lock_guard lock(s.mu);
  ASSERT_EQ(s.attempts.size(), 2u);
  EXPECT_EQ(s.attempts[0].bytes, s.attempts[1].bytes) << "a retry must resend the same bytes";
}

TEST(IdempotentProducer, InitProducerIsRetriedBeforeTheFirstBatch) {
  scripted s;
  s.init_drops = 1;
  fake_broker fb([&](fake_broker& f, request& r) { s.serve(f, r); });
  auto o = fast_producer_options(fb);
  o.request_timeout = 100ms;
  producer p(o);
  auto m = p.send(rec("v", 0)).get();
  ASSERT_TRUE(m) << m.error().message();
  std::lock_guard lock(s.mu);
  EXPECT_EQ(s.inits, 2);
  ASSERT_EQ(s.attempts.size(), 1u);
  EXPECT_EQ(s.attempts[0].header.pid, producer_id(100));
}

TEST(IdempotentProducer, FencedFailsWhatIsPendingAndEveryLaterSend) {
  scripted s;
  s.script[1] = scripted::action::error;
  s.error = wire::ErrorCode::ProducerFenced;
  fake_broker fb([&](fake_broker& f, request& r) { s.serve(f, r); });
  auto o = fast_producer_options(fb);
  o.producer_name = "w";
  producer p(o);
  auto first = p.send(rec("a", 0));
  auto r = first.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::producer_fenced);
  // Later sends fail at once, without reaching the broker.
  auto later = p.send(rec("b", 1), nullptr);
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error(), errc::producer_fenced);
  std::lock_guard lock(s.mu);
  EXPECT_EQ(s.produces, 1);
  EXPECT_EQ(s.inits, 1) << "a fenced producer must not take a new epoch by itself";
}

TEST(IdempotentProducer, FencedFailsBatchesQueuedBehindIt) {
  scripted s;
  s.script[1] = scripted::action::error;
  s.error = wire::ErrorCode::ProducerFenced;
  // Holds the first request until more are queued.
  testing::produce_gate gate([&](fake_broker& f, request& r) { s.serve(f, r); });
  fake_broker fb(gate.handler(), gate.tick());
  auto o = fast_producer_options(fb);
  o.batch_bytes = 80;  // one record per batch
  producer p(o);
  std::vector<std::future<result<record_metadata>>> fs;
  for (int i = 0; i < 4; ++i) fs.push_back(p.send(rec("v" + std::to_string(i), 0)));
  std::this_thread::sleep_for(50ms);
  gate.release = true;
  for (auto& f : fs) {
    auto r = f.get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::producer_fenced);
  }
  std::lock_guard lock(s.mu);
  EXPECT_EQ(s.produces, 1) << "nothing is sent after the fence";
}

TEST(IdempotentProducer, OutOfOrderFailsThatBatchAndLaterBatchesTakeANewIdentity) {
  scripted s;
  s.script[1] = scripted::action::error;
  s.error = wire::ErrorCode::OutOfOrderSequence;
  fake_broker fb([&](fake_broker& f, request& r) { s.serve(f, r); });
  producer p(fast_producer_options(fb));
  auto a = p.send(rec("a", 0)).get();
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error(), errc::out_of_order_sequence);
  auto b = p.send(rec("b", 0)).get();
  ASSERT_TRUE(b) << b.error().message();
  std::lock_guard lock(s.mu);
  EXPECT_EQ(s.inits, 2);
  ASSERT_EQ(s.attempts.size(), 2u);
  EXPECT_EQ(s.attempts[0].header.pid, producer_id(100));
  EXPECT_EQ(s.attempts[0].values, std::vector<std::string>{"a"});
  EXPECT_EQ(s.attempts[1].values, std::vector<std::string>{"b"}) << "no silent resend of 'a'";
  EXPECT_EQ(s.attempts[1].header.pid, producer_id(101));
  EXPECT_EQ(s.attempts[1].header.base_sequence, sequence_number(0));
  EXPECT_EQ(p.stats().identity_renewals, 1u);
}

TEST(IdempotentProducer, ABatchWithAnUnknownOutcomeLeadsToANewIdentity) {
  scripted s;
  for (int i = 1; i <= 20; ++i) s.script[i] = scripted::action::silent;
  fake_broker fb([&](fake_broker& f, request& r) { s.serve(f, r); });
  auto o = fast_producer_options(fb);
  o.request_timeout = 40ms;
  o.delivery_timeout = 100ms;
  producer p(o);
  auto a = p.send(rec("a", 0)).get();
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error(), protocol::errc::timed_out);
  {
    std::lock_guard lock(s.mu);
    s.script.clear();
  }
  auto b = p.send(rec("b", 0)).get();
  ASSERT_TRUE(b) << b.error().message();
  std::lock_guard lock(s.mu);
  EXPECT_EQ(s.inits, 2);
  const auto& last = s.attempts.back();
  EXPECT_EQ(last.values, std::vector<std::string>{"b"});
  // "a" may or may not be stored: reusing its sequence under the old id
  // could make the broker take "b" for a duplicate of it.
  EXPECT_EQ(last.header.pid, producer_id(101));
  EXPECT_EQ(last.header.base_sequence, sequence_number(0));
}

TEST(IdempotentProducer, ADefiniteRefusalGivesItsSequenceNumbersBack) {
  scripted s;
  s.script[1] = scripted::action::error;
  s.error = wire::ErrorCode::RecordTooLarge;
  fake_broker fb([&](fake_broker& f, request& r) { s.serve(f, r); });
  producer p(fast_producer_options(fb));
  auto a = p.send(rec("aaa", 0)).get();
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error(), errc::record_too_large);
  auto b = p.send(rec("b", 0)).get();
  ASSERT_TRUE(b) << b.error().message();
  std::lock_guard lock(s.mu);
  EXPECT_EQ(s.inits, 1);
  ASSERT_EQ(s.attempts.size(), 2u);
  EXPECT_EQ(s.attempts[1].header.pid, producer_id(100));
  EXPECT_EQ(s.attempts[1].header.base_sequence, sequence_number(0))
      << "a gap would make the broker refuse every later batch";
}

TEST(IdempotentProducer, ABrokerWithoutInitProducerFailsEverySend) {
  scripted s;
  s.init_error = wire::ErrorCode::InvalidRequest;
  fake_broker fb([&](fake_broker& f, request& r) { s.serve(f, r); });
  producer p(fast_producer_options(fb));
  auto a = p.send(rec("a", 0)).get();
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error(), errc::invalid_request);
  auto b = p.send(rec("b", 0), nullptr);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error(), errc::invalid_request);
  std::lock_guard lock(s.mu);
  EXPECT_EQ(s.produces, 0);
}

TEST(IdempotentProducer, WithIdempotenceOffNoIdentityIsAskedForOrSent) {
  scripted s;
  fake_broker fb([&](fake_broker& f, request& r) { s.serve(f, r); });
  auto o = fast_producer_options(fb);
  o.enable_idempotence = false;
  producer p(o);
  ASSERT_TRUE(p.send(rec("a", 0)).get());
  std::lock_guard lock(s.mu);
  EXPECT_EQ(s.inits, 0);
  ASSERT_EQ(s.attempts.size(), 1u);
  EXPECT_EQ(s.attempts[0].header.pid, producer_id(-1));
  EXPECT_EQ(s.attempts[0].header.base_sequence, sequence_number(-1));
  EXPECT_EQ(p.stats().id, -1);
}

TEST(IdempotentProducer, ANameNeedsIdempotence) {
  scripted s;
  fake_broker fb([&](fake_broker& f, request& r) { s.serve(f, r); });
  auto o = fast_producer_options(fb);
  o.enable_idempotence = false;
  o.producer_name = "w";
  producer p(o);
  EXPECT_EQ(p.send(rec("a", 0), nullptr).error(), ferry::errc::invalid_argument);
}

}  // namespace
}  // namespace ferry::client
