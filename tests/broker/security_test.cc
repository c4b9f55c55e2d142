// Authentication on the ZeroMQ listener (docs/security.md): CURVE with a
// ZAP handler that admits only the users file's keys. Each refusal has its
// negative control (the same thing with an admitted key works), and the
// anonymous fallback of libzmq's CURVE server is probed with raw sockets.
#include "security.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"
#include "ferry/client/producer.h"
#include "ferry/core/errc.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/curve.h"
#include "ferry/protocol/scram.h"
#include "ferry/protocol/socket.h"
#include "ferry/schema/schema.h"
#include "inproc_broker.h"
#include "metrics_scrape.h"

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using ferry::client::errc;

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ferry::testing::make_temp_dir("ferry-security");
    ASSERT_FALSE(dir_.empty());
    for (const char* name : {"server", "alice", "bob", "alice2"}) make_key(name);
    write_users({{"alice", "alice"}});
    ferry::broker::broker_config c;
    c.security.enabled = true;
    c.security.server_key_file = dir_ / "server.key";
    c.security.users_file = dir_ / "users.toml";
    c.security.audit_file = dir_ / "audit.log";
    broker_.start(dir_ / "data", c);
  }
  void TearDown() override {
    broker_.stop();
    fs::remove_all(dir_);
  }

  void make_key(const std::string& name) {
    auto k = ferry::protocol::generate_curve_keys();
    ASSERT_TRUE(k);
    std::string why;
    ASSERT_TRUE(ferry::protocol::write_key_files(dir_, name, k.value(), why)) << why;
    keys_[name] = k.value();
  }
  // users: {user name, key name}; the names in supers_ are super users.
  void write_users(const std::vector<std::pair<std::string, std::string>>& users) {
    std::string text = "# users (written by the test)\n";
    for (const auto& [user, key] : users)
      text += "[users." + user + "]\npublic_key = \"" + keys_[key].public_key + "\"\n" +
              (supers_.count(user) ? "super_user = true\n" : "");
    const auto tmp = dir_ / "users.toml.tmp";
    std::ofstream(tmp) << text;
    fs::rename(tmp, dir_ / "users.toml");
  }
  ferry::client::client_options as(const std::string& key, const std::string& server = "server") {
    auto o = ferry::testing::base_client_options(broker_.endpoint());
    o.request_timeout = 20s;  // a refusal must come long before this
    o.api_timeout = 20s;
    if (!key.empty()) o.key_file = (dir_ / (key + ".key")).string();
    if (!server.empty()) o.server_key = (dir_ / (server + ".pub")).string();
    return o;
  }
  // The error of a list_topics call, and how long it took.
  std::pair<std::error_code, std::chrono::steady_clock::duration> try_list(
      const ferry::client::client_options& o) {
    ferry::client::admin a(o);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = a.list_topics();
    return {r ? std::error_code() : r.error(), std::chrono::steady_clock::now() - t0};
  }
  double failures(const std::string& reason) {
    return ferry::testing::sample_value(broker_.get()->metrics().expose(),
                                        "ferry_broker_authentication_failures_total",
                                        {{"reason", reason}})
        .value_or(0);
  }

  fs::path dir_;
  std::set<std::string> supers_{"alice"};  // every ACL passes for them
  std::map<std::string, ferry::protocol::curve_keys> keys_;
  ferry::testing::inproc_broker broker_;
};

TEST_F(SecurityTest, AKeyInTheUsersFileIsServed) {
  ferry::client::admin a(as("alice"));
  ASSERT_TRUE(a.create_topic("orders", {.partitions = 1})) << a.last_error_message();
  ferry::client::producer_options po;
  static_cast<ferry::client::client_options&>(po) = as("alice");
  po.linger = 0ms;
  ferry::client::producer p(po);
  ferry::client::producer_record rec;
  rec.topic = "orders";
  rec.value = "paid";
  auto m = p.send(std::move(rec)).get();
  ASSERT_TRUE(m) << m.error().message();
  ferry::client::consumer_options co;
  static_cast<ferry::client::client_options&>(co) = as("alice");
  ferry::client::consumer c(co);
  ASSERT_TRUE(c.assign({{"orders", ferry::partition_id(0)}}));
  ASSERT_TRUE(c.seek_to_beginning());
  auto recs = c.poll(5s);
  ASSERT_TRUE(recs);
  ASSERT_EQ(recs.value().size(), 1u);
  EXPECT_EQ(recs.value()[0].value, "paid");
}

