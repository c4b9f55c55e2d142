#include "groups.h"

#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <set>

#include "ferry/core/logging.h"
#include "ferry/protocol/codec.h"

namespace ferry::broker {

using std::chrono::milliseconds;
using wire::ErrorCode;

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("groups");
  return l;
}

constexpr milliseconds kScanInterval{50};

std::string fenced_message(std::string_view what, std::string_view group, std::string_view instance,
                           std::string_view holder) {
  return fmt::format(
      "{}: group_instance_id {} of group {} is now held by {}: this consumer is fenced. Two "
      "processes share the id; stop this one, or give each instance its own group_instance_id",
      what, instance, group, holder);
}

}  // namespace

const char* state_name(group_state s) noexcept {
  switch (s) {
    case group_state::empty:
      return "Empty";
    case group_state::preparing_rebalance:
      return "PreparingRebalance";
    case group_state::completing_rebalance:
      return "CompletingRebalance";
    case group_state::stable:
      return "Stable";
  }
  return "Unknown";
}

group_coordinator::group_coordinator(options o, partition_lookup partitions, join_done done)
    : opts_(o),
      partitions_(std::move(partitions)),
      done_(std::move(done)),
      seed_(std::random_device{}()) {}

group_coordinator::group_rec* group_coordinator::find(std::string_view name) {
  auto it = groups_.find(name);
  return it == groups_.end() ? nullptr : &it->second;
}

const group_coordinator::group_rec* group_coordinator::find(std::string_view name) const {
  auto it = groups_.find(name);
  return it == groups_.end() ? nullptr : &it->second;
}

std::string group_coordinator::new_member_id(std::string_view client_id) {
  std::mt19937_64 rng(seed_ + ++next_member_);
  return fmt::format("{}-{:012x}", client_id.empty() ? "member" : client_id,
                     rng() & 0xffffffffffffULL);
}

void group_coordinator::join(std::uint64_t token, join_params p, steady_tp now) {
  auto fail = [&](ErrorCode e, std::string msg) {
    done_(token, make_outcome(e, std::move(msg), p.member_id, -1, p.strategy, {}));
  };
  if (p.session_timeout < opts_.min_session_timeout ||
      p.session_timeout > opts_.max_session_timeout)
    return fail(ErrorCode::InvalidRequest,
                fmt::format("session timeout {} ms is outside the broker's {}..{} ms",
                            p.session_timeout.count(), opts_.min_session_timeout.count(),
                            opts_.max_session_timeout.count()));
  if (!p.instance_id.empty() && !protocol::valid_group_name(p.instance_id))
    return fail(ErrorCode::InvalidRequest,
                fmt::format("invalid group_instance_id '{}': 1 to 249 of letters, digits, '.', '_' "
                            "and '-'",
                            p.instance_id));
  auto [it, created] = groups_.try_emplace(p.group);
  group_rec& g = it->second;
  if (created) {
    g.name = p.group;
    g.strategy = p.strategy;
  }
  if (!g.members.empty() && g.kind != group_protocol::ferry)
    return fail(ErrorCode::InconsistentGroupProtocol,
                fmt::format("group {} is a Kafka-protocol group with {} members; a Ferry consumer "
                            "cannot join it (use another group name, or stop its Kafka clients)",
                            g.name, g.members.size()));
  if (g.members.empty()) g.kind = group_protocol::ferry;
  if (!g.members.empty() && p.strategy != g.strategy)
    return fail(ErrorCode::InvalidRequest,
                fmt::format("group {} uses the {} strategy; this member asked for {}", g.name,
                            strategy_name(g.strategy), strategy_name(p.strategy)));
  if (g.members.empty()) g.strategy = p.strategy;
  std::sort(p.topics.begin(), p.topics.end());
  p.topics.erase(std::unique(p.topics.begin(), p.topics.end()), p.topics.end());

  auto claim = claim_instance(g, p.instance_id, p.member_id, p.client_id);
  if (claim.fenced) return fail(claim.fenced->error, std::move(claim.fenced->message));
  auto m = claim.taken;
  if (m != g.members.end()) p.member_id = m->first;
  if (p.member_id.empty()) p.member_id = new_member_id(p.client_id);
  if (m == g.members.end()) m = g.members.find(p.member_id);
  bool changed = false;
  if (m == g.members.end()) {
    member_rec nm;
    nm.id = p.member_id;
    if (!p.instance_id.empty()) nm.instance_id = p.instance_id;
    m = g.members.emplace(nm.id, std::move(nm)).first;
    changed = true;
    logger()->info("group {}: member {} ({}{}{}) joins", g.name, p.member_id, p.host,
                   p.instance_id.empty() ? "" : ", instance ", p.instance_id);
  } else {
    if (m->second.join_token) {
      // A retried join replaces the one still waiting.
      done_(*m->second.join_token,
            make_outcome(ErrorCode::RebalanceInProgress, "superseded by a newer join", m->first, -1,
                         g.strategy, {}));
      m->second.join_token.reset();
    }
    changed = m->second.topics != p.topics;
  }
  member_rec& mem = m->second;
  mem.restored_unseen = false;
  if (!p.instance_id.empty() && mem.instance_id != p.instance_id) {
    mem.instance_id = p.instance_id;
    dirty_ = true;
  }
  mem.client_id = p.client_id;
  mem.host = p.host;
  mem.topics = p.topics;
  mem.session_timeout = p.session_timeout;
  mem.rebalance_timeout = p.rebalance_timeout;
  mem.last_seen = now;
  mem.join_token = token;
  if (g.state == group_state::stable && !changed) {
    // A known member rejoining a stable group (e.g. after it lost its
    // partitions on its side): hand back what it owns now.
    auto tok = *mem.join_token;
    mem.join_token.reset();
    done_(tok, make_outcome(ErrorCode::None, "", mem.id, g.generation, g.strategy, mem.assignment));
    return;
  }
  prepare(g, now, changed ? "membership changed" : "a member rejoined");
  maybe_complete(g, now);
}

