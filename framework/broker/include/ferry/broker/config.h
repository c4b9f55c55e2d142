// Broker configuration: built-in defaults < TOML file < FERRY_* environment
// < command-line flags (applied by ferryd). Every key is listed in
// docs/operations.md; `ferryd --check-config` validates and exits.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ferry/broker/topic_settings.h"
#include "ferry/core/logging.h"
#include "ferry/core/result.h"
#include "ferry/protocol/socket.h"
#include "ferry/schema/schema.h"
#include "ferry/storage/log.h"

namespace ferry::broker {

/// [security] (docs/security.md): with `enabled`, every ZeroMQ client must
/// authenticate with a CURVE key listed in the users file; nothing is
/// served to anyone else.
struct security_config {
  bool enabled = false;
  /// ferryd's key pair (NAME.key from `ferry keys generate`). A relative
  /// path in the TOML file is relative to the file's directory.
  std::filesystem::path server_key_file;
  /// [users.NAME] public_key = "Z85...": who may connect. Re-read when it
  /// changes: a removed or replaced key is refused from its next request.
  std::filesystem::path users_file;
  /// The authorization rules (acl.h; `ferry acls`), written by ferryd on
  /// each change. Empty: <data_dir>/acls.toml.
  std::filesystem::path acl_file;
  /// Let the Kafka listener take SASL clients on an address other machines
  /// reach without TLS: off, such a listener is refused with security on.
  bool kafka_plaintext = false;
  /// TLS on the Kafka listener (PEM; docs/security.md#tls): with both set,
  /// every Kafka connection is TLS. Relative to the TOML file's directory.
  std::filesystem::path kafka_tls_cert_file;
  std::filesystem::path kafka_tls_key_file;
  /// The CAs that sign Kafka clients' certificates (mTLS).
  std::filesystem::path kafka_tls_ca_file;
  /// "none" (default), "requested" (verified when offered) or "required"
  /// (no valid certificate, no connection). A verified certificate whose CN
  /// names a user with tls_client = true authenticates as that user.
  std::string kafka_tls_client_auth = "none";
  [[nodiscard]] bool kafka_tls() const noexcept { return !kafka_tls_cert_file.empty(); }
  /// One JSON line per state-changing admin action (audit.h); empty: none.
  /// Works with security off too (the principal is then "anonymous").
  std::filesystem::path audit_file;
};

/// Quotas of one principal (docs/security.md#quotas); 0: no limit.
struct quota_limits {
  std::int64_t produce_bytes_per_second = 0;
  std::int64_t fetch_bytes_per_second = 0;
  std::int64_t in_flight_bytes = 0;
  [[nodiscard]] bool any() const noexcept {
    return produce_bytes_per_second > 0 || fetch_bytes_per_second > 0 || in_flight_bytes > 0;
  }
};

/// security.acl_file, or its default in the data directory.
struct broker_config;
[[nodiscard]] std::filesystem::path acl_file_of(const broker_config& c);

struct broker_config {
  std::filesystem::path data_dir;
  std::string listen = "tcp://127.0.0.1:7400";
  /// A level spec, "info" or "warn,storage=debug" (ferry::log::parse_levels).
  std::string log_level = "info";
  ferry::log::format log_format = ferry::log::format::text;
  /// HOST:PORT of the metrics HTTP endpoint (127.0.0.1:9400, [::1]:9400,
  /// 0.0.0.0:9400); port 0 picks a free one. Empty: no endpoint.
  std::string metrics_listen;
  /// HOST:PORT of the Kafka protocol listener (docs/kafka.md); empty: none.
  std::string kafka_listen;
  /// HOST:PORT that Metadata tells Kafka clients to connect to; empty: the
  /// listen address (its port, and 127.0.0.1 for a wildcard host).
  std::string kafka_advertised;
  /// A Kafka request above this closes its connection.
  std::int64_t kafka_max_request_bytes = 100ll << 20;
  /// A Kafka connection with no request for this long is closed.
  std::chrono::milliseconds kafka_idle_timeout{600'000};
  /// Settings of a new topic whose CreateTopic request leaves them to the
  /// broker (TOML [topics]; schema_subject and schema_validation are unused).
  topic_settings topics;
  storage::flush_mode flush = storage::flush_mode::on_commit;
  std::chrono::milliseconds flush_interval{1000};
  storage::recovery_policy recovery = storage::recovery_policy::fail;
  std::uint32_t index_interval_bytes = 4096;
  std::chrono::milliseconds retention_check_interval{60'000};
  protocol::socket_options socket;
  std::int32_t max_in_flight = 10'000;  ///< queued requests before TooManyRequests
  /// The same for one connection (parked long polls and replies a quota
  /// holds included): one client cannot take every slot.
  std::int32_t max_in_flight_per_connection = 1'000;
  std::chrono::milliseconds max_fetch_wait{30'000};  ///< cap on a fetch's long poll
  std::int64_t max_fetch_bytes = 32ll << 20;         ///< cap on the data in one fetch response
  std::int32_t max_partitions = 10'000;              ///< per topic
  /// Committed offsets of a group without members are deleted this long
  /// after the group became empty and its last commit (whichever is later).
  std::chrono::milliseconds offsets_retention{std::chrono::hours(24 * 7)};
  std::chrono::milliseconds min_session_timeout{100};  ///< bounds a member may ask for
  std::chrono::milliseconds max_session_timeout{300'000};
  std::uint64_t offsets_compact_bytes = 64ull << 20;  ///< rewrite the offsets log past this size
  /// A group's ledger of processed idempotency keys keeps a key this long
  /// after it was recorded ...
  std::chrono::milliseconds ledger_retention{std::chrono::hours(24 * 7)};
  /// ... and at most this many keys per group (the oldest go first).
  std::int64_t ledger_max_keys = 1'000'000;
  /// Compatibility mode of schema subjects that have none of their own.
  schema::mode schema_compatibility = schema::mode::backward;
  security_config security;
  /// [quotas]: every principal's, unless the users file gives a user its
  /// own (docs/security.md#quotas).
  quota_limits quotas;
  /// The longest one throttled answer waits (quotas.max_throttle_ms): keep
  /// it well under clients' request timeouts (30 s by default).
  std::chrono::milliseconds quota_max_throttle{10'000};
};

/// Looks up an environment variable (injectable for tests).
using env_lookup = std::function<std::optional<std::string>(const std::string&)>;
env_lookup process_environment();

/// Builds a configuration from defaults, then `toml_file` if given, then the
/// FERRY_* variables `env` knows. On error returns errc::config_invalid and
/// sets `error` to a message naming the key and what is allowed.
[[nodiscard]] result<broker_config> load_config(
    const std::optional<std::filesystem::path>& toml_file, const env_lookup& env,
    std::string& error);

/// Checks ranges and combinations; same error contract as load_config.
[[nodiscard]] result<void> validate(const broker_config& c, std::string& error);

/// `ferryd --check-config`: binds `listen`, `metrics_listen` and
/// `kafka_listen` once each, as the start would, and releases them. An
/// address that cannot be bound (no such interface, a name that does not
/// resolve, no permission) is an error; one in use now is a warning (most
/// likely the running ferryd this configuration is checked for).
[[nodiscard]] result<void> probe_listeners(const broker_config& c, std::string& error,
                                           std::vector<std::string>& warnings);

/// `ferryd --check-config` with security on: reads the server key file and
/// the users file as the start would (security.h); the first problem in
/// `error`.
[[nodiscard]] result<void> check_security_files(const broker_config& c, std::string& error);

/// The configuration file ferryd reads without --config: FERRY_CONFIG when
/// set and not empty, else /etc/ferry/ferryd.toml when it exists, else none.
[[nodiscard]] std::optional<std::filesystem::path> default_config_file(const env_lookup& env);

}  // namespace ferry::broker
