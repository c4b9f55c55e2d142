// One DEALER socket to the broker, with request ids and reply matching.
//
// Every message is multipart: frame 0 is an Envelope, frames 1..n raw batch
// bytes. send() stamps each request with the next request_id (starting at
// 1) and remembers it as pending; replies are matched by the id the broker
// echoes. Several requests may be in flight at once (pipelining); a reply
// for an id that is not pending (never sent, already answered, or given up
// on after a timeout) is dropped. Every reply is decoded with
// protocol::decode_envelope(direction::response) before anything reads it;
// a reply that fails decoding is dropped and logged, so its request times
// out.
//
// ZeroMQ reconnects by itself after the broker restarts, but it does not
// say when a connection drops; a socket monitor does. When the connection
// to the broker is lost, every request pending at that moment is given up
// as lost (wait_for() returns protocol::errc::disconnected; take_lost()
// lists them), because its reply will almost certainly never come: the
// broker that had it is gone. (A request still queued inside ZeroMQ may in
// fact be delivered after the reconnect; its reply is then dropped. A
// resent produce is still stored once: the idempotent producer's sequence
// numbers let the broker recognise it.) A request whose reply is lost without a disconnect being
// noticed times out (protocol::errc::timed_out). This class never resends
// anything — retry policy belongs to the callers (admin, producer,
// consumer).
//
// Thread safety: none. One thread owns a connection (the producer's I/O
// thread, or the thread using an admin or consumer).
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "ferry/client/options.h"
#include "ferry/core/result.h"
#include "ferry/schemas/protocol_generated.h"

namespace ferry::client {

using steady_time = std::chrono::steady_clock::time_point;

/// The process-wide ZeroMQ context shared by every Ferry client (created on
/// first use; it lives while any connection holds it). Throws zmq::error_t
/// only if libzmq cannot create a context at all.
std::shared_ptr<zmq::context_t> shared_context();

/// A decoded reply. frames[0] passed decode_envelope; frames[1..] are data.
struct reply {
  std::vector<zmq::message_t> frames;
  std::uint64_t request_id = 0;

  /// The verified envelope (points into frames[0]; valid while this lives).
  [[nodiscard]] const wire::Envelope& envelope() const noexcept;
  /// Bytes of data frame `i` (1..frames.size()-1).
  [[nodiscard]] std::span<const std::byte> frame(std::size_t i) const noexcept;
};

class connection {
 public:
  /// Creates the socket and connects (asynchronously: nothing is sent until
  /// the first request). A failure (bad endpoint, no context) is kept and
  /// returned by every later call; status() reports it.
  explicit connection(const client_options& options);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  [[nodiscard]] result<void> status() const;

  /// Finishes the envelope around `body` (already built into `fbb`) with a
  /// fresh request id and sends it with `data` as frames 1..n (the
  /// messages are consumed). Returns the id, now pending. Never blocks: when
  /// ZeroMQ cannot queue the message the result is
  /// protocol::errc::disconnected.
  [[nodiscard]] result<std::uint64_t> send(flatbuffers::FlatBufferBuilder& fbb, wire::Body type,
                                           flatbuffers::Offset<void> body,
                                           std::span<zmq::message_t> data = {});

  /// Waits until the reply for `id` arrives or `deadline` passes. Replies
  /// for other pending ids that arrive meanwhile are kept for later. On
  /// timeout the id is forgotten (a late reply is dropped) and the result is
  /// protocol::errc::timed_out; if the connection dropped while `id` was
  /// pending, protocol::errc::disconnected.
  [[nodiscard]] result<reply> wait_for(std::uint64_t id, steady_time deadline);

  /// Waits until a reply for any pending id is available or `deadline`
  /// passes (then returns std::nullopt; nothing is forgotten). Also returns
  /// std::nullopt at once while take_lost() has ids to report, and, with
  /// `wake_fd` >= 0, as soon as that file descriptor is readable (the
  /// caller drains it).
  [[nodiscard]] result<std::optional<reply>> next_reply(steady_time deadline, int wake_fd = -1);

  /// Gives up on `id`: its reply, if it ever comes, is dropped.
  void forget(std::uint64_t id) noexcept;

  /// Ids that were pending when the connection dropped (each reported
  /// once; they are no longer pending). Callers treat them like failed
  /// attempts with protocol::errc::disconnected.
  [[nodiscard]] std::vector<std::uint64_t> take_lost();

  [[nodiscard]] bool is_pending(std::uint64_t id) const noexcept { return pending_.contains(id); }
  [[nodiscard]] std::size_t pending_count() const noexcept { return pending_.size(); }
  [[nodiscard]] const client_options& options() const noexcept { return options_; }
  /// How long the broker held this connection's replies for a quota of its
  /// principal (the Envelope's throttle_ms), in all.
  [[nodiscard]] std::uint64_t throttled_ms() const noexcept { return throttled_ms_; }

 private:
  // Receives everything that is ready without blocking; replies for pending
  // ids go to ready_; a disconnect moves pending ids to lost_.
  result<void> drain();
  // Waits on the socket, the monitor and `wake_fd` until one is readable or
  // `wait` has passed; true if `wake_fd` is readable.
  result<bool> wait_readable(std::chrono::milliseconds wait, int wake_fd);

  client_options options_;
  std::shared_ptr<zmq::context_t> context_;
  std::optional<zmq::socket_t> socket_;
  std::optional<zmq::socket_t> monitor_;  // ZMQ_EVENT_DISCONNECTED of socket_
  std::error_code init_error_;
  std::uint64_t next_id_ = 1;
  std::set<std::uint64_t> pending_;       // sent, not yet answered or forgotten
  std::map<std::uint64_t, reply> ready_;  // answered, not yet claimed
  std::set<std::uint64_t> lost_;          // pending when the connection dropped; not yet reported
  std::set<std::uint64_t> failed_;        // pending when the broker refused the handshake
  bool handshake_failed_ = false;         // the last handshake failed (none succeeded since)
  bool handshake_succeeded_ = false;      // a handshake succeeded once
  std::uint64_t throttled_ms_ = 0;
  steady_time next_throttle_log_{};
};

}  // namespace ferry::client
