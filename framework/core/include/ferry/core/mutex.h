// std::mutex with clang thread-safety annotations (core/thread_annotations.h):
// libstdc++'s own mutex is not annotated, so data guarded by it cannot be
// checked. Same cost as std::mutex.
#pragma once

#include <condition_variable>
#include <mutex>

#include "ferry/core/thread_annotations.h"

namespace ferry {

class FERRY_CAPABILITY("mutex") mutex {
 public:
  mutex() = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  void lock() FERRY_ACQUIRE() { m_.lock(); }
  void unlock() FERRY_RELEASE() { m_.unlock(); }
  bool try_lock() FERRY_TRY_ACQUIRE(true) { return m_.try_lock(); }
  /// Tells the analysis the caller holds the mutex: in a condition
  /// variable's predicate, which it sees as a function of its own.
  void assert_held() const noexcept FERRY_ASSERT_CAPABILITY(this) {}

 private:
  friend class unique_lock;
  std::mutex m_;
};

/// Holds a ferry::mutex for a scope; condition variables wait on it
/// (wait() releases and retakes the mutex, which the analysis cannot see
/// and need not: the caller holds it before and after).
class FERRY_SCOPED_CAPABILITY unique_lock {
 public:
  explicit unique_lock(mutex& m) FERRY_ACQUIRE(m) : lock_(m.m_) {}
  ~unique_lock() FERRY_RELEASE() = default;
  unique_lock(const unique_lock&) = delete;
  unique_lock& operator=(const unique_lock&) = delete;

  template <typename Pred>
  void wait(std::condition_variable& cv, Pred&& pred) {
    cv.wait(lock_, std::forward<Pred>(pred));
  }
  template <typename Clock, typename Duration, typename Pred>
  bool wait_until(std::condition_variable& cv,
                  const std::chrono::time_point<Clock, Duration>& deadline, Pred&& pred) {
    return cv.wait_until(lock_, deadline, std::forward<Pred>(pred));
  }
  template <typename Rep, typename Period, typename Pred>
  bool wait_for(std::condition_variable& cv, const std::chrono::duration<Rep, Period>& d,
                Pred&& pred) {
    return cv.wait_for(lock_, d, std::forward<Pred>(pred));
  }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace ferry
