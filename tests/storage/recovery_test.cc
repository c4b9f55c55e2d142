// Recovery, crash and fault-injection tests for partition_log: each test
// injects one fault from RELIABILITY.md and checks the invariant.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <sstream>

#include "ferry/core/endian.h"
#include "ferry/core/logging.h"
#include "ferry/storage/errc.h"
#include "ferry/storage/log.h"
#include "test_util.h"

namespace ferry::storage {
namespace {

using namespace std::chrono_literals;
using testing::kDir;
using testing::make_batch;
using testing::read_all;
using testing::small_config;

const fs::path kSeg0 = kDir / "00000000000000000000.log";

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.create_dirs("/data"));
    ASSERT_TRUE(env_.sync_dir("/"));
  }
  result<std::unique_ptr<partition_log>> try_open(log_config c = small_config()) {
    return partition_log::open(env_, kDir, c, clock_);
  }
  std::unique_ptr<partition_log> open(log_config c = small_config()) {
    auto r = try_open(c);
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? std::move(r).value() : nullptr;
  }
  // Appends `n` one-record batches and syncs after each: all acknowledged.
  void append_acked(partition_log& log, int n, std::size_t value_size = 50) {
    for (int i = 0; i < n; ++i) {
      auto b = make_batch(1, static_cast<int>(log.log_end_offset().value()), clock_.wall_now(),
                          value_size);
      ASSERT_TRUE(log.append(b));
      ASSERT_TRUE(log.sync());
    }
  }
  void append_unsynced(partition_log& log, int n, std::size_t value_size = 50) {
    for (int i = 0; i < n; ++i) {
      auto b = make_batch(1, static_cast<int>(log.log_end_offset().value()), clock_.wall_now(),
                          value_size);
      ASSERT_TRUE(log.append(b));
    }
  }
  static void expect_dense(const std::vector<std::pair<std::int64_t, std::string>>& recs,
                           std::int64_t n) {
    ASSERT_EQ(static_cast<std::int64_t>(recs.size()), n);
    for (std::int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(recs[static_cast<std::size_t>(i)].first, i);
      EXPECT_EQ(recs[static_cast<std::size_t>(i)].second.substr(0, std::to_string(i).size() + 1),
                "v" + std::to_string(i));
    }
  }
  mem_env env_;
  manual_clock clock_;
};

// --- power loss -------------------------------------------------------------

TEST_F(RecoveryTest, AcknowledgedRecordsSurvivePowerLoss) {
  {
    auto log = open();
    // All 35 in one segment (a roll would sync the unsynced ones).
    append_acked(*log, 30, 40);
    append_unsynced(*log, 5, 40);
  }
  env_.crash();
  auto log = open();
  EXPECT_EQ(log->log_end_offset(), offset(30));
  expect_dense(read_all(*log), 30);
}

TEST_F(RecoveryTest, ControlWithoutSyncLosesData) {
  // Proves the crash simulation bites: the same workload without syncs loses
  // records. If this ever passes with no loss, the tests above prove nothing.
  {
    auto log = open();
    append_unsynced(*log, 30);
  }
  env_.crash();
  auto log = open();
  EXPECT_LT(log->log_end_offset(), offset(30));
}

TEST_F(RecoveryTest, RelaxedIntervalModeCanLoseAcknowledgedRecords) {
  auto c = small_config();
  c.flush = flush_mode::interval;
  {
    auto log = open(c);
    append_unsynced(*log, 10);
    EXPECT_EQ(log->high_watermark(), offset(10)) << "acknowledged before sync";
  }
  env_.crash();
  auto log = open(c);
  EXPECT_LT(log->log_end_offset(), offset(10)) << "the documented cost of flush_mode::interval";
}

