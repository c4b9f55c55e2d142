// Reading and resolving a dead-letter topic: what `ferry dlq` is built on.
//
// A dead-letter topic (DLQ) holds dead letters (failure_record.h) and, on
// the same partitions, MARKER records that resolve them. A log is
// append-only, so a dead letter is never deleted on its own; `redrive` and
// `purge` append markers instead (docs/dead-letters.md):
//   key    null
//   header ferry.dlq-marker = "redrive-start" | "redriven" | "purged"
//   value  JSON: {"offsets":[...], "to":..., "targets":[...], "run":...,
//                 "by":"user@host", "at":<ms>, "recovered":bool}
// A marker resolves dead letters of ITS OWN partition at offsets below its
// own. The first marker that names a dead letter decides its state;
// "redrive-start" resolves nothing (see redrive below).
//
// Never twice. A redrive appends, per chunk of dead letters of one DLQ
// partition, a "redrive-start" marker holding the end offsets (high
// watermarks) of every partition of the target topic, waits until it is
// acknowledged, produces the chunk (each copy carries the header
// ferry.redriven-from = "dlq/partition/offset"), and once every copy is
// acknowledged appends a "redriven" marker. A redrive-start marker naming a
// dead letter that is still pending means a run stopped in between (killed,
// broker gone): find_interrupted() reads the target partitions from the
// recorded ends for ferry.redriven-from headers, and the next execute_redrive()
// marks the dead letters whose copies it found as redriven instead of
// producing them again. What the markers cannot cover: two redrives of the
// same DLQ running at the same time, and a copy stored twice by a producer
// retry after a lost acknowledgement (which the idempotent producer, used
// here, prevents; ferry.idempotency-key lets workers skip such a copy).
//
// Thread safety: none; the functions keep no state between calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/client/options.h"
#include "ferry/client/types.h"
#include "ferry/core/result.h"
#include "ferry/protocol/codec.h"
#include "ferry/runtime/failure_record.h"

namespace ferry::runtime::dlq {

inline constexpr std::string_view kMarkerHeader = protocol::kDlqMarkerHeader;
inline constexpr std::string_view kRedrivenFromHeader = "ferry.redriven-from";
/// Headers a redrive removes from the copy (the dead-letter headers).
inline constexpr std::string_view kDeadLetterHeaders[] = {kFailureHeader, kRouteHeader,
                                                          kAttemptHeader, kOriginHeader};

/// "<topic>.dlq": the default dead-letter topic of `topic`.
[[nodiscard]] std::string default_dlq_topic(std::string_view topic);

enum class state : std::uint8_t { pending, redriven, purged };
[[nodiscard]] std::string_view to_string(state s) noexcept;

enum class marker_kind : std::uint8_t { redrive_start, redriven, purged };
/// "redrive-start" / "redriven" / "purged".
[[nodiscard]] std::string_view to_string(marker_kind k) noexcept;
[[nodiscard]] std::optional<marker_kind> parse_marker_kind(std::string_view s) noexcept;

/// The high watermark of one target partition when a redrive chunk started.
struct target_end {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t end = 0;

  bool operator==(const target_end&) const = default;
};

struct marker {
  marker_kind kind = marker_kind::redriven;
  std::int32_t partition = 0;  ///< where the marker is (the DLQ partition)
  std::int64_t offset = -1;
  std::vector<std::int64_t> offsets;  ///< dead letters of `partition` it is about
  std::string to;                     ///< redrive target ("" = each one's origin topic)
  std::vector<target_end> targets;    ///< redrive_start: ends before producing
  std::string run;                    ///< id of the redrive or purge run
  std::string by;                     ///< user@host
  std::int64_t at_ms = 0;
  /// redriven: the copies were found by find_interrupted(), not produced.
  bool recovered = false;

