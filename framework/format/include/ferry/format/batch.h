// The record batch: Ferry's unit of storage and transfer, and exactly
// Kafka's RecordBatch v2 (magic 2). Disk format = wire format: a producer
// (Ferry's or any Kafka client) builds a batch, the broker checks it once,
// stamps the base offset and partition leader epoch into bytes 0..7 and
// 12..15 and appends the bytes unchanged; consumers get the same bytes
// back. docs/log_format.md is the prose spec; the constants are here.
//
// Batch header (61 bytes, big-endian):
//   off size field                   notes
//   0   8    baseOffset              i64, stamped by the log; not covered by the CRC
//   8   4    batchLength             i32, bytes after this field (whole batch - 12)
//   12  4    partitionLeaderEpoch    i32, stamped by the log (0); not covered by the CRC
//   16  1    magic                   i8 = 2
//   17  4    crc                     u32 CRC32C over bytes [21, end)
//   21  2    attributes              i16: bits 0-2 compression (compression.h),
//                                    bit 3 timestamp type (0 CreateTime, 1 LogAppendTime),
//                                    bit 4 transactional, bit 5 control (both refused)
//   23  4    lastOffsetDelta         i32 = recordsCount - 1
//   27  8    baseTimestamp           i64 ms, timestamp of the first record
//   35  8    maxTimestamp            i64 ms, largest record timestamp
//   43  8    producerId              i64, -1 = not an idempotent producer
//   51  2    producerEpoch           i16, -1 = none
//   53  4    baseSequence            i32, -1 = none
//   57  4    recordsCount            i32 >= 1
// then the records, compressed as one block when attributes say so. Each
// record (all varints zigzag-encoded, as Kafka writes them):
//   varint  length of the rest of the record
//   i8      attributes (0)
//   varlong timestamp delta from baseTimestamp
//   varint  offset delta (0, 1, 2, ...)
//   varint  key length (-1 = null), key bytes
//   varint  value length (-1 = null), value bytes
//   varint  header count, then per header:
//           varint key length, key bytes (UTF-8), varint value length (-1 = null), value bytes
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/core/result.h"
#include "ferry/core/types.h"
#include "ferry/format/compression.h"

namespace ferry::format {

inline constexpr std::size_t kBatchHeaderSize = 61;
inline constexpr std::int8_t kBatchMagic = 2;
/// The CRC covers [kCrcStart, end): from attributes on.
inline constexpr std::size_t kCrcStart = 21;
/// batchLength counts the bytes after baseOffset and itself.
inline constexpr std::size_t kBatchLengthOverhead = 12;
/// Hard upper bound on any batch, whatever the configuration says - and on
/// the records of a compressed batch once decompressed.
inline constexpr std::uint32_t kMaxBatchBytes = 64u << 20;
/// The magic of Ferry's own format 1 (little-endian, 56-byte header), which
/// a data directory written before format 2 holds (docs/log_format.md).
inline constexpr std::uint8_t kFormat1Magic = 1;

namespace layout {
inline constexpr std::size_t base_offset = 0, batch_length = 8, partition_leader_epoch = 12,
                             magic = 16, crc = 17, attributes = 21, last_offset_delta = 23,
                             base_timestamp = 27, max_timestamp = 35, producer_id = 43,
                             producer_epoch = 51, base_sequence = 53, records_count = 57;
}

namespace attribute {
inline constexpr std::int16_t compression_mask = 0x07;
inline constexpr std::int16_t log_append_time = 0x08;
inline constexpr std::int16_t transactional = 0x10;
inline constexpr std::int16_t control = 0x20;
}  // namespace attribute

/// Decoded batch header. Decoding does not validate; see validate_batch().
struct batch_header {
  offset base_offset;
  std::int32_t batch_length = 0;  ///< Kafka's batchLength: size() - 12
  std::int32_t partition_leader_epoch = -1;
  std::int8_t magic = 0;
  std::uint32_t crc = 0;
  std::int16_t attributes = 0;
  std::int32_t last_offset_delta = 0;
  timestamp_ms first_timestamp;  ///< Kafka's baseTimestamp
  timestamp_ms max_timestamp;
  producer_id pid{-1};
  producer_epoch epoch{-1};
  sequence_number base_sequence{-1};
  std::int32_t record_count = 0;

