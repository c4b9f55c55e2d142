#include "assignor.h"

#include <algorithm>

namespace ferry::broker {

namespace {

using result_map = std::map<std::string, std::vector<tp_key>>;

// Every partition of a topic some member subscribes to, in order, with the
// members that may own it.
std::map<tp_key, std::vector<const member_subscription*>> candidates(
    const std::vector<member_subscription>& members,
    const std::map<std::string, std::int32_t, std::less<>>& counts) {
  std::map<tp_key, std::vector<const member_subscription*>> out;
  for (const auto& m : members)
    for (const auto& t : m.topics) {
      auto it = counts.find(t);
      if (it == counts.end()) continue;
      for (std::int32_t p = 0; p < it->second; ++p) out[{t, p}].push_back(&m);
    }
  return out;
}

result_map range(const std::vector<member_subscription>& members,
                 const std::map<std::string, std::int32_t, std::less<>>& counts) {
  result_map out;
  for (const auto& m : members) out[m.member_id];
  std::map<std::string, std::vector<std::string>> subscribers;  // topic -> member ids (sorted)
  for (const auto& m : members)
    for (const auto& t : m.topics)
      if (counts.count(t)) subscribers[t].push_back(m.member_id);
  for (auto& [t, ids] : subscribers) {
    std::sort(ids.begin(), ids.end());
    const auto n = static_cast<std::int32_t>(ids.size());
    const std::int32_t parts = counts.find(t)->second;
    const std::int32_t each = parts / n, extra = parts % n;
    std::int32_t p = 0;
    for (std::int32_t i = 0; i < n; ++i) {
      const std::int32_t take = each + (i < extra ? 1 : 0);
      for (std::int32_t k = 0; k < take; ++k)
        out[ids[static_cast<std::size_t>(i)]].push_back({t, p++});
    }
  }
  return out;
}

result_map round_robin(const std::vector<member_subscription>& members,
                       const std::map<std::string, std::int32_t, std::less<>>& counts) {
  result_map out;
  std::vector<const member_subscription*> order;
  for (const auto& m : members) {
    out[m.member_id];
    order.push_back(&m);
  }
  std::sort(order.begin(), order.end(),
            [](auto* a, auto* b) { return a->member_id < b->member_id; });
  std::size_t next = 0;
  for (const auto& [tp, who] : candidates(members, counts)) {
    (void)who;
    for (std::size_t tries = 0; tries < order.size(); ++tries) {
      const auto* m = order[next];
      next = (next + 1) % order.size();
      if (m->topics.count(tp.first)) {
        out[m->member_id].push_back(tp);
        break;
      }
    }
  }
  return out;
}

// Sticky: first every member keeps up to its fair share of what it owned,
// then the rest goes to the least loaded eligible member. The fair share is
// floor(N/M), and N mod M members (those that kept the most) may keep one
// more, so the result is balanced when subscriptions are uniform.
result_map sticky(const std::vector<member_subscription>& members,
                  const std::map<std::string, std::int32_t, std::less<>>& counts,
                  const std::map<tp_key, std::string>& previous) {
  result_map out;
  std::map<std::string, const member_subscription*> by_id;
  for (const auto& m : members) {
    out[m.member_id];
    by_id[m.member_id] = &m;
  }
  const auto cands = candidates(members, counts);
  if (by_id.empty()) return out;
  const std::size_t n = cands.size(), m = by_id.size();
  const std::size_t floor_share = n / m;
  std::size_t ceil_slots = n % m;

  // What each member owned before and may still own.
  std::map<std::string, std::vector<tp_key>> kept;
  for (const auto& [tp, who] : cands) {
    auto prev = previous.find(tp);
    if (prev == previous.end()) continue;
    auto mem = by_id.find(prev->second);
    if (mem == by_id.end() || !mem->second->topics.count(tp.first)) continue;
    kept[prev->second].push_back(tp);
  }
  std::set<tp_key> taken;
  // Members that owned the most keep one above the floor first.
  std::vector<std::pair<std::string, std::vector<tp_key>>> owners(kept.begin(), kept.end());
  std::stable_sort(owners.begin(), owners.end(),
                   [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
  for (auto& [id, tps] : owners) {
    std::size_t quota = floor_share;
    if (tps.size() > floor_share && ceil_slots > 0) {
      ++quota;
      --ceil_slots;
    }
    for (std::size_t i = 0; i < tps.size() && i < quota; ++i) {
      out[id].push_back(tps[i]);
      taken.insert(tps[i]);
    }
  }
  // The rest: least loaded eligible member, ties by id.
  for (const auto& [tp, who] : cands) {
    if (taken.count(tp)) continue;
    const member_subscription* best = nullptr;
    for (const auto* c : who) {
      if (!best) {
        best = c;
        continue;
      }
      const auto a = out[c->member_id].size(), b = out[best->member_id].size();
      if (a < b || (a == b && c->member_id < best->member_id)) best = c;
    }
    out[best->member_id].push_back(tp);
  }
  for (auto& [_, tps] : out) std::sort(tps.begin(), tps.end());
  return out;
}

}  // namespace

std::map<std::string, std::vector<tp_key>> assign_partitions(
    assign_strategy strategy, const std::vector<member_subscription>& members,
    const std::map<std::string, std::int32_t, std::less<>>& partition_counts,
    const std::map<tp_key, std::string>& previous) {
  switch (strategy) {
    case assign_strategy::range:
      return range(members, partition_counts);
    case assign_strategy::round_robin:
      return round_robin(members, partition_counts);
    case assign_strategy::sticky:
      break;
  }
  return sticky(members, partition_counts, previous);
}

const char* strategy_name(assign_strategy s) noexcept {
  switch (s) {
    case assign_strategy::sticky:
      return "sticky";
    case assign_strategy::range:
      return "range";
    case assign_strategy::round_robin:
      return "round-robin";
  }
  return "unknown";
}

}  // namespace ferry::broker
