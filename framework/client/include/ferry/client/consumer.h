// The consumer: reads assigned partitions from positions it keeps itself.
//
//   ferry::client::consumer c(o);
//   c.assign({{"orders", partition_id(0)}, {"orders", partition_id(1)}});
//   for (;;) {
//     auto records = c.poll(std::chrono::milliseconds(500));
//     if (!records) { /* is_retriable(records.error()) ? log and go on : stop */ }
//     for (const auto& r : records.value()) handle(r);
//   }
//
// Positions. Each assigned partition has a position: the offset of the next
// record poll() may return. poll() returns records at or above it, in
// offset order per partition, and moves it past the last one returned —
// never backwards, never past a record it did not return. A newly assigned
// partition starts at the earliest offset (log start) unless seek*() was
// called for it. seek_to_beginning/end/timestamp are lazy: the offset is
// looked up (ListOffsets) by the next poll() or position(). A timestamp
// with no record at or after it positions at the log end.
//
// Out of range. When the broker answers a fetch with OffsetOutOfRange
// (position below log start after retention, or beyond log end), the
// position is reset per consumer_options::auto_offset_reset: earliest
// (default), latest, or none (poll() fails with errc::offset_out_of_range
// and the position stays; call seek*()).
//
// Fetching. poll() keeps at most one FetchRequest (all assigned partitions
// with a known position) in flight; the broker holds it up to
// fetch_max_wait for data (long poll). A fetch still unanswered when poll's
// timeout ends stays in flight and is picked up by the next poll(); data
// for a partition whose position changed meanwhile (seek, assign) is
// discarded. Every fetched batch passes format::validate_batch(full)
// before any of its records is returned; a batch that fails (CRC, framing)
// makes poll() fail with errc::corrupt_data for that partition (details in
// last_error_message()) and the position stays before it. Records of other
// partitions in the same reply are returned and the error is reported by
// the next poll().
//
// Broker restarts. A fetch or offset lookup lost with a dropped connection
// (or unanswered within fetch_max_wait + request_timeout) is sent again
// after retry_backoff; ZeroMQ reconnects by itself, so consumption resumes
// once the broker is back. poll() reports protocol::errc::timed_out only
// when requests have gone unanswered for api_timeout (is_retriable() is
// true: just poll again).
//
// Other errors from poll(): wire errors such as errc::unknown_topic,
// errc::partition_failed, errc::corrupt_data, errc::offset_out_of_range
// (with offset_reset::none). Retriable wire errors for one partition
// (ShuttingDown, Timeout, ...) are not reported: that partition is simply
// fetched again after retry_backoff.
//
// Consumer groups. With consumer_options::group_id set, subscribe(topics)
// makes the consumer a member of that group: the broker shares the topics'
// partitions among the members (sticky by default) and rebalances when a
// member joins, leaves or stops heartbeating. Everything happens inside
// poll(): joining, the listener's callbacks, looking up committed offsets.
//
//   struct on_rebalance : ferry::client::rebalance_listener {
//     void on_revoked(consumer& c, const std::vector<topic_partition>&) override {
//       (void)c.commit(done);  // finish what this member owns, then let go
//     }
//   } listener;
//   c.subscribe({"orders"}, &listener);
//   for (;;) {
//     auto records = c.poll(500ms);  // joins, rebalances, fetches
//     ... process, then c.commit(...) or c.commit_async(...)
//   }
//   c.close();  // on_revoked, then leave the group: others take over at once
//
// A newly assigned partition starts at the group's committed offset, or
// per auto_offset_reset when nothing is committed. Nothing is committed
// automatically: commit() what the application has finished. Commits are
// durable when they return, fenced by generation (a member that was
// replaced gets errc::stale_generation or errc::unknown_member, and its
// partitions are reported lost to on_lost()), and committed offsets never
// move backwards (errc::offset_regression; an operator resets them with
// `ferry groups reset-offsets`). A background thread heartbeats every
// heartbeat_interval; a consumer that does not call poll() for
// max_poll_interval leaves the group so others can take over, and rejoins
// at its next poll(). With group_instance_id (static membership) a
// restarted consumer takes its own partitions back without a rebalance.
//
// Thread safety: none. Use a consumer from one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ferry/client/options.h"
#include "ferry/client/types.h"
#include "ferry/core/result.h"

