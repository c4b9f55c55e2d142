#include "frontend.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "../core.h"
#include "../security.h"
#include "ferry/core/logging.h"
#include "ferry/protocol/scram.h"

namespace ferry::broker {

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("kafka");
  return l;
}

// The handler of each Kafka API ferryd serves through the pipeline
// (ApiVersions is answered by the front-end itself).
constexpr std::array<std::pair<kafka::api_key, kafka_handler>, 20> kHandlers = {{
    {kafka::api_key::produce, &kafka_produce},
    {kafka::api_key::fetch, &kafka_fetch},
    {kafka::api_key::list_offsets, &kafka_list_offsets},
    {kafka::api_key::metadata, &kafka_metadata},
    {kafka::api_key::offset_commit, &kafka_offset_commit},
    {kafka::api_key::offset_fetch, &kafka_offset_fetch},
    {kafka::api_key::find_coordinator, &kafka_find_coordinator},
    {kafka::api_key::join_group, &kafka_join_group},
    {kafka::api_key::heartbeat, &kafka_heartbeat},
    {kafka::api_key::leave_group, &kafka_leave_group},
    {kafka::api_key::sync_group, &kafka_sync_group},
    {kafka::api_key::describe_groups, &kafka_describe_groups},
    {kafka::api_key::list_groups, &kafka_list_groups},
    {kafka::api_key::delete_groups, &kafka_delete_groups},
    {kafka::api_key::create_topics, &kafka_create_topics},
    {kafka::api_key::delete_topics, &kafka_delete_topics},
    {kafka::api_key::init_producer_id, &kafka_init_producer_id},
    {kafka::api_key::describe_configs, &kafka_describe_configs},
    {kafka::api_key::alter_configs, &kafka_alter_configs},
    {kafka::api_key::create_partitions, &kafka_create_partitions},
}};

// Answered by the front-end on the server's thread: ApiVersions and SASL.
constexpr bool answered_here(kafka::api_key k) {
  return k == kafka::api_key::api_versions || k == kafka::api_key::sasl_handshake ||
         k == kafka::api_key::sasl_authenticate;
}

// Every served API but those has a handler.
constexpr bool table_covers_apis() {
  for (const auto& a : kafka::kApis) {
    if (answered_here(a.key)) continue;
    bool found = false;
    for (const auto& [k, h] : kHandlers) found = found || k == a.key;
    if (!found) return false;
  }
  return kHandlers.size() + 3 == kafka::kApis.size();
}
static_assert(table_covers_apis(), "every API of kafka::kApis needs a handler");

// ApiVersions, answered on the server's thread: every API and the versions
// served. v3 is flexible (compact array, tagged fields); its response
// header is still v0, as for every ApiVersions version (KIP-511).
std::vector<std::vector<std::byte>> api_versions(std::int32_t correlation_id, std::int16_t version,
                                                 kafka::error err) {
  kafka::writer w;
  w.i32(correlation_id);
  w.i16(kafka::code(err));
  const bool flexible = version >= 3;
  if (flexible)
    w.compact_array(static_cast<std::int32_t>(kafka::kApis.size()));
  else
    w.array(static_cast<std::int32_t>(kafka::kApis.size()));
  for (const auto& a : kafka::kApis) {
    w.i16(static_cast<std::int16_t>(a.key));
    w.i16(a.min_version);
    w.i16(a.max_version);
    if (flexible) w.tagged_fields();
  }
  if (version >= 1) w.i32(0);  // throttle time
  if (flexible) w.tagged_fields();
  return std::move(w).take();
}

}  // namespace

bool kafka_sees(broker_core& c, const kafka_request& q, acl_resource resource,
                std::string_view name, acl_op op) {
  if (!c.access) return true;
  return c.access->check(q.principal, resource, name, op).allowed;
}

bool kafka_may(broker_core& c, const kafka_request& q, acl_resource resource, std::string_view name,
               acl_op op) {
  if (kafka_sees(c, q, resource, name, op)) return true;
  c.stats.authz_failures
      .with({std::string(protocol::to_string(resource)), std::string(protocol::to_string(op))})
      .inc();
  return false;
}

void kafka_audit(broker_core& c, const kafka_request& q, std::string_view action,
                 nlohmann::json target, wire::ErrorCode error, std::string_view message) {
  if (!c.audit) return;
  target["listener"] = "kafka";
  c.audit->record(q.principal, q.conn->peer(), action, target, error, message);
}

