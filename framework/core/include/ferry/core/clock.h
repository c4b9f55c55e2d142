// Time sources. Everything in Ferry that depends on time takes a clock&, so
// tests drive it with manual_clock and never sleep.
#pragma once

#include <atomic>
#include <chrono>

#include "ferry/core/types.h"

namespace ferry {

/// Thread safety: implementations must be safe to call from any thread.
class clock {
 public:
  virtual ~clock() = default;
  /// Wall-clock time, milliseconds since the Unix epoch (record timestamps,
  /// retention by time, segment age).
  [[nodiscard]] virtual timestamp_ms wall_now() const noexcept = 0;
  /// Monotonic time for timeouts and intervals.
  [[nodiscard]] virtual std::chrono::steady_clock::time_point steady_now() const noexcept = 0;
};

/// The real clocks of the machine.
class system_clock final : public clock {
 public:
  [[nodiscard]] timestamp_ms wall_now() const noexcept override;
  [[nodiscard]] std::chrono::steady_clock::time_point steady_now() const noexcept override;
  /// A process-wide instance.
  static system_clock& instance() noexcept;
};

/// A clock that moves only when told to. Wall and steady time advance together.
class manual_clock final : public clock {
 public:
  explicit manual_clock(timestamp_ms start = timestamp_ms(1'700'000'000'000)) noexcept
      : wall_ms_(start.value()) {}
  [[nodiscard]] timestamp_ms wall_now() const noexcept override {
    return timestamp_ms(wall_ms_.load());
  }
  [[nodiscard]] std::chrono::steady_clock::time_point steady_now() const noexcept override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(steady_ns_.load()));
  }
  void advance(std::chrono::milliseconds d) noexcept {
    wall_ms_ += d.count();
    steady_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  }

 private:
  std::atomic<std::int64_t> wall_ms_;
  std::atomic<std::int64_t> steady_ns_{0};
};

}  // namespace ferry
