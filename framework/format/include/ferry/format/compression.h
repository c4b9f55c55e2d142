// Record batch compression: Kafka's codecs, attributes bits 0-2 of a
// RecordBatch v2. The records of a batch (everything after the 61-byte
// header) are compressed as one block:
//
//   0 none
//   1 gzip    zlib's gzip stream (RFC 1952)
//   2 snappy  xerial framing (magic 0x82 "SNAPPY" 0, then 4-byte big-endian
//             length + raw snappy chunks), as Kafka's Java client writes;
//             a plain raw snappy block is read too (librdkafka may send one)
//   3 lz4     the LZ4 frame format
//   4 zstd    a zstd frame
//
// Decompression is bounded: more than `max_bytes` of output - declared in a
// frame header or produced - is refused before it is allocated (a
// decompression bomb), as is anything the codec reports as corrupt or
// truncated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/core/result.h"

namespace ferry::format {

enum class compression : std::uint8_t { none = 0, gzip = 1, snappy = 2, lz4 = 3, zstd = 4 };

/// "none", "gzip", "snappy", "lz4", "zstd".
[[nodiscard]] std::string_view to_string(compression c) noexcept;
/// The codec of that name (lower case); nullopt for any other.
[[nodiscard]] std::optional<compression> parse_compression(std::string_view name) noexcept;

/// Appends `in` compressed with `c` to `out`.
[[nodiscard]] result<void> compress(compression c, std::span<const std::byte> in,
                                    std::vector<std::byte>& out);

/// Replaces `out` with `in` decompressed; errc::invalid_batch (with `why`)
/// when `in` is not a valid stream of `c` or its output would exceed
/// `max_bytes`.
[[nodiscard]] result<void> decompress(compression c, std::span<const std::byte> in,
                                      std::vector<std::byte>& out, std::size_t max_bytes,
                                      std::string* why = nullptr);

}  // namespace ferry::format
