// order_producer: the shop's checkout, publishing OrderPlaced events.
//
//   order_producer [--broker URL] [--orders N] [--duplicate-every K]
//                  [--invalid-every K] [--v1-every K] [--stats-file PATH]
//                  [--compression none|gzip|snappy|lz4|zstd]
//
// What it shows:
// - Records keyed by order id: every event of one order lands in one
//   partition, so consumers see them in order.
// - An idempotency key per event ("<order id>/placed"). The checkout retries
//   on timeouts and sometimes sends an order twice (--duplicate-every): the
//   workers' groups skip the second copy instead of charging twice.
// - Schema ids: every record carries the id of the schema it was written
//   with (header ferry.schema-id), registered once through schema_cache. The
//   topic enforces this (`ferry schema enforce orders`): the broker refuses a
//   record without one.
// - A mix of schema versions, as during a rolling deploy: this program is
//   built with OrderPlaced v2 (shipping address, express, coupon), and every
//   --v1-every'th order is written the way an instance still on v1 writes
//   it (no v2 fields, tagged with version 1's id). Consumers built with v1 or
//   v2 read both.
// - Bad records: every --invalid-every'th record is garbage under a valid
//   schema id (a buggy producer). Typed handlers dead-letter it at once
//   (reason invalid_payload) instead of crashing or retrying.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "../common/sample.h"
#include "ferry/client/admin.h"
#include "ferry/client/producer.h"
#include "ferry/client/schema_cache.h"
#include "orders/v2/order_placed_contract.h"

namespace fc = ferry::client;
namespace orders = ferry::samples::orders;

namespace {

constexpr std::string_view kUsage =
    "order_producer [--broker URL] [--orders N] [--duplicate-every K] [--invalid-every K]\n"
    "                      [--v1-every K] [--stats-file PATH]\n"
    "                      [--compression none|gzip|snappy|lz4|zstd]";

// One OrderPlaced. `legacy` leaves out every field v2 added: the bytes are
// then exactly what a v1 build writes (a FlatBuffers table stores only the
// fields that are set).
std::string build_order(flatbuffers::FlatBufferBuilder& fbb, long n, bool legacy) {
  fbb.Clear();
  const std::string id = "ord-" + std::to_string(n);
  const auto units = 1 + static_cast<std::uint32_t>(n % 3);
  const std::int64_t price = 1250 + 100 * (n % 7);
  std::vector<flatbuffers::Offset<orders::LineItem>> items{
      orders::CreateLineItem(fbb, fbb.CreateString("sku-" + std::to_string(n % 40)), units, price)};
  // Strings, vectors and sub-tables are created before the table that
  // refers to them.
  auto order_id = fbb.CreateString(id);
  auto customer = fbb.CreateString("cust-" + std::to_string(n % 500));
  auto item_vec = fbb.CreateVector(items);
  flatbuffers::Offset<orders::Address> address;
  if (!legacy)
    address = orders::CreateAddress(
        fbb, fbb.CreateString("A. Customer"), fbb.CreateString("1 Harbour Street"),
        fbb.CreateString("Rotterdam"), fbb.CreateString("3011"), fbb.CreateString("NL"));
  orders::OrderPlacedBuilder b(fbb);
  b.add_order_id(order_id);
  b.add_customer_id(customer);
  b.add_currency(orders::Currency::EUR);
  b.add_total_cents(price * units);
  b.add_items(item_vec);
  b.add_placed_at_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count());
  if (!legacy) {
    b.add_shipping_address(address);
    b.add_express(n % 5 == 0);
  }
  orders::FinishOrderPlacedBuffer(fbb, b.Finish());
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

}  // namespace

