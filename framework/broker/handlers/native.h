// The native protocol's request handlers (schemas/protocol/protocol.fbs):
// one file per API family, registered in one table (table.cc) keyed by the
// request's body type, which follows protocol::kApis. A handler takes a
// decoded request - its envelope verified by protocol::decode_envelope -
// and answers it through the request's responder, at once or later in the
// round (pipeline.h: after the sync, after the offsets sync, when a parked
// fetch can answer, when a join completes). Handlers touch only
// broker_core; they know nothing of ZeroMQ, so tests drive them with a
// pipeline and a recording responder (tests/broker/handlers_test.cc).
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "../quotas.h"
#include "commits.h"
#include "ferry/protocol/apis.h"
#include "ferry/schemas/protocol_generated.h"
#include "pipeline.h"

namespace ferry::broker {

/// Bytes received from a front-end, kept alive by whatever owns them (a
/// ZeroMQ message, a test's vector).
struct in_frame {
  std::span<std::byte> bytes;
  std::shared_ptr<void> owner;
};

/// What a handler answers: the finished envelope and, for a fetch, the
/// batches it refers to by frame number (sent without copying).
struct native_response {
  std::vector<std::byte> envelope;
  std::vector<std::vector<std::byte>> data;
};

struct native_request;

/// The front-end a request came from.
class native_responder {
 public:
  virtual ~native_responder() = default;
  /// Core thread: sends `response` to the client that sent `request`.
  virtual void respond(native_request& request, native_response response) = 0;
};

struct native_request {
  const wire::Envelope* env = nullptr;  ///< verified; points into frames[0]
  std::vector<in_frame> frames;         ///< [0] envelope, [1..] data frames
  std::string peer;                     ///< the client's address (JoinGroup's member host)
  /// The authenticated user (security.enabled); empty without security.
  std::string principal;
  steady::time_point received{};
  steady::time_point deadline{};  ///< a fetch's long poll ends here
  native_responder* responder = nullptr;
  std::shared_ptr<void> identity;  ///< the front-end's handle on the client
  /// How long a quota holds the answer (quotas.h): a produce's charged at
  /// arrival, a fetch's when its answer is built. The answer says so.
  std::uint32_t throttle_ms = 0;
  /// The request's bytes in flight for its principal (the reply's are
  /// added; released once the reply left).
  quota_ticket in_flight;

