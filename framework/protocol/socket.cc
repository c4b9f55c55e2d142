#include "ferry/protocol/socket.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <new>

#include "ferry/protocol/errc.h"

namespace ferry::protocol {

result<void> configure_socket(zmq::socket_ref s, const socket_options& o, bool router) {
  try {
    s.set(zmq::sockopt::maxmsgsize, o.max_message_bytes);
    s.set(zmq::sockopt::handshake_ivl, static_cast<int>(o.handshake.count()));
    s.set(zmq::sockopt::heartbeat_ivl, static_cast<int>(o.heartbeat_interval.count()));
    s.set(zmq::sockopt::heartbeat_timeout, static_cast<int>(o.heartbeat_timeout.count()));
    s.set(zmq::sockopt::heartbeat_ttl, static_cast<int>(o.heartbeat_timeout.count()));
    s.set(zmq::sockopt::linger, static_cast<int>(o.linger.count()));
    s.set(zmq::sockopt::sndhwm, o.high_water_mark);
    s.set(zmq::sockopt::rcvhwm, o.high_water_mark);
    if (router) {
      s.set(zmq::sockopt::router_mandatory, 1);
    } else {
      s.set(zmq::sockopt::reconnect_ivl, static_cast<int>(o.reconnect.count()));
      s.set(zmq::sockopt::reconnect_ivl_max, static_cast<int>(o.reconnect_max.count()));
    }
  } catch (const zmq::error_t& e) {
    return make_zmq_error(e.num());
  }
  return success();
}

// libzmq may fail a call with EINTR when a signal arrives while it works
// through its command queue, even a non-blocking one; nothing was received
// or queued then, so the call is simply made again.
result<std::vector<zmq::message_t>> recv_message(zmq::socket_ref s, bool wait) {
  std::vector<zmq::message_t> frames;
  for (;;) {
    zmq::message_t m;
    auto flags = (wait || !frames.empty()) ? zmq::recv_flags::none : zmq::recv_flags::dontwait;
    try {
      auto r = s.recv(m, flags);
      if (!r) return frames;  // EAGAIN before the first frame
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return make_zmq_error(e.num());
    }
    bool more = m.more();
    frames.push_back(std::move(m));
    if (!more) return frames;
  }
}

result<void> send_message(zmq::socket_ref s, std::span<zmq::message_t> frames) {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    auto flags = zmq::send_flags::dontwait;
    if (i + 1 < frames.size()) flags = flags | zmq::send_flags::sndmore;
    for (;;) {
      try {
        if (!s.send(frames[i], flags)) return make_zmq_error(EAGAIN);
        break;
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) return make_zmq_error(e.num());
        // not queued: send this frame again
      }
    }
  }
  return success();
}

}  // namespace ferry::protocol

namespace ferry::protocol {

void ensure_aligned(zmq::message_t& m) {
  if (reinterpret_cast<std::uintptr_t>(m.data()) % 8 == 0) return;
  // An 8-aligned heap copy that the message owns and frees.
  const std::size_t n = m.size();
  auto* p =
      static_cast<std::byte*>(::operator new(std::max<std::size_t>(n, 1), std::align_val_t(8)));
  std::memcpy(p, m.data(), n);
  m = zmq::message_t(
      p, n, [](void* data, void*) { ::operator delete(data, std::align_val_t(8)); }, nullptr);
}

}  // namespace ferry::protocol
