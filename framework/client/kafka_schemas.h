// The schema registry on a Kafka cluster (private to the client; ADR 0012).
//
// Every change is a record in the topic _ferry_schemas (one partition,
// kept forever): the broker's registry record format (registry.fbs), where
// a SchemaVersion record is a *proposal* - subject, bytes and source, with
// no version or id. Every client folds the topic in offset order through
// schema::registry_state: a proposal is decided against the state left by
// the records before it (the same checker as ferryd's registry) and, if
// compatible, becomes the subject's next version with the next id. All
// clients read the same log in the same order and so agree on every id and
// version without a coordinator; two clients registering at once are
// ordered by the log, and the later one is checked against the earlier.
//
// register: decide locally first (an incompatible schema is refused
// without writing), write the proposal with acks=all, read the topic up to
// it and answer with what the fold decided for that very record.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/client/admin.h"
#include "ferry/schema/registry_state.h"
#include "kafka_common.h"

namespace ferry::client::kafka {

inline constexpr const char* kSchemasTopic = "_ferry_schemas";

class schema_registry {
 public:
  explicit schema_registry(client_options o);

  [[nodiscard]] result<schema_registration> register_schema(
      std::string_view subject, std::string_view bfbs, std::string_view source,
      schema_action action, std::vector<schema_finding>* violations, std::string* why);
  [[nodiscard]] result<registered_schema> get_schema(std::int64_t id, std::string* why);
  [[nodiscard]] result<registered_schema> get_schema(std::string_view subject, std::int32_t version,
                                                     std::string* why);
  [[nodiscard]] result<subject_listing> list_subjects(std::string* why);
  [[nodiscard]] result<void> set_compatibility(std::string_view subject,
                                               std::optional<schema::mode> mode, std::string* why);

 private:
  result<void> open(bool create, std::string* why);
  // Reads the topic up to its end (or past `through`, an offset of ours).
  result<void> catch_up(std::string* why, std::int64_t through = -1);
  void apply(std::int64_t offset, std::span<const std::byte> value);
  result<std::int64_t> append(const std::vector<std::byte>& value, std::string* why);

  const client_options o_;
  handle producer_;
  handle reader_;
  bool exists_ = false;
  bool reading_ = false;
  std::int64_t next_ = 0;
  schema::registry_state state_;
  /// What the fold decided for proposals this client wrote: offset -> it.
  std::map<std::int64_t, schema::decision> ours_;
};

}  // namespace ferry::client::kafka
