// ferryd speaks Kafka, checked with clients no one here wrote: kcat (the
// CLI, on librdkafka) and librdkafka itself, against a real ferryd process
// with --kafka-listen. Records cross over both ways between Kafka clients
// and Ferry's own; an idempotent acks=all producer stores each record
// once; topics are created, described and deleted through the Kafka admin
// API; bad frames are answered or the connection closed, never a hang.
#include <gtest/gtest.h>
#include <httplib.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/producer.h"
#include "ferry/core/endian.h"
#include "kafka_fixture.h"

namespace ferry::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class KafkaClients : public KafkaBroker {};

TEST_F(KafkaClients, KcatListsProducesAndConsumesAcrossProtocols) {
  create("orders", 2);
  auto meta = kcat("-L -J");
  ASSERT_EQ(meta.code, 0) << meta.err;
  const auto m = json::parse(meta.out);
  ASSERT_EQ(m["brokers"].size(), 1u);
  EXPECT_EQ(m["brokers"][0]["name"], kafka_);
  EXPECT_EQ(m["brokers"][0]["id"], 0);
  bool found = false;
  for (const auto& t : m["topics"])
    if (t["topic"] == "orders") {
      found = true;
      EXPECT_EQ(t["partitions"].size(), 2u);
    }
  EXPECT_TRUE(found) << meta.out;

  // kcat produces keys, values and a header; Ferry's consumer reads them.
  auto produced = kcat("-P -t orders -K: -H trace=abc", "k1:hello\\nk2:world\\nk1:again\\n");
  ASSERT_EQ(produced.code, 0) << produced.err;
  auto got = read_natively("orders", 2, 3);
  ASSERT_EQ(got.size(), 3u);
  std::multiset<std::string> values;
  for (const auto& r : got) {
    values.insert(r.key.value_or("") + "=" + r.value.value_or(""));
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0].key, "trace");
    EXPECT_EQ(r.headers[0].value, "abc");
  }
  EXPECT_EQ(values, (std::multiset<std::string>{"k1=hello", "k2=world", "k1=again"}));

  // Ferry's producer writes; kcat reads everything back.
  {
    auto po = client::producer_options{};
    static_cast<client::client_options&>(po) = base_client_options(native_);
    client::producer p(po);
    client::producer_record r;
    r.topic = "orders";
    r.key = "n1";
    r.value = "from-ferry";
    r.headers = {{"source", std::string("ferry")}};
    ASSERT_TRUE(p.send(std::move(r), [](const result<client::record_metadata>&) {}));
    ASSERT_TRUE(p.flush(10s));
  }
  auto consumed = kcat("-C -t orders -e -o beginning -f '%k=%s %h\\n'");
  ASSERT_EQ(consumed.code, 0) << consumed.err;
  for (const char* line : {"k1=hello trace=abc", "k2=world trace=abc", "k1=again trace=abc",
                           "n1=from-ferry source=ferry"})
    EXPECT_NE(consumed.out.find(line), std::string::npos) << consumed.out;
}

// librdkafka's idempotent producer (acks=all): every record stored once, at
// dense offsets, with the producer id the broker handed out.
TEST_F(KafkaClients, LibrdkafkaIdempotentProducerStoresEachRecordOnce) {
  create("payments", 3);
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", kafka_.c_str(), err, sizeof err),
            RD_KAFKA_CONF_OK);
  ASSERT_EQ(rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err),
            RD_KAFKA_CONF_OK);
  ASSERT_EQ(rd_kafka_conf_set(conf, "acks", "all", err, sizeof err), RD_KAFKA_CONF_OK);
  ASSERT_EQ(rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err), RD_KAFKA_CONF_OK);
  ASSERT_EQ(rd_kafka_conf_set(conf, "compression.codec", "lz4", err, sizeof err), RD_KAFKA_CONF_OK);
  struct counts {
    int ok = 0, failed = 0;
    std::string first_error;
  } c;
  rd_kafka_conf_set_opaque(conf, &c);
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* k = static_cast<counts*>(opaque);
    if (m->err) {
      ++k->failed;
      if (k->first_error.empty()) k->first_error = rd_kafka_err2str(m->err);
    } else {
      ++k->ok;
    }
  });
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;
  constexpr int kRecords = 3000;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, "payments", nullptr);
  for (int i = 0; i < kRecords; ++i) {
    std::string key = "order-" + std::to_string(i % 97);
    std::string value = "payment " + std::to_string(i);
    while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value.data(),
                            value.size(), key.data(), key.size(), nullptr) != 0) {
      ASSERT_EQ(rd_kafka_last_error(), RD_KAFKA_RESP_ERR__QUEUE_FULL);
      rd_kafka_poll(rk, 10);
    }
  }
  ASSERT_EQ(rd_kafka_flush(rk, 60000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  EXPECT_EQ(c.ok, kRecords) << c.first_error;
  EXPECT_EQ(c.failed, 0) << c.first_error;
  auto got = read_natively("payments", 3, kRecords);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kRecords));
  std::set<std::string> unique;
  std::map<int, std::int64_t> next;
  for (const auto& r : got) {
    unique.insert(r.value.value_or(""));
    EXPECT_EQ(r.offset.value(), next[r.partition.value()]++) << "dense offsets";
  }
  EXPECT_EQ(unique.size(), static_cast<std::size_t>(kRecords)) << "none stored twice";
}