  /// The whole batch in bytes (header included).
  [[nodiscard]] std::uint64_t size() const noexcept {
    return static_cast<std::uint64_t>(static_cast<std::uint32_t>(batch_length)) +
           kBatchLengthOverhead;
  }
  [[nodiscard]] compression codec() const noexcept {
    return static_cast<compression>(attributes & attribute::compression_mask);
  }
  [[nodiscard]] offset last_offset() const noexcept { return base_offset + last_offset_delta; }
  [[nodiscard]] offset next_offset() const noexcept {
    return base_offset + (last_offset_delta + 1);
  }

  /// Reads the fixed header from the first kBatchHeaderSize bytes of `p`.
  static batch_header decode(const std::byte* p) noexcept;
};

/// Identity of an idempotent producer's batch (all -1 when not idempotent).
struct producer_info {
  producer_id pid{-1};
  producer_epoch epoch{-1};
  sequence_number base_sequence{-1};
};

/// A non-owning view of one header of a record.
struct header_view {
  std::string_view key;
  std::optional<std::span<const std::byte>> value;
};

/// A non-owning view of one record. Valid while the bytes it was read from
/// are (a batch's, or its decompressed records').
struct record_view {
  offset off;
  timestamp_ms timestamp;
  std::optional<std::span<const std::byte>> key;
  std::optional<std::span<const std::byte>> value;
  std::uint32_t header_count = 0;
  std::span<const std::byte> headers_raw;  // encoded headers

  [[nodiscard]] std::vector<header_view> headers() const;
  /// Calls fn(const header_view&) for each header, allocating nothing.
  template <typename Fn>
  void for_each_header(Fn&& fn) const;
  [[nodiscard]] std::string_view key_str() const noexcept;
  [[nodiscard]] std::string_view value_str() const noexcept;
};

/// header_and_crc: the header's fields, length, magic, CRC and attributes.
/// full: also every record - decompressed first when the batch is
/// compressed - with offset deltas 0..n-1, lengths in bounds, nothing left
/// over, maxTimestamp matching the records.
enum class validation { header_and_crc, full };

/// Checks one batch occupying exactly `bytes`. Returns errc::invalid_batch
/// with nothing read past `bytes`; `what` receives a reason when non-null.
/// With validation::full and a compressed batch, `records` (when non-null)
/// receives the decompressed records, so that they are not decompressed
/// again to be read.
[[nodiscard]] result<batch_header> validate_batch(std::span<const std::byte> bytes,
                                                  validation level, std::string* what = nullptr,
                                                  std::vector<std::byte>* records = nullptr);

/// A batch that passed validate_batch(..., full): only check_batch() makes
/// one, so code that takes a checked_batch (partition_log::append, the
/// broker's admission) never validates the same bytes again. The bytes stay
/// owned by the caller and must outlive it; a compressed batch's
/// decompressed records are owned here.
class checked_batch {
 public:
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return bytes_; }
  [[nodiscard]] const batch_header& header() const noexcept { return header_; }
  /// The records region, decompressed when the batch is compressed.
  [[nodiscard]] std::span<const std::byte> records() const noexcept;

 private:
  friend result<checked_batch> check_batch(std::span<std::byte> bytes, std::string* what);
  checked_batch(std::span<std::byte> b, const batch_header& h) : bytes_(b), header_(h) {}
  std::span<std::byte> bytes_;
  batch_header header_;
  std::vector<std::byte> inflated_;
};

/// validate_batch(bytes, full, what), keeping the verdict with the bytes.
[[nodiscard]] result<checked_batch> check_batch(std::span<std::byte> bytes,
                                                std::string* what = nullptr);

