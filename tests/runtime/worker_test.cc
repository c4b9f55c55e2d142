// The worker against an in-process broker, driven step by step on a manual
// clock: commits, retries in each ordering mode, dead letters, idempotency.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "ferry/client/errc.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/runtime/dlq.h"
#include "ferry/runtime/failure_record.h"
#include "worker_fixture.h"

namespace ferry::testing {
namespace {

using runtime::message;
using runtime::ordering;

runtime::subscription sub(std::vector<std::string> topics, runtime::record_handler h) {
  runtime::subscription s;
  s.topics = std::move(topics);
  s.handler = std::move(h);
  s.retry.max_attempts = 3;
  s.retry.backoff.type = runtime::backoff::kind::fixed;
  s.retry.backoff.initial = 1000ms;
  s.retry.backoff.max = 1000ms;
  return s;
}

TEST_P(WorkerTest, HandlesEverythingAndCommitsOnlyFinishedRecords) {
  create(own("orders"), 2);
  produce(own("orders"), {{"a", "1", ""}, {"b", "2", ""}, {"c", "3", ""}}, 0);
  produce(own("orders"), {{"d", "4", ""}}, 1);
  runtime::worker w(worker_options(own("billing")));
  std::vector<std::string> seen;
  ASSERT_TRUE(w.subscribe(sub({own("orders")}, [&](const message& m) -> result<void> {
    seen.push_back(*m.value());
    EXPECT_EQ(m.attempt(), 1);
    EXPECT_EQ(m.topic(), own("orders"));
    return success();
  })));
  ASSERT_TRUE(step_until(w, [&] { return seen.size() == 4; }));
  ASSERT_TRUE(step_until(w, [&] { return committed(own("billing"), own("orders"), 0) == 3; }));
  EXPECT_EQ(committed(own("billing"), own("orders"), 1), 1);
  EXPECT_EQ(w.stats().succeeded, 4u);
  ASSERT_TRUE(w.close());
  // Nothing is handled twice by the next worker of the group.
  runtime::worker w2(worker_options(own("billing")));
  int again = 0;
  ASSERT_TRUE(w2.subscribe(sub({own("orders")}, [&](const message&) -> result<void> {
    ++again;
    return success();
  })));
  step_for(w2, 300ms);
  EXPECT_EQ(again, 0);
}

TEST_P(WorkerTest, InOrderRetryHoldsThePartitionUntilTheBackoffHasPassed) {
  create(own("orders"));
  produce(own("orders"), {{"a", "1", ""}, {"b", "2", ""}, {"c", "3", ""}});
  runtime::worker w(worker_options(own("g")));
  std::vector<std::string> calls;
  int fails_left = 2;
  ASSERT_TRUE(w.subscribe(sub({own("orders")}, [&](const message& m) -> result<void> {
    calls.push_back(*m.value() + "#" + std::to_string(m.attempt()));
    if (*m.value() == "2" && fails_left-- > 0)
      return runtime::retriable(std::errc::timed_out, "payments API timed out");
    return success();
  })));
  ASSERT_TRUE(step_until(w, [&] { return calls.size() == 2; }));
  EXPECT_EQ(calls, (std::vector<std::string>{"1#1", "2#1"}));
  step_for(w, 200ms);  // the manual clock has not moved: no retry, "3" waits
  EXPECT_EQ(calls.size(), 2u);
  EXPECT_EQ(w.stats().waiting, 1u);
  ASSERT_TRUE(step_until(w, [&] { return committed(own("g"), own("orders")) == 1; }));
  clock_.advance(999ms);
  step_for(w, 100ms);
  EXPECT_EQ(calls.size(), 2u) << "retried before its backoff";
  clock_.advance(1ms);
  ASSERT_TRUE(step_until(w, [&] { return calls.size() == 3; }));
  EXPECT_EQ(calls.back(), "2#2");
  clock_.advance(1000ms);
  ASSERT_TRUE(step_until(w, [&] { return calls.size() == 5; }));
  EXPECT_EQ(calls[3], "2#3");
  EXPECT_EQ(calls[4], "3#1");
  ASSERT_TRUE(step_until(w, [&] { return committed(own("g"), own("orders")) == 3; }));
  EXPECT_EQ(w.stats().dead_lettered, 0u);
}

TEST_P(WorkerTest, KeyOrderedRetryHoldsOnlyTheFailingKey) {
  create(own("orders"));
  produce(own("orders"), {{"A", "a1", ""}, {"B", "b1", ""}, {"A", "a2", ""}, {"C", "c1", ""}});
  runtime::worker w(worker_options(own("g")));
  std::vector<std::string> calls;
  bool fail_a1 = true;
  auto s = sub({own("orders")}, [&](const message& m) -> result<void> {
    calls.push_back(*m.value());
    if (*m.value() == "a1" && fail_a1) {
      fail_a1 = false;
      return std::make_error_code(std::errc::io_error);
    }
    return success();
  });
  s.order = ordering::key_ordered;
  ASSERT_TRUE(w.subscribe(std::move(s)));
  ASSERT_TRUE(step_until(w, [&] { return calls.size() == 3; }));
  EXPECT_EQ(calls, (std::vector<std::string>{"a1", "b1", "c1"})) << "a2 must wait for a1";
  step_for(w, 100ms);
  EXPECT_EQ(calls.size(), 3u);
  // The commit stays below a1 while the later records are finished.
  ASSERT_TRUE(step_until(w, [&] { return committed(own("g"), own("orders")) == 0; }));
  clock_.advance(1s);
  ASSERT_TRUE(step_until(w, [&] { return calls.size() == 5; }));
  EXPECT_EQ(calls[3], "a1");
  EXPECT_EQ(calls[4], "a2");
  ASSERT_TRUE(step_until(w, [&] { return committed(own("g"), own("orders")) == 4; }));
}

// Key-level concurrency (issue 22): in key_ordered mode the records of one
// partition with different keys run at once, up to partition_concurrency;
// with 1 they run one at a time (the negative control).
TEST_P(WorkerTest, KeyOrderedRunsDifferentKeysOfOnePartitionAtOnce) {
  create(own("orders"));
  std::vector<std::tuple<std::string, std::string, std::string>> recs;
  for (int i = 0; i < 48; ++i)
    recs.emplace_back("k" + std::to_string(i % 8), std::to_string(i), "");
  produce(own("orders"), recs);
  for (const int limit : {0, 1}) {
    auto o = worker_options(own("g" + std::to_string(limit)));
    o.concurrency = 4;
    runtime::worker w(o);
    std::atomic<int> active{0}, most{0}, calls{0};
    auto s = sub({own("orders")}, [&](const message&) -> result<void> {
      const int now = ++active;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(5ms);
      --active;
      ++calls;
      return success();
    });
    s.order = ordering::key_ordered;
    s.partition_concurrency = limit;
    ASSERT_TRUE(w.subscribe(std::move(s)));
    ASSERT_TRUE(step_until(w, [&] { return calls.load() == 48; }));
    if (limit == 1)
      EXPECT_EQ(most.load(), 1) << "partition_concurrency 1: one record at a time";
    else
      EXPECT_GE(most.load(), 2) << "different keys of one partition should overlap";
    EXPECT_LE(most.load(), 4);
    ASSERT_TRUE(step_until(
        w, [&] { return committed(own("g" + std::to_string(limit)), own("orders")) == 48; }));
    ASSERT_TRUE(w.close());
  }
}

// Per-key order, no offset committed past an unfinished record, and every
// record handled once, under random handler latencies and failures.
TEST_P(WorkerTest, KeyLevelConcurrencyKeepsPerKeyOrderAndCommitsOnlyFinishedPrefixes) {
  create(own("orders"));
  constexpr int kKeys = 16, kRecords = 320;
  std::vector<std::tuple<std::string, std::string, std::string>> recs;
  for (int i = 0; i < kRecords; ++i)
    recs.emplace_back("k" + std::to_string(i % kKeys), std::to_string(i),
                      "idem-" + std::to_string(i));
  produce(own("orders"), recs);
  auto o = worker_options(own("g"));
  o.concurrency = 6;
  o.commit_interval = 5ms;
  runtime::worker w(o);
  std::mutex mu;
  std::map<std::string, std::vector<int>> order;  // key -> values handled successfully
  std::set<std::int64_t> finished;                // offsets whose handler succeeded
  std::map<int, int> successes;
  std::atomic<int> failures{0};
  std::mt19937 rng(7);
  auto s = sub({own("orders")}, [&](const message& m) -> result<void> {
    int roll = 0;
    {
      std::lock_guard lock(mu);
      roll = static_cast<int>(rng() % 100);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(roll * 30));
    if (roll < 20) {
      ++failures;
      return std::make_error_code(std::errc::io_error);
    }
    std::lock_guard lock(mu);
    const int v = std::stoi(*m.value());
    order[*m.key()].push_back(v);
    finished.insert(m.record().offset.value());
    ++successes[v];
    return success();
  });
  s.order = ordering::key_ordered;
  s.retry.max_attempts = 1000;
  s.retry.backoff.initial = 0ms;
  s.retry.backoff.max = 0ms;
  ASSERT_TRUE(w.subscribe(std::move(s)));
  std::int64_t last_committed = 0;
  auto check_commit = [&] {
    const auto c = committed(own("g"), own("orders")).value_or(0);
    EXPECT_GE(c, last_committed) << "committed offsets never move back";
    last_committed = c;
    std::lock_guard lock(mu);
    for (std::int64_t off = 0; off < c; ++off)
      if (!finished.count(off)) {
        ADD_FAILURE() << "offset " << off << " committed (" << c << ") before it finished";
        return;
      }
  };
  ASSERT_TRUE(step_until(
      w,
      [&] {
        check_commit();
        std::lock_guard lock(mu);
        return finished.size() == static_cast<std::size_t>(kRecords);
      },
      60s));
  ASSERT_TRUE(step_until(w, [&] { return committed(own("g"), own("orders")) == kRecords; }));
  check_commit();
  EXPECT_GT(failures.load(), 0) << "the test should exercise retries";
  std::lock_guard lock(mu);
  for (const auto& [key, values] : order)
    EXPECT_TRUE(std::is_sorted(values.begin(), values.end())) << key << " out of order";
  for (int i = 0; i < kRecords; ++i) EXPECT_EQ(successes[i], 1) << "record " << i;
}

TEST_P(WorkerTest, ExhaustedAttemptsGoToTheDeadLetterTopicWithTheirHistory) {
  create(own("orders"));
  produce(own("orders"), {{"order-1", "poison", "order-1/paid"}, {"order-2", "fine", ""}});
  runtime::worker w(worker_options(own("pay")));
  int calls = 0;
  ASSERT_TRUE(w.subscribe(sub({own("orders")}, [&](const message& m) -> result<void> {
    ++calls;
    if (*m.value() == "poison") throw std::runtime_error("cannot parse \"amount\"");
    return success();
  })));
  ASSERT_TRUE(step_until(w, [&] { return calls == 1; }));
  for (int i = 0; i < 2; ++i) {
    clock_.advance(1s);
    ASSERT_TRUE(step_until(w, [&] { return calls >= 2 + i; }));
  }
  ASSERT_TRUE(step_until(w, [&] { return w.stats().dead_lettered == 1; }));
  ASSERT_TRUE(step_until(w, [&] { return committed(own("pay"), own("orders")) == 2; }));
  EXPECT_EQ(calls, 4);  // three attempts of the poison record, one of the other
  // Finished for good: "fine" after 1 attempt, "poison" (dead-lettered) after 3.
  EXPECT_EQ(w.stats().attempts_histogram, (std::vector<std::uint64_t>{1, 0, 1}));
  auto dlq = read_all(own("orders.dlq"));
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].key, "order-1");
  EXPECT_EQ(dlq[0].value, "poison");
  EXPECT_EQ(runtime::get_header(dlq[0].headers, "ferry.idempotency-key"), "order-1/paid");
  auto f = runtime::decode_failure(*runtime::get_header(dlq[0].headers, runtime::kFailureHeader));
  ASSERT_TRUE(f);
  EXPECT_EQ(f.value().origin_topic, own("orders"));
  EXPECT_EQ(f.value().origin_offset, 0);
  EXPECT_EQ(f.value().origin_key, "order-1");
  EXPECT_EQ(f.value().group, own("pay"));
  EXPECT_EQ(f.value().worker, "test-worker");
  EXPECT_EQ(f.value().reason, runtime::dead_letter_reason::attempts_exhausted);
  EXPECT_EQ(f.value().attempts_total, 3);
  ASSERT_EQ(f.value().attempts.size(), 3u);
  for (const auto& a : f.value().attempts) {
    EXPECT_EQ(a.category, "ferry.runtime");
    EXPECT_EQ(a.message, "cannot parse \"amount\"");
  }
  EXPECT_EQ(f.value().attempts[1].time_ms - f.value().attempts[0].time_ms, 1000);
  EXPECT_EQ(runtime::get_header(dlq[0].headers, runtime::kOriginHeader), own("orders") + "/0/0");
  EXPECT_EQ(runtime::get_header(dlq[0].headers, runtime::kAttemptHeader), "3");
}

