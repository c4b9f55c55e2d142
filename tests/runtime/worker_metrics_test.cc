// The worker's metrics (docs/observability.md, "Worker") against known
// outcomes: scraped numbers must match what the handlers were made to do.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <map>
#include <thread>

#include "ferry/core/errc.h"
#include "metrics_scrape.h"
#include "worker_fixture.h"

namespace ferry::testing {
namespace {

using runtime::message;
using runtime::ordering;

std::map<std::string, std::string> L(
    std::initializer_list<std::pair<const std::string, std::string>> l) {
  return l;
}

class WorkerMetricsTest : public WorkerFixture, public ::testing::WithParamInterface<transport> {
 protected:
  transport under_test() const override { return GetParam(); }
  static double value(runtime::worker& w, const std::string& name,
                      const std::map<std::string, std::string>& labels) {
    const auto text = w.metrics().expose();
    auto v = sample_value(text, name, labels);
    EXPECT_TRUE(v) << name << " missing in\n" << text;
    return v.value_or(-1);
  }
};

TEST_P(WorkerMetricsTest, OutcomesAttemptsAndHandlerCallsMatchWhatHandlersDid) {
  create(own("pay"));
  // ok; fails once then ok; permanent -> DLQ; duplicate of the first; fails
  // every time (3 attempts) -> DLQ.
  produce(own("pay"), {{"a", "ok", "k-a"},
                       {"b", "flaky", "k-b"},
                       {"c", "perm", "k-c"},
                       {"d", "ok", "k-a"},
                       {"e", "bad", "k-e"}});
  runtime::worker w(worker_options(own("billing")));
  std::map<std::string, int> calls;
  runtime::subscription s;
  s.topics = {own("pay")};
  s.order = ordering::key_ordered;
  s.retry.max_attempts = 3;
  s.retry.backoff.initial = 0ms;  // retries at once, inside the task
  s.handler = [&](const message& m) -> result<void> {
    const int n = ++calls[*m.key()];
    if (*m.value() == "flaky" && n == 1) return runtime::retriable(std::errc::io_error, "once");
    if (*m.value() == "perm") return runtime::permanent(std::errc::invalid_argument, "declined");
    if (*m.value() == "bad") return runtime::retriable(std::errc::io_error, "always");
    return success();
  };
  ASSERT_TRUE(w.subscribe(std::move(s)));
  ASSERT_TRUE(
      step_until(w, [&] { return w.stats().dead_lettered == 2 && w.stats().succeeded == 2; }));

  const auto g = [this](const char* result) {
    return L({{"group", own("billing")}, {"topic", own("pay")}, {"result", result}});
  };
  EXPECT_EQ(value(w, "ferry_worker_records_total", g("ok")), 2);
  EXPECT_EQ(value(w, "ferry_worker_records_total", g("retried")), 3);  // b once, e twice
  EXPECT_EQ(value(w, "ferry_worker_records_total", g("dead_lettered")), 2);
  EXPECT_EQ(value(w, "ferry_worker_records_total", g("duplicate_skipped")), 1);
  EXPECT_EQ(calls["d"], 0);

  const auto gt = L({{"group", own("billing")}, {"topic", own("pay")}});
  // Handler calls: a 1, b 2, c 1, e 3.
  EXPECT_EQ(value(w, "ferry_worker_handler_duration_seconds_count", gt), 7);
  // Finished for good after n attempts: a 1, b 2, c 1, e 3 (d made none).
  EXPECT_EQ(value(w, "ferry_worker_attempts_count", gt), 4);
  EXPECT_EQ(value(w, "ferry_worker_attempts_sum", gt), 7);
  auto le = [&](const char* bound) {
    auto l = gt;
    l["le"] = bound;
    return value(w, "ferry_worker_attempts_bucket", l);
  };
  EXPECT_EQ(le("1"), 2);
  EXPECT_EQ(le("2"), 3);
  EXPECT_EQ(le("3"), 4);
  EXPECT_EQ(le("+Inf"), 4);
  ASSERT_TRUE(step_until(w, [&] { return committed(own("billing"), own("pay")) == 5; }));
  EXPECT_GE(value(w, "ferry_worker_commits_total", L({{"group", own("billing")}})), 1);
  ASSERT_TRUE(w.close());
  EXPECT_EQ(value(w, "ferry_worker_in_flight", L({{"group", own("billing")}})), 0);
}

TEST_P(WorkerMetricsTest, RecordsWaitingForARetryAndTheOldestAgePerMode) {
  create(own("pay"));
  produce(own("pay"), {{"a", "v", ""}});
  runtime::worker w(worker_options(own("billing")));
  int calls = 0;
  runtime::subscription s;
  s.topics = {own("pay")};
  s.retry.max_attempts = 3;
  s.retry.backoff.type = runtime::backoff::kind::fixed;
  s.retry.backoff.initial = 10s;
  s.retry.backoff.max = 10s;
  s.handler = [&](const message&) -> result<void> {
    if (++calls == 1) return runtime::retriable(std::errc::io_error, "later");
    return success();
  };
  ASSERT_TRUE(w.subscribe(std::move(s)));
  ASSERT_TRUE(step_until(w, [&] { return calls == 1; }));
  clock_.advance(4s);
  ASSERT_TRUE(w.run_once(0ms));  // the gauges are refreshed every 100 ms (worker clock)
  const auto in_order = L({{"group", own("billing")}, {"mode", "in_order"}});
  EXPECT_EQ(value(w, "ferry_worker_retry_waiting", in_order), 1);
  EXPECT_DOUBLE_EQ(value(w, "ferry_worker_retry_oldest_age_seconds", in_order), 4.0);
  EXPECT_EQ(value(w, "ferry_worker_retry_waiting",
                  L({{"group", own("billing")}, {"mode", "key_ordered"}})),
            0);
  clock_.advance(7s);
  ASSERT_TRUE(step_until(w, [&] { return calls == 2; }));
  clock_.advance(200ms);
  ASSERT_TRUE(w.run_once(0ms));
  EXPECT_EQ(value(w, "ferry_worker_retry_waiting", in_order), 0);
  EXPECT_EQ(value(w, "ferry_worker_retry_oldest_age_seconds", in_order), 0);
  EXPECT_EQ(value(w, "ferry_worker_records_total",
                  L({{"group", own("billing")}, {"topic", own("pay")}, {"result", "retried"}})),
            1);
}

TEST_P(WorkerMetricsTest, ARecordInARetryTierWaitsUntilDue) {
  create(own("ship"));
  produce(own("ship"), {{"a", "flaky", ""}});
  runtime::worker w(worker_options(own("shipping")));
  int calls = 0;
  runtime::subscription s;
  s.topics = {own("ship")};
  s.order = ordering::delay_tiers;
  s.retry.max_attempts = 3;
  s.tiers = {{"5s", 5s}};
  s.handler = [&](const message&) -> result<void> {
    if (++calls == 1) return runtime::retriable(std::errc::io_error, "later");
    return success();
  };
  ASSERT_TRUE(w.subscribe(std::move(s)));
  const auto tiers = L({{"group", own("shipping")}, {"mode", "delay_tiers"}});
  // Failed once, sent to the tier, fetched back from it (the origin record
  // finished when the tier had it): waiting, not due.
  ASSERT_TRUE(step_until(w, [&] { return w.stats().tier_routed == 1 && w.in_flight() == 1; }));
  EXPECT_EQ(calls, 1);
  clock_.advance(3s);
  ASSERT_TRUE(w.run_once(0ms));  // refreshes the gauges (100 ms of the worker's clock passed)
  EXPECT_EQ(value(w, "ferry_worker_retry_waiting", tiers), 1);
  EXPECT_DOUBLE_EQ(value(w, "ferry_worker_retry_oldest_age_seconds", tiers), 3.0);
  clock_.advance(2s);  // due now
  ASSERT_TRUE(step_until(w, [&] { return calls == 2; }));
  clock_.advance(200ms);
  ASSERT_TRUE(w.run_once(0ms));
  EXPECT_EQ(value(w, "ferry_worker_retry_waiting", tiers), 0);
  const auto g = [this](const char* result) {
    return L({{"group", own("shipping")}, {"topic", own("ship")}, {"result", result}});
  };
  EXPECT_EQ(value(w, "ferry_worker_records_total", g("retried")), 1);
  EXPECT_EQ(value(w, "ferry_worker_records_total", g("ok")), 1);
}

TEST_P(WorkerMetricsTest, TheEndpointIsReadyOnceJoinedAndNotWhileStopping) {
  create(own("pay"));
  produce(own("pay"), {{"a", "v", ""}});
  auto o = worker_options(own("billing"));
  o.metrics_listen = "127.0.0.1:0";
  auto w = std::make_unique<runtime::worker>(o);
  int handled = 0;
  runtime::subscription s;
  s.topics = {own("pay")};
  s.handler = [&](const message&) -> result<void> {
    ++handled;
    return success();
  };
  ASSERT_TRUE(w->subscribe(std::move(s)));
  EXPECT_EQ(w->metrics_address(), "");  // bound when the worker starts
  ASSERT_TRUE(w->run_once(0ms));
  const auto addr = w->metrics_address();
  ASSERT_FALSE(addr.empty());
  const int port = std::stoi(addr.substr(addr.rfind(':') + 1));
  httplib::Client http("127.0.0.1", port);
  ASSERT_TRUE(step_until(*w, [&] { return handled == 1; }));
  auto ready = http.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
  auto m = http.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(sample_value(m->body, "ferry_worker_records_total",
                         {{"group", own("billing")}, {"result", "ok"}}),
            1);
  EXPECT_TRUE(sample_value(m->body, "ferry_build_info", {{"component", "worker"}}));
  // stop() (a signal handler's call) takes it out at once, before run() has
  // returned and closed it.
  w->stop();
  ready = http.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("stopping"), std::string::npos) << ready->body;
  ASSERT_TRUE(w->close());
  ready = http.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("stopping"), std::string::npos) << ready->body;
  w.reset();
  httplib::Client gone("127.0.0.1", port);
  gone.set_connection_timeout(1, 0);
  EXPECT_FALSE(gone.Get("/healthz"));
}

