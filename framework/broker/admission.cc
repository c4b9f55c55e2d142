#include "admission.h"

#include <fmt/format.h>

#include <charconv>
#include <optional>

#include "ferry/broker/wire_errors.h"
#include "ferry/core/clock.h"
#include "ferry/format/batch.h"
#include "ferry/protocol/codec.h"
#include "ferry/storage/errc.h"
#include "pipeline.h"

namespace ferry::broker {

using wire::ErrorCode;

namespace {

struct refusal {
  ErrorCode error;
  std::string message;
};

// Step 3: the idempotent producer's checks for a batch with producer_id >= 0.
// nullopt: append it. Otherwise a refusal, or (error None) a duplicate at
// `duplicate_base`.
std::optional<refusal> check_idempotence(broker_core& c, const partition& p,
                                         const format::batch_header& h,
                                         std::int64_t& duplicate_base) FERRY_REQUIRES(core_thread) {
  std::string why;
  if (h.epoch.value() < 0 || h.base_sequence.value() < 0 || h.record_count < 1)
    return refusal{ErrorCode::InvalidProducer,
                   fmt::format("producer {}: epoch {} and base_sequence {} must be >= 0",
                               h.pid.value(), h.epoch.value(), h.base_sequence.value())};
  switch (c.producer_ids->check(h.pid, h.epoch, &why)) {
    case producer_registry::standing::current:
      break;
    case producer_registry::standing::fenced:
      return refusal{ErrorCode::ProducerFenced, std::move(why)};
    case producer_registry::standing::invalid:
      return refusal{ErrorCode::InvalidProducer, std::move(why)};
  }
  auto d = p.producers.check(h);
  switch (d.v) {
    case partition_producers::verdict::append:
      return std::nullopt;
    case partition_producers::verdict::duplicate:
      duplicate_base = d.base_offset;
      return refusal{ErrorCode::None, {}};
    case partition_producers::verdict::fenced:
      return refusal{ErrorCode::ProducerFenced, std::move(d.message)};
    case partition_producers::verdict::out_of_order:
      return refusal{ErrorCode::OutOfOrderSequence, std::move(d.message)};
  }
  return refusal{ErrorCode::Internal, "unreachable"};
}

// Step 4: every record with a value names, in exactly one ferry.schema-id
// header, a schema registered under the topic's subject. The batch passed
// check_batch.
std::optional<refusal> check_schema_ids(broker_core& c, const topic& t,
                                        const format::checked_batch& batch)
    FERRY_REQUIRES(core_thread) {
  const std::string subject = schema_subject_of(t.name, t.settings);
  std::optional<refusal> out;
  std::int32_t index = 0;
  format::for_each_record(batch, [&](const format::record_view& rv) {
    core_thread.assert_held();  // called right here
    const std::int32_t i = index++;
    if (!rv.value) return true;  // a tombstone has no payload to describe
    // Exactly one header with a decimal id: clients read the first, so a
    // second one could name another schema than the one checked here.
    std::optional<std::string_view> id_text;
    int count = 0;
    rv.for_each_header([&](const format::header_view& h) {
      if (h.key != protocol::kSchemaIdHeader) return;
      ++count;
      if (h.value)
        id_text = std::string_view(reinterpret_cast<const char*>(h.value->data()), h.value->size());
    });
    std::int64_t id = -1;
    if (id_text) {
      auto [end, ec] = std::from_chars(id_text->data(), id_text->data() + id_text->size(), id);
      if (ec != std::errc() || end != id_text->data() + id_text->size()) id = -1;
    }
    if (count != 1 || id < 0) {
      std::string what;
      if (count == 0)
        what = fmt::format("has no {} header", protocol::kSchemaIdHeader);
      else if (count > 1)
        what = fmt::format("has {} {} headers (one is allowed)", count, protocol::kSchemaIdHeader);
      else if (id_text)
        what = fmt::format("has a {} header '{}' that is not a schema id",
                           protocol::kSchemaIdHeader, id_text->substr(0, 32));
      else
        what = fmt::format("has a {} header without a value", protocol::kSchemaIdHeader);
      out = refusal{ErrorCode::SchemaRequired,
                    fmt::format("record {} of the batch {}; topic {} accepts only records whose "
                                "schema is registered under {}",
                                i, what, t.name, subject)};
      return false;
    }
    if (!c.registry->registered_under(subject, id)) {
      out = refusal{
          ErrorCode::SchemaRequired,
          c.registry->by_id(id) == nullptr
              ? fmt::format("record {} of the batch names schema id {}, which is not "
                            "registered; register it under {} first (ferry schema register)",
                            i, id, subject)
              : fmt::format("record {} of the batch names schema id {}, which is not a "
                            "version of {} (topic {} accepts only those)",
                            i, id, subject, t.name)};
      return false;
    }
    return true;
  });
  return out;
}

}  // namespace

outcome schema_rule_problem(broker_core& c, const std::string& topic, const topic_settings& s) {
  if (!s.schema_validation) return {};
  const auto subject = schema_subject_of(topic, s);
  const auto* subj = c.registry->subject(subject);
  if (subj != nullptr && !subj->versions.empty()) return {};
  return {ErrorCode::UnknownSubject,
          fmt::format("subject {} has no schemas yet; register one first (ferry schema register {} "
                      "FILE.fbs), then turn validation on",
                      subject, subject)};
}

produce_outcome admit(round& r, partition& p, std::span<std::byte> batch) {
  auto& c = r.core();
  produce_outcome out;
  auto& log = *p.log;
  // 1. A failed partition answers with why; a batch above the topic's limit
  // is refused before anything reads it.
  if (log.failed()) {
    out.error = ErrorCode::PartitionFailed;
    out.message = log.failure_reason();
    return out;
  }
  if (batch.size() > log.config().max_batch_bytes) {
    out.error = ErrorCode::RecordTooLarge;
    out.message = fmt::format("batch of {} bytes exceeds the topic's max_message_bytes {}",
                              batch.size(), log.config().max_batch_bytes);
    return out;
  }
  // 2. Validate once.
  std::string why;
  auto checked = format::check_batch(batch, &why);
  if (!checked) {
    out.error = to_wire(checked.error());
    out.message = std::move(why);
    return out;
  }
  const auto& h = checked.value().header();
  // 3. Idempotence.
  const bool idempotent = h.pid.value() >= 0;
  if (idempotent) {
    std::int64_t duplicate_base = -1;
    if (auto refused = check_idempotence(c, p, h, duplicate_base)) {
      if (refused->error == ErrorCode::None) {
        // Answered after this round's sync, like the append it repeats: a
        // failing sync fails the duplicate too.
        out.duplicate = true;
        out.base_offset = duplicate_base;
        out.synced = &p;
        r.needs_sync(p);
      } else {
        out.error = refused->error;
        out.message = std::move(refused->message);
      }
      return out;
    }
  }
  // 4. The topic's schema rule - after the idempotence verdict, so that a
  // retry of a batch stored before validation was turned on is answered as
  // the duplicate it is.
  const auto* t = c.topics.find(p.topic);
  if (t != nullptr && t->settings.schema_validation) {
    if (auto refused = check_schema_ids(c, *t, checked.value())) {
      out.error = refused->error;
      out.message = std::move(refused->message);
      return out;
    }
  }
  // 5. Append.
  auto appended = log.append(checked.value());
  if (!appended) {
    out.error = to_wire(appended.error());
    out.message = appended.error() == storage::errc::partition_failed ? log.failure_reason()
                                                                      : appended.error().message();
    return out;
  }
  out.base_offset = appended.value().base_offset.value();
  out.records = h.record_count;
  out.bytes = batch.size();
  out.synced = &p;
  r.appended(p, batch.size());
  if (idempotent)
    p.producers.appended(h, out.base_offset, system_clock::instance().wall_now().value());
  return out;
}

void settle(round& r, produce_outcome& o) {
  auto& c = r.core();
  if (o.synced != nullptr) {
    if (auto ec = r.sync_error(*o.synced)) {
      o.error = to_wire(ec);
      o.message = o.synced->log->failure_reason();
      o.base_offset = -1;
      o.duplicate = false;
    }
  }
  if (o.error != ErrorCode::None) {
    c.stats.refuse(o.error);
  } else if (o.records > 0 && o.synced->counters != nullptr) {
    o.synced->counters->records_in->inc(static_cast<std::uint64_t>(o.records));
    o.synced->counters->bytes_in->inc(o.bytes);
  }
}

}  // namespace ferry::broker