// The Kafka admin API: CreateTopics with configs, DescribeConfigs, and the
// one-node refusals, then DeleteTopics.
TEST_F(KafkaClients, LibrdkafkaAdminCreatesDescribesAndDeletesTopics) {
  // With an audit log: topics made and removed through Kafka are in it.
  kill_ferryd();
  env_ = {{"FERRY_SECURITY_AUDIT_FILE", (dir_ / "audit.log").string()}};
  start_ferryd("127.0.0.1:0");
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", kafka_.c_str(), err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  auto wait_event = [&](rd_kafka_event_type_t type) {
    for (int i = 0; i < 300; ++i) {
      rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 100);
      if (ev == nullptr) continue;
      if (rd_kafka_event_type(ev) == type) return ev;
      rd_kafka_event_destroy(ev);
    }
    return static_cast<rd_kafka_event_t*>(nullptr);
  };
  rd_kafka_NewTopic_t* topics[2];
  topics[0] = rd_kafka_NewTopic_new("audit", 4, 1, err, sizeof err);
  ASSERT_EQ(rd_kafka_NewTopic_set_config(topics[0], "retention.ms", "3600000"),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  topics[1] = rd_kafka_NewTopic_new("replicated", 1, 3, err, sizeof err);
  rd_kafka_CreateTopics(rk, topics, 2, nullptr, q);
  auto* ev = wait_event(RD_KAFKA_EVENT_CREATETOPICS_RESULT);
  ASSERT_NE(ev, nullptr);
  size_t n = 0;
  const auto** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
  ASSERT_EQ(n, 2u);
  for (size_t i = 0; i < n; ++i) {
    const std::string name = rd_kafka_topic_result_name(results[i]);
    if (name == "audit") {
      EXPECT_EQ(rd_kafka_topic_result_error(results[i]), RD_KAFKA_RESP_ERR_NO_ERROR)
          << rd_kafka_topic_result_error_string(results[i]);
    } else {
      EXPECT_EQ(rd_kafka_topic_result_error(results[i]),
                RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR);
      EXPECT_NE(std::string(rd_kafka_topic_result_error_string(results[i])).find("one node"),
                std::string::npos);
    }
  }
  rd_kafka_event_destroy(ev);
  rd_kafka_NewTopic_destroy_array(topics, 2);
  // Ferry's own admin sees it with the Kafka config applied.
  client::admin a(base_client_options(native_));
  auto d = a.describe_topic("audit");
  ASSERT_TRUE(d) << a.last_error_message();
  EXPECT_EQ(d.value().partitions.size(), 4u);
  EXPECT_EQ(d.value().config.retention_ms, 3600000);

  rd_kafka_ConfigResource_t* res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, "audit");
  rd_kafka_DescribeConfigs(rk, &res, 1, nullptr, q);
  ev = wait_event(RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT);
  ASSERT_NE(ev, nullptr);
  const auto** described =
      rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
  ASSERT_EQ(n, 1u);
  size_t nc = 0;
  const auto** entries = rd_kafka_ConfigResource_configs(described[0], &nc);
  bool retention = false;
  for (size_t i = 0; i < nc; ++i)
    if (std::string(rd_kafka_ConfigEntry_name(entries[i])) == "retention.ms") {
      retention = true;
      EXPECT_STREQ(rd_kafka_ConfigEntry_value(entries[i]), "3600000");
    }
  EXPECT_TRUE(retention);
  rd_kafka_event_destroy(ev);
  rd_kafka_ConfigResource_destroy(res);

  rd_kafka_DeleteTopic_t* del = rd_kafka_DeleteTopic_new("audit");
  rd_kafka_DeleteTopics(rk, &del, 1, nullptr, q);
  ev = wait_event(RD_KAFKA_EVENT_DELETETOPICS_RESULT);
  ASSERT_NE(ev, nullptr);
  const auto** deleted =
      rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(rd_kafka_topic_result_error(deleted[0]), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_event_destroy(ev);
  rd_kafka_DeleteTopic_destroy(del);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  EXPECT_FALSE(a.describe_topic("audit"));

  std::ifstream log(dir_ / "audit.log");
  std::vector<std::string> actions;
  for (std::string line; std::getline(log, line);) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["principal"], "anonymous") << line;
    EXPECT_EQ(j["target"]["listener"], "kafka") << line;
    EXPECT_NE(j["peer"].get<std::string>().find("127.0.0.1:"), std::string::npos) << line;
    actions.push_back(j["action"].get<std::string>() + " " +
                      j["target"]["topic"].get<std::string>() + " " +
                      j["outcome"].get<std::string>());
  }
  EXPECT_EQ(actions, (std::vector<std::string>{"topic.create audit ok", "topic.delete audit ok"}))
      << "the refused replication factor never reached the topic table";
}

