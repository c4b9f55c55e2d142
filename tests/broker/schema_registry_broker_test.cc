// The schema registry through client::admin against an in-process broker:
// register, get, list, compatibility modes and their refusals, errors,
// restarts; and produce-time validation (SetTopicSchema, CreateTopic with a
// schema) through the real producer and the raw protocol.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "ferry/client/admin.h"
#include "ferry/client/errc.h"
#include "ferry/client/producer.h"
#include "ferry/client/schema_cache.h"
#include "ferry/core/errc.h"
#include "ferry/schema/schema.h"
#include "inproc_broker.h"
#include "read_topic.h"
#include "wire_client.h"

namespace ferry::broker {
namespace {

using namespace std::chrono_literals;
using client::errc;
using client::schema_action;
using schema::mode;

std::string order_source(std::string_view currency_values, std::string_view total_type = "int",
                         std::string_view extra_fields = "") {
  return "namespace shop;\nenum Currency : ubyte { " + std::string(currency_values) +
         " }\ntable Order {\n  id:ulong;\n  customer:string;\n  total_cents:" +
         std::string(total_type) + ";\n  currency:Currency;\n" + std::string(extra_fields) +
         "}\nroot_type Order;\n";
}

schema::compiled_schema compile(const std::string& source) {
  std::string diagnostics;
  auto c = schema::compile(source, "order.fbs", {}, &diagnostics);
  EXPECT_TRUE(c) << diagnostics;
  return c ? std::move(c).value() : schema::compiled_schema{};
}

// Compiled on first use, not during static initialisation (flatc's parser
// needs its own statics).
struct order_schemas {
  schema::compiled_schema v1 = compile(order_source("USD, EUR"));
  schema::compiled_schema v2 = compile(order_source("USD, EUR", "int", "  note:string;\n"));
  schema::compiled_schema type_changed = compile(order_source("USD, EUR", "long"));
  schema::compiled_schema enum_added = compile(order_source("USD, EUR, CNY"));
  schema::compiled_schema enum_renamed = compile(order_source("USD, EURO = 1"));
};
const order_schemas& schemas() {
  static const order_schemas s;
  return s;
}

class SchemaRegistryBroker : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir("ferry-schema-registry");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override {
    broker_.stop();
    std::filesystem::remove_all(dir_);
  }
  void start(broker_config config = {}) {
    broker_.start(dir_ / "data", std::move(config));
    admin_ = std::make_unique<client::admin>(opts());
  }
  client::client_options opts() const { return testing::base_client_options(broker_.endpoint()); }

  result<client::schema_registration> reg(
      std::string_view subject, const schema::compiled_schema& s,
      schema_action action = schema_action::register_schema,
      std::vector<client::schema_finding>* violations = nullptr) {
    return admin_->register_schema(subject, s.bfbs, s.source, action, violations);
  }

