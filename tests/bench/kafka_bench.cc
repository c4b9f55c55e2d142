// librdkafka against ferryd's Kafka listener, for side-by-side runs with
// `ferry bench` on the same broker (docs/benchmarks.md). Not a test.
//
//   kafka_bench produce --bootstrap HOST:PORT --topic T [--records N] [--size B]
//       an idempotent producer, acks=all, linger 5 ms, 1 MiB batches, one
//       partition: records/s from the first send to the last delivery
//       report (every record acknowledged after ferryd's fsync).
//   kafka_bench consume --bootstrap HOST:PORT --topic T [--records N]
//       a consumer assigned partition 0 from the beginning: records/s until
//       N records arrived (ferryd serves the stored batches as they are).
//
// Output: one JSON object on stdout.
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct options {
  std::string mode, bootstrap, topic;
  long records = 1'000'000;
  std::size_t size = 256;
};

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "kafka_bench: %s\n", why.c_str());
  std::exit(1);
}

rd_kafka_conf_t* config(const options& o,
                        std::initializer_list<std::pair<const char*, const char*>> extra) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const char* k, const char* v) {
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
      die(std::string(k) + ": " + err);
  };
  set("bootstrap.servers", o.bootstrap.c_str());
  for (const auto& [k, v] : extra) set(k, v);
  return conf;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int produce(const options& o) {
  struct counts {
    long ok = 0, failed = 0;
  } c;
  auto* conf = config(o, {{"enable.idempotence", "true"},
                          {"acks", "all"},
                          {"linger.ms", "5"},
                          {"batch.size", "1048576"},
                          {"message.max.bytes", "2000000"},
                          {"queue.buffering.max.messages", "1000000"},
                          {"queue.buffering.max.kbytes", "1048576"}});
  rd_kafka_conf_set_opaque(conf, &c);
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* k = static_cast<counts*>(opaque);
    if (m->err)
      ++k->failed;
    else
      ++k->ok;
  });
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk == nullptr) die(err);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
  std::string value(o.size, 'x');
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < o.records; ++i) {
    while (rd_kafka_produce(rkt, 0, RD_KAFKA_MSG_F_COPY, value.data(), value.size(), nullptr, 0,
                            nullptr) != 0) {
      if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        die(rd_kafka_err2str(rd_kafka_last_error()));
      rd_kafka_poll(rk, 1);
    }
    if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
  }
  if (rd_kafka_flush(rk, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR) die("flush timed out");
  const double secs = seconds_since(start);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  if (c.failed > 0 || c.ok != o.records)
    die(std::to_string(c.failed) + " records failed, " + std::to_string(c.ok) + " acknowledged");
  std::printf(
      "{\"mode\":\"produce\",\"client\":\"librdkafka %s\",\"records\":%ld,\"size\":%zu,"
      "\"seconds\":%.3f,\"records_per_sec\":%.0f,\"mb_per_sec\":%.1f}\n",
      rd_kafka_version_str(), o.records, o.size, secs, static_cast<double>(o.records) / secs,
      static_cast<double>(o.records) * static_cast<double>(o.size) / secs / 1e6);
  return 0;
}

int consume(const options& o) {
  auto* conf = config(o, {{"group.id", "kafka-bench"},
                          {"enable.auto.commit", "false"},
                          {"fetch.max.bytes", "52428800"},
                          {"max.partition.fetch.bytes", "8388608"},
                          {"queued.max.messages.kbytes", "1048576"}});
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (rk == nullptr) die(err);
  rd_kafka_poll_set_consumer(rk);
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, o.topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  if (rd_kafka_assign(rk, list) != RD_KAFKA_RESP_ERR_NO_ERROR) die("assign failed");
  rd_kafka_topic_partition_list_destroy(list);
  long got = 0;
  std::size_t bytes = 0;
  const auto start = std::chrono::steady_clock::now();
  while (got < o.records) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 1000);
    if (m == nullptr) {
      if (seconds_since(start) > 120) die("consume timed out at " + std::to_string(got));
      continue;
    }
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++got;
      bytes += m->len;
    } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      die(rd_kafka_message_errstr(m));
    }
    rd_kafka_message_destroy(m);
  }
  const double secs = seconds_since(start);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  std::printf(
      "{\"mode\":\"consume\",\"client\":\"librdkafka %s\",\"records\":%ld,\"seconds\":%.3f,"
      "\"records_per_sec\":%.0f,\"mb_per_sec\":%.1f}\n",
      rd_kafka_version_str(), got, secs, static_cast<double>(got) / secs,
      static_cast<double>(bytes) / secs / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  if (argc < 2) die("usage: kafka_bench produce|consume --bootstrap HOST:PORT --topic T ...");
  o.mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::string v = argv[i + 1];
    if (a == "--bootstrap")
      o.bootstrap = v;
    else if (a == "--topic")
      o.topic = v;
    else if (a == "--records")
      o.records = std::atol(v.c_str());
    else if (a == "--size")
      o.size = static_cast<std::size_t>(std::atol(v.c_str()));
    else
      die("unknown option " + a);
  }
  if (o.bootstrap.empty() || o.topic.empty()) die("--bootstrap and --topic are required");
  if (o.mode == "produce") return produce(o);
  if (o.mode == "consume") return consume(o);
  die("mode must be produce or consume");
}
