// OffsetCommit and OffsetFetch on the broker's one offset store
// (commits.h): what a Kafka client commits shows in ferry groups describe,
// ferry top and the lag metrics, and Ferry's own commits are what Kafka
// clients fetch. As in Kafka, a member's commit may move an offset back
// (a consumer that seeks and commits), the broker does not check which
// partitions a Kafka member was assigned (the assignment is the
// client's), and a commit outside any generation (generation -1, no
// member id: a consumer with assign()) is allowed while the group has no
// members.
#include <fmt/format.h>

#include "../commits.h"
#include "frontend.h"

namespace ferry::broker {

namespace {

// Kafka's offset.metadata.max.bytes default.
constexpr std::size_t kMaxMetadataBytes = 4096;

}  // namespace

void kafka_offset_commit(round& r, std::unique_ptr<kafka_request> q) {
  auto in = q->body();
  const std::string group(in.string());
  const auto generation = in.i32();
  const std::string member(in.string());
  std::string instance;
  if (since(*q, 7))
    if (auto id = in.nullable_string()) instance = std::string(*id);
  if (q->version <= 4 && since(*q, 2)) (void)in.i64();  // retention time: offsets.retention decides
  struct entry {
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::optional<std::string_view> metadata;
    kafka::error error = kafka::error::none;
    std::size_t staged_at = 0;  // index into the staged entries
  };
  std::vector<std::pair<std::string_view, std::vector<entry>>> topics;
  std::vector<commit_entry> entries;
  auto& c = r.core();
  // Read on the group and on each topic (as Kafka asks).
  const bool group_ok = kafka_may(c, *q, acl_resource::group, group, acl_op::read);
  const auto nt = in.array(6);
  for (std::int32_t t = 0; t < nt && in.ok(); ++t) {
    auto& [name, parts] = topics.emplace_back(in.string(), std::vector<entry>{});
    const bool topic_ok = group_ok && kafka_may(c, *q, acl_resource::topic, name, acl_op::read);
    const auto np = in.array(14);
    for (std::int32_t i = 0; i < np && in.ok(); ++i) {
      entry e;
      e.partition = in.i32();
      e.offset = in.i64();
      if (since(*q, 6)) (void)in.i32();  // leader epoch: always 0 here
      e.metadata = in.nullable_string();
      if (!group_ok) {
        e.error = kafka::error::group_authorization_failed;
      } else if (!topic_ok) {
        e.error = kafka::error::topic_authorization_failed;
      } else if (e.metadata && e.metadata->size() > kMaxMetadataBytes) {
        e.error = kafka::error::offset_metadata_too_large;
      } else if (e.offset < 0) {
        e.error = kafka::error::invalid_commit_offset_size;
      } else {
        e.staged_at = entries.size();
        entries.push_back(commit_entry{name, e.partition, e.offset, e.metadata, {}});
      }
      parts.push_back(e);
    }
  }
  if (!in.ok()) return q->malformed("OffsetCommit");
  std::optional<member_ref> who;
  if (generation >= 0 || !member.empty()) who = member_ref{member, generation, instance};
  // Refused for its group: every entry says so, and the group is not
  // touched (not even a member's liveness).
  auto staged =
      group_ok ? stage_commit(c, group, who, entries, /*reset=*/true, r.now()) : staged_commit{};
  r.after_offsets_sync([q = std::move(q), topics = std::move(topics), entries = std::move(entries),
                        s = std::move(staged)](round& rr, std::error_code sync) mutable {
    core_thread.assert_held();  // the pipeline runs it after the offsets sync
    finish_commit(rr.core(), s, sync);
    auto w = q->response();
    if (since(*q, 3)) w.i32(0);  // throttle
    w.array(static_cast<std::int32_t>(topics.size()));
    for (const auto& [name, parts] : topics) {
      w.string(name);
      w.array(static_cast<std::int32_t>(parts.size()));
      for (const auto& e : parts) {
        w.i32(e.partition);
        auto err = e.error;
        if (err == kafka::error::none) err = kafka::from_broker(s.error_of(s.entries[e.staged_at]));
        w.i16(kafka::code(err));
      }
    }
    q->respond(std::move(w));
  });
}

void kafka_offset_fetch(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  auto in = q->body();
  const std::string group(in.string());
  std::vector<std::pair<std::string, std::vector<std::int32_t>>> wanted;
  const auto nt = in.array(6);  // null (v2+): every partition the group committed
  for (std::int32_t t = 0; t < nt && in.ok(); ++t) {
    auto& [name, parts] =
        wanted.emplace_back(std::string(in.string()), std::vector<std::int32_t>{});
    const auto np = in.array(4);
    for (std::int32_t i = 0; i < np && in.ok(); ++i) parts.push_back(in.i32());
  }
  if (!in.ok() || (nt < 0 && !since(*q, 2))) return q->malformed("OffsetFetch");
  const bool group_ok = kafka_may(c, *q, acl_resource::group, group, acl_op::describe);
  if (nt < 0 && group_ok)
    if (auto g = c.offsets->groups().find(group); g != c.offsets->groups().end())
      for (const auto& [tp, _] : g->second) {
        // Every committed topic this user may describe.
        if (!kafka_sees(c, *q, acl_resource::topic, tp.first, acl_op::describe)) continue;
        if (wanted.empty() || wanted.back().first != tp.first)
          wanted.emplace_back(tp.first, std::vector<std::int32_t>{});
        wanted.back().second.push_back(tp.second);
      }
  auto w = q->response();
  if (since(*q, 3)) w.i32(0);
  w.array(static_cast<std::int32_t>(wanted.size()));
  for (const auto& [name, parts] : wanted) {
    w.string(name);
    w.array(static_cast<std::int32_t>(parts.size()));
    const auto err = !group_ok ? kafka::error::group_authorization_failed
                     : !kafka_may(c, *q, acl_resource::topic, name, acl_op::describe)
                         ? kafka::error::topic_authorization_failed
                         : kafka::error::none;
    for (auto p : parts) {
      const auto* committed =
          err == kafka::error::none ? c.offsets->committed(group, {name, p}) : nullptr;
      w.i32(p);
      w.i64(committed ? committed->offset : -1);
      if (since(*q, 5)) w.i32(-1);  // leader epoch: not kept
      w.nullable_string(committed ? std::optional<std::string_view>(committed->metadata)
                                  : std::optional<std::string_view>(""));
      w.i16(kafka::code(err));
    }
  }
  if (since(*q, 2))
    w.i16(kafka::code(group_ok ? kafka::error::none : kafka::error::group_authorization_failed));
  q->respond(std::move(w));
}

}  // namespace ferry::broker
