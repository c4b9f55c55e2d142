// SASL/SCRAM-SHA-256 and ACLs on ferryd's Kafka listener
// (docs/security.md#kafka-clients), with clients Ferry did not write: kcat
// and librdkafka (through Ferry's kafka:// client). Each refusal has its
// negative control: the same client with the right password, or with a rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "ferry/client/admin.h"
#include "ferry/client/errc.h"
#include "ferry/protocol/curve.h"
#include "ferry/protocol/scram.h"
#include "kafka_fixture.h"
#include "metric_at.h"

namespace {

using namespace std::chrono_literals;
using ferry::protocol::acl_op;
using ferry::protocol::acl_pattern;
using ferry::protocol::acl_resource;

class KafkaSasl : public ferry::testing::KafkaBroker {
 protected:
  void SetUp() override {
    dir_ = ferry::testing::make_temp_dir("ferry-kafka-sasl");
    for (const char* name : {"server", "root"}) {
      auto k = ferry::protocol::generate_curve_keys();
      ASSERT_TRUE(k);
      std::string why;
      ASSERT_TRUE(ferry::protocol::write_key_files(dir_, name, k.value(), why)) << why;
      keys_[name] = k.value().public_key;
    }
    write_users({{"app", "s3cret"}, {"other", "other-pw"}});
    env_ = {{"FERRY_SECURITY_ENABLED", "true"},
            {"FERRY_SECURITY_SERVER_KEY_FILE", (dir_ / "server.key").string()},
            {"FERRY_SECURITY_USERS_FILE", (dir_ / "users.toml").string()},
            {"FERRY_SECURITY_AUDIT_FILE", (dir_ / "audit.log").string()}};
    start_ferryd("127.0.0.1:0");
    root_ = std::make_unique<ferry::client::admin>(root_options());
    ASSERT_TRUE(root_->create_topic("orders", {.partitions = 1})) << root_->last_error_message();
  }
  void TearDown() override {
    root_.reset();
    KafkaBroker::TearDown();
  }
  // The users file: root (CURVE, super user) and SCRAM users {name, password}.
  // `extra`: more lines for a user's table (its quotas).
  void write_users(const std::vector<std::pair<std::string, std::string>>& scram,
                   const std::map<std::string, std::string>& extra = {}) {
    std::string text = "[users.root]\npublic_key = \"" + keys_["root"] + "\"\nsuper_user = true\n";
    for (const auto& [name, password] : scram) {
      text +=
          "[users." + name + "]\nscram_sha256 = \"" +
          ferry::protocol::scram::format(ferry::protocol::scram::make_credential(password, 4096)) +
          "\"\n";
      if (auto it = extra.find(name); it != extra.end()) text += it->second + "\n";
    }
    std::ofstream(dir_ / "users.tmp") << text;
    std::filesystem::rename(dir_ / "users.tmp", dir_ / "users.toml");
  }
  ferry::client::client_options root_options() {
    auto o = ferry::testing::base_client_options(native_);
    o.key_file = (dir_ / "root.key").string();
    o.server_key = (dir_ / "server.pub").string();
    return o;
  }
  // Ferry's kafka:// client (librdkafka) as the SCRAM user app.
  ferry::client::client_options app_over_kafka() {
    auto o = ferry::testing::base_client_options("kafka://" + kafka_);
    o.kafka = {{"security.protocol", "SASL_PLAINTEXT"},
               {"sasl.mechanisms", "SCRAM-SHA-256"},
               {"sasl.username", "app"},
               {"sasl.password", "s3cret"}};
    return o;
  }
  std::string sasl(const std::string& user, const std::string& password) {
    return "-X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=SCRAM-SHA-256 -X "
           "sasl.username=" +
           user + " -X sasl.password=" + password + " ";
  }
  void allow(acl_resource r, const std::string& name, std::initializer_list<acl_op> ops,
             const std::string& who = "app") {
    std::uint16_t bits = 0;
    for (auto o : ops) bits = static_cast<std::uint16_t>(bits | static_cast<std::uint16_t>(o));
    ASSERT_TRUE(root_->add_acls({{who, r, acl_pattern::literal, name, bits, false}}))
        << root_->last_error_message();
  }
  double metric(const std::string& name, const std::map<std::string, std::string>& labels) {
    return ferry::testing::metric_at(metrics_, name, labels);
  }

