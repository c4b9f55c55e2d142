// The index of parked fetches (framework/broker/fetch_waiters.h): a commit
// wakes only the fetches waiting on that partition below the new high
// watermark, and only once they have min_bytes.
#include "fetch_waiters.h"

#include <gtest/gtest.h>

#include "topic_table.h"

namespace ferry::broker {
namespace {

using sclock = std::chrono::steady_clock;
const auto t0 = sclock::time_point{} + std::chrono::hours(1);

std::unique_ptr<fetch_waiter> waiter(std::int64_t min_bytes = 1,
                                     sclock::time_point deadline = t0 + std::chrono::seconds(30),
                                     bool member = false) {
  auto w = std::make_unique<fetch_waiter>();
  w->min_bytes = min_bytes;
  w->deadline = deadline;
  w->member = member;
  return w;
}

fetch_attempt at(std::vector<std::pair<partition*, std::int64_t>> positions,
                 std::int64_t bytes = 0) {
  fetch_attempt a;
  a.positions = std::move(positions);
  a.bytes = bytes;
  return a;
}

TEST(FetchWaiters, ACommitWakesOnlyTheWaitersOfItsPartition) {
  partition p0, p1;
  waiter_board board;
  auto* on_p0 = waiter().release();
  board.park(std::unique_ptr<fetch_waiter>(on_p0), at({{&p0, 10}}));
  for (int i = 0; i < 1000; ++i) board.park(waiter(), at({{&p1, 7}}));  // idle consumers elsewhere
  EXPECT_EQ(board.size(), 1001u);
  EXPECT_EQ(p0.waiters.size(), 1u);
  EXPECT_EQ(p1.waiters.size(), 1000u);

  // Data on p1 below the offset they wait past: nobody moves.
  board.on_commit(p1, 7, 100);
  EXPECT_FALSE(board.has_ready());
  // p0 grows past 10: its one waiter, and only it.
  board.on_commit(p0, 11, 100);
  auto due = board.take_due(t0);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].get(), on_p0);
  EXPECT_EQ(p0.waiters.size(), 0u) << "unparked from its partition";
  EXPECT_EQ(board.size(), 1000u);
}

TEST(FetchWaiters, MinBytesAccumulateAcrossCommits) {
  partition p;
  waiter_board board;
  board.park(waiter(/*min_bytes=*/100), at({{&p, 0}}, /*bytes found=*/30));
  board.on_commit(p, 1, 40);  // 70 of 100
  EXPECT_FALSE(board.has_ready());
  board.on_commit(p, 2, 40);  // 110
  EXPECT_TRUE(board.has_ready());
  EXPECT_EQ(board.take_due(t0).size(), 1u);
}

TEST(FetchWaiters, AFetchOfSeveralPartitionsWakesOnAnyAndUnparksFromAll) {
  partition p0, p1, p2;
  waiter_board board;
  board.park(waiter(), at({{&p0, 5}, {&p1, 5}, {&p2, 5}}));
  board.on_commit(p2, 6, 1);
  auto due = board.take_due(t0);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(p0.waiters.size() + p1.waiters.size() + p2.waiters.size(), 0u);
}

TEST(FetchWaiters, DeadlinesAreDueInParkingOrder) {
  partition p;
  waiter_board board;
  auto* late = waiter(1, t0 + std::chrono::seconds(2)).release();
  auto* early = waiter(1, t0 + std::chrono::seconds(1)).release();
  board.park(std::unique_ptr<fetch_waiter>(late), at({{&p, 0}}));
  board.park(std::unique_ptr<fetch_waiter>(early), at({{&p, 0}}));
  EXPECT_EQ(board.next_deadline(), t0 + std::chrono::seconds(1));
  EXPECT_TRUE(board.take_due(t0).empty());
  auto due = board.take_due(t0 + std::chrono::seconds(5));
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].get(), late) << "parked first, tried first";
  EXPECT_EQ(due[1].get(), early);
  EXPECT_FALSE(board.next_deadline());
}

TEST(FetchWaiters, GroupEventsWakeMemberFetchesOnly) {
  partition p;
  waiter_board board;
  auto* member = waiter(1, t0 + std::chrono::seconds(30), true).release();
  board.park(std::unique_ptr<fetch_waiter>(member), at({{&p, 0}}));
  board.park(waiter(), at({{&p, 0}}));
  board.on_group_event();
  auto due = board.take_due(t0);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].get(), member);
}

TEST(FetchWaiters, ARemovedPartitionWakesItsWaitersAndForgetsThem) {
  waiter_board board;
  partition kept;
  std::unique_ptr<fetch_waiter> taken;
  {
    auto gone = std::make_unique<partition>();
    board.park(waiter(), at({{gone.get(), 3}, {&kept, 3}}));
    board.on_partition_removed(*gone);
    auto due = board.take_due(t0);
    ASSERT_EQ(due.size(), 1u);
    taken = std::move(due[0]);
  }  // the partition is gone; unparking did not touch it
  EXPECT_EQ(kept.waiters.size(), 0u);
  EXPECT_TRUE(taken->at.empty());
}

TEST(FetchWaiters, TakeAllEmptiesTheBoard) {
  partition p;
  waiter_board board;
  for (int i = 0; i < 5; ++i) board.park(waiter(), at({{&p, i}}));
  EXPECT_EQ(board.take_all().size(), 5u);
  EXPECT_EQ(board.size(), 0u);
  EXPECT_EQ(p.waiters.size(), 0u);
}

}  // namespace
}  // namespace ferry::broker
