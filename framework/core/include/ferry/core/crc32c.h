// CRC32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), as used by
// iSCSI, ext4, Kafka record batches and LevelDB. Uses the SSE4.2 crc32
// instruction when the CPU has it, else a slicing-by-8 table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ferry::crc32c {

/// Extends `crc` (the value of a previous call, or 0 to start) over `data`.
/// extend(extend(0, a), b) == value(a ++ b).
[[nodiscard]] std::uint32_t extend(std::uint32_t crc, const void* data, std::size_t n) noexcept;

[[nodiscard]] inline std::uint32_t value(const void* data, std::size_t n) noexcept {
  return extend(0, data, n);
}
[[nodiscard]] inline std::uint32_t value(std::span<const std::byte> s) noexcept {
  return extend(0, s.data(), s.size());
}

/// True when the hardware path is in use (for benchmarks and logs).
[[nodiscard]] bool hardware_accelerated() noexcept;

/// The portable implementation, exposed so tests can check both paths agree.
[[nodiscard]] std::uint32_t extend_portable(std::uint32_t crc, const void* data,
                                            std::size_t n) noexcept;

}  // namespace ferry::crc32c
