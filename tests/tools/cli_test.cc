// The `ferry` CLI against an in-process broker: commands, JSON output and
// exit codes, run as a user would run them.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "cli_run.h"
#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"
#include "ferry/client/producer.h"
#include "ferry/protocol/curve.h"
#include "inproc_broker.h"

namespace {

using namespace std::chrono_literals;

using ferry::testing::now_ms;
using ferry::testing::run_command;
using ferry::testing::run_result;

// Whitespace-separated cells of the table line starting with `first`
// followed by `second` (empty: none).
std::vector<std::string> table_row(const std::string& out, const std::string& first,
                                   const std::string& second) {
  return ferry::testing::table_row(out, {first, second});
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ferry::testing::make_temp_dir("ferry-cli");
    ASSERT_FALSE(dir_.empty());
    ferry::broker::broker_config c;
    c.retention_check_interval = std::chrono::milliseconds(20);  // log start moves quickly
    c.kafka_listen = "127.0.0.1:0";                              // for the commands over kafka://
    broker_.start(dir_, c);
  }
  void TearDown() override {
    broker_.stop();
    std::filesystem::remove_all(dir_);
  }
  // Runs `ferry ARGS` with FERRY_BROKER set; stdin from `input`.
  run_result ferry(const std::string& args, const std::string& input = "") {
    auto in = dir_ / "stdin.txt";
    {
      FILE* f = std::fopen(in.c_str(), "w");
      std::fputs(input.c_str(), f);
      std::fclose(f);
    }
    return run_command(
        "FERRY_BROKER=" + broker_.endpoint() + " " + FERRY_CLI + " " + args + " < " + in.string(),
        dir_ / "stderr.txt");
  }

  // --- in-process clients, to set up what the CLI then shows ---------------

