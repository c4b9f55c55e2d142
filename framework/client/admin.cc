#include "ferry/client/admin.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "ferry/client/connection.h"
#include "ferry/client/errc.h"
#include "ferry/core/errc.h"
#include "ferry/protocol/codec.h"
#include "kafka_admin.h"
#include "rpc.h"
#include "transport.h"

namespace ferry::client {

namespace {
std::string str(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

constexpr const char* kGroupNameRule =
    "group names are 1-249 characters from [A-Za-z0-9._-], not starting with '.'";

std::string strategy_name(wire::AssignStrategy s) {
  switch (s) {
    case wire::AssignStrategy::Sticky:
      return "sticky";
    case wire::AssignStrategy::Range:
      return "range";
    case wire::AssignStrategy::RoundRobin:
      return "round-robin";
  }
  return "unknown";
}

// topic -> partitions, for the TopicPartitions lists of the wire.
std::vector<flatbuffers::Offset<wire::TopicPartitions>> by_topic(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<topic_partition>& tps) {
  std::map<std::string, std::vector<std::int32_t>> grouped;
  for (const auto& tp : tps) grouped[tp.topic].push_back(tp.partition.value());
  std::vector<flatbuffers::Offset<wire::TopicPartitions>> out;
  out.reserve(grouped.size());
  for (const auto& [t, ps] : grouped)
    out.push_back(wire::CreateTopicPartitionsDirect(fbb, t.c_str(), &ps));
  return out;
}

std::vector<topic_partition> from_wire_tps(
    const flatbuffers::Vector<flatbuffers::Offset<wire::TopicPartitions>>* v) {
  std::vector<topic_partition> out;
  if (v == nullptr) return out;
  for (const auto* tp : *v) {
    if (tp->partitions() == nullptr) continue;
    for (auto p : *tp->partitions()) out.push_back({str(tp->topic()), partition_id(p)});
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Checks the partitions a caller names: topic name and a non-negative
// partition, as the broker's decoder would.
result<void> check_partitions(const std::vector<topic_partition>& tps, std::string* message) {
  for (const auto& tp : tps) {
    if (!protocol::valid_topic_name(tp.topic)) {
      *message = "invalid topic name '" + tp.topic + "'";
      return errc::invalid_topic_name;
    }
    if (tp.partition.value() < 0) {
      *message = "negative partition for topic " + tp.topic;
      return ferry::errc::invalid_argument;
    }
  }
  return success();
}
}  // namespace

admin::admin(client_options options) : options_(std::move(options)) {
  if (is_kafka_url(options_.broker))
    kafka_ = std::make_unique<kafka_admin>(options_);
  else
    conn_ = std::make_unique<connection>(options_);
}
admin::~admin() = default;
admin::admin(admin&&) noexcept = default;
admin& admin::operator=(admin&&) noexcept = default;

result<void> admin::create_topic(std::string_view name, const topic_config& config) {
  if (kafka_) return kafka_->create_topic(name, config, &last_error_message_);
  last_error_message_.clear();
  if (!protocol::valid_topic_name(name)) {
    last_error_message_ = "topic names are 1-249 characters from [A-Za-z0-9._-], not '.' or '..'";
    return errc::invalid_topic_name;
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<void>(
      *conn_, deadline, detail::retry_timeouts::no,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto n = fbb.CreateString(name.data(), name.size());
        auto c = wire::CreateTopicConfig(
            fbb, config.partitions, config.retention_ms, config.retention_bytes,
            config.max_message_bytes, config.segment_bytes,
            config.schema_subject.empty() ? 0 : fbb.CreateString(config.schema_subject),
            config.schema_validation);
        return std::pair{wire::Body::CreateTopicRequest,
                         wire::CreateCreateTopicRequest(fbb, n, c).Union()};
      },
      [&](const reply& r) -> result<void> {
        FERRY_TRY(detail::expect_body(r, wire::Body::CreateTopicResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_CreateTopicResponse();
        if (auto ec = from_wire(resp->error())) {
          last_error_message_ = str(resp->message());
          return ec;
        }
        return success();
      });
}

result<void> admin::delete_topic(std::string_view name) {
  if (kafka_) return kafka_->delete_topic(name, &last_error_message_);
  last_error_message_.clear();
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<void>(
      *conn_, deadline, detail::retry_timeouts::no,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto n = fbb.CreateString(name.data(), name.size());
        return std::pair{wire::Body::DeleteTopicRequest,
                         wire::CreateDeleteTopicRequest(fbb, n).Union()};
      },
      [&](const reply& r) -> result<void> {
        FERRY_TRY(detail::expect_body(r, wire::Body::DeleteTopicResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_DeleteTopicResponse();
        if (auto ec = from_wire(resp->error())) {
          last_error_message_ = str(resp->message());
          return ec;
        }
        return success();
      });
}

result<topic_config> admin::alter_topic(std::string_view name, const topic_changes& changes) {
  if (kafka_) return kafka_->alter_topic(name, changes, &last_error_message_);
  last_error_message_.clear();
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<topic_config>(
      *conn_, deadline, detail::retry_timeouts::no,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto n = fbb.CreateString(name.data(), name.size());
        auto req = wire::CreateAlterTopicRequest(
            fbb, n, changes.partitions.value_or(0), changes.retention_ms.value_or(-2),
            changes.retention_bytes.value_or(-2), changes.max_message_bytes.value_or(0),
            changes.validate_only);
        return std::pair{wire::Body::AlterTopicRequest, req.Union()};
      },
      [&](const reply& r) -> result<topic_config> {
        FERRY_TRY(detail::expect_body(r, wire::Body::AlterTopicResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_AlterTopicResponse();
        if (auto ec = from_wire(resp->error())) {
          last_error_message_ = str(resp->message());
          return ec;
        }
        return detail::config_from_wire(resp->config());
      });
}

result<std::vector<topic_summary>> admin::list_topics() {
  if (kafka_) return kafka_->list_topics(&last_error_message_);
  last_error_message_.clear();
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<std::vector<topic_summary>>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        return std::pair{wire::Body::ListTopicsRequest, wire::CreateListTopicsRequest(fbb).Union()};
      },
      [&](const reply& r) -> result<std::vector<topic_summary>> {
        FERRY_TRY(detail::expect_body(r, wire::Body::ListTopicsResponse, &last_error_message_));
        std::vector<topic_summary> out;
        if (const auto* ts = r.envelope().body_as_ListTopicsResponse()->topics()) {
          out.reserve(ts->size());
          for (const auto* t : *ts) out.push_back({str(t->name()), t->partitions()});
        }
        return out;
      });
}

result<topic_description> admin::describe_topic(std::string_view name) {
  if (kafka_) return kafka_->describe_topic(name, &last_error_message_);
  last_error_message_.clear();
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<topic_description>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) { return detail::build_describe_topic(fbb, name); },
      [&](const reply& r) { return detail::parse_describe_topic(r, &last_error_message_); });
}

result<std::optional<offset>> admin::list_offsets(std::string_view topic, partition_id partition,
                                                  offset_spec spec, timestamp_ms timestamp) {
  if (kafka_) return kafka_->list_offsets(topic, partition, spec, timestamp, &last_error_message_);
  last_error_message_.clear();
  if (!protocol::valid_topic_name(topic)) return errc::invalid_topic_name;
  if (partition.value() < 0) return ferry::errc::invalid_argument;
  const detail::offset_query q{{std::string(topic), partition}, spec, timestamp};
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<std::optional<offset>>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        return detail::build_list_offsets(fbb, {&q, 1});
      },
      [&](const reply& r) -> result<std::optional<offset>> {
        FERRY_TRY(auto answers, detail::parse_list_offsets(r, {&q, 1}, &last_error_message_));
        if (answers[0].error) return answers[0].error;
        if (answers[0].offset < 0) return std::optional<offset>();
        return std::optional<offset>(offset(answers[0].offset));
      });
}

// --- consumer groups -------------------------------------------------------

result<std::vector<group_summary>> admin::list_groups() {
  if (kafka_) return kafka_->list_groups(&last_error_message_);
  last_error_message_.clear();
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<std::vector<group_summary>>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        return std::pair{wire::Body::ListGroupsRequest, wire::CreateListGroupsRequest(fbb).Union()};
      },
      [&](const reply& r) -> result<std::vector<group_summary>> {
        FERRY_TRY(detail::expect_body(r, wire::Body::ListGroupsResponse, &last_error_message_));
        std::vector<group_summary> out;
        if (const auto* gs = r.envelope().body_as_ListGroupsResponse()->groups()) {
          out.reserve(gs->size());
          for (const auto* g : *gs)
            out.push_back({str(g->group()), str(g->state()), g->members(), g->generation()});
        }
        std::sort(out.begin(), out.end(),
                  [](const auto& a, const auto& b) { return a.group < b.group; });
        return out;
      });
}