  std::filesystem::path dir_;
  testing::inproc_broker broker_;
  std::unique_ptr<client::admin> admin_;
};

// --- registry through admin --------------------------------------------------

TEST_F(SchemaRegistryBroker, RegisterGetAndList) {
  start();
  auto r1 = reg("orders-value", schemas().v1);
  ASSERT_TRUE(r1) << admin_->last_error_message();
  EXPECT_EQ(r1.value().id, 1);
  EXPECT_EQ(r1.value().version, 1);
  EXPECT_TRUE(r1.value().created);
  EXPECT_EQ(r1.value().mode, mode::backward);
  auto again = reg("orders-value", schemas().v1);
  ASSERT_TRUE(again);
  EXPECT_EQ(again.value().id, 1);
  EXPECT_FALSE(again.value().created);
  auto r2 = reg("orders-value", schemas().v2);
  ASSERT_TRUE(r2) << admin_->last_error_message();
  EXPECT_EQ(r2.value().id, 2);
  EXPECT_EQ(r2.value().version, 2);

  auto by_id = admin_->get_schema(1);
  ASSERT_TRUE(by_id) << admin_->last_error_message();
  EXPECT_EQ(by_id.value().id, 1);
  EXPECT_EQ(by_id.value().subject, "orders-value");
  EXPECT_EQ(by_id.value().version, 1);
  EXPECT_EQ(by_id.value().bfbs, schemas().v1.bfbs);
  EXPECT_EQ(by_id.value().source, schemas().v1.source);
  EXPECT_EQ(by_id.value().root_type, "shop.Order");
  EXPECT_GT(by_id.value().registered.value(), 0);

  auto latest = admin_->get_schema("orders-value");
  ASSERT_TRUE(latest) << admin_->last_error_message();
  EXPECT_EQ(latest.value().id, 2);
  EXPECT_EQ(latest.value().version, 2);
  EXPECT_EQ(latest.value().bfbs, schemas().v2.bfbs);
  auto first = admin_->get_schema("orders-value", 1);
  ASSERT_TRUE(first);
  EXPECT_EQ(first.value().id, 1);
  EXPECT_EQ(first.value().version, 1);

  // The same bytes under a second subject: same id, version 1 there.
  auto shared = reg("audit-value", schemas().v2);
  ASSERT_TRUE(shared);
  EXPECT_EQ(shared.value().id, 2);
  EXPECT_EQ(shared.value().version, 1);

  auto list = admin_->list_subjects();
  ASSERT_TRUE(list) << admin_->last_error_message();
  EXPECT_EQ(list.value().default_mode, mode::backward);
  ASSERT_EQ(list.value().subjects.size(), 2u);
  const auto& audit = list.value().subjects[0];
  const auto& orders = list.value().subjects[1];
  EXPECT_EQ(audit.subject, "audit-value");
  EXPECT_EQ(orders.subject, "orders-value");
  EXPECT_FALSE(orders.mode.has_value());
  ASSERT_EQ(orders.versions.size(), 2u);
  EXPECT_EQ(orders.versions[0].version, 1);
  EXPECT_EQ(orders.versions[0].id, 1);
  EXPECT_EQ(orders.versions[1].version, 2);
  EXPECT_EQ(orders.versions[1].id, 2);
  EXPECT_EQ(orders.versions[1].root_type, "shop.Order");
  ASSERT_EQ(audit.versions.size(), 1u);
  EXPECT_EQ(audit.versions[0].id, 2);
}

TEST_F(SchemaRegistryBroker, CheckReportsWarningsAndStoresNothing) {
  start();
  ASSERT_TRUE(reg("orders-value", schemas().v1));
  auto check = reg("orders-value", schemas().enum_renamed, schema_action::check);
  ASSERT_TRUE(check) << admin_->last_error_message();
  EXPECT_FALSE(check.value().created);
  ASSERT_EQ(check.value().findings.size(), 1u);
  EXPECT_EQ(check.value().findings[0].rule, "enum_value_renamed");
  EXPECT_TRUE(check.value().findings[0].warning);
  EXPECT_EQ(check.value().findings[0].against_version, 1);
  std::vector<client::schema_finding> violations;
  auto bad = reg("orders-value", schemas().type_changed, schema_action::check, &violations);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), errc::incompatible_schema);
  EXPECT_EQ(violations.size(), 1u);
  auto list = admin_->list_subjects();
  ASSERT_TRUE(list);
  ASSERT_EQ(list.value().subjects.size(), 1u);
  EXPECT_EQ(list.value().subjects[0].versions.size(), 1u);
}

