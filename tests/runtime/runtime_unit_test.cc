// Retry policies, TOML subscriptions, failure records and the committed
// progress metadata, without a broker.
#include <gtest/gtest.h>

#include "ferry/core/errc.h"
#include "ferry/runtime/errors.h"
#include "ferry/runtime/failure_record.h"
#include "ferry/runtime/retry.h"
#include "ferry/runtime/worker.h"
#include "progress.h"

namespace ferry::runtime {
namespace {

using namespace std::chrono_literals;

TEST(Backoff, FixedIsTheSameEveryTime) {
  backoff b;
  b.type = backoff::kind::fixed;
  b.initial = 250ms;
  b.max = 10s;
  b.jitter = false;
  EXPECT_EQ(b.delay(1, 0.3), 250ms);
  EXPECT_EQ(b.delay(7, 0.9), 250ms);
}

TEST(Backoff, ExponentialDoublesUpToTheCap) {
  backoff b;
  b.initial = 100ms;
  b.max = 1s;
  b.jitter = false;
  EXPECT_EQ(b.delay(1, 0), 100ms);
  EXPECT_EQ(b.delay(2, 0), 200ms);
  EXPECT_EQ(b.delay(4, 0), 800ms);
  EXPECT_EQ(b.delay(5, 0), 1000ms);
  EXPECT_EQ(b.delay(500, 0), 1000ms) << "no overflow for large attempt counts";
}

TEST(Backoff, FullJitterStaysWithinZeroAndTheComputedDelay) {
  backoff b;
  b.initial = 100ms;
  b.max = 10s;
  EXPECT_EQ(b.delay(3, 0.0), 0ms);
  EXPECT_EQ(b.delay(3, 0.5), 200ms);
  EXPECT_EQ(b.delay(3, 0.999), 399ms);
}

TEST(RetryPolicy, OverridesMatchByCategoryAndCode) {
  retry_policy p;
  p.overrides.push_back(
      error_override::never_retry("generic", static_cast<int>(std::errc::invalid_argument)));
  p.overrides.push_back(error_override::attempts("ferry.runtime", std::nullopt, 7));
  EXPECT_TRUE(p.override_for(std::make_error_code(std::errc::invalid_argument))->permanent);
  EXPECT_EQ(p.override_for(std::make_error_code(std::errc::io_error)), nullptr);
  EXPECT_EQ(p.override_for(make_error_code(errc::handler_exception))->max_attempts, 7);
}

TEST(ErrorNotes, HelpersReturnTheCodeAndNoteTheClass) {
  detail::clear_note();
  auto ec = permanent(std::errc::permission_denied, "card declined");
  EXPECT_EQ(ec, std::errc::permission_denied);
  auto n = detail::take_note();
  EXPECT_EQ(n.cls, error_class::permanent);
  EXPECT_EQ(n.message, "card declined");
  EXPECT_FALSE(detail::take_note().ec) << "taking clears";
  EXPECT_EQ(invalid_payload("bad"), errc::invalid_payload);
  EXPECT_EQ(detail::take_note().cls, error_class::invalid_payload);
}

TEST(Subscriptions, ParseEveryKey) {
  std::string why;
  auto r = parse_subscriptions(R"(
[[subscription]]
topics = ["orders", "refunds"]
ordering = "key_ordered"
dead_letter_topic = "orders.dead"
idempotency_window = "2d"
partition_concurrency = 16
[subscription.retry]
max_attempts = 5
backoff = "fixed"
initial = "200ms"
max = "30s"
jitter = false
[[subscription.retry.override]]
category = "orders"
code = 3
permanent = true
[[subscription.retry.override]]
category = "payments"
max_attempts = 10
initial = "1s"

[[subscription]]
topics = ["shipments"]
ordering = "delay_tiers"
tiers = ["5s", "1m", "2h"]
skip_processed_keys = false
)",
                               &why);
  ASSERT_TRUE(r) << why;
  ASSERT_EQ(r.value().size(), 2u);
  const auto& a = r.value()[0];
  EXPECT_EQ(a.topics, (std::vector<std::string>{"orders", "refunds"}));
  EXPECT_EQ(a.order, ordering::key_ordered);
  EXPECT_EQ(a.dead_letter_topic, "orders.dead");
  EXPECT_EQ(a.partition_concurrency, 16);
  EXPECT_EQ(a.idempotency_window, 48h);
  EXPECT_EQ(a.retry.max_attempts, 5);
  EXPECT_EQ(a.retry.backoff.type, backoff::kind::fixed);
  EXPECT_EQ(a.retry.backoff.initial, 200ms);
  EXPECT_FALSE(a.retry.backoff.jitter);
  ASSERT_EQ(a.retry.overrides.size(), 2u);
  EXPECT_TRUE(a.retry.overrides[0].permanent);
  EXPECT_EQ(a.retry.overrides[0].code, 3);
  EXPECT_EQ(a.retry.overrides[1].max_attempts, 10);
  ASSERT_TRUE(a.retry.overrides[1].backoff);
  EXPECT_EQ(a.retry.overrides[1].backoff->initial, 1s);
  const auto& b = r.value()[1];
  EXPECT_EQ(b.order, ordering::delay_tiers);
  ASSERT_EQ(b.tiers.size(), 3u);
  EXPECT_EQ(tier_topic("shipments", b.tiers[0]), "shipments.retry.5s");
  EXPECT_EQ(tier_topic("shipments", b.tiers[2]), "shipments.retry.2h");
  EXPECT_FALSE(b.skip_processed_keys);
  EXPECT_EQ(b.partition_concurrency, 0);
}

TEST(Subscriptions, MistakesAreErrorsThatNameTheKey) {
  auto bad = [](const char* toml) {
    std::string why;
    auto r = parse_subscriptions(toml, &why);
    EXPECT_FALSE(r);
    if (!r) {
      EXPECT_EQ(r.error(), ferry::errc::config_invalid);
    }
    return why;
  };
  EXPECT_NE(bad("[[subscription]]\ntopics=[\"o\"]\nmax_attemps=3\n").find("max_attemps"),
            std::string::npos);
  EXPECT_NE(bad("[[subscription]]\ntopics=[\"o\"]\nordering=\"random\"\n").find("ordering"),
            std::string::npos);
  EXPECT_NE(bad("[[subscription]]\ntopics=[\"o\"]\nordering=\"delay_tiers\"\n").find("tier"),
            std::string::npos);
  EXPECT_NE(bad("[[subscription]]\ntopics=[\"o\"]\n[subscription.retry]\ninitial=\"5 s\"\n")
                .find("initial"),
            std::string::npos);
  EXPECT_NE(bad("[[subscription]]\ntopics=[\"o\"]\n[subscription.retry]\nmax_attempts=0\n")
                .find("max_attempts"),
            std::string::npos);
  EXPECT_NE(bad("[[subscription]]\ntopics=[\"bad topic\"]\n").find("bad topic"), std::string::npos);
  EXPECT_NE(bad("[[subscription]]\ntopics=[\"o\"]\npartition_concurrency=-1\n")
                .find("partition_concurrency"),
            std::string::npos);
  EXPECT_NE(bad("[[subscription\n").find("line"), std::string::npos);
  EXPECT_NE(bad("").find("subscription"), std::string::npos);
}

TEST(WorkerFile, BrokerAndKafkaPropertiesComeWithTheSubscriptions) {
  std::string why;
  auto f = parse_worker_file(R"(
broker = "kafka://k1:9092,k2:9092"
group_instance_id = "payment-1"
[kafka]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"enable.ssl.certificate.verification" = true
"socket.keepalive.enable" = true
"message.max.bytes" = 2000000
[[subscription]]
topics = ["orders"]
)",
                             &why);
  ASSERT_TRUE(f) << why;
  EXPECT_EQ(f.value().broker, "kafka://k1:9092,k2:9092");
  EXPECT_EQ(f.value().kafka.at("security.protocol"), "SASL_SSL");
  EXPECT_EQ(f.value().kafka.at("enable.ssl.certificate.verification"), "true");
  EXPECT_EQ(f.value().kafka.at("message.max.bytes"), "2000000");
  ASSERT_EQ(f.value().subscriptions.size(), 1u);
  worker_options o;
  o.use(f.value());
  EXPECT_EQ(o.consumer.broker, "kafka://k1:9092,k2:9092");
  EXPECT_EQ(o.producer.broker, "kafka://k1:9092,k2:9092");
  EXPECT_EQ(o.producer.kafka.at("sasl.mechanism"), "SCRAM-SHA-512");
  EXPECT_EQ(o.consumer.group_instance_id, "payment-1");

