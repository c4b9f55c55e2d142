#include "pipeline.h"

#include <algorithm>
#include <filesystem>

#include "ferry/core/clock.h"
#include "ferry/core/logging.h"
#include "janitor.h"

namespace ferry::broker {

const thread_role core_thread("broker core thread");
const thread_role network_thread("broker network thread");

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("broker");
  return l;
}

}  // namespace

// --- round -----------------------------------------------------------------

void round::appended(partition& p, std::size_t bytes) {
  auto [it, fresh] = appended_.try_emplace(&p, 0);
  if (fresh) touched_.push_back(&p);
  it->second += bytes;
}

void round::needs_sync(partition& p) {
  appended(p, 0);
}

void round::after_sync(unique_function<void(round&)> reply) {
  after_sync_.push_back(std::move(reply));
}

std::error_code round::sync_error(const partition& p) const {
  auto it = sync_errors_.find(&p);
  return it == sync_errors_.end() ? std::error_code() : it->second;
}

void round::after_offsets_sync(unique_function<void(round&, std::error_code)> reply) {
  after_offsets_.push_back(std::move(reply));
}

void round::fetch(std::unique_ptr<fetch_waiter> w) {
  fetches_.push_back(std::move(w));
}

std::uint64_t round::await_join(unique_function<void(join_outcome)> answer) {
  const auto token = ++pipeline_.next_join_token_;
  pipeline_.joins_.emplace(token, std::move(answer));
  return token;
}

void round::sync_now() {
  if (!touched_.empty() || !after_sync_.empty()) finish_appends();
}

// Group commit: one sync per touched partition, then every reply that
// waited for it, then the parked fetches the new data satisfies.
void round::finish_appends() {
  for (auto* p : touched_) {
    auto& log = *p->log;
    if (core_.cfg.flush == storage::flush_mode::interval) {
      // Relaxed mode: acknowledged once written; the pipeline's
      // housekeeping syncs on a timer (sync_if_due).
      if (log.failed()) sync_errors_[p] = storage::errc::partition_failed;
      continue;
    }
    if (auto r = timed(core_.stats.fsync_partition, [&] { return log.sync(); }); !r)
      sync_errors_[p] = r.error();
  }
  auto replies = std::move(after_sync_);
  after_sync_.clear();
  for (auto& reply : replies) reply(*this);
  for (auto* p : touched_)
    if (!sync_errors_.count(p))
      core_.fetches.on_commit(*p, p->log->high_watermark().value(), appended_[p]);
  touched_.clear();
  appended_.clear();
  sync_errors_.clear();
}

void round::finish_offsets() {
  std::error_code sync;
  if (core_.offsets->has_pending()) {
    if (auto r = timed(core_.stats.fsync_offsets,
                       [&] {
                         core_thread.assert_held();  // called right here
                         return core_.offsets->sync();
                       });
        !r) {
      sync = r.error();
      logger()->error("group offsets: sync failed: {}", sync.message());
    }
  }
  auto replies = std::move(after_offsets_);
  after_offsets_.clear();
  for (auto& reply : replies) reply(*this, sync);
}

// --- pipeline ---------------------------------------------------------------

pipeline::pipeline(broker_core& c, metrics_snapshot& snapshot) : core_(c), snapshot_(snapshot) {}

void pipeline::submit(work w) {
  {
    unique_lock lock(mu_);
    queue_.push_back(std::move(w));
  }
  cv_.notify_one();
}