result<group_description> admin::describe_group(std::string_view group) {
  if (kafka_) return kafka_->describe_group(group, &last_error_message_);
  last_error_message_.clear();
  if (!protocol::valid_group_name(group)) {
    last_error_message_ = kGroupNameRule;
    return errc::invalid_group_name;
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<group_description>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto g = fbb.CreateString(group.data(), group.size());
        return std::pair{wire::Body::DescribeGroupRequest,
                         wire::CreateDescribeGroupRequest(fbb, g).Union()};
      },
      [&](const reply& r) -> result<group_description> {
        FERRY_TRY(detail::expect_body(r, wire::Body::DescribeGroupResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_DescribeGroupResponse();
        if (auto ec = from_wire(resp->error())) {
          last_error_message_ = str(resp->message());
          return ec;
        }
        group_description d;
        d.group = str(resp->group());
        d.state = str(resp->state());
        d.generation = resp->generation();
        d.strategy = resp->protocol() ? str(resp->protocol()) : strategy_name(resp->strategy());
        d.broker_time = timestamp_ms(resp->broker_time_ms());
        if (const auto* ms = resp->members()) {
          d.members.reserve(ms->size());
          for (const auto* m : *ms) {
            group_member_info info;
            info.member_id = str(m->member_id());
            info.client_id = str(m->client_id());
            info.host = str(m->host());
            if (m->topics())
              for (const auto* t : *m->topics()) info.topics.push_back(t->str());
            info.assignment = from_wire_tps(m->assignment());
            info.since_seen = std::chrono::milliseconds(m->last_seen_ms_ago());
            info.instance_id = str(m->group_instance_id());
            d.members.push_back(std::move(info));
          }
        }
        if (const auto* ps = resp->partitions()) {
          d.partitions.reserve(ps->size());
          for (const auto* p : *ps) {
            group_partition_info info;
            info.tp = {str(p->topic()), partition_id(p->partition())};
            if (p->committed() >= 0) info.committed = offset(p->committed());
            if (p->log_end() >= 0) info.log_end = offset(p->log_end());
            if (p->log_start() >= 0) info.log_start = offset(p->log_start());
            if (p->oldest_unconsumed_timestamp() >= 0)
              info.oldest_unconsumed = timestamp_ms(p->oldest_unconsumed_timestamp());
            info.member_id = str(p->member_id());
            info.metadata = str(p->metadata());
            info.error = from_wire(p->error());
            d.partitions.push_back(std::move(info));
          }
        }
        std::sort(d.partitions.begin(), d.partitions.end(),
                  [](const auto& a, const auto& b) { return a.tp < b.tp; });
        return d;
      });
}

result<std::vector<committed_position>> admin::committed_offsets(
    std::string_view group, const std::vector<topic_partition>& partitions) {
  if (kafka_) return kafka_->committed_offsets(group, partitions, &last_error_message_);
  last_error_message_.clear();
  if (!protocol::valid_group_name(group)) {
    last_error_message_ = kGroupNameRule;
    return errc::invalid_group_name;
  }
  FERRY_TRY(check_partitions(partitions, &last_error_message_));
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<std::vector<committed_position>>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto g = fbb.CreateString(group.data(), group.size());
        flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::TopicPartitions>>> tps;
        if (!partitions.empty()) tps = fbb.CreateVector(by_topic(fbb, partitions));
        return std::pair{wire::Body::FetchOffsetsRequest,
                         wire::CreateFetchOffsetsRequest(fbb, g, tps).Union()};
      },
      [&](const reply& r) -> result<std::vector<committed_position>> {
        FERRY_TRY(detail::expect_body(r, wire::Body::FetchOffsetsResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_FetchOffsetsResponse();
        if (auto ec = from_wire(resp->error())) {
          last_error_message_ = str(resp->message());
          return ec;
        }
        std::vector<committed_position> out;
        if (const auto* os = resp->offsets()) {
          out.reserve(os->size());
          for (const auto* o : *os) {
            committed_position c;
            c.tp = {str(o->topic()), partition_id(o->partition())};
            if (o->offset() >= 0) c.next = offset(o->offset());
            c.metadata = str(o->metadata());
            c.commit_time = timestamp_ms(o->commit_timestamp());
            out.push_back(std::move(c));
          }
        }
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.tp < b.tp; });
        return out;
      });
}

