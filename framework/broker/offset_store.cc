// Record layout (little-endian), one change per record:
//   key:   group name
//   value: kind u8 | topic_len u16 | topic | partition i32 | offset i64
//          | commit_ms i64 | metadata_len u16 | metadata
// Kinds are offset_change::kind; a kind this broker does not know is
// skipped with a warning (records a newer broker wrote). A ledger record
// (kind 4) has an empty topic, partition 0, offset 0, commit_ms = when its
// keys were recorded and metadata = the idempotency keys packed as
// (u16 length, bytes)...; it is written in the same batch as the commit
// that carried the keys.
#include "offset_store.h"

#include <fmt/format.h>

#include <limits>

#include "ferry/core/endian.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"

namespace ferry::broker {

namespace fs = std::filesystem;

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("groups");
  return l;
}

void put_bytes(std::vector<std::byte>& out, std::string_view s) {
  auto b = reinterpret_cast<const std::byte*>(s.data());
  out.insert(out.end(), b, b + s.size());
}

template <typename T>
void put(std::vector<std::byte>& out, T v) {
  std::byte tmp[sizeof(T)];
  le::store(tmp, v);
  out.insert(out.end(), tmp, tmp + sizeof(T));
}

std::vector<std::byte> encode_value(const offset_change& c) {
  std::vector<std::byte> v;
  v.reserve(32 + c.topic.size() + c.value.metadata.size());
  put<std::uint8_t>(v, static_cast<std::uint8_t>(c.what));
  put<std::uint16_t>(v, static_cast<std::uint16_t>(c.topic.size()));
  put_bytes(v, c.topic);
  put<std::int32_t>(v, c.partition);
  put<std::int64_t>(v, c.value.offset);
  put<std::int64_t>(v, c.value.commit_ms);
  put<std::uint16_t>(v, static_cast<std::uint16_t>(c.value.metadata.size()));
  put_bytes(v, c.value.metadata);
  return v;
}

// False when the bytes are not a whole change.
bool decode_value(std::span<const std::byte> in, offset_change& c) {
  std::size_t at = 0;
  auto need = [&](std::size_t n) { return in.size() - at >= n; };
  auto str = [&](std::size_t n, std::string& out) {
    if (!need(n)) return false;
    out.assign(reinterpret_cast<const char*>(in.data() + at), n);
    at += n;
    return true;
  };
  if (!need(3)) return false;
  c.what = static_cast<offset_change::kind>(le::load<std::uint8_t>(in.data()));
  const auto tlen = le::load<std::uint16_t>(in.data() + 1);
  at = 3;
  if (!str(tlen, c.topic) || !need(4 + 8 + 8 + 2)) return false;
  c.partition = le::load<std::int32_t>(in.data() + at);
  c.value.offset = le::load<std::int64_t>(in.data() + at + 4);
  c.value.commit_ms = le::load<std::int64_t>(in.data() + at + 12);
  const auto mlen = le::load<std::uint16_t>(in.data() + at + 20);
  at += 22;
  return str(mlen, c.value.metadata) && at == in.size();
}

// Removes a log directory (flat: segment and index files) through `env`.
result<void> remove_tree(storage::env& env, const fs::path& dir) {
  FERRY_TRY(bool there, env.exists(dir));
  if (!there) return success();
  FERRY_TRY(auto names, env.list_dir(dir));
  for (const auto& n : names) {
    FERRY_TRY(env.remove_file(dir / n));
  }
  return env.remove_dir(dir);
}

}  // namespace

storage::log_config offset_store::log_config_for(const options& o) {
  storage::log_config lc;
  lc.name = "__group_offsets";
  lc.segment_bytes = 16ull << 20;
  lc.retention_time = std::chrono::milliseconds(-1);  // compaction, not retention, bounds it
  lc.retention_bytes = -1;
  lc.max_batch_bytes = 16u << 20;
  lc.flush = o.flush;
  return lc;
}

