// The schema registry's state and its decisions, without storage: the one
// implementation behind ferryd's registry (framework/broker, on its own
// log) and the registry Ferry keeps in a Kafka topic (framework/client,
// kafka_schemas.h), so both decide alike.
//
// Subjects hold numbered versions (1, 2, ...) of FlatBuffers binary
// schemas; every distinct schema (by its bytes) has one global id, the same
// under every subject it is registered to. decide() checks a new schema
// against the subject's compatibility mode (the latest version, or every
// version for the *_TRANSITIVE modes) with compare() and lists every
// violation; the caller makes the change durable, then applies it with
// add_version() / set_mode().
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/schema/schema.h"

namespace ferry::schema {

struct stored_schema {
  std::int64_t id = -1;
  std::string bfbs;
  std::string source;
  std::string root_type;
  std::string subject;  ///< the first subject it was registered under
  std::int32_t version = -1;
  std::int64_t registered_ms = 0;
};

struct subject_version {
  std::int32_t version = 0;
  std::int64_t id = -1;
  std::int64_t registered_ms = 0;
};

struct subject_state {
  std::optional<mode> own_mode;           ///< empty: the registry's default
  std::vector<subject_version> versions;  ///< ascending
  std::set<std::int64_t> ids;             ///< ids of `versions`
};

/// A finding with the version it was found against.
struct registry_finding {
  finding f;
  std::int32_t against_version = 0;
};

enum class registry_action {
  register_schema,  ///< check, then add a version (or find an identical one)
  check,            ///< check only
  lookup,           ///< an identical version, else unknown_schema
};

enum class refusal {
  none,
  invalid_schema,
  unknown_subject,
  unknown_schema,
  incompatible,
  internal
};

struct decision {
  refusal error = refusal::none;
  std::string message;
  std::int64_t id = -1;       ///< the id it has or would get
  std::int32_t version = -1;  ///< the version it has or would get
  bool create = false;        ///< register: a new version is to be added
  bool new_id = false;        ///< ... and its bytes get a new id
  mode applied = mode::backward;
  std::vector<registry_finding> findings;  ///< violations (refused), or all (check)
};

class registry_state {
 public:
  /// What registering (checking, looking up) `bfbs` under `subject` comes
  /// to; changes nothing. `default_mode` applies to subjects without their
  /// own.
  [[nodiscard]] decision decide(std::string_view subject, std::string_view bfbs,
                                registry_action action, mode default_mode) const;

  /// Adds `version` = `id` to `subject`; `bfbs` and `source` are kept when
  /// the id is new (they may be empty for an id already known).
  void add_version(std::string_view subject, std::int32_t version, std::int64_t id,
                   std::string_view bfbs, std::string_view source, std::int64_t registered_ms);
  /// A subject's own mode (empty: back to the default); the subject need
  /// not have versions.
  void set_mode(std::string_view subject, std::optional<mode> m);

  [[nodiscard]] const stored_schema* by_id(std::int64_t id) const;
  /// version -1: the latest.
  [[nodiscard]] const stored_schema* by_subject(std::string_view subject, std::int32_t version,
                                                std::int32_t* found_version) const;
  [[nodiscard]] const subject_state* subject(std::string_view name) const;
  [[nodiscard]] const std::map<std::string, subject_state, std::less<>>& subjects() const {
    return subjects_;
  }
  /// Whether `id` is one of `subject`'s versions.
  [[nodiscard]] bool registered_under(std::string_view subject, std::int64_t id) const;
  [[nodiscard]] std::size_t schema_count() const noexcept { return schemas_.size(); }

 private:
  std::map<std::int64_t, stored_schema> schemas_;
  std::map<std::string_view, std::int64_t> by_bytes_;  // bfbs (in schemas_) -> id
  std::map<std::string, subject_state, std::less<>> subjects_;
  std::int64_t next_id_ = 1;
};

}  // namespace ferry::schema
