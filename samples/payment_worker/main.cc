// payment_worker: charges each order once, through a flaky payment gateway.
//
//   orders (OrderPlaced) --> [payment] --> payments (PaymentCaptured)
//                               |
//                               +--> orders.payment.dlq  declined cards,
//                                    gateway down for good, invalid payloads
//
//   payment_worker [--broker URL] [--stats-file PATH] [--gateway-ledger PATH]
//
// What it shows:
// - A typed handler (worker::on<OrderPlaced>): the payload arrives verified
//   against the registry and the v2 contract. Records written with v1 read
//   with v2's defaults (no address, express = false).
// - Retries with backoff in delay tiers: a failed charge is republished to
//   orders.retry.250ms, then orders.retry.1s, so the partition keeps moving
//   while the gateway recovers (order across retries is not kept: payments
//   of different orders are independent).
// - Errors that are not worth retrying: a declined card is a permanent
//   error and goes to the dead-letter topic at once, with the reason.
// - Idempotency end to end: the group skips an OrderPlaced whose key it has
//   already processed; the gateway gets the key too (as real ones such as
//   Stripe do), so a crash between charge and commit cannot charge twice;
//   and the PaymentCaptured event carries "<order>/paid" so the shipping
//   worker can skip a re-sent one.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <system_error>

#include "../common/sample.h"
#include "ferry/client/producer.h"
#include "ferry/client/schema_cache.h"
#include "ferry/runtime/worker.h"
#include "orders/v2/order_placed_contract.h"
#include "orders/v2/payment_captured_contract.h"

namespace fc = ferry::client;
namespace fr = ferry::runtime;
namespace orders = ferry::samples::orders;

namespace {

// The payment domain's own errors, so retry policies and dead letters can
// name them ("payments:1" in `ferry dlq list`).
enum class payment_errc { card_declined = 1, gateway_unavailable = 2 };

const std::error_category& payment_category() {
  static const struct : std::error_category {
    [[nodiscard]] const char* name() const noexcept override { return "payments"; }
    [[nodiscard]] std::string message(int c) const override {
      return c == 1 ? "card declined" : "payment gateway unavailable";
    }
  } category;
  return category;
}
std::error_code make_error_code(payment_errc e) {
  return {static_cast<int>(e), payment_category()};
}

// A stand-in for a payment provider's API. Decisions follow a hash of the
// order id, so every run fails the same orders: about 1 in 5 orders times
// out once, 1 in 25 twice, 1 in 50 for good (the gateway never recovers
// within our attempts), and 3 in 100 cards are declined.
//
// Like real providers it remembers idempotency keys: a charge repeated with
// a key it has seen returns the first charge instead of charging again.
// That memory is the provider's, not the worker's, so it outlives a crash of
// the worker: here a file (--gateway-ledger) with a line per call that got
// through, "charged KEY" or "replayed KEY".
class payment_gateway {
 public:
  struct charge_result {
    std::error_code error;
    std::string payment_id;
    bool replayed = false;  // answered from the key: not charged again
  };

  explicit payment_gateway(std::string ledger_path) : path_(std::move(ledger_path)) {
    if (path_.empty()) return;
    std::ifstream in(path_);
    for (std::string what, key; in >> what >> key;)
      if (what == "charged") charged_.insert(key);
    ledger_.open(path_, std::ios::app);
  }

  charge_result charge(std::string_view order_id, std::int64_t amount_cents,
                       std::string_view idempotency_key, int attempt) {
    const auto h = sample::fnv1a(order_id) % 100;
    if (h < 3) return {make_error_code(payment_errc::card_declined), {}};
    const int failures = h < 5 ? 99 : h < 9 ? 2 : h < 29 ? 1 : 0;
    if (attempt <= failures) return {make_error_code(payment_errc::gateway_unavailable), {}};
    (void)amount_cents;
    std::lock_guard lock(mu_);
    const bool seen = !charged_.emplace(idempotency_key).second;
    if (ledger_.is_open())
      ledger_ << (seen ? "replayed " : "charged ") << idempotency_key << '\n' << std::flush;
    return {{}, "pay-" + std::string(order_id), seen};
  }

