// Produce: each entry's batch through admission (admission.h); the reply
// after the round's sync.
#include <fmt/format.h>

#include "admission.h"
#include "native.h"

namespace ferry::broker {

using namespace ferry::wire;

void handle_produce(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
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
      results.push_back(CreateProduceResult(fbb, fbb.CreateString(e->topic()->string_view()),
                                            e->partition(), o.error, ok ? o.base_offset : -1,
                                            opt_string(fbb, o.message), ok && o.duplicate));
    }
    auto body = CreateProduceResponse(fbb, fbb.CreateVector(results));
    q->respond(envelope(fbb, q->id(), Body::ProduceResponse, body.Union()));
  });
}

}  // namespace ferry::broker