/// Parses the records region; internal, used by for_each_record.
namespace detail {
bool next_record(std::span<const std::byte>& in, const batch_header& h, std::int32_t index,
                 record_view& out);
/// Decodes the header at the front of `in` and advances past it; false
/// when the bytes end early (validate_batch(full) rules that out).
bool next_header(std::span<const std::byte>& in, header_view& out);
/// The records region of a batch that passed validate_batch: its own bytes,
/// or decompressed into `scratch`; empty when decompression fails.
std::span<const std::byte> records_of(std::span<const std::byte> batch, const batch_header& h,
                                      std::vector<std::byte>& scratch);
}  // namespace detail

/// Calls fn(record_view) for each record of `header`'s batch whose records
/// region is `records` (decompressed when the batch is compressed). Stops
/// early if fn returns false.
template <typename Fn>
void for_each_record_in(const batch_header& header, std::span<const std::byte> records, Fn&& fn) {
  record_view r;
  for (std::int32_t i = 0; i < header.record_count; ++i) {
    if (!detail::next_record(records, header, i, r)) return;
    if constexpr (std::is_same_v<decltype(fn(r)), bool>) {
      if (!fn(r)) return;
    } else {
      fn(r);
    }
  }
}

/// Calls fn(record_view) for each record of a batch that passed
/// validate_batch(..., full) (`batch` starts with it; bytes after it are
/// ignored), decompressing it first when it is compressed. Stops early if
/// fn returns false.
template <typename Fn>
void for_each_record(std::span<const std::byte> batch, Fn&& fn) {
  const auto h = batch_header::decode(batch.data());
  std::vector<std::byte> scratch;
  for_each_record_in(h, detail::records_of(batch, h, scratch), std::forward<Fn>(fn));
}

template <typename Fn>
void for_each_record(const checked_batch& batch, Fn&& fn) {
  for_each_record_in(batch.header(), batch.records(), std::forward<Fn>(fn));
}

/// Every record of an uncompressed batch (convenience for tests/tools; the
/// views point into `batch`).
[[nodiscard]] std::vector<record_view> decode_records(std::span<const std::byte> batch);

/// Builds one batch. Not thread-safe. Reuse after finish().
class batch_builder {
 public:
  struct header_input {
    std::string_view key;
    std::optional<std::span<const std::byte>> value;
  };

  batch_builder();

  void add(timestamp_ms ts, std::optional<std::span<const std::byte>> key,
           std::optional<std::span<const std::byte>> value,
           std::span<const header_input> headers = {});
  /// Convenience: string key and value, never null.
  void add(timestamp_ms ts, std::string_view key, std::string_view value,
           std::span<const header_input> headers = {});

  /// Bytes of the batch so far, uncompressed.
  [[nodiscard]] std::size_t size_bytes() const noexcept { return buf_.size(); }
  [[nodiscard]] int record_count() const noexcept { return count_; }
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }

  /// Finishes the batch (header + CRC), its records compressed with `codec`
  /// (kept uncompressed when compression would not make them smaller), and
  /// returns its bytes; the builder is then empty. baseOffset is 0 and
  /// partitionLeaderEpoch -1 until the log stamps them.
  [[nodiscard]] std::vector<std::byte> finish(const producer_info& producer = {},
                                              compression codec = compression::none);

 private:
  std::vector<std::byte> buf_;
  int count_ = 0;
  timestamp_ms first_ts_;
  timestamp_ms max_ts_;
};

namespace detail {

template <typename Fn>
void for_each_header_in(std::span<const std::byte> in, std::uint32_t count, Fn&& fn) {
  header_view h;
  for (std::uint32_t i = 0; i < count && next_header(in, h); ++i) fn(h);
}

}  // namespace detail

template <typename Fn>
void record_view::for_each_header(Fn&& fn) const {
  detail::for_each_header_in(headers_raw, header_count, std::forward<Fn>(fn));
}

inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace ferry::format
