// client::schema_cache against an in-process broker: one round trip per
// schema (proved by stopping the broker), failures not cached, lookup mode;
// and the ferry.schema-id header helpers.
#include "ferry/client/schema_cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "ferry/client/admin.h"
#include "ferry/client/errc.h"
#include "ferry/schema/schema.h"
#include "inproc_broker.h"

namespace ferry::client {
namespace {

using namespace std::chrono_literals;

schema::compiled_schema compile(std::string_view fields) {
  std::string diagnostics;
  auto c = schema::compile(
      "namespace shop;\ntable Order {\n" + std::string(fields) + "}\nroot_type Order;\n",
      "order.fbs", {}, &diagnostics);
  EXPECT_TRUE(c) << diagnostics;
  return c ? std::move(c).value() : schema::compiled_schema{};
}

// Compiled on first use, not during static initialisation.
const schema::compiled_schema& v1() {
  static const auto s = compile("  id:ulong;\n");
  return s;
}
const schema::compiled_schema& v2() {
  static const auto s = compile("  id:ulong;\n  note:string;\n");
  return s;
}

class SchemaCache : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir("ferry-schema-cache");
    ASSERT_FALSE(dir_.empty());
    broker_.start(dir_ / "data");
  }
  void TearDown() override {
    broker_.stop();
    std::filesystem::remove_all(dir_);
  }
  // Short timeouts: some calls are meant to fail against a stopped broker.
  client_options opts() const {
    auto o = testing::base_client_options(broker_.endpoint());
    o.request_timeout = 300ms;
    o.api_timeout = 1s;
    return o;
  }

  std::filesystem::path dir_;
  testing::inproc_broker broker_;
};

TEST_F(SchemaCache, IdForRegistersOnceThenAnswersFromTheCache) {
  schema_cache cache(opts());
  auto id = cache.id_for("orders-value", v1().bfbs, v1().source);
  ASSERT_TRUE(id) << cache.last_error_message();
  EXPECT_EQ(id.value(), 1);
  admin a(opts());
  auto list = a.list_subjects();
  ASSERT_TRUE(list);
  ASSERT_EQ(list.value().subjects.size(), 1u);
  EXPECT_EQ(list.value().subjects[0].versions.size(), 1u);

  broker_.stop();
  auto cached = cache.id_for("orders-value", v1().bfbs, v1().source);
  ASSERT_TRUE(cached) << "answered without the broker: " << cached.error().message();
  EXPECT_EQ(cached.value(), 1);
  // The control: what is not cached needs the broker, which is gone.
  auto other_subject = cache.id_for("audit-value", v1().bfbs, v1().source);
  EXPECT_FALSE(other_subject);
  auto other_schema = cache.id_for("orders-value", v2().bfbs, v2().source);
  EXPECT_FALSE(other_schema);
}

TEST_F(SchemaCache, ByIdCachesAndUnknownIdsAreNotCached) {
  admin a(opts());
  ASSERT_TRUE(a.register_schema("orders-value", v1().bfbs, v1().source));
  schema_cache cache(opts());

  auto unknown = cache.by_id(2);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error(), errc::unknown_schema);
  EXPECT_FALSE(cache.last_error_message().empty());

  auto one = cache.by_id(1);
  ASSERT_TRUE(one) << cache.last_error_message();
  EXPECT_EQ(one.value()->id, 1);
  EXPECT_EQ(one.value()->bfbs, v1().bfbs);
  EXPECT_EQ(one.value()->root_type, "shop.Order");

  // Registered now: the earlier failure was not remembered.
  ASSERT_EQ(a.register_schema("orders-value", v2().bfbs, v2().source).value().id, 2);
  auto two = cache.by_id(2);
  ASSERT_TRUE(two) << cache.last_error_message();
  EXPECT_EQ(two.value()->bfbs, v2().bfbs);

  broker_.stop();
  auto again = cache.by_id(1);
  ASSERT_TRUE(again) << "answered without the broker: " << again.error().message();
  EXPECT_EQ(again.value().get(), one.value().get());
  EXPECT_FALSE(cache.by_id(3)) << "the control: not cached, broker gone";
}

