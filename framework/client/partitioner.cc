#include "ferry/client/partitioner.h"

namespace ferry::client {

// A line-by-line port of Kafka's Utils.murmur2. Java int arithmetic wraps,
// so everything is done in uint32_t and converted at the end; Java's `>>>`
// is a logical shift, which is what >> does on unsigned values.
std::int32_t murmur2(std::span<const std::byte> data) noexcept {
  const auto length = static_cast<std::uint32_t>(data.size());
  constexpr std::uint32_t seed = 0x9747b28c;
  constexpr std::uint32_t m = 0x5bd1e995;
  constexpr int r = 24;
  std::uint32_t h = seed ^ length;
  const std::uint32_t length4 = length / 4;
  auto byte_at = [&](std::uint32_t i) { return static_cast<std::uint32_t>(data[i]); };
  for (std::uint32_t i = 0; i < length4; ++i) {
    const std::uint32_t i4 = i * 4;
    std::uint32_t k =
        byte_at(i4) | (byte_at(i4 + 1) << 8) | (byte_at(i4 + 2) << 16) | (byte_at(i4 + 3) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const std::uint32_t tail = length & ~3u;
  switch (length % 4) {
    case 3:
      h ^= byte_at(tail + 2) << 16;
      [[fallthrough]];
    case 2:
      h ^= byte_at(tail + 1) << 8;
      [[fallthrough]];
    case 1:
      h ^= byte_at(tail);
      h *= m;
      break;
    default:
      break;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<std::int32_t>(h);
}

std::int32_t murmur2(std::string_view data) noexcept {
  return murmur2(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(data.data()), data.size()));
}

partition_id partition_for_key(std::string_view key, std::int32_t partitions) noexcept {
  const auto positive = static_cast<std::uint32_t>(murmur2(key)) & 0x7fffffffu;
  return partition_id(static_cast<std::int32_t>(positive % static_cast<std::uint32_t>(partitions)));
}

}  // namespace ferry::client
