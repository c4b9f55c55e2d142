// The broker's schema registry on its own, on an in-memory file system that
// can crash: ids and versions, identical bytes, compatibility modes (plain
// and transitive), the Check and Lookup actions, modes, replay after a
// reopen, torn tails, power loss and a failed sync.
#include "schema_registry.h"

#include <gtest/gtest.h>

#include <string>

#include "ferry/core/clock.h"
#include "ferry/protocol/compatibility.h"
#include "ferry/schema/schema.h"
#include "ferry/storage/mem_env.h"

namespace ferry::broker {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using wire::Compatibility;
using wire::ErrorCode;
using wire::SchemaAction;

const fs::path kData = "/data";
const fs::path kDir = kData / "schemas";
const fs::path kSeg0 = kDir / "00000000000000000000.log";

// --- schemas ------------------------------------------------------------------

std::string order_source(std::string_view currency_values, std::string_view total_type = "int",
                         std::string_view extra_fields = "") {
  return "namespace shop;\n"
         "enum Currency : ubyte { " +
         std::string(currency_values) +
         " }\n"
         "table Order {\n"
         "  id:ulong;\n"
         "  customer:string;\n"
         "  total_cents:" +
         std::string(total_type) +
         ";\n"
         "  currency:Currency;\n" +
         std::string(extra_fields) +
         "}\n"
         "root_type Order;\n";
}

schema::compiled_schema compile(const std::string& source) {
  std::string diagnostics;
  auto c = schema::compile(source, "order.fbs", {}, &diagnostics);
  EXPECT_TRUE(c) << diagnostics;
  return c ? std::move(c).value() : schema::compiled_schema{};
}

// v1 and its successors.
const schema::compiled_schema& v1() {
  static const auto s = compile(order_source("USD, EUR"));
  return s;
}
// A field added at the end: compatible in every direction.
const schema::compiled_schema& v2_field_added() {
  static const auto s = compile(order_source("USD, EUR", "int", "  note:string;\n"));
  return s;
}
// total_cents int -> long: incompatible in every direction.
const schema::compiled_schema& type_changed() {
  static const auto s = compile(order_source("USD, EUR", "long"));
  return s;
}
// An enum value added: BACKWARD accepts it, FORWARD refuses it.
const schema::compiled_schema& enum_added() {
  static const auto s = compile(order_source("USD, EUR, CNY"));
  return s;
}
// Both of the above: compatible with v2 under BACKWARD.
const schema::compiled_schema& v3_both() {
  static const auto s = compile(order_source("USD, EUR, CNY", "int", "  note:string;\n"));
  return s;
}
// EUR (1) renamed to EURO: wire-compatible (a warning only).
const schema::compiled_schema& enum_renamed() {
  static const auto s = compile(order_source("USD, EURO = 1"));
  return s;
}
// After the rename, EUR comes back as a new value 2: against the renamed
// schema that is only an added value (fine for BACKWARD), against v1 it is
// EUR renumbered from 1 to 2 (breaks BACKWARD).
const schema::compiled_schema& enum_readded() {
  static const auto s = compile(order_source("USD, EURO = 1, EUR = 2"));
  return s;
}

// --- fixture -----------------------------------------------------------------

class SchemaRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // <data> exists and is durable, as the broker's data directory is.
    ASSERT_TRUE(env_.create_dirs(kData));
    ASSERT_TRUE(env_.sync_dir("/"));
    open();
  }

  void open() {
    reg_.reset();
    auto r = schema_registry::open(env_, kDir, clock_);
    ASSERT_TRUE(r) << r.error().message();
    reg_ = std::move(r).value();
  }

  registration reg(std::string_view subject, const schema::compiled_schema& s,
                   SchemaAction action = SchemaAction::Register,
                   schema::mode default_mode = schema::mode::backward) {
    clock_.advance(1ms);
    return reg_->register_schema(subject, s.bfbs, s.source, action, default_mode);
  }

  storage::mem_env env_;
  manual_clock clock_;
  std::unique_ptr<schema_registry> reg_;
};

std::string describe(const registration& r) {
  std::string s = std::string(wire::EnumNameErrorCode(r.error)) + " " + r.message;
  for (const auto& f : r.findings) s += "\n  " + schema::format(f.f);
  return s;
}

// --- ids and versions --------------------------------------------------------