  [[nodiscard]] ferry::client::client_options client_options() const {
    return ferry::testing::cli_client_options(broker_.endpoint());
  }
  // Records are kept forever unless `retention_bytes` is set.
  void create_topic(const std::string& name, int partitions, std::int64_t retention_bytes = -2,
                    std::int64_t segment_bytes = 0) {
    ferry::client::topic_config cfg;
    cfg.partitions = partitions;
    cfg.retention_ms = -1;  // records with old timestamps stay
    cfg.retention_bytes = retention_bytes;
    cfg.segment_bytes = segment_bytes;
    ferry::client::admin a(client_options());
    auto r = a.create_topic(name, cfg);
    ASSERT_TRUE(r) << r.error().message() << ": " << a.last_error_message();
  }
  // One batch per record, with these timestamps (ms since the epoch).
  void produce(const std::string& topic, int partition, const std::vector<std::int64_t>& ts,
               std::size_t value_bytes = 8) {
    ferry::client::producer_options o;
    static_cast<ferry::client::client_options&>(o) = client_options();
    o.linger = 0ms;
    ferry::client::producer p(o);
    for (std::size_t i = 0; i < ts.size(); ++i) {
      std::string v = "v" + std::to_string(i);
      v.resize(std::max(v.size(), value_bytes), '.');
      ferry::client::producer_record rec;
      rec.topic = topic;
      rec.value = v;
      rec.partition = ferry::partition_id(partition);
      rec.timestamp = ferry::timestamp_ms(ts[i]);
      auto f = p.send(std::move(rec));
      auto m = f.get();
      ASSERT_TRUE(m) << m.error().message();
    }
  }
  // An administrative commit (the group must have no members).
  void commit(const std::string& group, const std::string& topic, int partition,
              std::int64_t next) {
    ferry::testing::admin_commit(client_options(), group, topic, partition, next);
  }
  std::optional<std::int64_t> committed(const std::string& group, const std::string& topic,
                                        int partition) {
    ferry::client::admin a(client_options());
    auto r = a.committed_offsets(group, {{topic, ferry::partition_id(partition)}});
    EXPECT_TRUE(r) << r.error().message();
    if (!r || r.value().empty() || !r.value()[0].next) return std::nullopt;
    return r.value()[0].next->value();
  }
  // The plan or result of a reset-offsets run, by partition.
  static std::map<int, nlohmann::json> by_partition(const run_result& r) {
    std::map<int, nlohmann::json> out;
    auto j = nlohmann::json::parse(r.out);
    for (auto& p : j["partitions"]) out[p["partition"].get<int>()] = p;
    return out;
  }
  static std::vector<nlohmann::json> lines(const std::string& s) {
    std::vector<nlohmann::json> out;
    std::istringstream in(s);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  std::filesystem::path dir_;
  ferry::testing::inproc_broker broker_;
};

TEST_F(CliTest, TopicsLifecycle) {
  EXPECT_EQ(ferry("topics create orders --partitions 3").code, 0);
  EXPECT_EQ(ferry("topics create orders --partitions 3").code, 1) << "already exists: refused";
  auto list = ferry("-o json topics list");
  ASSERT_EQ(list.code, 0);
  auto j = nlohmann::json::parse(list.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["topic"], "orders");
  EXPECT_EQ(j[0]["partitions"], 3);
  auto d = ferry("-o json topics describe orders");
  ASSERT_EQ(d.code, 0);
  EXPECT_EQ(nlohmann::json::parse(d.out)["partition_details"].size(), 3u);
  auto plan = ferry("topics delete orders");
  EXPECT_EQ(plan.code, 0);
  EXPECT_NE(plan.out.find("--execute"), std::string::npos);
  EXPECT_EQ(ferry("topics describe orders").code, 0) << "the plan changed nothing";
  EXPECT_EQ(ferry("topics delete orders --execute").code, 0);
  EXPECT_EQ(ferry("topics describe orders").code, 1);
}

// topics alter: plan first, more partitions online (served at once, kept
// across a restart), never fewer, and limits that apply to the open logs.
TEST_F(CliTest, TopicsAlterChangesSettingsOnlineAfterAPlan) {
  create_topic("orders", 2, -1, 4096);
  auto plan = ferry("topics alter orders --partitions 4");
  ASSERT_EQ(plan.code, 0) << plan.err;
  EXPECT_NE(plan.out.find("--execute"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find("another partition"), std::string::npos)
      << "says that the key mapping changes\n"
      << plan.out;
  EXPECT_EQ(table_row(plan.out, "partitions", "2"),
            (std::vector<std::string>{"partitions", "2", "4"}))
      << plan.out;
  auto unchanged = nlohmann::json::parse(ferry("-o json topics describe orders").out);
  EXPECT_EQ(unchanged["partition_details"].size(), 2u) << "the plan changed nothing";

  auto done = ferry("-o json topics alter orders --partitions 4 --execute");
  ASSERT_EQ(done.code, 0) << done.err;
  auto dj = nlohmann::json::parse(done.out);
  EXPECT_EQ(dj["changes"]["partitions"]["to"], "4") << done.out;
  EXPECT_EQ(nlohmann::json::parse(ferry("-o json topics describe orders").out)["partition_details"]
                .size(),
            4u);
  ASSERT_EQ(ferry("produce orders --partition 3", "new\n").code, 0) << "the new partition serves";
  EXPECT_EQ(ferry("consume orders --partition 3 --from-beginning -e").out, "new\n");

  auto fewer = ferry("topics alter orders --partitions 3 --execute");
  EXPECT_EQ(fewer.code, 1);
  EXPECT_NE(fewer.err.find("can only be added"), std::string::npos) << fewer.err;
  EXPECT_NE(ferry("topics alter orders --partitions 3").code, 0) << "the plan is checked too";
  EXPECT_EQ(ferry("topics alter orders").code, 2) << "nothing to change";
  EXPECT_EQ(ferry("topics alter nosuch --retention-ms 1000 --execute").code, 1);

  // The largest batch applies to the open partitions at once.
  ASSERT_EQ(ferry("topics alter orders --max-message-bytes 1024 --execute").code, 0);
  auto big = ferry("produce orders --partition 0", std::string(2000, 'x') + "\n");
  EXPECT_EQ(big.code, 1) << big.err;
  EXPECT_NE(big.err.find("too large"), std::string::npos) << big.err;

  // Retention by bytes shrinks a partition of many segments without a restart.
  produce("orders", 0, std::vector<std::int64_t>(200, now_ms()), 200);
  const auto start_before =
      nlohmann::json::parse(
          ferry("-o json topics describe orders").out)["partition_details"][0]["log_start_offset"]
          .get<std::int64_t>();
  EXPECT_EQ(start_before, 0);
  ASSERT_EQ(ferry("topics alter orders --retention-bytes 8192 --execute").code, 0);
  std::int64_t start_after = 0;
  for (int i = 0; i < 200 && start_after == 0; ++i) {
    std::this_thread::sleep_for(20ms);
    start_after =
        nlohmann::json::parse(
            ferry("-o json topics describe orders").out)["partition_details"][0]["log_start_offset"]
            .get<std::int64_t>();
  }
  EXPECT_GT(start_after, 0) << "retention applied to the open log";

  // Kept across a restart.
  broker_.stop();
  broker_.start(dir_);
  auto after = nlohmann::json::parse(ferry("-o json topics describe orders").out);
  EXPECT_EQ(after["partitions"], 4);
  EXPECT_EQ(after["retention_bytes"], 8192);
  EXPECT_EQ(after["max_message_bytes"], 1024);
}

// A partition directory left by an addition cut short (topic.json still says
// the old count) is not part of the topic: the next addition starts it afresh.
TEST_F(CliTest, TopicsAlterReplacesWhatAnInterruptedAdditionLeft) {
  // Partition 1 with a record in it, then topic.json back at one partition:
  // what a crash between opening the new partition and the rename leaves
  // (with a record only a bug could have written there).
  create_topic("t", 2);
  ASSERT_EQ(ferry("produce t --partition 1", "stale\n").code, 0);
  broker_.stop();
  const auto meta = dir_ / "topics" / "t" / "topic.json";
  nlohmann::json j;
  {
    std::ifstream in(meta);
    j = nlohmann::json::parse(in);
  }
  j["partitions"] = 1;
  {
    std::ofstream out(meta, std::ios::trunc);
    out << j.dump(2) << "\n";
  }
  broker_.start(dir_);
  auto before = nlohmann::json::parse(ferry("-o json topics describe t").out);
  EXPECT_EQ(before["partition_details"].size(), 1u) << "topic.json decides";
  auto done = ferry("topics alter t --partitions 2 --execute");
  ASSERT_EQ(done.code, 0) << done.err;
  ASSERT_EQ(ferry("produce t --partition 1", "x\n").code, 0);
  auto d = nlohmann::json::parse(ferry("-o json topics describe t").out);
  EXPECT_EQ(d["partition_details"][1]["log_end_offset"], 1) << "started afresh: " << d.dump();
  EXPECT_EQ(ferry("consume t --partition 1 --from-beginning -e").out, "x\n");
  EXPECT_FALSE(d["partition_details"][1].contains("error")) << d.dump();
}

TEST_F(CliTest, ProduceAndConsumeWithKeysAndJson) {
  ASSERT_EQ(ferry("topics create orders --partitions 2").code, 0);
  auto p = ferry("-o json produce orders --key-separator : --header src=test",
                 "c1:first\nc2:second\nc1:third\n");
  ASSERT_EQ(p.code, 0);
  auto acks = lines(p.out);
  ASSERT_EQ(acks.size(), 3u);
  for (auto& a : acks) EXPECT_EQ(a["topic"], "orders");
  auto c = ferry("-o json consume orders --from-beginning -e");
  ASSERT_EQ(c.code, 0);
  auto recs = lines(c.out);
  ASSERT_EQ(recs.size(), 3u);
  std::map<std::string, std::vector<std::string>> by_key;
  for (auto& r : recs) {
    by_key[r["key"]].push_back(r["value"]);
    EXPECT_EQ(r["headers"]["src"], "test");
  }
  EXPECT_EQ(by_key["c1"], (std::vector<std::string>{"first", "third"}))
      << "same key: same partition, in order";
  EXPECT_EQ(by_key["c2"], std::vector<std::string>{"second"});
  // --partition/--offset start exactly at a record seen above.
  for (auto& r : recs) {
    if (r["value"] != "third") continue;
    auto at = ferry("consume orders --partition " + std::to_string(r["partition"].get<int>()) +
                    " --offset " + std::to_string(r["offset"].get<long>()) + " -n 1");
    ASSERT_EQ(at.code, 0);
    EXPECT_EQ(at.out, "third\n");
  }
  auto n = ferry("consume orders --from-beginning -n 1");
  EXPECT_EQ(n.code, 0);
  EXPECT_EQ(std::count(n.out.begin(), n.out.end(), '\n'), 1);
  auto from = ferry("consume orders --from-time 2000-01-01T00:00:00Z -e");
  EXPECT_EQ(std::count(from.out.begin(), from.out.end(), '\n'), 3);
  auto future = ferry("consume orders --from-time 2999-01-01T00:00:00Z -e");
  EXPECT_EQ(future.code, 0);
  EXPECT_EQ(future.out, "");
}

TEST_F(CliTest, ExitCodesDistinguishFailures) {
  EXPECT_EQ(ferry("produce nope", "x\n").code, 1) << "refused: unknown topic";
  EXPECT_EQ(ferry("topics create").code, 2) << "usage error";
  EXPECT_EQ(ferry("consume x --offset 5").code, 2) << "--offset needs --partition";
  EXPECT_EQ(ferry("consume x --from-time yesterday").code, 2);
  EXPECT_EQ(ferry("--broker tcp://127.0.0.1:1 --timeout-ms 300 topics list").code, 3)
      << "unreachable";
}

// What a newcomer types first: options after the command, host:port,
// --version, a down broker, the range of --partitions.
// The same commands over kafka:// (librdkafka against the broker's Kafka
// listener); what needs ferryd says so in one line and exits 2.
TEST_F(CliTest, CommandsWorkOverKafkaAndSayWhatTheyCannotDo) {
  const std::string k = "--broker " + broker_.kafka_endpoint() + " ";
  ASSERT_EQ(ferry(k + "topics create orders --partitions 2").code, 0);
  auto produced = ferry(k + "produce orders --key-separator :", "a:1\nb:2\n");
  ASSERT_EQ(produced.code, 0) << produced.err;
  auto described = ferry(k + "-o json topics describe orders");
  ASSERT_EQ(described.code, 0) << described.err;
  const auto d = nlohmann::json::parse(described.out);
  EXPECT_EQ(d["partitions"], 2);
  ASSERT_EQ(d["partition_details"].size(), 2u);
  EXPECT_TRUE(d["partition_details"][0]["size_bytes"].is_null()) << "not known over kafka://";
  auto consumed = ferry(k + "consume orders -e --group g --key-separator :");
  ASSERT_EQ(consumed.code, 0) << consumed.err;
  EXPECT_NE(consumed.out.find("a:1"), std::string::npos) << consumed.out;
  EXPECT_NE(consumed.out.find("b:2"), std::string::npos) << consumed.out;
  auto groups = ferry(k + "groups describe g");
  ASSERT_EQ(groups.code, 0) << groups.err;
  EXPECT_NE(groups.out.find("orders"), std::string::npos) << groups.out;

  // Dead letters made over Kafka, listed and redriven over Kafka.
  auto drain = ferry(k + "-o json bench drain --records 200 --keep");
  ASSERT_EQ(drain.code, 0) << drain.err;
  EXPECT_EQ(nlohmann::json::parse(drain.out)["dead_lettered"], 20);
  auto topics = nlohmann::json::parse(ferry(k + "-o json topics list").out);
  std::string dlq;
  for (const auto& t : topics)
    if (t["topic"].get<std::string>().ends_with(".dlq")) dlq = t["topic"];
  ASSERT_FALSE(dlq.empty()) << topics.dump();
  auto listed = ferry(k + "dlq list " + dlq);
  ASSERT_EQ(listed.code, 0) << listed.err;
  EXPECT_NE(listed.out.find("attempts_exhausted"), std::string::npos) << listed.out;
  auto redriven = ferry(k + "dlq redrive " + dlq + " --execute");
  ASSERT_EQ(redriven.code, 0) << redriven.err;
  EXPECT_NE(redriven.out.find("redrove 20"), std::string::npos) << redriven.out;

  auto alter = ferry(k + "topics alter orders --partitions 3 --retention-ms 60000 --execute");
  EXPECT_EQ(alter.code, 0) << alter.err;
  EXPECT_NE(alter.out.find("altered topic orders"), std::string::npos) << alter.out;
  const auto altered = nlohmann::json::parse(ferry(k + "-o json topics describe orders").out);
  EXPECT_EQ(altered["partitions"], 3) << altered.dump();
  EXPECT_EQ(altered["retention_ms"], 60000) << altered.dump();
  auto enforce = ferry(k + "schema enforce orders");
  EXPECT_EQ(enforce.code, 2);
  EXPECT_NE(enforce.err.find("not supported over kafka://"), std::string::npos) << enforce.err;
  auto deleted = ferry(k + "groups delete g --execute");
  EXPECT_EQ(deleted.code, 0) << deleted.err;
}

TEST_F(CliTest, GlobalOptionsGoAnywhereAndAddressesAreCheckedUpFront) {
  create_topic("t", 1);
  ASSERT_EQ(ferry("produce t", "a\nb\n").code, 0);
  auto after = ferry("consume t --from-beginning -e -o json");
  ASSERT_EQ(after.code, 0) << after.err;
  EXPECT_EQ(nlohmann::json::parse(after.out.substr(0, after.out.find('\n')))["value"], "a");
  const auto host_port = broker_.endpoint().substr(std::string("tcp://").size());
  auto plain = ferry("topics list --broker " + host_port + " --timeout-ms 5000 -o json");
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_NE(plain.out.find("\"topic\":\"t\""), std::string::npos) << plain.out;
  auto help = ferry("consume --help");
  EXPECT_NE(help.out.find("Global options"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("--broker URL"), std::string::npos) << help.out;

  auto bad = ferry("--broker bogus topics list");
  EXPECT_EQ(bad.code, 2) << "a usage error";
  EXPECT_NE(bad.err.find("tcp://HOST:PORT, HOST:PORT, ipc://PATH or kafka://HOST:PORT"),
            std::string::npos)
      << bad.err;
  EXPECT_EQ(ferry("--broker localhost:99999 topics list").code, 2) << "no such port";
  EXPECT_EQ(ferry("--broker kafka:// topics list").code, 2) << "no address";
  EXPECT_EQ(ferry("--broker kafka://a:1,b topics list").code, 2) << "no port";
  auto curve = ferry("--broker kafka://127.0.0.1:1 --key-file x.key topics list");
  EXPECT_EQ(curve.code, 2);
  EXPECT_NE(curve.err.find("CURVE keys are for ferryd's native protocol"), std::string::npos)
      << curve.err;
  auto props = ferry("--kafka-property acks=all topics list");
  EXPECT_EQ(props.code, 2);
  EXPECT_NE(props.err.find("apply to kafka:// brokers only"), std::string::npos) << props.err;

  auto version = ferry("--version");
  EXPECT_EQ(version.code, 0);
  EXPECT_EQ(version.out.rfind("ferry ", 0), 0u) << version.out;

  // A broker that is not there: exit 3 within --timeout-ms, naming the address.
  const auto start = std::chrono::steady_clock::now();
  auto down = ferry("--broker 127.0.0.1:1 --timeout-ms 500 produce t", "x\n");
  EXPECT_EQ(down.code, 3) << down.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20))
      << "bounded by the time-out, not a minute";
  EXPECT_NE(down.err.find("tcp://127.0.0.1:1"), std::string::npos) << down.err;

  auto zero = ferry("topics create z --partitions 0");
  EXPECT_EQ(zero.code, 2);
  EXPECT_NE(zero.err.find("not in range 1 to 1000000"), std::string::npos) << zero.err;
}

// Completion and man pages come from the command definitions: a command
// added to the CLI is completed and documented without anyone editing them.
TEST_F(CliTest, CompletionAndManPagesFollowTheCommands) {
  const auto bash = dir_ / "ferry.bash";
  ASSERT_EQ(ferry("completion bash > " + bash.string()).code, 0);
  auto complete = [&](const std::string& words, int cword) {
    return run_command("bash -c 'source " + bash.string() + "; COMP_WORDS=(" + words +
                           "); COMP_CWORD=" + std::to_string(cword) +
                           "; _ferry; echo \"${COMPREPLY[*]}\"'",
                       dir_ / "bash.err");
  };
  auto top = complete("ferry \"\"", 1);
  ASSERT_EQ(top.code, 0) << top.err;
  for (const char* c : {"topics", "groups", "dlq", "consume", "completion", "--broker"})
    EXPECT_NE(top.out.find(c), std::string::npos) << c << ": " << top.out;
  EXPECT_EQ(complete("ferry topics al", 2).out, "alter\n");
  // Global options before the command, with their values, are skipped.
  EXPECT_EQ(complete("ferry --broker h:1 -o json topics alter t --par", 8).out, "--partitions\n");
  EXPECT_EQ(complete("ferry -o j", 2).out, "json\n") << "the value of -o";
  EXPECT_NE(complete("ferry consume t --", 3).out.find("--timeout-ms"), std::string::npos)
      << "global options after the command too";

  const auto zsh = dir_ / "_ferry";
  ASSERT_EQ(ferry("completion zsh > " + zsh.string()).code, 0);
  auto syntax = run_command("zsh -n " + zsh.string(), dir_ / "zsh.err");
  EXPECT_EQ(syntax.code, 0) << syntax.err;
  EXPECT_EQ(ferry("completion fish").code, 2);

  auto man = ferry("--man");
  ASSERT_EQ(man.code, 0) << man.err;
  EXPECT_EQ(man.out.rfind(".\\\"", 0), 0u) << "troff";
  for (const char* c : {"ferry topics alter", "ferry consume", "ferry dlq redrive", "EXIT STATUS"})
    EXPECT_NE(man.out.find(c), std::string::npos) << c;
  const auto page = dir_ / "ferry.1";
  { std::ofstream(page) << man.out; }
  auto rendered = run_command("MANWIDTH=100 man -l " + page.string() + " | cat", dir_ / "man.err");
  EXPECT_EQ(rendered.code, 0) << rendered.err;
  EXPECT_NE(rendered.out.find("--commit-interval"), std::string::npos) << rendered.out;
  auto ferryd_man = run_command(std::string(FERRY_FERRYD) + " --man", dir_ / "d.err");
  EXPECT_EQ(ferryd_man.code, 0);
  EXPECT_NE(ferryd_man.out.find("check\\-config"), std::string::npos) << ferryd_man.out;
}

// ferry keys generate: a pair only its owner can read, a public half, and
// never an overwritten key.
TEST_F(CliTest, KeysGenerateWritesAPairOnlyOnce) {
  const auto kdir = dir_ / "keys";
  std::filesystem::create_directories(kdir);
  auto made = ferry("-o json keys generate alice --dir " + kdir.string());
  ASSERT_EQ(made.code, 0) << made.err;
  const auto j = nlohmann::json::parse(made.out);
  std::string why;
  auto pair = ferry::protocol::read_key_file(kdir / "alice.key", why);
  ASSERT_TRUE(pair) << why;
  EXPECT_EQ(pair.value().public_key, j["public_key"]);
  auto pub = ferry::protocol::read_public_key((kdir / "alice.pub").string(), why);
  ASSERT_TRUE(pub) << why;
  EXPECT_EQ(pub.value(), j["public_key"]);
  EXPECT_EQ(std::filesystem::status(kdir / "alice.key").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_EQ(std::filesystem::file_size(kdir / "alice.pub") > 0, true);
  auto again = ferry("keys generate alice --dir " + kdir.string());
  EXPECT_EQ(again.code, 4);
  EXPECT_NE(again.err.find("never overwritten"), std::string::npos) << again.err;
  auto still = ferry::protocol::read_key_file(kdir / "alice.key", why);
  ASSERT_TRUE(still);
  EXPECT_EQ(still.value().secret_key, pair.value().secret_key) << "the old pair is intact";
  EXPECT_EQ(ferry("keys generate 'a b' --dir " + kdir.string()).code, 2);
  EXPECT_EQ(ferry("keys generate bob --dir " + (dir_ / "nope").string()).code, 4);
}

TEST_F(CliTest, FromTimeTakesDurationsAndEpochMilliseconds) {
  create_topic("t", 1);
  ASSERT_EQ(ferry("produce t", "a\nb\n").code, 0);
  auto recent = ferry("consume t --from-time 10m -e");
  ASSERT_EQ(recent.code, 0) << recent.err;
  EXPECT_EQ(recent.out, "a\nb\n");
  auto epoch = ferry("consume t --from-time 0 -e");
  ASSERT_EQ(epoch.code, 0) << epoch.err;
  EXPECT_EQ(epoch.out, "a\nb\n");
  auto future = ferry("consume t --from-time 99999999999999 -e");
  ASSERT_EQ(future.code, 0) << future.err;
  EXPECT_EQ(future.out, "");
}

// Lag that tells the truth: a partition the group never committed shows,
// with its lag counted from where the group would start (the log start).
TEST_F(CliTest, GroupLagCountsPartitionsWithoutACommit) {
  create_topic("t", 3);
  std::vector<std::string> part(3);
  for (int i = 0; i < 1000; ++i) part[static_cast<std::size_t>(i % 3)] += std::to_string(i) + "\n";
  for (int p = 0; p < 3; ++p)
    ASSERT_EQ(
        ferry("produce t --partition " + std::to_string(p), part[static_cast<std::size_t>(p)]).code,
        0);
  auto read = ferry("consume t --group g1 -n 400");
  ASSERT_EQ(read.code, 0) << read.err;
  auto d = ferry("-o json groups describe g1");
  ASSERT_EQ(d.code, 0) << d.err;
  const auto j = nlohmann::json::parse(d.out);
  ASSERT_EQ(j["partitions"].size(), 3u) << d.out;
  std::int64_t lag = 0;
  int without_commit = 0;
  for (const auto& p : j["partitions"]) {
    lag += p["lag"].get<std::int64_t>();
    if (p["current_offset"].is_null()) ++without_commit;
  }
  EXPECT_EQ(lag, 600) << d.out;
  EXPECT_GE(without_commit, 1) << "400 records cannot have come from all three partitions";
  auto table = ferry("groups describe g1");
  EXPECT_EQ(table.code, 0);
  EXPECT_NE(table.out.find(" - "), std::string::npos) << "CURRENT-OFFSET - where none\n"
                                                      << table.out;
}

TEST_F(CliTest, BenchPrintsOneJsonSummary) {
  auto b = ferry("-o json bench produce --records 2000 --size 64");
  ASSERT_EQ(b.code, 0);
  auto j = nlohmann::json::parse(b.out);
  EXPECT_EQ(j["records"], 2000);
  for (const char* k : {"records_per_sec", "mb_per_sec", "p50_ms", "p99_ms", "p999_ms"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_GT(j["records_per_sec"].get<double>(), 0);
  auto e = ferry("-o json bench e2e --records 200 --rate 1000");
  ASSERT_EQ(e.code, 0);
  EXPECT_EQ(nlohmann::json::parse(e.out)["records"], 200);
  auto list = ferry("-o json topics list");
  EXPECT_EQ(nlohmann::json::parse(list.out).size(), 0u) << "bench topics are removed afterwards";
}

// The groups a bench makes go with it (they would linger in groups list,
// top and /metrics); --keep keeps them.
TEST_F(CliTest, BenchLeavesNoGroupsBehind) {
  for (const char* mode : {"worker", "drain", "group"}) {
    auto b = ferry(std::string("-o json bench ") + mode + " --records 300 --size 32 --members 2");
    ASSERT_EQ(b.code, 0) << mode << ": " << b.err;
    auto groups = ferry("-o json groups list");
    ASSERT_EQ(groups.code, 0);
    EXPECT_EQ(nlohmann::json::parse(groups.out).size(), 0u) << mode << ": " << groups.out;
  }
  auto kept = ferry("-o json bench worker --records 100 --size 32 --keep");
  ASSERT_EQ(kept.code, 0) << kept.err;
  EXPECT_EQ(nlohmann::json::parse(ferry("-o json groups list").out).size(), 1u)
      << "--keep keeps the group (the negative control)";
}

// --- consumer groups ----------------------------------------------------------

TEST_F(CliTest, GroupsListAndDescribeShowLagInRecordsAndSeconds) {
  create_topic("orders", 2);
  // 10 records on partition 0, the first an hour old, one second apart.
  const std::int64_t first = now_ms() - 3'600'000;
  std::vector<std::int64_t> ts;
  for (int i = 0; i < 10; ++i) ts.push_back(first + i * 1000);
  produce("orders", 0, ts);
  produce("orders", 1, {now_ms(), now_ms()});
  commit("billing", "orders", 0, 4);  // K = 4: six records not consumed

  auto list = ferry("-o json groups list");
  ASSERT_EQ(list.code, 0) << list.err;
  auto groups = nlohmann::json::parse(list.out);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0]["group"], "billing");
  EXPECT_EQ(groups[0]["state"], "Empty");
  EXPECT_EQ(groups[0]["members"], 0);
  auto table = ferry("groups list");
  ASSERT_EQ(table.code, 0);
  EXPECT_EQ(table_row(table.out, "GROUP", "STATE"),
            (std::vector<std::string>{"GROUP", "STATE", "MEMBERS", "GENERATION"}));
  EXPECT_EQ(table_row(table.out, "billing", "Empty").size(), 4u) << table.out;

  // The age of record K at the time of the describe is at least this.
  const double min_age_s = static_cast<double>(now_ms() - ts[4]) / 1000.0;
  auto d = ferry("-o json groups describe billing");
  const double max_age_s = static_cast<double>(now_ms() - ts[4]) / 1000.0;
  ASSERT_EQ(d.code, 0) << d.err;
  auto j = nlohmann::json::parse(d.out);
  EXPECT_EQ(j["state"], "Empty");
  ASSERT_EQ(j["partitions"].size(), 2u) << "every partition of the group's topics";
  const auto& p1 = j["partitions"][1];
  EXPECT_EQ(p1["partition"], 1);
  EXPECT_TRUE(p1["current_offset"].is_null()) << "nothing committed";
  EXPECT_EQ(p1["lag"], 2) << "from the log start, where the group would begin";
  const auto& p0 = j["partitions"][0];
  EXPECT_EQ(p0["topic"], "orders");
  EXPECT_EQ(p0["partition"], 0);
  EXPECT_EQ(p0["current_offset"], 4);
  EXPECT_EQ(p0["log_end_offset"], 10);
  EXPECT_EQ(p0["lag"], 6);
  EXPECT_GE(p0["lag_seconds"].get<double>(), min_age_s - 0.001);
  EXPECT_LE(p0["lag_seconds"].get<double>(), max_age_s + 0.001);
  EXPECT_TRUE(p0["consumer_id"].is_null());

  auto t = ferry("groups describe billing");
  ASSERT_EQ(t.code, 0);
  auto row = table_row(t.out, "orders", "0");
  ASSERT_EQ(row.size(), 8u) << t.out;
  EXPECT_EQ(row[2], "4");
  EXPECT_EQ(row[3], "10");
  EXPECT_EQ(row[4], "6");
  EXPECT_GE(std::stol(row[5]), static_cast<long>(min_age_s)) << "LAG-SECONDS";
  EXPECT_LE(std::stol(row[5]), static_cast<long>(max_age_s) + 1);
  EXPECT_EQ(row[6], "-");
  EXPECT_EQ(row[7], "-");
  EXPECT_NE(t.err.find("no active members"), std::string::npos) << t.err;

  // Caught up: no lag, LAG-SECONDS 0; a partition committed at 0 of 2 shows up.
  commit("billing", "orders", 0, 10);
  commit("billing", "orders", 1, 0);
  auto caught_up = ferry("-o json groups describe billing");
  auto parts = nlohmann::json::parse(caught_up.out)["partitions"];
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0]["lag"], 0);
  EXPECT_EQ(parts[0]["lag_seconds"], 0.0);
  EXPECT_EQ(parts[1]["lag"], 2);
  EXPECT_GE(parts[1]["lag_seconds"].get<double>(), 0.0);