  // parse_subscriptions takes the same file.
  auto subs = parse_subscriptions(
      "broker = \"tcp://127.0.0.1:7400\"\n[[subscription]]\ntopics=[\"o\"]\n", &why);
  ASSERT_TRUE(subs) << why;

  auto bad = [](const char* toml) {
    std::string w;
    EXPECT_FALSE(parse_worker_file(toml, &w));
    return w;
  };
  EXPECT_NE(bad("broker = \"http://x:1\"\n[[subscription]]\ntopics=[\"o\"]\n").find("broker"),
            std::string::npos);
  EXPECT_NE(
      bad("broker = \"tcp://x:1\"\n[kafka]\nacks = \"all\"\n[[subscription]]\ntopics=[\"o\"]\n")
          .find("kafka://"),
      std::string::npos);
  EXPECT_NE(bad("broker = \"kafka://x:1\"\n[kafka]\nacks = [1]\n[[subscription]]\ntopics=[\"o\"]\n")
                .find("kafka.acks"),
            std::string::npos);
  EXPECT_NE(bad("group_instance_id = \"a b\"\n[[subscription]]\ntopics=[\"o\"]\n")
                .find("group_instance_id"),
            std::string::npos);
  EXPECT_NE(
      bad("group_instance_id = 3\n[[subscription]]\ntopics=[\"o\"]\n").find("group_instance_id"),
      std::string::npos);
}

