// Typed handlers (worker::on<T>, runtime/include/ferry/runtime/typed.h)
// against an in-process broker, shared by the two reader binaries:
// typed_v1_test.cc (reader contracts of schemas/samples/orders/v1) and
// typed_v2_test.cc (v2). Both versions generate the same C++ names, so a
// binary includes one version's headers before this one; payloads of the
// other version are built from JSON with a flatbuffers::Parser on that
// version's .fbs (FERRY_ORDERS_V1_DIR / FERRY_ORDERS_V2_DIR).
//
// Before inclusion a binary defines
//   FERRY_READER_VERSION  1 or 2 (the contracts it includes)
// and includes "ferry/schemas/orders/v<N>/{order_placed,payment_captured}_contract.h".
//
// The cases here hold for either reader: records of the reader's own version
// are handled; every way a payload can be unreadable dead-letters it at once
// (one attempt, invalid_payload, the reason in the failure record) without
// calling the handler; a registry that cannot be reached is retried, never
// taken for an invalid payload.
#pragma once

#include <flatbuffers/flatbuffers.h>
#include <flatbuffers/idl.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/client/schema_cache.h"
#include "ferry/protocol/codec.h"
#include "ferry/runtime/failure_record.h"
#include "ferry/runtime/typed.h"
#include "ferry/schema/schema.h"
#include "order_schema_variants.h"
#include "worker_fixture.h"

#ifndef FERRY_READER_VERSION
#error "define FERRY_READER_VERSION (1 or 2) and include that version's contracts first"
#endif

