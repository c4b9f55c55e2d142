#include "ferry/metrics/registry.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#ifndef FERRY_VERSION
#define FERRY_VERSION "unknown"
#endif
#ifndef FERRY_REVISION
#define FERRY_REVISION "unknown"
#endif

namespace ferry::metrics {
namespace {

bool valid_name(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool valid_label_name(std::string_view n) {
  return valid_name(n) && n.find(':') == std::string_view::npos && n.rfind("__", 0) != 0;
}

// The text format escapes backslash and newline in HELP, and '"' too in
// label values.
std::string escape(std::string_view v, bool quotes) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (quotes && c == '"')
      out += "\\\"";
    else
      out += c;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  return escape(v, false);
}

const char* type_name(kind k) {
  switch (k) {
    case kind::counter:
      return "counter";
    case kind::gauge:
      return "gauge";
    case kind::histogram:
      return "histogram";
  }
  return "untyped";
}

void write_labels(std::string& out, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    out += escape_label_value(values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void write_header(std::string& out, std::string_view name, std::string_view help, kind k) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += escape_help(help);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type_name(k);
  out += '\n';
}

template <typename T>
void write_family(std::string& out, kind k, const std::string& name, const std::string& help,
                  const std::vector<std::string>& label_names,
                  const std::map<std::vector<std::string>, std::unique_ptr<T>>& series) {
  write_header(out, name, help, k);
  for (const auto& [values, s] : series) {
    if constexpr (std::is_same_v<T, histogram>) {
      auto snap = s->read();
      std::uint64_t cumulative = 0;
      for (std::size_t b = 0; b < snap.counts.size(); ++b) {
        cumulative += snap.counts[b];
        out += name;
        out += "_bucket";
        write_labels(out, label_names, values, "le",
                     b < snap.bounds.size() ? format_value(snap.bounds[b]) : "+Inf");
        out += fmt::format(" {}\n", cumulative);
      }
      out += name;
      out += "_sum";
      write_labels(out, label_names, values);
      out += ' ';
      out += format_value(snap.sum);
      out += '\n';
      out += name;
      out += "_count";
      write_labels(out, label_names, values);
      out += fmt::format(" {}\n", cumulative);
    } else if constexpr (std::is_same_v<T, counter>) {
      out += name;
      write_labels(out, label_names, values);
      out += fmt::format(" {}\n", s->value());
    } else {
      out += name;
      write_labels(out, label_names, values);
      out += ' ';
      out += format_value(s->value());
      out += '\n';
    }
  }
}

}  // namespace

std::string escape_label_value(std::string_view v) {
  return escape(v, true);
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

// --- histogram ---------------------------------------------------------------

histogram::histogram(std::span<const double> bounds)
    : bounds_(bounds.begin(), bounds.end()),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end()) ||
      std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end())
    throw std::invalid_argument("histogram bounds must be strictly ascending");
}

