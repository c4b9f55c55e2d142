#include "kafka_admin.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <thread>

#include "ferry/client/errc.h"
#include "ferry/core/clock.h"
#include "ferry/core/errc.h"
#include "ferry/protocol/codec.h"
#include "ferry/protocol/errc.h"
#include "kafka_ledger.h"

namespace ferry::client {

namespace {

// One Admin API call: its options, its queue, and the event it answers with.
class call {
 public:
  call(rd_kafka_t* rk, rd_kafka_admin_op_t op, std::chrono::milliseconds timeout)
      : timeout_(timeout), opts_(rd_kafka_AdminOptions_new(rk, op)), q_(rd_kafka_queue_new(rk)) {
    char err[256];
    (void)rd_kafka_AdminOptions_set_request_timeout(opts_, kafka::timeout_ms(timeout), err,
                                                    sizeof err);
  }
  ~call() {
    if (ev_ != nullptr) rd_kafka_event_destroy(ev_);
    rd_kafka_AdminOptions_destroy(opts_);
    rd_kafka_queue_destroy(q_);
  }
  call(const call&) = delete;
  call& operator=(const call&) = delete;
  rd_kafka_AdminOptions_t* opts() { return opts_; }
  rd_kafka_queue_t* queue() { return q_; }
  // The answer, or the error of the whole call (with `why`).
  result<rd_kafka_event_t*> wait(std::string_view what, std::string* why) {
    ev_ = rd_kafka_queue_poll(q_, kafka::timeout_ms(timeout_) + 1000);
    if (ev_ == nullptr) {
      *why = fmt::format("{}: no answer from the cluster", what);
      return protocol::errc::timed_out;
    }
    if (const auto err = rd_kafka_event_error(ev_); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      *why = fmt::format("{}: {}", what, rd_kafka_event_error_string(ev_));
      return kafka::from_kafka(err);
    }
    return ev_;
  }

