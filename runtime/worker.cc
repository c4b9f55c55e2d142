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
#include "ferry/runtime/worker.h"

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
#include "progress.h"
#include "worker_metrics.h"

namespace ferry::runtime {
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using steady_time = std::chrono::steady_clock::time_point;

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("runtime");
  return l;
}

std::string default_worker_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "localhost");
  return fmt::format("{}:{}", host, ::getpid());
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
  int inline_failures = 0;  // attempts that failed and were retried at once inside the task
  // What the committed metadata says about this record's attempts. Owned by
  // the polling thread (a running task changes attempts/history, never
  // these), so commit() can read them while the record runs.
  detail::parked_attempts meta;
};

}  // namespace

// Zero-backoff retries run back to back inside the task while the chain
// is younger than this; a crash inside it may repeat the chain's attempts.
constexpr std::chrono::milliseconds kInlineRetryBudget{10};

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
  std::int64_t next = 0;  // everything below is finished
  bool running = false;
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
  std::vector<entry*> items;
};

class worker::impl {
 public:
  [[nodiscard]] const worker_options& options() const noexcept { return o_; }

  explicit impl(worker_options o) : o_(std::move(o)) {
    if (o_.worker_name.empty()) o_.worker_name = default_worker_name();
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
  void start_pool();
  void stop_pool();
  void enqueue(std::vector<client::consumer_record>& records);
  void dispatch(part& p);
  void check_duplicates(part& p, const std::vector<entry*>& items);
  void submit(std::unique_ptr<task> t);
  static void run_task(const worker_options& o, ferry::clock& clk, task& t);
  void complete(task& t);
  void on_failure(part& p, entry& e);
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
  std::atomic<bool> joined_{false};
  std::atomic<bool> run_failed_{false};
  mutable std::mutex address_mu_;
  std::string metrics_address_;  // endpoint_'s, for other threads
  std::unique_ptr<::ferry::metrics::http_endpoint> endpoint_;
};

// --- start / stop --------------------------------------------------------------

result<void> worker::impl::start() {
  if (subs_.empty()) return fail(ferry::errc::invalid_argument, "no subscription");
  if (o_.consumer.group_id.empty())
    return fail(ferry::errc::invalid_argument, "worker_options.consumer.group_id is required");
  if (!o_.metrics_listen.empty() && !endpoint_) {
    // Up before the group is joined: /readyz says 503 until then.
    ::ferry::metrics::register_process_metrics(*registry_, "worker");
    std::string why;
    auto ep = ::ferry::metrics::http_endpoint::start(
        o_.metrics_listen, *registry_, [this] { return not_ready(); }, why);
    if (!ep) return fail(ferry::errc::config_invalid, "metrics_listen: " + why);
    endpoint_ = std::move(ep).value();
    std::lock_guard lock(address_mu_);
    metrics_address_ = endpoint_->address();
  }
  admin_ = std::make_unique<client::admin>(static_cast<const client::client_options&>(o_.consumer));
  // Targets exist with as many partitions as their origin, so that
  // partition p routes to partition p (and a new owner knows where to look).
  std::vector<std::string> topics;
  for (const auto& s : subs_)
    for (const auto& t : s->s.topics) {
      auto d = admin_->describe_topic(t);
      if (!d) return fail(d.error(), fmt::format("topic {}: {}", t, d.error().message()));
      const auto n = static_cast<std::int32_t>(d.value().partitions.size());
      std::vector<std::string> targets{s->dlq_for(t)};
      for (const auto& tier : s->s.tiers) targets.push_back(tier_topic(t, tier));
      for (const auto& target : targets) {
        auto td = admin_->describe_topic(target);
        if (!td && td.error() == client::errc::unknown_topic && o_.create_topics) {
          client::topic_config c;
          c.partitions = n;
          auto cr = admin_->create_topic(target, c);
          if (!cr && cr.error() != client::errc::topic_already_exists)
            return fail(cr.error(), fmt::format("creating {}: {}", target, cr.error().message()));
          td = admin_->describe_topic(target);
        }
        if (!td)
          return fail(td.error(), fmt::format("topic {} ({}): {}", target,
                                              "dead-letter or retry tier", td.error().message()));
        target_partitions_[target] = static_cast<std::int32_t>(td.value().partitions.size());
      }
      topics.push_back(t);
      for (const auto& tier : s->s.tiers) topics.push_back(tier_topic(t, tier));
    }
  consumer_ = std::make_unique<client::consumer>(o_.consumer);
  producer_ = std::make_unique<client::producer>(o_.producer);
  FERRY_TRY(consumer_->subscribe(topics, &listener_));
  wake_target_.store(consumer_.get());
  start_pool();
  started_ = true;
  next_commit_ = std::chrono::steady_clock::now() + o_.commit_interval;
  logger()->info("worker {} in group {}: {} topics, concurrency {}", o_.worker_name,
                 o_.consumer.group_id, topics.size(), o_.concurrency);
  return success();
}

void worker::impl::start_pool() {
  for (int i = 0; i < o_.concurrency; ++i)
    threads_.emplace_back([this] {
      std::unique_lock lock(pool_mu_);
      for (;;) {
        pool_cv_.wait(lock, [&] { return pool_stop_ || !todo_.empty(); });
        if (todo_.empty()) return;
        auto t = std::move(todo_.front());
        todo_.pop_front();
        lock.unlock();
        run_task(o_, *clock_, *t);
        lock.lock();
        done_.push_back(std::move(t));
        done_cv_.notify_all();
        if (auto* c = wake_target_.load()) c->wakeup();
      }
    });
}

void worker::impl::stop_pool() {
  {
    std::lock_guard lock(pool_mu_);
    pool_stop_ = true;
  }
  pool_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

result<void> worker::impl::close() {
  if (!started_ || closed_) return success();
  closed_ = true;
  wait_idle(nullptr);
  (void)producer_->flush(o_.producer.delivery_timeout);
  take_acks();
  auto r = commit(true);
  // close(): on_revoked commits once more (nothing new) and leaves the group.
  auto c = consumer_->close();
  parts_.clear();
  in_flight_.store(0);
  publish();
  refresh_waiting();
  (void)producer_->close();
  if (!r) return r;
  return c;
}

// --- the loop ----------------------------------------------------------------------

result<void> worker::impl::run_once(milliseconds max_wait) {
  if (closed_) return fail(errc::stopped, "the worker was closed");
  if (!started_) {
    FERRY_TRY(start());
  }
  drain_completions(false);
  take_acks();
  for (auto& [tp, p] : parts_) {
    if (p->loaded || std::chrono::steady_clock::now() < p->retry_load_at) continue;
    if (load(*p)) {
      (void)consumer_->seek(tp, offset(p->next));
      if (consumer_->resume({tp})) p->paused = false;
    } else {
      p->retry_load_at = std::chrono::steady_clock::now() + 1s;
    }
  }
  for (auto& [_, p] : parts_) dispatch(*p);
  // Commits run on real time (the injected clock drives retries only).
  if (std::chrono::steady_clock::now() >= next_commit_ || pending_keys_ >= kCommitAtPendingKeys ||
      std::any_of(parts_.begin(), parts_.end(), [](const auto& kv) { return kv.second->urgent; })) {
    (void)commit(false);
    next_commit_ = std::chrono::steady_clock::now() + o_.commit_interval;
  }
  auto records = consumer_->poll(next_wait(max_wait));
  if (!records) {
    const auto ec = records.error();
    if (client::is_retriable(ec) || ec == client::errc::rebalance_in_progress ||
        ec == client::errc::unknown_member || ec == client::errc::stale_generation) {
      logger()->info("poll: {} ({}); going on", ec.message(), consumer_->last_error_message());
      return success();
    }
    return fail(ec, fmt::format("poll: {}: {}", ec.message(), consumer_->last_error_message()));
  }
  enqueue(records.value());
  drain_completions(false);
  take_acks();
  for (auto& [_, p] : parts_) dispatch(*p);
  publish();
  if (clock_->steady_now() >= next_waiting_scan_) {
    refresh_waiting();
    next_waiting_scan_ = clock_->steady_now() + 100ms;
  }
  return success();
}

// ferry_worker_retry_waiting and _oldest_age_seconds per mode: a scan of
// the buffered records, at most every 100 ms (run_once). In memory retries
// (in_order, key_ordered) wait in state waiting; delay_tiers records wait
// in their tier partition until due.
void worker::impl::refresh_waiting() {
  struct acc {
    std::size_t n = 0;
    std::int64_t first_ms = std::numeric_limits<std::int64_t>::max();
  };
  std::array<acc, 3> by_mode{};
  const auto now_ms = clock_->wall_now().value();
  for (const auto& [_, p] : parts_) {
    const auto mode = p->sub->s.order;
    const bool tier = p->tier >= 0;
    if (!tier && waiting_.load() == 0) continue;
    auto& a = by_mode[static_cast<std::size_t>(mode)];
    for (const auto& e : p->q) {
      if (tier) {
        // Fetched from a tier and not yet due (as dispatch() decides).
        if (e->state != entry::st::queued) continue;
        const auto& t = p->sub->s.tiers[static_cast<std::size_t>(p->tier)];
        if (now_ms >= e->rec.timestamp.value() + t.delay.count()) continue;
      } else if (e->state != entry::st::waiting) {
        continue;
      }
      ++a.n;
      const std::int64_t first = e->history.attempts.empty() ? e->rec.timestamp.value()
                                                             : e->history.attempts.front().time_ms;
      a.first_ms = std::min(a.first_ms, first);
    }
  }
  const auto wall = clock_->wall_now().value();
  for (auto mode : {ordering::in_order, ordering::key_ordered, ordering::delay_tiers}) {
    const auto& a = by_mode[static_cast<std::size_t>(mode)];
    const double age =
        a.n == 0 ? 0.0 : static_cast<double>(std::max<std::int64_t>(0, wall - a.first_ms)) / 1000.0;
    metrics_->set_waiting(mode, a.n, age);
  }
}

milliseconds worker::impl::next_wait(milliseconds max_wait) const {
  {
    std::lock_guard lock(pool_mu_);
    if (!done_.empty()) return 0ms;
  }
  const auto real_now = std::chrono::steady_clock::now();
  if (next_commit_ <= real_now) return 0ms;
  max_wait = std::min(max_wait, std::chrono::ceil<milliseconds>(next_commit_ - real_now));
  const auto now = clock_->steady_now();
  auto until = now + max_wait;
  const auto wall = clock_->wall_now().value();
  // The same eligibility as dispatch(): only what it would run when due.
  for (const auto& [_, p] : parts_) {
    if (p->running || !p->loaded) continue;
    std::unordered_set<std::string_view> blocked;
    for (const auto& e : p->q) {
      if (e->state == entry::st::route_failed) {
        until = std::min(until, e->due);
        continue;
      }
      if (e->state != entry::st::waiting && e->state != entry::st::queued) continue;
      if (p->tier >= 0) {
        const auto due_ms = e->rec.timestamp.value() +
                            p->sub->s.tiers[static_cast<std::size_t>(p->tier)].delay.count();
        until = std::min(until, now + milliseconds(std::max<std::int64_t>(0, due_ms - wall)));
        break;
      }
      if (p->sub->s.order == ordering::in_order) {
        if (e->state == entry::st::waiting) until = std::min(until, e->due);
        break;  // the head decides
      }
      if (e->state != entry::st::waiting) continue;
      if (e->rec.key && !blocked.insert(*e->rec.key).second) continue;  // behind its key
      until = std::min(until, e->due);
    }
  }
  if (until <= now) return 0ms;
  return std::chrono::ceil<milliseconds>(until - now);
}

void worker::impl::enqueue(std::vector<client::consumer_record>& records) {
  for (auto& r : records) {
    auto it = parts_.find({r.topic, r.partition});
    if (it == parts_.end()) continue;  // revoked meanwhile
    part& p = *it->second;
    if (!p.loaded || r.offset.value() < p.next) continue;  // unloaded: fetched again after seek
    if (p.skip.erase(r.offset.value()) > 0) {
      p.restored.erase(r.offset.value());
      // Finished before a crash or rebalance (metadata "d" or a route found).
      if (p.q.empty() && r.offset.value() == p.next) {
        p.next = r.offset.value() + 1;
        continue;
      }
      auto e = std::make_unique<entry>();
      e->rec = std::move(r);
      e->state = entry::st::done;
      p.q.push_back(std::move(e));
      continue;
    }
    auto e = std::make_unique<entry>();
    e->rec = std::move(r);
    e->origin = {e->rec.topic, e->rec.partition.value(), e->rec.offset.value()};
    if (auto h = get_header(e->rec.headers, protocol::kIdempotencyKeyHeader))
      e->idem = std::move(h);
    if (p.tier >= 0) {
      // A record from a retry tier: its origin and attempts travel in headers.
      if (auto o = get_header(e->rec.headers, kOriginHeader))
        if (auto pos = parse_position(*o)) e->origin = *pos;
      if (auto f = get_header(e->rec.headers, kFailureHeader))
        if (auto fr = decode_failure(*f)) e->history = std::move(fr).value();
      if (auto a = get_header(e->rec.headers, kAttemptHeader)) {
        try {
          e->attempts = std::max(0, std::stoi(*a));
        } catch (const std::exception&) {
          e->attempts = e->history.attempts_total;
        }
      }
    }
    if (auto rs = p.restored.find(e->rec.offset.value()); rs != p.restored.end()) {
      // Attempts made by an earlier owner (in_order / key_ordered).
      e->attempts = rs->second.attempts;
      e->meta = rs->second;
      e->history.attempts_total = rs->second.attempts - 1;
      e->history.add_attempt({rs->second.first_ms, error_class::retriable, "ferry.runtime", 0,
                              rs->second.last_error.empty()
                                  ? std::string("(attempts before a restart or rebalance)")
                                  : rs->second.last_error,
                              "(earlier owner)"});
      p.restored.erase(rs);
      const bool was_routing = e->meta.route >= 0 && e->meta.route <= 2;
      if (was_routing || e->attempts >= p.sub->s.retry.max_attempts) {
        // It was dead-lettered before the restart, but its dead letter never
        // reached the broker (the route scan found none): route it now
        // instead of calling the handler once more.
        e->route_target = p.sub->dlq_for(p.origin_topic);
        e->route_reason = was_routing ? static_cast<dead_letter_reason>(e->meta.route)
                                      : dead_letter_reason::attempts_exhausted;
        e->route_message =
            *e->route_reason == dead_letter_reason::attempts_exhausted
                ? fmt::format("{} attempts failed; last: {}", e->attempts, e->meta.last_error)
                : e->meta.last_error;
        e->state = entry::st::route_failed;  // dispatch() routes it at once
        e->due = {};
      }
    }
    p.q.push_back(std::move(e));
    in_flight_.fetch_add(1);
  }
  for (auto& [tp, p] : parts_)
    if (!p->paused && p->q.size() >= o_.max_buffered) {
      if (consumer_->pause({tp})) p->paused = true;
    }
}

// --- dispatch -----------------------------------------------------------------------

void worker::impl::dispatch(part& p) {
  if (p.running || closed_ || !p.loaded) return;
  // Finished entries at the front move the commit position.
  while (!p.q.empty() && p.q.front()->state == entry::st::done) {
    p.next = p.q.front()->rec.offset.value() + 1;
    p.q.pop_front();
  }
  if (p.paused && p.q.size() < o_.max_buffered / 2) {
    if (consumer_->resume({p.tp})) p.paused = false;
  }
  const auto now = clock_->steady_now();
  const auto order = p.sub->s.order;
  std::vector<entry*> items;
  std::unordered_set<std::string> blocked;
  for (auto& up : p.q) {
    entry& e = *up;
    if (e.state == entry::st::route_failed) {
      if (now >= e.due) route(p, e);
      if (order == ordering::in_order) continue;  // routed records do not hold the partition
      continue;
    }
    if (e.state == entry::st::done || e.state == entry::st::routing) continue;
    if (p.tier >= 0) {
      // Tier records are due in order (one delay per tier): stop at the first not due.
      const auto due_ms =
          e.rec.timestamp.value() + p.sub->s.tiers[static_cast<std::size_t>(p.tier)].delay.count();
      if (clock_->wall_now().value() < due_ms) break;
      items.push_back(&e);
      continue;
    }
    if (order == ordering::in_order) {
      if (e.state == entry::st::waiting && now < e.due) break;
      items.push_back(&e);
      continue;
    }
    // key_ordered and delay_tiers (which never waits in memory).
    const std::string* key = e.rec.key ? &*e.rec.key : nullptr;
    if (key && blocked.count(*key)) continue;
    if (e.state == entry::st::waiting && now < e.due) {
      if (key) blocked.insert(*key);
      continue;
    }
    items.push_back(&e);
    if (items.size() >= 1024) break;
  }
  if (items.empty()) return;
  check_duplicates(p, items);
  for (auto* e : items) {
    if (e->state == entry::st::waiting) waiting_.fetch_sub(1);
    e->state = entry::st::running;
  }
  auto t = std::make_unique<task>();
  t->p = &p;
  t->items = std::move(items);
  p.running = true;
  submit(std::move(t));
}

void worker::impl::check_duplicates(part& p, const std::vector<entry*>& items) {
  if (!p.sub->s.skip_processed_keys) return;
  const auto window = p.sub->s.idempotency_window;
  const auto wall = clock_->wall_now().value();
  std::vector<std::string> ask;
  std::vector<entry*> asked;
  for (auto* e : items) {
    if (!e->idem || e->duplicate) continue;
    // Finished here and not committed yet: known without asking (checked
    // every time, cheap, as this worker finishes keys between chunks).
    if (auto it = uncommitted_.find(*e->idem);
        it != uncommitted_.end() && (window.count() == 0 || wall - it->second <= window.count())) {
      e->duplicate = true;
      e->checked = true;
      continue;
    }
    if (e->checked) continue;
    e->checked = true;
    ask.push_back(*e->idem);
    asked.push_back(e);
  }
  if (ask.empty()) return;
  auto found = consumer_->ledger_lookup(ask, window);
  if (!found) {
    // Not knowing is not a reason to skip: run the handler (at least once).
    logger()->warn(
        "{}-{} offsets {}..{}: idempotency ledger lookup failed: {} ({}); handling {} records "
        "without it (at least once)",
        p.tp.topic, p.tp.partition.value(), asked.front()->rec.offset.value(),
        asked.back()->rec.offset.value(), found.error().message(), consumer_->last_error_message(),
        ask.size());
    return;
  }
  for (std::size_t i = 0; i < asked.size(); ++i)
    if (found.value()[i]) asked[i]->duplicate = true;
}

void worker::impl::submit(std::unique_ptr<task> t) {
  ++tasks_out_;
  if (o_.concurrency <= 0) {
    // On this thread, finished at once: run_once() is deterministic.
    run_task(o_, *clock_, *t);
    --tasks_out_;
    complete(*t);
    return;
  }
  {
    std::lock_guard lock(pool_mu_);
    todo_.push_back(std::move(t));
  }
  pool_cv_.notify_one();
}

void worker::impl::run_task(const worker_options& o, ferry::clock& clk, task& t) {
  const std::string& worker_name = o.worker_name;
  const auto& s = t.p->sub->s;
  const std::string_view origin_topic = t.p->origin_topic;
  std::unordered_set<std::string> failed_keys, ok_keys;
  bool stop = false;
  auto call = [&](auto&& fn) -> result<void> {
    detail::clear_note();
    try {
      return fn();
    } catch (const std::exception& ex) {
      return retriable(errc::handler_exception, ex.what());
    } catch (...) {
      return retriable(errc::handler_exception, "an exception that is not a std::exception");
    }
  };
  auto record_failure = [&](entry& e, const std::error_code& ec,
                            std::optional<detail::error_note> taken = std::nullopt) {
    e.out = entry::outcome::failed;
    e.err = ec;
    auto n = taken ? std::move(*taken) : detail::take_note();
    if (n.ec == ec) {
      e.cls = n.cls;
      e.err_message = std::move(n.message);
    } else {
      e.cls = error_class::retriable;
      e.err_message.clear();
    }
    if (e.err_message.empty()) e.err_message = ec.message();
  };
  if (s.on_batch) {
    std::vector<message> msgs;
    std::vector<entry*> run;
    // Only what the ledger (or this worker) already finished is skipped: a
    // repeat of a key inside the batch runs with it (the batch may fail).
    for (auto* e : t.items) {
      if (e->duplicate) {
        e->out = entry::outcome::skipped;
        continue;
      }
      run.push_back(e);
    }
    for (auto* e : run)
      msgs.emplace_back(e->rec, origin_topic, e->origin, e->idem, e->attempts + 1);
    if (!run.empty()) {
      const auto t0 = std::chrono::steady_clock::now();
      auto r = call([&] { return s.on_batch(std::span<const message>(msgs)); });
      t.p->m->handler_seconds->observe(std::chrono::steady_clock::now() - t0);
      const auto ended = clk.wall_now().value();
      // One note for the whole batch: every record gets its class.
      auto note = r ? detail::error_note{} : detail::take_note();
      for (auto* e : run) {
        e->ended_ms = ended;
        if (r)
          e->out = entry::outcome::ok;
        else
          record_failure(*e, r.error(), note);
      }
    }
    return;
  }
  // A chunk hands its results back after o.chunk_budget at most: what it has
  // not started goes back to the queue for the next chunk. Without the
  // bound, a chunk of hundreds of slow records (a handler that waits on a
  // database or a produce) finished nothing for seconds - no commit, no
  // progress, and a crash repeated all of it.
  const auto started = std::chrono::steady_clock::now();
  const auto budget = o.chunk_budget;
  bool out_of_time = false;
  for (auto* e : t.items) {
    const std::string* key = e->rec.key ? &*e->rec.key : nullptr;
    if (!out_of_time && budget.count() > 0 && e != t.items.front())
      out_of_time = std::chrono::steady_clock::now() - started >= budget;
    if (stop || out_of_time || (s.order != ordering::in_order && key && failed_keys.count(*key))) {
      e->out = out_of_time && !stop ? entry::outcome::deferred : entry::outcome::not_run;
      continue;
    }
    if (e->duplicate || (s.skip_processed_keys && e->idem && ok_keys.count(*e->idem))) {
      e->out = entry::outcome::skipped;
      continue;
    }
    result<void> r = success();
    bool final_failure = false;  // the record goes to a DLQ or tier: nothing waits for it
    const auto chain_start = std::chrono::steady_clock::now();
    // One clock read per attempt: its end is the next one's start (the
    // handler histogram and the inline retry budget share it).
    auto attempt_start = chain_start;
    for (;;) {
      message m(e->rec, origin_topic, e->origin, e->idem, e->attempts + 1);
      r = call([&] { return s.handler(m); });
      const auto attempt_end = std::chrono::steady_clock::now();
      t.p->m->handler_seconds->observe(attempt_end - attempt_start);
      attempt_start = attempt_end;
      e->ended_ms = clk.wall_now().value();
      if (r) break;
      record_failure(*e, r.error());
      // A retry with no backoff runs here at once (no round trip through the
      // polling thread); the last attempt's failure is left to on_failure().
      const auto* ov = s.retry.override_for(e->err);
      const int max = ov && ov->max_attempts ? *ov->max_attempts : s.retry.max_attempts;
      if (e->cls != error_class::retriable || (ov && ov->permanent) || e->attempts + 1 >= max ||
          s.order == ordering::delay_tiers || t.p->tier >= 0) {
        final_failure = true;
        break;
      }
      const auto& b = ov && ov->backoff ? *ov->backoff : s.retry.backoff;
      if (b.initial.count() != 0) break;  // waits for its backoff
      // Slow attempts go back to the polling thread, which commits the count
      // before the next one (a crash then loses at most the last attempt).
      if (attempt_start - chain_start > kInlineRetryBudget) break;
      ++e->attempts;
      e->inline_failures++;
      e->history.add_attempt({e->ended_ms, e->cls, e->err.category().name(), e->err.value(),
                              e->err_message, worker_name});
      e->history.attempts_total = e->attempts;
    }
    if (r) {
      e->out = entry::outcome::ok;
      if (e->idem) ok_keys.insert(*e->idem);
      continue;
    }
    if (final_failure) continue;  // dead-lettered or sent to a tier: later records go on
    if (t.p->tier < 0 && s.order == ordering::in_order) stop = true;
    if (key) failed_keys.insert(*key);
  }
}

bool worker::impl::drain_completions(bool block) {
  std::deque<std::unique_ptr<task>> done;
  {
    std::unique_lock lock(pool_mu_);
    if (block) done_cv_.wait_for(lock, 50ms, [&] { return !done_.empty(); });
    done.swap(done_);
  }
  for (auto& t : done) {
    --tasks_out_;
    complete(*t);
  }
  return !done.empty();
}

void worker::impl::complete(task& t) {
  part& p = *t.p;
  const auto wall = clock_->wall_now().value();
  p.running = false;
  for (auto* e : t.items) {
    if (e->inline_failures > 0) {
      bump([n = e->inline_failures](worker_stats& st) {
        st.failed_attempts += static_cast<std::uint64_t>(n);
      });
      p.m->retried->inc(static_cast<std::uint64_t>(e->inline_failures));
      e->inline_failures = 0;
    }
    switch (e->out) {
      case entry::outcome::ok:
        crash_point("runtime.handled");  // side effect done, offset not committed
        finished(p, *e, e->attempts + 1);
        bump([](worker_stats& s) { ++s.succeeded; });
        p.m->ok->inc();
        if (e->idem) {
          p.keys.emplace_back(e->rec.offset.value(), *e->idem);
          ++pending_keys_;
          uncommitted_.insert_or_assign(*e->idem, wall);
        }
        break;
      case entry::outcome::skipped:
        finished(p, *e, 0);  // no attempt: not in the attempts histogram
        bump([](worker_stats& s) { ++s.duplicates_skipped; });
        p.m->duplicate_skipped->inc();
        break;
      case entry::outcome::not_run:
      case entry::outcome::deferred:
      case entry::outcome::none:
        // Ask the ledger again before it runs (its key may be done by now),
        // unless it was only deferred: then only this worker's own finished
        // keys can have changed, and those are checked every time.
        if (e->out != entry::outcome::deferred) e->checked = false;
        if (e->attempts > 0) {
          e->state = entry::st::waiting;  // its due time has passed: runs next
          waiting_.fetch_add(1);
        } else {
          e->state = entry::st::queued;
        }
        break;
      case entry::outcome::failed:
        on_failure(p, *e);
        break;
    }
    e->out = entry::outcome::none;
  }
}

void worker::impl::finished(part& p, entry& e, int attempts) {
  e.state = entry::st::done;
  if (attempts > 0) {
    note_attempts(attempts);
    p.m->attempts->observe(static_cast<double>(attempts));
  }
  in_flight_.fetch_sub(1);
}

void worker::impl::on_failure(part& p, entry& e) {
  const auto& s = p.sub->s;
  ++e.attempts;
  bump([](worker_stats& st) { ++st.failed_attempts; });
  e.history.add_attempt(
      {e.ended_ms, e.cls, e.err.category().name(), e.err.value(), e.err_message, o_.worker_name});
  e.history.attempts_total = e.attempts;
  e.meta = {e.rec.offset.value(), e.attempts,
            e.history.attempts.empty() ? e.ended_ms : e.history.attempts.front().time_ms,
            e.err_message, -1};
  const auto* ov = s.retry.override_for(e.err);
  const int max = ov && ov->max_attempts ? *ov->max_attempts : s.retry.max_attempts;
  std::optional<dead_letter_reason> reason;
  if (e.cls == error_class::invalid_payload)
    reason = dead_letter_reason::invalid_payload;
  else if (e.cls == error_class::permanent || (ov && ov->permanent))
    reason = dead_letter_reason::permanent_error;
  else if (e.attempts >= max)
    reason = dead_letter_reason::attempts_exhausted;
  if (reason) {
    e.meta.route = static_cast<int>(*reason);
    e.route_target = p.sub->dlq_for(p.origin_topic);
    e.route_reason = reason;
    e.route_message = *reason == dead_letter_reason::attempts_exhausted
                          ? fmt::format("{} attempts failed; last: {}", e.attempts, e.err_message)
                          : e.err_message;
    route(p, e);
    return;
  }
  if (s.order == ordering::delay_tiers) {
    const auto i = std::min<std::size_t>(static_cast<std::size_t>(e.attempts), s.tiers.size()) - 1;
    e.route_target = tier_topic(p.origin_topic, s.tiers[i]);
    e.route_reason.reset();
    e.route_message.clear();
    route(p, e);
    return;
  }
  const auto& b = ov && ov->backoff ? *ov->backoff : s.retry.backoff;
  const auto delay = b.delay(e.attempts, o_.random());
  e.due = clock_->steady_now() + delay;
  e.state = entry::st::waiting;
  e.checked = false;  // ask again before the retry: its key may be done by now
  waiting_.fetch_add(1);
  // The attempt count goes into the committed metadata before the next
  // attempt (zero-backoff retries that stay within kInlineRetryBudget run
  // inside the task and do not come here until their last failure).
  p.urgent = true;
  crash_point("runtime.retry_scheduled");
  bump([](worker_stats& st) { ++st.retries_scheduled; });
  p.m->retried->inc();
}

void worker::impl::route(part& p, entry& e) {
  if (!p.wm_committed) {
    // A crash after this route must find it: the watermarks go first.
    e.state = entry::st::route_failed;
    e.due = clock_->steady_now();
    p.urgent = true;
    return;
  }
  client::producer_record r;
  r.topic = e.route_target;
  const auto n = target_partitions_[e.route_target];
  r.partition = partition_id(n > 0 ? p.tp.partition.value() % n : 0);
  r.key = e.rec.key;
  r.value = e.rec.value;
  r.headers = e.rec.headers;
  failure_record f = e.history;
  f.origin_topic = e.origin.topic;
  f.origin_partition = e.origin.partition;
  f.origin_offset = e.origin.offset;
  f.origin_key = e.rec.key;
  if (p.tier < 0) f.origin_timestamp_ms = e.rec.timestamp.value();
  f.group = o_.consumer.group_id;
  f.worker = o_.worker_name;
  f.attempts_total = e.attempts;
  if (e.route_reason) {
    f.reason = *e.route_reason;
    f.reason_message = e.route_message;
    f.dead_lettered_ms = clock_->wall_now().value();
  }
  set_header(r.headers, kFailureHeader, encode_failure(f));
  set_header(r.headers, kOriginHeader, format_position(e.origin));
  set_header(r.headers, kRouteHeader,
             format_route({o_.consumer.group_id,
                           {p.tp.topic, p.tp.partition.value(), e.rec.offset.value()}}));
  set_header(r.headers, kAttemptHeader, std::to_string(e.attempts));
  // Due times of tier records are their timestamps plus the tier's delay.
  r.timestamp = clock_->wall_now();
  e.state = entry::st::routing;
  ++routes_out_;
  auto sent = producer_->send(std::move(r), [this, pp = &p, pe = &e](const auto& m) {
    {
      std::lock_guard lock(ack_mu_);
      acks_.push_back({pp, pe, m});
    }
    if (auto* c = wake_target_.load()) c->wakeup();
  });
  if (!sent) {
    --routes_out_;
    route_failed(p, e, sent.error());
  }
}

// The record stays (its offset is not committed) and is routed again; the
// failure is counted, kept in last_error() and logged once per record and
// error, not every second.
void worker::impl::route_failed(part& p, entry& e, std::error_code ec) {
  bump([](worker_stats& st) { ++st.route_failures; });
  metrics_->route_failures().inc();
  const auto what =
      fmt::format("{}-{} offset {}: routing to {} failed: {}", p.tp.topic, p.tp.partition.value(),
                  e.rec.offset.value(), e.route_target, ec.message());
  if (e.route_error != ec) {
    e.route_error = ec;
    logger()->warn("{}; trying again every second (the offset stays uncommitted)", what);
  }
  route_error_ = what;
  e.state = entry::st::route_failed;
  e.due = clock_->steady_now() + 1s;
}

void worker::impl::take_acks() {
  std::vector<ack> acks;
  {
    std::lock_guard lock(ack_mu_);
    acks.swap(acks_);
  }
  if (acks.empty() && routes_out_ == 0) graveyard_.clear();
  for (auto& a : acks) {
    --routes_out_;
    entry& e = *a.e;
    if (!a.r) {
      route_failed(*a.p, e, a.r.error());
      continue;
    }
    auto& last = a.p->last_ack[e.route_target];
    last = std::max(last, a.r.value().offset.value());
    // A record handed to a retry tier is not finished for good: its last
    // attempt is counted where it succeeds or is dead-lettered.
    finished(*a.p, e, e.route_reason ? e.attempts : 0);
    crash_point("runtime.route_acked");  // routed, origin offset not committed
    if (e.route_reason) {
      bump([](worker_stats& s) { ++s.dead_lettered; });
      a.p->m->dead_lettered->inc();
    } else {
      bump([](worker_stats& s) { ++s.tier_routed; });
      a.p->m->retried->inc();
    }
  }
}

void worker::impl::wait_idle(part* only) {
  for (;;) {
    const bool busy = only ? only->running : tasks_out_ > 0;
    if (!busy) return;
    drain_completions(true);
  }
}

// --- commits ------------------------------------------------------------------------

result<void> worker::impl::commit(bool force, const std::vector<client::topic_partition>* only) {
  struct unit {
    part* p = nullptr;
    client::offset_commit c;
    std::size_t keys_to = 0;  // p->keys[0, keys_to) are in this or an earlier unit
    bool last = false;        // the partition's final unit: offset = next
  };
  std::vector<unit> units;
  for (auto& [tp, pp] : parts_) {
    if (only && std::find(only->begin(), only->end(), tp) == only->end()) continue;
    part& p = *pp;
    if (!p.loaded) continue;  // its progress is not known: never overwrite it
    while (!p.q.empty() && p.q.front()->state == entry::st::done) {
      p.next = p.q.front()->rec.offset.value() + 1;
      p.q.pop_front();
    }
    detail::progress pr;
    // Watermarks move up to what this partition had acknowledged once
    // nothing of it is on its way (progress.h).
    bool routing = false;
    for (const auto& e : p.q)
      if (e->state == entry::st::routing || e->state == entry::st::route_failed) routing = true;
    if (!routing)
      for (const auto& [target, off] : p.last_ack) p.wm[target] = std::max(p.wm[target], off + 1);
    pr.watermarks = p.wm;
    std::vector<std::int64_t> done;
    for (const auto& e : p.q) {
      if (e->state == entry::st::done) done.push_back(e->rec.offset.value());
      // Records on their way to a DLQ keep their attempts here until the
      // broker has the dead letter: a crash before that must not restart them.
      if (e->meta.attempts > 0 && e->state != entry::st::done && p.tier < 0)
        pr.attempts.push_back(e->meta);
    }
    for (auto s : p.skip)
      if (s >= p.next) done.push_back(s);
    for (const auto& [off, a] : p.restored)  // not fetched again yet
      if (off >= p.next) pr.attempts.push_back(a);
    std::sort(done.begin(), done.end());
    pr.done = detail::to_ranges(done);
    auto meta = detail::encode_progress(pr);
    if (!force && p.next == p.last_next && meta == p.last_meta && p.keys.empty()) continue;
    // The keys go with the offset that covers them, in one durable write;
    // many keys are spread over several commits of rising offsets (each at
    // most kKeysPerCommit keys / kKeyBytesPerCommit bytes).
    std::stable_sort(p.keys.begin(), p.keys.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::size_t i = 0;
    do {
      unit u;
      u.p = &p;
      u.c.tp = tp;
      u.c.metadata = meta;
      std::size_t bytes = 0;
      std::int64_t last_off = -1;
      while (i < p.keys.size() && u.c.ledger_keys.size() < kKeysPerCommit &&
             bytes < kKeyBytesPerCommit) {
        bytes += p.keys[i].second.size() + 8;
        last_off = p.keys[i].first;
        u.c.ledger_keys.push_back(p.keys[i].second);
        ++i;
      }
      u.keys_to = i;
      u.last = i >= p.keys.size();
      // Never below what may be committed already (a refused regression
      // would fail the whole request, every time).
      u.c.next = offset(u.last ? p.next : std::max(p.last_next, std::min(p.next, last_off + 1)));
      units.push_back(std::move(u));
    } while (i < p.keys.size());
  }
  if (units.empty()) return success();
  result<void> r = success();
  std::size_t at = 0;
  while (at < units.size()) {
    std::vector<client::offset_commit> req;
    std::size_t bytes = 0, end = at;
    while (end < units.size() && (req.empty() || bytes < kKeyBytesPerCommit)) {
      for (const auto& k : units[end].c.ledger_keys) bytes += k.size() + 8;
      bytes += units[end].c.metadata.size() + 64;
      req.push_back(units[end].c);
      ++end;
    }
    r = consumer_->commit(req);
    if (!r) {
      // Logged here, once per failed request, with what it was for; callers
      // do not log it again. A later commit carries the same offsets.
      std::string what;
      for (std::size_t k = at; k < end && k < at + 4; ++k)
        what += fmt::format("{}{}-{}@{}", what.empty() ? "" : ", ", units[k].c.tp.topic,
                            units[k].c.tp.partition.value(), units[k].c.next.value());
      if (end - at > 4) what += fmt::format(" and {} more", end - at - 4);
      logger()->info("commit of {} failed: {} ({}); the next commit retries it{}", what,
                     r.error().message(), consumer_->last_error_message(),
                     force ? " (routes of newly assigned partitions wait for it)" : "");
      // The outcome may be unknown (a lost reply) or partial: learn what the
      // broker has, so that the next commit starts from there.
      std::vector<client::topic_partition> tps;
      for (std::size_t k = at; k < end; ++k) tps.push_back(units[k].c.tp);
      if (auto c = consumer_->committed(tps))
        for (const auto& x : c.value())
          if (auto it = parts_.find(x.tp); it != parts_.end() && x.next)
            it->second->last_next = std::max(it->second->last_next, x.next->value());
      break;
    }
    for (std::size_t k = at; k < end; ++k) {
      part& p = *units[k].p;
      p.keys_done = units[k].keys_to;
      p.last_next = std::max(p.last_next, units[k].c.next.value());
      if (units[k].last) {
        p.last_meta = units[k].c.metadata;
        p.urgent = false;
        p.wm_committed = true;
        bump([](worker_stats& st) { ++st.commits; });
        metrics_->commits().inc();
      }
    }
    at = end;
  }
  // Keys that went out are no longer pending; the rest go with the next commit.
  for (auto& u : units) {
    part& p = *u.p;
    if (p.keys_done == 0) continue;
    pending_keys_ -= std::min(pending_keys_, p.keys_done);
    for (std::size_t k = 0; k < p.keys_done; ++k) uncommitted_.erase(p.keys[k].second);
    p.keys.erase(p.keys.begin(), p.keys.begin() + static_cast<std::ptrdiff_t>(p.keys_done));
    p.keys_done = 0;
  }
  return r;
}

// --- rebalances -----------------------------------------------------------------------

std::vector<std::string> worker::impl::targets_of(const part& p) const {
  std::vector<std::string> t{p.sub->dlq_for(p.origin_topic)};
  for (const auto& tier : p.sub->s.tiers) t.push_back(tier_topic(p.origin_topic, tier));
  return t;
}

// Records this partition routed but whose origin offsets were not
// committed (a crash or rebalance in between): find them in the targets
// from the watermarks on, and treat them as done.
result<void> worker::impl::scan_routes(part& p) {
  client::consumer_options co = o_.consumer;
  co.group_id.clear();
  co.fetch_max_wait = 50ms;
  std::map<std::string, std::int64_t> ends;
  for (const auto& target : targets_of(p)) {
    const auto n = target_partitions_[target];
    const partition_id tpart(n > 0 ? p.tp.partition.value() % n : 0);
    FERRY_TRY(auto end, admin_->list_offsets(target, tpart, client::offset_spec::latest));
    const std::int64_t end_off = end ? end->value() : 0;
    ends[target] = end_off;
    auto w = p.wm.find(target);
    if (w == p.wm.end() || w->second >= end_off) continue;
    client::consumer c(co);
    FERRY_TRY(c.assign({{target, tpart}}));
    FERRY_TRY(c.seek({target, tpart}, offset(w->second)));
    std::int64_t at = w->second;
    const auto deadline = std::chrono::steady_clock::now() + o_.consumer.api_timeout;
    while (at < end_off) {
      if (std::chrono::steady_clock::now() > deadline) return ferry::errc::timed_out;
      FERRY_TRY(auto recs, c.poll(100ms));
      for (const auto& r : recs) {
        at = r.offset.value() + 1;
        auto h = get_header(r.headers, kRouteHeader);
        if (!h) continue;
        auto id = parse_route(*h);
        if (!id || id->group != o_.consumer.group_id || id->source.topic != p.tp.topic ||
            id->source.partition != p.tp.partition.value() || id->source.offset < p.next)
          continue;
        if (p.skip.insert(id->source.offset).second) {
          bump([](worker_stats& s) { ++s.recovered_routes; });
          logger()->info("{}-{} offset {}: already routed to {} at offset {}; not again",
                         p.tp.topic, p.tp.partition.value(), id->source.offset, target,
                         r.offset.value());
        }
      }
    }
  }
  // From now on a route lands at or above today's ends.
  p.wm = std::move(ends);
  return success();
}

void worker::impl::assigned(const std::vector<client::topic_partition>& tps) {
  joined_ = true;  // in the group (with or without partitions): ready
  std::vector<client::topic_partition> fresh;
  for (const auto& tp : tps) {
    if (parts_.count(tp)) continue;
    auto it = by_topic_.find(tp.topic);
    if (it == by_topic_.end()) continue;
    auto p = std::make_unique<part>();
    p->tp = tp;
    p->sub = it->second.sub;
    p->tier = it->second.tier;
    p->origin_topic = it->second.origin;
    p->m = &metrics_->topic(p->origin_topic);
    parts_[tp] = std::move(p);
    fresh.push_back(tp);
  }
  if (fresh.empty()) return;
  for (const auto& tp : fresh) {
    part& p = *parts_[tp];
    if (!load(p)) {
      // Retried by run_once(); its records are not fetched meanwhile.
      if (consumer_->pause({tp})) p.paused = true;
    }
  }
  const std::vector<client::topic_partition> only = fresh;
  (void)commit(true, &only);  // a failure is logged by commit(); routes wait for it
}

// Reads the partition's committed offset and progress and scans the route
// targets. False (logged) when the broker could not tell: then nothing of
// the partition may be handled, or its progress would be overwritten.
bool worker::impl::load(part& p) {
  const auto& tp = p.tp;
  // Retried every second while the broker cannot tell: one line per
  // distinct failure, and one when it finally worked.
  auto failed = [&](std::string what) {
    ++p.load_failures;
    if (what != p.load_error)
      logger()->warn("{}-{}: {}; trying again every second (nothing of it is handled meanwhile)",
                     tp.topic, tp.partition.value(), what);
    p.load_error = std::move(what);
    return false;
  };
  auto committed = consumer_->committed({tp});
  if (!committed)
    return failed(
        fmt::format("cannot read the committed offset ({})", committed.error().message()));
  std::optional<detail::progress> pr;
  bool have = false;
  for (const auto& c : committed.value())
    if (c.tp == tp && c.next) {
      p.next = c.next->value();
      p.last_next = p.next;
      pr = detail::decode_progress(c.metadata);
      have = true;
    }
  if (!have) {
    auto pos = consumer_->position(tp);
    if (!pos)
      return failed(fmt::format("cannot look up the start position ({})", pos.error().message()));
    p.next = pos.value().value();
  }
  p.wm.clear();
  p.skip.clear();
  p.restored.clear();
  if (pr) {
    p.wm = pr->watermarks;
    for (const auto& [a, b] : pr->done)
      for (auto o = std::max(a, p.next); o <= b && o - a < 100'000; ++o) p.skip.insert(o);
    for (const auto& a : pr->attempts)
      if (a.offset >= p.next) p.restored[a.offset] = a;
  }
  if (auto r = scan_routes(p); !r)
    return failed(
        fmt::format("looking for records already routed failed ({})", r.error().message()));
  if (p.load_failures > 0)
    logger()->info("{}-{}: loaded after {} failed attempt(s)", tp.topic, tp.partition.value(),
                   p.load_failures);
  p.load_error.clear();
  p.load_failures = 0;
  p.loaded = true;
  p.wm_committed = false;
  p.urgent = true;  // the new watermarks must be committed before the first route
  return true;
}

void worker::impl::revoked(const std::vector<client::topic_partition>& tps, bool lost) {
  if (lost) joined_ = false;  // out of the group until the next assignment
  for (const auto& tp : tps) {
    auto it = parts_.find(tp);
    if (it != parts_.end()) wait_idle(it->second.get());
  }
  if (routes_out_ > 0) (void)producer_->flush(o_.producer.delivery_timeout);
  take_acks();
  if (!lost) (void)commit(true, &tps);
  for (const auto& tp : tps) {
    auto it = parts_.find(tp);
    if (it == parts_.end()) continue;
    std::size_t unfinished = 0;
    for (const auto& e : it->second->q) {
      if (e->state != entry::st::done) ++unfinished;
      if (e->state == entry::st::waiting) waiting_.fetch_sub(1);
    }
    in_flight_.fetch_sub(std::min(unfinished, in_flight_.load()));
    pending_keys_ -= std::min(pending_keys_, it->second->keys.size());
    for (const auto& k : it->second->keys) uncommitted_.erase(k.second);
    // Acknowledgements may still arrive for it (flush timed out): keep it
    // alive until none is outstanding.
    if (routes_out_ > 0) graveyard_.push_back(std::move(it->second));
    parts_.erase(it);
  }
}

// --- worker -----------------------------------------------------------------------

worker::worker(worker_options options) : impl_(std::make_unique<impl>(std::move(options))) {}
worker::~worker() = default;
result<void> worker::subscribe(subscription s) {
  return impl_->subscribe(std::move(s));
}
std::shared_ptr<schema_gate> worker::schemas() {
  std::lock_guard lock(schemas_mu_);
  if (!schemas_)
    schemas_ = std::make_shared<schema_gate>(std::make_shared<client::schema_cache>(
        static_cast<const client::client_options&>(impl_->options().consumer)));
  return schemas_;
}
result<void> worker::run() {
  return impl_->run();
}
result<void> worker::run_once(std::chrono::milliseconds max_wait) {
  return impl_->run_once(max_wait);
}
void worker::stop() noexcept {
  impl_->stop();
}
result<void> worker::close() {
  return impl_->close();
}
worker_stats worker::stats() const {
  return impl_->stats();
}
std::size_t worker::in_flight() const {
  return impl_->in_flight();
}
const std::string& worker::last_error() const noexcept {
  return impl_->last_error();
}
::ferry::metrics::registry& worker::metrics() noexcept {
  return impl_->registry();
}
std::string worker::metrics_address() const {
  return impl_->metrics_address();
}

}  // namespace ferry::runtime
