// What a dead letter carries, and the record headers the runtime uses.
//
// A dead letter is the original record (key, value and headers unchanged)
// appended to the dead-letter topic with these headers added:
//   ferry.failure   the failure record below, FlatBuffers
//                   (schemas/runtime/failure.fbs, identifier "FFR1")
//   ferry.origin    "topic/partition/offset" of the record first consumed
//   ferry.route     "group/topic/partition/offset" of the record whose
//                   handling produced this one (a retry-tier record's own
//                   position for records coming from a tier); the worker
//                   looks for it after a crash so that a route is never
//                   written twice
//   ferry.attempt   attempts made so far, decimal
// A record republished to a retry tier carries the same headers
// (ferry.failure holds the attempts so far, reason AttemptsExhausted is
// meaningless there). Any existing ferry.* runtime header of the record is
// replaced, never duplicated.
//
// Size bound: at most kMaxKeptAttempts attempts (the first 4 and the last
// 12), messages cut to kMaxErrorMessageBytes, so a failure record stays
// under ~12 KiB whatever happened.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/client/types.h"
#include "ferry/core/result.h"

namespace ferry::runtime {

inline constexpr std::string_view kFailureHeader = "ferry.failure";
inline constexpr std::string_view kOriginHeader = "ferry.origin";
inline constexpr std::string_view kRouteHeader = "ferry.route";
inline constexpr std::string_view kAttemptHeader = "ferry.attempt";

inline constexpr std::size_t kMaxKeptAttempts = 16;
inline constexpr std::size_t kKeptFirstAttempts = 4;
inline constexpr std::size_t kMaxErrorMessageBytes = 512;

/// How the runtime treated a handler's error.
enum class error_class : std::uint8_t { retriable = 0, permanent = 1, invalid_payload = 2 };

/// Why a record was dead-lettered.
enum class dead_letter_reason : std::uint8_t {
  attempts_exhausted = 0,
  permanent_error = 1,
  invalid_payload = 2,
};

[[nodiscard]] std::string_view to_string(error_class c) noexcept;
[[nodiscard]] std::string_view to_string(dead_letter_reason r) noexcept;
/// "attempts_exhausted" / "permanent_error" / "invalid_payload".
[[nodiscard]] std::optional<dead_letter_reason> parse_reason(std::string_view s) noexcept;

struct attempt_record {
  std::int64_t time_ms = 0;
  error_class cls = error_class::retriable;
  std::string category;  ///< std::error_category::name()
  std::int32_t code = 0;
  std::string message;
  std::string worker;

  bool operator==(const attempt_record&) const = default;
};

struct failure_record {
  std::string origin_topic;
  std::int32_t origin_partition = 0;
  std::int64_t origin_offset = -1;
  std::optional<std::string> origin_key;
  std::int64_t origin_timestamp_ms = 0;
  std::string group;
  std::string worker;
  std::vector<attempt_record> attempts;  ///< oldest first, bounded (see above)
  std::int32_t attempts_total = 0;
  dead_letter_reason reason = dead_letter_reason::attempts_exhausted;
  std::string reason_message;
  std::int64_t dead_lettered_ms = 0;

  /// Appends an attempt, keeping the first kKeptFirstAttempts and the most
  /// recent ones within kMaxKeptAttempts; counts it in attempts_total.
  void add_attempt(attempt_record a);

  bool operator==(const failure_record&) const = default;
};

/// FlatBuffers bytes of `f` (strings cut to their bounds).
[[nodiscard]] std::string encode_failure(const failure_record& f);
/// Verifies (FlatBuffers Verifier, identifier, enum ranges) and decodes.
/// ferry::errc::corrupt_data with nothing read past `bytes` when invalid.
[[nodiscard]] result<failure_record> decode_failure(std::string_view bytes);

/// "topic/partition/offset" and back (the topic may contain '/': never; see
/// protocol::valid_topic_name).
struct record_position {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = -1;

  bool operator==(const record_position&) const = default;
  auto operator<=>(const record_position&) const = default;
};
[[nodiscard]] std::string format_position(const record_position& p);
[[nodiscard]] std::optional<record_position> parse_position(std::string_view s);

/// "group/topic/partition/offset" and back.
struct route_id {
  std::string group;
  record_position source;

  bool operator==(const route_id&) const = default;
  auto operator<=>(const route_id&) const = default;
};
[[nodiscard]] std::string format_route(const route_id& r);
[[nodiscard]] std::optional<route_id> parse_route(std::string_view s);

/// Replaces (or adds) header `name` in `headers`, removing duplicates.
void set_header(std::vector<client::header>& headers, std::string_view name, std::string value);
/// The value of the first header `name` (nullopt: absent or null).
[[nodiscard]] std::optional<std::string> get_header(const std::vector<client::header>& headers,
                                                    std::string_view name);

}  // namespace ferry::runtime
