#include "frontend.h"

#include <fmt/format.h>

#include <array>

#include "ferry/core/logging.h"

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

// Every served API but ApiVersions has a handler.
constexpr bool table_covers_apis() {
  for (const auto& a : kafka::kApis) {
    if (a.key == kafka::api_key::api_versions) continue;
    bool found = false;
    for (const auto& [k, h] : kHandlers) found = found || k == a.key;
    if (!found) return false;
  }
  return kHandlers.size() + 1 == kafka::kApis.size();
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

void kafka_request::respond(kafka::writer&& w) {
  conn->respond(seq, std::move(w).take());
}

void kafka_request::respond_nothing() {
  conn->respond_nothing(seq);
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
  logger()->info("Kafka clients: listening on {}, advertised as {}:{}", bound, node_.host,
                 node_.port);
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
  if (stopping_) return;  // the connection closes with the server
  if (api->key == kafka::api_key::fetch) q->deadline = q->received;  // set by the handler
  auto handler = find_kafka_handler(q->api);
  pipeline_.submit([handler, q = std::move(q)](round& r) mutable { handler(r, std::move(q)); });
}

}  // namespace ferry::broker
