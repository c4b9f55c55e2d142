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
// Retries: describe_topic, list_topics and list_offsets are idempotent and
// are retried after retriable failures (is_retriable(): lost replies
// included) until options.api_timeout. create_topic and delete_topic are
// retried only when the broker says it did nothing (ShuttingDown,
// TooManyRequests, DiskFull, Timeout); a lost reply is reported as
// protocol::errc::timed_out or disconnected, because the topic may or may
// not have been created/deleted.
//
// Thread safety: none; use one admin per thread. Cheap to create (the
// ZeroMQ context is shared); a malformed broker endpoint is reported by the
// first call.
#pragma once

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
