// Fuzz target: ferryd's Kafka request decoding and the handlers behind it.
// The input picks an API (byte 0) and a served version of it (byte 1); the
// rest is the request body. It goes through the front-end's header decode
// and the API's handler in a pipeline round on a real broker core (a
// temporary data directory, relaxed fsync), as a request from a client
// would. Invariants: nothing crashes or trips the sanitizers; each request
// is answered at most once; a request that does not wait (everything but
// Fetch, JoinGroup and SyncGroup) is answered, answered with nothing
// (acks=0), or its connection closed, by the end of its round; every
// answer starts with the request's correlation id.
#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>

#include "core.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "fuzz_check.h"
#include "janitor.h"
#include "kafka/frontend.h"
#include "kafka/request.h"
#include "metrics_snapshot.h"
#include "pipeline.h"

namespace {

using namespace ferry;
using namespace ferry::broker;

class recording_connection final : public kafka::connection {
 public:
  struct outcome {
    int answers = 0;
    bool nothing = false, closed = false;
    std::int32_t correlation = 0;
  };
  void respond(std::uint64_t seq, std::vector<std::vector<std::byte>> r) override {
    auto& o = first(seq);
    ++o.answers;
    FERRY_FUZZ_CHECK(!r.empty() && r.front().size() >= 4);
    std::memcpy(&o.correlation, r.front().data(), 4);
  }
  void respond_nothing(std::uint64_t seq) override { first(seq).nothing = true; }
  void close_after(std::uint64_t seq) override { first(seq).closed = true; }
  void respond_then_close(std::uint64_t seq, std::vector<std::vector<std::byte>> r) override {
    auto& o = first(seq);
    ++o.answers;
    o.closed = true;
    FERRY_FUZZ_CHECK(!r.empty() && r.front().size() >= 4);
    std::memcpy(&o.correlation, r.front().data(), 4);
  }
  void pause_reading(std::chrono::milliseconds) override {}
  const std::string& peer() const override { return peer_; }
  std::map<std::uint64_t, outcome> seen;