TEST_F(SchemaRegistryTest, FirstRegistrationIsIdOneVersionOne) {
  auto r = reg("orders-value", v1());
  ASSERT_EQ(r.error, ErrorCode::None) << describe(r);
  EXPECT_EQ(r.id, 1);
  EXPECT_EQ(r.version, 1);
  EXPECT_TRUE(r.created);
  EXPECT_EQ(r.mode, Compatibility::Backward);  // the default mode, applied

  const auto* s = reg_->by_id(1);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->bfbs, v1().bfbs);
  EXPECT_EQ(s->source, v1().source);
  EXPECT_EQ(s->root_type, "shop.Order");
  EXPECT_EQ(s->subject, "orders-value");
  EXPECT_EQ(s->version, 1);
  EXPECT_EQ(s->registered_ms, clock_.wall_now().value());
  EXPECT_TRUE(reg_->registered_under("orders-value", 1));
  EXPECT_FALSE(reg_->registered_under("orders-value", 2));
  EXPECT_FALSE(reg_->registered_under("payments-value", 1));
  EXPECT_EQ(reg_->by_id(2), nullptr);
}

TEST_F(SchemaRegistryTest, IdenticalBytesAgainReturnTheExistingVersion) {
  ASSERT_EQ(reg("orders-value", v1()).error, ErrorCode::None);
  ASSERT_EQ(reg("orders-value", v2_field_added()).error, ErrorCode::None);
  auto again = reg("orders-value", v1());
  EXPECT_EQ(again.error, ErrorCode::None) << describe(again);
  EXPECT_EQ(again.id, 1);
  EXPECT_EQ(again.version, 1);
  EXPECT_FALSE(again.created);
  ASSERT_NE(reg_->subject("orders-value"), nullptr);
  EXPECT_EQ(reg_->subject("orders-value")->versions.size(), 2u);
}

TEST_F(SchemaRegistryTest, IdenticalBytesUnderAnotherSubjectShareTheId) {
  ASSERT_EQ(reg("orders-value", v1()).id, 1);
  ASSERT_EQ(reg("orders-value", v2_field_added()).id, 2);
  auto other = reg("audit-value", v2_field_added());
  ASSERT_EQ(other.error, ErrorCode::None) << describe(other);
  EXPECT_EQ(other.id, 2);
  EXPECT_EQ(other.version, 1);
  EXPECT_TRUE(other.created);
  EXPECT_TRUE(reg_->registered_under("audit-value", 2));
  EXPECT_FALSE(reg_->registered_under("audit-value", 1));
  // The id keeps the subject it was first registered under.
  EXPECT_EQ(reg_->by_id(2)->subject, "orders-value");
  // The next new schema takes the next id: sharing did not use one up.
  EXPECT_EQ(reg("audit-value", v3_both()).id, 3);
}

TEST_F(SchemaRegistryTest, CompatibleNewVersionGetsTheNextVersionAndANewId) {
  ASSERT_EQ(reg("orders-value", v1()).error, ErrorCode::None);
  auto r = reg("orders-value", v2_field_added());
  ASSERT_EQ(r.error, ErrorCode::None) << describe(r);
  EXPECT_EQ(r.id, 2);
  EXPECT_EQ(r.version, 2);
  EXPECT_TRUE(r.created);
  EXPECT_TRUE(r.findings.empty());

  std::int32_t found = 0;
  const auto* latest = reg_->by_subject("orders-value", -1, &found);
  ASSERT_NE(latest, nullptr);
  EXPECT_EQ(found, 2);
  EXPECT_EQ(latest->id, 2);
  const auto* first = reg_->by_subject("orders-value", 1, &found);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(found, 1);
  EXPECT_EQ(first->id, 1);
  EXPECT_EQ(reg_->by_subject("orders-value", 3, &found), nullptr);
  EXPECT_EQ(reg_->by_subject("nobody-value", -1, &found), nullptr);
}

// --- compatibility modes -----------------------------------------------------