 private:
  std::chrono::milliseconds timeout_;
  rd_kafka_AdminOptions_t* opts_;
  rd_kafka_queue_t* q_;
  rd_kafka_event_t* ev_ = nullptr;
};

std::int64_t to_i64(const char* v, std::int64_t fallback) {
  if (v == nullptr) return fallback;
  try {
    return std::stoll(v);
  } catch (...) {
    return fallback;
  }
}

}  // namespace

kafka_admin::kafka_admin(const client_options& o) : o_(o) {}

kafka::schema_registry& kafka_admin::schemas() {
  if (!schemas_) schemas_ = std::make_unique<kafka::schema_registry>(o_);
  return *schemas_;
}

std::error_code kafka_admin::unsupported(std::string_view what, std::string* why) {
  *why = fmt::format(
      "{} is not supported over kafka:// yet: it needs ferryd's native protocol (tcp:// or "
      "ipc://)",
      what);
  return ferry::errc::not_supported;
}

result<rd_kafka_t*> kafka_admin::handle(std::string* why) {
  if (!rk_) {
    FERRY_TRY(rk_, kafka::make_handle(RD_KAFKA_PRODUCER, o_, {}, why));
  }
  return rk_.get();
}

result<void> kafka_admin::create_topic(std::string_view name, const topic_config& config,
                                       std::string* why) {
  if (!protocol::valid_topic_name(name)) {
    *why = fmt::format("invalid topic name '{}'", name);
    return errc::invalid_topic_name;
  }
  if (!config.schema_subject.empty() || config.schema_validation)
    return unsupported("binding a topic to a schema subject", why);
  FERRY_TRY(auto* rk, handle(why));
  kafka::settings c;
  if (config.retention_ms != -2)
    c.emplace_back("retention.ms", std::to_string(config.retention_ms));
  if (config.retention_bytes != -2)
    c.emplace_back("retention.bytes", std::to_string(config.retention_bytes));
  if (config.max_message_bytes > 0)
    c.emplace_back("max.message.bytes", std::to_string(config.max_message_bytes));
  if (config.segment_bytes > 0)
    c.emplace_back("segment.bytes", std::to_string(config.segment_bytes));
  return kafka::create_topic(rk, std::string(name), config.partitions, c, o_.api_timeout, why);
}

result<void> kafka_admin::delete_topic(std::string_view name, std::string* why) {
  FERRY_TRY(auto* rk, handle(why));
  return kafka::delete_topic(rk, std::string(name), o_.api_timeout, why);
}

result<std::vector<topic_summary>> kafka_admin::list_topics(std::string* why) {
  FERRY_TRY(auto* rk, handle(why));
  const rd_kafka_metadata_t* md = nullptr;
  if (const auto err = rd_kafka_metadata(rk, 1, nullptr, &md, kafka::timeout_ms(o_.api_timeout));
      err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *why = fmt::format("listing topics: {}", rd_kafka_err2str(err));
    return kafka::from_kafka(err);
  }
  std::vector<topic_summary> out;
  for (int i = 0; i < md->topic_cnt; ++i)
    if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
      out.push_back({md->topics[i].topic, md->topics[i].partition_cnt});
  rd_kafka_metadata_destroy(md);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

result<topic_description> kafka_admin::describe_topic(std::string_view name, std::string* why) {
  FERRY_TRY(auto* rk, handle(why));
  const std::string topic(name);
  FERRY_TRY(const int n, kafka::partition_count(rk, topic, o_.api_timeout, why));
  topic_description d;
  d.name = topic;
  d.config.partitions = n;
  for (int p = 0; p < n; ++p) {
    partition_info pi;
    pi.partition = partition_id(p);
    std::int64_t lo = 0, hi = 0;
    const auto err = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi,
                                                      kafka::timeout_ms(o_.api_timeout));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      pi.error = kafka::from_kafka(err);
      pi.message = rd_kafka_err2str(err);
    }
    pi.log_start = offset(lo);
    pi.log_end = offset(hi);
    pi.high_watermark = offset(hi);
    pi.size_bytes = -1;  // Kafka's DescribeLogDirs would tell; not asked
    pi.segments = -1;
    d.partitions.push_back(std::move(pi));
  }
  // Settings (a cluster that refuses DescribeConfigs leaves the defaults).
  std::string ignored;
  if (auto configs = topic_configs(topic, &ignored)) {
    for (const auto& e : configs.value()) {
      const auto* v = e.value ? e.value->c_str() : nullptr;
      if (e.name == "retention.ms") d.config.retention_ms = to_i64(v, d.config.retention_ms);
      if (e.name == "retention.bytes")
        d.config.retention_bytes = to_i64(v, d.config.retention_bytes);
      if (e.name == "segment.bytes") d.config.segment_bytes = to_i64(v, d.config.segment_bytes);
      if (e.name == "max.message.bytes")
        d.config.max_message_bytes =
            static_cast<std::int32_t>(to_i64(v, d.config.max_message_bytes));
    }
  }
  return d;
}

result<std::vector<kafka_admin::config_entry>> kafka_admin::topic_configs(const std::string& topic,
                                                                          std::string* why) {
  FERRY_TRY(auto* rk, handle(why));
  call c(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, o_.api_timeout);
  rd_kafka_ConfigResource_t* res =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_DescribeConfigs(rk, &res, 1, c.opts(), c.queue());
  rd_kafka_ConfigResource_destroy(res);
  FERRY_TRY(auto* ev, c.wait("describe configs of " + topic, why));
  std::size_t nres = 0;
  const auto** rs =
      rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &nres);
  std::vector<config_entry> out;
  for (std::size_t i = 0; i < nres; ++i) {
    if (const auto err = rd_kafka_ConfigResource_error(rs[i]); err) {
      *why = fmt::format("{}: {}", topic, rd_kafka_ConfigResource_error_string(rs[i]));
      return kafka::from_kafka(err);
    }
    std::size_t ncfg = 0;
    const auto** cfgs = rd_kafka_ConfigResource_configs(rs[i], &ncfg);
    for (std::size_t j = 0; j < ncfg; ++j) {
      const char* v = rd_kafka_ConfigEntry_value(cfgs[j]);
      out.push_back(
          {rd_kafka_ConfigEntry_name(cfgs[j]),
           v != nullptr ? std::optional<std::string>(v) : std::nullopt,
           rd_kafka_ConfigEntry_source(cfgs[j]) == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG &&
               !rd_kafka_ConfigEntry_is_read_only(cfgs[j]) &&
               !rd_kafka_ConfigEntry_is_sensitive(cfgs[j])});
    }
  }
  return out;
}

