#include "ferry/metrics/registry.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>

namespace ferry::metrics {
namespace {

TEST(Registry, CounterFamilyExposesOneLinePerSeriesSortedByLabels) {
  registry reg;
  auto& f = reg.counter_family("ferry_records_in_total", "Records appended", {"topic"});
  f.with({"orders"}).inc(3);
  f.with({"audit"}).inc();
  f.with({"orders"}).inc(2);
  EXPECT_EQ(reg.expose(),
            "# HELP ferry_records_in_total Records appended\n"
            "# TYPE ferry_records_in_total counter\n"
            "ferry_records_in_total{topic=\"audit\"} 1\n"
            "ferry_records_in_total{topic=\"orders\"} 5\n");
}

TEST(Registry, HistogramBucketsAreCumulativeAndABoundBelongsToItsBucket) {
  registry reg;
  const double bounds[] = {0.1, 1.0};
  auto& h = reg.histogram_metric("ferry_x_seconds", "X", bounds);
  h.observe(0.05);
  h.observe(0.1);  // le="0.1" includes 0.1
  h.observe(0.5);
  h.observe(7.0);
  EXPECT_EQ(reg.expose(),
            "# HELP ferry_x_seconds X\n"
            "# TYPE ferry_x_seconds histogram\n"
            "ferry_x_seconds_bucket{le=\"0.1\"} 2\n"
            "ferry_x_seconds_bucket{le=\"1\"} 3\n"
            "ferry_x_seconds_bucket{le=\"+Inf\"} 4\n"
            "ferry_x_seconds_sum 7.65\n"
            "ferry_x_seconds_count 4\n");
  auto snap = h.read();
  EXPECT_EQ(snap.count, 4u);
  EXPECT_EQ(snap.counts, (std::vector<std::uint64_t>{2, 1, 1}));
}

TEST(Registry, HistogramWithLabelsPutsLeLast) {
  registry reg;
  const double bounds[] = {1.0};
  auto& f = reg.histogram_family("ferry_y_seconds", "Y", {"topic"}, bounds);
  f.with({"t"}).observe(std::chrono::milliseconds(1500));
  auto text = reg.expose();
  EXPECT_NE(text.find("ferry_y_seconds_bucket{topic=\"t\",le=\"1\"} 0\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("ferry_y_seconds_bucket{topic=\"t\",le=\"+Inf\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("ferry_y_seconds_sum{topic=\"t\"} 1.5\n"), std::string::npos);
}

TEST(Registry, LabelValuesAndHelpAreEscaped) {
  registry reg;
  reg.gauge_family("ferry_g", "line one\nback\\slash", {"name"}).with({"a\"b\\c\nd"}).set(2.5);
  EXPECT_EQ(reg.expose(),
            "# HELP ferry_g line one\\nback\\\\slash\n"
            "# TYPE ferry_g gauge\n"
            "ferry_g{name=\"a\\\"b\\\\c\\nd\"} 2.5\n");
}

TEST(Registry, SpecialValuesUseTheTextFormatSpelling) {
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(0.25), "0.25");
}

TEST(Registry, RegisteringAgainReturnsTheSameFamilyOrRefusesAMismatch) {
  registry reg;
  auto& a = reg.counter_family("ferry_c_total", "C", {"topic"});
  auto& b = reg.counter_family("ferry_c_total", "C", {"topic"});
  EXPECT_EQ(&a, &b);
  EXPECT_THROW(reg.counter_family("ferry_c_total", "C", {"group"}), std::invalid_argument);
  EXPECT_THROW(reg.gauge_family("ferry_c_total", "C", {"topic"}), std::invalid_argument);
  EXPECT_THROW(reg.counter_family("9bad", "C", {}), std::invalid_argument);
  EXPECT_THROW(reg.counter_family("ferry_ok_total", "C", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(a.with({"x", "y"}), std::invalid_argument);
  const double unsorted[] = {1.0, 0.5};
  EXPECT_THROW(reg.histogram_metric("ferry_h", "H", unsorted), std::invalid_argument);
}

TEST(Registry, RemoveDropsTheSeries) {
  registry reg;
  auto& f = reg.gauge_family("ferry_partition_log_size_bytes", "S", {"topic", "partition"});
  f.with({"a", "0"}).set(1);
  f.with({"b", "0"}).set(2);
  f.remove({"a", "0"});
  auto text = reg.expose();
  EXPECT_EQ(text.find("topic=\"a\""), std::string::npos) << text;
  EXPECT_NE(text.find("topic=\"b\""), std::string::npos) << text;
}

TEST(Registry, CollectorsAddFamiliesAtScrapeTimeAndCanBeRemoved) {
  registry reg;
  reg.counter_metric("ferry_b_total", "B").inc();
  int calls = 0;
  auto id = reg.add_collector([&](std::vector<collected>& out) {
    ++calls;
    collected c;
    c.name = "ferry_a";
    c.help = "A";
    c.add({{"topic", "t"}, {"partition", "1"}}, 7);
    out.push_back(std::move(c));
  });
  auto text = reg.expose();
  EXPECT_EQ(text,
            "# HELP ferry_a A\n# TYPE ferry_a gauge\nferry_a{topic=\"t\",partition=\"1\"} 7\n"
            "# HELP ferry_b_total B\n# TYPE ferry_b_total counter\nferry_b_total 1\n");
  EXPECT_EQ(calls, 1);
  reg.remove_collector(id);
  EXPECT_EQ(reg.expose().find("ferry_a"), std::string::npos);
  EXPECT_EQ(calls, 1);
}

TEST(Registry, ConcurrentUpdatesAreAllCounted) {
  registry reg;
  auto& c = reg.counter_metric("ferry_n_total", "N");
  const double bounds[] = {1.0};
  auto& h = reg.histogram_metric("ferry_h_seconds", "H", bounds);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.inc();
        h.observe(0.5);
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(c.value(), 40000u);
  EXPECT_EQ(h.read().count, 40000u);
  EXPECT_DOUBLE_EQ(h.read().sum, 20000.0);
}

TEST(Registry, ProcessMetricsNameTheBuild) {
  registry reg;
  register_process_metrics(reg, "ferryd");
  auto text = reg.expose();
  EXPECT_NE(text.find("ferry_build_info{version=\""), std::string::npos) << text;
  EXPECT_NE(text.find("component=\"ferryd\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ferry_process_start_time_seconds "), std::string::npos) << text;
  EXPECT_FALSE(build_info().version.empty());
}

// The standard process metrics, read at each scrape: they follow the
// process (a file opened between two scrapes counts), and registering
// twice does not export them twice.
TEST(Registry, ProcessMetricsFollowTheProcess) {
  registry reg;
  register_process_metrics(reg, "worker");
  register_process_metrics(reg, "worker");
  auto value = [](const std::string& text, const std::string& name) {
    const auto at = text.find("\n" + name + " ");
    EXPECT_NE(at, std::string::npos) << name << " in\n" << text;
    EXPECT_EQ(text.find("\n" + name + " ", at + 1), std::string::npos) << name << " twice";
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + name.size() + 2));
  };
  const auto before = reg.expose();
  EXPECT_GT(value(before, "process_resident_memory_bytes"), 1e6);
  EXPECT_GT(value(before, "process_virtual_memory_bytes"), 1e6);
  EXPECT_GE(value(before, "process_cpu_seconds_total"), 0);
  EXPECT_GT(value(before, "process_max_fds"), 0);
  EXPECT_GT(value(before, "process_start_time_seconds"), 1.7e9);
  const auto fds = value(before, "process_open_fds");
  EXPECT_GE(fds, 3);
  std::FILE* f = std::fopen("/proc/self/stat", "r");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(value(reg.expose(), "process_open_fds"), fds + 1);
  std::fclose(f);
}

}  // namespace
}  // namespace ferry::metrics