namespace ferry::testing {

namespace orders = ferry::samples::orders;
using runtime::message;

inline constexpr int kReaderVersion = FERRY_READER_VERSION;
inline constexpr int kOtherVersion = kReaderVersion == 1 ? 2 : 1;

inline std::filesystem::path orders_dir(int version) {
  return version == 1 ? FERRY_ORDERS_V1_DIR : FERRY_ORDERS_V2_DIR;
}

/// schema::compile_file of orders/v<version>/<stem>.fbs (on first use, never
/// during static initialisation: flatc's parser needs its own statics).
inline schema::compiled_schema compile_orders(int version, const std::string& stem) {
  std::string diagnostics;
  auto c = schema::compile_file(orders_dir(version) / (stem + ".fbs"), {}, &diagnostics);
  EXPECT_TRUE(c) << diagnostics;
  return c ? std::move(c).value() : schema::compiled_schema{};
}

inline schema::compiled_schema compile_source(const std::string& source) {
  std::string diagnostics;
  auto c = schema::compile(source, "writer.fbs", {}, &diagnostics);
  EXPECT_TRUE(c) << diagnostics;
  return c ? std::move(c).value() : schema::compiled_schema{};
}

/// A payload of orders/v<version>/<stem>.fbs's root type, from JSON.
inline std::string json_payload(int version, const std::string& stem, const std::string& json) {
  const auto file = orders_dir(version) / (stem + ".fbs");
  std::ifstream in(file);
  std::string source((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(source.empty()) << file;
  const std::string dir = orders_dir(version).string() + "/";
  const char* includes[] = {dir.c_str(), nullptr};
  flatbuffers::Parser parser;
  EXPECT_TRUE(parser.Parse(source.c_str(), includes, file.c_str())) << parser.error_;
  EXPECT_TRUE(parser.ParseJson(json.c_str())) << parser.error_ << "\n" << json;
  return {reinterpret_cast<const char*>(parser.builder_.GetBufferPointer()),
          parser.builder_.GetSize()};
}

inline std::string bytes_of(const flatbuffers::FlatBufferBuilder& fbb) {
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

/// An OrderPlaced of the reader's own version, with the generated builders
/// (only the fields both versions have).
inline std::string own_order(const std::string& order_id,
                             orders::Currency currency = orders::Currency::USD) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<orders::LineItem>> items{
      orders::CreateLineItemDirect(fbb, "sku-1", 2, 1250)};
  fbb.Finish(orders::CreateOrderPlacedDirect(fbb, order_id.c_str(), "cust-7", currency, 2500,
                                             &items, 1700000000000),
             orders::OrderPlacedIdentifier());
  return bytes_of(fbb);
}

inline std::string own_payment(const std::string& order_id) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(orders::CreatePaymentCapturedDirect(fbb, order_id.c_str(), "pay-1", 2500,
                                                 orders::Currency::GBP, 1700000000500),
             orders::PaymentCapturedIdentifier());
  return bytes_of(fbb);
}

/// The fields both versions of OrderPlaced have, for an order with one line
/// item.
struct order_fields {
  std::string_view order_id;
  std::string_view customer_id;
  orders::Currency currency;
  std::int64_t total_cents;
  std::int64_t placed_at_ms;
  std::string_view sku;
  std::uint32_t quantity;
  std::int64_t unit_price_cents;
};

inline void expect_order(const orders::OrderPlaced& o, const order_fields& e) {
  EXPECT_EQ(o.order_id()->string_view(), e.order_id);
  EXPECT_EQ(o.customer_id()->string_view(), e.customer_id);
  EXPECT_EQ(o.currency(), e.currency);
  EXPECT_EQ(o.total_cents(), e.total_cents);
  EXPECT_EQ(o.placed_at_ms(), e.placed_at_ms);
  EXPECT_EQ(o.items()->size(), 1u);
  EXPECT_EQ(o.items()->Get(0)->sku()->string_view(), e.sku);
  EXPECT_EQ(o.items()->Get(0)->quantity(), e.quantity);
  EXPECT_EQ(o.items()->Get(0)->unit_price_cents(), e.unit_price_cents);
}

/// The fields both versions of PaymentCaptured have.
struct payment_fields {
  std::string_view order_id;
  std::string_view payment_id;
  std::int64_t amount_cents;
  orders::Currency currency;
  std::int64_t captured_at_ms;
};

inline void expect_payment(const orders::PaymentCaptured& p, const payment_fields& e) {
  EXPECT_EQ(p.order_id()->string_view(), e.order_id);
  EXPECT_EQ(p.payment_id()->string_view(), e.payment_id);
  EXPECT_EQ(p.amount_cents(), e.amount_cents);
  EXPECT_EQ(p.currency(), e.currency);
  EXPECT_EQ(p.captured_at_ms(), e.captured_at_ms);
}

/// A PaymentCaptured of the other version, from JSON: the fields both
/// versions have are those of kOtherVersionPayment; a v2 one also has
/// method BankTransfer.
inline constexpr payment_fields kOtherVersionPayment{"o-1", "pay-7", 990, orders::Currency::USD,
                                                     1700000002000};
inline std::string other_version_payment() {
  return json_payload(kOtherVersion, "payment_captured",
                      std::string(R"({
    "order_id": "o-1", "payment_id": "pay-7", "amount_cents": 990, "currency": "USD",
    "captured_at_ms": 1700000002000)") +
                          (kOtherVersion == 2 ? R"(, "method": "BankTransfer"})" : "}"));
}

inline std::string int32_total_source() {
  return kOrderPlacedInt32Total;
}
inline std::string chf_source() {
  return kOrderPlacedWithChf;
}

/// Typed handlers over both transports: over kafka:// the registry is the
/// topic _ferry_schemas (framework/client/kafka_schemas.h).
class TypedTest : public WorkerFixture, public ::testing::WithParamInterface<transport> {
 protected:
  transport under_test() const override { return GetParam(); }

  /// Registers `s` under `subject`; its schema id.
  std::int64_t register_schema(const std::string& subject, const schema::compiled_schema& s) {
    client::admin a(base());
    auto r = a.register_schema(subject, s.bfbs, s.source);
    EXPECT_TRUE(r) << subject << ": " << a.last_error_message();
    return r ? r.value().id : -1;
  }
  std::int64_t register_orders(int version, const std::string& stem = "order_placed") {
    return register_schema(stem == "order_placed" ? own("orders-value") : own("payments-value"),
                           compile_orders(version, stem));
  }

  struct rec {
    std::string key;
    std::optional<std::string> value;  // nullopt: a tombstone
    std::optional<std::int64_t> schema_id;
    std::optional<std::string> raw_header;  // a ferry.schema-id value as given
  };
  void produce_records(const std::string& topic, const std::vector<rec>& recs) {
    client::producer_options po;
    static_cast<client::client_options&>(po) = base();
    client::producer p(po);
    for (const auto& x : recs) {
      client::producer_record r;
      r.topic = topic;
      r.key = x.key;
      r.value = x.value;
      r.partition = partition_id(0);
      if (x.schema_id) client::set_schema_id(r, *x.schema_id);
      if (x.raw_header)
        r.headers.push_back({std::string(protocol::kSchemaIdHeader), *x.raw_header});
      ASSERT_TRUE(p.send(std::move(r), {}));
    }
    ASSERT_TRUE(p.flush(10s));
  }

  static runtime::subscription_config subscription(const std::string& topic) {
    runtime::subscription_config s;
    s.topics = {topic};
    s.retry.max_attempts = 3;
    s.retry.backoff.type = runtime::backoff::kind::fixed;
    s.retry.backoff.initial = 1000ms;
    s.retry.backoff.max = 1000ms;
    return s;
  }

  /// Produces `bad` and then a valid order "good-1" of the reader's version
  /// (registered), runs an OrderPlaced handler and expects `bad` dead-lettered
  /// on its first attempt with a message containing each of `reason_parts`,
  /// and the handler to have seen only "good-1".
  void expect_dead_lettered_at_once(const rec& bad, const std::vector<std::string>& reason_parts,
                                    runtime::typed_options o = {}) {
    create(own("orders"));
    const auto good_id = register_orders(kReaderVersion);
    produce_records(own("orders"), {bad, {"good-1", own_order("good-1"), good_id, std::nullopt}});
    runtime::worker w(worker_options(own("typed")));
    std::vector<std::string> seen;
    ASSERT_TRUE(w.on<orders::OrderPlaced>(
        subscription(own("orders")),
        [&](const orders::OrderPlaced& order, const message&) -> result<void> {
          seen.emplace_back(order.order_id()->string_view());
          return success();
        },
        o));
    ASSERT_TRUE(step_until(w, [&] { return w.stats().dead_lettered == 1 && seen.size() == 1; }))
        << w.last_error();
    ASSERT_TRUE(step_until(w, [&] { return committed(own("typed"), own("orders")) == 2; }));
    EXPECT_EQ(seen, std::vector<std::string>{"good-1"}) << "the handler saw the bad record";
    EXPECT_EQ(w.stats().retries_scheduled, 0u);
    auto dlq = read_all(own("orders.dlq"));
    ASSERT_EQ(dlq.size(), 1u);
    EXPECT_EQ(dlq[0].key, bad.key);
    EXPECT_EQ(dlq[0].value, bad.value) << "dead letters carry the record unchanged";
    const auto h = runtime::get_header(dlq[0].headers, runtime::kFailureHeader);
    ASSERT_TRUE(h.has_value());
    auto f = runtime::decode_failure(*h);
    ASSERT_TRUE(f);
    EXPECT_EQ(f.value().reason, runtime::dead_letter_reason::invalid_payload);
    EXPECT_EQ(f.value().attempts_total, 1);
    ASSERT_EQ(f.value().attempts.size(), 1u);
    EXPECT_EQ(f.value().attempts[0].cls, runtime::error_class::invalid_payload);
    for (const auto& part : reason_parts)
      EXPECT_NE(f.value().attempts[0].message.find(part), std::string::npos)
          << "\"" << part << "\" not in: " << f.value().attempts[0].message;
  }

  /// Produces `recs` to `topic`, runs a `T` handler that calls `check` on
  /// each record (and succeeds), and expects every record handled in order
  /// (by key), committed, and none dead-lettered.
  template <typename T>
  void expect_handled(const std::string& topic, const std::vector<rec>& recs,
                      const std::function<void(const T&, const message&)>& check) {
    produce_records(topic, recs);
    runtime::worker w(worker_options(own("typed")));
    std::vector<std::string> seen;
    ASSERT_TRUE(w.on<T>(subscription(topic), [&](const T& t, const message& m) -> result<void> {
      seen.push_back(*m.key());
      check(t, m);
      return success();
    }));
    ASSERT_TRUE(step_until(w, [&] { return seen.size() == recs.size(); })) << w.last_error();
    std::vector<std::string> keys;
    for (const auto& r : recs) keys.push_back(r.key);
    EXPECT_EQ(seen, keys);
    ASSERT_TRUE(step_until(w, [&] {
      return committed(own("typed"), topic) == static_cast<std::int64_t>(recs.size());
    }));
    EXPECT_EQ(w.stats().dead_lettered, 0u);
    EXPECT_EQ(w.stats().succeeded, recs.size());
  }
};

TEST_P(TypedTest, OwnVersionOrdersAreHandledWithEveryField) {
  create(own("orders"));
  const auto id = register_orders(kReaderVersion);
  expect_handled<orders::OrderPlaced>(
      own("orders"),
      {{"o-1", own_order("o-1", orders::Currency::GBP), id, std::nullopt},
       {"o-2", own_order("o-2"), id, std::nullopt}},
      [](const orders::OrderPlaced& o, const message& m) {
        EXPECT_EQ(m.key(), o.order_id()->str());
        const auto currency =
            o.order_id()->string_view() == "o-1" ? orders::Currency::GBP : orders::Currency::USD;
        expect_order(o, {o.order_id()->string_view(), "cust-7", currency, 2500, 1700000000000,
                         "sku-1", 2, 1250});
      });
}

TEST_P(TypedTest, OwnVersionPaymentsAreHandled) {
  create(own("payments"));
  const auto id = register_orders(kReaderVersion, "payment_captured");
  expect_handled<orders::PaymentCaptured>(
      own("payments"), {{"o-1", own_payment("o-1"), id, std::nullopt}},
      [](const orders::PaymentCaptured& p, const message&) {
        expect_payment(p, {"o-1", "pay-1", 2500, orders::Currency::GBP, 1700000000500});
      });
}

TEST_P(TypedTest, RecordWithoutSchemaIdIsReadWithTheReadersSchema) {
  create(own("orders"));
  expect_handled<orders::OrderPlaced>(own("orders"),
                                      {{"o-1", own_order("o-1"), std::nullopt, std::nullopt}},
                                      [](const orders::OrderPlaced& o, const message&) {
                                        EXPECT_EQ(o.order_id()->string_view(), "o-1");
                                        EXPECT_EQ(o.currency(), orders::Currency::USD);
                                      });
}

TEST_P(TypedTest, GarbageBytesAreDeadLetteredAtOnce) {
  expect_dead_lettered_at_once({"bad", "not a flatbuffer at all", std::nullopt, std::nullopt},
                               {"failed FlatBuffers verification", "OrderPlaced"});
}

TEST_P(TypedTest, TruncatedPayloadIsDeadLetteredAtOnce) {
  const auto full = own_order("truncated-order-with-a-long-id");
  expect_dead_lettered_at_once({"bad", full.substr(0, full.size() / 2), std::nullopt, std::nullopt},
                               {"failed FlatBuffers verification"});
}

TEST_P(TypedTest, PayloadWithoutTheRequiredOrderIdIsDeadLetteredAtOnce) {
  // The generated builder asserts required fields; build the table by hand.
  flatbuffers::FlatBufferBuilder fbb;
  const auto start = fbb.StartTable();
  fbb.AddElement<std::int64_t>(orders::OrderPlaced::VT_TOTAL_CENTS, 100, 0);
  fbb.Finish(flatbuffers::Offset<orders::OrderPlaced>(fbb.EndTable(start)),
             orders::OrderPlacedIdentifier());
  const auto bytes = bytes_of(fbb);
  // The same bytes with an order_id are fine: only the missing field is wrong.
  ASSERT_FALSE(schema::contract<orders::OrderPlaced>::verify(
      reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  expect_dead_lettered_at_once({"bad", bytes, std::nullopt, std::nullopt},
                               {"failed FlatBuffers verification", "required"});
}

TEST_P(TypedTest, UnregisteredSchemaIdIsDeadLetteredAtOnce) {
  expect_dead_lettered_at_once({"bad", own_order("bad"), 999, std::nullopt},
                               {"schema id 999", "not registered"});
}

TEST_P(TypedTest, IncompatibleWriterSchemaIsDeadLetteredAtOnce) {
  // Registered (under another subject, first version: no check), but a
  // reader of OrderPlaced cannot read it.
  const auto bad_id =
      register_schema(own("legacy-orders-value"), compile_source(int32_total_source()));
  ASSERT_GT(bad_id, 0);
  expect_dead_lettered_at_once(
      {"bad", own_order("bad"), bad_id, std::nullopt},
      {"schema id " + std::to_string(bad_id), "not readable as", "total_cents"});
}

TEST_P(TypedTest, WriterSchemaWithAnEnumValueTheReaderLacksIsDeadLetteredAtOnce) {
  const auto chf_id = register_schema(own("chf-orders-value"), compile_source(chf_source()));
  ASSERT_GT(chf_id, 0);
  // Even a record holding a known value: the writer's schema says it may not.
  expect_dead_lettered_at_once({"bad", own_order("bad"), chf_id, std::nullopt},
                               {"schema id " + std::to_string(chf_id), "Currency", "CHF"});
}

TEST_P(TypedTest, EnumValueTheReaderDoesNotKnowIsDeadLetteredAtOnce) {
  // No schema id: read with the reader's own schema; the Verifier accepts 3,
  // check_values does not.
  expect_dead_lettered_at_once(
      {"bad", own_order("bad", static_cast<orders::Currency>(3)), std::nullopt, std::nullopt},
      {"currency", "3"});
}

TEST_P(TypedTest, SchemaIdHeaderThatIsNotANumberIsDeadLetteredAtOnce) {
  expect_dead_lettered_at_once({"bad", own_order("bad"), std::nullopt, "abc"},
                               {"ferry.schema-id header is not a schema id"});
}

TEST_P(TypedTest, MissingSchemaIdIsDeadLetteredWhenRequired) {
  runtime::typed_options o;
  o.require_schema_id = true;
  expect_dead_lettered_at_once({"bad", own_order("bad"), std::nullopt, std::nullopt},
                               {"no ferry.schema-id header"}, o);
}

TEST_P(TypedTest, TombstoneIsDeadLetteredAtOnce) {
  expect_dead_lettered_at_once({"bad", std::nullopt, std::nullopt, std::nullopt}, {"no payload"});
}

TEST_P(TypedTest, SchemaIdRegisteredAfterARefusalIsReadable) {
  // It predicts the next schema id, which a cluster's shared registry
  // (where earlier runs registered these schemas) does not allow.
  if (on_cluster()) GTEST_SKIP() << "needs a schema registry of its own";
  create(own("orders"));
  const auto v1 = register_orders(kReaderVersion);
  const auto next = v1 + 1;  // not registered yet
  produce_records(own("orders"), {{"early", own_order("early"), next, std::nullopt}});
  runtime::worker w(worker_options(own("typed")));
  std::vector<std::string> seen;
  ASSERT_TRUE(
      w.on<orders::OrderPlaced>(subscription(own("orders")),
                                [&](const orders::OrderPlaced& o, const message&) -> result<void> {
                                  seen.emplace_back(o.order_id()->string_view());
                                  return success();
                                }));
  ASSERT_TRUE(step_until(w, [&] { return w.stats().dead_lettered == 1; })) << w.last_error();
  // The refusal is not remembered: once the id exists its records are read.
  ASSERT_EQ(
      register_schema(own("orders-other-value"), compile_orders(kOtherVersion, "order_placed")),
      next);
  produce_records(own("orders"), {{"late", own_order("late"), next, std::nullopt}});
  ASSERT_TRUE(step_until(w, [&] { return seen.size() == 1; })) << w.last_error();
  EXPECT_EQ(seen[0], "late");
  EXPECT_EQ(w.stats().dead_lettered, 1u);
}

TEST_P(TypedTest, UnreachableRegistryIsRetriedNotDeadLetteredAsInvalid) {
  create(own("orders"));
  const auto id = register_orders(kReaderVersion);
  produce_records(own("orders"), {{"o-1", own_order("o-1"), id, std::nullopt}});
  // A registry that does not answer: the endpoint of a broker that stopped.
  inproc_broker gone;
  const auto gone_dir = make_temp_dir("ferry-typed-gone");
  broker::broker_config gc;
  gc.kafka_listen = "127.0.0.1:0";
  gone.start(gone_dir, gc);
  const auto dead_endpoint =
      under_test() == transport::kafka ? gone.kafka_endpoint() : gone.endpoint();
  gone.stop();
  std::filesystem::remove_all(gone_dir);
  auto dead = base_client_options(dead_endpoint);
  dead.request_timeout = 100ms;
  dead.api_timeout = 200ms;
  auto gate = std::make_shared<runtime::schema_gate>(std::make_shared<client::schema_cache>(dead));

  runtime::worker w(worker_options(own("typed")));
  int calls = 0;
  runtime::subscription s;
  static_cast<runtime::subscription_config&>(s) = subscription(own("orders"));
  s.handler = runtime::typed_handler<orders::OrderPlaced>(
      gate, [&](const orders::OrderPlaced&, const message&) -> result<void> {
        ++calls;
        return success();
      });
  ASSERT_TRUE(w.subscribe(std::move(s)));
  ASSERT_TRUE(step_until(w, [&] { return w.stats().failed_attempts == 1; })) << w.last_error();
  EXPECT_EQ(w.stats().retries_scheduled, 1u) << "an outage must be retried";
  EXPECT_EQ(w.stats().dead_lettered, 0u);
  for (std::uint64_t n = 2; n <= 3; ++n) {
    clock_.advance(1s);
    ASSERT_TRUE(step_until(w, [&] { return w.stats().failed_attempts == n; }));
  }
  // Exhausted under the subscription's policy, each attempt retriable.
  ASSERT_TRUE(step_until(w, [&] { return w.stats().dead_lettered == 1; }));
  EXPECT_EQ(calls, 0);
  auto dlq = read_all(own("orders.dlq"));
  ASSERT_EQ(dlq.size(), 1u);
  const auto h = runtime::get_header(dlq[0].headers, runtime::kFailureHeader);
  ASSERT_TRUE(h.has_value());
  auto f = runtime::decode_failure(*h);
  ASSERT_TRUE(f);
  EXPECT_EQ(f.value().reason, runtime::dead_letter_reason::attempts_exhausted);
  EXPECT_EQ(f.value().attempts_total, 3);
  for (const auto& a : f.value().attempts) {
    EXPECT_EQ(a.cls, runtime::error_class::retriable);
    EXPECT_NE(a.message.find("cannot fetch schema id " + std::to_string(id)), std::string::npos)
        << a.message;
  }
}

}  // namespace ferry::testing
