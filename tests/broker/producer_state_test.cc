// The idempotent producer's broker side, on its own: the per-partition
// window (duplicates, gaps, epochs, wrap-around, expiry), its recovery from
// the log tail (on mem_env, including a torn tail and the scan bound) and
// the producer registry file (ids never reused, epochs durable, corruption
// refused, write failures change nothing).
#include "producer_state.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <limits>
#include <set>

#include "ferry/core/clock.h"
#include "ferry/core/crc32c.h"
#include "ferry/core/endian.h"
#include "ferry/core/errc.h"
#include "ferry/storage/log.h"
#include "ferry/storage/mem_env.h"

namespace ferry::broker {
namespace {

using verdict = partition_producers::verdict;
constexpr std::int64_t kNow = 1'700'000'000'000;

std::vector<std::byte> idem_batch(std::int64_t pid, std::int16_t epoch, std::int32_t seq,
                                  int records, const std::string& tag = "v",
                                  std::size_t value_size = 8) {
  format::batch_builder b;
  for (int i = 0; i < records; ++i) {
    std::string v = tag + std::to_string(i);
    v.resize(std::max(v.size(), value_size), '.');
    b.add(timestamp_ms(kNow), "k", v);
  }
  return b.finish({producer_id(pid), producer_epoch(epoch), sequence_number(seq)});
}

format::batch_header header(std::int64_t pid, std::int16_t epoch, std::int32_t seq, int records) {
  auto bytes = idem_batch(pid, epoch, seq, records);
  return format::batch_header::decode(bytes.data());
}

// --- partition_producers ---------------------------------------------------

TEST(PartitionProducers, NoStateAcceptsAnySequence) {
  partition_producers pp;
  EXPECT_EQ(pp.check(header(1, 0, 0, 3)).v, verdict::append);
  EXPECT_EQ(pp.check(header(1, 0, 12345, 3)).v, verdict::append);  // state may have expired
}

TEST(PartitionProducers, DuplicateWithinTheWindowGetsTheOriginalOffset) {
  partition_producers pp;
  // Six batches of 2 records: sequences 0-1, 2-3, ..., 10-11 at offsets 100, 102, ...
  for (int i = 0; i < 6; ++i) {
    auto h = header(7, 0, 2 * i, 2);
    ASSERT_EQ(pp.check(h).v, verdict::append) << i;
    pp.appended(h, 100 + 2 * i, kNow);
  }
  ASSERT_NE(pp.find(producer_id(7)), nullptr);
  EXPECT_EQ(pp.find(producer_id(7))->batches.size(), kProducerWindow);
  for (int i = 1; i < 6; ++i) {
    auto d = pp.check(header(7, 0, 2 * i, 2));
    EXPECT_EQ(d.v, verdict::duplicate) << i;
    EXPECT_EQ(d.base_offset, 100 + 2 * i) << i;
  }
  // The first batch fell out of the window of 5: no longer recognised.
  auto old = pp.check(header(7, 0, 0, 2));
  EXPECT_EQ(old.v, verdict::out_of_order);
  EXPECT_NE(old.message.find("expected sequence 12"), std::string::npos) << old.message;
  // Same base sequence, other length: not the batch that was stored.
  EXPECT_EQ(pp.check(header(7, 0, 10, 3)).v, verdict::out_of_order);
  // The next one is new.
  EXPECT_EQ(pp.check(header(7, 0, 12, 1)).v, verdict::append);
}

TEST(PartitionProducers, AGapIsOutOfOrderAndSaysWhatWasExpected) {
  partition_producers pp;
  auto h = header(3, 0, 0, 5);
  pp.appended(h, 0, kNow);
  auto d = pp.check(header(3, 0, 6, 1));
  EXPECT_EQ(d.v, verdict::out_of_order);
  EXPECT_NE(d.message.find("expected sequence 5, got 6..6"), std::string::npos) << d.message;
  EXPECT_EQ(pp.check(header(3, 0, 5, 1)).v, verdict::append);
}

TEST(PartitionProducers, OlderEpochIsFencedAndANewEpochStartsAtZero) {
  partition_producers pp;
  pp.appended(header(9, 2, 0, 4), 0, kNow);
  EXPECT_EQ(pp.check(header(9, 1, 4, 1)).v, verdict::fenced);
  auto d = pp.check(header(9, 3, 4, 1));
  EXPECT_EQ(d.v, verdict::out_of_order);
  EXPECT_NE(d.message.find("must start at sequence 0"), std::string::npos) << d.message;
  auto h = header(9, 3, 0, 2);
  ASSERT_EQ(pp.check(h).v, verdict::append);
  pp.appended(h, 4, kNow);
  // The new epoch's window replaced the old one.
  EXPECT_EQ(pp.find(producer_id(9))->epoch, 3);
  EXPECT_EQ(pp.find(producer_id(9))->batches.size(), 1u);
  EXPECT_EQ(pp.check(header(9, 2, 0, 4)).v, verdict::fenced);
  EXPECT_EQ(pp.check(header(9, 3, 0, 2)).v, verdict::duplicate);
}

TEST(PartitionProducers, SequenceNumbersWrapAtInt32Max) {
  constexpr std::int32_t max = std::numeric_limits<std::int32_t>::max();
  EXPECT_EQ(next_sequence(max), 0);
  EXPECT_EQ(next_sequence(max - 1, 3), 1);
  partition_producers pp;
  auto h = header(4, 0, max - 1, 3);  // sequences max-1, max, 0
  pp.appended(h, 50, kNow);
  EXPECT_EQ(pp.find(producer_id(4))->batches.back().last_seq, 0);
  EXPECT_EQ(pp.check(header(4, 0, max - 1, 3)).v, verdict::duplicate);
  EXPECT_EQ(pp.check(header(4, 0, 1, 2)).v, verdict::append);
  EXPECT_EQ(pp.check(header(4, 0, 0, 1)).v, verdict::out_of_order);
}

TEST(PartitionProducers, StateExpiresAfterItsMaxAge) {
  partition_producers pp;
  pp.appended(header(1, 0, 0, 1), 0, kNow);
  pp.appended(header(2, 0, 0, 1), 1, kNow + 5000);
  EXPECT_EQ(pp.expire(kNow + 5000, 4000), 1u);
  EXPECT_EQ(pp.find(producer_id(1)), nullptr);
  EXPECT_NE(pp.find(producer_id(2)), nullptr);
  EXPECT_EQ(pp.expire(kNow + 5000, 4000), 0u);
}

// --- recovery from the log tail ---------------------------------------------

class ProducerRecovery : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.create_dirs("/data"));
    ASSERT_TRUE(env_.sync_dir("/"));
  }
  std::unique_ptr<storage::partition_log> open(std::uint64_t segment_bytes = 1 << 20) {
    storage::log_config c;
    c.name = "t-0";
    c.segment_bytes = segment_bytes;
    c.retention_time = std::chrono::milliseconds(-1);
    auto r = storage::partition_log::open(env_, kDir, c, clock_);
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? std::move(r).value() : nullptr;
  }
  std::int64_t append(storage::partition_log& log, std::vector<std::byte> b) {
    auto r = log.append(b);
    EXPECT_TRUE(r);
    return r ? r.value().base_offset.value() : -1;
  }
  const std::filesystem::path kDir = "/data/t-0";
  storage::mem_env env_;
  manual_clock clock_;
};

