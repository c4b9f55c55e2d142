// Authorization (docs/security.md#authorization): the rules' model, file and
// matching, then a broker with security on where every refusal has its
// negative control (the same request allowed by a rule, or by a super user).
#include "acl.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"
#include "ferry/client/producer.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/curve.h"
#include "ferry/schema/schema.h"
#include "ferry/storage/mem_env.h"
#include "inproc_broker.h"
#include "metrics_scrape.h"
#include "security.h"

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using ferry::broker::acl_store;
using ferry::broker::authorizer;
using ferry::client::errc;
using ferry::protocol::acl_op;
using ferry::protocol::acl_pattern;
using ferry::protocol::acl_resource;
using ferry::protocol::acl_rule;

constexpr std::uint16_t ops(std::initializer_list<acl_op> l) {
  std::uint16_t b = 0;
  for (auto o : l) b = static_cast<std::uint16_t>(b | static_cast<std::uint16_t>(o));
  return b;
}

acl_rule rule(std::string principal, acl_resource res, std::string name, std::uint16_t operations,
              acl_pattern pat = acl_pattern::literal, bool deny = false) {
  return {std::move(principal), res, pat, std::move(name), operations, deny};
}

// --- the model and the file -----------------------------------------------

TEST(AclRules, TheFileRoundTripsAndBadEntriesSayWhatIsWrong) {
  const std::vector<acl_rule> rules = {
      rule("billing", acl_resource::topic, "orders", ops({acl_op::read, acl_op::describe}),
           acl_pattern::prefix),
      rule("*", acl_resource::group, "*", ops({acl_op::read})),
      rule("ops", acl_resource::dlq, "orders.dlq", ops({acl_op::redrive, acl_op::purge})),
      rule("ops", acl_resource::cluster, "", ops({acl_op::alter, acl_op::describe})),
      rule("mallory", acl_resource::topic, "*", ops({acl_op::write}), acl_pattern::literal, true),
  };
  std::string why;
  auto back = ferry::broker::parse_acls(ferry::broker::format_acls(rules), "acls.toml", why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(*back, rules);

  for (const auto& [text, needle] : std::vector<std::pair<std::string, std::string>>{
           {"[[acl]]\nprincipal = \"a\"\nresource = \"topic\"\nname = \"t\"\n", "no operations"},
           {"[[acl]]\nprincipal = \"a\"\nresource = \"topic\"\nname = \"t\"\noperations = "
            "[\"redrive\"]\n",
            "redrive means nothing on a topic"},
           {"[[acl]]\nprincipal = \"a\"\nresource = \"topic\"\nname = \"t\"\noperations = "
            "[\"steal\"]\n",
            "unknown operation 'steal'"},
           {"[[acl]]\nprincipal = \"a b\"\nresource = \"topic\"\nname = \"t\"\noperations = "
            "[\"read\"]\n",
            "principal 'a b'"},
           {"[[acl]]\nprincipal = \"a\"\nresource = \"cluster\"\nname = \"x\"\noperations = "
            "[\"alter\"]\n",
            "a cluster rule has no name"},
           {"[[acl]]\nprincipal = \"a\"\nresource = \"tpoic\"\nname = \"t\"\noperations = "
            "[\"read\"]\n",
            "'resource' is unknown or has a wrong value"},
           {"[acls]\n", "rules go in [[acl]] tables"},
           {"[[acl]\n", "acls.toml:1"}}) {
    EXPECT_FALSE(ferry::broker::parse_acls(text, "acls.toml", why)) << text;
    EXPECT_NE(why.find(needle), std::string::npos) << why;
  }
  // "all" is what the resource takes.
  auto all = ferry::broker::parse_acls(
      "[[acl]]\nprincipal = \"a\"\nresource = \"dlq\"\nname = \"x.dlq\"\noperations = [\"all\"]\n",
      "acls.toml", why);
  ASSERT_TRUE(all) << why;
  EXPECT_EQ(all->at(0).operations, ferry::protocol::ops_of(acl_resource::dlq));
}

class AclMatching : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ferry::testing::make_temp_dir("ferry-acl-match");
    const auto key = ferry::protocol::generate_curve_keys().value().public_key;
    const auto key2 = ferry::protocol::generate_curve_keys().value().public_key;
    std::ofstream(dir_ / "users.toml")
        << "[users.root]\npublic_key = \"" << key
        << "\"\nsuper_user = true\n[users.bob]\npublic_key = \"" << key2 << "\"\n";
    users_ = std::make_unique<ferry::broker::user_directory>(dir_ / "users.toml");
    std::string why;
    ASSERT_TRUE(users_->load(why)) << why;
    store_ = std::make_unique<acl_store>(env_, "/acls.toml");
    ASSERT_TRUE(store_->load(why)) << why;
    auth_ = std::make_unique<authorizer>(*users_, *store_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  bool allowed(std::string_view who, acl_resource r, std::string_view name, acl_op op) {
    return auth_->check(who, r, name, op).allowed;
  }
  void add(const acl_rule& r) {
    int changed = 0;
    std::string why;
    ASSERT_TRUE(store_->add({r}, changed, why)) << why;
  }

  fs::path dir_;
  ferry::storage::mem_env env_;
  std::unique_ptr<ferry::broker::user_directory> users_;
  std::unique_ptr<acl_store> store_;
  std::unique_ptr<authorizer> auth_;
};

TEST_F(AclMatching, NothingIsAllowedWithoutARuleButSuperUsersPassEveryCheck) {
  EXPECT_FALSE(allowed("bob", acl_resource::topic, "orders", acl_op::read));
  EXPECT_FALSE(allowed("bob", acl_resource::cluster, "", acl_op::describe));
  EXPECT_TRUE(allowed("root", acl_resource::topic, "orders", acl_op::read));
  EXPECT_TRUE(allowed("root", acl_resource::cluster, "", acl_op::alter));
  EXPECT_FALSE(allowed("", acl_resource::topic, "orders", acl_op::read)) << "no principal";
  EXPECT_EQ(auth_->check("bob", acl_resource::topic, "orders", acl_op::read).why,
            "no rule allows it");
}

TEST_F(AclMatching, LiteralPrefixAndWildcardRulesMatchWhatTheySay) {
  add(rule("bob", acl_resource::topic, "orders", ops({acl_op::read})));
  EXPECT_TRUE(allowed("bob", acl_resource::topic, "orders", acl_op::read));
  EXPECT_FALSE(allowed("bob", acl_resource::topic, "orders-eu", acl_op::read)) << "literal";
  EXPECT_FALSE(allowed("bob", acl_resource::topic, "orders", acl_op::write)) << "another op";
  EXPECT_FALSE(allowed("bob", acl_resource::group, "orders", acl_op::read)) << "another type";
  EXPECT_FALSE(allowed("carol", acl_resource::topic, "orders", acl_op::read)) << "another user";

  add(rule("bob", acl_resource::topic, "pay", ops({acl_op::write}), acl_pattern::prefix));
  EXPECT_TRUE(allowed("bob", acl_resource::topic, "payments", acl_op::write));
  EXPECT_TRUE(allowed("bob", acl_resource::topic, "pay", acl_op::write));
  EXPECT_FALSE(allowed("bob", acl_resource::topic, "repayments", acl_op::write));

  add(rule("*", acl_resource::schema, "*", ops({acl_op::read})));
  EXPECT_TRUE(allowed("bob", acl_resource::schema, "orders-value", acl_op::read));
  EXPECT_TRUE(allowed("carol", acl_resource::schema, "anything", acl_op::read));
}

TEST_F(AclMatching, DescribeIsImpliedAndADenyWinsOverAnyAllow) {
  add(rule("bob", acl_resource::topic, "", ops({acl_op::read, acl_op::write}),
           acl_pattern::prefix));
  EXPECT_TRUE(allowed("bob", acl_resource::topic, "orders", acl_op::describe)) << "implied";
  add(rule("bob", acl_resource::topic, "orders", ops({acl_op::write}), acl_pattern::literal, true));
  EXPECT_FALSE(allowed("bob", acl_resource::topic, "orders", acl_op::write));
  EXPECT_TRUE(allowed("bob", acl_resource::topic, "orders", acl_op::read)) << "only write denied";
  EXPECT_TRUE(allowed("bob", acl_resource::topic, "orders", acl_op::describe))
      << "a deny covers only its own operations: no implied describe";
  EXPECT_TRUE(allowed("bob", acl_resource::topic, "payments", acl_op::write));
  const auto d = auth_->check("bob", acl_resource::topic, "orders", acl_op::write);
  EXPECT_NE(d.why.find("deny bob write on topic 'orders'"), std::string::npos) << d.why;
  // A deny for everyone holds a super user too? No: super users pass every
  // check, deny rules included (as Kafka's super.users).
  add(rule("*", acl_resource::topic, "orders", ops({acl_op::read}), acl_pattern::literal, true));
  EXPECT_FALSE(allowed("bob", acl_resource::topic, "orders", acl_op::read));
  EXPECT_TRUE(allowed("root", acl_resource::topic, "orders", acl_op::read));
}

TEST_F(AclMatching, OnTheClusterOnlyAlterImpliesDescribe) {
  add(rule("bob", acl_resource::cluster, "", ops({acl_op::write})));
  EXPECT_TRUE(allowed("bob", acl_resource::cluster, "", acl_op::write));
  EXPECT_FALSE(allowed("bob", acl_resource::cluster, "", acl_op::describe))
      << "a producer id must not show the ACLs";
  add(rule("carol", acl_resource::cluster, "", ops({acl_op::alter})));
  EXPECT_TRUE(allowed("carol", acl_resource::cluster, "", acl_op::describe));
  EXPECT_FALSE(allowed("carol", acl_resource::topic, "x", acl_op::create))
      << "create is not implied by anything";
}

TEST_F(AclMatching, RemoveTakesEveryCopyOfARuleFromAHandEditedFile) {
  const std::string one =
      "[[acl]]\nprincipal = \"bob\"\nresource = \"topic\"\nname = \"t\"\noperations = "
      "[\"read\"]\n";
  const std::string text = one + one;
  ASSERT_TRUE(ferry::storage::write_file_atomic(
      env_, "/acls.toml", std::span(reinterpret_cast<const std::byte*>(text.data()), text.size())));
  int changed = 0;
  std::string why;
  ASSERT_TRUE(store_->remove({rule("bob", acl_resource::topic, "t", 0)}, changed, why)) << why;
  EXPECT_EQ(changed, 1);
  EXPECT_TRUE(store_->rules().empty());
  EXPECT_FALSE(allowed("bob", acl_resource::topic, "t", acl_op::read));
  // A file broken by hand is not overwritten by a change.
  const std::string broken = "[[acl]\n";
  ASSERT_TRUE(ferry::storage::write_file_atomic(
      env_, "/acls.toml",
      std::span(reinterpret_cast<const std::byte*>(broken.data()), broken.size())));
  EXPECT_FALSE(
      store_->add({rule("bob", acl_resource::topic, "t", ops({acl_op::read}))}, changed, why));
  EXPECT_NE(why.find("does not parse"), std::string::npos) << why;
}

TEST_F(AclMatching, ChangesMergeAreDurableAndAHandEditIsTakenUnlessItIsBroken) {
  add(rule("bob", acl_resource::topic, "orders", ops({acl_op::read})));
  add(rule("bob", acl_resource::topic, "orders", ops({acl_op::write})));
  ASSERT_EQ(store_->rules().size(), 1u) << "the same binding gains the operation";
  EXPECT_EQ(store_->rules()[0].operations, ops({acl_op::read, acl_op::write}));
  // Reopened from the file (the synced one: mem_env drops what was not).
  env_.crash();
  acl_store again(env_, "/acls.toml");
  std::string why;
  ASSERT_TRUE(again.load(why)) << why;
  EXPECT_EQ(again.rules(), store_->rules());

  int changed = 0;
  ASSERT_TRUE(store_->remove({rule("bob", acl_resource::topic, "orders", ops({acl_op::read}))},
                             changed, why));
  EXPECT_EQ(changed, 1);
  EXPECT_EQ(store_->rules()[0].operations, ops({acl_op::write}));
  ASSERT_TRUE(store_->remove({rule("bob", acl_resource::topic, "orders", 0)}, changed, why));
  EXPECT_TRUE(store_->rules().empty()) << "operations 0: the whole rule";
  EXPECT_FALSE(
      store_->add({rule("bob", acl_resource::topic, "t", ops({acl_op::redrive}))}, changed, why));
  EXPECT_NE(why.find("redrive means nothing on a topic"), std::string::npos) << why;

  // An edit by hand is taken at the next refresh ...
  auto write = [&](const std::string& text) {
    ASSERT_TRUE(ferry::storage::write_file_atomic(
        env_, "/acls.toml",
        std::span(reinterpret_cast<const std::byte*>(text.data()), text.size())));
  };
  write(
      "[[acl]]\nprincipal = \"bob\"\nresource = \"group\"\nname = \"g\"\noperations = "
      "[\"read\"]\n");
  auto t = std::chrono::steady_clock::now() + 2s;
  store_->refresh(t);
  ASSERT_EQ(store_->rules().size(), 1u);
  EXPECT_TRUE(allowed("bob", acl_resource::group, "g", acl_op::read));
  // ... and a broken one keeps the rules in force.
  write("[[acl]\n");
  store_->refresh(t + 2s);
  EXPECT_TRUE(allowed("bob", acl_resource::group, "g", acl_op::read));
}

TEST_F(AclMatching, AFailedWriteChangesNothing) {
  add(rule("bob", acl_resource::topic, "orders", ops({acl_op::read})));
  env_.fail_syncs(std::make_error_code(std::errc::io_error));
  int changed = 0;
  std::string why;
  EXPECT_FALSE(store_->add({rule("bob", acl_resource::topic, "payments", ops({acl_op::read}))},
                           changed, why));
  EXPECT_NE(why.find("may not have been made"), std::string::npos) << why;
  EXPECT_EQ(store_->rules().size(), 1u);
  EXPECT_FALSE(allowed("bob", acl_resource::topic, "payments", acl_op::read));
  // The file was not replaced (its temporary copy failed to sync): the rules
  // re-read from it are the old ones.
  env_.clear_faults();
  store_->refresh(std::chrono::steady_clock::now() + 5s);
  EXPECT_EQ(store_->rules().size(), 1u);
  EXPECT_FALSE(allowed("bob", acl_resource::topic, "payments", acl_op::read));
}

// --- a broker with security on -----------------------------------------------

class AclBrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ferry::testing::make_temp_dir("ferry-acl");
    ASSERT_FALSE(dir_.empty());
    std::string users;
    for (const char* name : {"server", "root", "bob", "carol"}) {
      auto k = ferry::protocol::generate_curve_keys();
      ASSERT_TRUE(k);
      std::string why;
      ASSERT_TRUE(ferry::protocol::write_key_files(dir_, name, k.value(), why)) << why;
      if (std::string_view(name) != "server")
        users += fmt::format("[users.{}]\npublic_key = \"{}\"\n{}", name, k.value().public_key,
                             std::string_view(name) == "root" ? "super_user = true\n" : "");
    }
    std::ofstream(dir_ / "users.toml") << users;
    cfg_.security.enabled = true;
    cfg_.security.server_key_file = dir_ / "server.key";
    cfg_.security.users_file = dir_ / "users.toml";
    cfg_.security.audit_file = dir_ / "audit.log";
    broker_.start(dir_ / "data", cfg_);
    root_ = std::make_unique<ferry::client::admin>(as("root"));
    ASSERT_TRUE(root_->create_topic("orders", {.partitions = 1})) << root_->last_error_message();
    ASSERT_TRUE(root_->create_topic("payments", {.partitions = 1}));
  }
  void TearDown() override {
    root_.reset();
    broker_.stop();
    fs::remove_all(dir_);
  }
  ferry::client::client_options as(const std::string& key) {
    auto o = ferry::testing::base_client_options(broker_.endpoint());
    o.request_timeout = 20s;
    o.api_timeout = 20s;
    o.key_file = (dir_ / (key + ".key")).string();
    o.server_key = (dir_ / "server.pub").string();
    return o;
  }
  void allow(const acl_rule& r) {
    auto a = root_->add_acls({r});
    ASSERT_TRUE(a) << root_->last_error_message();
  }
  // The error of producing one record to `topic` as `who` (empty: stored).
  std::error_code produce(const std::string& who, const std::string& topic,
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
    ferry::client::producer_options po;
    static_cast<ferry::client::client_options&>(po) = as(who);
    po.linger = 0ms;
    po.delivery_timeout = 10s;
    ferry::client::producer p(po);
    ferry::client::producer_record rec;
    rec.topic = topic;
    rec.value = R"({"marker":"purged","offsets":[0],"run":"r1","by":"test"})";
    for (auto& [k, v] : headers) rec.headers.push_back({k, v});
    auto m = p.send(std::move(rec)).get();
    return m ? std::error_code() : m.error();
  }
  double refusals(const std::string& resource, const std::string& op) {
    return ferry::testing::sample_value(broker_.get()->metrics().expose(),
                                        "ferry_broker_authorization_failures_total",
                                        {{"resource", resource}, {"operation", op}})
        .value_or(0);
  }

  fs::path dir_;
  ferry::broker::broker_config cfg_;
  ferry::testing::inproc_broker broker_;
  std::unique_ptr<ferry::client::admin> root_;
};