result<void> kafka_admin::alter_configs(const std::string& topic,
                                        const std::map<std::string, std::string>& configs,
                                        bool validate_only, std::string* why) {
  FERRY_TRY(auto* rk, handle(why));
  call c(rk, RD_KAFKA_ADMIN_OP_ALTERCONFIGS, o_.api_timeout);
  char err[256];
  (void)rd_kafka_AdminOptions_set_validate_only(c.opts(), validate_only ? 1 : 0, err, sizeof err);
  rd_kafka_ConfigResource_t* res =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  for (const auto& [k, v] : configs)
    (void)rd_kafka_ConfigResource_set_config(res, k.c_str(), v.c_str());
  rd_kafka_AlterConfigs(rk, &res, 1, c.opts(), c.queue());
  rd_kafka_ConfigResource_destroy(res);
  FERRY_TRY(auto* ev, c.wait("altering the configs of " + topic, why));
  std::size_t nres = 0;
  const auto** rs =
      rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &nres);
  for (std::size_t i = 0; i < nres; ++i)
    if (const auto e = rd_kafka_ConfigResource_error(rs[i]); e) {
      const char* text = rd_kafka_ConfigResource_error_string(rs[i]);
      *why = fmt::format("{}: {}", topic, text != nullptr ? text : rd_kafka_err2str(e));
      return kafka::from_kafka(e);
    }
  return success();
}

result<void> kafka_admin::add_partitions(const std::string& topic, std::int32_t count,
                                         bool validate_only, std::string* why) {
  FERRY_TRY(auto* rk, handle(why));
  call c(rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS, o_.api_timeout);
  char err[256];
  (void)rd_kafka_AdminOptions_set_validate_only(c.opts(), validate_only ? 1 : 0, err, sizeof err);
  rd_kafka_NewPartitions_t* np =
      rd_kafka_NewPartitions_new(topic.c_str(), static_cast<std::size_t>(count), err, sizeof err);
  if (np == nullptr) {
    *why = fmt::format("{}: {}", topic, err);
    return errc::invalid_config;
  }
  rd_kafka_CreatePartitions(rk, &np, 1, c.opts(), c.queue());
  rd_kafka_NewPartitions_destroy(np);
  FERRY_TRY(auto* ev, c.wait("adding partitions to " + topic, why));
  std::size_t n = 0;
  const auto** ts =
      rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &n);
  for (std::size_t i = 0; i < n; ++i)
    if (const auto e = rd_kafka_topic_result_error(ts[i]); e) {
      const char* text = rd_kafka_topic_result_error_string(ts[i]);
      *why = fmt::format("{}: {}", topic, text != nullptr ? text : rd_kafka_err2str(e));
      return kafka::from_kafka(e);
    }
  return success();
}

result<topic_config> kafka_admin::alter_topic(std::string_view name, const topic_changes& changes,
                                              std::string* why) {
  const std::string topic(name);
  FERRY_TRY(const auto before, describe_topic(name, why));
  std::vector<std::pair<std::string, std::string>> set;
  if (changes.retention_ms) set.emplace_back("retention.ms", std::to_string(*changes.retention_ms));
  if (changes.retention_bytes)
    set.emplace_back("retention.bytes", std::to_string(*changes.retention_bytes));
  if (changes.max_message_bytes)
    set.emplace_back("max.message.bytes", std::to_string(*changes.max_message_bytes));
  const auto now = before.config.partitions;
  if (changes.partitions && *changes.partitions < now) {
    *why = fmt::format(
        "topic {} has {} partitions; partitions can only be added (records are not moved "
        "between partitions)",
        topic, now);
    return errc::invalid_config;
  }
  const bool more = changes.partitions && *changes.partitions > now;
  // AlterConfigs replaces a topic's configs: what it does not name goes
  // back to the cluster's default. So the topic's own configs (source:
  // dynamic topic config) are read once and sent again with the changes.
  std::map<std::string, std::string> configs;
  if (!set.empty()) {
    FERRY_TRY(const auto entries, topic_configs(topic, why));
    for (const auto& e : entries)
      if (e.own && e.value) configs[e.name] = *e.value;
    for (const auto& [k, v] : set) configs[k] = v;
  }
  // Both checked by the cluster before either is made, so that a refused
  // change leaves the topic as it was.
  for (const bool check : {true, false}) {
    if (!check && changes.validate_only) break;
    if (!set.empty()) {
      FERRY_TRY(alter_configs(topic, configs, check, why));
    }
    if (more) {
      FERRY_TRY(add_partitions(topic, *changes.partitions, check, why));
    }
  }
  if (changes.validate_only) {
    auto c = before.config;
    if (changes.partitions) c.partitions = *changes.partitions;
    if (changes.retention_ms) c.retention_ms = *changes.retention_ms;
    if (changes.retention_bytes) c.retention_bytes = *changes.retention_bytes;
    if (changes.max_message_bytes) c.max_message_bytes = *changes.max_message_bytes;
    return c;
  }
  // As the cluster has it now (a new partition count may take a moment to
  // reach every broker's metadata).
  const auto deadline = std::chrono::steady_clock::now() + o_.api_timeout;
  for (;;) {
    FERRY_TRY(auto after, describe_topic(name, why));
    if (!more || after.config.partitions >= *changes.partitions ||
        std::chrono::steady_clock::now() >= deadline)
      return after.config;
    std::this_thread::sleep_for(o_.retry_backoff);
  }
}

