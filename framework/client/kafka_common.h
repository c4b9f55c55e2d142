// What the Kafka transport's producer, consumer, ledger and admin share
// (private to the client): broker URLs, librdkafka handles built from
// client_options, and librdkafka's error codes as std::error_code.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "ferry/client/options.h"
#include "ferry/client/types.h"
#include "ferry/core/result.h"

namespace ferry::client::kafka {

/// The group.id of consumers that only assign(): librdkafka needs one, and
/// nothing joins or commits under it.
inline constexpr const char* kAssignOnlyGroup = "__ferry_assign_only";

/// The "kafka" category: librdkafka's rd_kafka_resp_err_t values (broker
/// error codes and librdkafka's own negative ones), with its messages.
const std::error_category& kafka_category() noexcept;

/// The Ferry error a caller already compares against where one means the
/// same (unknown topic, fenced member, time-out, ...); otherwise the code in
/// kafka_category(). RD_KAFKA_RESP_ERR_NO_ERROR gives an empty code.
[[nodiscard]] std::error_code from_kafka(rd_kafka_resp_err_t err) noexcept;

/// True for a kafka_category() value that may succeed when tried again
/// (librdkafka's retriable errors: leader or coordinator moving, ...).
[[nodiscard]] bool is_retriable_kafka(int value) noexcept;

/// "HOST:PORT,HOST:PORT" from "kafka://HOST:PORT,HOST:PORT";
/// ferry::errc::invalid_argument (with `why`) for anything else.
[[nodiscard]] result<std::string> bootstrap_servers(std::string_view url, std::string* why);

struct handle_deleter {
  void operator()(rd_kafka_t* rk) const noexcept;
};
using handle = std::unique_ptr<rd_kafka_t, handle_deleter>;

struct list_deleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const noexcept {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using partition_list = std::unique_ptr<rd_kafka_topic_partition_list_t, list_deleter>;

using settings = std::vector<std::pair<std::string, std::string>>;

/// A librdkafka client of `type` for `o.broker`: Ferry's `ours` settings,
/// then the caller's `o.kafka` properties (which win). `configure` may set
/// callbacks on the configuration before the handle is made. librdkafka's
/// log lines go to the "kafka" logger.
[[nodiscard]] result<handle> make_handle(rd_kafka_type_t type, const client_options& o,
                                         const settings& ours, std::string* why,
                                         void (*configure)(rd_kafka_conf_t*, void*) = nullptr,
                                         void* opaque = nullptr);

[[nodiscard]] partition_list make_list(const std::vector<topic_partition>& tps);
/// The offsets to commit, with their metadata (librdkafka frees it with
/// the list).
[[nodiscard]] partition_list make_commit_list(const std::vector<offset_commit>& offsets);
[[nodiscard]] std::vector<topic_partition> from_list(const rd_kafka_topic_partition_list_t* l);

/// The partitions of `topic` from the cluster's metadata:
/// errc::unknown_topic when the cluster does not know it.
[[nodiscard]] result<int> partition_count(rd_kafka_t* rk, const std::string& topic,
                                          std::chrono::milliseconds timeout, std::string* why);

/// Creates a topic through the Admin API (replication: the cluster's
/// default.replication.factor). `configs` are topic configs
/// (retention.ms, ...).
[[nodiscard]] result<void> create_topic(rd_kafka_t* rk, const std::string& name, int partitions,
                                        const settings& configs, std::chrono::milliseconds timeout,
                                        std::string* why);
[[nodiscard]] result<void> delete_topic(rd_kafka_t* rk, const std::string& name,
                                        std::chrono::milliseconds timeout, std::string* why);

/// A producer for Ferry's own topics (ledger, registry): idempotent,
/// acks=all, no linger, records up to `max_message_bytes`, delivery
/// reports to `on_delivery` (served by rd_kafka_flush on the caller).
[[nodiscard]] result<handle> make_writer(const client_options& o, std::size_t max_message_bytes,
                                         void (*on_delivery)(rd_kafka_t*, const rd_kafka_message_t*,
                                                             void*),
                                         std::string* why);

/// A consumer that only assign()s: a reader of one of Ferry's own topics
/// (ledger, registry), never a group member.
[[nodiscard]] result<handle> make_reader(const client_options& o, std::string* why);

/// The log start and end of `topic`'s partition 0, asked again while the
/// cluster settles (a topic just created) or is unreachable, until
/// o.api_timeout.
[[nodiscard]] result<std::pair<std::int64_t, std::int64_t>> watermarks(rd_kafka_t* rk,
                                                                       const std::string& topic,
                                                                       const client_options& o,
                                                                       std::string* why);

/// One record for produce(); null key/value pointers are null in Kafka.
struct outgoing {
  const std::string* topic = nullptr;
  std::int32_t partition = RD_KAFKA_PARTITION_UA;
  const std::string* key = nullptr;
  const std::string* value = nullptr;
  std::int64_t timestamp = 0;
  const std::vector<header>* headers = nullptr;
  void* opaque = nullptr;  ///< the delivery report's _private
};
/// Queues one record in a producer (librdkafka copies everything).
[[nodiscard]] rd_kafka_resp_err_t produce(rd_kafka_t* rk, const outgoing& m);

/// Milliseconds for a librdkafka timeout argument (clamped to int).
[[nodiscard]] int timeout_ms(std::chrono::milliseconds d) noexcept;

/// A message's headers as Ferry headers (null values stay null).
[[nodiscard]] std::vector<header> headers_of(const rd_kafka_message_t* m);
/// A consumed message as a consumer_record.
[[nodiscard]] consumer_record to_record(const rd_kafka_message_t* m);

}  // namespace ferry::client::kafka
