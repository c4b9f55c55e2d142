// runtime/dlq.h without a broker: how records of a dead-letter topic become
// dead letters and markers, how markers resolve dead letters, filters, the
// redrive plan and the copy a redrive produces.
#include "ferry/runtime/dlq.h"

#include <gtest/gtest.h>

#include "ferry/core/errc.h"
#include "ferry/protocol/codec.h"

namespace {

namespace dlq = ferry::runtime::dlq;
namespace rt = ferry::runtime;
using ferry::client::consumer_record;

rt::failure_record failure(const std::string& topic, std::int32_t p, std::int64_t o,
                           rt::dead_letter_reason reason, const std::string& category,
                           std::int32_t code, const std::string& message,
                           std::int64_t dead_lettered_ms = 1'000'000) {
  rt::failure_record f;
  f.origin_topic = topic;
  f.origin_partition = p;
  f.origin_offset = o;
  f.group = "billing";
  f.worker = "w-1";
  f.reason = reason;
  f.dead_lettered_ms = dead_lettered_ms;
  f.add_attempt(
      {dead_lettered_ms - 10, rt::error_class::retriable, category, code, message, "w-1"});
  return f;
}

consumer_record letter(std::int32_t p, std::int64_t o, const rt::failure_record& f,
                       std::optional<std::string> key = "k") {
  consumer_record r;
  r.topic = "orders.dlq";
  r.partition = ferry::partition_id(p);
  r.offset = ferry::offset(o);
  r.timestamp = ferry::timestamp_ms(f.dead_lettered_ms);
  r.key = std::move(key);
  r.value = "payload";
  r.headers = {{std::string(rt::kFailureHeader), rt::encode_failure(f)},
               {std::string(rt::kOriginHeader),
                rt::format_position({f.origin_topic, f.origin_partition, f.origin_offset})},
               {std::string(rt::kRouteHeader), "billing/orders/0/1"},
               {std::string(rt::kAttemptHeader), "1"},
               {std::string(ferry::protocol::kIdempotencyKeyHeader), "order-1/paid"},
               {"trace", "abc"}};
  return r;
}

consumer_record marker_record(std::int32_t p, std::int64_t o, dlq::marker_kind kind,
                              std::vector<std::int64_t> offsets, std::string to = "") {
  dlq::marker m;
  m.kind = kind;
  m.offsets = std::move(offsets);
  m.to = std::move(to);
  m.by = "ops@host";
  m.at_ms = 5;
  if (kind == dlq::marker_kind::redrive_start) m.targets = {{"orders", 0, 0}};
  consumer_record r;
  r.topic = "orders.dlq";
  r.partition = ferry::partition_id(p);
  r.offset = ferry::offset(o);
  r.value = dlq::encode_marker(m);
  r.headers = {{std::string(dlq::kMarkerHeader), std::string(dlq::to_string(kind))}};
  return r;
}

rt::failure_record exhausted(std::int64_t o) {
  return failure("orders", 0, o, rt::dead_letter_reason::attempts_exhausted, "generic", 110,
                 "Connection timed out");
}

TEST(DlqMarker, EncodeDecodeRoundTrip) {
  dlq::marker m;
  m.kind = dlq::marker_kind::redrive_start;
  m.offsets = {1, 5, 9};
  m.to = "orders";
  m.targets = {{"orders", 0, 12}, {"orders", 1, 7}};
  m.run = "abc";
  m.by = "ops@host \"quoted\"";
  m.at_ms = 1763802000000;
  auto d = dlq::decode_marker(dlq::marker_kind::redrive_start, dlq::encode_marker(m));
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, m);
  m.kind = dlq::marker_kind::redriven;
  m.targets.clear();
  m.recovered = true;
  d = dlq::decode_marker(dlq::marker_kind::redriven, dlq::encode_marker(m));
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, m);
}

TEST(DlqMarker, UnreadableValuesAreRefusedWithoutThrowing) {
  const std::vector<std::string> bad = {"",
                                        "not json",
                                        "[1,2]",
                                        "{\"offsets\":[-1]}",
                                        "{\"offsets\":\"1\"}",
                                        "{\"offsets\":[1.5]}",
                                        "{}",
                                        std::string("{\"offsets\":[1]\0}", 16),
                                        "{\"offsets\":[1],\"targets\":[{\"topic\":1}]}"};
  for (const auto& v : bad) EXPECT_FALSE(dlq::decode_marker(dlq::marker_kind::purged, v)) << v;
  // A start marker without targets could never be checked.
  EXPECT_FALSE(dlq::decode_marker(dlq::marker_kind::redrive_start, "{\"offsets\":[3]}"));
  EXPECT_TRUE(dlq::decode_marker(dlq::marker_kind::purged, "{\"offsets\":[3],\"extra\":{}}"));
}

