// A topic's settings: the one type for the broker's defaults for new topics
// (TOML [topics], FERRY_TOPICS_*), a CreateTopic request's config (over
// those defaults), topic.json on disk and each partition log's
// configuration. Every conversion between those shapes is in
// topic_settings.cc, next to the one check of the values.
//
// (ferry::client::topic_config is what a client asks for: every field may
// be left to the broker's default, which this type cannot say.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ferry::broker {

struct topic_settings {
  std::int32_t partitions = 1;
  std::int64_t retention_ms = 7ll * 24 * 3600 * 1000;  ///< -1: forever
  std::int64_t retention_bytes = -1;                   ///< -1: unlimited
  std::int64_t segment_bytes = 64ll << 20;
  std::int32_t max_message_bytes = 8 << 20;  ///< largest batch a producer may send
  /// The schema subject bound to the topic ("": <topic>-value) and whether
  /// records must carry a schema id registered under it.
  std::string schema_subject;
  bool schema_validation = false;

  bool operator==(const topic_settings&) const = default;
};

/// Bounds a topic's settings must stay within (from the broker config).
struct topic_limits {
  std::int32_t max_partitions = 10'000;
  std::int64_t max_socket_message_bytes = 64ll << 20;  ///< ZMQ_MAXMSGSIZE: a batch plus room
};

/// What is wrong with `s` within `limits` ("partitions must be 1..10000,
/// got 0"), or nullopt when it is valid.
[[nodiscard]] std::optional<std::string> settings_problem(const topic_settings& s,
                                                          const topic_limits& limits);

/// The subject whose schemas a topic's records are checked against.
[[nodiscard]] std::string schema_subject_of(const std::string& topic, const topic_settings& s);

}  // namespace ferry::broker
