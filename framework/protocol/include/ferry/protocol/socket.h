// ZeroMQ sockets with Ferry's safe defaults, and send/receive that report
// errors as std::error_code (zmq::error_t is caught here and nowhere else).
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <vector>
#include <zmq.hpp>

#include "ferry/core/result.h"

namespace ferry::protocol {

struct socket_options {
  std::int64_t max_message_bytes = 80ll << 20;  ///< ZMQ_MAXMSGSIZE: larger messages drop the peer
  std::chrono::milliseconds handshake{5000};  ///< ZMQ_HANDSHAKE_IVL: silent connections are dropped
  std::chrono::milliseconds heartbeat_interval{2000};  ///< ZMQ_HEARTBEAT_IVL
  std::chrono::milliseconds heartbeat_timeout{6000};   ///< ZMQ_HEARTBEAT_TIMEOUT / TTL
  std::chrono::milliseconds linger{0};                 ///< ZMQ_LINGER on close
  int high_water_mark = 10'000;                        ///< ZMQ_SNDHWM / ZMQ_RCVHWM, messages
  std::chrono::milliseconds reconnect{100};            ///< ZMQ_RECONNECT_IVL (clients)
  std::chrono::milliseconds reconnect_max{2000};       ///< ZMQ_RECONNECT_IVL_MAX (clients)
};

/// Applies the options; for ROUTER sockets also ZMQ_ROUTER_MANDATORY, so a
/// reply to a vanished peer fails with EHOSTUNREACH instead of vanishing.
[[nodiscard]] result<void> configure_socket(zmq::socket_ref s, const socket_options& o,
                                            bool router);

/// Receives all frames of one message. With `wait` false returns an empty
/// vector when nothing is ready.
[[nodiscard]] result<std::vector<zmq::message_t>> recv_message(zmq::socket_ref s, bool wait);

/// Sends all frames as one message (non-blocking: EAGAIN when the peer's
/// queue is full is an error here).
[[nodiscard]] result<void> send_message(zmq::socket_ref s, std::span<zmq::message_t> frames);

inline std::span<const std::byte> bytes_of(const zmq::message_t& m) noexcept {
  return {static_cast<const std::byte*>(m.data()), m.size()};
}

/// FlatBuffers needs its buffer aligned; ZeroMQ may hand out a received
/// frame at any address (large frames can point into its receive buffer).
/// Copies the frame into a fresh, aligned message when it is not 8-aligned.
/// Call on every frame 0 before decode_envelope().
void ensure_aligned(zmq::message_t& m);

template <typename Bytes>
zmq::message_t to_message(const Bytes& b) {
  return zmq::message_t(b.data(), b.size());
}

}  // namespace ferry::protocol