// A new user wrote idempotency_window = 7 meaning days and got 7 ms, which
// disabled the guarantee: a bare number is an error naming the key.
TEST(Subscriptions, ABareNumberForADurationIsAnErrorNotMilliseconds) {
  for (const char* toml :
       {"[[subscription]]\ntopics=[\"o\"]\nidempotency_window=7\n",
        "[[subscription]]\ntopics=[\"o\"]\n[subscription.retry]\ninitial=100\n",
        "[[subscription]]\ntopics=[\"o\"]\nordering=\"delay_tiers\"\ntiers=[5000]\n"}) {
    std::string why;
    auto r = parse_subscriptions(toml, &why);
    ASSERT_FALSE(r) << toml;
    EXPECT_EQ(r.error(), ferry::errc::config_invalid);
    EXPECT_NE(why.find("has no unit"), std::string::npos) << why;
    EXPECT_NE(why.find("\"7d\""), std::string::npos) << why;
  }
  std::string why;
  (void)parse_subscriptions("[[subscription]]\ntopics=[\"o\"]\nidempotency_window=7\n", &why);
  EXPECT_NE(why.find("idempotency_window"), std::string::npos) << why;
  // The same grammar as the CLI: compounds are accepted.
  auto ok =
      parse_subscriptions("[[subscription]]\ntopics=[\"o\"]\nidempotency_window=\"1d12h\"\n", &why);
  ASSERT_TRUE(ok) << why;
  EXPECT_EQ(ok.value()[0].idempotency_window, 36h);
}

