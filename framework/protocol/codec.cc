#include "ferry/protocol/codec.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "ferry/protocol/errc.h"

namespace ferry::protocol {

using namespace ferry::wire;

bool valid_topic_name(std::string_view name) noexcept {
  // A leading '.' is reserved for the broker's own directories (.deleted-*).
  if (name.empty() || name.size() > 249 || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

bool valid_group_name(std::string_view name) noexcept {
  return valid_topic_name(name);
}

bool valid_subject_name(std::string_view name) noexcept {
  return valid_topic_name(name);
}

namespace {

struct checker {
  std::size_t frame_count;
  const limits& lim;
  std::string* why;
  std::vector<bool> frame_used;

  std::error_code fail(errc e, std::string reason) {
    if (why) *why = std::move(reason);
    return e;
  }

  template <typename V>
  std::error_code entries(const V* v, const char* what) {
    if (v == nullptr) return fail(errc::missing_field, fmt::format("{}: entries missing", what));
    if (v->size() > lim.max_entries)
      return fail(errc::too_many_entries,
                  fmt::format("{}: {} entries, limit {}", what, v->size(), lim.max_entries));
    return {};
  }

  std::error_code topic(const flatbuffers::String* s, const char* what, std::uint32_t i) {
    if (s == nullptr)
      return fail(errc::missing_field, fmt::format("{} entry {}: topic missing", what, i));
    if (!valid_topic_name(s->string_view()))
      return fail(errc::invalid_topic_name,
                  fmt::format("{} entry {}: invalid topic name", what, i));
    return {};
  }

  std::error_code group(const flatbuffers::String* s, const char* what) {
    if (s == nullptr) return fail(errc::missing_field, fmt::format("{}: group missing", what));
    if (!valid_group_name(s->string_view()))
      return fail(errc::invalid_group_name,
                  fmt::format("{}: invalid group name (use 1-249 of [A-Za-z0-9._-])", what));
    return {};
  }

  // Structure only: whether a rule makes sense (names, operations) is the
  // broker's answer (acl_rule_problem), with a message that says why.
  std::error_code acl_rules(const flatbuffers::Vector<flatbuffers::Offset<AclRule>>* v,
                            const char* what) {
    if (v == nullptr) return fail(errc::missing_field, fmt::format("{}: no rules", what));
    if (v->size() > lim.max_entries)
      return fail(errc::too_many_entries, fmt::format("{}: too many rules", what));
    for (std::uint32_t i = 0; i < v->size(); ++i) {
      const auto* r = v->Get(i);
      const auto res = static_cast<int>(r->resource());
      const auto pat = static_cast<int>(r->pattern());
      if (res > static_cast<int>(AclResource::MAX) || pat > static_cast<int>(AclPattern::MAX))
        return fail(errc::invalid_value,
                    fmt::format("{}: rule {}: unknown resource type or pattern", what, i));
      if (r->principal()->size() > 249 || (r->name() && r->name()->size() > 249))
        return fail(errc::invalid_value,
                    fmt::format("{}: rule {}: principal or name above 249 bytes", what, i));
    }
    return {};
  }

  std::error_code subject(const flatbuffers::String* s, const char* what, bool required = true) {
    if (s == nullptr) {
      if (!required) return {};
      return fail(errc::missing_field, fmt::format("{}: subject missing", what));
    }
    if (!valid_subject_name(s->string_view()))
      return fail(errc::invalid_value,
                  fmt::format("{}: invalid subject name (use 1-249 of [A-Za-z0-9._-])", what));
    return {};
  }

  std::error_code compatibility(Compatibility m, const char* what) {
    auto v = static_cast<int>(m);
    if (v < static_cast<int>(Compatibility::MIN) || v > static_cast<int>(Compatibility::MAX))
      return fail(errc::invalid_value, fmt::format("{}: unknown compatibility mode {}", what, v));
    return {};
  }

  std::error_code member(const GroupMember* m, const char* what) {
    if (m == nullptr) return fail(errc::missing_field, fmt::format("{}: member missing", what));
    if (auto ec = group(m->group(), what)) return ec;
    if (m->member_id() == nullptr || m->member_id()->size() == 0 || m->member_id()->size() > 255)
      return fail(errc::invalid_value, fmt::format("{}: member id must be 1-255 bytes", what));
    return {};
  }

  std::error_code commits(const flatbuffers::Vector<flatbuffers::Offset<CommitEntry>>* v,
                          const char* what) {
    if (auto ec = entries(v, what)) return ec;
    for (std::uint32_t i = 0; i < v->size(); ++i) {
      auto* e = v->Get(i);
      if (auto ec = topic(e->topic(), what, i)) return ec;
      if (auto ec = partition(e->partition(), what, i)) return ec;
      if (e->offset() < 0)
        return fail(errc::invalid_value, fmt::format("{} entry {}: negative offset", what, i));
      if (e->metadata() && e->metadata()->size() > 4096)
        return fail(errc::invalid_value,
                    fmt::format("{} entry {}: metadata above 4096 bytes", what, i));
      if (auto ec = ledger_keys(e->ledger_keys(), what)) return ec;
    }
    return {};
  }
  // Idempotency keys: 1..kMaxIdempotencyKeyBytes bytes each, bounded count.
  std::error_code ledger_keys(
      const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v, const char* what) {
    if (v == nullptr) return {};
    if (v->size() > kMaxLedgerKeysPerRequest)
      return fail(errc::too_many_entries, fmt::format("{}: {} idempotency keys, limit {}", what,
                                                      v->size(), kMaxLedgerKeysPerRequest));
    for (std::uint32_t i = 0; i < v->size(); ++i) {
      auto* k = v->Get(i);
      if (k == nullptr || k->size() == 0 || k->size() > kMaxIdempotencyKeyBytes)
        return fail(errc::invalid_value,
                    fmt::format("{}: idempotency key {} is empty or above {} bytes", what, i,
                                kMaxIdempotencyKeyBytes));
    }
    return {};
  }

  std::error_code topic_partitions(
      const flatbuffers::Vector<flatbuffers::Offset<TopicPartitions>>* v, const char* what) {
    if (v == nullptr) return {};
    if (auto ec = entries(v, what)) return ec;
    for (std::uint32_t i = 0; i < v->size(); ++i) {
      auto* e = v->Get(i);
      if (auto ec = topic(e->topic(), what, i)) return ec;
      if (e->partitions() && e->partitions()->size() > lim.max_entries)
        return fail(errc::too_many_entries,
                    fmt::format("{} entry {}: too many partitions", what, i));
      if (e->partitions())
        for (auto p : *e->partitions())
          if (auto ec = partition(p, what, i)) return ec;
    }
    return {};
  }

  std::error_code partition(std::int32_t p, const char* what, std::uint32_t i) {
    if (p < 0)
      return fail(errc::invalid_value,
                  fmt::format("{} entry {}: negative partition {}", what, i, p));
    return {};
  }

  std::error_code frame_ref(std::uint32_t f, std::uint32_t i) {
    if (f == 0 || f >= frame_count)
      return fail(errc::bad_frame_reference,
                  fmt::format("produce entry {}: frame {} not in 1..{}", i, f,
                              frame_count == 0 ? 0 : frame_count - 1));
    if (frame_used[f])
      return fail(errc::bad_frame_reference,
                  fmt::format("produce entry {}: frame {} reused", i, f));
    frame_used[f] = true;
    return {};
  }

  std::error_code check_request(const Envelope& env) {
    switch (env.body_type()) {
      case Body::CreateTopicRequest: {
        auto* r = env.body_as_CreateTopicRequest();
        if (r->name() == nullptr) return fail(errc::missing_field, "create topic: name missing");
        if (!valid_topic_name(r->name()->string_view()))
          return fail(errc::invalid_topic_name,
                      "create topic: invalid topic name (use 1-249 of [A-Za-z0-9._-])");
        return {};
      }
      case Body::DeleteTopicRequest:
        if (env.body_as_DeleteTopicRequest()->name() == nullptr)
          return fail(errc::missing_field, "delete topic: name missing");
        return {};
      case Body::DescribeTopicRequest:
        if (env.body_as_DescribeTopicRequest()->name() == nullptr)
          return fail(errc::missing_field, "describe topic: name missing");
        return {};
      case Body::ListTopicsRequest:
        return {};
      case Body::ProduceRequest: {
        auto* r = env.body_as_ProduceRequest();
        if (auto ec = entries(r->entries(), "produce")) return ec;
        frame_used.assign(frame_count, false);
        for (std::uint32_t i = 0; i < r->entries()->size(); ++i) {
          auto* e = r->entries()->Get(i);
          if (auto ec = topic(e->topic(), "produce", i)) return ec;
          if (auto ec = partition(e->partition(), "produce", i)) return ec;
          if (auto ec = frame_ref(e->frame(), i)) return ec;
        }
        if (r->timeout_ms() < 0) return fail(errc::invalid_value, "produce: negative timeout");
        return {};
      }
      case Body::FetchRequest: {
        auto* r = env.body_as_FetchRequest();
        if (auto ec = entries(r->entries(), "fetch")) return ec;
        for (std::uint32_t i = 0; i < r->entries()->size(); ++i) {
          auto* e = r->entries()->Get(i);
          if (auto ec = topic(e->topic(), "fetch", i)) return ec;
          if (auto ec = partition(e->partition(), "fetch", i)) return ec;
          if (e->max_bytes() <= 0)
            return fail(errc::invalid_value, fmt::format("fetch entry {}: max_bytes <= 0", i));
        }
        if (r->max_wait_ms() < 0 || r->max_bytes() <= 0)
          return fail(errc::invalid_value, "fetch: negative max_wait_ms or max_bytes <= 0");
        if (r->member())
          if (auto ec = member(r->member(), "fetch")) return ec;
        if (r->commit()) {
          if (!r->member()) return fail(errc::missing_field, "fetch: commit without member");
          if (auto ec = commits(r->commit(), "fetch commit")) return ec;
        }
        return {};
      }
      case Body::JoinGroupRequest: {
        auto* r = env.body_as_JoinGroupRequest();
        if (auto ec = group(r->group(), "join group")) return ec;
        if (r->member_id() && r->member_id()->size() > 255)
          return fail(errc::invalid_value, "join group: member id above 255 bytes");
        if (r->client_id() && r->client_id()->size() > 255)
          return fail(errc::invalid_value, "join group: client id above 255 bytes");
        if (r->topics() == nullptr || r->topics()->size() == 0)
          return fail(errc::missing_field, "join group: no topics");
        if (r->topics()->size() > lim.max_entries)
          return fail(errc::too_many_entries, "join group: too many topics");
        for (std::uint32_t i = 0; i < r->topics()->size(); ++i)
          if (auto ec = topic(r->topics()->Get(i), "join group", i)) return ec;
        auto st = static_cast<int>(r->strategy());
        if (st < static_cast<int>(AssignStrategy::MIN) ||
            st > static_cast<int>(AssignStrategy::MAX))
          return fail(errc::invalid_value, fmt::format("join group: unknown strategy {}", st));
        if (r->session_timeout_ms() < 100 || r->rebalance_timeout_ms() < 100)
          return fail(errc::invalid_value,
                      "join group: session and rebalance timeouts must be at least 100 ms");
        return {};
      }
      case Body::HeartbeatRequest:
        return member(env.body_as_HeartbeatRequest()->member(), "heartbeat");
      case Body::LeaveGroupRequest: {
        auto* r = env.body_as_LeaveGroupRequest();
        if (auto ec = group(r->group(), "leave group")) return ec;
        if (r->member_id() == nullptr)
          return fail(errc::missing_field, "leave group: member id missing");
        return {};
      }
      case Body::CommitOffsetsRequest: {
        auto* r = env.body_as_CommitOffsetsRequest();
        if (auto ec = group(r->group(), "commit offsets")) return ec;
        if (r->member()) {
          if (auto ec = member(r->member(), "commit offsets")) return ec;
          if (r->member()->group()->string_view() != r->group()->string_view())
            return fail(errc::invalid_value, "commit offsets: member of another group");
          if (r->reset())
            return fail(errc::invalid_value, "commit offsets: a member cannot reset offsets");
        }
        return commits(r->entries(), "commit offsets");
      }
      case Body::FetchOffsetsRequest: {
        auto* r = env.body_as_FetchOffsetsRequest();
        if (auto ec = group(r->group(), "fetch offsets")) return ec;
        return topic_partitions(r->partitions(), "fetch offsets");
      }
      case Body::ListGroupsRequest:
        return {};
      case Body::DescribeGroupRequest:
        return group(env.body_as_DescribeGroupRequest()->group(), "describe group");
      case Body::DeleteGroupRequest:
        return group(env.body_as_DeleteGroupRequest()->group(), "delete group");
      case Body::InitProducerRequest: {
        auto* r = env.body_as_InitProducerRequest();
        if (r->name() && (r->name()->size() == 0 || r->name()->size() > 255))
          return fail(errc::invalid_value, "init producer: name must be 1-255 bytes");
        return {};
      }
      case Body::LedgerLookupRequest: {
        auto* r = env.body_as_LedgerLookupRequest();
        if (auto ec = group(r->group(), "ledger lookup")) return ec;
        if (r->keys() == nullptr) return fail(errc::missing_field, "ledger lookup: keys missing");
        if (r->window_ms() < 0) return fail(errc::invalid_value, "ledger lookup: negative window");
        return ledger_keys(r->keys(), "ledger lookup");
      }
      case Body::RegisterSchemaRequest: {
        auto* r = env.body_as_RegisterSchemaRequest();
        if (auto ec = subject(r->subject(), "register schema")) return ec;
        if (r->schema() == nullptr || r->schema()->size() == 0)
          return fail(errc::missing_field, "register schema: schema missing");
        if (r->schema()->size() > kMaxSchemaBytes ||
            (r->source() && r->source()->size() > kMaxSchemaBytes))
          return fail(
              errc::invalid_value,
              fmt::format("register schema: schema or source above {} bytes", kMaxSchemaBytes));
        auto a = static_cast<int>(r->action());
        if (a < static_cast<int>(SchemaAction::MIN) || a > static_cast<int>(SchemaAction::MAX))
          return fail(errc::invalid_value, fmt::format("register schema: unknown action {}", a));
        return {};
      }
      case Body::GetSchemaRequest: {
        auto* r = env.body_as_GetSchemaRequest();
        if ((r->id() < 0) == (r->subject() == nullptr))
          return fail(errc::missing_field, "get schema: give an id or a subject (one of them)");
        if (r->version() == 0 || r->version() < -1)
          return fail(errc::invalid_value, "get schema: version must be -1 (latest) or >= 1");
        return subject(r->subject(), "get schema", false);
      }
      case Body::ListSubjectsRequest:
        return {};
      case Body::SetCompatibilityRequest: {
        auto* r = env.body_as_SetCompatibilityRequest();
        if (auto ec = subject(r->subject(), "set compatibility")) return ec;
        return compatibility(r->mode(), "set compatibility");
      }
      case Body::SetTopicSchemaRequest: {
        auto* r = env.body_as_SetTopicSchemaRequest();
        if (auto ec = topic(r->topic(), "set topic schema", 0)) return ec;
        if (r->subject() && r->subject()->size() > 0)
          return subject(r->subject(), "set topic schema");
        return {};
      }
      case Body::AddAclsRequest:
        return acl_rules(env.body_as_AddAclsRequest()->rules(), "add acls");
      case Body::RemoveAclsRequest:
        return acl_rules(env.body_as_RemoveAclsRequest()->rules(), "remove acls");
      case Body::ListAclsRequest: {
        auto* r = env.body_as_ListAclsRequest();
        if (r->principal() && r->principal()->size() > 249)
          return fail(errc::invalid_value, "list acls: principal above 249 bytes");
        return {};
      }
      case Body::AlterTopicRequest: {
        auto* r = env.body_as_AlterTopicRequest();
        if (auto ec = topic(r->name(), "alter topic", 0)) return ec;
        if (r->partitions() < 0)
          return fail(errc::invalid_value, "alter topic: negative partitions");
        return {};
      }
      case Body::ListOffsetsRequest: {
        auto* r = env.body_as_ListOffsetsRequest();
        if (auto ec = entries(r->entries(), "list offsets")) return ec;
        for (std::uint32_t i = 0; i < r->entries()->size(); ++i) {
          auto* e = r->entries()->Get(i);
          if (auto ec = topic(e->topic(), "list offsets", i)) return ec;
          if (auto ec = partition(e->partition(), "list offsets", i)) return ec;
          auto spec = static_cast<int>(e->spec());
          if (spec < static_cast<int>(OffsetSpec::MIN) || spec > static_cast<int>(OffsetSpec::MAX))
            return fail(errc::invalid_value,
                        fmt::format("list offsets entry {}: unknown spec {}", i, spec));
        }
        return {};
      }
      default:
        return fail(errc::unknown_message, "not a request type");
    }
  }

  static bool error_code_ok(ErrorCode e) {
    return static_cast<int>(e) >= static_cast<int>(ErrorCode::MIN) &&
           static_cast<int>(e) <= static_cast<int>(ErrorCode::MAX);
  }

  std::error_code check_response(const Envelope& env) {
    auto bad_error = [&] { return fail(errc::invalid_value, "unknown error code"); };
    switch (env.body_type()) {
      case Body::CreateTopicResponse:
        return error_code_ok(env.body_as_CreateTopicResponse()->error()) ? std::error_code()
                                                                         : bad_error();
      case Body::DeleteTopicResponse:
        return error_code_ok(env.body_as_DeleteTopicResponse()->error()) ? std::error_code()
                                                                         : bad_error();
      case Body::ListTopicsResponse:
        return {};
      case Body::DescribeTopicResponse: {
        auto* r = env.body_as_DescribeTopicResponse();
        if (!error_code_ok(r->error())) return bad_error();
        if (r->partitions())
          for (auto* p : *r->partitions())
            if (!error_code_ok(p->error())) return bad_error();
        return {};
      }
      case Body::ProduceResponse: {
        auto* r = env.body_as_ProduceResponse();
        if (r->results() == nullptr)
          return fail(errc::missing_field, "produce response: results missing");
        for (auto* x : *r->results())
          if (!error_code_ok(x->error())) return bad_error();
        return {};
      }
      case Body::FetchResponse: {
        auto* r = env.body_as_FetchResponse();
        if (r->results() == nullptr)
          return fail(errc::missing_field, "fetch response: results missing");
        frame_used.assign(frame_count, false);
        if (!error_code_ok(r->group_error())) return bad_error();
        if (r->commit_results())
          for (auto* x : *r->commit_results())
            if (!error_code_ok(x->error())) return bad_error();
        for (std::uint32_t i = 0; i < r->results()->size(); ++i) {
          auto* x = r->results()->Get(i);
          if (!error_code_ok(x->error())) return bad_error();
          if (x->frame() != 0 && (x->frame() >= frame_count || frame_used[x->frame()]))
            return fail(errc::bad_frame_reference,
                        fmt::format("fetch result {}: bad frame {}", i, x->frame()));
          if (x->frame() != 0) frame_used[x->frame()] = true;
        }
        return {};
      }
      case Body::ListOffsetsResponse: {
        auto* r = env.body_as_ListOffsetsResponse();
        if (r->results() == nullptr)
          return fail(errc::missing_field, "list offsets response: results missing");
        for (auto* x : *r->results())
          if (!error_code_ok(x->error())) return bad_error();
        return {};
      }
      case Body::ErrorResponse:
        return error_code_ok(env.body_as_ErrorResponse()->error()) ? std::error_code()
                                                                   : bad_error();
      case Body::JoinGroupResponse:
        return error_code_ok(env.body_as_JoinGroupResponse()->error()) ? std::error_code()
                                                                       : bad_error();
      case Body::HeartbeatResponse:
        return error_code_ok(env.body_as_HeartbeatResponse()->error()) ? std::error_code()
                                                                       : bad_error();
      case Body::LeaveGroupResponse:
        return error_code_ok(env.body_as_LeaveGroupResponse()->error()) ? std::error_code()
                                                                        : bad_error();
      case Body::CommitOffsetsResponse: {
        auto* r = env.body_as_CommitOffsetsResponse();
        if (!error_code_ok(r->error())) return bad_error();
        if (r->results())
          for (auto* x : *r->results())
            if (!error_code_ok(x->error())) return bad_error();
        return {};
      }
      case Body::FetchOffsetsResponse:
        return error_code_ok(env.body_as_FetchOffsetsResponse()->error()) ? std::error_code()
                                                                          : bad_error();
      case Body::ListGroupsResponse:
        return {};
      case Body::DescribeGroupResponse: {
        auto* r = env.body_as_DescribeGroupResponse();
        if (!error_code_ok(r->error())) return bad_error();
        if (r->partitions())
          for (auto* x : *r->partitions())
            if (!error_code_ok(x->error())) return bad_error();
        return {};
      }
      case Body::DeleteGroupResponse:
        return error_code_ok(env.body_as_DeleteGroupResponse()->error()) ? std::error_code()
                                                                         : bad_error();
      case Body::InitProducerResponse:
        return error_code_ok(env.body_as_InitProducerResponse()->error()) ? std::error_code()
                                                                          : bad_error();
      case Body::LedgerLookupResponse:
        return error_code_ok(env.body_as_LedgerLookupResponse()->error()) ? std::error_code()
                                                                          : bad_error();
      case Body::RegisterSchemaResponse: {
        auto* r = env.body_as_RegisterSchemaResponse();
        if (!error_code_ok(r->error())) return bad_error();
        return compatibility(r->mode(), "register schema response");
      }
      case Body::GetSchemaResponse:
        return error_code_ok(env.body_as_GetSchemaResponse()->error()) ? std::error_code()
                                                                       : bad_error();
      case Body::ListSubjectsResponse: {
        auto* r = env.body_as_ListSubjectsResponse();
        if (r->subjects())
          for (auto* x : *r->subjects())
            if (auto ec = compatibility(x->mode(), "list subjects response")) return ec;
        return compatibility(r->default_mode(), "list subjects response");
      }
      case Body::SetCompatibilityResponse:
        return error_code_ok(env.body_as_SetCompatibilityResponse()->error()) ? std::error_code()
                                                                              : bad_error();
      case Body::SetTopicSchemaResponse:
        return error_code_ok(env.body_as_SetTopicSchemaResponse()->error()) ? std::error_code()
                                                                            : bad_error();
      case Body::AlterTopicResponse:
        return error_code_ok(env.body_as_AlterTopicResponse()->error()) ? std::error_code()
                                                                        : bad_error();
      case Body::AddAclsResponse:
        return error_code_ok(env.body_as_AddAclsResponse()->error()) ? std::error_code()
                                                                     : bad_error();
      case Body::RemoveAclsResponse:
        return error_code_ok(env.body_as_RemoveAclsResponse()->error()) ? std::error_code()
                                                                        : bad_error();
      case Body::ListAclsResponse: {
        auto* r = env.body_as_ListAclsResponse();
        if (!error_code_ok(r->error())) return bad_error();
        return r->rules() ? acl_rules(r->rules(), "list acls response") : std::error_code();
      }
      default:
        return fail(errc::unknown_message, "not a response type");
    }
  }
};

}  // namespace

result<const Envelope*> decode_envelope(std::span<const std::byte> frame0, std::size_t frame_count,
                                        direction dir, const limits& lim, std::string* why) {
  checker c{frame_count, lim, why, {}};
  if (frame0.size() > lim.max_envelope_bytes)
    return c.fail(errc::frame_too_large, fmt::format("envelope of {} bytes, limit {}",
                                                     frame0.size(), lim.max_envelope_bytes));
  if (frame_count > lim.max_frames)
    return c.fail(errc::too_many_entries,
                  fmt::format("{} frames, limit {}", frame_count, lim.max_frames));
  const auto* data = reinterpret_cast<const std::uint8_t*>(frame0.data());
  if (frame0.size() < 8 || !EnvelopeBufferHasIdentifier(data))
    return c.fail(errc::malformed_frame, "not a Ferry envelope (missing FRY1 identifier)");
  flatbuffers::Verifier v(data, frame0.size(), lim.max_depth, lim.max_tables);
  if (!VerifyEnvelopeBuffer(v))
    return c.fail(errc::malformed_frame, "envelope failed FlatBuffers verification");
  const Envelope* env = GetEnvelope(data);
  if (env->version() != kProtocolVersion)
    return c.fail(errc::unsupported_version, fmt::format("protocol version {}, this side speaks {}",
                                                         env->version(), kProtocolVersion));
  auto type = static_cast<int>(env->body_type());
  if (type <= static_cast<int>(Body::NONE) || type > static_cast<int>(Body::MAX) ||
      env->body() == nullptr)
    return c.fail(errc::unknown_message, fmt::format("unknown message type {}", type));
  if (dir == direction::request) {
    if (!is_request(env->body_type()))
      return c.fail(errc::unknown_message, "a response sent as a request");
    if (auto ec = c.check_request(*env)) return ec;
  } else {
    if (is_request(env->body_type()))
      return c.fail(errc::unknown_message, "a request sent as a response");
    if (auto ec = c.check_response(*env)) return ec;
  }
  return env;
}

std::optional<std::uint64_t> request_id_of(std::span<const std::byte> frame0, const limits& lim) {
  if (frame0.size() > lim.max_envelope_bytes || frame0.size() < 8) return std::nullopt;
  const auto* data = reinterpret_cast<const std::uint8_t*>(frame0.data());
  if (!EnvelopeBufferHasIdentifier(data)) return std::nullopt;
  flatbuffers::Verifier v(data, frame0.size(), lim.max_depth, lim.max_tables);
  // A body type this side does not know verifies as opaque: its id is readable.
  if (!VerifyEnvelopeBuffer(v)) return std::nullopt;
  return GetEnvelope(data)->request_id();
}

std::vector<std::byte> finish_envelope(flatbuffers::FlatBufferBuilder& fbb,
                                       std::uint64_t request_id, Body type,
                                       flatbuffers::Offset<void> body, std::uint32_t throttle_ms) {
  auto env = CreateEnvelope(fbb, kProtocolVersion, request_id, type, body, throttle_ms);
  FinishEnvelopeBuffer(fbb, env);
  auto s = as_bytes(fbb);
  return {s.begin(), s.end()};
}

}  // namespace ferry::protocol
