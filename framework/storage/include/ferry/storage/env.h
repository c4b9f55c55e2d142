// The file-system interface every storage component goes through, so tests
// can run on mem_env, which can "crash" (drop everything never synced) and
// inject I/O errors. Modelled on LevelDB's Env.
//
// Durability contract (the same on every implementation):
//  - file::sync() makes the file's contents and size durable (fdatasync).
//  - A newly created, renamed or removed directory entry is durable only
//    after env::sync_dir() on the directory holding it.
//  - Nothing else is durable. A crash may lose any of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ferry/core/result.h"

namespace ferry::storage {

namespace fs = std::filesystem;

/// An open file. read_at() may be called from any thread concurrently with
/// one writer; append/sync/truncate need external serialisation.
class file {
 public:
  virtual ~file() = default;
  file() = default;
  file(const file&) = delete;
  file& operator=(const file&) = delete;

  /// Reads up to out.size() bytes at `pos`. Returns fewer only at end of file.
  [[nodiscard]] virtual result<std::size_t> read_at(std::uint64_t pos,
                                                    std::span<std::byte> out) const = 0;
  /// Appends all of `data`, or fails. After a failure an unknown prefix of
  /// `data` may have reached the file (a short write); size() tells how much.
  [[nodiscard]] virtual result<void> append(std::span<const std::byte> data) = 0;
  /// Makes contents and size durable (fdatasync).
  [[nodiscard]] virtual result<void> sync() = 0;
  /// Cuts the file to `size` bytes (not durable until sync()).
  [[nodiscard]] virtual result<void> truncate(std::uint64_t size) = 0;
  /// Current size in bytes, including anything appended and not yet synced.
  [[nodiscard]] virtual std::uint64_t size() const = 0;
};

enum class open_mode {
  read_only,   ///< must exist
  read_write,  ///< must exist; appends go to the end
  create,      ///< created if missing (kept if present), read-write
  create_new,  ///< must not exist, read-write
};

class env {
 public:
  virtual ~env() = default;
  [[nodiscard]] virtual result<std::unique_ptr<file>> open(const fs::path& p, open_mode mode) = 0;
  /// Names (not paths) of the entries in a directory, unsorted.
  [[nodiscard]] virtual result<std::vector<std::string>> list_dir(const fs::path& dir) = 0;
  /// Creates a directory and any missing parents. Succeeds if it exists.
  [[nodiscard]] virtual result<void> create_dirs(const fs::path& dir) = 0;
  [[nodiscard]] virtual result<void> remove_file(const fs::path& p) = 0;
  /// Removes an empty directory.
  [[nodiscard]] virtual result<void> remove_dir(const fs::path& p) = 0;
  /// Atomically replaces `to` with `from` (POSIX rename).
  [[nodiscard]] virtual result<void> rename(const fs::path& from, const fs::path& to) = 0;
  /// Makes the directory's entries durable (fsync on the directory).
  [[nodiscard]] virtual result<void> sync_dir(const fs::path& dir) = 0;
  [[nodiscard]] virtual result<bool> exists(const fs::path& p) = 0;
  [[nodiscard]] virtual result<std::uint64_t> file_size(const fs::path& p) = 0;
};

/// The real file system. Thread-safe; lives for the whole process.
env& posix_env();

/// Reads a whole file (small files: indexes, checkpoints).
[[nodiscard]] result<std::vector<std::byte>> read_file(env& e, const fs::path& p);

/// Writes `data` to `p` atomically and durably: temp file, sync, rename,
/// sync of the directory. After a crash `p` holds either the old or the new
/// contents, never a mix.
[[nodiscard]] result<void> write_file_atomic(env& e, const fs::path& p,
                                             std::span<const std::byte> data);

}  // namespace ferry::storage
