// admin's schema registry calls and the client-side schema_cache.
#include <fmt/format.h>

#include <charconv>

#include "ferry/client/admin.h"
#include "ferry/client/connection.h"
#include "ferry/client/errc.h"
#include "ferry/client/schema_cache.h"
#include "ferry/core/errc.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/compatibility.h"
#include "kafka_admin.h"
#include "rpc.h"

namespace ferry::client {

namespace {

std::string str(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

result<void> check_subject(std::string_view subject, std::string& message) {
  if (protocol::valid_subject_name(subject)) return success();
  message = "subject names are 1-249 characters from [A-Za-z0-9._-], not starting with '.'";
  return ferry::errc::invalid_argument;
}

result<registered_schema> parse_schema(const reply& r, std::string* message) {
  FERRY_TRY(detail::expect_body(r, wire::Body::GetSchemaResponse, message));
  const auto* resp = r.envelope().body_as_GetSchemaResponse();
  if (auto ec = client::from_wire(resp->error())) {
    *message = str(resp->message());
    return ec;
  }
  registered_schema s;
  s.id = resp->id();
  s.subject = str(resp->subject());
  s.version = resp->version();
  if (resp->schema())
    s.bfbs.assign(reinterpret_cast<const char*>(resp->schema()->data()), resp->schema()->size());
  s.source = str(resp->source());
  s.root_type = str(resp->root_type());
  s.registered = timestamp_ms(resp->registered_ms());
  return s;
}

}  // namespace

result<schema_registration> admin::register_schema(std::string_view subject, std::string_view bfbs,
                                                   std::string_view source, schema_action action,
                                                   std::vector<schema_finding>* violations) {
  last_error_message_.clear();
  FERRY_TRY(check_subject(subject, last_error_message_));
  if (bfbs.empty() || bfbs.size() > protocol::kMaxSchemaBytes ||
      source.size() > protocol::kMaxSchemaBytes) {
    last_error_message_ =
        fmt::format("a schema and its source must be 1..{} bytes each", protocol::kMaxSchemaBytes);
    return ferry::errc::invalid_argument;
  }
  if (kafka_)
    return kafka_->schemas().register_schema(subject, bfbs, source, action, violations,
                                             &last_error_message_);
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  // Registering the same bytes twice returns the same version: safe to retry.
  return detail::call<schema_registration>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto sub = fbb.CreateString(subject.data(), subject.size());
        auto b = fbb.CreateVector(reinterpret_cast<const std::uint8_t*>(bfbs.data()), bfbs.size());
        auto src = source.empty() ? 0 : fbb.CreateString(source.data(), source.size());
        const auto a = action == schema_action::check    ? wire::SchemaAction::Check
                       : action == schema_action::lookup ? wire::SchemaAction::Lookup
                                                         : wire::SchemaAction::Register;
        return std::pair{wire::Body::RegisterSchemaRequest,
                         wire::CreateRegisterSchemaRequest(fbb, sub, b, src, a).Union()};
      },
      [&](const reply& r) -> result<schema_registration> {
        FERRY_TRY(detail::expect_body(r, wire::Body::RegisterSchemaResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_RegisterSchemaResponse();
        schema_registration out;
        out.id = resp->id();
        out.version = resp->version();
        out.created = resp->created();
        out.mode = protocol::to_mode(resp->mode()).value_or(schema::mode::backward);
        if (resp->violations())
          for (const auto* f : *resp->violations())
            out.findings.push_back({str(f->rule()), str(f->type()), str(f->field()),
                                    str(f->message()), f->against_version(), f->warning()});
        if (auto ec = client::from_wire(resp->error())) {
          last_error_message_ = str(resp->message());
          if (violations) *violations = std::move(out.findings);
          return ec;
        }
        return out;
      });
}

result<registered_schema> admin::get_schema(std::int64_t id) {
  last_error_message_.clear();
  if (id < 0) return ferry::errc::invalid_argument;
  if (kafka_) return kafka_->schemas().get_schema(id, &last_error_message_);
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<registered_schema>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        return std::pair{wire::Body::GetSchemaRequest,
                         wire::CreateGetSchemaRequest(fbb, id).Union()};
      },
      [&](const reply& r) { return parse_schema(r, &last_error_message_); });
}