int main(int argc, char** argv) {
  sample::flags f(argc, argv, kUsage);
  fc::producer_options po;
  po.broker = f.broker();
  const long count = f.number("--orders", 2000);
  const long duplicate_every = f.number("--duplicate-every", 20);
  const long invalid_every = f.number("--invalid-every", 250);
  const long v1_every = f.number("--v1-every", 3);
  const std::string stats_file = f.text("--stats-file");
  // Batches compressed by the producer are stored compressed by the broker
  // and decompressed by the consumers: less disk and network for a few
  // microseconds of CPU per batch (docs/benchmarks.md).
  const std::string codec = f.text("--compression", "none");
  f.done();
  if (auto c = ferry::format::parse_compression(codec))
    po.compression = *c;
  else
    f.fail("--compression must be none, gzip, snappy, lz4 or zstd");

  // Schema ids, registered (or found) once. v2 is registered here if it is
  // not yet: the registry checks it against the subject's compatibility
  // mode first and refuses a breaking change.
  fc::schema_cache schemas(po);
  auto v2_id = schemas.id_for<orders::OrderPlaced>(sample::kOrdersSubject);
  if (!v2_id) {
    std::fprintf(stderr, "error: cannot register OrderPlaced v2 under %s: %s\n",
                 std::string(sample::kOrdersSubject).c_str(), schemas.last_error_message().c_str());
    return 1;
  }
  // Version 1's id, for the records written the way a v1 build writes them.
  // It was registered by the v1 build (here: by order_demo, with
  // `ferry schema register`); without it every order is written as v2.
  std::optional<std::int64_t> v1_id;
  if (v1_every > 0) {
    fc::admin admin(po);
    if (auto v1 = admin.get_schema(sample::kOrdersSubject, 1); v1 && v1.value().id != v2_id.value())
      v1_id = v1.value().id;
    else
      std::fprintf(stderr, "note: %s has no version 1 before v2; writing every order as v2\n",
                   std::string(sample::kOrdersSubject).c_str());
  }

  fc::producer producer(po);  // idempotent: a retried batch is stored once
  std::atomic<long> acked{0}, failed{0};
  std::string first_error;
  std::mutex error_mu;
  long sent = 0, duplicates = 0, invalid = 0, v1 = 0, v2 = 0;
  auto send = [&](fc::producer_record r) {
    ++sent;
    auto ok = producer.send(std::move(r), [&](const ferry::result<fc::record_metadata>& res) {
      if (res) {
        ++acked;
        return;
      }
      ++failed;
      std::lock_guard lock(error_mu);
      if (first_error.empty()) first_error = res.error().message();
    });
    if (!ok) {
      ++failed;
      std::lock_guard lock(error_mu);
      if (first_error.empty()) first_error = ok.error().message();
    }
  };

  flatbuffers::FlatBufferBuilder fbb(512);
  for (long n = 1; n <= count; ++n) {
    const bool legacy = v1_id && v1_every > 0 && n % v1_every == 0;
    fc::producer_record r;
    r.topic = sample::kOrders;
    r.key = "ord-" + std::to_string(n);
    r.idempotency_key = *r.key + "/placed";
    r.value = build_order(fbb, n, legacy);
    fc::set_schema_id(r, legacy ? *v1_id : v2_id.value());
    ++(legacy ? v1 : v2);
    if (duplicate_every > 0 && n % duplicate_every == 0) {
      send(r);  // the same event again, same idempotency key: a retry after a timeout
      ++duplicates;
    }
    send(std::move(r));
    if (invalid_every > 0 && n % invalid_every == 0) {
      fc::producer_record bad;
      bad.topic = sample::kOrders;
      bad.key = "bad-" + std::to_string(n);
      bad.idempotency_key = *bad.key + "/placed";
      bad.value = "{\"order\": " + std::to_string(n) + "}";  // JSON where FlatBuffers belong
      fc::set_schema_id(bad, v2_id.value());
      send(std::move(bad));
      ++invalid;
    }
    if (n % (count / 10 > 0 ? count / 10 : 1) == 0)
      std::fprintf(stderr, "order_producer: %ld/%ld orders sent\n", n, count);
  }
  // Every record acknowledged (fsynced by the broker) or failed.
  if (auto r = producer.flush(std::chrono::seconds(60)); !r)
    std::fprintf(stderr, "error: flush: %s\n", r.error().message().c_str());
  (void)producer.close();

  std::fprintf(stderr,
               "order_producer: %ld records sent (%ld orders, %ld duplicates, %ld invalid; "
               "%ld as v1, %ld as v2): %ld acknowledged, %ld failed%s%s\n",
               sent, count, duplicates, invalid, v1, v2, acked.load(), failed.load(),
               first_error.empty() ? "" : " - first error: ", first_error.c_str());
  sample::write_json(stats_file, {{"orders", count},
                                  {"sent", sent},
                                  {"acknowledged", acked.load()},
                                  {"failed", failed.load()},
                                  {"duplicates", duplicates},
                                  {"invalid", invalid},
                                  {"v1", v1},
                                  {"v2", v2},
                                  {"v1_schema_id", v1_id ? *v1_id : -1},
                                  {"v2_schema_id", v2_id.value()}});
  // Every record answered: acknowledged or failed (a flush that timed out
  // leaves some unanswered).
  return failed.load() == 0 && acked.load() == sent ? 0 : 1;
}
