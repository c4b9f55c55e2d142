// Reads every record of a topic (all partitions, log start to the high
// watermark at the call) with an assign-mode consumer; expects the topic to
// exist and every record to arrive within 10 s.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"

namespace ferry::testing {

inline std::vector<client::consumer_record> read_topic(const client::client_options& options,
                                                       const std::string& topic) {
  using namespace std::chrono_literals;
  client::admin a(options);
  auto d = a.describe_topic(topic);
  EXPECT_TRUE(d) << topic;
  if (!d) return {};
  client::consumer_options co;
  static_cast<client::client_options&>(co) = options;
  co.fetch_max_wait = 20ms;
  client::consumer c(co);
  std::vector<client::topic_partition> tps;
  std::int64_t total = 0;
  for (const auto& p : d.value().partitions) {
    tps.push_back({topic, p.partition});
    total += p.high_watermark.value() - p.log_start.value();
  }
  EXPECT_TRUE(c.assign(tps));
  std::vector<client::consumer_record> out;
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (static_cast<std::int64_t>(out.size()) < total && std::chrono::steady_clock::now() < end) {
    auto r = c.poll(50ms);
    if (!r) break;
    for (auto& x : r.value()) out.push_back(std::move(x));
  }
  EXPECT_EQ(static_cast<std::int64_t>(out.size()), total) << topic;
  return out;
}

}  // namespace ferry::testing
