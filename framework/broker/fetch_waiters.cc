#include "fetch_waiters.h"

#include <algorithm>

#include "topic_table.h"

namespace ferry::broker {

void waiter_board::park(std::unique_ptr<fetch_waiter> w, const fetch_attempt& a) {
  auto* raw = w.get();
  raw->id = ++next_id_;
  raw->bytes = a.bytes;
  raw->ready = false;
  raw->at.clear();
  raw->at.reserve(a.positions.size());
  for (const auto& [p, offset] : a.positions) raw->at.emplace_back(p, p->waiters.add(offset, raw));
  raw->deadline_at = deadlines_.emplace(raw->deadline, raw);
  if (raw->member) members_.insert(raw);
  parked_.emplace(raw->id, std::move(w));
}

void waiter_board::make_ready(fetch_waiter* w) {
  if (w->ready) return;
  w->ready = true;
  ready_.push_back(w);
}

void waiter_board::on_commit(partition& p, std::int64_t high_watermark, std::uint64_t bytes) {
  p.waiters.each_below(high_watermark, [&](fetch_waiter* w) {
    w->bytes += static_cast<std::int64_t>(bytes);
    if (w->bytes >= w->min_bytes) make_ready(w);
  });
}

void waiter_board::on_group_event() {
  for (auto* w : members_) make_ready(w);
}

void waiter_board::on_partition_removed(partition& p) {
  p.waiters.each([&](fetch_waiter* w) {
    // Forget the registration now: the partition is going away.
    auto it =
        std::find_if(w->at.begin(), w->at.end(), [&](const auto& e) { return e.first == &p; });
    while (it != w->at.end()) {
      it = w->at.erase(it);
      it = std::find_if(it, w->at.end(), [&](const auto& e) { return e.first == &p; });
    }
    make_ready(w);
  });
}

std::unique_ptr<fetch_waiter> waiter_board::unpark(fetch_waiter* w) {
  for (auto& [p, h] : w->at) p->waiters.remove(h);
  w->at.clear();
  deadlines_.erase(w->deadline_at);
  members_.erase(w);
  auto it = parked_.find(w->id);
  auto owned = std::move(it->second);
  parked_.erase(it);
  owned->ready = false;
  return owned;
}

std::vector<std::unique_ptr<fetch_waiter>> waiter_board::take_due(clock_tp now) {
  std::vector<fetch_waiter*> due;
  for (auto* w : ready_)
    if (w->ready) due.push_back(w);
  ready_.clear();
  for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it)
    if (!it->second->ready) {
      it->second->ready = true;
      due.push_back(it->second);
    }
  // Oldest first, as they were parked.
  std::sort(due.begin(), due.end(),
            [](const fetch_waiter* a, const fetch_waiter* b) { return a->id < b->id; });
  std::vector<std::unique_ptr<fetch_waiter>> out;
  out.reserve(due.size());
  for (auto* w : due) out.push_back(unpark(w));
  return out;
}

std::vector<std::unique_ptr<fetch_waiter>> waiter_board::take_all() {
  std::vector<fetch_waiter*> all;
  for (auto& [_, w] : parked_) all.push_back(w.get());
  ready_.clear();
  std::vector<std::unique_ptr<fetch_waiter>> out;
  out.reserve(all.size());
  for (auto* w : all) out.push_back(unpark(w));
  return out;
}

std::optional<waiter_board::clock_tp> waiter_board::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

}  // namespace ferry::broker
