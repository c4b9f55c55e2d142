// worker::impl, shared by the files that implement it (private):
//   worker.cc          start, stop, the polling loop, intake and dispatch
//   worker_tasks.cc    running handlers on the pool, outcomes, the retry decision
//   worker_routes.cc   routing to tiers and dead-letter topics, acknowledgements
//   worker_commit.cc   commits (offsets, attempt metadata, ledger keys) and rebalances
//
// The worker's state machine, per record (entry::st):
//
//   queued --dispatch--> running --ok/duplicate--> done
//                           |--failed, retry in memory--> waiting --due--> running
//                           |--failed, tier or dead letter--> routing --ack--> done
//                           |                                    `--send failed--> route_failed
//                           --due--> routing
//                           `--not run (an earlier failure in the chunk, or the
//                              chunk ran out of time: chunk_budget)--> queued
//
// Per partition (part) the entries sit in offset order; the committed
// offset is the first entry not done (finished entries at the front are
// dropped). One chunk of a partition runs at a time, on a pool thread;
// the polling thread owns every other piece of state. A chunk is the
// entries that may run now: in_order, the queued ones from the first
// unfinished (stopping at one waiting for its retry); key_ordered, every
// queued or due entry whose key no earlier waiting entry holds; tiers,
// the due records at the front.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "ferry/client/admin.h"
#include "ferry/client/errc.h"
#include "ferry/core/crash_point.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/metrics/http_endpoint.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/errc.h"
#include "ferry/runtime/worker.h"
#include "progress.h"
#include "worker_metrics.h"

namespace ferry::runtime {
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using steady_time = std::chrono::steady_clock::time_point;

namespace detail {

inline std::string default_worker_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "localhost");
  return fmt::format("{}:{}", host, ::getpid());
}

inline std::shared_ptr<spdlog::logger> worker_logger() {
  static auto l = log::get("runtime");
  return l;
}

struct entry {
  enum class st : std::uint8_t { queued, running, waiting, routing, route_failed, done };
  // not_run: an earlier failure in the chunk held it back; deferred: the
  // chunk ran out of time (chunk_budget) before it.
  enum class outcome : std::uint8_t { none, ok, failed, skipped, not_run, deferred };

  client::consumer_record rec;
  record_position origin;
  std::optional<std::string> idem;
  failure_record history;  // attempts so far
  int attempts = 0;
  st state = st::queued;
  steady_time due{};
  bool checked = false;    // the ledger was asked about idem
  bool duplicate = false;  // ... and had it
  // A pending route: where to, and why.
  std::string route_target;
  std::optional<dead_letter_reason> route_reason;
  std::string route_message;
  std::error_code route_error;  // the last routing failure (logged once per error)
  // Written by the task, read after it completed.
  outcome out = outcome::none;
  std::error_code err;
  error_class cls = error_class::retriable;
  std::string err_message;
  std::int64_t ended_ms = 0;
  int inline_failures = 0;      // attempts that failed and were retried at once inside the task
  bool failure_logged = false;  // its first failure has had its log line
  // What the committed metadata says about this record's attempts. Owned by
  // the polling thread (a running task changes attempts/history, never
  // these), so commit() can read them while the record runs.
  detail::parked_attempts meta;
};

// Zero-backoff retries run back to back inside the task while the chain
// is younger than this; a crash inside it may repeat the chain's attempts.
inline constexpr std::chrono::milliseconds kInlineRetryBudget{10};

struct sub_info {
  subscription s;
  std::string dlq_for(const std::string& topic) const {
    return s.dead_letter_topic.empty() ? topic + ".dlq" : s.dead_letter_topic;
  }
};

