// `ferry dlq list | show | redrive | purge` against an in-process broker,
// run as a user would run them. Dead letters are produced here the way the
// runtime writes them (runtime/failure_record.h); what the CLI redrives is
// read back from the target topics.
//
// FERRY_TEST_ECHO=1 prints every command with its output (docs/cli.md's
// examples come from such a run).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "cli_run.h"
#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/producer.h"
#include "ferry/protocol/codec.h"
#include "ferry/runtime/dlq.h"
#include "ferry/runtime/failure_record.h"
#include "inproc_broker.h"

namespace {

using namespace std::chrono_literals;
namespace rt = ferry::runtime;
namespace dlq = ferry::runtime::dlq;

using ferry::testing::now_ms;
using ferry::testing::run_command;
using ferry::testing::run_result;
using ferry::testing::table_row;

// What a dead letter is made of, before the runtime's headers are added.
struct letter_spec {
  int dlq_partition = 0;
  std::string origin_topic = "orders";
  int origin_partition = 0;
  std::int64_t origin_offset = 0;
  std::optional<std::string> key;
  std::string value = "{}";
  rt::dead_letter_reason reason = rt::dead_letter_reason::attempts_exhausted;
  std::string category = "generic";
  int code = 110;
  std::string message = "Connection timed out";
  int attempts = 3;
  std::int64_t dead_lettered_ms = 0;  // 0: now
  std::string idempotency_key;        // "": none
};

class DlqCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ferry::testing::make_temp_dir("ferry-dlq-cli");
    ASSERT_FALSE(dir_.empty());
    broker_.start(dir_);
  }
  void TearDown() override {
    broker_.stop();
    std::filesystem::remove_all(dir_);
  }

  // Runs `ENV ferry ARGS` with FERRY_BROKER set.
  run_result ferry(const std::string& args, const std::string& env = "") {
    auto r = run_command("FERRY_BROKER=" + broker_.endpoint() + " " + env + " " + FERRY_CLI + " " +
                             args + " </dev/null",
                         dir_ / "stderr.txt");
    if (std::getenv("FERRY_TEST_ECHO"))  // NOLINT(concurrency-mt-unsafe)
      std::cout << "$ ferry " << args << "\n" << r.out << r.err << "(exit " << r.code << ")\n\n";
    return r;
  }
  static nlohmann::json json(const run_result& r) {
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out << r.err;
    return j;
  }

  [[nodiscard]] ferry::client::client_options client_options() const {
    return ferry::testing::cli_client_options(broker_.endpoint());
  }
  void create_topic(const std::string& name, int partitions) {
    ferry::client::topic_config cfg;
    cfg.partitions = partitions;
    cfg.retention_ms = -1;
    ferry::client::admin a(client_options());
    auto r = a.create_topic(name, cfg);
    ASSERT_TRUE(r) << r.error().message() << ": " << a.last_error_message();
  }
  void send(ferry::client::producer_record rec) {
    ferry::client::producer_options o;
    static_cast<ferry::client::client_options&>(o) = client_options();
    o.linger = 0ms;
    ferry::client::producer p(o);
    auto m = p.send(std::move(rec)).get();
    ASSERT_TRUE(m) << m.error().message();
  }
  // A dead letter as the runtime writes it.
  void dead_letter(const letter_spec& s, const std::string& dlq_topic = "orders.dlq") {
    rt::failure_record f;
    f.origin_topic = s.origin_topic;
    f.origin_partition = s.origin_partition;
    f.origin_offset = s.origin_offset;
    f.origin_key = s.key;
    f.origin_timestamp_ms = 1763802000000;  // 2025-11-22T09:00:00Z
    f.group = "billing";
    f.worker = "billing-worker-1";
    const std::int64_t at = s.dead_lettered_ms ? s.dead_lettered_ms : now_ms();
    for (int i = 0; i < s.attempts; ++i)
      f.add_attempt({at - (s.attempts - i) * 1000,
                     s.reason == rt::dead_letter_reason::invalid_payload
                         ? rt::error_class::invalid_payload
                     : s.reason == rt::dead_letter_reason::permanent_error && i + 1 == s.attempts
                         ? rt::error_class::permanent
                         : rt::error_class::retriable,
                     s.category, s.code, s.message, "billing-worker-1"});
    f.reason = s.reason;
    f.reason_message = s.reason == rt::dead_letter_reason::attempts_exhausted
                           ? "gave up after " + std::to_string(s.attempts) + " attempts"
                           : "";
    f.dead_lettered_ms = at;
    ferry::client::producer_record r;
    r.topic = dlq_topic;
    r.partition = ferry::partition_id(s.dlq_partition);
    r.key = s.key;
    r.value = s.value;
    r.timestamp = ferry::timestamp_ms(at);
    r.headers = {{"trace-id", "t-" + std::to_string(s.origin_offset)}};
    if (!s.idempotency_key.empty())
      r.headers.push_back({std::string(ferry::protocol::kIdempotencyKeyHeader), s.idempotency_key});
    rt::set_header(r.headers, rt::kFailureHeader, rt::encode_failure(f));
    rt::set_header(r.headers, rt::kOriginHeader,
                   rt::format_position({s.origin_topic, s.origin_partition, s.origin_offset}));
    rt::set_header(
        r.headers, rt::kRouteHeader,
        "billing/" + rt::format_position({s.origin_topic, s.origin_partition, s.origin_offset}));
    rt::set_header(r.headers, rt::kAttemptHeader, std::to_string(s.attempts));
    send(std::move(r));
  }
  // Every record of `topic` below the high watermarks as of now.
  std::vector<ferry::client::consumer_record> read_all(const std::string& topic) {
    ferry::client::admin a(client_options());
    auto d = a.describe_topic(topic);
    EXPECT_TRUE(d) << topic;
    std::vector<ferry::client::topic_partition> tps;
    std::map<int, std::int64_t> end;
    for (const auto& p : d.value().partitions) {
      tps.push_back({topic, p.partition});
      end[p.partition.value()] = p.high_watermark.value();
    }
    ferry::client::consumer_options co;
    static_cast<ferry::client::client_options&>(co) = client_options();
    co.fetch_max_wait = 50ms;
    ferry::client::consumer c(co);
    EXPECT_TRUE(c.assign(tps));
    std::vector<ferry::client::consumer_record> out;
    for (int i = 0; i < 400; ++i) {
      bool done = true;
      for (const auto& tp : tps)
        if (c.position(tp).value().value() < end[tp.partition.value()]) done = false;
      if (done) break;
      auto recs = c.poll(100ms);
      EXPECT_TRUE(recs);
      for (auto& r : recs.value())
        if (r.offset.value() < end[r.partition.value()]) out.push_back(std::move(r));
    }
    return out;
  }
  std::int64_t records_in(const std::string& topic) {
    ferry::client::admin a(client_options());
    auto d = a.describe_topic(topic);
    EXPECT_TRUE(d);
    std::int64_t n = 0;
    for (const auto& p : d.value().partitions) n += p.high_watermark.value() - p.log_start.value();
    return n;
  }
  // ferry.redriven-from of each copy in `topic` ("" for records without).
  std::multiset<std::string> redriven_from(const std::string& topic) {
    std::multiset<std::string> out;
    for (const auto& r : read_all(topic))
      out.insert(rt::get_header(r.headers, dlq::kRedrivenFromHeader).value_or(""));
    return out;
  }

  // The usual scene: orders (3 partitions), payments, and orders.dlq (2).
  //   p0/0 orders/0/10 key c-1 attempts_exhausted generic:110 timed out (idempotency key)
  //   p0/1 orders/1/11 key c-2 permanent_error orders:2 card declined
  //   p0/2 payments/0/5 key p-1 invalid_payload
  //   p0/3 no failure record, ferry.origin orders/2/99, binary value
  //   p1/0 orders/2/12 key c-3 attempts_exhausted generic:110, two days old
  //   p1/1 orders/0/13 key c-1 attempts_exhausted generic:111 connection refused
  //   p1/2 an invalid failure record and no origin
  void scene() {
    create_topic("orders", 3);
    create_topic("payments", 1);
    create_topic("orders.dlq", 2);
    letter_spec a;
    a.origin_offset = 10;
    a.key = "c-1";
    a.value = R"({"order":10,"total":1999})";
    a.idempotency_key = "order-10/paid";
    dead_letter(a);
    letter_spec b;
    b.origin_partition = 1;
    b.origin_offset = 11;
    b.key = "c-2";
    b.reason = rt::dead_letter_reason::permanent_error;
    b.category = "orders";
    b.code = 2;
    b.message = "card declined";
    b.attempts = 1;
    dead_letter(b);
    letter_spec c;
    c.origin_topic = "payments";
    c.origin_offset = 5;
    c.key = "p-1";
    c.reason = rt::dead_letter_reason::invalid_payload;
    c.category = "ferry.runtime";
    c.code = 3;
    c.message = "payload failed verification (schema 7)";
    c.attempts = 1;
    dead_letter(c);
    ferry::client::producer_record raw;
    raw.topic = "orders.dlq";
    raw.partition = ferry::partition_id(0);
    raw.key = "c-9";
    raw.value = std::string("\x00\x01\xff binary", 10);
    raw.headers = {{std::string(rt::kOriginHeader), "orders/2/99"}};
    send(raw);
    letter_spec d;
    d.dlq_partition = 1;
    d.origin_partition = 2;
    d.origin_offset = 12;
    d.key = "c-3";
    d.dead_lettered_ms = now_ms() - 2 * 86'400'000;
    dead_letter(d);
    letter_spec e;
    e.dlq_partition = 1;
    e.origin_offset = 13;
    e.key = "c-1";
    e.code = 111;
    e.message = "connection refused";
    dead_letter(e);
    ferry::client::producer_record bad;
    bad.topic = "orders.dlq";
    bad.partition = ferry::partition_id(1);
    bad.value = "?";
    bad.headers = {{std::string(rt::kFailureHeader), "not a flatbuffer"}};
    send(bad);
  }
  // --where ... count of pending dead letters listed (JSON).
  long pending(const std::string& where = "") {
    auto r = ferry("-o json dlq list orders.dlq " + where);
    EXPECT_EQ(r.code, 0) << r.err;
    return json(r).value("pending", -1L);
  }

  std::filesystem::path dir_;
  ferry::testing::inproc_broker broker_;
};