// A failing record's first failure and its dead-lettering get a line each,
// a flood of failures at most a few lines a second (issue 22).
TEST_P(WorkerTest, FailuresAndDeadLettersAreLoggedAtARateAUserCanLiveWith) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  auto logger = ferry::log::get("runtime");
  const auto level = logger->level();
  logger->set_level(spdlog::level::info);
  logger->sinks().push_back(sink);
  auto lines_with = [&](const std::string& what) {
    int n = 0;
    for (const auto& l : sink->last_formatted())
      if (l.find(what) != std::string::npos) ++n;
    return n;
  };
  create(own("orders"));
  produce(own("orders"), {{"order-1", "poison", ""}});
  runtime::worker w(worker_options(own("pay")));
  std::atomic<int> calls{0};
  auto s = sub({own("orders")}, [&](const message&) -> result<void> {
    ++calls;
    return std::make_error_code(std::errc::connection_refused);
  });
  s.order = ordering::key_ordered;
  ASSERT_TRUE(w.subscribe(std::move(s)));
  ASSERT_TRUE(step_until(w, [&] { return calls == 1; }));
  for (int i = 0; i < 2; ++i) {
    clock_.advance(1s);
    ASSERT_TRUE(step_until(w, [&] { return calls >= 2 + i; }));
  }
  ASSERT_TRUE(step_until(w, [&] { return w.stats().dead_lettered == 1; }));
  EXPECT_EQ(lines_with("attempt 1 failed"), 1);
  EXPECT_EQ(lines_with("key order-1"), 2) << "its first failure and its dead letter";
  EXPECT_EQ(lines_with("attempt 2 failed"), 0) << "one line per record, not per attempt";
  EXPECT_EQ(lines_with("dead-lettered to " + own("orders.dlq")), 1);
  EXPECT_EQ(lines_with("ferry dlq show " + own("orders.dlq")), 1) << "what to do next";

  // 40 records failing together (distinct keys, key_ordered), three times
  // each, then dead-lettered: at most 5 lines a second, and the dropped
  // ones counted into the next line.
  std::vector<std::tuple<std::string, std::string, std::string>> many;
  for (int i = 0; i < 40; ++i) many.emplace_back("k" + std::to_string(i), "poison", "");
  produce(own("orders"), many);
  const auto before = sink->last_formatted().size();
  for (int round = 1; round <= 3; ++round) {
    ASSERT_TRUE(step_until(w, [&] { return calls >= 3 + 40 * round; })) << round;
    clock_.advance(1100ms);
  }
  ASSERT_TRUE(step_until(w, [&] { return w.stats().dead_lettered == 41; }));
  const auto logged = sink->last_formatted().size() - before;
  EXPECT_LE(logged, 4u * 5u) << "80 would-be lines in four one-second windows";
  EXPECT_GE(lines_with("more failure line(s) not logged"), 1) << "the dropped ones are counted";
  logger->sinks().pop_back();
  logger->set_level(level);
}

