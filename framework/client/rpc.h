// Private helpers shared by admin, consumer and producer: one request/reply
// round trip with retries, and the encoding/decoding of requests that more
// than one client type sends.
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ferry/client/admin.h"
#include "ferry/client/connection.h"
#include "ferry/client/errc.h"
#include "ferry/client/types.h"
#include "ferry/core/result.h"
#include "ferry/protocol/errc.h"

namespace ferry::client::detail {

/// Checks that `r` carries a body of type `want`. An ErrorResponse becomes
/// its wire error (message into `message`); any other type is
/// protocol::errc::unknown_message.
[[nodiscard]] result<void> expect_body(const reply& r, wire::Body want, std::string* message);

enum class retry_timeouts { yes, no };

/// Sends the request that build(fbb) -> pair<wire::Body, Offset<void>>
/// creates, waits up to request_timeout for the reply and returns
/// parse(reply) -> result<T>. Retriable failures are retried after
/// retry_backoff while `deadline` allows; lost replies (timed_out, or
/// disconnected while in flight) only with retry_timeouts::yes, because the
/// request may have been carried out.
template <typename T, typename Build, typename Parse>
result<T> call(connection& c, steady_time deadline, retry_timeouts timeouts, Build&& build,
               Parse&& parse) {
  const client_options& o = c.options();
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    const steady_time attempt_deadline = std::min(deadline, now + o.request_timeout);
    result<T> r = [&]() -> result<T> {
      flatbuffers::FlatBufferBuilder fbb;
      auto [type, body] = build(fbb);
      FERRY_TRY(auto id, c.send(fbb, type, body));
      FERRY_TRY(auto rep, c.wait_for(id, attempt_deadline));
      return parse(rep);
    }();
    if (r || !is_retriable(r.error())) return r;
    if (timeouts == retry_timeouts::no &&
        (r.error() == protocol::errc::timed_out || r.error() == protocol::errc::disconnected))
      return r;
    now = std::chrono::steady_clock::now();
    if (now + o.retry_backoff >= deadline) return r;
    std::this_thread::sleep_for(o.retry_backoff);
  }
}

/// One ListOffsets question.
struct offset_query {
  topic_partition tp;
  offset_spec spec = offset_spec::earliest;
  timestamp_ms timestamp = timestamp_ms::none();
};

/// One answer: an error, or an offset (-1 with offset_spec::timestamp: no
/// record at or after the timestamp).
struct offset_answer {
  std::error_code error;
  std::int64_t offset = -1;
};

[[nodiscard]] std::pair<wire::Body, flatbuffers::Offset<void>> build_list_offsets(
    flatbuffers::FlatBufferBuilder& fbb, std::span<const offset_query> queries);

/// Matches the results to `queries` by topic and partition; a query without
/// a result gets protocol::errc::missing_field.
[[nodiscard]] result<std::vector<offset_answer>> parse_list_offsets(
    const reply& r, std::span<const offset_query> queries, std::string* message);

/// The partition count and max message size of a DescribeTopicResponse.
struct topic_metadata {
  std::int32_t partitions = 0;
  std::int32_t max_message_bytes = 0;
};

[[nodiscard]] std::pair<wire::Body, flatbuffers::Offset<void>> build_describe_topic(
    flatbuffers::FlatBufferBuilder& fbb, std::string_view topic);
[[nodiscard]] result<topic_description> parse_describe_topic(const reply& r, std::string* message);
/// A TopicConfig as the client's topic_config (partitions 0 when absent).
[[nodiscard]] topic_config config_from_wire(const wire::TopicConfig* c);

/// Clamps a duration to the int32 milliseconds the wire carries.
[[nodiscard]] std::int32_t wire_ms(std::chrono::milliseconds d) noexcept;

}  // namespace ferry::client::detail