  auto state = ferry("-o json groups describe billing --state");
  ASSERT_EQ(state.code, 0);
  EXPECT_EQ(nlohmann::json::parse(state.out)["members"], 0);
  EXPECT_EQ(nlohmann::json::parse(state.out)["strategy"], "sticky");
  auto members = ferry("-o json groups describe billing --members");
  ASSERT_EQ(members.code, 0);
  EXPECT_EQ(nlohmann::json::parse(members.out)["members"].size(), 0u);
  EXPECT_EQ(ferry("groups describe billing --members --state").code, 2);

  auto unknown = ferry("groups describe nope");
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("unknown group"), std::string::npos) << unknown.err;
  EXPECT_NE(unknown.err.find("ferry groups list"), std::string::npos) << "says what to do next";
  EXPECT_EQ(ferry("groups describe 'bad name'").code, 1) << "invalid group name: refused";
}

TEST_F(CliTest, ResetOffsetsPlansChangeNothingAndExecuteApplies) {
  create_topic("t", 2);
  produce("t", 0, std::vector<std::int64_t>(10, now_ms()));

  auto plan = ferry("-o json groups reset-offsets replay --topic t:0 --to-offset 3");
  ASSERT_EQ(plan.code, 0) << plan.err;
  auto pj = nlohmann::json::parse(plan.out);
  EXPECT_EQ(pj["executed"], false);
  ASSERT_EQ(pj["partitions"].size(), 1u);
  EXPECT_TRUE(pj["partitions"][0]["current_offset"].is_null()) << "nothing committed";
  EXPECT_EQ(pj["partitions"][0]["new_offset"], 3);
  EXPECT_EQ(ferry("groups describe replay").code, 1) << "the plan created nothing";

  auto table = ferry("groups reset-offsets replay --topic t:0 --to-offset 3");
  EXPECT_EQ(table_row(table.out, "replay", "t"),
            (std::vector<std::string>{"replay", "t", "0", "-", "3"}));
  EXPECT_NE(table.out.find("--execute"), std::string::npos);

  auto run = ferry("-o json groups reset-offsets replay --topic t:0 --to-offset 3 --execute");
  ASSERT_EQ(run.code, 0) << run.err;
  auto rj = nlohmann::json::parse(run.out);
  EXPECT_EQ(rj["executed"], true);
  EXPECT_EQ(rj["partitions"][0]["status"], "ok");
  EXPECT_EQ(committed("replay", "t", 0), 3);
  EXPECT_EQ(committed("replay", "t", 1), std::nullopt) << "only the named partition";

  // Every partition of the topic; the table reports each.
  auto all = ferry("groups reset-offsets replay --topic t --to-latest --execute");
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_EQ(table_row(all.out, "replay", "t").size(), 6u) << all.out;  // ... NEW-OFFSET STATUS
  EXPECT_EQ(committed("replay", "t", 0), 10);
  EXPECT_EQ(committed("replay", "t", 1), 0);
  EXPECT_NE(all.out.find("reset 2 partition(s)"), std::string::npos) << all.out;

  EXPECT_EQ(ferry("groups reset-offsets replay --all-topics --to-earliest --execute").code, 0);
  EXPECT_EQ(committed("replay", "t", 0), 0);

  // Shift from the committed offset, and from the log start when nothing is.
  commit("replay", "t", 0, 8);
  auto shift = ferry("-o json groups reset-offsets fresh --topic t:0 --shift-by 2 --execute");
  ASSERT_EQ(shift.code, 0) << shift.err;
  EXPECT_EQ(by_partition(shift)[0]["new_offset"], 2);
  EXPECT_NE(by_partition(shift)[0]["note"].get<std::string>().find("nothing committed"),
            std::string::npos);
  auto back = ferry("-o json groups reset-offsets replay --all-topics --shift-by -3 --execute");
  ASSERT_EQ(back.code, 0) << back.err;
  EXPECT_EQ(by_partition(back)[0]["current_offset"], 8);
  EXPECT_EQ(by_partition(back)[0]["new_offset"], 5);
  EXPECT_EQ(committed("replay", "t", 0), 5);
}