TEST_P(WorkerTest, PermanentErrorsAndInvalidPayloadsAreDeadLetteredAtOnce) {
  create(own("orders"));
  produce(own("orders"), {{"1", "declined", ""}, {"2", "garbage", ""}, {"3", "validation", ""}});
  runtime::worker w(worker_options(own("pay")));
  int calls = 0;
  auto s = sub({own("orders")}, [&](const message& m) -> result<void> {
    ++calls;
    if (*m.value() == "declined")
      return runtime::permanent(std::errc::operation_not_permitted, "card declined");
    if (*m.value() == "garbage") return runtime::invalid_payload("not an OrderPlaced");
    return std::make_error_code(std::errc::invalid_argument);  // classified by the override
  });
  s.retry.overrides.push_back(runtime::error_override::never_retry(
      "generic", static_cast<int>(std::errc::invalid_argument)));
  ASSERT_TRUE(w.subscribe(std::move(s)));
  ASSERT_TRUE(step_until(w, [&] { return w.stats().dead_lettered == 3; }));
  EXPECT_EQ(calls, 3);
  ASSERT_TRUE(step_until(w, [&] { return committed(own("pay"), own("orders")) == 3; }));
  auto dlq = read_all(own("orders.dlq"));
  ASSERT_EQ(dlq.size(), 3u);
  std::map<std::string, runtime::failure_record> by_value;
  for (const auto& r : dlq)
    by_value[*r.value] =
        runtime::decode_failure(*runtime::get_header(r.headers, "ferry.failure")).value();
  EXPECT_EQ(by_value["declined"].reason, runtime::dead_letter_reason::permanent_error);
  EXPECT_EQ(by_value["declined"].attempts.at(0).message, "card declined");
  EXPECT_EQ(by_value["declined"].attempts.at(0).cls, runtime::error_class::permanent);
  EXPECT_EQ(by_value["garbage"].reason, runtime::dead_letter_reason::invalid_payload);
  EXPECT_EQ(by_value["validation"].reason, runtime::dead_letter_reason::permanent_error);
  EXPECT_EQ(by_value["validation"].attempts_total, 1);
}

