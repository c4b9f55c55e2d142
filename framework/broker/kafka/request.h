// A Kafka request inside the broker: its frame, decoded header, and the
// connection to answer on. The Kafka handlers (one file per API family,
// table in frontend.cc) decode the body with kafka::reader, work on
// broker_core in the pipeline's rounds like the native handlers, and
// answer with respond() - at once, after the round's sync, or when a
// parked fetch can answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "../acl.h"
#include "../pipeline.h"
#include "../quotas.h"
#include "ferry/kafka/apis.h"
#include "ferry/kafka/errors.h"
#include "ferry/kafka/server.h"
#include "ferry/kafka/wire.h"

namespace ferry::broker {

class kafka_frontend;

struct kafka_request {
  std::shared_ptr<kafka::connection> conn;
  std::uint64_t seq = 0;
  std::vector<std::byte> frame;  ///< the whole request; body() views into it
  std::int16_t api = 0;
  std::int16_t version = 0;
  std::int32_t correlation_id = 0;
  std::string client_id;
  /// The SASL-authenticated user (security on); empty without security.
  std::string principal;
  std::size_t body_at = 0;
  steady::time_point received{};
  steady::time_point deadline{};  ///< a fetch's long poll ends here
  kafka_frontend* frontend = nullptr;
  /// How long a quota makes the client wait (quotas.h): a produce's is
  /// charged at arrival, a fetch's when its answer is built. The answer's
  /// throttle_time_ms says so, and respond() stops reading the connection
  /// that long, as Kafka brokers mute a throttled channel.
  std::int32_t throttle_ms = 0;
  /// The request's bytes in flight for its principal; released with it.
  quota_ticket in_flight;

  [[nodiscard]] kafka::reader body() const {
    return kafka::reader(std::span<const std::byte>(frame).subspan(body_at));
  }
  /// A writer with the response header (correlation id) written.
  [[nodiscard]] kafka::writer response() const {
    kafka::writer w;
    w.i32(correlation_id);
    return w;
  }
  /// Sends `w` (made by response()) in order on the connection.
  void respond(kafka::writer&& w);
  /// No answer (a produce with acks=0).
  void respond_nothing();
  /// The request could not be decoded: the connection closes after the
  /// answers before it (what Kafka brokers do).
  void malformed(const char* why);
};

using kafka_handler = void (*)(round& r, std::unique_ptr<kafka_request> q);

/// With security on: whether the request's (SASL) principal may `op` on
/// the resource; a refusal is counted. True with security off.
[[nodiscard]] bool kafka_may(broker_core& c, const kafka_request& q, acl_resource resource,
                             std::string_view name, acl_op op) FERRY_REQUIRES(core_thread);
/// kafka_may() without counting a refusal (lists leave out what they may
/// not show).
[[nodiscard]] bool kafka_sees(broker_core& c, const kafka_request& q, acl_resource resource,
                              std::string_view name, acl_op op) FERRY_REQUIRES(core_thread);
/// An audit line for a Kafka admin request (its principal, peer, and
/// "listener":"kafka" in the target).
void kafka_audit(broker_core& c, const kafka_request& q, std::string_view action,
                 nlohmann::json target, wire::ErrorCode error, std::string_view message = {});

/// Whether `version` of the request's API has the field that starts at `from`.
[[nodiscard]] inline bool since(const kafka_request& q, int from) {
  return q.version >= from;
}

#define FERRY_KAFKA_HANDLER(name) \
  void name(round& r, std::unique_ptr<kafka_request> q) FERRY_REQUIRES(core_thread)

FERRY_KAFKA_HANDLER(kafka_metadata);  // metadata.cc
FERRY_KAFKA_HANDLER(kafka_produce);   // produce.cc
FERRY_KAFKA_HANDLER(kafka_init_producer_id);
FERRY_KAFKA_HANDLER(kafka_fetch);  // fetch.cc
FERRY_KAFKA_HANDLER(kafka_list_offsets);
FERRY_KAFKA_HANDLER(kafka_create_topics);  // topics.cc
FERRY_KAFKA_HANDLER(kafka_delete_topics);
FERRY_KAFKA_HANDLER(kafka_describe_configs);
FERRY_KAFKA_HANDLER(kafka_alter_configs);
FERRY_KAFKA_HANDLER(kafka_create_partitions);
FERRY_KAFKA_HANDLER(kafka_find_coordinator);  // groups.cc
FERRY_KAFKA_HANDLER(kafka_join_group);
FERRY_KAFKA_HANDLER(kafka_sync_group);
FERRY_KAFKA_HANDLER(kafka_heartbeat);
FERRY_KAFKA_HANDLER(kafka_leave_group);
FERRY_KAFKA_HANDLER(kafka_describe_groups);
FERRY_KAFKA_HANDLER(kafka_list_groups);
FERRY_KAFKA_HANDLER(kafka_delete_groups);
FERRY_KAFKA_HANDLER(kafka_offset_commit);  // offsets.cc
FERRY_KAFKA_HANDLER(kafka_offset_fetch);

#undef FERRY_KAFKA_HANDLER

/// The handler of an API served through the pipeline (every one in
/// kafka::kApis but ApiVersions, which the front-end answers); null for
/// any other key.
[[nodiscard]] kafka_handler find_kafka_handler(std::int16_t api) noexcept;

/// The front-end's first step: the request header (API, version,
/// correlation id, client id, and tagged fields in a flexible version)
/// decoded from `f`, which it takes over; null when the header does not
/// decode. The body is left for the handler.
[[nodiscard]] std::unique_ptr<kafka_request> decode_kafka_request(kafka::request_frame&& f);

/// What Metadata and FindCoordinator tell clients: this broker.
struct kafka_node {
  std::int32_t id = 0;
  std::string host;
  std::int32_t port = 0;
};

}  // namespace ferry::broker