TEST_F(SchemaRegistryBroker, CompatibilityModeRefusesWithEveryViolation) {
  start();
  ASSERT_TRUE(reg("orders-value", schemas().v1));
  ASSERT_TRUE(admin_->set_compatibility("orders-value", mode::full))
      << admin_->last_error_message();
  auto list = admin_->list_subjects();
  ASSERT_TRUE(list);
  ASSERT_EQ(list.value().subjects.size(), 1u);
  EXPECT_EQ(list.value().subjects[0].mode, mode::full);

  std::vector<client::schema_finding> violations;
  auto refused =
      reg("orders-value", schemas().enum_added, schema_action::register_schema, &violations);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), errc::incompatible_schema);
  EXPECT_NE(admin_->last_error_message().find("FULL"), std::string::npos)
      << admin_->last_error_message();
  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].rule, "enum_value_added");
  EXPECT_EQ(violations[0].type, "shop.Currency");
  EXPECT_EQ(violations[0].field, "CNY");
  EXPECT_EQ(violations[0].against_version, 1);
  EXPECT_FALSE(violations[0].warning);
  EXPECT_FALSE(violations[0].message.empty());

  violations.clear();
  auto type =
      reg("orders-value", schemas().type_changed, schema_action::register_schema, &violations);
  ASSERT_FALSE(type);
  EXPECT_EQ(type.error(), errc::incompatible_schema);
  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].rule, "field_type_changed");
  EXPECT_EQ(violations[0].field, "total_cents");

  // Back to the broker's default (BACKWARD): the added value is accepted.
  ASSERT_TRUE(admin_->set_compatibility("orders-value", std::nullopt));
  list = admin_->list_subjects();
  ASSERT_TRUE(list);
  EXPECT_FALSE(list.value().subjects[0].mode.has_value());
  auto accepted = reg("orders-value", schemas().enum_added);
  ASSERT_TRUE(accepted) << admin_->last_error_message();
  EXPECT_EQ(accepted.value().version, 2);
  EXPECT_EQ(accepted.value().mode, mode::backward);
}

TEST_F(SchemaRegistryBroker, BrokerDefaultModeComesFromItsConfig) {
  broker_config c;
  c.schema_compatibility = mode::forward;
  start(c);
  auto list = admin_->list_subjects();
  ASSERT_TRUE(list);
  EXPECT_EQ(list.value().default_mode, mode::forward);
  EXPECT_TRUE(list.value().subjects.empty());
  ASSERT_TRUE(reg("orders-value", schemas().v1));
  auto refused = reg("orders-value", schemas().enum_added);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), errc::incompatible_schema);
}

TEST_F(SchemaRegistryBroker, UnknownSubjectsIdsAndVersions) {
  start();
  auto no_id = admin_->get_schema(7);
  ASSERT_FALSE(no_id);
  EXPECT_EQ(no_id.error(), errc::unknown_schema);
  EXPECT_FALSE(admin_->last_error_message().empty());
  auto no_subject = admin_->get_schema("orders-value");
  ASSERT_FALSE(no_subject);
  EXPECT_EQ(no_subject.error(), errc::unknown_subject);
  auto lookup = reg("orders-value", schemas().v1, schema_action::lookup);
  ASSERT_FALSE(lookup);
  EXPECT_EQ(lookup.error(), errc::unknown_subject);

  ASSERT_TRUE(reg("orders-value", schemas().v1));
  auto no_version = admin_->get_schema("orders-value", 2);
  ASSERT_FALSE(no_version);
  EXPECT_EQ(no_version.error(), errc::unknown_schema);
  auto other_bytes = reg("orders-value", schemas().v2, schema_action::lookup);
  ASSERT_FALSE(other_bytes);
  EXPECT_EQ(other_bytes.error(), errc::unknown_schema);
  auto found = reg("orders-value", schemas().v1, schema_action::lookup);
  ASSERT_TRUE(found);
  EXPECT_EQ(found.value().id, 1);
  EXPECT_FALSE(found.value().created);

  auto garbage = admin_->register_schema("orders-value", "not a binary schema");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error(), errc::invalid_schema);
  EXPECT_FALSE(admin_->last_error_message().empty());
  // Refused by the client before sending.
  auto bad_name = reg("no/slashes", schemas().v1);
  ASSERT_FALSE(bad_name);
  EXPECT_EQ(bad_name.error(), ferry::errc::invalid_argument);
}

