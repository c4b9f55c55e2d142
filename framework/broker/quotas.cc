#include "quotas.h"

#include <algorithm>
#include <cmath>

namespace ferry::broker {

quota_book::quota_book(std::function<quota_limits(std::string_view)> limits,
                       std::chrono::milliseconds max_throttle)
    : limits_(std::move(limits)), max_throttle_(max_throttle) {}

quota_book::account& quota_book::of(std::string_view principal) {
  auto it = accounts_.find(principal);
  if (it == accounts_.end()) it = accounts_.emplace(std::string(principal), account{}).first;
  return it->second;
}

std::chrono::milliseconds quota_book::charge(std::string_view principal, quota_kind k,
                                             std::int64_t bytes, steady::time_point now) {
  const auto l = limits_(principal);
  const auto rate =
      k == quota_kind::produce ? l.produce_bytes_per_second : l.fetch_bytes_per_second;
  if (rate <= 0 || bytes <= 0) return std::chrono::milliseconds(0);
  unique_lock lock(mu_);
  auto& b = k == quota_kind::produce ? of(principal).produce : of(principal).fetch;
  const auto burst = static_cast<double>(rate);  // one second of the rate
  if (!b.started) {
    b.tokens = burst;
    b.started = true;
  } else {
    const double elapsed = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min(burst, b.tokens + std::max(0.0, elapsed) * static_cast<double>(rate));
  }
  b.at = now;
  b.tokens -= static_cast<double>(bytes);
  if (b.tokens >= 0) return std::chrono::milliseconds(0);
  // The debt, paid back at the rate: how long until the bucket is even.
  // One wait is at most max_throttle; the debt stays, so the next request
  // waits for the rest (and owes() refuses new ones meanwhile).
  const double wait_ms = std::ceil(-b.tokens * 1000.0 / static_cast<double>(rate));
  const double cap = static_cast<double>(max_throttle_.count());
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(wait_ms, cap)));
}

std::chrono::milliseconds quota_book::owes(std::string_view principal, quota_kind k,
                                           steady::time_point now) {
  const auto l = limits_(principal);
  const auto rate =
      k == quota_kind::produce ? l.produce_bytes_per_second : l.fetch_bytes_per_second;
  if (rate <= 0) return std::chrono::milliseconds(0);
  unique_lock lock(mu_);
  auto it = accounts_.find(principal);
  if (it == accounts_.end()) return std::chrono::milliseconds(0);
  const auto& b = k == quota_kind::produce ? it->second.produce : it->second.fetch;
  if (!b.started) return std::chrono::milliseconds(0);
  const double elapsed = std::max(0.0, std::chrono::duration<double>(now - b.at).count());
  const double tokens = b.tokens + elapsed * static_cast<double>(rate);
  if (tokens >= 0) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(std::ceil(-tokens * 1000.0 / static_cast<double>(rate))));
}

bool quota_book::begin(std::string_view principal, std::int64_t bytes) {
  const auto limit = limits_(principal).in_flight_bytes;
  unique_lock lock(mu_);
  auto& a = of(principal);
  if (limit > 0 && a.in_flight > 0 && a.in_flight + bytes > limit) return false;
  a.in_flight += bytes;
  return true;
}

void quota_book::add(std::string_view principal, std::int64_t bytes) {
  unique_lock lock(mu_);
  of(principal).in_flight += bytes;
}

void quota_book::release(std::string_view principal, std::int64_t bytes) {
  unique_lock lock(mu_);
  auto& a = of(principal);
  a.in_flight = std::max<std::int64_t>(0, a.in_flight - bytes);
}

bool quota_book::over(std::string_view principal) {
  const auto limit = limits_(principal).in_flight_bytes;
  if (limit <= 0) return false;
  unique_lock lock(mu_);
  return of(principal).in_flight >= limit;
}

std::int64_t quota_book::in_flight(std::string_view principal) {
  unique_lock lock(mu_);
  return of(principal).in_flight;
}

}  // namespace ferry::broker
