// `ferry schema register | list | show | mode | check | enforce` and
// `ferry consume --decode` against a real ferryd, run as a user would run
// them, with the sample order contracts (schemas/samples/orders/v1 and v2)
// and two schemas written here: one incompatible with v1 (total_cents an
// int32) and one that only FORWARD refuses (a new Currency value).
//
// FERRY_TEST_ECHO=1 prints every command with its output.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.h"
#include "ferry/client/admin.h"
#include "ferry/client/producer.h"
#include "ferry/client/schema_cache.h"
#include "ferry/schemas/orders/v1/order_placed_generated.h"
#include "ferryd_process.h"
#include "inproc_broker.h"
#include "order_schema_variants.h"
#include "read_topic.h"

namespace {

using namespace std::chrono_literals;
namespace orders = ferry::samples::orders;
using ferry::testing::run_command;
using ferry::testing::run_result;
using ferry::testing::table_row;

const std::filesystem::path kV1 = FERRY_ORDERS_V1_DIR "/order_placed.fbs";
const std::filesystem::path kV2 = FERRY_ORDERS_V2_DIR "/order_placed.fbs";

constexpr const char* kIncompatible = ferry::testing::kOrderPlacedInt32Total;
constexpr const char* kNewCurrency = ferry::testing::kOrderPlacedWithChf;

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A TCP endpoint on the loopback nothing listens on (a port the kernel
// handed out and that was closed again).
std::string closed_endpoint() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return "tcp://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
}

std::vector<std::string> lines_of(const std::string& out) {
  std::vector<std::string> v;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) v.push_back(line);
  return v;
}

class SchemaCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ferry::testing::make_temp_dir("ferry-schema-cli");
    ASSERT_FALSE(dir_.empty());
    std::filesystem::create_directories(dir_ / "data");
    ferryd_ = ferry::testing::start_ferryd(FERRY_FERRYD, dir_ / "data");
    ASSERT_FALSE(ferryd_.endpoint.empty());
    std::ofstream(dir_ / "incompatible.fbs") << kIncompatible;
    std::ofstream(dir_ / "new_currency.fbs") << kNewCurrency;
  }
  void TearDown() override {
    if (ferryd_.pid > 0) {
      ::kill(ferryd_.pid, SIGTERM);
      int status = 0;
      ::waitpid(ferryd_.pid, &status, 0);
    }
    std::filesystem::remove_all(dir_);
  }

  // Runs `ferry ARGS` against `broker` (default: the ferryd); stdin from `input`.
  run_result ferry(const std::string& args, const std::string& input = "",
                   const std::string& broker = "") {
    const auto in = dir_ / "stdin.txt";
    std::ofstream(in) << input;
    auto r = run_command(std::string(FERRY_CLI) + " --broker " +
                             (broker.empty() ? ferryd_.endpoint : broker) + " " + args + " < " +
                             in.string(),
                         dir_ / "stderr.txt");
    if (std::getenv("FERRY_TEST_ECHO"))  // NOLINT(concurrency-mt-unsafe)
      std::cout << "$ ferry " << args << "\n" << r.out << r.err << "(exit " << r.code << ")\n\n";
    return r;
  }
  static nlohmann::json json(const std::string& text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << text;
    return j;
  }

  ferry::client::client_options client_options() const {
    return ferry::testing::base_client_options(ferryd_.endpoint);
  }
  void create_topic(const std::string& topic) {
    ferry::client::admin a(client_options());
    auto r = a.create_topic(topic, {.partitions = 1});
    ASSERT_TRUE(r) << a.last_error_message();
  }

  std::filesystem::path incompatible() const { return dir_ / "incompatible.fbs"; }
  std::filesystem::path new_currency() const { return dir_ / "new_currency.fbs"; }

  std::filesystem::path dir_;
  ferry::testing::ferryd_process ferryd_;
};

