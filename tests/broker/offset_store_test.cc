// The durable group offsets: visibility after sync, crashes, failed syncs
// (fail stop), deletions, compaction and interrupted compactions.
#include "offset_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <limits>

#include "ferry/format/batch.h"
#include "ferry/storage/mem_env.h"

namespace ferry::broker {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kDir = "/data/groups/offsets";

offset_change commit(const std::string& group, const std::string& topic, std::int32_t p,
                     std::int64_t off, const std::string& meta = "") {
  offset_change c;
  c.what = offset_change::kind::commit;
  c.group = group;
  c.topic = topic;
  c.partition = p;
  c.value.offset = off;
  c.value.metadata = meta;
  c.value.commit_ms = 1'700'000'000'000 + off;
  return c;
}

offset_change delete_group(const std::string& group) {
  offset_change c;
  c.what = offset_change::kind::delete_group;
  c.group = group;
  return c;
}

offset_change delete_topic(const std::string& topic) {
  offset_change c;
  c.what = offset_change::kind::delete_topic;
  c.topic = topic;
  return c;
}

// The state as comparable values.
using flat_state =
    std::map<std::string, std::map<tp_key, std::tuple<std::int64_t, std::string, std::int64_t>>>;
flat_state flatten(const offset_store::state& s) {
  flat_state out;
  for (const auto& [g, offs] : s)
    for (const auto& [tp, c] : offs) out[g][tp] = {c.offset, c.metadata, c.commit_ms};
  return out;
}

class OffsetStoreTest : public ::testing::Test {
 protected:
  // The data directory exists and is durable, as the broker finds it.
  void SetUp() override {
    ASSERT_TRUE(env_.create_dirs("/data"));
    ASSERT_TRUE(env_.sync_dir("/"));
  }
  std::unique_ptr<offset_store> open(offset_store::options o = {}) {
    auto r = offset_store::open(env_, kDir, o, clock_);
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? std::move(r).value() : nullptr;
  }
  std::int64_t committed(const offset_store& s, const std::string& g, const std::string& t,
                         std::int32_t p) {
    const auto* c = s.committed(g, {t, p});
    return c ? c->offset : -1;
  }
  std::int64_t latest(const offset_store& s, const std::string& g, const std::string& t,
                      std::int32_t p) {
    const auto* c = s.latest(g, {t, p});
    return c ? c->offset : -1;
  }

  storage::mem_env env_;
  manual_clock clock_;
};

TEST_F(OffsetStoreTest, CommitSyncReopenGivesTheSameState) {
  auto s = open();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->groups().empty());
  ASSERT_TRUE(s->append({commit("g1", "t", 0, 5, "meta"), commit("g1", "t", 1, 7)}));
  ASSERT_TRUE(s->append({commit("g2", "u", 3, 11), commit("g1", "t", 0, 6, "newer")}));
  ASSERT_TRUE(s->sync());
  EXPECT_FALSE(s->has_pending());
  EXPECT_EQ(committed(*s, "g1", "t", 0), 6);
  ASSERT_NE(s->committed("g1", {"t", 0}), nullptr);
  EXPECT_EQ(s->committed("g1", {"t", 0})->metadata, "newer");
  EXPECT_EQ(s->committed("g1", {"t", 0})->commit_ms, 1'700'000'000'006);
  EXPECT_EQ(committed(*s, "g1", "t", 1), 7);
  EXPECT_EQ(committed(*s, "g2", "u", 3), 11);
  EXPECT_EQ(committed(*s, "g2", "u", 0), -1);
  EXPECT_EQ(committed(*s, "nope", "t", 0), -1);
  const auto before = flatten(s->groups());
  ASSERT_EQ(before.size(), 2u);
  s.reset();
  auto again = open();
  ASSERT_TRUE(again);
  EXPECT_EQ(flatten(again->groups()), before);
  // Synced data survives a power cut too.
  again.reset();
  env_.crash();
  auto after_crash = open();
  ASSERT_TRUE(after_crash);
  EXPECT_EQ(flatten(after_crash->groups()), before);
}

// The first open creates <data>/groups: a power cut right after the first
// synced commit must not lose the directory, and the offsets with it.
TEST_F(OffsetStoreTest, SyncedCommitsSurviveAPowerCutAfterTheFirstStart) {
  auto s = open();
  ASSERT_TRUE(s->append({commit("g", "t", 0, 3)}));
  ASSERT_TRUE(s->sync());
  env_.crash();
  s.reset();
  auto again = open();
  ASSERT_TRUE(again);
  EXPECT_EQ(committed(*again, "g", "t", 0), 3);
}