// Raw frames: an API ferryd does not serve is answered (never a hang), an
// oversized frame closes its own connection only.
TEST_F(KafkaClients, UnservedApisAreAnsweredAndOversizedFramesCloseTheirConnection) {
  const auto port = std::stoi(kafka_.substr(kafka_.rfind(':') + 1));
  auto connect = [&] {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  };
  // API key 57 (UpdateFeatures), not served: answered with its correlation id.
  int fd = connect();
  std::byte req[4 + 10] = {};
  be::store<std::int32_t>(req, 10);
  be::store<std::int16_t>(req + 4, 57);
  be::store<std::int16_t>(req + 6, 0);
  be::store<std::int32_t>(req + 8, 4242);
  be::store<std::int16_t>(req + 12, -1);  // null client id
  ASSERT_EQ(::send(fd, req, sizeof req, 0), static_cast<ssize_t>(sizeof req));
  std::byte resp[10];
  ASSERT_EQ(::recv(fd, resp, sizeof resp, MSG_WAITALL), static_cast<ssize_t>(sizeof resp));
  EXPECT_EQ(be::load<std::int32_t>(resp + 4), 4242);
  EXPECT_EQ(be::load<std::int16_t>(resp + 8), 35) << "UNSUPPORTED_VERSION";
  ::close(fd);
  // A frame above network.max_request_bytes: the connection closes.
  fd = connect();
  std::byte huge[4];
  be::store<std::int32_t>(huge, 512 << 20);
  ASSERT_EQ(::send(fd, huge, sizeof huge, 0), 4);
  std::byte one;
  EXPECT_EQ(::recv(fd, &one, 1, 0), 0) << "closed by the broker";
  ::close(fd);
  // Everyone else is still served.
  auto meta = kcat("-L -J");
  EXPECT_EQ(meta.code, 0) << meta.err;
  // And all of it is counted.
  httplib::Client http("127.0.0.1", std::stoi(metrics_.substr(metrics_.find(':') + 1)));
  auto m = http.Get("/metrics");
  ASSERT_TRUE(m);
  for (const char* line : {"ferry_kafka_connections_closed_total{reason=\"oversized\"} 1",
                           "ferry_broker_requests_total{type=\"kafka.unknown\"} 1",
                           "ferry_broker_requests_total{type=\"kafka.Metadata\"}"})
    EXPECT_NE(m->body.find(line), std::string::npos) << line;
}

// A connection that sends nothing is closed after network.kafka_idle_ms,
// and counted; a busy one on the same listener is not.
TEST_F(KafkaClients, IdleConnectionsAreClosedAndCounted) {
  kill_ferryd();
  env_ = {{"FERRY_NETWORK_KAFKA_IDLE_MS", "1000"}};
  start_ferryd("127.0.0.1:0");
  const auto port = std::stoi(kafka_.substr(kafka_.rfind(':') + 1));
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const auto start = std::chrono::steady_clock::now();
  std::byte one;
  EXPECT_EQ(::recv(fd, &one, 1, 0), 0) << "closed by the broker";
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
  ::close(fd);
  auto meta = kcat("-L -J");
  EXPECT_EQ(meta.code, 0) << meta.err;
  httplib::Client http("127.0.0.1", std::stoi(metrics_.substr(metrics_.find(':') + 1)));
  auto m = http.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("ferry_kafka_connections_closed_total{reason=\"idle\"} 1"),
            std::string::npos)
      << m->body.substr(0, 2000);
}

}  // namespace
}  // namespace ferry::testing