result<std::unique_ptr<offset_store>> offset_store::open(storage::env& env, fs::path dir, options o,
                                                         clock& clk) {
  std::unique_ptr<offset_store> s(new offset_store(env, std::move(dir), o, clk));
  const fs::path parent = s->dir_.parent_path();
  const fs::path fresh = s->dir_.string() + ".compact";
  const fs::path old = s->dir_.string() + ".old";
  // <data>/groups is created here on the first start: its entry in <data>
  // must be synced too, or a power cut can take every offset with it.
  FERRY_TRY(bool have_parent, env.exists(parent));
  FERRY_TRY(env.create_dirs(parent));
  if (!have_parent && parent.has_parent_path()) {
    FERRY_TRY(env.sync_dir(parent.parent_path()));
  }
  // Finish or discard a compaction a crash interrupted. `fresh` is complete
  // (synced) before `dir` is ever renamed away, so: no `dir` but `fresh`
  // means the swap was cut between its two renames.
  FERRY_TRY(bool have_dir, env.exists(s->dir_));
  FERRY_TRY(bool have_fresh, env.exists(fresh));
  if (!have_dir && have_fresh) {
    FERRY_TRY(env.rename(fresh, s->dir_));
    FERRY_TRY(env.sync_dir(parent));
    logger()->info("finished an interrupted compaction of the group offsets");
  }
  FERRY_TRY(remove_tree(env, fresh));
  FERRY_TRY(remove_tree(env, old));
  FERRY_TRY(env.create_dirs(s->dir_));
  FERRY_TRY(env.sync_dir(parent));
  FERRY_TRY(s->log_, storage::partition_log::open(env, s->dir_, log_config_for(o), clk));
  FERRY_TRY(s->replay());
  s->latest_ = s->durable_;
  s->compacted_size_ = s->log_->stats().size_bytes;
  return s;
}

result<void> offset_store::replay() {
  offset at = log_->log_start_offset();
  const offset end = log_->high_watermark();
  std::size_t records = 0, unknown = 0;
  while (at < end) {
    FERRY_TRY(auto r, log_->read(at, 1 << 20));
    if (r.batches == 0) break;
    std::span<const std::byte> data(r.data);
    bool bad = false;
    while (!data.empty() && !bad) {
      const auto h = format::batch_header::decode(data.data());
      auto one = data.first(static_cast<std::size_t>(h.size()));
      if (!format::validate_batch(one, format::validation::full)) {
        bad = true;
        break;
      }
      format::for_each_record(one, [&](const format::record_view& rv) {
        offset_change c;
        if (!rv.key || !rv.value || !decode_value(*rv.value, c)) {
          bad = true;
          return false;
        }
        c.group = std::string(rv.key_str());
        if (c.what < offset_change::kind::commit || c.what > offset_change::kind::ledger) {
          ++unknown;
          return true;
        }
        if (c.what == offset_change::kind::ledger) {
          apply_ledger(c);
        } else {
          apply(durable_, c);
          if (c.what == offset_change::kind::delete_group) ledgers_.erase(c.group);
        }
        ++records;
        return true;
      });
      data = data.subspan(static_cast<std::size_t>(h.size()));
    }
    if (bad) {
      logger()->error("group offsets log at {}: an undecodable record near offset {}",
                      dir_.string(), at.value());
      return ferry::errc::corrupt_data;
    }
    at = r.next_offset;
  }
  expire_ledger();
  if (unknown > 0)
    logger()->warn("group offsets: skipped {} records of kinds this broker does not know", unknown);
  logger()->info("group offsets: {} groups from {} records", durable_.size(), records);
  return success();
}

void ledger::record(std::string key, std::int64_t ms) {
  auto [it, fresh] = keys.try_emplace(key, ms);
  if (!fresh) {
    if (it->second >= ms) return;
    it->second = ms;
  }
  order.emplace_back(ms, std::move(key));
}

void ledger::trim(std::int64_t min_ms, std::size_t max_keys) {
  while (!order.empty() && (order.front().first < min_ms || keys.size() > max_keys)) {
    auto& [ms, key] = order.front();
    if (auto it = keys.find(key); it != keys.end() && it->second == ms) keys.erase(it);
    order.pop_front();
  }
}

std::optional<std::int64_t> ledger::find(std::string_view key) const {
  auto it = keys.find(key);
  if (it == keys.end()) return std::nullopt;
  return it->second;
}