TEST_F(ProducerRecovery, RebuildsTheWindowFromTheLog) {
  std::vector<std::int64_t> bases;
  {
    auto log = open();
    for (int i = 0; i < 7; ++i) bases.push_back(append(*log, idem_batch(5, 1, 3 * i, 3)));
    append(*log, idem_batch(-1, -1, -1, 2));  // not idempotent: ignored
    append(*log, idem_batch(6, 0, 0, 1));
    ASSERT_TRUE(log->sync());
  }
  auto log = open();
  partition_producers pp;
  auto scan = pp.rebuild(env_, kDir, *log, kNow);
  ASSERT_TRUE(scan) << scan.error().message();
  EXPECT_EQ(scan.value().batches, 9u);
  EXPECT_EQ(pp.size(), 2u);
  EXPECT_EQ(pp.max_producer_id(), 6);
  for (int i = 2; i < 7; ++i) {
    auto d = pp.check(header(5, 1, 3 * i, 3));
    EXPECT_EQ(d.v, verdict::duplicate) << i;
    EXPECT_EQ(d.base_offset, bases[static_cast<std::size_t>(i)]);
  }
  EXPECT_EQ(pp.check(header(5, 1, 21, 1)).v, verdict::append);
  EXPECT_EQ(pp.check(header(5, 0, 21, 1)).v, verdict::fenced);
  EXPECT_EQ(pp.check(header(6, 0, 0, 1)).v, verdict::duplicate);
}

