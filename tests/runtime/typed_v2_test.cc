// Typed handlers with the v2 contracts as the reader (typed_cases.h): v1
// records read with the defaults of the fields v2 added.
#define FERRY_READER_VERSION 2
#include "ferry/schemas/orders/v2/order_placed_contract.h"
#include "ferry/schemas/orders/v2/payment_captured_contract.h"
#include "typed_cases.h"

namespace ferry::testing {
namespace {

TEST_P(TypedTest, V2ReaderHandlesV1OrdersWithTheNewFieldsDefaulted) {
  create(own("orders"));
  const auto v1 = register_orders(1);
  const auto v2 = register_orders(2);
  ASSERT_NE(v1, v2);
  const auto v1_order = json_payload(1, "order_placed", R"({
    "order_id": "o-1", "customer_id": "cust-9", "currency": "GBP", "total_cents": 4200,
    "items": [{"sku": "a", "quantity": 3, "unit_price_cents": 1400}],
    "placed_at_ms": 1700000001000})");
  // A v2 record with every new field set: the handler must tell them apart.
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<orders::LineItem>> items{
      orders::CreateLineItemDirect(fbb, "b", 1, 500, 50)};
  fbb.Finish(orders::CreateOrderPlacedDirect(
                 fbb, "o-2", "cust-9", orders::Currency::EUR, 450, &items, 1700000001001,
                 orders::CreateAddressDirect(fbb, "Ada", "1 Main St", "London", "N1", "GB"), true,
                 "SPRING"),
             orders::OrderPlacedIdentifier());
  expect_handled<orders::OrderPlaced>(
      own("orders"),
      {{"o-1", v1_order, v1, std::nullopt},
       {"o-2", bytes_of(fbb), v2, std::nullopt},
       {"o-3", v1_order, std::nullopt, std::nullopt}},
      [](const orders::OrderPlaced& o, const message& m) {
        if (*m.key() == "o-2") {
          EXPECT_TRUE(o.express());
          EXPECT_EQ(o.shipping_address()->city()->string_view(), "London");
          EXPECT_EQ(o.coupon_code()->string_view(), "SPRING");
          EXPECT_EQ(o.items()->Get(0)->discount_cents(), 50);
          return;
        }
        expect_order(o,
                     {"o-1", "cust-9", orders::Currency::GBP, 4200, 1700000001000, "a", 3, 1400});
        EXPECT_FALSE(o.express());
        EXPECT_EQ(o.shipping_address(), nullptr);
        EXPECT_EQ(o.coupon_code(), nullptr);
        EXPECT_EQ(o.items()->Get(0)->discount_cents(), 0);
      });
}

TEST_P(TypedTest, V2ReaderSeesCardForV1Payments) {
  create(own("payments"));
  const auto v1 = register_orders(1, "payment_captured");
  (void)register_orders(2, "payment_captured");
  expect_handled<orders::PaymentCaptured>(own("payments"),
                                          {{"o-1", other_version_payment(), v1, std::nullopt}},
                                          [](const orders::PaymentCaptured& p, const message&) {
                                            EXPECT_EQ(p.method(), orders::PaymentMethod::Card);
                                            expect_payment(p, kOtherVersionPayment);
                                          });
}

INSTANTIATE_TEST_SUITE_P(Transports, TypedTest,
                         ::testing::Values(transport::native, transport::kafka), transport_name);

}  // namespace
}  // namespace ferry::testing