void histogram::observe(double v) noexcept {
  // le: a value equal to a bound belongs to that bucket.
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  counts_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
  snapshot s;
  s.bounds = bounds_;
  s.counts.resize(bounds_.size() + 1);
  for (std::size_t i = 0; i < s.counts.size(); ++i) {
    s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    s.count += s.counts[i];
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

// --- family ------------------------------------------------------------------

template <typename T>
T& family<T>::with(const std::vector<std::string>& values) {
  if (values.size() != labels_.size())
    throw std::invalid_argument(
        fmt::format("{}: {} label values for {} labels", name_, values.size(), labels_.size()));
  std::lock_guard lock(reg_.mu_);
  auto& slot = map_.series[values];
  if (!slot) {
    if constexpr (std::is_same_v<T, histogram>)
      slot = std::make_unique<histogram>(bounds_);
    else
      slot = std::make_unique<T>();
  }
  return *slot;
}

template <typename T>
T& family<T>::with(std::initializer_list<std::string_view> values) {
  std::vector<std::string> v;
  v.reserve(values.size());
  for (auto s : values) v.emplace_back(s);
  return with(v);
}

template <typename T>
void family<T>::remove(const std::vector<std::string>& values) {
  std::lock_guard lock(reg_.mu_);
  map_.series.erase(values);
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

// --- registry ----------------------------------------------------------------

registry::~registry() = default;

template <typename T>
family<T>& registry::add_family(kind k, std::string_view name, std::string_view help,
                                std::vector<std::string> label_names, std::vector<double> bounds) {
  if (!valid_name(name)) throw std::invalid_argument(fmt::format("bad metric name '{}'", name));
  for (const auto& l : label_names)
    if (!valid_label_name(l) || (k == kind::histogram && l == "le"))
      throw std::invalid_argument(fmt::format("{}: bad label name '{}'", name, l));
  std::lock_guard lock(mu_);
  if (auto it = families_.find(name); it != families_.end()) {
    if (it->second.type != k)
      throw std::invalid_argument(fmt::format("metric {} registered with another type", name));
    auto* f = static_cast<family<T>*>(it->second.fam);
    if (f->labels_ != label_names || f->bounds_ != bounds)
      throw std::invalid_argument(fmt::format("metric {} registered with other labels", name));
    return *f;
  }
  auto f = std::unique_ptr<family<T>>(new family<T>(*this, std::string(name), std::string(help),
                                                    std::move(label_names), std::move(bounds)));
  auto* raw = f.get();
  if constexpr (std::is_same_v<T, counter>)
    counters_.push_back(std::move(f));
  else if constexpr (std::is_same_v<T, gauge>)
    gauges_.push_back(std::move(f));
  else
    histograms_.push_back(std::move(f));
  families_.emplace(std::string(name), entry{k, raw});
  return *raw;
}

family<counter>& registry::counter_family(std::string_view name, std::string_view help,
                                          std::vector<std::string> label_names) {
  return add_family<counter>(kind::counter, name, help, std::move(label_names), {});
}

family<gauge>& registry::gauge_family(std::string_view name, std::string_view help,
                                      std::vector<std::string> label_names) {
  return add_family<gauge>(kind::gauge, name, help, std::move(label_names), {});
}

family<histogram>& registry::histogram_family(std::string_view name, std::string_view help,
                                              std::vector<std::string> label_names,
                                              std::span<const double> bounds) {
  // Validates the bounds before anything is registered.
  (void)histogram(bounds);
  return add_family<histogram>(kind::histogram, name, help, std::move(label_names),
                               std::vector<double>(bounds.begin(), bounds.end()));
}

counter& registry::counter_metric(std::string_view name, std::string_view help) {
  return counter_family(name, help, {}).with(std::vector<std::string>{});
}

gauge& registry::gauge_metric(std::string_view name, std::string_view help) {
  return gauge_family(name, help, {}).with(std::vector<std::string>{});
}

histogram& registry::histogram_metric(std::string_view name, std::string_view help,
                                      std::span<const double> bounds) {
  return histogram_family(name, help, {}, bounds).with(std::vector<std::string>{});
}

std::uint64_t registry::add_collector(collector fn) {
  std::lock_guard lock(collectors_mu_);
  collectors_.emplace(++next_collector_, std::move(fn));
  return next_collector_;
}

void registry::remove_collector(std::uint64_t id) {
  std::lock_guard lock(collectors_mu_);
  collectors_.erase(id);
}

std::string registry::expose() const {
  // Collectors first, outside the families' lock (they may take their own).
  std::vector<collected> extra;
  {
    std::lock_guard lock(collectors_mu_);
    for (const auto& [_, fn] : collectors_) fn(extra);
  }
  std::map<std::string, std::string> blocks;  // by name: the exposition is sorted
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, e] : families_) {
      std::string out;
      switch (e.type) {
        case kind::counter: {
          auto* f = static_cast<const family<counter>*>(e.fam);
          write_family(out, e.type, f->name_, f->help_, f->labels_, f->map_.series);
          break;
        }
        case kind::gauge: {
          auto* f = static_cast<const family<gauge>*>(e.fam);
          write_family(out, e.type, f->name_, f->help_, f->labels_, f->map_.series);
          break;
        }
        case kind::histogram: {
          auto* f = static_cast<const family<histogram>*>(e.fam);
          write_family(out, e.type, f->name_, f->help_, f->labels_, f->map_.series);
          break;
        }
      }
      blocks.emplace(name, std::move(out));
    }
  }
  for (auto& c : extra) {
    if (blocks.count(c.name) != 0 || !valid_name(c.name)) continue;  // first one wins
    std::string out;
    write_header(out, c.name, c.help, c.type);
    for (const auto& s : c.samples) {
      out += c.name;
      if (!s.labels.empty()) {
        out += '{';
        for (std::size_t i = 0; i < s.labels.size(); ++i) {
          if (i > 0) out += ',';
          out += s.labels[i].first;
          out += "=\"";
          out += escape_label_value(s.labels[i].second);
          out += '"';
        }
        out += '}';
      }
      out += ' ';
      out += format_value(s.value);
      out += '\n';
    }
    blocks.emplace(c.name, std::move(out));
  }
  std::string text;
  for (auto& [_, b] : blocks) text += b;
  return text;
}

