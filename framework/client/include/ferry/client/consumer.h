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
// discarded. Every fetched batch passes storage::validate_batch(full)
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
// Thread safety: none. Use a consumer from one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ferry/client/options.h"
#include "ferry/client/types.h"
#include "ferry/core/result.h"

namespace ferry::client {

/// Where to go when a position is out of range.
enum class offset_reset { earliest, latest, none };

struct consumer_options : client_options {
  /// Upper bound on the data of one fetch reply (FetchRequest.max_bytes).
  std::int32_t fetch_max_bytes = 8 << 20;
  /// Upper bound per partition (FetchEntry.max_bytes). The broker returns at
  /// least one whole batch even if it is larger.
  std::int32_t partition_max_bytes = 1 << 20;
  /// How long the broker may hold a fetch waiting for data.
  std::chrono::milliseconds fetch_max_wait{500};
  /// What to do when the broker says a position is out of range.
  offset_reset auto_offset_reset = offset_reset::earliest;
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

  /// Details of the last error poll(), position() or a seek returned.
  [[nodiscard]] const std::string& last_error_message() const noexcept;

  class impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace ferry::client
