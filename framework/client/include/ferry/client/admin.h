// Topic administration and offset lookups.
//
//   ferry::client::admin a({.broker = "tcp://127.0.0.1:7400"});
//   if (auto r = a.create_topic("orders", {.partitions = 6}); !r)
//     fmt::print("{}: {}\n", r.error().message(), a.last_error_message());
//
// Errors: broker answers arrive as ferry::client::errc (category
// "ferry.wire"), with the broker's explanation in last_error_message(); no
// reply within options.request_timeout is protocol::errc::timed_out.
//
// Retries: describe_topic, list_topics, list_offsets, list_groups,
// describe_group and committed_offsets are idempotent and are retried after
// retriable failures (is_retriable(): lost replies included) until
// options.api_timeout. create_topic, delete_topic, reset_offsets and
// delete_group are retried only when the broker says it did nothing
// (ShuttingDown, TooManyRequests, DiskFull, Timeout); a lost reply is
// reported as protocol::errc::timed_out or disconnected, because the change
// may or may not have been made.
//
// Thread safety: none; use one admin per thread. Cheap to create (the
// ZeroMQ context is shared); a malformed broker endpoint is reported by the
// first call.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "ferry/client/options.h"
#include "ferry/client/types.h"
#include "ferry/core/result.h"

namespace ferry::client {

class connection;

/// Topic settings; the special values mean "broker default".
struct topic_config {
  std::int32_t partitions = 1;
  std::int64_t retention_ms = -2;      ///< -2: broker default, -1: forever
  std::int64_t retention_bytes = -2;   ///< -2: broker default, -1: unlimited
  std::int32_t max_message_bytes = 0;  ///< largest batch the topic accepts; 0: broker default
  std::int64_t segment_bytes = 0;      ///< 0: broker default
};

struct topic_summary {
  std::string name;
  std::int32_t partitions = 0;
};

struct partition_info {
  partition_id partition{0};
  offset log_start;
  offset log_end;
  offset high_watermark;  ///< last durable offset + 1; consumers see records below it
  std::int64_t size_bytes = 0;
  std::int32_t segments = 0;
  std::error_code error;  ///< e.g. errc::partition_failed; empty when healthy
  std::string message;
};

struct topic_description {
  std::string name;
  topic_config config;
  std::vector<partition_info> partitions;
};

enum class offset_spec { earliest, latest, timestamp };

struct group_summary {
  std::string group;
  std::string state;  ///< Empty, PreparingRebalance or Stable
  std::int32_t members = 0;
  std::int32_t generation = 0;
};

struct group_member_info {
  std::string member_id;
  std::string client_id;
  std::string host;  ///< the member's address as the broker sees it ("" if unknown)
  std::vector<std::string> topics;
  std::vector<topic_partition> assignment;
  std::chrono::milliseconds since_seen{0};  ///< since its last heartbeat, fetch or commit
};

struct group_partition_info {
  topic_partition tp;
  std::optional<offset> committed;  ///< empty: nothing committed
  std::optional<offset> log_end;    ///< high watermark; empty: the topic/partition is gone
  /// Timestamp of the oldest record not yet consumed (the one at
  /// `committed`); empty when there is no lag or nothing committed.
  std::optional<timestamp_ms> oldest_unconsumed;
  std::string member_id;  ///< owner in the current generation ("" if none)
  std::string metadata;
  std::error_code error;

  /// log_end - committed, when both are known (never negative).
  [[nodiscard]] std::optional<std::int64_t> lag() const noexcept {
    if (!committed || !log_end) return std::nullopt;
    return std::max<std::int64_t>(0, log_end->value() - committed->value());
  }
};

struct group_description {
  std::string group;
  std::string state;
  std::int32_t generation = 0;
  std::string strategy;  ///< sticky, range or round-robin
  std::vector<group_member_info> members;
  std::vector<group_partition_info> partitions;  ///< committed or assigned, sorted
  timestamp_ms broker_time;  ///< the broker's clock when it answered (for lag in seconds)
};

class admin {
 public:
  explicit admin(client_options options = {});
  ~admin();
  admin(admin&&) noexcept;
  admin& operator=(admin&&) noexcept;

  /// Creates a topic. errc::topic_already_exists, errc::invalid_topic_name,
  /// errc::invalid_config are the usual refusals.
  [[nodiscard]] result<void> create_topic(std::string_view name, const topic_config& config);
  [[nodiscard]] result<void> delete_topic(std::string_view name);
  [[nodiscard]] result<std::vector<topic_summary>> list_topics();
  /// errc::unknown_topic if there is no such topic. Per-partition failures
  /// are reported in partition_info::error, not as an error of the call.
  [[nodiscard]] result<topic_description> describe_topic(std::string_view name);

  /// earliest: the log start offset; latest: the log end offset (the next
  /// offset to be written); timestamp: the first offset whose record
  /// timestamp is >= timestamp_ms, or std::nullopt if there is none.
  [[nodiscard]] result<std::optional<offset>> list_offsets(
      std::string_view topic, partition_id partition, offset_spec spec,
      timestamp_ms timestamp = timestamp_ms::none());

  // --- consumer groups ---------------------------------------------------

  [[nodiscard]] result<std::vector<group_summary>> list_groups();
  /// errc::unknown_group when the broker has neither members nor offsets
  /// for it.
  [[nodiscard]] result<group_description> describe_group(std::string_view group);
  /// The group's committed positions; an empty `partitions` means all it has.
  [[nodiscard]] result<std::vector<committed_position>> committed_offsets(
      std::string_view group, const std::vector<topic_partition>& partitions = {});
  /// Sets committed offsets from outside the group, backwards too (replay).
  /// Refused with errc::group_not_empty while the group has members.
  /// Per-partition refusals (unknown partition, beyond the log end) are in
  /// the results. Not retried after a lost reply (it may have been applied;
  /// running it again sets the same offsets).
  [[nodiscard]] result<std::vector<commit_result>> reset_offsets(
      std::string_view group, const std::vector<offset_commit>& offsets);
  /// Deletes an empty group's offsets. errc::group_not_empty,
  /// errc::unknown_group.
  [[nodiscard]] result<void> delete_group(std::string_view group);

  /// The broker's message for the last failed call (empty if it sent none).
  [[nodiscard]] const std::string& last_error_message() const noexcept {
    return last_error_message_;
  }

 private:
  client_options options_;
  std::unique_ptr<connection> conn_;
  std::string last_error_message_;
};

}  // namespace ferry::client
