// Offset commits: a group's committed offsets and the idempotency keys
// finished below them (its ledger), staged into the offsets log in one
// batch - so one durable write - and final once the round's offsets sync
// returned (pipeline.h).
//
// A commit by a member is checked against the group (a stale generation or
// an unknown member is refused, and each partition must be assigned to it -
// in a Ferry-protocol group; Kafka members' assignments are their own);
// a commit from outside the group (ferry groups reset-offsets, tools) is
// allowed only while the group has no members. A committed offset never
// moves backwards unless `reset` says so, and never beyond the high
// watermark.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "core.h"
#include "topic_table.h"

namespace ferry::broker {

struct commit_entry {
  std::string_view topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::optional<std::string_view> metadata;
  std::vector<std::string_view> ledger_keys;  ///< idempotency keys finished below `offset`
};

struct member_ref {
  std::string_view member_id;
  std::int32_t generation = 0;
  std::string_view instance_id;  ///< static members; empty: none
};

/// A GroupMember's group_instance_id, empty when it has none.
[[nodiscard]] inline std::string_view instance_of(const wire::GroupMember* m) {
  return m != nullptr && m->group_instance_id() != nullptr ? m->group_instance_id()->string_view()
                                                           : std::string_view{};
}

struct commit_outcome {
  std::string topic;
  std::int32_t partition = 0;
  wire::ErrorCode error = wire::ErrorCode::None;
  std::string message;
  bool staged = false;  ///< appended to the offsets log; durable after the round's sync
};

struct staged_commit {
  /// A refusal of the whole request (the group, the member); each entry
  /// then answers with it.
  outcome request;
  std::vector<commit_outcome> entries;

  /// An entry's answer: the request-level error if any, else its own.
  [[nodiscard]] wire::ErrorCode error_of(const commit_outcome& o) const noexcept {
    return request ? o.error : request.error;
  }
  [[nodiscard]] const std::string& message_of(const commit_outcome& o) const noexcept {
    return request ? o.message : request.message;
  }
};

/// Validates and appends a commit; the outcomes are final after
/// finish_commit() with the round's offsets sync result.
[[nodiscard]] staged_commit stage_commit(broker_core& c, std::string_view group,
                                         const std::optional<member_ref>& member,
                                         std::span<const commit_entry> entries, bool reset,
                                         steady::time_point now) FERRY_REQUIRES(core_thread);
/// Applies the offsets sync's result to the staged entries.
void finish_commit(broker_core& c, staged_commit& s, std::error_code sync)
    FERRY_REQUIRES(core_thread);

/// Every partition a group reads or has read: those it committed, those
/// its members own, and every other partition of those topics and of the
/// topics its members subscribe to - so a partition the group never
/// committed still shows, with lag from the log start.
[[nodiscard]] std::vector<tp_key> group_partitions(broker_core& c, std::string_view group,
                                                   steady::time_point now)
    FERRY_REQUIRES(core_thread);

/// Stages the deletion of an empty group's offsets (and ledger); final
/// after the round's offsets sync.
[[nodiscard]] outcome stage_delete_group(broker_core& c, std::string_view group,
                                         steady::time_point now) FERRY_REQUIRES(core_thread);
/// The outcome of a staged deletion after the offsets sync.
void finish_delete_group(broker_core& c, outcome& o, std::error_code sync)
    FERRY_REQUIRES(core_thread);

}  // namespace ferry::broker
