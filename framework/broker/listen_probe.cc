// ferryd --check-config: binds each configured listener once, as the real
// start does, and lets it go (config.h: probe_listeners).
#include <fmt/format.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <zmq.hpp>

#include "ferry/broker/config.h"
#include "ferry/core/errc.h"

namespace ferry::broker {

namespace {

// "" when HOST:PORT can be bound now; else why not. `in_use` is set for
// EADDRINUSE (a running ferryd, most likely).
std::string probe_tcp(const std::string& host_port, bool& in_use) {
  const auto colon = host_port.rfind(':');
  std::string host = host_port.substr(0, colon);
  const std::string port = host_port.substr(colon + 1);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return fmt::format("cannot resolve host '{}': {}", host, ::gai_strerror(rc));
  std::string why;
  for (auto* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    int one = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const int rc = ::bind(fd, a->ai_addr, a->ai_addrlen);
    const int err = errno;
    ::close(fd);
    if (rc == 0) {
      why.clear();
      break;
    }
    in_use = in_use || err == EADDRINUSE;
    why = std::strerror(err);
  }
  ::freeaddrinfo(found);
  return why;
}

// ipc://PATH: never bound here, because binding removes whatever socket
// file is at PATH (a running ferryd's). The directory must exist and be
// writable; a socket that answers a connect is in use.
std::string probe_ipc(const std::string& path, bool& in_use) {
  const auto dir = std::filesystem::path(path).parent_path();
  const auto d = dir.empty() ? std::filesystem::path(".") : dir;
  if (::access(d.c_str(), W_OK | X_OK) != 0)
    return fmt::format("{}: {}", d.string(), std::strerror(errno));
  sockaddr_un a{};
  if (path.size() >= sizeof a.sun_path) return "the path is too long for a unix socket";
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    in_use = ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
  }
  return in_use ? "in use" : std::string();
}

// ZeroMQ's own bind, so every TCP endpoint form it takes (tcp://*:P,
// tcp://eth0:P) is judged as the start judges it.
std::string probe_zmq(const std::string& endpoint, bool& in_use) {
  if (endpoint.rfind("ipc://", 0) == 0) return probe_ipc(endpoint.substr(6), in_use);
  try {
    zmq::context_t ctx(1);
    zmq::socket_t s(ctx, zmq::socket_type::router);
    s.set(zmq::sockopt::linger, 0);
    s.bind(endpoint);
    s.unbind(s.get(zmq::sockopt::last_endpoint));
    return {};
  } catch (const zmq::error_t& e) {
    in_use = e.num() == EADDRINUSE;
    if (e.num() == ENODEV)
      return fmt::format(
          "{} (the host is not an address of this machine, a name that resolves "
          "to one, or a network interface; * is every interface)",
          e.what());
    return e.what();
  }
}

}  // namespace

result<void> probe_listeners(const broker_config& c, std::string& error,
                             std::vector<std::string>& warnings) {
  struct listener {
    const char* key;
    const std::string& address;
    bool zmq;
  };
  for (const auto& l :
       {listener{"listen", c.listen, true}, listener{"metrics_listen", c.metrics_listen, false},
        listener{"kafka_listen", c.kafka_listen, false}}) {
    if (l.address.empty() || l.address.rfind("inproc://", 0) == 0) continue;
    bool in_use = false;
    auto why = l.zmq ? probe_zmq(l.address, in_use) : probe_tcp(l.address, in_use);
    if (why.empty()) continue;
    if (in_use) {
      // Likely the ferryd this configuration is for, still running: not an
      // error of the file, but the start would fail until it is free.
      warnings.push_back(fmt::format(
          "{} = \"{}\" is in use now (a running ferryd?); the start fails until it is free", l.key,
          l.address));
      continue;
    }
    error = fmt::format("{} = \"{}\": cannot listen there: {}", l.key, l.address, why);
    return ferry::errc::config_invalid;
  }
  return success();
}

}  // namespace ferry::broker
