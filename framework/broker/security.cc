#include "security.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "acl.h"
#include "ferry/broker/config.h"
#include "ferry/core/logging.h"
#include "ferry/protocol/curve.h"
#include "ferry/storage/env.h"

namespace ferry::broker {

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("security");
  return l;
}

}  // namespace

std::optional<std::vector<user>> parse_users(const std::string& text, const std::string& file,
                                             std::string& why) {
  toml::table tbl;
  try {
    tbl = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    why = fmt::format("{}:{}:{}: {}", file, e.source().begin.line, e.source().begin.column,
                      e.description());
    return std::nullopt;
  }
  std::vector<user> out;
  std::map<std::string, std::string> owner;  // key -> user
  bool ok = true;
  tbl.for_each([&](const toml::key& section, const toml::node& node) {
    if (!ok) return;
    const auto* users = node.as_table();
    if (section.str() != "users" || users == nullptr) {
      why = fmt::format("{}: unknown entry '{}'; users go in [users.NAME] tables", file,
                        section.str());
      ok = false;
      return;
    }
    users->for_each([&](const toml::key& name, const toml::node& entry) {
      if (!ok) return;
      const auto* t = entry.as_table();
      user u;
      u.name = std::string(name.str());
      const bool good_name =
          !u.name.empty() && u.name.size() <= 249 &&
          u.name.find_first_not_of(
              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
              std::string::npos;
      if (t == nullptr || !good_name) {
        why = fmt::format("{}: users.{}: a user is a table named by 1-249 of [A-Za-z0-9._-]", file,
                          u.name);
        ok = false;
        return;
      }
      t->for_each([&](const toml::key& k, const toml::node& v) {
        if (!ok) return;
        if (k.str() == "public_key" && v.is_string()) {
          u.public_key = *v.value<std::string>();
        } else if (k.str() == "scram_sha256" && v.is_string()) {
          u.scram_sha256 = *v.value<std::string>();
        } else if (k.str() == "super_user" && v.is_boolean()) {
          u.super_user = *v.value<bool>();
        } else if (k.str() == "tls_client" && v.is_boolean()) {
          u.tls_client = *v.value<bool>();
        } else if ((k.str() == "produce_bytes_per_second" || k.str() == "fetch_bytes_per_second" ||
                    k.str() == "in_flight_bytes") &&
                   v.is_integer() && *v.value<std::int64_t>() >= 0) {
          const auto n = *v.value<std::int64_t>();
          (k.str() == "produce_bytes_per_second" ? u.produce_bytes_per_second
           : k.str() == "fetch_bytes_per_second" ? u.fetch_bytes_per_second
                                                 : u.in_flight_bytes) = n;
        } else {
          why = fmt::format(
              "{}: users.{}.{}: unknown or of the wrong type (public_key and scram_sha256 are "
              "strings, super_user and tls_client true or false, produce_bytes_per_second, "
              "fetch_bytes_per_second and in_flight_bytes whole numbers, 0 for no limit)",
              file, u.name, k.str());
          ok = false;
        }
      });
      if (!ok) return;
      if (u.public_key.empty() && u.scram_sha256.empty() && !u.tls_client) {
        why = fmt::format(
            "{}: users.{} has neither public_key (ferry keys generate) nor scram_sha256 (ferry "
            "users hash-password) nor tls_client = true (a client certificate): it could not log "
            "in",
            file, u.name);
        ok = false;
        return;
      }
      if (!u.scram_sha256.empty()) {
        std::string bad;
        if (!protocol::scram::parse(u.scram_sha256, bad)) {
          why = fmt::format("{}: users.{}.scram_sha256: {}", file, u.name, bad);
          ok = false;
          return;
        }
      }
      if (u.public_key.empty()) {
        out.push_back(std::move(u));
        return;
      }
      if (!protocol::valid_z85_key(u.public_key)) {
        why = fmt::format(
            "{}: users.{}.public_key must be 40 characters of Z85 (the public_key "
            "line of NAME.pub from `ferry keys generate NAME`)",
            file, u.name);
        ok = false;
        return;
      }
      if (auto [it, fresh] = owner.emplace(u.public_key, u.name); !fresh) {
        why = fmt::format("{}: users {} and {} have the same public_key; each needs its own", file,
                          it->second, u.name);
        ok = false;
        return;
      }
      out.push_back(std::move(u));
    });
  });
  if (!ok) return std::nullopt;
  return out;
}

user_directory::user_directory(std::filesystem::path file) : file_(std::move(file)) {}

std::optional<user_directory::snapshot> user_directory::read(std::string& why) const {
  std::ifstream in(file_);
  if (!in) {
    why = fmt::format("cannot read the users file {}: {}", file_.string(), std::strerror(errno));
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  snapshot snap;
  snap.text = text.str();
  auto users = parse_users(snap.text, file_.string(), why);
  if (!users) return std::nullopt;
  for (auto& u : *users) {
    snap.super_by_name[u.name] = u.super_user;
    if (u.tls_client) snap.tls_clients.insert(u.name);
    if (u.produce_bytes_per_second || u.fetch_bytes_per_second || u.in_flight_bytes)
      snap.with_quotas[u.name] = u;
    if (!u.scram_sha256.empty()) {
      std::string ignored;  // parse_users checked it
      snap.scram_by_name[u.name] = *protocol::scram::parse(u.scram_sha256, ignored);
    }
    if (u.public_key.empty()) continue;
    auto key = u.public_key;
    snap.by_key.emplace(std::move(key), std::move(u));
  }
  return snap;
}

result<void> user_directory::load(std::string& why) {
  unique_lock serial(load_mu_);
  auto snap = read(why);
  if (!snap) return std::make_error_code(std::errc::invalid_argument);
  unique_lock lock(mu_);
  current_ = std::make_shared<const snapshot>(std::move(*snap));
  return success();
}

void user_directory::refresh() {
  unique_lock serial(load_mu_);
  std::string why;
  auto snap = read(why);
  if (!snap) {
    // Keep serving the last good users: an edit in progress (or a file
    // moved away) must neither lock everyone out nor let anyone in.
    if (why != last_problem_)
      logger()->error("users file not reloaded, the previous users stay in force: {}", why);
    last_problem_ = why;
    return;
  }
  last_problem_.clear();
  std::size_t n = 0;
  {
    unique_lock lock(mu_);
    if (current_ && current_->text == snap->text) return;
    n = snap->super_by_name.size();
    current_ = std::make_shared<const snapshot>(std::move(*snap));
  }
  logger()->info("users file {} reloaded: {} user(s)", file_.string(), n);
}

std::optional<user> user_directory::by_key(const std::string& z85) const {
  unique_lock lock(mu_);
  if (!current_) return std::nullopt;
  auto it = current_->by_key.find(z85);
  if (it == current_->by_key.end()) return std::nullopt;
  return it->second;
}

quota_limits user_directory::quotas_of(std::string_view name, const quota_limits& defaults) const {
  quota_limits l = defaults;
  unique_lock lock(mu_);
  if (!current_) return l;
  auto it = current_->with_quotas.find(name);
  if (it == current_->with_quotas.end()) return l;
  const auto& u = it->second;
  if (u.produce_bytes_per_second) l.produce_bytes_per_second = *u.produce_bytes_per_second;
  if (u.fetch_bytes_per_second) l.fetch_bytes_per_second = *u.fetch_bytes_per_second;
  if (u.in_flight_bytes) l.in_flight_bytes = *u.in_flight_bytes;
  return l;
}

bool user_directory::takes_certificate(std::string_view name) const {
  unique_lock lock(mu_);
  return current_ && current_->tls_clients.contains(name);
}

bool user_directory::holds(std::string_view user_id) const {
  const auto colon = user_id.find(':');
  if (colon == std::string_view::npos) return false;
  const auto name = user_id.substr(0, colon);
  const auto key = user_id.substr(colon + 1);
  unique_lock lock(mu_);
  if (!current_) return false;
  auto it = current_->by_key.find(key);
  return it != current_->by_key.end() && it->second.name == name;
}

bool user_directory::is_super(std::string_view name) const {
  unique_lock lock(mu_);
  if (!current_) return false;
  auto it = current_->super_by_name.find(name);
  return it != current_->super_by_name.end() && it->second;
}

std::optional<protocol::scram::credential> user_directory::scram_of(std::string_view name) const {
  unique_lock lock(mu_);
  if (!current_) return std::nullopt;
  auto it = current_->scram_by_name.find(name);
  if (it == current_->scram_by_name.end()) return std::nullopt;
  return it->second;
}

// RFC 27 request, after the REP envelope: version, request id, domain,
// address, routing id, mechanism, credentials...
zap_decision decide_zap(std::span<const std::string> frames, const user_directory& users) {
  zap_decision d;
  if (frames.size() >= 2) d.request_id = frames[1];
  if (frames.size() >= 4) d.address = frames[3];
  if (frames.size() < 6 || frames[0] != "1.0") {
    d.status = "500";
    d.text = "malformed ZAP request";
    return d;
  }
  const auto& mechanism = frames[5];
  if (mechanism != "CURVE") {
    d.text = "only CURVE is accepted";
    return d;
  }
  if (frames.size() != 7 || frames[6].size() != 32) {
    d.status = "500";
    d.text = "malformed CURVE credentials";
    return d;
  }
  const auto key = protocol::z85_of_key(frames[6]);
  auto u = users.by_key(key);
  if (!u) {
    d.text = "unknown key";
    return d;
  }
  d.status = "200";
  d.text = "OK";
  d.user_id = u->name + ":" + key;
  return d;
}

kafka::tls_options kafka_tls_of(const security_config& s) {
  kafka::tls_options o;
  o.certificate_file = s.kafka_tls_cert_file;
  o.key_file = s.kafka_tls_key_file;
  o.ca_file = s.kafka_tls_ca_file;
  o.clients = s.kafka_tls_client_auth == "required"    ? kafka::client_auth::required
              : s.kafka_tls_client_auth == "requested" ? kafka::client_auth::requested
                                                       : kafka::client_auth::none;
  return o;
}

result<void> check_security_files(const broker_config& c, std::string& error) {
  std::string why;
  if (c.security.kafka_tls()) {
    if (auto r = kafka::check_tls(kafka_tls_of(c.security), why); !r) {
      error = "security.kafka_tls: " + why;
      return r.error();
    }
  }
  if (!c.security.enabled) return success();
  if (auto k = protocol::read_key_file(c.security.server_key_file, why); !k) {
    error = "security.server_key_file: " + why;
    return k.error();
  }
  user_directory users(c.security.users_file);
  if (auto r = users.load(why); !r) {
    error = "security.users_file: " + why;
    return r.error();
  }
  acl_store acls(storage::posix_env(), acl_file_of(c));
  if (auto r = acls.load(why); !r) {
    error = "security.acl_file: " + why;
    return r.error();
  }
  return success();
}

zap_handler::zap_handler(zmq::context_t& ctx, user_directory& users, broker_metrics& stats)
    : ctx_(ctx), users_(users), stats_(stats) {}

zap_handler::~zap_handler() {
  stop();
}

result<void> zap_handler::start() {
  try {
    zmq::socket_t s(ctx_, zmq::socket_type::rep);
    s.set(zmq::sockopt::linger, 0);
    s.bind("inproc://zeromq.zap.01");
    thread_ = std::thread([this, sock = std::move(s)]() mutable { loop(std::move(sock)); });
  } catch (const zmq::error_t& e) {
    return std::error_code(e.num(), std::generic_category());
  }
  return success();
}

void zap_handler::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void zap_handler::loop(zmq::socket_t s) {
  auto refused_log_at = std::chrono::steady_clock::time_point{};
  std::uint64_t unlogged = 0;
  while (!stop_) {
    try {
      zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) == 0) continue;
      std::vector<std::string> frames;
      for (bool more = true; more;) {
        zmq::message_t m;
        if (!s.recv(m)) break;
        frames.emplace_back(static_cast<const char*>(m.data()), m.size());
        more = m.more();
      }
      zap_decision d;
      try {
        users_.refresh();
        d = decide_zap(frames, users_);
      } catch (const std::exception& e) {
        // Refuse (never admit) what could not be decided.
        d = {};
        if (frames.size() >= 2) d.request_id = frames[1];
        d.status = "500";
        d.text = "internal error";
        logger()->error("ZAP handler: {}", e.what());
      }
      if (d.status != "200") {
        stats_.auth_failures.with({"unknown_key"}).inc();
        const auto now = std::chrono::steady_clock::now();
        if (now >= refused_log_at) {
          logger()->warn("refused a connection from {}: {}{}", d.address, d.text,
                         unlogged > 0 ? fmt::format(" ({} more since the last such line)", unlogged)
                                      : std::string());
          unlogged = 0;
          refused_log_at = now + std::chrono::seconds(1);
        } else {
          ++unlogged;
        }
      }
      const std::string reply[] = {"1.0", d.request_id, d.status, d.text, d.user_id, ""};
      for (std::size_t i = 0; i < std::size(reply); ++i)
        s.send(zmq::buffer(reply[i]),
               i + 1 < std::size(reply) ? zmq::send_flags::sndmore : zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      // A REP socket left between a request and its reply would stall every
      // later handshake: start over with a fresh one (still bound first).
      logger()->error("ZAP handler: {}; restarting its socket", e.what());
      try {
        s.close();
        s = zmq::socket_t(ctx_, zmq::socket_type::rep);
        s.set(zmq::sockopt::linger, 0);
        s.bind("inproc://zeromq.zap.01");
      } catch (const zmq::error_t& again) {
        // Without a handler libzmq would admit any key: stop the process
        // rather than serve unauthenticated clients.
        logger()->critical("ZAP handler cannot restart ({}): stopping to stay closed",
                           again.what());
        std::abort();
      }
    }
  }
}

}  // namespace ferry::broker
