#include "topic_table.h"

#include <fmt/format.h>

#include "ferry/core/clock.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/storage/env.h"
#include "janitor.h"

namespace ferry::broker {

namespace fs = std::filesystem;
using wire::ErrorCode;

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("broker");
  return l;
}

}  // namespace

topic_table::topic_table(const broker_config& cfg, broker_metrics& stats, janitor& j)
    : cfg_(cfg), stats_(stats), janitor_(j), dir_(cfg.data_dir / "topics") {}

result<void> topic_table::open_partitions(topic& t) {
  return open_partitions(t, 0, t.settings.partitions, t.partitions);
}

result<void> topic_table::open_partitions(const topic& t, std::int32_t from, std::int32_t to,
                                          std::vector<std::unique_ptr<partition>>& out) {
  for (std::int32_t p = from; p < to; ++p) {
    auto dir = dir_ / t.name / std::to_string(p);
    auto log = storage::partition_log::open(storage::posix_env(), dir,
                                            log_config_for(t.name, p, t.settings, cfg_),
                                            system_clock::instance());
    if (!log) {
      logger()->error("topic {}: cannot open partition {}: {}", t.name, p, log.error().message());
      return log.error();
    }
    auto part = std::make_unique<partition>();
    part->topic = t.name;
    part->id = p;
    // Idempotent producers: rebuilt from the log tail (producer_state.h).
    auto scan = part->producers.rebuild(storage::posix_env(), dir, *log.value(),
                                        system_clock::instance().wall_now().value());
    if (!scan)
      logger()->warn("topic {}: partition {}: rebuilding producer state stopped early: {}", t.name,
                     p, scan.error().message());
    else if (part->producers.size() > 0)
      logger()->info("topic {}: partition {}: {} producers from {} bytes of log tail", t.name, p,
                     part->producers.size(), scan.value().bytes);
    part->log = std::move(log).value();
    out.push_back(std::move(part));
  }
  return success();
}

result<void> topic_table::load() {
  auto& env = storage::posix_env();
  FERRY_TRY(env.create_dirs(dir_));
  FERRY_TRY(env.sync_dir(cfg_.data_dir));
  FERRY_TRY(auto names, env.list_dir(dir_));
  for (const auto& n : names) {
    auto dir = dir_ / n;
    if (n.rfind(".deleted-", 0) == 0) {
      std::error_code ec;
      fs::remove_all(dir, ec);
      continue;
    }
    if (n.rfind(".creating-", 0) == 0) {
      // A creation cut short (a crash, or its cleanup failed): it was never
      // answered as created, so it never existed.
      logger()->warn("removing {}: a topic creation that did not finish", dir.string());
      std::error_code ec;
      fs::remove_all(dir, ec);
      continue;
    }
    auto meta = storage::read_file(env, dir / "topic.json");
    if (!meta) {
      logger()->warn("ignoring {}: no topic.json (a topic creation that did not finish)",
                     dir.string());
      continue;
    }
    std::string why;
    auto parsed = settings_from_json(meta.value(), &why);
    if (!parsed) {
      logger()->error("{}/topic.json is unreadable ({}); refusing to start: fix or remove it",
                      dir.string(), why);
      return ferry::errc::corrupt_data;
    }
    topic t;
    t.name = std::move(parsed->first);
    t.settings = std::move(parsed->second);
    if (t.name != n || t.settings.partitions < 1) {
      logger()->error("{}/topic.json does not match its directory; refusing to start",
                      dir.string());
      return ferry::errc::corrupt_data;
    }
    FERRY_TRY(open_partitions(t));
    t.counters = stats_.for_topic(t.name);
    logger()->info("loaded topic {} ({} partitions)", t.name, t.settings.partitions);
    auto name = t.name;
    auto [it, _] = topics_.emplace(std::move(name), std::move(t));
    for (auto& p : it->second.partitions) p->counters = &it->second.counters;
  }
  return success();
}

