// TLS on ferryd's Kafka listener (docs/security.md#tls): encryption, SASL/PLAIN
// over it, client certificates (mTLS) as principals, and certificate
// rotation, with clients Ferry did not write: kcat and librdkafka (through
// Ferry's kafka:// client). The certificates come from make_certs.sh (the
// openssl command). Each refusal has its negative control: the same client
// with the right CA, password, certificate or users-file entry.
#include <gtest/gtest.h>

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

class KafkaTls : public ferry::testing::KafkaBroker {
 protected:
  void SetUp() override {
    dir_ = ferry::testing::make_temp_dir("ferry-kafka-tls");
    tls_ = dir_ / "tls";
    const auto made = ferry::testing::run_command(
        std::string("bash ") + FERRY_MAKE_CERTS + " " + tls_.string(), dir_ / "certs.err");
    ASSERT_EQ(made.code, 0) << made.err;
  }
  void TearDown() override {
    root_.reset();
    KafkaBroker::TearDown();
  }

  // ferryd with TLS on its Kafka listener; with `security`, [security] on
  // (a CURVE super user "root" for the native admin, SCRAM users) and
  // client certificates as `client_auth` says.
  void start(bool security, const std::string& client_auth = "none") {
    env_ = {{"FERRY_SECURITY_KAFKA_TLS_CERT_FILE", (tls_ / "server.pem").string()},
            {"FERRY_SECURITY_KAFKA_TLS_KEY_FILE", (tls_ / "server.key").string()},
            {"FERRY_SECURITY_KAFKA_TLS_CLIENT_AUTH", client_auth}};
    if (client_auth != "none")
      env_.emplace_back("FERRY_SECURITY_KAFKA_TLS_CA_FILE", (tls_ / "ca.pem").string());
    if (security) {
      for (const char* name : {"server", "root"}) {
        auto k = ferry::protocol::generate_curve_keys();
        ASSERT_TRUE(k);
        std::string why;
        ASSERT_TRUE(ferry::protocol::write_key_files(dir_, name, k.value(), why)) << why;
        keys_[name] = k.value().public_key;
      }
      write_users({"app"});
      env_.emplace_back("FERRY_SECURITY_ENABLED", "true");
      env_.emplace_back("FERRY_SECURITY_SERVER_KEY_FILE", (dir_ / "server.key").string());
      env_.emplace_back("FERRY_SECURITY_USERS_FILE", (dir_ / "users.toml").string());
    }
    start_ferryd("127.0.0.1:0");
    auto o = ferry::testing::base_client_options(native_);
    if (security) {
      o.key_file = (dir_ / "root.key").string();
      o.server_key = (dir_ / "server.pub").string();
    }
    root_ = std::make_unique<ferry::client::admin>(o);
    ASSERT_TRUE(root_->create_topic("orders", {.partitions = 1})) << root_->last_error_message();
  }
  // The users file: root (CURVE, super user), app and stranger (SCRAM),
  // and tls_client = true for the names in `certified`.
  void write_users(const std::vector<std::string>& certified) {
    std::string text = "[users.root]\npublic_key = \"" + keys_["root"] + "\"\nsuper_user = true\n";
    for (const auto& [name, password] : std::vector<std::pair<std::string, std::string>>{
             {"app", "s3cret"}, {"stranger", "str4nger"}}) {
      text +=
          "[users." + name + "]\nscram_sha256 = \"" +
          ferry::protocol::scram::format(ferry::protocol::scram::make_credential(password, 4096)) +
          "\"\n";
      if (std::find(certified.begin(), certified.end(), name) != certified.end())
        text += "tls_client = true\n";
    }
    std::ofstream(dir_ / "users.tmp") << text;
    std::filesystem::rename(dir_ / "users.tmp", dir_ / "users.toml");
  }
  void allow(acl_resource r, const std::string& name, std::initializer_list<acl_op> ops,
             const std::string& who) {
    std::uint16_t bits = 0;
    for (auto o : ops) bits = static_cast<std::uint16_t>(bits | static_cast<std::uint16_t>(o));
    ASSERT_TRUE(root_->add_acls({{who, r, acl_pattern::literal, name, bits, false}}))
        << root_->last_error_message();
  }
  // kcat's TLS settings: trusting `ca`, offering the certificate `cert`
  // (a name in tls/, "" for none).
  std::string ssl(const std::string& ca = "ca", const std::string& cert = "") {
    std::string s =
        "-X security.protocol=ssl -X ssl.ca.location=" + (tls_ / (ca + ".pem")).string();
    if (!cert.empty())
      s += " -X ssl.certificate.location=" + (tls_ / (cert + ".pem")).string() +
           " -X ssl.key.location=" + (tls_ / (cert + ".key")).string();
    return s + " ";
  }
  std::string sasl_ssl(const std::string& mechanism, const std::string& user,
                       const std::string& password) {
    return "-X security.protocol=sasl_ssl -X ssl.ca.location=" + (tls_ / "ca.pem").string() +
           " -X sasl.mechanisms=" + mechanism + " -X sasl.username=" + user +
           " -X sasl.password=" + password + " ";
  }
  double metric(const std::string& name, const std::map<std::string, std::string>& labels) {
    return ferry::testing::metric_at(metrics_, name, labels);
  }