TEST_F(RecoveryTest, PowerLossAcrossSegmentRollsKeepsAckedRecords) {
  for (std::uint64_t seed = 0; seed < 30; ++seed) {
    mem_env e;
    ASSERT_TRUE(e.create_dirs("/data"));
    ASSERT_TRUE(e.sync_dir("/"));
    std::int64_t acked = 0;
    {
      auto log = partition_log::open(e, kDir, small_config(), clock_).value();
      for (int i = 0; i < 60; ++i) {
        auto b = make_batch(1, i, clock_.wall_now(), 200);
        ASSERT_TRUE(log->append(b));
        if ((static_cast<std::uint64_t>(i) + seed) % 4 == 0) acked = log->sync().value().value();
      }
    }
    e.crash(static_cast<crash_mode>(seed % 3), seed);
    auto log = partition_log::open(e, kDir, small_config(), clock_);
    ASSERT_TRUE(log) << "seed " << seed << ": " << log.error().message();
    auto recs = read_all(*log.value());
    ASSERT_GE(static_cast<std::int64_t>(recs.size()), acked) << "seed " << seed;
    for (std::size_t i = 0; i < recs.size(); ++i)
      ASSERT_EQ(recs[i].first, static_cast<std::int64_t>(i));
  }
}

// --- torn tails ---------------------------------------------------------------

TEST_F(RecoveryTest, TruncatedTrailingBatchIsCutAtLastValidBatch) {
  std::uint64_t good_size = 0;
  {
    auto log = open();
    append_acked(*log, 5);
    good_size = env_.contents(kSeg0)->size();
    append_acked(*log, 1);
  }
  auto full = env_.contents(kSeg0)->size();
  for (std::uint64_t cut = good_size + 1; cut < full; cut += 7) {
    env_.corrupt(kSeg0, [&](auto& d) { d.resize(full); });
    auto saved = *env_.contents(kSeg0);
    env_.corrupt(kSeg0, [&](auto& d) { d.resize(cut); });
    auto log = open();
    EXPECT_EQ(log->log_end_offset(), offset(5)) << "cut at " << cut;
    EXPECT_EQ(log->recovery().truncated_bytes, cut - good_size);
    EXPECT_EQ(env_.contents(kSeg0)->size(), good_size);
    log.reset();
    env_.corrupt(kSeg0, [&](auto& d) { d = saved; });
  }
}

TEST_F(RecoveryTest, GarbageAppendedAfterLastBatchIsCut) {
  std::uint64_t good = 0;
  {
    auto log = open();
    append_acked(*log, 8);
    good = env_.contents(kSeg0)->size();
  }
  for (int variant = 0; variant < 4; ++variant) {
    env_.corrupt(kSeg0, [&](auto& d) {
      d.resize(good);
      const std::size_t sizes[] = {3, 56, 200, 4000};
      std::size_t n = sizes[static_cast<std::size_t>(variant)];
      for (std::size_t i = 0; i < n; ++i)
        d.push_back(static_cast<std::byte>(i * 31 + static_cast<std::size_t>(variant)));
    });
    auto log = open();
    EXPECT_EQ(log->log_end_offset(), offset(8)) << variant;
    EXPECT_EQ(env_.contents(kSeg0)->size(), good);
    expect_dense(read_all(*log), 8);
  }
}

TEST_F(RecoveryTest, ZeroFilledTailIsCut) {
  std::uint64_t good = 0;
  {
    auto log = open();
    append_acked(*log, 4);
    good = env_.contents(kSeg0)->size();
  }
  env_.corrupt(kSeg0, [&](auto& d) { d.resize(good + 300, std::byte{0}); });
  auto log = open();
  EXPECT_EQ(log->log_end_offset(), offset(4));
}

