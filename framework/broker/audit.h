// The audit log (security.audit_file; docs/security.md#audit): one JSON
// line per state-changing admin action, whoever made it and however it
// ended:
//
//   {"ts":"2026-12-05T10:00:00.123Z","principal":"alice","peer":"10.0.0.7",
//    "action":"topic.delete","target":{"topic":"orders"},"outcome":"ok"}
//
// Actions: topic.create, topic.delete, topic.alter, topic.schema (the schema
// rule of a topic), group.delete, group.reset_offsets, schema.register,
// schema.mode, and dlq.redriven / dlq.purged / dlq.redrive-start (the marker
// records `ferry dlq` writes). A refused action is recorded too, with
// "outcome":"refused" and the error. The principal is the authenticated
// user, "anonymous" without security (or on the Kafka listener, which has
// no authentication yet).
//
// Each line is written with one write(2) to a file opened O_APPEND, and
// fdatasync'd before the action is answered: an answered action is in the
// log. A failed write is logged and counted, and does not undo the action.
//
// Thread safety: record() from any thread.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "broker_metrics.h"
#include "ferry/core/mutex.h"
#include "ferry/core/result.h"
#include "ferry/schemas/protocol_generated.h"

namespace ferry::broker {

class audit_log {
 public:
  /// Opens (creating, mode 0640) `file` for appending.
  [[nodiscard]] static result<std::unique_ptr<audit_log>> open(const std::filesystem::path& file,
                                                               broker_metrics& stats,
                                                               std::string& why);
  ~audit_log();
  audit_log(const audit_log&) = delete;
  audit_log& operator=(const audit_log&) = delete;

  void record(std::string_view principal, std::string_view peer, std::string_view action,
              const nlohmann::json& target, wire::ErrorCode error, std::string_view message = {});

 private:
  audit_log(int fd, std::filesystem::path file, broker_metrics& stats);

  mutex mu_;
  int fd_;
  std::filesystem::path file_;
  broker_metrics& stats_;
};

}  // namespace ferry::broker
