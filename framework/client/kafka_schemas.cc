#include "kafka_schemas.h"

#include <fmt/format.h>

#include <cstring>
#include <thread>

#include "ferry/client/errc.h"
#include "ferry/core/clock.h"
#include "ferry/core/errc.h"
#include "ferry/protocol/compatibility.h"
#include "ferry/protocol/errc.h"
#include "ferry/schemas/registry_generated.h"

namespace ferry::client::kafka {

namespace {

using sclock = std::chrono::steady_clock;

// A subject's compatibility mode unless it sets its own (as ferryd's
// default, schemas.compatibility = backward).
constexpr schema::mode kDefaultMode = schema::mode::backward;

std::vector<std::byte> encode(registry::Kind kind, std::string_view subject, std::string_view bfbs,
                              std::string_view source, wire::Compatibility mode, std::int64_t ms) {
  flatbuffers::FlatBufferBuilder fbb(256 + bfbs.size() + source.size());
  auto s = fbb.CreateString(subject);
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> b = 0;
  if (!bfbs.empty())
    b = fbb.CreateVector(reinterpret_cast<const std::uint8_t*>(bfbs.data()), bfbs.size());
  auto src = source.empty() ? 0 : fbb.CreateString(source);
  // A proposal: no version, no id; the fold assigns them.
  auto rec = registry::CreateRecord(fbb, kind, s, 0, 0, b, src, static_cast<std::int8_t>(mode), ms);
  registry::FinishRecordBuffer(fbb, rec);
  auto p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  return {p, p + fbb.GetSize()};
}

std::error_code to_error(schema::refusal r) {
  switch (r) {
    case schema::refusal::none:
      return {};
    case schema::refusal::invalid_schema:
      return errc::invalid_schema;
    case schema::refusal::unknown_subject:
      return errc::unknown_subject;
    case schema::refusal::unknown_schema:
      return errc::unknown_schema;
    case schema::refusal::incompatible:
      return errc::incompatible_schema;
    case schema::refusal::internal:
      break;
  }
  return errc::internal;
}

std::vector<schema_finding> findings_of(const schema::decision& d) {
  std::vector<schema_finding> out;
  for (const auto& f : d.findings)
    out.push_back({std::string(schema::to_string(f.f.what)), f.f.type, f.f.field, f.f.message,
                   f.against_version, f.f.is_warning()});
  return out;
}

registered_schema to_registered(const schema::stored_schema& s, std::string_view subject,
                                std::int32_t version) {
  registered_schema r;
  r.id = s.id;
  r.subject = subject.empty() ? s.subject : std::string(subject);
  r.version = version < 0 ? s.version : version;
  r.bfbs = s.bfbs;
  r.source = s.source;
  r.root_type = s.root_type;
  r.registered = timestamp_ms(s.registered_ms);
  return r;
}

struct delivery {
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__IN_PROGRESS;
  std::int64_t offset = -1;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  auto* d = static_cast<delivery*>(m->_private);
  if (d == nullptr) return;
  d->err = m->err;
  d->offset = m->offset;
}

}  // namespace

schema_registry::schema_registry(client_options o) : o_(std::move(o)) {}

result<void> schema_registry::open(bool create, std::string* why) {
  if (!reader_) {
    FERRY_TRY(reader_, make_reader(o_, why));
  }
  const auto deadline = sclock::now() + o_.api_timeout;
  bool created = false;
  while (!exists_) {
    auto n = partition_count(reader_.get(), kSchemasTopic, o_.request_timeout, why);
    if (n) {
      exists_ = true;
      break;
    }
    if (n.error() == errc::unknown_topic && !create) return success();  // nothing registered
    if (n.error() != errc::unknown_topic && !is_retriable(n.error())) return n.error();
    if (n.error() == errc::unknown_topic && !created) {
      // Kept forever, never compacted: ids are positions in the fold.
      auto c = create_topic(
          reader_.get(), kSchemasTopic, 1,
          {{"retention.ms", "-1"}, {"retention.bytes", "-1"}, {"cleanup.policy", "delete"}},
          o_.request_timeout, why);
      if (!c && c.error() != errc::topic_already_exists && !is_retriable(c.error()))
        return c.error();
      created = c.has_value() || c.error() == errc::topic_already_exists;
    }
    if (sclock::now() >= deadline) return n.error();
    std::this_thread::sleep_for(o_.retry_backoff);
  }
  if (!reading_) {
    partition_list l(rd_kafka_topic_partition_list_new(1));
    // Offset 0, not the logical beginning: from a logical offset
    // librdkafka 2.0.2 starts fetching only 0.5-1 s later on a new handle.
    // The topic is never truncated (a client that finds its start gone
    // refuses to answer: catch_up()).
    rd_kafka_topic_partition_list_add(l.get(), kSchemasTopic, 0)->offset = 0;
    if (const auto err = rd_kafka_assign(reader_.get(), l.get()); err) {
      *why = fmt::format("cannot read {}: {}", kSchemasTopic, rd_kafka_err2str(err));
      return from_kafka(err);
    }
    reading_ = true;
  }
  return success();
}

void schema_registry::apply(std::int64_t offset, std::span<const std::byte> value) {
  // Not 8-byte aligned in librdkafka's buffer: copy before reading in place.
  std::vector<std::uint8_t> buf(value.size());
  std::memcpy(buf.data(), value.data(), buf.size());
  flatbuffers::Verifier v(buf.data(), buf.size());
  if (!registry::VerifyRecordBuffer(v)) return;  // not ours: skipped by every client alike
  const auto* rec = registry::GetRecord(buf.data());
  const auto subject = rec->subject()->string_view();
  if (rec->kind() == registry::Kind::SubjectMode) {
    state_.set_mode(subject, protocol::to_mode(static_cast<wire::Compatibility>(rec->mode())));
    return;
  }
  if (rec->kind() != registry::Kind::SchemaVersion || rec->schema() == nullptr) return;
  const std::string_view bytes(reinterpret_cast<const char*>(rec->schema()->data()),
                               rec->schema()->size());
  auto d = state_.decide(subject, bytes, schema::registry_action::register_schema, kDefaultMode);
  if (d.error == schema::refusal::none && d.create)
    state_.add_version(subject, d.version, d.id, bytes,
                       rec->source() ? rec->source()->string_view() : std::string_view(),
                       rec->registered_ms());
  if (auto it = ours_.find(offset); it != ours_.end()) it->second = std::move(d);
}

result<void> schema_registry::catch_up(std::string* why, std::int64_t through) {
  FERRY_TRY(open(false, why));
  if (!exists_) return success();
  const auto deadline = sclock::now() + o_.api_timeout;
  FERRY_TRY(const auto ends, watermarks(reader_.get(), kSchemasTopic, o_, why));
  const auto [low, high] = ends;
  if (low > next_) {
    *why = fmt::format(
        "{} lost records below offset {} (retention?); schema ids cannot be rebuilt: set "
        "retention.ms=-1 on it",
        kSchemasTopic, low);
    return ferry::errc::corrupt_data;
  }
  const std::int64_t until = std::max(high, through + 1);
  while (next_ < until) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - sclock::now());
    if (left <= std::chrono::milliseconds(0)) {
      *why = fmt::format("reading {} timed out at offset {} of {}", kSchemasTopic, next_, until);
      return protocol::errc::timed_out;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(reader_.get(), timeout_ms(left));
    if (m == nullptr) continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const auto ec = from_kafka(m->err);
      std::string text = rd_kafka_message_errstr(m);
      rd_kafka_message_destroy(m);
      if (is_retriable(ec)) continue;
      *why = fmt::format("reading {}: {}", kSchemasTopic, text);
      return ec;
    }
    if (m->offset >= next_) {
      if (m->payload != nullptr)
        apply(m->offset, {static_cast<const std::byte*>(m->payload), m->len});
      next_ = m->offset + 1;
    }
    rd_kafka_message_destroy(m);
  }
  return success();
}

