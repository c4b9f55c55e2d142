// Quotas per principal (docs/security.md#quotas): the token buckets and
// in-flight accounting of quota_book, the users file's own quotas, and a
// broker that slows a producer and a consumer to their rates and refuses
// (retriably) what is over the in-flight bytes, losing nothing; and the
// in-flight requests one connection may hold. Each with its control: the
// same client without a quota, or under a higher limit, is not held.
#include "quotas.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "ferry/client/admin.h"
#include "ferry/client/connection.h"
#include "ferry/client/consumer.h"
#include "ferry/client/producer.h"
#include "inproc_broker.h"
#include "metrics_scrape.h"
#include "security.h"

namespace {

using namespace std::chrono_literals;
using ferry::broker::quota_book;
using ferry::broker::quota_kind;
using ferry::broker::quota_limits;
using steady = std::chrono::steady_clock;

quota_book book_of(quota_limits l, std::chrono::milliseconds cap = 30s) {
  return quota_book([l](std::string_view who) { return who == "free" ? quota_limits{} : l; }, cap);
}

TEST(QuotaBook, ARateAllowsOneSecondOfBurstThenAsksForTheWaitThatRepaysIt) {
  auto book = book_of({.produce_bytes_per_second = 1000});
  const auto t0 = steady::now();
  EXPECT_EQ(book.charge("app", quota_kind::produce, 1000, t0), 0ms) << "one second of burst";
  EXPECT_EQ(book.charge("app", quota_kind::produce, 500, t0), 500ms) << "500 B at 1000 B/s";
  EXPECT_EQ(book.charge("app", quota_kind::produce, 500, t0 + 1s), 0ms)
      << "a second repaid the 500 owed and 500 more";
  EXPECT_EQ(book.charge("app", quota_kind::produce, 600, t0 + 1s), 600ms) << "empty now";
  EXPECT_EQ(book.charge("app", quota_kind::produce, 100, t0 + 1700ms), 0ms) << "700 back";
  // Kinds and principals are separate buckets; no limit, no wait.
  EXPECT_EQ(book.charge("app", quota_kind::fetch, 1'000'000, t0), 0ms) << "no fetch quota";
  EXPECT_EQ(book.charge("other", quota_kind::produce, 1000, t0), 0ms);
  EXPECT_EQ(book.charge("free", quota_kind::produce, 1'000'000, t0), 0ms);
}

TEST(QuotaBook, AWaitIsCappedButTheDebtIsKept) {
  auto book = book_of({.fetch_bytes_per_second = 1000}, 2s);
  const auto t0 = steady::now();
  EXPECT_EQ(book.owes("app", quota_kind::fetch, t0), 0ms);
  EXPECT_EQ(book.charge("app", quota_kind::fetch, 100'000, t0), 2000ms) << "one wait is capped";
  EXPECT_EQ(book.owes("app", quota_kind::fetch, t0), 99'000ms) << "the debt is not forgiven";
  EXPECT_EQ(book.owes("app", quota_kind::fetch, t0 + 90s), 9000ms) << "repaid at the rate";
  EXPECT_EQ(book.charge("app", quota_kind::fetch, 1, t0 + 2s), 2000ms) << "still owing";
  EXPECT_EQ(book.owes("other", quota_kind::fetch, t0), 0ms);
  EXPECT_EQ(book.owes("free", quota_kind::fetch, t0), 0ms);
}

TEST(QuotaBook, InFlightBytesAreBoundedPerPrincipal) {
  auto book = book_of({.in_flight_bytes = 1000});
  EXPECT_TRUE(book.begin("app", 5000)) << "nothing in flight: one request always starts";
  EXPECT_FALSE(book.begin("app", 1)) << "over";
  book.release("app", 5000);
  EXPECT_TRUE(book.begin("app", 600));
  EXPECT_FALSE(book.begin("app", 600)) << "600 + 600 > 1000";
  EXPECT_TRUE(book.begin("other", 600)) << "another principal's bytes are its own";
  EXPECT_TRUE(book.begin("free", 1'000'000));
  EXPECT_TRUE(book.begin("free", 1'000'000)) << "no quota";
  book.add("app", 500);  // an answer's bytes count whatever the quota
  EXPECT_EQ(book.in_flight("app"), 1100);
  EXPECT_TRUE(book.over("app"));
  {
    ferry::broker::quota_ticket t(&book, "app", 0);
    t.add(100);
    EXPECT_EQ(book.in_flight("app"), 1200);
  }
  EXPECT_EQ(book.in_flight("app"), 1100) << "a ticket releases what it holds";
  book.release("app", 1100);
  EXPECT_FALSE(book.over("app"));
}

TEST(QuotaUsers, AUsersOwnQuotasReplaceTheDefaultsOneByOne) {
  std::string why;
  const auto dir = ferry::testing::make_temp_dir("ferry-quota-users");
  std::ofstream(dir / "users.toml") << "[users.app]\ntls_client = true\n"
                                       "produce_bytes_per_second = 4096\nin_flight_bytes = 0\n"
                                       "[users.ops]\ntls_client = true\n";
  ferry::broker::user_directory users(dir / "users.toml");
  ASSERT_TRUE(users.load(why)) << why;
  const quota_limits defaults{.produce_bytes_per_second = 1 << 20,
                              .fetch_bytes_per_second = 2 << 20,
                              .in_flight_bytes = 1 << 20};
  const auto app = users.quotas_of("app", defaults);
  EXPECT_EQ(app.produce_bytes_per_second, 4096);
  EXPECT_EQ(app.fetch_bytes_per_second, 2 << 20) << "not given: the default";
  EXPECT_EQ(app.in_flight_bytes, 0) << "0: no limit for this user";
  EXPECT_EQ(users.quotas_of("ops", defaults).produce_bytes_per_second, 1 << 20);
  EXPECT_EQ(users.quotas_of("nobody", defaults).fetch_bytes_per_second, 2 << 20);
  EXPECT_FALSE(ferry::broker::parse_users("[users.app]\ntls_client = true\nin_flight_bytes = -1\n",
                                          "u.toml", why));
  EXPECT_NE(why.find("users.app.in_flight_bytes"), std::string::npos) << why;
  std::filesystem::remove_all(dir);
}

class QuotaBroker : public ::testing::Test {
 protected:
  void start(ferry::broker::quota_limits q, std::chrono::milliseconds max_throttle = 10s) {
    dir_ = ferry::testing::make_temp_dir("ferry-quotas");
    ferry::broker::broker_config c;
    c.quotas = q;
    c.quota_max_throttle = max_throttle;
    broker_.start(dir_, c);
    ferry::client::admin a(ferry::testing::base_client_options(broker_.endpoint()));
    ASSERT_TRUE(a.create_topic("t", {.partitions = 1})) << a.last_error_message();
  }
  void TearDown() override {
    broker_.stop();
    std::filesystem::remove_all(dir_);
  }
  // Produces `n` records of 1 KiB; how long until all were acknowledged.
  steady::duration produce(int n, std::size_t batch_bytes = 16 << 10) {
    ferry::client::producer_options o;
    static_cast<ferry::client::client_options&>(o) =
        ferry::testing::base_client_options(broker_.endpoint());
    o.batch_bytes = batch_bytes;
    o.delivery_timeout = 60s;
    ferry::client::producer p(o);
    std::atomic<int> ok{0}, failed{0};
    const std::string value(1024, 'x');
    const auto t0 = steady::now();
    ferry::client::producer_record rec;
    rec.topic = "t";
    rec.value = value;
    for (int i = 0; i < n; ++i)
      EXPECT_TRUE(p.send(rec, [&](const ferry::result<ferry::client::record_metadata>& m) {
        (m ? ok : failed).fetch_add(1);
      }));
    EXPECT_TRUE(p.flush(60s));
    EXPECT_EQ(failed.load(), 0);
    EXPECT_EQ(ok.load(), n) << "every record acknowledged";
    return steady::now() - t0;
  }
  // Records stored in t's partition 0.
  std::int64_t stored() {
    ferry::client::admin a(ferry::testing::base_client_options(broker_.endpoint()));
    auto d = a.describe_topic("t");
    EXPECT_TRUE(d) << a.last_error_message();
    return d ? d.value().partitions.at(0).high_watermark.value() : -1;
  }
  double metric(const std::string& name, const std::map<std::string, std::string>& labels) {
    return ferry::testing::sample_value(broker_.get()->metrics().expose(), name, labels)
        .value_or(0);
  }

  std::filesystem::path dir_;
  ferry::testing::inproc_broker broker_;
};

// 640 KiB at 256 KiB/s: the first 256 KiB is the burst, the rest takes
// about 1.5 s. The bound checked is a floor (a slower machine only adds).
TEST_F(QuotaBroker, AProducerIsSlowedToItsRateAndLosesNothing) {
  start({.produce_bytes_per_second = 256 << 10});
  const auto took = produce(640);
  EXPECT_GE(took, 1100ms) << "not held to the rate";
  EXPECT_GE(metric("ferry_broker_throttle_time_ms_total",
                   {{"principal", "anonymous"}, {"kind", "produce"}}),
            1000);
}

TEST_F(QuotaBroker, WithoutAQuotaNothingIsHeld) {
  start({.fetch_bytes_per_second = 1 << 30});  // a quota that is never reached
  (void)produce(640);
  EXPECT_EQ(metric("ferry_broker_throttle_time_ms_total",
                   {{"principal", "anonymous"}, {"kind", "produce"}}),
            0);
}

TEST_F(QuotaBroker, AConsumerIsSlowedToItsFetchRate) {
  start({.fetch_bytes_per_second = 256 << 10});
  (void)produce(640);
  ferry::client::consumer_options o;
  static_cast<ferry::client::client_options&>(o) =
      ferry::testing::base_client_options(broker_.endpoint());
  ferry::client::consumer c(o);
  const std::vector<ferry::client::topic_partition> tps{{"t", ferry::partition_id(0)}};
  ASSERT_TRUE(c.assign(tps));
  ASSERT_TRUE(c.seek_to_beginning(tps));
  std::size_t got = 0;
  const auto t0 = steady::now();
  while (got < 640 && steady::now() - t0 < 30s) {
    auto r = c.poll(200ms);
    ASSERT_TRUE(r) << r.error().message();
    got += r.value().size();
  }
  EXPECT_EQ(got, 640u) << "every record read";
  EXPECT_GE(steady::now() - t0, 1100ms) << "not held to the rate";
  EXPECT_GE(metric("ferry_broker_throttle_time_ms_total",
                   {{"principal", "anonymous"}, {"kind", "fetch"}}),
            1000);
}

// Four producers of one principal, each with a 64 KiB batch in flight at
// once, at 64 KiB/s with waits of at most 1 s: a batch that arrives while
// the principal owes more than half a second is refused (TooManyRequests,
// retried), so the rate holds over the whole run and every record is
// stored once. (Holding answers alone would not slow requests that do not
// wait for each other.)
TEST_F(QuotaBroker, RequestsThatDoNotWaitAreRefusedWhileThePrincipalOwes) {
  start({.produce_bytes_per_second = 64 << 10}, 1s);
  const auto t0 = steady::now();
  std::vector<std::thread> producers;
  for (int i = 0; i < 4; ++i) producers.emplace_back([&] { (void)produce(64, 64 << 10); });
  for (auto& t : producers) t.join();
  const auto took = steady::now() - t0;
  EXPECT_GE(took, 2500ms) << "192 KiB beyond the burst at 64 KiB/s is 3 s";
  EXPECT_GE(metric("ferry_broker_quota_refusals_total",
                   {{"principal", "anonymous"}, {"reason", "produce_rate"}}),
            1);
  EXPECT_EQ(stored(), 256) << "stored once each";
}

// Two producers with 256 KiB batches under a 64 KiB in-flight quota: the
// second request while one is in flight is refused (TooManyRequests,
// retriable), and both producers still get every record acknowledged.
TEST_F(QuotaBroker, InFlightBytesOverTheQuotaAreRefusedRetriablyAndNothingIsLost) {
  start({.in_flight_bytes = 64 << 10});
  std::thread other([&] { (void)produce(2048, 256 << 10); });
  (void)produce(2048, 256 << 10);
  other.join();
  EXPECT_GE(metric("ferry_broker_quota_refusals_total",
                   {{"principal", "anonymous"}, {"reason", "in_flight_bytes"}}),
            1);
  EXPECT_EQ(stored(), 4096) << "stored once each";
}

// network.max_in_flight_per_connection: one connection's long polls
// cannot take every in-flight slot (issue 24). Ten parked fetches from one
// connection against max_in_flight 10: with a per-connection limit of 4,
// six are refused at once and another connection is still served; with
// the limit at 10 (the control) all ten park and the other is refused.
std::pair<int, int> park_ten_then_ask(std::int32_t per_connection) {
  const auto dir = ferry::testing::make_temp_dir("ferry-fairness");
  ferry::testing::inproc_broker b;
  ferry::broker::broker_config c;
  c.max_in_flight = 10;
  c.max_in_flight_per_connection = per_connection;
  b.start(dir, c);
  {
    ferry::client::admin a(ferry::testing::base_client_options(b.endpoint()));
    EXPECT_TRUE(a.create_topic("t", {.partitions = 1})) << a.last_error_message();
  }
  auto fetch = [](ferry::client::connection& conn, std::int32_t wait_ms) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<ferry::wire::FetchEntry>> entries{
        ferry::wire::CreateFetchEntry(fbb, fbb.CreateString("t"), 0, 0, 1 << 20)};
    auto body = ferry::wire::CreateFetchRequest(fbb, fbb.CreateVector(entries), wait_ms);
    auto id = conn.send(fbb, ferry::wire::Body::FetchRequest, body.Union());
    EXPECT_TRUE(id);
  };
  auto refused = [](const ferry::client::reply& r) {
    const auto& env = r.envelope();
    return env.body_type() == ferry::wire::Body::ErrorResponse &&
           env.body_as_ErrorResponse()->error() == ferry::wire::ErrorCode::TooManyRequests;
  };
  ferry::client::connection hog(ferry::testing::base_client_options(b.endpoint()));
  for (int i = 0; i < 10; ++i) fetch(hog, 5000);
  int hog_refused = 0;
  const auto until = steady::now() + 1500ms;
  while (steady::now() < until) {
    auto r = hog.next_reply(until);
    EXPECT_TRUE(r);
    if (!r || !r.value()) break;
    EXPECT_TRUE(refused(*r.value())) << "a parked fetch of an empty topic answered early";
    ++hog_refused;
  }
  ferry::client::connection other(ferry::testing::base_client_options(b.endpoint()));
  fetch(other, 0);
  auto answer = other.next_reply(steady::now() + 3s);
  EXPECT_TRUE(answer && answer.value());
  const int other_refused = answer && answer.value() && refused(*answer.value()) ? 1 : 0;
  b.stop();
  std::filesystem::remove_all(dir);
  return {hog_refused, other_refused};
}

TEST(ConnectionFairness, OneConnectionCannotTakeEveryInFlightSlot) {
  EXPECT_EQ(park_ten_then_ask(4), std::make_pair(6, 0))
      << "six of the hog's fetches refused; the other connection served";
  EXPECT_EQ(park_ten_then_ask(10), std::make_pair(0, 1))
      << "the control: the hog holds every slot and the other is refused";
}

}  // namespace
