#include "ferry/client/connection.h"

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "ferry/client/errc.h"
#include "ferry/core/logging.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/curve.h"
#include "ferry/protocol/errc.h"
#include "ferry/protocol/socket.h"

namespace ferry::client {
namespace {

const std::shared_ptr<spdlog::logger>& logger() {
  static const auto l = log::get("client");
  return l;
}

// Milliseconds to wait for zmq_poll, rounded up so we never spin on a
// sub-millisecond remainder.
std::chrono::milliseconds until(steady_time deadline) {
  auto left = deadline - std::chrono::steady_clock::now();
  if (left <= std::chrono::steady_clock::duration::zero()) return std::chrono::milliseconds(0);
  return std::chrono::ceil<std::chrono::milliseconds>(left);
}

}  // namespace

std::shared_ptr<zmq::context_t> shared_context() {
  // One context per process (ZeroMQ's advice): a function-local static, so
  // it is created on first use; connections hold a reference, so it is
  // terminated only after the last socket closed.
  static const auto ctx = std::make_shared<zmq::context_t>(1);
  return ctx;
}

const wire::Envelope& reply::envelope() const noexcept {
  return *wire::GetEnvelope(frames[0].data());
}

std::span<const std::byte> reply::frame(std::size_t i) const noexcept {
  return protocol::bytes_of(frames[i]);
}

connection::connection(const client_options& options) : options_(options) {
  try {
    context_ = shared_context();
    socket_.emplace(*context_, zmq::socket_type::dealer);
  } catch (const zmq::error_t& e) {
    init_error_ = protocol::make_zmq_error(e.num());
    socket_.reset();
    return;
  }
  if (auto r = protocol::configure_socket(*socket_, options_.socket, /*router=*/false); !r) {
    init_error_ = r.error();
    socket_.reset();
    return;
  }
  if (!options_.key_file.empty() || !options_.server_key.empty()) {
    std::string why;
    if (options_.key_file.empty() || options_.server_key.empty())
      why = "CURVE needs both a key file (this client's NAME.key) and the broker's public key";
    auto keys = options_.key_file.empty() ? result<protocol::curve_keys>(errc::internal)
                                          : protocol::read_key_file(options_.key_file, why);
    auto server = options_.server_key.empty() ? result<std::string>(errc::internal)
                                              : protocol::read_public_key(options_.server_key, why);
    if (!keys || !server) {
      logger()->error("cannot authenticate to {}: {}", options_.broker, why);
      init_error_ = errc::authentication_failed;
      socket_.reset();
      return;
    }
    socket_->set(zmq::sockopt::curve_serverkey, server.value());
    socket_->set(zmq::sockopt::curve_publickey, keys.value().public_key);
    socket_->set(zmq::sockopt::curve_secretkey, keys.value().secret_key);
  }
  try {
    // The monitor reports disconnects over an inproc PAIR; the name only has
    // to be unique within the shared context.
    static std::atomic<std::uint64_t> monitors{0};
    const std::string endpoint =
        fmt::format("inproc://ferry-client-monitor-{}", monitors.fetch_add(1));
    // Handshake failures tell a refused client at once. A client without a
    // key only hears of refusals (rare events): every extra event is sent
    // by libzmq's I/O thread into the monitor pair, and a connection made
    // and closed at once races that send (a libzmq assertion under load).
    const int handshake_events =
        ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
        (options_.key_file.empty()
             ? 0
             : ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
    if (zmq_socket_monitor(socket_->handle(), endpoint.c_str(),
                           ZMQ_EVENT_DISCONNECTED | handshake_events) != 0)
      throw zmq::error_t();
    monitor_.emplace(*context_, zmq::socket_type::pair);
    monitor_->set(zmq::sockopt::linger, 0);
    monitor_->connect(endpoint);
    socket_->connect(options_.broker);
  } catch (const zmq::error_t& e) {
    init_error_ = protocol::make_zmq_error(e.num());
    zmq_socket_monitor(socket_->handle(), nullptr, 0);  // see ~connection()
    monitor_.reset();
    socket_.reset();
    logger()->error("cannot connect to broker '{}': {}", options_.broker, init_error_.message());
  }
}

connection::~connection() {
  // libzmq sends monitor events from its I/O thread with a blocking send to
  // the inproc pair. If our end were closed while the watched socket still
  // emits events (closing it may emit DISCONNECTED), that send would block
  // the I/O thread of the shared context forever, freezing every client in
  // the process. So: stop the monitor first, then close our end, then the
  // socket.
  if (socket_ && monitor_) zmq_socket_monitor(socket_->handle(), nullptr, 0);
  monitor_.reset();
  socket_.reset();
}

result<void> connection::status() const {
  if (init_error_) return init_error_;
  return success();
}

result<std::uint64_t> connection::send(flatbuffers::FlatBufferBuilder& fbb, wire::Body type,
                                       flatbuffers::Offset<void> body,
                                       std::span<zmq::message_t> data) {
  if (init_error_) return init_error_;
  if (handshake_failed_) {
    FERRY_TRY(drain());  // a later handshake may have succeeded
    if (handshake_failed_) return errc::authentication_failed;
  }
  const std::uint64_t id = next_id_++;
  auto env = protocol::finish_envelope(fbb, id, type, body);
  std::vector<zmq::message_t> frames;
  frames.reserve(1 + data.size());
  frames.emplace_back(env.data(), env.size());
  for (auto& d : data) frames.push_back(std::move(d));
  if (auto r = protocol::send_message(*socket_, frames); !r) {
    // EAGAIN: the pipe to the broker is full (high-water mark); treat it
    // like a lost connection, which callers retry.
    if (r.error() == std::errc::resource_unavailable_try_again) return protocol::errc::disconnected;
    return r.error();
  }
  pending_.insert(id);
  return id;
}

result<void> connection::drain() {
  // Disconnect events first: a reply that arrived before the connection
  // dropped is still in the socket's queue and is taken below.
  for (;;) {
    FERRY_TRY(auto event, protocol::recv_message(*monitor_, /*wait=*/false));
    if (event.empty()) break;
    // Frame 0: u16 event id, u32 value (native byte order); frame 1: endpoint.
    std::uint16_t id = 0;
    if (event[0].size() >= sizeof id) std::memcpy(&id, event[0].data(), sizeof id);
    if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      handshake_failed_ = false;
      handshake_succeeded_ = true;
      continue;
    }
    // A refusal: the broker's ZAP handler said no (AUTH), or no common
    // mechanism (PROTOCOL: a client without a key, or a broker without
    // security and a client with one). A handshake cut without detail is a
    // refusal only for a CURVE client that never got through (a server key
    // that is not the broker's ends so); otherwise it is a lost connection.
    const bool refused = id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
                         id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                         (id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL &&
                          !options_.key_file.empty() && !handshake_succeeded_);
    if (refused) {
      // The broker refused this client (no key while it requires one, a key
      // it does not know, or not the broker's key): ZeroMQ keeps retrying,
      // but nothing will be answered, so pending calls fail now.
      if (!handshake_failed_)
        logger()->error(
            "the broker at {} refused the connection at the handshake ({}): {}", options_.broker,
            id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "key not admitted" : "no common security",
            options_.key_file.empty()
                ? "it may require authentication: give a key file and the broker's public key "
                  "(ferry --key-file NAME.key --server-key server.pub)"
                : "check that the key is in the broker's users file and that the server key is "
                  "the broker's");
      handshake_failed_ = true;
      failed_.insert(pending_.begin(), pending_.end());
      pending_.clear();
      continue;
    }
    if (id != ZMQ_EVENT_DISCONNECTED) continue;
    if (!pending_.empty()) {
      logger()->warn("lost the connection to {} with {} request(s) in flight", options_.broker,
                     pending_.size());
    }
    lost_.insert(pending_.begin(), pending_.end());
    pending_.clear();
  }
  for (;;) {
    FERRY_TRY(auto frames, protocol::recv_message(*socket_, /*wait=*/false));
    if (frames.empty()) return success();
    protocol::ensure_aligned(frames[0]);  // FlatBuffers reads frame 0 in place
    std::string why;
    auto env = protocol::decode_envelope(protocol::bytes_of(frames[0]), frames.size(),
                                         protocol::direction::response, {}, &why);
    if (!env) {
      logger()->warn("dropping a reply from {} that failed decoding: {} ({})", options_.broker,
                     env.error().message(), why);
      continue;
    }
    const std::uint64_t id = env.value()->request_id();
    if (const auto throttled = env.value()->throttle_ms(); throttled > 0) {
      // A quota of this client's principal held the reply (the broker
      // slows it; nothing to do here but say so, at most every 10 s).
      throttled_ms_ += throttled;
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_throttle_log_) {
        logger()->info(
            "{} is slowing this client to its quota: replies held {} ms in all so far "
            "(docs/security.md#quotas)",
            options_.broker, throttled_ms_);
        next_throttle_log_ = now + std::chrono::seconds(10);
      }
    }
    if (pending_.erase(id) == 0) {
      FERRY_LOG_DEBUG(logger(), "dropping a reply for request {} (unknown or expired)", id);
      continue;
    }
    ready_.emplace(id, reply{std::move(frames), id});
  }
}

