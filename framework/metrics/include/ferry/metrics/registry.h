// Metrics in the Prometheus data model, exposed as text format 0.0.4.
//
//   ferry::metrics::registry reg;
//   auto& in = reg.counter_family("ferry_records_in_total", "Records appended", {"topic"});
//   auto& orders_in = in.with({"orders"});   // keep the reference: with() locks
//   orders_in.inc(batch_records);
//   auto& lat = reg.histogram_metric("ferry_produce_latency_seconds", "...",
//   metrics::latency_buckets); lat.observe(std::chrono::steady_clock::now() - received);
//   std::string text = reg.expose();          // what GET /metrics answers
//
// Naming follows Prometheus practice: a ferry_ prefix, base units (seconds,
// bytes) in the name, counters end in _total. Label values come from
// bounded sets (topics, groups, partitions, error codes, modes) - never
// keys, offsets or ids.
//
// Values that live elsewhere (log sizes, lag) are read at scrape time by
// collectors: add_collector(fn) is called on each expose() and appends
// whole families.
//
// Thread safety: counters, gauges and histograms are lock-free atomics and
// may be updated from any thread. Registering families, with(), remove()
// and expose() take the registry's lock. A series reference stays valid
// until remove() of its labels or the registry's destruction.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::metrics {

class counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

class gauge {
 public:
  void set(double v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void add(double d) noexcept { v_.fetch_add(d, std::memory_order_relaxed); }
  [[nodiscard]] double value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

/// Upper bounds in seconds for request and handler latencies: 100 us .. 10 s.
inline constexpr std::array<double, 16> latency_buckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
/// Upper bounds in seconds for fsync: 50 us .. 5 s.
inline constexpr std::array<double, 14> fsync_buckets = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0};

class histogram {
 public:
  /// `bounds`: ascending upper bounds; +Inf is implicit.
  explicit histogram(std::span<const double> bounds);

  void observe(double v) noexcept;
  /// Observes a duration in seconds.
  template <typename Rep, typename Period>
  void observe(std::chrono::duration<Rep, Period> d) noexcept {
    observe(std::chrono::duration<double>(d).count());
  }

  struct snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> counts;  ///< per bucket (not cumulative); last is +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  [[nodiscard]] snapshot read() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

enum class kind : std::uint8_t { counter, gauge, histogram };

namespace detail {
// The series of one family by label values; the registry's lock guards the map.
template <typename T>
struct series_map {
  std::map<std::vector<std::string>, std::unique_ptr<T>> series;
};
}  // namespace detail

class registry;

/// The series of one metric name, one per combination of label values.
template <typename T>
class family {
 public:
  /// The series with these label values (as many as the family's label
  /// names), created on first use. Keep the reference on hot paths.
  T& with(std::initializer_list<std::string_view> values);
  T& with(const std::vector<std::string>& values);
  /// Drops the series (e.g. of a deleted topic); references to it dangle.
  void remove(const std::vector<std::string>& values);

  family(const family&) = delete;
  family& operator=(const family&) = delete;

 private:
  friend class registry;
  family(registry& r, std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds)
      : reg_(r),
        name_(std::move(name)),
        help_(std::move(help)),
        labels_(std::move(label_names)),
        bounds_(std::move(bounds)) {}

  registry& reg_;
  std::string name_, help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;  // histograms only
  detail::series_map<T> map_;
};

/// What a collector appends at scrape time: one metric family.
struct collected {
  std::string name, help;
  kind type = kind::gauge;  ///< counter or gauge
  struct sample {
    std::vector<std::pair<std::string, std::string>> labels;
    double value = 0;
  };
  std::vector<sample> samples;

  void add(std::vector<std::pair<std::string, std::string>> labels, double value) {
    samples.push_back({std::move(labels), value});
  }
};

using collector = std::function<void(std::vector<collected>&)>;

class registry {
 public:
  registry() = default;
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;
  ~registry();

  /// Registering a name again returns the same family when kind, labels
  /// (and bounds) match; otherwise, or for an invalid name, throws
  /// std::invalid_argument (a programming error).
  family<counter>& counter_family(std::string_view name, std::string_view help,
                                  std::vector<std::string> label_names);
  family<gauge>& gauge_family(std::string_view name, std::string_view help,
                              std::vector<std::string> label_names);
  family<histogram>& histogram_family(std::string_view name, std::string_view help,
                                      std::vector<std::string> label_names,
                                      std::span<const double> bounds);

  /// Families without labels: their one series.
  counter& counter_metric(std::string_view name, std::string_view help);
  gauge& gauge_metric(std::string_view name, std::string_view help);
  histogram& histogram_metric(std::string_view name, std::string_view help,
                              std::span<const double> bounds);

  /// Called (under no registry lock) on every expose(); returns an id for
  /// remove_collector(). Must not outlive what it reads: remove it first.
  std::uint64_t add_collector(collector fn);
  void remove_collector(std::uint64_t id);

  /// Every family in text exposition format 0.0.4, sorted by name.
  [[nodiscard]] std::string expose() const;

 private:
  template <typename T>
  friend class family;
  struct entry {
    kind type;
    void* fam;  // family<counter|gauge|histogram>*
  };
  template <typename T>
  family<T>& add_family(kind k, std::string_view name, std::string_view help,
                        std::vector<std::string> label_names, std::vector<double> bounds);

  mutable std::mutex mu_;
  std::map<std::string, entry, std::less<>> families_;
  std::vector<std::unique_ptr<family<counter>>> counters_;
  std::vector<std::unique_ptr<family<gauge>>> gauges_;
  std::vector<std::unique_ptr<family<histogram>>> histograms_;
  mutable std::mutex collectors_mu_;
  std::map<std::uint64_t, collector> collectors_;
  std::uint64_t next_collector_ = 0;
};

/// A label value or HELP text made safe for the text format.
std::string escape_label_value(std::string_view v);
/// A sample value in the text format ("+Inf", "NaN", shortest decimal).
std::string format_value(double v);

/// Version and revision of this Ferry build, for ferry_build_info.
struct build {
  std::string_view version;
  std::string_view revision;
};
build build_info() noexcept;
/// Registers ferry_build_info{version,revision,component} 1 and
/// ferry_process_start_time_seconds in `reg`.
void register_process_metrics(registry& reg, std::string_view component);

}  // namespace ferry::metrics
