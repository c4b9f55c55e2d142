// kill -9 of ferryd while idempotent producers (the real client) keep
// sending (RELIABILITY.md #1 and #9): ferryd restarts on the same data and
// endpoint a few times; the producers live through it and resend what was
// in flight. At the end every acknowledged record is read back at its
// offset, and no record is stored twice. Prints cycles, acked, lost,
// duplicates (stored twice) and how many retries the broker recognised as
// already stored (the cases idempotence was for).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "ferry/client/producer.h"
#include "ferry/core/logging.h"
#include "ferryd_process.h"
#include "producer_load.h"
#include "wire_client.h"

namespace ferry::broker {
namespace {

using namespace std::chrono_literals;
using ferry::testing::wire_client;

// ferryd restarts on the first start's endpoint, so the producers' sockets
// reconnect to the restarted broker by themselves.
ferry::testing::ferryd_process start_ferryd(const std::filesystem::path& dir,
                                            const std::string& listen) {
  return ferry::testing::start_ferryd(FERRY_FERRYD, dir, listen);
}

TEST(FerrydIdempotentKill, NoAckedRecordLostAndNoneStoredTwice) {
  log::set_level("error");
  char tmpl[] = "/tmp/ferry-idemkill-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir = tmpl;
  constexpr int kPartitions = 3, kProducers = 3, kKills = 5;
  auto d = start_ferryd(dir, "tcp://127.0.0.1:*");
  ASSERT_FALSE(d.endpoint.empty());
  const std::string endpoint = d.endpoint;
  {
    wire_client admin(endpoint);
    ASSERT_EQ(admin.create_topic("orders", kPartitions), wire::ErrorCode::None);
  }

  std::vector<client::producer_options> options;
  for (int t = 0; t < kProducers; ++t) {
    options.push_back(ferry::testing::load_producer_options(endpoint, 1000ms));
    if (t == 0) options.back().producer_name = "kill-test-writer";  // a named one too
  }
  // Many small batches: many in flight at each kill; at most ~10,000 records/s each.
  ferry::testing::producer_load load(options, {.topic = "orders", .keys = 17, .pace = 10});

  std::mt19937 rng(7);
  for (int k = 0; k < kKills; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 500));
    ::kill(d.pid, SIGKILL);
    int status = 0;
    ::waitpid(d.pid, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status));
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 200));
    d = start_ferryd(dir, endpoint);
    ASSERT_FALSE(d.endpoint.empty()) << "ferryd did not restart on " << endpoint;
  }
  std::this_thread::sleep_for(300ms);
  load.stop();
  std::uint64_t recognised = 0;
  for (const auto& p : load.producers()) {
    EXPECT_TRUE(p->flush(60s)) << "records still undelivered 60 s after the last restart";
    recognised += p->stats().duplicates;
    (void)p->close();
  }

  // Read everything back.
  wire_client c(endpoint);
  std::map<std::pair<int, std::int64_t>, std::string> stored;
  std::map<std::string, int> copies;
  for (int part = 0; part < kPartitions; ++part) {
    std::int64_t at = 0;
    for (;;) {
      auto f = c.fetch("orders", part, at);
      ASSERT_EQ(f.error, wire::ErrorCode::None);
      if (f.data.empty()) break;
      std::span<const std::byte> data(f.data);
      while (!data.empty()) {
        auto h = format::batch_header::decode(data.data());
        format::for_each_record(
            data.first(static_cast<std::size_t>(h.size())), [&](const format::record_view& r) {
              if (r.off.value() < at) return;
              EXPECT_TRUE(
                  stored.emplace(std::pair{part, r.off.value()}, std::string(r.value_str())).second)
                  << "offset served twice";
              ++copies[std::string(r.value_str())];
            });
        at = h.next_offset().value();
        data = data.subspan(static_cast<std::size_t>(h.size()));
      }
    }
  }
  const auto& acked = load.acked();
  std::int64_t lost = 0, duplicates = 0;
  for (const auto& [v, where] : acked) {
    auto it = stored.find({where.first, where.second});
    if (it == stored.end() || it->second != v) ++lost;
  }
  for (const auto& [v, n] : copies)
    if (n > 1) duplicates += n - 1;
  ::kill(d.pid, SIGTERM);
  int status = 0;
  ::waitpid(d.pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::filesystem::remove_all(dir);
  std::printf(
      "ferryd kill -9 with idempotent producers: cycles=%d acked=%zu stored=%zu lost=%lld "
      "duplicates=%lld failed=%lld retries_recognised_as_stored=%llu\n",
      kKills, acked.size(), stored.size(), static_cast<long long>(lost),
      static_cast<long long>(duplicates), static_cast<long long>(load.failed()),
      static_cast<unsigned long long>(recognised));
  for (const auto& [why, n] : load.failures())
    std::printf("  failures: %lld x %s\n", static_cast<long long>(n), why.c_str());
  EXPECT_GT(acked.size(), 1000u) << "too little was acknowledged: the test proved little";
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(duplicates, 0);
}

}  // namespace
}  // namespace ferry::broker
