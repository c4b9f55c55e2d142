// The worker's metrics (docs/observability.md, "Worker"): what a handler
// did with each record, how long it took, and what waits for a retry.
// Label sets: group x subscription topic (x result or mode) - bounded by the
// worker's subscriptions.
#pragma once

#include <array>
#include <map>
#include <string>

#include "ferry/metrics/registry.h"
#include "ferry/runtime/retry.h"

namespace ferry::runtime::detail {

/// Upper bounds of the attempts histogram (records finished after n attempts).
inline constexpr std::array<double, 9> kAttemptBuckets = {1, 2, 3, 4, 5, 6, 8, 10, 16};

/// The series of one subscription topic. Counters and histograms are atomic:
/// the handler histogram is fed from handler threads.
struct topic_metrics {
  metrics::counter* ok = nullptr;
  metrics::counter* retried = nullptr;
  metrics::counter* dead_lettered = nullptr;
  metrics::counter* duplicate_skipped = nullptr;
  metrics::histogram* handler_seconds = nullptr;
  metrics::histogram* attempts = nullptr;
};

class worker_metrics {
 public:
  worker_metrics(metrics::registry& r, std::string group)
      : group_(std::move(group)),
        records_(r.counter_family(
            "ferry_worker_records_total",
            "Handler outcomes per record attempt: ok, retried (failed, another attempt follows), "
            "dead_lettered (acknowledged by the dead-letter topic), duplicate_skipped (its "
            "idempotency key was processed before; no handler call)",
            {"group", "topic", "result"})),
        handler_(r.histogram_family("ferry_worker_handler_duration_seconds",
                                    "Handler calls (one per attempt, or per batch)",
                                    {"group", "topic"}, metrics::latency_buckets)),
        attempts_(r.histogram_family(
            "ferry_worker_attempts",
            "Attempts a record took until it finished for good (handled or dead-lettered)",
            {"group", "topic"}, kAttemptBuckets)),
        waiting_(r.gauge_family("ferry_worker_retry_waiting",
                                "Records waiting for a retry: in memory (in_order, key_ordered) "
                                "or fetched from a retry tier and not yet due (delay_tiers)",
                                {"group", "mode"})),
        oldest_(r.gauge_family("ferry_worker_retry_oldest_age_seconds",
                               "Age of the oldest record waiting for a retry, since its first "
                               "failed attempt (0: none waits)",
                               {"group", "mode"})),
        in_flight_(r.gauge_family("ferry_worker_in_flight",
                                  "Records fetched and not finished (all partitions)", {"group"})
                       .with({group_})),
        commits_(r.counter_family("ferry_worker_commits_total",
                                  "Offset commits that succeeded (per partition)", {"group"})
                     .with({group_})),
        route_failures_(r.counter_family("ferry_worker_route_failures_total",
                                         "Dead-letter or retry-tier sends that failed (sent again "
                                         "every second; the offset stays uncommitted)",
                                         {"group"})
                            .with({group_})) {
    for (auto m : {ordering::in_order, ordering::key_ordered, ordering::delay_tiers}) {
      const auto i = static_cast<std::size_t>(m);
      waiting_by_mode_[i] = &waiting_.with({group_, to_string(m)});
      oldest_by_mode_[i] = &oldest_.with({group_, to_string(m)});
      waiting_by_mode_[i]->set(0);
      oldest_by_mode_[i]->set(0);
    }
  }

  /// The series of `topic`, created on first use (polling thread).
  const topic_metrics& topic(const std::string& t) {
    auto& m = topics_[t];
    if (m.ok == nullptr) {
      m.ok = &records_.with({group_, t, "ok"});
      m.retried = &records_.with({group_, t, "retried"});
      m.dead_lettered = &records_.with({group_, t, "dead_lettered"});
      m.duplicate_skipped = &records_.with({group_, t, "duplicate_skipped"});
      m.handler_seconds = &handler_.with({group_, t});
      m.attempts = &attempts_.with({group_, t});
    }
    return m;
  }

  void set_waiting(ordering mode, std::size_t n, double oldest_age_s) {
    waiting_by_mode_[static_cast<std::size_t>(mode)]->set(static_cast<double>(n));
    oldest_by_mode_[static_cast<std::size_t>(mode)]->set(oldest_age_s);
  }
  metrics::gauge& in_flight() { return in_flight_; }
  metrics::counter& commits() { return commits_; }
  metrics::counter& route_failures() { return route_failures_; }

 private:
  std::string group_;
  metrics::family<metrics::counter>& records_;
  metrics::family<metrics::histogram>& handler_;
  metrics::family<metrics::histogram>& attempts_;
  metrics::family<metrics::gauge>& waiting_;
  metrics::family<metrics::gauge>& oldest_;
  std::array<metrics::gauge*, 3> waiting_by_mode_{}, oldest_by_mode_{};  // by ordering
  metrics::gauge& in_flight_;
  metrics::counter& commits_;
  metrics::counter& route_failures_;
  std::map<std::string, topic_metrics> topics_;
};

}  // namespace ferry::runtime::detail
