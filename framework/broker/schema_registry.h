// The schema registry (private to the broker; disk thread only).
//
// The state and the decisions are schema::registry_state's (shared with the
// registry Ferry keeps on a Kafka cluster); this class makes each change
// durable before it applies it.
//
// Every change is a record (schemas/broker/registry.fbs) in an internal
// partition_log at <data>/schemas, appended and synced before the change is
// visible or answered; opening replays the log. A failed sync leaves memory
// unchanged and the log failed stop (later changes fail; restart to recover).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/core/clock.h"
#include "ferry/core/result.h"
#include "ferry/schema/registry_state.h"
#include "ferry/schema/schema.h"
#include "ferry/schemas/protocol_generated.h"
#include "ferry/storage/env.h"
#include "ferry/storage/log.h"

namespace ferry::broker {

using schema::registry_finding;
using schema::stored_schema;
using schema::subject_state;
using schema::subject_version;

struct registration {
  wire::ErrorCode error = wire::ErrorCode::None;
  std::string message;
  std::int64_t id = -1;
  std::int32_t version = -1;
  bool created = false;
  wire::Compatibility mode = wire::Compatibility::Default;  ///< the one applied
  std::vector<registry_finding> findings;  ///< violations (refused), or all (check)
};

class schema_registry {
 public:
  [[nodiscard]] static result<std::unique_ptr<schema_registry>> open(storage::env& env,
                                                                     std::filesystem::path dir,
                                                                     clock& clk);

  /// Register, Check or Lookup `bfbs` under `subject` (wire::SchemaAction).
  /// `default_mode` applies to subjects without their own.
  registration register_schema(std::string_view subject, std::string_view bfbs,
                               std::string_view source, wire::SchemaAction action,
                               schema::mode default_mode);

  /// Sets a subject's mode (Default: follow the broker's); the subject need
  /// not have versions yet. Durable before it returns.
  [[nodiscard]] result<void> set_mode(std::string_view subject, wire::Compatibility mode);

  [[nodiscard]] const stored_schema* by_id(std::int64_t id) const { return state_.by_id(id); }
  /// version -1: the latest.
  [[nodiscard]] const stored_schema* by_subject(std::string_view subject, std::int32_t version,
                                                std::int32_t* found_version) const {
    return state_.by_subject(subject, version, found_version);
  }
  [[nodiscard]] const subject_state* subject(std::string_view name) const {
    return state_.subject(name);
  }
  [[nodiscard]] const std::map<std::string, subject_state, std::less<>>& subjects() const {
    return state_.subjects();
  }
  /// Whether `id` is one of `subject`'s versions (produce-time validation).
  [[nodiscard]] bool registered_under(std::string_view subject, std::int64_t id) const {
    return state_.registered_under(subject, id);
  }

  [[nodiscard]] bool failed() const noexcept { return !log_ || log_->failed(); }

 private:
  schema_registry(storage::env& env, std::filesystem::path dir, clock& clk)
      : env_(env), dir_(std::move(dir)), clock_(clk) {}
  result<void> replay();
  // Appends one record and syncs it.
  result<void> persist(const std::vector<std::byte>& value);

  storage::env& env_;
  std::filesystem::path dir_;
  clock& clock_;
  std::unique_ptr<storage::partition_log> log_;
  schema::registry_state state_;
};

}  // namespace ferry::broker