std::map<std::string, group_coordinator::member_rec, std::less<>>::iterator
group_coordinator::holder(group_rec& g, std::string_view instance) {
  if (instance.empty()) return g.members.end();
  return std::find_if(g.members.begin(), g.members.end(),
                      [&](const auto& kv) { return kv.second.instance_id == instance; });
}

group_coordinator::instance_claim group_coordinator::claim_instance(group_rec& g,
                                                                    std::string_view instance,
                                                                    std::string_view member_id,
                                                                    std::string_view client_id) {
  auto h = holder(g, instance);
  if (h == g.members.end() || h->first == member_id) return {g.members.end(), std::nullopt};
  if (member_id.empty() || unconfirmed(g, h->second, member_id))
    return {replace_static(g, h, client_id), std::nullopt};
  return {g.members.end(), group_status{ErrorCode::FencedInstanceId,
                                        fenced_message("join", g.name, instance, h->first)}};
}

std::map<std::string, group_coordinator::member_rec, std::less<>>::iterator
group_coordinator::replace_static(group_rec& g,
                                  std::map<std::string, member_rec, std::less<>>::iterator from,
                                  std::string_view client_id) {
  const std::string old_id = from->first;
  const std::string instance = from->second.instance_id.value_or("");
  member_rec rec = std::move(from->second);
  g.members.erase(from);
  const std::string why = fenced_message("join", g.name, instance, "a new process");
  for (auto* tok : {&rec.join_token, &rec.sync_token})
    if (*tok) {
      done_(**tok, make_outcome(ErrorCode::FencedInstanceId, why, old_id, -1, g.strategy, {}));
      tok->reset();
    }
  rec.id = new_member_id(client_id);
  for (auto& [_, owner] : g.owners)
    if (owner == old_id) owner = rec.id;
  if (g.leader == old_id) g.leader = rec.id;
  logger()->info("group {}: instance {} is back as member {} (was {}): it keeps its {} partitions",
                 g.name, instance, rec.id, old_id, rec.assignment.size());
  wakeup_ = true;  // the old member's parked fetches learn they are fenced
  dirty_ = true;
  std::string id = rec.id;
  return g.members.emplace(std::move(id), std::move(rec)).first;
}

