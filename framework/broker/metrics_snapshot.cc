#include "metrics_snapshot.h"

#include <algorithm>

#include "commits.h"
#include "ferry/core/clock.h"
#include "ferry/format/batch.h"

namespace ferry::broker {

using metrics::collected;

namespace {

collected family(std::string name, std::string help) {
  collected c;
  c.name = std::move(name);
  c.help = std::move(help);
  c.type = metrics::kind::gauge;
  return c;
}

}  // namespace

std::int64_t timestamp_at(storage::partition_log& log, std::int64_t at) {
  auto r = log.read(offset(at), 1);
  if (!r || r.value().batches == 0) return -1;
  std::int64_t ts = -1;
  format::for_each_record(std::span<const std::byte>(r.value().data),
                          [&](const format::record_view& rv) {
                            if (rv.off.value() < at) return true;
                            ts = rv.timestamp.value();
                            return false;
                          });
  return ts;
}

void metrics_snapshot::begin(broker_core& c, bool groups_too) {
  b_ = building{};
  if (cache_deletions_ != c.topic_deletions) {
    oldest_cache_.clear();  // a deleted topic's timestamps must not serve a new one
    cache_deletions_ = c.topic_deletions;
  }
  auto size = family("ferry_partition_log_size_bytes", "Bytes of the partition's segment files");
  auto segments = family("ferry_partition_segments", "Segment files of the partition");
  auto start = family("ferry_partition_log_start_offset",
                      "The partition's first offset (retention moves it)");
  auto hw = family("ferry_partition_high_watermark",
                   "The partition's high watermark: the offset after the last durable record");
  // kafka_exporter's names (github.com/danielqsj/kafka_exporter), so Kafka
  // dashboards and alerts work unchanged.
  auto k_current = family("kafka_topic_partition_current_offset",
                          "The partition's high watermark (kafka_exporter's name)");
  auto k_oldest = family("kafka_topic_partition_oldest_offset",
                         "The partition's first offset (kafka_exporter's name)");
  auto failed = family("ferry_partition_failed",
                       "1 when the partition stopped after a storage error (restart ferryd "
                       "after fixing the disk), else 0");
  for (const auto& [name, t] : c.topics.all()) {
    for (const auto& part : t.partitions) {
      auto st = part->log->stats();
      std::vector<std::pair<std::string, std::string>> l = {
          {"topic", name}, {"partition", std::to_string(part->id)}};
      size.add(l, static_cast<double>(st.size_bytes));
      segments.add(l, static_cast<double>(st.segments));
      start.add(l, static_cast<double>(st.log_start.value()));
      hw.add(l, static_cast<double>(st.high_watermark.value()));
      k_current.add(l, static_cast<double>(st.high_watermark.value()));
      k_oldest.add(l, static_cast<double>(st.log_start.value()));
      failed.add(std::move(l), part->log->failed() ? 1 : 0);
    }
  }
  b_.lag = family("ferry_consumergroup_lag",
                  "Records between the group's committed offset and the high watermark");
  b_.lag_s = family("ferry_consumergroup_lag_seconds",
                    "Age of the group's oldest unconsumed record (0 when caught up)");
  b_.committed = family("ferry_consumergroup_committed_offset",
                        "The group's committed offset (the next record it will read)");
  auto members = family("ferry_consumergroup_members", "Members of the group");
  std::map<std::string, std::size_t> member_counts;
  if (groups_too) {
    for (const auto& g : c.groups->list(steady::now())) member_counts[g.name] = g.members.size();
    for (const auto& [group, _] : c.offsets->groups()) member_counts.emplace(group, 0);
    // Every partition of the group's topics, committed or not (lag from
    // the log start where nothing is committed: the group starts there).
    const auto now = steady::now();
    for (const auto& [group, _] : member_counts)
      for (const auto& tp : group_partitions(c, group, now)) {
        const auto* committed = c.offsets->committed(group, tp);
        b_.entries.push_back({{group, tp.first, tp.second}, committed ? committed->offset : -1});
      }
  }
  for (const auto& [group, n] : member_counts)
    members.add({{"group", group}}, static_cast<double>(n));
  auto topics_count = family("ferry_broker_topics", "Topics the broker serves");
  topics_count.add({}, static_cast<double>(c.topics.all().size()));
  auto offsets_size =
      family("ferry_broker_offsets_log_size_bytes",
             "Bytes of the group offsets log (compacted past offsets_compact_bytes)");
  offsets_size.add({}, static_cast<double>(c.offsets->size_bytes()));
  b_.k_lag = family("kafka_consumergroup_lag",
                    "Records between the group's committed offset (or the log start, "
                    "nothing committed) and the high watermark (kafka_exporter's name)");
  for (auto* f : {&size, &segments, &start, &hw, &failed, &members, &topics_count, &offsets_size,
                  &k_current, &k_oldest})
    b_.families.push_back(std::move(*f));
  building_ = true;
}

bool metrics_snapshot::advance(broker_core& c, std::size_t max_reads) {
  const auto wall = system_clock::instance().wall_now().value();
  std::size_t reads = 0;
  for (; b_.next < b_.entries.size(); ++b_.next) {
    const auto& e = b_.entries[b_.next];
    const auto& [group, topic, p] = e.k;
    wire::ErrorCode err;
    auto* part = c.topics.find(topic, p, err);
    if (part == nullptr) continue;
    std::vector<std::pair<std::string, std::string>> l = {
        {"group", group}, {"topic", topic}, {"partition", std::to_string(p)}};
    const auto end = part->log->high_watermark().value();
    const auto start = part->log->log_start_offset().value();
    const auto from = e.committed >= 0 ? e.committed : start;
    double age = 0;
    if (from < end) {
      const auto at = std::max(from, start);
      auto& cached = b_.fresh_cache[e.k];
      if (auto it = oldest_cache_.find(e.k); it != oldest_cache_.end() && it->second.first == at) {
        cached = it->second;
      } else {
        if (reads == max_reads) return false;  // the next slice reads it
        ++reads;
        cached = {at, timestamp_at(*part->log, at)};
      }
      if (cached.second >= 0)
        age = static_cast<double>(std::max<std::int64_t>(0, wall - cached.second)) / 1000.0;
    }
    if (e.committed >= 0) b_.committed.add(l, static_cast<double>(e.committed));
    const auto lag = static_cast<double>(std::max<std::int64_t>(0, end - from));
    b_.lag.add(l, lag);
    b_.k_lag.add({{"consumergroup", group}, {"topic", topic}, {"partition", std::to_string(p)}},
                 lag);
    b_.k_lag_sum[{group, topic}] += lag;
    b_.lag_s.add(std::move(l), age);
  }
  return true;
}

void metrics_snapshot::publish() {
  oldest_cache_ = std::move(b_.fresh_cache);  // only what this snapshot used stays
  std::vector<collected> all = std::move(b_.families);
  // The order scrapes have always shown.
  all.insert(all.begin() + 5, std::move(b_.lag));
  all.insert(all.begin() + 6, std::move(b_.lag_s));
  all.insert(all.begin() + 7, std::move(b_.committed));
  all.push_back(std::move(b_.k_lag));
  auto sum = family("kafka_consumergroup_lag_sum",
                    "The group's lag summed over the topic's partitions (kafka_exporter's name)");
  for (const auto& [gt, v] : b_.k_lag_sum)
    sum.add({{"consumergroup", gt.first}, {"topic", gt.second}}, v);
  all.push_back(std::move(sum));
  b_ = building{};
  building_ = false;
  {
    unique_lock lock(mu_);
    families_ = std::move(all);
    at_ = steady::now();
    ++gen_;
  }
  cv_.notify_all();
}

void metrics_snapshot::step(broker_core& c) {
  if (!building_) {
    if (!wanted_.exchange(false)) return;
    begin(c, true);
  }
  if (advance(c, kReadsPerSlice)) publish();
}

void metrics_snapshot::publish_now(broker_core& c, bool groups_too) {
  begin(c, groups_too);
  (void)advance(c, static_cast<std::size_t>(-1));
  publish();
}

void metrics_snapshot::set_running(bool running) {
  {
    unique_lock lock(mu_);
    running_ = running;
  }
  cv_.notify_all();
}

void metrics_snapshot::collect(std::vector<collected>& out, const std::function<void()>& wake) {
  unique_lock lock(mu_);
  if (running_) {
    const auto gen = gen_;
    wanted_ = true;
    wake();
    lock.wait_for(cv_, std::chrono::seconds(1), [&] {
      mu_.assert_held();
      return gen_ != gen || !running_;
    });
  }
  out.insert(out.end(), families_.begin(), families_.end());
  collected age;
  age.name = "ferry_broker_metrics_snapshot_age_seconds";
  age.help =
      "Age of the partition and group values in this scrape (above 1: the disk thread was busy "
      "and they are from an earlier scrape)";
  age.add({}, std::chrono::duration<double>(steady::now() - at_).count());
  out.push_back(std::move(age));
}

}  // namespace ferry::broker