TEST_F(RecoveryTest, CorruptionFollowedByValidDataIsRefusedNotTruncated) {
  {
    auto log = open();
    append_acked(*log, 10);
  }
  // Flip one bit inside the third batch's records.
  auto data = *env_.contents(kSeg0);
  auto first_len = batch_header::decode(data.data()).size();
  std::size_t third = 2 * first_len;  // batches are the same size here
  env_.corrupt(kSeg0, [&](auto& d) { d[third + 60] ^= std::byte{0x10}; });
  auto r = try_open();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::corrupt_log);
  EXPECT_EQ(env_.contents(kSeg0)->size(), data.size()) << "nothing was cut";
  // The operator may choose to accept the loss.
  auto c = small_config();
  c.recovery = recovery_policy::truncate;
  auto log = open(c);
  EXPECT_EQ(log->log_end_offset(), offset(2));
}

// --- sealed segments and indexes -------------------------------------------------

class SealedTest : public RecoveryTest {
 protected:
  void SetUp() override {
    RecoveryTest::SetUp();
    auto log = open();
    append_acked(*log, 120, 200);  // 8 segments of 4 KiB
    segments_ = log->stats().segments;
    ASSERT_GT(segments_, 4u);
  }
  std::size_t segments_ = 0;
};

TEST_F(SealedTest, BitFlipInSealedSegmentIsDetectedOnReadAndNeverServed) {
  fs::path seg1;
  auto names = env_.list_dir(kDir).value();
  for (auto& n : names)
    if (n.ends_with(".log") && n != "00000000000000000000.log" &&
        (seg1.empty() || n < seg1.filename().string()))
      seg1 = kDir / n;
  auto base = std::stoll(seg1.filename().string());
  env_.corrupt(seg1, [](auto& d) { d[100] ^= std::byte{0x01}; });
  auto log = open();  // sealed segments are not scanned: opening is fine
  EXPECT_EQ(log->recovery().corrupt_segments, 0u);
  auto r = log->read(offset(base), 1 << 20);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::corrupt_log);
  // Reads before the damaged segment stop at it rather than skipping over.
  auto before = log->read(offset(0), 1 << 20);
  ASSERT_TRUE(before);
  EXPECT_LE(before.value().next_offset, offset(base));
  // Every bit of every batch served elsewhere passes its checksum.
  auto later = log->read(log->log_end_offset() - 1, 1 << 20);
  ASSERT_TRUE(later);
}

TEST_F(SealedTest, EveryBitFlipInASealedSegmentIsDetected) {
  const fs::path seg0 = kSeg0;
  auto original = *env_.contents(seg0);
  int detected = 0, trials = 0;
  for (std::size_t byte = 8; byte < original.size();
       byte += 13) {  // skip base_offset's 8 bytes? no: checked too
    env_.corrupt(seg0, [&](auto& d) {
      d = original;
      d[byte] ^= std::byte{0x04};
    });
    auto log = open();
    auto r = log->read(offset(0), 1 << 20);
    ++trials;
    // Either the read fails, or it stops before the damaged batch.
    if (!r) {
      ++detected;
    } else {
      std::uint64_t served = r.value().data.size();
      if (served <= byte) ++detected;
    }
  }
  EXPECT_EQ(detected, trials);
}

TEST_F(SealedTest, BaseOffsetFlipIsDetectedByOffsetContinuity) {
  auto data = *env_.contents(kSeg0);
  auto len = batch_header::decode(data.data()).size();
  env_.corrupt(kSeg0, [&](auto& d) { d[len + 0] ^= std::byte{0x02}; });  // 2nd batch's base_offset
  auto log = open();
  auto r = log->read(offset(0), 1 << 20);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.value().next_offset, offset(1))
      << "served the first batch, stopped at the damaged one";
  auto r2 = log->read(offset(1), 1 << 20);
  EXPECT_FALSE(r2);
}

TEST_F(SealedTest, MissingIndexIsRebuiltAndEqualsTheOriginal) {
  auto idx = kDir / "00000000000000000000.index";
  auto original = *env_.contents(idx);
  ASSERT_TRUE(env_.remove_file(idx));
  auto log = open();
  EXPECT_EQ(log->recovery().indexes_rebuilt, 1u);
  EXPECT_EQ(*env_.contents(idx), original);
  expect_dense(read_all(*log), 120);
}