TEST_F(OffsetStoreTest, UnsyncedChangesAreInvisibleAndLostInACrash) {
  auto s = open();
  ASSERT_TRUE(s->append({commit("g", "t", 0, 3)}));
  ASSERT_TRUE(s->sync());
  ASSERT_TRUE(s->append({commit("g", "t", 0, 9), commit("g", "t", 1, 4)}));
  EXPECT_TRUE(s->has_pending());
  EXPECT_EQ(committed(*s, "g", "t", 0), 3) << "not durable yet: not visible";
  EXPECT_EQ(committed(*s, "g", "t", 1), -1);
  EXPECT_EQ(s->groups().at("g").size(), 1u);
  EXPECT_EQ(latest(*s, "g", "t", 0), 9) << "validation sees what is appended";
  EXPECT_EQ(latest(*s, "g", "t", 1), 4);
  env_.crash();
  s.reset();
  auto again = open();
  ASSERT_TRUE(again);
  EXPECT_EQ(committed(*again, "g", "t", 0), 3);
  EXPECT_EQ(committed(*again, "g", "t", 1), -1);
  EXPECT_EQ(latest(*again, "g", "t", 0), 3);
}

TEST_F(OffsetStoreTest, TornTailAfterACrashIsIgnored) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(seed);
    storage::mem_env env;
    ASSERT_TRUE(env.create_dirs("/data"));
    ASSERT_TRUE(env.sync_dir("/"));
    {
      auto s = offset_store::open(env, kDir, {}, clock_);
      ASSERT_TRUE(s);
      ASSERT_TRUE(s.value()->append({commit("g", "t", 0, 3)}));
      ASSERT_TRUE(s.value()->sync());
      for (int i = 0; i < 5; ++i) ASSERT_TRUE(s.value()->append({commit("g", "t", 0, 10 + i)}));
    }
    env.crash(seed % 2 ? storage::crash_mode::keep_prefix_and_garbage
                       : storage::crash_mode::keep_random_prefix,
              seed);
    auto again = offset_store::open(env, kDir, {}, clock_);
    ASSERT_TRUE(again) << again.error().message();
    const auto* c = again.value()->committed("g", {"t", 0});
    ASSERT_NE(c, nullptr);
    EXPECT_TRUE(c->offset == 3 || (c->offset >= 10 && c->offset <= 14)) << c->offset;
  }
}

TEST_F(OffsetStoreTest, FailedSyncDropsPendingChangesAndFailsStop) {
  auto s = open();
  ASSERT_TRUE(s->append({commit("g", "t", 0, 3)}));
  ASSERT_TRUE(s->sync());
  env_.fail_next_syncs(1, std::make_error_code(std::errc::io_error), "offsets");
  ASSERT_TRUE(s->append({commit("g", "t", 0, 8), commit("h", "t", 0, 1)}));
  EXPECT_EQ(latest(*s, "g", "t", 0), 8);
  auto r = s->sync();
  ASSERT_FALSE(r);
  EXPECT_FALSE(s->has_pending());
  EXPECT_EQ(latest(*s, "g", "t", 0), 3) << "latest() reverts to the durable state";
  EXPECT_EQ(latest(*s, "h", "t", 0), -1);
  EXPECT_EQ(committed(*s, "g", "t", 0), 3);
  EXPECT_EQ(s->groups().count("h"), 0u);
  EXPECT_TRUE(s->failed());
  EXPECT_FALSE(s->failure_reason().empty());
  // Fail stop: nothing more is accepted, though the disk works again.
  auto more = s->append({commit("g", "t", 0, 9)});
  ASSERT_FALSE(more);
  EXPECT_EQ(more.error(), storage::errc::partition_failed);
  EXPECT_EQ(latest(*s, "g", "t", 0), 3);
  EXPECT_TRUE(s->sync()) << "nothing pending";
  // A restart after a power cut recovers the durable state and works again.
  // (Without the power cut the outcome of the failed commit is unknown: the
  // OS may still write it.)
  s.reset();
  env_.crash();
  auto again = open();
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->failed());
  EXPECT_EQ(committed(*again, "g", "t", 0), 3);
  EXPECT_EQ(committed(*again, "h", "t", 0), -1);
  ASSERT_TRUE(again->append({commit("g", "t", 0, 10)}));
  ASSERT_TRUE(again->sync());
  EXPECT_EQ(committed(*again, "g", "t", 0), 10);
}

