#include "ferry/kafka/server.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "ferry/core/endian.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"

namespace ferry::kafka {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("kafka");
  return l;
}

// --- TLS --------------------------------------------------------------------

std::error_code tls_problem(std::string& why, std::string text) {
  ERR_clear_error();  // nothing left for the io thread's next TLS call to find
  why = std::move(text);
  return ferry::errc::invalid_argument;
}

// A PEM file's problem: missing, or what OpenSSL said about it.
std::string file_problem(const char* what, const std::filesystem::path& f,
                         const boost::system::error_code& ec) {
  std::error_code fs;
  if (!std::filesystem::exists(f, fs)) return fmt::format("{} {} does not exist", what, f.string());
  return fmt::format("{} {} does not load: {}", what, f.string(), ec.message());
}

// The listener's TLS context for `o`: TLS 1.2 or later, the certificate
// chain and its key (which must match), and for client certificates the
// CAs that sign them (also sent to clients as the acceptable issuers).
result<std::shared_ptr<ssl::context>> make_tls_context(const tls_options& o, std::string& why) {
  if (o.certificate_file.empty() || o.key_file.empty())
    return tls_problem(why, "TLS needs a certificate file and its private key file (PEM)");
  if (o.clients != client_auth::none && o.ca_file.empty())
    return tls_problem(why,
                       "client certificates (requested or required) need the CA file that "
                       "signs them");
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  // Session resumption with client certificates needs a session id
  // context, or OpenSSL fails a resuming client's handshake (Java clients
  // resume when they reconnect).
  static constexpr unsigned char kSessionContext[] = "ferry-kafka";
  SSL_CTX_set_session_id_context(ctx->native_handle(), kSessionContext,
                                 sizeof(kSessionContext) - 1);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(o.certificate_file.string(), ec);
  if (ec) return tls_problem(why, file_problem("the certificate file", o.certificate_file, ec));
  auto mismatch = [&] {
    return tls_problem(why, fmt::format("the private key {} is not the certificate {}'s",
                                        o.key_file.string(), o.certificate_file.string()));
  };
  ctx->use_private_key_file(o.key_file.string(), ssl::context::pem, ec);
  if (ec) {
    // A key that loads on its own belongs to another certificate.
    bool loads = false;
    if (BIO* bio = BIO_new_file(o.key_file.c_str(), "r"); bio != nullptr) {
      EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
      loads = key != nullptr;
      EVP_PKEY_free(key);
      BIO_free(bio);
    }
    if (loads) return mismatch();
    return tls_problem(why, file_problem("the private key file", o.key_file, ec));
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) return mismatch();
  if (o.clients != client_auth::none) {
    ctx->load_verify_file(o.ca_file.string(), ec);
    if (ec) return tls_problem(why, file_problem("the CA file", o.ca_file, ec));
    if (auto* names = SSL_load_client_CA_file(o.ca_file.c_str()); names != nullptr)
      SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
    ctx->set_verify_mode(o.clients == client_auth::required
                             ? ssl::verify_peer | ssl::verify_fail_if_no_peer_cert
                             : ssl::verify_peer);
  }
  return ctx;
}

