// Load for crash tests against a ferryd process: producers (the real client)
// on threads that keep sending to one topic until stopped, recording every
// acknowledgement and failure. Producer t sends the values "p<t>-0",
// "p<t>-1", ... with the keys "k<n % keys>", and sleeps 1 ms every `pace`
// records.
//
// Thread safety: the producers' callbacks write the records under a mutex;
// read acked(), failed() and failures() once the producers are closed (after
// stop(), flush and close every producer).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ferry/client/producer.h"

namespace ferry::testing {

/// Producer options for load against `endpoint`: `request_timeout`, 20 ms
/// retry backoff, a 60 s delivery timeout, 2 ms linger and 2 KiB batches
/// (many small batches: several in flight at any moment).
inline client::producer_options load_producer_options(const std::string& endpoint,
                                                      std::chrono::milliseconds request_timeout) {
  client::producer_options o;
  o.broker = endpoint;
  o.request_timeout = request_timeout;
  o.retry_backoff = std::chrono::milliseconds(20);
  o.delivery_timeout = std::chrono::seconds(60);
  o.linger = std::chrono::milliseconds(2);
  o.batch_bytes = 2048;
  return o;
}

class producer_load {
 public:
  struct shape {
    std::string topic;
    int keys = 1;  // distinct keys
    int pace = 1;  // sleep 1 ms every `pace` records
  };

  /// One producer (and thread) per element of `options`, sending at once.
  producer_load(const std::vector<client::producer_options>& options, shape s)
      : shape_(std::move(s)) {
    // Every producer first: a thread reads producers_, which must not grow
    // (and move) under it.
    for (const auto& o : options) producers_.push_back(std::make_unique<client::producer>(o));
    for (std::size_t t = 0; t < options.size(); ++t)
      threads_.emplace_back([this, t] { send_until_stopped(t); });
  }
  /// Stops the threads (also when a test returns early).
  ~producer_load() { stop(); }
  producer_load(const producer_load&) = delete;
  producer_load& operator=(const producer_load&) = delete;

  /// Stops sending and joins the threads; the producers stay open.
  void stop() {
    stop_ = true;
    for (auto& th : threads_)
      if (th.joinable()) th.join();
  }

  [[nodiscard]] const std::vector<std::unique_ptr<client::producer>>& producers() const {
    return producers_;
  }
  /// value -> (partition, offset) of every acknowledged record.
  [[nodiscard]] const std::map<std::string, std::pair<int, std::int64_t>>& acked() const {
    return acked_;
  }
  /// Callbacks that reported an error.
  [[nodiscard]] std::int64_t failed() const { return failed_; }
  /// Error message -> count, of callbacks and of refused send() calls
  /// ("send(): <message>").
  [[nodiscard]] const std::map<std::string, std::int64_t>& failures() const { return failures_; }

 private:
  void send_until_stopped(std::size_t t) {
    auto& p = *producers_[t];
    for (std::int64_t n = 0; !stop_; ++n) {
      client::producer_record r;
      r.topic = shape_.topic;
      r.key = "k" + std::to_string(n % shape_.keys);
      r.value = "p" + std::to_string(t) + "-" + std::to_string(n);
      auto v = *r.value;
      auto s = p.send(std::move(r), [this, v](const result<client::record_metadata>& m) {
        std::lock_guard lock(mu_);
        if (!m) {
          ++failed_;
          ++failures_[m.error().message()];
          return;
        }
        acked_[v] = {m.value().partition.value(), m.value().offset.value()};
      });
      if (!s) {
        std::lock_guard lock(mu_);
        ++failures_["send(): " + s.error().message()];
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      if (n % shape_.pace == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  const shape shape_;
  std::mutex mu_;
  std::map<std::string, std::pair<int, std::int64_t>> acked_;
  std::int64_t failed_ = 0;
  std::map<std::string, std::int64_t> failures_;
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<client::producer>> producers_;
  std::vector<std::thread> threads_;
};

}  // namespace ferry::testing