TEST_F(SchemaCliTest, RegisterCheckListShowAndMode) {
  auto r = ferry("schema register orders-value " + kV1.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("registered orders-value version 1 (schema id 1, "
                       "ferry.samples.orders.OrderPlaced; checked BACKWARD)"),
            std::string::npos)
      << r.out;
  r = ferry("schema register orders-value " + kV1.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("already registered: orders-value version 1 (schema id 1)"),
            std::string::npos)
      << r.out;

  // check: v2 passes, the int32 total does not (with the violation listed).
  r = ferry("schema check orders-value " + kV2.string());
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("compatible with subject orders-value (BACKWARD)"), std::string::npos)
      << r.out;
  r = ferry("schema check orders-value " + incompatible().string());
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("NOT compatible"), std::string::npos) << r.out;
  auto row = table_row(r.out, {"error", "ferry.samples.orders.OrderPlaced.total_cents"});
  ASSERT_FALSE(row.empty()) << r.out;
  EXPECT_EQ(row.back(), "field_type_changed") << r.out;

  // A misspelt subject is an error (exit 1) with what to do next, not a pass.
  r = ferry("schema check order-value " + kV2.string());
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("nothing to check against"), std::string::npos) << r.err;

  // register refuses the incompatible file and registers nothing.
  r = ferry("schema register orders-value " + incompatible().string());
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("refused"), std::string::npos) << r.err;
  EXPECT_FALSE(table_row(r.out, {"error", "ferry.samples.orders.OrderPlaced.total_cents"}).empty())
      << r.out;
  r = ferry("schema register orders-value " + kV2.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("registered orders-value version 2 (schema id 2,"), std::string::npos)
      << r.out;

  r = ferry("schema list");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(table_row(r.out, {"orders-value"}),
            (std::vector<std::string>{"orders-value", "BACKWARD", "(default)", "2", "2", "2",
                                      "ferry.samples.orders.OrderPlaced"}))
      << r.out;
  r = ferry("-o json schema list");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = json(r.out);
  EXPECT_EQ(j["default_mode"], "BACKWARD");
  ASSERT_EQ(j["subjects"].size(), 1u) << r.out;
  const auto& s = j["subjects"][0];
  EXPECT_EQ(s["subject"], "orders-value");
  EXPECT_EQ(s["mode"], "DEFAULT");
  EXPECT_EQ(s["effective_mode"], "BACKWARD");
  ASSERT_EQ(s["versions"].size(), 2u) << r.out;
  EXPECT_EQ(s["versions"][0]["version"], 1);
  EXPECT_EQ(s["versions"][0]["id"], 1);
  EXPECT_EQ(s["versions"][1]["version"], 2);
  EXPECT_EQ(s["versions"][1]["id"], 2);
  EXPECT_EQ(s["versions"][1]["root_type"], "ferry.samples.orders.OrderPlaced");

  // show prints the source as registered.
  r = ferry("schema show orders-value --version 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("subject orders-value version 1: schema id 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(read_file(kV1)), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("shipping_address"), std::string::npos) << r.out;
  r = ferry("schema show --id 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("subject orders-value version 2: schema id 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(read_file(kV2)), std::string::npos) << r.out;
  r = ferry("schema show --id 3");
  EXPECT_NE(r.code, 0) << r.out;

  // mode: the broker's default, then the subject's own.
  r = ferry("schema mode orders-value");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("orders-value: BACKWARD (the broker's default)"), std::string::npos)
      << r.out;
  r = ferry("schema mode orders-value FULL");
  ASSERT_EQ(r.code, 0) << r.err;
  r = ferry("schema mode orders-value");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "orders-value: FULL\n");
  r = ferry("-o json schema mode orders-value");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json(r.out)["mode"], "FULL") << r.out;
  r = ferry("schema mode orders-value SIDEWAYS");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
}