TEST_F(ProducerRecovery, ATornTailIsNotRemembered) {
  std::int64_t last_durable = -1;
  {
    auto log = open();
    append(*log, idem_batch(5, 0, 0, 2));
    last_durable = append(*log, idem_batch(5, 0, 2, 2));
    ASSERT_TRUE(log->sync());
  }
  // A torn write: the next batch reached the disk only in part.
  env_.crash();
  const auto torn = idem_batch(5, 0, 4, 2, "lost", 200);
  env_.corrupt(
      kDir / storage::segment_file_name(offset(0), ".log"),
      [&](std::vector<std::byte>& b) { b.insert(b.end(), torn.begin(), torn.begin() + 100); });
  auto log = open();
  ASSERT_EQ(log->log_end_offset(), offset(4));  // the torn batch was cut
  partition_producers pp;
  ASSERT_TRUE(pp.rebuild(env_, kDir, *log, kNow));
  auto d = pp.check(header(5, 0, 2, 2));
  EXPECT_EQ(d.v, verdict::duplicate);
  EXPECT_EQ(d.base_offset, last_durable);
  // The torn batch's retry is stored again: it never was.
  EXPECT_EQ(pp.check(header(5, 0, 4, 2)).v, verdict::append);
}

TEST_F(ProducerRecovery, ScansOnlyTheNewestSegmentsItNeeds) {
  {
    auto log = open(/*segment_bytes=*/4096);
    append(*log, idem_batch(1, 0, 0, 1));  // producer 1 writes only at the start
    for (int i = 0; i < 60; ++i) append(*log, idem_batch(2, 0, i, 1, "x", 400));
    ASSERT_TRUE(log->sync());
    ASSERT_GE(log->stats().segments, 5u);
  }
  auto log = open(4096);
  partition_producers pp;
  auto scan = pp.rebuild(env_, kDir, *log, kNow, /*min_bytes=*/8192);
  ASSERT_TRUE(scan);
  EXPECT_GT(scan.value().from_offset, 0);
  EXPECT_LT(scan.value().bytes, 3u * 4096);
  EXPECT_EQ(pp.find(producer_id(1)), nullptr) << "beyond the scan bound: no state";
  EXPECT_EQ(pp.check(header(2, 0, 59, 1)).v, verdict::duplicate);
  // With a bound above the log size, everything is read.
  partition_producers all;
  auto full = all.rebuild(env_, kDir, *log, kNow, 1 << 20);
  ASSERT_TRUE(full);
  EXPECT_EQ(full.value().from_offset, 0);
  EXPECT_NE(all.find(producer_id(1)), nullptr);
}

// --- producer_registry -------------------------------------------------------