result<std::optional<offset>> kafka_admin::list_offsets(std::string_view topic,
                                                        partition_id partition, offset_spec spec,
                                                        timestamp_ms timestamp, std::string* why) {
  FERRY_TRY(auto* rk, handle(why));
  const std::string t(topic);
  if (spec == offset_spec::timestamp) {
    kafka::partition_list l = kafka::make_list({{t, partition}});
    l->elems[0].offset = timestamp.value();
    const auto err = rd_kafka_offsets_for_times(rk, l.get(), kafka::timeout_ms(o_.api_timeout));
    const auto e = err != RD_KAFKA_RESP_ERR_NO_ERROR ? err : l->elems[0].err;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      *why = fmt::format("{}-{}: {}", t, partition.value(), rd_kafka_err2str(e));
      return kafka::from_kafka(e);
    }
    if (l->elems[0].offset < 0) return std::optional<offset>{};
    return std::optional<offset>(offset(l->elems[0].offset));
  }
  std::int64_t lo = 0, hi = 0;
  const auto err = rd_kafka_query_watermark_offsets(rk, t.c_str(), partition.value(), &lo, &hi,
                                                    kafka::timeout_ms(o_.api_timeout));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *why = fmt::format("{}-{}: {}", t, partition.value(), rd_kafka_err2str(err));
    return kafka::from_kafka(err);
  }
  return std::optional<offset>(offset(spec == offset_spec::earliest ? lo : hi));
}

result<std::vector<group_summary>> kafka_admin::list_groups(std::string* why) {
  FERRY_TRY(auto* rk, handle(why));
  call c(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, o_.api_timeout);
  rd_kafka_ListConsumerGroups(rk, c.opts(), c.queue());
  FERRY_TRY(auto* ev, c.wait("listing groups", why));
  const auto* res = rd_kafka_event_ListConsumerGroups_result(ev);
  std::size_t n = 0;
  const auto** groups = rd_kafka_ListConsumerGroups_result_valid(res, &n);
  std::vector<group_summary> out;
  for (std::size_t i = 0; i < n; ++i) {
    group_summary g;
    g.group = rd_kafka_ConsumerGroupListing_group_id(groups[i]);
    g.state = rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupListing_state(groups[i]));
    out.push_back(std::move(g));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.group < b.group; });
  if (out.empty()) return out;
  // The listing has no member counts (and older brokers no state): describe.
  call d(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, o_.api_timeout);
  std::vector<const char*> names;
  for (const auto& g : out) names.push_back(g.group.c_str());
  rd_kafka_DescribeConsumerGroups(rk, names.data(), names.size(), d.opts(), d.queue());
  std::string ignored;
  if (auto dev = d.wait("describing groups", &ignored)) {
    std::size_t nd = 0;
    const auto** ds = rd_kafka_DescribeConsumerGroups_result_groups(
        rd_kafka_event_DescribeConsumerGroups_result(dev.value()), &nd);
    for (std::size_t i = 0; i < nd; ++i) {
      if (rd_kafka_ConsumerGroupDescription_error(ds[i]) != nullptr) continue;
      const std::string_view id = rd_kafka_ConsumerGroupDescription_group_id(ds[i]);
      for (auto& g : out)
        if (g.group == id) {
          g.state =
              rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(ds[i]));
          g.members =
              static_cast<std::int32_t>(rd_kafka_ConsumerGroupDescription_member_count(ds[i]));
        }
    }
  }
  return out;
}