TEST_F(DlqCliTest, ListGroupsByOriginTopicReasonAndError) {
  scene();
  auto r = ferry("-o json dlq list orders.dlq");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = json(r);
  EXPECT_EQ(j["pending"], 7);
  EXPECT_EQ(j["resolved"], 0);
  EXPECT_EQ(j["dead_letters"], 7);
  std::map<std::tuple<std::string, std::string, std::string>, int> counts;
  for (const auto& g : j["groups"])
    counts[{g["origin_topic"].is_null() ? "-" : g["origin_topic"].get<std::string>(),
            g["reason"].get<std::string>(),
            g["error"].is_null() ? "-" : g["error"].get<std::string>()}] += g["count"].get<int>();
  using key = std::tuple<std::string, std::string, std::string>;
  EXPECT_EQ((counts[key{"orders", "attempts_exhausted", "generic:110"}]), 2);
  EXPECT_EQ((counts[key{"orders", "attempts_exhausted", "generic:111"}]), 1);
  EXPECT_EQ((counts[key{"orders", "permanent_error", "orders:2"}]), 1);
  EXPECT_EQ((counts[key{"payments", "invalid_payload", "ferry.runtime:3"}]), 1);
  EXPECT_EQ((counts[key{"orders", "unknown", "-"}]), 1) << "no failure record, origin header";
  EXPECT_EQ((counts[key{"-", "unknown", "-"}]), 1) << "invalid failure record: still listed";
  EXPECT_EQ(counts.size(), 6u);
  for (const auto& t : j["topics"])
    if (t["origin_topic"] == "payments") {
      EXPECT_EQ(t["pending"], 1);
    }

  auto table = ferry("dlq list orders.dlq");
  ASSERT_EQ(table.code, 0) << table.err;
  auto row = table_row(table.out, {"orders", "attempts_exhausted", "generic:110"});
  ASSERT_GE(row.size(), 7u) << table.out;
  EXPECT_EQ(row[3], "2");
  EXPECT_NE(table.out.find("Connection timed out"), std::string::npos);
  EXPECT_NE(table.out.find("no failure record"), std::string::npos);
  EXPECT_NE(table.out.find("invalid failure record"), std::string::npos);
  EXPECT_NE(table.out.find("orders.dlq: 7 pending, 0 resolved"), std::string::npos) << table.out;
}