TEST_P(WorkerMetricsTest, NotReadyUntilTheGroupIsJoined) {
  create(own("pay"));
  produce(own("pay"), {{"a", "v", ""}});
  // A member that stops polling holds the group: the worker's join waits
  // until the rebalance gives up on it (1.5 s). Meanwhile /readyz is 503.
  client::consumer_options co;
  static_cast<client::client_options&>(co) = base();
  co.group_id = own("billing");
  co.session_timeout = 2s;
  co.heartbeat_interval = 100ms;
  co.rebalance_timeout = 1500ms;
  // Over Kafka the rebalance time-out is max.poll.interval.ms: a member
  // that stops polling leaves when it has passed (librdkafka).
  if (under_test() == transport::kafka) co.max_poll_interval = 1500ms;
  client::consumer holder(co);
  ASSERT_TRUE(holder.subscribe({own("pay")}));
  for (int i = 0; i < 100 && holder.assignment().empty(); ++i) (void)holder.poll(50ms);
  ASSERT_FALSE(holder.assignment().empty());

  auto o = worker_options(own("billing"));
  o.metrics_listen = "127.0.0.1:0";
  o.consumer.rebalance_timeout = 1500ms;  // the group waits the longest of its members'
  runtime::worker w(o);
  std::atomic<int> handled{0};
  runtime::subscription s;
  s.topics = {own("pay")};
  s.handler = [&](const message&) -> result<void> {
    ++handled;
    return success();
  };
  ASSERT_TRUE(w.subscribe(std::move(s)));
  // start() binds the endpoint; the join is answered later.
  std::vector<std::pair<int, std::string>> seen;  // (status, body) changes
  std::atomic<bool> done{false};
  std::thread watcher;
  auto r = w.run_once(0ms);
  ASSERT_TRUE(r) << w.last_error();
  const auto addr = w.metrics_address();
  ASSERT_FALSE(addr.empty());
  watcher = std::thread([&, port = std::stoi(addr.substr(addr.rfind(':') + 1))] {
    httplib::Client http("127.0.0.1", port);
    while (!done) {
      if (auto res = http.Get("/readyz"); res && (seen.empty() || seen.back().first != res->status))
        seen.emplace_back(res->status, res->body);
      std::this_thread::sleep_for(10ms);
    }
  });
  const bool ok = step_until(w, [&] { return handled == 1; });
  std::this_thread::sleep_for(50ms);
  done = true;
  watcher.join();
  ASSERT_TRUE(ok);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].first, 503);
  EXPECT_NE(seen[0].second.find("joining consumer group billing"), std::string::npos)
      << seen[0].second;
  EXPECT_EQ(seen[1].first, 200);
  ASSERT_TRUE(w.close());
}