TEST_P(WorkerTest, DelayTiersRepublishAndConsumeWhenDue) {
  create(own("orders"));
  produce(own("orders"), {{"1", "flaky", ""}, {"2", "ok", ""}});
  runtime::worker w(worker_options(own("ship")));
  std::vector<std::string> calls;
  auto s = sub({own("orders")}, [&](const message& m) -> result<void> {
    calls.push_back(*m.value() + "#" + std::to_string(m.attempt()));
    EXPECT_EQ(m.topic(), own("orders"));
    EXPECT_EQ(m.origin().offset, *m.value() == "flaky" ? 0 : 1);
    if (*m.value() == "flaky" && m.attempt() < 3)
      return std::make_error_code(std::errc::device_or_resource_busy);
    return success();
  });
  s.order = ordering::delay_tiers;
  s.retry.max_attempts = 4;
  s.tiers = {{"5s", 5s}, {"1m", 60s}};
  ASSERT_TRUE(w.subscribe(std::move(s)));
  // The origin offset is committed as soon as the tier has the record.
  ASSERT_TRUE(step_until(w, [&] { return committed(own("ship"), own("orders")) == 2; }));
  EXPECT_EQ(calls, (std::vector<std::string>{"flaky#1", "ok#1"}));
  EXPECT_EQ(read_all(own("orders.retry.5s")).size(), 1u);
  clock_.advance(4999ms);
  step_for(w, 150ms);
  EXPECT_EQ(calls.size(), 2u) << "consumed from the tier before it was due";
  clock_.advance(1ms);
  ASSERT_TRUE(step_until(w, [&] { return calls.size() == 3; }));
  EXPECT_EQ(calls[2], "flaky#2");
  // Second failure: the 1m tier.
  ASSERT_TRUE(step_until(w, [&] { return read_all(own("orders.retry.1m")).size() == 1; }));
  clock_.advance(59s);
  step_for(w, 150ms);
  EXPECT_EQ(calls.size(), 3u);
  clock_.advance(1s);
  ASSERT_TRUE(step_until(w, [&] { return calls.size() == 4; }));
  EXPECT_EQ(calls[3], "flaky#3");
  EXPECT_EQ(w.stats().tier_routed, 2u);
  EXPECT_EQ(w.stats().dead_lettered, 0u);
  ASSERT_TRUE(step_until(w, [&] { return committed(own("ship"), own("orders.retry.1m")) == 1; }));
  // Each record counted once, where it finished: "ok" at attempt 1, "flaky"
  // at attempt 3 (its hops to the tiers are not finishes).
  EXPECT_EQ(w.stats().attempts_histogram, (std::vector<std::uint64_t>{1, 0, 1}));
}

TEST_P(WorkerTest, AttemptsSurviveAWorkerRestart) {
  create(own("orders"));
  produce(own("orders"), {{"1", "x", ""}});
  {
    runtime::worker w(worker_options(own("g")));
    int calls = 0;
    ASSERT_TRUE(w.subscribe(sub({own("orders")}, [&](const message&) -> result<void> {
      ++calls;
      return runtime::retriable(std::errc::io_error, "db down");
    })));
    ASSERT_TRUE(step_until(w, [&] { return calls == 1; }));
    clock_.advance(1s);
    ASSERT_TRUE(step_until(w, [&] { return calls == 2; }));
    ASSERT_TRUE(step_until(w, [&] { return w.stats().commits >= 2; }));
    step_for(w, 100ms);
    ASSERT_TRUE(w.close());
  }
  runtime::worker w2(worker_options(own("g")));
  std::vector<int> attempts;
  ASSERT_TRUE(w2.subscribe(sub({own("orders")}, [&](const message& m) -> result<void> {
    attempts.push_back(m.attempt());
    return runtime::retriable(std::errc::io_error, "db still down");
  })));
  ASSERT_TRUE(step_until(w2, [&] { return attempts.size() == 1; }));
  EXPECT_EQ(attempts[0], 3) << "the third attempt, not a fresh first one";
  ASSERT_TRUE(step_until(w2, [&] { return w2.stats().dead_lettered == 1; }));
  auto dlq = read_all(own("orders.dlq"));
  ASSERT_EQ(dlq.size(), 1u);
  auto f = runtime::decode_failure(*runtime::get_header(dlq[0].headers, "ferry.failure"));
  ASSERT_TRUE(f);
  EXPECT_EQ(f.value().attempts_total, 3);
}

TEST_P(WorkerTest, SlowHandlersReportBackInChunksOfBoundedTime) {
  // 30 records of one partition, 20 ms each: one chunk of all of them would
  // finish nothing (no commit, no progress) for 600 ms. Chunks end after
  // 100 ms of handling, so progress shows in steps of about five records.
  create(own("orders"));
  std::vector<std::tuple<std::string, std::string, std::string>> recs;
  for (int i = 0; i < 30; ++i) recs.emplace_back("k" + std::to_string(i), "v", "");
  produce(own("orders"), recs);
  auto o = worker_options(own("slow"));
  o.concurrency = 1;
  runtime::worker w(o);
  ASSERT_TRUE(w.subscribe(sub({own("orders")}, [&](const message&) -> result<void> {
    std::this_thread::sleep_for(20ms);
    return success();
  })));
  ASSERT_TRUE(step_until(w, [&] { return w.stats().succeeded > 0; }));
  const auto first = w.stats().succeeded;
  EXPECT_LT(first, 30u) << "the first chunk ran every record before reporting any";
  ASSERT_TRUE(step_until(w, [&] { return committed(own("slow"), own("orders")) == 30; }));
  EXPECT_EQ(w.stats().succeeded, 30u);
}

