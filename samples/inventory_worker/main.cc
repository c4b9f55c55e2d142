// inventory_worker: reserves stock for each order.
//
//   orders (OrderPlaced) --> [inventory] --> stock reservations (in memory here)
//                                 |
//                                 +--> orders.inventory.dlq  invalid payloads,
//                                      reservations that never succeed
//
//   inventory_worker [--broker URL] [--stats-file PATH]
//
// What it shows:
// - An old consumer reading new data: this worker is built with OrderPlaced
//   v1, the checkout already writes v2. The registry confirms each writer
//   schema is readable with v1; v2's extra fields are simply not seen.
// - Key-ordered retries: when one order's reservation fails, only later
//   records with the same key (the same order) wait for its retry; every
//   other order keeps flowing through the partition. Strict per-partition
//   order (in_order) would hold them all for the backoff.
// - In-memory retries with exponential backoff and jitter; the attempt
//   count survives a crash (it is kept with the committed offset).
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "../common/sample.h"
#include "ferry/runtime/worker.h"
#include "orders/v1/order_placed_contract.h"

namespace fr = ferry::runtime;
namespace orders = ferry::samples::orders;

namespace {

// A stand-in for the stock service: one order in ten hits a SKU that is
// being counted and is refused for the first two tries. A reservation is
// made once per (order, sku): a retry, or the same order handled again
// after a crash, does not reserve twice.
class stock_service {
 public:
  bool reserve(std::string_view order_id, std::string_view sku, std::uint32_t quantity,
               int attempt) {
    if (sample::fnv1a(order_id) % 10 == 7 && attempt <= 2) return false;
    std::lock_guard lock(mu_);
    if (done_.emplace(std::string(order_id), std::string(sku)).second)
      reserved_[std::string(sku)] += quantity;
    return true;
  }

 private:
  std::mutex mu_;
  std::set<std::pair<std::string, std::string>> done_;
  std::map<std::string, std::uint64_t> reserved_;
};

}  // namespace

int main(int argc, char** argv) {
  sample::flags f(argc, argv,
                  "inventory_worker [--broker URL] [--stats-file PATH] [--metrics-listen "
                  "HOST:PORT] [--instance-id ID]");
  fr::worker_options o;
  o.consumer.broker = f.broker();
  o.consumer.group_id = "inventory";
  // Static membership: a restart with the same id takes its partitions back at
  // once instead of waiting out the dead instance's session (order_demo uses it).
  o.consumer.group_instance_id = f.text("--instance-id");
  o.metrics_listen = f.text("--metrics-listen");  // opt-in /metrics, /healthz, /readyz
  const std::string stats_file = f.text("--stats-file");
  f.done();

  stock_service stock;
  fr::worker w(o);
  fr::subscription_config s;
  s.topics = {std::string(sample::kOrders)};
  s.order = fr::ordering::key_ordered;
  s.retry.max_attempts = 5;
  s.retry.backoff.initial = std::chrono::milliseconds(50);  // then 100, 200, ... with jitter
  s.retry.backoff.max = std::chrono::seconds(2);
  s.dead_letter_topic = "orders.inventory.dlq";

  auto handler = [&](const orders::OrderPlaced& order,
                     const fr::message& m) -> ferry::result<void> {
    if (!order.items() || order.items()->size() == 0)
      return fr::invalid_payload("order " + order.order_id()->str() + " has no items");
    for (const auto* item : *order.items()) {
      if (!item->sku()) return fr::invalid_payload("a line item without sku");
      if (!stock.reserve(order.order_id()->string_view(), item->sku()->string_view(),
                         item->quantity(), m.attempt()))
        return fr::retriable(std::errc::resource_unavailable_try_again,
                             "stock count in progress for " + item->sku()->str());
    }
    return ferry::success();
  };
  if (auto r = w.on<orders::OrderPlaced>(s, handler); !r) {
    std::fprintf(stderr, "error: %s\n", w.last_error().c_str());
    return 2;
  }

  // Until SIGTERM/SIGINT: then it finishes what it holds, commits, leaves.
  return sample::run(
      w, "inventory_worker: consuming " + std::string(sample::kOrders) + " as group inventory",
      stats_file);
}
