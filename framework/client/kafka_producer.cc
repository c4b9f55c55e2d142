// The producer over kafka:// (transport.h), on librdkafka.
//
// The delivery contract of producer.h holds as follows:
// - A callback reports success only after the cluster acknowledged the
//   record with acks=all (idempotence on: librdkafka's idempotent producer,
//   which keeps per-partition order and stores a retried batch once).
// - Delivery reports come as events on librdkafka's main queue, served by
//   this producer's own I/O thread: callbacks run there, one at a time.
//   flush() waits for librdkafka's message count to reach zero (it skips
//   linger meanwhile) and then for the callbacks of every record accepted
//   before it.
// - Keyed records are placed by librdkafka's murmur2_random partitioner,
//   which is Kafka's default and partition_for_key()'s: the same key lands
//   on the same partition over both transports.
// - A topic is looked up in the cluster's metadata the first time it is
//   used, so an unknown topic fails send() at once (as over ferryd's native
//   protocol) instead of after librdkafka's propagation wait.
// Not available: producer_name (fencing a zombie producer would need Kafka
// transactions); stats() has no producer id (librdkafka does not expose it).
#include <fmt/format.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "ferry/client/errc.h"
#include "ferry/core/clock.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/protocol/codec.h"
#include "kafka_common.h"
#include "transport.h"