void group_coordinator::prepare(group_rec& g, steady_tp now, const std::string& why) {
  if (g.state == group_state::preparing_rebalance) return;
  if (g.state == group_state::completing_rebalance)
    answer_syncs(g, ErrorCode::RebalanceInProgress, "the group is rebalancing again: rejoin");
  g.state = group_state::preparing_rebalance;
  dirty_ = true;  // the snapshot leaves a rebalancing group out
  milliseconds longest{0};
  for (const auto& [_, m] : g.members) longest = std::max(longest, m.rebalance_timeout);
  g.rebalance_deadline = now + longest;
  wakeup_ = true;
  logger()->info("group {}: rebalancing (generation {}): {}", g.name, g.generation, why);
}

void group_coordinator::maybe_complete(group_rec& g, steady_tp now) {
  if (g.state != group_state::preparing_rebalance) return;
  const bool late = now >= g.rebalance_deadline;
  std::vector<std::string> stragglers;
  for (const auto& [id, m] : g.members)
    if (!m.join_token) stragglers.push_back(id);
  if (!stragglers.empty() && !late) return;
  for (const auto& id : stragglers) {
    logger()->warn("group {}: member {} did not rejoin within the rebalance timeout; removed",
                   g.name, id);
    g.members.erase(id);
  }
  complete(g, now);
}

void group_coordinator::complete(group_rec& g, steady_tp now) {
  dirty_ = true;
  if (g.members.empty()) {
    g.state = group_state::empty;
    g.owners.clear();
    g.emptied_at = now;
    return;
  }
  ++g.generation;
  if (g.kind == group_protocol::kafka) {
    for (auto& [_, m] : g.members) m.last_seen = now;
    g.rebalance_deadline = now;
    for (const auto& [_, m] : g.members)
      g.rebalance_deadline = std::max(g.rebalance_deadline, now + m.rebalance_timeout);
    complete_kafka(g);
    return;
  }
  std::vector<member_subscription> subs;
  std::map<std::string, std::int32_t, std::less<>> counts;
  for (const auto& [id, m] : g.members) {
    subs.push_back({id, std::set<std::string>(m.topics.begin(), m.topics.end())});
    for (const auto& t : m.topics)
      if (!counts.count(t)) counts[t] = partitions_(t);
  }
  std::map<std::string, std::int32_t, std::less<>> existing;
  for (const auto& [t, n] : counts)
    if (n > 0) existing[t] = n;
  auto result = assign_partitions(g.strategy, subs, existing, g.owners);
  g.owners.clear();
  g.counts_used = counts;
  for (auto& [id, m] : g.members) {
    m.assignment = result[id];
    for (const auto& tp : m.assignment) g.owners[tp] = id;
  }
  g.state = group_state::stable;
  dirty_ = true;
  logger()->info("group {}: generation {} with {} members, {} partitions ({})", g.name,
                 g.generation, g.members.size(), g.owners.size(), strategy_name(g.strategy));
  for (auto& [id, m] : g.members) {
    m.last_seen = now;
    if (!m.join_token) continue;
    auto tok = *m.join_token;
    m.join_token.reset();
    done_(tok, make_outcome(ErrorCode::None, "", id, g.generation, g.strategy, m.assignment));
  }
}

void group_coordinator::remove_member(group_rec& g, std::string_view id, steady_tp now,
                                      const std::string& why) {
  auto it = g.members.find(id);
  if (it == g.members.end()) return;
  if (it->second.join_token)
    done_(*it->second.join_token,
          make_outcome(ErrorCode::UnknownMember, why, std::string(id), -1, g.strategy, {}));
  if (it->second.sync_token)
    done_(*it->second.sync_token,
          make_outcome(ErrorCode::UnknownMember, why, std::string(id), -1, g.strategy, {}));
  logger()->info("group {}: member {} leaves: {}", g.name, id, why);
  g.members.erase(it);
  wakeup_ = true;
  dirty_ = true;
  if (g.members.empty()) {
    g.state = group_state::empty;
    g.owners.clear();
    g.emptied_at = now;
    return;
  }
  // Its partitions stay unowned until the rebalance completes.
  for (auto o = g.owners.begin(); o != g.owners.end();)
    o = o->second == id ? g.owners.erase(o) : std::next(o);
  prepare(g, now, why);
  maybe_complete(g, now);
}

