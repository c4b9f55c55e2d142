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
// kafka:// brokers (docs/kafka.md): topics, offsets and groups go through
// librdkafka's Admin API, and the schema registry is kept in the topic
// _ferry_schemas with the same checks; alter_topic uses Kafka's
// AlterConfigs (keeping the topic's other configs) and CreatePartitions;
// set_topic_schema needs ferryd's native protocol and fails with
// ferry::errc::not_supported, saying so in last_error_message().
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
#include "ferry/protocol/acl.h"
#include "ferry/schema/schema.h"

namespace ferry::client {

class connection;
class kafka_admin;

/// Topic settings; the special values mean "broker default".
struct topic_config {
  std::int32_t partitions = 1;
  std::int64_t retention_ms = -2;      ///< -2: broker default, -1: forever
  std::int64_t retention_bytes = -2;   ///< -2: broker default, -1: unlimited
  std::int32_t max_message_bytes = 0;  ///< largest batch the topic accepts; 0: broker default
  std::int64_t segment_bytes = 0;      ///< 0: broker default
  /// Schema subject bound to the topic ("": <topic>-value) and whether the
  /// broker refuses records without a schema id of that subject.
  std::string schema_subject{};
  bool schema_validation = false;
};

/// What `admin::alter_topic` changes; what is left empty stays as it is.
struct topic_changes {
  /// More partitions (never fewer). Keys are mapped to partitions by count,
  /// so new records of a key may go to a different partition than its
  /// earlier records.
  std::optional<std::int32_t> partitions{};
  std::optional<std::int64_t> retention_ms{};     ///< -1: forever
  std::optional<std::int64_t> retention_bytes{};  ///< -1: unlimited
  std::optional<std::int32_t> max_message_bytes{};
  bool validate_only = false;  ///< check, change nothing
};

struct topic_summary {
  std::string name;
  std::int32_t partitions = 0;
};

struct partition_info {
  partition_id partition{0};
  offset log_start;
  offset log_end;
  offset high_watermark;        ///< last durable offset + 1; consumers see records below it
  std::int64_t size_bytes = 0;  ///< -1: not known (kafka:// does not tell)
  std::int32_t segments = 0;    ///< -1: not known
  std::error_code error;        ///< e.g. errc::partition_failed; empty when healthy
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
  std::string instance_id;                  ///< group_instance_id of a static member, or ""
};

struct group_partition_info {
  topic_partition tp;
  std::optional<offset> committed;  ///< empty: nothing committed
  std::optional<offset> log_end;    ///< high watermark; empty: the topic/partition is gone
  /// The log start: where a group with nothing committed starts (earliest).
  std::optional<offset> log_start;
  /// Timestamp of the oldest record not yet consumed (the one at
  /// `committed`); empty when there is no lag or nothing committed.
  std::optional<timestamp_ms> oldest_unconsumed;
  std::string member_id;  ///< owner in the current generation ("" if none)
  std::string metadata;
  std::error_code error;

