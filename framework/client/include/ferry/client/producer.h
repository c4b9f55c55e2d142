// The producer: batches records per partition and sends them to the broker
// from a background I/O thread.
//
//   ferry::client::producer_options o;
//   o.broker = "tcp://127.0.0.1:7400";
//   ferry::client::producer p(o);
//   auto r = p.send({.topic = "orders", .key = "order-42", .value = payload},
//                   [](const ferry::result<ferry::client::record_metadata>& m) { ... });
//   p.flush(std::chrono::seconds(10));
//
// Delivery contract
// - A callback reports success only after the broker acknowledged the
//   batch, which in Ferry means it is durable. Every record accepted by
//   send() gets exactly one callback: the record's offset, or an error.
// - Failed sends are retried (retriable wire errors; requests lost when the
//   connection dropped, e.g. a broker restart; requests unanswered within
//   request_timeout) until delivery_timeout after send(); then the callback
//   gets the last error (protocol::errc::timed_out when the broker stayed
//   silent, protocol::errc::disconnected when it was unreachable). Never a
//   pretended success.
// - Idempotence (enable_idempotence, on by default): a retried batch is
//   stored once. The producer gets a producer id and epoch from the broker
//   (InitProducer, sent by the I/O thread before the first batch and
//   retried like a produce) and stamps each batch with them and a
//   per-partition sequence number the first time the batch is sent; a
//   retry resends the identical bytes. The broker stores a batch whose
//   sequence it has already stored once, answers the retry with the
//   original offsets (counted in stats().duplicates) and refuses gaps. So a
//   record whose callback reported success is stored exactly once, and a
//   record whose callback reported an error is stored at most once (its
//   outcome may be unknown: a batch that expired after a lost reply may
//   have been stored). This holds across broker restarts and kill -9 (the
//   broker rebuilds what it needs from its log; bounds in
//   docs/protocol.md, "Idempotent producer"). It does not hold across
//   producer restarts: a new producer is a new identity, so records an
//   application resends after restarting its producer may be stored twice
//   (the consumer runtime's idempotency keys cover that).
//   Errors specific to idempotence:
//     errc::producer_fenced — another producer with the same producer_name
//       started (a newer epoch). This producer is dead: every record not
//       yet sent fails with it, and so does every later send(); records
//       already in flight get the broker's answer. Close it.
//     errc::out_of_order_sequence, errc::invalid_producer — the broker's
//       state does not match this producer's (e.g. data lost under
//       flush.mode = interval): that batch's records fail with the error,
//       nothing is silently resent; later batches go out under a fresh
//       producer identity (InitProducer again; logged).
//   After a batch fails without a definite answer (delivery_timeout passed
//   after a lost reply), the producer also takes a fresh identity before
//   sending more, because the broker may or may not hold that batch; it
//   first waits until no batch of the old identity is in flight. A broker
//   that does not know InitProducer (answers InvalidRequest) makes every
//   send fail with that error: set enable_idempotence = false for it.
//   With enable_idempotence = false the producer is at-least-once: a batch
//   whose reply was lost and that is then resent may be stored twice.
// - Records of one partition are stored, and their callbacks run, in send()
//   order: at most one request per partition is in flight, so a retry
//   cannot overtake a later batch. Different partitions are independent; up
//   to max_in_flight requests (each carrying many partitions) are
//   pipelined.
//
// Partitioning: an explicit producer_record::partition wins; else a keyed
// record goes to partition_for_key(key, partitions) (Kafka's default:
// toPositive(murmur2(key)) % partitions, see partitioner.h); a record
// without key goes round-robin per batch (all to one partition until that
// batch is closed, then the next). Partition counts come from
// DescribeTopic, are cached, and are looked up again after a batch failed
// with errc::unknown_topic or errc::unknown_partition.
//
// Batching: records for one partition accumulate in a batch (storage
// batch_builder format, base offset 0; the broker stamps it) until it
// holds batch_bytes or linger has passed since its first record; flush()
// and close() send at once. All ready batches go out together, many
// partitions in one ProduceRequest.
//
// Threads: send() and flush() are thread-safe. Callbacks run on the
// producer's I/O thread, one at a time; keep them short. A callback may
// call send() (it never blocks there: it fails with ferry::errc::timed_out
// instead of waiting for buffer space or metadata) but must not call
// flush() or close() (they return ferry::errc::invalid_argument there).
// Exceptions thrown by a callback are caught and logged.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>

