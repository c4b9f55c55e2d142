// Kafka consumer groups on the broker's one group coordinator (groups.h):
// FindCoordinator (this broker), JoinGroup and SyncGroup (answered when
// the rebalance completes and when the leader's assignment arrives),
// Heartbeat, LeaveGroup, DescribeGroups and ListGroups - which also show
// Ferry-protocol groups and groups that only have committed offsets - and
// DeleteGroups.
#include <fmt/format.h>

#include <limits>
#include <map>

#include "commits.h"
#include "frontend.h"

namespace ferry::broker {

namespace {

constexpr std::int32_t kUnknownOperations = std::numeric_limits<std::int32_t>::min();

std::string_view as_chars(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

kafka::error to_kafka(wire::ErrorCode e) {
  return kafka::from_broker(e);
}

// Kafka's name for a group's protocol type as ListGroups/DescribeGroups
// show it: the Kafka members' (usually "consumer"), "ferry" for Ferry's
// consumers, "" for a group with only committed offsets.
std::string protocol_type_of(const group_view& g) {
  if (g.members.empty() && g.protocol_type.empty()) return "";
  return g.kind == group_protocol::kafka ? g.protocol_type : std::string("ferry");
}

}  // namespace

void kafka_find_coordinator(round& r, std::unique_ptr<kafka_request> q) {
  auto in = q->body();
  const auto key = in.string();  // the group (or transactional id): every one is coordinated here
  std::int8_t key_type = 0;
  if (since(*q, 1)) key_type = in.i8();
  if (!in.ok()) return q->malformed("FindCoordinator");
  const auto& node = q->frontend->node();
  auto w = q->response();
  if (since(*q, 1)) w.i32(0);  // throttle
  if (key_type == 0 && !kafka_may(r.core(), *q, acl_resource::group, key, acl_op::describe)) {
    w.i16(kafka::code(kafka::error::group_authorization_failed));
    if (since(*q, 1)) w.nullable_string(std::nullopt);
    w.i32(-1);
    w.string("");
    w.i32(-1);
  } else if (key_type != 0) {
    w.i16(kafka::code(kafka::error::coordinator_not_available));
    if (since(*q, 1))
      w.nullable_string("ferryd has no transaction coordinator: transactions are not supported");
    w.i32(-1);
    w.string("");
    w.i32(-1);
  } else {
    w.i16(kafka::code(kafka::error::none));
    if (since(*q, 1)) w.nullable_string(std::nullopt);
    w.i32(node.id);
    w.string(node.host);
    w.i32(node.port);
  }
  q->respond(std::move(w));
}

void kafka_join_group(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  auto in = q->body();
  kafka_join_params p;
  p.group = std::string(in.string());
  p.session_timeout = std::chrono::milliseconds(in.i32());
  p.rebalance_timeout =
      since(*q, 1) ? std::chrono::milliseconds(in.i32()) : p.session_timeout;  // v0: the same
  p.member_id = std::string(in.string());
  if (since(*q, 5))
    if (auto id = in.nullable_string()) p.instance_id = std::string(*id);
  p.protocol_type = std::string(in.string());
  const auto n = in.array(6);
  for (std::int32_t i = 0; i < n && in.ok(); ++i) {
    kafka_protocol k;
    k.name = std::string(in.string());
    k.metadata = std::string(as_chars(in.bytes()));
    p.protocols.push_back(std::move(k));
  }
  if (!in.ok()) return q->malformed("JoinGroup");
  p.client_id = q->client_id;
  p.host = q->conn->peer();
  p.member_id_required = since(*q, 4);

  auto answer = [](kafka_request& req, const join_outcome& o) {
    auto w = req.response();
    if (since(req, 2)) w.i32(0);  // throttle
    w.i16(kafka::code(o.member_id_required ? kafka::error::member_id_required : to_kafka(o.error)));
    w.i32(o.error == wire::ErrorCode::None && !o.member_id_required ? o.generation : -1);
    w.string(o.protocol);
    w.string(o.leader);
    w.string(o.member_id);
    w.array(static_cast<std::int32_t>(o.members.size()));
    for (const auto& m : o.members) {
      w.string(m.member_id);
      if (since(req, 5)) w.nullable_string(m.instance_id);
      w.bytes(as_bytes(m.metadata));
    }
    req.respond(std::move(w));
  };
  const auto& lim = c.groups->limits();
  const bool denied = !kafka_may(c, *q, acl_resource::group, p.group, acl_op::read);
  if (denied || p.session_timeout < lim.min_session_timeout ||
      p.session_timeout > lim.max_session_timeout) {
    auto w = q->response();
    if (since(*q, 2)) w.i32(0);
    w.i16(kafka::code(denied ? kafka::error::group_authorization_failed
                             : kafka::error::invalid_session_timeout));
    w.i32(-1);
    w.string("");
    w.string("");
    w.string(p.member_id);
    w.array(0);
    return q->respond(std::move(w));
  }
  if (r.stopping()) {
    join_outcome o;
    o.error = wire::ErrorCode::ShuttingDown;
    o.member_id = p.member_id;
    return answer(*q, o);
  }
  const auto token =
      r.await_join([q = std::move(q), answer](join_outcome o) mutable { answer(*q, o); });
  c.groups->kafka_join(token, std::move(p), r.now());  // may answer at once
}

void kafka_sync_group(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  auto in = q->body();
  kafka_sync_params p;
  p.group = std::string(in.string());
  p.generation = in.i32();
  p.member_id = std::string(in.string());
  if (since(*q, 3))
    if (auto id = in.nullable_string()) p.instance_id = std::string(*id);
  const auto n = in.array(6);
  for (std::int32_t i = 0; i < n && in.ok(); ++i) {
    std::string member(in.string());
    p.assignments.emplace_back(std::move(member), std::string(as_chars(in.bytes())));
  }
  if (!in.ok()) return q->malformed("SyncGroup");
  if (!kafka_may(c, *q, acl_resource::group, p.group, acl_op::read)) {
    auto w = q->response();
    if (since(*q, 1)) w.i32(0);
    w.i16(kafka::code(kafka::error::group_authorization_failed));
    w.bytes({});
    return q->respond(std::move(w));
  }
  const auto token = r.await_join([q = std::move(q)](join_outcome o) mutable {
    auto w = q->response();
    if (since(*q, 1)) w.i32(0);  // throttle
    w.i16(kafka::code(to_kafka(o.error)));
    w.bytes(as_bytes(o.assignment_bytes));
    q->respond(std::move(w));
  });
  c.groups->kafka_sync(token, std::move(p), r.now());
}

void kafka_heartbeat(round& r, std::unique_ptr<kafka_request> q) {
  auto in = q->body();
  const auto group = in.string();
  const auto generation = in.i32();
  const auto member = in.string();
  std::optional<std::string_view> instance;
  if (since(*q, 3)) instance = in.nullable_string();
  if (!in.ok()) return q->malformed("Heartbeat");
  auto w = q->response();
  if (since(*q, 1)) w.i32(0);
  if (!kafka_may(r.core(), *q, acl_resource::group, group, acl_op::read)) {
    w.i16(kafka::code(kafka::error::group_authorization_failed));
    return q->respond(std::move(w));
  }
  auto st = r.core().groups->heartbeat(group, member, generation, r.now(), instance.value_or(""));
  w.i16(kafka::code(to_kafka(st.error)));
  q->respond(std::move(w));
}

void kafka_leave_group(round& r, std::unique_ptr<kafka_request> q) {
  auto& groups = *r.core().groups;
  auto in = q->body();
  const auto group = in.string();
  std::vector<std::pair<std::string_view, std::optional<std::string_view>>> members;
  if (since(*q, 3)) {
    const auto n = in.array(4);
    for (std::int32_t i = 0; i < n && in.ok(); ++i) {
      const auto id = in.string();
      members.emplace_back(id, in.nullable_string());
    }
  } else {
    members.emplace_back(in.string(), std::nullopt);
  }
  if (!in.ok()) return q->malformed("LeaveGroup");
  auto w = q->response();
  if (since(*q, 1)) w.i32(0);
  if (!kafka_may(r.core(), *q, acl_resource::group, group, acl_op::read)) {
    w.i16(kafka::code(kafka::error::group_authorization_failed));
    if (since(*q, 3)) w.array(0);
    return q->respond(std::move(w));
  }
  if (!since(*q, 3)) {
    auto st = groups.leave(group, members.front().first, r.now());
    w.i16(kafka::code(to_kafka(st.error)));
    return q->respond(std::move(w));
  }
  w.i16(kafka::code(kafka::error::none));
  w.array(static_cast<std::int32_t>(members.size()));
  for (const auto& [id, instance] : members) {
    // An operator may remove a static member by its instance id alone.
    auto st = id.empty() && instance ? groups.leave_instance(group, *instance, r.now())
                                     : groups.leave(group, id, r.now(), instance.value_or(""));
    w.string(id);
    w.nullable_string(instance);
    w.i16(kafka::code(to_kafka(st.error)));
  }
  q->respond(std::move(w));
}

void kafka_describe_groups(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  auto in = q->body();
  std::vector<std::string_view> names;
  const auto n = in.array(2);
  for (std::int32_t i = 0; i < n && in.ok(); ++i) names.push_back(in.string());
  if (since(*q, 3)) (void)in.boolean();  // include authorized operations
  if (!in.ok()) return q->malformed("DescribeGroups");
  auto w = q->response();
  if (since(*q, 1)) w.i32(0);
  w.array(static_cast<std::int32_t>(names.size()));
  for (auto name : names) {
    const bool allowed = kafka_may(c, *q, acl_resource::group, name, acl_op::describe);
    auto g = allowed ? c.groups->describe(name, r.now()) : std::nullopt;
    const bool has_offsets = allowed && c.offsets->groups().count(name) > 0;
    w.i16(kafka::code(allowed ? kafka::error::none : kafka::error::group_authorization_failed));
    w.string(name);
    if (!g) {
      // Kafka's answer for a group it does not know is "Dead"; one with
      // only committed offsets is "Empty".
      w.string(has_offsets ? "Empty" : "Dead");
      w.string("");
      w.string("");
      w.array(0);
    } else {
      w.string(state_name(g->state));
      w.string(protocol_type_of(*g));
      w.string(g->kind == group_protocol::kafka ? g->protocol : strategy_name(g->strategy));
      w.array(static_cast<std::int32_t>(g->members.size()));
      for (const auto& m : g->members) {
        w.string(m.member_id);
        if (since(*q, 4)) w.nullable_string(m.instance_id);
        w.string(m.client_id);
        w.string(m.host);
        w.bytes(as_bytes(m.metadata));
        w.bytes(as_bytes(m.assignment_bytes));
      }
    }
    if (since(*q, 3)) w.i32(kUnknownOperations);
  }
  q->respond(std::move(w));
}

void kafka_list_groups(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  std::map<std::string, std::string> all;  // name -> protocol type
  for (const auto& [name, _] : c.offsets->groups()) all[name] = "";
  for (const auto& g : c.groups->list(r.now())) all[g.name] = protocol_type_of(g);
  std::erase_if(all, [&](const auto& e) {  // the groups this user may describe
    core_thread.assert_held();             // called right here
    return !kafka_sees(c, *q, acl_resource::group, e.first, acl_op::describe);
  });
  auto w = q->response();
  if (since(*q, 1)) w.i32(0);
  w.i16(kafka::code(kafka::error::none));
  w.array(static_cast<std::int32_t>(all.size()));
  for (const auto& [name, type] : all) {
    w.string(name);
    w.string(type);
  }
  q->respond(std::move(w));
}

// DeleteGroups: each empty group's offsets and idempotency ledger, as
// `ferry groups delete` (NON_EMPTY_GROUP while it has members,
// GROUP_ID_NOT_FOUND when there is nothing to delete); final after the
// round's offsets sync.
void kafka_delete_groups(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  auto in = q->body();
  std::vector<std::string> names;
  const auto n = in.array(2);
  for (std::int32_t i = 0; i < n && in.ok(); ++i) names.emplace_back(in.string());
  if (!in.ok()) return q->malformed("DeleteGroups");
  std::vector<outcome> staged;
  staged.reserve(names.size());
  for (const auto& name : names)
    staged.push_back(kafka_may(c, *q, acl_resource::group, name, acl_op::remove)
                         ? stage_delete_group(c, name, r.now())
                         : outcome{wire::ErrorCode::NotAuthorized, "not authorized"});
  r.after_offsets_sync([q = std::move(q), names = std::move(names), staged = std::move(staged)](
                           round& rr, std::error_code sync) mutable {
    core_thread.assert_held();  // the pipeline runs it after the offsets sync
    auto& cc = rr.core();
    auto w = q->response();
    w.i32(0);  // throttle
    w.array(static_cast<std::int32_t>(names.size()));
    for (std::size_t i = 0; i < names.size(); ++i) {
      const bool denied = staged[i].error == wire::ErrorCode::NotAuthorized;
      if (!denied) finish_delete_group(cc, staged[i], sync);
      kafka_audit(cc, *q, "group.delete", {{"group", names[i]}}, staged[i].error,
                  staged[i].message);
      w.string(names[i]);
      w.i16(kafka::code(denied ? kafka::error::group_authorization_failed
                               : to_kafka(staged[i].error)));
    }
    q->respond(std::move(w));
  });
}

}  // namespace ferry::broker
