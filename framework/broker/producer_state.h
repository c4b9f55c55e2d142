// The idempotent producer, broker side (private to the broker).
//
// Two pieces:
//
// producer_registry — who may produce: hands out producer ids and epochs
// (InitProducer) and says whether a batch's (id, epoch) is current, fenced
// or unknown. One per broker, owned by the disk thread.
//
// partition_producers — what each producer last wrote to one partition:
// per producer id its epoch and its last kProducerWindow batches
// (first/last sequence, base offset, record count), like Kafka's
// ProducerStateManager and Redpanda's cluster/producer_state.h. One per
// partition, owned by the disk thread next to the partition_log.
//
// Rules for a batch with producer_id >= 0 (check(); the broker applies them
// before appending, in this order):
//   1. registry: the epoch is older than the producer's current epoch
//      -> fenced (ProducerFenced); an id never handed out, or an epoch newer
//      than the current one -> invalid (InvalidProducer). Nothing written.
//   2. the batch's sequence range equals one of the cached batches of the
//      same epoch -> duplicate: not written again; answered with the
//      ORIGINAL base offset and duplicate=true. The broker answers a
//      duplicate, like every produce, only after the round's sync, so it
//      is never acknowledged before its original is durable.
//   3. no state for this producer on this partition (new producer, or the
//      state expired or lay beyond the recovery scan) -> append; a newer
//      epoch than the partition's -> append if base_sequence is 0;
//      base_sequence == last sequence + 1 -> append.
//   4. anything else -> out_of_order (OutOfOrderSequence), with a message
//      that says which sequence was expected. Nothing written.
// appended() records a batch once the log accepted it (not before: a
// refused or failed append changes nothing).
//
// Sequence numbers are i32 and wrap from INT32_MAX to 0, as in Kafka: a
// batch's last sequence is (base + count - 1) mod 2^31, and the one after
// INT32_MAX is 0.
//
// State machine of one producer on one partition:
//   (none) --append--> active(epoch e, window of <= 5 batches)
//   active(e) --append seq=last+1--> active(e)      (oldest batch dropped past 5)
//   active(e) --append epoch e'>e, seq 0--> active(e', window reset)
//   active --no append for kProducerStateExpiry--> (none)   (expire())
//   active --more than kMaxProducersPerPartition producers--> (none)
//           for the least recently written 10 % (evict)
// A producer that has no state is accepted at any sequence: that is what
// makes expiry and a bounded recovery scan safe for new data, and the
// bounds below are what make them safe for retries.
//
// Recovery (rebuild()): the state is rebuilt when a partition is opened by
// reading the batch headers of the log's newest segments, from the newest
// back until at least kProducerScanBytes (64 MiB) are covered (so at most
// 64 MiB + one segment), never the whole log: recovery time does not grow
// with the log. Per-partition state is not persisted apart from the log.
// Consequence: a producer whose last batch on this partition lies further
// back has no state after a restart, and a retry of that batch would be
// stored again. Why that does not happen in practice: a client resends only
// the one batch per partition it has in flight (ferry::producer keeps at
// most one) and whose reply it did not get, so the retried batch is the
// producer's newest on the partition; the client resends it at once when
// the connection drops, else after request_timeout (30 s by default). A
// duplicate thus needs a broker restart between the original and the retry
// AND more than 64 MiB appended to this one partition in that time. When the
// broker crashed before answering, the appends after the original are the
// few of its last round plus what other clients resend right after the
// restart (at most one batch per partition each); only a reply that
// vanished without a disconnect (then request_timeout applies) on a
// partition taking over 2 MiB/s could reach it. Making this exact would take
// producer state snapshots beside the segments (Kafka's .snapshot files).
//
// Thread safety: none; the disk thread owns both.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ferry/core/result.h"
#include "ferry/core/types.h"
#include "ferry/format/batch.h"
#include "ferry/storage/env.h"

namespace ferry::storage {
class partition_log;
}

namespace ferry::broker {

/// Batches remembered per producer and partition for duplicate detection
/// (Kafka and Redpanda remember 5; the client keeps one in flight).
inline constexpr std::size_t kProducerWindow = 5;
/// Recovery reads at least this much of a partition's log tail.
inline constexpr std::uint64_t kProducerScanBytes = 64ull << 20;
/// A producer's state on a partition is dropped after this long without an
/// append from it (Kafka's producer.id.expiration.ms is one day).
inline constexpr std::int64_t kProducerStateExpiryMs = 7ll * 24 * 3600 * 1000;
/// Producers remembered per partition; past it the least recently written
/// tenth is evicted.
inline constexpr std::size_t kMaxProducersPerPartition = 100'000;
/// Names bound to producer ids (each costs a line in <data>/producers and
/// every named InitProducer rewrites that file).
inline constexpr std::size_t kMaxNamedProducers = 10'000;
/// Producer ids are reserved in blocks of this many, so an InitProducer
/// without a name writes <data>/producers once per block.
inline constexpr std::int64_t kProducerIdBlock = 1000;

/// The sequence number after `seq` (wrapping from INT32_MAX to 0).
[[nodiscard]] std::int32_t next_sequence(std::int32_t seq, std::int32_t count = 1) noexcept;

/// Producer ids, names and current epochs, persisted in one small file
/// (`<data>/producers`, format in producer_state.cc) rewritten atomically
/// (temp file, fsync, rename, directory fsync) through storage::env:
///  - ids are never handed out twice, across restarts: the file records the
///    end of the reserved block, and a restart continues after it;
///  - a name keeps its id, and its epoch only grows; an epoch bump is
///    durable before InitProducer is answered, so a fenced producer stays
///    fenced after a restart.
/// A file that fails its checksum or does not parse makes open() fail with
/// ferry::errc::corrupt_data and a message: never a silent reset, which
/// could hand out an id again or unfence a zombie.
/// Epochs of unnamed producers are always 0. When a named producer's epoch
/// would pass INT16_MAX it gets a new id at epoch 0 and the old id is
/// refused (fenced until a restart, then invalid: its epoch is not 0).
class producer_registry {
 public:
  /// Loads `file` (absent: a fresh registry). `e` must outlive the registry.
  [[nodiscard]] static result<std::unique_ptr<producer_registry>> open(storage::env& e,
                                                                       std::filesystem::path file,
                                                                       std::string* why);

