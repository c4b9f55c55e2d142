// admin over kafka:// (transport.h), on librdkafka's Admin API (private to
// the client). Topics (alteration included: AlterConfigs and
// CreatePartitions), offsets and consumer groups work against any Kafka
// cluster, and so does the schema registry (kept in a topic); what needs
// ferryd (produce-time schema validation) fails with
// ferry::errc::not_supported and a message that names it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/client/admin.h"
#include "kafka_common.h"
#include "kafka_schemas.h"

namespace ferry::client {

class kafka_admin {
 public:
  explicit kafka_admin(const client_options& o);

  result<void> create_topic(std::string_view name, const topic_config& config, std::string* why);
  result<void> delete_topic(std::string_view name, std::string* why);
  result<std::vector<topic_summary>> list_topics(std::string* why);
  result<topic_description> describe_topic(std::string_view name, std::string* why);
  result<topic_config> alter_topic(std::string_view name, const topic_changes& changes,
                                   std::string* why);
  result<std::optional<offset>> list_offsets(std::string_view topic, partition_id partition,
                                             offset_spec spec, timestamp_ms timestamp,
                                             std::string* why);
  result<std::vector<group_summary>> list_groups(std::string* why);
  result<group_description> describe_group(std::string_view group, std::string* why);
  result<std::vector<committed_position>> committed_offsets(
      std::string_view group, const std::vector<topic_partition>& partitions, std::string* why);
  result<std::vector<commit_result>> reset_offsets(std::string_view group,
                                                   const std::vector<offset_commit>& offsets,
                                                   std::string* why);
  result<void> delete_group(std::string_view group, std::string* why);
  /// The schema registry kept in the topic _ferry_schemas (kafka_schemas.h).
  kafka::schema_registry& schemas();

  /// ferry::errc::not_supported, with `why` naming `what` as ferryd-only.
  static std::error_code unsupported(std::string_view what, std::string* why);

 private:
  result<rd_kafka_t*> handle(std::string* why);
  struct config_entry {
    std::string name;
    std::optional<std::string> value;
    bool own = false;  ///< the topic's own setting (dynamic, writable, not sensitive)
  };
  result<std::vector<config_entry>> topic_configs(const std::string& topic, std::string* why);
  /// AlterConfigs: `configs` replace every config the topic has.
  result<void> alter_configs(const std::string& topic,
                             const std::map<std::string, std::string>& configs, bool validate_only,
                             std::string* why);
  result<void> add_partitions(const std::string& topic, std::int32_t count, bool validate_only,
                              std::string* why);

  client_options o_;
  kafka::handle rk_;
  std::unique_ptr<kafka::schema_registry> schemas_;
};

}  // namespace ferry::client