#include "ferry/client/options.h"
#include "ferry/client/types.h"
#include "ferry/core/result.h"
#include "ferry/format/compression.h"

namespace ferry::client {

struct producer_options : client_options {
  /// How long a batch waits for more records before it is sent.
  std::chrono::milliseconds linger{5};
  /// A batch is sent once it holds this many bytes. A single record larger
  /// than this gets a batch of its own.
  std::size_t batch_bytes = 256u << 10;
  /// Memory for records not yet acknowledged. send() blocks up to max_block
  /// while it is used up (back-pressure).
  std::size_t buffer_bytes = 64u << 20;
  /// Upper bound on the time from send() to the callback.
  std::chrono::milliseconds delivery_timeout{120000};
  /// Produce requests in flight at once (each may carry many partitions;
  /// per partition it is always at most one).
  int max_in_flight = 16;
  /// How long send() may block waiting for buffer space or topic metadata.
  std::chrono::milliseconds max_block{60000};
  /// Store each batch once even when it is resent (see the delivery
  /// contract above). Needs a broker that knows InitProducer.
  bool enable_idempotence = true;
  /// With idempotence: a stable identity for this producer (1-255 bytes;
  /// like Kafka's transactional.id). A producer that starts with a name
  /// fences every older producer of that name (their batches fail with
  /// errc::producer_fenced), so a zombie instance cannot write after its
  /// replacement started. Empty: an anonymous producer (nothing fenced).
  std::string producer_name;
  /// Compression of each batch's records (Kafka's codecs: none, gzip,
  /// snappy, lz4, zstd). A batch that would not shrink is sent as it is.
  /// Brokers store compressed batches as they come; consumers decompress.
  format::compression compression = format::compression::none;
};

/// Counters of a producer (for monitoring and tests).
struct producer_stats {
  std::int64_t id = -1;                 ///< producer id (-1: none yet, or idempotence off)
  std::int16_t epoch = -1;              ///< its epoch
  std::uint64_t duplicates = 0;         ///< batches the broker reported as stored before (retries)
  std::uint64_t identity_renewals = 0;  ///< InitProducer calls after the first
};

using delivery_callback = std::function<void(const result<record_metadata>&)>;

class producer {
 public:
  /// Starts the I/O thread. Invalid options or a malformed broker endpoint
  /// are reported by send().
  explicit producer(producer_options options = {});
  /// close(), waiting as long as it takes (bounded by delivery_timeout).
  ~producer();
  producer(producer&&) noexcept;
  producer& operator=(producer&&) noexcept;

  /// Queues a record; `callback` is called once with its offset or error.
  /// Fails fast, without calling the callback, with:
  ///   errc::invalid_topic_name, errc::record_too_large (above the batch
  ///   size limit, buffer_bytes, or the topic's max_message_bytes),
  ///   errc::unknown_topic / errc::unknown_partition (an explicit
  ///   partition beyond the topic's count), ferry::errc::invalid_argument
  ///   (negative partition or timestamp), ferry::errc::timed_out (no buffer
  ///   space or metadata within max_block), ferry::errc::shutting_down
  ///   (after close()), errc::producer_fenced (a newer producer with the
  ///   same producer_name started) or the broker's refusal of InitProducer
  ///   (see the delivery contract), ferry::errc::invalid_argument for
  ///   invalid options (e.g. a producer_name without idempotence).
  [[nodiscard]] result<void> send(producer_record record, delivery_callback callback);
  /// The same, with the outcome delivered through a future. A fast failure
  /// is returned as a ready future.
  [[nodiscard]] std::future<result<record_metadata>> send(producer_record record);

  /// Sends every batch now and waits until every record send() accepted
  /// before this call has had its callback. ferry::errc::timed_out if that
  /// takes longer than `timeout` (the records stay queued).
  [[nodiscard]] result<void> flush(
      std::chrono::milliseconds timeout = std::chrono::milliseconds::max());

  /// Refuses new records, flushes for up to `timeout`, then stops the I/O
  /// thread; records still undelivered get ferry::errc::shutting_down (then
  /// the result is ferry::errc::timed_out). Idempotent.
  result<void> close(std::chrono::milliseconds timeout = std::chrono::milliseconds::max());

  /// A snapshot of the counters. Thread-safe.
  [[nodiscard]] producer_stats stats() const;

  /// The transport behind it (framework/client/transport.h).
  class backend;
  class impl;  ///< ferryd's native protocol

 private:
  std::unique_ptr<backend> impl_;
};

}  // namespace ferry::client