  [[nodiscard]] std::uint64_t id() const noexcept { return env->request_id(); }
  [[nodiscard]] wire::Body type() const noexcept { return env->body_type(); }
  void respond(native_response r) { responder->respond(*this, std::move(r)); }
};

using native_handler = void (*)(round& r, std::unique_ptr<native_request> q);

/// The handler of `type`; null when `type` is not a request.
[[nodiscard]] native_handler find_native_handler(wire::Body type) noexcept;
/// Every (request type, handler) pair, for the table's own tests.
[[nodiscard]] std::span<const std::pair<wire::Body, native_handler>> native_handlers() noexcept;

/// A work item running `q`'s handler in a round.
[[nodiscard]] work native_work(std::unique_ptr<native_request> q);

// --- building responses (handlers/common.cc) --------------------------------

/// Finishes `fbb` with an envelope around `body` answering `request_id`.
[[nodiscard]] native_response envelope(flatbuffers::FlatBufferBuilder& fbb,
                                       std::uint64_t request_id, wire::Body type,
                                       flatbuffers::Offset<void> body,
                                       std::uint32_t throttle_ms = 0);
/// An ErrorResponse (counted as a refusal).
[[nodiscard]] native_response error_response(broker_metrics& stats, std::uint64_t request_id,
                                             wire::ErrorCode code, const std::string& message);
/// A string, or nothing for an empty one (optional fields stay absent).
[[nodiscard]] flatbuffers::Offset<flatbuffers::String> opt_string(
    flatbuffers::FlatBufferBuilder& fbb, std::string_view s);
/// Partitions grouped by topic, for assignments.
[[nodiscard]] std::vector<flatbuffers::Offset<wire::TopicPartitions>> topic_partitions(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<tp_key>& tps);

/// One CommitResult per staged entry (each error counted as a refusal).
[[nodiscard]] flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::CommitResult>>>
commit_results(flatbuffers::FlatBufferBuilder& fbb, broker_metrics& stats, const staged_commit& s);
/// A commit's entries as the broker's commit_entry (views into the request).
[[nodiscard]] std::vector<commit_entry> commit_entries(
    const flatbuffers::Vector<flatbuffers::Offset<wire::CommitEntry>>* entries);

/// One audit line (audit.h) for a state-changing request, when the broker
/// keeps an audit log: the request's principal and peer, `action` on
/// `target`, and how it ended.
void audit(broker_core& c, const native_request& q, std::string_view action,
           const nlohmann::json& target, wire::ErrorCode error, std::string_view message = {})
    FERRY_REQUIRES(core_thread);

// --- authorization (handlers/access.cc) -------------------------------------

/// Checks what `q` needs against the ACLs (security on); false when it was
/// refused and answered (NotAuthorized, counted, audited when it is an
/// admin action). True at once with security off or for a super user.
[[nodiscard]] bool authorize(broker_core& c, native_request& q) FERRY_REQUIRES(core_thread);
/// Whether the request's principal may `op` on a resource (lists leave out
/// what it may not describe). Always true with security off.
[[nodiscard]] bool may(broker_core& c, const native_request& q, acl_resource resource,
                       std::string_view name, acl_op op) FERRY_REQUIRES(core_thread);
/// The kinds of the `ferry dlq` markers in a produced batch ("redriven",
/// "purged", "redrive-start"): writing one is a redrive or a purge. Most
/// batches are ruled out by a byte search; a compressed one is read; a
/// batch that fails its check gives none (admission refuses it).
[[nodiscard]] std::vector<std::string> dlq_marker_kinds(std::span<std::byte> batch);
/// Answers `q` with NotAuthorized for `op` on the resource, counted and,
/// with an `audit_action`, audited.
void refuse_unauthorized(broker_core& c, native_request& q, acl_resource resource,
                         std::string_view name, acl_op op, const access_decision& d,
                         std::string_view audit_action) FERRY_REQUIRES(core_thread);

// --- the families (one file each) ------------------------------------------
#define FERRY_NATIVE_HANDLER(name) \
  void name(round& r, std::unique_ptr<native_request> q) FERRY_REQUIRES(core_thread)

FERRY_NATIVE_HANDLER(handle_produce);       // produce.cc
FERRY_NATIVE_HANDLER(handle_fetch);         // fetch.cc
FERRY_NATIVE_HANDLER(handle_create_topic);  // topics.cc
FERRY_NATIVE_HANDLER(handle_delete_topic);
FERRY_NATIVE_HANDLER(handle_list_topics);
FERRY_NATIVE_HANDLER(handle_describe_topic);
FERRY_NATIVE_HANDLER(handle_alter_topic);
FERRY_NATIVE_HANDLER(handle_list_offsets);
FERRY_NATIVE_HANDLER(handle_join_group);  // groups.cc
FERRY_NATIVE_HANDLER(handle_heartbeat);
FERRY_NATIVE_HANDLER(handle_leave_group);
FERRY_NATIVE_HANDLER(handle_list_groups);
FERRY_NATIVE_HANDLER(handle_describe_group);
FERRY_NATIVE_HANDLER(handle_delete_group);
FERRY_NATIVE_HANDLER(handle_commit_offsets);  // offsets.cc
FERRY_NATIVE_HANDLER(handle_fetch_offsets);
FERRY_NATIVE_HANDLER(handle_ledger_lookup);
FERRY_NATIVE_HANDLER(handle_init_producer);    // producers.cc
FERRY_NATIVE_HANDLER(handle_register_schema);  // schemas.cc
FERRY_NATIVE_HANDLER(handle_get_schema);
FERRY_NATIVE_HANDLER(handle_list_subjects);
FERRY_NATIVE_HANDLER(handle_set_compatibility);
FERRY_NATIVE_HANDLER(handle_set_topic_schema);
FERRY_NATIVE_HANDLER(handle_add_acls);  // acls.cc
FERRY_NATIVE_HANDLER(handle_remove_acls);
FERRY_NATIVE_HANDLER(handle_list_acls);

#undef FERRY_NATIVE_HANDLER

}  // namespace ferry::broker