// What tells a changed TLS file: its contents (a few KB; a replacement
// can keep a file's size and, within a clock tick, its time). A missing
// file reads as empty, so one that reappears is noticed.
std::vector<std::string> stamps_of(const tls_options& o) {
  std::vector<std::string> out;
  for (const auto* f : {&o.certificate_file, &o.key_file, &o.ca_file}) {
    std::ifstream in(*f, std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return out;
}

// The verified peer certificate's subject CN, or "" (none, or no CN).
std::string verified_cn(SSL* ssl) {
  std::string cn;
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return cn;
  if (SSL_get_verify_result(ssl) == X509_V_OK) {
    X509_NAME* subject = X509_get_subject_name(cert);
    const int at = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
    if (at >= 0) {
      ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
      unsigned char* utf8 = nullptr;
      const int n = ASN1_STRING_to_UTF8(&utf8, data);
      if (n > 0) cn.assign(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
      OPENSSL_free(utf8);
    }
  }
  X509_free(cert);
  return cn;
}

}  // namespace

result<void> check_tls(const tls_options& o, std::string& why) {
  FERRY_TRY(auto ctx, make_tls_context(o, why));
  (void)ctx;
  return success();
}

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
  // TLS (the io thread's): the context new connections get, re-made when
  // its files change (checked at most once a second, at an accept).
  std::shared_ptr<ssl::context> tls;
  std::vector<std::string> tls_stamps;
  steady::time_point next_tls_check{};
  steady::time_point next_tls_log{};  // one failed handshake line a second

  void refresh_tls();
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
        idle_timer_(srv_.io),
        mute_timer_(srv_.io) {
    boost::system::error_code ec;
    const auto ep = sock_.remote_endpoint(ec);
    peer_ = ec ? std::string("?") : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    sock_.set_option(tcp::no_delay(true), ec);
    if (srv_.tls) {
      tls_ctx_ = srv_.tls;
      tls_ = std::make_unique<ssl::stream<tcp::socket>>(std::move(sock_), *tls_ctx_);
    }
  }

  void start() {
    if (!tls_) {
      arm_idle();
      read_size();
      return;
    }
    // The handshake must finish within request_timeout, as a request must.
    read_timer_.expires_after(srv_.opts.request_timeout);
    read_timer_.async_wait([self = shared_from_this()](boost::system::error_code e) {
      if (!e) self->close("slow");
    });
    tls_->async_handshake(
        ssl::stream_base::server,
        [self = shared_from_this()](boost::system::error_code ec) { self->on_handshake(ec); });
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
  void pause_reading(std::chrono::milliseconds d) override {
    // On the io thread (a produce charged as it arrives) at once, so the
    // very next request waits; from the core thread (a fetch) posted.
    if (srv_.io.get_executor().running_in_this_thread()) return mute_for(d);
    srv_.post([self = shared_from_this(), d] { self->mute_for(d); });
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
    mute_timer_.cancel();
    held_.reset();  // it holds this session
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
    srv_.forget(shared_from_this());
  }

 private:
  tcp::socket& socket() { return tls_ ? tls_->next_layer() : sock_; }

  // Reads exactly `b`'s size, over TLS or not.
  template <class Buffers, class Handler>
  void read_exactly(const Buffers& b, Handler&& h) {
    if (tls_)
      asio::async_read(*tls_, b, std::forward<Handler>(h));
    else
      asio::async_read(sock_, b, std::forward<Handler>(h));
  }
  template <class Buffers, class Handler>
  void write_all(const Buffers& b, Handler&& h) {
    if (tls_)
      asio::async_write(*tls_, b, std::forward<Handler>(h));
    else
      asio::async_write(sock_, b, std::forward<Handler>(h));
  }

  void on_handshake(boost::system::error_code ec) {
    read_timer_.cancel();
    if (closed_) return;
    if (ec) {
      // A client that is not TLS, does not trust ferryd's certificate, or
      // has no valid certificate of its own where one is required.
      const auto now = steady::now();
      if (now >= srv_.next_tls_log) {
        logger()->warn("Kafka client {}: TLS handshake failed: {}", peer_, ec.message());
        srv_.next_tls_log = now + std::chrono::seconds(1);
      }
      return close("tls");
    }
    encrypted = true;
    certificate_cn = verified_cn(tls_->native_handle());
    arm_idle();
    read_size();
  }

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
    if (steady::now() < muted_until_) return wait_mute();  // a quota's throttle
    read_exactly(asio::buffer(size_buf_),
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
    read_exactly(asio::buffer(body_),
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
    if (steady::now() < muted_until_) {
      // Read while a mute began (a fetch's, posted from the core thread):
      // handed over only when the mute is over.
      held_ = std::move(f);
      return wait_mute();
    }
    srv_.on_request(std::move(f));
    read_size();
  }

  void mute_for(std::chrono::milliseconds d) {
    const auto until = steady::now() + d;
    if (until > muted_until_) muted_until_ = until;
  }

  // Once the mute is over: the request held meanwhile goes, then reading
  // goes on.
  void wait_mute() {
    if (mute_armed_) return;
    mute_armed_ = true;
    mute_timer_.expires_at(muted_until_);
    mute_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      self->mute_armed_ = false;
      if (ec || self->closed_) return;
      if (steady::now() < self->muted_until_) return self->wait_mute();  // extended meanwhile
      if (self->held_) {
        auto f = std::move(*self->held_);
        self->held_.reset();
        self->srv_.on_request(std::move(f));
      }
      if (!self->paused_) self->read_size();
    });
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
    write_all(bufs, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
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
  tcp::socket sock_;                       // plaintext; moved into tls_ on a TLS listener
  std::shared_ptr<ssl::context> tls_ctx_;  // before tls_: outlives it
  std::unique_ptr<ssl::stream<tcp::socket>> tls_;
  asio::steady_timer read_timer_;
  asio::steady_timer idle_timer_;
  asio::steady_timer mute_timer_;
  steady::time_point muted_until_{};  // pause_reading()
  bool mute_armed_ = false;
  std::optional<request_frame> held_;  // read during a mute
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
        if (opts.tls) refresh_tls();
        auto s = std::make_shared<session>(shared_from_this(), std::move(sock));
        sessions.insert(s);
        if (events.accepted) events.accepted();
        s->start();
      }
    }
    accept();
  });
}

void server::impl::refresh_tls() {
  const auto now = steady::now();
  if (now < next_tls_check) return;
  next_tls_check = now + std::chrono::seconds(1);
  auto stamps = stamps_of(*opts.tls);
  if (stamps == tls_stamps) return;
  tls_stamps = std::move(stamps);
  std::string why;
  auto ctx = make_tls_context(*opts.tls, why);
  if (!ctx) {
    logger()->error("TLS files changed but do not load, the previous ones stay in use: {}", why);
    return;
  }
  tls = std::move(ctx).value();
  logger()->info("TLS certificate {} reloaded for new Kafka connections",
                 opts.tls->certificate_file.string());
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
  if (i->opts.tls) {
    auto ctx = make_tls_context(*i->opts.tls, why);
    if (!ctx) {
      logger()->error("cannot serve TLS to Kafka clients: {}", why);
      return ctx.error();
    }
    i->tls = std::move(ctx).value();
    i->tls_stamps = stamps_of(*i->opts.tls);
    i->next_tls_check = steady::now() + std::chrono::seconds(1);
  }
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
