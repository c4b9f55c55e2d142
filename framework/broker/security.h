// Authentication on the ZeroMQ listener (docs/security.md): CURVE on the
// ROUTER socket, and a ZAP handler (ZeroMQ RFC 27) that admits only the
// public keys of the users file. libzmq 4.3's CURVE server admits every
// client key when no ZAP handler answers, so the handler is started before
// the socket binds, and a request it cannot answer is refused.
//
// The users file (TOML):
//
//   [users.alice]
//   public_key = "Z85..."          # from alice.pub (ferry keys generate alice)
//   scram_sha256 = "SCRAM-SHA-256$8192:..."   # Kafka clients (ferry users hash-password)
//   super_user = false             # passes every authorization rule (ACLs)
//   tls_client = false             # Kafka clients whose TLS certificate's CN is NAME
//   produce_bytes_per_second = 0   # quotas (quotas.h), each replacing [quotas]'s
//   fetch_bytes_per_second = 0
//   in_flight_bytes = 0
//
// A user has a public key, a SCRAM credential, a client certificate, or
// several of them.
//
// Each accepted connection carries the ZAP user id "NAME:KEY"; every
// request's principal is NAME, and a request whose NAME:KEY pair is no
// longer in the file (revoked, or rotated to a new key) is refused.
//
// Thread safety: user_directory is safe from any thread; zap_handler's
// start()/stop() from the controlling thread.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "broker_metrics.h"
#include "ferry/broker/config.h"
#include "ferry/core/mutex.h"
#include "ferry/core/result.h"
#include "ferry/kafka/server.h"
#include "ferry/protocol/scram.h"

namespace ferry::broker {

struct user {
  std::string name;
  std::string public_key;  ///< Z85; empty for a user of the Kafka listener only
  /// SASL/SCRAM-SHA-256 on the Kafka listener (scram.h); empty: none.
  std::string scram_sha256;
  bool super_user = false;
  /// Admits a Kafka client whose verified TLS certificate has NAME as its
  /// subject's CN (mTLS: security.kafka_tls_client_auth).
  bool tls_client = false;
  /// Quotas of this user's own, each replacing [quotas]'s (0: no limit).
  std::optional<std::int64_t> produce_bytes_per_second;
  std::optional<std::int64_t> fetch_bytes_per_second;
  std::optional<std::int64_t> in_flight_bytes;
};

/// The users file's text as users; nullopt with `why` (naming the file and
/// the user) when anything in it is wrong: unknown keys, a bad key, a key
/// given to two users.
[[nodiscard]] std::optional<std::vector<user>> parse_users(const std::string& text,
                                                           const std::string& file,
                                                           std::string& why);

/// The users file, re-read when it changes.
class user_directory {
 public:
  explicit user_directory(std::filesystem::path file);
  /// The first read: an error stops the start.
  [[nodiscard]] result<void> load(std::string& why);
  /// Re-reads the file and takes it if its contents changed (the file is
  /// small; a rotation can keep its size and, within a clock tick, its
  /// time). A file that is missing or no longer parses keeps the last good
  /// users, logged as an error once per distinct problem.
  void refresh();
  /// The user holding this public key (Z85), if any.
  [[nodiscard]] std::optional<user> by_key(const std::string& z85) const;
  /// Whether NAME still holds KEY ("NAME:KEY", a ZAP user id).
  [[nodiscard]] bool holds(std::string_view user_id) const;
  /// Whether NAME is a user with super_user = true (passes every ACL).
  [[nodiscard]] bool is_super(std::string_view name) const;
  /// NAME's quotas: its own where the users file gives them, `defaults`
  /// for the rest (and for a principal not in the file).
  [[nodiscard]] quota_limits quotas_of(std::string_view name, const quota_limits& defaults) const;
  /// Whether NAME is a user with tls_client = true.
  [[nodiscard]] bool takes_certificate(std::string_view name) const;
  /// NAME's SCRAM-SHA-256 credential, if it has one.
  [[nodiscard]] std::optional<protocol::scram::credential> scram_of(std::string_view name) const;

 private:
  struct snapshot {
    std::map<std::string, user, std::less<>> by_key;
    std::map<std::string, bool, std::less<>> super_by_name;
    std::map<std::string, protocol::scram::credential, std::less<>> scram_by_name;
    std::set<std::string, std::less<>> tls_clients;
    std::map<std::string, user, std::less<>> with_quotas;
    std::string text;  // the file as it was read
  };
  /// Reads and parses the file; the users, or nullopt with `why`.
  std::optional<snapshot> read(std::string& why) const;

  std::filesystem::path file_;
  mutex load_mu_;  // one reader at a time: an older read never replaces a newer one
  std::string last_problem_ FERRY_GUARDED_BY(load_mu_);
  mutable mutex mu_;
  std::shared_ptr<const snapshot> current_ FERRY_GUARDED_BY(mu_);
};

/// The Kafka listener's TLS settings in `s` (security.kafka_tls_*).
[[nodiscard]] kafka::tls_options kafka_tls_of(const security_config& s);

/// One ZAP request (its frames after the envelope) and what to answer.
struct zap_decision {
  std::string request_id;
  std::string status = "400";  ///< "200" admitted, "400" refused, "500" malformed
  std::string text;
  std::string user_id;  ///< "NAME:KEY" when admitted
  std::string address;  ///< the client's, for the log
};
[[nodiscard]] zap_decision decide_zap(std::span<const std::string> frames,
                                      const user_directory& users);

/// Answers ZAP requests of `ctx` on its own thread.
class zap_handler {
 public:
  zap_handler(zmq::context_t& ctx, user_directory& users, broker_metrics& stats);
  ~zap_handler();
  zap_handler(const zap_handler&) = delete;
  zap_handler& operator=(const zap_handler&) = delete;

  /// Binds inproc://zeromq.zap.01 (before the ROUTER binds) and starts.
  [[nodiscard]] result<void> start();
  void stop();

 private:
  void loop(zmq::socket_t s);

  zmq::context_t& ctx_;
  user_directory& users_;
  broker_metrics& stats_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace ferry::broker
