// Byte-level helpers of Ferry's formats: little-endian loads and stores
// (Ferry's own files: indexes, offsets, the producer registry), big-endian
// ones (the record batch: Kafka's RecordBatch v2 is big-endian), and LEB128
// varints with zigzag for signed values.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>

namespace ferry::le {

static_assert(std::endian::native == std::endian::little,
              "Ferry's formats are little-endian; big-endian hosts need byte swaps here");

template <typename T>
requires std::is_integral_v<T>
inline T load(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
requires std::is_integral_v<T>
inline void store(std::byte* p, T v) noexcept {
  std::memcpy(p, &v, sizeof v);
}

}  // namespace ferry::le

namespace ferry::be {

namespace detail {
template <typename U>
constexpr U swap(U v) noexcept {
  if constexpr (sizeof(U) == 2)
    return __builtin_bswap16(v);
  else if constexpr (sizeof(U) == 4)
    return __builtin_bswap32(v);
  else if constexpr (sizeof(U) == 8)
    return __builtin_bswap64(v);
  else
    return v;
}
}  // namespace detail

template <typename T>
requires std::is_integral_v<T>
inline T load(const std::byte* p) noexcept {
  using U = std::make_unsigned_t<T>;
  U v;
  std::memcpy(&v, p, sizeof v);
  v = detail::swap(v);
  return static_cast<T>(v);
}

template <typename T>
requires std::is_integral_v<T>
inline void store(std::byte* p, T v) noexcept {
  using U = std::make_unsigned_t<T>;
  auto u = static_cast<U>(v);
  u = detail::swap(u);
  std::memcpy(p, &u, sizeof u);
}

}  // namespace ferry::be

namespace ferry::varint {

/// Largest encoding of a 64-bit value.
inline constexpr std::size_t kMaxBytes = 10;

inline constexpr std::uint64_t zigzag(std::int64_t v) noexcept {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
inline constexpr std::int64_t unzigzag(std::uint64_t v) noexcept {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

/// Writes `v` at `out` (room for kMaxBytes); returns bytes written.
inline std::size_t put(std::byte* out, std::uint64_t v) noexcept {
  std::size_t n = 0;
  while (v >= 0x80) {
    out[n++] = static_cast<std::byte>(v | 0x80);
    v >>= 7;
  }
  out[n++] = static_cast<std::byte>(v);
  return n;
}

inline std::size_t size(std::uint64_t v) noexcept {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

/// Reads a varint from the front of `in`, advancing it. nullopt when the
/// input ends early or the encoding is longer than 10 bytes / overflows.
inline std::optional<std::uint64_t> get(std::span<const std::byte>& in) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < kMaxBytes && i < in.size(); ++i) {
    auto b = static_cast<std::uint64_t>(in[i]);
    if (i == 9 && b > 1) return std::nullopt;  // would overflow 64 bits
    v |= (b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      in = in.subspan(i + 1);
      return v;
    }
  }
  return std::nullopt;
}

}  // namespace ferry::varint
