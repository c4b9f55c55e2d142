// The worker: what users write order-processing services against.
//
//   ferry::runtime::worker_options o;
//   o.consumer.broker = "tcp://127.0.0.1:7400";
//   o.consumer.group_id = "payments";
//   ferry::runtime::worker w(o);
//   ferry::runtime::subscription s;
//   s.topics = {"orders"};
//   s.order = ferry::runtime::ordering::key_ordered;
//   s.retry.max_attempts = 5;
//   s.handler = [&](const ferry::runtime::message& m) -> ferry::result<void> {
//     if (declined(m)) return ferry::runtime::permanent(payments_errc::declined, "declined");
//     return charge(m.idempotency_key(), m.value());   // retried when it fails
//   };
//   (void)w.subscribe(std::move(s));
//   w.run();   // until w.stop() from another thread or a signal handler
//
// Guarantees
// - A record's offset is committed only after its handling finished:
//   the handler succeeded, the record was dead-lettered (acknowledged by the
//   broker), or it was skipped as a duplicate. Never on poll.
// - Idempotency keys: a record whose key (producer_record::idempotency_key)
//   the group's ledger holds within the subscription's window is
//   acknowledged without calling the handler. Keys of successful records go
//   into the ledger in the same durable write as the offset commit. What
//   this cannot do: a crash after the handler's side effect and before the
//   commit runs the handler again for that record (use the key in your own
//   database, e.g. INSERT ... ON CONFLICT DO NOTHING). docs/runtime.md.
// - Attempts survive crashes and rebalances: for in_order and key_ordered
//   they are kept in the committed offset's metadata, for delay_tiers in
//   the republished record's headers.
// - Dead-lettering and retry-tier routing never lose a record (the origin
//   offset is committed only after the broker acknowledged the copy) and
//   never write it twice: each copy carries ferry.route; after a crash or
//   rebalance the new owner scans the targets from the watermarks in the
//   committed metadata and treats records already routed as done.
//
// Threads: run()/run_once() drive everything on the calling thread (poll,
// dispatch, commits); handlers run on `concurrency` threads of the worker,
// one record of a partition at a time, so partitions are processed
// independently (0: handlers run on the polling thread — deterministic,
// for tests). stop() may be called from any thread or a signal handler
// context that can call a function (it only sets a flag and wakes poll).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/client/consumer.h"
#include "ferry/client/producer.h"
#include "ferry/core/clock.h"
#include "ferry/core/result.h"
#include "ferry/metrics/registry.h"
#include "ferry/runtime/errors.h"
#include "ferry/runtime/failure_record.h"
#include "ferry/runtime/retry.h"
#include "ferry/runtime/typed.h"

namespace ferry::runtime {

/// One record as a handler sees it. Valid during the handler call.
class message {
 public:
  message(const client::consumer_record& r, std::string_view origin_topic,
          const record_position& origin, const std::optional<std::string>& key, int attempt)
      : rec_(r), topic_(origin_topic), origin_(origin), idem_(key), attempt_(attempt) {}

  /// The subscription's topic (for a record from a retry tier: its origin).
  [[nodiscard]] std::string_view topic() const noexcept { return topic_; }
  [[nodiscard]] const std::optional<std::string>& key() const noexcept { return rec_.key; }
  [[nodiscard]] const std::optional<std::string>& value() const noexcept { return rec_.value; }
  [[nodiscard]] const std::vector<client::header>& headers() const noexcept { return rec_.headers; }
  [[nodiscard]] timestamp_ms timestamp() const noexcept { return rec_.timestamp; }
  /// The idempotency key, if the producer gave one.
  [[nodiscard]] const std::optional<std::string>& idempotency_key() const noexcept { return idem_; }
  /// 1 for the first attempt, 2 for the first retry, ...
  [[nodiscard]] int attempt() const noexcept { return attempt_; }
  /// Where the record was first consumed (topic/partition/offset).
  [[nodiscard]] const record_position& origin() const noexcept { return origin_; }
  /// The record as consumed (from a retry tier: that topic and offset).
  [[nodiscard]] const client::consumer_record& record() const noexcept { return rec_; }

 private:
  const client::consumer_record& rec_;
  std::string_view topic_;
  const record_position& origin_;
  const std::optional<std::string>& idem_;
  int attempt_;
};

using record_handler = std::function<result<void>(const message&)>;
/// Opt-in: the records of one partition that are ready, in offset order.
/// The batch succeeds or fails as a whole (in_order only).
using batch_handler = std::function<result<void>(std::span<const message>)>;

struct subscription : subscription_config {
  record_handler handler;
  batch_handler on_batch;  ///< instead of `handler`
};

struct worker_options {
  /// broker, group_id (required), client_id, session timeouts, ...
  /// broker: tcp://HOST:PORT or ipc://PATH for ferryd, kafka://HOST:PORT[,...]
  /// for a Kafka cluster (docs/kafka.md); the worker code is the same.
  client::consumer_options consumer;
  /// For dead letters and retry tiers; broker and timeouts default to the
  /// consumer's. Idempotent.
  client::producer_options producer;
  /// Shown in failure records; default "<hostname>:<pid>".
  std::string worker_name;

