#include "zmq_frontend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "ferry/broker/wire_errors.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/curve.h"
#include "ferry/protocol/errc.h"
#include "ferry/protocol/socket.h"

namespace ferry::broker {

using namespace ferry::wire;

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("broker");
  return l;
}

// libzmq calls this on its I/O thread once a zero-copy reply is sent
// (tools/tsan.supp names it: libzmq's synchronisation is not instrumented).
void free_owned_bytes(void*, void* hint) {
  delete static_cast<std::vector<std::byte>*>(hint);
}

zmq::message_t message_from(std::vector<std::byte>&& bytes) {
  auto* owned = new std::vector<std::byte>(std::move(bytes));
  return zmq::message_t(owned->data(), owned->size(), free_owned_bytes, owned);
}

// A received frame as the handlers see it: its bytes, kept alive by the message.
in_frame frame_of(zmq::message_t&& m) {
  auto owner = std::make_shared<zmq::message_t>(std::move(m));
  return {std::span<std::byte>(static_cast<std::byte*>(owner->data()), owner->size()), owner};
}

}  // namespace

zmq_frontend::zmq_frontend(const broker_config& cfg, broker_metrics& stats, pipeline& p)
    : cfg_(cfg), stats_(stats), pipeline_(p) {}

zmq_frontend::~zmq_frontend() {
  join();
}

result<std::string> zmq_frontend::bind() {
  protocol::curve_keys server_keys;
  if (cfg_.security.enabled) {
    // Fail closed: without the keys, the users and a running ZAP handler
    // there is no listener at all.
    std::string why;
    auto keys = protocol::read_key_file(cfg_.security.server_key_file, why);
    if (!keys) {
      logger()->error("security.server_key_file: {}", why);
      return ferry::errc::config_invalid;
    }
    server_keys = std::move(keys).value();
    if (users_ == nullptr) {  // the broker's core loads it (open_core)
      logger()->error("security.users_file: not loaded");
      return ferry::errc::config_invalid;
    }
    zap_ = std::make_unique<zap_handler>(ctx_, *users_, stats_);
    if (auto r = zap_->start(); !r) {
      logger()->error("cannot start the ZAP handler: {}", r.error().message());
      return r.error();
    }
  }
  try {
    router_ = zmq::socket_t(ctx_, zmq::socket_type::router);
    FERRY_TRY(protocol::configure_socket(router_, cfg_.socket, true));
    if (cfg_.security.enabled) {
      router_.set(zmq::sockopt::curve_server, true);
      router_.set(zmq::sockopt::curve_secretkey, server_keys.secret_key);
      // The ZAP handler is bound in this context before the ROUTER: libzmq
      // 4.3 admits every key when none is (ZMQ_ZAP_ENFORCE_DOMAIN, which
      // would refuse instead, is a draft API Debian's build lacks), so the
      // order is what keeps this closed; tests/broker/security_test.cc
      // probes it with raw sockets.
      router_.set(zmq::sockopt::zap_domain, "ferry");
      logger()->info("security: CURVE on {}, users from {}", cfg_.listen,
                     cfg_.security.users_file.string());
    }
    router_.bind(cfg_.listen);
    {
      unique_lock lock(bound_mu_);
      bound_ = router_.get(zmq::sockopt::last_endpoint);
    }
    const auto wake_endpoint =
        fmt::format("inproc://ferry-wake-{}", static_cast<const void*>(this));
    net_wake_ = zmq::socket_t(ctx_, zmq::socket_type::pair);
    net_wake_.bind(wake_endpoint);
    net_wake_.set(zmq::sockopt::linger, 0);
    core_wake_ = zmq::socket_t(ctx_, zmq::socket_type::pair);
    core_wake_.set(zmq::sockopt::linger, 0);
    core_wake_.connect(wake_endpoint);
    // Open connections for ferry_broker_connections.
    const auto monitor_endpoint =
        fmt::format("inproc://ferry-monitor-{}", static_cast<const void*>(this));
    // Handshake failures count as refusals only with security on (without
    // it, a port scan or a health check that closes at once is no refusal).
    const int handshake_events = cfg_.security.enabled ? ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                                                       : 0;
    if (zmq_socket_monitor(router_.handle(), monitor_endpoint.c_str(),
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | handshake_events) == 0) {
      monitor_ = zmq::socket_t(ctx_, zmq::socket_type::pair);
      monitor_.set(zmq::sockopt::linger, 0);
      monitor_.connect(monitor_endpoint);
    } else {
      logger()->warn("connection metrics unavailable: zmq_socket_monitor failed ({})",
                     zmq_strerror(zmq_errno()));
    }
  } catch (const zmq::error_t& e) {
    // Logged by the caller, which decides what it means (ferryd exits).
    return protocol::make_zmq_error(e.num());
  }
  return endpoint();
}