result<std::vector<commit_result>> admin::reset_offsets(std::string_view group,
                                                        const std::vector<offset_commit>& offsets) {
  if (kafka_) return kafka_->reset_offsets(group, offsets, &last_error_message_);
  last_error_message_.clear();
  if (!protocol::valid_group_name(group)) {
    last_error_message_ = kGroupNameRule;
    return errc::invalid_group_name;
  }
  std::vector<topic_partition> tps;
  tps.reserve(offsets.size());
  for (const auto& o : offsets) {
    tps.push_back(o.tp);
    if (o.next.value() < 0 || o.metadata.size() > 4096) {
      last_error_message_ =
          fmt::format("{}-{}: offsets must be >= 0 and metadata at most 4096 bytes", o.tp.topic,
                      o.tp.partition.value());
      return ferry::errc::invalid_argument;
    }
  }
  FERRY_TRY(check_partitions(tps, &last_error_message_));
  if (offsets.empty()) return std::vector<commit_result>{};
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<std::vector<commit_result>>(
      *conn_, deadline, detail::retry_timeouts::no,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto g = fbb.CreateString(group.data(), group.size());
        std::vector<flatbuffers::Offset<wire::CommitEntry>> entries;
        entries.reserve(offsets.size());
        for (const auto& o : offsets)
          entries.push_back(wire::CreateCommitEntryDirect(
              fbb, o.tp.topic.c_str(), o.tp.partition.value(), o.next.value(), o.metadata.c_str()));
        auto body = wire::CreateCommitOffsetsRequest(fbb, g, 0, fbb.CreateVector(entries),
                                                     /*reset=*/true);
        return std::pair{wire::Body::CommitOffsetsRequest, body.Union()};
      },
      [&](const reply& r) -> result<std::vector<commit_result>> {
        FERRY_TRY(detail::expect_body(r, wire::Body::CommitOffsetsResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_CommitOffsetsResponse();
        if (auto ec = from_wire(resp->error())) {
          last_error_message_ = str(resp->message());
          return ec;
        }
        // One result per entry, matched by topic and partition.
        std::map<topic_partition, std::vector<const wire::CommitResult*>> by_tp;
        if (const auto* rs = resp->results())
          for (const auto* x : *rs)
            by_tp[{str(x->topic()), partition_id(x->partition())}].push_back(x);
        std::vector<commit_result> out;
        out.reserve(offsets.size());
        for (const auto& o : offsets) {
          commit_result cr;
          cr.tp = o.tp;
          auto it = by_tp.find(o.tp);
          if (it == by_tp.end() || it->second.empty()) {
            cr.error = protocol::errc::missing_field;
            cr.message = "the broker's reply has no result for this partition";
          } else {
            cr.error = from_wire(it->second.front()->error());
            cr.message = str(it->second.front()->message());
            it->second.erase(it->second.begin());
          }
          if (cr.error && last_error_message_.empty())
            last_error_message_ = fmt::format("{}-{}: {}", cr.tp.topic, cr.tp.partition.value(),
                                              cr.message.empty() ? cr.error.message() : cr.message);
          out.push_back(std::move(cr));
        }
        return out;
      });
}

result<void> admin::delete_group(std::string_view group) {
  if (kafka_) return kafka_->delete_group(group, &last_error_message_);
  last_error_message_.clear();
  if (!protocol::valid_group_name(group)) {
    last_error_message_ = kGroupNameRule;
    return errc::invalid_group_name;
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<void>(
      *conn_, deadline, detail::retry_timeouts::no,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto g = fbb.CreateString(group.data(), group.size());
        return std::pair{wire::Body::DeleteGroupRequest,
                         wire::CreateDeleteGroupRequest(fbb, g).Union()};
      },
      [&](const reply& r) -> result<void> {
        FERRY_TRY(detail::expect_body(r, wire::Body::DeleteGroupResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_DeleteGroupResponse();
        if (auto ec = from_wire(resp->error())) {
          last_error_message_ = str(resp->message());
          return ec;
        }
        return success();
      });
}

namespace {

constexpr const char* kAclsOverKafka =
    "ACLs are managed on ferryd's native protocol (tcp:// or ipc://); on a Kafka cluster use its "
    "own tools (kafka-acls)";

}  // namespace

result<int> admin::add_acls(const std::vector<acl_rule>& rules) {
  return change_acls(rules, true);
}

result<int> admin::remove_acls(const std::vector<acl_rule>& rules) {
  return change_acls(rules, false);
}

result<int> admin::change_acls(const std::vector<acl_rule>& rules, bool adding) {
  last_error_message_.clear();
  if (kafka_) {
    last_error_message_ = kAclsOverKafka;
    return ferry::errc::not_supported;
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<int>(
      *conn_, deadline, detail::retry_timeouts::no,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        std::vector<flatbuffers::Offset<wire::AclRule>> v;
        for (const auto& r : rules) v.push_back(protocol::to_wire(fbb, r));
        auto list = fbb.CreateVector(v);
        if (adding)
          return std::pair{wire::Body::AddAclsRequest,
                           wire::CreateAddAclsRequest(fbb, list).Union()};
        return std::pair{wire::Body::RemoveAclsRequest,
                         wire::CreateRemoveAclsRequest(fbb, list).Union()};
      },
      [&](const reply& r) -> result<int> {
        if (adding) {
          FERRY_TRY(detail::expect_body(r, wire::Body::AddAclsResponse, &last_error_message_));
          const auto* resp = r.envelope().body_as_AddAclsResponse();
          if (auto ec = from_wire(resp->error())) {
            last_error_message_ = str(resp->message());
            return ec;
          }
          return resp->changed();
        }
        FERRY_TRY(detail::expect_body(r, wire::Body::RemoveAclsResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_RemoveAclsResponse();
        if (auto ec = from_wire(resp->error())) {
          last_error_message_ = str(resp->message());
          return ec;
        }
        return resp->changed();
      });
}

result<acl_listing> admin::list_acls(std::string_view principal) {
  last_error_message_.clear();
  if (kafka_) {
    last_error_message_ = kAclsOverKafka;
    return ferry::errc::not_supported;
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<acl_listing>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto p = principal.empty() ? flatbuffers::Offset<flatbuffers::String>()
                                   : fbb.CreateString(principal.data(), principal.size());
        return std::pair{wire::Body::ListAclsRequest, wire::CreateListAclsRequest(fbb, p).Union()};
      },
      [&](const reply& r) -> result<acl_listing> {
        FERRY_TRY(detail::expect_body(r, wire::Body::ListAclsResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_ListAclsResponse();
        if (auto ec = from_wire(resp->error())) {
          last_error_message_ = str(resp->message());
          return ec;
        }
        acl_listing out;
        if (resp->rules())
          for (const auto* x : *resp->rules()) out.rules.push_back(protocol::from_wire(*x));
        out.file = str(resp->file());
        return out;
      });
}

}  // namespace ferry::client