result<registered_schema> admin::get_schema(std::string_view subject, std::int32_t version) {
  last_error_message_.clear();
  FERRY_TRY(check_subject(subject, last_error_message_));
  if (kafka_) return kafka_->schemas().get_schema(subject, version, &last_error_message_);
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<registered_schema>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto sub = fbb.CreateString(subject.data(), subject.size());
        return std::pair{wire::Body::GetSchemaRequest,
                         wire::CreateGetSchemaRequest(fbb, -1, sub, version).Union()};
      },
      [&](const reply& r) { return parse_schema(r, &last_error_message_); });
}

result<subject_listing> admin::list_subjects() {
  last_error_message_.clear();
  if (kafka_) return kafka_->schemas().list_subjects(&last_error_message_);
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<subject_listing>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        return std::pair{wire::Body::ListSubjectsRequest,
                         wire::CreateListSubjectsRequest(fbb).Union()};
      },
      [&](const reply& r) -> result<subject_listing> {
        FERRY_TRY(detail::expect_body(r, wire::Body::ListSubjectsResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_ListSubjectsResponse();
        subject_listing out;
        out.default_mode = protocol::to_mode(resp->default_mode()).value_or(schema::mode::backward);
        if (resp->subjects())
          for (const auto* s : *resp->subjects()) {
            subject_info info;
            info.subject = str(s->subject());
            info.mode = protocol::to_mode(s->mode());
            if (s->versions())
              for (const auto* v : *s->versions())
                info.versions.push_back(
                    {v->version(), v->id(), str(v->root_type()), timestamp_ms(v->registered_ms())});
            out.subjects.push_back(std::move(info));
          }
        return out;
      });
}

result<void> admin::set_compatibility(std::string_view subject, std::optional<schema::mode> mode) {
  last_error_message_.clear();
  FERRY_TRY(check_subject(subject, last_error_message_));
  if (kafka_) return kafka_->schemas().set_compatibility(subject, mode, &last_error_message_);
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<void>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto sub = fbb.CreateString(subject.data(), subject.size());
        return std::pair{
            wire::Body::SetCompatibilityRequest,
            wire::CreateSetCompatibilityRequest(fbb, sub, protocol::to_wire(mode)).Union()};
      },
      [&](const reply& r) -> result<void> {
        FERRY_TRY(
            detail::expect_body(r, wire::Body::SetCompatibilityResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_SetCompatibilityResponse();
        if (auto ec = client::from_wire(resp->error())) {
          last_error_message_ = str(resp->message());
          return ec;
        }
        return success();
      });
}

