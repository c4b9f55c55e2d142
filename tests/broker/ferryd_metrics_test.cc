// ferryd's HTTP endpoint as an operator sees it: /readyz through start-up
// and shutdown (slowed down with pause points), and /metrics matching the
// traffic a test sent.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>

#include "ferry/client/admin.h"
#include "ferry/client/producer.h"
#include "ferryd_process.h"
#include "inproc_broker.h"
#include "metrics_scrape.h"

namespace ferry::testing {
namespace {

using namespace std::chrono_literals;

// ferryd with --metrics-listen on a free port; FERRY_PAUSE_AT slows it down.
std::unique_ptr<ferryd_child> start_with_metrics(const std::filesystem::path& dir,
                                                 const std::string& pause_at) {
  return std::make_unique<ferryd_child>(
      FERRY_FERRYD,
      std::vector<std::string>{"--data-dir", dir.string(), "--listen", "tcp://127.0.0.1:*",
                               "--metrics-listen", "127.0.0.1:0", "--log-level", "warn"},
      std::vector<std::pair<std::string, std::string>>{{"FERRY_PAUSE_AT", pause_at}});
}

std::string after(const std::string& s, const std::string& marker) {
  auto at = s.find(marker);
  return at == std::string::npos ? std::string() : s.substr(at + marker.size());
}

// "ferryd metrics on http://HOST:PORT/metrics" -> "HOST:PORT"
std::string metrics_address(const std::string& line) {
  auto a = after(line, "ferryd metrics on http://");
  return a.substr(0, a.find('/'));
}

class FerrydMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("ferry-ferryd-metrics");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(FerrydMetricsTest, ReadinessFlipsThroughStartUpAndShutdownAndMetricsMatchTraffic) {
  auto child = start_with_metrics(dir_, "broker.open:1500,broker.stop:1500");
  auto& d = *child;
  // First line: the metrics endpoint, bound before the data is loaded.
  const auto first = d.line();
  const auto hostport = metrics_address(first);
  ASSERT_FALSE(hostport.empty()) << first;
  const int port = std::stoi(hostport.substr(hostport.find(':') + 1));
  httplib::Client http("127.0.0.1", port);

  auto r = http.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("\"reason\":\"loading data from "), std::string::npos) << r->body;
  auto h = http.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);

  const auto endpoint = after(d.line(), "ferryd listening on ");
  ASSERT_FALSE(endpoint.empty());
  r = http.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;

  // Known traffic: 5 records to orders, one produce to a missing topic.
  client::client_options co;
  co.broker = endpoint;
  client::admin a(co);
  ASSERT_TRUE(a.create_topic("orders", {.partitions = 1}));
  client::producer_options po;
  static_cast<client::client_options&>(po) = co;
  po.linger = 0ms;
  {
    client::producer p(po);
    for (int i = 0; i < 5; ++i) {
      client::producer_record rec;
      rec.topic = "orders";
      rec.value = "order-" + std::to_string(i);
      ASSERT_TRUE(p.send(std::move(rec)).get());
    }
    client::producer_record bad;
    bad.topic = "missing";
    bad.value = "x";
    EXPECT_FALSE(p.send(std::move(bad)).get());
  }
  auto m = http.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(sample_value(m->body, "ferry_broker_records_in_total", {{"topic", "orders"}}), 5);
  EXPECT_EQ(sample_value(m->body, "ferry_partition_high_watermark",
                         {{"topic", "orders"}, {"partition", "0"}}),
            5);
  EXPECT_GE(
      sample_value(m->body, "ferry_broker_refused_total", {{"code", "UnknownTopic"}}).value_or(0),
      1);
  EXPECT_TRUE(sample_value(m->body, "ferry_build_info", {{"component", "ferryd"}}));

  // SIGTERM: not ready at once, while the (paused) stop runs; exit 0.
  ASSERT_EQ(::kill(d.pid(), SIGTERM), 0);
  bool saw_stopping = false;
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (!saw_stopping && std::chrono::steady_clock::now() < end) {
    auto s = http.Get("/readyz");
    if (!s) break;
    if (s->status == 503) {
      EXPECT_NE(s->body.find("stopping"), std::string::npos) << s->body;
      saw_stopping = true;
    }
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(saw_stopping);
  EXPECT_EQ(d.wait_exit(), 0);
}

TEST_F(FerrydMetricsTest, SignalsDuringLoadingAndStoppingStopFerrydCleanly) {
  // The metrics endpoint's threads exist before the data is loaded: a
  // SIGTERM then must still reach ferryd's sigwait (exit 0), not kill it.
  {
    auto child = start_with_metrics(dir_, "broker.open:1500");
    auto& d = *child;
    ASSERT_FALSE(metrics_address(d.line()).empty());
    ASSERT_EQ(::kill(d.pid(), SIGTERM), 0);
    EXPECT_EQ(d.wait_exit(), 0);
  }
  {
    auto child = start_with_metrics(dir_, "broker.stop:1500");
    auto& d = *child;
    ASSERT_FALSE(metrics_address(d.line()).empty());
    ASSERT_FALSE(after(d.line(), "ferryd listening on ").empty());
    ASSERT_EQ(::kill(d.pid(), SIGTERM), 0);
    std::this_thread::sleep_for(300ms);  // inside the paused stop
    ASSERT_EQ(::kill(d.pid(), SIGINT), 0);
    EXPECT_EQ(d.wait_exit(), 0);
  }
}

TEST_F(FerrydMetricsTest, AMetricsPortInUseIsAClearStartupError) {
  auto child = start_with_metrics(dir_, "");
  auto& first = *child;
  const auto hostport = metrics_address(first.line());
  ASSERT_FALSE(hostport.empty());
  auto other = make_temp_dir("ferry-ferryd-metrics2");
  // A second ferryd (another data directory) asking for the same port.
  const auto err_file = other / "stderr";
  ferryd_child second(FERRY_FERRYD,
                      {"--data-dir", (other / "data").string(), "--listen", "tcp://127.0.0.1:*",
                       "--metrics-listen", hostport},
                      {}, err_file);
  EXPECT_EQ(second.wait_exit(), 1);
  std::ifstream in(err_file);
  const std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(err.find(hostport), std::string::npos) << err;
  std::filesystem::remove_all(other);
}

}  // namespace
}  // namespace ferry::testing
