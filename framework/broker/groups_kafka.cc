// Kafka-protocol groups: JoinGroup and SyncGroup of Kafka's classic
// protocol on the coordinator's state machine (groups.h). The broker picks
// the protocol and the leader and relays the leader's assignment; it reads
// a "consumer" group's subscriptions and assignments only to show them
// (ferry groups describe, lag by owner), never to decide anything.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "ferry/core/logging.h"
#include "ferry/kafka/wire.h"
#include "groups.h"

namespace ferry::broker {

using std::chrono::milliseconds;
using wire::ErrorCode;

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("groups");
  return l;
}

kafka::reader read(const std::string& s) {
  return kafka::reader(std::as_bytes(std::span<const char>(s.data(), s.size())));
}

// The topics of a consumer's Subscription (any version: the topics come
// first); nothing when it does not decode.
std::vector<std::string> subscribed_topics(const std::string& metadata) {
  auto in = read(metadata);
  (void)in.i16();  // version
  std::vector<std::string> topics;
  const auto n = in.array(2);
  for (std::int32_t i = 0; i < n && in.ok(); ++i) topics.emplace_back(in.string());
  if (!in.ok()) return {};
  std::sort(topics.begin(), topics.end());
  topics.erase(std::unique(topics.begin(), topics.end()), topics.end());
  return topics;
}

// The partitions of a consumer's Assignment; nothing when it does not decode.
std::vector<tp_key> assigned_partitions(const std::string& assignment) {
  auto in = read(assignment);
  (void)in.i16();  // version
  std::vector<tp_key> out;
  const auto n = in.array(6);
  for (std::int32_t i = 0; i < n && in.ok(); ++i) {
    std::string topic(in.string());
    const auto np = in.array(4);
    for (std::int32_t j = 0; j < np && in.ok(); ++j) out.emplace_back(topic, in.i32());
  }
  if (!in.ok()) return {};
  return out;
}

// The protocols every member (but `except`) supports.
template <class Members>
std::set<std::string> common_protocols(const Members& members, std::string_view except = {}) {
  std::set<std::string> common;
  bool first = true;
  for (const auto& [id, m] : members) {
    if (id == except) continue;
    std::set<std::string> mine;
    for (const auto& p : m.protocols) mine.insert(p.name);
    if (first) {
      common = std::move(mine);
      first = false;
      continue;
    }
    std::erase_if(common, [&](const std::string& n) { return !mine.count(n); });
  }
  return common;
}

}  // namespace