TEST_F(SchemaCliTest, CheckAgainstAFileNeedsNoBroker) {
  const auto nowhere = closed_endpoint();
  // Nothing answers there: commands that need a broker fail.
  auto r = ferry("--timeout-ms 300 schema list", "", nowhere);
  ASSERT_NE(r.code, 0) << r.out;

  r = ferry("--timeout-ms 300 schema check " + kV2.string() + " --against " + kV1.string(), "",
            nowhere);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("compatible with " + kV1.string() + " (BACKWARD)"), std::string::npos)
      << r.out;
  r = ferry(
      "--timeout-ms 300 schema check " + incompatible().string() + " --against " + kV1.string(), "",
      nowhere);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("NOT compatible with " + kV1.string()), std::string::npos) << r.out;
  auto row = table_row(r.out, {"error", "ferry.samples.orders.OrderPlaced.total_cents"});
  ASSERT_FALSE(row.empty()) << r.out;
  EXPECT_EQ(row.back(), "field_type_changed");

  // A new enum value: old readers cannot read it (FORWARD), new ones can.
  r = ferry(
      "--timeout-ms 300 schema check " + new_currency().string() + " --against " + kV1.string(), "",
      nowhere);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  r = ferry("--timeout-ms 300 schema check " + new_currency().string() + " --against " +
                kV1.string() + " --mode FORWARD",
            "", nowhere);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("under FORWARD"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("enum_value_added"), std::string::npos) << r.out;
  r = ferry("--timeout-ms 300 -o json schema check " + new_currency().string() + " --against " +
                kV1.string() + " --mode FORWARD",
            "", nowhere);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  auto j = json(r.out);
  EXPECT_EQ(j["compatible"], false);
  EXPECT_EQ(j["mode"], "FORWARD");
  EXPECT_GE(j["violations"].get<int>(), 1);
}

TEST_F(SchemaCliTest, EnforcedTopicRefusesRecordsWithoutASchemaIdUntilTurnedOff) {
  create_topic("orders");
  auto r = ferry("schema register orders-value " + kV1.string());
  ASSERT_EQ(r.code, 0) << r.err;
  r = ferry("schema enforce orders");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("topic orders: accepts only records whose ferry.schema-id header names a "
                       "version of orders-value"),
            std::string::npos)
      << r.out;

  r = ferry("--timeout-ms 2000 produce orders", "a plain line\n");
  EXPECT_NE(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("ferry.schema-id"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ferry schema enforce TOPIC --off"), std::string::npos) << r.err;
  EXPECT_TRUE(ferry::testing::read_topic(client_options(), "orders").empty());

  r = ferry("schema enforce orders --off");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("topic orders: schema validation off"), std::string::npos) << r.out;
  r = ferry("--timeout-ms 2000 produce orders", "a plain line\n");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  auto recs = ferry::testing::read_topic(client_options(), "orders");
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].value, "a plain line");
}

