// broker: the pieces put together (see broker.h and docs/protocol.md,
// "Inside the broker"): broker_core (core.h) with its topic table, producer
// registry, offsets, schema registry and group coordinator; the pipeline
// (pipeline.h) on the core thread; the ZeroMQ front-end (zmq_frontend.h)
// on the network thread; the janitor (janitor.h) for file removal; the
// metrics snapshot (metrics_snapshot.h) for scrapes.
#include "ferry/broker/broker.h"

#include <atomic>
#include <random>
#include <thread>

#include "broker_metrics.h"
#include "core.h"
#include "data_dir_lock.h"
#include "ferry/broker/data_format.h"
#include "ferry/core/crash_point.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/storage/env.h"
#include "janitor.h"
#include "kafka/frontend.h"
#include "metrics_snapshot.h"
#include "pipeline.h"
#include "zmq_frontend.h"

namespace ferry::broker {

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("broker");
  return l;
}

// The cluster id Kafka clients see in Metadata: made once (22 characters of
// base64url, as Kafka's are) and kept in <data>/cluster_id.
result<std::string> load_cluster_id(const std::filesystem::path& dir) {
  auto& env = storage::posix_env();
  if (auto text = storage::read_file(env, dir / "cluster_id"); text) {
    std::string id(reinterpret_cast<const char*>(text.value().data()), text.value().size());
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    if (!id.empty()) return id;
  }
  static constexpr char kChars[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::random_device rd;
  std::string id;
  for (int i = 0; i < 22; ++i) id += kChars[rd() % 64];
  const auto line = id + "\n";
  const auto* b = reinterpret_cast<const std::byte*>(line.data());
  FERRY_TRY(storage::write_file_atomic(env, dir / "cluster_id", {b, b + line.size()}));
  FERRY_TRY(env.sync_dir(dir));
  return id;
}

}  // namespace

// Members are destroyed in reverse order: the front-end and the pipeline
// before the state they reach, the janitor after the topics that post to
// it, the directory lock last.
struct broker::impl {
  impl(broker_config c, std::shared_ptr<metrics::registry> r)
      : cfg(std::move(c)),
        metrics_reg(r ? std::move(r) : std::make_shared<metrics::registry>()),
        stats(*metrics_reg),
        core(cfg, stats, cleaner),
        line(core, snapshot),
        frontend(cfg, stats, line) {}

  data_dir_lock dir_lock;
  broker_config cfg;
  std::shared_ptr<metrics::registry> metrics_reg;
  broker_metrics stats;
  janitor cleaner;
  broker_core core;
  metrics_snapshot snapshot;
  pipeline line;
  zmq_frontend frontend;
  std::unique_ptr<kafka_frontend> kafka;  // with kafka_listen
  std::string cluster_id;
  std::string kafka_bound;
  std::thread core_runner;
  std::atomic<bool> ready_flag{false};
  std::uint64_t collector_id = 0;

  result<void> load() {
    // open() runs before the core thread exists: it may touch the state.
    thread_role_scope role(core_thread);
    FERRY_TRY(open_core(core, line));
    snapshot.publish_now(core, false);  // what a scrape sees until the core thread runs
    return success();
  }

  void collect(std::vector<metrics::collected>& out) {
    metrics::collected q;
    q.name = "ferry_broker_queued_requests";
    q.help = "Requests received and not yet answered (max_in_flight refuses more)";
    q.add({}, static_cast<double>(frontend.in_flight()));
    out.push_back(std::move(q));
    snapshot.collect(out, [this] { line.wake(); });
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
  if (std::string why; !check_data_format(i->cfg.data_dir, &why)) {
    logger()->error("{}", why);
    return ferry::errc::corrupt_data;
  }
  FERRY_TRY(i->cluster_id, load_cluster_id(i->cfg.data_dir));
  FERRY_TRY(i->load());
  auto* raw = i.get();
  raw->collector_id = raw->metrics_reg->add_collector(
      [raw](std::vector<metrics::collected>& out) { raw->collect(out); });
  return std::unique_ptr<broker>(new broker(std::move(i)));
}

result<std::string> broker::start() {
  auto& i = *impl_;
  i.frontend.use_users(i.core.users.get());  // set at open, before the core thread
  i.frontend.use_quotas(i.core.quotas.get());
  FERRY_TRY(auto bound, i.frontend.bind());
  i.line.add_frontend(&i.frontend);
  if (!i.cfg.kafka_listen.empty()) {
    i.kafka = std::make_unique<kafka_frontend>(i.cfg, i.stats, i.line, i.cluster_id);
    i.kafka->use_users(i.core.users.get());  // SASL with security on
    i.kafka->use_quotas(i.core.quotas.get());
    FERRY_TRY(auto kafka_bound, i.kafka->start());
    i.kafka_bound = kafka_bound;
    i.line.add_frontend(i.kafka.get());
  }
  i.core_runner = std::thread([&i] {
    i.line.run();
    i.frontend.core_finished();
  });
  i.frontend.start();
  i.ready_flag = true;
  logger()->info("listening on {}", bound);
  return bound;
}

void broker::stop() {
  auto& i = *impl_;
  if (!i.core_runner.joinable()) return;
  pause_point("broker.stop");  // tests: what a slow stop looks like (/readyz)
  i.ready_flag = false;
  i.frontend.request_stop();
  i.frontend.join();
  i.core_runner.join();
  if (i.kafka) i.kafka->stop();  // after the pipeline answered what it had
  i.cleaner.stop();  // what the janitor has left, before another broker opens the directory
  logger()->info("stopped");
}

bool broker::ready() const noexcept {
  return impl_->ready_flag.load();
}

std::string broker::endpoint() const {
  return impl_->frontend.endpoint();
}

std::string broker::kafka_address() const {
  return impl_->kafka_bound;
}

}  // namespace ferry::broker
