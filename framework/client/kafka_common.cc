#include "kafka_common.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>

#include "ferry/client/errc.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/protocol/errc.h"
#include "transport.h"

namespace ferry::client::kafka {

namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "kafka"; }
  std::string message(int ev) const override {
    return rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(ev));
  }
};

void log_line(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  static const auto logger = log::get("kafka");
  // syslog levels. librdkafka's errors are mostly a broker it cannot reach
  // (and retries): a warning for a client, not an error.
  const auto lvl = level <= 4   ? spdlog::level::warn
                   : level <= 6 ? spdlog::level::info
                                : spdlog::level::debug;
  logger->log(lvl, "{} {}: {}", rd_kafka_name(rk), fac, buf);
}

}  // namespace

const std::error_category& kafka_category() noexcept {
  static const category c;
  return c;
}

std::error_code from_kafka(rd_kafka_resp_err_t err) noexcept {
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return {};
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
      return errc::unknown_topic;
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return errc::unknown_partition;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
      return errc::record_too_large;
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
      return errc::offset_out_of_range;
    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
      return errc::topic_already_exists;
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
      return errc::invalid_config;
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
      return errc::invalid_topic_name;
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR__BAD_MSG:
      return errc::corrupt_data;
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
      return errc::rebalance_in_progress;
    case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
      return errc::unknown_member;
    case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
      return errc::stale_generation;
    case RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP:
      return errc::group_not_empty;
    case RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND:
      return errc::unknown_group;
    case RD_KAFKA_RESP_ERR_INVALID_GROUP_ID:
      return errc::invalid_group_name;
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR__FENCED:
      return errc::producer_fenced;
    case RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
      return errc::out_of_order_sequence;
    case RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID:
      return errc::invalid_producer;
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
      return errc::unsupported_version;
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
      return errc::authentication_failed;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
      return errc::not_authorized;
    case RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID:
      return errc::fenced_instance_id;
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
      return protocol::errc::timed_out;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
      return protocol::errc::disconnected;
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY:
      return ferry::errc::shutting_down;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      return ferry::errc::timed_out;
    case RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED:
      return errc::unknown_member;  // left the group; rejoins at the next poll
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
      return ferry::errc::invalid_argument;
    default:
      return {static_cast<int>(err), kafka_category()};
  }
}

bool is_retriable_kafka(int value) noexcept {
  switch (static_cast<rd_kafka_resp_err_t>(value)) {
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR__IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__NODE_UPDATE:
      return true;
    default:
      return false;
  }
}

