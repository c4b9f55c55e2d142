// Options shared by every client (admin, producer, consumer).
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "ferry/protocol/socket.h"

namespace ferry::client {

struct client_options {
  /// Where the broker is. tcp://HOST:PORT or ipc://PATH: ferryd's native
  /// protocol. kafka://HOST:PORT[,HOST:PORT...]: a Kafka cluster, or
  /// ferryd's Kafka listener, through librdkafka (docs/kafka.md). The
  /// library never reads FERRY_BROKER; the `ferry` CLI does and passes the
  /// value here.
  std::string broker = "tcp://127.0.0.1:7400";
  /// librdkafka configuration properties for kafka:// brokers (e.g.
  /// security.protocol, sasl.mechanism, sasl.username, ssl.ca.location,
  /// client tuning). They are applied after Ferry's own settings and so
  /// override them - except the ones Ferry's guarantees rest on (acks,
  /// enable.idempotence, group.id, enable.auto.commit,
  /// enable.auto.offset.store, auto.offset.reset, partitioner,
  /// allow.auto.create.topics, enable.partition.eof, isolation.level),
  /// which Ferry sets where it uses them and logs a warning about. An
  /// unknown property or value fails the first call with
  /// ferry::errc::invalid_argument naming it. Ignored for native brokers.
  std::map<std::string, std::string> kafka;
  /// How long one attempt of a request waits for its reply. A request that
  /// was in flight when the broker died gets no reply and fails with
  /// protocol::errc::timed_out after this long (ZeroMQ reconnects by itself;
  /// the next request goes to the restarted broker).
  std::chrono::milliseconds request_timeout{30000};
  /// Deadline for an idempotent call including its retries (admin calls,
  /// offset lookups). Each attempt still waits at most request_timeout.
  std::chrono::milliseconds api_timeout{60000};
  /// Pause between attempts after a retriable failure.
  std::chrono::milliseconds retry_backoff{100};
  protocol::socket_options socket;
  /// CURVE authentication (docs/security.md), both or neither: this
  /// client's key pair (NAME.key from `ferry keys generate`) and the
  /// broker's public key (its .pub or .key file, or the Z85 text). The
  /// library never reads FERRY_KEY_FILE / FERRY_SERVER_KEY; the `ferry` CLI
  /// does. A broker that refuses the key fails calls with
  /// errc::authentication_failed at once, not after a time-out.
  std::string key_file{};
  std::string server_key{};
};

}  // namespace ferry::client