std::vector<offset_change> ledger_changes(const std::string& group,
                                          const std::vector<std::string_view>& keys,
                                          std::int64_t ms) {
  std::vector<offset_change> out;
  for (auto k : keys) {
    if (k.size() > 0xFFFF) continue;  // the protocol allows 1024 bytes
    if (out.empty() || out.back().value.metadata.size() + 2 + k.size() > 60'000) {
      offset_change c;
      c.what = offset_change::kind::ledger;
      c.group = group;
      c.value.commit_ms = ms;
      out.push_back(std::move(c));
    }
    auto& m = out.back().value.metadata;
    m.push_back(static_cast<char>(k.size() & 0xFF));
    m.push_back(static_cast<char>(k.size() >> 8));
    m.append(k);
  }
  return out;
}

void offset_store::apply_ledger(const offset_change& c) {
  auto& l = ledgers_[c.group];
  const bool ok = for_each_ledger_key(c.value.metadata, [&](std::string_view key) {
    l.record(std::string(key), c.value.commit_ms);
  });
  if (!ok) logger()->warn("group {}: a malformed ledger record was skipped", c.group);
  l.trim(std::numeric_limits<std::int64_t>::min(), opts_.ledger_max_keys);
}

void offset_store::expire_ledger() {
  const auto min_ms = clock_.wall_now().value() - opts_.ledger_retention.count();
  for (auto it = ledgers_.begin(); it != ledgers_.end();) {
    it->second.trim(min_ms, opts_.ledger_max_keys);
    it = it->second.keys.empty() ? ledgers_.erase(it) : std::next(it);
  }
}

std::optional<std::int64_t> offset_store::ledger_lookup(std::string_view group,
                                                        std::string_view key,
                                                        std::int64_t min_ms) const {
  auto g = ledgers_.find(group);
  if (g == ledgers_.end()) return std::nullopt;
  auto ms = g->second.find(key);
  if (!ms || *ms < min_ms) return std::nullopt;
  return ms;
}

std::size_t offset_store::ledger_size(std::string_view group) const {
  auto g = ledgers_.find(group);
  return g == ledgers_.end() ? 0 : g->second.keys.size();
}

void offset_store::apply(state& s, const offset_change& c) {
  switch (c.what) {
    case offset_change::kind::commit:
      s[c.group][{c.topic, c.partition}] = c.value;
      break;
    case offset_change::kind::delete_group:
      s.erase(c.group);
      break;
    case offset_change::kind::delete_topic:
      for (auto it = s.begin(); it != s.end();) {
        auto& g = it->second;
        for (auto p = g.lower_bound({c.topic, 0}); p != g.end() && p->first.first == c.topic;)
          p = g.erase(p);
        it = g.empty() ? s.erase(it) : std::next(it);
      }
      break;
    case offset_change::kind::ledger:
      break;  // not offsets: see apply_ledger()
  }
}

result<void> offset_store::append(const std::vector<offset_change>& changes) {
  if (changes.empty()) return success();
  format::batch_builder b;
  const auto now = clock_.wall_now();
  for (const auto& c : changes) {
    const auto v = encode_value(c);
    b.add(now, format::as_bytes(c.group), std::span<const std::byte>(v));
  }
  auto bytes = b.finish();
  if (!log_) return storage::errc::partition_failed;
  FERRY_TRY(log_->append(bytes));
  for (const auto& c : changes) {
    if (c.what != offset_change::kind::ledger) apply(latest_, c);
    pending_.push_back(c);
  }
  return success();
}

result<void> offset_store::sync() {
  if (pending_.empty()) return success();
  auto r = log_ ? log_->sync() : result<offset>(storage::errc::partition_failed);
  if (!r) {
    pending_.clear();
    latest_ = durable_;
    return r.error();
  }
  for (const auto& c : pending_) {
    if (c.what == offset_change::kind::ledger) {
      apply_ledger(c);
    } else {
      apply(durable_, c);
      if (c.what == offset_change::kind::delete_group) ledgers_.erase(c.group);
    }
  }
  pending_.clear();
  return success();
}

const committed_offset* offset_store::latest(std::string_view group, const tp_key& tp) const {
  auto g = latest_.find(group);
  if (g == latest_.end()) return nullptr;
  auto it = g->second.find(tp);
  return it == g->second.end() ? nullptr : &it->second;
}