TEST_F(SchemaCliTest, ConsumeDecodePrintsTypedPayloadsAsJson) {
  create_topic("orders");
  auto r = ferry("schema register orders-value " + kV1.string());
  ASSERT_EQ(r.code, 0) << r.err;
  {
    ferry::client::schema_cache schemas(client_options());
    auto id = schemas.by_id(1);
    ASSERT_TRUE(id) << schemas.last_error_message();
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<orders::LineItem>> items{
        orders::CreateLineItemDirect(fbb, "sku-1", 2, 1250)};
    fbb.Finish(orders::CreateOrderPlacedDirect(fbb, "o-1", "cust-7", orders::Currency::USD, 2500,
                                               &items, 1700000000000),
               orders::OrderPlacedIdentifier());
    ferry::client::producer_options po;
    static_cast<ferry::client::client_options&>(po) = client_options();
    ferry::client::producer p(po);
    ferry::client::producer_record typed;
    typed.topic = "orders";
    typed.key = "o-1";
    typed.value.emplace(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
    ferry::client::set_schema_id(typed, id.value()->id);
    ASSERT_TRUE(p.send(std::move(typed), {}));
    ferry::client::producer_record plain;
    plain.topic = "orders";
    plain.value = "not typed";
    ASSERT_TRUE(p.send(std::move(plain), {}));
    ASSERT_TRUE(p.flush(10s));
  }

  r = ferry("consume orders --decode -e --from-beginning");
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  auto j = json(lines[0]);
  ASSERT_TRUE(j.is_object()) << lines[0];
  EXPECT_EQ(j["order_id"], "o-1");
  EXPECT_EQ(j["customer_id"], "cust-7");
  EXPECT_EQ(j["currency"], "USD");
  EXPECT_EQ(j["total_cents"], 2500);
  EXPECT_EQ(j["placed_at_ms"], 1700000000000);
  ASSERT_EQ(j["items"].size(), 1u) << lines[0];
  EXPECT_EQ(j["items"][0]["sku"], "sku-1");
  EXPECT_EQ(j["items"][0]["quantity"], 2);
  EXPECT_EQ(lines[1], "not typed");
  EXPECT_NE(r.err.find("warning: printing a value undecoded: no ferry.schema-id header"),
            std::string::npos)
      << r.err;

  r = ferry("-o json consume orders --decode -e --from-beginning");
  ASSERT_EQ(r.code, 0) << r.err;
  lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  auto first = json(lines[0]);
  ASSERT_TRUE(first["value"].is_object()) << lines[0];
  EXPECT_EQ(first["value"]["order_id"], "o-1");
  EXPECT_EQ(first["value"]["total_cents"], 2500);
  EXPECT_EQ(first["headers"]["ferry.schema-id"], "1");
  EXPECT_FALSE(first.contains("decode_error")) << lines[0];
  auto second = json(lines[1]);
  EXPECT_EQ(second["value"], "not typed");
  EXPECT_EQ(second["decode_error"], "no ferry.schema-id header");

  // Without --decode the payload is printed as it is.
  r = ferry("-o json consume orders -e --from-beginning");
  ASSERT_EQ(r.code, 0) << r.err;
  lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_TRUE(json(lines[0])["value"].is_string()) << lines[0];
}

TEST_F(SchemaCliTest, ConsumeDecodeExplainsWhatItCannotDecode) {
  create_topic("orders");
  auto r = ferry("schema register orders-value " + kV1.string());
  ASSERT_EQ(r.code, 0) << r.err;
  // A schema with a double: NaN has no JSON form.
  std::ofstream(dir_ / "reading.fbs") << "namespace t;\ntable Reading { x: double; }\n"
                                         "root_type Reading;\n";
  r = ferry("schema register readings-value " + (dir_ / "reading.fbs").string());
  ASSERT_EQ(r.code, 0) << r.err;
  {
    ferry::client::producer_options po;
    static_cast<ferry::client::client_options&>(po) = client_options();
    ferry::client::producer p(po);
    auto send = [&](std::string value, std::int64_t id) {
      ferry::client::producer_record rec;
      rec.topic = "orders";
      rec.value = std::move(value);
      ferry::client::set_schema_id(rec, id);
      ASSERT_TRUE(p.send(std::move(rec), {}));
    };
    send("garbage, not an order", 1);
    send("unregistered", 99);
    flatbuffers::FlatBufferBuilder fbb;
    const auto start = fbb.StartTable();
    fbb.AddElement<double>(4, std::numeric_limits<double>::quiet_NaN(), 0.0);
    fbb.Finish(flatbuffers::Offset<flatbuffers::Table>(fbb.EndTable(start)));
    send(std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()), 2);
    ASSERT_TRUE(p.flush(10s));
  }
  r = ferry("consume orders --decode -e --from-beginning");
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_GE(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines[0], "garbage, not an order");
  EXPECT_EQ(lines[1], "unregistered");
  EXPECT_NE(r.err.find("warning: printing a value undecoded: schema id 1 "
                       "(ferry.samples.orders.OrderPlaced)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("warning: printing a value undecoded: schema id 99: not registered"),
            std::string::npos)
      << r.err;

  // -o json: one JSON document per line whatever the payload.
  r = ferry("-o json consume orders --decode -e --from-beginning");
  ASSERT_EQ(r.code, 0) << r.err;
  lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  auto first = json(lines[0]);
  EXPECT_EQ(first["value"], "garbage, not an order");
  EXPECT_NE(first["decode_error"].get<std::string>().find("schema id 1"), std::string::npos);
  EXPECT_EQ(json(lines[1])["decode_error"], "schema id 99: not registered");
  // NaN has no JSON form: the value stays undecoded instead of breaking the line.
  auto nan = json(lines[2]);
  EXPECT_TRUE(nan["value"].is_string()) << lines[2];
  EXPECT_NE(nan["decode_error"].get<std::string>().find("not valid JSON"), std::string::npos)
      << lines[2];
}

}  // namespace
