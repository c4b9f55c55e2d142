// What every native handler shares: building envelopes and the table.
#include <map>
#include <utility>

#include "ferry/protocol/codec.h"
#include "native.h"

namespace ferry::broker {

using namespace ferry::wire;

native_response envelope(flatbuffers::FlatBufferBuilder& fbb, std::uint64_t request_id, Body type,
                         flatbuffers::Offset<void> body, std::uint32_t throttle_ms) {
  native_response r;
  r.envelope = protocol::finish_envelope(fbb, request_id, type, body, throttle_ms);
  return r;
}

native_response error_response(broker_metrics& stats, std::uint64_t request_id, ErrorCode code,
                               const std::string& message) {
  stats.refuse(code);
  flatbuffers::FlatBufferBuilder fbb(128);
  auto body = CreateErrorResponse(fbb, code, fbb.CreateString(message));
  return envelope(fbb, request_id, Body::ErrorResponse, body.Union());
}

flatbuffers::Offset<flatbuffers::String> opt_string(flatbuffers::FlatBufferBuilder& fbb,
                                                    std::string_view s) {
  return s.empty() ? 0 : fbb.CreateString(s);
}

std::vector<flatbuffers::Offset<TopicPartitions>> topic_partitions(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<tp_key>& tps) {
  std::map<std::string, std::vector<std::int32_t>> by_topic;
  for (const auto& [t, p] : tps) by_topic[t].push_back(p);
  std::vector<flatbuffers::Offset<TopicPartitions>> out;
  for (const auto& [t, ps] : by_topic)
    out.push_back(CreateTopicPartitionsDirect(fbb, t.c_str(), &ps));
  return out;
}

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<CommitResult>>> commit_results(
    flatbuffers::FlatBufferBuilder& fbb, broker_metrics& stats, const staged_commit& s) {
  std::vector<flatbuffers::Offset<CommitResult>> v;
  v.reserve(s.entries.size());
  for (const auto& o : s.entries) {
    const auto err = s.error_of(o);
    stats.refuse(err);
    v.push_back(CreateCommitResult(fbb, fbb.CreateString(o.topic), o.partition, err,
                                   opt_string(fbb, s.message_of(o))));
  }
  return fbb.CreateVector(v);
}

std::vector<commit_entry> commit_entries(
    const flatbuffers::Vector<flatbuffers::Offset<CommitEntry>>* entries) {
  std::vector<commit_entry> out;
  out.reserve(entries->size());
  for (const auto* e : *entries) {
    commit_entry c;
    c.topic = e->topic()->string_view();
    c.partition = e->partition();
    c.offset = e->offset();
    if (e->metadata()) c.metadata = e->metadata()->string_view();
    if (e->ledger_keys()) {
      c.ledger_keys.reserve(e->ledger_keys()->size());
      for (const auto* k : *e->ledger_keys()) c.ledger_keys.push_back(k->string_view());
    }
    out.push_back(std::move(c));
  }
  return out;
}

// --- the table ---------------------------------------------------------------

namespace {

constexpr std::pair<Body, native_handler> kHandlers[] = {
    {Body::CreateTopicRequest, &handle_create_topic},
    {Body::DeleteTopicRequest, &handle_delete_topic},
    {Body::ListTopicsRequest, &handle_list_topics},
    {Body::DescribeTopicRequest, &handle_describe_topic},
    {Body::ProduceRequest, &handle_produce},
    {Body::FetchRequest, &handle_fetch},
    {Body::ListOffsetsRequest, &handle_list_offsets},
    {Body::JoinGroupRequest, &handle_join_group},
    {Body::HeartbeatRequest, &handle_heartbeat},
    {Body::LeaveGroupRequest, &handle_leave_group},
    {Body::CommitOffsetsRequest, &handle_commit_offsets},
    {Body::FetchOffsetsRequest, &handle_fetch_offsets},
    {Body::ListGroupsRequest, &handle_list_groups},
    {Body::DescribeGroupRequest, &handle_describe_group},
    {Body::DeleteGroupRequest, &handle_delete_group},
    {Body::InitProducerRequest, &handle_init_producer},
    {Body::LedgerLookupRequest, &handle_ledger_lookup},
    {Body::RegisterSchemaRequest, &handle_register_schema},
    {Body::GetSchemaRequest, &handle_get_schema},
    {Body::ListSubjectsRequest, &handle_list_subjects},
    {Body::SetCompatibilityRequest, &handle_set_compatibility},
    {Body::SetTopicSchemaRequest, &handle_set_topic_schema},
    {Body::AlterTopicRequest, &handle_alter_topic},
    {Body::AddAclsRequest, &handle_add_acls},
    {Body::RemoveAclsRequest, &handle_remove_acls},
    {Body::ListAclsRequest, &handle_list_acls},
};

// One handler per API of protocol::kApis, in its order.
constexpr bool table_follows_apis() {
  if (std::size(kHandlers) != protocol::kApis.size()) return false;
  for (std::size_t i = 0; i < protocol::kApis.size(); ++i)
    if (kHandlers[i].first != protocol::kApis[i].request) return false;
  return true;
}
static_assert(table_follows_apis(), "every API of protocol::kApis needs its handler, in order");

}  // namespace

native_handler find_native_handler(Body type) noexcept {
  for (const auto& [t, h] : kHandlers)
    if (t == type) return h;
  return nullptr;
}

std::span<const std::pair<Body, native_handler>> native_handlers() noexcept {
  return kHandlers;
}

work native_work(std::unique_ptr<native_request> q) {
  // The pipeline runs work on the core thread only (pipeline.h).
  return [q = std::move(q)](round& r) mutable {
    core_thread.assert_held();  // the pipeline runs work on the core thread only
    if (!authorize(r.core(), *q)) return;
    find_native_handler(q->type())(r, std::move(q));
  };
}

void audit(broker_core& c, const native_request& q, std::string_view action,
           const nlohmann::json& target, ErrorCode error, std::string_view message) {
  if (c.audit) c.audit->record(q.principal, q.peer, action, target, error, message);
}

}  // namespace ferry::broker
