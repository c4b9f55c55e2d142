// The Ferry broker: topics and partitions on partition_logs, served over one
// ZeroMQ ROUTER socket.
//
// Threads (see docs/protocol.md, "Inside the broker"):
//  - the network thread owns the ROUTER socket: it receives, verifies and
//    decodes requests (protocol::decode_envelope), queues them for the disk
//    thread and sends replies. It never touches a file.
//  - the disk thread owns every partition_log: it takes all queued requests
//    at once, appends every produce batch, syncs each touched partition once
//    (group commit), then answers produces, fetches (parking long polls until
//    data or their deadline), offsets and admin requests.
// A produce is answered only after the fdatasync covering it returned.
//
// Lifecycle: open() loads every topic (running log recovery), start() binds
// and starts both threads, stop() stops taking requests, finishes what is
// queued (syncs and replies), and joins. Thread safety: start/stop/wait from
// one controlling thread; endpoint() and ready() from any.
//
// Metrics (docs/observability.md) go into the registry given to open() -
// ferryd serves it on --metrics-listen - or into one of the broker's own.
// Counters are updated as requests are served; per-partition and group
// values are taken by the disk thread when the registry is scraped.
#pragma once

#include <memory>
#include <string>

#include "ferry/broker/config.h"
#include "ferry/core/result.h"
#include "ferry/metrics/registry.h"

namespace ferry::broker {

class broker {
 public:
  [[nodiscard]] static result<std::unique_ptr<broker>> open(
      broker_config config, std::shared_ptr<metrics::registry> metrics = nullptr);
  ~broker();
  broker(const broker&) = delete;
  broker& operator=(const broker&) = delete;

  /// Binds the listen endpoint and starts serving. Returns the bound
  /// endpoint (with the real port when the config said "tcp://host:*").
  [[nodiscard]] result<std::string> start();
  /// Graceful stop: no new requests, queued ones finished, all synced.
  void stop();
  [[nodiscard]] bool ready() const noexcept;
  [[nodiscard]] std::string endpoint() const;
  /// The Kafka listener's bound HOST:PORT (empty without kafka_listen).
  [[nodiscard]] std::string kafka_address() const;
  /// The registry the broker's metrics are in (the one given to open()).
  [[nodiscard]] metrics::registry& metrics() noexcept;

  struct impl;

 private:
  explicit broker(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace ferry::broker