TEST(DlqSnapshot, RecordsWithoutAValidFailureRecordAreStillDeadLetters) {
  std::vector<consumer_record> recs;
  recs.push_back(letter(0, 0, exhausted(10)));
  consumer_record none;
  none.partition = ferry::partition_id(0);
  none.offset = ferry::offset(1);
  none.timestamp = ferry::timestamp_ms(77);
  none.value = std::string("\x00\x01", 2);
  none.headers = {{std::string(rt::kOriginHeader), "payments/2/9"}};
  recs.push_back(none);
  consumer_record bad = none;
  bad.offset = ferry::offset(2);
  bad.headers = {{std::string(rt::kFailureHeader), "garbage"}};
  recs.push_back(bad);
  auto s = dlq::build_snapshot("orders.dlq", {{0, 0, 3}}, recs);
  ASSERT_EQ(s.letters.size(), 3u);
  EXPECT_EQ(s.letters[0].reason(), "attempts_exhausted");
  EXPECT_EQ(s.letters[0].origin_topic(), "orders");
  EXPECT_EQ(s.letters[0].error_code(), "generic:110");
  EXPECT_EQ(s.letters[1].reason(), "unknown");
  EXPECT_EQ(s.letters[1].error_message(), "no failure record");
  EXPECT_EQ(s.letters[1].origin_topic(), "payments") << "from the ferry.origin header";
  EXPECT_EQ(s.letters[1].dead_lettered_ms(), 77) << "the record's timestamp";
  EXPECT_EQ(s.letters[2].reason(), "unknown");
  EXPECT_EQ(s.letters[2].error_message(), "invalid failure record");
  EXPECT_EQ(s.letters[2].origin_topic(), "");
  EXPECT_TRUE(s.warnings.empty());
}

TEST(DlqSnapshot, MarkersResolveDeadLettersOfTheirOwnPartitionBelowThem) {
  std::vector<consumer_record> recs;
  for (int o = 0; o < 4; ++o) recs.push_back(letter(0, o, exhausted(o)));
  recs.push_back(letter(1, 0, exhausted(50)));
  recs.push_back(marker_record(0, 4, dlq::marker_kind::redrive_start, {0, 1}, "orders"));
  recs.push_back(marker_record(0, 5, dlq::marker_kind::redriven, {0, 1, 9}, "orders"));
  // Purging 1 again changes nothing: the first marker decides.
  recs.push_back(marker_record(0, 6, dlq::marker_kind::purged, {1, 2}));
  // Offset 0 of partition 1 is named by a marker of partition 0: not resolved.
  recs.push_back(marker_record(0, 7, dlq::marker_kind::purged, {0}));
  // A marker cannot resolve what comes after it.
  recs.push_back(marker_record(1, 1, dlq::marker_kind::purged, {5}));
  consumer_record junk = marker_record(1, 2, dlq::marker_kind::purged, {0});
  junk.value = "{";
  recs.push_back(junk);
  consumer_record odd = marker_record(1, 3, dlq::marker_kind::purged, {0});
  odd.headers[0].value = "deleted";
  recs.push_back(odd);
  auto s = dlq::build_snapshot("orders.dlq", {{0, 0, 8}, {1, 0, 4}}, recs);
  ASSERT_EQ(s.letters.size(), 5u) << "markers are not dead letters, even unreadable ones";
  EXPECT_EQ(s.markers.size(), 5u);
  EXPECT_EQ(s.warnings.size(), 2u);
  EXPECT_EQ(s.find(0, 0)->st, dlq::state::redriven);
  EXPECT_EQ(s.find(0, 0)->resolved_to, "orders");
  EXPECT_EQ(s.find(0, 0)->resolved_by, 5);
  EXPECT_EQ(s.find(0, 1)->st, dlq::state::redriven);
  EXPECT_EQ(s.find(0, 2)->st, dlq::state::purged);
  EXPECT_EQ(s.find(0, 2)->resolved_who, "ops@host");
  EXPECT_EQ(s.find(0, 3)->st, dlq::state::pending);
  EXPECT_EQ(s.find(1, 0)->st, dlq::state::pending);
  EXPECT_EQ(s.find(0, 4), nullptr);
}

