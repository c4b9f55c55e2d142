// Topics: create, delete, list, describe; the offsets of a partition by
// position or time.
#include <fmt/format.h>

#include "ferry/broker/wire_errors.h"
#include "ferry/core/logging.h"
#include "native.h"

namespace ferry::broker {

using namespace ferry::wire;

outcome delete_topic(broker_core& c, std::string_view name) {
  auto o = c.topics.remove(name, [&](partition& p) {
    core_thread.assert_held();  // called by remove(), on the caller's thread
    c.fetches.on_partition_removed(p);
  });
  if (!o) return o;
  ++c.topic_deletions;
  // Committed offsets of the old topic must not apply to a new one of the
  // same name; made durable with the round's offsets sync.
  offset_change ch;
  ch.what = offset_change::kind::delete_topic;
  ch.topic = std::string(name);
  if (auto r = c.offsets->append({ch}); !r)
    log::get("broker")->warn("topic {}: dropping its committed offsets failed: {}", name,
                             r.error().message());
  return o;
}

void handle_create_topic(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  r.sync_now();  // batches before it are answered under the old table
  const auto* req = q->env->body_as_CreateTopicRequest();
  const auto name = req->name()->str();
  outcome o;
  if (c.topics.find(name) != nullptr) {
    o = {ErrorCode::TopicAlreadyExists, fmt::format("topic {} already exists", name)};
  } else {
    auto s = settings_from_wire(req->config(), c.cfg.topics);
    topic_limits limits{c.cfg.max_partitions, c.cfg.socket.max_message_bytes};
    if (auto problem = settings_problem(s, limits))
      o = {ErrorCode::InvalidConfig, *problem};
    else if (auto refused = schema_rule_problem(c, name, s); !refused)
      o = std::move(refused);
    else
      o = c.topics.create(name, std::move(s));
  }
  audit(c, *q, "topic.create", {{"topic", name}, {"partitions", c.topics.partition_count(name)}},
        o.error, o.message);
  c.stats.refuse(o.error);
  flatbuffers::FlatBufferBuilder fbb(256);
  auto body = CreateCreateTopicResponse(fbb, o.error, opt_string(fbb, o.message));
  q->respond(envelope(fbb, q->id(), Body::CreateTopicResponse, body.Union()));
}

void handle_delete_topic(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  r.sync_now();  // batches before it are answered while the topic still exists
  const auto name = q->env->body_as_DeleteTopicRequest()->name()->string_view();
  auto o = delete_topic(c, name);
  audit(c, *q, "topic.delete", {{"topic", name}}, o.error, o.message);
  c.stats.refuse(o.error);
  flatbuffers::FlatBufferBuilder fbb(256);
  auto body = CreateDeleteTopicResponse(fbb, o.error, opt_string(fbb, o.message));
  q->respond(envelope(fbb, q->id(), Body::DeleteTopicResponse, body.Union()));
}

outcome alter_topic(broker_core& c, std::string_view name,
                    const std::function<void(topic_settings&)>& change, bool validate_only,
                    topic_settings* after) {
  auto* t = c.topics.find(name);
  if (t == nullptr) return {ErrorCode::UnknownTopic, fmt::format("unknown topic {}", name)};
  topic_settings s = t->settings;
  change(s);
  *after = s;
  const topic_limits limits{c.cfg.max_partitions, c.cfg.socket.max_message_bytes};
  if (s.partitions < t->settings.partitions)
    return {ErrorCode::InvalidConfig,
            fmt::format("topic {} has {} partitions; partitions can only be added (records are "
                        "not moved between partitions)",
                        name, t->settings.partitions)};
  if (auto problem = settings_problem(s, limits)) return {ErrorCode::InvalidConfig, *problem};
  if (validate_only) return {};
  const auto before = t->settings;
  auto o = c.topics.alter(*t, s);
  if (o) {
    std::string what;
    auto add = [&](const char* k, std::int64_t from, std::int64_t to) {
      if (from != to) what += fmt::format("{}{} {} -> {}", what.empty() ? "" : ", ", k, from, to);
    };
    add("partitions", before.partitions, s.partitions);
    add("retention_ms", before.retention_ms, s.retention_ms);
    add("retention_bytes", before.retention_bytes, s.retention_bytes);
    add("segment_bytes", before.segment_bytes, s.segment_bytes);
    add("max_message_bytes", before.max_message_bytes, s.max_message_bytes);
    log::get("broker")->info("altered topic {}: {}", t->name, what.empty() ? "no change" : what);
  }
  return o;
}

void handle_alter_topic(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  r.sync_now();  // batches before it are answered under the old settings
  const auto* req = q->env->body_as_AlterTopicRequest();
  const auto name = req->name()->string_view();
  topic_settings s;
  auto o = alter_topic(
      c, name,
      [&](topic_settings& t) {
        if (req->partitions() != 0) t.partitions = req->partitions();
        if (req->retention_ms() != -2) t.retention_ms = req->retention_ms();
        if (req->retention_bytes() != -2) t.retention_bytes = req->retention_bytes();
        if (req->max_message_bytes() != 0) t.max_message_bytes = req->max_message_bytes();
      },
      req->validate_only(), &s);
  if (!req->validate_only())
    audit(c, *q, "topic.alter",
          {{"topic", name},
           {"partitions", s.partitions},
           {"retention_ms", s.retention_ms},
           {"retention_bytes", s.retention_bytes},
           {"max_message_bytes", s.max_message_bytes}},
          o.error, o.message);
  c.stats.refuse(o.error);
  flatbuffers::FlatBufferBuilder fbb(256);
  auto conf = o ? settings_to_wire(fbb, s) : 0;
  auto body = CreateAlterTopicResponse(fbb, o.error, opt_string(fbb, o.message), conf);
  q->respond(envelope(fbb, q->id(), Body::AlterTopicResponse, body.Union()));
}

void handle_list_topics(round& r, std::unique_ptr<native_request> q) {
  flatbuffers::FlatBufferBuilder fbb(256);
  std::vector<flatbuffers::Offset<TopicSummary>> v;
  for (const auto& [name, t] : r.core().topics.all())
    if (may(r.core(), *q, acl_resource::topic, name, acl_op::describe))
      v.push_back(CreateTopicSummary(fbb, fbb.CreateString(name), t.settings.partitions));
  auto body = CreateListTopicsResponse(fbb, fbb.CreateVector(v));
  q->respond(envelope(fbb, q->id(), Body::ListTopicsResponse, body.Union()));
}

void handle_describe_topic(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  const auto name = q->env->body_as_DescribeTopicRequest()->name()->string_view();
  flatbuffers::FlatBufferBuilder fbb(256);
  flatbuffers::Offset<DescribeTopicResponse> body;
  const auto* t = c.topics.find(name);
  if (t == nullptr) {
    c.stats.refuse(ErrorCode::UnknownTopic);
    body = CreateDescribeTopicResponse(fbb, ErrorCode::UnknownTopic,
                                       fbb.CreateString(fmt::format("unknown topic {}", name)));
  } else {
    std::vector<flatbuffers::Offset<PartitionInfo>> parts;
    for (const auto& p : t->partitions) {
      auto st = p->log->stats();
      const bool failed = p->log->failed();
      ErrorCode state = failed ? ErrorCode::PartitionFailed : ErrorCode::None;
      std::string why = failed ? p->log->failure_reason() : std::string();
      if (!failed) {
        if (auto d = p->log->damage()) {
          // Damaged, still serving what comes before it (issue 24).
          state = ErrorCode::CorruptData;
          why = fmt::format(
              "damaged: {} at byte {}{}; records from there are not served (docs/operations.md, "
              "\"Damaged data\")",
              d->segment, d->position,
              d->from ? fmt::format(" (the batch that should start at offset {})", d->from->value())
                      : std::string());
        }
      }
      parts.push_back(CreatePartitionInfo(
          fbb, p->id, st.log_start.value(), st.log_end.value(), st.high_watermark.value(),
          static_cast<std::int64_t>(st.size_bytes), static_cast<std::int32_t>(st.segments), state,
          why.empty() ? 0 : fbb.CreateString(why)));
    }
    auto conf = settings_to_wire(fbb, t->settings);
    body = CreateDescribeTopicResponse(fbb, ErrorCode::None, 0, fbb.CreateString(t->name), conf,
                                       fbb.CreateVector(parts));
  }
  q->respond(envelope(fbb, q->id(), Body::DescribeTopicResponse, body.Union()));
}

void handle_list_offsets(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  flatbuffers::FlatBufferBuilder fbb(256);
  std::vector<flatbuffers::Offset<ListOffsetsResult>> v;
  for (const auto* e : *q->env->body_as_ListOffsetsRequest()->entries()) {
    ErrorCode err;
    std::int64_t off = -1;
    if (auto* p = c.topics.find(e->topic()->string_view(), e->partition(), err)) {
      auto& log = *p->log;
      switch (e->spec()) {
        case OffsetSpec::Earliest:
          off = log.log_start_offset().value();
          break;
        case OffsetSpec::Latest:
          off = log.high_watermark().value();
          break;
        case OffsetSpec::Timestamp: {
          auto found = log.offset_for_timestamp(timestamp_ms(e->timestamp()));
          if (!found)
            err = to_wire(found.error());
          else if (found.value())
            off = found.value()->value();
          break;
        }
      }
    }
    v.push_back(CreateListOffsetsResult(fbb, fbb.CreateString(e->topic()->string_view()),
                                        e->partition(), err, off));
  }
  auto body = CreateListOffsetsResponse(fbb, fbb.CreateVector(v));
  q->respond(envelope(fbb, q->id(), Body::ListOffsetsResponse, body.Union()));
}

}  // namespace ferry::broker