TEST_P(WorkerTest, ADuplicateDeferredToTheNextChunkIsStillSkipped) {
  // A 1 ms budget and a 5 ms handler: one record per chunk. The copy's
  // ledger answer ("not processed") came before the original ran; deferred,
  // it keeps that answer and must still be skipped once the original has
  // finished in the chunk before.
  create(own("orders"));
  produce(own("orders"), {{"o1", "first", "order-1/paid"},
                          {"o1", "copy", "order-1/paid"},
                          {"o2", "other", "order-2/paid"}});
  auto o = worker_options(own("pay"));
  o.chunk_budget = 1ms;
  runtime::worker w(o);
  std::vector<std::string> seen;
  ASSERT_TRUE(w.subscribe(sub({own("orders")}, [&](const message& m) -> result<void> {
    seen.push_back(*m.value());
    std::this_thread::sleep_for(5ms);
    return success();
  })));
  ASSERT_TRUE(step_until(w, [&] { return committed(own("pay"), own("orders")) == 3; }));
  EXPECT_EQ(seen, (std::vector<std::string>{"first", "other"}));
  EXPECT_EQ(w.stats().duplicates_skipped, 1u);
}

TEST_P(WorkerTest, AProcessedIdempotencyKeyIsNeverHandledAgain) {
  create(own("orders"));
  produce(own("orders"), {{"o1", "first", "order-1/paid"},
                          {"o2", "other", "order-2/paid"},
                          {"o1", "again", "order-1/paid"}});
  {
    runtime::worker w(worker_options(own("pay")));
    std::vector<std::string> seen;
    ASSERT_TRUE(w.subscribe(sub({own("orders")}, [&](const message& m) -> result<void> {
      seen.push_back(*m.value());
      EXPECT_TRUE(m.idempotency_key());
      return success();
    })));
    ASSERT_TRUE(step_until(w, [&] { return committed(own("pay"), own("orders")) == 3; }));
    EXPECT_EQ(seen, (std::vector<std::string>{"first", "other"}));
    EXPECT_EQ(w.stats().duplicates_skipped, 1u);
    // The skipped duplicate made no attempt.
    EXPECT_EQ(w.stats().attempts_histogram, (std::vector<std::uint64_t>{2}));
    ASSERT_TRUE(w.close());
  }
  // Replay: the group's offsets go back to the start; the ledger remembers.
  {
    client::admin a(base());
    auto r = a.reset_offsets(own("pay"), {{{own("orders"), partition_id(0)}, offset(0), "", {}}});
    ASSERT_TRUE(r);
  }
  produce(own("orders"), {{"o3", "new", "order-3/paid"}});
  if (!on_cluster()) restart_broker();  // and the ledger is durable (a cluster is not restarted)
  runtime::worker w(worker_options(own("pay")));
  std::vector<std::string> seen;
  ASSERT_TRUE(w.subscribe(sub({own("orders")}, [&](const message& m) -> result<void> {
    seen.push_back(*m.value());
    return success();
  })));
  ASSERT_TRUE(step_until(w, [&] { return committed(own("pay"), own("orders")) == 4; }));
  EXPECT_EQ(seen, (std::vector<std::string>{"new"}));
  EXPECT_EQ(w.stats().duplicates_skipped, 3u);
  // Another group has its own ledger.
  runtime::worker other(worker_options(own("audit")));
  int audit = 0;
  ASSERT_TRUE(other.subscribe(sub({own("orders")}, [&](const message&) -> result<void> {
    ++audit;
    return success();
  })));
  ASSERT_TRUE(step_until(other, [&] { return committed(own("audit"), own("orders")) == 4; }));
  EXPECT_EQ(audit, 3);
}

TEST_P(WorkerTest, TheLedgerOnlyHoldsKeysWhoseHandlingSucceeded) {
  create(own("orders"));
  produce(own("orders"), {{"o1", "bad", "k-1"}});
  {
    runtime::worker w(worker_options(own("pay")));
    auto s = sub({own("orders")}, [&](const message&) -> result<void> {
      return runtime::permanent(std::errc::invalid_argument, "no");
    });
    ASSERT_TRUE(w.subscribe(std::move(s)));
    ASSERT_TRUE(step_until(w, [&] { return committed(own("pay"), own("orders")) == 1; }));
    ASSERT_TRUE(w.close());
  }
  client::consumer_options co;
  static_cast<client::client_options&>(co) = base();
  co.group_id = own("pay");
  client::consumer c(co);
  auto found = c.ledger_lookup({"k-1"});
  ASSERT_TRUE(found);
  EXPECT_FALSE(found.value()[0]) << "a dead-lettered key must stay redrivable";
}

TEST_P(WorkerTest, ASlowPartitionDoesNotStallTheOthers) {
  create(own("orders"), 2);
  produce(own("orders"), {{"a", "slow", ""}}, 0);
  produce(own("orders"), {{"b", "p1-1", ""}, {"c", "p1-2", ""}, {"d", "p1-3", ""}}, 1);
  auto o = worker_options(own("g"));
  o.concurrency = 2;
  o.clock = nullptr;
  runtime::worker w(o);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> others{0};
  ASSERT_TRUE(w.subscribe(sub({own("orders")}, [&](const message& m) -> result<void> {
    if (*m.value() == "slow") {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return release; });  // a handler stuck on a slow downstream
    } else {
      ++others;
    }
    return success();
  })));
  ASSERT_TRUE(step_until(w, [&] { return others.load() == 3; }));
  ASSERT_TRUE(step_until(w, [&] { return committed(own("g"), own("orders"), 1) == 3; }));
  EXPECT_NE(committed(own("g"), own("orders"), 0), 1) << "the slow record is not finished";
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(step_until(w, [&] { return committed(own("g"), own("orders"), 0) == 1; }));
}