  /// log_end - committed, when both are known (never negative).
  /// log_end - committed; with nothing committed, log_end - log_start
  /// (the group starts at the earliest record).
  [[nodiscard]] std::optional<std::int64_t> lag() const noexcept {
    if (!log_end) return std::nullopt;
    if (committed) return std::max<std::int64_t>(0, log_end->value() - committed->value());
    if (log_start) return std::max<std::int64_t>(0, log_end->value() - log_start->value());
    return std::nullopt;
  }
  /// The age in ms of the oldest unconsumed record at `broker_time`
  /// (group_description::broker_time): 0 without lag, nothing when unknown
  /// (nothing committed, the record is gone, the topic is gone).
  [[nodiscard]] std::optional<std::int64_t> lag_ms(timestamp_ms broker_time) const noexcept {
    auto l = lag();
    if (!l) return std::nullopt;
    if (*l == 0) return 0;
    if (!oldest_unconsumed) return std::nullopt;
    return std::max<std::int64_t>(0, broker_time - *oldest_unconsumed);
  }
};

struct group_description {
  std::string group;
  std::string state;
  std::int32_t generation = 0;
  std::string strategy;  ///< sticky, range or round-robin; "kafka consumer/range" for Kafka clients
  std::vector<group_member_info> members;
  std::vector<group_partition_info> partitions;  ///< committed or assigned, sorted
  timestamp_ms broker_time;  ///< the broker's clock when it answered (for lag in seconds)
};

// --- schema registry (docs/schemas.md) -------------------------------------

enum class schema_action {
  register_schema,  ///< check against the subject's mode, then add a version (or find it)
  check,            ///< check only; nothing stored
  lookup,           ///< an identical version already in the subject, else errc::unknown_schema
};

/// One violation (or warning) the broker's compatibility check found.
struct schema_finding {
  std::string rule;  ///< e.g. "field_type_changed"
  std::string type;
  std::string field;
  std::string message;
  std::int32_t against_version = 0;
  bool warning = false;
};

struct schema_registration {
  std::int64_t id = -1;
  std::int32_t version = -1;
  bool created = false;                    ///< a new version was added
  schema::mode mode = schema::mode::none;  ///< the mode that was applied
  std::vector<schema_finding> findings;    ///< check: warnings (refusals come as an error)
};

struct registered_schema {
  std::int64_t id = -1;
  std::string subject;  ///< by id: the first subject it was registered under
  std::int32_t version = -1;
  std::string bfbs;
  std::string source;
  std::string root_type;
  timestamp_ms registered;
};

struct subject_version_info {
  std::int32_t version = 0;
  std::int64_t id = -1;
  std::string root_type;
  timestamp_ms registered;
};

struct subject_info {
  std::string subject;
  std::optional<schema::mode> mode;  ///< empty: follows the broker's default
  std::vector<subject_version_info> versions;
};

struct subject_listing {
  schema::mode default_mode = schema::mode::backward;
  std::vector<subject_info> subjects;
};

/// ACL rules (docs/security.md#authorization; the model is shared with
/// the broker).
using acl_rule = protocol::acl_rule;
struct acl_listing {
  std::vector<acl_rule> rules;
  std::string file;  ///< where the broker keeps them
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
  /// Changes a topic's settings online; returns them as they are after the
  /// change. errc::invalid_config for fewer partitions or a value out of
  /// range, errc::unknown_topic. Not retried after a lost reply.
  [[nodiscard]] result<topic_config> alter_topic(std::string_view name,
                                                 const topic_changes& changes);
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

  // --- schema registry -------------------------------------------------------
  /// Registers (or checks, or looks up) a binary schema under `subject`.
  /// Registering identical bytes again returns the existing version.
  /// errc::incompatible_schema with every violation in `violations` (if
  /// given); errc::invalid_schema for bytes that are not a binary schema.
  [[nodiscard]] result<schema_registration> register_schema(
      std::string_view subject, std::string_view bfbs, std::string_view source = {},
      schema_action action = schema_action::register_schema,
      std::vector<schema_finding>* violations = nullptr);
  /// errc::unknown_schema.
  [[nodiscard]] result<registered_schema> get_schema(std::int64_t id);
  /// version -1: the latest. errc::unknown_subject, errc::unknown_schema.
  [[nodiscard]] result<registered_schema> get_schema(std::string_view subject,
                                                     std::int32_t version = -1);
  [[nodiscard]] result<subject_listing> list_subjects();
  /// A subject's compatibility mode; nullopt: back to the broker's default.
  [[nodiscard]] result<void> set_compatibility(std::string_view subject,
                                               std::optional<schema::mode> mode);
  /// Binds `topic` to `subject` ("": <topic>-value) and turns produce-time
  /// validation on or off. errc::unknown_subject when turning it on for a
  /// subject without versions.
  [[nodiscard]] result<void> set_topic_schema(std::string_view topic, std::string_view subject,
                                              bool validation);

  // --- authorization (security on; a super user or alter on the cluster) ---
  /// Adds rules (merged with a rule of the same binding); returns how many
  /// rules were created or extended. errc::invalid_config for a rule that
  /// makes no sense, or with security off. Durable and in force when it
  /// returns.
  [[nodiscard]] result<int> add_acls(const std::vector<acl_rule>& rules);
  /// Takes each rule's operations (all when 0) out of the rule of the same
  /// binding; returns how many rules changed.
  [[nodiscard]] result<int> remove_acls(const std::vector<acl_rule>& rules);
  /// The rules; of one principal (and "*") when given.
  [[nodiscard]] result<acl_listing> list_acls(std::string_view principal = {});

  /// The broker's message for the last failed call (empty if it sent none).
  [[nodiscard]] const std::string& last_error_message() const noexcept {
    return last_error_message_;
  }

 private:
  [[nodiscard]] result<int> change_acls(const std::vector<acl_rule>& rules, bool adding);

  client_options options_;
  std::unique_ptr<connection> conn_;    // tcp://, ipc://
  std::unique_ptr<kafka_admin> kafka_;  // kafka:// (framework/client/kafka_admin.h)
  std::string last_error_message_;
};

}  // namespace ferry::client
