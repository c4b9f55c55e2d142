// partition_log: one partition's durable, segmented, append-only log.
//
// Offsets and their states (Redpanda's vocabulary):
//   appended / written  [log_start, log_end)   in the OS, maybe not on disk
//   durable (committed) [log_start, high_watermark)   fdatasync'd
// Consumers see and producers are acknowledged for committed data only. In
// flush_mode::interval (relaxed, named as such in config and docs) data is
// visible when written and synced on a timer: a crash can lose what was
// acknowledged in the last interval.
//
// Group commit: append() writes batches to the OS; one sync() then covers
// every batch appended since the previous sync with a single fdatasync per
// dirty file (plus one directory fsync after a segment roll). The caller acks
// all of them when sync() returns.
//
// Fail stop: if a write cannot be undone or a sync fails, the partition stops
// accepting appends and syncs forever (until reopened): after a failed
// fdatasync the kernel may have dropped the dirty pages, so retrying and
// acking would lie. failure_reason() says which partition and why.
// A write that fails with ENOSPC/EDQUOT is rolled back (the file truncated to
// its previous size) and returned as errc::no_space; the partition stays
// healthy and appends succeed again once space returns.
//
// Recovery on open: sealed segments are trusted through their index files'
// headers (size must match) and not scanned; only the active segment is
// scanned. A torn tail (an incomplete or invalid batch after which no valid
// batch follows) is truncated. An invalid batch followed by valid data is
// corruption of acknowledged data: open fails (recovery_policy::fail, the
// default) naming the segment, position and what to do. Damaged or missing
// indexes are rebuilt from the segment. Corruption in a sealed segment is
// detected when its index is rebuilt or when a read hits it; it is reported
// and never served.
//
// Thread safety: none. One owner (the partition's disk thread) calls
// everything.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ferry/core/clock.h"
#include "ferry/core/result.h"
#include "ferry/core/types.h"
#include "ferry/format/batch.h"
#include "ferry/storage/env.h"

namespace ferry::storage {

enum class flush_mode {
  on_commit,  ///< default: data is visible and acknowledged only after fdatasync
  interval,   ///< relaxed: visible when written, fdatasync every flush_interval
};

enum class recovery_policy {
  fail,      ///< refuse to open when acknowledged data in the active segment is corrupt
  truncate,  ///< cut the active segment at the first invalid batch (loses data after it)
};

struct log_config {
  std::string name;                           ///< for messages, e.g. "orders-3"
  std::uint64_t segment_bytes = 64ull << 20;  ///< roll when the active segment would exceed this
  std::chrono::milliseconds segment_age{std::chrono::hours(24 * 7)};  ///< roll when older than this
  std::chrono::milliseconds retention_time{std::chrono::hours(24 * 7)};  ///< < 0: keep forever
  std::int64_t retention_bytes = -1;                                     ///< < 0: no size limit
  std::uint32_t max_batch_bytes = 8u << 20;   ///< larger batches are refused
  std::uint32_t index_interval_bytes = 4096;  ///< one index entry per this many bytes
  flush_mode flush = flush_mode::on_commit;
  std::chrono::milliseconds flush_interval{1000};  ///< flush_mode::interval only
  recovery_policy recovery = recovery_policy::fail;
};

struct append_result {
  offset base_offset;
  offset last_offset;
};

struct read_result {
  std::vector<std::byte> data;  ///< whole batches, bytes exactly as stored
  offset next_offset;           ///< offset after the last batch returned
  offset high_watermark;
  int batches = 0;
};

struct recovery_report {
  std::size_t segments = 0;
  std::uint64_t bytes_scanned = 0;    ///< active segment scan + index rebuilds
  std::uint64_t truncated_bytes = 0;  ///< torn tail cut off
  std::size_t indexes_rebuilt = 0;
  std::size_t corrupt_segments = 0;  ///< sealed segments with corruption found at open
  std::chrono::microseconds duration{0};
};

struct retention_result {
  std::size_t segments_deleted = 0;
  std::uint64_t bytes_deleted = 0;
  offset new_log_start;
};

struct log_stats {
  offset log_start;
  offset log_end;
  offset high_watermark;
  std::uint64_t size_bytes = 0;
  std::size_t segments = 0;
  std::uint64_t syncs = 0;  ///< fdatasync calls on segment files
  std::uint64_t appends = 0;
};

/// Damage a log knows of (found at open, or by a read): records from there
/// on in its segment are not served.
struct log_damage {
  std::string segment;         ///< the segment file's name
  std::uint64_t position = 0;  ///< byte in it where the damage starts
  std::optional<offset> from;  ///< the offset that batch should start at, if known
};

class partition_log {
 public:
  /// Opens (creating if needed) the log in `dir`, recovering as described
  /// above. `e` and `c` must outlive the log.
  [[nodiscard]] static result<std::unique_ptr<partition_log>> open(env& e, const fs::path& dir,
                                                                   log_config config,
                                                                   const clock& c);
  ~partition_log();
  partition_log(const partition_log&) = delete;
  partition_log& operator=(const partition_log&) = delete;