result<std::int64_t> schema_registry::append(const std::vector<std::byte>& value,
                                             std::string* why) {
  FERRY_TRY(open(true, why));
  if (!producer_) {
    FERRY_TRY(producer_, make_writer(o_, 10000000, on_delivery, why));
  }
  delivery d;
  const std::string topic = kSchemasTopic;
  const std::string payload(reinterpret_cast<const char*>(value.data()), value.size());
  outgoing m;
  m.topic = &topic;
  m.partition = 0;
  m.value = &payload;
  m.timestamp = system_clock::instance().wall_now().value();
  m.opaque = &d;
  if (const auto err = produce(producer_.get(), m); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *why = fmt::format("writing to {}: {}", kSchemasTopic, rd_kafka_err2str(err));
    return from_kafka(err);
  }
  // The report arrives within message.timeout.ms; `d` lives until then.
  while (rd_kafka_outq_len(producer_.get()) > 0) (void)rd_kafka_flush(producer_.get(), 1000);
  if (d.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *why = fmt::format("writing to {}: {}", kSchemasTopic, rd_kafka_err2str(d.err));
    return from_kafka(d.err);
  }
  return d.offset;
}

result<schema_registration> schema_registry::register_schema(
    std::string_view subject, std::string_view bfbs, std::string_view source, schema_action action,
    std::vector<schema_finding>* violations, std::string* why) {
  FERRY_TRY(catch_up(why));
  const auto a = action == schema_action::check    ? schema::registry_action::check
                 : action == schema_action::lookup ? schema::registry_action::lookup
                                                   : schema::registry_action::register_schema;
  auto d = state_.decide(subject, bfbs, a, kDefaultMode);
  auto answer = [&](const schema::decision& x) -> result<schema_registration> {
    schema_registration out;
    out.id = x.id;
    out.version = x.version;
    out.mode = x.applied;
    out.findings = findings_of(x);
    if (auto ec = to_error(x.error)) {
      *why = x.message;
      if (violations) *violations = std::move(out.findings);
      return ec;
    }
    return out;
  };
  if (d.error != schema::refusal::none || !d.create) return answer(d);
  // Propose it; the fold decides (another client may have got in first).
  FERRY_TRY(const auto at, append(encode(registry::Kind::SchemaVersion, subject, bfbs, source,
                                         wire::Compatibility::Default,
                                         system_clock::instance().wall_now().value()),
                                  why));
  ours_[at] = {};
  auto r = catch_up(why, at);
  auto decided = std::move(ours_[at]);
  ours_.erase(at);
  FERRY_TRY(r);
  auto out = answer(decided);
  if (out) out.value().created = decided.create;
  return out;
}