void group_coordinator::kafka_join(std::uint64_t token, kafka_join_params p, steady_tp now) {
  auto fail = [&](ErrorCode e, std::string msg) {
    join_outcome o;
    o.error = e;
    o.message = std::move(msg);
    o.member_id = p.member_id;
    o.generation = -1;
    done_(token, std::move(o));
  };
  if (p.protocol_type.empty() || p.protocols.empty())
    return fail(ErrorCode::InconsistentGroupProtocol,
                "a JoinGroup needs a protocol type and at least one protocol");
  auto [it, created] = groups_.try_emplace(p.group);
  group_rec& g = it->second;
  if (created) g.name = p.group;
  if (!g.members.empty()) {
    if (g.kind != group_protocol::kafka)
      return fail(ErrorCode::InconsistentGroupProtocol,
                  fmt::format("group {} is a Ferry-protocol group with {} members (Ferry's "
                              "consumers or workers); a Kafka client cannot join it - use "
                              "another group.id, or stop the Ferry members first",
                              g.name, g.members.size()));
    if (p.protocol_type != g.protocol_type)
      return fail(ErrorCode::InconsistentGroupProtocol,
                  fmt::format("group {} has protocol type '{}'; this member asked for '{}'", g.name,
                              g.protocol_type, p.protocol_type));
    const auto others = common_protocols(g.members, p.member_id);
    const bool any = others.empty() ||
                     std::any_of(p.protocols.begin(), p.protocols.end(),
                                 [&](const kafka_protocol& k) { return others.count(k.name); });
    if (!any) {
      std::string names;
      for (const auto& n : others) names += (names.empty() ? "" : ", ") + n;
      return fail(ErrorCode::InconsistentGroupProtocol,
                  fmt::format("group {} assigns with {}; this member supports none of them "
                              "(partition.assignment.strategy)",
                              g.name, names));
    }
  }

  // Static membership (KIP-345): a new process with the instance id of a
  // member takes that member's place; a member id the instance no longer
  // has is fenced.
  auto claim = claim_instance(g, p.instance_id.value_or(""), p.member_id, p.client_id);
  if (claim.fenced) return fail(claim.fenced->error, std::move(claim.fenced->message));
  auto m = claim.taken;
  const bool replaced = m != g.members.end();
  if (replaced)
    p.member_id = m->first;
  else if (p.instance_id && p.member_id.empty())
    p.member_id = new_member_id(p.client_id);  // static members skip KIP-394's round trip
  if (p.member_id.empty()) {
    p.member_id = new_member_id(p.client_id);
    if (p.member_id_required) {
      // KIP-394: the member joins again with its id, so a member whose
      // first answer is lost does not linger in the group.
      g.pending[p.member_id] = now + p.session_timeout;
      join_outcome o;
      o.error = ErrorCode::None;
      o.member_id_required = true;
      o.member_id = p.member_id;
      o.generation = -1;
      done_(token, std::move(o));
      return;
    }
  } else if (m == g.members.end() && !g.members.count(p.member_id) && !p.instance_id) {
    if (g.pending.erase(p.member_id) == 0)
      return fail(ErrorCode::UnknownMember,
                  fmt::format("{} is not a member of group {} (it left or timed out): join "
                              "with an empty member id",
                              p.member_id, g.name));
  }
  if (g.members.empty()) {
    g.kind = group_protocol::kafka;
    g.protocol_type = p.protocol_type;
    g.protocol.clear();
    g.leader.clear();
  }

  if (m == g.members.end()) m = g.members.find(p.member_id);
  bool changed = false;
  if (m == g.members.end()) {
    member_rec nm;
    nm.id = p.member_id;
    m = g.members.emplace(nm.id, std::move(nm)).first;
    changed = true;
    logger()->info("group {}: Kafka member {} ({}, {}{}{}) joins", g.name, p.member_id, p.client_id,
                   p.host, p.instance_id ? ", instance " : "", p.instance_id.value_or(""));
  } else {
    if (m->second.join_token) {
      done_(*m->second.join_token,
            make_outcome(ErrorCode::RebalanceInProgress, "superseded by a newer join", m->first, -1,
                         g.strategy, {}));
      m->second.join_token.reset();
    }
    const auto& old = m->second.protocols;
    changed = old.size() != p.protocols.size() ||
              !std::equal(old.begin(), old.end(), p.protocols.begin(),
                          [](const kafka_protocol& a, const kafka_protocol& b) {
                            return a.name == b.name && a.metadata == b.metadata;
                          });
  }
  member_rec& mem = m->second;
  mem.restored_unseen = false;
  mem.client_id = p.client_id;
  mem.host = p.host;
  mem.instance_id = p.instance_id;
  mem.protocols = std::move(p.protocols);
  mem.session_timeout = p.session_timeout;
  mem.rebalance_timeout = p.rebalance_timeout;
  mem.last_seen = now;
  mem.join_token = token;
  // A static member that replaced another while the leader assigns would
  // get nothing: the leader assigns to the old id. It rebalances instead.
  if (!changed && mem.id != g.leader &&
      (g.state == group_state::stable ||
       (g.state == group_state::completing_rebalance && !replaced))) {
    // A follower joining again with what it had: the generation it is in.
    mem.join_token.reset();
    done_(token, kafka_answer(g, mem));
    return;
  }
  // Only a restart takes this path: a leader that rejoins with its own id
  // (to pick up a topic change) rebalances, as on Kafka.
  if (!changed && replaced && g.state == group_state::stable) {
    // A static leader's restart: the generation it is in, with the members
    // so it can assign; the SyncGroup of a stable group hands back what it
    // had, so nothing moves.
    mem.join_token.reset();
    done_(token, kafka_answer(g, mem));
    return;
  }
  prepare(g, now, changed ? "membership changed" : "a member rejoined");
  maybe_complete(g, now);
}