TEST_F(AclBrokerTest, AUserWithoutARuleIsRefusedWithAMessageThatSaysWhatToDo) {
  ferry::client::admin bob(as("bob"));
  auto c = bob.create_topic("bobs", {.partitions = 1});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), errc::not_authorized);
  EXPECT_NE(bob.last_error_message().find("not authorized to create topic bobs"), std::string::npos)
      << bob.last_error_message();
  EXPECT_NE(bob.last_error_message().find("ferry acls add --principal bob --topic bobs"),
            std::string::npos)
      << bob.last_error_message();
  EXPECT_EQ(produce("bob", "orders"), errc::not_authorized);
  EXPECT_EQ(bob.describe_topic("orders").error(), errc::not_authorized);
  EXPECT_EQ(bob.add_acls({rule("bob", acl_resource::topic, "*", ops({acl_op::write}))}).error(),
            errc::not_authorized)
      << "nobody grants themselves rights";
  auto listed = bob.list_topics();
  ASSERT_TRUE(listed) << "a list is not refused";
  EXPECT_TRUE(listed.value().empty()) << "it leaves out what bob may not describe";
  EXPECT_GE(refusals("topic", "create"), 1);
  EXPECT_GE(refusals("cluster", "write"), 1) << "a producer id: bob may write nowhere";
  EXPECT_GE(refusals("cluster", "alter"), 1);
  allow(rule("bob", acl_resource::topic, "payments", ops({acl_op::write})));
  EXPECT_EQ(produce("bob", "orders"), errc::not_authorized);
  EXPECT_GE(refusals("topic", "describe"), 1) << "the producer's look at the partitions";
  allow(rule("bob", acl_resource::topic, "orders", ops({acl_op::describe})));
  EXPECT_EQ(produce("bob", "orders"), errc::not_authorized);
  EXPECT_GE(refusals("topic", "write"), 1);
  // The negative control: the super user does all of it.
  EXPECT_FALSE(produce("root", "orders"));
  EXPECT_EQ(root_->list_topics().value().size(), 2u);
}