void pipeline::request_stop() {
  {
    unique_lock lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
}

void pipeline::wake() {
  {
    unique_lock lock(mu_);
    woken_ = true;
  }
  cv_.notify_one();
}

void pipeline::flush_frontends() {
  for (auto* f : frontends_) f->flush();
}

void pipeline::finish_join(std::uint64_t token, join_outcome o) {
  auto it = joins_.find(token);
  if (it == joins_.end()) return;
  auto answer = std::move(it->second);
  joins_.erase(it);
  answer(std::move(o));
}

void pipeline::try_fetch(round& r, std::unique_ptr<fetch_waiter> w, bool final) {
  auto a = w->attempt(r, final);
  if (!a.answered) core_.fetches.park(std::move(w), a);
}

steady::time_point pipeline::next_wake() {
  auto at = std::min(next_retention_, core_.groups->next_deadline());
  if (core_.cfg.flush == storage::flush_mode::interval)
    at = std::min(at, steady::now() + core_.cfg.flush_interval);
  if (auto d = core_.fetches.next_deadline()) at = std::min(at, *d);
  if (snapshot_.busy()) at = steady::now();  // a slice of the snapshot is due
  return at;
}

void pipeline::run() {
  thread_role_scope role(core_thread);
  snapshot_.set_running(true);
  next_retention_ = steady::now() + core_.cfg.retention_check_interval;
  for (;;) {
    std::deque<work> batch;
    bool stop_now = false;
    const auto wake_at = next_wake();
    {
      unique_lock lock(mu_);
      lock.wait_until(cv_, wake_at, [&] {
        mu_.assert_held();
        return !queue_.empty() || stopping_ || woken_;
      });
      batch.swap(queue_);
      stop_now = stopping_;
      woken_ = false;
    }
    run_round(std::move(batch), steady::now(), stop_now);
    if (stop_now) {
      unique_lock lock(mu_);
      if (queue_.empty() && core_.fetches.size() == 0 && joins_.empty()) break;
    }
  }
  finish();
  snapshot_.publish_now(core_, true);  // the final values, for a scrape while the process stops
  snapshot_.set_running(false);
}

void pipeline::run_round(std::deque<work> batch, steady::time_point start, bool stopping) {
  round r(*this, core_, start, stopping);
  for (auto& w : batch) w(r);
  if (!r.touched_.empty() || !r.after_sync_.empty()) {
    r.finish_appends();
    flush_frontends();  // produce acks go out before fetches are served
  }
  r.finish_offsets();
  const auto now = steady::now();
  core_.groups->tick(now);
  if (stopping)
    core_.groups->abort_all(wire::ErrorCode::ShuttingDown, "the broker is stopping; retry shortly");
  if (core_.groups->take_wakeup()) core_.fetches.on_group_event();
  if (now >= members_retry_at_ && core_.groups->take_dirty()) persist_groups(now);
  // Fetches parked in earlier rounds that can answer now, then this round's.
  auto due = stopping ? core_.fetches.take_all() : core_.fetches.take_due(now);
  for (auto& w : due) {
    const bool final = stopping || now >= w->deadline;
    try_fetch(r, std::move(w), final);
  }
  auto fresh = std::move(r.fetches_);
  r.fetches_.clear();
  for (auto& w : fresh) {
    const bool final = stopping || now >= w->deadline;
    try_fetch(r, std::move(w), final);
  }
  housekeeping(now);
  snapshot_.step(core_);
  flush_frontends();
}

void pipeline::finish() {
  (void)core_.offsets->sync();
  for (auto& [_, t] : core_.topics.all())
    for (auto& p : t.partitions)
      if (!p->log->failed()) (void)p->log->sync();
}

// Deletes the offsets of groups that have had no members (and no commits)
// for offsets_retention.
void pipeline::expire_offsets(steady::time_point now) {
  const auto& cfg = core_.cfg;
  const auto wall = system_clock::instance().wall_now().value();
  std::vector<offset_change> changes;
  for (const auto& [name, tps] : core_.offsets->groups()) {
    if (core_.groups->has_members(name)) continue;
    std::int64_t last_commit = 0;
    for (const auto& [_, c] : tps) last_commit = std::max(last_commit, c.commit_ms);
    const auto emptied = core_.groups->emptied_at(name).value_or(core_.started_at);
    const auto empty_for = std::chrono::duration_cast<std::chrono::milliseconds>(now - emptied);
    if (empty_for < cfg.offsets_retention || wall - last_commit < cfg.offsets_retention.count())
      continue;
    offset_change c;
    c.what = offset_change::kind::delete_group;
    c.group = name;
    changes.push_back(std::move(c));
    logger()->info("group {}: offsets expired ({} ms without members or commits)", name,
                   cfg.offsets_retention.count());
  }
  if (changes.empty()) return;
  if (auto r = core_.offsets->append(changes); r) {
    if (auto s = timed(core_.stats.fsync_offsets,
                       [&] {
                         core_thread.assert_held();  // called right here
                         return core_.offsets->sync();
                       });
        !s)
      logger()->error("group offsets: sync failed: {}", s.error().message());
    else
      for (const auto& c : changes) (void)core_.groups->erase(c.group);
  }
}

// Between rounds: compaction, retention, expiry, interval syncs. Unlinking
// what retention dropped is the janitor's.
void pipeline::persist_groups(steady::time_point now) {
  const auto text = core_.groups->snapshot();
  const auto path = group_members_file(core_.cfg);
  auto r = storage::write_file_atomic(
      storage::posix_env(), path, std::as_bytes(std::span<const char>(text.data(), text.size())));
  if (!r) {
    core_.groups->mark_dirty();  // tried again in a second
    members_retry_at_ = now + std::chrono::seconds(1);
  }
  if (!r && now >= next_members_warning_) {
    // Soft state: a stale file costs members a rejoin after a restart.
    next_members_warning_ = now + std::chrono::minutes(1);
    logger()->warn("cannot write {}: {}; after a restart the groups' members join again",
                   path.string(), r.error().message());
  }
}

void pipeline::housekeeping(steady::time_point now) {
  core_.offsets->maybe_compact();
  if (now >= next_retention_) {
    next_retention_ = now + core_.cfg.retention_check_interval;
    expire_offsets(now);
    core_.offsets->expire_ledger();
    std::vector<std::filesystem::path> unlink;
    for (auto& [_, t] : core_.topics.all())
      for (auto& p : t.partitions) {
        auto& log = *p->log;
        if (log.failed()) continue;
        if (auto r = log.apply_retention(); !r)
          logger()->warn("partition {}: retention failed: {}", log.config().name,
                         r.error().message());
        auto files = log.take_deleted();
        unlink.insert(unlink.end(), files.begin(), files.end());
      }
    if (!unlink.empty())
      core_.janitor_.post([files = std::move(unlink)] {
        for (const auto& f : files) (void)storage::posix_env().remove_file(f);
      });
  }
  if (now >= next_producer_expiry_) {
    next_producer_expiry_ = now + std::chrono::minutes(1);
    const auto wall = system_clock::instance().wall_now().value();
    for (auto& [_, t] : core_.topics.all())
      for (auto& p : t.partitions) (void)p->producers.expire(wall);
  }
  if (core_.cfg.flush == storage::flush_mode::interval) {
    for (auto& [_, t] : core_.topics.all())
      for (auto& p : t.partitions)
        if (!p->log->failed()) {
          const auto start = steady::now();
          if (auto r = p->log->sync_if_due(); r && r.value())
            core_.stats.fsync_partition.observe(steady::now() - start);
        }
  }
}

}  // namespace ferry::broker