TEST_F(CliTest, ResetOffsetsClampsToTheLogAndSaysSo) {
  // Small segments and 4 KiB retention: old segments go, the log start moves.
  create_topic("t", 1, /*retention_bytes=*/4096, /*segment_bytes=*/4096);
  produce("t", 0, std::vector<std::int64_t>(30, now_ms()), 1000);
  ferry::client::admin a(client_options());
  std::int64_t start = 0;
  for (int i = 0; i < 200 && start == 0; ++i) {
    std::this_thread::sleep_for(20ms);
    auto o = a.list_offsets("t", ferry::partition_id(0), ferry::client::offset_spec::earliest);
    ASSERT_TRUE(o);
    start = o.value()->value();
  }
  ASSERT_GT(start, 0) << "retention did not remove a segment";
  const std::string s = std::to_string(start);

  auto low = ferry("-o json groups reset-offsets g --topic t --to-offset 1");
  ASSERT_EQ(low.code, 0) << low.err;
  EXPECT_EQ(by_partition(low)[0]["new_offset"], start);
  EXPECT_EQ(by_partition(low)[0]["note"], "clamped to log start " + s);
  auto high = ferry("groups reset-offsets g --topic t --to-offset 999");
  ASSERT_EQ(high.code, 0);
  EXPECT_NE(high.out.find("clamped to log end 30"), std::string::npos) << high.out;
  EXPECT_EQ(table_row(high.out, "g", "t")[4], "30");

  commit("g", "t", 0, start + 2);
  auto under = ferry("-o json groups reset-offsets g --all-topics --shift-by -100 --execute");
  ASSERT_EQ(under.code, 0) << under.err;
  EXPECT_EQ(by_partition(under)[0]["new_offset"], start);
  EXPECT_EQ(by_partition(under)[0]["note"], "clamped to log start " + s);
  EXPECT_EQ(committed("g", "t", 0), start);
  auto over = ferry("-o json groups reset-offsets g --all-topics --shift-by=+100");
  EXPECT_EQ(by_partition(over)[0]["new_offset"], 30);
  EXPECT_EQ(by_partition(over)[0]["note"], "clamped to log end 30");
}

