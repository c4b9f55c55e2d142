// CreateTopics, DeleteTopics, DescribeConfigs, AlterConfigs and
// CreatePartitions, through the same topic table and settings
// (topic_settings.h) as ferry topics. Kafka's topic configs map onto
// Ferry's settings: retention.ms, retention.bytes, segment.bytes,
// max.message.bytes; cleanup.policy=delete and the replication settings of
// a one-node broker are accepted as they are; anything else is
// INVALID_CONFIG naming the key. AlterConfigs replaces a topic's configs as
// Kafka's does: retention.ms, retention.bytes and max.message.bytes not
// given go back to the broker's defaults; segment.bytes is fixed at
// creation (given, it must be the current value).
#include <fmt/format.h>

#include <charconv>
#include <map>

#include "ferry/protocol/codec.h"
#include "frontend.h"

namespace ferry::broker {

namespace {

// Configs ferryd accepts with no effect: they describe what one node does anyway.
bool harmless(std::string_view key, std::string_view value) {
  if (key == "cleanup.policy") return value == "delete";
  if (key == "min.insync.replicas") return value == "1";
  if (key == "unclean.leader.election.enable") return true;
  if (key == "message.timestamp.type") return value == "CreateTime";
  if (key == "compression.type") return value == "producer";
  return false;
}

bool parse_i64(std::string_view s, std::int64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

// Applies one Kafka topic config; what is wrong, or "".
std::string apply_config(topic_settings& s, std::string_view key,
                         std::optional<std::string_view> value) {
  if (!value) return fmt::format("{} has no value", key);
  std::int64_t v = 0;
  if (key == "retention.ms" || key == "retention.bytes" || key == "segment.bytes" ||
      key == "max.message.bytes") {
    if (!parse_i64(*value, v)) return fmt::format("{} = '{}' is not a number", key, *value);
    if (key == "retention.ms") s.retention_ms = v;
    if (key == "retention.bytes") s.retention_bytes = v;
    if (key == "segment.bytes") s.segment_bytes = v;
    if (key == "max.message.bytes") {
      if (v > std::numeric_limits<std::int32_t>::max()) return "max.message.bytes is too large";
      s.max_message_bytes = static_cast<std::int32_t>(v);
    }
    return {};
  }
  if (harmless(key, *value)) return {};
  return fmt::format(
      "{} = {} is not supported by ferryd (supported: retention.ms, retention.bytes, "
      "segment.bytes, max.message.bytes, cleanup.policy=delete)",
      key, *value);
}

using config_list = std::vector<std::pair<std::string, std::optional<std::string>>>;

// A request's array of configs: (name, nullable value), as CreateTopics and
// AlterConfigs send them.
config_list read_configs(kafka::reader& in) {
  config_list out;
  const auto n = in.array(4);
  for (std::int32_t i = 0; i < n && in.ok(); ++i) {
    auto key = in.string();
    auto value = in.nullable_string();
    out.emplace_back(std::string(key),
                     value ? std::optional<std::string>(std::string(*value)) : std::nullopt);
  }
  return out;
}

}  // namespace

void kafka_create_topics(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  r.sync_now();  // batches before it are answered under the old table
  auto in = q->body();
  struct request_topic {
    std::string name;
    std::int32_t partitions = -1;
    std::int16_t replication = -1;
    std::int32_t assignments = 0;
    config_list configs;
  };
  std::vector<request_topic> topics;
  const auto nt = in.array(14);
  for (std::int32_t t = 0; t < nt && in.ok(); ++t) {
    request_topic rt;
    rt.name = std::string(in.string());
    rt.partitions = in.i32();
    rt.replication = in.i16();
    rt.assignments = in.array(8);
    for (std::int32_t a = 0; a < rt.assignments && in.ok(); ++a) {
      (void)in.i32();
      const auto nb = in.array(4);
      for (std::int32_t b = 0; b < nb && in.ok(); ++b) (void)in.i32();
    }
    rt.configs = read_configs(in);
    topics.push_back(std::move(rt));
  }
  (void)in.i32();  // timeout
  const bool validate_only = since(*q, 1) && in.boolean();
  if (!in.ok()) return q->malformed("CreateTopics");
  auto w = q->response();
  if (since(*q, 2)) w.i32(0);  // throttle
  w.array(static_cast<std::int32_t>(topics.size()));
  const topic_limits limits{c.cfg.max_partitions, c.cfg.socket.max_message_bytes};
  for (const auto& rt : topics) {
    kafka::error err = kafka::error::none;
    std::string message;
    topic_settings s = c.cfg.topics;
    if (rt.partitions > 0) s.partitions = rt.partitions;
    if (!kafka_may(c, *q, acl_resource::topic, rt.name, acl_op::create)) {
      err = kafka::error::topic_authorization_failed;
      message = fmt::format("not authorized to create topic {}", rt.name);
      kafka_audit(c, *q, "topic.create", {{"topic", rt.name}}, wire::ErrorCode::NotAuthorized,
                  message);
    } else if (!protocol::valid_topic_name(rt.name)) {
      err = kafka::error::invalid_topic_exception;
      message = "topic names are 1-249 of [A-Za-z0-9._-], not starting with '.'";
    } else if (c.topics.find(rt.name) != nullptr) {
      err = kafka::error::topic_already_exists;
      message = fmt::format("topic {} already exists", rt.name);
    } else if (rt.partitions == 0 || rt.partitions < -1) {
      err = kafka::error::invalid_partitions;
      message = "the number of partitions must be positive (or -1 for the default)";
    } else if (rt.replication != -1 && rt.replication != 1) {
      err = kafka::error::invalid_replication_factor;
      message = "ferryd is one node: the replication factor is 1 (or -1)";
    } else if (rt.assignments > 0) {
      err = kafka::error::invalid_replica_assignment;
      message = "ferryd is one node: replica assignments are not taken";
    } else {
      for (const auto& [key, value] : rt.configs) {
        message =
            apply_config(s, key, value ? std::optional<std::string_view>(*value) : std::nullopt);
        if (!message.empty()) {
          err = kafka::error::invalid_config;
          break;
        }
      }
      if (err == kafka::error::none) {
        if (auto problem = settings_problem(s, limits)) {
          err = kafka::error::invalid_config;
          message = *problem;
        } else if (!validate_only) {
          auto o = c.topics.create(rt.name, std::move(s));
          if (!o) {
            err = kafka::from_broker(o.error);
            message = o.message;
          }
          kafka_audit(c, *q, "topic.create", {{"topic", rt.name}}, o.error, o.message);
        }
      }
    }
    if (err != kafka::error::none) c.stats.refuse(wire::ErrorCode::InvalidConfig);
    w.string(rt.name);
    w.i16(kafka::code(err));
    if (since(*q, 1))
      w.nullable_string(message.empty() ? std::nullopt : std::optional<std::string_view>(message));
  }
  q->respond(std::move(w));
}

void kafka_delete_topics(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  r.sync_now();  // batches before it are answered while the topic still exists
  auto in = q->body();
  std::vector<std::string> names;
  const auto n = in.array(2);
  for (std::int32_t i = 0; i < n && in.ok(); ++i) names.emplace_back(in.string());
  (void)in.i32();  // timeout
  if (!in.ok()) return q->malformed("DeleteTopics");
  auto w = q->response();
  if (since(*q, 1)) w.i32(0);  // throttle
  w.array(static_cast<std::int32_t>(names.size()));
  for (const auto& name : names) {
    const bool allowed = kafka_may(c, *q, acl_resource::topic, name, acl_op::remove);
    auto o =
        allowed ? delete_topic(c, name) : outcome{wire::ErrorCode::NotAuthorized, "not authorized"};
    kafka_audit(c, *q, "topic.delete", {{"topic", name}}, o.error, o.message);
    c.stats.refuse(o.error);
    w.string(name);
    w.i16(kafka::code(allowed ? kafka::from_broker(o.error)
                              : kafka::error::topic_authorization_failed));
  }
  q->respond(std::move(w));
}

void kafka_describe_configs(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  auto in = q->body();
  struct resource {
    std::int8_t type = 0;
    std::string name;
    std::optional<std::vector<std::string>> keys;
  };
  std::vector<resource> resources;
  const auto n = in.array(7);
  for (std::int32_t i = 0; i < n && in.ok(); ++i) {
    resource res;
    res.type = in.i8();
    res.name = std::string(in.string());
    const auto nk = in.array(2);
    if (nk >= 0) {
      res.keys.emplace();
      for (std::int32_t k = 0; k < nk && in.ok(); ++k) res.keys->emplace_back(in.string());
    }
    resources.push_back(std::move(res));
  }
  if (since(*q, 1)) (void)in.boolean();  // include synonyms
  if (since(*q, 3)) (void)in.boolean();  // include documentation
  if (!in.ok()) return q->malformed("DescribeConfigs");
  constexpr std::int8_t kTopic = 2, kBroker = 4;
  auto w = q->response();
  w.i32(0);  // throttle
  w.array(static_cast<std::int32_t>(resources.size()));
  for (const auto& res : resources) {
    std::vector<std::pair<std::string, std::string>> configs;
    kafka::error err = kafka::error::none;
    std::string message;
    if (res.type == kTopic && !kafka_may(c, *q, acl_resource::topic, res.name, acl_op::describe)) {
      err = kafka::error::topic_authorization_failed;
      message = fmt::format("not authorized to describe topic {}", res.name);
    } else if (res.type == kBroker &&
               !kafka_may(c, *q, acl_resource::cluster, {}, acl_op::describe)) {
      err = kafka::error::cluster_authorization_failed;
      message = "not authorized to describe the cluster";
    } else if (res.type == kTopic) {
      if (const auto* t = c.topics.find(res.name)) {
        configs = {{"retention.ms", std::to_string(t->settings.retention_ms)},
                   {"retention.bytes", std::to_string(t->settings.retention_bytes)},
                   {"segment.bytes", std::to_string(t->settings.segment_bytes)},
                   {"max.message.bytes", std::to_string(t->settings.max_message_bytes)},
                   {"cleanup.policy", "delete"},
                   {"message.timestamp.type", "CreateTime"},
                   {"compression.type", "producer"},
                   {"min.insync.replicas", "1"}};
      } else {
        err = kafka::error::unknown_topic_or_partition;
        message = fmt::format("unknown topic {}", res.name);
      }
    } else if (res.type == kBroker) {
      configs = {{"broker.id", "0"},
                 {"num.partitions", std::to_string(c.cfg.topics.partitions)},
                 {"log.retention.ms", std::to_string(c.cfg.topics.retention_ms)},
                 {"log.segment.bytes", std::to_string(c.cfg.topics.segment_bytes)},
                 {"message.max.bytes", std::to_string(c.cfg.topics.max_message_bytes)},
                 {"auto.create.topics.enable", "false"}};
    } else {
      err = kafka::error::invalid_request;
      message = "only topic (2) and broker (4) resources are described";
    }
    if (res.keys) {
      std::erase_if(configs, [&](const auto& kv) {
        return std::find(res.keys->begin(), res.keys->end(), kv.first) == res.keys->end();
      });
    }
    w.i16(kafka::code(err));
    w.nullable_string(message.empty() ? std::nullopt : std::optional<std::string_view>(message));
    w.i8(res.type);
    w.string(res.name);
    w.array(static_cast<std::int32_t>(configs.size()));
    for (const auto& [key, value] : configs) {
      w.string(key);
      w.nullable_string(value);
      // Read only but for what AlterConfigs changes.
      w.boolean(res.type != kTopic ||
                !(key == "retention.ms" || key == "retention.bytes" || key == "max.message.bytes"));
      if (q->version == 0) w.boolean(false);  // is default
      if (since(*q, 1))
        w.i8(res.type == kTopic ? 1 : 4);  // source: topic config, static broker config
      w.boolean(false);                    // sensitive
      if (since(*q, 1)) w.array(0);        // synonyms
      if (since(*q, 3)) {
        w.i8(0);  // type unknown
        w.nullable_string(std::nullopt);
      }
    }
  }
  q->respond(std::move(w));
}

void kafka_alter_configs(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  r.sync_now();  // batches before it are answered under the old settings
  auto in = q->body();
  struct resource {
    std::int8_t type = 0;
    std::string name;
    config_list configs;
  };
  std::vector<resource> resources;
  const auto n = in.array(7);
  for (std::int32_t i = 0; i < n && in.ok(); ++i) {
    resource res;
    res.type = in.i8();
    res.name = std::string(in.string());
    res.configs = read_configs(in);
    resources.push_back(std::move(res));
  }
  const bool validate_only = in.boolean();
  if (!in.ok()) return q->malformed("AlterConfigs");
  constexpr std::int8_t kTopic = 2;
  auto w = q->response();
  w.i32(0);  // throttle
  w.array(static_cast<std::int32_t>(resources.size()));
  for (const auto& res : resources) {
    outcome o;
    topic_settings after;
    bool denied = false;
    if (res.type != kTopic) {
      o = {wire::ErrorCode::InvalidConfig,
           "ferryd alters topic configs only (resource type 2); broker configs are set in its "
           "configuration file"};
    } else if (!kafka_may(c, *q, acl_resource::topic, res.name, acl_op::alter)) {
      denied = true;
      o = {wire::ErrorCode::NotAuthorized,
           fmt::format("not authorized to alter topic {}", res.name)};
      if (!validate_only)
        kafka_audit(c, *q, "topic.alter", {{"topic", res.name}}, o.error, o.message);
    } else {
      std::string problem;
      const auto change = [&](topic_settings& s) {
        const auto segment = s.segment_bytes;
        s.retention_ms = c.cfg.topics.retention_ms;
        s.retention_bytes = c.cfg.topics.retention_bytes;
        s.max_message_bytes = c.cfg.topics.max_message_bytes;
        for (const auto& [key, value] : res.configs) {
          problem =
              apply_config(s, key, value ? std::optional<std::string_view>(*value) : std::nullopt);
          if (!problem.empty()) return;
        }
        if (s.segment_bytes != segment)
          problem = fmt::format(
              "segment.bytes is fixed when the topic is created ({}); it cannot become {}", segment,
              s.segment_bytes);
      };
      // Checked first: a config refused alters nothing.
      o = alter_topic(c, res.name, change, /*validate_only=*/true, &after);
      if (!problem.empty())
        o = {wire::ErrorCode::InvalidConfig, problem};
      else if (o && !validate_only)
        o = alter_topic(c, res.name, change, /*validate_only=*/false, &after);
      if (!validate_only)
        kafka_audit(c, *q, "topic.alter",
                    {{"topic", res.name},
                     {"retention_ms", after.retention_ms},
                     {"retention_bytes", after.retention_bytes},
                     {"max_message_bytes", after.max_message_bytes}},
                    o.error, o.message);
    }
    c.stats.refuse(o.error);
    w.i16(kafka::code(denied ? kafka::error::topic_authorization_failed
                             : kafka::from_broker(o.error)));
    w.nullable_string(o.message.empty() ? std::nullopt
                                        : std::optional<std::string_view>(o.message));
    w.i8(res.type);
    w.string(res.name);
  }
  q->respond(std::move(w));
}

void kafka_create_partitions(round& r, std::unique_ptr<kafka_request> q) {
  auto& c = r.core();
  r.sync_now();  // batches before it are answered under the old partition count
  auto in = q->body();
  struct request_topic {
    std::string name;
    std::int32_t count = 0;
    bool assignments = false;
  };
  std::vector<request_topic> topics;
  const auto n = in.array(10);
  for (std::int32_t i = 0; i < n && in.ok(); ++i) {
    request_topic t;
    t.name = std::string(in.string());
    t.count = in.i32();
    const auto na = in.array(4);
    t.assignments = na > 0;
    for (std::int32_t a = 0; a < na && in.ok(); ++a) {
      const auto nb = in.array(4);
      for (std::int32_t b = 0; b < nb && in.ok(); ++b) (void)in.i32();
    }
    topics.push_back(std::move(t));
  }
  (void)in.i32();  // timeout
  const bool validate_only = in.boolean();
  if (!in.ok()) return q->malformed("CreatePartitions");
  auto w = q->response();
  w.i32(0);  // throttle
  w.array(static_cast<std::int32_t>(topics.size()));
  for (const auto& t : topics) {
    kafka::error err = kafka::error::none;
    std::string message;
    if (!kafka_may(c, *q, acl_resource::topic, t.name, acl_op::alter)) {
      err = kafka::error::topic_authorization_failed;
      message = fmt::format("not authorized to alter topic {}", t.name);
      if (!validate_only)
        kafka_audit(c, *q, "topic.alter", {{"topic", t.name}, {"partitions", t.count}},
                    wire::ErrorCode::NotAuthorized, message);
    } else if (t.assignments) {
      err = kafka::error::invalid_replica_assignment;
      message = "ferryd is one node: replica assignments are not taken";
      c.stats.refuse(wire::ErrorCode::InvalidConfig);
    } else if (const auto* now = c.topics.find(t.name);
               now != nullptr && t.count <= now->settings.partitions) {
      // Kafka's answer for the same count or fewer.
      err = kafka::error::invalid_partitions;
      message = fmt::format("topic {} has {} partitions; the new count must be larger", t.name,
                            now->settings.partitions);
      c.stats.refuse(wire::ErrorCode::InvalidConfig);
    } else {
      topic_settings after;
      auto o = alter_topic(
          c, t.name, [&](topic_settings& s) { s.partitions = t.count; }, validate_only, &after);
      if (!o) {
        err = o.error == wire::ErrorCode::InvalidConfig ? kafka::error::invalid_partitions
                                                        : kafka::from_broker(o.error);
        message = o.message;
      }
      if (!validate_only)
        kafka_audit(c, *q, "topic.alter", {{"topic", t.name}, {"partitions", t.count}}, o.error,
                    o.message);
      c.stats.refuse(o.error);
    }
    w.string(t.name);
    w.i16(kafka::code(err));
    w.nullable_string(message.empty() ? std::nullopt : std::optional<std::string_view>(message));
  }
  q->respond(std::move(w));
}

}  // namespace ferry::broker