group_status group_coordinator::check_member(group_rec* g, std::string_view member,
                                             std::int32_t generation, steady_tp now,
                                             const char* what, std::string_view instance) {
  if (g == nullptr) return {ErrorCode::UnknownMember, "unknown group: join it first"};
  if (auto h = holder(*g, instance); h != g->members.end() && h->first != member) {
    if (unconfirmed(*g, h->second, member))
      return {ErrorCode::UnknownMember,
              fmt::format("{}: {} is not a member of group {} since the broker restarted: rejoin",
                          what, member, g->name)};
    return {ErrorCode::FencedInstanceId,
            fenced_message(what, g->name, instance, "member " + h->first)};
  }
  auto m = g->members.find(member);
  if (m == g->members.end())
    return {ErrorCode::UnknownMember,
            fmt::format("{}: {} is not a member of group {} (it left or timed out): rejoin", what,
                        member, g->name)};
  m->second.last_seen = now;
  m->second.restored_unseen = false;
  if (generation != g->generation)
    return {ErrorCode::StaleGeneration,
            fmt::format("{}: generation {} is stale; group {} is at generation {}", what,
                        generation, g->name, g->generation)};
  return {};
}

group_status group_coordinator::heartbeat(std::string_view group, std::string_view member,
                                          std::int32_t generation, steady_tp now,
                                          std::string_view instance) {
  auto* g = find(group);
  auto st = check_member(g, member, generation, now, "heartbeat", instance);
  if (st.error == ErrorCode::UnknownMember || st.error == ErrorCode::FencedInstanceId) return st;
  if (g->state == group_state::preparing_rebalance)
    return {ErrorCode::RebalanceInProgress, "the group is rebalancing: rejoin"};
  return st;
}

group_status group_coordinator::leave(std::string_view group, std::string_view member,
                                      steady_tp now, std::string_view instance) {
  auto* g = find(group);
  if (g != nullptr)
    if (auto h = holder(*g, instance); h != g->members.end() && h->first != member)
      return {ErrorCode::FencedInstanceId,
              fenced_message("leave", g->name, instance, "member " + h->first)};
  if (g == nullptr || !g->members.count(member))
    return {ErrorCode::UnknownMember, fmt::format("{} is not a member of {}", member, group)};
  remove_member(*g, member, now, "left the group");
  return {};
}

group_status group_coordinator::leave_instance(std::string_view group, std::string_view instance,
                                               steady_tp now) {
  if (auto* g = find(group); g != nullptr && !instance.empty())
    if (auto h = holder(*g, instance); h != g->members.end()) {
      remove_member(*g, std::string(h->first), now, "removed by its instance id");
      return {};
    }
  return {ErrorCode::UnknownMember,
          fmt::format("no member of {} has group_instance_id {}", group, instance)};
}

group_status group_coordinator::check_fetch(std::string_view group, std::string_view member,
                                            std::int32_t generation, steady_tp now,
                                            std::string_view instance) {
  auto* g = find(group);
  auto st = check_member(g, member, generation, now, "fetch", instance);
  if (st.error == ErrorCode::UnknownMember || st.error == ErrorCode::FencedInstanceId) return st;
  if (g->state == group_state::preparing_rebalance)
    return {ErrorCode::RebalanceInProgress, "the group is rebalancing: rejoin"};
  return st;
}

group_status group_coordinator::check_commit(std::string_view group, std::string_view member,
                                             std::int32_t generation, steady_tp now,
                                             std::string_view instance) {
  auto* g = find(group);
  auto st = check_member(g, member, generation, now, "commit", instance);
  if (st && g->state == group_state::completing_rebalance)
    return {ErrorCode::RebalanceInProgress, "the group is completing a rebalance: rejoin"};
  return st;
}

std::optional<group_protocol> group_coordinator::protocol_of(std::string_view group) const {
  const auto* g = find(group);
  if (g == nullptr || g->members.empty()) return std::nullopt;
  return g->kind;
}

bool group_coordinator::owns(std::string_view group, std::string_view member,
                             const tp_key& tp) const {
  const auto* g = find(group);
  if (g == nullptr) return false;
  auto it = g->owners.find(tp);
  return it != g->owners.end() && it->second == member;
}

