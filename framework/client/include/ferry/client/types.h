// Values the client API passes around: topic-partitions, headers, records
// to produce, records consumed, and where a produced record landed.
//
// Keys, values and header values are byte strings held in std::string
// (binary-safe; may contain NULs). std::nullopt is a null key/value, which
// is distinct from an empty one.
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "ferry/core/types.h"

namespace ferry::client {

struct topic_partition {
  std::string topic;
  partition_id partition{0};

  auto operator<=>(const topic_partition&) const = default;
  bool operator==(const topic_partition&) const = default;
};

/// One record header. Keys are UTF-8 text; values are bytes or null.
struct header {
  std::string key;
  std::optional<std::string> value;

  bool operator==(const header&) const = default;
};

struct producer_record {
  std::string topic;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<header> headers;
  /// Explicit partition; when empty the producer's partitioner chooses
  /// (see partitioner.h).
  std::optional<partition_id> partition;
  /// Milliseconds since the epoch; when empty the producer uses the wall
  /// clock at send(). Must be >= 0.
  std::optional<timestamp_ms> timestamp;
  /// The record's idempotency key (e.g. "order-1234/paid"), sent as the
  /// header protocol::kIdempotencyKeyHeader; 1-1024 bytes. A Ferry worker
  /// hands a key its group has processed to no handler again (within the
  /// group's ledger window).
  std::optional<std::string> idempotency_key;
};

/// Where an acknowledged (durable) record was stored.
struct record_metadata {
  std::string topic;
  partition_id partition{0};
  ferry::offset offset;
};

struct consumer_record {
  std::string topic;
  partition_id partition{0};
  ferry::offset offset;
  timestamp_ms timestamp;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<header> headers;

  /// The value of the first header named `name`, if any.
  [[nodiscard]] const std::optional<std::string>* header_value(std::string_view name) const {
    for (const auto& h : headers)
      if (h.key == name) return &h.value;
    return nullptr;
  }
};

/// A committed position of a group: `next` is the offset of the next record
/// to consume (one past the last record processed), as in Kafka.
struct offset_commit {
  topic_partition tp;
  ferry::offset next;
  std::string metadata;  ///< free-form, at most 4096 bytes
  /// Idempotency keys of records below `next` that were processed
  /// successfully: recorded in the group's ledger in the same durable write
  /// as the offset (see consumer::ledger_lookup()).
  std::vector<std::string> ledger_keys;

  bool operator==(const offset_commit&) const = default;
};

/// The broker's answer for one partition of a commit.
struct commit_result {
  topic_partition tp;
  std::error_code error;  ///< empty: durable
  std::string message;
};

/// What a group has committed for one partition.
struct committed_position {
  topic_partition tp;
  std::optional<ferry::offset> next;  ///< empty: nothing committed
  std::string metadata;
  timestamp_ms commit_time;
};

}  // namespace ferry::client