TEST_F(AclBrokerTest, RulesApplyAtOnceWithoutARestartAndSurviveOne) {
  allow(rule("bob", acl_resource::topic, "ord", ops({acl_op::write, acl_op::read}),
             acl_pattern::prefix));
  EXPECT_FALSE(produce("bob", "orders")) << "allowed by the prefix rule";
  EXPECT_EQ(produce("bob", "payments"), errc::not_authorized) << "outside the prefix";
  EXPECT_EQ(produce("carol", "orders"), errc::not_authorized) << "bob's rule, not carol's";
  ferry::client::admin bob(as("bob"));
  auto listed = bob.list_topics();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed.value().size(), 1u);
  EXPECT_EQ(listed.value()[0].name, "orders");

  broker_.restart();
  EXPECT_FALSE(produce("bob", "orders")) << "the rule was stored";
  ASSERT_TRUE(root_->list_topics()) << "reconnected";
  auto removed = root_->remove_acls(
      {rule("bob", acl_resource::topic, "ord", ops({acl_op::write}), acl_pattern::prefix)});
  ASSERT_TRUE(removed) << root_->last_error_message();
  EXPECT_EQ(removed.value(), 1);
  EXPECT_EQ(produce("bob", "orders"), errc::not_authorized) << "revoked from the next request";
  auto l = root_->list_acls("bob");
  ASSERT_TRUE(l);
  ASSERT_EQ(l.value().rules.size(), 1u);
  EXPECT_EQ(l.value().rules[0].operations, ops({acl_op::read})) << "read stays";
}