kafka_handler find_kafka_handler(std::int16_t api) noexcept {
  for (const auto& [k, h] : kHandlers)
    if (static_cast<std::int16_t>(k) == api) return h;
  return nullptr;
}

std::unique_ptr<kafka_request> decode_kafka_request(kafka::request_frame&& f) {
  auto q = std::make_unique<kafka_request>();
  kafka::reader in(f.bytes);
  q->api = in.i16();
  q->version = in.i16();
  q->correlation_id = in.i32();
  const auto client = in.nullable_string();  // non-compact even in header v2
  if (kafka::flexible(q->api, q->version)) in.tagged_fields();
  if (!in.ok()) return nullptr;
  if (client) q->client_id = std::string(*client);
  q->conn = std::move(f.from);
  q->seq = f.seq;
  q->received = f.received;
  q->body_at = f.bytes.size() - in.remaining();
  q->frame = std::move(f.bytes);
  return q;
}

namespace {

// A throttled answer: counted, and the connection muted that long.
void throttle(const kafka_request& q) {
  if (q.throttle_ms <= 0) return;
  q.conn->pause_reading(std::chrono::milliseconds(q.throttle_ms));
  if (q.frontend != nullptr)
    q.frontend->stats()
        .throttled
        .with({std::string(quota_principal(q.principal)),
               q.api == static_cast<std::int16_t>(kafka::api_key::fetch) ? "fetch" : "produce"})
        .inc(static_cast<std::uint64_t>(q.throttle_ms));
}

}  // namespace

void kafka_request::respond(kafka::writer&& w) {
  conn->respond(seq, std::move(w).take());
  throttle(*this);
}

void kafka_request::respond_nothing() {
  conn->respond_nothing(seq);
  throttle(*this);
}

void kafka_request::malformed(const char* why) {
  logger()->warn("closing the Kafka connection from {}: {} request v{} is malformed ({})",
                 conn->peer(), kafka::find_api(api) ? kafka::find_api(api)->name : "an unknown",
                 version, why);
  conn->close_after(seq);
}

kafka_frontend::kafka_frontend(const broker_config& cfg, broker_metrics& stats, pipeline& p,
                               std::string cluster_id)
    : cfg_(cfg),
      stats_(stats),
      pipeline_(p),
      cluster_id_(std::move(cluster_id)),
      closed_(stats.reg.counter_family(
          "ferry_kafka_connections_closed_total",
          "Kafka connections the broker closed, by reason: oversized (a request above "
          "network.max_request_bytes), slow (a request not complete within 30 s), idle "
          "(network.kafka_idle_ms without a request), malformed, too_many_connections",
          {"reason"})) {}

kafka_frontend::~kafka_frontend() {
  stop();
}

result<std::string> kafka_frontend::start() {
  kafka::server_options o;
  o.listen = cfg_.kafka_listen;
  o.max_request_bytes = static_cast<std::size_t>(cfg_.kafka_max_request_bytes);
  o.idle_timeout = cfg_.kafka_idle_timeout;
  if (users_ != nullptr) o.max_unauthenticated_request_bytes = 512 * 1024;
  if (cfg_.security.kafka_tls()) o.tls = kafka_tls_of(cfg_.security);
  kafka::server_events ev;
  ev.accepted = [this] {
    stats_.connections.add(1);
    stats_.connections_accepted.inc();
  };
  ev.closed = [this] { stats_.connections.add(-1); };
  ev.refused = [this](const char* why) { closed_.with({why}).inc(); };
  FERRY_TRY(auto s, kafka::server::start(
                        std::move(o), [this](kafka::request_frame f) { on_request(std::move(f)); },
                        std::move(ev)));
  server_ = std::move(s);
  const auto bound = server_->address();
  // What clients are told to connect to.
  std::string adv = cfg_.kafka_advertised.empty() ? bound : cfg_.kafka_advertised;
  const auto colon = adv.rfind(':');
  node_.host = adv.substr(0, colon);
  if (node_.host.size() >= 2 && node_.host.front() == '[')
    node_.host = node_.host.substr(1, node_.host.size() - 2);
  if (node_.host == "0.0.0.0" || node_.host == "::") node_.host = "127.0.0.1";
  node_.port = std::stoi(adv.substr(colon + 1));
  node_.id = 0;
  logger()->info("Kafka clients: listening on {}{}, advertised as {}:{}", bound,
                 !cfg_.security.kafka_tls()                      ? ""
                 : cfg_.security.kafka_tls_client_auth == "none" ? " (TLS)"
                                                                 : " (TLS, client certificates)",
                 node_.host, node_.port);
  return bound;
}

