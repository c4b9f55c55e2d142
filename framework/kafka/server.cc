#include "ferry/kafka/server.h"

#include <fmt/format.h>

#include <atomic>
#include <boost/asio.hpp>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "ferry/core/endian.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"

namespace ferry::kafka {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("kafka");
  return l;
}

}  // namespace

class session;

struct server::impl : std::enable_shared_from_this<server::impl> {
  server_options opts;
  // Answers are posted from the broker's threads; none after stop(), whose
  // drain runs what was posted before.
  std::mutex post_mu;
  bool stopped = false;  // guarded by post_mu
  handler on_request;
  server_events events;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
  std::string bound;
  std::set<std::shared_ptr<session>> sessions;  // the io thread's
  bool stopping = false;                        // the io thread's

  void accept();
  void forget(const std::shared_ptr<session>& s);
  template <class F>
  void post(F&& f) {
    std::lock_guard lock(post_mu);
    if (!stopped) asio::post(io, std::forward<F>(f));
  }
  void refused(const char* why) {
    if (events.refused) events.refused(why);
  }
};

// One connection: reads frames in order, hands them over, writes answers in
// request order. Everything runs on the io thread (respond() posts there).
class session final : public connection, public std::enable_shared_from_this<session> {
 public:
  session(std::shared_ptr<server::impl> s, tcp::socket sock)
      : owner_(std::move(s)),
        srv_(*owner_),
        sock_(std::move(sock)),
        read_timer_(srv_.io),
        idle_timer_(srv_.io) {
    boost::system::error_code ec;
    const auto ep = sock_.remote_endpoint(ec);
    peer_ = ec ? std::string("?") : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    sock_.set_option(tcp::no_delay(true), ec);
  }

  void start() {
    arm_idle();
    read_size();
  }

  void respond(std::uint64_t seq, std::vector<std::vector<std::byte>> response) override {
    srv_.post([self = shared_from_this(), seq, r = std::move(response)]() mutable {
      self->complete(seq, std::move(r), false);
    });
  }
  void respond_nothing(std::uint64_t seq) override {
    srv_.post([self = shared_from_this(), seq]() mutable { self->complete(seq, {}, false); });
  }
  void close_after(std::uint64_t seq) override {
    srv_.post([self = shared_from_this(), seq]() mutable { self->complete(seq, {}, true); });
  }
  void respond_then_close(std::uint64_t seq,
                          std::vector<std::vector<std::byte>> response) override {
    srv_.post([self = shared_from_this(), seq, r = std::move(response)]() mutable {
      self->complete(seq, std::move(r), true);
    });
  }
  const std::string& peer() const override { return peer_; }

  void close(const char* why) {
    if (closed_) return;
    closed_ = true;
    if (why != nullptr) {
      srv_.refused(why);
      logger()->debug("closing connection from {}: {}", peer_, why);
    }
    boost::system::error_code ec;
    read_timer_.cancel();
    idle_timer_.cancel();
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
    srv_.forget(shared_from_this());
  }

 private:
  void arm_idle() {
    idle_timer_.expires_after(srv_.opts.idle_timeout);
    idle_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->close("idle");
    });
  }

  void read_size() {
    if (closed_ || close_after_writes_) return;  // closing: nothing more is read
    if (pending_ >= srv_.opts.max_pending) {
      paused_ = true;  // resumed by complete() once answers left
      return;
    }
    asio::async_read(sock_, asio::buffer(size_buf_),
                     [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                       self->on_size(ec);
                     });
  }

  void on_size(boost::system::error_code ec) {
    if (ec) return close(nullptr);
    const auto size = be::load<std::int32_t>(size_buf_.data());
    if (size <= 0) return close("malformed");
    if (static_cast<std::size_t>(size) > srv_.opts.max_request_bytes) {
      logger()->warn(
          "closing connection from {}: a request of {} bytes is above "
          "network.max_request_bytes ({})",
          peer_, size, srv_.opts.max_request_bytes);
      return close("oversized");
    }
    // Before authentication only small requests are read (Kafka's
    // sasl.server.max.receive.size): a stranger cannot make the broker
    // buffer a large frame.
    if (srv_.opts.max_unauthenticated_request_bytes > 0 && !authenticated &&
        static_cast<std::size_t>(size) > srv_.opts.max_unauthenticated_request_bytes) {
      logger()->warn(
          "closing connection from {}: a request of {} bytes before authentication (at most {})",
          peer_, size, srv_.opts.max_unauthenticated_request_bytes);
      return close("oversized");
    }
    arm_idle();
    body_.assign(static_cast<std::size_t>(size), std::byte{0});
    started_ = steady::now();
    read_timer_.expires_after(srv_.opts.request_timeout);
    read_timer_.async_wait([self = shared_from_this()](boost::system::error_code e) {
      if (!e) self->close("slow");
    });
    asio::async_read(sock_, asio::buffer(body_),
                     [self = shared_from_this()](boost::system::error_code e, std::size_t) {
                       self->on_body(e);
                     });
  }

  void on_body(boost::system::error_code ec) {
    read_timer_.cancel();
    if (ec) return close(nullptr);
    request_frame f;
    f.from = shared_from_this();
    f.seq = next_seq_++;
    f.bytes = std::move(body_);
    f.received = started_;
    ++pending_;
    srv_.on_request(std::move(f));
    read_size();
  }

  // An answer for `seq`: kept until every earlier one left.
  void complete(std::uint64_t seq, std::vector<std::vector<std::byte>> r, bool close_then) {
    if (closed_) return;
    // Once a close is decided, nothing after it is sent.
    if (close_after_writes_ && seq >= next_send_) return;
    done_.emplace(seq, answer{std::move(r), close_then});
    while (!done_.empty() && done_.begin()->first == next_send_) {
      auto a = std::move(done_.begin()->second);
      done_.erase(done_.begin());
      ++next_send_;
      --pending_;
      if (a.close_then) close_after_writes_ = true;
      if (!a.chunks.empty()) {
        std::size_t size = 0;
        for (const auto& c : a.chunks) size += c.size();
        outgoing out;
        be::store<std::int32_t>(out.size.data(), static_cast<std::int32_t>(size));
        out.chunks = std::move(a.chunks);
        writes_.push_back(std::move(out));
      }
      if (close_after_writes_) break;  // nothing after it is sent
    }
    write_next();
    if (paused_ && pending_ < srv_.opts.max_pending && !close_after_writes_) {
      paused_ = false;
      read_size();
    }
  }

  void write_next() {
    if (writing_ || closed_) return;
    if (writes_.empty()) {
      if (close_after_writes_) close(nullptr);
      return;
    }
    writing_ = true;
    auto& out = writes_.front();
    std::vector<asio::const_buffer> bufs;
    bufs.reserve(out.chunks.size() + 1);
    bufs.emplace_back(asio::buffer(out.size));
    for (const auto& c : out.chunks)
      if (!c.empty()) bufs.emplace_back(asio::buffer(c));
    asio::async_write(sock_, bufs,
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        self->writing_ = false;
                        if (ec) return self->close(nullptr);
                        self->writes_.pop_front();
                        self->write_next();
                      });
  }

  struct answer {
    std::vector<std::vector<std::byte>> chunks;
    bool close_then = false;
  };
  struct outgoing {
    std::array<std::byte, 4> size{};
    std::vector<std::vector<std::byte>> chunks;
  };

  std::shared_ptr<server::impl> owner_;  // first: destroyed after the socket and timers
  server::impl& srv_;
  tcp::socket sock_;
  asio::steady_timer read_timer_;
  asio::steady_timer idle_timer_;
  std::string peer_;
  std::array<std::byte, 4> size_buf_{};
  std::vector<std::byte> body_;
  steady::time_point started_{};
  std::uint64_t next_seq_ = 0;
  std::uint64_t next_send_ = 0;
  std::size_t pending_ = 0;
  bool paused_ = false;
  bool writing_ = false;
  bool closed_ = false;
  bool close_after_writes_ = false;
  std::map<std::uint64_t, answer> done_;
  std::deque<outgoing> writes_;
};

