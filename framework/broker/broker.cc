#include "ferry/broker/broker.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <tuple>
#include <zmq.hpp>

#include "ferry/broker/wire_errors.h"
#include "ferry/core/clock.h"
#include "ferry/core/crash_point.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "ferry/metrics/registry.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/compatibility.h"
#include "ferry/protocol/errc.h"
#include "ferry/protocol/socket.h"
#include "ferry/storage/errc.h"
#include "ferry/storage/log.h"
#include "groups.h"
#include "offset_store.h"
#include "producer_state.h"
#include "schema_registry.h"

namespace ferry::broker {

namespace fs = std::filesystem;
using namespace ferry::wire;
using steady = std::chrono::steady_clock;

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("broker");
  return l;
}

struct topic_settings {
  std::int32_t partitions = 1;
  std::int64_t retention_ms = -1;
  std::int64_t retention_bytes = -1;
  std::int64_t segment_bytes = 64ll << 20;
  std::int32_t max_message_bytes = 8 << 20;
  std::string schema_subject;      // "" : none bound
  bool schema_validation = false;  // records must carry a schema id of schema_subject
};

// Per-topic counters, looked up once (metrics::family::with() locks).
struct topic_counters {
  metrics::counter* records_in = nullptr;
  metrics::counter* bytes_in = nullptr;
  metrics::counter* records_out = nullptr;
  metrics::counter* bytes_out = nullptr;
};

struct topic {
  std::string name;
  topic_settings settings;
  std::vector<std::unique_ptr<storage::partition_log>> logs;
  std::vector<partition_producers> producers;  // idempotent producers, one per partition
  topic_counters counters;
};

// The broker's metrics (docs/observability.md lists them). Counters and
// histograms are updated where the work happens; per-partition and group
// values are read by the disk thread when a scrape asks (snapshot()).
struct broker_metrics {
  explicit broker_metrics(metrics::registry& r)
      : reg(r),
        records_in(r.counter_family("ferry_broker_records_in_total",
                                    "Records appended to the topic's partitions (acknowledged "
                                    "produces; idempotent retries not counted again)",
                                    {"topic"})),
        bytes_in(r.counter_family("ferry_broker_bytes_in_total",
                                  "Bytes of record batches appended to the topic", {"topic"})),
        records_out(r.counter_family("ferry_broker_records_out_total",
                                     "Records returned by fetches of the topic", {"topic"})),
        bytes_out(r.counter_family("ferry_broker_bytes_out_total",
                                   "Bytes of record batches returned by fetches of the topic",
                                   {"topic"})),
        requests(r.counter_family("ferry_broker_requests_total",
                                  "Requests received and decoded, by type", {"type"})),
        refused(r.counter_family(
            "ferry_broker_refused_total",
            "Error answers by code: each produce, fetch or commit entry answered with an error, "
            "each refused fetch, topic create/delete/describe, and each request refused before "
            "it was queued (undecodable, queue full, stopping)",
            {"code"})),
        produce_latency(r.histogram_metric(
            "ferry_broker_produce_latency_seconds",
            "Produce requests from receipt to reply, including the fsync of their data",
            metrics::latency_buckets)),
        fetch_latency(r.histogram_metric(
            "ferry_broker_fetch_latency_seconds",
            "Fetch requests from receipt to reply, including long-poll waits for data",
            metrics::latency_buckets)),
        fsync(r.histogram_family("ferry_storage_fsync_duration_seconds",
                                 "fdatasync calls by file kind (partition logs, group offsets)",
                                 {"file"}, metrics::fsync_buckets)),
        fsync_partition(fsync.with({"partition"})),
        fsync_offsets(fsync.with({"offsets"})),
        connections(r.gauge_metric("ferry_broker_connections", "Open client connections (TCP)")),
        connections_accepted(r.counter_metric("ferry_broker_connections_accepted_total",
                                              "Client connections accepted (TCP)")) {}

  topic_counters for_topic(const std::string& t) {
    return {&records_in.with({t}), &bytes_in.with({t}), &records_out.with({t}),
            &bytes_out.with({t})};
  }
  void forget_topic(const std::string& t) {
    for (auto* f : {&records_in, &bytes_in, &records_out, &bytes_out}) f->remove({t});
  }
  // Called from both threads; each code's series is looked up once.
  void refuse(ErrorCode code) {
    if (code == ErrorCode::None) return;
    const auto i = static_cast<std::size_t>(code);
    if (i >= refused_by_code.size()) return;
    auto* c = refused_by_code[i].load(std::memory_order_acquire);
    if (c == nullptr) {
      c = &refused.with({EnumNameErrorCode(code)});  // the same series for every caller
      refused_by_code[i].store(c, std::memory_order_release);
    }
    c->inc();
  }

  metrics::registry& reg;
  metrics::family<metrics::counter>& records_in;
  metrics::family<metrics::counter>& bytes_in;
  metrics::family<metrics::counter>& records_out;
  metrics::family<metrics::counter>& bytes_out;
  metrics::family<metrics::counter>& requests;
  metrics::family<metrics::counter>& refused;
  metrics::histogram& produce_latency;
  metrics::histogram& fetch_latency;
  metrics::family<metrics::histogram>& fsync;
  metrics::histogram& fsync_partition;
  metrics::histogram& fsync_offsets;
  metrics::gauge& connections;
  metrics::counter& connections_accepted;
  std::array<std::atomic<metrics::counter*>, static_cast<std::size_t>(ErrorCode::MAX) + 1>
      refused_by_code{};
};

// Times one fsync-like call into `h`.
template <typename F>
auto timed(metrics::histogram& h, F&& f) {
  const auto start = steady::now();
  auto r = f();
  h.observe(steady::now() - start);
  return r;
}

// The outcome of one entry of a commit (CommitOffsetsRequest or a fetch's).
struct commit_outcome {
  std::string topic;
  std::int32_t partition = 0;
  ErrorCode error = ErrorCode::None;
  std::string message;
  bool staged = false;  // appended to the offsets log; durable after the round's sync
};

// One decoded request, owned by whichever thread holds it.
struct job {
  zmq::message_t identity;
  std::vector<zmq::message_t> frames;  // [0] envelope, [1..] data
  const Envelope* env = nullptr;
  steady::time_point received{};  // by the network thread
  steady::time_point deadline{};  // fetch long poll
  std::string peer;               // JoinGroup: the client's address
  // Commits (CommitOffsets, DeleteGroup, a fetch's commit): request-level
  // status and per-entry outcomes, final once the offsets log is synced.
  ErrorCode commit_error = ErrorCode::None;
  std::string commit_message;
  std::vector<commit_outcome> commits;
};

struct reply {
  zmq::message_t identity;
  std::vector<zmq::message_t> frames;
};

// libzmq calls this on its I/O thread once a zero-copy reply is sent
// (tools/tsan.supp names it: libzmq's synchronisation is not instrumented).
void free_owned_bytes(void*, void* hint) {
  delete static_cast<std::vector<std::byte>*>(hint);
}

zmq::message_t message_from(std::vector<std::byte>&& bytes) {
  auto* owned = new std::vector<std::byte>(std::move(bytes));
  return zmq::message_t(owned->data(), owned->size(), free_owned_bytes, owned);
}

zmq::message_t envelope_message(flatbuffers::FlatBufferBuilder& fbb, std::uint64_t id, Body type,
                                flatbuffers::Offset<void> body) {
  return message_from(protocol::finish_envelope(fbb, id, type, body));
}

std::string describe(std::error_code ec) {
  return ec.message();
}

}  // namespace

// <data_dir>/LOCK, held with flock() for the broker's life: a second broker
// on the same directory would recover and append to files the first one is
// writing. The kernel drops the lock when the process dies (kill -9
// included), so it is never stale. The file holds the owner's pid, for the
// refusal message.
class data_dir_lock {
 public:
  data_dir_lock() = default;
  data_dir_lock(const data_dir_lock&) = delete;
  data_dir_lock& operator=(const data_dir_lock&) = delete;
  ~data_dir_lock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }

  result<void> acquire(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    const auto path = dir / "LOCK";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      const int e = errno;
      logger()->error("cannot open {}: {}", path.string(), std::strerror(e));
      return std::error_code(e, std::generic_category());
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      char owner[32] = {};
      auto n = ::pread(fd_, owner, sizeof owner - 1, 0);
      std::string pid = n > 0 ? std::string(owner, static_cast<std::size_t>(n)) : "";
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      ::close(fd_);
      fd_ = -1;
      if (e == EWOULDBLOCK) {
        logger()->error(
            "data directory {} is in use by another ferryd{}: stop it first, or give this one "
            "another --data-dir",
            dir.string(), pid.empty() ? "" : " (pid " + pid + ")");
        return make_error_code(errc::already_exists);
      }
      logger()->error("cannot lock {}: {}", path.string(), std::strerror(e));
      return std::error_code(e, std::generic_category());
    }
    const std::string me = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) < 0)
      logger()->warn("cannot write the pid to {}: {}", path.string(), std::strerror(errno));
    return success();
  }

 private:
  int fd_ = -1;
};

struct broker::impl {
  broker_config cfg;
  std::shared_ptr<metrics::registry> metrics_reg;
  broker_metrics stats;
  data_dir_lock dir_lock;  // released after everything below
  fs::path topics_dir;
  std::map<std::string, topic, std::less<>> topics;  // disk thread only (after open)
  std::unique_ptr<producer_registry> producer_ids;   // disk thread only (after open)
  steady::time_point next_producer_expiry{};

  zmq::context_t ctx{1};
  std::string wake_endpoint;
  std::string bound;
  mutable std::mutex bound_mu;
  std::atomic<bool> ready_flag{false};
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> disk_done{false};
  std::atomic<std::int64_t> in_flight{0};
  std::thread net_thread, disk_thread;
  zmq::socket_t router;  // created in start(), used by the network thread only

  // network -> disk
  std::mutex jobs_mu;
  std::condition_variable jobs_cv;
  std::deque<std::unique_ptr<job>> jobs;
  bool stopping = false;

  // disk -> network
  std::mutex replies_mu;
  std::vector<reply> replies;

  // disk thread state
  std::vector<std::unique_ptr<job>> parked;
  std::unique_ptr<offset_store> offsets;
  std::unique_ptr<schema_registry> registry;
  std::unique_ptr<group_coordinator> groups;
  std::map<std::uint64_t, std::unique_ptr<job>> joins;  // waiting JoinGroups by token
  std::uint64_t next_join_token = 0;
  std::vector<std::unique_ptr<job>> offset_jobs;  // commits waiting for the offsets sync
  steady::time_point started_at = steady::now();
  steady::time_point next_retention{};
  std::vector<fs::path> pending_removals;
  std::uint64_t deletions = 0;
  bool posted = false;  // a reply was queued since the last wake-up

  // A scrape asks the disk thread for per-partition and group values.
  std::atomic<bool> snapshot_wanted{false};
  std::atomic<bool> disk_running{false};
  std::mutex snapshot_mu;
  std::condition_variable snapshot_cv;
  std::uint64_t snapshot_gen = 0;                     // guarded by snapshot_mu
  std::vector<metrics::collected> snapshot_families;  // guarded by snapshot_mu
  steady::time_point snapshot_at{};                   // guarded by snapshot_mu
  // The oldest unconsumed record's timestamp per group partition, for the
  // committed offset it was read at: a scrape reads the log only when a
  // group committed since the last one (disk thread).
  std::map<std::tuple<std::string, std::string, std::int32_t>,
           std::pair<std::int64_t, std::int64_t>>
      oldest_cache;
  std::uint64_t collector_id = 0;

  impl(broker_config c, std::shared_ptr<metrics::registry> r)
      : cfg(std::move(c)),
        metrics_reg(r ? std::move(r) : std::make_shared<metrics::registry>()),
        stats(*metrics_reg) {}

  // --- topics on disk --------------------------------------------------------

