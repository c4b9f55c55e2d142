// Consumer groups: join (answered when the rebalance completes), heartbeat,
// leave, list, describe, delete (groups.h has the state machine).
#include <fmt/format.h>

#include <set>

#include "../commits.h"
#include "ferry/core/clock.h"
#include "native.h"

namespace ferry::broker {

using namespace ferry::wire;

void handle_join_group(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  if (r.stopping()) {
    q->respond(error_response(c.stats, q->id(), ErrorCode::ShuttingDown,
                              "the broker is stopping; retry shortly"));
    return;
  }
  const auto* req = q->env->body_as_JoinGroupRequest();
  join_params p;
  p.group = req->group()->str();
  p.member_id = req->member_id() ? req->member_id()->str() : std::string();
  p.client_id = req->client_id() ? req->client_id()->str() : std::string();
  if (req->group_instance_id()) p.instance_id = req->group_instance_id()->str();
  p.host = q->peer;
  for (const auto* t : *req->topics()) p.topics.push_back(t->str());
  p.strategy = static_cast<assign_strategy>(req->strategy());
  p.session_timeout = std::chrono::milliseconds(req->session_timeout_ms());
  p.rebalance_timeout = std::chrono::milliseconds(req->rebalance_timeout_ms());
  const auto token = r.await_join([q = std::move(q)](join_outcome o) mutable {
    flatbuffers::FlatBufferBuilder fbb(256);
    auto parts = topic_partitions(fbb, o.assignment);
    auto body = CreateJoinGroupResponse(
        fbb, o.error, opt_string(fbb, o.message), fbb.CreateString(o.member_id), o.generation,
        fbb.CreateVector(parts), static_cast<AssignStrategy>(o.strategy));
    q->respond(envelope(fbb, q->id(), Body::JoinGroupResponse, body.Union()));
  });
  c.groups->join(token, std::move(p), r.now());  // may answer at once
}

void handle_heartbeat(round& r, std::unique_ptr<native_request> q) {
  const auto* m = q->env->body_as_HeartbeatRequest()->member();
  auto st = r.core().groups->heartbeat(m->group()->string_view(), m->member_id()->string_view(),
                                       m->generation(), r.now(), instance_of(m));
  flatbuffers::FlatBufferBuilder fbb(128);
  auto body = CreateHeartbeatResponse(fbb, st.error, opt_string(fbb, st.message));
  q->respond(envelope(fbb, q->id(), Body::HeartbeatResponse, body.Union()));
}

void handle_leave_group(round& r, std::unique_ptr<native_request> q) {
  const auto* req = q->env->body_as_LeaveGroupRequest();
  auto st =
      r.core().groups->leave(req->group()->string_view(), req->member_id()->string_view(), r.now());
  flatbuffers::FlatBufferBuilder fbb(128);
  auto body = CreateLeaveGroupResponse(fbb, st.error, opt_string(fbb, st.message));
  q->respond(envelope(fbb, q->id(), Body::LeaveGroupResponse, body.Union()));
}

void handle_list_groups(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  std::map<std::string, group_view> all;
  for (auto& g : c.groups->list(r.now())) all[g.name] = std::move(g);
  for (const auto& [name, _] : c.offsets->groups())
    if (!all.count(name)) all[name].name = name;
  flatbuffers::FlatBufferBuilder fbb(256);
  std::vector<flatbuffers::Offset<GroupSummary>> v;
  for (const auto& [name, g] : all)
    if (may(c, *q, acl_resource::group, name, acl_op::describe))
      v.push_back(CreateGroupSummary(fbb, fbb.CreateString(name),
                                     fbb.CreateString(state_name(g.state)),
                                     static_cast<std::int32_t>(g.members.size()), g.generation));
  auto body = CreateListGroupsResponse(fbb, fbb.CreateVector(v));
  q->respond(envelope(fbb, q->id(), Body::ListGroupsResponse, body.Union()));
}

void handle_describe_group(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  const auto name = q->env->body_as_DescribeGroupRequest()->group()->string_view();
  auto g = c.groups->describe(name, r.now());
  auto stored = c.offsets->groups().find(name);
  const bool has_offsets = stored != c.offsets->groups().end();
  flatbuffers::FlatBufferBuilder fbb(256);
  flatbuffers::Offset<DescribeGroupResponse> body;
  if (!g && !has_offsets) {
    body = CreateDescribeGroupResponse(fbb, ErrorCode::UnknownGroup,
                                       fbb.CreateString(fmt::format("unknown group {}", name)));
  } else {
    group_view view = g ? std::move(*g) : group_view{};
    const auto tps = group_partitions(c, name, r.now());
    std::vector<flatbuffers::Offset<GroupPartition>> parts;
    for (const auto& tp : tps) {
      // Topics this user may not describe are left out (sizes, times, lag).
      if (!may(c, *q, acl_resource::topic, tp.first, acl_op::describe)) continue;
      const auto* committed = has_offsets ? c.offsets->committed(name, tp) : nullptr;
      const std::int64_t at = committed ? committed->offset : -1;
      ErrorCode err;
      std::int64_t end = -1, oldest = -1, start = -1;
      if (auto* p = c.topics.find(tp.first, tp.second, err)) {
        end = p->log->high_watermark().value();
        start = p->log->log_start_offset().value();
        // Nothing committed: the group would start at the log start.
        const auto from = at >= 0 ? std::max(at, start) : start;
        if (from < end) oldest = timestamp_at(*p->log, from);
      }
      auto owner = view.owners.find(tp);
      parts.push_back(
          CreateGroupPartition(fbb, fbb.CreateString(tp.first), tp.second, at, end, oldest,
                               owner != view.owners.end() ? fbb.CreateString(owner->second) : 0,
                               committed ? opt_string(fbb, committed->metadata) : 0, err, start));
    }
    std::vector<flatbuffers::Offset<MemberDescription>> members;
    for (const auto& m : view.members) {
      std::vector<flatbuffers::Offset<flatbuffers::String>> ts;
      for (const auto& t : m.topics) ts.push_back(fbb.CreateString(t));
      auto asg = topic_partitions(fbb, m.assignment);
      members.push_back(CreateMemberDescription(
          fbb, fbb.CreateString(m.member_id), fbb.CreateString(m.client_id),
          fbb.CreateString(m.host), fbb.CreateVector(ts), fbb.CreateVector(asg),
          m.since_seen.count(), m.instance_id ? fbb.CreateString(*m.instance_id) : 0));
    }
    body = CreateDescribeGroupResponse(
        fbb, ErrorCode::None, 0, fbb.CreateString(name), fbb.CreateString(state_name(view.state)),
        view.generation, static_cast<AssignStrategy>(view.strategy), fbb.CreateVector(members),
        fbb.CreateVector(parts), system_clock::instance().wall_now().value(),
        view.kind == group_protocol::kafka && !view.protocol_type.empty()
            ? fbb.CreateString(fmt::format("kafka {}/{}", view.protocol_type, view.protocol))
            : 0);
  }
  q->respond(envelope(fbb, q->id(), Body::DescribeGroupResponse, body.Union()));
}

void handle_delete_group(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  auto o =
      stage_delete_group(c, q->env->body_as_DeleteGroupRequest()->group()->string_view(), r.now());
  r.after_offsets_sync(
      [q = std::move(q), o = std::move(o)](round& rr, std::error_code sync) mutable {
        core_thread.assert_held();  // the pipeline runs it after the offsets sync
        finish_delete_group(rr.core(), o, sync);
        audit(rr.core(), *q, "group.delete",
              {{"group", q->env->body_as_DeleteGroupRequest()->group()->string_view()}}, o.error,
              o.message);
        flatbuffers::FlatBufferBuilder fbb(128);
        auto body = CreateDeleteGroupResponse(fbb, o.error, opt_string(fbb, o.message));
        q->respond(envelope(fbb, q->id(), Body::DeleteGroupResponse, body.Union()));
      });
}

}  // namespace ferry::broker