bool group_coordinator::has_members(std::string_view group) const {
  const auto* g = find(group);
  return g != nullptr && !g->members.empty();
}

void group_coordinator::tick(steady_tp now) {
  if (now < next_scan_) return;
  next_scan_ = now + kScanInterval;
  for (auto& [name, g] : groups_) {
    std::erase_if(g.pending, [&](const auto& p) { return now >= p.second; });
    if (g.members.empty()) continue;
    std::vector<std::pair<std::string, std::string>> expired;
    for (const auto& [id, m] : g.members)
      if (!m.join_token && !m.sync_token && now - m.last_seen > m.session_timeout)
        expired.emplace_back(id, fmt::format("session timeout ({} ms without a heartbeat)",
                                             m.session_timeout.count()));
    for (const auto& [id, why] : expired) remove_member(g, id, now, why);
    if (g.members.empty()) continue;
    if (g.state == group_state::completing_rebalance && now >= g.rebalance_deadline &&
        g.members.count(g.leader))
      remove_member(g, std::string(g.leader), now,
                    "the leader sent no assignment (SyncGroup) within the rebalance timeout");
    if (g.members.empty()) continue;
    // Kafka members watch their topics themselves (the leader rejoins).
    if (g.state == group_state::stable && g.kind == group_protocol::ferry) {
      std::set<std::string> topics;
      for (const auto& [_, m] : g.members) topics.insert(m.topics.begin(), m.topics.end());
      for (const auto& t : topics) {
        auto used = g.counts_used.find(t);
        const std::int32_t now_count = partitions_(t);
        if (used == g.counts_used.end() || used->second != now_count) {
          prepare(g, now,
                  fmt::format("topic {} now has {} partitions (was {})", t, now_count,
                              used == g.counts_used.end() ? 0 : used->second));
          break;
        }
      }
    }
    maybe_complete(g, now);
  }
}

steady_tp group_coordinator::next_deadline() const {
  for (const auto& [_, g] : groups_)
    if (!g.members.empty() || !g.pending.empty()) return next_scan_;
  return steady_tp::max();
}

void group_coordinator::abort_all(ErrorCode error, const std::string& message) {
  for (auto& [_, g] : groups_) {
    for (auto& [id, m] : g.members)
      if (m.join_token) {
        auto tok = *m.join_token;
        m.join_token.reset();
        done_(tok, make_outcome(error, message, id, -1, g.strategy, {}));
      }
    answer_syncs(g, error, message);
  }
}

group_view group_coordinator::view(const group_rec& g, steady_tp now) const {
  group_view v;
  v.name = g.name;
  v.state = g.state;
  v.generation = g.generation;
  v.strategy = g.strategy;
  v.owners = g.owners;
  v.kind = g.kind;
  v.protocol_type = g.protocol_type;
  v.protocol = g.protocol;
  v.leader = g.leader;
  for (const auto& [id, m] : g.members) {
    member_view mv{id,
                   m.client_id,
                   m.host,
                   m.topics,
                   m.assignment,
                   std::chrono::duration_cast<milliseconds>(now - m.last_seen),
                   m.instance_id,
                   {},
                   m.assignment_bytes};
    for (const auto& p : m.protocols)
      if (p.name == g.protocol) mv.metadata = p.metadata;
    v.members.push_back(std::move(mv));
  }
  return v;
}

std::vector<group_view> group_coordinator::list(steady_tp now) const {
  std::vector<group_view> out;
  for (const auto& [_, g] : groups_) out.push_back(view(g, now));
  return out;
}

std::optional<group_view> group_coordinator::describe(std::string_view group, steady_tp now) const {
  const auto* g = find(group);
  if (g == nullptr) return std::nullopt;
  return view(*g, now);
}

std::optional<steady_tp> group_coordinator::emptied_at(std::string_view group) const {
  const auto* g = find(group);
  if (g == nullptr || !g->members.empty()) return std::nullopt;
  return g->emptied_at;
}

bool group_coordinator::erase(std::string_view group) {
  auto it = groups_.find(group);
  if (it == groups_.end()) return true;
  if (!it->second.members.empty()) return false;
  groups_.erase(it);
  dirty_ = true;
  return true;
}

}  // namespace ferry::broker