result<void> admin::set_topic_schema(std::string_view topic, std::string_view subject,
                                     bool validation) {
  if (kafka_)
    return kafka_admin::unsupported(
        "produce-time schema validation (Kafka brokers do not check records; typed handlers "
        "still check every record's schema id)",
        &last_error_message_);
  last_error_message_.clear();
  if (!protocol::valid_topic_name(topic)) return errc::invalid_topic_name;
  if (!subject.empty()) {
    FERRY_TRY(check_subject(subject, last_error_message_));
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  return detail::call<void>(
      *conn_, deadline, detail::retry_timeouts::yes,
      [&](flatbuffers::FlatBufferBuilder& fbb) {
        auto t = fbb.CreateString(topic.data(), topic.size());
        auto sub = subject.empty() ? 0 : fbb.CreateString(subject.data(), subject.size());
        return std::pair{wire::Body::SetTopicSchemaRequest,
                         wire::CreateSetTopicSchemaRequest(fbb, t, sub, validation).Union()};
      },
      [&](const reply& r) -> result<void> {
        FERRY_TRY(detail::expect_body(r, wire::Body::SetTopicSchemaResponse, &last_error_message_));
        const auto* resp = r.envelope().body_as_SetTopicSchemaResponse();
        if (auto ec = client::from_wire(resp->error())) {
          last_error_message_ = str(resp->message());
          return ec;
        }
        return success();
      });
}

// --- schema_cache -------------------------------------------------------------

schema_cache::schema_cache(client_options options) : admin_(std::move(options)) {}
schema_cache::~schema_cache() = default;

// The cache lock is not held across a round trip (one may take up to the
// API timeout while the broker is away): lookups of cached ids on other
// threads go on meanwhile. Round trips themselves take turns (rpc_mu_):
// admin is not thread-safe.
result<std::int64_t> schema_cache::id_for(std::string_view subject, std::string_view bfbs,
                                          std::string_view source, bool auto_register) {
  const auto cached = [&]() -> std::optional<std::int64_t> {
    std::lock_guard lock(mu_);
    auto s = ids_.find(subject);
    if (s == ids_.end()) return std::nullopt;
    auto it = s->second.find(bfbs);
    if (it == s->second.end()) return std::nullopt;
    return it->second;
  };
  if (auto id = cached()) return *id;
  std::lock_guard rpc(rpc_mu_);
  if (auto id = cached()) return *id;  // another thread asked meanwhile
  auto r = admin_.register_schema(
      subject, bfbs, source,
      auto_register ? schema_action::register_schema : schema_action::lookup);
  std::lock_guard lock(mu_);
  if (!r) {
    last_error_ = admin_.last_error_message();
    return r.error();
  }
  auto s = ids_.find(subject);
  if (s == ids_.end()) s = ids_.emplace(std::string(subject), decltype(s->second){}).first;
  s->second.emplace(std::string(bfbs), r.value().id);
  return r.value().id;
}

result<std::shared_ptr<const registered_schema>> schema_cache::by_id(std::int64_t id) {
  {
    std::lock_guard lock(mu_);
    if (auto it = schemas_.find(id); it != schemas_.end()) return it->second;
  }
  std::lock_guard rpc(rpc_mu_);
  {
    std::lock_guard lock(mu_);
    if (auto it = schemas_.find(id); it != schemas_.end()) return it->second;
  }
  auto r = admin_.get_schema(id);
  std::string why;
  if (r && (r.value().id != id || !schema::validate_binary(r.value().bfbs, &why))) {
    std::lock_guard lock(mu_);
    last_error_ = fmt::format("the broker answered for schema id {} with {}", id,
                              r.value().id != id ? fmt::format("id {}", r.value().id)
                                                 : "an invalid binary schema: " + why);
    return ferry::errc::corrupt_data;
  }
  std::lock_guard lock(mu_);
  if (!r) {
    last_error_ = admin_.last_error_message();
    return r.error();
  }
  auto s = std::make_shared<const registered_schema>(std::move(r).value());
  schemas_.emplace(id, s);
  return s;
}

std::string schema_cache::last_error_message() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

void set_schema_id(producer_record& r, std::int64_t schema_id) {
  // One header only: a broker with validation refuses a record with two.
  std::erase_if(r.headers, [](const header& h) { return h.key == protocol::kSchemaIdHeader; });
  r.headers.push_back({std::string(protocol::kSchemaIdHeader), std::to_string(schema_id)});
}

std::optional<std::int64_t> schema_id_of(const consumer_record& r) {
  const auto* v = r.header_value(protocol::kSchemaIdHeader);
  if (v == nullptr || !v->has_value()) return std::nullopt;
  const auto& s = **v;
  std::int64_t id = -1;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
  if (ec != std::errc() || end != s.data() + s.size() || id < 0) return std::nullopt;
  return id;
}

}  // namespace ferry::client