TEST_F(AclBrokerTest, ADenyWinsOverAnAllow) {
  allow(rule("*", acl_resource::topic, "*", ops({acl_op::write})));
  allow(rule("bob", acl_resource::topic, "payments", ops({acl_op::write}), acl_pattern::literal,
             true));
  EXPECT_EQ(produce("bob", "payments"), errc::not_authorized);
  EXPECT_FALSE(produce("bob", "orders")) << "only payments is denied";
  EXPECT_FALSE(produce("carol", "payments")) << "the deny is bob's";
}

TEST_F(AclBrokerTest, AGroupConsumerNeedsTheGroupAndTheTopic) {
  ASSERT_FALSE(produce("root", "orders"));
  allow(rule("bob", acl_resource::topic, "orders", ops({acl_op::read})));
  auto consume = [&](const std::string& group) {
    ferry::client::consumer_options co;
    static_cast<ferry::client::client_options&>(co) = as("bob");
    co.group_id = group;
    co.auto_offset_reset = ferry::client::offset_reset::earliest;
    ferry::client::consumer c(co);
    auto s = c.subscribe({"orders"});
    if (!s) return s.error();
    for (int i = 0; i < 20; ++i) {
      auto recs = c.poll(500ms);
      if (!recs) return recs.error();
      if (!recs.value().empty()) return std::error_code();
    }
    return make_error_code(errc::timeout);
  };
  EXPECT_EQ(consume("billing"), errc::not_authorized) << "no rule for the group";
  EXPECT_GE(refusals("group", "read"), 1);
  allow(rule("bob", acl_resource::group, "billing", ops({acl_op::read})));
  EXPECT_FALSE(consume("billing"));
  ASSERT_TRUE(root_->remove_acls({rule("bob", acl_resource::topic, "orders", 0)}));
  allow(rule("bob", acl_resource::topic, "orders", ops({acl_op::describe})));
  EXPECT_EQ(consume("billing2"), errc::not_authorized) << "the group, but not read on the topic";
  allow(rule("bob", acl_resource::group, "billing2", ops({acl_op::read})));
  EXPECT_EQ(consume("billing2"), errc::not_authorized) << "still no read on the topic";
  EXPECT_GE(refusals("topic", "read"), 1);
}