TEST_F(SecurityTest, AnonymousUnknownAndWrongServerKeysAreRefusedWithoutHanging) {
  for (const auto& [what, options] :
       std::vector<std::pair<std::string, ferry::client::client_options>>{
           {"no key", as("", "")},
           {"a key not in the users file", as("bob")},
           {"not the broker's public key", as("alice", "bob")}}) {
    auto [ec, took] = try_list(options);
    EXPECT_EQ(ec, errc::authentication_failed) << what << ": " << ec.message();
    EXPECT_LT(took, 10s) << what << ": refused at the handshake, not after the 20 s time-out";
  }
  EXPECT_GE(failures("unknown_key"), 1) << broker_.get()->metrics().expose();
  EXPECT_GE(failures("handshake"), 1);
  EXPECT_FALSE(try_list(as("alice")).first) << "the negative control: alice is served";
  // A key file that is not a key pair is refused before anything is sent.
  auto half = as("alice");
  half.key_file = (dir_ / "alice.pub").string();
  EXPECT_EQ(try_list(half).first, errc::authentication_failed);
}

// libzmq 4.3's CURVE server admits any client key when no ZAP handler
// answers, and a NULL-mechanism client must get nothing either: probed with
// raw sockets that speak the protocol but not through Ferry's client.
TEST_F(SecurityTest, RawSocketsWithoutAnAdmittedKeyGetNoAnswer) {
  zmq::context_t ctx(1);
  auto ask = [&](const ferry::protocol::curve_keys* client_keys) {
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    if (client_keys != nullptr) {
      s.set(zmq::sockopt::curve_serverkey, keys_["server"].public_key);
      s.set(zmq::sockopt::curve_publickey, client_keys->public_key);
      s.set(zmq::sockopt::curve_secretkey, client_keys->secret_key);
    }
    s.connect(broker_.endpoint());
    flatbuffers::FlatBufferBuilder fbb;
    auto env = ferry::protocol::finish_envelope(fbb, 7, ferry::wire::Body::ListTopicsRequest,
                                                ferry::wire::CreateListTopicsRequest(fbb).Union());
    s.send(zmq::buffer(env.data(), env.size()));
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    return zmq::poll(&item, 1, 1500ms) > 0;
  };
  EXPECT_FALSE(ask(nullptr)) << "a client without CURVE (the NULL mechanism)";
  auto stranger = ferry::protocol::generate_curve_keys().value();
  EXPECT_FALSE(ask(&stranger)) << "a CURVE client whose key nobody listed";
  EXPECT_TRUE(ask(&keys_["alice"])) << "the negative control: alice's key is answered";
}

TEST_F(SecurityTest, RevokedAndRotatedKeysAreRefusedFromTheirNextRequest) {
  ferry::client::admin a(as("alice"));
  ASSERT_TRUE(a.list_topics());
  // Rotation: alice's entry now holds alice2's key (a file of the same size,
  // maybe within the same clock tick: the contents decide).
  write_users({{"alice", "alice2"}});
  std::error_code ec;
  for (int i = 0; i < 100 && !ec; ++i) {
    std::this_thread::sleep_for(50ms);
    auto r = a.list_topics();
    if (!r) ec = r.error();
  }
  EXPECT_EQ(ec, errc::authentication_failed) << "the connected session with the old key";
  EXPECT_GE(failures("revoked"), 1);
  EXPECT_EQ(try_list(as("alice")).first, errc::authentication_failed) << "a new connection";
  EXPECT_FALSE(try_list(as("alice2")).first) << "the new key is admitted";

  // Revocation: nobody in the file.
  ferry::client::admin a2(as("alice2"));
  ASSERT_TRUE(a2.list_topics());
  write_users({});
  ec = {};
  for (int i = 0; i < 100 && !ec; ++i) {
    std::this_thread::sleep_for(50ms);
    auto r = a2.list_topics();
    if (!r) ec = r.error();
  }
  EXPECT_EQ(ec, errc::authentication_failed);
}

