// Produce: each entry's batch through admission (admission.h); the reply
// after the round's sync.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "admission.h"
#include "ferry/format/batch.h"
#include "ferry/protocol/codec.h"
#include "native.h"

namespace ferry::broker {

using namespace ferry::wire;

namespace {

// The audit log's lines for `ferry dlq` markers in an appended batch (the
// one place a redrive or purge reaches the broker as itself).
void audit_markers(broker_core& c, const native_request& q, std::string_view topic,
                   std::int32_t partition, std::span<const std::byte> batch)
    FERRY_REQUIRES(core_thread) {
  format::for_each_record(batch, [&](const format::record_view& rv) {
    core_thread.assert_held();  // called right here
    std::string kind;
    rv.for_each_header([&](const format::header_view& h) {
      if (h.key == protocol::kDlqMarkerHeader && h.value)
        kind.assign(reinterpret_cast<const char*>(h.value->data()), h.value->size());
    });
    if (kind.empty()) return true;
    nlohmann::json target = {
        {"topic", topic}, {"partition", partition}, {"offset", rv.off.value()}};
    auto v = nlohmann::json::parse(rv.value_str(), nullptr, false);
    if (!v.is_discarded() && v.is_object()) {
      if (auto o = v.find("offsets"); o != v.end() && o->is_array())
        target["dead_letters"] = o->size();
      for (const char* k : {"to", "run", "by"})
        if (auto f = v.find(k); f != v.end()) target[k] = *f;
    }
    audit(c, q, "dlq." + kind, target, ErrorCode::None);
    return true;
  });
}

}  // namespace

std::vector<std::string> dlq_marker_kinds(std::span<std::byte> batch) {
  std::vector<std::string> kinds;
  if (batch.size() < format::kBatchHeaderSize) return kinds;
  const auto h = format::batch_header::decode(batch.data());
  if (h.codec() == format::compression::none) {
    const std::string_view bytes(reinterpret_cast<const char*>(batch.data()), batch.size());
    if (bytes.find(protocol::kDlqMarkerHeader) == std::string_view::npos) return kinds;
  }
  if (!format::check_batch(batch)) return kinds;
  format::for_each_record(batch, [&](const format::record_view& rv) {
    rv.for_each_header([&](const format::header_view& hv) {
      if (hv.key == protocol::kDlqMarkerHeader && hv.value)
        kinds.emplace_back(reinterpret_cast<const char*>(hv.value->data()), hv.value->size());
    });
    return true;
  });
  return kinds;
}

namespace {

// With security on: a batch holding dlq markers needs redrive (a redrive's
// markers) or purge (a purge's) on the dlq resource of its topic, besides
// write on the topic (authorize()). False when refused and answered.
bool markers_allowed(broker_core& c, native_request& q) FERRY_REQUIRES(core_thread) {
  if (!c.access || c.access->is_super(q.principal)) return true;
  const auto* entries = q.env->body_as_ProduceRequest()->entries();
  for (const auto* e : *entries) {
    const auto topic = e->topic()->string_view();
    const auto redrive = c.access->by_rules(q.principal, acl_resource::dlq, topic, acl_op::redrive);
    const auto purge = c.access->by_rules(q.principal, acl_resource::dlq, topic, acl_op::purge);
    if (redrive.allowed && purge.allowed) continue;
    for (const auto& kind : dlq_marker_kinds(q.frames[e->frame()].bytes)) {
      const bool purging = kind == "purged";
      const auto& d = purging ? purge : redrive;
      if (d.allowed) continue;
      refuse_unauthorized(c, q, acl_resource::dlq, topic, purging ? acl_op::purge : acl_op::redrive,
                          d, "dlq." + kind);
      return false;
    }
  }
  return true;
}

}  // namespace

void handle_produce(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  if (!markers_allowed(c, *q)) return;
  const auto* req = q->env->body_as_ProduceRequest();
  std::vector<produce_outcome> out(req->entries()->size());
  for (std::uint32_t i = 0; i < req->entries()->size(); ++i) {
    const auto* e = req->entries()->Get(i);
    auto* p = c.topics.find(e->topic()->string_view(), e->partition(), out[i].error);
    if (p == nullptr) {
      out[i].message =
          out[i].error == ErrorCode::UnknownTopic
              ? fmt::format("unknown topic {}: create it first (ferry topics create)",
                            e->topic()->string_view())
              : topic_table::missing(e->topic()->string_view(), e->partition(), out[i].error);
      continue;
    }
    out[i] = admit(r, *p, q->frames[e->frame()].bytes);
  }
  r.after_sync([q = std::move(q), out = std::move(out)](round& rr) mutable {
    core_thread.assert_held();  // the pipeline runs it after the round's sync
    const auto* entries = q->env->body_as_ProduceRequest()->entries();
    flatbuffers::FlatBufferBuilder fbb(256 + 64 * out.size());
    std::vector<flatbuffers::Offset<ProduceResult>> results;
    results.reserve(out.size());
    for (std::uint32_t i = 0; i < out.size(); ++i) {
      auto& o = out[i];
      settle(rr, o);
      const auto* e = entries->Get(i);
      const bool ok = o.error == ErrorCode::None;
      if (ok && !o.duplicate && rr.core().audit)
        audit_markers(rr.core(), *q, e->topic()->string_view(), e->partition(),
                      q->frames[e->frame()].bytes);
      results.push_back(CreateProduceResult(fbb, fbb.CreateString(e->topic()->string_view()),
                                            e->partition(), o.error, ok ? o.base_offset : -1,
                                            opt_string(fbb, o.message), ok && o.duplicate));
    }
    auto body = CreateProduceResponse(fbb, fbb.CreateVector(results));
    q->respond(envelope(fbb, q->id(), Body::ProduceResponse, body.Union(), q->throttle_ms));
  });
}

}  // namespace ferry::broker
