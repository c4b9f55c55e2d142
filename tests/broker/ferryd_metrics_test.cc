// ferryd's HTTP endpoint as an operator sees it: /readyz through start-up
// and shutdown (slowed down with pause points), and /metrics matching the
// traffic a test sent.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "ferry/client/admin.h"
#include "ferry/client/producer.h"
#include "inproc_broker.h"
#include "metrics_scrape.h"

namespace ferry::testing {
namespace {

using namespace std::chrono_literals;

// ferryd with --metrics-listen on a free port, its stdout read line by line.
struct ferryd_child {
  pid_t pid = -1;
  FILE* out = nullptr;

  ferryd_child(const std::filesystem::path& dir, const char* pause_at) {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    pid = ::fork();
    if (pid == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      ::close(fds[1]);
      ::setenv("FERRY_PAUSE_AT", pause_at, 1);
      ::execl(FERRY_FERRYD, FERRY_FERRYD, "--data-dir", dir.c_str(), "--listen",
              "tcp://127.0.0.1:*", "--metrics-listen", "127.0.0.1:0", "--log-level", "warn",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    out = ::fdopen(fds[0], "r");
  }
  ~ferryd_child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (out != nullptr) ::fclose(out);
  }
  std::string line() {
    char buf[512];
    if (std::fgets(buf, sizeof buf, out) == nullptr) return {};
    std::string s(buf);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }
  int wait_exit() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

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
  ferryd_child d(dir_, "broker.open:1500,broker.stop:1500");
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
  ASSERT_EQ(::kill(d.pid, SIGTERM), 0);
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
    ferryd_child d(dir_, "broker.open:1500");
    ASSERT_FALSE(metrics_address(d.line()).empty());
    ASSERT_EQ(::kill(d.pid, SIGTERM), 0);
    EXPECT_EQ(d.wait_exit(), 0);
  }
  {
    ferryd_child d(dir_, "broker.stop:1500");
    ASSERT_FALSE(metrics_address(d.line()).empty());
    ASSERT_FALSE(after(d.line(), "ferryd listening on ").empty());
    ASSERT_EQ(::kill(d.pid, SIGTERM), 0);
    std::this_thread::sleep_for(300ms);  // inside the paused stop
    ASSERT_EQ(::kill(d.pid, SIGINT), 0);
    EXPECT_EQ(d.wait_exit(), 0);
  }
}

TEST_F(FerrydMetricsTest, AMetricsPortInUseIsAClearStartupError) {
  ferryd_child first(dir_, "");
  const auto hostport = metrics_address(first.line());
  ASSERT_FALSE(hostport.empty());
  auto other = make_temp_dir("ferry-ferryd-metrics2");
  // A second ferryd (another data directory) asking for the same port.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execl(FERRY_FERRYD, FERRY_FERRYD, "--data-dir", other.c_str(), "--listen",
            "tcp://127.0.0.1:*", "--metrics-listen", hostport.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string err;
  char buf[256];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) err.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(err.find(hostport), std::string::npos) << err;
  std::filesystem::remove_all(other);
}

}  // namespace
}  // namespace ferry::testing
