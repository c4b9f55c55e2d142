#include "ferry/metrics/http_endpoint.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <thread>

#include "ferry/core/errc.h"
#include "ferry/core/logging.h"

namespace ferry::metrics {
namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("metrics");
  return l;
}

// A JSON string, valid UTF-8 even for a path that is not (the logs' escaping).
std::string json_string(std::string_view s) {
  spdlog::memory_buf_t buf;
  buf.push_back('"');
  log::append_json_escaped(s, buf);
  buf.push_back('"');
  return std::string(buf.data(), buf.size());
}

}  // namespace

std::string listen_problem(std::string_view s) {
  if (s.find("://") != std::string_view::npos)
    return "give HOST:PORT without a scheme, e.g. 127.0.0.1:9400";
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return "no port: give HOST:PORT, e.g. 127.0.0.1:9400";
  auto host = s.substr(0, colon);
  auto port = s.substr(colon + 1);
  if (host.empty()) return "no host: give HOST:PORT (0.0.0.0:PORT for every interface)";
  auto all_of = [](std::string_view v, auto pred) {
    return std::all_of(v.begin(), v.end(), [&](char c) { return pred(c); });
  };
  if (host.front() == '[') {
    auto inner = host.substr(1, host.size() >= 2 ? host.size() - 2 : 0);
    if (host.size() < 3 || host.back() != ']' || !all_of(inner, [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
        }))
      return fmt::format("bad IPv6 host '{}': write it in brackets, e.g. [::1]:9400", host);
  } else if (host.find(':') != std::string_view::npos) {
    return "an IPv6 host must be in brackets, e.g. [::1]:9400";
  } else if (!all_of(host, [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                      c == '_';
             })) {
    return fmt::format("bad host '{}': a name or an IP address", host);
  }
  if (port.empty() || port.size() > 5 ||
      !all_of(port, [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoi(std::string(port)) > 65535)
    return fmt::format("bad port '{}': 0..65535 (0 picks a free one)", port);
  return {};
}

result<endpoint_address> parse_listen(std::string_view text, std::string& error) {
  if (auto why = listen_problem(text); !why.empty()) {
    error = fmt::format("'{}': {}", text, why);
    return ferry::errc::config_invalid;
  }
  const auto colon = text.rfind(':');
  endpoint_address a;
  a.host = std::string(text.substr(0, colon));
  if (a.host.front() == '[') a.host = a.host.substr(1, a.host.size() - 2);
  a.port = std::stoi(std::string(text.substr(colon + 1)));
  return a;
}

struct http_endpoint::impl {
  httplib::Server server;
  std::thread thread;
  std::string host;
  int port = 0;
};

http_endpoint::http_endpoint(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

http_endpoint::~http_endpoint() {
  stop();
}

result<std::unique_ptr<http_endpoint>> http_endpoint::start(std::string_view listen, registry& reg,
                                                            readiness ready, std::string& error) {
  FERRY_TRY(auto addr, parse_listen(listen, error));
  auto i = std::make_unique<impl>();
  auto& s = i->server;
  // Scrapes are few and small: a few threads, short timeouts, and no idle
  // keep-alive connection holding a thread (a readiness probe would queue
  // behind two scrapers' idle connections).
  s.new_task_queue = [] { return new httplib::ThreadPool(4); };
  s.set_read_timeout(5, 0);
  s.set_write_timeout(5, 0);
  s.set_keep_alive_max_count(1);
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, with which a
  // second process on the same port would silently share its scrapes.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    (void)::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  s.Get("/metrics", [&reg](const httplib::Request&, httplib::Response& res) {
    res.set_content(reg.expose(), "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}\n", "application/json");
  });
  s.Get("/readyz", [r = std::move(ready)](const httplib::Request&, httplib::Response& res) {
    std::optional<std::string> why;
    if (r) why = r();
    if (!why) {
      res.set_content("{\"status\":\"ready\"}\n", "application/json");
      return;
    }
    res.status = 503;
    res.set_content("{\"status\":\"not ready\",\"reason\":" + json_string(*why) + "}\n",
                    "application/json");
  });
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("Ferry: GET /metrics (Prometheus), /healthz, /readyz\n", "text/plain");
  });
  if (addr.port == 0) {
    i->port = s.bind_to_any_port(addr.host);
    if (i->port <= 0) i->port = -1;
  } else {
    i->port = s.bind_to_port(addr.host, addr.port) ? addr.port : -1;
  }
  if (i->port < 0) {
    error = fmt::format(
        "cannot listen on {} for metrics (address in use or not local; pick "
        "another port or host)",
        listen);
    return ferry::errc::invalid_argument;
  }
  i->host = addr.host;
  auto* raw = i.get();
  i->thread = std::thread([raw] { raw->server.listen_after_bind(); });
  // Server::stop() does nothing before the accept loop runs (cpp-httplib
  // 0.11), so a stop right after start would hang the join: wait for it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!raw->server.is_running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!raw->server.is_running()) {
    // The accept loop never ran (it returned at once): nothing serves.
    raw->server.stop();
    raw->thread.join();
    error = fmt::format("the metrics endpoint on {} did not start", listen);
    return ferry::errc::invalid_argument;
  }
  auto ep = std::unique_ptr<http_endpoint>(new http_endpoint(std::move(i)));
  logger()->info("metrics and health on http://{}/metrics", ep->address());
  return ep;
}

std::string http_endpoint::address() const {
  // An IPv6 host in brackets, as in a URL: [::1]:9400.
  if (impl_->host.find(':') != std::string::npos)
    return fmt::format("[{}]:{}", impl_->host, impl_->port);
  return fmt::format("{}:{}", impl_->host, impl_->port);
}

int http_endpoint::port() const noexcept {
  return impl_->port;
}

void http_endpoint::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace ferry::metrics