result<registered_schema> schema_registry::get_schema(std::int64_t id, std::string* why) {
  FERRY_TRY(catch_up(why));
  const auto* s = state_.by_id(id);
  if (s == nullptr) {
    *why = fmt::format("no schema with id {}", id);
    return errc::unknown_schema;
  }
  return to_registered(*s, {}, -1);
}

result<registered_schema> schema_registry::get_schema(std::string_view subject,
                                                      std::int32_t version, std::string* why) {
  FERRY_TRY(catch_up(why));
  std::int32_t found = -1;
  const auto* s = state_.by_subject(subject, version, &found);
  if (s == nullptr) {
    if (state_.subject(subject) == nullptr) {
      *why = fmt::format("unknown subject {}", subject);
      return errc::unknown_subject;
    }
    *why = fmt::format("subject {} has no version {}", subject, version);
    return errc::unknown_schema;
  }
  return to_registered(*s, subject, found);
}

result<subject_listing> schema_registry::list_subjects(std::string* why) {
  FERRY_TRY(catch_up(why));
  subject_listing out;
  out.default_mode = kDefaultMode;
  for (const auto& [name, st] : state_.subjects()) {
    subject_info si;
    si.subject = name;
    si.mode = st.own_mode;
    for (const auto& v : st.versions) {
      const auto* s = state_.by_id(v.id);
      si.versions.push_back(
          {v.version, v.id, s ? s->root_type : std::string(), timestamp_ms(v.registered_ms)});
    }
    out.subjects.push_back(std::move(si));
  }
  return out;
}

result<void> schema_registry::set_compatibility(std::string_view subject,
                                                std::optional<schema::mode> mode,
                                                std::string* why) {
  FERRY_TRY(const auto at,
            append(encode(registry::Kind::SubjectMode, subject, {}, {}, protocol::to_wire(mode),
                          system_clock::instance().wall_now().value()),
                   why));
  return catch_up(why, at);
}

}  // namespace ferry::client::kafka
