// ferry bench produce | consume | e2e | group | rebalance | worker | drain: load generator with a
// progress bar on stderr (when it is a terminal) and a summary table, or one JSON object with -o
// json: records, records_per_sec, mb_per_sec, p50_ms, p99_ms, p999_ms.
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "cli.h"
#include "commands.h"
#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"
#include "ferry/client/producer.h"
#include "ferry/core/clock.h"
#include "ferry/runtime/worker.h"

namespace ferry::cli {

namespace {

// The fresh groups a run made, deleted at the end unless --keep (so they do
// not linger in groups list, top and /metrics).
std::vector<std::string> g_groups_made;

// Deletes the bench's groups once their members are gone: a member killed
// by the rebalance bench is gone after its session timeout.
void delete_bench_groups(const globals& g, std::chrono::milliseconds wait) {
  client::admin adm(g.client());
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (const auto& group : g_groups_made) {
    for (;;) {
      auto r = adm.delete_group(group);
      if (r || r.error() == client::errc::unknown_group) break;
      const bool busy = r.error() == client::errc::group_not_empty ||
                        r.error() == client::errc::rebalance_in_progress;
      if (!busy || std::chrono::steady_clock::now() >= deadline) {
        std::cerr << fmt::format(
            "warning: could not delete the bench's group {}: {} ({}); remove it with: ferry "
            "groups delete {} --execute\n",
            group, r.error().message(), adm.last_error_message(), group);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  g_groups_made.clear();
}

using clk = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now().time_since_epoch())
      .count();
}

class progress {
 public:
  progress(std::string label, long total)
      : label_(std::move(label)), total_(total), tty_(stderr_is_tty() && !label_.empty()) {}
  void update(long done) {
    if (!tty_) return;
    auto now = clk::now();
    if (done < total_ && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    int width = 30;
    int filled = total_ > 0
                     ? static_cast<int>(static_cast<double>(width) * static_cast<double>(done) /
                                        static_cast<double>(total_))
                     : 0;
    std::cerr << fmt::format("\r{} [{}{}] {:3d}% {}/{} records, {:.0f} rec/s   ", label_,
                             std::string(static_cast<std::size_t>(filled), '#'),
                             std::string(static_cast<std::size_t>(width - filled), '.'),
                             total_ > 0 ? static_cast<int>(100 * done / total_) : 0, done, total_,
                             secs > 0 ? static_cast<double>(done) / secs : 0.0);
    if (done >= total_) std::cerr << "\n";
  }

 private:
  std::string label_;
  long total_;
  bool tty_;
  clk::time_point start_ = clk::now(), last_{};
};

struct summary {
  std::string mode;
  long records = 0;
  double seconds = 0;
  std::size_t size = 0;
  std::vector<float> latencies_ms;
};

double percentile(std::vector<float>& v, double q) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

void print_summary(const globals& g, summary s) {
  double rps = s.seconds > 0 ? static_cast<double>(s.records) / s.seconds : 0;
  double mbps = rps * static_cast<double>(s.size) / 1e6;
  bool has_lat = !s.latencies_ms.empty();
  double p50 = percentile(s.latencies_ms, 0.50), p99 = percentile(s.latencies_ms, 0.99),
         p999 = percentile(s.latencies_ms, 0.999);
  if (g.json()) {
    nlohmann::json j = {{"mode", s.mode},         {"records", s.records},   {"seconds", s.seconds},
                        {"record_bytes", s.size}, {"records_per_sec", rps}, {"mb_per_sec", mbps}};
    j["p50_ms"] = has_lat ? nlohmann::json(p50) : nlohmann::json(nullptr);
    j["p99_ms"] = has_lat ? nlohmann::json(p99) : nlohmann::json(nullptr);
    j["p999_ms"] = has_lat ? nlohmann::json(p999) : nlohmann::json(nullptr);
    print_json(j);
    return;
  }
  std::cout << fmt::format("{:<10} {:>10} {:>9} {:>14} {:>9} {:>9} {:>9} {:>9}\n", "MODE",
                           "RECORDS", "SECONDS", "RECORDS/S", "MB/S", "P50-MS", "P99-MS",
                           "P999-MS");
  auto lat = [&](double v) { return has_lat ? fmt::format("{:.3f}", v) : std::string("-"); };
  std::cout << fmt::format("{:<10} {:>10} {:>9.2f} {:>14.0f} {:>9.1f} {:>9} {:>9} {:>9}\n", s.mode,
                           s.records, s.seconds, rps, mbps, lat(p50), lat(p99), lat(p999));
}

std::size_t g_batch_bytes = 1u << 20;
format::compression g_compression = format::compression::none;

client::producer_options producer_opts(const globals& g, long linger_ms) {
  client::producer_options po;
  static_cast<client::client_options&>(po) = g.client();
  po.delivery_timeout = std::chrono::milliseconds(120000);
  po.linger = std::chrono::milliseconds(linger_ms);
  po.batch_bytes = g_batch_bytes;
  po.compression = g_compression;
  return po;
}

// Sends `n` records of `size` bytes; the first 8 bytes of each value carry
// the send time (steady clock, ns) for end-to-end latency.
int run_produce(const globals& g, const std::string& topic, long n, std::size_t size, double rate,
                summary* s, const char* label, long linger_ms) {
  client::producer p(producer_opts(g, linger_ms));
  std::string value(std::max<std::size_t>(size, 8), 'x');
  std::atomic<long> done{0}, failed{0};
  std::mutex lat_mu;
  std::error_code err;
  if (s) s->latencies_ms.reserve(static_cast<std::size_t>(n));
  progress bar(label, n);
  auto start = clk::now();
  for (long i = 0; i < n; ++i) {
    if (rate > 0) {
      auto due = start + std::chrono::nanoseconds(
                             static_cast<std::int64_t>(1e9 * static_cast<double>(i) / rate));
      std::this_thread::sleep_until(due);
    }
    std::int64_t t0 = now_ns();
    std::memcpy(value.data(), &t0, 8);
    client::producer_record r{topic,        std::nullopt, value,       {},
                              std::nullopt, std::nullopt, std::nullopt};
    auto sent = p.send(std::move(r), [&, t0](const result<client::record_metadata>& res) {
      if (!res) {
        std::lock_guard lock(lat_mu);
        if (!err) err = res.error();
        ++failed;
      } else if (s) {
        auto ms = static_cast<float>(static_cast<double>(now_ns() - t0) / 1e6);
        std::lock_guard lock(lat_mu);
        s->latencies_ms.push_back(ms);
      }
      ++done;
    });
    if (!sent) return report("send failed", sent.error());
    if ((i & 1023) == 0) bar.update(done.load());
  }
  if (auto f = p.flush(std::chrono::milliseconds(300000)); !f)
    return report("flush failed", f.error());
  bar.update(n);
  if (s) {
    s->records = n - failed.load();
    s->seconds = std::chrono::duration<double>(clk::now() - start).count();
  }
  if (err) return report(fmt::format("{} record(s) failed", failed.load()), err);
  return kOk;
}

// Consumes `n` records with a consumer already assigned and positioned.
int run_consume(client::consumer& c, const std::string& topic, long n, summary& s,
                bool e2e_latency) {
  progress bar(e2e_latency ? "e2e" : "consume", n);
  long got = 0;
  auto start = clk::now();
  auto idle_since = clk::now();
  while (got < n) {
    auto recs = c.poll(std::chrono::milliseconds(200));
    if (!recs) return report("fetch failed from " + topic, recs.error());
    if (recs.value().empty()) {
      if (clk::now() - idle_since > std::chrono::seconds(30)) {
        std::cerr << fmt::format(
            "\nerror: no records for 30 s after {} of {}; is the topic being written?\n", got, n);
        return kFailed;
      }
      continue;
    }
    idle_since = clk::now();
    auto t1 = now_ns();
    for (const auto& r : recs.value()) {
      if (e2e_latency && r.value && r.value->size() >= 8) {
        std::int64_t t0;
        std::memcpy(&t0, r.value->data(), 8);
        s.latencies_ms.push_back(static_cast<float>(static_cast<double>(t1 - t0) / 1e6));
      }
    }
    got += static_cast<long>(recs.value().size());
    bar.update(std::min(got, n));
  }
  s.records = got;
  s.seconds = std::chrono::duration<double>(clk::now() - start).count();
  return kOk;
}

// --- groups: consumption with several members, and rebalance times --------------

// Consumes `n` records with `members` consumers of one fresh group, each
// committing every batch (commit_async: the offsets ride on its next fetch).
int run_group_consume(const globals& g, const std::string& topic, long n, int members, summary& s) {
  const std::string group =
      fmt::format("bench-group-{}", system_clock::instance().wall_now().value());
  g_groups_made.push_back(group);
  std::atomic<long> total{0};
  std::atomic<bool> failed{false};
  std::mutex err_mu;
  std::string error;
  progress bar("group", n);
  const auto start = clk::now();
  std::vector<std::thread> threads;
  for (int m = 0; m < members; ++m) {
    threads.emplace_back([&] {
      client::consumer_options co;
      static_cast<client::client_options&>(co) = g.client();
      co.group_id = group;
      co.client_id = "bench";
      co.fetch_max_wait = std::chrono::milliseconds(100);
      client::consumer c(co);
      if (auto r = c.subscribe({topic}); !r) {
        std::lock_guard lock(err_mu);
        error = r.error().message();
        failed = true;
        return;
      }
      auto idle_since = clk::now();
      while (total.load() < n && !failed) {
        auto recs = c.poll(std::chrono::milliseconds(100));
        if (!recs) {
          std::lock_guard lock(err_mu);
          error = recs.error().message() + ": " + c.last_error_message();
          failed = true;
          return;
        }
        if (recs.value().empty()) {
          if (clk::now() - idle_since > std::chrono::seconds(30)) {
            std::lock_guard lock(err_mu);
            error = "no records for 30 s";
            failed = true;
          }
          continue;
        }
        idle_since = clk::now();
        std::map<client::topic_partition, std::int64_t> next;
        for (const auto& r : recs.value()) next[{r.topic, r.partition}] = r.offset.value() + 1;
        std::vector<client::offset_commit> commits;
        for (const auto& [tp, o] : next) commits.push_back({tp, offset(o), {}, {}});
        c.commit_async(std::move(commits));
        total += static_cast<long>(recs.value().size());
      }
      (void)c.close();
    });
  }
  while (total.load() < n && !failed) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    bar.update(std::min(total.load(), n));
  }
  s.seconds = std::chrono::duration<double>(clk::now() - start).count();
  for (auto& t : threads) t.join();
  if (failed) {
    std::cerr << "\nerror: group member failed: " << error << "\n";
    return kFailed;
  }
  bar.update(n);
  s.records = total.load();
  return kOk;
}

// A member that only polls; `ferry bench member` runs one in a child process
// so that the rebalance benchmark can kill it with SIGKILL.
int run_member(const globals& g, const bench_args& a) {
  client::consumer_options co;
  static_cast<client::client_options&>(co) = g.client();
  co.group_id = a.group;
  co.client_id = "bench-member";
  co.session_timeout = std::chrono::milliseconds(a.session_timeout_ms);
  co.heartbeat_interval = std::chrono::milliseconds(std::max(10L, a.session_timeout_ms / 10));
  co.fetch_max_wait = std::chrono::milliseconds(100);
  client::consumer c(co);
  if (auto r = c.subscribe({*a.topic}); !r) return report("subscribe failed", r.error());
  for (;;)
    if (auto r = c.poll(std::chrono::milliseconds(100)); !r) return report("poll", r.error());
}

struct member_slot {
  std::mutex mu;
  std::int32_t generation = -1;
  std::size_t partitions = 0;
  std::atomic<bool> stop{false};
  std::thread thread;
};

class rebalance_bench {
 public:
  rebalance_bench(const globals& g, std::string topic, int partitions)
      : g_(g), topic_(std::move(topic)), partitions_(static_cast<std::size_t>(partitions)) {
    group_ = fmt::format("bench-rebalance-{}", system_clock::instance().wall_now().value());
    g_groups_made.push_back(group_);
  }
  ~rebalance_bench() {
    for (auto& m : members_) {
      m->stop = true;
      if (m->thread.joinable()) m->thread.join();
    }
  }
  const std::string& group() const { return group_; }

  void add_member() {
    auto slot = std::make_unique<member_slot>();
    auto* sp = slot.get();
    sp->thread = std::thread([this, sp] {
      struct listener : client::rebalance_listener {
        member_slot* slot;
        void on_assigned(client::consumer& c,
                         const std::vector<client::topic_partition>& p) override {
          std::lock_guard lock(slot->mu);
          slot->generation = c.generation();
          slot->partitions = p.size();
        }
        void on_revoked(client::consumer&, const std::vector<client::topic_partition>&) override {
          std::lock_guard lock(slot->mu);
          slot->partitions = 0;
        }
      } l;
      l.slot = sp;
      client::consumer_options co;
      static_cast<client::client_options&>(co) = g_.client();
      co.group_id = group_;
      co.client_id = "bench";
      co.heartbeat_interval = std::chrono::milliseconds(100);
      co.fetch_max_wait = std::chrono::milliseconds(100);
      client::consumer c(co);
      if (!c.subscribe({topic_}, &l)) return;
      while (!sp->stop) (void)c.poll(std::chrono::milliseconds(20));
      (void)c.close();
    });
    members_.push_back(std::move(slot));
  }

  // Stops the newest member with close() (revoke + leave).
  void close_last() {
    auto& m = members_.back();
    m->stop = true;
    m->thread.join();
    members_.pop_back();
  }

  // True when every local member holds the same generation, newer than
  // `after`, and together they hold `want` partitions.
  bool settled(std::int32_t after, std::size_t want, std::int32_t* gen = nullptr) {
    std::int32_t common = -2;
    std::size_t sum = 0;
    for (auto& m : members_) {
      std::lock_guard lock(m->mu);
      if (m->generation <= after) return false;
      if (common != -2 && m->generation != common) return false;
      common = m->generation;
      sum += m->partitions;
    }
    if (gen) *gen = common;
    return sum == want;
  }

  // Waits for settled(); returns the milliseconds it took, or -1.
  double wait_settled(std::int32_t after, std::size_t want, std::int32_t* gen,
                      std::chrono::seconds limit = std::chrono::seconds(60)) {
    const auto t0 = clk::now();
    while (clk::now() - t0 < limit) {
      if (settled(after, want, gen))
        return std::chrono::duration<double, std::milli>(clk::now() - t0).count();
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    return -1;
  }

  std::int32_t generation() {
    std::lock_guard lock(members_.front()->mu);
    return members_.front()->generation;
  }

  std::size_t partitions() const { return partitions_; }

 private:
  const globals& g_;
  std::string topic_;
  std::size_t partitions_;
  std::string group_;
  std::vector<std::unique_ptr<member_slot>> members_;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run_rebalance(const globals& g, const std::string& topic, const bench_args& a) {
  const int members = std::max(2, a.members);
  const int rounds = 5;
  rebalance_bench rb(g, topic, a.partitions);
  for (int i = 0; i < members; ++i) rb.add_member();
  std::int32_t gen = -1;
  if (rb.wait_settled(-1, rb.partitions(), &gen) < 0) {
    std::cerr << "error: the group never settled\n";
    return kFailed;
  }
  std::vector<double> leave_ms, kill_ms;
  progress bar("rebalance", 2L * rounds);
  for (int r = 0; r < rounds; ++r) {
    const auto before = gen;
    const auto t0 = clk::now();
    rb.close_last();
    if (rb.wait_settled(before, rb.partitions(), &gen) < 0) {
      std::cerr << "error: no new generation after a clean leave\n";
      return kFailed;
    }
    leave_ms.push_back(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
    rb.add_member();
    if (rb.wait_settled(gen, rb.partitions(), &gen) < 0) return kFailed;
    bar.update(r + 1);
  }
  // Kill: a member in a child process (session timeout a.session_timeout_ms)
  // is killed with SIGKILL; the others take over after the timeout.
  for (int r = 0; r < rounds; ++r) {
    const auto before = gen;
    pid_t pid = ::fork();
    if (pid == 0) {
      const std::string st = std::to_string(a.session_timeout_ms);
      ::execl("/proc/self/exe", "ferry", "--broker", g.broker.c_str(), "bench", "member", "--topic",
              topic.c_str(), "--group", rb.group().c_str(), "--session-timeout-ms", st.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // The child has joined when the local members settle on fewer partitions.
    const auto t_join = clk::now();
    bool joined = false;
    while (clk::now() - t_join < std::chrono::seconds(30)) {
      std::int32_t g2 = -1;
      bool some = false;
      for (std::size_t want = 1; want < rb.partitions() && !some; ++want)
        some = rb.settled(before, want, &g2);
      if (some) {
        gen = g2;
        joined = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!joined) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      std::cerr << "error: the member in the child process never got partitions\n";
      return kFailed;
    }
    const auto t0 = clk::now();
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    if (rb.wait_settled(gen, rb.partitions(), &gen) < 0) {
      std::cerr << "error: no new generation after a kill\n";
      return kFailed;
    }
    kill_ms.push_back(std::chrono::duration<double, std::milli>(clk::now() - t0).count());
    bar.update(rounds + r + 1);
  }
  if (g.json()) {
    print_json({{"mode", "rebalance"},
                {"members", members},
                {"partitions", a.partitions},
                {"session_timeout_ms", a.session_timeout_ms},
                {"leave_ms", leave_ms},
                {"leave_median_ms", median(leave_ms)},
                {"kill_ms", kill_ms},
                {"kill_median_ms", median(kill_ms)},
                {"kill_median_after_timeout_ms",
                 median(kill_ms) - static_cast<double>(a.session_timeout_ms)}});
    return kOk;
  }
  std::cout << fmt::format("{:<12} {:>7} {:>11} {:>9} {:>9}\n", "EVENT", "ROUNDS", "MEDIAN-MS",
                           "MIN-MS", "MAX-MS");
  auto row = [&](const char* what, const std::vector<double>& v) {
    std::cout << fmt::format("{:<12} {:>7} {:>11.1f} {:>9.1f} {:>9.1f}\n", what, v.size(),
                             median(v), *std::min_element(v.begin(), v.end()),
                             *std::max_element(v.begin(), v.end()));
  };
  row("clean-leave", leave_ms);
  row("kill-9", kill_ms);
  std::cout << fmt::format("{} members, {} partitions; kill-9 includes the {} ms session timeout\n",
                           members, a.partitions, a.session_timeout_ms);
  return kOk;
}

// --- the runtime: worker overhead and the retry / dead-letter drain -------------

// Produces `n` records, each with a unique idempotency key; with `fail_every`
// > 0 every fail_every-th value starts with "fail" (the drain workload).
// Record keys: "order-<i>", or with `keys` > 0 "order-<i % keys>".
int produce_keyed(const globals& g, const std::string& topic, long n, std::size_t size,
                  long fail_every, long linger_ms, long keys) {
  client::producer p(producer_opts(g, linger_ms));
  progress bar("prepare", n);
  const std::string run = std::to_string(system_clock::instance().wall_now().value());
  std::atomic<long> failed{0};
  for (long i = 0; i < n; ++i) {
    client::producer_record r;
    r.topic = topic;
    std::string v = fail_every > 0 && i % fail_every == 0 ? "fail" : "ok..";
    v.resize(std::max<std::size_t>(size, 4), 'x');
    r.key = "order-" + std::to_string(keys > 0 ? i % keys : i);
    r.value = std::move(v);
    r.idempotency_key = "bench-" + run + "-" + std::to_string(i);
    auto sent = p.send(std::move(r), [&](const result<client::record_metadata>& m) {
      if (!m) ++failed;
    });
    if (!sent) return report("send failed", sent.error());
    if (i % 4096 == 0) bar.update(i);
  }
  if (auto f = p.flush(std::chrono::minutes(2)); !f) return report("flush failed", f.error());
  bar.update(n);
  if (failed > 0) {
    std::cerr << "error: " << failed.load() << " records were not acknowledged\n";
    return kFailed;
  }
  return kOk;
}

// Runs a worker of a fresh group (or --group's) over `topic` until every
// record is finished (handled, skipped or dead-lettered). The clock starts
// at the first handler call, so joining the group (and reading its ledger)
// is not counted; `join_s` says how long that took.
int run_worker_bench(const globals& g, const std::string& topic, const bench_args& a, summary& s,
                     runtime::worker_stats& st, double& join_s) {
  runtime::worker_options o;
  static_cast<client::client_options&>(o.consumer) = g.client();
  // A group given (--group) is the caller's: its idempotency ledger is read
  // before the first record is handled (on Kafka, into the worker's index),
  // which is what join_s then includes.
  if (!a.group.empty()) {
    o.consumer.group_id = a.group;
  } else {
    o.consumer.group_id =
        fmt::format("bench-{}-{}", a.mode, system_clock::instance().wall_now().value());
    g_groups_made.push_back(o.consumer.group_id);
  }
  o.consumer.client_id = "bench";
  o.consumer.fetch_max_wait = std::chrono::milliseconds(50);
  static_cast<client::client_options&>(o.producer) = g.client();
  o.producer.linger = std::chrono::milliseconds(1);
  o.concurrency = a.concurrency;
  o.worker_name = "ferry-bench";
  runtime::worker w(o);
  runtime::subscription sub;
  sub.topics = {topic};
  sub.retry.max_attempts = 3;
  sub.retry.backoff.initial = std::chrono::milliseconds(0);
  sub.retry.backoff.max = std::chrono::milliseconds(0);
  sub.partition_concurrency = a.partition_concurrency;
  if (a.ordering == "key_ordered")
    sub.order = runtime::ordering::key_ordered;
  else if (a.ordering != "in_order") {
    std::cerr << "error: --ordering must be in_order or key_ordered\n";
    return kUsage;
  }
  std::atomic<std::int64_t> first_call{0};
  sub.handler = [&](const runtime::message& m) -> result<void> {
    if (first_call.load(std::memory_order_relaxed) == 0) {
      std::int64_t zero = 0;
      first_call.compare_exchange_strong(zero, now_ns());
    }
    // A handler that waits on something (a payment gateway, a database).
    if (a.handler_latency_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(a.handler_latency_ms));
    if (m.value() && m.value()->starts_with("fail"))
      return runtime::retriable(std::errc::io_error, "downstream refused");
    return success();
  };
  if (auto r = w.subscribe(std::move(sub)); !r)
    return report("subscribe", r.error(), w.last_error());
  progress bar(a.mode, a.records);
  const auto start_ns = now_ns();
  auto finished = [&] {
    auto x = w.stats();
    return static_cast<long>(x.succeeded + x.dead_lettered + x.duplicates_skipped);
  };
  auto idle_since = clk::now();
  long last = 0;
  while (finished() < a.records) {
    if (auto r = w.run_once(std::chrono::milliseconds(50)); !r)
      return report("worker", r.error(), w.last_error());
    const long now_done = finished();
    if (now_done != last) {
      last = now_done;
      idle_since = clk::now();
      bar.update(now_done);
    } else if (clk::now() - idle_since > std::chrono::seconds(30)) {
      std::cerr << "\nerror: no progress for 30 s (" << now_done << " of " << a.records << ")\n";
      return kFailed;
    }
  }
  const auto end_ns = now_ns();
  bar.update(a.records);
  st = w.stats();
  if (auto r = w.close(); !r) return report("closing the worker", r.error(), w.last_error());
  s.records = a.records;
  s.seconds = static_cast<double>(end_ns - first_call.load()) / 1e9;
  join_s = static_cast<double>(first_call.load() - start_ns) / 1e9;
  return kOk;
}

}  // namespace

int bench_run(const globals& g, const bench_args& a);

int bench(const globals& g, const bench_args& a) {
  const int rc = bench_run(g, a);
  if (!a.keep)
    delete_bench_groups(g,
                        std::chrono::milliseconds(a.session_timeout_ms) + std::chrono::seconds(5));
  return rc;
}

int bench_run(const globals& g, const bench_args& a) {
  if (a.mode == "member") {
    if (!a.topic || a.group.empty()) {
      std::cerr << "error: bench member needs --topic and --group\n";
      return kUsage;
    }
    return run_member(g, a);
  }
  if (a.mode != "produce" && a.mode != "consume" && a.mode != "e2e" && a.mode != "group" &&
      a.mode != "rebalance" && a.mode != "worker" && a.mode != "drain") {
    std::cerr
        << "error: bench mode must be produce, consume, e2e, group, rebalance, worker or drain\n";
    return kUsage;
  }
  if (a.members <= 0 || a.session_timeout_ms < 100) {
    std::cerr << "error: --members must be positive and --session-timeout-ms at least 100\n";
    return kUsage;
  }
  if (a.records <= 0 || a.size == 0 || a.partitions <= 0 || a.rate < 0) {
    std::cerr
        << "error: --records, --size and --partitions must be positive, --rate not negative\n";
    return kUsage;
  }
  g_batch_bytes = a.batch_bytes;
  g_compression = format::parse_compression(a.compression).value_or(format::compression::none);
  client::admin adm(g.client());
  std::string topic;
  bool fresh = !a.topic;
  if (a.topic) {
    topic = *a.topic;
  } else {
    topic = fmt::format("bench-{}-{}", a.mode, system_clock::instance().wall_now().value());
    client::topic_config tc;
    tc.partitions = a.partitions;
    if (auto r = adm.create_topic(topic, tc); !r)
      return report("cannot create bench topic", r.error(), adm.last_error_message());
  }
  auto desc = adm.describe_topic(topic);
  if (!desc) return report("cannot describe " + topic, desc.error(), adm.last_error_message());
  std::vector<client::topic_partition> tps;
  for (const auto& p : desc.value().partitions) tps.push_back({topic, p.partition});

  summary s;
  s.mode = a.mode;
  s.size = a.size;
  int rc = kOk;
  client::consumer_options co;
  static_cast<client::client_options&>(co) = g.client();
  if (a.mode == "produce") {
    rc = run_produce(g, topic, a.records, a.size, a.rate, &s, "produce", a.linger_ms.value_or(5));
  } else if (a.mode == "consume") {
    if (fresh)
      rc = run_produce(g, topic, a.records, a.size, 0, nullptr, "prepare", a.linger_ms.value_or(5));
    client::consumer c(co);
    if (rc == kOk) {
      if (auto r = c.assign(tps); !r) rc = report("assign failed", r.error());
    }
    if (rc == kOk) {
      if (auto r = c.seek_to_beginning(tps); !r) rc = report("seek failed", r.error());
    }
    if (rc == kOk) rc = run_consume(c, topic, a.records, s, false);
  } else if (a.mode == "group") {
    if (fresh)
      rc = run_produce(g, topic, a.records, a.size, 0, nullptr, "prepare", a.linger_ms.value_or(5));
    if (rc == kOk) rc = run_group_consume(g, topic, a.records, a.members, s);
  } else if (a.mode == "worker" || a.mode == "drain") {
    if (fresh)
      rc = produce_keyed(g, topic, a.records, a.size, a.mode == "drain" ? 10 : 0,
                         a.linger_ms.value_or(5), a.keys);
    runtime::worker_stats st;
    double join_s = 0;
    if (rc == kOk) rc = run_worker_bench(g, topic, a, s, st, join_s);
    if (fresh && !a.keep) {
      (void)adm.delete_topic(topic);
      (void)adm.delete_topic(topic + ".dlq");
    }
    if (rc != kOk) return rc;
    if (g.json()) {
      const double rps = s.seconds > 0 ? static_cast<double>(s.records) / s.seconds : 0;
      print_json({{"mode", s.mode},
                  {"records", s.records},
                  {"seconds", s.seconds},
                  {"records_per_sec", rps},
                  {"join_seconds", join_s},
                  {"succeeded", st.succeeded},
                  {"failed_attempts", st.failed_attempts},
                  {"dead_lettered", st.dead_lettered},
                  {"duplicates_skipped", st.duplicates_skipped},
                  {"concurrency", a.concurrency},
                  {"ordering", a.ordering},
                  {"partition_concurrency", a.partition_concurrency},
                  {"handler_latency_ms", a.handler_latency_ms},
                  {"keys", a.keys}});
      return kOk;
    }
    print_summary(g, std::move(s));
    std::cout << fmt::format(
        "succeeded {}, failed attempts {}, dead-lettered {}, duplicates skipped {}; group join "
        "{:.3f} s (not counted); concurrency {}, {}\n",
        st.succeeded, st.failed_attempts, st.dead_lettered, st.duplicates_skipped, join_s,
        a.concurrency, a.ordering);
    return kOk;
  } else if (a.mode == "rebalance") {
    rc = run_rebalance(g, topic, a);
    if (fresh && !a.keep) (void)adm.delete_topic(topic);
    return rc;
  } else {
    // The consumer is positioned at the end first; then the producer starts.
    const double rate = a.rate > 0 ? a.rate : 2000;
    client::consumer c(co);
    if (auto r = c.assign(tps); !r) return report("assign failed", r.error());
    if (auto r = c.seek_to_end(tps); !r) return report("seek failed", r.error());
    std::atomic<int> prc{kOk};
    std::thread producer_thread([&] {
      prc = run_produce(g, topic, a.records, a.size, rate, nullptr, "", a.linger_ms.value_or(0));
    });
    rc = run_consume(c, topic, a.records, s, true);
    producer_thread.join();
    if (rc == kOk) rc = prc.load();
  }
  if (fresh && !a.keep) (void)adm.delete_topic(topic);
  if (rc != kOk) return rc;
  print_summary(g, std::move(s));
  return kOk;
}

}  // namespace ferry::cli
