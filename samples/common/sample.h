// What the order samples share, kept here so that each sample reads as the
// code you would write: command-line flags, stopping on SIGINT/SIGTERM, the
// topic and subject names, and the stats file order_demo reads at the end.
#pragma once

#include <signal.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "ferry/runtime/worker.h"

namespace sample {

// The pipeline's topics. Each worker has its own dead-letter topic, so a
// redrive (`ferry dlq redrive`) goes back to one service.
inline constexpr std::string_view kOrders = "orders";
inline constexpr std::string_view kPayments = "payments";
inline constexpr std::string_view kShipments = "shipments";
// Schema registry subjects: <topic>-value, the default a topic's produce-time
// validation uses (`ferry schema enforce orders`).
inline constexpr std::string_view kOrdersSubject = "orders-value";
inline constexpr std::string_view kPaymentsSubject = "payments-value";
inline constexpr std::string_view kShipmentsSubject = "shipments-value";

/// "--name value" and "--name" flags; anything else is an error.
class flags {
 public:
  flags(int argc, char** argv, std::string_view usage) : usage_(usage) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "-h" || a == "--help") fail("");
      if (a.rfind("--", 0) != 0) fail("unexpected argument " + a);
      if (i + 1 < argc && std::string_view(argv[i + 1]).rfind("--", 0) != 0)
        values_[a] = argv[++i];
      else
        values_[a] = "";
    }
  }
  [[nodiscard]] std::string text(const std::string& name, std::string fallback = {}) {
    auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    std::string v = it->second;
    values_.erase(it);
    return v;
  }
  [[nodiscard]] long number(const std::string& name, long fallback) {
    auto v = text(name);
    if (v.empty()) return fallback;
    char* end = nullptr;
    long n = std::strtol(v.c_str(), &end, 10);
    if (*end != '\0' || n < 0) fail(name + " takes a non-negative number, not '" + v + "'");
    return n;
  }
  [[nodiscard]] bool set(const std::string& name) { return values_.erase(name) > 0; }
  /// The broker: --broker, else $FERRY_BROKER, else tcp://127.0.0.1:7400.
  [[nodiscard]] std::string broker() {
    const char* env = std::getenv("FERRY_BROKER");  // NOLINT(concurrency-mt-unsafe)
    return text("--broker", env ? env : "tcp://127.0.0.1:7400");
  }
  /// Call after reading every flag: refuses the ones nobody asked for.
  void done() {
    if (!values_.empty()) fail("unknown flag " + values_.begin()->first);
  }
  [[noreturn]] void fail(const std::string& why) const {
    if (!why.empty()) std::fprintf(stderr, "error: %s\n", why.c_str());
    std::fprintf(stderr, "usage: %.*s\n", static_cast<int>(usage_.size()), usage_.data());
    std::exit(why.empty() ? 0 : 2);
  }

 private:
  std::string_view usage_;
  std::map<std::string, std::string> values_;
};

/// SIGINT/SIGTERM call worker::stop() (which only sets a flag and wakes its
/// poll, so it is safe from a signal handler): run() then finishes the
/// records in hand, commits and leaves the group.
/// The returned guard forgets the worker when it goes out of scope (declare
/// it after the worker), so a late signal never reaches a destroyed one.
inline std::atomic<ferry::runtime::worker*> stop_target{nullptr};
struct stop_guard {
  ~stop_guard() { stop_target = nullptr; }
};
[[nodiscard]] inline stop_guard stop_on_signals(ferry::runtime::worker& w) {
  stop_target = &w;
  struct sigaction sa {};
  sa.sa_handler = [](int) {
    if (auto* t = stop_target.load()) t->stop();
  };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return {};
}

/// Writes `j` to `path` atomically (a temporary file renamed over it);
/// nothing when path is empty.
inline void write_json(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << '\n';
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    std::fprintf(stderr, "warning: cannot write %s: %s\n", path.c_str(), ec.message().c_str());
}

/// A worker's counters as JSON (what order_demo reports).
inline nlohmann::json to_json(const ferry::runtime::worker_stats& s) {
  return {{"succeeded", s.succeeded},           {"failed_attempts", s.failed_attempts},
          {"dead_lettered", s.dead_lettered},   {"duplicates_skipped", s.duplicates_skipped},
          {"tier_routed", s.tier_routed},       {"waiting", s.waiting},
          {"route_failures", s.route_failures}, {"attempts_histogram", s.attempts_histogram}};
}

/// Writes the worker's counters to `path` every 50 ms while the worker
/// runs and once more at the end, so that even a worker killed with
/// SIGKILL leaves its counters (as of its last snapshot) behind.
class stats_writer {
 public:
  stats_writer(const ferry::runtime::worker& w, std::string path) : w_(w), path_(std::move(path)) {
    if (path_.empty()) return;
    thread_ = std::thread([this] {
      while (!done_.load()) {
        write_json(path_, to_json(w_.stats()));
        for (int i = 0; i < 5 && !done_.load(); ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
  }
  ~stats_writer() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
    write_json(path_, to_json(w_.stats()));
  }
  stats_writer(const stats_writer&) = delete;
  stats_writer& operator=(const stats_writer&) = delete;

 private:
  const ferry::runtime::worker& w_;
  std::string path_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

/// The end of every worker's main(): SIGINT/SIGTERM stop it, its counters go
/// to `stats_file` while it runs, and run() returns once it has finished the
/// records in hand, committed and left its group. The exit status: 0, or 1
/// after an error the worker could not get past.
inline int run(ferry::runtime::worker& w, std::string_view banner, const std::string& stats_file) {
  auto stop = stop_on_signals(w);
  stats_writer stats(w, stats_file);
  std::fprintf(stderr, "%.*s\n", static_cast<int>(banner.size()), banner.data());
  if (auto r = w.run(); !r) {
    std::fprintf(stderr, "error: %s\n", w.last_error().c_str());
    return 1;
  }
  return 0;
}

/// A stable hash of an order id: the simulated services below decide from it,
/// so every run of the demo fails the same orders the same way.
inline std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace sample