struct part {
  client::topic_partition tp;
  const sub_info* sub = nullptr;
  std::string origin_topic;                  // the subscription's topic (tp.topic unless a tier)
  int tier = -1;                             // index into sub->s.tiers for a tier topic
  const detail::topic_metrics* m = nullptr;  // origin_topic's series
  std::deque<std::unique_ptr<entry>> q;
  std::int64_t next = 0;    // everything below is finished
  std::size_t running = 0;  // tasks (lanes) of this partition on the pool
  // Key-level concurrency (key_ordered): a lane has at most one chunk out,
  // and a key whose records run in one lane is held from the others, so
  // the records of one key never overlap; lanes start again independently.
  std::vector<bool> lane_busy;
  std::unordered_set<std::string> running_keys;  // record keys running in some lane
  std::unordered_set<std::string> running_idem;  // idempotency keys running in some lane
  double record_seconds = -1;                    // a record's handling, smoothed; -1: not known yet
  bool paused = false;
  // Ledger keys of records finished since the last commit, with their offsets.
  std::vector<std::pair<std::int64_t, std::string>> keys;
  std::map<std::string, std::int64_t> wm;        // route watermarks (progress.h)
  std::map<std::string, std::int64_t> last_ack;  // target -> highest acknowledged offset
  std::set<std::int64_t> skip;                   // finished before (metadata, route scan)
  std::map<std::int64_t, detail::parked_attempts> restored;
  std::size_t keys_done = 0;  // commit(): keys sent in this call
  // Its committed state was read and the route scan done (assigned() or a
  // later load()); until then nothing of it is handled or committed.
  bool loaded = false;
  // The route watermarks of this assignment are committed: routes may go.
  bool wm_committed = false;
  std::chrono::steady_clock::time_point retry_load_at{};
  std::string load_error;  // the last load() failure, logged once until it changes
  int load_failures = 0;
  std::string last_meta;
  std::int64_t last_next = -1;
  bool urgent = false;  // attempts changed: commit soon
};

struct task {
  part* p = nullptr;
  std::size_t lane = 0;
  std::vector<entry*> items;
  // Key-level concurrency: the record and idempotency keys this chunk
  // holds from the other lanes until it completes.
  std::vector<std::string> held_keys, held_idem;
  // Filled by run_task: records whose handler ran, and the time it took.
  std::size_t handled = 0;
  double handled_seconds = 0;
};

}  // namespace detail

class worker::impl {
 public:
  /// A record's first failure and each dead-lettering get a line, up to this
  /// many a second (a handler failing on every record must not flood).
  static constexpr int kFailureLinesPerSecond = 5;
  /// partition_concurrency 0: key-level lanes open when a record's handling
  /// takes at least this long (smoothed); below it one lane runs faster.
  static constexpr double kLaneThresholdSeconds = 200e-6;

  using entry = detail::entry;
  using sub_info = detail::sub_info;
  using part = detail::part;
  using task = detail::task;

  [[nodiscard]] const worker_options& options() const noexcept { return o_; }

  explicit impl(worker_options o) : o_(std::move(o)) {
    if (o_.worker_name.empty()) o_.worker_name = detail::default_worker_name();
    clock_ = o_.clock ? o_.clock : &system_clock::instance();
    if (!o_.random) {
      auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
      o_.random = [rng] { return std::uniform_real_distribution<double>(0.0, 1.0)(*rng); };
    }
    // Larger fetches than a plain consumer's default: the worker makes a
    // ledger lookup per chunk, and fewer, larger chunks amortise it.
    if (o_.consumer.partition_max_bytes == client::consumer_options{}.partition_max_bytes)
      o_.consumer.partition_max_bytes = 4 << 20;
    if (o_.producer.broker == client::producer_options{}.broker)
      o_.producer.broker = o_.consumer.broker;
    o_.producer.socket = o_.consumer.socket;
    registry_ = o_.metrics ? o_.metrics : std::make_shared<::ferry::metrics::registry>();
    metrics_ = std::make_unique<detail::worker_metrics>(*registry_, o_.consumer.group_id);
  }

  ~impl() {
    endpoint_.reset();  // no scrape reads this worker any more
    if (started_ && !closed_) (void)close();
    stop_pool();
    if (producer_) (void)producer_->close();  // no callback runs after this
    wake_target_.store(nullptr);
  }

  result<void> subscribe(subscription s) {
    std::string why;
    if (started_)
      return fail(ferry::errc::invalid_argument, "subscribe() after the worker started");
    if (!s.handler && !s.on_batch) return fail(ferry::errc::invalid_argument, "no handler");
    if (s.on_batch && s.order != ordering::in_order)
      return fail(ferry::errc::config_invalid, "a batch handler needs ordering in_order");
    if (!s.validate(&why)) return fail(ferry::errc::config_invalid, why);
    for (const auto& t : s.topics)
      if (by_topic_.count(t)) return fail(ferry::errc::config_invalid, "topic " + t + " twice");
    subs_.push_back(std::make_unique<sub_info>(sub_info{std::move(s)}));
    const auto* si = subs_.back().get();
    for (const auto& t : si->s.topics) {
      by_topic_[t] = {si, -1, t};
      for (std::size_t i = 0; i < si->s.tiers.size(); ++i)
        by_topic_[tier_topic(t, si->s.tiers[i])] = {si, static_cast<int>(i), t};
    }
    return success();
  }