result<std::vector<committed_position>> kafka_admin::committed_offsets(
    std::string_view group, const std::vector<topic_partition>& partitions, std::string* why) {
  FERRY_TRY(auto* rk, handle(why));
  const std::string g(group);
  call c(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, o_.api_timeout);
  // librdkafka asks for "all partitions" with an empty list, which brokers
  // answer with nothing: ask for every partition of every topic instead.
  std::vector<topic_partition> wanted = partitions;
  if (wanted.empty()) {
    FERRY_TRY(auto topics, list_topics(why));
    for (const auto& t : topics)
      for (std::int32_t p = 0; p < t.partitions; ++p) wanted.push_back({t.name, partition_id(p)});
    if (wanted.empty()) return std::vector<committed_position>{};
  }
  kafka::partition_list l = kafka::make_list(wanted);
  rd_kafka_ListConsumerGroupOffsets_t* req =
      rd_kafka_ListConsumerGroupOffsets_new(g.c_str(), l.get());
  rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, c.opts(), c.queue());
  rd_kafka_ListConsumerGroupOffsets_destroy(req);
  FERRY_TRY(auto* ev, c.wait("committed offsets of group " + g, why));
  std::size_t n = 0;
  const auto** gs = rd_kafka_ListConsumerGroupOffsets_result_groups(
      rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
  std::vector<committed_position> out;
  for (std::size_t i = 0; i < n; ++i) {
    if (const auto* e = rd_kafka_group_result_error(gs[i]); e != nullptr) {
      *why = fmt::format("group {}: {}", g, rd_kafka_error_string(e));
      return kafka::from_kafka(rd_kafka_error_code(e));
    }
    const auto* ps = rd_kafka_group_result_partitions(gs[i]);
    for (int j = 0; ps != nullptr && j < ps->cnt; ++j) {
      const auto& e = ps->elems[j];
      committed_position cp;
      cp.tp = {e.topic, partition_id(e.partition)};
      if (e.offset >= 0) cp.next = offset(e.offset);
      if (e.metadata != nullptr && e.metadata_size > 0)
        cp.metadata.assign(static_cast<const char*>(e.metadata), e.metadata_size);
      cp.commit_time = timestamp_ms::none();
      // Asked for everything: only what the group committed.
      if (cp.next || !partitions.empty()) out.push_back(std::move(cp));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.tp < b.tp; });
  return out;
}

result<group_description> kafka_admin::describe_group(std::string_view group, std::string* why) {
  FERRY_TRY(auto* rk, handle(why));
  const std::string g(group);
  group_description d;
  d.group = g;
  d.broker_time = system_clock::instance().wall_now();
  std::map<topic_partition, std::string> owner;
  {
    call c(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, o_.api_timeout);
    const char* names[] = {g.c_str()};
    rd_kafka_DescribeConsumerGroups(rk, names, 1, c.opts(), c.queue());
    FERRY_TRY(auto* ev, c.wait("describing group " + g, why));
    std::size_t n = 0;
    const auto** gs = rd_kafka_DescribeConsumerGroups_result_groups(
        rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
    for (std::size_t i = 0; i < n; ++i) {
      if (const auto* e = rd_kafka_ConsumerGroupDescription_error(gs[i]); e != nullptr) {
        *why = fmt::format("group {}: {}", g, rd_kafka_error_string(e));
        return kafka::from_kafka(rd_kafka_error_code(e));
      }
      d.state = rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(gs[i]));
      const char* assignor = rd_kafka_ConsumerGroupDescription_partition_assignor(gs[i]);
      d.strategy = fmt::format("kafka consumer/{}", assignor ? assignor : "");
      const auto members = rd_kafka_ConsumerGroupDescription_member_count(gs[i]);
      for (std::size_t m = 0; m < members; ++m) {
        const auto* md = rd_kafka_ConsumerGroupDescription_member(gs[i], m);
        group_member_info mi;
        mi.member_id = rd_kafka_MemberDescription_consumer_id(md);
        mi.client_id = rd_kafka_MemberDescription_client_id(md);
        mi.host = rd_kafka_MemberDescription_host(md);
        const auto* a =
            rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(md));
        mi.assignment = kafka::from_list(a);
        for (const auto& tp : mi.assignment) {
          owner[tp] = mi.member_id;
          if (std::find(mi.topics.begin(), mi.topics.end(), tp.topic) == mi.topics.end())
            mi.topics.push_back(tp.topic);
        }
        d.members.push_back(std::move(mi));
      }
    }
  }
  FERRY_TRY(auto committed, committed_offsets(g, {}, why));
  if (d.members.empty() && committed.empty() && (d.state == "Dead" || d.state.empty())) {
    *why = fmt::format("group {} has neither members nor committed offsets", g);
    return errc::unknown_group;
  }
  std::map<topic_partition, group_partition_info> parts;
  for (const auto& [tp, m] : owner) parts[tp].member_id = m;
  for (const auto& c : committed) {
    auto& p = parts[c.tp];
    p.committed = c.next;
    p.metadata = c.metadata;
  }
  for (auto& [tp, p] : parts) {
    p.tp = tp;
    std::int64_t lo = 0, hi = 0;
    const auto err = rd_kafka_query_watermark_offsets(rk, tp.topic.c_str(), tp.partition.value(),
                                                      &lo, &hi, kafka::timeout_ms(o_.api_timeout));
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      p.log_start = offset(lo);
      p.log_end = offset(hi);
    } else {
      p.error = kafka::from_kafka(err);
    }
    d.partitions.push_back(std::move(p));
  }
  return d;
}