TEST_P(WorkerTest, RunReturnsAfterStopWithEverythingInHandCommitted) {
  create(own("orders"));
  std::vector<std::tuple<std::string, std::string, std::string>> recs;
  for (int i = 0; i < 200; ++i)
    recs.emplace_back("k" + std::to_string(i % 7), std::to_string(i), "");
  produce(own("orders"), recs);
  auto o = worker_options(own("g"));
  o.concurrency = 2;
  o.clock = nullptr;
  runtime::worker w(o);
  std::atomic<int> handled{0};
  ASSERT_TRUE(w.subscribe(sub({own("orders")}, [&](const message&) -> result<void> {
    ++handled;
    return success();
  })));
  result<void> ran = success();
  std::thread t([&] { ran = w.run(); });
  const auto end = std::chrono::steady_clock::now() + 15s;
  while (handled.load() < 200 && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(5ms);
  w.stop();
  t.join();
  EXPECT_TRUE(ran) << ran.error().message();
  EXPECT_EQ(handled.load(), 200);
  EXPECT_EQ(committed(own("g"), own("orders")), 200) << "stop commits what was finished";
  client::admin a(base());
  auto d = a.describe_group(own("g"));
  ASSERT_TRUE(d);
  EXPECT_TRUE(d.value().members.empty()) << "stop leaves the group";
}

// The full loop: a record fails for good, is dead-lettered, redriven with
// `ferry dlq redrive`'s library, and handled once; a key that succeeded is
// skipped even when a copy of it is redriven.
TEST_P(WorkerTest, RedrivenDeadLettersAreHandledOnceAndProcessedKeysStaySkipped) {
  create(own("orders"));
  produce(own("orders"), {{"o1", "broken", "order-1/paid"}, {"o2", "fine", "order-2/paid"}});
  bool downstream_fixed = false;
  std::vector<std::string> handled;
  auto make = [&] {
    auto s = sub({own("orders")}, [&](const message& m) -> result<void> {
      if (*m.value() == "broken" && !downstream_fixed)
        return runtime::permanent(std::errc::connection_refused, "merchant blocked");
      handled.push_back(*m.value());
      return success();
    });
    return s;
  };
  runtime::worker w(worker_options(own("pay")));
  ASSERT_TRUE(w.subscribe(make()));
  ASSERT_TRUE(step_until(w, [&] { return committed(own("pay"), own("orders")) == 2; }));
  EXPECT_EQ(handled, (std::vector<std::string>{"fine"}));
  EXPECT_EQ(w.stats().dead_lettered, 1u);
  // An operator also dead-letters a copy of the successful order by hand
  // (as a buggy tool might): it must not be charged twice after a redrive.
  {
    auto d = read_all(own("orders.dlq"));
    ASSERT_EQ(d.size(), 1u);
    client::producer_options po;
    static_cast<client::client_options&>(po) = base();
    client::producer p(po);
    client::producer_record r;
    r.topic = own("orders.dlq");
    r.partition = partition_id(0);
    r.key = "o2";
    r.value = "fine";
    r.idempotency_key = "order-2/paid";
    r.headers = d[0].headers;  // a failure record, for the dlq tools
    std::erase_if(r.headers,
                  [](const client::header& h) { return h.key == "ferry.idempotency-key"; });
    ASSERT_TRUE(p.send(std::move(r)).get());
  }
  downstream_fixed = true;
  auto snap = runtime::dlq::read(base(), own("orders.dlq"));
  ASSERT_TRUE(snap);
  auto ir = runtime::dlq::find_interrupted(base(), snap.value());
  ASSERT_TRUE(ir);
  auto plan = runtime::dlq::plan_redrive(snap.value(), ir.value(), {}, "");
  ASSERT_EQ(plan.items.size(), 2u);
  runtime::dlq::redrive_options ro;
  ro.rate = 0;
  auto done = runtime::dlq::execute_redrive(base(), snap.value(), plan, ro);
  ASSERT_TRUE(done) << done.error().message();
  EXPECT_EQ(done.value().redriven, 2u);
  ASSERT_TRUE(step_until(w, [&] { return committed(own("pay"), own("orders")) == 4; }));
  EXPECT_EQ(handled, (std::vector<std::string>{"fine", "broken"}))
      << "the redriven dead letter once, the processed key not again";
  EXPECT_EQ(w.stats().duplicates_skipped, 1u);
  // A second redrive finds nothing pending.
  auto again = runtime::dlq::read(base(), own("orders.dlq"));
  ASSERT_TRUE(again);
  auto ir2 = runtime::dlq::find_interrupted(base(), again.value());
  ASSERT_TRUE(ir2);
  EXPECT_TRUE(runtime::dlq::plan_redrive(again.value(), ir2.value(), {}, "").items.empty());
}

TEST_P(WorkerTest, ZeroBackoffRetriesRunAtOnceAndCountEveryAttempt) {
  create(own("orders"));
  produce(own("orders"), {{"1", "poison", ""}, {"2", "ok", ""}});
  runtime::worker w(worker_options(own("g")));
  std::vector<int> attempts;
  auto s = sub({own("orders")}, [&](const message& m) -> result<void> {
    if (*m.value() != "poison") return success();
    attempts.push_back(m.attempt());
    return runtime::retriable(std::errc::io_error, "attempt " + std::to_string(m.attempt()));
  });
  s.retry.backoff.initial = 0ms;
  s.retry.backoff.max = 0ms;
  s.retry.max_attempts = 4;
  ASSERT_TRUE(w.subscribe(std::move(s)));
  ASSERT_TRUE(step_until(w, [&] { return w.stats().dead_lettered == 1; }));
  EXPECT_EQ(attempts, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(w.stats().failed_attempts, 4u);
  auto dlq = read_all(own("orders.dlq"));
  ASSERT_EQ(dlq.size(), 1u);
  auto f = runtime::decode_failure(*runtime::get_header(dlq[0].headers, "ferry.failure"));
  ASSERT_TRUE(f);
  EXPECT_EQ(f.value().attempts_total, 4);
  ASSERT_EQ(f.value().attempts.size(), 4u);
  EXPECT_EQ(f.value().attempts[0].message, "attempt 1");
  EXPECT_EQ(f.value().attempts[3].message, "attempt 4");
}

// More keys than one commit carries: they go in several commits of rising
// offsets, each key with the offset that covers it; a replay skips them all.
TEST_P(WorkerTest, ManyKeysAreSplitOverCommitsAndAllReachTheLedger) {
  create(own("orders"));
  std::vector<std::tuple<std::string, std::string, std::string>> recs;
  for (int i = 0; i < 10'000; ++i)
    recs.emplace_back("k" + std::to_string(i), std::to_string(i), "order-" + std::to_string(i));
  produce(own("orders"), recs);
  {
    runtime::worker w(worker_options(own("g")));
    int n = 0;
    ASSERT_TRUE(w.subscribe(sub({own("orders")}, [&](const message&) -> result<void> {
      ++n;
      return success();
    })));
    ASSERT_TRUE(step_until(
        w, [&] { return committed(own("g"), own("orders")) == 10'000; }, 60s));
    EXPECT_EQ(n, 10'000);
    ASSERT_TRUE(w.close());
  }
  client::admin a(base());
  ASSERT_TRUE(a.reset_offsets(own("g"), {{{own("orders"), partition_id(0)}, offset(0), "", {}}}));
  runtime::worker w(worker_options(own("g")));
  int again = 0;
  ASSERT_TRUE(w.subscribe(sub({own("orders")}, [&](const message&) -> result<void> {
    ++again;
    return success();
  })));
  ASSERT_TRUE(step_until(
      w, [&] { return committed(own("g"), own("orders")) == 10'000; }, 60s));
  EXPECT_EQ(again, 0);
  EXPECT_EQ(w.stats().duplicates_skipped, 10'000u);
}

TEST_P(WorkerTest, ABatchHandlerGetsTheReadyRecordsAndIsRetriedAsAWhole) {
  create(own("orders"));
  produce(own("orders"), {{"a", "1", "k-1"}, {"b", "2", ""}, {"c", "3", ""}});
  runtime::worker w(worker_options(own("g")));
  std::vector<std::vector<std::string>> batches;
  bool fail_once = true;
  runtime::subscription s;
  s.topics = {own("orders")};
  s.retry.backoff.type = runtime::backoff::kind::fixed;
  s.retry.backoff.initial = 500ms;
  s.retry.backoff.max = 500ms;
  s.on_batch = [&](std::span<const message> ms) -> result<void> {
    std::vector<std::string> v;
    for (const auto& m : ms) v.push_back(*m.value() + "#" + std::to_string(m.attempt()));
    batches.push_back(v);
    if (fail_once) {
      fail_once = false;
      return std::make_error_code(std::errc::io_error);
    }
    return success();
  };
  ASSERT_TRUE(w.subscribe(std::move(s)));
  ASSERT_TRUE(step_until(w, [&] { return batches.size() == 1; }));
  EXPECT_EQ(batches[0], (std::vector<std::string>{"1#1", "2#1", "3#1"}));
  step_for(w, 100ms);
  EXPECT_EQ(batches.size(), 1u) << "retried before the backoff";
  clock_.advance(500ms);
  ASSERT_TRUE(step_until(w, [&] { return batches.size() == 2; }));
  EXPECT_EQ(batches[1], (std::vector<std::string>{"1#2", "2#2", "3#2"}));
  ASSERT_TRUE(step_until(w, [&] { return committed(own("g"), own("orders")) == 3; }));
  // A batch handler needs in_order.
  runtime::worker w2(worker_options(own("g2")));
  runtime::subscription bad;
  bad.topics = {own("orders")};
  bad.order = ordering::key_ordered;
  bad.on_batch = [](std::span<const message>) -> result<void> { return success(); };
  EXPECT_EQ(w2.subscribe(std::move(bad)).error(), ferry::errc::config_invalid);
}

TEST_P(WorkerTest, APermanentBatchErrorDeadLettersEveryRecordOfTheBatchAtOnce) {
  create(own("orders"));
  produce(own("orders"), {{"a", "1", "same"}, {"b", "2", "same"}, {"c", "3", ""}});
  runtime::worker w(worker_options(own("g")));
  int calls = 0;
  runtime::subscription s;
  s.topics = {own("orders")};
  s.on_batch = [&](std::span<const message> ms) -> result<void> {
    ++calls;
    EXPECT_EQ(ms.size(), 3u) << "a repeated key inside a batch runs with it";
    return runtime::permanent(std::errc::invalid_argument, "schema mismatch");
  };
  ASSERT_TRUE(w.subscribe(std::move(s)));
  ASSERT_TRUE(step_until(w, [&] { return w.stats().dead_lettered == 3; }));
  EXPECT_EQ(calls, 1);
  for (const auto& r : read_all(own("orders.dlq"))) {
    auto f = runtime::decode_failure(*runtime::get_header(r.headers, "ferry.failure"));
    ASSERT_TRUE(f);
    EXPECT_EQ(f.value().reason, runtime::dead_letter_reason::permanent_error) << *r.value;
    EXPECT_EQ(f.value().attempts_total, 1);
  }
}

// A dead letter the broker refuses for good is never dropped: the record is
// sent again, its offset stays uncommitted, and the failure is visible.
TEST_P(WorkerTest, ADeadLetterTheBrokerRefusesIsKeptAndReported) {
  create(own("orders"));
  {
    client::admin a(base());
    client::topic_config c;
    c.partitions = 1;
    c.max_message_bytes = 4096;
    ASSERT_TRUE(a.create_topic(own("orders.dlq"), c));
  }
  produce(own("orders"), {{"big", std::string(6000, 'x'), ""}, {"small", "ok", ""}});
  runtime::worker w(worker_options(own("g")));
  int ok = 0;
  auto s = sub({own("orders")}, [&](const message& m) -> result<void> {
    if (m.key() == "big") return runtime::permanent(std::errc::invalid_argument, "rejected");
    ++ok;
    return success();
  });
  ASSERT_TRUE(w.subscribe(std::move(s)));
  ASSERT_TRUE(step_until(w, [&] { return ok == 1 && w.stats().route_failures >= 1; }));
  EXPECT_NE(w.stats().last_route_error.find(own("orders.dlq")), std::string::npos)
      << w.stats().last_route_error;
  clock_.advance(1s);
  ASSERT_TRUE(step_until(w, [&] { return w.stats().route_failures >= 2; })) << "tried again";
  step_for(w, 300ms);
  EXPECT_EQ(committed(own("g"), own("orders")).value_or(0), 0)
      << "the refused record holds the offset";
  EXPECT_EQ(w.stats().dead_lettered, 0u);
  EXPECT_TRUE(read_all(own("orders.dlq")).empty());
}

INSTANTIATE_TEST_SUITE_P(Transports, WorkerTest,
                         ::testing::Values(transport::native, transport::kafka), transport_name);

// A new user started a worker before its broker: it said nothing for 60 s
// and ignored stop() and SIGTERM meanwhile (issue 22). Now it says where it
// waits, retries with backoff, starts when the broker comes up, and stops
// promptly when asked.
class WorkerStart : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("ferry-worker-start");
    ASSERT_FALSE(dir_.empty());
    logger_ = ferry::log::get("runtime");
    level_ = logger_->level();
    logger_->set_level(spdlog::level::info);
    logger_->sinks().push_back(sink_);
  }
  void TearDown() override {
    auto& sinks = logger_->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    logger_->set_level(level_);
    broker_.stop();
    std::filesystem::remove_all(dir_);
  }
  // Waits (up to `limit`) for a log line containing `what`.
  bool logged(const std::string& what, std::chrono::milliseconds limit = 15s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    do {
      for (const auto& l : sink_->last_formatted())
        if (l.find(what) != std::string::npos) return true;
      std::this_thread::sleep_for(20ms);
    } while (std::chrono::steady_clock::now() < end);
    return false;
  }
  // Starts the broker with topic "orders" (one partition) holding one
  // record; returns its endpoint.
  std::string start_with_one_record() {
    broker_.start(dir_);
    const std::string endpoint = broker_.endpoint();
    client::admin a(base_client_options(endpoint));
    EXPECT_TRUE(a.create_topic("orders", {.partitions = 1}));
    client::producer_options po;
    static_cast<client::client_options&>(po) = base_client_options(endpoint);
    client::producer p(po);
    client::producer_record rec;
    rec.topic = "orders";
    rec.value = "first";
    EXPECT_TRUE(p.send(std::move(rec)).get());
    return endpoint;
  }
  // Subscribes `w` to "orders" with a handler that counts into handled_.
  result<void> subscribe_counting(runtime::worker& w) {
    runtime::subscription s;
    s.topics = {"orders"};
    s.handler = [this](const message&) -> result<void> {
      ++handled_;
      return success();
    };
    return w.subscribe(std::move(s));
  }
  // Until the counting handler ran once (at most 30 s).
  void wait_for_first_record() {
    const auto end = std::chrono::steady_clock::now() + 30s;
    while (handled_.load() == 0 && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(20ms);
  }
  runtime::worker_options options(const std::string& endpoint) {
    runtime::worker_options o;
    static_cast<client::client_options&>(o.consumer) = base_client_options(endpoint);
    o.consumer.group_id = "g";
    o.consumer.session_timeout = 2s;
    o.consumer.heartbeat_interval = 100ms;
    o.consumer.fetch_max_wait = 50ms;
    return o;
  }

  std::filesystem::path dir_;
  inproc_broker broker_;
  std::atomic<int> handled_{0};
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_ =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  std::shared_ptr<spdlog::logger> logger_;
  spdlog::level::level_enum level_ = spdlog::level::info;
};

TEST_F(WorkerStart, AWorkerWaitingForItsBrokerSaysWhereAndStopsPromptly) {
  // The broker's port, with nothing listening on it any more.
  broker_.start(dir_);
  const std::string endpoint = broker_.endpoint();
  broker_.stop();
  runtime::worker w(options(endpoint));
  runtime::subscription s;
  s.topics = {"orders"};
  s.handler = [](const message&) -> result<void> { return success(); };
  ASSERT_TRUE(w.subscribe(std::move(s)));
  result<void> r = success();
  std::thread t([&] { r = w.run(); });
  EXPECT_TRUE(logged("waiting for the broker at " + endpoint));
  std::this_thread::sleep_for(300ms);  // into a retry
  const auto t0 = std::chrono::steady_clock::now();
  w.stop();
  t.join();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(r) << w.last_error();
  // Each attempt waits at most 2 s, and the back-off sleeps watch the
  // flag: far below the 60 s the worker used to take.
  EXPECT_LT(took, 10s);
}

TEST_F(WorkerStart, AWorkerStartedBeforeItsBrokerStartsWhenTheBrokerComesUp) {
  const std::string endpoint = start_with_one_record();
  broker_.stop();
  runtime::worker w(options(endpoint));
  ASSERT_TRUE(subscribe_counting(w));
  result<void> r = success();
  std::thread t([&] { r = w.run(); });
  ASSERT_TRUE(logged("waiting for the broker at " + endpoint));
  broker_.restart();  // the same port and data
  wait_for_first_record();
  EXPECT_EQ(handled_.load(), 1);
  EXPECT_TRUE(logged("answers (after"));
  w.stop();
  t.join();
  EXPECT_TRUE(r) << w.last_error();
}

// The broker goes away under a running worker, then the worker is asked to
// stop: it used to take four minutes (each commit and the lookup after it
// waited api_timeout). Now commit_timeout bounds each commit and the
// whole close, and the error says what the failed final commit means.
TEST_F(WorkerStart, AWorkerWhoseBrokerWentAwayStopsWithinItsCommitTimeout) {
  const std::string endpoint = start_with_one_record();
  auto o = options(endpoint);
  o.commit_timeout = 2s;
  o.consumer.api_timeout = 60s;  // what the commits used to wait
  runtime::worker w(o);
  ASSERT_TRUE(subscribe_counting(w));
  result<void> r = success();
  std::thread t([&] { r = w.run(); });
  wait_for_first_record();
  ASSERT_EQ(handled_.load(), 1);
  std::this_thread::sleep_for(500ms);  // committed
  broker_.stop();
  std::this_thread::sleep_for(300ms);
  const auto t0 = std::chrono::steady_clock::now();
  w.stop();
  t.join();
  const auto took = std::chrono::steady_clock::now() - t0;
  // At most a periodic commit under way (2 s), the close budget (2 s) and
  // the leave (5 s at most): far below api_timeout.
  EXPECT_LT(took, 20s);
  ASSERT_FALSE(r) << "the final commit cannot have reached a stopped broker";
  EXPECT_NE(w.last_error().find("final commit"), std::string::npos) << w.last_error();
}

}  // namespace
}  // namespace ferry::testing