TEST_F(SchemaRegistryBroker, EverythingIsFoundAgainAfterARestart) {
  start();
  ASSERT_TRUE(reg("orders-value", schemas().v1));
  ASSERT_TRUE(reg("orders-value", schemas().v2));
  ASSERT_TRUE(reg("audit-value", schemas().enum_added));
  ASSERT_TRUE(admin_->set_compatibility("audit-value", mode::forward_transitive));
  ASSERT_TRUE(admin_->set_compatibility("empty-value", mode::none));
  auto before = admin_->list_subjects();
  ASSERT_TRUE(before);

  broker_.restart();
  auto after = admin_->list_subjects();
  ASSERT_TRUE(after) << admin_->last_error_message();
  ASSERT_EQ(after.value().subjects.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& a = before.value().subjects[i];
    const auto& b = after.value().subjects[i];
    EXPECT_EQ(a.subject, b.subject);
    EXPECT_EQ(a.mode, b.mode) << a.subject;
    ASSERT_EQ(a.versions.size(), b.versions.size()) << a.subject;
    for (std::size_t v = 0; v < a.versions.size(); ++v) {
      EXPECT_EQ(a.versions[v].id, b.versions[v].id);
      EXPECT_EQ(a.versions[v].version, b.versions[v].version);
      EXPECT_EQ(a.versions[v].registered, b.versions[v].registered);
    }
  }
  EXPECT_EQ(after.value().subjects[0].mode, mode::forward_transitive);
  EXPECT_EQ(after.value().subjects[1].mode, mode::none);
  for (std::int64_t id = 1; id <= 3; ++id) {
    auto s = admin_->get_schema(id);
    ASSERT_TRUE(s) << id;
  }
  EXPECT_EQ(admin_->get_schema(2).value().bfbs, schemas().v2.bfbs);
  // Ids continue after the highest one.
  auto next =
      reg("orders-value", compile(order_source("USD, EURO = 1", "int", "  note:string;\n")));
  ASSERT_TRUE(next) << admin_->last_error_message();
  EXPECT_EQ(next.value().id, 4);
  EXPECT_EQ(next.value().version, 3);
}

// --- produce-time validation -------------------------------------------------

client::producer_record record(std::string value, std::optional<std::string> schema_id) {
  client::producer_record r;
  r.topic = "orders";
  r.value = std::move(value);
  r.partition = partition_id(0);
  if (schema_id) r.headers.push_back({"ferry.schema-id", *schema_id});
  return r;
}

std::vector<std::string> values_of(const std::vector<client::consumer_record>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.value.value_or("<null>"));
  return out;
}

// Sends `records` as one batch (one partition, long linger, one flush) and
// returns each record's outcome.
std::vector<result<client::record_metadata>> send_batch(
    client::producer& p, std::vector<client::producer_record> records) {
  std::vector<std::future<result<client::record_metadata>>> futures;
  for (auto& r : records) futures.push_back(p.send(std::move(r)));
  EXPECT_TRUE(p.flush(20s));
  std::vector<result<client::record_metadata>> out;
  for (auto& f : futures) out.push_back(f.get());
  return out;
}

client::producer_options producer_opts(const client::client_options& base) {
  client::producer_options o;
  static_cast<client::client_options&>(o) = base;
  o.linger = 1h;  // batches go out on flush() only
  o.delivery_timeout = 20s;
  return o;
}

TEST_F(SchemaRegistryBroker, ValidationNeedsASubjectWithVersions) {
  start();
  ASSERT_TRUE(admin_->create_topic("orders", client::topic_config{}));
  auto none = admin_->set_topic_schema("orders", "", true);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), errc::unknown_subject);
  EXPECT_NE(admin_->last_error_message().find("orders-value"), std::string::npos)
      << admin_->last_error_message();
  // A subject that has a mode but no schema yet is no better.
  ASSERT_TRUE(admin_->set_compatibility("orders-value", mode::full));
  auto mode_only = admin_->set_topic_schema("orders", "", true);
  ASSERT_FALSE(mode_only);
  EXPECT_EQ(mode_only.error(), errc::unknown_subject);
  auto unknown_topic = admin_->set_topic_schema("nothing", "", false);
  ASSERT_FALSE(unknown_topic);
  EXPECT_EQ(unknown_topic.error(), errc::unknown_topic);

  auto d = admin_->describe_topic("orders");
  ASSERT_TRUE(d);
  EXPECT_FALSE(d.value().config.schema_validation);
  // Nothing is refused: validation stayed off.
  client::producer p(producer_opts(opts()));
  auto out = send_batch(p, {record("plain", std::nullopt)});
  EXPECT_TRUE(out[0]) << out[0].error().message();
}

