// Wire error codes (schemas/protocol/protocol.fbs, enum ErrorCode) as a
// std::error_code, so a broker's answer reaches the caller as a value it can
// compare: `if (r.error() == ferry::client::errc::unknown_topic)`.
//
// The numeric values equal the wire enum's and never change. The category
// is named "ferry.wire". Errors raised by the client itself use other
// categories: protocol::errc (timed_out, disconnected, malformed replies)
// and ferry::errc (invalid_argument, timed_out for back-pressure,
// shutting_down for a closed producer).
#pragma once

#include <system_error>

#include "ferry/schemas/protocol_generated.h"

namespace ferry::client {

enum class errc : int {
  ok = 0,
  unknown_topic = 1,
  unknown_partition = 2,
  invalid_request = 3,   ///< the broker could not decode or accept the request
  invalid_batch = 4,     ///< a produced batch failed the broker's CRC or structural check
  record_too_large = 5,  ///< a batch above the topic's max message size
  offset_out_of_range = 6,
  topic_already_exists = 7,
  disk_full = 8,         ///< retriable: nothing was written
  partition_failed = 9,  ///< the partition failed stop; operator action needed
  corrupt_data = 10,  ///< data failed its checksum (on the broker, or fetched data in the client)
  invalid_config = 11,
  shutting_down = 12,  ///< retriable: the broker is stopping
  timeout = 13,        ///< retriable: the broker gave up waiting (e.g. for durability)
  internal = 14,
  unsupported_version = 15,
  invalid_topic_name = 16,
  too_many_requests = 17,      ///< retriable: the broker's in-flight limit was reached
  rebalance_in_progress = 18,  ///< the group is rebalancing: rejoin before going on
  unknown_member = 19,         ///< not (or no longer) a member of the group: rejoin
  stale_generation = 20,       ///< fenced: a newer generation of the group exists
  not_assigned = 21,           ///< the partition is not assigned to this member
  offset_regression = 22,      ///< a commit below the committed offset (reset offsets instead)
  group_not_empty = 23,        ///< refused while the group has members
  unknown_group = 24,
  invalid_group_name = 25,
  producer_fenced = 26,        ///< a newer epoch of this producer exists: this one must stop
  out_of_order_sequence = 27,  ///< a gap in the producer's sequence: records may be missing
  invalid_producer = 28,       ///< unknown producer id or epoch: initialise the producer again
  incompatible_schema = 29,    ///< refused by the subject's compatibility mode
  invalid_schema = 30,         ///< not a binary schema, no root type, or too large
  unknown_subject = 31,
  unknown_schema = 32,               ///< no schema with that id or subject version
  schema_required = 33,              ///< the topic accepts only records with a registered schema id
  inconsistent_group_protocol = 34,  ///< the group has Kafka-protocol members (docs/kafka.md)
  /// The broker did not admit this client's key (docs/security.md): no
  /// key while the broker requires one, a key not in its users file, a
  /// revoked key, or --server-key not the broker's.
  authentication_failed = 35,
  /// Admitted, but no ACL allows this principal the operation on the
  /// resource, or one denies it (docs/security.md#authorization); the
  /// broker's message names both.
  not_authorized = 36,
  /// Another process joined the group with this consumer's
  /// group_instance_id (static membership, docs/consumer-groups.md): this
  /// one is fenced for good. Stop it; give each instance its own id.
  fenced_instance_id = 37,
};

/// The "ferry.wire" category.
const std::error_category& wire_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), wire_category()};
}

/// The error_code for a wire ErrorCode; None gives an empty (success) code.
/// One switch without default: a new wire code fails the build until mapped.
[[nodiscard]] std::error_code from_wire(wire::ErrorCode e) noexcept;

/// True for failures that may succeed if the same request is sent again:
/// wire DiskFull, ShuttingDown, Timeout, TooManyRequests, and
/// protocol::errc::timed_out / disconnected (no reply; the broker may be
/// restarting). Retrying a produce after timed_out may store it twice.
[[nodiscard]] bool is_retriable(std::error_code ec) noexcept;

}  // namespace ferry::client

template <>
struct std::is_error_code_enum<ferry::client::errc> : std::true_type {};
