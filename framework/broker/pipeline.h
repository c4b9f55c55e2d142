// The request pipeline: how the broker's core thread runs requests.
//
// Front-ends (the ZeroMQ adapter, and later Kafka's) decode requests on
// their own threads and submit() each as a piece of work: a closure that
// runs a handler with the round it is in. The core thread takes everything
// queued at once and runs it as one round:
//
//   1. each work item in arrival order: handlers append produce batches
//      (admission.h), stage commits in the offsets log (commits.h), answer
//      what needs no disk at once, and register what waits;
//   2. appends: one sync per touched partition - a single fdatasync shared
//      by every batch of every client in the round (group commit) - then the
//      produce replies (after_sync); front-ends may send them now;
//   3. commits: one sync of the offsets log, then their replies;
//   4. groups: session timeouts and rebalance deadlines (tick);
//   5. fetches: parked ones that a commit satisfied, whose deadline passed
//      or whose group moved, then the round's new ones; those that cannot
//      answer yet are parked (fetch_waiters.h);
//   6. housekeeping between rounds: retention, expiry, compaction, interval
//      syncs (file removal goes to the janitor), a slice of a metrics
//      snapshot.
// A produce is answered only after the fdatasync covering it returned; a
// commit only after the offsets log's.
//
// An admin change that alters what a produce is checked against (create or
// delete a topic, set its schema rule) calls sync_now() first, so batches
// queued before it are answered under the old rule.
//
// Thread safety: submit(), request_stop() and wake() from any thread; run()
// is the core thread; run_round() is for tests and simulations, which drive
// rounds themselves on one thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <system_error>
#include <vector>

#include "core.h"
#include "ferry/core/mutex.h"
#include "ferry/core/unique_function.h"
#include "metrics_snapshot.h"

namespace ferry::broker {

class pipeline;

/// A front-end, told when the replies it was given may leave.
class frontend_hook {
 public:
  virtual ~frontend_hook() = default;
  /// Core thread: replies queued since the last flush may be sent now.
  virtual void flush() = 0;
};

/// One round of the pipeline, as handlers see it.
class round {
 public:
  round(pipeline& p, broker_core& c, steady::time_point now, bool stopping)
      : pipeline_(p), core_(c), now_(now), stopping_(stopping) {}
  round(const round&) = delete;
  round& operator=(const round&) = delete;

  [[nodiscard]] broker_core& core() const noexcept { return core_; }
  /// When the round started (every request in it is judged at this time).
  [[nodiscard]] steady::time_point now() const noexcept { return now_; }
  /// The broker is stopping: long polls answer at once, joins are refused.
  [[nodiscard]] bool stopping() const noexcept { return stopping_; }

  // --- appends (group commit) ----------------------------------------------
  /// `bytes` were appended to `p`: it is synced before after_sync replies run.
  void appended(partition& p, std::size_t bytes);
  /// `p` must be synced before a reply that depends on it (a duplicate's
  /// original may not be durable yet).
  void needs_sync(partition& p);
  /// Runs `reply` after this round's syncs (sync_error() tells how they went).
  void after_sync(unique_function<void(round&)> reply);
  /// The error syncing `p` this round, if any (valid inside after_sync).
  [[nodiscard]] std::error_code sync_error(const partition& p) const;
  /// Syncs and answers every append so far, now (an admin change follows).
  void sync_now() FERRY_REQUIRES(core_thread);

  // --- commits ---------------------------------------------------------------
  /// Runs `reply` once the offsets log is synced (with its error, if any).
  void after_offsets_sync(unique_function<void(round&, std::error_code)> reply);

  // --- fetches and joins -------------------------------------------------------
  /// Tries `w` after this round's syncs; parks it if it cannot answer.
  void fetch(std::unique_ptr<fetch_waiter> w);
  /// A token for group_coordinator::join(); `answer` runs when it completes.
  [[nodiscard]] std::uint64_t await_join(unique_function<void(join_outcome)> answer)
      FERRY_REQUIRES(core_thread);