result<std::string> bootstrap_servers(std::string_view url, std::string* why) {
  constexpr std::string_view scheme = "kafka://";
  if (!url.starts_with(scheme)) {
    *why = fmt::format("'{}' is not a kafka:// URL", url);
    return ferry::errc::invalid_argument;
  }
  std::string_view rest = url.substr(scheme.size());
  if (rest.empty()) {
    *why = "kafka:// needs HOST:PORT[,HOST:PORT...]";
    return ferry::errc::invalid_argument;
  }
  std::string out;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const auto one = rest.substr(0, comma);
    const auto colon = one.rfind(':');
    const auto port = colon == std::string_view::npos ? std::string_view{} : one.substr(colon + 1);
    if (colon == 0 || port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      *why =
          fmt::format("'{}' in {} is not HOST:PORT (kafka://HOST:PORT[,HOST:PORT...])", one, url);
      return ferry::errc::invalid_argument;
    }
    if (!out.empty()) out += ',';
    out += one;
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

void handle_deleter::operator()(rd_kafka_t* rk) const noexcept {
  rd_kafka_destroy(rk);
}

result<handle> make_handle(rd_kafka_type_t type, const client_options& o, const settings& ours,
                           std::string* why, void (*configure)(rd_kafka_conf_t*, void*),
                           void* opaque) {
  FERRY_TRY(auto servers, bootstrap_servers(o.broker, why));
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  auto set = [&](const std::string& k, const std::string& v, const char* whose) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) == RD_KAFKA_CONF_OK)
      return true;
    *why = fmt::format("{} Kafka property {}={}: {}", whose, k, v, err);
    return false;
  };
  settings base = {
      {"bootstrap.servers", servers},
      {"socket.timeout.ms",
       std::to_string(std::clamp<std::int64_t>(o.request_timeout.count(), 10, 300'000))},
      // ferryd and Kafka close idle connections; librdkafka reconnects.
      {"log.connection.close", "false"},
  };
  // No topic is created by looking it up (a producer's metadata requests
  // would otherwise ask for it): a mistyped topic is an error, and Ferry's
  // own topics get Ferry's settings.
  if (type == RD_KAFKA_PRODUCER || type == RD_KAFKA_CONSUMER)
    base.emplace_back("allow.auto.create.topics", "false");
  bool ok = true;
  for (const auto& [k, v] : base) ok = ok && set(k, v, "Ferry's");
  for (const auto& [k, v] : ours) ok = ok && set(k, v, "Ferry's");
  for (const auto& [k, v] : o.kafka) ok = ok && set(k, v, "the");
  // What Ferry's guarantees rest on is Ferry's to set: applied again over
  // the caller's properties (SASL, TLS and tuning stay theirs).
  static constexpr std::string_view kFixed[] = {
      "acks",           "enable.idempotence",       "enable.auto.commit",
      "group.id",       "enable.auto.offset.store", "auto.offset.reset",
      "partitioner",    "allow.auto.create.topics", "enable.partition.eof",
      "isolation.level"};
  for (const auto& [k, v] : ours) {
    if (std::find(std::begin(kFixed), std::end(kFixed), k) == std::end(kFixed)) continue;
    if (auto it = o.kafka.find(k); it != o.kafka.end() && it->second != v)
      log::get("client")->warn(
          "Kafka property {}={} ignored: Ferry sets {}={} (its delivery and idempotency "
          "guarantees rest on it)",
          k, it->second, k, v);
    ok = ok && set(k, v, "Ferry's");
  }
  if (!ok) {
    rd_kafka_conf_destroy(conf);
    return ferry::errc::invalid_argument;
  }
  rd_kafka_conf_set_log_cb(conf, log_line);
  if (configure) configure(conf, opaque);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    *why = fmt::format("cannot start a Kafka client for {}: {}", o.broker, err);
    return ferry::errc::invalid_argument;
  }
  return handle(rk);
}

partition_list make_list(const std::vector<topic_partition>& tps) {
  partition_list l(rd_kafka_topic_partition_list_new(static_cast<int>(tps.size())));
  for (const auto& tp : tps)
    rd_kafka_topic_partition_list_add(l.get(), tp.topic.c_str(), tp.partition.value());
  return l;
}

partition_list make_commit_list(const std::vector<offset_commit>& offsets) {
  partition_list l(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const auto& c : offsets) {
    auto* e =
        rd_kafka_topic_partition_list_add(l.get(), c.tp.topic.c_str(), c.tp.partition.value());
    e->offset = c.next.value();
    if (!c.metadata.empty()) {
      e->metadata = ::malloc(c.metadata.size());
      std::memcpy(e->metadata, c.metadata.data(), c.metadata.size());
      e->metadata_size = c.metadata.size();
    }
  }
  return l;
}

std::vector<topic_partition> from_list(const rd_kafka_topic_partition_list_t* l) {
  std::vector<topic_partition> out;
  if (l == nullptr) return out;
  out.reserve(static_cast<std::size_t>(l->cnt));
  for (int i = 0; i < l->cnt; ++i)
    out.push_back({l->elems[i].topic, partition_id(l->elems[i].partition)});
  std::sort(out.begin(), out.end());
  return out;
}

result<int> partition_count(rd_kafka_t* rk, const std::string& topic,
                            std::chrono::milliseconds timeout, std::string* why) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  if (rkt == nullptr) {
    *why = fmt::format("topic {}: {}", topic, rd_kafka_err2str(rd_kafka_last_error()));
    return from_kafka(rd_kafka_last_error());
  }
  const rd_kafka_metadata_t* md = nullptr;
  const auto err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms(timeout));
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *why = fmt::format("metadata of topic {}: {}", topic, rd_kafka_err2str(err));
    return from_kafka(err);
  }
  std::error_code ec;
  int n = 0;
  if (md->topic_cnt < 1) {
    ec = errc::unknown_topic;
  } else if (md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ec = from_kafka(md->topics[0].err);
  } else if (md->topics[0].partition_cnt == 0) {
    ec = errc::unknown_topic;  // Kafka answers a topic being created so
  } else {
    n = md->topics[0].partition_cnt;
  }
  rd_kafka_metadata_destroy(md);
  if (ec) {
    *why = fmt::format("topic {}: {}", topic, ec.message());
    return ec;
  }
  return n;
}