TEST_F(OffsetStoreTest, DeleteGroupAndDeleteTopic) {
  auto s = open();
  ASSERT_TRUE(
      s->append({commit("g1", "t", 0, 1), commit("g1", "u", 0, 2), commit("g2", "t", 0, 3),
                 commit("g2", "t", 5, 4), commit("g3", "t", 1, 5), commit("g3", "tt", 0, 6)}));
  ASSERT_TRUE(s->sync());
  ASSERT_TRUE(s->append({delete_topic("t")}));
  EXPECT_EQ(committed(*s, "g2", "t", 0), 3) << "not before the sync";
  EXPECT_EQ(latest(*s, "g2", "t", 0), -1);
  ASSERT_TRUE(s->sync());
  EXPECT_EQ(committed(*s, "g1", "t", 0), -1);
  EXPECT_EQ(committed(*s, "g1", "u", 0), 2);
  EXPECT_EQ(s->groups().count("g2"), 0u) << "a group left with no offsets is gone";
  EXPECT_EQ(committed(*s, "g3", "tt", 0), 6) << "a topic sharing a prefix is untouched";
  EXPECT_EQ(committed(*s, "g3", "t", 1), -1);
  ASSERT_TRUE(s->append({delete_group("g1")}));
  ASSERT_TRUE(s->sync());
  EXPECT_EQ(s->groups().count("g1"), 0u);
  EXPECT_EQ(committed(*s, "g1", "u", 0), -1);
  // Commits after a deletion start afresh.
  ASSERT_TRUE(s->append({commit("g1", "t", 0, 1)}));
  ASSERT_TRUE(s->sync());
  const auto before = flatten(s->groups());
  flat_state expected;
  expected["g1"][{"t", 0}] = {1, "", 1'700'000'000'001};
  expected["g3"][{"tt", 0}] = {6, "", 1'700'000'000'006};
  EXPECT_EQ(before, expected);
  s.reset();
  auto again = open();
  EXPECT_EQ(flatten(again->groups()), before) << "deletions replay";
}

TEST_F(OffsetStoreTest, AFailedCompactionKeepsTheOldLogAndTheStoreWorking) {
  offset_store::options o;
  o.compact_bytes = 2048;
  auto s = open(o);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(s->append({commit("g", "t", i % 3, i)}));
    ASSERT_TRUE(s->sync());
  }
  const auto before = flatten(s->groups());
  const auto size = s->size_bytes();
  ASSERT_GT(size, o.compact_bytes);
  env_.fail_next_syncs(1, std::make_error_code(std::errc::io_error), "offsets.compact");
  s->maybe_compact();
  EXPECT_FALSE(s->failed()) << s->failure_reason();
  EXPECT_EQ(s->size_bytes(), size) << "the old log is still in use";
  EXPECT_EQ(flatten(s->groups()), before);
  ASSERT_TRUE(s->append({commit("g", "t", 0, 1000)}));
  ASSERT_TRUE(s->sync());
  s.reset();
  auto again = open(o);
  ASSERT_TRUE(again);
  EXPECT_EQ(committed(*again, "g", "t", 0), 1000);
  EXPECT_EQ(committed(*again, "g", "t", 1), 97);
}

// Compaction renames directories, which mem_env does not do: these run on
// the real file system in a temporary directory.
class OffsetStoreDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-offsets-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ / "groups" / "offsets";
  }
  void TearDown() override { fs::remove_all(root_); }
  std::unique_ptr<offset_store> open(const fs::path& dir, offset_store::options o = {}) {
    auto r = offset_store::open(storage::posix_env(), dir, o, clock_);
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? std::move(r).value() : nullptr;
  }
  std::unique_ptr<offset_store> open(offset_store::options o = {}) { return open(dir_, o); }
  // Many commits to few keys, one batch and sync each (a log full of garbage).
  static void churn(offset_store& s, int rounds, int first = 0) {
    for (int i = first; i < first + rounds; ++i) {
      ASSERT_TRUE(s.append({commit("g" + std::to_string(i % 2), "t", i % 4, i, "m")}));
      ASSERT_TRUE(s.sync());
    }
  }

  fs::path root_, dir_;
  manual_clock clock_;
};