namespace ferry::client {

namespace {

using std::chrono::milliseconds;
using sclock = std::chrono::steady_clock;

class kafka_producer final : public producer::backend {
 public:
  explicit kafka_producer(producer_options o) : o_(std::move(o)) {
    if (!o_.producer_name.empty()) {
      init_error_ = ferry::errc::invalid_argument;
      log::get("client")->error(
          "producer_name is not available over kafka:// (fencing needs Kafka transactions); "
          "leave it empty or use ferryd's native protocol");
      return;
    }
    kafka::settings s = {
        {"linger.ms", std::to_string(std::clamp<std::int64_t>(o_.linger.count(), 0, 900'000))},
        {"batch.size", std::to_string(std::clamp<std::size_t>(o_.batch_bytes, 1, 2'147'483'647))},
        {"queue.buffering.max.kbytes",
         std::to_string(std::clamp<std::size_t>(o_.buffer_bytes / 1024, 1, 2'147'483'647))},
        {"queue.buffering.max.messages", "1000000"},
        {"message.timeout.ms",
         std::to_string(std::clamp<std::int64_t>(o_.delivery_timeout.count(), 1, 2'147'483'647))},
        {"compression.codec", std::string(format::to_string(o_.compression))},
        {"partitioner", "murmur2_random"},
        {"enable.idempotence", o_.enable_idempotence ? "true" : "false"},
        {"acks", "all"},
        {"retry.backoff.ms",
         std::to_string(std::clamp<std::int64_t>(o_.retry_backoff.count(), 1, 300'000))},
    };
    // Without idempotence, one request per connection keeps a partition's
    // records in send() order across retries (producer.h's contract).
    if (!o_.enable_idempotence) s.emplace_back("max.in.flight.requests.per.connection", "1");
    auto h = kafka::make_handle(
        RD_KAFKA_PRODUCER, o_, s, &init_why_,
        [](rd_kafka_conf_t* conf, void*) { rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR); });
    if (!h) {
      init_error_ = h.error();
      log::get("client")->error("{}", init_why_);
      return;
    }
    rk_ = std::move(h).value();
    queue_ = rd_kafka_queue_get_main(rk_.get());
    thread_ = std::thread([this] { run(); });
  }

  ~kafka_producer() override { (void)close(milliseconds::max()); }

  result<void> send(producer_record rec, delivery_callback cb) override {
    if (init_error_) return init_error_;
    FERRY_TRY(prepare_record(rec));
    const bool on_io = std::this_thread::get_id() == io_id_;
    {
      std::lock_guard lock(mu_);
      if (closing_) return ferry::errc::shutting_down;
      ++sending_;  // close() waits for this send() before it tears down
    }
    struct done_sending {
      kafka_producer& p;
      ~done_sending() {
        std::lock_guard lock(p.mu_);
        --p.sending_;
        p.cv_.notify_all();
      }
    } guard{*this};
    FERRY_TRY(const int partitions, partitions_of(rec.topic, false));
    if (rec.partition && rec.partition->value() >= partitions) {
      // The topic may have grown since it was looked up.
      FERRY_TRY(const int now, partitions_of(rec.topic, true));
      if (rec.partition->value() >= now) return errc::unknown_partition;
    }

    const timestamp_ms ts = rec.timestamp.value_or(system_clock::instance().wall_now());
    auto* p = new pending{std::move(cb), 0};
    {
      std::lock_guard lock(mu_);
      p->seq = next_seq_++;
      outstanding_.insert(p->seq);
    }
    kafka::outgoing m;
    m.topic = &rec.topic;
    if (rec.partition) m.partition = rec.partition->value();
    m.key = rec.key ? &*rec.key : nullptr;
    m.value = rec.value ? &*rec.value : nullptr;
    m.timestamp = ts.value();
    m.headers = &rec.headers;
    m.opaque = p;
    const auto deadline = sclock::now() + o_.max_block;
    rd_kafka_resp_err_t err;
    for (;;) {
      err = kafka::produce(rk_.get(), m);
      // Back-pressure: wait for room, but never on the I/O thread, which is
      // the one making room.
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || on_io || sclock::now() >= deadline) break;
      std::this_thread::sleep_for(milliseconds(1));
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      finish(p->seq);
      delete p;
      return kafka::from_kafka(err);
    }
    return success();
  }

  result<void> flush(milliseconds timeout) override {
    if (init_error_) return init_error_;
    if (std::this_thread::get_id() == io_id_) return ferry::errc::invalid_argument;
    const auto deadline = saturating(timeout);
    std::uint64_t through;
    {
      std::lock_guard lock(mu_);
      through = next_seq_ - 1;
    }
    // Sends what lingers and waits until librdkafka holds no message.
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - sclock::now());
    (void)rd_kafka_flush(rk_.get(), kafka::timeout_ms(std::max(left, milliseconds(0))));
    std::unique_lock lock(mu_);
    const bool done = cv_.wait_until(
        lock, deadline, [&] { return outstanding_.empty() || *outstanding_.begin() > through; });
    return done ? success() : result<void>(ferry::errc::timed_out);
  }

  result<void> close(milliseconds timeout) override {
    if (!rk_) return success();
    if (std::this_thread::get_id() == io_id_) return ferry::errc::invalid_argument;
    {
      std::unique_lock lock(mu_);
      if (closing_ && !thread_.joinable()) return success();
      closing_ = true;
      // A send() that passed the check above finishes first (it may be
      // looking a topic up, for up to max_block).
      cv_.wait(lock, [&] { return sending_ == 0; });
    }
    auto flushed = flush(timeout);
    // What is left fails with _PURGE_QUEUE / _PURGE_INFLIGHT: shutting_down.
    // Every record still gets its callback before the I/O thread stops.
    rd_kafka_purge(rk_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    (void)rd_kafka_flush(rk_.get(), 5000);
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::max(o_.delivery_timeout, milliseconds(5000)),
                   [&] { return outstanding_.empty(); });
      if (!outstanding_.empty())
        log::get("client")->error("kafka producer: {} record(s) without a delivery report at close",
                                  outstanding_.size());
    }
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    rd_kafka_queue_destroy(queue_);
    queue_ = nullptr;
    rk_.reset();
    return flushed;
  }

  producer_stats stats() const override { return {}; }

 private:
  struct pending {
    delivery_callback cb;
    std::uint64_t seq;
  };

  static sclock::time_point saturating(milliseconds d) {
    const auto now = sclock::now();
    if (d >= std::chrono::duration_cast<milliseconds>(sclock::time_point::max() - now))
      return sclock::time_point::max();
    return now + d;
  }

  // The topic's partition count, from the cache or the cluster.
  result<int> partitions_of(const std::string& topic, bool refresh) {
    {
      std::lock_guard lock(mu_);
      auto it = partitions_.find(topic);
      if (it != partitions_.end() && !refresh) return it->second;
    }
    std::string why;
    auto n = kafka::partition_count(rk_.get(), topic, std::min(o_.max_block, o_.api_timeout), &why);
    if (!n) {
      log::get("client")->debug("{}", why);
      return n.error();
    }
    std::lock_guard lock(mu_);
    partitions_[topic] = n.value();
    return n.value();
  }

  void finish(std::uint64_t seq) {
    std::lock_guard lock(mu_);
    outstanding_.erase(seq);
    cv_.notify_all();
  }

  void run() {
    io_id_ = std::this_thread::get_id();
    while (!stop_.load()) {
      rd_kafka_event_t* ev = rd_kafka_queue_poll(queue_, 100);
      if (ev == nullptr) continue;
      if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_DR) {
        const rd_kafka_message_t* m;
        while ((m = rd_kafka_event_message_next(ev)) != nullptr) deliver(m);
      } else if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_ERROR) {
        log::get("client")->warn("kafka producer: {}", rd_kafka_event_error_string(ev));
      }
      rd_kafka_event_destroy(ev);
    }
  }

  void deliver(const rd_kafka_message_t* m) {
    std::unique_ptr<pending> p(static_cast<pending*>(m->_private));
    if (!p) return;
    if (p->cb) {
      result<record_metadata> r = ferry::errc::invalid_argument;
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
        r = kafka::from_kafka(m->err);
      else
        r = record_metadata{rd_kafka_topic_name(m->rkt), partition_id(m->partition),
                            offset(m->offset)};
      if (!r && (r.error() == errc::unknown_topic || r.error() == errc::unknown_partition)) {
        std::lock_guard lock(mu_);
        partitions_.erase(rd_kafka_topic_name(m->rkt));
      }
      try {
        p->cb(r);
      } catch (const std::exception& e) {
        log::get("client")->error("delivery callback threw: {}", e.what());
      } catch (...) {
        log::get("client")->error("delivery callback threw");
      }
    }
    finish(p->seq);
  }

  const producer_options o_;
  std::error_code init_error_;
  std::string init_why_;
  kafka::handle rk_;
  rd_kafka_queue_t* queue_ = nullptr;
  std::thread thread_;
  std::atomic<std::thread::id> io_id_{};
  std::atomic<bool> stop_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::uint64_t> outstanding_;  // records without a callback yet
  std::uint64_t next_seq_ = 1;
  int sending_ = 0;  // send() calls past the closing_ check
  bool closing_ = false;
  std::map<std::string, int, std::less<>> partitions_;
};

}  // namespace

std::unique_ptr<producer::backend> make_kafka_producer(producer_options options) {
  return std::make_unique<kafka_producer>(std::move(options));
}

}  // namespace ferry::client
