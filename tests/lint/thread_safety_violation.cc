// The negative control of lint.thread_safety: code that touches state
// guarded by a thread role from a function that does not run as that role
// must fail clang's analysis. If this compiles cleanly, the check proves
// nothing.
#include "ferry/core/mutex.h"
#include "ferry/core/thread_annotations.h"

namespace lint {

const ferry::thread_role owner("owner thread");

struct state {
  int partitions FERRY_GUARDED_BY(owner) = 0;
  ferry::mutex mu;
  int queued FERRY_GUARDED_BY(mu) = 0;
};

void owner_loop(state& s) {
  ferry::thread_role_scope role(owner);
  ++s.partitions;  // fine: runs as the owner
  ferry::unique_lock lock(s.mu);
  ++s.queued;  // fine: holds the mutex
}

void network_thread(state& s) {
  ++s.partitions;  // violation: not the owner
  ++s.queued;      // violation: the mutex is not held
}

}  // namespace lint
