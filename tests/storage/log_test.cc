#include "ferry/storage/log.h"

#include <gtest/gtest.h>

#include "ferry/storage/errc.h"
#include "test_util.h"

namespace ferry::storage {
namespace {

using namespace std::chrono_literals;
using testing::kDir;
using testing::make_batch;
using testing::read_all;
using testing::small_config;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.create_dirs("/data"));
    ASSERT_TRUE(env_.sync_dir("/"));
  }
  std::unique_ptr<partition_log> open(log_config c = small_config()) {
    auto r = partition_log::open(env_, kDir, c, clock_);
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? std::move(r).value() : nullptr;
  }
  // Appends `n` single-record batches numbered from `first`, then syncs.
  void fill(partition_log& log, int batches, int per_batch = 1, std::size_t value_size = 0) {
    for (int i = 0; i < batches; ++i) {
      auto first = static_cast<int>(log.log_end_offset().value());
      auto b = make_batch(per_batch, first, clock_.wall_now(), value_size);
      ASSERT_TRUE(log.append(b));
    }
    ASSERT_TRUE(log.sync());
  }
  mem_env env_;
  manual_clock clock_;
};

TEST_F(LogTest, NewLogStartsEmptyAtOffsetZero) {
  auto log = open();
  EXPECT_EQ(log->log_start_offset(), offset(0));
  EXPECT_EQ(log->log_end_offset(), offset(0));
  EXPECT_EQ(log->high_watermark(), offset(0));
  EXPECT_TRUE(env_.exists(kDir / "00000000000000000000.log").value());
  auto r = log->read(offset(0), 1024);
  ASSERT_TRUE(r);
  EXPECT_EQ(r.value().batches, 0);
}

TEST_F(LogTest, AppendStampsDenseOffsets) {
  auto log = open();
  auto a = make_batch(3);
  auto b = make_batch(2);
  auto ra = log->append(a);
  auto rb = log->append(b);
  ASSERT_TRUE(ra && rb);
  EXPECT_EQ(ra.value().base_offset, offset(0));
  EXPECT_EQ(ra.value().last_offset, offset(2));
  EXPECT_EQ(rb.value().base_offset, offset(3));
  EXPECT_EQ(log->log_end_offset(), offset(5));
}

TEST_F(LogTest, UnsyncedBatchesAreNeitherVisibleNorCommitted) {
  auto log = open();
  auto b = make_batch(3);
  ASSERT_TRUE(log->append(b));
  EXPECT_EQ(log->high_watermark(), offset(0));
  EXPECT_EQ(log->read(offset(0), 1 << 20).value().batches, 0);
  auto hw = log->sync();
  ASSERT_TRUE(hw);
  EXPECT_EQ(hw.value(), offset(3));
  EXPECT_EQ(log->read(offset(0), 1 << 20).value().batches, 1);
}

TEST_F(LogTest, GroupCommitSharesOneSyncAcrossBatches) {
  auto c = small_config();
  c.segment_bytes = 1 << 20;
  auto log = open(c);
  auto before = env_.sync_count();
  for (int i = 0; i < 50; ++i) {
    auto b = make_batch(2, 2 * i);
    ASSERT_TRUE(log->append(b));
  }
  ASSERT_TRUE(log->sync());
  EXPECT_EQ(log->stats().syncs, 1u);
  EXPECT_LE(env_.sync_count() - before, 2u);  // the file, at most the directory once
  EXPECT_EQ(log->high_watermark(), offset(100));
  // A sync with nothing new does no I/O.
  auto mid = env_.sync_count();
  ASSERT_TRUE(log->sync());
  EXPECT_EQ(env_.sync_count(), mid);
}

TEST_F(LogTest, ReadReturnsStoredBytesUnchanged) {
  auto log = open();
  auto b = make_batch(4);
  ASSERT_TRUE(log->append(b));  // b now carries the stamped base offset
  ASSERT_TRUE(log->sync());
  auto r = log->read(offset(0), 1 << 20).value();
  EXPECT_EQ(r.data, b);
  EXPECT_EQ(r.next_offset, offset(4));
}

TEST_F(LogTest, ReadFromTheMiddleOfABatchStartsWithThatBatch) {
  auto log = open();
  fill(*log, 3, 5);  // offsets 0..14 in batches of 5
  auto r = log->read(offset(7), 1 << 20).value();
  EXPECT_EQ(batch_header::decode(r.data.data()).base_offset, offset(5));
  auto all = read_all(*log, offset(7));
  ASSERT_EQ(all.size(), 8u);
  EXPECT_EQ(all.front().first, 7);
  EXPECT_EQ(all.front().second, "v7");
}

TEST_F(LogTest, ReadHonoursMaxBytesButAlwaysReturnsOneBatch) {
  auto log = open();
  fill(*log, 10, 1, 100);
  auto one = log->read(offset(0), 1).value();
  EXPECT_EQ(one.batches, 1);
  auto h = batch_header::decode(one.data.data());
  auto three = log->read(offset(0), 3 * static_cast<std::size_t>(h.size()) + 10).value();
  EXPECT_EQ(three.batches, 3);
  EXPECT_EQ(three.next_offset, offset(3));
}