  /// Takes the broker and librdkafka properties of a worker file (retry.h)
  /// for the consumer and the producer, and its group_instance_id; what the
  /// file does not set stays. The subscriptions are the caller's to add.
  void use(const worker_file& f) {
    if (!f.group_instance_id.empty()) consumer.group_instance_id = f.group_instance_id;
    if (f.broker.empty()) return;
    consumer.broker = producer.broker = f.broker;
    consumer.kafka = producer.kafka = f.kafka;
  }
  /// Handler threads; 0 runs handlers on the thread of run().
  int concurrency = 4;
  /// Records a partition may hold fetched but unfinished before fetching
  /// pauses for it.
  std::size_t max_buffered = 4096;
  /// How often finished offsets are committed (also at revocation and stop).
  std::chrono::milliseconds commit_interval{200};
  /// How long one commit waits for the broker, retries included, before it
  /// is left to the next one; and how long stop()/close() may spend on the
  /// last routes, the final commit and leaving. A broker that went away
  /// cannot hold a stop up longer than about this. What was not committed
  /// is handled again by the next owner (at least once; keys the ledger
  /// recorded are skipped).
  std::chrono::milliseconds commit_timeout{10'000};
  /// Handlers of one partition run in chunks (the records that may run now,
  /// in order); a chunk hands back its results - so they can be committed -
  /// after running this long (real time), and what it did not start goes
  /// back to the queue. Bounds what a crash repeats when handlers are slow.
  /// Zero: a chunk runs all its records.
  std::chrono::milliseconds chunk_budget{100};
  /// Create dead-letter and retry-tier topics (as many partitions as the
  /// origin) when missing.
  bool create_topics = true;
  /// Timers (backoff, tier due times) and attempt times. Default: the
  /// system clock. Tests pass a manual_clock.
  ferry::clock* clock = nullptr;
  /// Uniform [0, 1) numbers for jitter. Default: a seeded mt19937_64.
  std::function<double()> random;
  /// Where the worker's metrics go (docs/observability.md): share one
  /// registry between several workers and your own metrics, or leave empty
  /// for the worker's own (worker::metrics()).
  std::shared_ptr<::ferry::metrics::registry> metrics;
  /// Opt-in: "HOST:PORT" (e.g. 127.0.0.1:9401; port 0 picks one) to serve
  /// the registry on GET /metrics, plus /healthz and /readyz (ready once the
  /// worker joined its group; 503 while joining or after losing the group,
  /// from stop()/close() on, and after run() failed). Bound when
  /// the worker starts; run() fails with config_invalid when it cannot.
  std::string metrics_listen;
};

/// Counters since start (thread-safe reads).
struct worker_stats {
  std::uint64_t succeeded = 0;           ///< handler returned success
  std::uint64_t failed_attempts = 0;     ///< handler returned an error or threw
  std::uint64_t retries_scheduled = 0;   ///< in-memory retries (in_order, key_ordered)
  std::uint64_t tier_routed = 0;         ///< republished to a retry tier
  std::uint64_t dead_lettered = 0;       ///< acknowledged by the dead-letter topic
  std::uint64_t duplicates_skipped = 0;  ///< idempotency key already processed
  std::uint64_t recovered_routes = 0;    ///< found already routed after a crash: not routed again
  std::uint64_t commits = 0;             ///< successful offset commits (per partition)
  /// Dead-letter or tier sends that failed (the record stays and is sent
  /// again every second; its offset is not committed meanwhile).
  std::uint64_t route_failures = 0;
  std::string last_route_error;  ///< the last of those, with topic/partition/offset
  std::uint64_t waiting = 0;     ///< records now waiting for a retry
  /// Records finished for good after n attempts (handled successfully or
  /// dead-lettered): attempts_histogram[n-1], up to 16 (the last bucket
  /// collects n >= 16). A hop to a retry tier is not a finish, and a skipped
  /// duplicate made no attempt: neither is counted here.
  std::vector<std::uint64_t> attempts_histogram;
};

class worker {
 public:
  explicit worker(worker_options options);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  /// Adds a subscription (before run()). ferry::errc::config_invalid with
  /// last_error() for a bad one, or a topic another subscription has.
  [[nodiscard]] result<void> subscribe(subscription s);

  /// Subscribes a typed handler `fn(const T&, const message&) -> result<void>`
  /// for a FlatBuffers contract T (ferry/runtime/typed.h): each payload is
  /// checked against the registry, verified and value-checked first; one
  /// that fails is dead-lettered at once (invalid_payload).
  template <typename T, typename Fn>
  [[nodiscard]] result<void> on(subscription_config config, Fn fn, typed_options o = {}) {
    subscription s;
    static_cast<subscription_config&>(s) = std::move(config);
    s.handler = typed_handler<T>(schemas(), std::move(fn), o);
    return subscribe(std::move(s));
  }
  /// The worker's registry client (schema lookups on the consumer's broker),
  /// created on first use and shared by its typed handlers.
  [[nodiscard]] std::shared_ptr<schema_gate> schemas();

  /// Runs until stop(): finishes the records in hand, commits, leaves the
  /// group. Returns an error that the worker cannot get past (e.g. the
  /// broker refuses the group); retriable errors are logged and ridden out.
  [[nodiscard]] result<void> run();
  /// One step of run(), waiting at most `max_wait` for records. Starts the
  /// worker on its first call. For tests and for callers with their own loop.
  [[nodiscard]] result<void> run_once(std::chrono::milliseconds max_wait);
  /// Graceful stop: asks run() to finish and return. Thread-safe.
  void stop() noexcept;
  /// The graceful stop, done by the caller of run_once().
  [[nodiscard]] result<void> close();

  [[nodiscard]] worker_stats stats() const;
  /// Records fetched and not finished (all partitions).
  [[nodiscard]] std::size_t in_flight() const;
  [[nodiscard]] const std::string& last_error() const noexcept;
  /// The registry holding the worker's metrics (options.metrics or its own).
  [[nodiscard]] ::ferry::metrics::registry& metrics() noexcept;
  /// "host:port" of the metrics endpoint once started; empty without one.
  [[nodiscard]] std::string metrics_address() const;

  class impl;

 private:
  std::unique_ptr<impl> impl_;
  std::mutex schemas_mu_;
  std::shared_ptr<schema_gate> schemas_;
};

}  // namespace ferry::runtime