// A users file broken by an edit keeps the last good users (not everyone
// out, nobody new in); the start itself fails closed.
TEST_F(SecurityTest, ABrokenUsersFileKeepsTheLastGoodUsersAndAStartFailsClosed) {
  { std::ofstream(dir_ / "users.toml") << "[users.mallory]\npublic_key = \"not a key\"\n"; }
  std::this_thread::sleep_for(1500ms);
  EXPECT_FALSE(try_list(as("alice")).first) << "alice stays";
  broker_.stop();
  for (const auto& [what, edit] :
       std::vector<std::pair<std::string, std::function<void(ferry::broker::broker_config&)>>>{
           {"a broken users file", [](auto&) {}},
           {"no users file", [&](auto& c) { c.security.users_file = dir_ / "nope.toml"; }},
           {"a public key as the server key",
            [&](auto& c) { c.security.server_key_file = dir_ / "server.pub"; }}}) {
    ferry::broker::broker_config c;
    c.data_dir = dir_ / "data";
    c.listen = "tcp://127.0.0.1:*";
    c.security.enabled = true;
    c.security.server_key_file = dir_ / "server.key";
    c.security.users_file = dir_ / "users.toml";
    edit(c);
    // Refused at open (the users and ACLs load with the state) or at the
    // start (the server key, with the listener): either way, no listener.
    auto b = ferry::broker::broker::open(c);
    if (!b) {
      EXPECT_EQ(b.error(), make_error_code(ferry::errc::config_invalid)) << what;
      continue;
    }
    EXPECT_FALSE(b.value()->start()) << what << ": no listener without its security";
    b.value()->stop();
  }
}

std::vector<nlohmann::json> audit_lines(const fs::path& file) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << line;
    out.push_back(j);
  }
  return out;
}

// Every state-changing admin action is one line with who, from where, what,
// on what, and how it ended; refusals too; reads are not audited.
TEST_F(SecurityTest, AdminActionsAreAuditedWithThePrincipal) {
  ferry::client::admin a(as("alice"));
  ASSERT_TRUE(a.create_topic("orders", {.partitions = 1}));
  EXPECT_FALSE(a.create_topic("orders", {.partitions = 1})) << "refused: it exists";
  ASSERT_TRUE(a.list_topics());  // a read: not audited
  ASSERT_TRUE(a.alter_topic("orders", {.partitions = 2}));
  ASSERT_TRUE(a.alter_topic("orders", {.partitions = 3, .validate_only = true}))
      << "a plan: not audited";
  ASSERT_TRUE(
      a.reset_offsets("billing", {{{"orders", ferry::partition_id(0)}, ferry::offset(0), "", {}}}));
  EXPECT_FALSE(a.delete_group("nosuch"));
  ASSERT_TRUE(a.set_compatibility("orders-value", ferry::schema::mode::full));
  // A `ferry dlq purge` marker, as the runtime writes it.
  ASSERT_TRUE(a.create_topic("orders.dlq", {.partitions = 1}));
  ferry::client::producer_options po;
  static_cast<ferry::client::client_options&>(po) = as("alice");
  po.linger = 0ms;
  ferry::client::producer p(po);
  ferry::client::producer_record marker;
  marker.topic = "orders.dlq";
  marker.value = R"({"marker":"purged","offsets":[0,1,2],"run":"r1","by":"ops"})";
  marker.headers = {{std::string(ferry::protocol::kDlqMarkerHeader), "purged"}};
  ASSERT_TRUE(p.send(std::move(marker)).get());
  ferry::client::producer_record plain;
  plain.topic = "orders";
  plain.value = "an order";
  ASSERT_TRUE(p.send(std::move(plain)).get());  // a plain record: not audited
  ASSERT_TRUE(a.delete_topic("orders"));

  const auto lines = audit_lines(dir_ / "audit.log");
  std::vector<std::string> actions;
  for (const auto& l : lines) {
    actions.push_back(l["action"].get<std::string>() + ":" + l["outcome"].get<std::string>());
    EXPECT_EQ(l["principal"], "alice") << l.dump();
    EXPECT_EQ(l["peer"], "127.0.0.1") << l.dump();
    EXPECT_TRUE(l.contains("ts")) << l.dump();
  }
  EXPECT_EQ(actions, (std::vector<std::string>{
                         "topic.create:ok", "topic.create:refused", "topic.alter:ok",
                         "group.reset_offsets:ok", "group.delete:refused", "schema.mode:ok",
                         "topic.create:ok", "dlq.purged:ok", "topic.delete:ok"}));
  ASSERT_EQ(lines.size(), actions.size());
  EXPECT_EQ(lines[1]["error"], "TopicAlreadyExists");
  EXPECT_EQ(lines[2]["target"]["partitions"], 2);
  EXPECT_EQ(lines[3]["target"]["offsets"][0]["topic"], "orders");
  EXPECT_EQ(lines[7]["target"]["dead_letters"], 3);
  EXPECT_EQ(lines[7]["target"]["by"], "ops");
  EXPECT_EQ(lines[8]["target"]["topic"], "orders");
  EXPECT_EQ(ferry::testing::sample_value(broker_.get()->metrics().expose(),
                                         "ferry_broker_audit_records_total"),
            static_cast<double>(lines.size()));
}

