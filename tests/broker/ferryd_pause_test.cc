// ferryd paused (SIGSTOP) under load (RELIABILITY.md #8): two producers (the
// real client) keep sending keyed records to a 2-partition topic with a short
// request_timeout while ferryd is stopped for longer than that timeout and
// continued, a few times. Requests in flight at the pause get no reply in
// time and are resent, so when ferryd wakes up it finds the original and
// several copies of the same batch queued. The idempotent producer must get
// each batch stored once; every record whose callback reported success is
// read back (with a consumer) exactly once at its offset. Prints cycles,
// acked, lost, duplicates (stored more than once) and how many retries the
// broker recognised as already stored.
//
// The control runs the same with enable_idempotence = false and must store
// duplicates, or the first test proves nothing. It does so every time, by
// construction rather than by luck: the producers never stop sending, so
// during every pause each producer has one batch in flight per partition
// (the producer keeps at most one), and a pause of 1.2 s with
// request_timeout 300 ms and retry_backoff 20 ms sends that batch 4 times
// (1200 / 320); ferryd stores each copy when it continues. So every pause
// yields 2 producers x 2 partitions batches stored 4 times. Observed (debug
// + ASan, 2 loaded cores): 87-225 acked records stored 4 times, 261-675
// extra copies per run, never 0; the idempotent run reports exactly 16
// retries recognised as stored (4 pauses x 2 producers x 2 partitions).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"
#include "ferry/client/producer.h"
#include "ferry/core/logging.h"
#include "ferryd_process.h"
#include "producer_load.h"
#include "wire_client.h"

namespace ferry::broker {
namespace {

using namespace std::chrono_literals;
using ferry::testing::wire_client;
using steady = std::chrono::steady_clock;

constexpr int kPartitions = 2, kProducers = 2, kPauses = 4;
constexpr auto kRequestTimeout = 300ms;
constexpr auto kPause = 1200ms;  // 4x request_timeout: each pause resends a batch ~4 times

// Owns the ferryd child: whatever happens (a failed ASSERT included) it is
// continued and reaped, never left stopped behind the test.
struct ferryd_guard {
  pid_t pid = -1;
  ~ferryd_guard() {
    if (pid <= 0) return;
    ::kill(pid, SIGCONT);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  // SIGTERM, then the exit status (true: exited with 0).
  bool stop() {
    ::kill(pid, SIGCONT);
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
};

struct figures {
  std::size_t acked = 0;
  std::size_t stored = 0;
  std::int64_t lost = 0;                         // acked, but not read back at its offset
  std::int64_t duplicates = 0;                   // extra copies of a value in the log
  std::int64_t acked_twice = 0;                  // acked values stored more than once
  std::int64_t failed = 0;                       // callbacks that reported an error
  std::uint64_t recognised = 0;                  // retries the broker answered as duplicates
  std::uint64_t renewals = 0;                    // producer identity renewals
  std::map<std::string, std::int64_t> failures;  // error message -> count
};

void run(bool idempotent, figures& out) {
  log::set_level("error");
  char tmpl[] = "/tmp/ferry-pause-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir = tmpl;
  auto d = ferry::testing::start_ferryd(FERRY_FERRYD, dir);
  ferryd_guard guard{d.pid};
  ASSERT_FALSE(d.endpoint.empty());
  const std::string endpoint = d.endpoint;
  {
    wire_client admin(endpoint);
    ASSERT_EQ(admin.create_topic("orders", kPartitions), wire::ErrorCode::None);
  }

  std::vector<client::producer_options> options;
  for (int t = 0; t < kProducers; ++t) {
    // delivery_timeout 60 s is far beyond the pauses: nothing may fail.
    options.push_back(ferry::testing::load_producer_options(endpoint, kRequestTimeout));
    options.back().enable_idempotence = idempotent;
  }
  // Many small batches, several in flight at each pause; at most ~5,000 records/s each.
  ferry::testing::producer_load load(options, {.topic = "orders", .keys = 13, .pace = 5});

  std::mt19937 rng(8);
  for (int k = 0; k < kPauses; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 300));
    EXPECT_EQ(::kill(d.pid, SIGSTOP), 0);  // not ASSERT: the producer threads run
    std::this_thread::sleep_for(kPause);
    EXPECT_EQ(::kill(d.pid, SIGCONT), 0);
  }
  std::this_thread::sleep_for(300ms);
  load.stop();
  for (const auto& p : load.producers()) {
    EXPECT_TRUE(p->flush(60s)) << "records still undelivered 60 s after the last pause";
    auto s = p->stats();
    out.recognised += s.duplicates;
    out.renewals += s.identity_renewals;
    (void)p->close();
  }