namespace ferry::client {

/// Where to go when a position is out of range, or when a group has no
/// committed offset for a partition.
enum class offset_reset { earliest, latest, none };

/// How the broker shares partitions among a group's members. Every member
/// of a group must ask for the same one.
enum class assign_strategy { sticky, range, round_robin };

class consumer;

/// Callbacks about the group assignment, all called from inside poll()
/// (and from close()/unsubscribe() for on_revoked) on the polling thread.
class rebalance_listener {
 public:
  virtual ~rebalance_listener() = default;
  /// The new assignment (all of it), before any of its records is returned.
  /// Positions are the committed offsets; seek() here to start elsewhere.
  virtual void on_assigned(consumer& c, const std::vector<topic_partition>& partitions);
  /// Before the partitions are taken away by a rebalance, while this member
  /// still owns them: commit what the application finished.
  virtual void on_revoked(consumer& c, const std::vector<topic_partition>& partitions);
  /// The partitions were already taken away (this member timed out or was
  /// fenced); commits for them would be refused. Default: nothing.
  virtual void on_lost(consumer& c, const std::vector<topic_partition>& partitions);
};

struct consumer_options : client_options {
  /// Upper bound on the data of one fetch reply (FetchRequest.max_bytes).
  std::int32_t fetch_max_bytes = 8 << 20;
  /// Upper bound per partition (FetchEntry.max_bytes). The broker returns at
  /// least one whole batch even if it is larger.
  std::int32_t partition_max_bytes = 1 << 20;
  /// How long the broker may hold a fetch waiting for data.
  std::chrono::milliseconds fetch_max_wait{500};
  /// What to do when the broker says a position is out of range, or a
  /// group has nothing committed for a partition.
  offset_reset auto_offset_reset = offset_reset::earliest;