  std::filesystem::path tls_;
  std::map<std::string, std::string> keys_;
  std::unique_ptr<ferry::client::admin> root_;
};

TEST_F(KafkaTls, EncryptsAndRefusesClientsThatDoNotSpeakItOrDoNotTrustIt) {
  start(false);
  auto clear = kcat("-L -J -m 5");
  EXPECT_NE(clear.code, 0) << "a plaintext client gets nothing: " << clear.out;
  auto distrust = kcat(ssl("other-ca") + "-L -J -m 5");
  EXPECT_NE(distrust.code, 0) << distrust.out;
  EXPECT_NE(distrust.err.find("certificate verify failed"), std::string::npos) << distrust.err;
  EXPECT_GE(metric("ferry_kafka_connections_closed_total", {{"reason", "tls"}}), 2);

  // The negative control: TLS, trusting the CA that signed the listener.
  auto put = kcat(ssl() + "-P -t orders -K:", "k1:paid\\nk2:shipped\\n");
  ASSERT_EQ(put.code, 0) << put.err;
  auto got = kcat(ssl() + "-C -t orders -e -o beginning -f '%k=%s\\n'");
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_EQ(got.out, "k1=paid\nk2=shipped\n");
  // What was produced over TLS is the broker's, for every client.
  auto native = read_natively("orders", 1, 2);
  ASSERT_EQ(native.size(), 2u);
  EXPECT_EQ(native[1].value, "shipped");
}

// The listener's certificate is replaced on disk: new connections get the
// new one, and a file that does not load keeps the old one.
TEST_F(KafkaTls, ARotatedCertificateIsServedToNewConnections) {
  start(false);
  ASSERT_EQ(kcat(ssl() + "-L -J").code, 0);
  // A broken replacement (the key of another certificate) is not taken.
  std::filesystem::copy_file(tls_ / "server2.key", tls_ / "server.key",
                             std::filesystem::copy_options::overwrite_existing);
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(kcat(ssl() + "-L -J").code, 0) << "the previous certificate stays in use";
  // The whole pair, signed by the other CA.
  std::filesystem::copy_file(tls_ / "server2.pem", tls_ / "server.pem",
                             std::filesystem::copy_options::overwrite_existing);
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(kcat(ssl("other-ca") + "-L -J").code, 0) << "the new certificate is served";
  EXPECT_NE(kcat(ssl() + "-L -J -m 5").code, 0) << "the old CA no longer verifies it";
  std::ifstream log(dir_ / "ferryd.err");
  const std::string text((std::istreambuf_iterator<char>(log)), {});
  EXPECT_NE(text.find("do not load, the previous ones stay in use"), std::string::npos) << text;
}

TEST_F(KafkaTls, PlainAndScramOverTlsAuthenticateAndAWrongPasswordIsRefused) {
  start(true);
  allow(acl_resource::topic, "orders", {acl_op::write, acl_op::read, acl_op::describe}, "app");
  auto wrong = kcat(sasl_ssl("PLAIN", "app", "guess") + "-P -t orders", "x\\n");
  EXPECT_NE(wrong.code, 0);
  EXPECT_NE(wrong.err.find("Authentication failed"), std::string::npos) << wrong.err;
  auto unknown = kcat(sasl_ssl("PLAIN", "nobody", "s3cret") + "-L -J -m 5");
  EXPECT_NE(unknown.code, 0) << "an unknown user fails like a wrong password";
  auto no_sasl = kcat(ssl() + "-L -J -m 5");
  EXPECT_NE(no_sasl.code, 0) << "TLS alone is not authentication: " << no_sasl.out;
  EXPECT_GE(metric("ferry_broker_authentication_failures_total", {{"reason", "sasl"}}), 3);

  // The negative controls: the right password, with PLAIN and with SCRAM.
  auto plain = kcat(sasl_ssl("PLAIN", "app", "s3cret") + "-P -t orders -K:", "k1:paid\\n");
  ASSERT_EQ(plain.code, 0) << plain.err;
  auto scram = kcat(sasl_ssl("SCRAM-SHA-256", "app", "s3cret") + "-P -t orders -K:", "k2:sent\\n");
  ASSERT_EQ(scram.code, 0) << scram.err;
  auto got =
      kcat(sasl_ssl("PLAIN", "app", "s3cret") + "-C -t orders -e -o beginning -f '%k=%s\\n'");
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_EQ(got.out, "k1=paid\nk2=sent\n");

  // Ferry's own client over kafka:// (librdkafka), with the same settings.
  auto o = ferry::testing::base_client_options("kafka://" + kafka_);
  o.kafka = {{"security.protocol", "SASL_SSL"},
             {"ssl.ca.location", (tls_ / "ca.pem").string()},
             {"sasl.mechanisms", "PLAIN"},
             {"sasl.username", "app"},
             {"sasl.password", "s3cret"}};
  ferry::client::admin a(o);
  auto d = a.describe_topic("orders");
  ASSERT_TRUE(d) << a.last_error_message();
  EXPECT_EQ(d.value().config.partitions, 1);
}