TEST_F(SchemaRegistryTest, IncompatibleTypeChangeIsRefusedUnderBackwardWithTheViolation) {
  ASSERT_EQ(reg("orders-value", v1()).error, ErrorCode::None);
  auto r = reg("orders-value", type_changed());
  EXPECT_EQ(r.error, ErrorCode::IncompatibleSchema) << describe(r);
  EXPECT_FALSE(r.created);
  EXPECT_EQ(r.id, -1);
  EXPECT_EQ(r.mode, Compatibility::Backward);
  ASSERT_EQ(r.findings.size(), 1u) << describe(r);
  EXPECT_EQ(r.findings[0].f.what, schema::rule::field_type_changed);
  EXPECT_EQ(r.findings[0].f.type, "shop.Order");
  EXPECT_EQ(r.findings[0].f.field, "total_cents");
  EXPECT_EQ(r.findings[0].against_version, 1);
  EXPECT_NE(r.message.find("BACKWARD"), std::string::npos) << r.message;
  // Nothing stored: no version, no id used up.
  EXPECT_EQ(reg_->subject("orders-value")->versions.size(), 1u);
  EXPECT_EQ(reg_->by_id(2), nullptr);
  EXPECT_EQ(reg("orders-value", v2_field_added()).id, 2);
}

TEST_F(SchemaRegistryTest, NoneAcceptsAnIncompatibleChange) {
  ASSERT_EQ(reg("orders-value", v1()).error, ErrorCode::None);
  ASSERT_TRUE(reg_->set_mode("orders-value", Compatibility::NoCheck));
  auto r = reg("orders-value", type_changed());
  EXPECT_EQ(r.error, ErrorCode::None) << describe(r);
  EXPECT_EQ(r.version, 2);
  EXPECT_EQ(r.mode, Compatibility::NoCheck);
}

TEST_F(SchemaRegistryTest, DefaultModeComesFromTheCaller) {
  ASSERT_EQ(reg("orders-value", v1()).error, ErrorCode::None);
  // The broker's schemas.compatibility = NONE: no check.
  auto r = reg("orders-value", type_changed(), SchemaAction::Register, schema::mode::none);
  EXPECT_EQ(r.error, ErrorCode::None) << describe(r);
  EXPECT_EQ(r.mode, Compatibility::NoCheck);
}

TEST_F(SchemaRegistryTest, ForwardRefusesAnAddedEnumValueThatBackwardAccepts) {
  ASSERT_EQ(reg("fwd-value", v1()).error, ErrorCode::None);
  ASSERT_EQ(reg("bwd-value", v1()).error, ErrorCode::None);
  ASSERT_TRUE(reg_->set_mode("fwd-value", Compatibility::Forward));

  auto fwd = reg("fwd-value", enum_added());
  EXPECT_EQ(fwd.error, ErrorCode::IncompatibleSchema) << describe(fwd);
  EXPECT_EQ(fwd.mode, Compatibility::Forward);
  ASSERT_EQ(fwd.findings.size(), 1u) << describe(fwd);
  EXPECT_EQ(fwd.findings[0].f.what, schema::rule::enum_value_added);
  EXPECT_EQ(fwd.findings[0].f.type, "shop.Currency");
  EXPECT_EQ(fwd.findings[0].f.field, "CNY");

  auto bwd = reg("bwd-value", enum_added());
  EXPECT_EQ(bwd.error, ErrorCode::None) << describe(bwd);
  EXPECT_EQ(bwd.version, 2);

  // FULL checks both directions.
  ASSERT_TRUE(reg_->set_mode("bwd-value", Compatibility::Full));
  auto full = reg("bwd-value", compile(order_source("USD, EUR, CNY, GBP")));
  EXPECT_EQ(full.error, ErrorCode::IncompatibleSchema) << describe(full);
}

// v1 -> renamed (a warning) -> re-added: each step is BACKWARD compatible
// with the one before, but the last is not with v1 (EUR renumbered).
TEST_F(SchemaRegistryTest, TransitiveModeChecksEveryVersionPlainModeOnlyTheLatest) {
  for (const auto* subject : {"plain-value", "transitive-value"}) {
    ASSERT_EQ(reg(subject, v1()).error, ErrorCode::None);
    auto r = reg(subject, enum_renamed());
    ASSERT_EQ(r.error, ErrorCode::None) << describe(r);
    ASSERT_EQ(r.version, 2);
  }
  ASSERT_TRUE(reg_->set_mode("transitive-value", Compatibility::BackwardTransitive));

  auto plain = reg("plain-value", enum_readded());
  EXPECT_EQ(plain.error, ErrorCode::None) << describe(plain);
  EXPECT_EQ(plain.version, 3);

  auto transitive = reg("transitive-value", enum_readded());
  EXPECT_EQ(transitive.error, ErrorCode::IncompatibleSchema) << describe(transitive);
  EXPECT_EQ(transitive.mode, Compatibility::BackwardTransitive);
  ASSERT_EQ(transitive.findings.size(), 1u) << describe(transitive);
  EXPECT_EQ(transitive.findings[0].f.what, schema::rule::enum_value_renumbered);
  EXPECT_EQ(transitive.findings[0].f.field, "EUR");
  EXPECT_EQ(transitive.findings[0].against_version, 1);
  EXPECT_EQ(reg_->subject("transitive-value")->versions.size(), 2u);
}

