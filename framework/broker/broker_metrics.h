// The broker's metrics (docs/observability.md lists them): counters and
// histograms updated where the work happens. Per-partition and group values
// are taken at scrape time (metrics_snapshot.h).
//
// Thread safety: every member is a metrics object, safe from any thread;
// refuse() may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <string>

#include "ferry/metrics/registry.h"
#include "ferry/schemas/protocol_generated.h"

namespace ferry::broker {

using steady = std::chrono::steady_clock;

// Per-topic counters, looked up once (metrics::family::with() locks).
struct topic_counters {
  metrics::counter* records_in = nullptr;
  metrics::counter* bytes_in = nullptr;
  metrics::counter* records_out = nullptr;
  metrics::counter* bytes_out = nullptr;
};

// The broker's metrics (docs/observability.md lists them). Counters and
// histograms are updated where the work happens; per-partition and group
// values are read by the disk thread when a scrape asks (snapshot()).
struct broker_metrics {
  explicit broker_metrics(metrics::registry& r)
      : reg(r),
        records_in(r.counter_family("ferry_broker_records_in_total",
                                    "Records appended to the topic's partitions (acknowledged "
                                    "produces; idempotent retries not counted again)",
                                    {"topic"})),
        bytes_in(r.counter_family("ferry_broker_bytes_in_total",
                                  "Bytes of record batches appended to the topic", {"topic"})),
        records_out(r.counter_family("ferry_broker_records_out_total",
                                     "Records returned by fetches of the topic", {"topic"})),
        bytes_out(r.counter_family("ferry_broker_bytes_out_total",
                                   "Bytes of record batches returned by fetches of the topic",
                                   {"topic"})),
        requests(r.counter_family("ferry_broker_requests_total",
                                  "Requests received and decoded, by type", {"type"})),
        refused(r.counter_family(
            "ferry_broker_refused_total",
            "Error answers by code: each produce, fetch or commit entry answered with an error, "
            "each refused fetch, topic create/delete/describe, and each request refused before "
            "it was queued (undecodable, queue full, stopping)",
            {"code"})),
        produce_latency(r.histogram_metric(
            "ferry_broker_produce_latency_seconds",
            "Produce requests from receipt to reply, including the fsync of their data",
            metrics::latency_buckets)),
        fetch_latency(r.histogram_metric(
            "ferry_broker_fetch_latency_seconds",
            "Fetch requests from receipt to reply, including long-poll waits for data",
            metrics::latency_buckets)),
        fsync(r.histogram_family("ferry_storage_fsync_duration_seconds",
                                 "fdatasync calls by file kind (partition logs, group offsets)",
                                 {"file"}, metrics::fsync_buckets)),
        fsync_partition(fsync.with({"partition"})),
        fsync_offsets(fsync.with({"offsets"})),
        connections(r.gauge_metric("ferry_broker_connections", "Open client connections (TCP)")),
        connections_accepted(r.counter_metric("ferry_broker_connections_accepted_total",
                                              "Client connections accepted (TCP)")),
        auth_failures(r.counter_family(
            "ferry_broker_authentication_failures_total",
            "Clients refused authentication (security.enabled): unknown_key (not in the users "
            "file), handshake (no CURVE, or not the broker's key), revoked (a request with a key "
            "removed from the users file since it connected)",
            {"reason"})),
        authz_failures(r.counter_family(
            "ferry_broker_authorization_failures_total",
            "Requests refused because no ACL allows them, or one denies them (security.enabled), "
            "by resource type and operation",
            {"resource", "operation"})),
        audit_records(r.counter_metric("ferry_broker_audit_records_total",
                                       "Lines written to the audit log (security.audit_file)")),
        audit_failures(r.counter_metric(
            "ferry_broker_audit_failures_total",
            "Audit lines that could not be written or synced (the action was not undone)")),
        throttled(r.counter_family(
            "ferry_broker_throttle_time_ms_total",
            "Time clients were made to wait for their quota (quotas.h), by principal and kind "
            "(produce, fetch)",
            {"principal", "kind"})),
        quota_refusals(r.counter_family(
            "ferry_broker_quota_refusals_total",
            "Requests refused (native, TooManyRequests) or left unread a moment (Kafka) for a "
            "quota, by principal and reason: in_flight_bytes, or produce_rate / fetch_rate (a "
            "native request while its principal owes more than 5 s of its rate)",
            {"principal", "reason"})) {}

  topic_counters for_topic(const std::string& t) {
    return {&records_in.with({t}), &bytes_in.with({t}), &records_out.with({t}),
            &bytes_out.with({t})};
  }
  void forget_topic(const std::string& t) {
    for (auto* f : {&records_in, &bytes_in, &records_out, &bytes_out}) f->remove({t});
  }
  // Called from both threads; each code's series is looked up once.
  void refuse(wire::ErrorCode code) {
    if (code == wire::ErrorCode::None) return;
    const auto i = static_cast<std::size_t>(code);
    if (i >= refused_by_code.size()) return;
    auto* c = refused_by_code[i].load(std::memory_order_acquire);
    if (c == nullptr) {
      c = &refused.with({wire::EnumNameErrorCode(code)});  // the same series for every caller
      refused_by_code[i].store(c, std::memory_order_release);
    }
    c->inc();
  }

  metrics::registry& reg;
  metrics::family<metrics::counter>& records_in;
  metrics::family<metrics::counter>& bytes_in;
  metrics::family<metrics::counter>& records_out;
  metrics::family<metrics::counter>& bytes_out;
  metrics::family<metrics::counter>& requests;
  metrics::family<metrics::counter>& refused;
  metrics::histogram& produce_latency;
  metrics::histogram& fetch_latency;
  metrics::family<metrics::histogram>& fsync;
  metrics::histogram& fsync_partition;
  metrics::histogram& fsync_offsets;
  metrics::gauge& connections;
  metrics::counter& connections_accepted;
  metrics::family<metrics::counter>& auth_failures;
  metrics::family<metrics::counter>& authz_failures;
  metrics::counter& audit_records;
  metrics::counter& audit_failures;
  metrics::family<metrics::counter>& throttled;
  metrics::family<metrics::counter>& quota_refusals;
  std::array<std::atomic<metrics::counter*>, static_cast<std::size_t>(wire::ErrorCode::MAX) + 1>
      refused_by_code{};
};

// Times one fsync-like call into `h`.
template <typename F>
auto timed(metrics::histogram& h, F&& f) {
  const auto start = steady::now();
  auto r = f();
  h.observe(steady::now() - start);
  return r;
}

}  // namespace ferry::broker
