// Typed handlers with the v1 contracts as the reader (typed_cases.h): v2
// records (FULL compatible) are read with the new fields skipped.
#define FERRY_READER_VERSION 1
#include "ferry/schemas/orders/v1/order_placed_contract.h"
#include "ferry/schemas/orders/v1/payment_captured_contract.h"
#include "typed_cases.h"

namespace ferry::testing {
namespace {

// A v2 field's presence in a table read through a v1 type (which cannot
// name it): the vtable slot of field id `id`.
bool has_field_id(const void* table, int id) {
  return reinterpret_cast<const flatbuffers::Table*>(table)->CheckField(
      static_cast<flatbuffers::voffset_t>(4 + 2 * id));
}

TEST_F(TypedTest, V1ReaderHandlesV2OrdersWithTheNewFieldsIgnored) {
  create("orders");
  const auto v1 = register_orders(1);
  const auto v2 = register_orders(2);
  ASSERT_NE(v1, v2);
  const auto v2_order = json_payload(2, "order_placed", R"({
    "order_id": "o-2", "customer_id": "cust-9", "currency": "GBP", "total_cents": 4200,
    "items": [{"sku": "a", "quantity": 3, "unit_price_cents": 1600, "discount_cents": 600}],
    "placed_at_ms": 1700000001000,
    "shipping_address": {"name": "Ada", "street": "1 Main St", "city": "London",
                         "postal_code": "N1", "country": "GB"},
    "express": true, "coupon_code": "SPRING"})");
  produce_records("orders", {{"o-1", own_order("o-1"), v1, std::nullopt},
                             {"o-2", v2_order, v2, std::nullopt},
                             {"o-3", v2_order, std::nullopt, std::nullopt}});
  runtime::worker w(worker_options("typed"));
  std::vector<std::string> seen;
  ASSERT_TRUE(w.on<orders::OrderPlaced>(
      subscription("orders"), [&](const orders::OrderPlaced& o, const message& m) -> result<void> {
        seen.push_back(*m.key());
        if (*m.key() == "o-1") return success();
        // The v2 fields are in the buffer, and the v1 view reads around them.
        EXPECT_TRUE(has_field_id(&o, 6) && has_field_id(&o, 7) && has_field_id(&o, 8));
        EXPECT_EQ(o.order_id()->string_view(), "o-2");
        EXPECT_EQ(o.customer_id()->string_view(), "cust-9");
        EXPECT_EQ(o.currency(), orders::Currency::GBP);
        EXPECT_EQ(o.total_cents(), 4200);
        EXPECT_EQ(o.placed_at_ms(), 1700000001000);
        EXPECT_EQ(o.items()->size(), 1u);
        EXPECT_EQ(o.items()->Get(0)->sku()->string_view(), "a");
        EXPECT_EQ(o.items()->Get(0)->quantity(), 3u);
        EXPECT_EQ(o.items()->Get(0)->unit_price_cents(), 1600);
        return success();
      }));
  ASSERT_TRUE(step_until(w, [&] { return seen.size() == 3; })) << w.last_error();
  EXPECT_EQ(seen, (std::vector<std::string>{"o-1", "o-2", "o-3"}));
  ASSERT_TRUE(step_until(w, [&] { return committed("typed", "orders") == 3; }));
  EXPECT_EQ(w.stats().dead_lettered, 0u);
}

TEST_F(TypedTest, V1ReaderHandlesV2Payments) {
  create("payments");
  (void)register_orders(1, "payment_captured");
  const auto v2 = register_orders(2, "payment_captured");
  produce_records("payments", {{"o-1", json_payload(2, "payment_captured", R"({
    "order_id": "o-1", "payment_id": "pay-7", "amount_cents": 990, "currency": "USD",
    "captured_at_ms": 1700000002000, "method": "BankTransfer"})"),
                                v2, std::nullopt}});
  runtime::worker w(worker_options("typed"));
  int calls = 0;
  ASSERT_TRUE(w.on<orders::PaymentCaptured>(
      subscription("payments"),
      [&](const orders::PaymentCaptured& p, const message&) -> result<void> {
        ++calls;
        EXPECT_TRUE(has_field_id(&p, 5)) << "the v2 method is in the buffer";
        EXPECT_EQ(p.order_id()->string_view(), "o-1");
        EXPECT_EQ(p.payment_id()->string_view(), "pay-7");
        EXPECT_EQ(p.amount_cents(), 990);
        EXPECT_EQ(p.currency(), orders::Currency::USD);
        EXPECT_EQ(p.captured_at_ms(), 1700000002000);
        return success();
      }));
  ASSERT_TRUE(step_until(w, [&] { return calls == 1; })) << w.last_error();
  ASSERT_TRUE(step_until(w, [&] { return committed("typed", "payments") == 1; }));
  EXPECT_EQ(w.stats().dead_lettered, 0u);
}

}  // namespace
}  // namespace ferry::testing
