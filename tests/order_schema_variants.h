// Variants of the v1 OrderPlaced contract (schemas/samples/orders/v1) that
// tests register as incompatible or newer writers.
#pragma once

namespace ferry::testing {

/// v1's OrderPlaced with total_cents an int32: field_type_changed, which
/// breaks reading in both directions.
inline constexpr const char* kOrderPlacedInt32Total = R"(namespace ferry.samples.orders;
enum Currency : ubyte { EUR = 0, USD = 1, GBP = 2 }
table LineItem { sku: string (id: 0); quantity: uint32 (id: 1); unit_price_cents: int64 (id: 2); }
file_identifier "ORD1";
table OrderPlaced {
  order_id: string (id: 0, key, required);
  customer_id: string (id: 1);
  currency: Currency = EUR (id: 2);
  total_cents: int32 (id: 3);
  items: [LineItem] (id: 4);
  placed_at_ms: int64 (id: 5);
}
root_type OrderPlaced;
)";

/// v1's OrderPlaced with a Currency value v1 readers do not know (CHF = 3):
/// BACKWARD compatible, not FORWARD.
inline constexpr const char* kOrderPlacedWithChf = R"(namespace ferry.samples.orders;
enum Currency : ubyte { EUR = 0, USD = 1, GBP = 2, CHF = 3 }
table LineItem { sku: string (id: 0); quantity: uint32 (id: 1); unit_price_cents: int64 (id: 2); }
file_identifier "ORD1";
table OrderPlaced {
  order_id: string (id: 0, key, required);
  customer_id: string (id: 1);
  currency: Currency = EUR (id: 2);
  total_cents: int64 (id: 3);
  items: [LineItem] (id: 4);
  placed_at_ms: int64 (id: 5);
}
root_type OrderPlaced;
)";

}  // namespace ferry::testing