// --- check and lookup --------------------------------------------------------

TEST_F(SchemaRegistryTest, CheckStoresNothingAndReportsWarnings) {
  ASSERT_EQ(reg("orders-value", v1()).error, ErrorCode::None);

  auto ok = reg("orders-value", enum_renamed(), SchemaAction::Check);
  EXPECT_EQ(ok.error, ErrorCode::None) << describe(ok);
  EXPECT_FALSE(ok.created);
  EXPECT_EQ(ok.id, -1);
  ASSERT_EQ(ok.findings.size(), 1u) << describe(ok);
  EXPECT_EQ(ok.findings[0].f.what, schema::rule::enum_value_renamed);
  EXPECT_TRUE(ok.findings[0].f.is_warning());
  EXPECT_EQ(ok.findings[0].against_version, 1);

  auto bad = reg("orders-value", type_changed(), SchemaAction::Check);
  EXPECT_EQ(bad.error, ErrorCode::IncompatibleSchema) << describe(bad);
  EXPECT_FALSE(bad.findings.empty());

  // A check against a subject without versions is an error, not a pass (a
  // misspelt subject must not let a CI gate through), and creates nothing.
  auto fresh = reg("fresh-value", v1(), SchemaAction::Check);
  EXPECT_EQ(fresh.error, ErrorCode::UnknownSubject) << describe(fresh);
  EXPECT_NE(fresh.message.find("nothing to check against"), std::string::npos) << describe(fresh);

  EXPECT_EQ(reg_->subject("orders-value")->versions.size(), 1u);
  EXPECT_EQ(reg_->subject("fresh-value"), nullptr);
  EXPECT_EQ(reg_->by_id(2), nullptr);
  // Nothing reached the log either: the next registration is id 2.
  open();
  EXPECT_EQ(reg_->subjects().size(), 1u);
  EXPECT_EQ(reg("orders-value", enum_renamed()).id, 2);
}

TEST_F(SchemaRegistryTest, LookupFindsOnlyAnIdenticalVersionOfTheSubject) {
  ASSERT_EQ(reg("orders-value", v1()).error, ErrorCode::None);
  ASSERT_EQ(reg("orders-value", v2_field_added()).error, ErrorCode::None);
  ASSERT_EQ(reg("audit-value", enum_added()).error, ErrorCode::None);

  auto found = reg("orders-value", v1(), SchemaAction::Lookup);
  EXPECT_EQ(found.error, ErrorCode::None) << describe(found);
  EXPECT_EQ(found.id, 1);
  EXPECT_EQ(found.version, 1);
  EXPECT_FALSE(found.created);

  auto other_bytes = reg("orders-value", type_changed(), SchemaAction::Lookup);
  EXPECT_EQ(other_bytes.error, ErrorCode::UnknownSchema);
  // Registered, but under another subject.
  auto elsewhere = reg("orders-value", enum_added(), SchemaAction::Lookup);
  EXPECT_EQ(elsewhere.error, ErrorCode::UnknownSchema);
  auto no_subject = reg("nobody-value", v1(), SchemaAction::Lookup);
  EXPECT_EQ(no_subject.error, ErrorCode::UnknownSubject);
  EXPECT_EQ(reg_->subject("nobody-value"), nullptr);
  EXPECT_EQ(reg_->subject("orders-value")->versions.size(), 2u);
  EXPECT_EQ(reg_->by_id(4), nullptr);
}

