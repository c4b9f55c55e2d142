// Per-partition and consumer-group values for a metrics scrape
// (docs/observability.md): log size, segments, offsets and failure per
// partition; committed offset, lag in records and in seconds, members per
// group. Label sets are bounded by the topics and groups that exist.
//
// The values live with the core thread, so a scrape asks for them: the
// scrape's thread marks a snapshot wanted, wakes the pipeline and waits up
// to a second. The core thread builds it in slices between rounds: the lag
// in seconds needs the oldest unconsumed record of each lagging group
// partition, a disk read, and at most kReadsPerSlice of those happen
// before the next round's requests are served - so a scrape of many groups
// does not hold up heartbeats, commits or produce acknowledgements. A read
// is made only when a group's committed offset moved since the last
// snapshot (cached per group partition).
//
// Thread safety: collect() from any thread (the metrics endpoint's);
// everything else on the core thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core.h"
#include "ferry/core/mutex.h"
#include "ferry/metrics/registry.h"

namespace ferry::broker {

class metrics_snapshot {
 public:
  static constexpr std::size_t kReadsPerSlice = 16;

  /// A scrape: asks for fresh values (calling `wake` to get the core thread
  /// going) and waits up to a second, then appends what it has and its age.
  void collect(std::vector<metrics::collected>& out, const std::function<void()>& wake)
      FERRY_EXCLUDES(mu_);

  /// Core thread: whether a snapshot is wanted or being built.
  [[nodiscard]] bool busy() const noexcept FERRY_REQUIRES(core_thread) {
    return wanted_.load() || building_;
  }
  /// Core thread: advances a wanted snapshot by one slice; publishes it when
  /// complete.
  void step(broker_core& c) FERRY_REQUIRES(core_thread) FERRY_EXCLUDES(mu_);
  /// Builds and publishes a whole snapshot at once: partitions only (at
  /// open, where reading a record per lagging group would slow the start)
  /// or everything (when the broker stops).
  void publish_now(broker_core& c, bool groups_too) FERRY_REQUIRES(core_thread) FERRY_EXCLUDES(mu_);
  /// Whether the core thread runs (a scrape waits only while it does).
  void set_running(bool running) FERRY_EXCLUDES(mu_);

 private:
  using key = std::tuple<std::string, std::string, std::int32_t>;  // group, topic, partition
  struct group_entry {
    key k;
    std::int64_t committed = -1;
  };
  struct building {
    std::vector<metrics::collected> families;  // partitions, members, topics, offsets size
    metrics::collected lag, lag_s, committed;
    // The same lag under kafka_exporter's names, for Kafka dashboards.
    metrics::collected k_lag;
    std::map<std::pair<std::string, std::string>, double> k_lag_sum;  // group, topic
    std::vector<group_entry> entries;
    std::size_t next = 0;
    std::map<key, std::pair<std::int64_t, std::int64_t>> fresh_cache;
  };

  void begin(broker_core& c, bool groups_too) FERRY_REQUIRES(core_thread);
  /// Processes entries until `max_reads` disk reads were made; true when done.
  bool advance(broker_core& c, std::size_t max_reads) FERRY_REQUIRES(core_thread);
  void publish() FERRY_REQUIRES(core_thread) FERRY_EXCLUDES(mu_);

  std::atomic<bool> wanted_{false};
  bool building_ FERRY_GUARDED_BY(core_thread) = false;
  building b_ FERRY_GUARDED_BY(core_thread);
  // The oldest unconsumed record's timestamp per group partition, for the
  // committed offset it was read at (core thread).
  std::map<key, std::pair<std::int64_t, std::int64_t>> oldest_cache_ FERRY_GUARDED_BY(core_thread);
  std::uint64_t cache_deletions_ FERRY_GUARDED_BY(core_thread) = 0;  // broker_core::topic_deletions

  mutex mu_;
  std::condition_variable cv_;
  bool running_ FERRY_GUARDED_BY(mu_) = false;
  std::uint64_t gen_ FERRY_GUARDED_BY(mu_) = 0;
  std::vector<metrics::collected> families_ FERRY_GUARDED_BY(mu_);
  steady::time_point at_ FERRY_GUARDED_BY(mu_){};
};

}  // namespace ferry::broker