  std::map<std::string, std::string> keys_;
  std::unique_ptr<ferry::client::admin> root_;
};

TEST_F(KafkaSasl, KcatAuthenticatesWithScramAndIsRefusedWithAWrongPassword) {
  allow(acl_resource::topic, "orders", {acl_op::write, acl_op::read});
  auto wrong = kcat(sasl("app", "guess") + "-P -t orders", "x\\n");
  EXPECT_NE(wrong.code, 0);
  EXPECT_NE(wrong.err.find("Authentication failed"), std::string::npos) << wrong.err;
  auto unknown = kcat(sasl("nobody", "s3cret") + "-P -t orders", "x\\n");
  EXPECT_NE(unknown.code, 0) << "an unknown user fails like a wrong password";
  auto plain = kcat("-L -J -m 5");
  EXPECT_NE(plain.code, 0) << "no SASL: nothing is served: " << plain.out;
  EXPECT_GE(metric("ferry_broker_authentication_failures_total", {{"reason", "sasl"}}), 3);

  // The negative control: the right password.
  auto ok = kcat(sasl("app", "s3cret") + "-P -t orders -K:", "k1:paid\\nk2:shipped\\n");
  ASSERT_EQ(ok.code, 0) << ok.err;
  auto got = kcat(sasl("app", "s3cret") + "-C -t orders -e -o beginning -f '%k=%s\\n'");
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_EQ(got.out, "k1=paid\nk2=shipped\n");
}

TEST_F(KafkaSasl, AclsHoldOnTheKafkaListener) {
  auto denied = kcat(sasl("app", "s3cret") + "-P -t orders", "x\\n");
  EXPECT_NE(denied.err.find("Topic authorization failed"), std::string::npos)
      << denied.code << " " << denied.err;
  EXPECT_GE(metric("ferry_broker_authorization_failures_total",
                   {{"resource", "topic"}, {"operation", "describe"}}),
            1)
      << "refused at the metadata the producer asks for first";
  allow(acl_resource::topic, "orders", {acl_op::describe});
  auto read_only = kcat(sasl("app", "s3cret") + "-P -t orders", "x\\n");
  EXPECT_NE(read_only.err.find("Topic authorization failed"), std::string::npos) << read_only.err;
  EXPECT_GE(metric("ferry_broker_authorization_failures_total",
                   {{"resource", "topic"}, {"operation", "write"}}),
            1);
  allow(acl_resource::topic, "orders", {acl_op::write, acl_op::read});
  ASSERT_EQ(kcat(sasl("app", "s3cret") + "-P -t orders", "x\\n").code, 0) << "allowed now";
  // A group consumer needs read on the group too.
  auto no_group = kcat(sasl("app", "s3cret") + "-C -G billing orders -e -o beginning -c 1");
  EXPECT_NE(no_group.code, 0);
  EXPECT_NE(no_group.err.find("authorization"), std::string::npos) << no_group.err;
  allow(acl_resource::group, "billing", {acl_op::read});
  auto grouped = kcat(sasl("app", "s3cret") + "-C -G billing orders -e -o beginning -c 1");
  EXPECT_EQ(grouped.code, 0) << grouped.err;
  EXPECT_EQ(grouped.out, "x\n");
  // Metadata shows only what the user may describe; "other" sees nothing.
  ASSERT_TRUE(root_->create_topic("payments", {.partitions = 1}));
  auto meta = kcat(sasl("app", "s3cret") + "-L -J");
  ASSERT_EQ(meta.code, 0) << meta.err;
  EXPECT_NE(meta.out.find("\"orders\""), std::string::npos) << meta.out;
  EXPECT_EQ(meta.out.find("\"payments\""), std::string::npos) << meta.out;
  auto theirs = kcat(sasl("other", "other-pw") + "-L -J");
  ASSERT_EQ(theirs.code, 0) << theirs.err;
  EXPECT_EQ(theirs.out.find("\"orders\""), std::string::npos) << theirs.out;
}

// Ferry's own admin and CLI over kafka:// (librdkafka) with SASL properties.
TEST_F(KafkaSasl, FerrysKafkaClientAuthenticatesAndAdminActionsAreAudited) {
  ASSERT_TRUE(root_->add_acls(
      {{"app", acl_resource::topic, acl_pattern::prefix, "app-",
        static_cast<std::uint16_t>(acl_op::create) | static_cast<std::uint16_t>(acl_op::describe),
        false}}));
  ferry::client::admin a(app_over_kafka());
  ASSERT_TRUE(a.create_topic("app-events", {.partitions = 2})) << a.last_error_message();
  auto refused = a.create_topic("billing-events", {.partitions = 1});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), ferry::client::errc::not_authorized) << refused.error().message();

  std::ifstream in(dir_ / "audit.log");
  std::string line, all;
  while (std::getline(in, line)) all += line + "\n";
  EXPECT_NE(all.find(R"("action":"topic.create")"), std::string::npos) << all;
  EXPECT_NE(all.find(R"("listener":"kafka")"), std::string::npos) << all;
  EXPECT_NE(all.find(R"("principal":"app")"), std::string::npos) << all;
  EXPECT_NE(all.find(R"("error":"NotAuthorized")"), std::string::npos) << all;
}

