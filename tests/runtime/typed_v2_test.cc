// Typed handlers with the v2 contracts as the reader (typed_cases.h): v1
// records read with the defaults of the fields v2 added.
#define FERRY_READER_VERSION 2
#include "ferry/schemas/orders/v2/order_placed_contract.h"
#include "ferry/schemas/orders/v2/payment_captured_contract.h"
#include "typed_cases.h"

namespace ferry::testing {
namespace {

TEST_F(TypedTest, V2ReaderHandlesV1OrdersWithTheNewFieldsDefaulted) {
  create("orders");
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
  produce_records("orders", {{"o-1", v1_order, v1, std::nullopt},
                             {"o-2", bytes_of(fbb), v2, std::nullopt},
                             {"o-3", v1_order, std::nullopt, std::nullopt}});
  runtime::worker w(worker_options("typed"));
  std::vector<std::string> seen;
  ASSERT_TRUE(w.on<orders::OrderPlaced>(
      subscription("orders"), [&](const orders::OrderPlaced& o, const message& m) -> result<void> {
        seen.push_back(*m.key());
        if (*m.key() == "o-2") {
          EXPECT_TRUE(o.express());
          EXPECT_EQ(o.shipping_address()->city()->string_view(), "London");
          EXPECT_EQ(o.coupon_code()->string_view(), "SPRING");
          EXPECT_EQ(o.items()->Get(0)->discount_cents(), 50);
          return success();
        }
        EXPECT_EQ(o.order_id()->string_view(), "o-1");
        EXPECT_EQ(o.customer_id()->string_view(), "cust-9");
        EXPECT_EQ(o.currency(), orders::Currency::GBP);
        EXPECT_EQ(o.total_cents(), 4200);
        EXPECT_EQ(o.placed_at_ms(), 1700000001000);
        EXPECT_FALSE(o.express());
        EXPECT_EQ(o.shipping_address(), nullptr);
        EXPECT_EQ(o.coupon_code(), nullptr);
        EXPECT_EQ(o.items()->size(), 1u);
        EXPECT_EQ(o.items()->Get(0)->sku()->string_view(), "a");
        EXPECT_EQ(o.items()->Get(0)->quantity(), 3u);
        EXPECT_EQ(o.items()->Get(0)->unit_price_cents(), 1400);
        EXPECT_EQ(o.items()->Get(0)->discount_cents(), 0);
        return success();
      }));
  ASSERT_TRUE(step_until(w, [&] { return seen.size() == 3; })) << w.last_error();
  EXPECT_EQ(seen, (std::vector<std::string>{"o-1", "o-2", "o-3"}));
  ASSERT_TRUE(step_until(w, [&] { return committed("typed", "orders") == 3; }));
  EXPECT_EQ(w.stats().dead_lettered, 0u);
}

TEST_F(TypedTest, V2ReaderSeesCardForV1Payments) {
  create("payments");
  const auto v1 = register_orders(1, "payment_captured");
  (void)register_orders(2, "payment_captured");
  produce_records("payments", {{"o-1", json_payload(1, "payment_captured", R"({
    "order_id": "o-1", "payment_id": "pay-7", "amount_cents": 990, "currency": "USD",
    "captured_at_ms": 1700000002000})"),
                                v1, std::nullopt}});
  runtime::worker w(worker_options("typed"));
  int calls = 0;
  ASSERT_TRUE(w.on<orders::PaymentCaptured>(
      subscription("payments"),
      [&](const orders::PaymentCaptured& p, const message&) -> result<void> {
        ++calls;
        EXPECT_EQ(p.method(), orders::PaymentMethod::Card);
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
