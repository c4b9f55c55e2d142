// Broker scenarios measured against a real ferryd process (any build: pass
// its path, so a change is measured before and after on the same machine).
// Not a test: numbers go to docs/benchmarks.md.
//
//   broker_bench FERRYD idle-fetchers --fetchers N [--records R]
//       ferryd's CPU per produced record while N consumers long-poll other
//       partitions (one connection, N parked fetches, none satisfied).
//   broker_bench FERRYD delete-during-heartbeats [--segments S]
//       heartbeat round trips of a group member while a topic of S segments
//       is deleted: p50 / p99 / max from the DeleteTopic until its files
//       are gone.
//
// Output: one JSON object per run on stdout.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "ferry/format/batch.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/socket.h"

namespace {

using namespace ferry;
using namespace ferry::wire;
using steady = std::chrono::steady_clock;
namespace fs = std::filesystem;

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "broker_bench: %s\n", why.c_str());
  std::exit(1);
}

struct ferryd {
  pid_t pid = -1;
  std::string endpoint;
  fs::path dir;

  ferryd(const char* path, const fs::path& data) : dir(data) {
    int fds[2];
    if (::pipe(fds) != 0) die("pipe");
    pid = ::fork();
    if (pid == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      ::close(fds[1]);
      ::execl(path, path, "--data-dir", data.c_str(), "--listen", "tcp://127.0.0.1:*",
              "--log-level", "warn", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    std::string out;
    char c;
    while (::read(fds[0], &c, 1) == 1 && c != '\n') out.push_back(c);
    ::close(fds[0]);
    auto at = out.find("tcp://");
    if (at == std::string::npos) die("ferryd did not report its endpoint: " + out);
    endpoint = out.substr(at);
  }
  ~ferryd() {
    ::kill(pid, SIGTERM);
    int st = 0;
    ::waitpid(pid, &st, 0);
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  /// User + system CPU seconds of the process so far.
  double cpu_seconds() const {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), {});
    auto close = s.rfind(')');
    std::istringstream in(s.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15; ++i) {
      in >> field;
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
};

class client {
 public:
  client(zmq::context_t& ctx, const std::string& endpoint) : sock_(ctx, zmq::socket_type::dealer) {
    sock_.set(zmq::sockopt::linger, 0);
    sock_.set(zmq::sockopt::rcvhwm, 0);
    sock_.set(zmq::sockopt::sndhwm, 0);
    sock_.connect(endpoint);
  }
  std::uint64_t send(flatbuffers::FlatBufferBuilder& fbb, Body type, flatbuffers::Offset<void> body,
                     std::vector<std::vector<std::byte>> data = {}) {
    std::vector<zmq::message_t> frames;
    auto env = protocol::finish_envelope(fbb, ++next_, type, body);
    frames.emplace_back(env.data(), env.size());
    for (auto& d : data) frames.emplace_back(d.data(), d.size());
    if (!protocol::send_message(sock_, frames)) die("send failed");
    return next_;
  }
  /// The next reply (its frames; frame 0 the envelope), or nullopt on timeout.
  std::optional<std::vector<zmq::message_t>> recv(std::chrono::milliseconds timeout) {
    zmq::pollitem_t items[] = {{sock_.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, timeout);
    if (!(items[0].revents & ZMQ_POLLIN)) return std::nullopt;
    auto m = protocol::recv_message(sock_, true);
    if (!m) die("recv failed");
    protocol::ensure_aligned(m.value()[0]);
    return std::move(m).value();
  }
  const Envelope* call(flatbuffers::FlatBufferBuilder& fbb, Body type,
                       flatbuffers::Offset<void> body,
                       std::vector<std::vector<std::byte>> data = {},
                       std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    send(fbb, type, body, std::move(data));
    last_ = recv(timeout);
    if (!last_) die(std::string("no reply to ") + EnumNameBody(type));
    return GetEnvelope((*last_)[0].data());
  }

 private:
  zmq::socket_t sock_;
  std::uint64_t next_ = 0;
  std::optional<std::vector<zmq::message_t>> last_;
};

void create_topic(client& c, const std::string& name, int partitions,
                  std::int64_t segment_bytes = 0) {
  flatbuffers::FlatBufferBuilder fbb;
  auto conf = CreateTopicConfig(fbb, partitions, -1, -2, 0, segment_bytes);
  auto* env = c.call(fbb, Body::CreateTopicRequest,
                     CreateCreateTopicRequest(fbb, fbb.CreateString(name), conf).Union());
  if (env->body_as_CreateTopicResponse()->error() != ErrorCode::None)
    die("create topic " + name + ": " + env->body_as_CreateTopicResponse()->message()->str());
}

std::vector<std::byte> make_batch(int records, std::size_t value_bytes) {
  format::batch_builder b;
  const std::string value(value_bytes, 'v');
  for (int i = 0; i < records; ++i) b.add(timestamp_ms(1'000'000 + i), "key", value);
  return b.finish();
}

void produce(client& c, const std::string& topic, int partition, std::vector<std::byte> batch) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<ProduceEntry>> v{
      CreateProduceEntry(fbb, fbb.CreateString(topic), partition, 1)};
  std::vector<std::vector<std::byte>> data;
  data.push_back(std::move(batch));
  auto* env = c.call(fbb, Body::ProduceRequest,
                     CreateProduceRequest(fbb, fbb.CreateVector(v)).Union(), std::move(data));
  const auto* r = env->body_as_ProduceResponse()->results()->Get(0);
  if (r->error() != ErrorCode::None) die("produce: " + std::string(EnumNameErrorCode(r->error())));
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

fs::path temp_dir() {
  std::string tmpl = "/var/tmp/ferry-broker-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) die("mkdtemp");
  return tmpl;
}

int idle_fetchers(const char* path, int fetchers, int records) {
  ferryd d(path, temp_dir());
  zmq::context_t ctx(1);
  client admin(ctx, d.endpoint);
  create_topic(admin, "load", 1);
  const int idle_partitions = std::max(1, std::min(fetchers, 1000));
  create_topic(admin, "idle", idle_partitions);
  // N long polls that nothing will satisfy during the run.
  client idle(ctx, d.endpoint);
  for (int i = 0; i < fetchers; ++i) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<FetchEntry>> v{
        CreateFetchEntry(fbb, fbb.CreateString("idle"), i % idle_partitions, 0, 1 << 20)};
    idle.send(fbb, Body::FetchRequest,
              CreateFetchRequest(fbb, fbb.CreateVector(v), 30'000).Union());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // all parked
  constexpr int kPerBatch = 100;
  const auto batch = make_batch(kPerBatch, 256);
  const int batches = records / kPerBatch;
  const double cpu0 = d.cpu_seconds();
  const auto t0 = steady::now();
  for (int i = 0; i < batches; ++i) produce(admin, "load", 0, batch);
  const double secs = std::chrono::duration<double>(steady::now() - t0).count();
  const double cpu = d.cpu_seconds() - cpu0;
  const auto done = static_cast<double>(batches) * kPerBatch;
  std::printf(
      "{\"scenario\":\"idle-fetchers\",\"fetchers\":%d,\"records\":%.0f,\"batches\":%d,"
      "\"seconds\":%.3f,\"records_per_s\":%.0f,\"broker_cpu_s\":%.3f,"
      "\"broker_cpu_us_per_record\":%.3f,\"broker_cpu_us_per_batch\":%.1f}\n",
      fetchers, done, batches, secs, done / secs, cpu, cpu * 1e6 / done,
      cpu * 1e6 / static_cast<double>(batches));
  return 0;
}

int delete_during_heartbeats(const char* path, int segments) {
  ferryd d(path, temp_dir());
  zmq::context_t ctx(1);
  client admin(ctx, d.endpoint);
  create_topic(admin, "hb", 1);
  create_topic(admin, "big", 1, 4096);
  const auto batch = make_batch(10, 300);  // about 3.2 KiB: one batch per 4 KiB segment
  for (int i = 0; i < segments; ++i) produce(admin, "big", 0, batch);
  // One member, then heartbeats one after another.
  client member(ctx, d.endpoint);
  std::string member_id;
  std::int32_t generation = 0;
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<flatbuffers::String>> topics{fbb.CreateString("hb")};
    auto* env = member.call(
        fbb, Body::JoinGroupRequest,
        CreateJoinGroupRequest(fbb, fbb.CreateString("bench"), 0, fbb.CreateString("bench"),
                               fbb.CreateVector(topics), AssignStrategy::Range, 30'000, 30'000)
            .Union());
    const auto* r = env->body_as_JoinGroupResponse();
    if (r->error() != ErrorCode::None) die("join failed");
    member_id = r->member_id()->str();
    generation = r->generation();
  }
  std::atomic<bool> deleting{false}, done{false};
  std::vector<double> before, during;
  double delete_ms = 0;
  std::thread deleter([&] {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    client del(ctx, d.endpoint);
    flatbuffers::FlatBufferBuilder fbb;
    deleting = true;
    const auto t0 = steady::now();
    auto* env = del.call(fbb, Body::DeleteTopicRequest,
                         CreateDeleteTopicRequest(fbb, fbb.CreateString("big")).Union());
    delete_ms = std::chrono::duration<double, std::milli>(steady::now() - t0).count();
    if (env->body_as_DeleteTopicResponse()->error() != ErrorCode::None) die("delete failed");
    // Until the files are gone (the old broker removes them itself, the new one's janitor does).
    for (;;) {
      bool left = false;
      for (const auto& e : fs::directory_iterator(d.dir / "topics"))
        if (e.path().filename().string().rfind(".deleted-", 0) == 0) left = true;
      if (!left) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    done = true;
  });
  while (!done) {
    flatbuffers::FlatBufferBuilder fbb;
    auto m =
        CreateGroupMember(fbb, fbb.CreateString("bench"), fbb.CreateString(member_id), generation);
    const auto t0 = steady::now();
    auto* env = member.call(fbb, Body::HeartbeatRequest, CreateHeartbeatRequest(fbb, m).Union());
    const double ms = std::chrono::duration<double, std::milli>(steady::now() - t0).count();
    if (env->body_as_HeartbeatResponse()->error() != ErrorCode::None) die("heartbeat refused");
    (deleting ? during : before).push_back(ms);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  deleter.join();
  std::printf(
      "{\"scenario\":\"delete-during-heartbeats\",\"segments\":%d,\"delete_ms\":%.2f,"
      "\"heartbeats_before\":%zu,\"before_p50_ms\":%.3f,\"before_p99_ms\":%.3f,"
      "\"heartbeats_during\":%zu,\"during_p50_ms\":%.3f,\"during_p99_ms\":%.3f,"
      "\"during_max_ms\":%.3f}\n",
      segments, delete_ms, before.size(), percentile(before, 0.5), percentile(before, 0.99),
      during.size(), percentile(during, 0.5), percentile(during, 0.99), percentile(during, 1.0));
  return 0;
}

int int_flag(int argc, char** argv, const char* name, int fallback) {
  for (int i = 0; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: broker_bench FERRYD idle-fetchers --fetchers N [--records R]\n"
                 "       broker_bench FERRYD delete-during-heartbeats [--segments S]\n");
    return 2;
  }
  const std::string scenario = argv[2];
  if (scenario == "idle-fetchers")
    return idle_fetchers(argv[1], int_flag(argc, argv, "--fetchers", 10),
                         int_flag(argc, argv, "--records", 200'000));
  if (scenario == "delete-during-heartbeats")
    return delete_during_heartbeats(argv[1], int_flag(argc, argv, "--segments", 5000));
  std::fprintf(stderr, "broker_bench: unknown scenario %s\n", scenario.c_str());
  return 2;
}