TEST_F(LogTest, ReadOutsideTheLogIsOutOfRange) {
  auto log = open();
  fill(*log, 2);
  EXPECT_EQ(log->read(offset(3), 100).error(), errc::offset_out_of_range);
  EXPECT_EQ(log->read(offset(-1), 100).error(), errc::offset_out_of_range);
  EXPECT_EQ(log->read(offset(2), 100).value().batches, 0);  // == high watermark: nothing yet
}

TEST_F(LogTest, RefusesInvalidAndOversizedBatches) {
  auto c = small_config();
  c.max_batch_bytes = 200;
  auto log = open(c);
  auto big = make_batch(1, 0, timestamp_ms(1), 500);
  EXPECT_EQ(log->append(big).error(), errc::batch_too_large);
  auto bad = make_batch(2);
  bad[bad.size() - 1] ^= std::byte{1};
  EXPECT_EQ(log->append(bad).error(), errc::invalid_batch);
  std::vector<std::byte> tiny(10);
  EXPECT_EQ(log->append(tiny).error(), errc::invalid_batch);
  EXPECT_EQ(log->log_end_offset(), offset(0));
  EXPECT_FALSE(log->failed()) << "bad input must not hurt the partition";
  fill(*log, 1);
  EXPECT_EQ(log->high_watermark(), offset(1));
}

TEST_F(LogTest, RollsBySizeAndNamesSegmentsByBaseOffset) {
  auto log = open();  // 4 KiB segments
  fill(*log, 40, 1, 300);
  auto st = log->stats();
  EXPECT_GT(st.segments, 3u);
  auto names = env_.list_dir(kDir).value();
  std::sort(names.begin(), names.end());
  int logs = 0;
  for (const auto& n : names) logs += n.ends_with(".log");
  EXPECT_EQ(static_cast<std::size_t>(logs), st.segments);
  // Every sealed segment has both index files; the active one has none.
  EXPECT_TRUE(std::count_if(names.begin(), names.end(), [](auto& n) {
                return n.ends_with(".timeindex");
              }) == static_cast<long>(st.segments - 1));
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(all[static_cast<std::size_t>(i)].first, i);
}

TEST_F(LogTest, RollsByAge) {
  auto c = small_config();
  c.segment_bytes = 1 << 20;
  c.segment_age = 1h;
  auto log = open(c);
  fill(*log, 3);
  EXPECT_EQ(log->stats().segments, 1u);
  clock_.advance(61min);
  fill(*log, 1);
  EXPECT_EQ(log->stats().segments, 2u);
  EXPECT_TRUE(env_.exists(kDir / "00000000000000000003.log").value());
}

TEST_F(LogTest, IndexLookupFindsEveryOffsetAcrossSegments) {
  auto log = open();
  fill(*log, 60, 3, 40);  // many index entries and segments
  for (std::int64_t o = 0; o < 180; o += 7) {
    auto r = log->read(offset(o), 1);
    ASSERT_TRUE(r) << o;
    auto h = batch_header::decode(r.value().data.data());
    EXPECT_LE(h.base_offset, offset(o));
    EXPECT_GT(h.next_offset(), offset(o));
  }
}

TEST_F(LogTest, TimestampLookupFindsEarliestOffsetAtOrAfter) {
  auto c = small_config();
  auto log = open(c);
  // Batch i holds records with timestamps 10000 + 100*i + {0,1,2}.
  for (int i = 0; i < 50; ++i) {
    auto b = make_batch(3, i * 3, timestamp_ms(10000 + 100 * i), 30);
    ASSERT_TRUE(log->append(b));
  }
  ASSERT_TRUE(log->sync());
  ASSERT_GT(log->stats().segments, 1u);
  EXPECT_EQ(log->offset_for_timestamp(timestamp_ms(0)).value(), offset(0));
  EXPECT_EQ(log->offset_for_timestamp(timestamp_ms(10000)).value(), offset(0));
  EXPECT_EQ(log->offset_for_timestamp(timestamp_ms(10001)).value(), offset(1));
  EXPECT_EQ(log->offset_for_timestamp(timestamp_ms(10003)).value(), offset(3));
  EXPECT_EQ(log->offset_for_timestamp(timestamp_ms(12502)).value(), offset(77));
  EXPECT_EQ(log->offset_for_timestamp(timestamp_ms(14902)).value(), offset(149));
  EXPECT_FALSE(log->offset_for_timestamp(timestamp_ms(14903)).value().has_value());
}

TEST_F(LogTest, TimestampLookupHandlesOutOfOrderTimestamps) {
  auto log = open();
  batch_builder b;
  b.add(timestamp_ms(500), "a", "x");
  b.add(timestamp_ms(100), "b", "x");
  b.add(timestamp_ms(700), "c", "x");
  auto bytes = b.finish();
  ASSERT_TRUE(log->append(bytes));
  ASSERT_TRUE(log->sync());
  EXPECT_EQ(log->offset_for_timestamp(timestamp_ms(600)).value(), offset(2));
  EXPECT_EQ(log->offset_for_timestamp(timestamp_ms(100)).value(), offset(0));
}

