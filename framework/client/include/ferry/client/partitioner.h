// The default partitioner, compatible with Apache Kafka's Java client: a
// keyed record goes to toPositive(murmur2(key)) % partitions, where
// murmur2 is Kafka's Utils.murmur2 (seed 0x9747b28c) and toPositive clears
// the sign bit (n & 0x7fffffff). The same key therefore lands on the same
// partition as with Kafka producers, given the same partition count.
//
// Records without a key (and without an explicit partition) are spread by
// the producer round-robin per batch ("sticky"): they all go to one
// partition until its batch is closed, then the next partition is used.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "ferry/core/types.h"

namespace ferry::client {

/// Kafka's murmur2 hash (org.apache.kafka.common.utils.Utils.murmur2), as a
/// signed 32-bit value like Java's.
[[nodiscard]] std::int32_t murmur2(std::span<const std::byte> data) noexcept;
[[nodiscard]] std::int32_t murmur2(std::string_view data) noexcept;

/// toPositive(murmur2(key)) % partitions. Precondition: partitions > 0.
[[nodiscard]] partition_id partition_for_key(std::string_view key,
                                             std::int32_t partitions) noexcept;

}  // namespace ferry::client