// Without security the audit log still says what happened and from where.
TEST(SecurityAudit, WithoutSecurityThePrincipalIsAnonymous) {
  auto dir = ferry::testing::make_temp_dir("ferry-audit");
  ferry::broker::broker_config c;
  c.security.audit_file = dir / "audit.log";
  ferry::testing::inproc_broker b;
  b.start(dir / "data", c);
  ferry::client::admin a(ferry::testing::base_client_options(b.endpoint()));
  ASSERT_TRUE(a.create_topic("t", {.partitions = 1}));
  b.stop();
  const auto lines = audit_lines(dir / "audit.log");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["principal"], "anonymous");
  EXPECT_EQ(lines[0]["action"], "topic.create");
  fs::remove_all(dir);
}

TEST(SecurityUsers, TheUsersFileIsCheckedEntryByEntry) {
  const std::string key = ferry::protocol::generate_curve_keys().value().public_key;
  std::string why;
  auto ok = ferry::broker::parse_users(
      "[users.alice]\npublic_key = \"" + key + "\"\nsuper_user = true\n", "u.toml", why);
  ASSERT_TRUE(ok) << why;
  EXPECT_TRUE(ok->at(0).super_user);
  for (const auto& [text, needle] : std::vector<std::pair<std::string, std::string>>{
           {"[users.alice]\npublic_key = \"short\"\n", "40 characters of Z85"},
           {"[users.alice]\npublic_key = \"" + key + "\"\nadmin = true\n", "users.alice.admin"},
           {"[users.alice]\npublic_key = \"" + key + "\"\n[users.bob]\npublic_key = \"" + key +
                "\"\n",
            "same public_key"},
           {"[people.alice]\n", "unknown entry 'people'"},
           {"[users.\"a b\"]\npublic_key = \"" + key + "\"\n", "[A-Za-z0-9._-]"},
           {"[users.carol]\nsuper_user = true\n", "could not log in"},
           {"[users.carol]\ntls_client = \"yes\"\n", "users.carol.tls_client"}}) {
    EXPECT_FALSE(ferry::broker::parse_users(text, "u.toml", why)) << text;
    EXPECT_NE(why.find(needle), std::string::npos) << why;
  }
  // A user of client certificates alone (mTLS on the Kafka listener).
  auto certified = ferry::broker::parse_users("[users.carol]\ntls_client = true\n", "u.toml", why);
  ASSERT_TRUE(certified) << why;
  EXPECT_TRUE(certified->at(0).tls_client);
  EXPECT_TRUE(certified->at(0).public_key.empty());
}

// SASL/PLAIN: the message's shape, and the password checked against the
// same stored credential as SCRAM (no password is kept).
TEST(Scram, PlainLoginsAreParsedAndCheckedAgainstTheStoredCredential) {
  namespace scram = ferry::protocol::scram;
  std::string why;
  auto l = scram::parse_plain(std::string("\0app\0s3cret", 11), why);
  ASSERT_TRUE(l) << why;
  EXPECT_EQ(l->user, "app");
  EXPECT_EQ(l->password, "s3cret");
  EXPECT_TRUE(scram::parse_plain(std::string("app\0app\0s3cret", 14), why))
      << "an authorization id equal to the user is the user";
  for (const auto& [m, needle] : std::vector<std::pair<std::string, std::string>>{
           {std::string("root\0app\0s3cret", 15), "acting as another user"},
           {std::string("app\0s3cret", 10), "NUL"},
           {std::string("\0app\0s3cret\0x", 13), "NUL"},
           {std::string("\0\0s3cret", 8), "needs a user"},
           {std::string("\0app\0", 5), "needs a user"}}) {
    EXPECT_FALSE(scram::parse_plain(m, why)) << m;
    EXPECT_NE(why.find(needle), std::string::npos) << why;
  }
  const auto cred = scram::make_credential("s3cret", 4096);
  EXPECT_TRUE(scram::verify_password(cred, "s3cret"));
  EXPECT_FALSE(scram::verify_password(cred, "s3cret "));
  EXPECT_FALSE(scram::verify_password(cred, "S3cret"));
  EXPECT_FALSE(scram::verify_password(scram::make_credential("s3cret", 4096), "guess"));
}