  /// Validates `batch` (one whole batch; validate_batch(full)), stamps its
  /// base offset in place and writes it. Not durable, not visible, not to be
  /// acknowledged until sync() returns an offset beyond it.
  [[nodiscard]] result<append_result> append(std::span<std::byte> batch);
  /// The same for a batch the caller already checked (format::check_batch):
  /// not validated again.
  [[nodiscard]] result<append_result> append(const format::checked_batch& batch);

  /// Makes every appended batch durable; returns the new high watermark.
  [[nodiscard]] result<offset> sync();

  /// flush_mode::interval: syncs if the interval has passed. Returns whether it synced.
  [[nodiscard]] result<bool> sync_if_due();

  /// Reads whole batches starting with the one containing `from`, up to
  /// `max_bytes` (at least one batch, however large), below the high
  /// watermark. Every batch returned passed its CRC check. `from` == high
  /// watermark gives an empty result; outside [log_start, high_watermark]
  /// gives errc::offset_out_of_range; corrupt data gives errc::corrupt_log.
  [[nodiscard]] result<read_result> read(offset from, std::size_t max_bytes);

  /// The earliest committed offset whose record timestamp is >= ts, or
  /// nullopt if there is none.
  [[nodiscard]] result<std::optional<offset>> offset_for_timestamp(timestamp_ms ts);

  /// Drops whole sealed segments past retention (time, then bytes): they
  /// leave the log at once (log start moves) and their files are renamed to
  /// *.deleted; remove_deleted() unlinks them later, off the append path.
  [[nodiscard]] result<retention_result> apply_retention();
  [[nodiscard]] result<std::size_t> remove_deleted();
  /// The files retention renamed and nobody unlinked yet, for a caller that
  /// unlinks them on another thread (they are no longer part of the log).
  [[nodiscard]] std::vector<fs::path> take_deleted();

  /// Seals the active segment (syncing it) and starts a new one.
  [[nodiscard]] result<void> roll();

  /// Removes every record at or after `o` (a batch boundary) and syncs what
  /// is kept: afterwards log end == high watermark == o, durably.
  /// An administrative operation: it may remove acknowledged records.
  [[nodiscard]] result<void> truncate_to(offset o);

  [[nodiscard]] offset log_start_offset() const noexcept;
  [[nodiscard]] offset log_end_offset() const noexcept;
  [[nodiscard]] offset high_watermark() const noexcept;
  [[nodiscard]] log_stats stats() const;
  [[nodiscard]] const recovery_report& recovery() const noexcept;
  [[nodiscard]] bool failed() const noexcept;
  /// The first known damage, if any.
  [[nodiscard]] std::optional<log_damage> damage() const;
  /// Why the partition failed stop ("" while healthy).
  [[nodiscard]] const std::string& failure_reason() const noexcept;
  [[nodiscard]] const log_config& config() const noexcept;
  /// Changes the limits that apply from now on: retention (time and bytes,
  /// at the next apply_retention()) and the largest batch append() takes.
  /// Data already written is not touched.
  void set_limits(std::chrono::milliseconds retention_time, std::int64_t retention_bytes,
                  std::uint32_t max_batch_bytes) noexcept;

  struct impl;

 private:
  explicit partition_log(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

/// "00000000000000001234.log" for base offset 1234.
[[nodiscard]] std::string segment_file_name(offset base, std::string_view suffix);

}  // namespace ferry::storage