void server::impl::accept() {
  acceptor.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
    if (stopping) return;
    if (!ec) {
      if (sessions.size() >= opts.max_connections) {
        refused("too_many_connections");
        boost::system::error_code ignored;
        sock.close(ignored);
      } else {
        auto s = std::make_shared<session>(shared_from_this(), std::move(sock));
        sessions.insert(s);
        if (events.accepted) events.accepted();
        s->start();
      }
    }
    accept();
  });
}

void server::impl::forget(const std::shared_ptr<session>& s) {
  if (sessions.erase(s) > 0 && events.closed) events.closed();
}

namespace {

// "host:port", "[v6]:port" -> an endpoint.
result<tcp::endpoint> parse_endpoint(const std::string& listen, std::string* why) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) {
    if (why) *why = "expected HOST:PORT";
    return ferry::errc::invalid_argument;
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    port = std::stoi(listen.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port < 0 || port > 65535) {
    if (why) *why = "the port must be 0..65535";
    return ferry::errc::invalid_argument;
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) {
    if (why) *why = fmt::format("'{}' is not an IP address", host);
    return ferry::errc::invalid_argument;
  }
  return tcp::endpoint(addr, static_cast<unsigned short>(port));
}

}  // namespace

result<std::unique_ptr<server>> server::start(server_options o, handler h, server_events events) {
  auto i = std::make_shared<impl>();
  i->opts = std::move(o);
  i->on_request = std::move(h);
  i->events = std::move(events);
  std::string why;
  FERRY_TRY(auto ep, parse_endpoint(i->opts.listen, &why));
  boost::system::error_code ec;
  i->acceptor.open(ep.protocol(), ec);
  if (!ec) i->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) i->acceptor.bind(ep, ec);
  if (!ec) i->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    logger()->error("cannot listen for Kafka clients on {}: {}", i->opts.listen, ec.message());
    return std::error_code(ec.value(), std::system_category());
  }
  const auto local = i->acceptor.local_endpoint();
  i->bound = local.address().is_v6()
                 ? fmt::format("[{}]:{}", local.address().to_string(), local.port())
                 : fmt::format("{}:{}", local.address().to_string(), local.port());
  i->accept();
  auto* raw = i.get();
  i->thread = std::thread([raw] {
    for (;;) {
      try {
        raw->io.run();
        return;
      } catch (const std::exception& e) {
        logger()->error("Kafka listener: {}", e.what());
      }
    }
  });
  return std::unique_ptr<server>(new server(std::move(i)));
}

server::server(std::shared_ptr<impl> i) : impl_(std::move(i)) {}

server::~server() {
  stop();
}

std::string server::address() const {
  return impl_->bound;
}

void server::stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->io, [i = impl_.get()] {
    i->stopping = true;
    boost::system::error_code ec;
    i->acceptor.close(ec);
    auto all = i->sessions;
    for (const auto& s : all) s->close(nullptr);
  });
  // Let the closes run, then stop.
  asio::post(impl_->io, [i = impl_.get()] { i->io.stop(); });
  impl_->thread.join();
  {
    std::lock_guard lock(impl_->post_mu);
    impl_->stopped = true;
  }
  // Run what is still queued (cancelled reads and timers, answers posted
  // before the stop) so no handler keeps a connection, and with it this
  // io context, alive.
  impl_->io.restart();
  impl_->io.poll();
}

}  // namespace ferry::kafka