TEST_F(CliTest, ResetOffsetsByTimeUsesRecordTimestamps) {
  create_topic("t", 1);
  // 2026-01-01T00:00:00Z, then one record a minute.
  const std::int64_t base = 1'767'225'600'000;
  std::vector<std::int64_t> ts;
  for (int i = 0; i < 10; ++i) ts.push_back(base + i * 60'000);
  produce("t", 0, ts);
  auto at = [&](const std::string& when) {
    auto r = ferry("-o json groups reset-offsets g --topic t --to-datetime " + when);
    EXPECT_EQ(r.code, 0) << when << ": " << r.err;
    return by_partition(r)[0];
  };
  EXPECT_EQ(at("2026-01-01T00:03:00Z")["new_offset"], 3) << "a record exactly at the time";
  EXPECT_EQ(at("2026-01-01T00:03:00.001Z")["new_offset"], 4);
  EXPECT_EQ(at("2026-01-01T01:03:30+01:00")["new_offset"], 4) << "00:03:30Z";
  EXPECT_EQ(at("2026-01-01T01:03:30+0100")["new_offset"], 4);
  EXPECT_EQ(at("2026-01-01T00:05:00")["new_offset"], 5) << "no zone: UTC";
  EXPECT_EQ(at("2025-12-31")["new_offset"], 0);
  auto none = at("2026-01-01T00:09:00.001Z");
  EXPECT_EQ(none["new_offset"], 10) << "no record at or after: log end";
  EXPECT_NE(none["note"].get<std::string>().find("no record at or after"), std::string::npos);

  auto run = ferry("groups reset-offsets g --topic t --to-datetime 2026-01-01T00:07:00Z --execute");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(committed("g", "t", 0), 7);

  // --by-duration: now - D, against records 3h, 2h, 1h and 10 min old.
  create_topic("recent", 1);
  const std::int64_t now = now_ms();
  produce("recent", 0, {now - 3 * 3'600'000, now - 2 * 3'600'000, now - 3'600'000, now - 600'000});
  auto ago = [&](const std::string& d) {
    auto r = ferry("-o json groups reset-offsets g --topic recent --by-duration " + d);
    EXPECT_EQ(r.code, 0) << d << ": " << r.err;
    return by_partition(r)[0]["new_offset"].get<long>();
  };
  EXPECT_EQ(ago("1h30m"), 2);
  EXPECT_EQ(ago("PT2H30M"), 1);
  EXPECT_EQ(ago("1d"), 0);
  EXPECT_EQ(ago("P1D"), 0);
  EXPECT_EQ(ago("150m"), 1);
  EXPECT_EQ(ago("5m"), 4) << "newer than every record: log end";
  EXPECT_EQ(ferry("groups reset-offsets g --topic recent --by-duration 90m --execute").code, 0);
  EXPECT_EQ(committed("g", "recent", 0), 2);
}

TEST_F(CliTest, ResetOffsetsUsageErrors) {
  create_topic("t", 2);
  EXPECT_EQ(ferry("groups reset-offsets g --topic t").code, 2) << "no mode";
  EXPECT_EQ(ferry("groups reset-offsets g --topic t --to-earliest --to-latest").code, 2);
  EXPECT_EQ(ferry("groups reset-offsets g --to-earliest").code, 2) << "no partitions";
  EXPECT_EQ(ferry("groups reset-offsets g --topic t --all-topics --to-earliest").code, 2);
  EXPECT_EQ(ferry("groups reset-offsets g --topic t:x --to-earliest").code, 2);
  EXPECT_EQ(ferry("groups reset-offsets g --topic t --to-offset -1").code, 2);
  EXPECT_EQ(ferry("groups reset-offsets g --topic t --to-datetime yesterday").code, 2);
  EXPECT_EQ(ferry("groups reset-offsets g --topic t --to-datetime 2026-01-01T00:00:00+01:00x").code,
            2);
  EXPECT_EQ(ferry("groups reset-offsets g --topic t --by-duration 3 weeks").code, 2);
  for (const char* d : {"P1W", "P1M", "PT", ".h", "1.5.2h", "1h30", "-5m", "99999999999999999d"})
    EXPECT_EQ(ferry(std::string("groups reset-offsets g --topic t --by-duration=") + d).code, 2)
        << d;
  auto no_partition = ferry("groups reset-offsets g --topic t:0,5 --to-earliest");
  EXPECT_EQ(no_partition.code, 1);
  EXPECT_NE(no_partition.err.find("no partition 5"), std::string::npos) << no_partition.err;
  EXPECT_EQ(ferry("groups reset-offsets g --topic nope --to-earliest").code, 1);
  auto nothing = ferry("groups reset-offsets unknown --all-topics --to-earliest");
  EXPECT_EQ(nothing.code, 1) << "--all-topics of a group without offsets names nothing";
  EXPECT_NE(nothing.err.find("--topic"), std::string::npos) << nothing.err;
}

TEST_F(CliTest, ResetAndDeleteAreRefusedWhileTheGroupHasMembers) {
  create_topic("t", 2);
  produce("t", 0, {now_ms(), now_ms()});
  commit("busy", "t", 0, 1);

  ferry::client::consumer_options co;
  static_cast<ferry::client::client_options&>(co) = client_options();
  co.group_id = "busy";
  co.client_id = "cli-test";
  auto member = std::make_unique<ferry::client::consumer>(co);
  ASSERT_TRUE(member->subscribe({"t"}));
  for (int i = 0; i < 100 && member->member_id().empty(); ++i) (void)member->poll(50ms);
  ASSERT_FALSE(member->member_id().empty()) << "the consumer did not join";

  auto d = ferry("-o json groups describe busy");
  ASSERT_EQ(d.code, 0) << d.err;
  auto dj = nlohmann::json::parse(d.out);
  EXPECT_EQ(dj["members"], 1);
  ASSERT_EQ(dj["partitions"].size(), 2u) << "assigned partitions show up, committed or not";
  EXPECT_EQ(dj["partitions"][0]["consumer_id"], member->member_id());
  EXPECT_EQ(dj["partitions"][0]["host"], "127.0.0.1");
  EXPECT_TRUE(dj["partitions"][1]["current_offset"].is_null());
  auto m = ferry("-o json groups describe busy --members");
  auto mj = nlohmann::json::parse(m.out)["members"];
  ASSERT_EQ(mj.size(), 1u);
  EXPECT_EQ(mj[0]["client_id"], "cli-test");
  EXPECT_EQ(mj[0]["assignment"].size(), 2u);
  auto mt = ferry("groups describe busy --members");
  auto mrow = table_row(mt.out, member->member_id(), "-");  // no instance id: dynamic
  ASSERT_EQ(mrow.size(), 8u) << mt.out;                     // LAST-SEEN is two words: "0.1s ago"
  EXPECT_EQ(mrow[2], "cli-test");
  EXPECT_EQ(mrow[3], "127.0.0.1");
  EXPECT_EQ(mrow[4], "2");
  EXPECT_EQ(mrow[5], "t(0,1)");
  EXPECT_EQ(mrow[7], "ago");
  auto st = ferry("groups describe busy --state");
  EXPECT_EQ(table_row(st.out, "busy", "Stable").size(), 5u) << st.out;

  auto reset = ferry("groups reset-offsets busy --topic t --to-earliest");
  EXPECT_EQ(reset.code, 1) << "refused before planning";
  EXPECT_NE(reset.err.find("Stop the group's consumers first"), std::string::npos) << reset.err;
  EXPECT_EQ(reset.out, "");
  // The broker refuses too (a member may join after the CLI looked).
  ferry::client::admin a(client_options());
  auto direct =
      a.reset_offsets("busy", {{{"t", ferry::partition_id(0)}, ferry::offset(0), "", {}}});
  ASSERT_FALSE(direct);
  EXPECT_EQ(direct.error(), ferry::client::errc::group_not_empty);
  auto del = ferry("groups delete busy");
  EXPECT_EQ(del.code, 1);
  EXPECT_NE(del.err.find("consumers"), std::string::npos) << del.err;
  EXPECT_EQ(committed("busy", "t", 0), 1) << "nothing changed";

  ASSERT_TRUE(member->close());
  member.reset();
  EXPECT_EQ(ferry("groups reset-offsets busy --topic t:0 --to-earliest --execute").code, 0);
  EXPECT_EQ(committed("busy", "t", 0), 0);
  auto plan = ferry("groups delete busy");
  ASSERT_EQ(plan.code, 0) << plan.err;
  EXPECT_NE(plan.out.find("run again with --execute"), std::string::npos) << plan.out;
  EXPECT_EQ(committed("busy", "t", 0), 0) << "a plan changes nothing";
  auto gone = ferry("-o json groups delete busy --execute");
  ASSERT_EQ(gone.code, 0) << gone.err;
  EXPECT_EQ(nlohmann::json::parse(gone.out)["deleted"], true);
  EXPECT_EQ(ferry("groups describe busy").code, 1);
  EXPECT_EQ(nlohmann::json::parse(ferry("-o json groups list").out).size(), 0u);
  EXPECT_EQ(ferry("groups delete busy").code, 1) << "unknown group";
}

TEST_F(CliTest, ConsumeWithGroupCommitsWhatItPrinted) {
  create_topic("t", 1);
  ASSERT_EQ(ferry("produce t", "a\nb\nc\nd\ne\nf\ng\n").code, 0);
  auto first = ferry("consume t --group g -n 3");
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_EQ(first.out, "a\nb\nc\n") << "nothing committed: from the log start";
  EXPECT_EQ(committed("g", "t", 0), 3);
  auto rest = ferry("consume t --group g -e");
  ASSERT_EQ(rest.code, 0) << rest.err;
  EXPECT_EQ(rest.out, "d\ne\nf\ng\n") << "continues at the committed offset";
  EXPECT_EQ(committed("g", "t", 0), 7);
  auto none = ferry("consume t --group g -e");
  EXPECT_EQ(none.code, 0);
  EXPECT_EQ(none.out, "");

  // A reset replays; JSON output carries offsets.
  ASSERT_EQ(ferry("groups reset-offsets g --topic t --shift-by -2 --execute").code, 0);
  auto replay = ferry("-o json consume t --group g -e");
  auto recs = lines(replay.out);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0]["offset"], 5);
  EXPECT_EQ(recs[1]["value"], "g");

  // Stopped by SIGINT: what was printed is committed.
  ASSERT_EQ(ferry("produce t", "h\ni\n").code, 0);
  auto stopped = ferry(
      "--timeout-ms 3000 consume t --group g & pid=$!; sleep 2; kill -INT $pid; "
      "wait $pid; echo exit=$?; true");
  EXPECT_EQ(stopped.out, "h\ni\nexit=0\n") << stopped.err;
  EXPECT_EQ(committed("g", "t", 0), 9);

  EXPECT_EQ(ferry("consume t --group g --from-beginning").code, 2);
  EXPECT_EQ(ferry("consume t --group g --partition 0").code, 2);
  EXPECT_EQ(ferry("consume t --group g --partition 0 --offset 1").code, 2);
  EXPECT_EQ(ferry("consume t --group g --from-time 2026-01-01").code, 2);
}

// A consumer that is never stopped cleanly: periodic commits mean a kill -9
// repeats at most an interval; SIGHUP (a dropped ssh session) commits.
TEST_F(CliTest, ConsumeWithGroupCommitsPeriodicallyAndOnHangup) {
  create_topic("t", 1);
  ASSERT_EQ(ferry("produce t", "a\nb\nc\n").code, 0);
  // kill -9 well after the records were printed: only a periodic commit
  // can have stored them.
  auto killed = ferry(
      "--timeout-ms 3000 consume t --group g --commit-interval 200ms & pid=$!; sleep 2; "
      "kill -KILL $pid; wait $pid; true");
  EXPECT_EQ(killed.out, "a\nb\nc\n") << killed.err;
  EXPECT_EQ(committed("g", "t", 0), 3) << "committed within the interval, before the kill";

  // Another group: g waits out the killed member's session.
  ASSERT_EQ(ferry("produce t", "d\ne\n").code, 0);
  auto hungup = ferry(
      "--timeout-ms 3000 consume t --group h --commit-interval 1h & pid=$!; sleep 2; "
      "kill -HUP $pid; wait $pid; echo exit=$?; true");
  EXPECT_EQ(hungup.out, "a\nb\nc\nd\ne\nexit=0\n") << hungup.err;
  EXPECT_EQ(committed("h", "t", 0), 5) << "SIGHUP commits before exiting";

  EXPECT_EQ(ferry("consume t --group g --commit-interval 0s").code, 2);
  EXPECT_EQ(ferry("consume t --group g --commit-interval soon").code, 2);
}

// kcat-style -f, KEY<sep>VALUE, and base64 for bytes that are not text.
TEST_F(CliTest, ConsumeFormatsRecordsLikeKcat) {
  create_topic("t", 1);
  ASSERT_EQ(ferry("produce t --key-separator : --header a=1 --header b=2",
                  std::string("k1:hello\nk2:bin\xff\x01\n"))
                .code,
            0);
  auto f = ferry("consume t --from-beginning -e -f '%t/%p/%o %k(%K)=%s(%S) [%h] 100%%\\n'");
  ASSERT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(f.out.substr(0, f.out.find('\n')), "t/0/0 k1(2)=hello(5) [a=1,b=2] 100%") << f.out;
  auto ts = ferry("consume t --from-beginning -n 1 -f '%T'");
  EXPECT_GT(std::stoll(ts.out), now_ms() - 600'000) << ts.out;
  auto ks = ferry("consume t --from-beginning -e --key-separator :");
  EXPECT_EQ(ks.out.substr(0, ks.out.find('\n')), "k1:hello") << ks.out;

  auto b64 = lines(ferry("-o json consume t --from-beginning -e --encoding base64").out);
  ASSERT_EQ(b64.size(), 2u);
  EXPECT_EQ(b64[0]["key"], "azE=");
  EXPECT_EQ(b64[0]["value"], "aGVsbG8=");
  EXPECT_EQ(b64[0]["headers"]["a"], "MQ==");
  EXPECT_EQ(b64[1]["value"], "Ymlu/wE=") << "bytes kept exactly";
  auto text = lines(ferry("-o json consume t --from-beginning -e").out);
  EXPECT_NE(text[1]["value"].get<std::string>().find("\xef\xbf\xbd"), std::string::npos)
      << "text encoding replaces invalid UTF-8";

  EXPECT_EQ(ferry("consume t -e -f '%x'").code, 2) << "unknown field";
  EXPECT_EQ(ferry("consume t -e -f '%'").code, 2);
  EXPECT_EQ(ferry("-o json consume t -e -f '%s'").code, 2);
  EXPECT_EQ(ferry("consume t -e --encoding base64").code, 2) << "applies to -o json";
  EXPECT_EQ(ferry("consume t -e --encoding hex").code, 2);
}

TEST_F(CliTest, ConsumeWithGroupCommitsWhatItPrintedWhenARebalanceTakesPartitions) {
  create_topic("t", 2);
  produce("t", 0, {now_ms(), now_ms(), now_ms()});
  produce("t", 1, {now_ms(), now_ms(), now_ms()});
  // `ferry consume --group s` owns both partitions and prints all six
  // records; then a second member joins and takes one partition away.
  auto cli = std::async(std::launch::async, [&] {
    return ferry(
        "--timeout-ms 3000 consume t --group s & pid=$!; sleep 6; kill -INT $pid; wait $pid; "
        "echo exit=$?; true");
  });
  std::this_thread::sleep_for(1500ms);
  ferry::client::consumer_options co;
  static_cast<ferry::client::client_options&>(co) = client_options();
  co.group_id = "s";
  ferry::client::consumer other(co);
  ASSERT_TRUE(other.subscribe({"t"}));
  std::vector<ferry::client::consumer_record> got;
  for (int i = 0; i < 80 && other.assignment().empty(); ++i) {
    auto r = other.poll(50ms);
    if (r) got.insert(got.end(), r.value().begin(), r.value().end());
  }
  ASSERT_EQ(other.assignment().size(), 1u) << "the new member got one of the two partitions";
  // Committed in on_revoked, before `ferry consume` exits.
  EXPECT_EQ(committed("s", "t", 0), 3);
  EXPECT_EQ(committed("s", "t", 1), 3);
  for (int i = 0; i < 10; ++i) {
    auto r = other.poll(50ms);
    if (r) got.insert(got.end(), r.value().begin(), r.value().end());
  }
  EXPECT_TRUE(got.empty()) << got.size() << " record(s) delivered twice";
  auto out = cli.get();
  EXPECT_EQ(std::count(out.out.begin(), out.out.end(), '\n'), 7) << out.out;  // 6 records, exit=
  EXPECT_NE(out.out.find("exit=0"), std::string::npos) << out.out;
  ASSERT_TRUE(other.close());
}

}  // namespace
