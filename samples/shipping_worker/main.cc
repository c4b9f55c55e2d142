// shipping_worker: ships what has been paid for.
//
//   payments (PaymentCaptured) --> [shipping] --> shipments (OrderShipped)
//
//   shipping_worker [--broker URL] [--stats-file PATH]
//
// What it shows:
// - Consuming one service's events and producing the next: a stage in the
//   middle of a pipeline. The handler returns success only after the broker
//   acknowledged OrderShipped, so a crash can repeat a shipment event but
//   never lose one; its idempotency key ("<order>/shipped") lets whoever
//   consumes shipments skip the repeat.
// - The default ordering mode, in_order: the simplest, and right when every
//   failure is short (a retry holds its partition while it waits).
// - A re-sent PaymentCaptured (the payment worker crashed after producing
//   it, before committing) has the same idempotency key and is skipped.
#include <chrono>
#include <cstdio>
#include <string>

#include "../common/sample.h"
#include "ferry/client/producer.h"
#include "ferry/client/schema_cache.h"
#include "ferry/runtime/worker.h"
#include "orders/v2/order_shipped_contract.h"
#include "orders/v2/payment_captured_contract.h"

namespace fc = ferry::client;
namespace fr = ferry::runtime;
namespace orders = ferry::samples::orders;

int main(int argc, char** argv) {
  sample::flags f(argc, argv,
                  "shipping_worker [--broker URL] [--stats-file PATH] [--metrics-listen HOST:PORT] "
                  "[--instance-id ID]");
  fr::worker_options o;
  o.consumer.broker = f.broker();
  o.consumer.group_id = "shipping";
  // Static membership: a restart with the same id takes its partitions back at
  // once instead of waiting out the dead instance's session (order_demo uses it).
  o.consumer.group_instance_id = f.text("--instance-id");
  o.metrics_listen = f.text("--metrics-listen");  // opt-in /metrics, /healthz, /readyz
  const std::string stats_file = f.text("--stats-file");
  f.done();

  fc::producer_options po;
  po.broker = o.consumer.broker;
  fc::producer shipments(po);
  fc::schema_cache schemas(po);
  auto shipped_schema = schemas.id_for<orders::OrderShipped>(sample::kShipmentsSubject);
  if (!shipped_schema) {
    std::fprintf(stderr, "error: cannot register OrderShipped: %s\n",
                 schemas.last_error_message().c_str());
    return 1;
  }

  fr::worker w(o);
  fr::subscription_config s;
  s.topics = {std::string(sample::kPayments)};
  s.retry.max_attempts = 5;  // in_order: the partition waits during a backoff
  s.dead_letter_topic = "payments.shipping.dlq";

  auto handler = [&](const orders::PaymentCaptured& paid,
                     const fr::message&) -> ferry::result<void> {
    const auto id = paid.order_id()->string_view();
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    flatbuffers::FlatBufferBuilder fbb(256);
    fbb.Finish(orders::CreateOrderShipped(fbb, fbb.CreateString(id), fbb.CreateString("PostNL"),
                                          fbb.CreateString("3S" + std::string(id)), now,
                                          now + 2 * 24 * 3600 * 1000),
               orders::OrderShippedIdentifier());
    fc::producer_record r;
    r.topic = sample::kShipments;
    r.key = std::string(id);
    r.idempotency_key = std::string(id) + "/shipped";
    r.value = std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
    fc::set_schema_id(r, shipped_schema.value());
    auto sent = shipments.send(std::move(r)).get();  // wait for the broker's acknowledgement
    if (!sent) return sent.error();                  // retried
    return ferry::success();
  };
  if (auto r = w.on<orders::PaymentCaptured>(s, handler); !r) {
    std::fprintf(stderr, "error: %s\n", w.last_error().c_str());
    return 2;
  }

  // Until SIGTERM/SIGINT: then it finishes what it holds, commits, leaves.
  return sample::run(
      w, "shipping_worker: consuming " + std::string(sample::kPayments) + " as group shipping",
      stats_file);
}