// RFC 7677's example exchange, byte for byte, then each way to fail it.
TEST(Scram, TheRfc7677ExampleAuthenticatesAndEveryTamperingFails) {
  namespace scram = ferry::protocol::scram;
  const auto salt = scram::base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==").value();
  const auto cred = scram::make_credential("pencil", 4096, salt);
  auto lookup = [&](const std::string& user) -> std::optional<scram::credential> {
    if (user == "user") return cred;
    return std::nullopt;
  };
  const std::string snonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
  const std::string final =
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfM"
      "Hgsqmmiz7AndVQ=";
  {
    scram::server_exchange ex(lookup, snonce);
    auto first = ex.next("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    ASSERT_TRUE(first.ok) << first.why;
    EXPECT_EQ(first.reply,
              "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i="
              "4096");
    auto last = ex.next(final);
    ASSERT_TRUE(last.ok) << last.why;
    EXPECT_EQ(last.reply, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    EXPECT_EQ(ex.user(), "user");
    EXPECT_FALSE(ex.next(final).ok) << "an exchange is used once";
  }
  auto fails = [&](const std::string& user_first, const std::string& client_final) {
    scram::server_exchange ex(lookup, snonce);
    if (!ex.next(user_first).ok) return true;
    auto s = ex.next(client_final);
    return !s.ok && s.reply.rfind("e=", 0) == 0;
  };
  std::string bad_proof = final;
  bad_proof[bad_proof.size() - 3] = bad_proof[bad_proof.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_TRUE(fails("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", bad_proof)) << "a wrong proof";
  EXPECT_TRUE(fails("n,,n=other,r=rOprNGfwEbeRWgbNEkqO", final)) << "an unknown user";
  EXPECT_TRUE(fails("n,,n=user,r=rOprNGfwEbeRWgbNEkqX", final)) << "another client nonce";
  EXPECT_TRUE(fails("p=tls-unique,,n=user,r=rOprNGfwEbeRWgbNEkqO", final)) << "channel binding";
  EXPECT_TRUE(fails("n,a=admin,n=user,r=rOprNGfwEbeRWgbNEkqO", final)) << "another authzid";
  EXPECT_TRUE(fails("n,,n=user,r=rOprNGfwEbeRWgbNEkqO,tokenauth=true", final)) << "tokens";
  {
    // An unknown user gets a salt and iterations like a known one's.
    scram::server_exchange ex(lookup);
    auto first = ex.next("n,,n=nobody,r=abc");
    ASSERT_TRUE(first.ok);
    EXPECT_NE(first.reply.find(",s="), std::string::npos);
    EXPECT_NE(first.reply.find(",i="), std::string::npos);
  }
  // The client side against the server side, and the stored format.
  std::string why;
  const auto stored = scram::parse(scram::format(cred), why);
  ASSERT_TRUE(stored) << why;
  EXPECT_EQ(stored->stored_key, cred.stored_key);
  scram::server_exchange ex([&](const std::string&) { return stored; });
  scram::client_exchange client("user", "pencil");
  auto s1 = ex.next(client.first());
  ASSERT_TRUE(s1.ok);
  auto s2 = ex.next(client.final(s1.reply).value());
  ASSERT_TRUE(s2.ok) << s2.why;
  EXPECT_TRUE(client.verify(s2.reply)) << "the client checks the server knew the credential";
  for (const char* broken : {"SCRAM-SHA-256$100:c2FsdA==$AAAA:AAAA", "SCRAM-SHA-1$4096:a$b:c",
                             "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA"})
    EXPECT_FALSE(scram::parse(broken, why)) << broken;
}

}  // namespace