  // Groups (subscribe()).
  /// The group to join; also needed for commit()/committed() with assign().
  std::string group_id;
  /// Shown by `ferry groups describe`; part of the member id.
  std::string client_id = "ferry";
  assign_strategy strategy = assign_strategy::sticky;
  /// The broker removes a member that sends no heartbeat for this long.
  std::chrono::milliseconds session_timeout{10'000};
  std::chrono::milliseconds heartbeat_interval{1'000};
  /// How long the broker waits for members to rejoin in a rebalance.
  std::chrono::milliseconds rebalance_timeout{30'000};
  /// Without a poll() for this long the member leaves the group.
  std::chrono::milliseconds max_poll_interval{300'000};
  /// Static membership (Kafka's group.instance.id): an id for this
  /// instance that survives its restarts, unique in the group (e.g.
  /// "payment-1", a pod name). A restart that joins again within
  /// session_timeout takes its place back at once - the same partitions,
  /// no rebalance, nobody else stops. close() does not leave the group
  /// (unsubscribe() does): the partitions wait for the instance up to
  /// session_timeout. A second live process with the same id takes the
  /// place, and the first gets errc::fenced_instance_id from poll() and
  /// commits for good. Empty: a dynamic member.
  std::string group_instance_id;
};

class consumer {
 public:
  explicit consumer(consumer_options options = {});
  ~consumer();
  consumer(consumer&&) noexcept;
  consumer& operator=(consumer&&) noexcept;

  /// Replaces the assignment. Partitions kept keep their positions; new
  /// ones start at the earliest offset. errc::invalid_topic_name or
  /// ferry::errc::invalid_argument (negative partition) leave the
  /// assignment unchanged.
  [[nodiscard]] result<void> assign(std::vector<topic_partition> partitions);
  [[nodiscard]] std::vector<topic_partition> assignment() const;

  /// Sets the position. ferry::errc::not_found if `tp` is not assigned,
  /// ferry::errc::invalid_argument for a negative offset.
  [[nodiscard]] result<void> seek(const topic_partition& tp, offset position);
  /// An empty span means every assigned partition. ferry::errc::not_found
  /// if one of them is not assigned (then nothing changes).
  [[nodiscard]] result<void> seek_to_beginning(std::span<const topic_partition> partitions = {});
  [[nodiscard]] result<void> seek_to_end(std::span<const topic_partition> partitions = {});
  [[nodiscard]] result<void> seek_to_timestamp(std::span<const topic_partition> partitions,
                                               timestamp_ms timestamp);

  /// The position of an assigned partition, looking it up first if a
  /// reset is pending (retrying for up to api_timeout).
  [[nodiscard]] result<offset> position(const topic_partition& tp);

  /// Returns the records that arrive within `timeout` (possibly none). With
  /// nothing assigned it waits `timeout` and returns nothing.
  [[nodiscard]] result<std::vector<consumer_record>> poll(std::chrono::milliseconds timeout);

  // --- groups ---------------------------------------------------------------

  /// Joins options.group_id (at the next poll()) for `topics`; the broker
  /// decides the assignment. ferry::errc::invalid_argument without a
  /// group_id, with no topics, or after assign() with partitions.
  [[nodiscard]] result<void> subscribe(std::vector<std::string> topics,
                                       rebalance_listener* listener = nullptr);
  /// Revokes the assignment (on_revoked) and leaves the group.
  [[nodiscard]] result<void> unsubscribe();
  [[nodiscard]] std::vector<std::string> subscription() const;
  /// Member id and generation while a member (empty/-1 otherwise).
  [[nodiscard]] const std::string& member_id() const noexcept;
  [[nodiscard]] std::int32_t generation() const noexcept;

  /// Commits durably, waiting for the broker (retried until api_timeout
  /// after lost replies). Refusals: errc::stale_generation,
  /// errc::unknown_member, errc::rebalance_in_progress (rejoin: poll()
  /// again), errc::not_assigned, errc::offset_regression,
  /// errc::group_not_empty (a commit with assign() while the group has
  /// members). On a per-partition refusal the others may have been
  /// committed; last_error_message() names the partition.
  [[nodiscard]] result<void> commit(const std::vector<offset_commit>& offsets);
  /// As above, giving up after `timeout` instead of api_timeout (a worker's
  /// stop uses it, so that a broker that went away cannot hold it up). Over
  /// kafka:// librdkafka's own timeouts bound the commit.
  [[nodiscard]] result<void> commit(const std::vector<offset_commit>& offsets,
                                    std::chrono::milliseconds timeout);
  /// Commits the position of every assigned partition (everything poll()
  /// returned so far).
  [[nodiscard]] result<void> commit();
  /// Queues a commit; it goes out with the next fetch (or on its own) and
  /// `done` is called from a later poll(), commit() or close().
  using commit_callback = std::function<void(const std::vector<commit_result>&)>;
  void commit_async(std::vector<offset_commit> offsets, commit_callback done = {});
  /// The group's committed offsets for `partitions` (none: the assignment).
  [[nodiscard]] result<std::vector<committed_position>> committed(
      std::vector<topic_partition> partitions = {});
  /// As above, giving up after `timeout` instead of api_timeout.
  [[nodiscard]] result<std::vector<committed_position>> committed(
      std::vector<topic_partition> partitions, std::chrono::milliseconds timeout);

  /// Stops/restarts fetching these assigned partitions; positions stay.
  [[nodiscard]] result<void> pause(const std::vector<topic_partition>& partitions);
  [[nodiscard]] result<void> resume(const std::vector<topic_partition>& partitions);
  [[nodiscard]] std::vector<topic_partition> paused() const;

  /// Finishes pending async commits, revokes (on_revoked) and leaves the
  /// group so its partitions move at once. The destructor leaves too, but
  /// without callbacks. A static member (group_instance_id) does not leave:
  /// its partitions wait for its restart up to session_timeout. Idempotent.
  [[nodiscard]] result<void> close();

  /// Makes a poll() that is waiting (or the next one) return at once with
  /// what it has. The only method that may be called from another thread.
  void wakeup() noexcept;

  /// Which of `keys` the group's ledger of processed idempotency keys holds,
  /// recorded within `window` of the broker's clock (zero: everything the
  /// broker keeps). One entry per key: when it was recorded, or empty.
  /// Needs options.group_id. Retried until api_timeout.
  [[nodiscard]] result<std::vector<std::optional<timestamp_ms>>> ledger_lookup(
      const std::vector<std::string>& keys, std::chrono::milliseconds window = {});

  /// Details of the last error poll(), position() or a seek returned.
  [[nodiscard]] const std::string& last_error_message() const noexcept;

  /// The transport behind it (framework/client/transport.h).
  class backend;
  class impl;  ///< ferryd's native protocol

 private:
  std::unique_ptr<backend> impl_;
};

}  // namespace ferry::client
