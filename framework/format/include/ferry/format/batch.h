// The record batch: Ferry's unit of storage and transfer. Disk format = wire
// format: a producer builds a batch, the broker validates it, stamps the base
// offset into bytes 0..7 and appends it unchanged; consumers get the same
// bytes back. docs/log_format.md is the prose spec; the constants are here.
//
// Batch header (56 bytes, little-endian):
//   off size field            notes
//   0   8    base_offset      i64, stamped by the log; not covered by the CRC
//   8   4    batch_length     u32, whole batch including this header
//   12  4    crc              u32 CRC32C over bytes [16, batch_length)
//   16  1    magic            u8 = 1 (format version)
//   17  1    reserved         u8 = 0
//   18  2    attributes       u16 = 0 (compression etc. reserved)
//   20  4    record_count     i32 >= 1
//   24  8    first_timestamp  i64 ms, timestamp of the first record
//   32  8    max_timestamp    i64 ms, largest record timestamp
//   40  8    producer_id      i64, -1 = not an idempotent producer
//   48  2    producer_epoch   i16, -1 = none
//   50  2    reserved         u16 = 0
//   52  4    base_sequence    i32, -1 = none
// then record_count records:
//   varint  length of the rest of the record
//   u8      attributes (0)
//   zvarint timestamp delta from first_timestamp
//   varint  offset delta (0, 1, 2, ...)
//   zvarint key length (-1 = null), key bytes
//   zvarint value length (-1 = null), value bytes
//   varint  header count, then per header:
//           varint key length, key bytes (UTF-8), zvarint value length (-1 = null), value bytes
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

namespace ferry::format {

inline constexpr std::size_t kBatchHeaderSize = 56;
inline constexpr std::uint8_t kBatchMagic = 1;
inline constexpr std::size_t kCrcStart = 16;  // CRC covers [kCrcStart, batch_length)
/// Hard upper bound on any batch, whatever the configuration says.
inline constexpr std::uint32_t kMaxBatchBytes = 64u << 20;

namespace layout {
inline constexpr std::size_t base_offset = 0, batch_length = 8, crc = 12, magic = 16, reserved = 17,
                             attributes = 18, record_count = 20, first_timestamp = 24,
                             max_timestamp = 32, producer_id = 40, producer_epoch = 48,
                             reserved2 = 50, base_sequence = 52;
}

/// Decoded batch header. Decoding does not validate; see validate_batch().
struct batch_header {
  offset base_offset;
  std::uint32_t batch_length = 0;
  std::uint32_t crc = 0;
  std::uint8_t magic = 0;
  std::uint8_t reserved = 0;
  std::uint16_t attributes = 0;
  std::int32_t record_count = 0;
  timestamp_ms first_timestamp;
  timestamp_ms max_timestamp;
  producer_id pid{-1};
  producer_epoch epoch{-1};
  std::uint16_t reserved2 = 0;
  sequence_number base_sequence{-1};

  [[nodiscard]] offset last_offset() const noexcept { return base_offset + (record_count - 1); }
  [[nodiscard]] offset next_offset() const noexcept { return base_offset + record_count; }

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

/// A non-owning view of one record inside a batch. Valid while the batch
/// bytes are.
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

enum class validation { header_and_crc, full };

/// Checks one batch occupying exactly `bytes`: header fields, length, magic,
/// CRC, and with validation::full every record's framing (offset deltas
/// 0..n-1, lengths in bounds, nothing left over, first/max timestamps
/// consistent). Returns format::errc::invalid_batch with nothing read past `bytes`.
/// `what` receives a reason when non-null.
[[nodiscard]] result<batch_header> validate_batch(std::span<const std::byte> bytes,
                                                  validation level, std::string* what = nullptr);

/// A batch that passed validate_batch(..., full): only check_batch() makes
/// one, so code that takes a checked_batch (partition_log::append, the
/// broker's admission) never validates the same bytes again. A view: the
/// bytes stay owned by the caller and must outlive it.
class checked_batch {
 public:
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return bytes_; }
  [[nodiscard]] const batch_header& header() const noexcept { return header_; }

 private:
  friend result<checked_batch> check_batch(std::span<std::byte> bytes, std::string* what);
  checked_batch(std::span<std::byte> b, const batch_header& h) : bytes_(b), header_(h) {}
  std::span<std::byte> bytes_;
  batch_header header_;
};

/// validate_batch(bytes, full, what), keeping the verdict with the bytes.
[[nodiscard]] result<checked_batch> check_batch(std::span<std::byte> bytes,
                                                std::string* what = nullptr);

/// Calls fn(record_view) for each record of a batch that passed
/// validate_batch(..., full). Stops early if fn returns false.
template <typename Fn>
void for_each_record(std::span<const std::byte> batch, Fn&& fn);

/// Decodes every record of a validated batch (convenience for tests/tools).
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

  [[nodiscard]] std::size_t size_bytes() const noexcept { return buf_.size(); }
  [[nodiscard]] int record_count() const noexcept { return count_; }
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }

  /// Finishes the batch (header + CRC) and returns its bytes; the builder is
  /// then empty. base_offset is 0 until the log stamps it.
  [[nodiscard]] std::vector<std::byte> finish(const producer_info& producer = {});

 private:
  std::vector<std::byte> buf_;
  int count_ = 0;
  timestamp_ms first_ts_;
  timestamp_ms max_ts_;
};

/// Parses the records region; internal, used by for_each_record.
namespace detail {
bool next_record(std::span<const std::byte>& in, const batch_header& h, std::int32_t index,
                 record_view& out);
/// Decodes the header at the front of `in` and advances past it; false
/// when the bytes end early (validate_batch(full) rules that out).
bool next_header(std::span<const std::byte>& in, header_view& out);
}  // namespace detail

template <typename Fn>
void record_view::for_each_header(Fn&& fn) const {
  auto in = headers_raw;
  header_view h;
  for (std::uint32_t i = 0; i < header_count && detail::next_header(in, h); ++i) fn(h);
}

template <typename Fn>
void for_each_record(std::span<const std::byte> batch, Fn&& fn) {
  auto h = batch_header::decode(batch.data());
  auto rest = batch.subspan(kBatchHeaderSize);
  record_view r;
  for (std::int32_t i = 0; i < h.record_count; ++i) {
    if (!detail::next_record(rest, h, i, r)) return;
    if constexpr (std::is_same_v<decltype(fn(r)), bool>) {
      if (!fn(r)) return;
    } else {
      fn(r);
    }
  }
}

inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace ferry::format