  storage::log_config log_config_for(const topic& t, std::int32_t p) const {
    storage::log_config lc;
    lc.name = fmt::format("{}-{}", t.name, p);
    lc.segment_bytes = static_cast<std::uint64_t>(t.settings.segment_bytes);
    lc.retention_time = std::chrono::milliseconds(t.settings.retention_ms);
    lc.retention_bytes = t.settings.retention_bytes;
    lc.max_batch_bytes = static_cast<std::uint32_t>(t.settings.max_message_bytes);
    lc.index_interval_bytes = cfg.index_interval_bytes;
    lc.flush = cfg.flush;
    lc.flush_interval = cfg.flush_interval;
    lc.recovery = cfg.recovery;
    return lc;
  }

  static std::vector<std::byte> to_json(const topic& t) {
    nlohmann::json j = {{"format", 1},
                        {"name", t.name},
                        {"partitions", t.settings.partitions},
                        {"retention_ms", t.settings.retention_ms},
                        {"retention_bytes", t.settings.retention_bytes},
                        {"segment_bytes", t.settings.segment_bytes},
                        {"max_message_bytes", t.settings.max_message_bytes},
                        {"schema_subject", t.settings.schema_subject},
                        {"schema_validation", t.settings.schema_validation}};
    auto s = j.dump(2) + "\n";
    auto b = reinterpret_cast<const std::byte*>(s.data());
    return {b, b + s.size()};
  }

  result<void> open_logs(topic& t) {
    for (std::int32_t p = 0; p < t.settings.partitions; ++p) {
      auto dir = topics_dir / t.name / std::to_string(p);
      auto log = storage::partition_log::open(storage::posix_env(), dir, log_config_for(t, p),
                                              system_clock::instance());
      if (!log) {
        logger()->error("topic {}: cannot open partition {}: {}", t.name, p, log.error().message());
        return log.error();
      }
      // Idempotent producers: rebuilt from the log tail (producer_state.h).
      partition_producers pp;
      auto scan = pp.rebuild(storage::posix_env(), dir, *log.value(),
                             system_clock::instance().wall_now().value());
      if (!scan)
        logger()->warn("topic {}: partition {}: rebuilding producer state stopped early: {}",
                       t.name, p, scan.error().message());
      else if (pp.size() > 0)
        logger()->info("topic {}: partition {}: {} producers from {} bytes of log tail", t.name, p,
                       pp.size(), scan.value().bytes);
      t.logs.push_back(std::move(log).value());
      t.producers.push_back(std::move(pp));
    }
    return success();
  }

  result<void> load_topics() {
    auto& env = storage::posix_env();
    FERRY_TRY(env.create_dirs(topics_dir));
    FERRY_TRY(env.sync_dir(cfg.data_dir));
    FERRY_TRY(auto names, env.list_dir(topics_dir));
    for (const auto& n : names) {
      auto dir = topics_dir / n;
      if (n.rfind(".deleted-", 0) == 0) {
        std::error_code ec;
        fs::remove_all(dir, ec);
        continue;
      }
      auto meta = storage::read_file(env, dir / "topic.json");
      if (!meta) {
        logger()->warn("ignoring {}: no topic.json (a topic creation that did not finish)",
                       dir.string());
        continue;
      }
      topic t;
      try {
        auto j = nlohmann::json::parse(
            std::string(reinterpret_cast<const char*>(meta.value().data()), meta.value().size()));
        t.name = j.at("name").get<std::string>();
        t.settings.partitions = j.at("partitions").get<std::int32_t>();
        t.settings.retention_ms = j.at("retention_ms").get<std::int64_t>();
        t.settings.retention_bytes = j.at("retention_bytes").get<std::int64_t>();
        t.settings.segment_bytes = j.at("segment_bytes").get<std::int64_t>();
        t.settings.max_message_bytes = j.at("max_message_bytes").get<std::int32_t>();
        // Added with the schema registry; absent in older topic.json files.
        t.settings.schema_subject = j.value("schema_subject", std::string());
        t.settings.schema_validation = j.value("schema_validation", false);
      } catch (const std::exception& e) {
        logger()->error("{}/topic.json is unreadable ({}); refusing to start: fix or remove it",
                        dir.string(), e.what());
        return ferry::errc::corrupt_data;
      }
      if (t.name != n || t.settings.partitions < 1) {
        logger()->error("{}/topic.json does not match its directory; refusing to start",
                        dir.string());
        return ferry::errc::corrupt_data;
      }
      FERRY_TRY(open_logs(t));
      t.counters = stats.for_topic(t.name);
      logger()->info("loaded topic {} ({} partitions)", t.name, t.settings.partitions);
      auto name = t.name;
      topics.emplace(std::move(name), std::move(t));
    }
    return success();
  }

  // Validates a CreateTopic config against broker limits; fills defaults.
  std::optional<std::string> settings_from(const TopicConfig* c, topic_settings& s) const {
    s.partitions = cfg.topics.partitions;
    s.retention_ms = cfg.topics.retention_ms;
    s.retention_bytes = cfg.topics.retention_bytes;
    s.segment_bytes = cfg.topics.segment_bytes;
    s.max_message_bytes = cfg.topics.max_message_bytes;
    if (c != nullptr) {
      if (c->partitions() != 0) s.partitions = c->partitions();
      if (c->retention_ms() != -2) s.retention_ms = c->retention_ms();
      if (c->retention_bytes() != -2) s.retention_bytes = c->retention_bytes();
      if (c->segment_bytes() != 0) s.segment_bytes = c->segment_bytes();
      if (c->max_message_bytes() != 0) s.max_message_bytes = c->max_message_bytes();
      if (c->schema_subject()) s.schema_subject = c->schema_subject()->str();
      s.schema_validation = c->schema_validation();
    }
    if (!s.schema_subject.empty() && !protocol::valid_subject_name(s.schema_subject))
      return "schema_subject must be 1-249 of [A-Za-z0-9._-]";
    if (s.partitions < 1 || s.partitions > cfg.max_partitions)
      return fmt::format("partitions must be 1..{}, got {}", cfg.max_partitions, s.partitions);
    if (s.retention_ms < -1 || s.retention_ms == 0)
      return "retention_ms must be -1 (forever) or positive";
    if (s.retention_bytes < -1 || s.retention_bytes == 0)
      return "retention_bytes must be -1 (unlimited) or positive";
    if (s.segment_bytes < 4096 || s.segment_bytes > (1ll << 30))
      return "segment_bytes must be 4096..1073741824";
    if (s.max_message_bytes < 128 || s.max_message_bytes > (64 << 20) ||
        s.max_message_bytes + 65536 > cfg.socket.max_message_bytes)
      return fmt::format("max_message_bytes must be 128..{}",
                         std::min<std::int64_t>(64 << 20, cfg.socket.max_message_bytes - 65536));
    return std::nullopt;
  }

  std::pair<ErrorCode, std::string> create_topic(std::string_view name, const TopicConfig* c) {
    if (topics.count(name))
      return {ErrorCode::TopicAlreadyExists, fmt::format("topic {} already exists", name)};
    topic t;
    t.name = std::string(name);
    if (auto err = settings_from(c, t.settings)) return {ErrorCode::InvalidConfig, *err};
    if (auto refused = validation_refused(t)) return *refused;
    auto& env = storage::posix_env();
    auto dir = topics_dir / t.name;
    auto r = [&]() -> result<void> {
      FERRY_TRY(env.create_dirs(dir));
      FERRY_TRY(storage::write_file_atomic(env, dir / "topic.json", to_json(t)));
      FERRY_TRY(env.sync_dir(topics_dir));
      return open_logs(t);
    }();
    if (!r) {
      std::error_code ec;
      fs::remove_all(dir, ec);
      return {ErrorCode::Internal,
              fmt::format("creating topic {} failed: {}", name, r.error().message())};
    }
    logger()->info("created topic {} ({} partitions)", t.name, t.settings.partitions);
    t.counters = stats.for_topic(t.name);
    topics.emplace(t.name, std::move(t));
    return {ErrorCode::None, ""};
  }

  std::pair<ErrorCode, std::string> delete_topic(std::string_view name) {
    auto it = topics.find(name);
    if (it == topics.end()) return {ErrorCode::UnknownTopic, fmt::format("unknown topic {}", name)};
    auto from = topics_dir / it->first;
    // A short, unique name (topic names may be long); open logs survive the rename.
    auto to = topics_dir / fmt::format(".deleted-{}-{}",
                                       system_clock::instance().wall_now().value(), ++deletions);
    std::error_code ec;
    fs::rename(from, to, ec);
    if (ec) return {ErrorCode::Internal, fmt::format("deleting topic {}: {}", name, ec.message())};
    if (auto r = storage::posix_env().sync_dir(topics_dir); !r) {
      // Not durable: undo the rename so the topic keeps serving where it
      // was, and report the failure; the client may retry the deletion.
      fs::rename(to, from, ec);
      return {ErrorCode::Internal, fmt::format("deleting topic {}: {}", name, r.error().message())};
    }
    stats.forget_topic(it->first);
    oldest_cache.clear();            // a topic of the same name may follow, with other records
    topics.erase(it);                // closes the logs, only once the deletion is durable
    pending_removals.push_back(to);  // unlinked after the reply, off the request path
    // Committed offsets of the old topic must not apply to a new one of the
    // same name; made durable with the round's offsets sync.
    offset_change c;
    c.what = offset_change::kind::delete_topic;
    c.topic = std::string(name);
    if (auto r = offsets->append({c}); !r)
      logger()->warn("topic {}: dropping its committed offsets failed: {}", name,
                     r.error().message());
    logger()->info("deleted topic {}", name);
    return {ErrorCode::None, ""};
  }

  storage::partition_log* find_log(std::string_view t, std::int32_t p, ErrorCode& err) {
    auto it = topics.find(t);
    if (it == topics.end()) {
      err = ErrorCode::UnknownTopic;
      return nullptr;
    }
    if (p < 0 || p >= static_cast<std::int32_t>(it->second.logs.size())) {
      err = ErrorCode::UnknownPartition;
      return nullptr;
    }
    err = ErrorCode::None;
    return it->second.logs[static_cast<std::size_t>(p)].get();
  }

  // --- replies -------------------------------------------------------------

  void post(job& j, std::vector<zmq::message_t> frames) {
    posted = true;
    if (j.env != nullptr) {
      const auto type = j.env->body_type();
      if (type == Body::ProduceRequest)
        stats.produce_latency.observe(steady::now() - j.received);
      else if (type == Body::FetchRequest)
        stats.fetch_latency.observe(steady::now() - j.received);
    }
    {
      std::lock_guard lock(replies_mu);
      replies.push_back({std::move(j.identity), std::move(frames)});
    }
    in_flight.fetch_sub(1);
  }

  std::vector<zmq::message_t> error_reply(std::uint64_t id, ErrorCode code,
                                          const std::string& msg) {
    stats.refuse(code);
    flatbuffers::FlatBufferBuilder fbb(128);
    auto body = CreateErrorResponse(fbb, code, fbb.CreateString(msg));
    std::vector<zmq::message_t> out;
    out.push_back(envelope_message(fbb, id, Body::ErrorResponse, body.Union()));
    return out;
  }

  // --- disk thread -----------------------------------------------------------

  struct produce_state {
    job* j;
    struct entry {
      storage::partition_log* log = nullptr;
      ErrorCode error = ErrorCode::None;
      std::int64_t base = -1;
      std::string message;
      bool duplicate = false;  // an idempotent retry: stored before at `base`
      // Appended this round (counted once the sync succeeded).
      std::int32_t records = 0;
      std::size_t bytes = 0;
      topic_counters* counters = nullptr;
    };
    std::vector<entry> entries;
  };