// The one retry decision (retry.h) every path of the worker asks.
TEST(RetryDecision, DeadLetterTierOrRetryInTheDocumentedOrder) {
  using action = failure_decision::action;
  subscription_config s;
  s.topics = {"orders"};
  s.retry.max_attempts = 3;
  s.retry.backoff.initial = 100ms;
  const auto boom = make_error_code(std::errc::io_error);
  // Retriable, attempts left: retry after the backoff.
  auto d = decide_after_failure(s, error_class::retriable, boom, 1);
  EXPECT_EQ(d.what, action::retry_later);
  ASSERT_NE(d.backoff, nullptr);
  EXPECT_EQ(d.backoff->delay(1, 1.0), 100ms);
  // The last attempt: exhausted.
  d = decide_after_failure(s, error_class::retriable, boom, 3);
  EXPECT_EQ(d.what, action::dead_letter);
  EXPECT_EQ(d.reason, dead_letter_reason::attempts_exhausted);
  // Permanent and invalid payloads at once, whatever attempts remain.
  EXPECT_EQ(decide_after_failure(s, error_class::permanent, boom, 1).reason,
            dead_letter_reason::permanent_error);
  EXPECT_EQ(decide_after_failure(s, error_class::invalid_payload, boom, 1).reason,
            dead_letter_reason::invalid_payload);
  // An override: permanent for its error, or its own attempts and backoff.
  s.retry.overrides.push_back(error_override::never_retry(boom.category().name(), boom.value()));
  d = decide_after_failure(s, error_class::retriable, boom, 1);
  EXPECT_EQ(d.what, action::dead_letter);
  EXPECT_EQ(d.reason, dead_letter_reason::permanent_error);
  s.retry.overrides.clear();
  auto ov = error_override::attempts(boom.category().name(), boom.value(), 5);
  ov.backoff = backoff{backoff::kind::fixed, 0ms, 0ms, 1.0, false};
  s.retry.overrides.push_back(ov);
  d = decide_after_failure(s, error_class::retriable, boom, 3);
  EXPECT_EQ(d.what, action::retry_now) << "the override's 5 attempts and zero backoff";
  EXPECT_EQ(d.backoff->delay(3, 0.5), 0ms);
  EXPECT_EQ(decide_after_failure(s, error_class::retriable, boom, 5).what, action::dead_letter);
  // Another error is not overridden.
  EXPECT_EQ(
      decide_after_failure(s, error_class::retriable, make_error_code(std::errc::timed_out), 3)
          .what,
      action::dead_letter);
}

TEST(RetryDecision, DelayTiersPickTheTierOfTheAttempt) {
  using action = failure_decision::action;
  subscription_config s;
  s.topics = {"orders"};
  s.order = ordering::delay_tiers;
  s.retry.max_attempts = 5;
  s.tiers = {{"5s", 5s}, {"1m", 60s}};
  const auto boom = make_error_code(std::errc::io_error);
  auto d = decide_after_failure(s, error_class::retriable, boom, 1);
  EXPECT_EQ(d.what, action::tier);
  EXPECT_EQ(d.tier, 0u);
  EXPECT_EQ(decide_after_failure(s, error_class::retriable, boom, 2).tier, 1u);
  EXPECT_EQ(decide_after_failure(s, error_class::retriable, boom, 4).tier, 1u)
      << "past the last tier, the last one again";
  EXPECT_EQ(decide_after_failure(s, error_class::retriable, boom, 5).what, action::dead_letter);
  EXPECT_EQ(decide_after_failure(s, error_class::permanent, boom, 1).what, action::dead_letter);
}

TEST(Durations, ParseUnitsAndRefuseTheRest) {
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("5s"), 5s);
  EXPECT_EQ(parse_duration("7d"), 168h);
  EXPECT_FALSE(parse_duration("5"));
  EXPECT_FALSE(parse_duration("-1s"));
  EXPECT_FALSE(parse_duration("1w"));
  EXPECT_FALSE(parse_duration("99999999999999999d"));
  EXPECT_EQ(tier_name(90s), "90s");
  EXPECT_EQ(tier_name(1500ms), "1500ms");
}

