// An in-memory env for tests: a file system that can crash and fail.
//
// Crash model (the strict one a power cut allows): crash() keeps, for every
// file, exactly the bytes present at its last successful sync(), and for
// every directory exactly the entries present at its last successful
// sync_dir(). Files reachable only through unsynced entries vanish;
// directories whose creation was never synced in their parent vanish with
// everything inside. Open file handles from before the crash become dead
// (every call fails with EIO), as a process that died would have lost them.
//
// crash_mode::keep_random_prefix is the harsher "torn write" model: each file
// keeps its synced bytes plus a random prefix of what was appended after the
// last sync, optionally followed by garbage.
//
// Fault injection: sync errors (EIO), a capacity (ENOSPC with a short write of
// whatever still fits), one-shot short writes. Faults can be limited to paths
// containing a substring.
//
// Thread-safe: one mutex guards everything.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "ferry/storage/env.h"

namespace ferry::storage {

enum class crash_mode {
  drop_unsynced,            ///< keep exactly what was synced
  keep_random_prefix,       ///< keep synced bytes + a random prefix of the rest
  keep_prefix_and_garbage,  ///< as above, then random garbage bytes
};

class mem_env final : public env {
 public:
  mem_env();
  ~mem_env() override;

  result<std::unique_ptr<file>> open(const fs::path& p, open_mode mode) override;
  result<std::vector<std::string>> list_dir(const fs::path& dir) override;
  result<void> create_dirs(const fs::path& dir) override;
  result<void> remove_file(const fs::path& p) override;
  result<void> remove_dir(const fs::path& p) override;
  result<void> rename(const fs::path& from, const fs::path& to) override;
  result<void> sync_dir(const fs::path& dir) override;
  result<bool> exists(const fs::path& p) override;
  result<std::uint64_t> file_size(const fs::path& p) override;

  /// Simulates a power cut. See the crash model above. `seed` drives the
  /// random modes.
  void crash(crash_mode mode = crash_mode::drop_unsynced, std::uint64_t seed = 0);

  // --- fault injection (cleared by clear_faults()) ---
  /// Every sync() / sync_dir() on a path containing `filter` fails with `ec`.
  void fail_syncs(std::error_code ec, std::string filter = "");
  /// The next `count` syncs on matching paths fail, then syncs succeed again.
  void fail_next_syncs(int count, std::error_code ec, std::string filter = "");
  /// Total bytes across all files may not exceed `bytes`; an append that
  /// would writes what fits (a short write) and fails with ENOSPC.
  void set_capacity(std::uint64_t bytes);
  /// The next append on a matching path writes only `bytes` of its data and
  /// fails with `ec` (default EIO).
  void short_write_next(std::size_t bytes,
                        std::error_code ec = std::make_error_code(std::errc::io_error),
                        std::string filter = "");
  void clear_faults();

  // --- inspection, for tests ---
  /// Raw bytes of a file as it is now (nullopt if absent).
  std::optional<std::vector<std::byte>> contents(const fs::path& p) const;
  /// Overwrites a file's bytes, synced, as if the disk had changed them
  /// (bit flips, truncation, garbage). The file must exist.
  void corrupt(const fs::path& p, const std::function<void(std::vector<std::byte>&)>& mutate);
  std::uint64_t total_bytes() const;
  std::uint64_t sync_count() const;

  struct state;  // public so the file implementation can reach it

 private:
  std::shared_ptr<state> s_;
};

}  // namespace ferry::storage