class Registry : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.create_dirs("/data"));
    ASSERT_TRUE(env_.sync_dir("/"));
  }
  std::unique_ptr<producer_registry> open() {
    why_.clear();
    auto r = producer_registry::open(env_, kFile, &why_);
    EXPECT_TRUE(r) << why_;
    return r ? std::move(r).value() : nullptr;
  }
  const std::filesystem::path kFile = "/data/producers";
  storage::mem_env env_;
  std::string why_;
};

TEST_F(Registry, IdsAreNeverHandedOutTwiceAcrossRestartsAndCrashes) {
  std::set<std::int64_t> seen;
  for (int run = 0; run < 3; ++run) {
    auto reg = open();
    for (int i = 0; i < 5; ++i) {
      auto g = reg->init(std::nullopt);
      ASSERT_TRUE(g);
      EXPECT_EQ(g.value().epoch, producer_epoch(0));
      EXPECT_TRUE(seen.insert(g.value().id.value()).second) << "id reused: " << g.value().id;
    }
    env_.crash();  // whatever was not synced is gone
  }
}

TEST_F(Registry, ANameKeepsItsIdAndItsEpochGrowsDurably) {
  producer_id id{-1};
  {
    auto reg = open();
    auto a = reg->init(std::string_view("orders-writer"));
    ASSERT_TRUE(a);
    EXPECT_EQ(a.value().epoch, producer_epoch(0));
    id = a.value().id;
    auto b = reg->init(std::string_view("orders-writer"));
    ASSERT_TRUE(b);
    EXPECT_EQ(b.value().id, id);
    EXPECT_EQ(b.value().epoch, producer_epoch(1));
    std::string why;
    EXPECT_EQ(reg->check(id, producer_epoch(0), &why), producer_registry::standing::fenced);
    EXPECT_NE(why.find("fenced"), std::string::npos);
    EXPECT_EQ(reg->check(id, producer_epoch(1), &why), producer_registry::standing::current);
    EXPECT_EQ(reg->check(id, producer_epoch(2), &why), producer_registry::standing::invalid);
    auto other = reg->init(std::string_view("\x01\xff binary name"));
    ASSERT_TRUE(other);
    EXPECT_NE(other.value().id, id);
  }
  env_.crash();
  auto reg = open();
  EXPECT_EQ(reg->named(), 2u);
  std::string why;
  EXPECT_EQ(reg->check(id, producer_epoch(0), &why), producer_registry::standing::fenced)
      << "a fenced epoch must stay fenced after a restart";
  auto c = reg->init(std::string_view("orders-writer"));
  ASSERT_TRUE(c);
  EXPECT_EQ(c.value().id, id);
  EXPECT_EQ(c.value().epoch, producer_epoch(2));
  auto d = reg->init(std::string_view("\x01\xff binary name"));
  ASSERT_TRUE(d);
  EXPECT_EQ(d.value().epoch, producer_epoch(1));
}

TEST_F(Registry, UnknownIdsAndEpochsAreInvalid) {
  auto reg = open();
  auto g = reg->init(std::nullopt);
  ASSERT_TRUE(g);
  std::string why;
  EXPECT_EQ(reg->check(g.value().id, producer_epoch(0), &why),
            producer_registry::standing::current);
  EXPECT_EQ(reg->check(g.value().id, producer_epoch(1), &why),
            producer_registry::standing::invalid);
  EXPECT_EQ(reg->check(producer_id(reg->next_id()), producer_epoch(0), &why),
            producer_registry::standing::invalid);
  EXPECT_NE(why.find("never handed out"), std::string::npos) << why;
}

TEST_F(Registry, IdsFoundInTheLogsAreTakenEvenWithoutTheFile) {
  auto reg = open();
  reg->observe(producer_id(41));
  auto g = reg->init(std::nullopt);
  ASSERT_TRUE(g);
  EXPECT_EQ(g.value().id, producer_id(42));
  std::string why;
  EXPECT_EQ(reg->check(producer_id(41), producer_epoch(0), &why),
            producer_registry::standing::current);
}