TEST_F(SchemaCache, LookupModeNeverRegisters) {
  schema_cache cache(opts());
  auto no_subject = cache.id_for("orders-value", v1().bfbs, v1().source, false);
  ASSERT_FALSE(no_subject);
  EXPECT_EQ(no_subject.error(), errc::unknown_subject);

  admin a(opts());
  ASSERT_TRUE(a.register_schema("orders-value", v1().bfbs, v1().source));
  auto not_there = cache.id_for("orders-value", v2().bfbs, v2().source, false);
  ASSERT_FALSE(not_there);
  EXPECT_EQ(not_there.error(), errc::unknown_schema);
  auto list = a.list_subjects();
  ASSERT_TRUE(list);
  ASSERT_EQ(list.value().subjects.size(), 1u);
  EXPECT_EQ(list.value().subjects[0].versions.size(), 1u) << "lookup registered nothing";

  auto found = cache.id_for("orders-value", v1().bfbs, v1().source, false);
  ASSERT_TRUE(found) << cache.last_error_message();
  EXPECT_EQ(found.value(), 1);
}

TEST_F(SchemaCache, IncompatibleSchemaIsRefusedAndNotCached) {
  schema_cache cache(opts());
  ASSERT_TRUE(cache.id_for("orders-value", v1().bfbs));
  const auto changed = compile("  id:int;\n");
  auto r = cache.id_for("orders-value", changed.bfbs);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::incompatible_schema);
  EXPECT_NE(cache.last_error_message().find("orders-value"), std::string::npos)
      << cache.last_error_message();
  admin a(opts());
  ASSERT_TRUE(a.set_compatibility("orders-value", schema::mode::none));
  auto now = cache.id_for("orders-value", changed.bfbs);
  ASSERT_TRUE(now) << cache.last_error_message();
  EXPECT_EQ(now.value(), 2);
}

TEST_F(SchemaCache, ConcurrentCallersGetOneId) {
  schema_cache cache(opts());
  std::vector<std::thread> threads;
  std::vector<std::int64_t> ids(8, -1);
  for (std::size_t i = 0; i < ids.size(); ++i)
    threads.emplace_back([&, i] {
      auto r = cache.id_for("orders-value", v1().bfbs);
      if (r) ids[i] = r.value();
    });
  for (auto& t : threads) t.join();
  for (auto id : ids) EXPECT_EQ(id, 1);
  admin a(opts());
  auto list = a.list_subjects();
  ASSERT_TRUE(list);
  ASSERT_EQ(list.value().subjects.size(), 1u);
  EXPECT_EQ(list.value().subjects[0].versions.size(), 1u);
}

// --- the header helpers --------------------------------------------------------

TEST(SchemaIdHeader, SetSchemaIdAddsOrReplacesTheHeader) {
  producer_record r;
  r.value = "x";
  set_schema_id(r, 12);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].key, "ferry.schema-id");
  EXPECT_EQ(r.headers[0].value, "12");

  r.headers.insert(r.headers.begin(), header{"trace", "abc"});
  set_schema_id(r, 7);
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[0], (header{"trace", "abc"}));
  EXPECT_EQ(r.headers[1], (header{"ferry.schema-id", "7"}));

  // A null-valued header is replaced as well.
  producer_record n;
  n.value = "x";
  n.headers.push_back({"ferry.schema-id", std::nullopt});
  set_schema_id(n, 3);
  ASSERT_EQ(n.headers.size(), 1u);
  EXPECT_EQ(n.headers[0].value, "3");
}

TEST(SchemaIdHeader, SchemaIdOfParsesOnlyDecimalIds) {
  const auto with = [](std::optional<std::string> v) {
    consumer_record r;
    r.headers.push_back({"other", "5"});
    r.headers.push_back({"ferry.schema-id", std::move(v)});
    return r;
  };
  EXPECT_EQ(schema_id_of(with("12")), 12);
  EXPECT_EQ(schema_id_of(with("0")), 0);
  EXPECT_EQ(schema_id_of(with("9223372036854775807")), INT64_MAX);
  for (const char* bad : {"x", "-1", "", "12x", " 12", "+12", "1.5", "9223372036854775808"})
    EXPECT_EQ(schema_id_of(with(bad)), std::nullopt) << '"' << bad << '"';
  EXPECT_EQ(schema_id_of(with(std::nullopt)), std::nullopt);
  consumer_record none;
  none.headers.push_back({"other", "5"});
  EXPECT_EQ(schema_id_of(none), std::nullopt);
}

}  // namespace
}  // namespace ferry::client