void zmq_frontend::start() {
  thread_ = std::thread([this, wake = std::move(net_wake_), mon = std::move(monitor_)]() mutable {
    thread_role_scope role(network_thread);
    loop(std::move(wake), std::move(mon));
  });
}

void zmq_frontend::join() {
  if (!thread_.joinable()) return;
  thread_.join();
  router_.set(zmq::sockopt::linger, 1000);  // let the last replies leave
  router_.close();
  core_wake_.close();
  if (zap_) zap_->stop();
}

std::string zmq_frontend::endpoint() const {
  unique_lock lock(bound_mu_);
  return bound_;
}

// --- core thread ----------------------------------------------------------

void zmq_frontend::respond(native_request& q, native_response r) {
  const auto type = q.type();
  if (type == Body::ProduceRequest)
    stats_.produce_latency.observe(steady::now() - q.received);
  else if (type == Body::FetchRequest)
    stats_.fetch_latency.observe(steady::now() - q.received);
  reply out;
  out.identity = std::move(*std::static_pointer_cast<zmq::message_t>(q.identity));
  out.frames.reserve(1 + r.data.size());
  out.frames.push_back(message_from(std::move(r.envelope)));
  for (auto& d : r.data) out.frames.push_back(message_from(std::move(d)));
  if (quotas_ != nullptr) {
    std::int64_t bytes = 0;
    for (const auto& f : out.frames) bytes += static_cast<std::int64_t>(f.size());
    out.in_flight = std::move(q.in_flight);
    out.in_flight.add(bytes);
    if (q.throttle_ms > 0) {
      out.not_before = steady::now() + std::chrono::milliseconds(q.throttle_ms);
      stats_.throttled
          .with({std::string(quota_principal(q.principal)),
                 type == Body::FetchRequest ? "fetch" : "produce"})
          .inc(q.throttle_ms);
    }
  }
  {
    unique_lock lock(replies_mu_);
    replies_.push_back(std::move(out));
  }
  posted_ = true;
  in_flight_.fetch_sub(1);
}