  // The idempotent producer's checks for a batch with producer_id >= 0
  // (producer_state.h). Returns true when the batch is to be appended;
  // otherwise `out` holds the answer: a duplicate (answered after this
  // round's sync, like the append it repeats) or an error.
  bool admit_idempotent(const format::batch_header& h, std::span<const std::byte> batch,
                        storage::partition_log* log, const partition_producers& pp,
                        produce_state::entry& out) {
    // Only a batch that passes its checksum gets an idempotence verdict.
    auto intact = [&] {
      std::string bad;
      if (auto v = format::validate_batch(batch, format::validation::header_and_crc, &bad); !v) {
        out.error = to_wire(v.error());
        out.message = std::move(bad);
        return false;
      }
      return true;
    };
    auto refuse = [&](ErrorCode code, std::string message) {
      if (intact()) {
        out.error = code;
        out.message = std::move(message);
      }
      return false;
    };
    std::string why;
    if (h.epoch.value() < 0 || h.base_sequence.value() < 0 || h.record_count < 1)
      return refuse(ErrorCode::InvalidProducer,
                    fmt::format("producer {}: epoch {} and base_sequence {} must be >= 0",
                                h.pid.value(), h.epoch.value(), h.base_sequence.value()));
    switch (producer_ids->check(h.pid, h.epoch, &why)) {
      case producer_registry::standing::current:
        break;
      case producer_registry::standing::fenced:
        return refuse(ErrorCode::ProducerFenced, std::move(why));
      case producer_registry::standing::invalid:
        return refuse(ErrorCode::InvalidProducer, std::move(why));
    }
    auto d = pp.check(h);
    switch (d.v) {
      case partition_producers::verdict::append:
        return true;
      case partition_producers::verdict::duplicate:
        if (intact()) {
          out.log = log;  // a failing sync this round fails the duplicate too
          out.base = d.base_offset;
          out.duplicate = true;
        }
        return false;
      case partition_producers::verdict::fenced:
        return refuse(ErrorCode::ProducerFenced, std::move(d.message));
      case partition_producers::verdict::out_of_order:
        return refuse(ErrorCode::OutOfOrderSequence, std::move(d.message));
    }
    return refuse(ErrorCode::Internal, "unreachable");
  }

  // Schema validation of a topic (SetTopicSchema): every record with a value
  // carries a ferry.schema-id header naming a schema registered under the
  // topic's subject. Returns the refusal, if any.
  std::optional<std::pair<ErrorCode, std::string>> check_schema_ids(
      const topic& t, std::span<const std::byte> batch) {
    std::string bad;
    if (auto v = format::validate_batch(batch, format::validation::full, &bad); !v)
      return std::pair{to_wire(v.error()), std::move(bad)};
    const std::string subject = subject_of(t);
    std::optional<std::pair<ErrorCode, std::string>> refusal;
    std::int32_t index = 0;
    format::for_each_record(batch, [&](const format::record_view& rv) {
      const std::int32_t i = index++;
      if (!rv.value) return true;  // a tombstone has no payload to describe
      // Exactly one header with a decimal id: clients read the first, so a
      // second one could name another schema than the one checked here.
      std::optional<std::string_view> id_text;
      int count = 0;
      rv.for_each_header([&](const format::header_view& h) {
        if (h.key != protocol::kSchemaIdHeader) return;
        ++count;
        if (h.value)
          id_text =
              std::string_view(reinterpret_cast<const char*>(h.value->data()), h.value->size());
      });
      std::int64_t id = -1;
      if (id_text) {
        auto [end, ec] = std::from_chars(id_text->data(), id_text->data() + id_text->size(), id);
        if (ec != std::errc() || end != id_text->data() + id_text->size()) id = -1;
      }
      if (count != 1 || id < 0) {
        std::string what;
        if (count == 0)
          what = fmt::format("has no {} header", protocol::kSchemaIdHeader);
        else if (count > 1)
          what =
              fmt::format("has {} {} headers (one is allowed)", count, protocol::kSchemaIdHeader);
        else if (id_text)
          what = fmt::format("has a {} header '{}' that is not a schema id",
                             protocol::kSchemaIdHeader, id_text->substr(0, 32));
        else
          what = fmt::format("has a {} header without a value", protocol::kSchemaIdHeader);
        refusal = std::pair{ErrorCode::SchemaRequired,
                            fmt::format("record {} of the batch {}; topic {} accepts only records "
                                        "whose schema is registered under {}",
                                        i, what, t.name, subject)};
        return false;
      }
      if (!registry->registered_under(subject, id)) {
        refusal = std::pair{
            ErrorCode::SchemaRequired,
            registry->by_id(id) == nullptr
                ? fmt::format("record {} of the batch names schema id {}, which is not "
                              "registered; register it under {} first (ferry schema register)",
                              i, id, subject)
                : fmt::format("record {} of the batch names schema id {}, which is not a "
                              "version of {} (topic {} accepts only those)",
                              i, id, subject, t.name)};
        return false;
      }
      return true;
    });
    return refusal;
  }

  static std::string subject_of(const topic& t) {
    return t.settings.schema_subject.empty() ? t.name + "-value" : t.settings.schema_subject;
  }

  void append_produce(job& j, std::vector<produce_state>& pending,
                      std::set<storage::partition_log*>& touched) {
    auto* req = j.env->body_as_ProduceRequest();
    produce_state ps{&j, {}};
    ps.entries.resize(req->entries()->size());
    for (std::uint32_t i = 0; i < req->entries()->size(); ++i) {
      auto* e = req->entries()->Get(i);
      auto& out = ps.entries[i];
      auto* log = find_log(e->topic()->string_view(), e->partition(), out.error);
      if (log == nullptr) {
        out.message = out.error == ErrorCode::UnknownTopic
                          ? fmt::format("unknown topic {}: create it first (ferry topics create)",
                                        e->topic()->string_view())
                          : fmt::format("topic {} has no partition {}", e->topic()->string_view(),
                                        e->partition());
        continue;
      }
      auto& frame = j.frames[e->frame()];
      std::span<std::byte> batch(static_cast<std::byte*>(frame.data()), frame.size());
      auto& tp = topics.find(e->topic()->string_view())->second;
      auto& pp = tp.producers[static_cast<std::size_t>(e->partition())];
      std::optional<format::batch_header> idem;
      if (batch.size() >= format::kBatchHeaderSize && !log->failed()) {
        auto h = format::batch_header::decode(batch.data());
        if (h.pid.value() >= 0) {
          if (!admit_idempotent(h, batch, log, pp, out)) {
            if (out.duplicate) touched.insert(log);
            continue;
          }
          idem = h;
        }
      }
      // After the idempotence verdict: a retry of a batch stored before
      // validation was turned on is answered as the duplicate it is.
      if (tp.settings.schema_validation && !log->failed()) {
        if (auto refused = check_schema_ids(tp, batch)) {
          out.error = refused->first;
          out.message = std::move(refused->second);
          continue;
        }
      }
      auto r = log->append(batch);
      if (!r) {
        out.error = to_wire(r.error());
        out.message = r.error() == storage::errc::partition_failed ? log->failure_reason()
                                                                   : describe(r.error());
        if (out.error == ErrorCode::RecordTooLarge)
          out.message = fmt::format("batch of {} bytes exceeds the topic's max_message_bytes {}",
                                    batch.size(), log->config().max_batch_bytes);
        continue;
      }
      out.log = log;
      out.base = r.value().base_offset.value();
      out.records = format::batch_header::decode(batch.data()).record_count;
      out.bytes = batch.size();
      out.counters = &tp.counters;
      touched.insert(log);
      if (idem) pp.appended(*idem, out.base, system_clock::instance().wall_now().value());
    }
    pending.push_back(std::move(ps));
  }

  // Group commit: one sync per touched partition, then answer every produce.
  void commit_produces(std::vector<produce_state>& pending,
                       std::set<storage::partition_log*>& touched) {
    std::map<storage::partition_log*, std::error_code> sync_errors;
    for (auto* log : touched) {
      if (cfg.flush == storage::flush_mode::interval) {
        // Relaxed mode: acknowledged once written; sync_if_due() syncs on a timer.
        if (log->failed()) sync_errors[log] = storage::errc::partition_failed;
        continue;
      }
      if (auto r = timed(stats.fsync_partition, [&] { return log->sync(); }); !r)
        sync_errors[log] = r.error();
    }
    for (auto& ps : pending) {
      auto* req = ps.j->env->body_as_ProduceRequest();
      flatbuffers::FlatBufferBuilder fbb(256 + 64 * ps.entries.size());
      std::vector<flatbuffers::Offset<ProduceResult>> results;
      for (std::uint32_t i = 0; i < ps.entries.size(); ++i) {
        auto& e = ps.entries[i];
        if (e.log != nullptr) {
          if (auto it = sync_errors.find(e.log); it != sync_errors.end()) {
            e.error = to_wire(it->second);
            e.message = e.log->failure_reason();
            e.base = -1;
          }
        }
        if (e.error != ErrorCode::None) {
          stats.refuse(e.error);
        } else if (e.counters != nullptr) {
          e.counters->records_in->inc(static_cast<std::uint64_t>(e.records));
          e.counters->bytes_in->inc(e.bytes);
        }
        auto* re = req->entries()->Get(i);
        results.push_back(CreateProduceResult(fbb, fbb.CreateString(re->topic()->string_view()),
                                              re->partition(), e.error,
                                              e.error == ErrorCode::None ? e.base : -1,
                                              e.message.empty() ? 0 : fbb.CreateString(e.message),
                                              e.error == ErrorCode::None && e.duplicate));
      }
      auto body = CreateProduceResponse(fbb, fbb.CreateVector(results));
      std::vector<zmq::message_t> frames;
      frames.push_back(
          envelope_message(fbb, ps.j->env->request_id(), Body::ProduceResponse, body.Union()));
      post(*ps.j, std::move(frames));
    }
    pending.clear();
    touched.clear();
  }

  // Tries to answer a fetch; returns false when it should wait for data.
  bool try_fetch(job& j, bool final) {
    auto* req = j.env->body_as_FetchRequest();
    flatbuffers::FlatBufferBuilder fbb(256);
    if (const auto* m = req->member()) {
      // A member's fetch: refused for a stale or unknown member, and while
      // the group rebalances (the member must rejoin first).
      auto st = groups->check_fetch(m->group()->string_view(), m->member_id()->string_view(),
                                    m->generation(), steady::now());
      if (!st) {
        stats.refuse(st.error);
        auto commits = req->commit() ? commit_results(fbb, j) : 0;
        std::vector<flatbuffers::Offset<FetchResult>> none;
        auto body = CreateFetchResponse(fbb, fbb.CreateVector(none), st.error,
                                        fbb.CreateString(st.message), commits);
        std::vector<zmq::message_t> frames;
        frames.push_back(
            envelope_message(fbb, j.env->request_id(), Body::FetchResponse, body.Union()));
        post(j, std::move(frames));
        return true;
      }
    }
    std::vector<flatbuffers::Offset<FetchResult>> results;
    std::vector<zmq::message_t> data;
    // The broker caps what one fetch may return, whatever the client asks.
    std::int64_t budget = std::min<std::int64_t>(req->max_bytes(), cfg.max_fetch_bytes);
    std::int64_t total = 0;
    bool any_error = false;
    struct served {
      topic_counters* counters;
      std::uint64_t records, bytes;
    };
    std::vector<served> out;  // counted only when the fetch is answered
    for (auto* e : *req->entries()) {
      ErrorCode err;
      auto* log = find_log(e->topic()->string_view(), e->partition(), err);
      std::int64_t hw = -1, start = -1;
      std::uint32_t frame = 0;
      std::string msg;
      if (log != nullptr) {
        hw = log->high_watermark().value();
        start = log->log_start_offset().value();
        if (budget > 0) {
          auto r =
              log->read(offset(e->offset()),
                        static_cast<std::size_t>(std::min<std::int64_t>(e->max_bytes(), budget)));
          if (!r) {
            err = to_wire(r.error());
            msg = err == ErrorCode::OffsetOutOfRange
                      ? fmt::format("offset {} is outside [{}, {}]", e->offset(), start, hw)
                      : describe(r.error());
          } else if (r.value().batches > 0) {
            auto n = static_cast<std::int64_t>(r.value().data.size());
            budget -= n;
            total += n;
            // Offsets are dense: the records from the one asked for on.
            const auto from = std::max(e->offset(), start);
            out.push_back({&topics.find(e->topic()->string_view())->second.counters,
                           static_cast<std::uint64_t>(
                               std::max<std::int64_t>(0, r.value().next_offset.value() - from)),
                           static_cast<std::uint64_t>(n)});
            data.push_back(message_from(std::move(r.value().data)));
            frame = static_cast<std::uint32_t>(data.size());
          }
        }
      } else {
        msg = err == ErrorCode::UnknownTopic
                  ? fmt::format("unknown topic {}", e->topic()->string_view())
                  : fmt::format("topic {} has no partition {}", e->topic()->string_view(),
                                e->partition());
      }
      if (err != ErrorCode::None) {
        any_error = true;
        stats.refuse(err);
      }
      results.push_back(CreateFetchResult(fbb, fbb.CreateString(e->topic()->string_view()),
                                          e->partition(), err, hw, start, frame,
                                          msg.empty() ? 0 : fbb.CreateString(msg)));
    }
    if (!final && !any_error && total < std::max(1, req->min_bytes())) return false;
    for (const auto& o : out) {
      o.counters->records_out->inc(o.records);
      o.counters->bytes_out->inc(o.bytes);
    }
    auto commits = req->commit() ? commit_results(fbb, j) : 0;
    auto body = CreateFetchResponse(fbb, fbb.CreateVector(results), ErrorCode::None, 0, commits);
    std::vector<zmq::message_t> frames;
    frames.push_back(envelope_message(fbb, j.env->request_id(), Body::FetchResponse, body.Union()));
    for (auto& d : data) frames.push_back(std::move(d));
    post(j, std::move(frames));
    return true;
  }

