#include "ferry/client/admin.h"

#include "ferry/client/connection.h"
#include "ferry/client/errc.h"
#include "ferry/core/errc.h"
#include "ferry/protocol/codec.h"
#include "rpc.h"

namespace ferry::client {

namespace {
std::string str(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}
}  // namespace

admin::admin(client_options options)
    : options_(std::move(options)), conn_(std::make_unique<connection>(options_)) {}
admin::~admin() = default;
admin::admin(admin&&) noexcept = default;
admin& admin::operator=(admin&&) noexcept = default;

result<void> admin::create_topic(std::string_view name, const topic_config& config) {
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
        auto c = wire::CreateTopicConfig(fbb, config.partitions, config.retention_ms,
                                         config.retention_bytes, config.max_message_bytes,
                                         config.segment_bytes);
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

result<std::vector<topic_summary>> admin::list_topics() {
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
  last_error_message_.clear();
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<topic_description>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) { return detail::build_describe_topic(fbb, name); },
      [&](const reply& r) { return detail::parse_describe_topic(r, &last_error_message_); });
}

result<std::optional<offset>> admin::list_offsets(std::string_view topic, partition_id partition,
                                                  offset_spec spec, timestamp_ms timestamp) {
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

}  // namespace ferry::client