TEST_F(SchemaRegistryTest, GarbageIsAnInvalidSchema) {
  for (const std::string& bytes :
       {std::string("not a schema"), std::string(64, '\0'), std::string()}) {
    auto r = reg_->register_schema("orders-value", bytes, "", SchemaAction::Register,
                                   schema::mode::backward);
    EXPECT_EQ(r.error, ErrorCode::InvalidSchema) << bytes.size();
    EXPECT_FALSE(r.message.empty());
  }
  // A binary schema cut short is no schema either.
  auto cut = v1().bfbs.substr(0, v1().bfbs.size() / 2);
  EXPECT_EQ(
      reg_->register_schema("orders-value", cut, "", SchemaAction::Register, schema::mode::backward)
          .error,
      ErrorCode::InvalidSchema);
  EXPECT_EQ(reg_->subject("orders-value"), nullptr);
  EXPECT_EQ(reg("orders-value", v1()).id, 1);
}

// --- modes -------------------------------------------------------------------

TEST_F(SchemaRegistryTest, ModeOfASubjectWithoutVersionsPersists) {
  ASSERT_TRUE(reg_->set_mode("orders-value", Compatibility::Forward));
  ASSERT_NE(reg_->subject("orders-value"), nullptr);
  EXPECT_EQ(protocol::to_wire(reg_->subject("orders-value")->own_mode), Compatibility::Forward);
  EXPECT_TRUE(reg_->subject("orders-value")->versions.empty());

  open();
  ASSERT_NE(reg_->subject("orders-value"), nullptr);
  EXPECT_EQ(protocol::to_wire(reg_->subject("orders-value")->own_mode), Compatibility::Forward);
  // And it applies after the reopen.
  ASSERT_EQ(reg("orders-value", v1()).mode, Compatibility::Forward);
  EXPECT_EQ(reg("orders-value", enum_added()).error, ErrorCode::IncompatibleSchema);

  // Back to the default: the caller's mode (BACKWARD) applies again.
  ASSERT_TRUE(reg_->set_mode("orders-value", Compatibility::Default));
  open();
  EXPECT_EQ(protocol::to_wire(reg_->subject("orders-value")->own_mode), Compatibility::Default);
  auto r = reg("orders-value", enum_added());
  EXPECT_EQ(r.error, ErrorCode::None) << describe(r);
  EXPECT_EQ(r.mode, Compatibility::Backward);
}

// --- replay ------------------------------------------------------------------

TEST_F(SchemaRegistryTest, EverythingSurvivesAReopenAndIdsContinue) {
  ASSERT_EQ(reg("orders-value", v1()).id, 1);
  ASSERT_EQ(reg("orders-value", v2_field_added()).id, 2);
  ASSERT_EQ(reg("audit-value", v1()).id, 1);
  ASSERT_EQ(reg("audit-value", v3_both()).id, 3);
  ASSERT_TRUE(reg_->set_mode("audit-value", Compatibility::FullTransitive));
  const auto registered_ms = reg_->by_id(2)->registered_ms;

  open();
  ASSERT_EQ(reg_->subjects().size(), 2u);
  const auto* orders = reg_->subject("orders-value");
  ASSERT_NE(orders, nullptr);
  ASSERT_EQ(orders->versions.size(), 2u);
  EXPECT_EQ(orders->versions[0].id, 1);
  EXPECT_EQ(orders->versions[1].id, 2);
  EXPECT_EQ(orders->versions[1].version, 2);
  EXPECT_EQ(orders->versions[1].registered_ms, registered_ms);
  EXPECT_EQ(protocol::to_wire(orders->own_mode), Compatibility::Default);
  const auto* audit = reg_->subject("audit-value");
  ASSERT_NE(audit, nullptr);
  EXPECT_EQ(protocol::to_wire(audit->own_mode), Compatibility::FullTransitive);
  ASSERT_EQ(audit->versions.size(), 2u);
  EXPECT_EQ(audit->versions[0].id, 1);
  EXPECT_EQ(audit->versions[1].id, 3);
  for (std::int64_t id = 1; id <= 3; ++id) ASSERT_NE(reg_->by_id(id), nullptr) << id;
  EXPECT_EQ(reg_->by_id(2)->bfbs, v2_field_added().bfbs);
  EXPECT_EQ(reg_->by_id(2)->source, v2_field_added().source);
  EXPECT_EQ(reg_->by_id(2)->root_type, "shop.Order");
  EXPECT_EQ(reg_->by_id(2)->registered_ms, registered_ms);
  EXPECT_EQ(reg_->by_id(1)->subject, "orders-value");
  EXPECT_TRUE(reg_->registered_under("audit-value", 1));
  EXPECT_FALSE(reg_->registered_under("audit-value", 2));

  // Identical bytes are still recognised, and the next id is max + 1.
  auto again = reg("orders-value", v2_field_added());
  EXPECT_EQ(again.id, 2);
  EXPECT_FALSE(again.created);
  auto shared = reg("orders-value", v3_both());
  EXPECT_EQ(shared.id, 3);
  EXPECT_EQ(shared.version, 3);
  auto next = reg("orders-value",
                  compile(order_source("USD, EUR, CNY", "int", "  note:string;\n  n:int;\n")));
  ASSERT_EQ(next.error, ErrorCode::None) << describe(next);
  EXPECT_EQ(next.id, 4);
  EXPECT_EQ(next.version, 4);
}

