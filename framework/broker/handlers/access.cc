// Authorization of native requests (docs/security.md#authorization): what
// each request type needs, checked before its handler runs. One entry per
// API, in kApis order (checked at compile time), so a new request type
// cannot reach a handler without saying what it needs.
//
// Lists (topics, groups, subjects) are not refused: their handlers leave out
// what the principal may not describe (may()).
#include <fmt/format.h>

#include <array>
#include <nlohmann/json.hpp>

#include "native.h"

namespace ferry::broker {

using namespace ferry::wire;

namespace {

struct need {
  acl_resource resource;
  std::string_view name;
  acl_op op;
};

/// What a request needs; at most a few distinct entries per request (a
/// fetch over many partitions of one topic needs one).
class needs {
 public:
  void add(acl_resource r, std::string_view name, acl_op op) {
    for (const auto& n : list_)
      if (n.resource == r && n.op == op && n.name == name) return;
    list_.push_back({r, name, op});
  }
  [[nodiscard]] const std::vector<need>& list() const noexcept { return list_; }

 private:
  std::vector<need> list_;
};

/// The audit line a refused state-changing request leaves (the handler
/// writes it when it runs).
struct audited {
  std::string_view action;  ///< empty: not audited
};

// Called by authorize() on the core thread.
using needs_fn = audited (*)(broker_core& c, const native_request& q, needs& n);

constexpr auto res_topic = acl_resource::topic;
constexpr auto res_group = acl_resource::group;
constexpr auto res_schema = acl_resource::schema;
constexpr auto res_cluster = acl_resource::cluster;
using enum acl_op;

template <typename V>
void topics_of(const V* entries, needs& n, acl_op op) {
  for (const auto* e : *entries) n.add(res_topic, e->topic()->string_view(), op);
}

audited create_topic(broker_core&, const native_request& q, needs& n) {
  n.add(res_topic, q.env->body_as_CreateTopicRequest()->name()->string_view(), create);
  return {"topic.create"};
}
audited delete_topic(broker_core&, const native_request& q, needs& n) {
  n.add(res_topic, q.env->body_as_DeleteTopicRequest()->name()->string_view(), remove);
  return {"topic.delete"};
}
audited list_topics(broker_core&, const native_request&, needs&) {
  return {};
}
audited describe_topic(broker_core&, const native_request& q, needs& n) {
  n.add(res_topic, q.env->body_as_DescribeTopicRequest()->name()->string_view(), describe);
  return {};
}
audited produce(broker_core&, const native_request& q, needs& n) {
  // dlq markers are checked by the handler, which reads the batches.
  topics_of(q.env->body_as_ProduceRequest()->entries(), n, write);
  return {};
}
audited fetch(broker_core&, const native_request& q, needs& n) {
  const auto* req = q.env->body_as_FetchRequest();
  topics_of(req->entries(), n, read);
  if (req->member()) n.add(res_group, req->member()->group()->string_view(), read);
  if (req->commit()) topics_of(req->commit(), n, read);
  return {};
}
audited list_offsets(broker_core&, const native_request& q, needs& n) {
  topics_of(q.env->body_as_ListOffsetsRequest()->entries(), n, describe);
  return {};
}
audited join_group(broker_core&, const native_request& q, needs& n) {
  const auto* req = q.env->body_as_JoinGroupRequest();
  n.add(res_group, req->group()->string_view(), read);
  for (const auto* t : *req->topics()) n.add(res_topic, t->string_view(), describe);
  return {};
}
audited heartbeat(broker_core&, const native_request& q, needs& n) {
  n.add(res_group, q.env->body_as_HeartbeatRequest()->member()->group()->string_view(), read);
  return {};
}
audited leave_group(broker_core&, const native_request& q, needs& n) {
  n.add(res_group, q.env->body_as_LeaveGroupRequest()->group()->string_view(), read);
  return {};
}
audited commit_offsets(broker_core&, const native_request& q, needs& n) {
  const auto* req = q.env->body_as_CommitOffsetsRequest();
  if (req->reset()) {
    // Moving a group's offsets is an administrator's act, not a consumer's.
    n.add(res_group, req->group()->string_view(), alter);
    topics_of(req->entries(), n, describe);
    return {"group.reset_offsets"};
  }
  n.add(res_group, req->group()->string_view(), read);
  topics_of(req->entries(), n, read);
  return {};
}
audited fetch_offsets(broker_core&, const native_request& q, needs& n) {
  const auto* req = q.env->body_as_FetchOffsetsRequest();
  n.add(res_group, req->group()->string_view(), describe);
  if (req->partitions())
    for (const auto* tp : *req->partitions())
      n.add(res_topic, tp->topic()->string_view(), describe);
  return {};
}
audited list_groups(broker_core&, const native_request&, needs&) {
  return {};
}
audited describe_group(broker_core&, const native_request& q, needs& n) {
  n.add(res_group, q.env->body_as_DescribeGroupRequest()->group()->string_view(), describe);
  return {};
}
audited delete_group(broker_core&, const native_request& q, needs& n) {
  n.add(res_group, q.env->body_as_DeleteGroupRequest()->group()->string_view(), remove);
  return {"group.delete"};
}
audited init_producer(broker_core&, const native_request&, needs&) {
  return {};  // authorize() asks for write on some topic (allowed_somewhere)
}
audited ledger_lookup(broker_core&, const native_request& q, needs& n) {
  n.add(res_group, q.env->body_as_LedgerLookupRequest()->group()->string_view(), read);
  return {};
}
audited register_schema(broker_core&, const native_request& q, needs& n) {
  n.add(res_schema, q.env->body_as_RegisterSchemaRequest()->subject()->string_view(), write);
  return {"schema.register"};
}
audited get_schema(broker_core&, const native_request& q, needs& n) {
  const auto* req = q.env->body_as_GetSchemaRequest();
  if (req->subject()) {
    n.add(res_schema, req->subject()->string_view(), read);
    return {};
  }
  // By id: allowed when any subject holding the id may be read, checked in
  // authorize() so that a refusal does not name a subject (a walk over the
  // ids would list them all).
  return {};
}
audited list_subjects(broker_core&, const native_request&, needs&) {
  return {};
}
audited set_compatibility(broker_core&, const native_request& q, needs& n) {
  n.add(res_schema, q.env->body_as_SetCompatibilityRequest()->subject()->string_view(), alter);
  return {"schema.mode"};
}
audited set_topic_schema(broker_core&, const native_request& q, needs& n) {
  n.add(res_topic, q.env->body_as_SetTopicSchemaRequest()->topic()->string_view(), alter);
  return {"topic.schema"};
}
audited alter_topic(broker_core&, const native_request& q, needs& n) {
  n.add(res_topic, q.env->body_as_AlterTopicRequest()->name()->string_view(), alter);
  return {"topic.alter"};
}
audited add_acls(broker_core&, const native_request&, needs& n) {
  n.add(res_cluster, {}, alter);
  return {"acl.add"};
}
audited remove_acls(broker_core&, const native_request&, needs& n) {
  n.add(res_cluster, {}, alter);
  return {"acl.remove"};
}
audited list_acls(broker_core&, const native_request&, needs& n) {
  n.add(res_cluster, {}, describe);
  return {};
}

constexpr std::pair<Body, needs_fn> kNeeds[] = {
    {Body::CreateTopicRequest, &create_topic},
    {Body::DeleteTopicRequest, &delete_topic},
    {Body::ListTopicsRequest, &list_topics},
    {Body::DescribeTopicRequest, &describe_topic},
    {Body::ProduceRequest, &produce},
    {Body::FetchRequest, &fetch},
    {Body::ListOffsetsRequest, &list_offsets},
    {Body::JoinGroupRequest, &join_group},
    {Body::HeartbeatRequest, &heartbeat},
    {Body::LeaveGroupRequest, &leave_group},
    {Body::CommitOffsetsRequest, &commit_offsets},
    {Body::FetchOffsetsRequest, &fetch_offsets},
    {Body::ListGroupsRequest, &list_groups},
    {Body::DescribeGroupRequest, &describe_group},
    {Body::DeleteGroupRequest, &delete_group},
    {Body::InitProducerRequest, &init_producer},
    {Body::LedgerLookupRequest, &ledger_lookup},
    {Body::RegisterSchemaRequest, &register_schema},
    {Body::GetSchemaRequest, &get_schema},
    {Body::ListSubjectsRequest, &list_subjects},
    {Body::SetCompatibilityRequest, &set_compatibility},
    {Body::SetTopicSchemaRequest, &set_topic_schema},
    {Body::AlterTopicRequest, &alter_topic},
    {Body::AddAclsRequest, &add_acls},
    {Body::RemoveAclsRequest, &remove_acls},
    {Body::ListAclsRequest, &list_acls},
};

constexpr bool needs_follow_apis() {
  if (std::size(kNeeds) != protocol::kApis.size()) return false;
  for (std::size_t i = 0; i < std::size(kNeeds); ++i)
    if (kNeeds[i].first != protocol::kApis[i].request) return false;
  return true;
}
static_assert(needs_follow_apis(), "every API says what it needs, in kApis order");

nlohmann::json target_of(const need& n) {
  if (n.resource == res_cluster) return {{"cluster", "acls"}};
  return {{std::string(protocol::to_string(n.resource)), n.name}};
}

}  // namespace

void refuse_unauthorized(broker_core& c, native_request& q, acl_resource resource,
                         std::string_view name, acl_op op, const access_decision& d,
                         std::string_view audit_action) {
  c.stats.authz_failures
      .with({std::string(protocol::to_string(resource)), std::string(protocol::to_string(op))})
      .inc();
  auto message = refusal_message(q.principal, resource, name, op, d);
  if (!audit_action.empty())
    audit(c, q, audit_action, target_of({resource, name, op}), ErrorCode::NotAuthorized, message);
  q.respond(error_response(c.stats, q.id(), ErrorCode::NotAuthorized, message));
}

bool authorize(broker_core& c, native_request& q) {
  if (!c.access) return true;
  c.acls->refresh(steady::now());
  if (c.access->is_super(q.principal)) return true;
  needs n;
  const auto type = q.type();
  needs_fn fn = nullptr;
  for (const auto& [t, f] : kNeeds)
    if (t == type) fn = f;
  if (fn == nullptr) return true;  // not a request: the handler table refuses it
  const auto how = fn(c, q, n);
  // A producer id is for a principal that may write somewhere (Kafka asks
  // for IdempotentWrite on the cluster, or write on any topic).
  if (type == Body::InitProducerRequest &&
      !c.access->by_rules(q.principal, res_cluster, {}, write).allowed &&
      !c.access->allowed_somewhere(q.principal, res_topic, write)) {
    // Said in the message: write on a topic is the usual way to get one.
    refuse_unauthorized(c, q, res_cluster, {}, write,
                        {false, "no rule allows it (a producer id needs write on some topic)"}, {});
    return false;
  }
  if (type == Body::GetSchemaRequest && q.env->body_as_GetSchemaRequest()->subject() == nullptr) {
    const auto id = q.env->body_as_GetSchemaRequest()->id();
    bool readable = false;
    for (const auto& [subject, st] : c.registry->subjects())
      for (const auto& v : st.versions)
        if (v.id == id && !readable)
          readable = c.access->by_rules(q.principal, res_schema, subject, read).allowed;
    if (!readable) {
      c.stats.authz_failures.with({"schema", "read"}).inc();
      q.respond(error_response(
          c.stats, q.id(), ErrorCode::NotAuthorized,
          fmt::format("not authorized to read schema id {}: no subject holding it may be read by "
                      "{}; an administrator can allow the subject: ferry acls add --principal {} "
                      "--schema SUBJECT --operations read",
                      id, q.principal, q.principal)));
      return false;
    }
  }
  for (const auto& x : n.list()) {
    auto d = c.access->by_rules(q.principal, x.resource, x.name, x.op);
    if (d.allowed) continue;
    refuse_unauthorized(c, q, x.resource, x.name, x.op, d, how.action);
    return false;
  }
  return true;
}

bool may(broker_core& c, const native_request& q, acl_resource resource, std::string_view name,
         acl_op op) {
  if (!c.access) return true;
  return c.access->check(q.principal, resource, name, op).allowed;
}

}  // namespace ferry::broker