  result<void> run() {
    wait_for_broker_forever_ = true;  // a worker started before its broker waits for it
    while (!stop_requested_.load()) {
      if (auto r = run_once(500ms); !r) {
        run_failed_ = true;
        return r;
      }
    }
    return close();
  }

  result<void> run_once(milliseconds max_wait);
  result<void> close();
  void stop() noexcept {
    stop_requested_.store(true);
    if (auto* c = wake_target_.load()) c->wakeup();
  }

  worker_stats stats() const {
    std::lock_guard lock(stats_mu_);
    auto s = stats_;
    s.waiting = waiting_.load();
    return s;
  }
  std::size_t in_flight() const { return in_flight_.load(); }
  const std::string& last_error() const noexcept { return last_error_; }
  ::ferry::metrics::registry& registry() noexcept { return *registry_; }
  std::string metrics_address() const {
    std::lock_guard lock(address_mu_);
    return metrics_address_;
  }
  /// For /readyz: nullopt once the worker joined its group.
  std::optional<std::string> not_ready() const {
    if (closed_.load() || stop_requested_.load()) return "stopping";
    if (run_failed_.load()) return "run() returned an error (see the log); the worker has stopped";
    // The endpoint exists only once run() started: not joined means joining.
    if (!joined_.load()) return fmt::format("joining consumer group {}", o_.consumer.group_id);
    return std::nullopt;
  }

  // Rebalance callbacks (on the polling thread, inside poll()).
  void assigned(const std::vector<client::topic_partition>& tps);
  bool load(part& p);
  void revoked(const std::vector<client::topic_partition>& tps, bool lost);

 private:
  struct topic_route {
    const sub_info* sub = nullptr;
    int tier = -1;
    std::string origin;
  };

  result<void> fail(std::error_code ec, std::string why) {
    last_error_ = std::move(why);
    return ec;
  }

  result<void> start();
  /// How many tasks one dispatch of `p` may run at once (key-level concurrency).
  [[nodiscard]] std::size_t lanes_of(const part& p) const;
  /// Until the broker answers a describe of `topic` (retrying with backoff,
  /// logging where it waits), or stop(). False when stopped first;
  /// protocol::errc::timed_out after api_timeout unless run() waits forever.
  result<bool> await_broker(const std::string& topic);
  void start_pool();
  void stop_pool();
  void enqueue(std::vector<client::consumer_record>& records);
  void dispatch(part& p);
  void check_duplicates(part& p, const std::vector<entry*>& items);
  void submit(std::unique_ptr<task> t);
  static void run_task(const worker_options& o, ferry::clock& clk, task& t);
  void complete(task& t);
  void on_failure(part& p, entry& e);
  /// Logs `line` at `level` within the rate above; false when dropped.
  bool log_failure(spdlog::level::level_enum level, const std::string& line);
  void route(part& p, entry& e);
  void take_acks();
  void route_failed(part& p, entry& e, std::error_code ec);
  void finished(part& p, entry& e, int attempts);
  void refresh_waiting();
  bool drain_completions(bool block);
  void wait_idle(part* only);
  result<void> commit(bool force, const std::vector<client::topic_partition>* only = nullptr);
  std::vector<std::string> targets_of(const part& p) const;
  result<void> scan_routes(part& p);
  milliseconds next_wait(milliseconds max_wait) const;
  // Counters change on the polling thread only (local_, no lock) and are
  // published for stats() once per step.
  void note_attempts(int attempts) {
    auto& h = local_.attempts_histogram;
    const std::size_t i = static_cast<std::size_t>(std::clamp(attempts, 1, 16) - 1);
    if (h.size() <= i) h.resize(i + 1);
    ++h[i];
  }
  template <typename F>
  void bump(F f) {
    f(local_);
  }
  void publish() {
    std::lock_guard lock(stats_mu_);
    stats_ = local_;
    stats_.last_route_error = route_error_;
    metrics_->in_flight().set(static_cast<double>(in_flight_.load()));
  }