// Damage is logged once, when found, with the partition and the offset
// asked for; a consumer retrying its fetch gets corrupt_log each time
// without a new error line each time.
TEST_F(SealedTest, CorruptionFoundByReadsIsLoggedOnce) {
  fs::path seg1;
  const auto names = env_.list_dir(kDir).value();
  for (const auto& n : names)
    if (n.ends_with(".log") && n != "00000000000000000000.log" &&
        (seg1.empty() || n < seg1.filename().string()))
      seg1 = kDir / n;
  const auto base = std::stoll(seg1.filename().string());
  env_.corrupt(seg1, [](auto& d) { d[100] ^= std::byte{0x01}; });
  auto log = open();

  std::ostringstream lines;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(lines);
  sink->set_pattern("%l %v");
  auto logger = ferry::log::get("storage");
  const auto saved = ferry::log::current_levels();
  ferry::log::set_level("off,storage=error");
  logger->sinks().push_back(sink);
  for (int i = 0; i < 3; ++i) {
    auto r = log->read(offset(base), 1 << 20);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::corrupt_log);
  }
  logger->sinks().pop_back();
  ferry::log::set_levels(saved);

  const std::string text = lines.str();
  std::size_t count = 0;
  for (auto at = text.find("corrupt batch in"); at != std::string::npos;
       at = text.find("corrupt batch in", at + 1))
    ++count;
  EXPECT_EQ(count, 1u) << text;
  EXPECT_NE(text.find("error partition " + small_config().name), std::string::npos) << text;
  EXPECT_NE(text.find("(reading from offset " + std::to_string(base) + ")"), std::string::npos)
      << text;
}

TEST_F(SealedTest, BitFlipInIndexEntriesIsDetectedAndRebuilt) {
  auto idx = kDir / "00000000000000000000.timeindex";
  auto original = *env_.contents(idx);
  ASSERT_GT(original.size(), 56u);
  for (std::size_t byte = 56; byte < original.size(); ++byte) {
    env_.corrupt(idx, [&](auto& d) {
      d = original;
      d[byte] ^= std::byte{0x80};
    });
    auto log = open();
    EXPECT_EQ(log->offset_for_timestamp(timestamp_ms(0)).value(),
              offset(0));  // forces the index load
    EXPECT_EQ(*env_.contents(idx), original) << "rebuilt after flip at " << byte;
  }
}

TEST_F(SealedTest, DamagedIndexHeaderIsRebuiltAtOpen) {
  auto idx = kDir / "00000000000000000000.index";
  auto original = *env_.contents(idx);
  env_.corrupt(idx, [](auto& d) { d[20] ^= std::byte{1}; });  // log_size
  auto log = open();
  EXPECT_EQ(log->recovery().indexes_rebuilt, 1u);
  EXPECT_EQ(*env_.contents(idx), original);
}

TEST_F(SealedTest, CorruptSealedSegmentFoundDuringRebuildIsReportedNotServed) {
  auto idx = kDir / "00000000000000000000.index";
  ASSERT_TRUE(env_.remove_file(idx));
  env_.corrupt(kSeg0,
               [](auto& d) { d[d.size() - 5] ^= std::byte{0x40}; });  // last batch of segment 0
  auto log = open();
  EXPECT_EQ(log->recovery().corrupt_segments, 1u);
  auto r = log->read(offset(0), 1 << 20);
  ASSERT_TRUE(r);
  auto n = r.value().next_offset;
  auto r2 = log->read(n, 1 << 20);
  ASSERT_FALSE(r2) << "the damaged batch is never served";
  EXPECT_EQ(r2.error(), errc::corrupt_log);
  // The rest of the log is still readable from the next segment.
  auto tail = log->read(log->log_end_offset() - 1, 1 << 20);
  EXPECT_TRUE(tail);
}

// --- I/O errors -----------------------------------------------------------------