  struct grant {
    producer_id id{-1};
    producer_epoch epoch{-1};
  };
  /// InitProducer. Without a name: a new id at epoch 0. With a name: its id
  /// with the epoch raised by one (a new id at epoch 0 the first time).
  /// Persists before returning when needed; on a write failure nothing
  /// changes (the error says why). ferry::errc::out_of_range when
  /// kMaxNamedProducers names exist and `name` is new.
  [[nodiscard]] result<grant> init(std::optional<std::string_view> name);

  enum class standing { current, fenced, invalid };
  /// Whether a batch of (id, epoch) may be written; `message` says why not.
  [[nodiscard]] standing check(producer_id id, producer_epoch epoch, std::string* message) const;

  /// Called during recovery with the largest producer id found in the
  /// logs: ids up to it are taken even if the file does not know them
  /// (the file was removed or restored from an old copy).
  void observe(producer_id id);

  [[nodiscard]] std::size_t named() const noexcept { return names_.size(); }
  [[nodiscard]] std::int64_t next_id() const noexcept { return next_id_; }

 private:
  producer_registry(storage::env& e, std::filesystem::path file)
      : env_(e), file_(std::move(file)) {}
  [[nodiscard]] result<void> persist(std::int64_t reserved_to,
                                     const std::map<std::string, grant, std::less<>>& names);
  [[nodiscard]] std::vector<std::byte> encode(
      std::int64_t reserved_to, const std::map<std::string, grant, std::less<>>& names) const;

  storage::env& env_;
  std::filesystem::path file_;
  std::int64_t next_id_ = 0;      // next id to hand out
  std::int64_t reserved_to_ = 0;  // ids below this are reserved in the file
  std::map<std::string, grant, std::less<>> names_;
  std::unordered_map<std::int64_t, std::int16_t> named_epochs_;  // id -> current epoch
  std::set<std::int64_t> retired_;  // named ids that ran out of epochs (this run)
};

/// One cached batch of a producer on a partition.
struct producer_batch {
  std::int32_t first_seq = 0;
  std::int32_t last_seq = 0;
  std::int64_t base_offset = 0;
  std::int32_t record_count = 0;
};

struct producer_entry {
  std::int16_t epoch = 0;
  std::deque<producer_batch> batches;  // oldest first, at most kProducerWindow
  std::int64_t last_write_ms = 0;      // wall clock of the last append (expiry)
};

class partition_producers {
 public:
  enum class verdict { append, duplicate, fenced, out_of_order };
  struct decision {
    verdict v = verdict::append;
    std::int64_t base_offset = -1;  // verdict::duplicate: where the original is
    std::string message;            // fenced / out_of_order: why
  };

  /// Rules 2-4 above for a batch whose producer the registry accepted.
  /// `h` is the batch's header (pid >= 0, base_sequence >= 0, count >= 1).
  [[nodiscard]] decision check(const format::batch_header& h) const;

  /// Records a batch the log appended at `base_offset`.
  void appended(const format::batch_header& h, std::int64_t base_offset, std::int64_t now_ms);

  /// Drops producers without an append for `max_age_ms`; returns how many.
  std::size_t expire(std::int64_t now_ms, std::int64_t max_age_ms = kProducerStateExpiryMs);

  [[nodiscard]] const producer_entry* find(producer_id id) const;
  [[nodiscard]] std::size_t size() const noexcept { return producers_.size(); }
  /// The largest producer id seen (-1: none).
  [[nodiscard]] std::int64_t max_producer_id() const noexcept { return max_id_; }

  /// What rebuild() read.
  struct scan_report {
    std::int64_t from_offset = 0;
    std::uint64_t bytes = 0;
    std::size_t batches = 0;
  };
  /// Rebuilds the state of the log in `dir` (already opened as `log`) from
  /// the batch headers of its newest segments covering at least `min_bytes`
  /// (see the header comment). A read error stops the scan and is returned;
  /// the state then holds what was read before it.
  [[nodiscard]] result<scan_report> rebuild(storage::env& e, const std::filesystem::path& dir,
                                            storage::partition_log& log, std::int64_t now_ms,
                                            std::uint64_t min_bytes = kProducerScanBytes);

 private:
  void evict_oldest();

  std::unordered_map<std::int64_t, producer_entry> producers_;
  std::int64_t max_id_ = -1;
};

}  // namespace ferry::broker