TEST_F(DlqCliTest, WhereFiltersSelectAndAllMustMatch) {
  scene();
  EXPECT_EQ(pending("--where reason=permanent_error"), 1);
  EXPECT_EQ(pending("--where reason=attempts_exhausted"), 3);
  EXPECT_EQ(pending("--where reason=unknown"), 2);
  EXPECT_EQ(pending("--where key=c-1"), 2);
  EXPECT_EQ(pending("--where key=c"), 0) << "keys match exactly";
  EXPECT_EQ(pending("--where topic=payments"), 1);
  EXPECT_EQ(pending("--where 'error=timed out'"), 2);
  EXPECT_EQ(pending("--where error=GENERIC:111"), 1) << "case-insensitive, category:code";
  EXPECT_EQ(pending("--where error=declined"), 1);
  EXPECT_EQ(pending("--where since=1d"), 6) << "the two-day-old one is older";
  EXPECT_EQ(pending("--where since=3d"), 7);
  EXPECT_EQ(pending("--where since=2999-01-01T00:00:00Z"), 0);
  EXPECT_EQ(pending("--where since=2000-01-01"), 7);
  EXPECT_EQ(pending("--where partition=1"), 3);
  EXPECT_EQ(pending("--where partition=1 --where offset=1"), 1);
  EXPECT_EQ(pending("--where key=c-1 --where error=refused"), 1);
  EXPECT_EQ(pending("--where key=c-1 --where key=c-2"), 0) << "all must match";
}