TEST_F(KafkaTls, AClientCertificateIsAPrincipalWhenItsUserTakesOne) {
  start(true, "required");
  allow(acl_resource::topic, "orders", {acl_op::describe}, "app");
  // No certificate, or one from a CA the broker does not trust (with the
  // right CN): refused at the handshake, even with a right password.
  auto none = kcat(sasl_ssl("PLAIN", "app", "s3cret") + "-L -J -m 5");
  EXPECT_NE(none.code, 0) << "a certificate is required: " << none.out;
  auto intruder = kcat(ssl("ca", "intruder") + "-L -J -m 5");
  EXPECT_NE(intruder.code, 0) << intruder.out;
  EXPECT_GE(metric("ferry_kafka_connections_closed_total", {{"reason", "tls"}}), 2);

  // app's certificate: app, with app's rules (describe, not write).
  auto meta = kcat(ssl("ca", "app") + "-L -J");
  ASSERT_EQ(meta.code, 0) << meta.err;
  EXPECT_NE(meta.out.find("\"orders\""), std::string::npos) << meta.out;
  auto write = kcat(ssl("ca", "app") + "-P -t orders", "x\\n");
  EXPECT_NE(write.err.find("Topic authorization failed"), std::string::npos) << write.err;
  allow(acl_resource::topic, "orders", {acl_op::write}, "app");
  EXPECT_EQ(kcat(ssl("ca", "app") + "-P -t orders", "x\\n").code, 0) << "allowed now";

  // A valid certificate whose user does not take certificates is refused
  // until the users file says tls_client = true.
  auto stranger = kcat(ssl("ca", "stranger") + "-L -J -m 5");
  EXPECT_NE(stranger.code, 0) << stranger.out;
  EXPECT_GE(metric("ferry_broker_authentication_failures_total", {{"reason", "certificate"}}), 1);
  write_users({"app", "stranger"});
  auto admitted = kcat(ssl("ca", "stranger") + "-L -J");
  EXPECT_EQ(admitted.code, 0) << admitted.err;

  // Revoked: app no longer takes certificates.
  write_users({"stranger"});
  std::this_thread::sleep_for(1100ms);
  EXPECT_NE(kcat(ssl("ca", "app") + "-L -J -m 5").code, 0) << "app's certificate is revoked";
}

// A client that resumes its TLS session, with a client certificate
// required, is served (OpenSSL refuses the resumption unless the listener
// sets a session id context; Java clients resume when they reconnect).
// openssl s_client saves the session, then offers it again.
TEST_F(KafkaTls, AClientResumingItsSessionWithACertificateIsServed) {
  start(true, "required");
  const auto client = "openssl s_client -connect " + kafka_ + " -tls1_2 -CAfile " +
                      (tls_ / "ca.pem").string() + " -cert " + (tls_ / "app.pem").string() +
                      " -key " + (tls_ / "app.key").string() + " -sess_";
  const auto session = (dir_ / "session.pem").string();
  auto first =
      ferry::testing::run_command(client + "out " + session + " </dev/null", dir_ / "s1.err");
  EXPECT_NE(first.out.find("New, TLSv1.2"), std::string::npos) << first.out << first.err;
  auto again =
      ferry::testing::run_command(client + "in " + session + " </dev/null", dir_ / "s2.err");
  EXPECT_NE(again.out.find("Reused, TLSv1.2"), std::string::npos) << again.out << again.err;
}

// `ferryd --check-config` loads the TLS files as the start would.
TEST_F(KafkaTls, CheckConfigLoadsTheTlsFiles) {
  auto check = [&](const std::string& cert, const std::string& key) {
    return ferry::testing::run_command(
        std::string("FERRY_SECURITY_KAFKA_TLS_CERT_FILE=") + (tls_ / cert).string() +
            " FERRY_SECURITY_KAFKA_TLS_KEY_FILE=" + (tls_ / key).string() + " " + FERRY_FERRYD +
            " --check-config --data-dir " + (dir_ / "data").string() +
            " --kafka-listen 127.0.0.1:0",
        dir_ / "check.err");
  };
  auto mismatched = check("server.pem", "server2.key");
  EXPECT_EQ(mismatched.code, 2);
  EXPECT_NE(mismatched.err.find("is not the certificate"), std::string::npos) << mismatched.err;
  auto missing = check("nothing.pem", "server.key");
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
  auto good = check("server.pem", "server.key");
  EXPECT_EQ(good.code, 0) << good.err;
}

}  // namespace
