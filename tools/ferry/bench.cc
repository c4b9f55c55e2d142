// ferry bench produce | consume | e2e: load generator with a progress bar
// on stderr (when it is a terminal) and a summary table, or one JSON object
// with -o json: records, records_per_sec, mb_per_sec, p50_ms, p99_ms, p999_ms.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iostream>
#include <mutex>
#include <thread>

#include "cli.h"
#include "commands.h"
#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/producer.h"
#include "ferry/core/clock.h"

namespace ferry::cli {

namespace {

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

client::producer_options producer_opts(const globals& g, long linger_ms) {
  client::producer_options po;
  static_cast<client::client_options&>(po) = g.client();
  po.delivery_timeout = std::chrono::milliseconds(120000);
  po.linger = std::chrono::milliseconds(linger_ms);
  po.batch_bytes = g_batch_bytes;
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
    client::producer_record r{topic, std::nullopt, value, {}, std::nullopt, std::nullopt};
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

}  // namespace

int bench(const globals& g, const bench_args& a) {
  if (a.mode != "produce" && a.mode != "consume" && a.mode != "e2e") {
    std::cerr << "error: bench mode must be produce, consume or e2e\n";
    return kUsage;
  }
  if (a.records <= 0 || a.size == 0 || a.partitions <= 0 || a.rate < 0) {
    std::cerr
        << "error: --records, --size and --partitions must be positive, --rate not negative\n";
    return kUsage;
  }
  g_batch_bytes = a.batch_bytes;
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
