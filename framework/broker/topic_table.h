// The topic table: every topic the broker serves, its settings
// (topic_settings.h) and its partitions, on disk under <data>/topics:
//
//   topics/<name>/topic.json     the settings, written atomically
//   topics/<name>/<p>/           partition p's segments (storage::partition_log)
//   topics/.deleted-<ms>-<n>/    a deleted topic, renamed (durably) before the
//                                deletion is answered, removed by the janitor
//
// A partition is the log, the idempotent producers' state beside it
// (producer_state.h), the topic's counters and the fetches parked on it
// (fetch_waiters.h).
//
// Thread safety: none. The broker's core thread owns the table (broker_core
// guards it with the core_thread role), and open() runs before it starts.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "broker_metrics.h"
#include "ferry/broker/config.h"
#include "ferry/broker/topic_settings.h"
#include "ferry/core/result.h"
#include "ferry/schemas/protocol_generated.h"
#include "ferry/storage/log.h"
#include "fetch_waiters.h"
#include "producer_state.h"

namespace ferry::broker {

class janitor;

struct partition {
  std::string topic;
  std::int32_t id = 0;
  std::unique_ptr<storage::partition_log> log;
  partition_producers producers;       // idempotent producers writing to this partition
  topic_counters* counters = nullptr;  // the topic's
  partition_waiters waiters;
};

struct topic {
  std::string name;
  topic_settings settings;
  std::vector<std::unique_ptr<partition>> partitions;  // stable addresses (waiters point here)
  topic_counters counters;
};

/// A wire error with its explanation; error None means success.
struct outcome {
  wire::ErrorCode error = wire::ErrorCode::None;
  std::string message;
  explicit operator bool() const noexcept { return error == wire::ErrorCode::None; }
};

class topic_table {
 public:
  topic_table(const broker_config& cfg, broker_metrics& stats, janitor& j);
  topic_table(const topic_table&) = delete;
  topic_table& operator=(const topic_table&) = delete;

  /// Opens every topic under <data>/topics (log recovery, producer state),
  /// removing what earlier deletions left behind.
  [[nodiscard]] result<void> load();

  /// Creates `name` with `s` (already checked: settings_problem). Durable
  /// before it returns; on failure nothing of it is left on disk.
  [[nodiscard]] outcome create(std::string_view name, topic_settings s);
  /// Removes `name`: renamed away durably, then out of the table. `gone` is
  /// called with each of its partitions before they close (to answer their
  /// waiters). The files are removed later, off the core thread.
  outcome remove(std::string_view name, const std::function<void(partition&)>& gone);
  /// Replaces a topic's settings and rewrites its topic.json (durably).
  [[nodiscard]] outcome update(topic& t, topic_settings s);
  /// update() for the settings `ferry topics alter` changes, applied to the
  /// open partitions at once: more partitions (opened before topic.json is
  /// rewritten; on failure none is added), retention and the largest batch.
  /// `s` is already checked (settings_problem, partitions not fewer).
  [[nodiscard]] outcome alter(topic& t, topic_settings s);

  [[nodiscard]] topic* find(std::string_view name);
  [[nodiscard]] const topic* find(std::string_view name) const;
  /// The partition, or null with `err` UnknownTopic or UnknownPartition.
  [[nodiscard]] partition* find(std::string_view name, std::int32_t p, wire::ErrorCode& err);
  /// The message that goes with find()'s error.
  [[nodiscard]] static std::string missing(std::string_view name, std::int32_t p,
                                           wire::ErrorCode err);
  [[nodiscard]] std::int32_t partition_count(std::string_view name) const;
  [[nodiscard]] const std::map<std::string, topic, std::less<>>& all() const noexcept {
    return topics_;
  }
  [[nodiscard]] std::map<std::string, topic, std::less<>>& all() noexcept { return topics_; }

 private:
  result<void> open_partitions(topic& t);
  result<void> open_partitions(const topic& t, std::int32_t from, std::int32_t to,
                               std::vector<std::unique_ptr<partition>>& out);

  const broker_config& cfg_;
  broker_metrics& stats_;
  janitor& janitor_;
  std::filesystem::path dir_;
  std::map<std::string, topic, std::less<>> topics_;
  std::uint64_t deletions_ = 0;
  std::uint64_t creations_ = 0;
};

// --- conversions (topic_settings.cc) ----------------------------------------

/// A CreateTopic request's config over the broker's defaults (0 and -2 mean
/// "the default").
[[nodiscard]] topic_settings settings_from_wire(const wire::TopicConfig* c,
                                                const topic_settings& defaults);
[[nodiscard]] flatbuffers::Offset<wire::TopicConfig> settings_to_wire(
    flatbuffers::FlatBufferBuilder& fbb, const topic_settings& s);
[[nodiscard]] std::vector<std::byte> settings_to_json(const std::string& name,
                                                      const topic_settings& s);
/// topic.json's name and settings; nullopt (with `why`) when unreadable.
[[nodiscard]] std::optional<std::pair<std::string, topic_settings>> settings_from_json(
    std::span<const std::byte> bytes, std::string* why);
[[nodiscard]] storage::log_config log_config_for(const std::string& topic, std::int32_t partition,
                                                 const topic_settings& s, const broker_config& cfg);

}  // namespace ferry::broker
