#include "ferry/metrics/http_endpoint.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

namespace ferry::metrics {
namespace {

TEST(ParseListen, AcceptsHostPortAndExplainsTheRest) {
  std::string err;
  auto a = parse_listen("127.0.0.1:9400", err);
  ASSERT_TRUE(a);
  EXPECT_EQ(a.value().host, "127.0.0.1");
  EXPECT_EQ(a.value().port, 9400);
  auto b = parse_listen("[::1]:0", err);
  ASSERT_TRUE(b);
  EXPECT_EQ(b.value().host, "::1");
  EXPECT_EQ(b.value().port, 0);
  for (const char* bad : {"9400", ":9400", "localhost:", "host:x", "host:70000", "host:-1"}) {
    err.clear();
    EXPECT_FALSE(parse_listen(bad, err)) << bad;
    EXPECT_NE(err.find(bad), std::string::npos) << err;
  }
}

TEST(HttpEndpoint, ServesMetricsHealthAndReadiness) {
  registry reg;
  reg.counter_metric("ferry_requests_total", "R").inc(5);
  std::mutex mu;
  std::optional<std::string> why = "loading data: 3 of 5 topics";
  std::string err;
  auto ep = http_endpoint::start(
      "127.0.0.1:0", reg,
      [&]() -> std::optional<std::string> {
        std::lock_guard lock(mu);
        return why;
      },
      err);
  ASSERT_TRUE(ep) << err;
  const int port = ep.value()->port();
  ASSERT_GT(port, 0);
  EXPECT_EQ(ep.value()->address(), "127.0.0.1:" + std::to_string(port));

  httplib::Client cli("127.0.0.1", port);
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_EQ(m->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(m->body.find("ferry_requests_total 5\n"), std::string::npos) << m->body;

  auto h = cli.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);

  auto r = cli.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "{\"status\":\"not ready\",\"reason\":\"loading data: 3 of 5 topics\"}\n");
  {
    std::lock_guard lock(mu);
    why.reset();
  }
  r = cli.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"status\":\"ready\"}\n");
  {
    std::lock_guard lock(mu);
    why = "stopping: \"SIGTERM\"\n";
  }
  r = cli.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "{\"status\":\"not ready\",\"reason\":\"stopping: \\\"SIGTERM\\\"\\n\"}\n");

  auto missing = cli.Get("/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);

  ep.value()->stop();
  httplib::Client after("127.0.0.1", port);
  after.set_connection_timeout(1, 0);
  EXPECT_FALSE(after.Get("/healthz"));
}

TEST(HttpEndpoint, IdleKeepAliveScrapersDoNotStarveAReadinessProbe) {
  registry reg;
  std::string err;
  auto ep = http_endpoint::start(
      "127.0.0.1:0", reg, [] { return std::nullopt; }, err);
  ASSERT_TRUE(ep) << err;
  const int port = ep.value()->port();
  // Scrapers that keep their connections open and idle after a request
  // (more of them than the endpoint has threads).
  std::vector<std::unique_ptr<httplib::Client>> idle;
  for (int i = 0; i < 6; ++i) {
    idle.push_back(std::make_unique<httplib::Client>("127.0.0.1", port));
    idle.back()->set_keep_alive(true);
    auto r = idle.back()->Get("/metrics");
    ASSERT_TRUE(r);
  }
  // A probe with a 2 s budget still gets its answer (a thread held per idle
  // connection would keep it waiting for the keep-alive timeout, 5 s).
  httplib::Client probe("127.0.0.1", port);
  probe.set_connection_timeout(2, 0);
  probe.set_read_timeout(2, 0);
  auto r = probe.Get("/readyz");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
}

TEST(HttpEndpoint, APortInUseIsAClearError) {
  registry reg;
  std::string err;
  auto first = http_endpoint::start("127.0.0.1:0", reg, nullptr, err);
  ASSERT_TRUE(first) << err;
  const auto taken = first.value()->address();
  auto second = http_endpoint::start(taken, reg, nullptr, err);
  EXPECT_FALSE(second);
  EXPECT_NE(err.find(taken), std::string::npos) << err;
  EXPECT_FALSE(http_endpoint::start("nonsense", reg, nullptr, err));
  // IPv6 (where the machine has it): the address comes back in brackets.
  if (auto v6 = http_endpoint::start("[::1]:0", reg, nullptr, err)) {
    EXPECT_EQ(v6.value()->address(), "[::1]:" + std::to_string(v6.value()->port()));
  }
}

}  // namespace
}  // namespace ferry::metrics