  class listener : public client::rebalance_listener {
   public:
    explicit listener(impl& w) : w_(w) {}
    void on_assigned(client::consumer&, const std::vector<client::topic_partition>& p) override {
      w_.assigned(p);
    }
    void on_revoked(client::consumer&, const std::vector<client::topic_partition>& p) override {
      w_.revoked(p, false);
    }
    void on_lost(client::consumer&, const std::vector<client::topic_partition>& p) override {
      w_.revoked(p, true);
    }

   private:
    impl& w_;
  };

  worker_options o_;
  ferry::clock* clock_ = nullptr;
  std::vector<std::unique_ptr<sub_info>> subs_;
  std::map<std::string, topic_route> by_topic_;
  std::map<std::string, std::int32_t> target_partitions_;
  std::unique_ptr<client::consumer> consumer_;
  std::unique_ptr<client::producer> producer_;
  std::unique_ptr<client::admin> admin_;
  listener listener_{*this};
  std::map<client::topic_partition, std::unique_ptr<part>> parts_;
  std::vector<std::unique_ptr<part>> graveyard_;  // revoked, acknowledgements outstanding
  bool started_ = false;
  std::atomic<bool> closed_{false};  // also read by /readyz
  std::atomic<bool> stop_requested_{false};
  bool wait_for_broker_forever_ = false;  // run(); run_once() gives up after api_timeout
  bool closing_ = false;                  // close(): commits share close_deadline_
  std::chrono::steady_clock::time_point close_deadline_{};
  [[nodiscard]] milliseconds remaining_close_budget() const {
    return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(
                                         close_deadline_ - std::chrono::steady_clock::now()));
  }
  std::atomic<client::consumer*> wake_target_{nullptr};  // for stop() from other threads
  steady_time next_commit_{};
  std::size_t pending_keys_ = 0;  // ledger keys waiting for a commit (all partitions)
  static constexpr std::size_t kKeysPerCommit = 16384;
  static constexpr std::size_t kCommitAtPendingKeys = 65536;
  static constexpr std::size_t kKeyBytesPerCommit = 1u << 20;
  std::string last_error_;
  std::string route_error_;  // the last routing failure, for stats()

  // Keys this worker finished successfully and has not committed yet (the
  // ledger does not have them): key -> wall ms.
  std::unordered_map<std::string, std::int64_t> uncommitted_;

  // Pool.
  std::vector<std::thread> threads_;
  mutable std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::condition_variable done_cv_;
  std::deque<std::unique_ptr<task>> todo_;
  std::deque<std::unique_ptr<task>> done_;
  bool pool_stop_ = false;
  std::size_t tasks_out_ = 0;  // submitted and not completed (polling thread)

  // Producer acknowledgements of routes.
  struct ack {
    part* p;
    entry* e;
    result<client::record_metadata> r;
  };
  std::mutex ack_mu_;
  std::vector<ack> acks_;
  std::size_t routes_out_ = 0;

  mutable std::mutex stats_mu_;
  worker_stats stats_;  // published copy
  worker_stats local_;
  std::atomic<std::uint64_t> waiting_{0};
  std::atomic<std::size_t> in_flight_{0};

  // Metrics (worker_metrics.h); the endpoint goes first (it reads the rest).
  std::shared_ptr<::ferry::metrics::registry> registry_;
  std::unique_ptr<detail::worker_metrics> metrics_;
  steady_time next_waiting_scan_{};
  // Polling thread: failure and dead-letter lines, at most kFailureLinesPerSecond
  // a second, the rest counted into the next line (log_failure()).
  steady_time failure_log_window_{};
  int failure_lines_ = 0;
  std::uint64_t failure_lines_dropped_ = 0;
  std::atomic<bool> joined_{false};
  std::atomic<bool> run_failed_{false};
  mutable std::mutex address_mu_;
  std::string metrics_address_;  // endpoint_'s, for other threads
  std::unique_ptr<::ferry::metrics::http_endpoint> endpoint_;
};

}  // namespace ferry::runtime