outcome topic_table::create(std::string_view name, topic_settings s) {
  if (topics_.count(name))
    return {ErrorCode::TopicAlreadyExists, fmt::format("topic {} already exists", name)};
  topic t;
  t.name = std::string(name);
  t.settings = std::move(s);
  auto& env = storage::posix_env();
  // Built aside, then one durable rename: a failure (too many partitions for
  // the fd limit, a full disk) or a crash leaves no topic behind, and never
  // one that comes back at the next start (load() removes .creating-*).
  const auto staging =
      dir_ /
      fmt::format(".creating-{}-{}", system_clock::instance().wall_now().value(), ++creations_);
  const auto dir = dir_ / t.name;
  auto aside = [&]() -> result<void> {
    FERRY_TRY(env.create_dirs(staging));
    FERRY_TRY(storage::write_file_atomic(env, staging / "topic.json",
                                         settings_to_json(t.name, t.settings)));
    {
      // Each partition's first segment, all open at once as when serving
      // (so a topic too big for the fd limit fails here, not after the
      // rename), then closed: the logs are reopened from their final place.
      std::vector<std::unique_ptr<storage::partition_log>> logs;
      logs.reserve(static_cast<std::size_t>(t.settings.partitions));
      for (std::int32_t p = 0; p < t.settings.partitions; ++p) {
        auto log = storage::partition_log::open(env, staging / std::to_string(p),
                                                log_config_for(t.name, p, t.settings, cfg_),
                                                system_clock::instance());
        if (!log) {
          logs.clear();  // the fds back first: logging may need one
          logger()->error("creating topic {}: partition {}: {}", t.name, p, log.error().message());
          return log.error();
        }
        logs.push_back(std::move(log).value());
      }
    }
    FERRY_TRY(env.sync_dir(staging));
    std::error_code ec;
    fs::rename(staging, dir, ec);
    if (ec) return ec;
    return env.sync_dir(dir_);
  }();
  if (!aside) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    return {ErrorCode::Internal, fmt::format("creating topic {} failed, nothing was created: {}",
                                             name, aside.error().message())};
  }
  if (auto opened = open_partitions(t); !opened) {
    // In place but not servable now: undo it the way a deletion does.
    t.partitions.clear();
    const auto gone = dir_ / fmt::format(".deleted-{}-{}",
                                         system_clock::instance().wall_now().value(), ++deletions_);
    std::error_code ec;
    fs::rename(dir, gone, ec);
    (void)env.sync_dir(dir_);
    janitor_.post([gone] {
      std::error_code e;
      fs::remove_all(gone, e);
    });
    return {ErrorCode::Internal, fmt::format("creating topic {} failed, nothing was created: {}",
                                             name, opened.error().message())};
  }
  logger()->info("created topic {} ({} partitions)", t.name, t.settings.partitions);
  t.counters = stats_.for_topic(t.name);
  auto [it, _] = topics_.emplace(t.name, std::move(t));
  for (auto& p : it->second.partitions) p->counters = &it->second.counters;
  return {};
}

outcome topic_table::remove(std::string_view name, const std::function<void(partition&)>& gone) {
  auto it = topics_.find(name);
  if (it == topics_.end()) return {ErrorCode::UnknownTopic, fmt::format("unknown topic {}", name)};
  auto from = dir_ / it->first;
  // A short, unique name (topic names may be long); open logs survive the rename.
  auto to = dir_ / fmt::format(".deleted-{}-{}", system_clock::instance().wall_now().value(),
                               ++deletions_);
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) return {ErrorCode::Internal, fmt::format("deleting topic {}: {}", name, ec.message())};
  if (auto r = storage::posix_env().sync_dir(dir_); !r) {
    // Not durable: undo the rename so the topic keeps serving where it
    // was, and report the failure; the client may retry the deletion.
    fs::rename(to, from, ec);
    return {ErrorCode::Internal, fmt::format("deleting topic {}: {}", name, r.error().message())};
  }
  stats_.forget_topic(it->first);
  auto parts = std::move(it->second.partitions);
  topics_.erase(it);
  for (auto& p : parts) {
    p->counters = nullptr;
    gone(*p);
  }
  // Closing thousands of segment files and unlinking them is the janitor's
  // work: the core thread answers heartbeats and produces meanwhile.
  janitor_.post([parts = std::move(parts), to]() mutable {
    parts.clear();
    std::error_code e;
    fs::remove_all(to, e);
  });
  logger()->info("deleted topic {}", name);
  return {};
}