TEST(DlqFilter, ConditionsMatchAsDocumented) {
  auto s =
      dlq::build_snapshot("orders.dlq", {{0, 0, 2}},
                          {letter(0, 0,
                                  failure("orders", 1, 7, rt::dead_letter_reason::permanent_error,
                                          "orders", 2, "Card declined", 5000),
                                  "c-1"),
                           letter(0, 1, exhausted(8), std::nullopt)});
  const auto& d = s.letters[0];
  using f = dlq::condition::field;
  EXPECT_TRUE((dlq::condition{f::reason, "permanent_error", 0}.matches(d)));
  EXPECT_FALSE((dlq::condition{f::reason, "attempts_exhausted", 0}.matches(d)));
  EXPECT_TRUE((dlq::condition{f::key, "c-1", 0}.matches(d)));
  EXPECT_FALSE((dlq::condition{f::key, "c-", 0}.matches(d))) << "keys match exactly";
  EXPECT_FALSE((dlq::condition{f::key, "c-1", 0}.matches(s.letters[1]))) << "null key";
  EXPECT_TRUE((dlq::condition{f::error, "card DECLINED", 0}.matches(d)));
  EXPECT_TRUE((dlq::condition{f::error, "orders:2", 0}.matches(d)));
  EXPECT_FALSE((dlq::condition{f::error, "orders:3", 0}.matches(d)));
  EXPECT_TRUE((dlq::condition{f::since, "", 5000}.matches(d))) << "inclusive";
  EXPECT_FALSE((dlq::condition{f::since, "", 5001}.matches(d)));
  EXPECT_TRUE((dlq::condition{f::topic, "orders", 0}.matches(d)));
  EXPECT_FALSE((dlq::condition{f::topic, "order", 0}.matches(d)));
  EXPECT_TRUE((dlq::condition{f::offset, "", 0}.matches(d)));
  EXPECT_FALSE((dlq::condition{f::partition, "", 1}.matches(d)));
  dlq::selection both{{{f::reason, "permanent_error", 0}, {f::key, "c-2", 0}}};
  EXPECT_FALSE(both.matches(d)) << "all conditions must match";
  EXPECT_TRUE(dlq::selection{}.matches(d));
}

TEST(DlqRedrive, PlanSkipsResolvedFoundAndTargetlessDeadLetters) {
  std::vector<consumer_record> recs;
  for (int o = 0; o < 4; ++o) recs.push_back(letter(0, o, exhausted(o)));
  consumer_record orphan;
  orphan.partition = ferry::partition_id(0);
  orphan.offset = ferry::offset(4);
  recs.push_back(orphan);
  recs.push_back(marker_record(0, 5, dlq::marker_kind::purged, {3}));
  auto s = dlq::build_snapshot("orders.dlq", {{0, 0, 6}}, recs);
  dlq::interrupted_runs ir;
  ir.found.push_back({0, 1, {"orders", 0, 40}});
  auto plan = dlq::plan_redrive(s, ir, {}, "");
  ASSERT_EQ(plan.items.size(), 2u);
  EXPECT_EQ(plan.items[0].letter->offset, 0);
  EXPECT_EQ(plan.items[1].letter->offset, 2);
  EXPECT_EQ(plan.items[1].target, "orders");
  ASSERT_EQ(plan.recovering.size(), 1u);
  EXPECT_EQ(plan.recovering[0]->offset, 1);
  ASSERT_EQ(plan.no_target.size(), 1u);
  EXPECT_EQ(plan.no_target[0]->offset, 4);
  auto to = dlq::plan_redrive(s, ir, {}, "replay");
  EXPECT_EQ(to.items.size(), 3u) << "--to gives the orphan a target";
  EXPECT_EQ(to.items.back().target, "replay");
}

TEST(DlqRedrive, CopyKeepsKeyValueAndIdempotencyKeyDropsDeadLetterHeaders) {
  auto s = dlq::build_snapshot("orders.dlq", {{0, 0, 8}}, {letter(2, 7, exhausted(1), "c-9")});
  auto r = dlq::redrive_record(s, s.letters[0], "orders");
  EXPECT_EQ(r.topic, "orders");
  EXPECT_EQ(r.key, std::optional<std::string>("c-9"));
  EXPECT_EQ(r.value, std::optional<std::string>("payload"));
  EXPECT_FALSE(r.partition) << "the partitioner places it by key";
  EXPECT_EQ(rt::get_header(r.headers, dlq::kRedrivenFromHeader), "orders.dlq/2/7");
  EXPECT_EQ(rt::get_header(r.headers, ferry::protocol::kIdempotencyKeyHeader), "order-1/paid");
  EXPECT_EQ(rt::get_header(r.headers, "trace"), "abc");
  for (auto h : dlq::kDeadLetterHeaders) EXPECT_FALSE(rt::get_header(r.headers, h)) << h;
  EXPECT_EQ(r.headers.size(), 3u);
}

TEST(DlqRedrive, RefusesASnapshotReadWithoutValues) {
  dlq::read_options ro;
  ro.keep_values = false;
  auto s = dlq::build_snapshot("orders.dlq", {{0, 0, 1}}, {letter(0, 0, exhausted(1))}, ro);
  ASSERT_FALSE(s.letters[0].value_kept);
  EXPECT_EQ(s.letters[0].value_bytes, 7u);
  auto plan = dlq::plan_redrive(s, {}, {}, "");
  ASSERT_EQ(plan.items.size(), 1u);
  ferry::client::client_options o;
  o.broker = "tcp://127.0.0.1:1";  // never contacted
  auto r = dlq::execute_redrive(o, s, plan, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ferry::errc::invalid_argument);
}

}  // namespace
