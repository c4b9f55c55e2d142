#include "ferry/storage/mem_env.h"

#include <gtest/gtest.h>

#include "ferry/format/batch.h"

namespace ferry::storage {
namespace {

std::span<const std::byte> b(std::string_view s) {
  return format::as_bytes(s);
}

std::string text(const std::optional<std::vector<std::byte>>& v) {
  if (!v) return "<absent>";
  return {reinterpret_cast<const char*>(v->data()), v->size()};
}

TEST(MemEnv, CrashKeepsOnlySyncedBytes) {
  mem_env e;
  ASSERT_TRUE(e.create_dirs("/d"));
  ASSERT_TRUE(e.sync_dir("/"));
  auto f = e.open("/d/f", open_mode::create).value();
  ASSERT_TRUE(e.sync_dir("/d"));
  ASSERT_TRUE(f->append(b("synced.")));
  ASSERT_TRUE(f->sync());
  ASSERT_TRUE(f->append(b("lost")));
  EXPECT_EQ(text(e.contents("/d/f")), "synced.lost");
  e.crash();
  EXPECT_EQ(text(e.contents("/d/f")), "synced.");
  // The old handle died with the process.
  EXPECT_FALSE(f->append(b("x")));
}

TEST(MemEnv, UnsyncedDirectoryEntriesVanish) {
  mem_env e;
  ASSERT_TRUE(e.create_dirs("/d"));
  ASSERT_TRUE(e.sync_dir("/"));
  {
    auto f = e.open("/d/never-dir-synced", open_mode::create).value();
    ASSERT_TRUE(f->append(b("data")));
    ASSERT_TRUE(f->sync());  // contents durable, but the name is not
  }
  e.crash();
  EXPECT_FALSE(e.exists("/d/never-dir-synced").value());
}

TEST(MemEnv, UnsyncedDirectoryCreationVanishesWithContents) {
  mem_env e;
  ASSERT_TRUE(e.create_dirs("/a/b"));
  auto f = e.open("/a/b/f", open_mode::create).value();
  ASSERT_TRUE(f->sync());
  ASSERT_TRUE(e.sync_dir("/a/b"));  // but "/a" itself was never synced in "/"
  e.crash();
  EXPECT_FALSE(e.exists("/a").value());
  EXPECT_FALSE(e.exists("/a/b/f").value());
}

TEST(MemEnv, RenameIsDurableOnlyAfterDirSync) {
  mem_env e;
  ASSERT_TRUE(e.create_dirs("/d"));
  ASSERT_TRUE(e.sync_dir("/"));
  ASSERT_TRUE(write_file_atomic(e, "/d/x", b("one")));
  {
    auto f = e.open("/d/x.new", open_mode::create).value();
    ASSERT_TRUE(f->append(b("two")));
    ASSERT_TRUE(f->sync());
  }
  ASSERT_TRUE(e.rename("/d/x.new", "/d/x"));
  EXPECT_EQ(text(e.contents("/d/x")), "two");
  e.crash();
  EXPECT_EQ(text(e.contents("/d/x")), "one");
}

TEST(MemEnv, WriteFileAtomicSurvivesCrash) {
  mem_env e;
  ASSERT_TRUE(e.create_dirs("/d"));
  ASSERT_TRUE(e.sync_dir("/"));
  ASSERT_TRUE(write_file_atomic(e, "/d/x", b("v1")));
  e.crash();
  EXPECT_EQ(text(e.contents("/d/x")), "v1");
}

TEST(MemEnv, SyncFaultsAreReported) {
  mem_env e;
  ASSERT_TRUE(e.create_dirs("/d"));
  auto f = e.open("/d/f", open_mode::create).value();
  e.fail_next_syncs(1, std::make_error_code(std::errc::io_error));
  ASSERT_TRUE(f->append(b("x")));
  auto r = f->sync();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::io_error);
  EXPECT_TRUE(f->sync());  // one-shot
  e.fail_syncs(std::make_error_code(std::errc::io_error), "other");
  EXPECT_TRUE(f->sync());  // filter does not match
}

TEST(MemEnv, CapacityGivesShortWriteAndEnospc) {
  mem_env e;
  ASSERT_TRUE(e.create_dirs("/d"));
  auto f = e.open("/d/f", open_mode::create).value();
  e.set_capacity(5);
  auto r = f->append(b("0123456789"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::no_space_on_device);
  EXPECT_EQ(f->size(), 5u);  // the short write reached the file
  e.clear_faults();
  EXPECT_TRUE(f->append(b("more")));
}

TEST(MemEnv, ShortWriteNext) {
  mem_env e;
  ASSERT_TRUE(e.create_dirs("/d"));
  auto f = e.open("/d/f", open_mode::create).value();
  e.short_write_next(3);
  EXPECT_FALSE(f->append(b("abcdef")));
  EXPECT_EQ(text(e.contents("/d/f")), "abc");
  EXPECT_TRUE(f->append(b("g")));
}

TEST(MemEnv, RandomPrefixCrashKeepsAPrefixOfUnsyncedData) {
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    mem_env e;
    ASSERT_TRUE(e.create_dirs("/d"));
    ASSERT_TRUE(e.sync_dir("/"));
    auto f = e.open("/d/f", open_mode::create).value();
    ASSERT_TRUE(e.sync_dir("/d"));
    ASSERT_TRUE(f->append(b("AAAA")));
    ASSERT_TRUE(f->sync());
    ASSERT_TRUE(f->append(b("BBBBBBBB")));
    e.crash(crash_mode::keep_random_prefix, seed);
    auto s = text(e.contents("/d/f"));
    ASSERT_GE(s.size(), 4u);
    ASSERT_LE(s.size(), 12u);
    EXPECT_EQ(s, std::string("AAAABBBBBBBB").substr(0, s.size()));
  }
}

}  // namespace
}  // namespace ferry::storage
