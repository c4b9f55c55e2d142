// Sparse per-segment indexes and their file format (private to storage).
//
// Both index files share a 56-byte header:
//   0  u32 magic 'FIDX'   4 u16 version (1)   6 u16 kind (1 offset, 2 time)
//   8  i64 base_offset    16 u64 log_size (segment bytes covered)
//   24 i64 next_offset    32 i64 max_timestamp   40 u64 reserved (0)
//   48 u32 entry_count    52 u32 crc32c over [0,52) and all entries
// Entries: offset index  {u32 relative_offset, u32 position}          8 bytes
//          time index    {i64 timestamp, u32 relative_offset, u32 position} 16 bytes
// A time entry's timestamp is the largest record timestamp of every batch
// *before* its position, so a lookup can start at the last entry whose
// timestamp is below the target.
//
// Index files are derived data: written unsynced when a segment is sealed,
// checked on load, rebuilt from the segment whenever anything disagrees.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "ferry/core/types.h"

namespace ferry::storage::detail {

inline constexpr std::uint32_t kIndexMagic = 0x58444946;  // "FIDX" little-endian
inline constexpr std::uint16_t kIndexVersion = 1;
inline constexpr std::size_t kIndexHeaderSize = 56;
enum class index_kind : std::uint16_t { offset = 1, time = 2 };

struct index_entry {
  std::uint32_t rel_offset;
  std::uint32_t position;
};

struct time_entry {
  std::int64_t timestamp;
  std::uint32_t rel_offset;
  std::uint32_t position;
};

struct index_header {
  index_kind kind = index_kind::offset;
  offset base_offset;
  std::uint64_t log_size = 0;
  offset next_offset;
  timestamp_ms max_timestamp;
  std::uint32_t entry_count = 0;
};

/// In-memory indexes of one segment plus the state that decides when the
/// next entry is due. Append and rebuild use the same rule, so a rebuilt
/// index equals the one built while appending.
struct segment_index {
  std::vector<index_entry> offsets;
  std::vector<time_entry> times;
  std::uint64_t bytes_since_entry = 0;
  timestamp_ms max_timestamp = timestamp_ms::min();

  /// Called for each batch, in order, before it is counted.
  void on_batch(std::uint32_t position, std::uint32_t rel_offset, std::uint32_t length,
                timestamp_ms batch_max, std::uint32_t interval) {
    if (bytes_since_entry >= interval) {
      offsets.push_back({rel_offset, position});
      times.push_back({max_timestamp.value(), rel_offset, position});
      bytes_since_entry = 0;
    }
    bytes_since_entry += length;
    max_timestamp = std::max(max_timestamp, batch_max);
  }

  /// Position of the last entry at or before `rel` (0 if none).
  [[nodiscard]] std::uint32_t position_for(std::uint32_t rel) const;
  /// Position of the last time entry whose timestamp is below `ts` (0 if none).
  [[nodiscard]] std::uint32_t position_for_time(timestamp_ms ts) const;
  /// Drops entries at or beyond `position`.
  void truncate(std::uint32_t position);
};

std::vector<std::byte> encode_offset_index(const index_header& h, std::span<const index_entry> e);
std::vector<std::byte> encode_time_index(const index_header& h, std::span<const time_entry> e);

/// Parses the header only (no CRC check: that needs the entries).
std::optional<index_header> decode_index_header(std::span<const std::byte> bytes);

/// Parses and checks a whole file: magic, version, kind, CRC, sizes, entries
/// strictly increasing and within log_size. nullopt on any mismatch.
std::optional<std::vector<index_entry>> decode_offset_index(std::span<const std::byte> bytes,
                                                            const index_header& expect);
std::optional<std::vector<time_entry>> decode_time_index(std::span<const std::byte> bytes,
                                                         const index_header& expect);

}  // namespace ferry::storage::detail
