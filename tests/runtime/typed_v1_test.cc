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

TEST_P(TypedTest, V1ReaderHandlesV2OrdersWithTheNewFieldsIgnored) {
  create(own("orders"));
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
  expect_handled<orders::OrderPlaced>(
      own("orders"),
      {{"o-1", own_order("o-1"), v1, std::nullopt},
       {"o-2", v2_order, v2, std::nullopt},
       {"o-3", v2_order, std::nullopt, std::nullopt}},
      [](const orders::OrderPlaced& o, const message& m) {
        if (*m.key() == "o-1") return;
        // The v2 fields are in the buffer, and the v1 view reads around them.
        EXPECT_TRUE(has_field_id(&o, 6) && has_field_id(&o, 7) && has_field_id(&o, 8));
        expect_order(o,
                     {"o-2", "cust-9", orders::Currency::GBP, 4200, 1700000001000, "a", 3, 1600});
      });
}

TEST_P(TypedTest, V1ReaderHandlesV2Payments) {
  create(own("payments"));
  (void)register_orders(1, "payment_captured");
  const auto v2 = register_orders(2, "payment_captured");
  expect_handled<orders::PaymentCaptured>(
      own("payments"), {{"o-1", other_version_payment(), v2, std::nullopt}},
      [](const orders::PaymentCaptured& p, const message&) {
        EXPECT_TRUE(has_field_id(&p, 5)) << "the v2 method is in the buffer";
        expect_payment(p, kOtherVersionPayment);
      });
}

INSTANTIATE_TEST_SUITE_P(Transports, TypedTest,
                         ::testing::Values(transport::native, transport::kafka), transport_name);

}  // namespace
}  // namespace ferry::testing