  void handle_admin(job& j) {
    auto id = j.env->request_id();
    flatbuffers::FlatBufferBuilder fbb(256);
    std::vector<zmq::message_t> frames;
    switch (j.env->body_type()) {
      case Body::CreateTopicRequest: {
        auto* r = j.env->body_as_CreateTopicRequest();
        auto [err, msg] = create_topic(r->name()->string_view(), r->config());
        stats.refuse(err);
        auto body = CreateCreateTopicResponse(fbb, err, msg.empty() ? 0 : fbb.CreateString(msg));
        frames.push_back(envelope_message(fbb, id, Body::CreateTopicResponse, body.Union()));
        break;
      }
      case Body::DeleteTopicRequest: {
        auto [err, msg] = delete_topic(j.env->body_as_DeleteTopicRequest()->name()->string_view());
        stats.refuse(err);
        auto body = CreateDeleteTopicResponse(fbb, err, msg.empty() ? 0 : fbb.CreateString(msg));
        frames.push_back(envelope_message(fbb, id, Body::DeleteTopicResponse, body.Union()));
        break;
      }
      case Body::ListTopicsRequest: {
        std::vector<flatbuffers::Offset<TopicSummary>> v;
        for (const auto& [name, t] : topics)
          v.push_back(CreateTopicSummary(fbb, fbb.CreateString(name), t.settings.partitions));
        auto body = CreateListTopicsResponse(fbb, fbb.CreateVector(v));
        frames.push_back(envelope_message(fbb, id, Body::ListTopicsResponse, body.Union()));
        break;
      }
      case Body::DescribeTopicRequest: {
        auto name = j.env->body_as_DescribeTopicRequest()->name()->string_view();
        auto it = topics.find(name);
        flatbuffers::Offset<DescribeTopicResponse> body;
        if (it == topics.end()) {
          stats.refuse(ErrorCode::UnknownTopic);
          body =
              CreateDescribeTopicResponse(fbb, ErrorCode::UnknownTopic,
                                          fbb.CreateString(fmt::format("unknown topic {}", name)));
        } else {
          const auto& t = it->second;
          std::vector<flatbuffers::Offset<PartitionInfo>> parts;
          for (std::size_t p = 0; p < t.logs.size(); ++p) {
            auto st = t.logs[p]->stats();
            bool failed = t.logs[p]->failed();
            parts.push_back(CreatePartitionInfo(
                fbb, static_cast<std::int32_t>(p), st.log_start.value(), st.log_end.value(),
                st.high_watermark.value(), static_cast<std::int64_t>(st.size_bytes),
                static_cast<std::int32_t>(st.segments),
                failed ? ErrorCode::PartitionFailed : ErrorCode::None,
                failed ? fbb.CreateString(t.logs[p]->failure_reason()) : 0));
          }
          auto conf = CreateTopicConfig(
              fbb, t.settings.partitions, t.settings.retention_ms, t.settings.retention_bytes,
              t.settings.max_message_bytes, t.settings.segment_bytes,
              t.settings.schema_subject.empty() ? 0 : fbb.CreateString(t.settings.schema_subject),
              t.settings.schema_validation);
          body = CreateDescribeTopicResponse(fbb, ErrorCode::None, 0, fbb.CreateString(t.name),
                                             conf, fbb.CreateVector(parts));
        }
        frames.push_back(envelope_message(fbb, id, Body::DescribeTopicResponse, body.Union()));
        break;
      }
      case Body::ListOffsetsRequest: {
        std::vector<flatbuffers::Offset<ListOffsetsResult>> v;
        for (auto* e : *j.env->body_as_ListOffsetsRequest()->entries()) {
          ErrorCode err;
          std::int64_t off = -1;
          if (auto* log = find_log(e->topic()->string_view(), e->partition(), err)) {
            switch (e->spec()) {
              case OffsetSpec::Earliest:
                off = log->log_start_offset().value();
                break;
              case OffsetSpec::Latest:
                off = log->high_watermark().value();
                break;
              case OffsetSpec::Timestamp: {
                auto r = log->offset_for_timestamp(timestamp_ms(e->timestamp()));
                if (!r)
                  err = to_wire(r.error());
                else if (r.value())
                  off = r.value()->value();
                break;
              }
            }
          }
          v.push_back(CreateListOffsetsResult(fbb, fbb.CreateString(e->topic()->string_view()),
                                              e->partition(), err, off));
        }
        auto body = CreateListOffsetsResponse(fbb, fbb.CreateVector(v));
        frames.push_back(envelope_message(fbb, id, Body::ListOffsetsResponse, body.Union()));
        break;
      }
      case Body::InitProducerRequest: {
        // Durable (when it needs to be) before the reply: producer_state.h.
        const auto* name = j.env->body_as_InitProducerRequest()->name();
        auto g = producer_ids->init(name ? std::optional(name->string_view()) : std::nullopt);
        flatbuffers::Offset<InitProducerResponse> body;
        if (g) {
          body = CreateInitProducerResponse(fbb, ErrorCode::None, 0, g.value().id.value(),
                                            g.value().epoch.value());
          FERRY_LOG_DEBUG(logger(), "InitProducer{}: id {} epoch {}",
                          name ? " " + name->str() : std::string(), g.value().id.value(),
                          g.value().epoch.value());
        } else if (g.error() == ferry::errc::out_of_range) {
          body = CreateInitProducerResponse(
              fbb, ErrorCode::InvalidRequest,
              fbb.CreateString(fmt::format("the broker already knows {} producer names (the "
                                           "limit); reuse names or produce without one",
                                           kMaxNamedProducers)));
        } else {
          logger()->error("InitProducer: writing {} failed: {}",
                          (cfg.data_dir / "producers").string(), g.error().message());
          body = CreateInitProducerResponse(
              fbb, to_wire(g.error()),
              fbb.CreateString("persisting the producer id failed: " + g.error().message()));
        }
        frames.push_back(envelope_message(fbb, id, Body::InitProducerResponse, body.Union()));
        break;
      }
      case Body::RegisterSchemaRequest:
      case Body::GetSchemaRequest:
      case Body::ListSubjectsRequest:
      case Body::SetCompatibilityRequest:
      case Body::SetTopicSchemaRequest:
        frames = handle_registry(j, fbb);
        break;
      default:
        frames = error_reply(id, ErrorCode::InvalidRequest, "unexpected message type");
        break;
    }
    post(j, std::move(frames));
  }

  // --- schema registry (disk thread) ---------------------------------------

  static flatbuffers::Offset<flatbuffers::String> opt_string(flatbuffers::FlatBufferBuilder& fbb,
                                                             std::string_view s) {
    return s.empty() ? 0 : fbb.CreateString(s);
  }

  std::vector<zmq::message_t> handle_registry(job& j, flatbuffers::FlatBufferBuilder& fbb) {
    const auto id = j.env->request_id();
    std::vector<zmq::message_t> frames;
    auto bytes_of = [](const flatbuffers::Vector<std::uint8_t>* v) {
      return v ? std::string_view(reinterpret_cast<const char*>(v->data()), v->size())
               : std::string_view();
    };
    switch (j.env->body_type()) {
      case Body::RegisterSchemaRequest: {
        auto* r = j.env->body_as_RegisterSchemaRequest();
        auto out = registry->register_schema(r->subject()->string_view(), bytes_of(r->schema()),
                                             r->source() ? r->source()->string_view() : "",
                                             r->action(), cfg.schema_compatibility);
        std::vector<flatbuffers::Offset<SchemaFinding>> found;
        for (const auto& f : out.findings)
          found.push_back(CreateSchemaFinding(fbb, fbb.CreateString(schema::to_string(f.f.what)),
                                              opt_string(fbb, f.f.type), opt_string(fbb, f.f.field),
                                              fbb.CreateString(f.f.message), f.against_version,
                                              f.f.is_warning()));
        auto body = CreateRegisterSchemaResponse(
            fbb, out.error, opt_string(fbb, out.message), out.id, out.version,
            found.empty() ? 0 : fbb.CreateVector(found), out.mode, out.created);
        frames.push_back(envelope_message(fbb, id, Body::RegisterSchemaResponse, body.Union()));
        break;
      }
      case Body::GetSchemaRequest: {
        auto* r = j.env->body_as_GetSchemaRequest();
        const stored_schema* s = nullptr;
        std::int32_t version = -1;
        std::string subject;
        std::string missing;
        if (r->subject()) {
          subject = r->subject()->str();
          s = registry->by_subject(subject, r->version(), &version);
          if (s == nullptr)
            missing = registry->subject(subject) == nullptr
                          ? fmt::format("unknown subject {}", subject)
                          : fmt::format("subject {} has no version {}", subject, r->version());
        } else {
          s = registry->by_id(r->id());
          if (s != nullptr) {
            subject = s->subject;
            version = s->version;
          } else {
            missing = fmt::format("no schema with id {}", r->id());
          }
        }
        flatbuffers::Offset<GetSchemaResponse> body;
        if (s == nullptr) {
          const bool no_subject = r->subject() && registry->subject(subject) == nullptr;
          body = CreateGetSchemaResponse(
              fbb, no_subject ? ErrorCode::UnknownSubject : ErrorCode::UnknownSchema,
              fbb.CreateString(missing));
        } else {
          auto bfbs = fbb.CreateVector(reinterpret_cast<const std::uint8_t*>(s->bfbs.data()),
                                       s->bfbs.size());
          body = CreateGetSchemaResponse(fbb, ErrorCode::None, 0, s->id, fbb.CreateString(subject),
                                         version, bfbs, opt_string(fbb, s->source),
                                         fbb.CreateString(s->root_type), s->registered_ms);
        }
        frames.push_back(envelope_message(fbb, id, Body::GetSchemaResponse, body.Union()));
        break;
      }
      case Body::ListSubjectsRequest: {
        std::vector<flatbuffers::Offset<SubjectSummary>> subjects;
        for (const auto& [name, st] : registry->subjects()) {
          std::vector<flatbuffers::Offset<SubjectVersion>> versions;
          for (const auto& v : st.versions) {
            const auto* sch = registry->by_id(v.id);
            versions.push_back(CreateSubjectVersion(
                fbb, v.version, v.id, sch ? fbb.CreateString(sch->root_type) : 0, v.registered_ms));
          }
          subjects.push_back(CreateSubjectSummary(fbb, fbb.CreateString(name), st.mode,
                                                  fbb.CreateVector(versions)));
        }
        auto body = CreateListSubjectsResponse(fbb, fbb.CreateVector(subjects),
                                               protocol::to_wire(cfg.schema_compatibility));
        frames.push_back(envelope_message(fbb, id, Body::ListSubjectsResponse, body.Union()));
        break;
      }
      case Body::SetCompatibilityRequest: {
        auto* r = j.env->body_as_SetCompatibilityRequest();
        auto done = registry->set_mode(r->subject()->string_view(), r->mode());
        flatbuffers::Offset<SetCompatibilityResponse> body;
        if (done) {
          logger()->info("schema registry: subject {} compatibility := {}",
                         r->subject()->string_view(), EnumNameCompatibility(r->mode()));
          body = CreateSetCompatibilityResponse(fbb, ErrorCode::None);
        } else {
          body = CreateSetCompatibilityResponse(
              fbb, to_wire(done.error()),
              fbb.CreateString("storing the mode failed: " + done.error().message() +
                               "; the registry log stops after a write or sync error: fix the "
                               "disk and restart the broker"));
        }
        frames.push_back(envelope_message(fbb, id, Body::SetCompatibilityResponse, body.Union()));
        break;
      }
      case Body::SetTopicSchemaRequest: {
        auto* r = j.env->body_as_SetTopicSchemaRequest();
        auto [err, msg] =
            set_topic_schema(r->topic()->string_view(),
                             r->subject() ? r->subject()->string_view() : "", r->validation());
        auto body = CreateSetTopicSchemaResponse(fbb, err, opt_string(fbb, msg));
        frames.push_back(envelope_message(fbb, id, Body::SetTopicSchemaResponse, body.Union()));
        break;
      }
      default:
        break;
    }
    return frames;
  }