  // Read everything back with a consumer: from the beginning to the log end
  // (stable now: every producer is closed).
  client::consumer_options co;
  co.broker = endpoint;
  co.fetch_max_wait = 100ms;
  client::consumer c(co);
  std::vector<client::topic_partition> tps;
  for (int part = 0; part < kPartitions; ++part) tps.push_back({"orders", partition_id(part)});
  ASSERT_TRUE(c.assign(tps));
  ASSERT_TRUE(c.seek_to_end());
  std::map<int, std::int64_t> end;
  for (const auto& tp : tps) {
    auto pos = c.position(tp);
    ASSERT_TRUE(pos) << pos.error().message();
    end[tp.partition.value()] = pos.value().value();
  }
  ASSERT_TRUE(c.seek_to_beginning());
  std::map<std::pair<int, std::int64_t>, std::string> stored;
  std::map<std::string, int> copies;
  const auto deadline = steady::now() + 60s;
  for (;;) {
    bool done = true;
    for (const auto& tp : tps) {
      auto pos = c.position(tp);
      ASSERT_TRUE(pos) << pos.error().message();
      if (pos.value().value() < end[tp.partition.value()]) done = false;
    }
    if (done) break;
    ASSERT_LT(steady::now(), deadline) << "reading back took over 60 s";
    auto records = c.poll(500ms);
    ASSERT_TRUE(records || client::is_retriable(records.error())) << records.error().message();
    if (!records) continue;
    for (const auto& r : records.value()) {
      ASSERT_TRUE(r.value);
      EXPECT_TRUE(stored.emplace(std::pair{r.partition.value(), r.offset.value()}, *r.value).second)
          << "offset " << r.partition.value() << "/" << r.offset.value() << " returned twice";
      ++copies[*r.value];
    }
  }
  (void)c.close();

  const auto& acked = load.acked();
  out.failed = load.failed();
  out.failures = load.failures();
  out.acked = acked.size();
  out.stored = stored.size();
  for (const auto& [v, where] : acked) {
    auto it = stored.find(where);
    if (it == stored.end() || it->second != v) ++out.lost;
    if (copies[v] > 1) ++out.acked_twice;
  }
  for (const auto& [v, n] : copies)
    if (n > 1) out.duplicates += n - 1;
  EXPECT_TRUE(guard.stop());
  std::filesystem::remove_all(dir);
}

void print(const char* what, const figures& f) {
  std::printf(
      "ferryd SIGSTOP/SIGCONT, %s: cycles=%d pause=%lldms request_timeout=%lldms acked=%zu "
      "stored=%zu lost=%lld duplicates=%lld acked_stored_twice=%lld failed=%lld "
      "retries_recognised_as_stored=%llu identity_renewals=%llu\n",
      what, kPauses, static_cast<long long>(kPause.count()),
      static_cast<long long>(kRequestTimeout.count()), f.acked, f.stored,
      static_cast<long long>(f.lost), static_cast<long long>(f.duplicates),
      static_cast<long long>(f.acked_twice), static_cast<long long>(f.failed),
      static_cast<unsigned long long>(f.recognised), static_cast<unsigned long long>(f.renewals));
  for (const auto& [why, n] : f.failures)
    std::printf("  failures: %lld x %s\n", static_cast<long long>(n), why.c_str());
}

TEST(FerrydPause, IdempotentProducerStoresEachBatchOnce) {
  figures f;
  run(/*idempotent=*/true, f);
  if (::testing::Test::HasFatalFailure()) return;
  print("idempotent producers", f);
  EXPECT_GT(f.acked, 1000u) << "too little was acknowledged: the test proved little";
  EXPECT_EQ(f.failed, 0) << "delivery_timeout is far beyond the pauses";
  EXPECT_EQ(f.lost, 0);
  EXPECT_EQ(f.duplicates, 0);
  EXPECT_GT(f.recognised, 0u) << "no retry reached the broker: the pauses caused no resends";
}

// The control: without idempotence the same pauses store batches twice.
TEST(FerrydPause, ControlWithoutIdempotenceStoresDuplicates) {
  figures f;
  run(/*idempotent=*/false, f);
  if (::testing::Test::HasFatalFailure()) return;
  print("control, idempotence off", f);
  EXPECT_GT(f.acked, 1000u) << "too little was acknowledged: the test proved little";
  EXPECT_EQ(f.failed, 0);
  EXPECT_EQ(f.lost, 0) << "at-least-once still loses nothing";
  EXPECT_GT(f.duplicates, 0) << "the pauses caused no duplicates: the idempotent test proves "
                                "nothing with these settings";
}

}  // namespace
}  // namespace ferry::broker
