// Produce and InitProducerId. A Kafka producer's batch goes through the
// same admission as a native one (admission.h): validated once
// (decompressed when compressed), the idempotent producer's checks against
// the one producer id space, the topic's schema rule, append; answered
// after the round's sync. acks=0 gets no answer, as Kafka does; acks=1 and
// acks=-1 both wait for the fsync (ferryd is one node: every acknowledged
// record is on its disk).
#include <fmt/format.h>

#include "../admission.h"
#include "../handlers/native.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "frontend.h"

namespace ferry::broker {

namespace {

struct partition_answer {
  std::int32_t index = 0;
  std::optional<std::span<const std::byte>> records;  // into the request's frame
  std::vector<produce_outcome> batches;               // one per batch in the records
  kafka::error early = kafka::error::none;            // refused before admission
  std::string message;
};

struct topic_answer {
  std::string name;
  std::vector<partition_answer> partitions;
};

// With security on: records holding `ferry dlq` markers need redrive or
// purge on the dlq resource of the topic (as on the native protocol).
bool markers_allowed(broker_core& c, const kafka_request& q, const std::string& topic,
                     std::span<const std::byte> records) FERRY_REQUIRES(core_thread) {
  if (!c.access || c.access->is_super(q.principal)) return true;
  const auto redrive = c.access->by_rules(q.principal, acl_resource::dlq, topic, acl_op::redrive);
  const auto purge = c.access->by_rules(q.principal, acl_resource::dlq, topic, acl_op::purge);
  if (redrive.allowed && purge.allowed) return true;
  auto rest = std::span<std::byte>(const_cast<std::byte*>(records.data()), records.size());
  while (rest.size() >= format::kBatchHeaderSize) {
    const auto h = format::batch_header::decode(rest.data());
    if (h.batch_length < 0 || h.size() > rest.size()) break;  // admission refuses it
    const auto size = static_cast<std::size_t>(h.size());
    for (const auto& kind : dlq_marker_kinds(rest.first(size))) {
      const bool purging = kind == "purged";
      if ((purging ? purge : redrive).allowed) continue;
      c.stats.authz_failures.with({"dlq", purging ? "purge" : "redrive"}).inc();
      kafka_audit(c, q, "dlq." + kind, {{"dlq", topic}}, wire::ErrorCode::NotAuthorized,
                  "not authorized");
      return false;
    }
    rest = rest.subspan(size);
  }
  return true;
}

}  // namespace

void kafka_produce(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  auto in = q->body();
  std::optional<std::string_view> transactional_id;
  if (since(*q, 3)) transactional_id = in.nullable_string();
  const auto acks = in.i16();
  (void)in.i32();  // timeout: the broker answers after its sync, well within any timeout
  // The whole request is decoded before anything is admitted: a request
  // malformed at its end stores nothing.
  std::vector<topic_answer> topics;
  const auto nt = in.array(6);
  for (std::int32_t t = 0; t < nt && in.ok(); ++t) {
    topic_answer ta;
    ta.name = std::string(in.string());
    const auto np = in.array(8);
    for (std::int32_t p = 0; p < np && in.ok(); ++p) {
      partition_answer pa;
      pa.index = in.i32();
      pa.records = in.nullable_bytes();
      ta.partitions.push_back(std::move(pa));
    }
    topics.push_back(std::move(ta));
  }
  if (!in.ok()) return q->malformed("Produce");
  for (auto& ta : topics) {
    for (auto& pa : ta.partitions) {
      const auto& records = pa.records;
      if (transactional_id) {
        pa.early = kafka::error::transactional_id_authorization_failed;
        pa.message = "transactions are not supported by ferryd (docs/kafka.md)";
      } else if (acks != 0 && acks != 1 && acks != -1) {
        pa.early = kafka::error::invalid_required_acks;
        pa.message = fmt::format("acks must be 0, 1 or -1, not {}", acks);
      } else if (!records || records->empty()) {
        pa.early = kafka::error::corrupt_message;
        pa.message = "no records";
      } else if (!kafka_may(c, *q, acl_resource::topic, ta.name, acl_op::write) ||
                 !markers_allowed(c, *q, ta.name, *records)) {
        pa.early = kafka::error::topic_authorization_failed;
        pa.message =
            fmt::format("not authorized to write topic {} (or its dead-letter markers)", ta.name);
      } else {
        wire::ErrorCode err;
        auto* part = c.topics.find(ta.name, pa.index, err);
        if (part == nullptr) {
          pa.early = kafka::error::unknown_topic_or_partition;
          pa.message = topic_table::missing(ta.name, pa.index, err);
        } else {
          // The records are whole batches (Kafka clients send one per
          // partition); each is admitted on its own. Admission stamps the
          // base offset in place: the frame is this request's own memory.
          auto rest =
              std::span<std::byte>(const_cast<std::byte*>(records->data()), records->size());
          while (!rest.empty()) {
            std::size_t size = rest.size();
            if (rest.size() >= format::kBatchHeaderSize) {
              const auto h = format::batch_header::decode(rest.data());
              if (h.batch_length >= 0 && h.size() <= rest.size())
                size = static_cast<std::size_t>(h.size());
            }
            pa.batches.push_back(admit(r, *part, rest.first(size)));
            if (pa.batches.back().error != wire::ErrorCode::None) break;
            rest = rest.subspan(size);
          }
        }
      }
    }
  }
  r.after_sync([q = std::move(q), topics = std::move(topics), acks](round& rr) mutable {
    core_thread.assert_held();  // the pipeline runs it after the round's sync
    auto& stats = rr.core().stats;
    auto w = q->response();
    w.array(static_cast<std::int32_t>(topics.size()));
    for (auto& ta : topics) {
      w.string(ta.name);
      w.array(static_cast<std::int32_t>(ta.partitions.size()));
      for (auto& pa : ta.partitions) {
        kafka::error err = pa.early;
        std::string message = pa.message;
        std::int64_t base = -1, log_start = -1;
        for (auto& o : pa.batches) {
          settle(rr, o);
          if (o.error != wire::ErrorCode::None && err == kafka::error::none) {
            err = kafka::from_broker(o.error);
            message = o.message;
          }
          if (base < 0 && o.error == wire::ErrorCode::None) base = o.base_offset;
          if (o.synced != nullptr) log_start = o.synced->log->log_start_offset().value();
        }
        if (err != kafka::error::none) base = -1;
        w.i32(pa.index);
        w.i16(kafka::code(err));
        w.i64(base);
        w.i64(-1);  // log append time: CreateTime
        if (since(*q, 5)) w.i64(log_start);
        if (since(*q, 8)) {
          w.array(0);  // record errors
          w.nullable_string(message.empty() ? std::nullopt
                                            : std::optional<std::string_view>(message));
        }
      }
    }
    w.i32(q->throttle_ms);  // a quota (quotas.h)
    (void)stats;
    if (acks == 0)
      q->respond_nothing();
    else
      q->respond(std::move(w));
  });
}

void kafka_init_producer_id(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  auto in = q->body();
  const auto transactional_id = in.nullable_string();
  (void)in.i32();  // transaction timeout
  if (!in.ok()) return q->malformed("InitProducerId");
  auto w = q->response();
  w.i32(0);  // throttle
  if (transactional_id) {
    // Transactions need a transaction coordinator ferryd does not have.
    w.i16(kafka::code(kafka::error::transactional_id_authorization_failed));
    w.i64(-1);
    w.i16(-1);
    return q->respond(std::move(w));
  }
  // A producer id is for a user who may write somewhere (Kafka's
  // IdempotentWrite on the cluster, or write on any topic).
  if (c.access && !c.access->is_super(q->principal) &&
      !c.access->by_rules(q->principal, acl_resource::cluster, {}, acl_op::write).allowed &&
      !c.access->allowed_somewhere(q->principal, acl_resource::topic, acl_op::write)) {
    c.stats.authz_failures.with({"cluster", "write"}).inc();
    w.i16(kafka::code(kafka::error::cluster_authorization_failed));
    w.i64(-1);
    w.i16(-1);
    return q->respond(std::move(w));
  }
  // One producer id space with the native InitProducer (producer_state.h).
  auto g = c.producer_ids->init(std::nullopt);
  if (!g) {
    log::get("kafka")->error("InitProducerId: persisting the producer id failed: {}",
                             g.error().message());
    w.i16(kafka::code(kafka::error::kafka_storage_error));
    w.i64(-1);
    w.i16(-1);
    return q->respond(std::move(w));
  }
  w.i16(kafka::code(kafka::error::none));
  w.i64(g.value().id.value());
  w.i16(g.value().epoch.value());
  q->respond(std::move(w));
}

}  // namespace ferry::broker