void zmq_frontend::wake_network(char what) {
  try {
    (void)core_wake_.send(zmq::buffer(&what, 1), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
  }
}

void zmq_frontend::flush() {
  if (!posted_) return;
  posted_ = false;
  wake_network('w');
}

void zmq_frontend::core_finished() {
  core_done_ = true;
  wake_network('d');
}

// --- network thread ------------------------------------------------------------

void zmq_frontend::send_replies() {
  std::vector<reply> out;
  {
    unique_lock lock(replies_mu_);
    out.swap(replies_);
  }
  // A reply a quota holds waits in held_; those whose time came go now.
  const auto now = steady::now();
  std::vector<reply> due;
  for (auto& r : out) {
    if (r.not_before > now)
      held_.emplace(r.not_before, std::move(r));
    else
      due.push_back(std::move(r));
  }
  while (!held_.empty() && held_.begin()->first <= now) {
    due.push_back(std::move(held_.begin()->second));
    held_.erase(held_.begin());
  }
  for (auto& r : due) {
    // This connection's request is over once its reply leaves.
    if (auto it = per_connection_.find(
            std::string(static_cast<const char*>(r.identity.data()), r.identity.size()));
        it != per_connection_.end() && --it->second <= 0)
      per_connection_.erase(it);
    std::vector<zmq::message_t> frames;
    frames.reserve(r.frames.size() + 1);
    frames.push_back(std::move(r.identity));
    for (auto& f : r.frames) frames.push_back(std::move(f));
    if (auto s = protocol::send_message(router_, frames); !s) {
      // EHOSTUNREACH: the client is gone (ROUTER_MANDATORY). Nothing to do.
      FERRY_LOG_DEBUG(logger(), "reply dropped: {}", s.error().message());
    }
  }
}

void zmq_frontend::reject(zmq::message_t identity, std::uint64_t id, ErrorCode code,
                          const std::string& why) {
  auto r = error_response(stats_, id, code, why);  // counts the refusal
  std::vector<zmq::message_t> all;
  all.push_back(std::move(identity));
  all.push_back(message_from(std::move(r.envelope)));
  (void)protocol::send_message(router_, all);
}

// While stopping, requests still arriving get ShuttingDown (retriable)
// instead of silence, so clients retry elsewhere or later at once.
void zmq_frontend::refuse_while_stopping(std::vector<zmq::message_t>&& frames) {
  if (frames.size() < 2) return;
  protocol::ensure_aligned(frames[1]);
  auto env = protocol::decode_envelope(protocol::bytes_of(frames[1]), frames.size() - 1,
                                       protocol::direction::request);
  reject(std::move(frames[0]), env ? env.value()->request_id() : 0, ErrorCode::ShuttingDown,
         "the broker is stopping; retry shortly");
}

// ferry_broker_requests_total by type, looked up once per type.
metrics::counter& zmq_frontend::requests_of(Body type) {
  const auto i = static_cast<std::size_t>(type);
  if (i >= request_counters_.size()) request_counters_.resize(i + 1, nullptr);
  if (request_counters_[i] == nullptr) {
    const auto* api = protocol::find_api(type);
    request_counters_[i] = &stats_.requests.with({api ? api->name : "unknown"});
  }
  return *request_counters_[i];
}

void zmq_frontend::on_request(std::vector<zmq::message_t>&& frames) {
  if (frames.size() < 2) return;  // identity only: nothing to answer
  auto q = std::make_unique<native_request>();
  q->received = steady::now();
  zmq::message_t identity = std::move(frames[0]);
  // Each frame moves once, into the shared message the request keeps: a
  // small message's bytes live inside the message object, so nothing may
  // point into a frame that moves afterwards.
  q->frames.reserve(frames.size() - 1);
  for (std::size_t i = 1; i < frames.size(); ++i)
    q->frames.push_back(frame_of(std::move(frames[i])));
  auto& head = *std::static_pointer_cast<zmq::message_t>(q->frames[0].owner);
  // Realigning copies the frame into a new message without its metadata:
  // keep a (shared, cheap) reference to the original for Peer-Address.
  zmq::message_t original;
  const bool realigned = reinterpret_cast<std::uintptr_t>(head.data()) % 8 != 0;
  if (realigned) original.copy(head);
  protocol::ensure_aligned(head);
  q->frames[0].bytes = std::span<std::byte>(static_cast<std::byte*>(head.data()), head.size());
  std::string why;
  auto env = protocol::decode_envelope(protocol::bytes_of(head), q->frames.size(),
                                       protocol::direction::request, {}, &why);
  if (!env) {
    // One line per second at most: a broken or hostile client must not
    // flood the log (ferry_broker_refused_total counts every one).
    const auto now = steady::now();
    if (now >= next_refusal_log_) {
      logger()->warn(
          "refused a request: {} ({}){}", env.error().message(), why,
          refusals_unlogged_ > 0
              ? fmt::format("; {} more refused since the last such line", refusals_unlogged_)
              : std::string());
      refusals_unlogged_ = 0;
      next_refusal_log_ = now + std::chrono::seconds(1);
    } else {
      ++refusals_unlogged_;
    }
    // Answered under the request's own id when the envelope is readable,
    // so the client gets this error instead of a timeout.
    reject(std::move(identity), protocol::request_id_of(protocol::bytes_of(head)).value_or(0),
           to_wire(env.error()), why.empty() ? env.error().message() : why);
    return;
  }
  q->env = env.value();
  if (users_) {
    // Admitted at the handshake; still the key's holder now? (A key removed
    // from the users file, or replaced by a new one, is refused here.)
    const char* uid = nullptr;
    try {
      uid = (realigned ? original : head).gets("User-Id");
    } catch (const zmq::error_t&) {
    }
    if (uid == nullptr || !users_->holds(uid)) {
      users_->refresh();
      if (uid == nullptr || !users_->holds(uid)) {
        stats_.auth_failures.with({"revoked"}).inc();
        reject(std::move(identity), q->env->request_id(), ErrorCode::AuthenticationFailed,
               "authentication failed: this key is no longer in the broker's users file");
        return;
      }
    }
    const std::string_view id_text(uid);
    q->principal = std::string(id_text.substr(0, id_text.find(':')));
  }
  requests_of(q->env->body_type()).inc();
  if (in_flight_.load() >= cfg_.max_in_flight) {
    reject(std::move(identity), q->env->request_id(), ErrorCode::TooManyRequests,
           "broker queue full; retry with backoff");
    return;
  }
  std::string conn_id(static_cast<const char*>(identity.data()), identity.size());
  if (auto it = per_connection_.find(conn_id);
      it != per_connection_.end() && it->second >= cfg_.max_in_flight_per_connection) {
    reject(std::move(identity), q->env->request_id(), ErrorCode::TooManyRequests,
           fmt::format("this connection has {} requests in flight "
                       "(network.max_in_flight_per_connection); retry with backoff",
                       it->second));
    return;
  }
  if (quotas_ != nullptr) {
    const auto who = quota_principal(q->principal);
    std::int64_t bytes = 0;
    for (const auto& f : q->frames) bytes += static_cast<std::int64_t>(f.bytes.size());
    const auto type = q->env->body_type();
    if (type == Body::ProduceRequest || type == Body::FetchRequest) {
      // Still owing much of its rate (a client that does not wait for its
      // answers): refused, not served, until the debt is mostly repaid.
      const auto kind = type == Body::ProduceRequest ? quota_kind::produce : quota_kind::fetch;
      if (const auto owed = quotas_->owes(who, kind); owed > quotas_->max_throttle() / 2) {
        const char* reason = kind == quota_kind::produce ? "produce_rate" : "fetch_rate";
        stats_.quota_refusals.with({std::string(who), reason}).inc();
        reject(std::move(identity), q->env->request_id(), ErrorCode::TooManyRequests,
               fmt::format("{} is over its {} quota for another {} ms; retry after that", who,
                           kind == quota_kind::produce ? "produce" : "fetch", owed.count()));
        return;
      }
    }
    if (!quotas_->begin(who, bytes)) {
      stats_.quota_refusals.with({std::string(who), "in_flight_bytes"}).inc();
      reject(std::move(identity), q->env->request_id(), ErrorCode::TooManyRequests,
             fmt::format("{} has its in-flight bytes quota in use (unanswered requests and "
                         "unsent answers); retry with backoff",
                         who));
      return;
    }
    q->in_flight = quota_ticket(quotas_, std::string(who), bytes);
    if (q->env->body_type() == Body::ProduceRequest)
      q->throttle_ms =
          static_cast<std::uint32_t>(quotas_->charge(who, quota_kind::produce, bytes).count());
  }
  const auto type = q->env->body_type();
  // The peer for JoinGroup's member host, and for every request when an
  // audit log is kept (the handlers decide what they audit).
  const bool audited = !cfg_.security.audit_file.empty();
  if (type == Body::JoinGroupRequest || audited) {
    try {
      if (const char* peer = (realigned ? original : head).gets("Peer-Address")) q->peer = peer;
    } catch (const zmq::error_t&) {
      // No address for this transport (inproc); describe shows none.
    }
  }
  if (q->env->body_type() == Body::FetchRequest) {
    auto wait = std::min<std::int64_t>(q->env->body_as_FetchRequest()->max_wait_ms(),
                                       cfg_.max_fetch_wait.count());
    q->deadline = steady::now() + std::chrono::milliseconds(wait);
  }
  q->identity = std::make_shared<zmq::message_t>(std::move(identity));
  q->responder = this;
  in_flight_.fetch_add(1);
  // Submitted: every request gets a reply, and send_replies() counts it off.
  ++per_connection_[std::move(conn_id)];
  pipeline_.submit(native_work(std::move(q)));
}

// Connection events of the ROUTER (zmq_socket_monitor): two frames, the
// first a 16-bit event and a 32-bit value.
void zmq_frontend::on_monitor_event(zmq::socket_t& monitor) {
  try {
    for (;;) {
      zmq::message_t event, address;
      if (!monitor.recv(event, zmq::recv_flags::dontwait)) return;
      if (event.more()) (void)monitor.recv(address, zmq::recv_flags::dontwait);
      if (event.size() < 2) continue;
      std::uint16_t id = 0;
      std::memcpy(&id, event.data(), sizeof(id));
      if (id == ZMQ_EVENT_ACCEPTED) {
        stats_.connections.add(1);
        stats_.connections_accepted.inc();
      } else if (id == ZMQ_EVENT_DISCONNECTED) {
        stats_.connections.add(-1);
      } else if (id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
                 id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        // A client without CURVE, or one that does not know the broker's
        // key: nothing was read from it.
        stats_.auth_failures.with({"handshake"}).inc();
      }
    }
  } catch (const zmq::error_t&) {
  }
}

void zmq_frontend::loop(zmq::socket_t wake, zmq::socket_t monitor) {
  bool draining = false;
  auto next_users_check = steady::now();
  for (;;) {
    if (users_ && steady::now() >= next_users_check) {
      // A key removed from the users file is refused from its next request
      // within about a second (a stat per second; re-read when changed).
      users_->refresh();
      next_users_check = steady::now() + std::chrono::seconds(1);
    }
    // While draining, the ROUTER is no longer read: only replies go out.
    zmq::pollitem_t items[] = {{wake.handle(), 0, ZMQ_POLLIN, 0},
                               {router_.handle(), 0, ZMQ_POLLIN, 0},
                               {monitor.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      auto wait = std::chrono::milliseconds(50);
      if (!held_.empty())
        wait = std::clamp(
            std::chrono::ceil<std::chrono::milliseconds>(held_.begin()->first - steady::now()),
            std::chrono::milliseconds(0), wait);
      zmq::poll(items, monitor ? 3 : 2, wait);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
      continue;
    }
    if (items[0].revents & ZMQ_POLLIN) {
      zmq::message_t m;
      try {
        while (wake.recv(m, zmq::recv_flags::dontwait)) {
        }
      } catch (const zmq::error_t&) {
      }
    }
    if (items[2].revents & ZMQ_POLLIN) on_monitor_event(monitor);
    send_replies();
    if (items[1].revents & ZMQ_POLLIN) {
      for (int n = 0; n < 256; ++n) {
        auto msg = protocol::recv_message(router_, false);
        if (!msg || msg.value().empty()) break;
        if (draining)
          refuse_while_stopping(std::move(msg).value());
        else
          on_request(std::move(msg).value());
      }
    }
    if (stop_requested_ && !draining) {
      draining = true;
      pipeline_.request_stop();
    }
    if (draining && core_done_) {
      // Stopping: what a quota still holds leaves now.
      for (auto& [_, r] : held_) r.not_before = {};
      {
        unique_lock lock(replies_mu_);
        for (auto& [_, r] : held_) replies_.push_back(std::move(r));
      }
      held_.clear();
      send_replies();
      // Stop the monitor before its PAIR closes: libzmq sends events
      // blocking, and an event with no reader would stall the I/O thread
      // that still has the last replies to send.
      if (monitor) (void)zmq_socket_monitor(router_.handle(), nullptr, 0);
      break;
    }
  }
}

}  // namespace ferry::broker