 private:
  friend class pipeline;
  void finish_appends() FERRY_REQUIRES(core_thread);
  void finish_offsets() FERRY_REQUIRES(core_thread);

  pipeline& pipeline_;
  broker_core& core_;
  steady::time_point now_;
  bool stopping_;
  std::vector<partition*> touched_;               // in order of first append
  std::map<partition*, std::uint64_t> appended_;  // bytes per touched partition
  std::map<const partition*, std::error_code> sync_errors_;
  std::vector<unique_function<void(round&)>> after_sync_;
  std::vector<unique_function<void(round&, std::error_code)>> after_offsets_;
  std::vector<std::unique_ptr<fetch_waiter>> fetches_;
};

using work = unique_function<void(round&)>;

class pipeline {
 public:
  explicit pipeline(broker_core& c, metrics_snapshot& snapshot);
  pipeline(const pipeline&) = delete;
  pipeline& operator=(const pipeline&) = delete;

  /// Before run(): a front-end to flush after each phase that answers.
  void add_frontend(frontend_hook* f) { frontends_.push_back(f); }

  /// Queues `w` for the next round. Any thread.
  void submit(work w) FERRY_EXCLUDES(mu_);
  /// Makes run() finish what is queued and parked (long polls answer with
  /// what they have, joins are refused), sync everything, and return.
  void request_stop() FERRY_EXCLUDES(mu_);
  /// Wakes the loop (a metrics scrape wants a snapshot). Any thread.
  void wake() FERRY_EXCLUDES(mu_);

  /// The core thread's loop, until request_stop() and drained.
  void run() FERRY_EXCLUDES(mu_);
  /// One round with `batch` at `now` (run() calls it; so do tests and
  /// simulations that own the core thread's role).
  void run_round(std::deque<work> batch, steady::time_point now, bool stopping)
      FERRY_REQUIRES(core_thread);
  /// After the last round: syncs every log and the offsets.
  void finish() FERRY_REQUIRES(core_thread);

  /// group_coordinator's join_done: answers the join `token` stands for.
  void finish_join(std::uint64_t token, join_outcome o) FERRY_REQUIRES(core_thread);
  [[nodiscard]] std::size_t waiting_joins() const FERRY_REQUIRES(core_thread) {
    return joins_.size();
  }
  void flush_frontends() FERRY_REQUIRES(core_thread);

 private:
  friend class round;
  void try_fetch(round& r, std::unique_ptr<fetch_waiter> w, bool final) FERRY_REQUIRES(core_thread);
  void housekeeping(steady::time_point now) FERRY_REQUIRES(core_thread);
  /// Writes the groups' membership when it changed (groups_state.cc).
  void persist_groups(steady::time_point now) FERRY_REQUIRES(core_thread);
  void expire_offsets(steady::time_point now) FERRY_REQUIRES(core_thread);
  [[nodiscard]] steady::time_point next_wake() FERRY_REQUIRES(core_thread);

  broker_core& core_;
  metrics_snapshot& snapshot_;
  std::vector<frontend_hook*> frontends_;

  mutex mu_;
  std::condition_variable cv_;
  std::deque<work> queue_ FERRY_GUARDED_BY(mu_);
  bool stopping_ FERRY_GUARDED_BY(mu_) = false;
  bool woken_ FERRY_GUARDED_BY(mu_) = false;

  std::map<std::uint64_t, unique_function<void(join_outcome)>> joins_ FERRY_GUARDED_BY(core_thread);
  std::uint64_t next_join_token_ FERRY_GUARDED_BY(core_thread) = 0;
  steady::time_point next_retention_ FERRY_GUARDED_BY(core_thread){};
  steady::time_point next_producer_expiry_ FERRY_GUARDED_BY(core_thread){};
  steady::time_point next_members_warning_ FERRY_GUARDED_BY(core_thread){};
  steady::time_point members_retry_at_ FERRY_GUARDED_BY(core_thread){};
};

}  // namespace ferry::broker