TEST_F(SchemaRegistryBroker, ProducedRecordsMustCarryAnIdOfTheTopicsSubject) {
  start();
  ASSERT_TRUE(admin_->create_topic("orders", client::topic_config{}));
  ASSERT_EQ(reg("orders-value", schemas().v1).value().id, 1);
  ASSERT_EQ(reg("payments-value", schemas().enum_added).value().id, 2);
  ASSERT_TRUE(admin_->set_topic_schema("orders", "", true)) << admin_->last_error_message();
  auto d = admin_->describe_topic("orders");
  ASSERT_TRUE(d);
  EXPECT_TRUE(d.value().config.schema_validation);

  client::producer p(producer_opts(opts()));
  const auto refused = [&](std::vector<client::producer_record> batch, const char* what) {
    auto out = send_batch(p, std::move(batch));
    for (std::size_t i = 0; i < out.size(); ++i) {
      ASSERT_FALSE(out[i]) << what << ": record " << i << " was stored";
      EXPECT_EQ(out[i].error(), errc::schema_required) << what << ": " << out[i].error().message();
    }
  };
  refused({record("no-header", std::nullopt)}, "no header");
  refused({record("other-subject", "2")}, "an id of another subject");
  refused({record("unregistered", "99")}, "an unregistered id");
  refused({record("not-a-number", "one")}, "not a number");
  refused({record("negative", "-1")}, "a negative id");
  refused({record("good-1", "1"), record("bad", std::nullopt), record("good-2", "1")},
          "a batch with one bad record");

  // A SchemaRequired refusal is definite (nothing of the batch was stored):
  // the idempotent producer rewinds its sequence instead of starting over
  // under a new identity.
  EXPECT_EQ(p.stats().identity_renewals, 0u);

  auto good = send_batch(p, {record("good-3", "1"), record("good-4", "1")});
  ASSERT_TRUE(good[0]) << good[0].error().message();
  ASSERT_TRUE(good[1]) << good[1].error().message();
  EXPECT_EQ(good[0].value().offset, offset(0));
  auto tombstone = record("", std::nullopt);
  tombstone.value.reset();
  auto t = send_batch(p, {std::move(tombstone)});
  EXPECT_TRUE(t[0]) << "a tombstone has no payload to describe: " << t[0].error().message();

  auto stored = testing::read_topic(opts(), "orders");
  EXPECT_EQ(values_of(stored), (std::vector<std::string>{"good-3", "good-4", "<null>"}));
  ASSERT_FALSE(stored.empty());
  EXPECT_EQ(client::schema_id_of(stored[0]), 1);

  // Validation off: anything goes again.
  ASSERT_TRUE(admin_->set_topic_schema("orders", "", false));
  auto plain = send_batch(p, {record("plain", std::nullopt)});
  EXPECT_TRUE(plain[0]) << plain[0].error().message();
}

// An idempotent retry of a batch stored before validation was turned on is
// answered as the duplicate it is (stored, at its offset), not refused: a
// refusal would tell the producer "nothing stored" about stored records.
TEST_F(SchemaRegistryBroker, ARetriedBatchStoredBeforeValidationIsAnsweredAsItsDuplicate) {
  start();
  ASSERT_TRUE(admin_->create_topic("orders", client::topic_config{}));
  ASSERT_TRUE(reg("orders-value", schemas().v1));
  testing::wire_client c(broker_.endpoint());
  flatbuffers::FlatBufferBuilder fbb;
  auto init =
      c.call(fbb, wire::Body::InitProducerRequest, wire::CreateInitProducerRequest(fbb).Union());
  ASSERT_TRUE(init && init->env);
  const auto* id = init->env->body_as_InitProducerResponse();
  ASSERT_NE(id, nullptr);
  ASSERT_EQ(id->error(), wire::ErrorCode::None);
  format::batch_builder b;
  b.add(system_clock::instance().wall_now(), "k", "no schema id");
  const auto batch =
      b.finish({producer_id(id->producer_id()), producer_epoch(id->epoch()), sequence_number(0)});

  auto first = c.produce_one("orders", 0, batch);
  ASSERT_EQ(first.error, wire::ErrorCode::None) << first.message;
  ASSERT_TRUE(admin_->set_topic_schema("orders", "", true));
  auto retry = c.produce_one("orders", 0, batch);
  EXPECT_EQ(retry.error, wire::ErrorCode::None) << retry.message;
  EXPECT_EQ(retry.base, first.base);
  // A new batch without a schema id is still refused.
  format::batch_builder b2;
  b2.add(system_clock::instance().wall_now(), "k", "new, no schema id");
  auto fresh = c.produce_one(
      "orders", 0,
      b2.finish({producer_id(id->producer_id()), producer_epoch(id->epoch()), sequence_number(1)}));
  EXPECT_EQ(fresh.error, wire::ErrorCode::SchemaRequired) << fresh.message;
  EXPECT_EQ(testing::read_topic(opts(), "orders").size(), 1u);
}

