// Every conversion of a topic's settings (topic_settings.h): from a
// CreateTopic request over the broker's defaults, to the wire, to and from
// topic.json, to a partition log's configuration; and the one check.
#include "ferry/broker/topic_settings.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "ferry/protocol/codec.h"
#include "topic_table.h"

namespace ferry::broker {

std::optional<std::string> settings_problem(const topic_settings& s, const topic_limits& limits) {
  if (!s.schema_subject.empty() && !protocol::valid_subject_name(s.schema_subject))
    return "schema_subject must be 1-249 of [A-Za-z0-9._-]";
  if (s.partitions < 1 || s.partitions > limits.max_partitions)
    return fmt::format("partitions must be 1..{}, got {}", limits.max_partitions, s.partitions);
  if (s.retention_ms < -1 || s.retention_ms == 0)
    return "retention_ms must be -1 (forever) or positive";
  if (s.retention_bytes < -1 || s.retention_bytes == 0)
    return "retention_bytes must be -1 (unlimited) or positive";
  if (s.segment_bytes < 4096 || s.segment_bytes > (1ll << 30))
    return "segment_bytes must be 4096..1073741824";
  if (s.max_message_bytes < 128 || s.max_message_bytes > (64 << 20) ||
      s.max_message_bytes + 65536 > limits.max_socket_message_bytes)
    return fmt::format("max_message_bytes must be 128..{}",
                       std::min<std::int64_t>(64 << 20, limits.max_socket_message_bytes - 65536));
  return std::nullopt;
}

std::string schema_subject_of(const std::string& topic, const topic_settings& s) {
  return s.schema_subject.empty() ? topic + "-value" : s.schema_subject;
}

topic_settings settings_from_wire(const wire::TopicConfig* c, const topic_settings& defaults) {
  topic_settings s = defaults;
  s.schema_subject.clear();
  s.schema_validation = false;
  if (c == nullptr) return s;
  // 0 (and -2 for the retention fields) leave the broker's default.
  if (c->partitions() != 0) s.partitions = c->partitions();
  if (c->retention_ms() != -2) s.retention_ms = c->retention_ms();
  if (c->retention_bytes() != -2) s.retention_bytes = c->retention_bytes();
  if (c->segment_bytes() != 0) s.segment_bytes = c->segment_bytes();
  if (c->max_message_bytes() != 0) s.max_message_bytes = c->max_message_bytes();
  if (c->schema_subject()) s.schema_subject = c->schema_subject()->str();
  s.schema_validation = c->schema_validation();
  return s;
}

flatbuffers::Offset<wire::TopicConfig> settings_to_wire(flatbuffers::FlatBufferBuilder& fbb,
                                                        const topic_settings& s) {
  return wire::CreateTopicConfig(
      fbb, s.partitions, s.retention_ms, s.retention_bytes, s.max_message_bytes, s.segment_bytes,
      s.schema_subject.empty() ? 0 : fbb.CreateString(s.schema_subject), s.schema_validation);
}

std::vector<std::byte> settings_to_json(const std::string& name, const topic_settings& s) {
  nlohmann::json j = {{"format", 1},
                      {"name", name},
                      {"partitions", s.partitions},
                      {"retention_ms", s.retention_ms},
                      {"retention_bytes", s.retention_bytes},
                      {"segment_bytes", s.segment_bytes},
                      {"max_message_bytes", s.max_message_bytes},
                      {"schema_subject", s.schema_subject},
                      {"schema_validation", s.schema_validation}};
  auto text = j.dump(2) + "\n";
  auto b = reinterpret_cast<const std::byte*>(text.data());
  return {b, b + text.size()};
}

std::optional<std::pair<std::string, topic_settings>> settings_from_json(
    std::span<const std::byte> bytes, std::string* why) {
  try {
    auto j = nlohmann::json::parse(
        std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    topic_settings s;
    auto name = j.at("name").get<std::string>();
    s.partitions = j.at("partitions").get<std::int32_t>();
    s.retention_ms = j.at("retention_ms").get<std::int64_t>();
    s.retention_bytes = j.at("retention_bytes").get<std::int64_t>();
    s.segment_bytes = j.at("segment_bytes").get<std::int64_t>();
    s.max_message_bytes = j.at("max_message_bytes").get<std::int32_t>();
    // Added with the schema registry; absent in older topic.json files.
    s.schema_subject = j.value("schema_subject", std::string());
    s.schema_validation = j.value("schema_validation", false);
    return std::pair{std::move(name), std::move(s)};
  } catch (const std::exception& e) {
    if (why) *why = e.what();
    return std::nullopt;
  }
}

storage::log_config log_config_for(const std::string& topic, std::int32_t partition,
                                   const topic_settings& s, const broker_config& cfg) {
  storage::log_config lc;
  lc.name = fmt::format("{}-{}", topic, partition);
  lc.segment_bytes = static_cast<std::uint64_t>(s.segment_bytes);
  lc.retention_time = std::chrono::milliseconds(s.retention_ms);
  lc.retention_bytes = s.retention_bytes;
  lc.max_batch_bytes = static_cast<std::uint32_t>(s.max_message_bytes);
  lc.index_interval_bytes = cfg.index_interval_bytes;
  lc.flush = cfg.flush;
  lc.flush_interval = cfg.flush_interval;
  lc.recovery = cfg.recovery;
  return lc;
}

}  // namespace ferry::broker
