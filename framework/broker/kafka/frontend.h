// The Kafka front-end: ferryd speaking the Kafka protocol (docs/kafka.md),
// a second adapter over the same pipeline and core units as the ZeroMQ one
// (ADR 0004) - one topic table, one producer id space, one group
// coordinator, one offset store. It owns no broker state.
//
// Its server thread (kafka::server) reads frames, decodes each request
// header, answers ApiVersions and what it cannot serve (an unknown API or
// version) at once, and submits everything else to the pipeline; the
// handlers answer from the core thread and the answers leave in request
// order per connection.
//
// Thread safety: start() and stop() from the controlling thread; node()
// and cluster_id() from any (fixed once started).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "../broker_metrics.h"
#include "../pipeline.h"
#include "../quotas.h"
#include "ferry/broker/config.h"
#include "ferry/kafka/server.h"
#include "request.h"

namespace ferry::broker {
class user_directory;
}

namespace ferry::broker {

class kafka_frontend final : public frontend_hook {
 public:
  kafka_frontend(const broker_config& cfg, broker_metrics& stats, pipeline& p,
                 std::string cluster_id);
  ~kafka_frontend() override;
  kafka_frontend(const kafka_frontend&) = delete;
  kafka_frontend& operator=(const kafka_frontend&) = delete;

  /// Binds cfg.kafka_listen and serves; returns the bound HOST:PORT.
  [[nodiscard]] result<std::string> start();
  /// Stops taking requests and closes every connection.
  void stop();

  [[nodiscard]] const kafka_node& node() const noexcept { return node_; }
  [[nodiscard]] const std::string& cluster_id() const noexcept { return cluster_id_; }
  [[nodiscard]] broker_metrics& stats() noexcept { return stats_; }

  // frontend_hook: answers are posted to the server's thread at once.
  void flush() override {}

  /// The users SASL checks (security on; the core owns them). Before start().
  void use_users(user_directory* users) noexcept { users_ = users; }
  /// The quotas charged per principal (null: none). Before start().
  void use_quotas(quota_book* quotas) noexcept { quotas_ = quotas; }
  [[nodiscard]] quota_book* quotas() const noexcept { return quotas_; }

 private:
  struct sasl_session;
  void on_request(kafka::request_frame f);
  void count(std::int16_t api);
  /// SaslHandshake and SaslAuthenticate (server thread).
  void on_sasl(kafka_request& q);
  /// Whether the connection authenticated (and still holds its credential);
  /// false when it was refused and is closing.
  bool admitted(kafka_request& q);
  sasl_session& session_of(kafka::connection& c);
  void refuse_auth(kafka_request& q, const char* reason, const std::string& why);

  const broker_config& cfg_;
  broker_metrics& stats_;
  pipeline& pipeline_;
  std::string cluster_id_;
  kafka_node node_;
  std::unique_ptr<kafka::server> server_;
  std::atomic<bool> stopping_{false};
  metrics::family<metrics::counter>& closed_;
  user_directory* users_ = nullptr;     // null: no SASL, everyone is served
  quota_book* quotas_ = nullptr;        // null: no quotas
  steady::time_point next_auth_log_{};  // server thread: one refusal line a second
};

}  // namespace ferry::broker