// Reads and admin actions are refused with Kafka's errors until a rule
// allows them: fetch (read), delete and alter a topic, a group's offsets.
TEST_F(KafkaSasl, FetchAndAdminActionsNeedTheirOwnOperations) {
  ASSERT_TRUE(root_->add_acls({{"app", acl_resource::topic, acl_pattern::literal, "orders",
                                static_cast<std::uint16_t>(acl_op::describe), false}}));
  auto fetch = kcat(sasl("app", "s3cret") + "-C -t orders -p 0 -o beginning -e");
  EXPECT_NE(fetch.err.find("Topic authorization failed"), std::string::npos)
      << fetch.code << " " << fetch.err;

  ferry::client::admin a(app_over_kafka());
  EXPECT_TRUE(a.describe_topic("orders")) << "describe is allowed: " << a.last_error_message();
  auto del = a.delete_topic("orders");
  ASSERT_FALSE(del);
  EXPECT_EQ(del.error(), ferry::client::errc::not_authorized) << del.error().message();
  auto alt = a.alter_topic("orders", {.partitions = 2});
  ASSERT_FALSE(alt);
  EXPECT_EQ(alt.error(), ferry::client::errc::not_authorized) << alt.error().message();
  EXPECT_EQ(root_->describe_topic("orders").value().config.partitions, 1) << "nothing changed";

  // The negative control: with the rules, the same calls go through.
  allow(acl_resource::topic, "orders", {acl_op::read, acl_op::alter, acl_op::remove});
  auto fetched = kcat(sasl("app", "s3cret") + "-C -t orders -p 0 -o beginning -e");
  EXPECT_EQ(fetched.code, 0) << fetched.err;
  EXPECT_TRUE(a.alter_topic("orders", {.partitions = 2})) << a.last_error_message();
  EXPECT_TRUE(a.delete_topic("orders")) << a.last_error_message();
}

// SASL/PLAIN sends the password as it is: refused on a listener without
// TLS, where SCRAM-SHA-256 with the same password is served.
TEST_F(KafkaSasl, PlainIsRefusedWithoutTls) {
  allow(acl_resource::topic, "orders", {acl_op::describe});
  auto plain = kcat(
      "-X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN -X sasl.username=app -X "
      "sasl.password=s3cret -L -J -m 5");
  EXPECT_NE(plain.code, 0) << plain.out;
  std::ifstream log(dir_ / "ferryd.err");
  const std::string text((std::istreambuf_iterator<char>(log)), {});
  EXPECT_NE(text.find("PLAIN sends the password as it is and is served only over TLS"),
            std::string::npos)
      << text;
  auto scram = kcat(sasl("app", "s3cret") + "-L -J");
  EXPECT_EQ(scram.code, 0) << scram.err;
}

// A user's own quotas (the users file, read again without a restart) slow
// that user's Kafka clients: throttle_time_ms in the answers and a muted
// connection, with nothing lost. Another user without a quota is not held.
TEST_F(KafkaSasl, AUsersQuotaSlowsItsKafkaClientsAndNoOneElses) {
  allow(acl_resource::topic, "orders", {acl_op::write, acl_op::read});
  allow(acl_resource::topic, "orders", {acl_op::write, acl_op::read}, "other");
  write_users({{"app", "s3cret"}, {"other", "other-pw"}},
              {{"app", "produce_bytes_per_second = 65536\nfetch_bytes_per_second = 65536"}});
  std::this_thread::sleep_for(1500ms);  // the users file is looked at once a second
  {
    std::ofstream lines(dir_ / "lines.txt");
    for (int i = 0; i < 200; ++i)
      lines << std::string(1000, static_cast<char>('a' + i % 26)) << "\n";
  }
  const auto lines = (dir_ / "lines.txt").string();
  auto t0 = std::chrono::steady_clock::now();
  // Small requests (ten records each): each one over the rate is answered
  // at once, and the connection is not read again until its wait is over.
  const std::string small = "-X batch.num.messages=10 -X linger.ms=0 ";
  auto put = kcat(sasl("app", "s3cret") + small + "-P -t orders -l " + lines);
  ASSERT_EQ(put.code, 0) << put.err;
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1500ms)
      << "about 200 KB at 64 KiB/s after a 64 KiB burst";
  EXPECT_GE(
      metric("ferry_broker_throttle_time_ms_total", {{"principal", "app"}, {"kind", "produce"}}),
      1000);
  t0 = std::chrono::steady_clock::now();
  auto got = kcat(sasl("app", "s3cret") + "-C -t orders -o beginning -e -q");
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_EQ(std::count(got.out.begin(), got.out.end(), '\n'), 200) << "every record, once";
  EXPECT_GE(
      metric("ferry_broker_throttle_time_ms_total", {{"principal", "app"}, {"kind", "fetch"}}),
      1000);

  // The control: the same records as "other", who has no quota.
  auto theirs = kcat(sasl("other", "other-pw") + small + "-P -t orders -l " + lines);
  ASSERT_EQ(theirs.code, 0) << theirs.err;
  EXPECT_EQ(
      metric("ferry_broker_throttle_time_ms_total", {{"principal", "other"}, {"kind", "produce"}}),
      0);
}

// A user removed from the users file can no longer log in.
TEST_F(KafkaSasl, ARemovedUserCanNoLongerLogIn) {
  allow(acl_resource::topic, "orders", {acl_op::write, acl_op::read});
  ASSERT_EQ(kcat(sasl("app", "s3cret") + "-P -t orders", "x\\n").code, 0);
  write_users({{"other", "other-pw"}});
  std::this_thread::sleep_for(1500ms);
  auto after = kcat(sasl("app", "s3cret") + "-P -t orders", "x\\n");
  EXPECT_NE(after.code, 0) << "app is gone";
}

}  // namespace