namespace {

// Runs one Admin API call whose result event `get` turns into topic results.
template <typename Call, typename Get>
result<void> admin_call(rd_kafka_t* rk, rd_kafka_admin_op_t op, std::chrono::milliseconds timeout,
                        const std::string& name, std::string* why, Call call, Get get) {
  char err[512];
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, op);
  (void)rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms(timeout), err, sizeof err);
  (void)rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms(timeout), err, sizeof err);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  call(opts, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, timeout_ms(timeout) + 1000);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_queue_destroy(q);
  if (ev == nullptr) {
    *why = fmt::format("topic {}: no answer from the cluster", name);
    return protocol::errc::timed_out;
  }
  std::error_code ec;
  if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ec = from_kafka(rd_kafka_event_error(ev));
    *why = fmt::format("topic {}: {}", name, rd_kafka_event_error_string(ev));
  } else {
    std::size_t n = 0;
    const rd_kafka_topic_result_t** trs = get(ev, &n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto e = rd_kafka_topic_result_error(trs[i]);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      ec = from_kafka(e);
      const char* msg = rd_kafka_topic_result_error_string(trs[i]);
      *why = fmt::format("topic {}: {}", name, msg != nullptr ? msg : rd_kafka_err2str(e));
    }
  }
  rd_kafka_event_destroy(ev);
  if (ec) return ec;
  return success();
}

}  // namespace

result<void> create_topic(rd_kafka_t* rk, const std::string& name, int partitions,
                          const settings& configs, std::chrono::milliseconds timeout,
                          std::string* why) {
  char err[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(name.c_str(), partitions, -1, err, sizeof err);
  if (nt == nullptr) {
    *why = fmt::format("topic {}: {}", name, err);
    return ferry::errc::invalid_argument;
  }
  for (const auto& [k, v] : configs) {
    if (rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_NewTopic_destroy(nt);
      *why = fmt::format("topic {}: cannot set {}={}", name, k, v);
      return ferry::errc::invalid_argument;
    }
  }
  auto r = admin_call(
      rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout, name, why,
      [&](rd_kafka_AdminOptions_t* opts, rd_kafka_queue_t* q) {
        rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
      },
      [](rd_kafka_event_t* ev, std::size_t* n) {
        return rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), n);
      });
  rd_kafka_NewTopic_destroy(nt);
  return r;
}

result<void> delete_topic(rd_kafka_t* rk, const std::string& name,
                          std::chrono::milliseconds timeout, std::string* why) {
  rd_kafka_DeleteTopic_t* dt = rd_kafka_DeleteTopic_new(name.c_str());
  auto r = admin_call(
      rk, RD_KAFKA_ADMIN_OP_DELETETOPICS, timeout, name, why,
      [&](rd_kafka_AdminOptions_t* opts, rd_kafka_queue_t* q) {
        rd_kafka_DeleteTopics(rk, &dt, 1, opts, q);
      },
      [](rd_kafka_event_t* ev, std::size_t* n) {
        return rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), n);
      });
  rd_kafka_DeleteTopic_destroy(dt);
  return r;
}

result<handle> make_writer(const client_options& o, std::size_t max_message_bytes,
                           void (*on_delivery)(rd_kafka_t*, const rd_kafka_message_t*, void*),
                           std::string* why) {
  return make_handle(
      RD_KAFKA_PRODUCER, o,
      {{"enable.idempotence", "true"},
       {"acks", "all"},
       {"linger.ms", "0"},
       {"message.max.bytes", std::to_string(max_message_bytes)},
       {"message.timeout.ms", std::to_string(std::max<std::int64_t>(o.api_timeout.count(), 1))}},
      why,
      [](rd_kafka_conf_t* conf, void* cb) {
        rd_kafka_conf_set_dr_msg_cb(
            conf, *static_cast<void (**)(rd_kafka_t*, const rd_kafka_message_t*, void*)>(cb));
      },
      &on_delivery);
}

result<handle> make_reader(const client_options& o, std::string* why) {
  return make_handle(RD_KAFKA_CONSUMER, o,
                     {{"group.id", kAssignOnlyGroup},
                      {"enable.auto.commit", "false"},
                      {"enable.partition.eof", "false"},
                      {"auto.offset.reset", "earliest"},
                      {"fetch.wait.max.ms", "100"},
                      // librdkafka wants the socket time-out a second above the long poll.
                      {"socket.timeout.ms",
                       std::to_string(std::max<std::int64_t>(o.request_timeout.count(), 1100))}},
                     why);
}

