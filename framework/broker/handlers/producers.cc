// InitProducer: a producer id and epoch for an idempotent producer,
// durable (when it needs to be) before the reply (producer_state.h).
#include <fmt/format.h>

#include "ferry/broker/wire_errors.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "native.h"

namespace ferry::broker {

using namespace ferry::wire;

void handle_init_producer(round& r, std::unique_ptr<native_request> q) {
  auto& c = r.core();
  const auto* name = q->env->body_as_InitProducerRequest()->name();
  // With security on, a name belongs to its principal: another user taking
  // the same name gets its own producer and cannot fence this one.
  std::optional<std::string> scoped;
  if (name) scoped = c.access ? q->principal + "/" + name->str() : name->str();
  auto g = c.producer_ids->init(scoped ? std::optional<std::string_view>(*scoped) : std::nullopt);
  flatbuffers::FlatBufferBuilder fbb(128);
  flatbuffers::Offset<InitProducerResponse> body;
  if (g) {
    body = CreateInitProducerResponse(fbb, ErrorCode::None, 0, g.value().id.value(),
                                      g.value().epoch.value());
    FERRY_LOG_DEBUG(log::get("broker"), "InitProducer{}: id {} epoch {}",
                    name ? " " + name->str() : std::string(), g.value().id.value(),
                    g.value().epoch.value());
  } else if (g.error() == ferry::errc::out_of_range) {
    body = CreateInitProducerResponse(
        fbb, ErrorCode::InvalidRequest,
        fbb.CreateString(fmt::format("the broker already knows {} producer names (the limit); "
                                     "reuse names or produce without one",
                                     kMaxNamedProducers)));
  } else {
    log::get("broker")->error("InitProducer: writing {} failed: {}",
                              (c.cfg.data_dir / "producers").string(), g.error().message());
    body = CreateInitProducerResponse(
        fbb, to_wire(g.error()),
        fbb.CreateString("persisting the producer id failed: " + g.error().message()));
  }
  q->respond(envelope(fbb, q->id(), Body::InitProducerResponse, body.Union()));
}

}  // namespace ferry::broker