void kafka_frontend::stop() {
  stopping_ = true;
  if (server_) server_->stop();
}

void kafka_frontend::count(std::int16_t api) {
  const auto* a = kafka::find_api(api);
  stats_.requests.with({a ? fmt::format("kafka.{}", a->name) : std::string("kafka.unknown")}).inc();
}

// The server's thread: the header, then ApiVersions here, the rest to the pipeline.
void kafka_frontend::on_request(kafka::request_frame f) {
  auto from = f.from;
  const auto seq = f.seq;
  auto q = decode_kafka_request(std::move(f));
  if (!q) {
    closed_.with({"malformed"}).inc();
    from->close_after(seq);
    return;
  }
  count(q->api);
  q->frontend = this;
  const auto* api = kafka::find_api(q->api);
  if (api != nullptr && api->key == kafka::api_key::api_versions) {
    // KIP-511: an unknown version is answered in v0 with the versions served.
    const bool known = q->version <= api->max_version;
    q->conn->respond(q->seq,
                     api_versions(q->correlation_id, known ? q->version : 0,
                                  known ? kafka::error::none : kafka::error::unsupported_version));
    return;
  }
  if (api == nullptr || q->version < api->min_version || q->version > api->max_version) {
    // A client that did not negotiate (ApiVersions tells what is served):
    // the error code where most responses start; the client closes.
    logger()->warn("{} asked for API {} v{}, which ferryd does not serve (see docs/kafka.md)",
                   q->conn->peer(), q->api, q->version);
    kafka::writer w = q->response();
    w.i16(kafka::code(kafka::error::unsupported_version));
    q->respond(std::move(w));
    return;
  }
  if (api->key == kafka::api_key::sasl_handshake || api->key == kafka::api_key::sasl_authenticate) {
    on_sasl(*q);
    return;
  }
  if (users_ != nullptr && !admitted(*q)) return;
  if (stopping_) return;  // the connection closes with the server
  if (quotas_ != nullptr) {
    const auto who = quota_principal(q->principal);
    const auto bytes = static_cast<std::int64_t>(q->frame.size());
    if (!quotas_->begin(who, bytes)) {
      // Read already, so counted all the same; the connection is not read
      // further for a while (a Kafka client has no retriable error here).
      stats_.quota_refusals.with({std::string(who), "in_flight_bytes"}).inc();
      quotas_->add(who, bytes);
      q->conn->pause_reading(std::chrono::milliseconds(20));
    }
    q->in_flight = quota_ticket(quotas_, std::string(who), bytes);
    if (api->key == kafka::api_key::produce) {
      q->throttle_ms =
          static_cast<std::int32_t>(quotas_->charge(who, quota_kind::produce, bytes).count());
      // Nothing more is read from this connection until the wait is over
      // (answered at once, as Kafka does; respond() says how long).
      if (q->throttle_ms > 0) q->conn->pause_reading(std::chrono::milliseconds(q->throttle_ms));
    }
  }
  if (api->key == kafka::api_key::fetch) q->deadline = q->received;  // set by the handler
  auto handler = find_kafka_handler(q->api);
  pipeline_.submit([handler, q = std::move(q)](round& r) mutable { handler(r, std::move(q)); });
}

// --- SASL (docs/security.md#kafka-clients) --------------------------------
// With security on, a connection must authenticate before any request but
// ApiVersions: with a client certificate (mTLS) whose CN names a user with
// tls_client = true, or with SaslHandshake v1 then SaslAuthenticate -
// SCRAM-SHA-256's two rounds, or PLAIN's one, which is served only over TLS
// since it sends the password as it is. Anything else first closes the
// connection, as Kafka brokers do. The exchange runs here on the server's
// thread: it needs only the users file.

namespace {

// Client-chosen text for a log line: at most 64 characters, anything but
// [A-Za-z0-9._-] shown as '?'.
std::string printable(std::string_view s) {
  std::string out(s.substr(0, 64));
  for (auto& ch : out)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-'))
      ch = '?';
  return out;
}

}  // namespace

