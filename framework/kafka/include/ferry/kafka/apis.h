// The Kafka APIs ferryd serves and the versions of each (docs/kafka.md),
// advertised by ApiVersions. Versions from `flexible` on use the compact
// encodings and tagged fields (KIP-482): only ApiVersions is served in a
// flexible version; every other API is offered up to its last non-flexible
// version, which every current client (librdkafka, the Java client,
// kafkajs, Go and Python clients) negotiates down to.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace ferry::kafka {

enum class api_key : std::int16_t {
  produce = 0,
  fetch = 1,
  list_offsets = 2,
  metadata = 3,
  offset_commit = 8,
  offset_fetch = 9,
  find_coordinator = 10,
  join_group = 11,
  heartbeat = 12,
  leave_group = 13,
  sync_group = 14,
  describe_groups = 15,
  list_groups = 16,
  sasl_handshake = 17,
  api_versions = 18,
  create_topics = 19,
  delete_topics = 20,
  init_producer_id = 22,
  describe_configs = 32,
  alter_configs = 33,
  sasl_authenticate = 36,
  create_partitions = 37,
  delete_groups = 42,
};

struct api_info {
  api_key key;
  std::string_view name;  ///< for metrics and logs: "Produce", "Fetch", ...
  std::int16_t min_version;
  std::int16_t max_version;  ///< served
  std::int16_t flexible;     ///< the first flexible version of the API
};

inline constexpr std::array<api_info, 23> kApis = {{
    {api_key::produce, "Produce", 3, 8, 9},
    {api_key::fetch, "Fetch", 4, 11, 12},
    {api_key::list_offsets, "ListOffsets", 1, 5, 6},
    {api_key::metadata, "Metadata", 1, 8, 9},
    {api_key::offset_commit, "OffsetCommit", 2, 7, 8},
    {api_key::offset_fetch, "OffsetFetch", 1, 5, 6},
    {api_key::find_coordinator, "FindCoordinator", 0, 2, 3},
    {api_key::join_group, "JoinGroup", 0, 5, 6},
    {api_key::heartbeat, "Heartbeat", 0, 3, 4},
    {api_key::leave_group, "LeaveGroup", 0, 3, 4},
    {api_key::sync_group, "SyncGroup", 0, 3, 4},
    {api_key::describe_groups, "DescribeGroups", 0, 4, 5},
    {api_key::list_groups, "ListGroups", 0, 2, 3},
    {api_key::sasl_handshake, "SaslHandshake", 0, 1, 2},
    {api_key::api_versions, "ApiVersions", 0, 3, 3},
    {api_key::create_topics, "CreateTopics", 0, 4, 5},
    {api_key::delete_topics, "DeleteTopics", 0, 3, 4},
    {api_key::init_producer_id, "InitProducerId", 0, 1, 2},
    {api_key::describe_configs, "DescribeConfigs", 0, 3, 4},
    {api_key::alter_configs, "AlterConfigs", 0, 1, 2},
    {api_key::sasl_authenticate, "SaslAuthenticate", 0, 1, 2},
    {api_key::create_partitions, "CreatePartitions", 0, 1, 2},
    {api_key::delete_groups, "DeleteGroups", 0, 1, 2},
}};

/// The API with that key, or null for one ferryd does not serve.
[[nodiscard]] constexpr const api_info* find_api(std::int16_t key) noexcept {
  for (const auto& a : kApis)
    if (static_cast<std::int16_t>(a.key) == key) return &a;
  return nullptr;
}

/// Whether a request of `key` at `version` uses request header v2 (tagged
/// fields) - that is, whether the version is flexible. Unknown APIs: no.
[[nodiscard]] constexpr bool flexible(std::int16_t key, std::int16_t version) noexcept {
  const auto* a = find_api(key);
  return a != nullptr && version >= a->flexible;
}

}  // namespace ferry::kafka