TEST_F(OffsetStoreDiskTest, CompactionKeepsTheStateAndShrinksTheLog) {
  offset_store::options o;
  o.compact_bytes = 4096;
  auto s = open(o);
  ASSERT_TRUE(s);
  churn(*s, 200);
  ASSERT_TRUE(s->append({delete_group("g1")}));
  ASSERT_TRUE(s->sync());
  const auto before = flatten(s->groups());
  const auto size = s->size_bytes();
  ASSERT_GT(size, o.compact_bytes);
  s->maybe_compact();
  ASSERT_FALSE(s->failed()) << s->failure_reason();
  EXPECT_LT(s->size_bytes(), size / 4) << "from " << size;
  EXPECT_EQ(flatten(s->groups()), before);
  EXPECT_FALSE(fs::exists(dir_.string() + ".compact"));
  EXPECT_FALSE(fs::exists(dir_.string() + ".old"));
  // The store keeps working on the new log, and survives a reopen.
  ASSERT_TRUE(s->append({commit("g0", "t", 0, 5000)}));
  ASSERT_TRUE(s->sync());
  const auto after = flatten(s->groups());
  s.reset();
  auto again = open(o);
  ASSERT_TRUE(again);
  EXPECT_EQ(flatten(again->groups()), after);
  // A second round of growth compacts again (past twice the compacted size).
  churn(*again, 200, 1000);
  const auto before2 = flatten(again->groups());
  const auto size2 = again->size_bytes();
  again->maybe_compact();
  EXPECT_LT(again->size_bytes(), size2);
  EXPECT_EQ(flatten(again->groups()), before2);
  again.reset();
  EXPECT_EQ(flatten(open(o)->groups()), before2);
}

TEST_F(OffsetStoreDiskTest, NoCompactionBelowTheThresholdOrWithPendingChanges) {
  offset_store::options o;
  o.compact_bytes = 1 << 20;
  auto s = open(o);
  churn(*s, 50);
  const auto size = s->size_bytes();
  s->maybe_compact();
  EXPECT_EQ(s->size_bytes(), size);
  o.compact_bytes = 1024;
  s.reset();
  s = open(o);
  // Reopening counts as a compaction point: it waits until the log doubles.
  s->maybe_compact();
  EXPECT_EQ(s->size_bytes(), size);
  churn(*s, 60, 100);
  ASSERT_TRUE(s->append({commit("g0", "t", 0, 9999)}));
  const auto pending_size = s->size_bytes();
  s->maybe_compact();
  EXPECT_EQ(s->size_bytes(), pending_size) << "not with changes pending";
  ASSERT_TRUE(s->sync());
  s->maybe_compact();
  EXPECT_LT(s->size_bytes(), pending_size);
  EXPECT_EQ(committed_offset{}.offset, -1);
  ASSERT_NE(s->committed("g0", {"t", 0}), nullptr);
  EXPECT_EQ(s->committed("g0", {"t", 0})->offset, 9999);
}