result<reply> connection::wait_for(std::uint64_t id, steady_time deadline) {
  if (init_error_) return init_error_;
  for (;;) {
    if (auto it = ready_.find(id); it != ready_.end()) {
      reply r = std::move(it->second);
      ready_.erase(it);
      return r;
    }
    if (failed_.erase(id) != 0) return errc::authentication_failed;
    if (lost_.erase(id) != 0) return protocol::errc::disconnected;
    if (!pending_.contains(id)) return protocol::errc::timed_out;  // forgotten or never sent
    FERRY_TRY(drain());
    if (ready_.contains(id) || lost_.contains(id) || failed_.contains(id)) continue;
    auto wait = until(deadline);
    if (wait.count() == 0) {
      forget(id);
      return protocol::errc::timed_out;
    }
    FERRY_TRY(wait_readable(wait, -1));
  }
}

result<bool> connection::wait_readable(std::chrono::milliseconds wait, int wake_fd) {
  zmq_pollitem_t items[3] = {{socket_->handle(), 0, ZMQ_POLLIN, 0},
                             {monitor_->handle(), 0, ZMQ_POLLIN, 0},
                             {nullptr, wake_fd, ZMQ_POLLIN, 0}};
  try {
    zmq::poll(items, wake_fd >= 0 ? 3 : 2, wait);
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) return protocol::make_zmq_error(e.num());
    return false;
  }
  return wake_fd >= 0 && (items[2].revents & ZMQ_POLLIN) != 0;
}