void group_coordinator::complete_kafka(group_rec& g) {
  // The protocol: among those every member supports, the one most members
  // prefer (the first of each member's list that all support).
  const auto common = common_protocols(g.members);
  std::map<std::string, int> votes;
  for (const auto& [_, m] : g.members)
    for (const auto& p : m.protocols)
      if (common.count(p.name)) {
        ++votes[p.name];
        break;
      }
  g.protocol.clear();
  int best = 0;
  for (const auto& [_, m] : g.members)  // ties: the leader's (first member's) preference
    for (const auto& p : m.protocols)
      if (votes.count(p.name) && votes[p.name] > best) {
        best = votes[p.name];
        g.protocol = p.name;
      }
  if (!g.members.count(g.leader)) g.leader = g.members.begin()->first;
  g.state = group_state::completing_rebalance;
  g.owners.clear();
  for (auto& [id, m] : g.members) {
    m.assignment_bytes.clear();
    m.assignment.clear();
    m.topics.clear();
    if (g.protocol_type == "consumer")
      for (const auto& p : m.protocols)
        if (p.name == g.protocol) m.topics = subscribed_topics(p.metadata);
  }
  logger()->info("group {}: generation {} with {} Kafka members, protocol {}, leader {}", g.name,
                 g.generation, g.members.size(), g.protocol, g.leader);
  for (auto& [id, m] : g.members) {
    if (!m.join_token) continue;
    auto tok = *m.join_token;
    m.join_token.reset();
    done_(tok, kafka_answer(g, m));
  }
}

join_outcome group_coordinator::kafka_answer(const group_rec& g, const member_rec& m) const {
  join_outcome o;
  o.member_id = m.id;
  o.generation = g.generation;
  o.protocol = g.protocol;
  o.leader = g.leader;
  if (m.id == g.leader)
    for (const auto& [id, other] : g.members) {
      kafka_member km{id, other.instance_id, {}};
      for (const auto& p : other.protocols)
        if (p.name == g.protocol) km.metadata = p.metadata;
      o.members.push_back(std::move(km));
    }
  return o;
}

void group_coordinator::kafka_sync(std::uint64_t token, kafka_sync_params p, steady_tp now) {
  auto* g = find(p.group);
  auto fail = [&](group_status st) {
    join_outcome o;
    o.error = st.error;
    o.message = std::move(st.message);
    o.member_id = p.member_id;
    done_(token, std::move(o));
  };
  if (g != nullptr && !g->members.empty() && g->kind != group_protocol::kafka)
    return fail({ErrorCode::InconsistentGroupProtocol,
                 fmt::format("group {} is a Ferry-protocol group", p.group)});
  auto st = check_member(g, p.member_id, p.generation, now, "sync", p.instance_id);
  if (!st) return fail(std::move(st));
  if (g->state == group_state::preparing_rebalance)
    return fail({ErrorCode::RebalanceInProgress, "the group is rebalancing: rejoin"});
  auto& mem = g->members.find(p.member_id)->second;
  if (g->state == group_state::stable) {
    // Late, or again: the assignment of this generation.
    join_outcome o;
    o.member_id = mem.id;
    o.generation = g->generation;
    o.assignment_bytes = mem.assignment_bytes;
    done_(token, std::move(o));
    return;
  }
  // CompletingRebalance: wait for the leader's assignments.
  if (mem.sync_token)
    done_(*mem.sync_token,
          make_outcome(ErrorCode::RebalanceInProgress, "superseded by a newer SyncGroup", mem.id,
                       -1, g->strategy, {}));
  mem.sync_token = token;
  if (p.member_id != g->leader) return;
  for (auto& [id, a] : p.assignments) {
    auto m = g->members.find(id);
    if (m == g->members.end()) continue;  // left since the join: its share is reassigned next
    m->second.assignment_bytes = std::move(a);
    if (g->protocol_type == "consumer") {
      m->second.assignment = assigned_partitions(m->second.assignment_bytes);
      for (const auto& tp : m->second.assignment) g->owners[tp] = id;
    }
  }
  g->state = group_state::stable;
  dirty_ = true;
  logger()->info("group {}: generation {} assigned by its leader {}", g->name, g->generation,
                 g->leader);
  for (auto& [id, m] : g->members) {
    m.last_seen = now;
    if (!m.sync_token) continue;
    auto tok = *m.sync_token;
    m.sync_token.reset();
    join_outcome o;
    o.member_id = id;
    o.generation = g->generation;
    o.assignment_bytes = m.assignment_bytes;
    done_(tok, std::move(o));
  }
}

void group_coordinator::answer_syncs(group_rec& g, ErrorCode error, const std::string& message) {
  for (auto& [id, m] : g.members)
    if (m.sync_token) {
      auto tok = *m.sync_token;
      m.sync_token.reset();
      done_(tok, make_outcome(error, message, id, -1, g.strategy, {}));
    }
}

}  // namespace ferry::broker
