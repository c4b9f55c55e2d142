// Where the Kafka tests find Kafka: the in-process broker's Kafka listener,
// or, with FERRY_TEST_KAFKA=HOST:PORT[,HOST:PORT...], a real cluster.
//
// On a cluster, topics and groups outlive a test and are shared by every
// run, so each test names its own with a suffix unique to the test
// (scoped_name()); tests that restart or kill the broker cannot run there
// and say so (GTEST_SKIP with the reason).
#pragma once

#include <fmt/format.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>

namespace ferry::testing {

/// kafka://HOST:PORT[,...] from FERRY_TEST_KAFKA (the scheme may be given
/// or not); empty when it is not set.
inline std::string external_kafka() {
  const char* e = ::getenv("FERRY_TEST_KAFKA");
  if (e == nullptr || *e == '\0') return {};
  const std::string_view v(e);
  return v.starts_with("kafka://") ? std::string(v) : "kafka://" + std::string(v);
}

/// Why a test that needs the in-process broker does not run against
/// FERRY_TEST_KAFKA.
inline constexpr const char* kNeedsOwnBroker =
    "restarts or kills the broker, which it cannot do to the cluster in FERRY_TEST_KAFKA";

/// A suffix no other test (of this run or an earlier one) has: the process,
/// the time and a counter.
inline std::string unique_suffix() {
  static std::atomic<int> n{0};
  static const auto start =
      static_cast<unsigned long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  return fmt::format("-{:x}{:x}-{}", start, static_cast<unsigned>(::getpid()), ++n);
}

/// `name` with `suffix` before its first '.': topics a worker derives from
/// another ("orders.dlq", "orders.retry.1m") keep their relation.
inline std::string scoped_name(std::string_view name, const std::string& suffix) {
  if (suffix.empty()) return std::string(name);
  const auto dot = name.find('.');
  if (dot == std::string_view::npos) return std::string(name) + suffix;
  return std::string(name.substr(0, dot)) + suffix + std::string(name.substr(dot));
}

}  // namespace ferry::testing
