// Parked fetches, indexed by what they wait for (as Redpanda's
// offset_monitor): a fetch that found less than its min_bytes waits on each
// partition it reads, keyed by the offset it asked for. When a round's
// commit moves a partition's high watermark, only the waiters of that
// partition below the new watermark are credited with the bytes appended,
// and only those that now have min_bytes are tried again. An idle consumer
// on another partition costs nothing; the cost of a commit grows with the
// waiters it satisfies, not with all of them.
//
// A waiter is also tried when its deadline passes (the long poll ends and
// it answers with what it has), when its partition is deleted (it answers
// with the error), and, for a group member's fetch, when its group starts
// rebalancing or loses a member (it answers with the group error).
//
// Thread safety: none; the broker's core thread owns the board.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "ferry/core/unique_function.h"

namespace ferry::broker {

class round;
struct partition;
struct fetch_waiter;

/// The waiters of one partition, by the offset each waits past.
class partition_waiters {
 public:
  using map = std::multimap<std::int64_t, fetch_waiter*>;
  using handle = map::iterator;

  handle add(std::int64_t offset, fetch_waiter* w) { return by_offset_.emplace(offset, w); }
  void remove(handle h) { by_offset_.erase(h); }
  [[nodiscard]] std::size_t size() const noexcept { return by_offset_.size(); }
  /// fn(waiter) for each waiter whose offset is below `high_watermark`.
  template <typename Fn>
  void each_below(std::int64_t high_watermark, Fn&& fn) {
    for (auto it = by_offset_.begin(); it != by_offset_.end() && it->first < high_watermark; ++it)
      fn(it->second);
  }
  template <typename Fn>
  void each(Fn&& fn) {
    for (auto& [_, w] : by_offset_) fn(w);
  }

 private:
  map by_offset_;
};

/// What one try of a fetch found.
struct fetch_attempt {
  bool answered = false;
  std::int64_t bytes = 0;  ///< found, when not answered (fewer than min_bytes)
  /// Where to wait when not answered: each partition read, at the offset asked for.
  std::vector<std::pair<partition*, std::int64_t>> positions;
};

/// A fetch waiting for data: the protocol's handler supplies attempt(),
/// which answers the client (and returns answered) or reports what it found.
struct fetch_waiter {
  using clock = std::chrono::steady_clock;
  clock::time_point deadline{};
  std::int64_t min_bytes = 1;
  bool member = false;  ///< a group member's fetch: tried again on group events
  /// Tries to answer; `final`: answer whatever there is (deadline, stop).
  unique_function<fetch_attempt(round&, bool final)> attempt;

  // Kept by the board while parked.
  std::uint64_t id = 0;
  std::int64_t bytes = 0;
  bool ready = false;
  std::vector<std::pair<partition*, partition_waiters::handle>> at;
  std::multimap<clock::time_point, fetch_waiter*>::iterator deadline_at;
};

/// Every parked fetch.
class waiter_board {
 public:
  using clock_tp = fetch_waiter::clock::time_point;

  waiter_board() = default;
  waiter_board(const waiter_board&) = delete;
  waiter_board& operator=(const waiter_board&) = delete;

  /// Parks `w` after an attempt that found `a.bytes` at `a.positions`.
  void park(std::unique_ptr<fetch_waiter> w, const fetch_attempt& a);
  /// A round's commit made `bytes` more data visible on `p`, up to
  /// `high_watermark`: credits p's waiters below it.
  void on_commit(partition& p, std::int64_t high_watermark, std::uint64_t bytes);
  /// A group rebalances or lost a member: every member fetch is tried again.
  void on_group_event();
  /// `p` is going away (its topic was deleted): its waiters are tried again
  /// and unregistered from it.
  void on_partition_removed(partition& p);
  /// Unparks the waiters that are ready or due at `now`, oldest first.
  [[nodiscard]] std::vector<std::unique_ptr<fetch_waiter>> take_due(clock_tp now);
  /// Unparks every waiter (the broker stops).
  [[nodiscard]] std::vector<std::unique_ptr<fetch_waiter>> take_all();
  /// The earliest deadline of a parked waiter.
  [[nodiscard]] std::optional<clock_tp> next_deadline() const;
  [[nodiscard]] bool has_ready() const noexcept { return !ready_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return parked_.size(); }

 private:
  void make_ready(fetch_waiter* w);
  std::unique_ptr<fetch_waiter> unpark(fetch_waiter* w);

  std::map<std::uint64_t, std::unique_ptr<fetch_waiter>> parked_;  // by id: parking order
  std::multimap<clock_tp, fetch_waiter*> deadlines_;
  std::set<fetch_waiter*> members_;
  std::vector<fetch_waiter*> ready_;
  std::uint64_t next_id_ = 0;
};

}  // namespace ferry::broker
