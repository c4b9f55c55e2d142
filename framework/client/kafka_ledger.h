// A group's ledger of processed idempotency keys on a Kafka cluster
// (docs/adr/0011-idempotency-ledger-on-kafka.md; private to the client).
//
// The ledger is the topic __ferry_ledger.<group>.<hash>: one partition, records of
// up to 512 KiB that each hold a commit's keys (a format byte, then each
// key as a uvarint length and its bytes; timestamp = when they were
// recorded), retention by time. record() writes keys with acks=all through an
// idempotent producer and returns once all are acknowledged; the consumer
// commits the offsets that cover them only after that. lookup() first reads
// the topic up to its high watermark into a local index, so every key any
// member of the group recorded before the lookup began is seen.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ferry/client/options.h"
#include "ferry/core/result.h"
#include "ferry/core/types.h"
#include "kafka_common.h"

namespace ferry::client::kafka {

/// The ledger topic of `group`: __ferry_ledger.<group>.<hash>, shortened with a
/// hash when that would exceed Kafka's 249 characters.
[[nodiscard]] std::string ledger_topic(const std::string& group);

class ledger {
 public:
  /// `max_keys`: the local index keeps at most this many (the oldest go).
  ledger(client_options o, std::string group, std::size_t max_keys = 1'000'000);

  /// Durably records `keys` (creating the topic first if needed).
  [[nodiscard]] result<void> record(const std::vector<std::string>& keys, std::string* why);
  /// When each key was recorded, if within `window` of now (zero: at all).
  [[nodiscard]] result<std::vector<std::optional<timestamp_ms>>> lookup(
      const std::vector<std::string>& keys, std::chrono::milliseconds window, std::string* why);

  /// Keys in the local index (for metrics and tests).
  [[nodiscard]] std::size_t size() const noexcept { return index_.size(); }

 private:
  result<void> start_reader(std::string* why);
  result<void> ensure_topic(std::string* why);
  // The producer, also used for metadata and watermarks (its connections
  // have no parked fetches).
  result<rd_kafka_t*> writer(std::string* why);
  result<void> catch_up(std::string* why);
  void remember(std::string key, std::int64_t ts);
  void skip_own();

  const client_options o_;
  const std::string group_;
  const std::string topic_;
  const std::size_t max_keys_;
  handle producer_;
  handle reader_;
  bool topic_ready_ = false;
  bool reading_ = false;
  std::int64_t next_ = 0;  // the reader's position in partition 0
  // Recorded (ms) by key; the keys are views of order_'s strings.
  std::unordered_map<std::string_view, std::int64_t> index_;
  std::deque<std::pair<std::int64_t, std::string>> order_;  // for the count bound
  std::set<std::int64_t> own_;  // offsets of records written here, not read back yet
};

}  // namespace ferry::client::kafka