TEST_F(DlqCliTest, BadFiltersAreUsageErrorsThatSayWhatIsValid) {
  scene();
  for (const char* w : {"color=red", "reason=oops", "since=yesterday", "partition=-1", "offset=x",
                        "noequals", "=x", "error="}) {
    auto r = ferry(std::string("dlq list orders.dlq --where '") + w + "'");
    EXPECT_EQ(r.code, 2) << w;
    EXPECT_NE(r.err.find("error:"), std::string::npos) << w;
    EXPECT_TRUE(r.out.empty()) << w;
  }
  auto r = ferry("dlq redrive orders.dlq --where color=red --execute");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("reason=attempts_exhausted|permanent_error|invalid_payload"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(ferry("dlq purge orders.dlq --where reason=nope --execute").code, 2);
  EXPECT_EQ(pending(), 7) << "nothing happened";
  EXPECT_EQ(ferry("dlq list nope.dlq").code, 1) << "unknown topic: refused";
}

TEST_F(DlqCliTest, ShowPrintsOneDeadLetter) {
  scene();
  auto t = ferry("dlq show orders.dlq 0/0");
  ASSERT_EQ(t.code, 0) << t.err;
  for (const char* s :
       {"orders.dlq/0/0", "pending", "orders/0/10", "c-1", "billing-worker-1",
        "attempts_exhausted: gave up after 3 attempts", "retriable", "generic:110",
        "Connection timed out", "trace-id = t-10", "ferry.idempotency-key = order-10/paid",
        R"({"order":10,"total":1999})", "2025-11-22T09:00:00.000Z"})
    EXPECT_NE(t.out.find(s), std::string::npos) << s << "\n" << t.out;

  auto j = json(ferry("-o json dlq show orders.dlq --partition 0 --offset 0"));
  EXPECT_EQ(j["state"], "pending");
  EXPECT_EQ(j["origin"]["topic"], "orders");
  EXPECT_EQ(j["origin"]["partition"], 0);
  EXPECT_EQ(j["origin"]["offset"], 10);
  EXPECT_EQ(j["origin"]["key"], "c-1");
  EXPECT_EQ(j["origin"]["timestamp"], 1763802000000);
  EXPECT_EQ(j["group"], "billing");
  EXPECT_EQ(j["reason"], "attempts_exhausted");
  ASSERT_EQ(j["attempts"].size(), 3u);
  EXPECT_EQ(j["attempts"][2]["number"], 3);
  EXPECT_EQ(j["attempts"][2]["error"], "generic:110");
  EXPECT_EQ(j["attempts"][2]["message"], "Connection timed out");
  const auto t0 = j["attempts"][0]["time_ms"].get<std::int64_t>();
  EXPECT_EQ(j["attempts"][0]["time"].get<std::string>().size(), 24u);  // ...T..:..:..mmmZ
  EXPECT_LT(t0, j["dead_lettered"].get<std::int64_t>());
  EXPECT_EQ(j["value"], R"({"order":10,"total":1999})");

  // Without a failure record: listed as unknown, binary value in hex.
  auto raw = json(ferry("-o json dlq show orders.dlq 0/3"));
  EXPECT_EQ(raw["reason"], "unknown");
  EXPECT_EQ(raw["failure_problem"], "no failure record");
  EXPECT_EQ(raw["origin"]["topic"], "orders");
  EXPECT_EQ(raw["value_hex"].get<std::string>().substr(0, 8), "00 01 ff");
  auto raw_t = ferry("dlq show orders.dlq 0/3");
  EXPECT_NE(raw_t.out.find("binary"), std::string::npos) << raw_t.out;
  EXPECT_NE(raw_t.out.find("00 01 ff"), std::string::npos) << raw_t.out;

  EXPECT_EQ(ferry("dlq show orders.dlq 0/99").code, 1);
  EXPECT_EQ(ferry("dlq show orders.dlq 7/0").code, 1);
  EXPECT_EQ(ferry("dlq show orders.dlq").code, 2);
  EXPECT_EQ(ferry("dlq show orders.dlq zero").code, 2);
  EXPECT_EQ(ferry("dlq show orders.dlq 0/1 --partition 0").code, 2);
}

TEST_F(DlqCliTest, RedrivePlanChangesNothing) {
  scene();
  const auto dlq_before = records_in("orders.dlq");
  auto plan = ferry("-o json dlq redrive orders.dlq --where reason=attempts_exhausted");
  ASSERT_EQ(plan.code, 0) << plan.err;
  auto j = json(plan);
  EXPECT_EQ(j["executed"], false);
  EXPECT_EQ(j["to_redrive"], 3);
  ASSERT_EQ(j["targets"].size(), 1u);
  EXPECT_EQ(j["targets"][0]["target"], "orders");
  EXPECT_EQ(j["targets"][0]["count"], 3);
  auto table = ferry("dlq redrive orders.dlq");
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_FALSE(table_row(table.out, {"orders", "orders", "5"}).empty()) << table.out;
  EXPECT_EQ(table_row(table.out, {"payments", "payments", "1"}),
            (std::vector<std::string>{"payments", "payments", "1", "0/2"}))
      << table.out;
  EXPECT_NE(table.out.find("without an origin topic"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("--execute"), std::string::npos);
  EXPECT_EQ(records_in("orders"), 0);
  EXPECT_EQ(records_in("payments"), 0);
  EXPECT_EQ(records_in("orders.dlq"), dlq_before);
}

TEST_F(DlqCliTest, RedriveExecuteMovesExactlyTheFilteredOnesOnce) {
  scene();
  auto run = ferry("-o json dlq redrive orders.dlq --where reason=attempts_exhausted --execute");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(json(run)["redriven"], 3);
  auto copies = read_all("orders");
  ASSERT_EQ(copies.size(), 3u);
  std::set<std::string> from;
  for (const auto& c : copies) {
    from.insert(rt::get_header(c.headers, dlq::kRedrivenFromHeader).value_or(""));
    for (auto h : dlq::kDeadLetterHeaders) EXPECT_FALSE(rt::get_header(c.headers, h)) << h;
    if (c.key == "c-1" && rt::get_header(c.headers, "trace-id") == "t-10") {
      EXPECT_EQ(c.value, R"({"order":10,"total":1999})");
      EXPECT_EQ(rt::get_header(c.headers, ferry::protocol::kIdempotencyKeyHeader), "order-10/paid");
    }
  }
  EXPECT_EQ(from, (std::set<std::string>{"orders.dlq/0/0", "orders.dlq/1/0", "orders.dlq/1/1"}));
  EXPECT_EQ(records_in("payments"), 0) << "filtered out";

  EXPECT_EQ(pending(), 4);
  auto all = json(ferry("-o json dlq list orders.dlq --all"));
  EXPECT_EQ(all["redriven"], 3);
  EXPECT_EQ(all["pending"], 4);
  auto shown = json(ferry("-o json dlq show orders.dlq 1/1"));
  EXPECT_EQ(shown["state"], "redriven");
  EXPECT_EQ(shown["resolved"]["to"], "orders");
  auto shown_t = ferry("dlq show orders.dlq 1/1");
  EXPECT_NE(shown_t.out.find("state         redriven to orders at "), std::string::npos)
      << shown_t.out;

  auto again = ferry("-o json dlq redrive orders.dlq --where reason=attempts_exhausted --execute");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(json(again)["redriven"], 0);
  EXPECT_EQ(records_in("orders"), 3) << "a second run redrives nothing";
}

TEST_F(DlqCliTest, RedriveToAnotherTopicAndRefusesMissingTargets) {
  scene();
  auto missing = ferry("dlq redrive orders.dlq --to replay --execute");
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
  EXPECT_EQ(pending(), 7);
  EXPECT_EQ(ferry("dlq redrive orders.dlq --to orders.dlq").code, 2);
  EXPECT_EQ(ferry("dlq redrive orders.dlq --rate -1").code, 2);

  create_topic("replay", 2);
  auto run = ferry("dlq redrive orders.dlq --where reason=unknown --to replay --execute");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(redriven_from("replay"),
            (std::multiset<std::string>{"orders.dlq/0/3", "orders.dlq/1/2"}))
      << "--to also takes the ones without an origin";
  EXPECT_EQ(records_in("orders"), 0);
  EXPECT_EQ(json(ferry("-o json dlq show orders.dlq 1/2"))["resolved"]["to"], "replay");
}

TEST_F(DlqCliTest, PurgeMarksAndRedriveSkipsPurged) {
  scene();
  auto plan = ferry("-o json dlq purge orders.dlq --where topic=payments");
  ASSERT_EQ(plan.code, 0) << plan.err;
  EXPECT_EQ(json(plan)["executed"], false);
  EXPECT_EQ(json(plan)["count"], 1);
  EXPECT_EQ(pending(), 7) << "the plan changed nothing";

  auto run = ferry("dlq purge orders.dlq --where topic=payments --execute");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.out.find("marked 1 dead letter(s) of orders.dlq purged"), std::string::npos)
      << run.out;
  EXPECT_EQ(pending(), 6);
  EXPECT_EQ(json(ferry("-o json dlq show orders.dlq 0/2"))["state"], "purged");
  auto table = ferry("dlq list orders.dlq --all");
  EXPECT_FALSE(table_row(table.out, {"purged", "payments", "invalid_payload"}).empty())
      << table.out;
  EXPECT_EQ(json(ferry("-o json dlq purge orders.dlq --where topic=payments --execute"))["count"],
            0)
      << "already purged";

  auto redrive = ferry("-o json dlq redrive orders.dlq --execute");
  ASSERT_EQ(redrive.code, 0) << redrive.err;
  EXPECT_EQ(json(redrive)["redriven"], 5) << "6 pending, one without origin";
  EXPECT_EQ(records_in("payments"), 0) << "purged ones are never redriven";
  EXPECT_EQ(records_in("orders"), 5);
}

// `dlq ... payments` by mistake: a live topic is refused before anything is
// read out as "dead letters" or marked; --force and a DLQ of one's own
// naming still work.
TEST_F(DlqCliTest, ATopicThatIsNotADeadLetterTopicIsRefused) {
  create_topic("payments", 1);
  ferry::client::producer_record plain;
  plain.topic = "payments";
  plain.value = "an order";
  send(plain);
  for (const char* cmd : {"dlq list payments", "dlq show payments 0/0",
                          "dlq purge payments --execute", "dlq redrive payments --execute"}) {
    auto r = ferry(cmd);
    EXPECT_EQ(r.code, 2) << cmd;
    EXPECT_NE(r.err.find("does not look like a dead-letter topic"), std::string::npos)
        << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  }
  EXPECT_EQ(records_in("payments"), 1) << "no marker was written into the live topic";
  auto forced = ferry("-o json dlq list payments --force");
  EXPECT_EQ(forced.code, 0) << forced.err;

  // A dead-letter topic of one's own naming: recognised by what is in it.
  create_topic("failed-orders", 1);
  letter_spec s;
  s.origin_topic = "orders";
  s.key = "c-1";
  dead_letter(s, "failed-orders");
  EXPECT_EQ(ferry("dlq list failed-orders").code, 0);
  // A retry tier's records carry failure records and origins too, but were
  // never dead-lettered: a live topic the workers consume.
  create_topic("orders.retry.5s", 1);
  {
    rt::failure_record f;
    f.origin_topic = "orders";
    f.add_attempt({now_ms(), rt::error_class::retriable, "generic", 110, "timed out", "w1"});
    ferry::client::producer_record r;
    r.topic = "orders.retry.5s";
    r.value = "{}";
    rt::set_header(r.headers, rt::kFailureHeader, rt::encode_failure(f));
    rt::set_header(r.headers, rt::kOriginHeader, "orders/0/7");
    send(r);
  }
  auto tier = ferry("dlq purge orders.retry.5s --execute");
  EXPECT_EQ(tier.code, 2) << tier.err;
  EXPECT_EQ(records_in("orders.retry.5s"), 1) << "no marker in the tier";
  // And an empty topic has nothing to refuse.
  create_topic("empty", 1);
  EXPECT_EQ(ferry("dlq list empty").code, 0);
}

// A run that stopped after producing but before its redriven marker, made
// by hand: a redrive-start marker, then a copy of one of its dead letters.
TEST_F(DlqCliTest, RedriveFindsCopiesOfAnInterruptedRunAndDoesNotProduceThemAgain) {
  create_topic("orders", 2);
  create_topic("orders.dlq", 1);
  for (int i = 0; i < 3; ++i) {
    letter_spec s;
    s.origin_offset = i;
    s.key = "c-" + std::to_string(i);
    dead_letter(s);
  }
  dlq::marker m;
  m.kind = dlq::marker_kind::redrive_start;
  m.offsets = {0, 1, 2};
  m.to = "orders";
  m.targets = {{"orders", 0, 0}, {"orders", 1, 0}};
  m.run = "crashed";
  ferry::client::producer_record mr;
  mr.topic = "orders.dlq";
  mr.partition = ferry::partition_id(0);
  mr.value = dlq::encode_marker(m);
  mr.headers = {{std::string(dlq::kMarkerHeader), "redrive-start"}};
  send(mr);
  ferry::client::producer_record copy;
  copy.topic = "orders";
  copy.key = "c-1";
  copy.value = "{}";
  copy.headers = {{std::string(dlq::kRedrivenFromHeader), "orders.dlq/0/1"}};
  send(copy);

  auto plan = ferry("-o json dlq redrive orders.dlq");
  ASSERT_EQ(plan.code, 0) << plan.err;
  EXPECT_EQ(json(plan)["unconfirmed"], 3);
  EXPECT_EQ(json(plan)["copies_found"], 1);
  EXPECT_EQ(json(plan)["to_redrive"], 2);
  auto plan_t = ferry("dlq redrive orders.dlq");
  EXPECT_NE(plan_t.out.find("interrupted redrive (run crashed): 3 dead letter(s) unconfirmed, "
                            "copies of 1 found"),
            std::string::npos)
      << plan_t.out;
  EXPECT_EQ(records_in("orders"), 1) << "the plan changed nothing";

  auto run = ferry("-o json dlq redrive orders.dlq --execute");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(json(run)["redriven"], 2);
  EXPECT_EQ(json(run)["recovered"], 1);
  EXPECT_EQ(redriven_from("orders"),
            (std::multiset<std::string>{"orders.dlq/0/0", "orders.dlq/0/1", "orders.dlq/0/2"}));
  auto shown = json(ferry("-o json dlq show orders.dlq 0/1"));
  EXPECT_EQ(shown["state"], "redriven");
  EXPECT_EQ(shown["resolved"]["recovered"], true);
  EXPECT_EQ(json(ferry("-o json dlq redrive orders.dlq"))["unconfirmed"], 0)
      << "every start marker is followed up now";
}

// kill -9 at the worst moment: FERRY_DLQ_CRASH_AFTER ends the CLI right
// after an acknowledgement, before that chunk's redriven marker.
TEST_F(DlqCliTest, RedriveKilledMidwayNeverProducesADuplicate) {
  create_topic("orders", 3);
  create_topic("orders.dlq", 2);
  std::set<std::string> expected;
  for (int i = 0; i < 12; ++i) {
    letter_spec s;
    s.dlq_partition = i % 2;
    s.origin_offset = i;
    s.origin_partition = i % 3;
    s.key = "c-" + std::to_string(i);
    dead_letter(s);
    expected.insert("orders.dlq/" + std::to_string(i % 2) + "/" + std::to_string(i / 2));
  }
  // --rate 4: chunks of 4 dead letters; the 6th acknowledgement is in the
  // second chunk, whose copies are all sent by then.
  auto crashed = ferry("dlq redrive orders.dlq --rate 4 --execute", "FERRY_DLQ_CRASH_AFTER=6");
  ASSERT_EQ(crashed.code, 137) << crashed.out << crashed.err;
  const auto after_crash = redriven_from("orders");
  ASSERT_GE(after_crash.size(), 6u);
  ASSERT_LT(after_crash.size(), 12u) << "the crash came before the end";
  EXPECT_EQ(pending(), 8) << "only the first chunk was marked";

  auto run = ferry("-o json dlq redrive orders.dlq --rate 0 --execute");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(json(run)["recovered"].get<std::size_t>() + json(run)["redriven"].get<std::size_t>(),
            8u);
  EXPECT_EQ(json(run)["recovered"].get<std::size_t>(), after_crash.size() - 4);
  auto copies = redriven_from("orders");
  EXPECT_EQ(copies.size(), 12u) << "no duplicate, none missing";
  EXPECT_EQ(std::set<std::string>(copies.begin(), copies.end()), expected);
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(json(ferry("-o json dlq redrive orders.dlq --execute"))["redriven"], 0);
  EXPECT_EQ(records_in("orders"), 12);
}

}  // namespace
