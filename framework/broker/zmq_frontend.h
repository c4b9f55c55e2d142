// The ZeroMQ front-end: the native protocol over one ROUTER socket, an
// adapter over the pipeline and the native handler table (it owns no broker
// state, DESIGN.md decision 11).
//
// Its network thread receives a message, aligns and decodes frame 0
// (protocol::decode_envelope), and either answers with an error at once
// (undecodable, queue full, stopping) or submits the request to the
// pipeline; it never touches a file. Replies come back from the core thread
// through a queue and an inproc:// wake-up socket.
//
// Stopping: request_stop() makes the network thread stop reading requests
// (those still arriving get ShuttingDown, which clients retry) and ask the
// pipeline to finish; once the core thread said core_finished(), the last
// replies go out and the thread ends.
//
// Thread safety: bind(), start() and join() from the controlling thread;
// request_stop(), endpoint() and in_flight() from any; respond(), flush()
// and core_finished() from the core thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "broker_metrics.h"
#include "ferry/broker/config.h"
#include "ferry/core/mutex.h"
#include "ferry/core/result.h"
#include "handlers/native.h"
#include "pipeline.h"
#include "quotas.h"
#include "security.h"

namespace ferry::broker {

class zmq_frontend final : public native_responder, public frontend_hook {
 public:
  zmq_frontend(const broker_config& cfg, broker_metrics& stats, pipeline& p);
  ~zmq_frontend() override;
  zmq_frontend(const zmq_frontend&) = delete;
  zmq_frontend& operator=(const zmq_frontend&) = delete;

  /// The users the handshakes admit (security on; the core owns them).
  /// Before bind().
  void use_users(user_directory* users) noexcept { users_ = users; }
  /// The quotas charged per principal (null: none). Before start().
  void use_quotas(quota_book* quotas) noexcept { quotas_ = quotas; }
  /// Binds the listen endpoint; returns it (with the real port for
  /// "tcp://host:*").
  [[nodiscard]] result<std::string> bind();
  /// Starts the network thread.
  void start();
  /// Stops taking requests and asks the pipeline to finish (any thread).
  void request_stop() noexcept { stop_requested_ = true; }
  /// Waits for the network thread, then closes the socket (letting the last
  /// replies leave).
  void join();

  [[nodiscard]] std::string endpoint() const FERRY_EXCLUDES(bound_mu_);
  /// Requests received and not yet answered (max_in_flight refuses more).
  [[nodiscard]] std::int64_t in_flight() const noexcept { return in_flight_.load(); }

  // native_responder / frontend_hook (core thread)
  void respond(native_request& q, native_response r) override FERRY_EXCLUDES(replies_mu_);
  void flush() override;
  /// The pipeline finished: the network thread sends the rest and ends.
  void core_finished();

 private:
  struct reply {
    zmq::message_t identity;
    std::vector<zmq::message_t> frames;
    steady::time_point not_before{};  ///< a quota holds it until then
    quota_ticket in_flight;           ///< released once sent
  };

  void loop(zmq::socket_t wake, zmq::socket_t monitor) FERRY_REQUIRES(network_thread);
  void on_request(std::vector<zmq::message_t>&& frames) FERRY_REQUIRES(network_thread);
  void send_replies() FERRY_REQUIRES(network_thread) FERRY_EXCLUDES(replies_mu_);
  void reject(zmq::message_t identity, std::uint64_t id, wire::ErrorCode code,
              const std::string& why) FERRY_REQUIRES(network_thread);
  void refuse_while_stopping(std::vector<zmq::message_t>&& frames) FERRY_REQUIRES(network_thread);
  void on_monitor_event(zmq::socket_t& monitor) FERRY_REQUIRES(network_thread);
  metrics::counter& requests_of(wire::Body type) FERRY_REQUIRES(network_thread);
  void wake_network(char what);

  const broker_config& cfg_;
  broker_metrics& stats_;
  pipeline& pipeline_;

  zmq::context_t ctx_{1};
  // security.enabled: the users and the ZAP handler admitting them.
  user_directory* users_ = nullptr;  // the core's (use_users); null without security
  quota_book* quotas_ = nullptr;     // the core's (use_quotas); null: no quotas
  std::unique_ptr<zap_handler> zap_;
  zmq::socket_t router_;     // the network thread's once it runs
  zmq::socket_t core_wake_;  // the core thread's end of the wake-up pair
  zmq::socket_t net_wake_;   // handed to the network thread
  zmq::socket_t monitor_;    // handed to the network thread
  std::thread thread_;

  mutable mutex bound_mu_;
  std::string bound_ FERRY_GUARDED_BY(bound_mu_);

  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> core_done_{false};
  std::atomic<std::int64_t> in_flight_{0};

  mutex replies_mu_;
  std::vector<reply> replies_ FERRY_GUARDED_BY(replies_mu_);
  bool posted_ = false;  // core thread: a reply was queued since the last flush

  // Network thread.
  steady::time_point next_refusal_log_ FERRY_GUARDED_BY(network_thread){};
  std::uint64_t refusals_unlogged_ FERRY_GUARDED_BY(network_thread) = 0;
  std::vector<metrics::counter*> request_counters_ FERRY_GUARDED_BY(network_thread);
  // Requests of each connection (by routing id) not yet answered on the
  // wire: network.max_in_flight_per_connection.
  std::unordered_map<std::string, std::int32_t> per_connection_ FERRY_GUARDED_BY(network_thread);
  // Replies a quota holds, by the time they may leave.
  std::multimap<steady::time_point, reply> held_ FERRY_GUARDED_BY(network_thread);
};

}  // namespace ferry::broker