// The previous compaction could not remove `<dir>.old` (it only logs
// that): the next compaction must not fail on it and take the store down.
TEST_F(OffsetStoreDiskTest, LeftoverOldDirDoesNotBreakTheNextCompaction) {
  offset_store::options o;
  o.compact_bytes = 4096;
  auto s = open(o);
  churn(*s, 100);
  const fs::path old = dir_.string() + ".old";
  fs::create_directories(old);
  {
    std::FILE* f = std::fopen((old / "00000000000000000000.log").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fputs("left over", f);
    std::fclose(f);
  }
  const auto before = flatten(s->groups());
  const auto size = s->size_bytes();
  s->maybe_compact();
  EXPECT_FALSE(s->failed()) << s->failure_reason();
  EXPECT_LT(s->size_bytes(), size);
  EXPECT_EQ(flatten(s->groups()), before);
  ASSERT_TRUE(s->append({commit("g0", "t", 0, 777)}));
  ASSERT_TRUE(s->sync());
  s.reset();
  EXPECT_EQ(open(o)->committed("g0", {"t", 0})->offset, 777);
}

// A leftover that cannot be removed at all: the compaction gives up before
// touching the live log, which keeps working.
TEST_F(OffsetStoreDiskTest, CompactionThatCannotStartKeepsTheLiveLog) {
  offset_store::options o;
  o.compact_bytes = 4096;
  auto s = open(o);
  churn(*s, 100);
  const fs::path old = dir_.string() + ".old";
  fs::create_directories(old / "a-directory");  // remove_tree removes files only
  const auto before = flatten(s->groups());
  const auto size = s->size_bytes();
  s->maybe_compact();
  EXPECT_FALSE(s->failed()) << s->failure_reason();
  EXPECT_EQ(s->size_bytes(), size);
  EXPECT_EQ(flatten(s->groups()), before);
  ASSERT_TRUE(s->append({commit("g0", "t", 0, 777)}));
  ASSERT_TRUE(s->sync());
  EXPECT_EQ(s->committed("g0", {"t", 0})->offset, 777);
  fs::remove_all(old);
  s.reset();
  EXPECT_EQ(open(o)->committed("g0", {"t", 0})->offset, 777);
}

// A crash between the two renames of the swap: `<dir>` gone, the complete
// compacted log at `<dir>.compact`. Open finishes the swap.
TEST_F(OffsetStoreDiskTest, InterruptedSwapWithoutTheOldDirIsFinished) {
  const fs::path fresh = dir_.string() + ".compact";
  const fs::path old = dir_.string() + ".old";
  {
    auto s = open(dir_);
    ASSERT_TRUE(s->append({commit("g", "t", 0, 41)}));
    ASSERT_TRUE(s->sync());
  }
  flat_state expected;
  {
    auto s = open(fresh);  // a store written at the .compact path stands in for the new log
    ASSERT_TRUE(s->append({commit("g", "t", 0, 42, "kept")}));
    ASSERT_TRUE(s->sync());
    expected = flatten(s->groups());
  }
  fs::rename(dir_, old);
  ASSERT_FALSE(fs::exists(dir_));
  auto s = open();
  ASSERT_TRUE(s);
  EXPECT_EQ(flatten(s->groups()), expected);
  EXPECT_TRUE(fs::exists(dir_));
  EXPECT_FALSE(fs::exists(fresh));
  EXPECT_FALSE(fs::exists(old)) << "the old log is removed";
  ASSERT_TRUE(s->append({commit("g", "t", 0, 43)}));
  ASSERT_TRUE(s->sync());
  s.reset();
  EXPECT_EQ(open()->committed("g", {"t", 0})->offset, 43);
}

// A crash before the swap: `<dir>` is still the live log, and whatever is at
// `<dir>.compact` (possibly incomplete) is discarded.
TEST_F(OffsetStoreDiskTest, InterruptedCompactionBeforeTheSwapIsDiscarded) {
  const fs::path fresh = dir_.string() + ".compact";
  flat_state expected;
  {
    auto s = open(dir_);
    ASSERT_TRUE(s->append({commit("g", "t", 0, 2, "live"), commit("h", "u", 1, 3)}));
    ASSERT_TRUE(s->sync());
    expected = flatten(s->groups());
  }
  {
    auto s = open(fresh);
    ASSERT_TRUE(s->append({commit("g", "t", 0, 1, "stale")}));
    ASSERT_TRUE(s->sync());
  }
  // Also a half-written segment in the fresh directory.
  {
    std::FILE* f = std::fopen((fresh / "garbage.tmp").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fputs("half", f);
    std::fclose(f);
  }
  auto s = open();
  ASSERT_TRUE(s);
  EXPECT_EQ(flatten(s->groups()), expected);
  EXPECT_FALSE(fs::exists(fresh));
}

TEST_F(OffsetStoreDiskTest, LeftoverOldDirIsRemovedAtOpen) {
  const fs::path old = dir_.string() + ".old";
  {
    auto s = open(old);
    ASSERT_TRUE(s->append({commit("g", "t", 0, 1)}));
    ASSERT_TRUE(s->sync());
  }
  {
    auto s = open(dir_);
    ASSERT_TRUE(s->append({commit("g", "t", 0, 2)}));
    ASSERT_TRUE(s->sync());
  }
  auto s = open();
  EXPECT_EQ(s->committed("g", {"t", 0})->offset, 2);
  EXPECT_FALSE(fs::exists(old));
}

TEST_F(OffsetStoreDiskTest, CorruptRecordRefusesToOpen) {
  {
    auto s = open();
    ASSERT_TRUE(s->append({commit("g", "t", 0, 1)}));
    ASSERT_TRUE(s->sync());
  }
  // A valid batch whose record is not a change (no key): corrupt, not skipped.
  {
    format::batch_builder b;
    b.add(timestamp_ms(1), std::nullopt, format::as_bytes("x"));
    auto bytes = b.finish();
    auto log =
        storage::partition_log::open(storage::posix_env(), dir_, storage::log_config{}, clock_);
    ASSERT_TRUE(log);
    ASSERT_TRUE(log.value()->append(bytes));
    ASSERT_TRUE(log.value()->sync());
  }
  auto r = offset_store::open(storage::posix_env(), dir_, {}, clock_);
  EXPECT_FALSE(r);
}

// --- the idempotency ledger (kind 4 records) ------------------------------------

offset_change ledger_key(const std::string& group, const std::string& key, std::int64_t ms) {
  auto v = ledger_changes(group, {key}, ms);
  EXPECT_EQ(v.size(), 1u);
  return v.at(0);
}

class LedgerTest : public OffsetStoreTest {
 protected:
  std::int64_t now() const { return clock_.wall_now().value(); }
  static constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
};

TEST_F(LedgerTest, KeysAreVisibleAfterTheSyncOfTheirCommitAndSurviveAPowerCut) {
  auto s = open();
  ASSERT_TRUE(s->append({commit("pay", "orders", 0, 3), ledger_key("pay", "order-1/paid", now()),
                         ledger_key("pay", "order-2/paid", now())}));
  EXPECT_FALSE(s->ledger_lookup("pay", "order-1/paid", kMin)) << "visible before it is durable";
  ASSERT_TRUE(s->sync());
  EXPECT_EQ(s->ledger_lookup("pay", "order-1/paid", kMin), now());
  EXPECT_FALSE(s->ledger_lookup("audit", "order-1/paid", kMin)) << "ledgers are per group";
  EXPECT_FALSE(s->ledger_lookup("pay", "order-3/paid", kMin));
  EXPECT_EQ(s->ledger_size("pay"), 2u);
  // Unsynced keys are lost in a crash; synced ones are not.
  ASSERT_TRUE(s->append({ledger_key("pay", "order-9/paid", now())}));
  s.reset();
  env_.crash();
  auto again = open();
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->ledger_lookup("pay", "order-2/paid", kMin));
  EXPECT_FALSE(again->ledger_lookup("pay", "order-9/paid", kMin));
  EXPECT_EQ(committed(*again, "pay", "orders", 0), 3);
}

TEST_F(LedgerTest, AFailedSyncRecordsNoKey) {
  auto s = open();
  env_.fail_next_syncs(1, std::make_error_code(std::errc::io_error), "offsets");
  ASSERT_TRUE(s->append({commit("pay", "orders", 0, 1), ledger_key("pay", "k", now())}));
  EXPECT_FALSE(s->sync());
  EXPECT_FALSE(s->ledger_lookup("pay", "k", kMin));
  EXPECT_EQ(committed(*s, "pay", "orders", 0), -1);
}

TEST_F(LedgerTest, TheLookupWindowEdgeIsInclusive) {
  auto s = open();
  const auto t = now();
  ASSERT_TRUE(s->append({ledger_key("pay", "k", t)}));
  ASSERT_TRUE(s->sync());
  EXPECT_EQ(s->ledger_lookup("pay", "k", t), t) << "recorded exactly at the window's start";
  EXPECT_FALSE(s->ledger_lookup("pay", "k", t + 1)) << "one millisecond outside the window";
}

TEST_F(LedgerTest, RetentionForgetsKeysJustPastItsEdge) {
  offset_store::options o;
  o.ledger_retention = 10'000ms;
  auto s = open(o);
  const auto t = now();
  ASSERT_TRUE(s->append({ledger_key("pay", "old", t), ledger_key("pay", "newer", t + 5)}));
  ASSERT_TRUE(s->sync());
  clock_.advance(10'000ms);
  s->expire_ledger();
  EXPECT_TRUE(s->ledger_lookup("pay", "old", kMin)) << "exactly retention old: kept";
  clock_.advance(1ms);
  s->expire_ledger();
  EXPECT_FALSE(s->ledger_lookup("pay", "old", kMin)) << "one millisecond past: forgotten";
  EXPECT_TRUE(s->ledger_lookup("pay", "newer", kMin));
  // Reopening applies retention too (the log still holds the old record).
  s.reset();
  auto again = open(o);
  EXPECT_FALSE(again->ledger_lookup("pay", "old", kMin));
  EXPECT_TRUE(again->ledger_lookup("pay", "newer", kMin));
}

TEST_F(LedgerTest, TheCountLimitDropsTheOldestAndARepeatRefreshesAKey) {
  offset_store::options o;
  o.ledger_max_keys = 3;
  auto s = open(o);
  const auto t = now();
  ASSERT_TRUE(
      s->append({ledger_key("g", "a", t), ledger_key("g", "b", t + 1), ledger_key("g", "c", t + 2),
                 ledger_key("g", "a", t + 3), ledger_key("g", "d", t + 4)}));
  ASSERT_TRUE(s->sync());
  EXPECT_EQ(s->ledger_size("g"), 3u);
  EXPECT_FALSE(s->ledger_lookup("g", "b", kMin)) << "the oldest goes first";
  EXPECT_EQ(s->ledger_lookup("g", "a", kMin), t + 3) << "recorded again: newer";
  EXPECT_TRUE(s->ledger_lookup("g", "c", kMin));
  EXPECT_TRUE(s->ledger_lookup("g", "d", kMin));
  s.reset();
  auto again = open(o);
  EXPECT_EQ(again->ledger_size("g"), 3u);
  EXPECT_FALSE(again->ledger_lookup("g", "b", kMin));
}

TEST_F(LedgerTest, DeletingTheGroupDropsItsLedger) {
  auto s = open();
  ASSERT_TRUE(s->append(
      {commit("g", "t", 0, 1), ledger_key("g", "k", now()), ledger_key("h", "k", now())}));
  ASSERT_TRUE(s->sync());
  ASSERT_TRUE(s->append({delete_group("g")}));
  ASSERT_TRUE(s->sync());
  EXPECT_FALSE(s->ledger_lookup("g", "k", kMin));
  EXPECT_TRUE(s->ledger_lookup("h", "k", kMin));
  s.reset();
  auto again = open();
  EXPECT_FALSE(again->ledger_lookup("g", "k", kMin));
  EXPECT_TRUE(again->ledger_lookup("h", "k", kMin));
}

TEST(LedgerPacking, ManyKeysSplitIntoRecordsAndUnpackExactly) {
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i)
    keys.push_back("order-" + std::to_string(i) + std::string(20, 'k'));
  keys.push_back(std::string(1024, 'x'));
  keys.push_back(std::string("nul\0inside", 10));
  std::vector<std::string_view> views(keys.begin(), keys.end());
  auto changes = ledger_changes("g", views, 7);
  EXPECT_GT(changes.size(), 1u) << "split below the u16 metadata length";
  std::vector<std::string> back;
  for (const auto& c : changes) {
    EXPECT_LE(c.value.metadata.size(), 60'000u);
    EXPECT_EQ(c.value.commit_ms, 7);
    EXPECT_TRUE(
        for_each_ledger_key(c.value.metadata, [&](std::string_view k) { back.emplace_back(k); }));
  }
  EXPECT_EQ(back, keys);
  EXPECT_FALSE(for_each_ledger_key(std::string_view("\x05\x00ab", 4), [](std::string_view) {}));
}

TEST_F(OffsetStoreDiskTest, CompactionKeepsTheLedger) {
  offset_store::options o;
  o.compact_bytes = 4096;
  auto s = open(o);
  const auto t = clock_.wall_now().value();
  std::vector<offset_change> keys;
  for (int i = 0; i < 50; ++i) keys.push_back(ledger_key("g0", "key-" + std::to_string(i), t + i));
  ASSERT_TRUE(s->append(keys));
  ASSERT_TRUE(s->sync());
  churn(*s, 200);
  const auto size = s->size_bytes();
  s->maybe_compact();
  ASSERT_FALSE(s->failed()) << s->failure_reason();
  EXPECT_LT(s->size_bytes(), size);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(s->ledger_lookup("g0", "key-" + std::to_string(i), 0), t + i) << i;
  s.reset();
  auto again = open(o);
  EXPECT_EQ(again->ledger_size("g0"), 50u);
  EXPECT_EQ(again->ledger_lookup("g0", "key-49", 0), t + 49);
}

}  // namespace
}  // namespace ferry::broker