outcome topic_table::update(topic& t, topic_settings s) {
  auto r = storage::write_file_atomic(storage::posix_env(), dir_ / t.name / "topic.json",
                                      settings_to_json(t.name, s));
  if (!r)
    return {ErrorCode::Internal,
            fmt::format("updating topic {} failed: {}", t.name, r.error().message())};
  t.settings = std::move(s);
  return {};
}

outcome topic_table::alter(topic& t, topic_settings s) {
  const auto old_count = t.settings.partitions;
  std::vector<std::unique_ptr<partition>> added;
  auto removed_added = [&] {
    added.clear();  // close before removing the files
    std::error_code ec;
    for (auto p = old_count; p < s.partitions; ++p)
      fs::remove_all(dir_ / t.name / std::to_string(p), ec);
  };
  if (s.partitions > old_count) {
    // A directory left by an earlier addition that did not finish is not
    // part of the topic (topic.json says so): start it afresh.
    removed_added();
    if (auto r = open_partitions(t, old_count, s.partitions, added); !r) {
      removed_added();
      return {ErrorCode::Internal,
              fmt::format("adding partitions to topic {} failed: {}", t.name, r.error().message())};
    }
    if (auto r = storage::posix_env().sync_dir(dir_ / t.name); !r) {
      removed_added();
      return {ErrorCode::Internal,
              fmt::format("adding partitions to topic {} failed: {}", t.name, r.error().message())};
    }
  }
  // The one durable step: before it the topic is as it was (new partition
  // directories are ignored and replaced at the next addition), after it the
  // topic has its new settings.
  const auto meta = dir_ / t.name / "topic.json";
  auto r = storage::write_file_atomic(storage::posix_env(), meta, settings_to_json(t.name, s));
  if (!r) {
    // The failure may come after the rename (syncing the directory): then
    // the new settings are what the next start reads, so they are what
    // this broker must serve too.
    std::string why;
    auto now = storage::read_file(storage::posix_env(), meta);
    std::optional<std::pair<std::string, topic_settings>> parsed;
    if (now) parsed = settings_from_json(now.value(), &why);
    const bool took = parsed && parsed->second.partitions == s.partitions &&
                      parsed->second.retention_ms == s.retention_ms &&
                      parsed->second.retention_bytes == s.retention_bytes &&
                      parsed->second.max_message_bytes == s.max_message_bytes;
    if (!took) {
      removed_added();
      return {ErrorCode::Internal,
              fmt::format("altering topic {} failed: {}", t.name, r.error().message())};
    }
    logger()->warn(
        "topic {}: the new topic.json is in place but its sync failed ({}); "
        "serving the new settings, which a restart reads too",
        t.name, r.error().message());
  }
  for (auto& p : added) {
    p->counters = &t.counters;
    t.partitions.push_back(std::move(p));
  }
  for (auto& p : t.partitions)
    p->log->set_limits(std::chrono::milliseconds(s.retention_ms), s.retention_bytes,
                       static_cast<std::uint32_t>(s.max_message_bytes));
  t.settings = std::move(s);
  return {};
}

topic* topic_table::find(std::string_view name) {
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : &it->second;
}

const topic* topic_table::find(std::string_view name) const {
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : &it->second;
}

partition* topic_table::find(std::string_view name, std::int32_t p, ErrorCode& err) {
  auto* t = find(name);
  if (t == nullptr) {
    err = ErrorCode::UnknownTopic;
    return nullptr;
  }
  if (p < 0 || p >= static_cast<std::int32_t>(t->partitions.size())) {
    err = ErrorCode::UnknownPartition;
    return nullptr;
  }
  err = ErrorCode::None;
  return t->partitions[static_cast<std::size_t>(p)].get();
}

std::string topic_table::missing(std::string_view name, std::int32_t p, ErrorCode err) {
  return err == ErrorCode::UnknownTopic ? fmt::format("unknown topic {}", name)
                                        : fmt::format("topic {} has no partition {}", name, p);
}

std::int32_t topic_table::partition_count(std::string_view name) const {
  const auto* t = find(name);
  return t == nullptr ? 0 : t->settings.partitions;
}

}  // namespace ferry::broker