TEST(FailureRecord, RoundTripsThroughFlatBuffers) {
  failure_record f;
  f.origin_topic = "orders";
  f.origin_partition = 3;
  f.origin_offset = 42;
  f.origin_key = std::string("k\0ey", 4);
  f.origin_timestamp_ms = 1'700'000'000'000;
  f.group = "payments";
  f.worker = "host:1";
  f.add_attempt({1, error_class::retriable, "generic", 5, "I/O error", "host:1"});
  f.add_attempt({2, error_class::permanent, "orders", 3, "declined", "host:1"});
  f.reason = dead_letter_reason::permanent_error;
  f.reason_message = "declined";
  f.dead_lettered_ms = 3;
  auto back = decode_failure(encode_failure(f));
  ASSERT_TRUE(back);
  EXPECT_EQ(back.value(), f);
}

TEST(FailureRecord, StaysBoundedKeepingTheFirstAndLastAttempts) {
  failure_record f;
  for (int i = 0; i < 100; ++i)
    f.add_attempt({i, error_class::retriable, "generic", i, std::string(5000, 'x'), "w"});
  EXPECT_EQ(f.attempts_total, 100);
  ASSERT_EQ(f.attempts.size(), kMaxKeptAttempts);
  EXPECT_EQ(f.attempts[0].time_ms, 0);
  EXPECT_EQ(f.attempts[3].time_ms, 3);
  EXPECT_EQ(f.attempts[4].time_ms, 88);
  EXPECT_EQ(f.attempts.back().time_ms, 99);
  EXPECT_EQ(f.attempts[0].message.size(), kMaxErrorMessageBytes);
  EXPECT_LT(encode_failure(f).size(), 12u * 1024);
}

TEST(FailureRecord, GarbageIsRefusedNotRead) {
  EXPECT_EQ(decode_failure("").error(), ferry::errc::corrupt_data);
  EXPECT_EQ(decode_failure("not a flatbuffer at all").error(), ferry::errc::corrupt_data);
  auto good = encode_failure({});
  for (std::size_t i = 0; i < good.size(); ++i) {
    auto bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    (void)decode_failure(bad);  // must not crash (ASan/UBSan watch)
  }
  EXPECT_FALSE(decode_failure(good.substr(0, good.size() / 2)));
}

TEST(Positions, FormatAndParse) {
  EXPECT_EQ(format_position({"orders", 2, 17}), "orders/2/17");
  EXPECT_EQ(parse_position("orders.retry.5s/0/9"), (record_position{"orders.retry.5s", 0, 9}));
  EXPECT_FALSE(parse_position("orders/x/1"));
  EXPECT_FALSE(parse_position("orders/1"));
  EXPECT_FALSE(parse_position("a/b/1/2"));
  auto r = parse_route("payments/orders/1/5");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->group, "payments");
  EXPECT_EQ(r->source, (record_position{"orders", 1, 5}));
  EXPECT_FALSE(parse_route("orders/1/5"));
}

TEST(Progress, RoundTripsAndStaysWithinTheLimit) {
  detail::progress p;
  p.watermarks = {{"orders.dlq", 120}, {"orders.retry.5s", 7}};
  p.attempts = {{10, 2, 1000, "timeout \"x\"", -1}, {12, 1, 2000, "", 1}};
  p.done = {{11, 11}, {13, 20}};
  auto back = detail::decode_progress(detail::encode_progress(p));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, p);
  detail::progress big = p;
  for (int i = 0; i < 2000; ++i) {
    big.done.emplace_back(100 + 2 * i, 100 + 2 * i);
    big.attempts.push_back({5000 + i, 3, 1, std::string(100, 'e')});
  }
  auto s = detail::encode_progress(big);
  EXPECT_LE(s.size(), 4096u);
  auto cut = detail::decode_progress(s);
  ASSERT_TRUE(cut);
  EXPECT_EQ(cut->watermarks, p.watermarks) << "watermarks always stay";
  EXPECT_FALSE(detail::decode_progress("a commit from someone else"));
  EXPECT_FALSE(detail::decode_progress(""));
  EXPECT_EQ(detail::to_ranges({1, 2, 3, 5, 7, 8}),
            (std::vector<std::pair<std::int64_t, std::int64_t>>{{1, 3}, {5, 5}, {7, 8}}));
}

}  // namespace
}  // namespace ferry::runtime