TEST_F(SchemaRegistryTest, AcknowledgedChangesSurvivePowerLoss) {
  ASSERT_EQ(reg("orders-value", v1()).id, 1);
  ASSERT_TRUE(reg_->set_mode("orders-value", Compatibility::Forward));
  reg_.reset();
  env_.crash(storage::crash_mode::drop_unsynced);
  open();
  ASSERT_NE(reg_->by_id(1), nullptr);
  EXPECT_EQ(protocol::to_wire(reg_->subject("orders-value")->own_mode), Compatibility::Forward);
  EXPECT_EQ(reg("orders-value", v2_field_added()).id, 2);
}

TEST_F(SchemaRegistryTest, TruncatedTrailingRecordIsLostAndTheRegistryOpens) {
  ASSERT_EQ(reg("orders-value", v1()).id, 1);
  const auto good = env_.contents(kSeg0)->size();
  ASSERT_EQ(reg("orders-value", v2_field_added()).id, 2);
  reg_.reset();
  const auto full = *env_.contents(kSeg0);
  ASSERT_GT(full.size(), good);
  // A torn write of the last record: any cut inside it loses that record only.
  for (auto cut : {full.size() - 1, full.size() - 7, good + 1}) {
    env_.corrupt(kSeg0, [&](auto& d) {
      d.assign(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
    });
    open();
    ASSERT_NE(reg_->by_id(1), nullptr) << "cut at " << cut;
    EXPECT_EQ(reg_->by_id(2), nullptr) << "cut at " << cut;
    EXPECT_EQ(reg_->subject("orders-value")->versions.size(), 1u);
    EXPECT_EQ(env_.contents(kSeg0)->size(), good) << "the torn tail is cut off";
    // The lost id is given out again: the record never became durable whole.
    auto r = reg("orders-value", type_changed(), SchemaAction::Register, schema::mode::none);
    EXPECT_EQ(r.id, 2);
    EXPECT_EQ(r.version, 2);
    reg_.reset();
  }
}

TEST_F(SchemaRegistryTest, FailedSyncChangesNothingAndStopsLaterChanges) {
  ASSERT_EQ(reg("orders-value", v1()).id, 1);
  env_.fail_syncs(std::make_error_code(std::errc::io_error), "schemas");
  auto r = reg("orders-value", v2_field_added());
  EXPECT_NE(r.error, ErrorCode::None);
  EXPECT_FALSE(r.created);
  EXPECT_EQ(reg_->by_id(2), nullptr);
  EXPECT_EQ(reg_->subject("orders-value")->versions.size(), 1u);
  EXPECT_TRUE(reg_->failed());
  env_.clear_faults();
  // Failed stop: later changes fail too, until a restart.
  EXPECT_EQ(reg("orders-value", v2_field_added()).error, ErrorCode::PartitionFailed);
  EXPECT_FALSE(reg_->set_mode("orders-value", Compatibility::Full));
  // Reads still work.
  EXPECT_NE(reg_->by_id(1), nullptr);

  reg_.reset();
  env_.crash(storage::crash_mode::drop_unsynced);
  open();
  EXPECT_FALSE(reg_->failed());
  EXPECT_EQ(reg_->by_id(2), nullptr);
  EXPECT_EQ(reg("orders-value", v2_field_added()).id, 2);
}

}  // namespace
}  // namespace ferry::broker