TEST_F(Registry, ANameThatRunsOutOfEpochsMovesToANewIdAndTheOldOneIsFenced) {
  // A file as the broker writes it, with the epoch at its maximum.
  {
    auto reg = open();
    ASSERT_TRUE(reg->init(std::string_view("n")));
  }
  auto text = env_.contents(kFile).value();
  std::string s(reinterpret_cast<const char*>(text.data()), text.size());
  const auto at = s.find("name 0 0 6e\n");
  ASSERT_NE(at, std::string::npos) << s;
  s = s.substr(0, at) + "name 0 32767 6e\n";
  s += fmt::format("crc32c {:08x}\n", crc32c::value(s.data(), s.size()));
  env_.corrupt(kFile, [&](std::vector<std::byte>& b) {
    b.assign(reinterpret_cast<const std::byte*>(s.data()),
             reinterpret_cast<const std::byte*>(s.data()) + s.size());
  });
  auto reg = open();
  auto g = reg->init(std::string_view("n"));
  ASSERT_TRUE(g);
  EXPECT_NE(g.value().id, producer_id(0));
  EXPECT_EQ(g.value().epoch, producer_epoch(0));
  std::string why;
  EXPECT_EQ(reg->check(producer_id(0), producer_epoch(32767), &why),
            producer_registry::standing::fenced);
}

TEST_F(Registry, ACorruptFileRefusesTheStart) {
  {
    auto reg = open();
    ASSERT_TRUE(reg->init(std::string_view("a")));
    ASSERT_TRUE(reg->init(std::nullopt));
  }
  const auto good = env_.contents(kFile).value();
  // Every single bit flip is detected.
  for (std::size_t i = 0; i < good.size() * 8; ++i) {
    env_.corrupt(kFile, [&](std::vector<std::byte>& b) {
      b = good;
      b[i / 8] ^= std::byte(1u << (i % 8));
    });
    std::string why;
    auto r = producer_registry::open(env_, kFile, &why);
    ASSERT_FALSE(r) << "bit " << i << " flipped and not detected";
    EXPECT_EQ(r.error(), ferry::errc::corrupt_data);
    EXPECT_NE(why.find("Refusing to start"), std::string::npos) << why;
  }
  for (std::size_t cut : {std::size_t{0}, std::size_t{5}, good.size() - 1}) {
    env_.corrupt(kFile, [&](std::vector<std::byte>& b) {
      b.assign(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut));
    });
    std::string why;
    EXPECT_FALSE(producer_registry::open(env_, kFile, &why)) << "truncated to " << cut;
  }
}

TEST_F(Registry, AFailedWriteChangesNothing) {
  auto reg = open();
  auto a = reg->init(std::string_view("a"));
  ASSERT_TRUE(a);
  env_.fail_syncs(std::make_error_code(std::errc::io_error), "producers");
  EXPECT_FALSE(reg->init(std::string_view("a")));
  EXPECT_FALSE(reg->init(std::string_view("b")));
  std::string why;
  EXPECT_EQ(reg->check(a.value().id, producer_epoch(0), &why), producer_registry::standing::current)
      << "an epoch bump that is not durable must not fence anyone";
  EXPECT_EQ(reg->named(), 1u);
  env_.clear_faults();
  auto b = reg->init(std::string_view("a"));
  ASSERT_TRUE(b);
  EXPECT_EQ(b.value().epoch, producer_epoch(1));
}

TEST_F(Registry, AnonymousIdsSyncOncePerBlock) {
  auto reg = open();
  ASSERT_TRUE(reg->init(std::nullopt));  // reserves the first block
  env_.fail_syncs(std::make_error_code(std::errc::io_error), "producers");
  for (std::int64_t i = 1; i < kProducerIdBlock; ++i) ASSERT_TRUE(reg->init(std::nullopt)) << i;
  EXPECT_FALSE(reg->init(std::nullopt)) << "the next block must be durable first";
}

}  // namespace
}  // namespace ferry::broker
