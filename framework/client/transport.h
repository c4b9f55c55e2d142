// The transport boundary (DESIGN.md decision 12; private to the client).
//
// producer, consumer and admin are the API the runtime and the CLI use.
// Behind each is one of two transports, chosen by the broker URL:
//   tcp://HOST:PORT, ipc://PATH   ferryd's native protocol over ZeroMQ
//                                 (producer.cc, consumer*.cc, admin.cc)
//   kafka://HOST:PORT[,HOST:PORT] a Kafka cluster (or ferryd's Kafka
//                                 listener) through librdkafka (kafka_*.cc)
// The contracts written in producer.h and consumer.h hold for both; where a
// transport cannot keep one it fails the call with a message naming what is
// missing, never silently.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/client/consumer.h"
#include "ferry/client/producer.h"

namespace ferry::client {

class producer::backend {
 public:
  virtual ~backend() = default;
  virtual result<void> send(producer_record record, delivery_callback callback) = 0;
  virtual result<void> flush(std::chrono::milliseconds timeout) = 0;
  virtual result<void> close(std::chrono::milliseconds timeout) = 0;
  [[nodiscard]] virtual producer_stats stats() const = 0;
};

class consumer::backend {
 public:
  virtual ~backend() = default;
  /// The public object moved: callbacks get the new address.
  virtual void rebind(consumer& self) noexcept = 0;

  virtual result<void> assign(std::vector<topic_partition> partitions) = 0;
  [[nodiscard]] virtual std::vector<topic_partition> assignment() const = 0;
  virtual result<void> seek(const topic_partition& tp, offset position) = 0;
  virtual result<void> seek_to_beginning(std::span<const topic_partition> partitions) = 0;
  virtual result<void> seek_to_end(std::span<const topic_partition> partitions) = 0;
  virtual result<void> seek_to_timestamp(std::span<const topic_partition> partitions,
                                         timestamp_ms timestamp) = 0;
  virtual result<offset> position(const topic_partition& tp) = 0;
  virtual result<std::vector<consumer_record>> poll(std::chrono::milliseconds timeout) = 0;

  virtual result<void> subscribe(std::vector<std::string> topics, rebalance_listener* listener) = 0;
  virtual result<void> unsubscribe() = 0;
  [[nodiscard]] virtual std::vector<std::string> subscription() const = 0;
  virtual result<void> commit(const std::vector<offset_commit>& offsets,
                              std::chrono::milliseconds timeout) = 0;
  virtual result<void> commit_positions() = 0;
  virtual void commit_async(std::vector<offset_commit> offsets, commit_callback done) = 0;
  virtual result<std::vector<committed_position>> committed(std::vector<topic_partition> partitions,
                                                            std::chrono::milliseconds timeout) = 0;
  virtual result<std::vector<std::optional<timestamp_ms>>> ledger_lookup(
      const std::vector<std::string>& keys, std::chrono::milliseconds window) = 0;
  virtual result<void> pause(const std::vector<topic_partition>& partitions, bool on) = 0;
  [[nodiscard]] virtual std::vector<topic_partition> paused() const = 0;
  virtual result<void> close() = 0;
  virtual void wakeup() noexcept = 0;

  // Read by the public accessors; kept current by the implementation.
  std::string last_error_message_;
  std::string member_id_;
  std::int32_t generation_ = -1;
  std::chrono::milliseconds api_timeout_{60000};  // consumer_options::api_timeout
};

/// The checks every producer makes before taking a record, and the
/// idempotency key moved into its header: errc::invalid_topic_name,
/// ferry::errc::invalid_argument (negative partition or timestamp, a key
/// outside 1..kMaxIdempotencyKeyBytes).
[[nodiscard]] result<void> prepare_record(producer_record& rec);

/// True for a kafka:// broker URL.
[[nodiscard]] bool is_kafka_url(std::string_view broker) noexcept;

/// The Kafka transport (kafka_producer.cc, kafka_consumer.cc).
[[nodiscard]] std::unique_ptr<producer::backend> make_kafka_producer(producer_options options);
[[nodiscard]] std::unique_ptr<consumer::backend> make_kafka_consumer(consumer& self,
                                                                     consumer_options options);

}  // namespace ferry::client