TEST_P(WorkerMetricsTest, WorkersShareARegistryAndABadListenAddressFailsTheStart) {
  create(own("pay"));
  produce(own("pay"), {{"a", "v", ""}});
  auto reg = std::make_shared<metrics::registry>();
  auto o1 = worker_options(own("one"));
  o1.metrics = reg;
  auto o2 = worker_options(own("two"));
  o2.metrics = reg;
  runtime::worker w1(o1), w2(o2);
  int n1 = 0, n2 = 0;
  runtime::subscription s;
  s.topics = {own("pay")};
  s.handler = [&](const message&) -> result<void> { return ++n1, success(); };
  ASSERT_TRUE(w1.subscribe(s));
  s.handler = [&](const message&) -> result<void> { return ++n2, success(); };
  ASSERT_TRUE(w2.subscribe(s));
  ASSERT_TRUE(step_until(w1, [&] { return n1 == 1; }));
  ASSERT_TRUE(step_until(w2, [&] { return n2 == 1; }));
  EXPECT_EQ(&w1.metrics(), reg.get());
  const auto text = reg->expose();
  EXPECT_EQ(
      sample_value(text, "ferry_worker_records_total", {{"group", own("one")}, {"result", "ok"}}),
      1);
  EXPECT_EQ(
      sample_value(text, "ferry_worker_records_total", {{"group", own("two")}, {"result", "ok"}}),
      1);

  auto bad = worker_options(own("three"));
  bad.metrics_listen = "localhost";
  runtime::worker w3(bad);
  ASSERT_TRUE(w3.subscribe(s));
  auto r = w3.run_once(0ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::error_code(ferry::errc::config_invalid));
  EXPECT_NE(w3.last_error().find("metrics_listen"), std::string::npos) << w3.last_error();
}

INSTANTIATE_TEST_SUITE_P(Transports, WorkerMetricsTest,
                         ::testing::Values(transport::native, transport::kafka), transport_name);

}  // namespace
}  // namespace ferry::testing