// A request of a type this broker does not know (a newer client) or one
// that fails a check is answered with an ErrorResponse under its own request
// id, so the client gets the error instead of waiting out its timeout.
TEST_F(SchemaRegistryBroker, ARefusedRequestIsAnsweredUnderItsOwnId) {
  start();
  testing::wire_client c(broker_.endpoint());
  flatbuffers::FlatBufferBuilder fbb;
  auto unknown_body = wire::CreateListSubjectsRequest(fbb).Union();
  const auto unknown_type = static_cast<wire::Body>(static_cast<int>(wire::Body::MAX) + 7);
  c.send_raw({protocol::finish_envelope(fbb, 4242, unknown_type, unknown_body)});
  auto r = c.recv(std::chrono::seconds(5));
  ASSERT_TRUE(r && r->env) << "no answer: the client would wait for its timeout";
  EXPECT_EQ(r->env->request_id(), 4242u);
  ASSERT_EQ(r->env->body_type(), wire::Body::ErrorResponse);
  EXPECT_EQ(r->env->body_as_ErrorResponse()->error(), wire::ErrorCode::InvalidRequest);
}

// GetSchema's version is -1 (latest) or >= 1; 0 is a malformed request.
TEST_F(SchemaRegistryBroker, VersionZeroIsAnInvalidRequest) {
  start();
  ASSERT_TRUE(reg("orders-value", schemas().v1));
  auto r = admin_->get_schema("orders-value", 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::invalid_request) << admin_->last_error_message();
  EXPECT_TRUE(admin_->get_schema("orders-value", 1));
}

TEST_F(SchemaRegistryBroker, RefusalNamesTheRecordAndRefusesTheWholeBatch) {
  start();
  ASSERT_TRUE(admin_->create_topic("orders", client::topic_config{}));
  ASSERT_TRUE(reg("orders-value", schemas().v1));
  ASSERT_TRUE(admin_->set_topic_schema("orders", "", true));

  testing::wire_client c(broker_.endpoint());
  const auto batch = [](std::vector<std::optional<std::string>> ids) {
    format::batch_builder b;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      std::vector<format::batch_builder::header_input> h;
      if (ids[i]) {
        h.push_back({"ferry.schema-id",
                     std::span<const std::byte>(reinterpret_cast<const std::byte*>(ids[i]->data()),
                                                ids[i]->size())});
      }
      b.add(system_clock::instance().wall_now(), "k", "v" + std::to_string(i), h);
    }
    return b.finish();
  };
  auto bad = c.produce_one("orders", 0, batch({"1", "1", std::nullopt}));
  EXPECT_EQ(bad.error, wire::ErrorCode::SchemaRequired);
  EXPECT_NE(bad.message.find("record 2 "), std::string::npos) << bad.message;
  auto other = c.produce_one("orders", 0, batch({"1", "5"}));
  EXPECT_EQ(other.error, wire::ErrorCode::SchemaRequired);
  EXPECT_NE(other.message.find("record 1 "), std::string::npos) << other.message;
  EXPECT_NE(other.message.find("schema id 5"), std::string::npos) << other.message;
  // Two schema-id headers on one record: refused (clients read the first,
  // the broker would have checked another).
  {
    format::batch_builder b;
    const std::string one = "1";
    std::vector<format::batch_builder::header_input> h(
        2, {"ferry.schema-id", std::span<const std::byte>(
                                   reinterpret_cast<const std::byte*>(one.data()), one.size())});
    b.add(system_clock::instance().wall_now(), "k", "v", h);
    auto two = c.produce_one("orders", 0, b.finish());
    EXPECT_EQ(two.error, wire::ErrorCode::SchemaRequired);
    EXPECT_NE(two.message.find("2 ferry.schema-id headers"), std::string::npos) << two.message;
  }
  auto ok = c.produce_one("orders", 0, batch({"1", "1"}));
  EXPECT_EQ(ok.error, wire::ErrorCode::None) << ok.message;
  EXPECT_EQ(ok.base, 0) << "nothing of the refused batches was stored";
}

