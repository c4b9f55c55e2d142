// The HTTP endpoint a Ferry process serves metrics and health on
// (cpp-httplib, two threads):
//
//   GET /metrics  registry::expose(), text/plain; version=0.0.4
//   GET /healthz  200 {"status":"ok"} while the process runs
//   GET /readyz   200 {"status":"ready"}, or 503 {"status":"not ready","reason":"..."}
//
// Readiness comes from a callback (ferryd: data loaded and accepting
// requests; a worker: joined its group). The endpoint starts before the
// component it describes, so /readyz answers 503 during start-up and again
// while the process stops.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ferry/core/result.h"
#include "ferry/metrics/registry.h"

namespace ferry::metrics {

/// nullopt when ready; otherwise why not.
using readiness = std::function<std::optional<std::string>()>;

struct endpoint_address {
  std::string host;
  int port = 0;
};

/// What is wrong with a listen address "HOST:PORT" (a name or IPv4
/// address, or an IPv6 one in brackets: [::1]:9400; port 0..65535, 0 picks
/// a free one), or "" when it is fine.
[[nodiscard]] std::string listen_problem(std::string_view text);

/// Parses a listen address (brackets dropped from an IPv6 host). On error
/// returns errc::config_invalid and sets `error` to "'TEXT': <problem>".
[[nodiscard]] result<endpoint_address> parse_listen(std::string_view text, std::string& error);

class http_endpoint {
 public:
  /// Binds `listen` ("127.0.0.1:9400") and serves `reg` until stop() or
  /// destruction. `reg` and `ready` must outlive the endpoint.
  [[nodiscard]] static result<std::unique_ptr<http_endpoint>> start(std::string_view listen,
                                                                    registry& reg, readiness ready,
                                                                    std::string& error);
  ~http_endpoint();
  http_endpoint(const http_endpoint&) = delete;
  http_endpoint& operator=(const http_endpoint&) = delete;

  /// "host:port" with the bound port.
  [[nodiscard]] std::string address() const;
  [[nodiscard]] int port() const noexcept;
  void stop();

  struct impl;

 private:
  explicit http_endpoint(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace ferry::metrics