result<std::vector<commit_result>> kafka_admin::reset_offsets(
    std::string_view group, const std::vector<offset_commit>& offsets, std::string* why) {
  FERRY_TRY(auto* rk, handle(why));
  const std::string g(group);
  std::vector<commit_result> out;
  if (offsets.empty()) return out;
  kafka::partition_list l = kafka::make_commit_list(offsets);
  call c(rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, o_.api_timeout);
  rd_kafka_AlterConsumerGroupOffsets_t* req =
      rd_kafka_AlterConsumerGroupOffsets_new(g.c_str(), l.get());
  rd_kafka_AlterConsumerGroupOffsets(rk, &req, 1, c.opts(), c.queue());
  rd_kafka_AlterConsumerGroupOffsets_destroy(req);
  FERRY_TRY(auto* ev, c.wait("setting offsets of group " + g, why));
  std::size_t n = 0;
  const auto** gs = rd_kafka_AlterConsumerGroupOffsets_result_groups(
      rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
  for (std::size_t i = 0; i < n; ++i) {
    if (const auto* e = rd_kafka_group_result_error(gs[i]); e != nullptr) {
      *why = fmt::format("group {}: {}", g, rd_kafka_error_string(e));
      return kafka::from_kafka(rd_kafka_error_code(e));
    }
    const auto* ps = rd_kafka_group_result_partitions(gs[i]);
    for (int j = 0; ps != nullptr && j < ps->cnt; ++j) {
      const auto& e = ps->elems[j];
      commit_result r;
      r.tp = {e.topic, partition_id(e.partition)};
      r.error = kafka::from_kafka(e.err);
      if (r.error) r.message = rd_kafka_err2str(e.err);
      // Kafka refuses each partition of a group with members; Ferry's
      // contract refuses the call.
      if (r.error == errc::group_not_empty) {
        *why = fmt::format("group {} has members: stop them (or wait out their session) first", g);
        return r.error;
      }
      out.push_back(std::move(r));
    }
  }
  return out;
}

result<void> kafka_admin::delete_group(std::string_view group, std::string* why) {
  FERRY_TRY(auto* rk, handle(why));
  const std::string g(group);
  {
    call c(rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS, o_.api_timeout);
    rd_kafka_DeleteGroup_t* req = rd_kafka_DeleteGroup_new(g.c_str());
    rd_kafka_DeleteGroups(rk, &req, 1, c.opts(), c.queue());
    rd_kafka_DeleteGroup_destroy(req);
    FERRY_TRY(auto* ev, c.wait("deleting group " + g, why));
    std::size_t n = 0;
    const auto** gs =
        rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev), &n);
    for (std::size_t i = 0; i < n; ++i)
      if (const auto* e = rd_kafka_group_result_error(gs[i]); e != nullptr) {
        *why = fmt::format("group {}: {}", g, rd_kafka_error_string(e));
        return kafka::from_kafka(rd_kafka_error_code(e));
      }
  }
  // The group's idempotency ledger goes with it, as natively.
  auto r = kafka::delete_topic(rk, kafka::ledger_topic(g), o_.api_timeout, why);
  if (!r && r.error() != errc::unknown_topic) return r.error();
  return success();
}

}  // namespace ferry::client