std::vector<std::uint64_t> connection::take_lost() {
  std::vector<std::uint64_t> out(lost_.begin(), lost_.end());
  out.insert(out.end(), failed_.begin(), failed_.end());
  lost_.clear();
  failed_.clear();
  return out;
}

result<std::optional<reply>> connection::next_reply(steady_time deadline, int wake_fd) {
  if (init_error_) return init_error_;
  for (;;) {
    if (!ready_.empty()) {
      auto it = ready_.begin();  // oldest request first
      std::optional<reply> r(std::move(it->second));
      ready_.erase(it);
      return r;
    }
    FERRY_TRY(drain());
    if (!ready_.empty()) continue;
    if (!lost_.empty() || !failed_.empty()) return std::optional<reply>();  // the caller takes them
    auto wait = until(deadline);
    if (wait.count() == 0) return std::optional<reply>();
    FERRY_TRY(auto woken, wait_readable(wait, wake_fd));
    if (woken) {
      FERRY_TRY(drain());  // take what arrived too, but let the caller look at its wake-up first
      return std::optional<reply>();
    }
  }
}

void connection::forget(std::uint64_t id) noexcept {
  pending_.erase(id);
  ready_.erase(id);
  lost_.erase(id);
  failed_.erase(id);
}

}  // namespace ferry::client
