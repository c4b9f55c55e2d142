// Quotas per principal (docs/security.md#quotas): produce and fetch bytes
// per second, and bytes in flight, as Kafka's client quotas do.
//
//  - Rates are token buckets holding one second of the rate. A request
//    charged beyond its bucket is still served, but its client is told to
//    wait (Kafka's throttle_time_ms, the native Envelope's throttle_ms) and
//    made to (at most max_throttle at a time): the native front-end holds
//    the reply that long; the Kafka front-end answers at once and reads
//    nothing more from the connection for that long (as Kafka brokers
//    mute a channel). A throttled client is slowed, never dropped.
//  - Produce bytes are charged when the request arrives (its size); fetch
//    bytes when the answer is built (the records it carries). A wait is at
//    most max_throttle, but the debt is kept: a native request from a
//    principal that still owes more than half of max_throttle is refused
//    (TooManyRequests, retriable) without being served, so a client that
//    does not wait for its answers, or asks for more than max_throttle's
//    worth at once, still gets the rate over time.
//  - In-flight bytes are a principal's requests read and not yet answered,
//    and (native) its answers not yet sent. A native request that would go
//    over is refused at once, retriably (TooManyRequests); a Kafka
//    connection over it is not read for a moment. A principal always may
//    start one request with nothing in flight.
//
// The limits: [quotas] in ferryd's configuration for every principal, or
// a user's own in the users file (security.h). Without security every
// client is the one principal "anonymous".
//
// Thread safety: every member from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "ferry/broker/config.h"
#include "ferry/core/mutex.h"

namespace ferry::broker {

enum class quota_kind { produce, fetch };

class quota_book {
 public:
  using steady = std::chrono::steady_clock;
  /// `limits` gives a principal's limits (called on every charge: keep it
  /// cheap); the longest wait a charge asks for is `max_throttle`, well
  /// under clients' request timeouts (30 s by default): a held answer must
  /// not look lost.
  explicit quota_book(std::function<quota_limits(std::string_view)> limits,
                      std::chrono::milliseconds max_throttle = std::chrono::seconds(10));

  /// Charges `bytes` of `k` to `principal`; how long its client must wait
  /// (zero within its rate).
  [[nodiscard]] std::chrono::milliseconds charge(std::string_view principal, quota_kind k,
                                                 std::int64_t bytes,
                                                 steady::time_point now = steady::now())
      FERRY_EXCLUDES(mu_);
  /// How long `principal` still owes for `k` (zero when its bucket is not
  /// in debt), without charging anything. Uncapped.
  [[nodiscard]] std::chrono::milliseconds owes(std::string_view principal, quota_kind k,
                                               steady::time_point now = steady::now())
      FERRY_EXCLUDES(mu_);
  /// Counts `bytes` in flight for `principal` if that keeps it within its
  /// in-flight quota (or it has none); false, counting nothing, if not.
  /// A principal with nothing in flight may always start one request.
  [[nodiscard]] bool begin(std::string_view principal, std::int64_t bytes) FERRY_EXCLUDES(mu_);
  /// Counts more bytes in flight (an answer's), whatever the quota.
  void add(std::string_view principal, std::int64_t bytes) FERRY_EXCLUDES(mu_);
  /// Bytes that left (answered and sent, or dropped).
  void release(std::string_view principal, std::int64_t bytes) FERRY_EXCLUDES(mu_);
  /// Whether `principal` is at or over its in-flight quota now.
  [[nodiscard]] bool over(std::string_view principal) FERRY_EXCLUDES(mu_);
  [[nodiscard]] std::int64_t in_flight(std::string_view principal) FERRY_EXCLUDES(mu_);
  [[nodiscard]] std::chrono::milliseconds max_throttle() const noexcept { return max_throttle_; }

 private:
  struct bucket {
    double tokens = 0;
    steady::time_point at{};
    bool started = false;
  };
  struct account {
    bucket produce, fetch;
    std::int64_t in_flight = 0;
  };
  account& of(std::string_view principal) FERRY_REQUIRES(mu_);

  std::function<quota_limits(std::string_view)> limits_;
  std::chrono::milliseconds max_throttle_;
  mutex mu_;
  std::map<std::string, account, std::less<>> accounts_ FERRY_GUARDED_BY(mu_);
};

/// The principal quotas account to: "anonymous" for an empty one.
[[nodiscard]] inline std::string_view quota_principal(std::string_view p) noexcept {
  return p.empty() ? std::string_view("anonymous") : p;
}

/// In-flight bytes counted by begin()/add(), released when destroyed.
class quota_ticket {
 public:
  quota_ticket() = default;
  quota_ticket(quota_book* book, std::string principal, std::int64_t bytes)
      : book_(book), principal_(std::move(principal)), bytes_(bytes) {}
  quota_ticket(quota_ticket&& o) noexcept
      : book_(std::exchange(o.book_, nullptr)),
        principal_(std::move(o.principal_)),
        bytes_(std::exchange(o.bytes_, 0)) {}
  quota_ticket& operator=(quota_ticket&& o) noexcept {
    if (this != &o) {
      reset();
      book_ = std::exchange(o.book_, nullptr);
      principal_ = std::move(o.principal_);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  quota_ticket(const quota_ticket&) = delete;
  quota_ticket& operator=(const quota_ticket&) = delete;
  ~quota_ticket() { reset(); }

  /// More bytes on this ticket (an answer's).
  void add(std::int64_t bytes) {
    if (book_ == nullptr || bytes <= 0) return;
    book_->add(principal_, bytes);
    bytes_ += bytes;
  }
  void reset() {
    if (book_ != nullptr && bytes_ > 0) book_->release(principal_, bytes_);
    book_ = nullptr;
    bytes_ = 0;
  }

 private:
  quota_book* book_ = nullptr;
  std::string principal_;
  std::int64_t bytes_ = 0;
};

}  // namespace ferry::broker