struct kafka_frontend::sasl_session {
  bool failed = false;    // refused: the connection is closing, nothing more is served
  std::string mechanism;  // chosen by SaslHandshake; empty before
  std::unique_ptr<protocol::scram::server_exchange> exchange;
  std::string principal;        // once authenticated
  std::string stored_key;       // the credential it authenticated with (SASL)
  bool by_certificate = false;  // the principal is the client certificate's CN
};

kafka_frontend::sasl_session& kafka_frontend::session_of(kafka::connection& c) {
  if (!c.session) c.session = std::make_shared<sasl_session>();
  return *static_cast<sasl_session*>(c.session.get());
}

void kafka_frontend::refuse_auth(kafka_request& q, const char* reason, const std::string& why) {
  stats_.auth_failures.with({reason}).inc();
  const auto now = steady::now();
  if (now >= next_auth_log_) {
    logger()->warn("Kafka client {} ({}): authentication failed: {}", q.conn->peer(), q.client_id,
                   why);
    next_auth_log_ = now + std::chrono::seconds(1);
  }
}

void kafka_frontend::on_sasl(kafka_request& q) {
  auto& s = session_of(*q.conn);
  if (s.failed) {  // closing after a refusal
    q.conn->close_after(q.seq);
    return;
  }
  auto in = q.body();
  kafka::writer w = q.response();
  // The mechanisms this listener enables: SCRAM-SHA-256 with security on,
  // and PLAIN too when it is TLS; none without security (the listener
  // takes clients without SASL then).
  std::vector<std::string_view> enabled;
  if (users_ != nullptr) {
    enabled.push_back(protocol::scram::kMechanism);
    if (cfg_.security.kafka_tls()) enabled.push_back(protocol::scram::kPlainMechanism);
  }
  if (q.api == static_cast<std::int16_t>(kafka::api_key::sasl_handshake)) {
    const auto mechanism = in.string();
    if (!in.ok()) return q.malformed("bad SaslHandshake");
    const bool again = !s.mechanism.empty() || (!s.principal.empty() && !s.by_certificate);
    const bool known = std::find(enabled.begin(), enabled.end(), mechanism) != enabled.end();
    const bool plain_in_clear = mechanism == protocol::scram::kPlainMechanism && !q.conn->encrypted;
    const bool ok = users_ != nullptr && !again && known && !plain_in_clear && q.version >= 1;
    w.i16(kafka::code(ok      ? kafka::error::none
                      : again ? kafka::error::illegal_sasl_state
                              : kafka::error::unsupported_sasl_mechanism));
    w.array(static_cast<std::int32_t>(enabled.size()));
    for (auto m : enabled) w.string(m);
    if (ok) {
      s.mechanism = mechanism;
      if (mechanism == protocol::scram::kMechanism)
        s.exchange = std::make_unique<protocol::scram::server_exchange>(
            [users = users_](const std::string& name) { return users->scram_of(name); });
      q.respond(std::move(w));
      return;
    }
    if (users_ != nullptr)
      refuse_auth(q, "sasl",
                  q.version < 1 ? std::string("SaslHandshake v0 (raw SASL frames) is not served")
                  : again       ? std::string("a second SaslHandshake on one connection")
                  : plain_in_clear
                      ? std::string("SASL/PLAIN sends the password as it is and is served only "
                                    "over TLS; use SCRAM-SHA-256")
                      : fmt::format("SaslHandshake with mechanism '{}' (this listener takes {})",
                                    printable(mechanism), fmt::join(enabled, ", ")));
    s.failed = true;
    q.conn->respond_then_close(q.seq, std::move(w).take());
    return;
  }
  // SaslAuthenticate v0-1: auth_bytes in, error, message, auth_bytes out
  // (and, v1, the session lifetime: 0, no re-authentication asked).
  const auto bytes = in.bytes();
  if (!in.ok()) return q.malformed("bad SaslAuthenticate");
  const std::string_view message(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  std::string why;
  std::string reply;
  bool ok = false;
  auto admit = [&](std::string user, std::string stored_key) {
    s.principal = std::move(user);
    s.stored_key = std::move(stored_key);
    s.by_certificate = false;
    q.conn->authenticated = true;
    logger()->debug("Kafka client {} ({}) authenticated as {} ({})", q.conn->peer(), q.client_id,
                    s.principal, s.mechanism);
  };
  if (s.mechanism == protocol::scram::kPlainMechanism) {
    if (auto login = protocol::scram::parse_plain(message, why)) {
      auto cred = users_->scram_of(login->user);
      // An unknown user costs the same derivation as a known one.
      static const auto unknown = protocol::scram::make_credential(
          "unknown", protocol::scram::kDefaultIterations, "unknown-user-salt");
      const auto& check = cred ? *cred : unknown;
      ok = protocol::scram::verify_password(check, login->password) && cred.has_value();
      if (ok)
        admit(login->user, cred->stored_key);
      else
        why = fmt::format("wrong password or unknown user '{}' (PLAIN)", printable(login->user));
    }
  } else if (!s.exchange) {
    why = "SaslAuthenticate before SaslHandshake";
  } else {
    auto step = s.exchange->next(message);
    ok = step.ok;
    reply = std::move(step.reply);
    why = std::move(step.why);
    if (ok && s.exchange->where() == protocol::scram::server_exchange::state::done) {
      admit(s.exchange->user(), s.exchange->used().stored_key);
      s.exchange.reset();
    }
  }
  w.i16(kafka::code(ok ? kafka::error::none : kafka::error::sasl_authentication_failed));
  if (ok)
    w.nullable_string(std::nullopt);
  else
    w.nullable_string(fmt::format(
        "Authentication failed during authentication due to invalid credentials with SASL "
        "mechanism {}",
        s.mechanism.empty() ? std::string(protocol::scram::kMechanism) : s.mechanism));
  w.bytes(std::span(reinterpret_cast<const std::byte*>(reply.data()), ok ? reply.size() : 0));
  if (since(q, 1)) w.i64(0);
  if (ok) {
    q.respond(std::move(w));
    return;
  }
  refuse_auth(q, "sasl", why);
  s.failed = true;
  q.conn->respond_then_close(q.seq, std::move(w).take());
}

bool kafka_frontend::admitted(kafka_request& q) {
  auto& s = session_of(*q.conn);
  if (s.failed) {
    q.conn->close_after(q.seq);
    return false;
  }
  if (s.principal.empty() && !q.conn->certificate_cn.empty() && s.mechanism.empty()) {
    // mTLS: a verified certificate whose CN is a user that takes one.
    if (!users_->takes_certificate(q.conn->certificate_cn)) users_->refresh();
    if (users_->takes_certificate(q.conn->certificate_cn)) {
      s.principal = q.conn->certificate_cn;
      s.by_certificate = true;
      q.conn->authenticated = true;
      logger()->debug("Kafka client {} ({}) authenticated as {} (client certificate)",
                      q.conn->peer(), q.client_id, s.principal);
    }
  }
  if (s.principal.empty()) {
    // Kafka closes a connection that skips SASL: nothing is served to it.
    refuse_auth(
        q, !q.conn->certificate_cn.empty() ? "certificate" : "sasl",
        !q.conn->certificate_cn.empty()
            ? fmt::format("{} request with a client certificate for '{}', who is not a user with "
                          "tls_client = true in the users file, and no SASL",
                          kafka::find_api(q.api)->name, printable(q.conn->certificate_cn))
            : fmt::format("{} request before SASL authentication", kafka::find_api(q.api)->name));
    s.failed = true;
    q.conn->close_after(q.seq);
    return false;
  }
  // Still the user's credential? (A user removed from the users file, or
  // given a new password, is refused from the next request.)
  auto still = [&] {
    if (s.by_certificate) return users_->takes_certificate(s.principal);
    auto cred = users_->scram_of(s.principal);
    return cred && cred->stored_key == s.stored_key;
  };
  if (!still()) {
    users_->refresh();
    if (!still()) {
      refuse_auth(q, "revoked",
                  s.by_certificate
                      ? fmt::format("user {} was removed from the users file or no longer has "
                                    "tls_client = true",
                                    s.principal)
                      : fmt::format("user {} was removed from the users file or has a new "
                                    "password",
                                    s.principal));
      s.failed = true;
      q.conn->close_after(q.seq);
      return false;
    }
  }
  q.principal = s.principal;
  return true;
}

}  // namespace ferry::broker