  // Validation needs a subject with at least one version (a subject with
  // only a mode, from SetCompatibility, has no id to accept).
  std::optional<std::pair<ErrorCode, std::string>> validation_refused(const topic& t) const {
    if (!t.settings.schema_validation) return std::nullopt;
    const auto s = subject_of(t);
    const auto* subj = registry->subject(s);
    if (subj != nullptr && !subj->versions.empty()) return std::nullopt;
    return std::pair{ErrorCode::UnknownSubject,
                     fmt::format("subject {} has no schemas yet; register one first (ferry schema "
                                 "register {} FILE.fbs), then turn validation on",
                                 s, s)};
  }

  std::pair<ErrorCode, std::string> set_topic_schema(std::string_view name,
                                                     std::string_view subject, bool validation) {
    auto it = topics.find(name);
    if (it == topics.end()) return {ErrorCode::UnknownTopic, fmt::format("unknown topic {}", name)};
    auto& t = it->second;
    const auto before = t.settings;
    t.settings.schema_subject = std::string(subject);
    t.settings.schema_validation = validation;
    if (auto refused = validation_refused(t)) {
      t.settings = before;
      return *refused;
    }
    auto r = storage::write_file_atomic(storage::posix_env(), topics_dir / t.name / "topic.json",
                                        to_json(t));
    if (!r) {
      t.settings = before;
      return {ErrorCode::Internal,
              fmt::format("updating topic {} failed: {}", name, r.error().message())};
    }
    logger()->info("topic {}: schema subject {}, validation {}", t.name, subject_of(t),
                   validation ? "on" : "off");
    return {ErrorCode::None, ""};
  }

  // --- consumer groups (disk thread) ----------------------------------------

  std::int32_t partition_count(std::string_view topic) const {
    auto it = topics.find(topic);
    return it == topics.end() ? 0 : it->second.settings.partitions;
  }

  static std::vector<flatbuffers::Offset<TopicPartitions>> topic_partitions(
      flatbuffers::FlatBufferBuilder& fbb, const std::vector<tp_key>& tps) {
    std::map<std::string, std::vector<std::int32_t>> by_topic;
    for (const auto& [t, p] : tps) by_topic[t].push_back(p);
    std::vector<flatbuffers::Offset<TopicPartitions>> out;
    for (const auto& [t, ps] : by_topic)
      out.push_back(CreateTopicPartitionsDirect(fbb, t.c_str(), &ps));
    return out;
  }

  void finish_join(std::uint64_t token, join_outcome o) {
    auto it = joins.find(token);
    if (it == joins.end()) return;
    auto j = std::move(it->second);
    joins.erase(it);
    flatbuffers::FlatBufferBuilder fbb(256);
    auto parts = topic_partitions(fbb, o.assignment);
    auto body =
        CreateJoinGroupResponse(fbb, o.error, o.message.empty() ? 0 : fbb.CreateString(o.message),
                                fbb.CreateString(o.member_id), o.generation,
                                fbb.CreateVector(parts), static_cast<AssignStrategy>(o.strategy));
    std::vector<zmq::message_t> frames;
    frames.push_back(
        envelope_message(fbb, j->env->request_id(), Body::JoinGroupResponse, body.Union()));
    post(*j, std::move(frames));
  }

  void start_join(std::unique_ptr<job> j, steady::time_point now) {
    auto* r = j->env->body_as_JoinGroupRequest();
    join_params p;
    p.group = r->group()->str();
    p.member_id = r->member_id() ? r->member_id()->str() : std::string();
    p.client_id = r->client_id() ? r->client_id()->str() : std::string();
    p.host = j->peer;
    for (const auto* t : *r->topics()) p.topics.push_back(t->str());
    p.strategy = static_cast<assign_strategy>(r->strategy());
    p.session_timeout = std::chrono::milliseconds(r->session_timeout_ms());
    p.rebalance_timeout = std::chrono::milliseconds(r->rebalance_timeout_ms());
    const auto token = ++next_join_token;
    joins.emplace(token, std::move(j));
    groups->join(token, std::move(p), now);  // may answer at once
  }

  // Validates and appends a commit; the outcomes become final after the
  // round's offsets sync (sync_offsets).
  void stage_commit(job& j, std::string_view group, const GroupMember* member,
                    const flatbuffers::Vector<flatbuffers::Offset<CommitEntry>>* entries,
                    bool reset, steady::time_point now) {
    // A refusal of the whole request still answers one result per entry
    // (commit_results() gives each the request-level error).
    auto refuse = [&](ErrorCode error, std::string message) {
      j.commit_error = error;
      j.commit_message = std::move(message);
      for (const auto* e : *entries) {
        commit_outcome o;
        o.topic = e->topic()->str();
        o.partition = e->partition();
        j.commits.push_back(std::move(o));
      }
    };
    if (member != nullptr) {
      auto st = groups->check_commit(group, member->member_id()->string_view(),
                                     member->generation(), now);
      if (!st) return refuse(st.error, std::move(st.message));
    } else if (groups->has_members(group)) {
      return refuse(ErrorCode::GroupNotEmpty,
                    fmt::format("group {} has members; offsets can be set from outside only while "
                                "it has none (stop its consumers first)",
                                group));
    }
    std::vector<offset_change> changes;
    std::map<tp_key, std::int64_t> in_request;
    const auto now_ms = system_clock::instance().wall_now().value();
    for (const auto* e : *entries) {
      commit_outcome o;
      o.topic = e->topic()->str();
      o.partition = e->partition();
      const tp_key tp{o.topic, o.partition};
      ErrorCode err;
      auto* log = find_log(o.topic, o.partition, err);
      if (log == nullptr) {
        o.error = err;
        o.message = err == ErrorCode::UnknownTopic
                        ? fmt::format("unknown topic {}", o.topic)
                        : fmt::format("topic {} has no partition {}", o.topic, o.partition);
      } else if (member != nullptr &&
                 !groups->owns(group, member->member_id()->string_view(), tp)) {
        o.error = ErrorCode::NotAssigned;
        o.message =
            fmt::format("{}-{} is not assigned to {} in generation {}", o.topic, o.partition,
                        member->member_id()->string_view(), member->generation());
      } else if (e->offset() > log->high_watermark().value()) {
        o.error = ErrorCode::OffsetOutOfRange;
        o.message = fmt::format("offset {} is beyond the end of {}-{} ({})", e->offset(), o.topic,
                                o.partition, log->high_watermark().value());
      } else {
        std::int64_t current = -1;
        if (auto it = in_request.find(tp); it != in_request.end())
          current = it->second;
        else if (const auto* c = offsets->latest(group, tp))
          current = c->offset;
        if (!reset && e->offset() < current) {
          o.error = ErrorCode::OffsetRegression;
          o.message = fmt::format(
              "{}-{}: offset {} is below the committed {}; committed offsets only move forward "
              "(use ferry groups reset-offsets to go back)",
              o.topic, o.partition, e->offset(), current);
        } else {
          in_request[tp] = e->offset();
          offset_change c;
          c.group = std::string(group);
          c.topic = o.topic;
          c.partition = o.partition;
          c.value.offset = e->offset();
          c.value.commit_ms = now_ms;
          if (e->metadata()) c.value.metadata = e->metadata()->str();
          changes.push_back(std::move(c));
          // Idempotency keys finished below this offset: into the group's
          // ledger in the same batch (so the same durable write) as the offset.
          if (e->ledger_keys() && e->ledger_keys()->size() > 0) {
            std::vector<std::string_view> keys;
            keys.reserve(e->ledger_keys()->size());
            for (const auto* key : *e->ledger_keys()) keys.push_back(key->string_view());
            for (auto& lc : ledger_changes(std::string(group), keys, now_ms))
              changes.push_back(std::move(lc));
          }
          o.staged = true;
        }
      }
      j.commits.push_back(std::move(o));
    }
    if (auto r = offsets->append(changes); !r) {
      for (auto& o : j.commits)
        if (o.staged) {
          o.staged = false;
          o.error = to_wire(r.error());
          o.message =
              fmt::format("the group offsets log refused the commit: {}",
                          offsets->failed() ? offsets->failure_reason() : r.error().message());
        }
    }
  }

  // Makes the round's commits durable and answers CommitOffsets and
  // DeleteGroup; a fetch's commit outcome goes out with the fetch.
  void sync_offsets(std::vector<std::unique_ptr<job>>& fetches) {
    if (offsets->has_pending()) {
      if (auto r = timed(stats.fsync_offsets, [&] { return offsets->sync(); }); !r) {
        auto fail = [&](job& j) {
          for (auto& o : j.commits)
            if (o.staged) {
              o.error = to_wire(r.error());
              o.message = "syncing the group offsets failed: " + offsets->failure_reason();
            }
          if (j.env->body_type() == Body::DeleteGroupRequest && j.commit_error == ErrorCode::None) {
            j.commit_error = to_wire(r.error());
            j.commit_message = "syncing the group offsets failed: " + offsets->failure_reason();
          }
        };
        for (auto& j : offset_jobs) fail(*j);
        for (auto& j : fetches) fail(*j);
        logger()->error("group offsets: sync failed: {}", r.error().message());
      }
    }
    for (auto& j : offset_jobs) {
      flatbuffers::FlatBufferBuilder fbb(256);
      std::vector<zmq::message_t> frames;
      auto msg = j->commit_message.empty() ? 0 : fbb.CreateString(j->commit_message);
      if (j->env->body_type() == Body::DeleteGroupRequest) {
        auto body = CreateDeleteGroupResponse(fbb, j->commit_error, msg);
        frames.push_back(
            envelope_message(fbb, j->env->request_id(), Body::DeleteGroupResponse, body.Union()));
      } else {
        auto results = commit_results(fbb, *j);
        auto body = CreateCommitOffsetsResponse(fbb, j->commit_error, msg, results);
        frames.push_back(
            envelope_message(fbb, j->env->request_id(), Body::CommitOffsetsResponse, body.Union()));
      }
      post(*j, std::move(frames));
    }
    offset_jobs.clear();
  }

  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<CommitResult>>> commit_results(
      flatbuffers::FlatBufferBuilder& fbb, const job& j) {
    std::vector<flatbuffers::Offset<CommitResult>> v;
    for (const auto& o : j.commits) {
      // A request-level refusal applies to every entry.
      const auto err = j.commit_error != ErrorCode::None ? j.commit_error : o.error;
      stats.refuse(err);
      const auto& msg = j.commit_error != ErrorCode::None ? j.commit_message : o.message;
      v.push_back(CreateCommitResult(fbb, fbb.CreateString(o.topic), o.partition, err,
                                     msg.empty() ? 0 : fbb.CreateString(msg)));
    }
    return fbb.CreateVector(v);
  }

