// The janitor: a thread for file-system work the broker's core thread must
// not wait for - removing a deleted topic's directory (closing and
// unlinking thousands of segment files), unlinking segments retention
// dropped. The core thread only renames (durably) before it answers; what
// the janitor does is invisible to clients and safe to lose in a crash (the
// next start removes .deleted-* leftovers).
//
// Thread safety: post() from any thread. stop() drains what was posted and
// joins; the destructor calls it.
#pragma once

#include <condition_variable>
#include <deque>
#include <thread>

#include "ferry/core/mutex.h"
#include "ferry/core/unique_function.h"

namespace ferry::broker {

class janitor {
 public:
  janitor();
  ~janitor();
  janitor(const janitor&) = delete;
  janitor& operator=(const janitor&) = delete;

  /// Runs `task` on the janitor's thread, after the tasks posted before it.
  void post(unique_function<void()> task) FERRY_EXCLUDES(mu_);
  /// Runs what is posted, then stops the thread. Tasks posted afterwards run
  /// at once on the caller's thread.
  void stop() FERRY_EXCLUDES(mu_);
  /// Tasks not run yet (for tests and metrics).
  [[nodiscard]] std::size_t backlog() FERRY_EXCLUDES(mu_);

 private:
  void loop() FERRY_EXCLUDES(mu_);

  mutex mu_;
  std::condition_variable cv_;
  std::deque<unique_function<void()>> tasks_ FERRY_GUARDED_BY(mu_);
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
  bool stopped_ FERRY_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace ferry::broker
