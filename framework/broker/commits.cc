#include "commits.h"

#include <fmt/format.h>

#include <map>
#include <set>

#include "ferry/broker/wire_errors.h"
#include "ferry/core/clock.h"
#include "ferry/core/logging.h"

namespace ferry::broker {

using wire::ErrorCode;

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("broker");
  return l;
}

}  // namespace

staged_commit stage_commit(broker_core& c, std::string_view group,
                           const std::optional<member_ref>& member,
                           std::span<const commit_entry> entries, bool reset,
                           steady::time_point now) {
  staged_commit out;
  out.entries.reserve(entries.size());
  // A refusal of the whole request still answers one result per entry.
  auto refuse = [&](ErrorCode error, std::string message) {
    out.request = {error, std::move(message)};
    for (const auto& e : entries) {
      commit_outcome o;
      o.topic = std::string(e.topic);
      o.partition = e.partition;
      out.entries.push_back(std::move(o));
    }
    return out;
  };
  if (member) {
    auto st = c.groups->check_commit(group, member->member_id, member->generation, now,
                                     member->instance_id);
    if (!st) return refuse(st.error, std::move(st.message));
  } else if (c.groups->has_members(group)) {
    return refuse(ErrorCode::GroupNotEmpty,
                  fmt::format("group {} has members; offsets can be set from outside only while "
                              "it has none (stop its consumers first)",
                              group));
  }
  // Kafka members assign partitions among themselves: the broker relays
  // the assignment and, as Kafka's, does not check commits against it.
  const bool check_owner =
      member && c.groups->protocol_of(group) != std::optional(group_protocol::kafka);
  std::vector<offset_change> changes;
  std::map<tp_key, std::int64_t> in_request;
  const auto now_ms = system_clock::instance().wall_now().value();
  for (const auto& e : entries) {
    commit_outcome o;
    o.topic = std::string(e.topic);
    o.partition = e.partition;
    const tp_key tp{o.topic, o.partition};
    ErrorCode err;
    auto* p = c.topics.find(o.topic, o.partition, err);
    if (p == nullptr) {
      o.error = err;
      o.message = topic_table::missing(o.topic, o.partition, err);
    } else if (check_owner && !c.groups->owns(group, member->member_id, tp)) {
      o.error = ErrorCode::NotAssigned;
      o.message = fmt::format("{}-{} is not assigned to {} in generation {}", o.topic, o.partition,
                              member->member_id, member->generation);
    } else if (e.offset > p->log->high_watermark().value()) {
      o.error = ErrorCode::OffsetOutOfRange;
      o.message = fmt::format("offset {} is beyond the end of {}-{} ({})", e.offset, o.topic,
                              o.partition, p->log->high_watermark().value());
    } else {
      std::int64_t current = -1;
      if (auto it = in_request.find(tp); it != in_request.end())
        current = it->second;
      else if (const auto* committed = c.offsets->latest(group, tp))
        current = committed->offset;
      if (!reset && e.offset < current) {
        o.error = ErrorCode::OffsetRegression;
        o.message = fmt::format(
            "{}-{}: offset {} is below the committed {}; committed offsets only move forward "
            "(use ferry groups reset-offsets to go back)",
            o.topic, o.partition, e.offset, current);
      } else {
        in_request[tp] = e.offset;
        offset_change ch;
        ch.group = std::string(group);
        ch.topic = o.topic;
        ch.partition = o.partition;
        ch.value.offset = e.offset;
        ch.value.commit_ms = now_ms;
        if (e.metadata) ch.value.metadata = std::string(*e.metadata);
        changes.push_back(std::move(ch));
        // Idempotency keys finished below this offset: into the group's
        // ledger in the same batch (so the same durable write) as the offset.
        if (!e.ledger_keys.empty())
          for (auto& lc : ledger_changes(std::string(group), e.ledger_keys, now_ms))
            changes.push_back(std::move(lc));
        o.staged = true;
      }
    }
    out.entries.push_back(std::move(o));
  }
  if (auto r = c.offsets->append(changes); !r) {
    for (auto& o : out.entries)
      if (o.staged) {
        o.staged = false;
        o.error = to_wire(r.error());
        o.message =
            fmt::format("the group offsets log refused the commit: {}",
                        c.offsets->failed() ? c.offsets->failure_reason() : r.error().message());
      }
  }
  return out;
}

void finish_commit(broker_core& c, staged_commit& s, std::error_code sync) {
  if (!sync) return;
  for (auto& o : s.entries)
    if (o.staged) {
      o.error = to_wire(sync);
      o.message = "syncing the group offsets failed: " + c.offsets->failure_reason();
    }
}

std::vector<tp_key> group_partitions(broker_core& c, std::string_view group,
                                     steady::time_point now) {
  std::set<tp_key> tps;
  std::set<std::string> topics;
  if (auto g = c.offsets->groups().find(group); g != c.offsets->groups().end())
    for (const auto& [tp, _] : g->second) {
      tps.insert(tp);
      topics.insert(tp.first);
    }
  if (auto view = c.groups->describe(group, now)) {
    for (const auto& [tp, _] : view->owners) {
      tps.insert(tp);
      topics.insert(tp.first);
    }
    for (const auto& m : view->members) topics.insert(m.topics.begin(), m.topics.end());
  }
  for (const auto& t : topics)
    if (const auto* topic = c.topics.find(t))
      for (const auto& p : topic->partitions) tps.insert({t, p->id});
  return {tps.begin(), tps.end()};
}

outcome stage_delete_group(broker_core& c, std::string_view name, steady::time_point now) {
  const bool known =
      c.groups->describe(name, now).has_value() || c.offsets->groups().count(name) > 0;
  if (!known) return {ErrorCode::UnknownGroup, fmt::format("unknown group {}", name)};
  if (c.groups->has_members(name))
    return {ErrorCode::GroupNotEmpty,
            fmt::format("group {} has members; stop its consumers before deleting it", name)};
  offset_change ch;
  ch.what = offset_change::kind::delete_group;
  ch.group = std::string(name);
  if (auto r = c.offsets->append({ch}); !r)
    return {to_wire(r.error()),
            "the group offsets log refused the deletion: " + r.error().message()};
  (void)c.groups->erase(name);
  logger()->info("deleted group {}", name);
  return {};
}

void finish_delete_group(broker_core& c, outcome& o, std::error_code sync) {
  if (sync && o)
    o = {to_wire(sync), "syncing the group offsets failed: " + c.offsets->failure_reason()};
}

}  // namespace ferry::broker