  void stage_delete_group(job& j) {
    const auto name = j.env->body_as_DeleteGroupRequest()->group()->string_view();
    const bool known =
        groups->describe(name, steady::now()).has_value() || offsets->groups().count(name) > 0;
    if (!known) {
      j.commit_error = ErrorCode::UnknownGroup;
      j.commit_message = fmt::format("unknown group {}", name);
      return;
    }
    if (groups->has_members(name)) {
      j.commit_error = ErrorCode::GroupNotEmpty;
      j.commit_message =
          fmt::format("group {} has members; stop its consumers before deleting it", name);
      return;
    }
    offset_change c;
    c.what = offset_change::kind::delete_group;
    c.group = std::string(name);
    if (auto r = offsets->append({c}); !r) {
      j.commit_error = to_wire(r.error());
      j.commit_message = "the group offsets log refused the deletion: " + r.error().message();
      return;
    }
    (void)groups->erase(name);
    logger()->info("deleted group {}", name);
  }

  // The timestamp of the record at `at` (the oldest one not yet consumed),
  // or -1.
  static std::int64_t timestamp_at(storage::partition_log& log, std::int64_t at) {
    auto r = log.read(offset(at), 1);
    if (!r || r.value().batches == 0) return -1;
    std::int64_t ts = -1;
    format::for_each_record(std::span<const std::byte>(r.value().data),
                            [&](const format::record_view& rv) {
                              if (rv.off.value() < at) return true;
                              ts = rv.timestamp.value();
                              return false;
                            });
    return ts;
  }

  void handle_group(job& j, steady::time_point now) {
    auto id = j.env->request_id();
    flatbuffers::FlatBufferBuilder fbb(256);
    std::vector<zmq::message_t> frames;
    auto str = [&](const std::string& m) { return m.empty() ? 0 : fbb.CreateString(m); };
    switch (j.env->body_type()) {
      case Body::HeartbeatRequest: {
        auto* m = j.env->body_as_HeartbeatRequest()->member();
        auto st = groups->heartbeat(m->group()->string_view(), m->member_id()->string_view(),
                                    m->generation(), now);
        auto body = CreateHeartbeatResponse(fbb, st.error, str(st.message));
        frames.push_back(envelope_message(fbb, id, Body::HeartbeatResponse, body.Union()));
        break;
      }
      case Body::LeaveGroupRequest: {
        auto* r = j.env->body_as_LeaveGroupRequest();
        auto st = groups->leave(r->group()->string_view(), r->member_id()->string_view(), now);
        auto body = CreateLeaveGroupResponse(fbb, st.error, str(st.message));
        frames.push_back(envelope_message(fbb, id, Body::LeaveGroupResponse, body.Union()));
        break;
      }
      case Body::FetchOffsetsRequest: {
        auto* r = j.env->body_as_FetchOffsetsRequest();
        const auto group = r->group()->string_view();
        std::vector<flatbuffers::Offset<CommittedOffset>> v;
        auto add = [&](const std::string& t, std::int32_t p) {
          const auto* c = offsets->committed(group, {t, p});
          v.push_back(CreateCommittedOffset(fbb, fbb.CreateString(t), p, c ? c->offset : -1,
                                            c ? str(c->metadata) : 0, c ? c->commit_ms : 0));
        };
        if (r->partitions() != nullptr && r->partitions()->size() > 0) {
          for (const auto* tp : *r->partitions())
            if (tp->partitions())
              for (auto p : *tp->partitions()) add(tp->topic()->str(), p);
        } else if (auto g = offsets->groups().find(group); g != offsets->groups().end()) {
          for (const auto& [tp, _] : g->second) add(tp.first, tp.second);
        }
        auto body = CreateFetchOffsetsResponse(fbb, ErrorCode::None, 0, fbb.CreateVector(v));
        frames.push_back(envelope_message(fbb, id, Body::FetchOffsetsResponse, body.Union()));
        break;
      }
      case Body::ListGroupsRequest: {
        std::map<std::string, group_view> all;
        for (auto& g : groups->list(now)) all[g.name] = std::move(g);
        for (const auto& [name, _] : offsets->groups())
          if (!all.count(name)) all[name].name = name;
        std::vector<flatbuffers::Offset<GroupSummary>> v;
        for (const auto& [name, g] : all)
          v.push_back(
              CreateGroupSummary(fbb, fbb.CreateString(name), fbb.CreateString(state_name(g.state)),
                                 static_cast<std::int32_t>(g.members.size()), g.generation));
        auto body = CreateListGroupsResponse(fbb, fbb.CreateVector(v));
        frames.push_back(envelope_message(fbb, id, Body::ListGroupsResponse, body.Union()));
        break;
      }
      case Body::LedgerLookupRequest: {
        // Only durable keys are visible (a key staged in this round is not).
        auto* r = j.env->body_as_LedgerLookupRequest();
        const auto group = r->group()->string_view();
        const auto wall = system_clock::instance().wall_now().value();
        const std::int64_t min_ms =
            r->window_ms() > 0 ? wall - r->window_ms() : std::numeric_limits<std::int64_t>::min();
        std::vector<std::int64_t> found;
        found.reserve(r->keys()->size());
        for (const auto* k : *r->keys())
          found.push_back(offsets->ledger_lookup(group, k->string_view(), min_ms).value_or(-1));
        auto body = CreateLedgerLookupResponse(fbb, ErrorCode::None, 0, fbb.CreateVector(found));
        frames.push_back(envelope_message(fbb, id, Body::LedgerLookupResponse, body.Union()));
        break;
      }
      case Body::DescribeGroupRequest: {
        const auto name = j.env->body_as_DescribeGroupRequest()->group()->string_view();
        auto g = groups->describe(name, now);
        auto stored = offsets->groups().find(name);
        const bool has_offsets = stored != offsets->groups().end();
        flatbuffers::Offset<DescribeGroupResponse> body;
        if (!g && !has_offsets) {
          body =
              CreateDescribeGroupResponse(fbb, ErrorCode::UnknownGroup,
                                          fbb.CreateString(fmt::format("unknown group {}", name)));
        } else {
          group_view view = g ? std::move(*g) : group_view{};
          std::set<tp_key> tps;
          for (const auto& [tp, _] : view.owners) tps.insert(tp);
          if (has_offsets)
            for (const auto& [tp, _] : stored->second) tps.insert(tp);
          std::vector<flatbuffers::Offset<GroupPartition>> parts;
          for (const auto& tp : tps) {
            const auto* c = has_offsets ? offsets->committed(name, tp) : nullptr;
            const std::int64_t committed = c ? c->offset : -1;
            ErrorCode err;
            std::int64_t end = -1, oldest = -1;
            if (auto* log = find_log(tp.first, tp.second, err)) {
              end = log->high_watermark().value();
              const std::int64_t from = committed >= 0 ? committed : -1;
              if (from >= 0 && from < end) oldest = timestamp_at(*log, from);
            }
            auto owner = view.owners.find(tp);
            parts.push_back(CreateGroupPartition(
                fbb, fbb.CreateString(tp.first), tp.second, committed, end, oldest,
                owner != view.owners.end() ? fbb.CreateString(owner->second) : 0,
                c ? str(c->metadata) : 0, err));
          }
          std::vector<flatbuffers::Offset<MemberDescription>> members;
          for (const auto& m : view.members) {
            std::vector<flatbuffers::Offset<flatbuffers::String>> ts;
            for (const auto& t : m.topics) ts.push_back(fbb.CreateString(t));
            auto asg = topic_partitions(fbb, m.assignment);
            members.push_back(CreateMemberDescription(
                fbb, fbb.CreateString(m.member_id), fbb.CreateString(m.client_id),
                fbb.CreateString(m.host), fbb.CreateVector(ts), fbb.CreateVector(asg),
                m.since_seen.count()));
          }
          body = CreateDescribeGroupResponse(
              fbb, ErrorCode::None, 0, fbb.CreateString(name),
              fbb.CreateString(state_name(view.state)), view.generation,
              static_cast<AssignStrategy>(view.strategy), fbb.CreateVector(members),
              fbb.CreateVector(parts), system_clock::instance().wall_now().value());
        }
        frames.push_back(envelope_message(fbb, id, Body::DescribeGroupResponse, body.Union()));
        break;
      }
      default:
        frames = error_reply(id, ErrorCode::InvalidRequest, "unexpected message type");
        break;
    }
    post(j, std::move(frames));
  }

  // Deletes the offsets of groups that have had no members (and no commits)
  // for offsets_retention.
  void expire_offsets(steady::time_point now) {
    const auto wall = system_clock::instance().wall_now().value();
    std::vector<offset_change> changes;
    for (const auto& [name, tps] : offsets->groups()) {
      if (groups->has_members(name)) continue;
      std::int64_t last_commit = 0;
      for (const auto& [_, c] : tps) last_commit = std::max(last_commit, c.commit_ms);
      const auto emptied = groups->emptied_at(name).value_or(started_at);
      const auto empty_for = std::chrono::duration_cast<std::chrono::milliseconds>(now - emptied);
      if (empty_for < cfg.offsets_retention || wall - last_commit < cfg.offsets_retention.count())
        continue;
      offset_change c;
      c.what = offset_change::kind::delete_group;
      c.group = name;
      changes.push_back(std::move(c));
      logger()->info("group {}: offsets expired ({} ms without members or commits)", name,
                     cfg.offsets_retention.count());
    }
    if (changes.empty()) return;
    if (auto r = offsets->append(changes); r) {
      if (auto s2 = timed(stats.fsync_offsets, [&] { return offsets->sync(); }); !s2)
        logger()->error("group offsets: sync failed: {}", s2.error().message());
      else
        for (const auto& c : changes) (void)groups->erase(c.group);
    }
  }

