#include "rpc.h"

#include <algorithm>
#include <limits>
#include <map>

namespace ferry::client::detail {

namespace {
std::string str(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}
}  // namespace

result<void> expect_body(const reply& r, wire::Body want, std::string* message) {
  const auto& env = r.envelope();
  if (env.body_type() == want) return success();
  if (env.body_type() == wire::Body::ErrorResponse) {
    const auto* e = env.body_as_ErrorResponse();
    if (message) *message = str(e->message());
    auto ec = from_wire(e->error());
    if (!ec) return protocol::errc::invalid_value;  // an ErrorResponse must carry an error
    return ec;
  }
  if (message)
    *message = "unexpected reply type " + std::string(wire::EnumNameBody(env.body_type()));
  return protocol::errc::unknown_message;
}

std::int32_t wire_ms(std::chrono::milliseconds d) noexcept {
  return static_cast<std::int32_t>(std::clamp<std::chrono::milliseconds::rep>(
      d.count(), 0, std::numeric_limits<std::int32_t>::max()));
}

std::pair<wire::Body, flatbuffers::Offset<void>> build_list_offsets(
    flatbuffers::FlatBufferBuilder& fbb, std::span<const offset_query> queries) {
  std::vector<flatbuffers::Offset<wire::ListOffsetsEntry>> entries;
  entries.reserve(queries.size());
  for (const auto& q : queries) {
    wire::OffsetSpec spec = wire::OffsetSpec::Earliest;
    switch (q.spec) {
      case offset_spec::earliest:
        spec = wire::OffsetSpec::Earliest;
        break;
      case offset_spec::latest:
        spec = wire::OffsetSpec::Latest;
        break;
      case offset_spec::timestamp:
        spec = wire::OffsetSpec::Timestamp;
        break;
    }
    entries.push_back(wire::CreateListOffsetsEntryDirect(
        fbb, q.tp.topic.c_str(), q.tp.partition.value(), spec, q.timestamp.value()));
  }
  auto body = wire::CreateListOffsetsRequestDirect(fbb, &entries);
  return {wire::Body::ListOffsetsRequest, body.Union()};
}

result<std::vector<offset_answer>> parse_list_offsets(const reply& r,
                                                      std::span<const offset_query> queries,
                                                      std::string* message) {
  FERRY_TRY(expect_body(r, wire::Body::ListOffsetsResponse, message));
  const auto* resp = r.envelope().body_as_ListOffsetsResponse();
  // (topic, partition) -> indexes of results not yet used, in reply order.
  std::map<std::pair<std::string_view, std::int32_t>, std::vector<flatbuffers::uoffset_t>> by_tp;
  for (flatbuffers::uoffset_t i = 0; i < resp->results()->size(); ++i) {
    const auto* x = resp->results()->Get(i);
    std::string_view topic = x->topic() ? x->topic()->string_view() : std::string_view();
    by_tp[{topic, x->partition()}].push_back(i);
  }
  std::vector<offset_answer> out(queries.size());
  for (std::size_t q = 0; q < queries.size(); ++q) {
    auto it = by_tp.find({queries[q].tp.topic, queries[q].tp.partition.value()});
    if (it == by_tp.end() || it->second.empty()) {
      out[q].error = protocol::errc::missing_field;
      if (message) *message = "the broker's reply has no result for " + queries[q].tp.topic;
      continue;
    }
    const auto* x = resp->results()->Get(it->second.front());
    it->second.erase(it->second.begin());
    out[q].error = from_wire(x->error());
    out[q].offset = x->offset();
    if (!out[q].error && x->offset() < 0 && queries[q].spec != offset_spec::timestamp) {
      out[q].error = protocol::errc::invalid_value;
      if (message) *message = "the broker returned a negative offset";
    }
  }
  return out;
}

std::pair<wire::Body, flatbuffers::Offset<void>> build_describe_topic(
    flatbuffers::FlatBufferBuilder& fbb, std::string_view topic) {
  auto name = fbb.CreateString(topic.data(), topic.size());
  auto body = wire::CreateDescribeTopicRequest(fbb, name);
  return {wire::Body::DescribeTopicRequest, body.Union()};
}

topic_config config_from_wire(const wire::TopicConfig* c) {
  topic_config out;
  if (c == nullptr) {
    out.partitions = 0;
    return out;
  }
  out.partitions = c->partitions();
  out.retention_ms = c->retention_ms();
  out.retention_bytes = c->retention_bytes();
  out.max_message_bytes = c->max_message_bytes();
  out.segment_bytes = c->segment_bytes();
  out.schema_subject = c->schema_subject() ? c->schema_subject()->str() : std::string();
  out.schema_validation = c->schema_validation();
  return out;
}

result<topic_description> parse_describe_topic(const reply& r, std::string* message) {
  FERRY_TRY(expect_body(r, wire::Body::DescribeTopicResponse, message));
  const auto* resp = r.envelope().body_as_DescribeTopicResponse();
  if (auto ec = from_wire(resp->error())) {
    if (message) *message = str(resp->message());
    return ec;
  }
  topic_description d;
  d.name = str(resp->name());
  d.config = config_from_wire(resp->config());
  if (const auto* ps = resp->partitions()) {
    d.partitions.reserve(ps->size());
    for (const auto* p : *ps) {
      partition_info info;
      info.partition = partition_id(p->partition());
      info.log_start = offset(p->log_start());
      info.log_end = offset(p->log_end());
      info.high_watermark = offset(p->high_watermark());
      info.size_bytes = p->size_bytes();
      info.segments = p->segments();
      info.error = from_wire(p->error());
      info.message = str(p->message());
      d.partitions.push_back(std::move(info));
    }
  }
  return d;
}

}  // namespace ferry::client::detail