// A `ferry dlq` marker is a redrive or a purge: it needs that operation on
// the dlq resource, not only write on the topic.
TEST_F(AclBrokerTest, DeadLetterMarkersNeedRedriveOrPurge) {
  ASSERT_TRUE(root_->create_topic("orders.dlq", {.partitions = 1}));
  allow(rule("bob", acl_resource::topic, "orders.dlq", ops({acl_op::write})));
  const std::string marker(ferry::protocol::kDlqMarkerHeader);
  EXPECT_FALSE(produce("bob", "orders.dlq")) << "a dead letter, as a worker writes it";
  EXPECT_EQ(produce("bob", "orders.dlq", {{marker, "purged"}}), errc::not_authorized);
  EXPECT_EQ(produce("bob", "orders.dlq", {{marker, "redrive-start"}}), errc::not_authorized);
  EXPECT_GE(refusals("dlq", "purge"), 1);
  allow(rule("bob", acl_resource::dlq, "orders.dlq", ops({acl_op::purge})));
  EXPECT_FALSE(produce("bob", "orders.dlq", {{marker, "purged"}}));
  EXPECT_EQ(produce("bob", "orders.dlq", {{marker, "redrive-start"}}), errc::not_authorized)
      << "purge is not redrive";
  allow(rule("bob", acl_resource::dlq, "orders", ops({acl_op::redrive}), acl_pattern::prefix));
  EXPECT_FALSE(produce("bob", "orders.dlq", {{marker, "redrive-start"}})) << "now allowed";

  // The refused marker is in the audit log, as a refusal by bob.
  std::ifstream in(dir_ / "audit.log");
  std::string line;
  int refused = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["action"] == "dlq.purged" && j["outcome"] == "refused") {
      ++refused;
      EXPECT_EQ(j["principal"], "bob");
      EXPECT_EQ(j["error"], "NotAuthorized");
    }
  }
  EXPECT_EQ(refused, 1);
}