result<std::pair<std::int64_t, std::int64_t>> watermarks(rd_kafka_t* rk, const std::string& topic,
                                                         const client_options& o,
                                                         std::string* why) {
  const auto deadline = std::chrono::steady_clock::now() + o.api_timeout;
  std::int64_t low = 0, high = 0;
  for (;;) {
    const auto err = rd_kafka_query_watermark_offsets(rk, topic.c_str(), 0, &low, &high,
                                                      timeout_ms(o.request_timeout));
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return std::pair{low, high};
    const auto ec = from_kafka(err);
    // A topic just created may not be in every broker's metadata yet.
    const bool settling = ec == errc::unknown_partition || ec == errc::unknown_topic;
    if ((!settling && !is_retriable(ec)) || std::chrono::steady_clock::now() >= deadline) {
      *why = fmt::format("cannot find the end of {}: {}", topic, rd_kafka_err2str(err));
      return ec;
    }
    std::this_thread::sleep_for(o.retry_backoff);
  }
}

rd_kafka_resp_err_t produce(rd_kafka_t* rk, const outgoing& m) {
  std::vector<rd_kafka_vu_t> vu;
  vu.reserve(8 + (m.headers ? m.headers->size() : 0));
  auto add = [&](rd_kafka_vtype_t t) -> rd_kafka_vu_t& {
    vu.emplace_back();
    vu.back().vtype = t;
    return vu.back();
  };
  add(RD_KAFKA_VTYPE_TOPIC).u.cstr = m.topic->c_str();
  add(RD_KAFKA_VTYPE_PARTITION).u.i32 = m.partition;
  add(RD_KAFKA_VTYPE_MSGFLAGS).u.i = RD_KAFKA_MSG_F_COPY;
  if (m.key != nullptr) {
    auto& k = add(RD_KAFKA_VTYPE_KEY);
    k.u.mem.ptr = const_cast<char*>(m.key->data());
    k.u.mem.size = m.key->size();
  }
  if (m.value != nullptr) {
    auto& v = add(RD_KAFKA_VTYPE_VALUE);
    v.u.mem.ptr = const_cast<char*>(m.value->data());
    v.u.mem.size = m.value->size();
  }
  add(RD_KAFKA_VTYPE_TIMESTAMP).u.i64 = m.timestamp;
  if (m.headers != nullptr)
    for (const auto& h : *m.headers) {
      auto& e = add(RD_KAFKA_VTYPE_HEADER);
      e.u.header.name = h.key.c_str();
      e.u.header.val = h.value ? h.value->data() : nullptr;
      e.u.header.size = h.value ? static_cast<ssize_t>(h.value->size()) : -1;
    }
  add(RD_KAFKA_VTYPE_OPAQUE).u.ptr = m.opaque;
  rd_kafka_error_t* e = rd_kafka_produceva(rk, vu.data(), vu.size());
  if (e == nullptr) return RD_KAFKA_RESP_ERR_NO_ERROR;
  const auto code = rd_kafka_error_code(e);
  rd_kafka_error_destroy(e);
  return code;
}

int timeout_ms(std::chrono::milliseconds d) noexcept {
  return static_cast<int>(std::clamp<std::int64_t>(d.count(), 0, std::numeric_limits<int>::max()));
}

std::vector<header> headers_of(const rd_kafka_message_t* m) {
  std::vector<header> out;
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || hdrs == nullptr)
    return out;
  const char* name = nullptr;
  const void* val = nullptr;
  std::size_t size = 0;
  for (std::size_t i = 0;
       rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
    header h;
    h.key = name;
    if (val != nullptr) h.value = std::string(static_cast<const char*>(val), size);
    out.push_back(std::move(h));
  }
  return out;
}

consumer_record to_record(const rd_kafka_message_t* m) {
  consumer_record r;
  r.topic = rd_kafka_topic_name(m->rkt);
  r.partition = partition_id(m->partition);
  r.offset = offset(m->offset);
  rd_kafka_timestamp_type_t tstype;
  const auto ts = rd_kafka_message_timestamp(m, &tstype);  // -1: none
  r.timestamp = timestamp_ms(ts < 0 ? 0 : ts);
  if (m->key != nullptr) r.key = std::string(static_cast<const char*>(m->key), m->key_len);
  if (m->payload != nullptr) r.value = std::string(static_cast<const char*>(m->payload), m->len);
  r.headers = headers_of(m);
  return r;
}

}  // namespace ferry::client::kafka

namespace ferry::client {
bool is_kafka_url(std::string_view broker) noexcept {
  return broker.starts_with("kafka://");
}
}  // namespace ferry::client