  bool operator==(const marker&) const = default;
};

/// The JSON value of a marker record (partition and offset are not in it).
[[nodiscard]] std::string encode_marker(const marker& m);
/// Parses a marker record's value; nullopt (never an exception) when it is
/// not a JSON object with an "offsets" array of non-negative integers.
[[nodiscard]] std::optional<marker> decode_marker(marker_kind kind, std::string_view value);

/// One dead letter as read from the DLQ.
struct dead_letter {
  std::int32_t partition = 0;
  std::int64_t offset = -1;
  std::int64_t timestamp_ms = 0;  ///< of the DLQ record
  std::optional<std::string> key;
  std::optional<std::string> value;
  /// False when the value was not kept (read_options); `value` is then empty.
  bool value_kept = true;
  std::size_t value_bytes = 0;          ///< size of the value, kept or not (0 for null)
  std::vector<client::header> headers;  ///< as stored
  /// The decoded ferry.failure header; empty when it is missing or invalid
  /// (the dead letter is still listed, with reason "unknown").
  std::optional<failure_record> failure;
  std::string failure_problem;  ///< why `failure` is empty
  /// From the failure record, else from the ferry.origin header.
  std::optional<record_position> origin;

  state st = state::pending;
  std::int64_t resolved_by = -1;  ///< offset of the marker that resolved it
  std::int64_t resolved_at_ms = 0;
  std::string resolved_to;  ///< redriven: the topic it went to
  std::string resolved_who;
  bool recovered = false;  ///< redriven by an interrupted run, found afterwards

  /// attempts_exhausted / permanent_error / invalid_payload, or "unknown".
  [[nodiscard]] std::string reason() const;
  /// The origin topic, or "" when unknown.
  [[nodiscard]] std::string origin_topic() const;
  /// When it was dead-lettered (the failure record's time, else the record's).
  [[nodiscard]] std::int64_t dead_lettered_ms() const;
  /// "category:code" of the last attempt, or "" without attempts.
  [[nodiscard]] std::string error_code() const;
  /// The last attempt's message, else the failure's reason message, else
  /// the failure problem ("no failure record").
  [[nodiscard]] std::string error_message() const;
};

/// One --where condition.
struct condition {
  enum class field : std::uint8_t { reason, key, since, error, topic, partition, offset };
  field what = field::reason;
  std::string text;         ///< reason, key (exact), error (case-insensitive substring), topic
  std::int64_t number = 0;  ///< since (ms since the epoch, inclusive), partition, offset

  [[nodiscard]] bool matches(const dead_letter& d) const;
};

/// All conditions must match (an empty selection matches everything).
struct selection {
  std::vector<condition> all;
  [[nodiscard]] bool matches(const dead_letter& d) const;
};

/// The state of a DLQ as of the high watermarks at the start of a read.
struct snapshot {
  std::string topic;
  struct partition_range {
    std::int32_t partition = 0;
    std::int64_t log_start = 0;
    std::int64_t end = 0;  ///< high watermark when the read started
  };
  std::vector<partition_range> partitions;
  std::vector<dead_letter> letters;  ///< by partition, then offset
  std::vector<marker> markers;       ///< by partition, then offset
  /// Records that could not be understood as markers (bad JSON, unknown
  /// kind): neither dead letters nor markers; reported, otherwise ignored.
  std::vector<std::string> warnings;

