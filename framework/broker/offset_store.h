// Durable committed offsets of consumer groups (private to the broker).
//
// Every change is a record in an internal partition_log at
// <data>/groups/offsets (same batch format, CRC and recovery as topics):
// the record key is the group name, the value one change (layout in
// offset_store.cc). Opening replays the log into memory. A change becomes
// visible to readers (committed(), groups()) only after sync() made it
// durable; validate against latest() — which includes changes appended but
// not yet synced — so that two commits in one round cannot move an offset
// backwards. When a sync fails the pending changes are dropped and the log
// fails stop: later appends fail with storage::errc::partition_failed.
//
// The log is compacted when it grows past compact_bytes: the live state is
// written to a fresh log beside it (offsets.compact), synced, and swapped in
// with two renames; open() finishes or discards a swap a crash interrupted.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "assignor.h"
#include "ferry/core/clock.h"
#include "ferry/core/result.h"
#include "ferry/storage/env.h"
#include "ferry/storage/errc.h"
#include "ferry/storage/log.h"

namespace ferry::broker {

struct committed_offset {
  std::int64_t offset = -1;
  std::string metadata;
  std::int64_t commit_ms = 0;  ///< broker wall clock when committed
};

/// One change to the stored state.
struct offset_change {
  enum class kind : std::uint8_t {
    commit = 1,        ///< group/topic/partition := value
    delete_group = 2,  ///< every offset of `group`
    delete_topic = 3,  ///< every group's offsets for `topic` (group empty)
    ledger = 4,        ///< idempotency keys (packed in value.metadata) processed at value.commit_ms
  };
  kind what = kind::commit;
  std::string group;
  std::string topic;
  std::int32_t partition = 0;
  committed_offset value;
};

/// A group's ledger of processed idempotency keys: key -> when it was
/// recorded (broker wall clock, ms). Bounded by a retention time and a key
/// count; the oldest keys go first.
struct ledger {
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::unordered_map<std::string, std::int64_t, string_hash, std::equal_to<>> keys;
  std::deque<std::pair<std::int64_t, std::string>>
      order;  // recording order; may hold stale entries

  void record(std::string key, std::int64_t ms);
  /// Drops keys recorded before `min_ms` and the oldest beyond `max_keys`.
  void trim(std::int64_t min_ms, std::size_t max_keys);
  [[nodiscard]] std::optional<std::int64_t> find(std::string_view key) const;
};

/// Ledger changes for `keys` recorded at `ms`: keys packed as (u16 length,
/// bytes)... into as few kind::ledger changes as fit (metadata <= 60000 bytes).
[[nodiscard]] std::vector<offset_change> ledger_changes(const std::string& group,
                                                        const std::vector<std::string_view>& keys,
                                                        std::int64_t ms);
/// Calls fn(string_view key) for each key packed in a ledger change; false
/// when the packing is malformed.
template <typename Fn>
bool for_each_ledger_key(std::string_view packed, Fn&& fn) {
  while (!packed.empty()) {
    if (packed.size() < 2) return false;
    const auto n = static_cast<std::size_t>(static_cast<unsigned char>(packed[0]) |
                                            (static_cast<unsigned char>(packed[1]) << 8));
    if (packed.size() - 2 < n) return false;
    fn(packed.substr(2, n));
    packed.remove_prefix(2 + n);
  }
  return true;
}

class offset_store {
 public:
  using group_offsets = std::map<tp_key, committed_offset>;
  using state = std::map<std::string, group_offsets, std::less<>>;

  struct options {
    std::uint64_t compact_bytes = 64ull << 20;
    storage::flush_mode flush = storage::flush_mode::on_commit;
    /// Ledger bounds (see ledger): keys older than this are forgotten ...
    std::chrono::milliseconds ledger_retention{std::chrono::hours(24 * 7)};
    /// ... and beyond this many per group the oldest are.
    std::size_t ledger_max_keys = 1'000'000;
  };

  [[nodiscard]] static result<std::unique_ptr<offset_store>> open(storage::env& env,
                                                                  std::filesystem::path dir,
                                                                  options o, clock& clk);

  /// Appends `changes` as one batch (all or nothing) and applies them to
  /// latest(); durable and visible after the next successful sync().
  [[nodiscard]] result<void> append(const std::vector<offset_change>& changes);
  /// Makes every appended change durable and visible. On failure the
  /// pending changes are dropped (latest() reverts to the durable state).
  [[nodiscard]] result<void> sync();
  [[nodiscard]] bool has_pending() const noexcept { return !pending_.empty(); }

  /// The durable state.
  [[nodiscard]] const state& groups() const noexcept { return durable_; }
  /// Durable plus appended-but-unsynced changes.
  [[nodiscard]] const committed_offset* latest(std::string_view group, const tp_key& tp) const;
  [[nodiscard]] const committed_offset* committed(std::string_view group, const tp_key& tp) const;
  /// When `key` was recorded in the group's durable ledger, if it is there
  /// and was recorded at or after `min_ms`.
  [[nodiscard]] std::optional<std::int64_t> ledger_lookup(std::string_view group,
                                                          std::string_view key,
                                                          std::int64_t min_ms) const;
  [[nodiscard]] std::size_t ledger_size(std::string_view group) const;
  /// Forgets ledger keys past the retention (in memory; compaction drops
  /// them from the log). Call between rounds.
  void expire_ledger();

  /// Rewrites the log when it has grown past compact_bytes (call between
  /// rounds, with nothing pending). Failures are logged and leave the old
  /// log in place.
  void maybe_compact();

  [[nodiscard]] bool failed() const noexcept { return !log_ || log_->failed(); }
  [[nodiscard]] std::string failure_reason() const {
    return log_ ? log_->failure_reason() : "the group offsets log is closed (restart the broker)";
  }
  [[nodiscard]] std::uint64_t size_bytes() const { return log_ ? log_->stats().size_bytes : 0; }

 private:
  offset_store(storage::env& env, std::filesystem::path dir, options o, clock& clk)
      : env_(env), dir_(std::move(dir)), opts_(o), clock_(clk) {}
  static storage::log_config log_config_for(const options& o);
  result<void> replay();
  static void apply(state& s, const offset_change& c);
  void apply_ledger(const offset_change& c);

  storage::env& env_;
  std::filesystem::path dir_;
  options opts_;
  clock& clock_;
  std::unique_ptr<storage::partition_log> log_;
  state durable_;
  state latest_;
  std::map<std::string, ledger, std::less<>> ledgers_;  // durable only
  std::vector<offset_change> pending_;
  std::uint64_t compacted_size_ = 0;  // size right after the last compaction
};

}  // namespace ferry::broker