TEST_F(SchemaRegistryBroker, TopicSchemaSurvivesARestart) {
  start();
  ASSERT_TRUE(admin_->create_topic("orders", client::topic_config{}));
  ASSERT_TRUE(reg("shared-orders", schemas().v1));
  ASSERT_TRUE(admin_->set_topic_schema("orders", "shared-orders", true))
      << admin_->last_error_message();

  broker_.restart();
  auto d = admin_->describe_topic("orders");
  ASSERT_TRUE(d) << admin_->last_error_message();
  EXPECT_EQ(d.value().config.schema_subject, "shared-orders");
  EXPECT_TRUE(d.value().config.schema_validation);

  client::producer p(producer_opts(opts()));
  auto out = send_batch(p, {record("no-header", std::nullopt)});
  ASSERT_FALSE(out[0]);
  EXPECT_EQ(out[0].error(), errc::schema_required);
  out = send_batch(p, {record("good", "1")});
  EXPECT_TRUE(out[0]) << out[0].error().message();

  // Off survives a restart too.
  ASSERT_TRUE(admin_->set_topic_schema("orders", "shared-orders", false));
  broker_.restart();
  d = admin_->describe_topic("orders");
  ASSERT_TRUE(d);
  EXPECT_FALSE(d.value().config.schema_validation);
  EXPECT_EQ(d.value().config.schema_subject, "shared-orders");
  out = send_batch(p, {record("no-header", std::nullopt)});
  EXPECT_TRUE(out[0]) << out[0].error().message();
}

TEST_F(SchemaRegistryBroker, CreateTopicWithASchemaValidatesFromTheStart) {
  start();
  ASSERT_EQ(reg("shared-orders", schemas().v1).value().id, 1);
  ASSERT_EQ(reg("orders-value", schemas().v2).value().id,
            2);  // the default subject: not the bound one
  client::topic_config tc;
  tc.partitions = 1;
  tc.schema_subject = "shared-orders";
  tc.schema_validation = true;
  ASSERT_TRUE(admin_->create_topic("orders", tc)) << admin_->last_error_message();
  auto d = admin_->describe_topic("orders");
  ASSERT_TRUE(d);
  EXPECT_EQ(d.value().config.schema_subject, "shared-orders");
  EXPECT_TRUE(d.value().config.schema_validation);

  client::producer p(producer_opts(opts()));
  auto out = send_batch(p, {record("no-header", std::nullopt)});
  ASSERT_FALSE(out[0]);
  EXPECT_EQ(out[0].error(), errc::schema_required);
  out = send_batch(p, {record("default-subject", "2")});
  ASSERT_FALSE(out[0]);
  EXPECT_EQ(out[0].error(), errc::schema_required);
  out = send_batch(p, {record("good", "1")});
  EXPECT_TRUE(out[0]) << out[0].error().message();

  broker_.restart();
  d = admin_->describe_topic("orders");
  ASSERT_TRUE(d);
  EXPECT_EQ(d.value().config.schema_subject, "shared-orders");
  EXPECT_TRUE(d.value().config.schema_validation);
  out = send_batch(p, {record("no-header-after-restart", std::nullopt)});
  ASSERT_FALSE(out[0]);
  EXPECT_EQ(out[0].error(), errc::schema_required);
  EXPECT_EQ(values_of(testing::read_topic(opts(), "orders")), (std::vector<std::string>{"good"}));

  // An invalid subject name is refused at creation.
  tc.schema_subject = "bad/name";
  auto bad = admin_->create_topic("orders-2", tc);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), errc::invalid_config);
}

}  // namespace
}  // namespace ferry::broker