  [[nodiscard]] const dead_letter* find(std::int32_t partition, std::int64_t offset) const;
  [[nodiscard]] dead_letter* find(std::int32_t partition, std::int64_t offset);
};

struct read_options {
  /// Keep values only of dead letters matching this selection (null: all);
  /// with keep_values false, none. Keys and headers are always kept.
  const selection* values_of = nullptr;
  bool keep_values = true;
};

/// Sorts records of one DLQ into dead letters and markers and applies the
/// markers (the pure part of read(), for tests). `partitions` is copied
/// into the snapshot.
[[nodiscard]] snapshot build_snapshot(std::string topic,
                                      std::vector<snapshot::partition_range> partitions,
                                      std::vector<client::consumer_record> records,
                                      const read_options& ro = {});

/// Reads every partition of `topic` from its log start to its high
/// watermark as of the call (an assign-mode consumer; admin describe_topic
/// first) and builds the snapshot. Errors: client::errc::unknown_topic and
/// the consumer's errors (details in *error_message when given).
[[nodiscard]] result<snapshot> read(const client::client_options& options, std::string_view topic,
                                    const read_options& ro = {},
                                    std::string* error_message = nullptr);

/// A copy of a dead letter found in a target partition.
struct found_copy {
  std::int32_t dlq_partition = 0;
  std::int64_t dlq_offset = -1;
  record_position copy;
};

/// Pending dead letters named by redrive-start markers (interrupted runs),
/// and the copies of pending dead letters found in the target partitions
/// from the recorded ends up to their current high watermarks. Read-only.
struct interrupted_runs {
  std::size_t unconfirmed = 0;  ///< pending dead letters named by redrive-start markers
  std::vector<std::string> runs;
  std::vector<found_copy> found;
};
[[nodiscard]] result<interrupted_runs> find_interrupted(const client::client_options& options,
                                                        const snapshot& s,
                                                        std::string* error_message = nullptr);

/// What a redrive would do.
struct redrive_item {
  const dead_letter* letter = nullptr;
  std::string target;  ///< topic it goes to
};
struct redrive_plan {
  std::vector<redrive_item> items;  ///< pending, selected, not found as copies; in offset order
  std::vector<const dead_letter*> no_target;   ///< selected, but no origin topic and no --to
  std::vector<const dead_letter*> recovering;  ///< selected or not: copies found, only marked
  std::vector<found_copy> found;
};
/// `to`: one target for all; empty: each dead letter's origin topic.
[[nodiscard]] redrive_plan plan_redrive(const snapshot& s, const interrupted_runs& ir,
                                        const selection& sel, const std::string& to);

/// The copy of a dead letter a redrive produces: key and value unchanged,
/// headers minus kDeadLetterHeaders and any marker header, plus
/// ferry.redriven-from (the idempotency key header stays).
[[nodiscard]] client::producer_record redrive_record(const snapshot& s, const dead_letter& d,
                                                     const std::string& target);

struct redrive_options {
  double rate = 1000;       ///< records/s; 0 = unlimited
  std::size_t chunk = 256;  ///< dead letters per redriven marker
  std::string by;           ///< who (user@host), for the markers
  std::string run;          ///< run id; generated when empty
  std::chrono::milliseconds delivery_timeout{30000};
  /// Called on the calling thread after each acknowledged copy (done of total).
  std::function<void(std::size_t done, std::size_t total)> on_acked;
};
struct redrive_result {
  std::size_t redriven = 0;   ///< copies produced and marked
  std::size_t recovered = 0;  ///< copies of an interrupted run, marked
  std::size_t markers = 0;
  std::string run;
};
/// Marks plan.recovering, then redrives plan.items per DLQ partition in
/// chunks (redrive-start marker, copies, redriven marker), paced to
/// `rate`. Stops at the first failure: what was acknowledged is marked (or
/// found by the next run); the error is returned with *done filled.
/// ferry::errc::invalid_argument, before anything is written, when the
/// value of an item was not kept by read() (see read_options).
[[nodiscard]] result<redrive_result> execute_redrive(const client::client_options& options,
                                                     const snapshot& s, const redrive_plan& plan,
                                                     const redrive_options& ro,
                                                     redrive_result* done = nullptr,
                                                     std::string* error_message = nullptr);

/// Appends purged markers for `letters` (pending dead letters of `s`).
/// The number of markers written.
[[nodiscard]] result<std::size_t> purge(const client::client_options& options, const snapshot& s,
                                        const std::vector<const dead_letter*>& letters,
                                        const std::string& by,
                                        std::string* error_message = nullptr);

/// "$USER@hostname" (or "unknown@hostname").
[[nodiscard]] std::string default_actor();

}  // namespace ferry::runtime::dlq
