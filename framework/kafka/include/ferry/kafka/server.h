// A TCP server for the Kafka protocol's framing (Boost.Asio, one thread):
// every request is an int32 size and that many bytes; responses are sent
// in the order of their requests on each connection, as Kafka clients
// expect, whatever order they are answered in.
//
// What it bounds (docs/kafka.md, "Limits"):
//  - a request above max_request_bytes closes its connection (Kafka does
//    the same: the size comes first, the bytes are never read);
//  - a request must arrive whole within request_timeout once its first
//    byte did (slow senders), and a connection with no request for
//    idle_timeout is closed;
//  - with max_pending requests unanswered, a connection is not read
//    further until answers leave (a client that never reads its answers
//    holds at most that many);
//  - at most max_connections at once: more are closed at accept.
//
// Thread safety: start() and stop() from the controlling thread; the
// handler runs on the server's thread; connection::respond() from any.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ferry/core/result.h"

namespace ferry::kafka {

/// Whether a TLS listener asks clients for a certificate (Kafka's
/// ssl.client.auth): `required` refuses a client without a valid one at the
/// handshake; `requested` verifies one if it is offered.
enum class client_auth { none, requested, required };

/// TLS on the listener (OpenSSL through Boost.Asio): TLS 1.2 or 1.3 only.
/// The files are PEM; they are read again, for new connections, when they
/// change (certificate rotation), and a change that does not load keeps
/// the previous ones (logged).
struct tls_options {
  std::filesystem::path certificate_file;  ///< the listener's certificate chain
  std::filesystem::path key_file;          ///< its private key (unencrypted)
  std::filesystem::path ca_file;           ///< CAs for client certificates
  client_auth clients = client_auth::none;
};

/// Loads `o` as the listener would; the first problem in `why` (the file
/// and what is wrong with it).
[[nodiscard]] result<void> check_tls(const tls_options& o, std::string& why);

struct server_options {
  std::string listen;  ///< HOST:PORT (port 0: a free one)
  std::size_t max_request_bytes = 100u << 20;
  std::chrono::milliseconds request_timeout{30'000};
  std::chrono::milliseconds idle_timeout{600'000};
  std::size_t max_pending = 64;
  std::size_t max_connections = 4096;
  /// With authentication (SASL): the largest request read before a
  /// connection is `authenticated`; 0: no separate limit.
  std::size_t max_unauthenticated_request_bytes = 0;
  /// Set: every connection is TLS (no plaintext on this listener).
  std::optional<tls_options> tls;
};

/// What the server tells its owner (for metrics and logs); any may be empty.
struct server_events {
  std::function<void()> accepted;
  std::function<void()> closed;
  /// A connection closed for a reason worth counting ("oversized", "slow",
  /// "idle", "too_many_connections", "malformed", "tls": a failed TLS
  /// handshake).
  std::function<void(const char* reason)> refused;
};

class connection {
 public:
  virtual ~connection() = default;
  /// The answer to request `seq` (response header included). Any thread.
  virtual void respond(std::uint64_t seq, std::vector<std::vector<std::byte>> response) = 0;
  /// Request `seq` gets no answer (a produce with acks=0). Any thread.
  virtual void respond_nothing(std::uint64_t seq) = 0;
  /// Closes the connection after what was answered before (a request that
  /// cannot be answered at all). Any thread.
  virtual void close_after(std::uint64_t seq) = 0;
  /// Sends the answer to `seq`, then closes (a refused authentication).
  /// Any thread.
  virtual void respond_then_close(std::uint64_t seq,
                                  std::vector<std::vector<std::byte>> response) = 0;
  /// Reads no further request for `d` (a quota's throttle: Kafka brokers
  /// mute the channel the same way). Any thread.
  virtual void pause_reading(std::chrono::milliseconds d) = 0;
  [[nodiscard]] virtual const std::string& peer() const = 0;
  /// What the server's owner keeps with the connection (its SASL state):
  /// touched only on the server's thread, where requests are handled.
  std::shared_ptr<void> session;
  /// Set by the owner once the connection authenticated (server thread):
  /// until then server_options::max_unauthenticated_request_bytes holds.
  bool authenticated = false;
  /// Over TLS (fixed before the first request).
  bool encrypted = false;
  /// The CN of the client certificate TLS verified against
  /// tls_options::ca_file; empty without one (fixed before the first request).
  std::string certificate_cn;
};

/// One request: its bytes after the size, in order per connection (`seq`).
struct request_frame {
  std::shared_ptr<connection> from;
  std::uint64_t seq = 0;
  std::vector<std::byte> bytes;
  std::chrono::steady_clock::time_point received;
};

class server {
 public:
  using handler = std::function<void(request_frame)>;

  /// Binds and starts serving; the bound address (with the real port) in
  /// address().
  [[nodiscard]] static result<std::unique_ptr<server>> start(server_options o, handler h,
                                                             server_events events = {});
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  [[nodiscard]] std::string address() const;
  /// Stops accepting, closes every connection, joins the thread.
  void stop();

  struct impl;

 private:
  explicit server(std::shared_ptr<impl> i);
  // Shared with the connections: a connection still held by a request in
  // the broker keeps the io context its socket belongs to.
  std::shared_ptr<impl> impl_;
};

}  // namespace ferry::kafka