TEST_F(LogTest, RetentionByBytesDeletesWholeOldestSegments) {
  auto c = small_config();
  c.retention_bytes = 3 * 4096;
  auto log = open(c);
  fill(*log, 80, 1, 300);
  auto before = log->stats();
  auto r = log->apply_retention();
  ASSERT_TRUE(r);
  auto after = log->stats();
  EXPECT_GT(r.value().segments_deleted, 0u);
  EXPECT_LE(after.size_bytes, static_cast<std::uint64_t>(c.retention_bytes) + 4096);
  EXPECT_EQ(after.log_start, r.value().new_log_start);
  EXPECT_GT(after.log_start, before.log_start);
  EXPECT_EQ(log->read(offset(0), 100).error(), errc::offset_out_of_range);
  auto all = read_all(*log);
  EXPECT_EQ(all.front().first, after.log_start.value());
  EXPECT_EQ(all.back().first, 79);
  // Files are renamed at once and unlinked later, off the append path.
  auto names = env_.list_dir(kDir).value();
  EXPECT_TRUE(
      std::any_of(names.begin(), names.end(), [](auto& n) { return n.ends_with(".deleted"); }));
  EXPECT_EQ(log->remove_deleted().value(), r.value().segments_deleted * 3);
  names = env_.list_dir(kDir).value();
  EXPECT_FALSE(
      std::any_of(names.begin(), names.end(), [](auto& n) { return n.ends_with(".deleted"); }));
}

TEST_F(LogTest, RetentionByTimeUsesSegmentMaxTimestampAndKeepsActive) {
  auto c = small_config();
  c.retention_time = 1h;
  auto log = open(c);
  fill(*log, 40, 1, 300);  // timestamps = now
  auto segs = log->stats().segments;
  ASSERT_GT(segs, 2u);
  EXPECT_EQ(log->apply_retention().value().segments_deleted, 0u);
  clock_.advance(2h);
  auto r = log->apply_retention().value();
  EXPECT_EQ(r.segments_deleted, segs - 1) << "everything but the active segment expired";
  EXPECT_EQ(log->stats().segments, 1u);
  fill(*log, 1);
  EXPECT_EQ(read_all(*log).back().first, 40);
}

TEST_F(LogTest, DeletedSegmentsStayDeletedAfterReopen) {
  auto c = small_config();
  c.retention_bytes = 4096;
  {
    auto log = open(c);
    fill(*log, 40, 1, 300);
    ASSERT_TRUE(log->apply_retention());
  }
  auto log = open(c);
  EXPECT_GT(log->log_start_offset(), offset(0));
  auto names = env_.list_dir(kDir).value();
  EXPECT_FALSE(std::any_of(names.begin(), names.end(), [](auto& n) {
    return n.ends_with(".deleted");
  })) << "leftover *.deleted files are removed on open";
}

TEST_F(LogTest, ReopenKeepsEverythingAndContinuesOffsets) {
  {
    auto log = open();
    fill(*log, 30, 2, 100);
  }
  auto log = open();
  EXPECT_EQ(log->log_end_offset(), offset(60));
  EXPECT_EQ(log->high_watermark(), offset(60));
  fill(*log, 1);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 61u);
  EXPECT_EQ(all[60].first, 60);
}

TEST_F(LogTest, ReopenScansOnlyTheActiveSegment) {
  std::uint64_t total = 0;
  {
    auto log = open();
    fill(*log, 200, 1, 300);
    total = log->stats().size_bytes;
  }
  auto log = open();
  EXPECT_EQ(log->recovery().indexes_rebuilt, 0u);
  EXPECT_LE(log->recovery().bytes_scanned, 4096u + 400u);
  EXPECT_GT(total, 10 * log->recovery().bytes_scanned);
}

TEST_F(LogTest, TruncateToRemovesTheTailDurably) {
  auto log = open();
  fill(*log, 40, 2, 200);
  ASSERT_TRUE(log->truncate_to(offset(31)).error() == errc::invalid_batch)
      << "31 is inside a batch";
  ASSERT_TRUE(log->truncate_to(offset(30)));
  EXPECT_EQ(log->log_end_offset(), offset(30));
  EXPECT_EQ(log->high_watermark(), offset(30));
  fill(*log, 1);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 31u);
  EXPECT_EQ(all.back().first, 30);
  EXPECT_EQ(all.back().second, "v30");
  env_.crash();
  auto again = open();
  EXPECT_EQ(again->log_end_offset(), offset(31));
}

TEST_F(LogTest, IntervalFlushModeIsVisibleBeforeSyncAndSyncsOnTimer) {
  auto c = small_config();
  c.flush = flush_mode::interval;
  c.flush_interval = 500ms;
  auto log = open(c);
  auto b = make_batch(2);
  ASSERT_TRUE(log->append(b));
  EXPECT_EQ(log->high_watermark(), offset(2)) << "relaxed mode: visible when written";
  EXPECT_FALSE(log->sync_if_due().value());
  clock_.advance(600ms);
  EXPECT_TRUE(log->sync_if_due().value());
}

}  // namespace
}  // namespace ferry::storage