// By id, a schema is readable when a subject holding it is; a refusal does
// not name the subject.
TEST_F(AclBrokerTest, ASchemaByIdNeedsReadOnASubjectHoldingIt) {
  const std::string fbs = "table Order { id: string; }\nroot_type Order;\n";
  auto bfbs = ferry::schema::compile(fbs, "order.fbs");  // NOLINT
  ASSERT_TRUE(bfbs) << bfbs.error().message();
  auto reg = root_->register_schema("secret-orders-value", bfbs.value().bfbs, fbs);
  ASSERT_TRUE(reg) << root_->last_error_message();
  ferry::client::admin bob(as("bob"));
  auto got = bob.get_schema(reg.value().id);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), errc::not_authorized);
  EXPECT_EQ(bob.last_error_message().find("secret"), std::string::npos) << bob.last_error_message();
  allow(rule("bob", acl_resource::schema, "secret-", ops({acl_op::read}), acl_pattern::prefix));
  EXPECT_TRUE(bob.get_schema(reg.value().id)) << bob.last_error_message();
  auto subjects = bob.list_subjects();
  ASSERT_TRUE(subjects);
  EXPECT_EQ(subjects.value().subjects.size(), 1u);
}

TEST_F(AclBrokerTest, AclChangesAreAudited) {
  allow(rule("bob", acl_resource::group, "billing", ops({acl_op::read})));
  ferry::client::admin bob(as("bob"));
  EXPECT_FALSE(bob.remove_acls({rule("bob", acl_resource::group, "billing", 0)}));
  std::ifstream in(dir_ / "audit.log");
  std::vector<std::string> seen;
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["action"].get<std::string>().starts_with("acl."))
      seen.push_back(j["action"].get<std::string>() + ":" + j["principal"].get<std::string>() +
                     ":" + j["outcome"].get<std::string>());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"acl.add:root:ok", "acl.remove:bob:refused"}));
}

}  // namespace