 private:
  // A request is answered, answered with nothing, or closed - once.
  outcome& first(std::uint64_t seq) {
    auto [it, fresh] = seen.try_emplace(seq);
    FERRY_FUZZ_CHECK(fresh);
    return it->second;
  }
  std::string peer_ = "127.0.0.1:9";
};

struct harness {
  harness() {
    log::levels quiet;
    quiet.default_level = spdlog::level::off;  // every mutation would log its refusal
    log::set_levels(quiet);
    std::string tmpl = "/tmp/ferry-kafka-fuzz-XXXXXX";
    FERRY_FUZZ_CHECK(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    cfg.data_dir = dir;
    cfg.flush = storage::flush_mode::interval;  // no fsync per round: fuzzing speed
    core = std::make_unique<broker_core>(cfg, stats, jan);
    line = std::make_unique<pipeline>(*core, snapshot);
    front = std::make_unique<kafka_frontend>(cfg, stats, *line, "fuzz-cluster");
    thread_role_scope role(core_thread);
    FERRY_FUZZ_CHECK(open_core(*core, *line).has_value());
  }
  ~harness() {
    {
      thread_role_scope role(core_thread);
      line->finish();
    }
    front.reset();
    line.reset();
    core.reset();
    jan.stop();
    std::filesystem::remove_all(dir);
  }

  std::filesystem::path dir;
  broker_config cfg;
  metrics::registry registry;
  broker_metrics stats{registry};
  janitor jan;
  metrics_snapshot snapshot;
  std::unique_ptr<broker_core> core;
  std::unique_ptr<pipeline> line;
  std::unique_ptr<kafka_frontend> front;
  std::shared_ptr<recording_connection> conn = std::make_shared<recording_connection>();
  std::uint64_t seq = 0;
};

harness& the_harness() {
  static harness h;
  return h;
}

}  // namespace

// Frames one request from the input and runs it: 1 when the request was
// refused as malformed (its connection closed), 0 when it was answered or
// waits, -1 when the input picked ApiVersions (the front-end answers it).
int ferry_fuzz_kafka_one(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return -1;
  const auto& api = kafka::kApis[data[0] % kafka::kApis.size()];
  if (api.key == kafka::api_key::api_versions) return -1;
  const auto span = api.max_version - api.min_version + 1;
  const auto version = static_cast<std::int16_t>(api.min_version + data[1] % span);
  auto& h = the_harness();
  kafka::writer w;
  w.i16(static_cast<std::int16_t>(api.key));
  w.i16(version);
  const auto correlation = static_cast<std::int32_t>(h.seq * 7 + 1);
  w.i32(correlation);
  w.nullable_string("fuzz");
  if (kafka::flexible(static_cast<std::int16_t>(api.key), version)) w.tagged_fields();
  w.raw(std::as_bytes(std::span<const std::uint8_t>(data + 2, size - 2)));
  kafka::request_frame f;
  f.from = h.conn;
  f.seq = h.seq++;
  for (auto& chunk : std::move(w).take()) f.bytes.insert(f.bytes.end(), chunk.begin(), chunk.end());
  f.received = std::chrono::steady_clock::now();
  const auto seq = f.seq;
  auto q = decode_kafka_request(std::move(f));
  FERRY_FUZZ_CHECK(q != nullptr);  // the header is well formed by construction
  q->frontend = h.front.get();
  q->deadline = q->received;
  const auto handler = find_kafka_handler(q->api);
  FERRY_FUZZ_CHECK(handler != nullptr);
  std::deque<work> batch;
  batch.emplace_back(
      [handler, q = std::move(q)](broker::round& r) mutable { handler(r, std::move(q)); });
  {
    thread_role_scope role(core_thread);
    h.line->run_round(std::move(batch), std::chrono::steady_clock::now(), false);
  }
  int status = 0;
  const auto it = h.conn->seen.find(seq);
  const bool waits = api.key == kafka::api_key::fetch || api.key == kafka::api_key::join_group ||
                     api.key == kafka::api_key::sync_group;
  if (!waits) FERRY_FUZZ_CHECK(it != h.conn->seen.end());
  if (it != h.conn->seen.end()) {
    FERRY_FUZZ_CHECK(it->second.answers <= 1);
    if (it->second.answers == 1) {
      std::int32_t be_corr = 0;
      const auto* p = reinterpret_cast<const std::uint8_t*>(&it->second.correlation);
      be_corr =
          static_cast<std::int32_t>((std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                    (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]});
      FERRY_FUZZ_CHECK(be_corr == correlation);
    }
    status = it->second.closed ? 1 : 0;
    h.conn->seen.erase(it);
  }
  return status;
}

namespace {

std::size_t index_of(kafka::api_key key) {
  for (std::size_t i = 0; i < kafka::kApis.size(); ++i)
    if (kafka::kApis[i].key == key) return i;
  return 0;
}

std::vector<std::uint8_t> seed(kafka::api_key key, kafka::writer&& body) {
  const auto i = index_of(key);
  const auto& a = kafka::kApis[i];
  std::vector<std::uint8_t> out{static_cast<std::uint8_t>(i),
                                static_cast<std::uint8_t>(a.max_version - a.min_version)};
  for (const auto& chunk : std::move(body).take())
    for (auto b : chunk) out.push_back(static_cast<std::uint8_t>(b));
  return out;
}

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

}  // namespace

// A well-formed request of every API at its highest served version, in an
// order that makes the later ones meaningful (the topic first, a group
// member before its commits).
std::vector<std::vector<std::uint8_t>> ferry_fuzz_kafka_seeds() {
  using kafka::api_key;
  std::vector<std::vector<std::uint8_t>> s;
  {
    kafka::writer w;  // CreateTopics v4: "t", 2 partitions, one config
    w.array(1);
    w.string("t");
    w.i32(2);
    w.i16(1);
    w.array(0);
    w.array(1);
    w.string("retention.ms");
    w.nullable_string("3600000");
    w.i32(1000);
    w.boolean(false);
    s.push_back(seed(api_key::create_topics, std::move(w)));
  }
  {
    format::batch_builder b;
    for (int i = 0; i < 5; ++i) b.add(timestamp_ms(1000 + i), "k", "value " + std::to_string(i));
    const auto batch = b.finish();
    kafka::writer w;  // Produce v8: acks -1, one batch to t-0
    w.nullable_string(std::nullopt);
    w.i16(-1);
    w.i32(30000);
    w.array(1);
    w.string("t");
    w.array(1);
    w.i32(0);
    w.bytes(batch);
    s.push_back(seed(api_key::produce, std::move(w)));
  }
  {
    kafka::writer w;  // Fetch v11: no wait, from 0
    w.i32(-1);
    w.i32(0);
    w.i32(1);
    w.i32(1 << 20);
    w.i8(0);
    w.i32(0);
    w.i32(-1);
    w.array(1);
    w.string("t");
    w.array(1);
    w.i32(0);
    w.i32(0);
    w.i64(0);
    w.i64(-1);
    w.i32(1 << 20);
    w.array(0);
    w.string("");
    s.push_back(seed(api_key::fetch, std::move(w)));
  }
  {
    kafka::writer w;  // ListOffsets v5: by timestamp
    w.i32(-1);
    w.i8(0);
    w.array(1);
    w.string("t");
    w.array(2);
    w.i32(0);
    w.i32(0);
    w.i64(1002);
    w.i32(1);
    w.i32(0);
    w.i64(-1);
    s.push_back(seed(api_key::list_offsets, std::move(w)));
  }
  {
    kafka::writer w;  // Metadata v8: every topic
    w.array(-1);
    w.boolean(false);
    w.boolean(false);
    w.boolean(false);
    s.push_back(seed(api_key::metadata, std::move(w)));
  }
  {
    kafka::writer w;  // InitProducerId v1
    w.nullable_string(std::nullopt);
    w.i32(60000);
    s.push_back(seed(api_key::init_producer_id, std::move(w)));
  }
  {
    kafka::writer w;  // DescribeConfigs v3: topic t
    w.array(1);
    w.i8(2);
    w.string("t");
    w.array(-1);
    w.boolean(true);
    w.boolean(true);
    s.push_back(seed(api_key::describe_configs, std::move(w)));
  }
  {
    kafka::writer w;  // FindCoordinator v2
    w.string("g");
    w.i8(0);
    s.push_back(seed(api_key::find_coordinator, std::move(w)));
  }
  {
    kafka::writer sub;  // consumer Subscription v0
    sub.i16(0);
    sub.array(1);
    sub.string("t");
    sub.nullable_bytes(std::nullopt);
    std::string metadata;
    for (const auto& c : std::move(sub).take())
      metadata.append(reinterpret_cast<const char*>(c.data()), c.size());
    kafka::writer w;  // JoinGroup v5, a known member id (v4+ asks new members to rejoin)
    w.string("g");
    w.i32(10000);
    w.i32(10000);
    w.string("");
    w.nullable_string(std::nullopt);
    w.string("consumer");
    w.array(1);
    w.string("range");
    w.bytes(bytes_of(metadata));
    s.push_back(seed(api_key::join_group, std::move(w)));
  }
  for (auto key : {api_key::sync_group, api_key::heartbeat}) {
    kafka::writer w;  // SyncGroup v3 / Heartbeat v3 of generation 1
    w.string("g");
    w.i32(1);
    w.string("fuzz-000000000001");
    w.nullable_string(std::nullopt);
    if (key == api_key::sync_group) {
      w.array(1);
      w.string("fuzz-000000000001");
      w.bytes(bytes_of(std::string("\0\0\0\0\0\0\0\0\0\0", 10)));
    }
    s.push_back(seed(key, std::move(w)));
  }
  {
    kafka::writer w;  // OffsetCommit v7, outside a generation
    w.string("simple");
    w.i32(-1);
    w.string("");
    w.nullable_string(std::nullopt);
    w.array(1);
    w.string("t");
    w.array(1);
    w.i32(0);
    w.i64(3);
    w.i32(0);
    w.nullable_string("meta");
    s.push_back(seed(api_key::offset_commit, std::move(w)));
  }
  {
    kafka::writer w;  // OffsetFetch v5, every partition
    w.string("simple");
    w.array(-1);
    s.push_back(seed(api_key::offset_fetch, std::move(w)));
  }
  {
    kafka::writer w;  // DescribeGroups v4
    w.array(2);
    w.string("g");
    w.string("simple");
    w.boolean(true);
    s.push_back(seed(api_key::describe_groups, std::move(w)));
  }
  s.push_back(seed(api_key::list_groups, kafka::writer{}));
  {
    kafka::writer w;  // LeaveGroup v3
    w.string("g");
    w.array(1);
    w.string("fuzz-000000000001");
    w.nullable_string(std::nullopt);
    s.push_back(seed(api_key::leave_group, std::move(w)));
  }
  {
    kafka::writer w;  // DeleteTopics v3
    w.array(1);
    w.string("gone");
    w.i32(1000);
    s.push_back(seed(api_key::delete_topics, std::move(w)));
  }
  return s;
}

#ifdef FERRY_LIBFUZZER
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("FERRY_FUZZ_WRITE_CORPUS")) {
    int i = 0;
    for (const auto& s : ferry_fuzz_kafka_seeds()) {
      std::string path = std::string(dir) + "/seed-" + std::to_string(i++);
      if (FILE* f = std::fopen(path.c_str(), "wb")) {
        std::fwrite(s.data(), 1, s.size(), f);
        std::fclose(f);
      }
    }
  }
  return 0;
}
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)ferry_fuzz_kafka_one(data, size);
  return 0;
}
#endif