 private:
  std::string path_;
  std::mutex mu_;
  std::set<std::string, std::less<>> charged_;
  std::ofstream ledger_;
};

}  // namespace

template <>
struct std::is_error_code_enum<payment_errc> : std::true_type {};

int main(int argc, char** argv) {
  sample::flags f(argc, argv,
                  "payment_worker [--broker URL] [--stats-file PATH] [--gateway-ledger PATH] "
                  "[--metrics-listen HOST:PORT] [--instance-id ID]");
  fr::worker_options o;
  o.consumer.broker = f.broker();
  o.consumer.group_id = "payment";  // one group per service: each gets every order
  // Static membership: a restart with the same id takes its partitions back at
  // once instead of waiting out the dead instance's session (order_demo uses it).
  o.consumer.group_instance_id = f.text("--instance-id");
  o.metrics_listen = f.text("--metrics-listen");  // opt-in /metrics, /healthz, /readyz
  const std::string stats_file = f.text("--stats-file");
  const std::string ledger = f.text("--gateway-ledger");
  f.done();

  // PaymentCaptured goes out through our own idempotent producer.
  fc::producer_options po;
  po.broker = o.consumer.broker;
  fc::producer payments(po);
  fc::schema_cache schemas(po);
  auto captured_schema = schemas.id_for<orders::PaymentCaptured>(sample::kPaymentsSubject);
  if (!captured_schema) {
    std::fprintf(stderr, "error: cannot register PaymentCaptured: %s\n",
                 schemas.last_error_message().c_str());
    return 1;
  }

  payment_gateway gateway(ledger);
  fr::worker w(o);
  fr::subscription_config s;
  s.topics = {std::string(sample::kOrders)};
  s.order = fr::ordering::delay_tiers;
  s.tiers = {{"250ms", std::chrono::milliseconds(250)}, {"1s", std::chrono::seconds(1)}};
  s.retry.max_attempts = 4;  // the first charge and three retries
  s.dead_letter_topic = "orders.payment.dlq";

  auto handler = [&](const orders::OrderPlaced& order,
                     const fr::message& m) -> ferry::result<void> {
    const auto id = order.order_id()->string_view();
    // The key makes a repeated charge harmless; an order without one could
    // be charged twice, so it is refused (dead-lettered) instead.
    if (!m.idempotency_key())
      return fr::invalid_payload("order " + std::string(id) + " has no idempotency key");
    auto charge = gateway.charge(id, order.total_cents(), *m.idempotency_key(), m.attempt());
    if (charge.error == payment_errc::card_declined)
      return fr::permanent(charge.error, "card declined for order " + std::string(id));
    if (charge.error)  // a plain (retriable) error: retried in the tiers above
      return fr::retriable(charge.error, "gateway timed out charging " + std::string(id));

    // The event the shipping worker waits for. The handler returns only once
    // the broker has it (fsynced): then the order's offset may be committed.
    flatbuffers::FlatBufferBuilder fbb(256);
    fbb.Finish(orders::CreatePaymentCaptured(
                   fbb, fbb.CreateString(id), fbb.CreateString(charge.payment_id),
                   order.total_cents(), order.currency(),
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count(),
                   orders::PaymentMethod::Card),
               orders::PaymentCapturedIdentifier());
    fc::producer_record r;
    r.topic = sample::kPayments;
    r.key = std::string(id);
    r.idempotency_key = std::string(id) + "/paid";
    r.value = std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
    fc::set_schema_id(r, captured_schema.value());
    auto sent = payments.send(std::move(r)).get();
    if (!sent) return sent.error();  // retried: the gateway answers the repeat from its key
    return ferry::success();
  };
  if (auto r = w.on<orders::OrderPlaced>(s, handler); !r) {
    std::fprintf(stderr, "error: %s\n", w.last_error().c_str());
    return 2;
  }

  // Until SIGTERM/SIGINT: then it finishes what it holds, commits, leaves.
  return sample::run(
      w, "payment_worker: consuming " + std::string(sample::kOrders) + " as group payment",
      stats_file);
}
