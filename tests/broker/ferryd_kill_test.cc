// kill -9 of ferryd while several producers run (RELIABILITY.md #1), then a
// restart on the same data directory: every acknowledged record is read back
// at its offset with its value, no offset holds two values, no record is
// stored twice. The last cycle stops ferryd with SIGTERM instead and expects
// a clean exit.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "ferryd_process.h"
#include "wire_client.h"

namespace ferry::broker {
namespace {

using ferry::testing::wire_client;
using wire::ErrorCode;

using ferry::testing::ferryd_process;

ferryd_process start_ferryd(const std::filesystem::path& dir) {
  return ferry::testing::start_ferryd(FERRY_FERRYD, dir);
}

struct acked_batch {
  int partition;
  std::int64_t base;
  std::vector<std::string> values;
};

TEST(FerrydKill, AcknowledgedRecordsSurviveKillDashNine) {
  char tmpl[] = "/tmp/ferry-ferryd-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::filesystem::path dir = tmpl;
  constexpr int kPartitions = 3, kProducers = 3, kCycles = 4;
  std::vector<acked_batch> acked;
  std::mutex mu;
  std::mt19937 rng(11);
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    auto d = start_ferryd(dir);
    ASSERT_FALSE(d.endpoint.empty());
    if (cycle == 0) {
      wire_client admin(d.endpoint);
      ASSERT_EQ(admin.create_topic("orders", kPartitions), ErrorCode::None);
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> producers;
    for (int t = 0; t < kProducers; ++t) {
      producers.emplace_back([&, t] {
        wire_client c(d.endpoint);
        for (int seq = 0; !stop; ++seq) {
          int partition = (t + seq) % kPartitions;
          format::batch_builder b;
          std::vector<std::string> values;
          for (int r = 0; r < 5; ++r) {
            values.push_back("c" + std::to_string(cycle) + "-p" + std::to_string(t) + "-" +
                             std::to_string(seq) + "-" + std::to_string(r));
            b.add(system_clock::instance().wall_now(), "k", values.back());
          }
          flatbuffers::FlatBufferBuilder fbb;
          std::vector<flatbuffers::Offset<wire::ProduceEntry>> v{
              wire::CreateProduceEntry(fbb, fbb.CreateString("orders"), partition, 1)};
          auto r = c.call(fbb, wire::Body::ProduceRequest,
                          wire::CreateProduceRequest(fbb, fbb.CreateVector(v)).Union(),
                          {b.finish()}, std::chrono::milliseconds(1500));
          if (!r || !r->env) return;  // broker gone: this send was never confirmed
          // While stopping, the broker answers ShuttingDown: not confirmed either.
          if (r->env->body_type() != wire::Body::ProduceResponse) return;
          auto* res = r->env->body_as_ProduceResponse()->results()->Get(0);
          if (res->error() != ErrorCode::None) return;
          std::lock_guard lock(mu);
          acked.push_back({partition, res->base_offset(), values});
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 300));
    const bool graceful = cycle == kCycles - 1;
    ::kill(d.pid, graceful ? SIGTERM : SIGKILL);
    int status = 0;
    ::waitpid(d.pid, &status, 0);
    stop = true;
    for (auto& p : producers) p.join();
    if (graceful) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "SIGTERM must stop ferryd cleanly";
    } else {
      EXPECT_TRUE(WIFSIGNALED(status));
    }
  }

  // Read everything back from a fresh ferryd.
  auto d = start_ferryd(dir);
  wire_client c(d.endpoint);
  std::map<std::pair<int, std::int64_t>, std::string> stored;
  std::set<std::string> seen;
  std::int64_t duplicates = 0;
  for (int p = 0; p < kPartitions; ++p) {
    std::int64_t at = 0;
    for (;;) {
      auto f = c.fetch("orders", p, at);
      ASSERT_EQ(f.error, ErrorCode::None);
      if (f.data.empty()) break;
      std::span<const std::byte> data(f.data);
      while (!data.empty()) {
        auto h = format::batch_header::decode(data.data());
        format::for_each_record(
            data.first(static_cast<std::size_t>(h.size())), [&](const format::record_view& r) {
              if (r.off.value() < at) return;
              auto [it, inserted] =
                  stored.emplace(std::pair{p, r.off.value()}, std::string(r.value_str()));
              EXPECT_TRUE(inserted) << "offset served twice";
              if (!seen.insert(std::string(r.value_str())).second) ++duplicates;
            });
        at = h.next_offset().value();
        data = data.subspan(static_cast<std::size_t>(h.size()));
      }
    }
  }
  std::int64_t acked_records = 0, lost = 0;
  for (const auto& b : acked) {
    for (std::size_t i = 0; i < b.values.size(); ++i) {
      ++acked_records;
      auto it = stored.find({b.partition, b.base + static_cast<std::int64_t>(i)});
      if (it == stored.end() || it->second != b.values[i]) ++lost;
    }
  }
  ::kill(d.pid, SIGTERM);
  int status = 0;
  ::waitpid(d.pid, &status, 0);
  std::filesystem::remove_all(dir);
  std::printf("ferryd kill -9: cycles=%d acked=%lld stored=%zu lost=%lld duplicates=%lld\n",
              kCycles, static_cast<long long>(acked_records), stored.size(),
              static_cast<long long>(lost), static_cast<long long>(duplicates));
  EXPECT_GT(acked_records, 0) << "nothing was acknowledged: the test proved nothing";
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(duplicates, 0);
}

}  // namespace
}  // namespace ferry::broker