TEST_F(RecoveryTest, FsyncErrorFailsStopAndNeverAcks) {
  auto log = open();
  append_acked(*log, 3);
  auto b = make_batch(1, 3);
  ASSERT_TRUE(log->append(b));
  env_.fail_next_syncs(1, std::make_error_code(std::errc::io_error), ".log");
  auto s = log->sync();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), errc::partition_failed);
  EXPECT_EQ(log->high_watermark(), offset(3)) << "nothing the failed sync covered is acknowledged";
  EXPECT_TRUE(log->failed());
  EXPECT_NE(log->failure_reason().find("orders-0"), std::string::npos) << log->failure_reason();
  EXPECT_NE(log->failure_reason().find("fdatasync"), std::string::npos) << log->failure_reason();
  // The fault is gone now, but a retry must not turn into an ack.
  EXPECT_EQ(log->sync().error(), errc::partition_failed);
  auto b2 = make_batch(1, 4);
  EXPECT_EQ(log->append(b2).error(), errc::partition_failed);
  EXPECT_EQ(log->high_watermark(), offset(3));
  // Reads of committed data still work.
  expect_dense(read_all(*log), 3);
  // Restarting recovers from what is on disk.
  log.reset();
  env_.crash();
  auto again = open();
  EXPECT_GE(again->log_end_offset(), offset(3));
}

TEST_F(RecoveryTest, DirectoryFsyncErrorAfterRollFailsStop) {
  auto log = open();
  env_.fail_syncs(std::make_error_code(std::errc::io_error), "/data/orders-0");
  // Directory syncs fail; file syncs too (the filter matches both) -> first sync fails.
  auto b = make_batch(1, 0);
  ASSERT_TRUE(log->append(b));
  EXPECT_FALSE(log->sync());
  EXPECT_TRUE(log->failed());
}

TEST_F(RecoveryTest, DiskFullRollsBackAndResumesWhenSpaceReturns) {
  auto log = open();
  append_acked(*log, 5);
  auto size = env_.contents(kSeg0)->size();
  env_.set_capacity(env_.total_bytes() + 20);  // room for less than one batch
  auto b = make_batch(1, 5, clock_.wall_now(), 50);
  auto r = log->append(b);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::no_space);
  EXPECT_FALSE(log->failed());
  EXPECT_EQ(env_.contents(kSeg0)->size(), size) << "no partial batch is left in the file";
  EXPECT_EQ(log->log_end_offset(), offset(5));
  env_.clear_faults();
  append_acked(*log, 2);
  expect_dense(read_all(*log), 7);
  log.reset();
  env_.crash();
  expect_dense(read_all(*open()), 7);
}

// A producer retrying into a full disk must not flood the log: one line per
// interval, and the next one says how many appends it stands for.
TEST_F(RecoveryTest, DiskFullIsLoggedOncePerIntervalNotPerAppend) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  auto logger = ferry::log::get("storage");
  logger->sinks().push_back(sink);
  auto log = open();
  append_acked(*log, 1);
  env_.set_capacity(env_.total_bytes() + 20);
  for (int i = 0; i < 200; ++i) {
    auto b = make_batch(1, 1, clock_.wall_now(), 50);
    ASSERT_FALSE(log->append(b));
  }
  logger->sinks().pop_back();
  int lines = 0;
  for (const auto& l : sink->last_formatted())
    if (l.find("disk full appending") != std::string::npos) ++lines;
  EXPECT_EQ(lines, 1) << "200 refused appends";
}

TEST_F(RecoveryTest, ShortWriteWithIoErrorFailsStop) {
  auto log = open();
  append_acked(*log, 2);
  env_.short_write_next(10);
  auto b = make_batch(1, 2);
  auto r = log->append(b);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::partition_failed);
  EXPECT_TRUE(log->failed());
  log.reset();
  env_.crash();
  auto again = open();
  EXPECT_EQ(again->log_end_offset(), offset(2));
  expect_dense(read_all(*again), 2);
}

}  // namespace
}  // namespace ferry::storage