  void housekeeping(steady::time_point now) {
    offsets->maybe_compact();
    if (now >= next_retention) {
      next_retention = now + cfg.retention_check_interval;
      expire_offsets(now);
      offsets->expire_ledger();
      for (auto& [_, t] : topics)
        for (auto& log : t.logs) {
          if (log->failed()) continue;
          if (auto r = log->apply_retention(); !r)
            logger()->warn("partition {}: retention failed: {}", log->config().name,
                           r.error().message());
          (void)log->remove_deleted();
        }
    }
    if (now >= next_producer_expiry) {
      next_producer_expiry = now + std::chrono::minutes(1);
      const auto wall = system_clock::instance().wall_now().value();
      for (auto& [_, t] : topics)
        for (auto& pp : t.producers) (void)pp.expire(wall);
    }
    if (cfg.flush == storage::flush_mode::interval) {
      for (auto& [_, t] : topics)
        for (auto& log : t.logs)
          if (!log->failed()) {
            const auto start = steady::now();
            if (auto r = log->sync_if_due(); r && r.value())
              stats.fsync_partition.observe(steady::now() - start);
          }
    }
    for (const auto& p : pending_removals) {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
    pending_removals.clear();
  }

  void wake_network(zmq::socket_t& wake) {
    if (!posted) return;
    posted = false;
    try {
      (void)wake.send(zmq::buffer("w", 1), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
    }
  }

  // --- metrics snapshot (disk thread, or open() before it runs) -------------

  // Per-partition and consumer-group values for the next scrape
  // (docs/observability.md). Label sets: topic x partition, group x topic x
  // partition - bounded by the topics and groups that exist.
  // `groups_too` false: partitions only - open() publishes those, without
  // reading a record per lagging group partition at start-up.
  void publish_snapshot(bool groups_too = true) {
    using metrics::collected;
    auto family = [](std::string name, std::string help, metrics::kind k = metrics::kind::gauge) {
      collected c;
      c.name = std::move(name);
      c.help = std::move(help);
      c.type = k;
      return c;
    };
    auto size = family("ferry_partition_log_size_bytes", "Bytes of the partition's segment files");
    auto segments = family("ferry_partition_segments", "Segment files of the partition");
    auto start = family("ferry_partition_log_start_offset",
                        "The partition's first offset (retention moves it)");
    auto hw = family("ferry_partition_high_watermark",
                     "The partition's high watermark: the offset after the last durable record");
    auto failed = family("ferry_partition_failed",
                         "1 when the partition stopped after a storage error (restart ferryd "
                         "after fixing the disk), else 0");
    auto lag = family("ferry_consumergroup_lag",
                      "Records between the group's committed offset and the high watermark");
    auto lag_s = family("ferry_consumergroup_lag_seconds",
                        "Age of the group's oldest unconsumed record (0 when caught up)");
    auto committed = family("ferry_consumergroup_committed_offset",
                            "The group's committed offset (the next record it will read)");
    auto members = family("ferry_consumergroup_members", "Members of the group");
    for (const auto& [name, t] : topics) {
      for (std::size_t p = 0; p < t.logs.size(); ++p) {
        auto st = t.logs[p]->stats();
        std::vector<std::pair<std::string, std::string>> l = {{"topic", name},
                                                              {"partition", std::to_string(p)}};
        size.add(l, static_cast<double>(st.size_bytes));
        segments.add(l, static_cast<double>(st.segments));
        start.add(l, static_cast<double>(st.log_start.value()));
        hw.add(l, static_cast<double>(st.high_watermark.value()));
        failed.add(std::move(l), t.logs[p]->failed() ? 1 : 0);
      }
    }
    const auto now = steady::now();
    const auto wall = system_clock::instance().wall_now().value();
    std::map<std::string, std::size_t> member_counts;
    if (groups_too)
      for (const auto& g : groups->list(now)) member_counts[g.name] = g.members.size();
    decltype(oldest_cache) fresh_cache;  // only what this snapshot used stays
    static const offset_store::state kNoGroups;
    const auto& committed_by_group = groups_too ? offsets->groups() : kNoGroups;  // no copy
    for (const auto& [group, tps] : committed_by_group) {
      member_counts.emplace(group, 0);
      for (const auto& [tp, c] : tps) {
        ErrorCode err;
        auto* log = find_log(tp.first, tp.second, err);
        if (log == nullptr || c.offset < 0) continue;
        std::vector<std::pair<std::string, std::string>> l = {
            {"group", group}, {"topic", tp.first}, {"partition", std::to_string(tp.second)}};
        const auto end = log->high_watermark().value();
        committed.add(l, static_cast<double>(c.offset));
        lag.add(l, static_cast<double>(std::max<std::int64_t>(0, end - c.offset)));
        double age = 0;
        if (c.offset < end) {
          const auto at = std::max(c.offset, log->log_start_offset().value());
          auto key = std::make_tuple(group, tp.first, tp.second);
          auto& cached = fresh_cache[key];
          if (auto it = oldest_cache.find(key); it != oldest_cache.end() && it->second.first == at)
            cached = it->second;
          else
            cached = {at, timestamp_at(*log, at)};
          if (cached.second >= 0)
            age = static_cast<double>(std::max<std::int64_t>(0, wall - cached.second)) / 1000.0;
        }
        lag_s.add(std::move(l), age);
      }
    }
    oldest_cache = std::move(fresh_cache);
    for (const auto& [group, n] : member_counts)
      members.add({{"group", group}}, static_cast<double>(n));
    auto topics_count = family("ferry_broker_topics", "Topics the broker serves");
    topics_count.add({}, static_cast<double>(topics.size()));
    auto offsets_size =
        family("ferry_broker_offsets_log_size_bytes",
               "Bytes of the group offsets log (compacted past offsets_compact_bytes)");
    offsets_size.add({}, static_cast<double>(offsets->size_bytes()));
    std::vector<collected> all;
    for (auto* c : {&size, &segments, &start, &hw, &failed, &lag, &lag_s, &committed, &members,
                    &topics_count, &offsets_size})
      all.push_back(std::move(*c));
    {
      std::lock_guard lock(snapshot_mu);
      snapshot_families = std::move(all);
      snapshot_at = steady::now();
      ++snapshot_gen;
    }
    snapshot_cv.notify_all();
  }

  // The registry's collector (a scrape's thread): asks the disk thread for
  // a fresh snapshot and waits up to a second for it.
  void collect(std::vector<metrics::collected>& out) {
    metrics::collected q;
    q.name = "ferry_broker_queued_requests";
    q.help = "Requests received and not yet answered (max_in_flight refuses more)";
    q.add({}, static_cast<double>(in_flight.load()));
    out.push_back(std::move(q));
    std::unique_lock lock(snapshot_mu);
    if (disk_running) {
      const auto gen = snapshot_gen;
      {
        std::lock_guard jl(jobs_mu);
        snapshot_wanted = true;
      }
      jobs_cv.notify_one();
      snapshot_cv.wait_for(lock, std::chrono::seconds(1),
                           [&] { return snapshot_gen != gen || !disk_running; });
    }
    out.insert(out.end(), snapshot_families.begin(), snapshot_families.end());
    metrics::collected age;
    age.name = "ferry_broker_metrics_snapshot_age_seconds";
    age.help =
        "Age of the partition and group values in this scrape (above 1: the disk thread was busy "
        "and they are from an earlier scrape)";
    age.add({}, std::chrono::duration<double>(steady::now() - snapshot_at).count());
    out.push_back(std::move(age));
  }

  void disk_loop(zmq::socket_t wake) {
    disk_running = true;
    next_retention = steady::now() + cfg.retention_check_interval;
    std::vector<produce_state> pending;
    std::set<storage::partition_log*> touched;
    for (;;) {
      std::vector<std::unique_ptr<job>> batch;
      bool stop_now;
      {
        std::unique_lock lock(jobs_mu);
        auto wake_at = std::min(next_retention, groups->next_deadline());
        if (cfg.flush == storage::flush_mode::interval)
          wake_at = std::min(wake_at, steady::now() + cfg.flush_interval);
        for (auto& p : parked) wake_at = std::min(wake_at, p->deadline);
        jobs_cv.wait_until(lock, wake_at,
                           [&] { return !jobs.empty() || stopping || snapshot_wanted.load(); });
        while (!jobs.empty()) {
          batch.push_back(std::move(jobs.front()));
          jobs.pop_front();
        }
        stop_now = stopping;
      }
      std::vector<std::unique_ptr<job>> fetches;
      bool committed = false;
      const auto round_start = steady::now();
      for (auto& j : batch) {
        switch (j->env->body_type()) {
          case Body::ProduceRequest:
            append_produce(*j, pending, touched);
            break;
          case Body::FetchRequest: {
            auto* f = j->env->body_as_FetchRequest();
            if (f->commit())
              stage_commit(*j, f->member()->group()->string_view(), f->member(), f->commit(), false,
                           round_start);
            fetches.push_back(std::move(j));
            break;
          }
          case Body::JoinGroupRequest:
            if (stop_now) {
              post(*j, error_reply(j->env->request_id(), ErrorCode::ShuttingDown,
                                   "the broker is stopping; retry shortly"));
              break;
            }
            start_join(std::move(j), round_start);
            break;
          case Body::CommitOffsetsRequest: {
            auto* c = j->env->body_as_CommitOffsetsRequest();
            stage_commit(*j, c->group()->string_view(), c->member(), c->entries(), c->reset(),
                         round_start);
            offset_jobs.push_back(std::move(j));
            break;
          }
          case Body::DeleteGroupRequest:
            stage_delete_group(*j);
            offset_jobs.push_back(std::move(j));
            break;
          case Body::HeartbeatRequest:
          case Body::LeaveGroupRequest:
          case Body::FetchOffsetsRequest:
          case Body::ListGroupsRequest:
          case Body::DescribeGroupRequest:
          case Body::LedgerLookupRequest:
            handle_group(*j, round_start);
            break;
          case Body::CreateTopicRequest:
          case Body::DeleteTopicRequest:
          case Body::SetTopicSchemaRequest:  // batches before it are answered under the old rule
            if (!pending.empty()) {
              commit_produces(pending, touched);
              committed = true;
            }
            handle_admin(*j);
            break;
          default:
            handle_admin(*j);
            break;
        }
      }
      if (!pending.empty()) {
        commit_produces(pending, touched);
        committed = true;
        wake_network(wake);  // produce acks go out before fetches are served
      }
      sync_offsets(fetches);
      auto now = steady::now();
      groups->tick(now);
      if (stop_now)
        groups->abort_all(ErrorCode::ShuttingDown, "the broker is stopping; retry shortly");
      const bool group_event = groups->take_wakeup();
      // Fetches parked in earlier rounds: retry when new data was committed
      // or their time is up. New fetches are tried once, after them.
      std::vector<std::unique_ptr<job>> still;
      for (auto& p : parked) {
        bool final = stop_now || now >= p->deadline;
        const bool member_fetch =
            group_event && p->env->body_as_FetchRequest()->member() != nullptr;
        if (!(committed || final || member_fetch) || !try_fetch(*p, final))
          still.push_back(std::move(p));
      }
      parked = std::move(still);
      for (auto& f : fetches) {
        if (!try_fetch(*f, stop_now || now >= f->deadline)) parked.push_back(std::move(f));
      }
      housekeeping(now);
      wake_network(wake);
      if (snapshot_wanted.exchange(false)) publish_snapshot();
      if (stop_now) {
        std::lock_guard lock(jobs_mu);
        if (jobs.empty() && parked.empty() && joins.empty()) break;
      }
    }
    (void)offsets->sync();
    for (auto& [_, t] : topics)
      for (auto& log : t.logs)
        if (!log->failed()) (void)log->sync();
    publish_snapshot();  // the final values, for a scrape while the process stops
    {
      std::lock_guard lock(snapshot_mu);
      disk_running = false;
    }
    snapshot_cv.notify_all();
    disk_done = true;
    try {
      (void)wake.send(zmq::buffer("d", 1), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
    }
  }

  // --- network thread --------------------------------------------------------

  void send_replies() {
    std::vector<reply> out;
    {
      std::lock_guard lock(replies_mu);
      out.swap(replies);
    }
    for (auto& r : out) {
      std::vector<zmq::message_t> frames;
      frames.reserve(r.frames.size() + 1);
      frames.push_back(std::move(r.identity));
      for (auto& f : r.frames) frames.push_back(std::move(f));
      if (auto s = protocol::send_message(router, frames); !s) {
        // EHOSTUNREACH: the client is gone (ROUTER_MANDATORY). Nothing to do.
        FERRY_LOG_DEBUG(logger(), "reply dropped: {}", s.error().message());
      }
    }
  }

  void reject(zmq::message_t identity, std::uint64_t id, ErrorCode code, const std::string& why) {
    auto frames = error_reply(id, code, why);  // counts the refusal
    std::vector<zmq::message_t> all;
    all.push_back(std::move(identity));
    for (auto& f : frames) all.push_back(std::move(f));
    (void)protocol::send_message(router, all);
  }

  // While stopping, requests still arriving get ShuttingDown (retriable)
  // instead of silence, so clients retry elsewhere or later at once.
  void refuse_while_stopping(std::vector<zmq::message_t>&& frames) {
    if (frames.size() < 2) return;
    protocol::ensure_aligned(frames[1]);
    auto env = protocol::decode_envelope(protocol::bytes_of(frames[1]), frames.size() - 1,
                                         protocol::direction::request);
    reject(std::move(frames[0]), env ? env.value()->request_id() : 0, ErrorCode::ShuttingDown,
           "the broker is stopping; retry shortly");
  }

  steady::time_point next_refusal_log{};  // network thread
  std::uint64_t refusals_unlogged = 0;

  // ferry_broker_requests_total by type, looked up once per type (network thread).
  std::vector<metrics::counter*> request_counters;
  metrics::counter& requests_of(Body type) {
    const auto i = static_cast<std::size_t>(type);
    if (i >= request_counters.size()) request_counters.resize(i + 1, nullptr);
    if (request_counters[i] == nullptr) {
      std::string_view name = EnumNameBody(type);
      if (name.ends_with("Request")) name.remove_suffix(7);
      request_counters[i] = &stats.requests.with({name.empty() ? "unknown" : name});
    }
    return *request_counters[i];
  }

  void on_request(std::vector<zmq::message_t>&& frames) {
    if (frames.size() < 2) return;  // identity only: nothing to answer
    auto j = std::make_unique<job>();
    j->received = steady::now();
    j->identity = std::move(frames[0]);
    j->frames.reserve(frames.size() - 1);
    for (std::size_t i = 1; i < frames.size(); ++i) j->frames.push_back(std::move(frames[i]));
    // Realigning copies the frame into a new message without its metadata:
    // keep a (shared, cheap) reference to the original for Peer-Address.
    zmq::message_t original;
    const bool realigned = reinterpret_cast<std::uintptr_t>(j->frames[0].data()) % 8 != 0;
    if (realigned) original.copy(j->frames[0]);
    protocol::ensure_aligned(j->frames[0]);
    std::string why;
    auto env = protocol::decode_envelope(protocol::bytes_of(j->frames[0]), j->frames.size(),
                                         protocol::direction::request, {}, &why);
    if (!env) {
      // One line per second at most: a broken or hostile client must not
      // flood the log (ferry_broker_refused_total counts every one).
      const auto now = steady::now();
      if (now >= next_refusal_log) {
        logger()->warn(
            "refused a request: {} ({}){}", env.error().message(), why,
            refusals_unlogged > 0
                ? fmt::format("; {} more refused since the last such line", refusals_unlogged)
                : std::string());
        refusals_unlogged = 0;
        next_refusal_log = now + std::chrono::seconds(1);
      } else {
        ++refusals_unlogged;
      }
      // Answered under the request's own id when the envelope is readable,
      // so the client gets this error instead of a timeout.
      reject(std::move(j->identity),
             protocol::request_id_of(protocol::bytes_of(j->frames[0])).value_or(0),
             to_wire(env.error()), why.empty() ? env.error().message() : why);
      return;
    }
    j->env = env.value();
    requests_of(j->env->body_type()).inc();
    if (in_flight.load() >= cfg.max_in_flight) {
      reject(std::move(j->identity), j->env->request_id(), ErrorCode::TooManyRequests,
             "broker queue full; retry with backoff");
      return;
    }
    if (j->env->body_type() == Body::JoinGroupRequest) {
      try {
        if (const char* peer = (realigned ? original : j->frames[0]).gets("Peer-Address"))
          j->peer = peer;
      } catch (const zmq::error_t&) {
        // No address for this transport (inproc); describe shows none.
      }
    }
    if (j->env->body_type() == Body::FetchRequest) {
      auto wait = std::min<std::int64_t>(j->env->body_as_FetchRequest()->max_wait_ms(),
                                         cfg.max_fetch_wait.count());
      j->deadline = steady::now() + std::chrono::milliseconds(wait);
    }
    in_flight.fetch_add(1);
    {
      std::lock_guard lock(jobs_mu);
      jobs.push_back(std::move(j));
    }
    jobs_cv.notify_one();
  }

  // Connection events of the ROUTER (zmq_socket_monitor): two frames, the
  // first a 16-bit event and a 32-bit value.
  void on_monitor_event(zmq::socket_t& monitor) {
    try {
      for (;;) {
        zmq::message_t event, address;
        if (!monitor.recv(event, zmq::recv_flags::dontwait)) return;
        if (event.more()) (void)monitor.recv(address, zmq::recv_flags::dontwait);
        if (event.size() < 2) continue;
        std::uint16_t id = 0;
        std::memcpy(&id, event.data(), sizeof(id));
        if (id == ZMQ_EVENT_ACCEPTED) {
          stats.connections.add(1);
          stats.connections_accepted.inc();
        } else if (id == ZMQ_EVENT_DISCONNECTED) {
          stats.connections.add(-1);
        }
      }
    } catch (const zmq::error_t&) {
    }
  }

  void net_loop(zmq::socket_t wake, zmq::socket_t monitor) {
    bool draining = false;
    for (;;) {
      // While draining, the ROUTER is no longer read: only replies go out.
      zmq::pollitem_t items[] = {{wake.handle(), 0, ZMQ_POLLIN, 0},
                                 {router.handle(), 0, ZMQ_POLLIN, 0},
                                 {monitor.handle(), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, monitor ? 3 : 2, std::chrono::milliseconds(50));
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM) break;
        continue;
      }
      if (items[0].revents & ZMQ_POLLIN) {
        zmq::message_t m;
        try {
          while (wake.recv(m, zmq::recv_flags::dontwait)) {
          }
        } catch (const zmq::error_t&) {
        }
      }
      if (items[2].revents & ZMQ_POLLIN) on_monitor_event(monitor);
      send_replies();
      if (items[1].revents & ZMQ_POLLIN) {
        for (int n = 0; n < 256; ++n) {
          auto msg = protocol::recv_message(router, false);
          if (!msg || msg.value().empty()) break;
          if (draining) {
            refuse_while_stopping(std::move(msg).value());
          } else {
            on_request(std::move(msg).value());
          }
        }
      }
      if (stop_requested && !draining) {
        draining = true;
        ready_flag = false;
        {
          std::lock_guard lock(jobs_mu);
          stopping = true;
        }
        jobs_cv.notify_one();
      }
      if (draining && disk_done) {
        send_replies();
        // Stop the monitor before its PAIR closes: libzmq sends events
        // blocking, and an event with no reader would stall the I/O thread
        // that still has the last replies to send.
        if (monitor) (void)zmq_socket_monitor(router.handle(), nullptr, 0);
        break;
      }
    }
  }
};

broker::broker(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

broker::~broker() {
  stop();
  impl_->metrics_reg->remove_collector(impl_->collector_id);
}

metrics::registry& broker::metrics() noexcept {
  return *impl_->metrics_reg;
}

result<std::unique_ptr<broker>> broker::open(broker_config config,
                                             std::shared_ptr<metrics::registry> metrics_registry) {
  std::string error;
  if (auto v = validate(config, error); !v) {
    logger()->error("invalid configuration: {}", error);
    return v.error();
  }
  auto i = std::make_unique<impl>(std::move(config), std::move(metrics_registry));
  FERRY_TRY(i->dir_lock.acquire(i->cfg.data_dir));
  pause_point("broker.open");  // tests: what a slow start looks like (/readyz)
  i->topics_dir = i->cfg.data_dir / "topics";
  FERRY_TRY(i->load_topics());
  std::string why;
  auto ids = producer_registry::open(storage::posix_env(), i->cfg.data_dir / "producers", &why);
  if (!ids) {
    logger()->error("cannot open the producer registry: {}",
                    why.empty() ? ids.error().message() : why);
    return ids.error();
  }
  i->producer_ids = std::move(ids).value();
  for (const auto& [_, t] : i->topics)
    for (const auto& pp : t.producers) i->producer_ids->observe(producer_id(pp.max_producer_id()));
  offset_store::options so;
  so.compact_bytes = i->cfg.offsets_compact_bytes;
  so.flush = i->cfg.flush;
  so.ledger_retention = i->cfg.ledger_retention;
  so.ledger_max_keys = static_cast<std::size_t>(i->cfg.ledger_max_keys);
  auto store = offset_store::open(storage::posix_env(), i->cfg.data_dir / "groups" / "offsets", so,
                                  system_clock::instance());
  if (!store) {
    logger()->error("cannot open the group offsets at {}: {}",
                    (i->cfg.data_dir / "groups" / "offsets").string(), store.error().message());
    return store.error();
  }
  i->offsets = std::move(store).value();
  auto reg = schema_registry::open(storage::posix_env(), i->cfg.data_dir / "schemas",
                                   system_clock::instance());
  if (!reg) {
    logger()->error("cannot open the schema registry at {}: {}",
                    (i->cfg.data_dir / "schemas").string(), reg.error().message());
    return reg.error();
  }
  i->registry = std::move(reg).value();
  auto* raw = i.get();
  group_coordinator::options go;
  go.min_session_timeout = i->cfg.min_session_timeout;
  go.max_session_timeout = i->cfg.max_session_timeout;
  i->groups = std::make_unique<group_coordinator>(
      go, [raw](std::string_view t) { return raw->partition_count(t); },
      [raw](std::uint64_t token, join_outcome o) { raw->finish_join(token, std::move(o)); });
  raw->publish_snapshot(false);  // what a scrape sees until the disk thread runs
  raw->collector_id = raw->metrics_reg->add_collector(
      [raw](std::vector<metrics::collected>& out) { raw->collect(out); });
  return std::unique_ptr<broker>(new broker(std::move(i)));
}

result<std::string> broker::start() {
  auto& i = *impl_;
  try {
    i.router = zmq::socket_t(i.ctx, zmq::socket_type::router);
    FERRY_TRY(protocol::configure_socket(i.router, i.cfg.socket, true));
    i.router.bind(i.cfg.listen);
    {
      std::lock_guard lock(i.bound_mu);
      i.bound = i.router.get(zmq::sockopt::last_endpoint);
    }
    i.wake_endpoint = fmt::format("inproc://ferry-wake-{}", static_cast<const void*>(&i));
    zmq::socket_t net_wake(i.ctx, zmq::socket_type::pair);
    net_wake.bind(i.wake_endpoint);
    zmq::socket_t disk_wake(i.ctx, zmq::socket_type::pair);
    disk_wake.set(zmq::sockopt::linger, 0);
    disk_wake.connect(i.wake_endpoint);
    net_wake.set(zmq::sockopt::linger, 0);
    // Open connections for ferry_broker_connections.
    zmq::socket_t monitor;
    const auto monitor_endpoint =
        fmt::format("inproc://ferry-monitor-{}", static_cast<const void*>(&i));
    if (zmq_socket_monitor(i.router.handle(), monitor_endpoint.c_str(),
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) == 0) {
      monitor = zmq::socket_t(i.ctx, zmq::socket_type::pair);
      monitor.set(zmq::sockopt::linger, 0);
      monitor.connect(monitor_endpoint);
    } else {
      logger()->warn("connection metrics unavailable: zmq_socket_monitor failed ({})",
                     zmq_strerror(zmq_errno()));
    }
    i.disk_thread =
        std::thread([&i, s = std::move(disk_wake)]() mutable { i.disk_loop(std::move(s)); });
    i.net_thread = std::thread([&i, s = std::move(net_wake), mon = std::move(monitor)]() mutable {
      i.net_loop(std::move(s), std::move(mon));
    });
  } catch (const zmq::error_t& e) {
    // Logged by the caller, which decides what it means (ferryd exits).
    return protocol::make_zmq_error(e.num());
  }
  i.ready_flag = true;
  logger()->info("listening on {}", endpoint());
  return endpoint();
}

void broker::stop() {
  auto& i = *impl_;
  if (!i.net_thread.joinable()) return;
  pause_point("broker.stop");  // tests: what a slow stop looks like (/readyz)
  i.stop_requested = true;
  i.net_thread.join();
  if (i.disk_thread.joinable()) i.disk_thread.join();
  i.router.set(zmq::sockopt::linger, 1000);  // let the last replies leave
  i.router.close();
  logger()->info("stopped");
}

bool broker::ready() const noexcept {
  return impl_->ready_flag.load();
}

std::string broker::endpoint() const {
  std::lock_guard lock(impl_->bound_mu);
  return impl_->bound;
}

}  // namespace ferry::broker