// --- process -----------------------------------------------------------------

build build_info() noexcept {
  return {FERRY_VERSION, FERRY_REVISION};
}

void register_process_metrics(registry& reg, std::string_view component) {
  auto b = build_info();
  reg.gauge_family("ferry_build_info",
                   "Always 1; the labels name the Ferry version, source revision and component",
                   {"version", "revision", "component"})
      .with({b.version, b.revision, component})
      .set(1);
  const auto start =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto& g = reg.gauge_metric("ferry_process_start_time_seconds",
                             "Start time of the process since the Unix epoch, in seconds");
  if (g.value() != 0) return;  // registered before
  g.set(std::floor(start));
  // The standard process_* metrics (Prometheus client conventions), read
  // from /proc at each scrape.
  reg.add_collector([start = std::floor(start)](std::vector<collected>& out) {
    auto one = [&](const char* name, const char* help, kind k, double v) {
      collected c;
      c.name = name;
      c.help = help;
      c.type = k;
      c.add({}, v);
      out.push_back(std::move(c));
    };
    const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    if (std::ifstream stat("/proc/self/stat"); stat) {
      std::string line;
      std::getline(stat, line);
      // Fields after "(comm)": state is field 3; utime 14, stime 15.
      std::istringstream rest(line.substr(line.rfind(')') + 2));
      std::string f;
      double utime = 0, stime = 0;
      for (int i = 3; i <= 15 && rest >> f; ++i) {
        if (i == 14) utime = std::stod(f);
        if (i == 15) stime = std::stod(f);
      }
      one("process_cpu_seconds_total", "User and system CPU time spent, in seconds", kind::counter,
          (utime + stime) / tick);
    }
    if (std::ifstream statm("/proc/self/statm"); statm) {
      double size = 0, resident = 0;
      statm >> size >> resident;
      one("process_virtual_memory_bytes", "Virtual memory size in bytes", kind::gauge, size * page);
      one("process_resident_memory_bytes", "Resident memory size in bytes", kind::gauge,
          resident * page);
    }
    std::error_code ec;
    double fds = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
      ++fds;
    if (!ec) one("process_open_fds", "Open file descriptors", kind::gauge, fds);
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0)
      one("process_max_fds", "The limit of open file descriptors (RLIMIT_NOFILE)", kind::gauge,
          static_cast<double>(lim.rlim_cur));
    one("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds",
        kind::gauge, start);
  });
}

}  // namespace ferry::metrics