const committed_offset* offset_store::committed(std::string_view group, const tp_key& tp) const {
  auto g = durable_.find(group);
  if (g == durable_.end()) return nullptr;
  auto it = g->second.find(tp);
  return it == g->second.end() ? nullptr : &it->second;
}

void offset_store::maybe_compact() {
  if (!pending_.empty() || failed()) return;
  const auto size = log_->stats().size_bytes;
  if (size < opts_.compact_bytes || size < 2 * compacted_size_) return;
  const fs::path parent = dir_.parent_path();
  const fs::path fresh = dir_.string() + ".compact";
  const fs::path old = dir_.string() + ".old";
  bool swapping = false;
  auto r = [&]() -> result<void> {
    // A leftover `old` (its removal after the last swap failed) would make
    // the first rename of the swap fail after the live log is closed.
    FERRY_TRY(remove_tree(env_, old));
    FERRY_TRY(remove_tree(env_, fresh));
    FERRY_TRY(env_.create_dirs(fresh));
    {
      FERRY_TRY(auto next,
                storage::partition_log::open(env_, fresh, log_config_for(opts_), clock_));
      std::vector<offset_change> batch;
      std::size_t bytes = 0;
      auto flush = [&]() -> result<void> {
        if (batch.empty()) return success();
        format::batch_builder b;
        for (const auto& c : batch) {
          const auto v = encode_value(c);
          b.add(timestamp_ms(c.value.commit_ms), format::as_bytes(c.group),
                std::span<const std::byte>(v));
        }
        auto data = b.finish();
        FERRY_TRY(next->append(data));
        batch.clear();
        bytes = 0;
        return success();
      };
      for (const auto& [group, offsets] : durable_)
        for (const auto& [tp, v] : offsets) {
          batch.push_back({offset_change::kind::commit, group, tp.first, tp.second, v});
          bytes += 64 + group.size() + tp.first.size() + v.metadata.size();
          if (bytes > (1u << 20)) {
            FERRY_TRY(flush());
          }
        }
      // Live ledger keys, oldest first (replay keeps the newest time), keys
      // of the same millisecond packed together.
      for (const auto& entry : ledgers_) {
        const auto& group = entry.first;  // a name, not a binding: lambdas capture it
        const auto& l = entry.second;
        std::vector<std::string_view> same;
        std::int64_t same_ms = 0;
        auto emit = [&]() -> result<void> {
          for (auto& c : ledger_changes(group, same, same_ms)) {
            bytes += 64 + group.size() + c.value.metadata.size();
            batch.push_back(std::move(c));
          }
          same.clear();
          if (bytes > (1u << 20)) {
            FERRY_TRY(flush());
          }
          return success();
        };
        for (const auto& [ms, key] : l.order) {
          auto it = l.keys.find(key);
          if (it == l.keys.end() || it->second != ms) continue;  // stale entry
          if (!same.empty() && ms != same_ms) {
            FERRY_TRY(emit());
          }
          same_ms = ms;
          same.push_back(key);
        }
        if (!same.empty()) {
          FERRY_TRY(emit());
        }
      }
      FERRY_TRY(flush());
      FERRY_TRY(next->sync());
    }
    FERRY_TRY(env_.sync_dir(parent));
    swapping = true;
    log_.reset();
    FERRY_TRY(env_.rename(dir_, old));
    FERRY_TRY(env_.rename(fresh, dir_));
    FERRY_TRY(env_.sync_dir(parent));
    FERRY_TRY(log_, storage::partition_log::open(env_, dir_, log_config_for(opts_), clock_));
    (void)remove_tree(env_, old);
    return success();
  }();
  if (!r) {
    if (swapping) {
      // Cut between closing the old log and opening the new one: nothing
      // can be committed until a restart, where open() finishes the swap.
      log_.reset();
      logger()->critical(
          "compacting the group offsets failed: {}; group offsets unavailable until the broker "
          "restarts (the restart finishes the swap)",
          r.error().message());
    } else {
      logger()->error("compacting the group offsets failed: {}; the old log stays in use",
                      r.error().message());
    }
    compacted_size_ = size;  // do not retry at once
    return;
  }
  compacted_size_ = log_->stats().size_bytes;
  logger()->info("compacted the group offsets: {} -> {} bytes", size, compacted_size_);
}

}  // namespace ferry::broker
