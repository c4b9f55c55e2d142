#include "ferry/storage/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "ferry/core/crash_point.h"
#include "ferry/core/endian.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "ferry/storage/errc.h"
#include "index.h"

namespace ferry::storage {

using detail::segment_index;
using format::batch_header;
using format::for_each_record;
using format::kBatchHeaderSize;
using format::kBatchMagic;
using format::kMaxBatchBytes;
using format::record_view;
using format::validate_batch;
using format::validation;
namespace layout = format::layout;

std::string segment_file_name(offset base, std::string_view suffix) {
  return fmt::format("{:020d}{}", base.value(), suffix);
}

namespace {

constexpr std::string_view kLogSuffix = ".log";
constexpr std::string_view kIndexSuffix = ".index";
constexpr std::string_view kTimeIndexSuffix = ".timeindex";
constexpr std::string_view kDeletedSuffix = ".deleted";
constexpr std::size_t kMinBatchBytes = kBatchHeaderSize + 7;
// The partition leader epoch the log stamps into every batch (one node, no
// leader changes). The CRC does not cover it; checking it on every read is
// what detects a flipped bit there.
constexpr std::int32_t kLeaderEpoch = 0;

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("storage");
  return l;
}

bool is_no_space(std::error_code ec) {
  return ec == std::errc::no_space_on_device || ec.value() == EDQUOT;
}

struct segment {
  offset base;
  fs::path log_path;
  std::unique_ptr<file> f;
  std::uint64_t size = 0;    // bytes written to the OS
  std::uint64_t synced = 0;  // bytes known durable
  offset next;               // offset after the last batch
  bool sealed = false;
  bool index_loaded = false;
  segment_index idx;
  std::optional<std::uint64_t> corrupt_at;  // data from here on is known bad
  std::optional<offset> valid_end;  // with corrupt_at from a scan: offset after the last good batch
  std::optional<offset> corrupt_offset;  // the offset the damaged batch should start at, if known
  timestamp_ms created;                  // for roll by age

  fs::path path(std::string_view suffix) const {
    return log_path.parent_path() / segment_file_name(base, suffix);
  }
};

// Result of scanning a segment from position 0.
struct scan_result {
  std::uint64_t valid_bytes = 0;
  offset next;
  segment_index idx;
  bool clean = true;        // reached end of file exactly
  bool incomplete = false;  // stopped at a batch that runs past the end of the file
  std::string reason;
};

// Reads and fully validates every batch from the start of `f`, checking that
// offsets continue without gaps from `base`.
result<scan_result> scan_segment(const file& f, offset base, std::uint64_t file_size,
                                 std::uint32_t interval) {
  scan_result r;
  r.next = base;
  std::vector<std::byte> buf;
  std::uint64_t pos = 0;
  std::byte hdr[kBatchHeaderSize];
  while (pos < file_size) {
    if (file_size - pos < kBatchHeaderSize) {
      r.clean = false;
      r.incomplete = true;
      r.reason = fmt::format("{} trailing bytes, shorter than a batch header", file_size - pos);
      break;
    }
    FERRY_TRY(auto n, f.read_at(pos, hdr));
    if (n != kBatchHeaderSize) {
      r.clean = false;
      r.incomplete = true;
      r.reason = "short read of batch header";
      break;
    }
    auto h = batch_header::decode(hdr);
    if (h.size() < kMinBatchBytes || h.size() > kMaxBatchBytes) {
      r.clean = false;
      r.reason = fmt::format("implausible batch_length {}", h.size());
      break;
    }
    if (pos + h.size() > file_size) {
      r.clean = false;
      r.incomplete = true;
      r.reason = fmt::format("batch of {} bytes runs past the end of the file", h.size());
      break;
    }
    buf.resize(h.size());
    FERRY_TRY(auto m, f.read_at(pos, buf));
    if (m != buf.size()) {
      r.clean = false;
      r.incomplete = true;
      r.reason = "short read of batch";
      break;
    }
    std::string why;
    auto v = validate_batch(buf, validation::full, &why);
    if (!v) {
      r.clean = false;
      r.reason = why;
      break;
    }
    if (h.partition_leader_epoch != kLeaderEpoch) {
      r.clean = false;
      r.reason = fmt::format("partition leader epoch {} (the log writes {})",
                             h.partition_leader_epoch, kLeaderEpoch);
      break;
    }
    if (h.base_offset != r.next) {
      r.clean = false;
      r.reason = fmt::format("batch base offset {} where {} was expected", h.base_offset, r.next);
      break;
    }
    r.idx.on_batch(static_cast<std::uint32_t>(pos),
                   static_cast<std::uint32_t>(h.base_offset - base),
                   static_cast<std::uint32_t>(h.size()), h.max_timestamp, interval);
    r.next = h.next_offset();
    pos += h.size();
  }
  r.valid_bytes = pos;
  return r;
}

// After an invalid batch at `from`: is there any valid batch later in the
// file whose offset could follow `expected`? If so the bad batch is not a
// torn tail but damage in the middle of data that was written after it.
result<std::optional<std::uint64_t>> find_valid_batch_after(const file& f, std::uint64_t from,
                                                            offset expected,
                                                            std::uint64_t file_size) {
  if (file_size <= from + 1) return std::optional<std::uint64_t>();
  std::vector<std::byte> rest(file_size - from);
  FERRY_TRY(auto n, f.read_at(from, rest));
  rest.resize(n);
  for (std::size_t q = 1; q + kBatchHeaderSize <= rest.size(); ++q) {
    const std::byte* p = rest.data() + q;
    if (be::load<std::int8_t>(p + layout::magic) != kBatchMagic) continue;
    const auto h = batch_header::decode(p);
    const auto len = h.size();
    if (len < kMinBatchBytes || len > kMaxBatchBytes || q + len > rest.size()) continue;
    const auto base = h.base_offset;
    if (base < expected || base - expected > (std::int64_t{1} << 31)) continue;
    if (validate_batch(std::span<const std::byte>(p, static_cast<std::size_t>(len)),
                       validation::header_and_crc))
      return from + q;
  }
  return std::optional<std::uint64_t>();
}

}  // namespace

struct partition_log::impl {
  env& e;
  fs::path dir;
  log_config cfg;
  // Rate limit of the disk-full warning (append()).
  std::chrono::steady_clock::time_point next_no_space_log{};
  std::uint64_t no_space_unlogged = 0;
  const clock& clk;
  std::vector<std::unique_ptr<segment>> segs;  // ordered by base offset; back() is active
  offset log_end;
  offset hw;
  std::uint64_t total_size = 0;
  bool dir_dirty = false;
  std::error_code failed_ec;
  std::string failure;
  recovery_report report;
  std::vector<fs::path> pending_deletes;
  std::uint64_t syncs = 0;
  std::uint64_t appends = 0;
  std::chrono::steady_clock::time_point last_sync;

  impl(env& en, fs::path d, log_config c, const clock& ck)
      : e(en), dir(std::move(d)), cfg(std::move(c)), clk(ck) {
    if (cfg.name.empty()) cfg.name = dir.filename().string();
    last_sync = clk.steady_now();
  }

  segment& active() { return *segs.back(); }

  std::error_code fail_stop(std::error_code ec, const std::string& what) {
    if (!failed_ec) {
      failed_ec = ec;
      failure = fmt::format(
          "partition {} failed stop: {}: {} (log end offset {}, high watermark {}). Nothing after "
          "this is acknowledged; fix the disk, then restart the broker to recover the partition "
          "from what is on disk",
          cfg.name, what, ec.message(), log_end, hw);
      logger()->error("{}", failure);
    }
    return errc::partition_failed;
  }

  result<void> check_healthy() const {
    if (failed_ec) return errc::partition_failed;
    return success();
  }

  // --- opening -------------------------------------------------------------

  result<std::unique_ptr<segment>> open_segment(offset base) {
    auto s = std::make_unique<segment>();
    s->base = base;
    s->log_path = dir / segment_file_name(base, kLogSuffix);
    FERRY_TRY(s->f, e.open(s->log_path, open_mode::read_write));
    s->size = s->f->size();
    s->synced = s->size;
    s->next = base;
    s->created = clk.wall_now();
    return s;
  }

  void write_indexes(segment& s) {
    // Derived data: written without sync; a torn or stale file fails its
    // checks on load and is rebuilt. Errors here are logged, not fatal.
    detail::index_header h{detail::index_kind::offset, s.base, s.size, s.next,
                           s.idx.max_timestamp,        0};
    auto oi = detail::encode_offset_index(h, s.idx.offsets);
    h.kind = detail::index_kind::time;
    auto ti = detail::encode_time_index(h, s.idx.times);
    for (const auto& item : {std::pair{kIndexSuffix, &oi}, std::pair{kTimeIndexSuffix, &ti}}) {
      auto p = s.path(item.first);
      const std::vector<std::byte>& bytes = *item.second;
      auto r = [&]() -> result<void> {
        FERRY_TRY(auto f, e.open(p, open_mode::create));
        FERRY_TRY(f->truncate(0));
        return f->append(bytes);
      }();
      if (!r)
        logger()->warn("partition {}: writing index {} failed: {}", cfg.name, p.string(),
                       r.error().message());
    }
  }

  void remove_indexes(const segment& s) {
    for (auto suffix : {kIndexSuffix, kTimeIndexSuffix}) {
      auto p = s.path(suffix);
      if (auto ex = e.exists(p); ex && ex.value()) (void)e.remove_file(p);
    }
  }

  // Rebuilds a sealed segment's index by scanning it. Corruption found here
  // is recorded (never served) but does not stop the log opening.
  result<void> rebuild_sealed(segment& s, std::optional<offset> expected_next) {
    FERRY_TRY(auto r, scan_segment(*s.f, s.base, s.size, cfg.index_interval_bytes));
    report.bytes_scanned += r.valid_bytes;
    ++report.indexes_rebuilt;
    s.idx = std::move(r.idx);
    s.index_loaded = true;
    if (!r.clean) {
      s.corrupt_at = r.valid_bytes;
      s.valid_end = r.next;
      ++report.corrupt_segments;
      logger()->error(
          "partition {}: sealed segment {} is corrupt at byte {} ({}); offsets from {} are not "
          "served",
          cfg.name, s.log_path.filename().string(), r.valid_bytes, r.reason, r.next);
      s.next = expected_next.value_or(r.next);
      return success();
    }
    s.next = r.next;
    if (expected_next && *expected_next != r.next) {
      s.corrupt_at = r.valid_bytes;
      ++report.corrupt_segments;
      logger()->error(
          "partition {}: sealed segment {} ends at offset {} but the next segment starts at {}",
          cfg.name, s.log_path.filename().string(), r.next, *expected_next);
    }
    write_indexes(s);
    return success();
  }

  // Opens a sealed segment cheaply from its index header when it matches.
  result<void> load_sealed(segment& s, std::optional<offset> expected_next) {
    s.sealed = true;
    auto hdr_bytes = read_file(e, s.path(kIndexSuffix));
    auto thdr_bytes = read_file(e, s.path(kTimeIndexSuffix));
    if (hdr_bytes && thdr_bytes) {
      auto h = detail::decode_index_header(hdr_bytes.value());
      auto th = detail::decode_index_header(thdr_bytes.value());
      if (h && th && h->kind == detail::index_kind::offset &&
          th->kind == detail::index_kind::time && h->base_offset == s.base &&
          h->log_size == s.size && th->log_size == s.size && h->next_offset == th->next_offset &&
          h->max_timestamp == th->max_timestamp &&
          (!expected_next || *expected_next == h->next_offset) && h->next_offset > s.base) {
        s.next = h->next_offset;
        s.idx.max_timestamp = h->max_timestamp;
        return success();  // entries load (and are CRC-checked) on first use
      }
    }
    logger()->warn("partition {}: index of {} missing or stale; rebuilding", cfg.name,
                   s.log_path.filename().string());
    return rebuild_sealed(s, expected_next);
  }

  // Loads a sealed segment's index entries on first use.
  result<void> ensure_index(segment& s) {
    if (s.index_loaded) return success();
    detail::index_header expect{detail::index_kind::offset, s.base, s.size, s.next,
                                s.idx.max_timestamp,        0};
    auto ob = read_file(e, s.path(kIndexSuffix));
    auto tb = read_file(e, s.path(kTimeIndexSuffix));
    if (ob && tb) {
      auto oi = detail::decode_offset_index(ob.value(), expect);
      expect.kind = detail::index_kind::time;
      auto ti = detail::decode_time_index(tb.value(), expect);
      if (oi && ti) {
        s.idx.offsets = std::move(*oi);
        s.idx.times = std::move(*ti);
        s.index_loaded = true;
        return success();
      }
    }
    logger()->warn("partition {}: index of {} is damaged; rebuilding", cfg.name,
                   s.log_path.filename().string());
    return rebuild_sealed(s, s.next);
  }

  // Scans the active segment; cuts a torn tail, refuses mid-log corruption.
  result<void> recover_active(segment& s) {
    FERRY_TRY(auto r, scan_segment(*s.f, s.base, s.size, cfg.index_interval_bytes));
    report.bytes_scanned += r.valid_bytes;
    if (!r.clean) {
      FERRY_TRY(auto later, find_valid_batch_after(*s.f, r.valid_bytes, r.next, s.size));
      if (later && cfg.recovery == recovery_policy::fail) {
        return fail_open(fmt::format(
            "partition {}: segment {} has an invalid batch at byte {} ({}) but valid data follows "
            "at byte {}. "
            "That is corruption of written data, not a torn tail; refusing to truncate it. Inspect "
            "the file, "
            "restore it, or accept losing offsets from {} by setting storage recovery policy to "
            "\"truncate\"",
            cfg.name, s.log_path.filename().string(), r.valid_bytes, r.reason, *later, r.next));
      }
      std::uint64_t cut = s.size - r.valid_bytes;
      logger()->warn("partition {}: truncating {} bytes of torn tail from {} at byte {} ({})",
                     cfg.name, cut, s.log_path.filename().string(), r.valid_bytes, r.reason);
      FERRY_TRY(s.f->truncate(r.valid_bytes));
      report.truncated_bytes += cut;
      s.size = s.synced = r.valid_bytes;
    }
    // What survived a process crash may still be only in the page cache:
    // make it durable before it counts as committed.
    FERRY_TRY(s.f->sync());
    s.idx = std::move(r.idx);
    s.next = r.next;
    s.index_loaded = true;
    s.sealed = false;
    remove_indexes(s);  // an active segment's index lives in memory only
    return success();
  }

  std::error_code fail_open(const std::string& msg) {
    logger()->error("{}", msg);
    return errc::corrupt_log;
  }

  result<void> create_segment(offset base) {
    auto p = dir / segment_file_name(base, kLogSuffix);
    {
      FERRY_TRY(auto f, e.open(p, open_mode::create));
      if (f->size() != 0) {
        FERRY_TRY(f->truncate(0));
      }
    }
    FERRY_TRY(auto s, open_segment(base));
    s->index_loaded = true;
    segs.push_back(std::move(s));
    dir_dirty = true;
    return success();
  }

  result<void> open_all() {
    auto t0 = std::chrono::steady_clock::now();
    FERRY_TRY(auto existed, e.exists(dir));
    FERRY_TRY(e.create_dirs(dir));
    if (!existed && dir.has_parent_path()) {
      FERRY_TRY(e.sync_dir(dir.parent_path()));
    }
    FERRY_TRY(auto names, e.list_dir(dir));
    std::vector<offset> bases;
    std::vector<std::string> stray;
    for (const auto& n : names) {
      auto ends = [&](std::string_view suf) { return n.size() > suf.size() && n.ends_with(suf); };
      if (ends(kDeletedSuffix) || ends(".tmp")) {
        stray.push_back(n);
      } else if (ends(kLogSuffix) && n.size() == 20 + kLogSuffix.size()) {
        std::int64_t b = 0;
        bool ok =
            std::all_of(n.begin(), n.begin() + 20, [](char c) { return c >= '0' && c <= '9'; });
        if (ok) {
          for (int i = 0; i < 20; ++i) b = b * 10 + (n[static_cast<std::size_t>(i)] - '0');
          bases.emplace_back(b);
        }
      }
    }
    for (const auto& n : stray) (void)e.remove_file(dir / n);
    std::sort(bases.begin(), bases.end());
    for (std::size_t i = 0; i < bases.size(); ++i) {
      FERRY_TRY(auto s, open_segment(bases[i]));
      segs.push_back(std::move(s));
    }
    report.segments = segs.size();
    for (std::size_t i = 0; i + 1 < segs.size(); ++i) {
      FERRY_TRY(load_sealed(*segs[i], segs[i + 1]->base));
    }
    if (segs.empty()) {
      FERRY_TRY(create_segment(offset(0)));
      FERRY_TRY(e.sync_dir(dir));
      dir_dirty = false;
    } else {
      FERRY_TRY(recover_active(active()));
      // A segment created just before a crash may have an unsynced entry.
      FERRY_TRY(e.sync_dir(dir));
    }
    for (auto& s : segs) total_size += s->size;
    log_end = active().next;
    hw = log_end;
    report.duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t0);
    logger()->info(
        "partition {}: opened {} segment(s), offsets [{}, {}), scanned {} bytes in {} us", cfg.name,
        segs.size(), segs.front()->base, log_end, report.bytes_scanned, report.duration.count());
    return success();
  }

  // --- writing -------------------------------------------------------------

  result<void> sync_all() {
    FERRY_TRY(check_healthy());
    for (auto& s : segs) {
      if (s->synced == s->size) continue;
      if (auto r = s->f->sync(); !r)
        return fail_stop(r.error(), fmt::format("fdatasync of {}", s->log_path.string()));
      ++syncs;
      s->synced = s->size;
    }
    crash_point("log.sync.after_fdatasync");
    if (dir_dirty) {
      if (auto r = e.sync_dir(dir); !r)
        return fail_stop(r.error(), fmt::format("fsync of directory {}", dir.string()));
      dir_dirty = false;
    }
    crash_point("log.sync.before_ack");
    hw = log_end;
    last_sync = clk.steady_now();
    return success();
  }

  result<void> roll() {
    FERRY_TRY(check_healthy());
    auto& s = active();
    if (s.size == 0) return success();
    // The sealed segment must be complete on disk before a newer one can
    // exist: recovery trusts sealed segments without scanning them.
    FERRY_TRY(sync_all());
    crash_point("log.roll.after_sync");
    s.sealed = true;
    write_indexes(s);
    crash_point("log.roll.after_index");
    if (auto r = create_segment(log_end); !r)
      return fail_stop(r.error(),
                       fmt::format("creating segment {}", segment_file_name(log_end, kLogSuffix)));
    crash_point("log.roll.after_create");
    logger()->info("partition {}: rolled to segment {}", cfg.name,
                   segment_file_name(log_end, kLogSuffix));
    return success();
  }

  result<append_result> append(std::span<std::byte> batch) {
    FERRY_TRY(check_healthy());
    if (batch.size() > cfg.max_batch_bytes) return errc::batch_too_large;
    std::string why;
    auto checked = format::check_batch(batch, &why);
    if (!checked) {
      FERRY_LOG_DEBUG(logger(), "partition {}: refused batch: {}", cfg.name, why);
      return errc::invalid_batch;
    }
    return append(checked.value());
  }

  result<append_result> append(const format::checked_batch& checked) {
    FERRY_TRY(check_healthy());
    const auto batch = checked.bytes();
    if (batch.size() > cfg.max_batch_bytes) return errc::batch_too_large;
    const auto& h = checked.header();
    {
      auto& s = active();
      bool full = s.size > 0 && s.size + batch.size() > cfg.segment_bytes;
      bool old = s.size > 0 && clk.wall_now() - s.created >= cfg.segment_age.count();
      if (full || old) {
        FERRY_TRY(roll());
      }
    }
    auto& s = active();
    be::store<std::int64_t>(batch.data() + layout::base_offset, log_end.value());
    be::store<std::int32_t>(batch.data() + layout::partition_leader_epoch, kLeaderEpoch);
    const std::uint64_t before = s.size;
    if (auto r = s.f->append(batch); !r) {
      auto ec = r.error();
      auto undo = s.f->truncate(before);
      if (undo && is_no_space(ec)) {
        // A producer retries into a full disk every few milliseconds: one
        // line per partition per 30 s, with how many were refused between.
        const auto now = std::chrono::steady_clock::now();
        if (now >= next_no_space_log) {
          logger()->warn(
              "partition {}: disk full appending {} bytes at offset {}; nothing was written{}",
              cfg.name, batch.size(), log_end,
              no_space_unlogged > 0
                  ? fmt::format(" ({} more appends refused since the last such line)",
                                no_space_unlogged)
                  : std::string());
          no_space_unlogged = 0;
          next_no_space_log = now + std::chrono::seconds(30);
        } else {
          ++no_space_unlogged;
        }
        return errc::no_space;
      }
      return fail_stop(ec, fmt::format("write of offset {} to {}", log_end, s.log_path.string()));
    }
    crash_point("log.append.after_write");
    if (s.size == 0) s.created = clk.wall_now();
    s.idx.on_batch(static_cast<std::uint32_t>(before), static_cast<std::uint32_t>(log_end - s.base),
                   static_cast<std::uint32_t>(batch.size()), h.max_timestamp,
                   cfg.index_interval_bytes);
    s.size += batch.size();
    total_size += batch.size();
    append_result out{log_end, log_end + h.last_offset_delta};
    log_end += h.last_offset_delta + 1;
    s.next = log_end;
    ++appends;
    if (cfg.flush == flush_mode::interval) hw = log_end;
    return out;
  }

  // --- reading -------------------------------------------------------------

  // Reads the batch header at `pos` and checks that the batch fits below
  // `limit`; errc::corrupt_log with `why` otherwise. I/O errors pass through.
  static result<batch_header> header_at(const segment& s, std::uint64_t pos, std::uint64_t limit,
                                        std::string& why) {
    std::byte hdr[kBatchHeaderSize];
    FERRY_TRY(auto n, s.f->read_at(pos, hdr));
    if (n < kBatchHeaderSize) {
      why = "short read of batch header";
      return errc::corrupt_log;
    }
    auto h = batch_header::decode(hdr);
    if (h.size() < kMinBatchBytes || pos + h.size() > limit) {
      why = fmt::format("batch_length {} out of bounds", h.size());
      return errc::corrupt_log;
    }
    return h;
  }

  // Bytes of a segment consumers may see: what is synced, or in the relaxed
  // interval mode everything written...
  std::uint64_t readable(const segment& s) const {
    return cfg.flush == flush_mode::interval ? s.size : s.synced;
  }
  // ... and never past known damage.
  std::uint64_t serve_limit(const segment& s) const {
    return s.corrupt_at ? std::min(readable(s), *s.corrupt_at) : readable(s);
  }

  std::size_t segment_for(offset o) const {
    auto it =
        std::upper_bound(segs.begin(), segs.end(), o,
                         [](offset x, const std::unique_ptr<segment>& s) { return x < s->base; });
    return static_cast<std::size_t>(std::distance(segs.begin(), it)) - 1;
  }

  // Records damage found while reading. It is logged when found; readers
  // that run into it again (a consumer retrying its fetch) get corrupt_log
  // without another error line each time.
  std::error_code corrupt(segment& s, std::uint64_t pos, const std::string& why,
                          const std::string& reading, std::optional<offset> expected = {}) {
    if (!s.corrupt_at || *s.corrupt_at > pos) {
      s.corrupt_at = pos;
      s.corrupt_offset = expected;
      logger()->error(
          "partition {}: corrupt batch in {} at byte {}{} ({}): {}; records from there are not "
          "served (ferry topics describe shows it)",
          cfg.name, s.log_path.filename().string(), pos,
          expected ? fmt::format(", the batch that should start at offset {}", *expected) : "",
          reading, why);
    } else {
      FERRY_LOG_DEBUG(logger(), "partition {}: {} stops at known damage in {} at byte {}: {}",
                      cfg.name, reading, s.log_path.filename().string(), pos, why);
    }
    return errc::corrupt_log;
  }

  result<read_result> read(offset from, std::size_t max_bytes) {
    read_result out;
    out.high_watermark = hw;
    out.next_offset = from;
    if (from < segs.front()->base || from > hw) return errc::offset_out_of_range;
    if (from == hw) return out;
    max_bytes = std::max<std::size_t>(max_bytes, 1);
    // Damage found: remember it, serve what was good so far, else fail.
    auto bad = [&](segment& s, std::uint64_t pos, const std::string& why) -> result<read_result> {
      auto ec = corrupt(s, pos, why, fmt::format("reading from offset {}", from), out.next_offset);
      if (out.batches > 0) return std::move(out);
      return ec;
    };
    for (std::size_t i = segment_for(from); i < segs.size() && out.data.size() < max_bytes; ++i) {
      auto& s = *segs[i];
      FERRY_TRY(ensure_index(s));
      const std::uint64_t limit = serve_limit(s);
      std::uint64_t pos =
          out.next_offset > s.base
              ? s.idx.position_for(static_cast<std::uint32_t>(out.next_offset - s.base))
              : 0;
      while (pos < limit && out.data.size() < max_bytes) {
        if (limit - pos < kMinBatchBytes) {
          return bad(s, pos, "trailing bytes shorter than a batch");
        }
        std::size_t want = static_cast<std::size_t>(
            std::min<std::uint64_t>(max_bytes - out.data.size(), limit - pos));
        want = std::max(want, kBatchHeaderSize);
        const std::size_t at = out.data.size();
        out.data.resize(at + want);
        FERRY_TRY(auto n, s.f->read_at(pos, std::span(out.data).subspan(at, want)));
        if (n < want) {
          out.data.resize(at);
          return bad(s, pos + n, "file shorter than its committed size");
        }
        std::size_t used = 0;
        while (used + kBatchHeaderSize <= n) {
          const std::byte* p = out.data.data() + at + used;
          auto h = batch_header::decode(p);
          if (h.size() < kMinBatchBytes || pos + used + h.size() > limit) {
            out.data.resize(at + used);
            return bad(s, pos + used, fmt::format("batch_length {} out of bounds", h.size()));
          }
          if (used + h.size() > n) break;  // incomplete in this chunk
          std::string why;
          if (!validate_batch(std::span<const std::byte>(p, h.size()), validation::header_and_crc,
                              &why)) {
            out.data.resize(at + used);
            return bad(s, pos + used, why);
          }
          if (h.partition_leader_epoch != kLeaderEpoch) {
            out.data.resize(at + used);
            return bad(s, pos + used,
                       fmt::format("partition leader epoch {} (the log writes {})",
                                   h.partition_leader_epoch, kLeaderEpoch));
          }
          const offset expected = out.batches == 0 ? h.base_offset : out.next_offset;
          if (h.base_offset != expected || (out.batches == 0 && h.base_offset > out.next_offset)) {
            out.data.resize(at + used);
            return bad(s, pos + used,
                       fmt::format("offset gap: batch at {} when {} was expected", h.base_offset,
                                   out.next_offset));
          }
          if (out.batches == 0 && h.next_offset() <= out.next_offset) {
            // Wholly before the requested offset: drop it from the output.
            std::memmove(out.data.data() + at + used, p + h.size(), n - used - h.size());
            n -= h.size();
            pos += h.size();
            continue;
          }
          out.next_offset = h.next_offset();
          ++out.batches;
          used += h.size();
        }
        out.data.resize(at + used);
        pos += used;
        if (used == 0) {
          // The next batch is larger than the room left.
          if (out.batches > 0) return out;
          std::string why;
          auto hr = header_at(s, pos, limit, why);
          if (!hr) {
            if (hr.error() == errc::corrupt_log) return bad(s, pos, why);
            return hr.error();
          }
          const auto& bh = hr.value();
          if (bh.next_offset() <= out.next_offset) {
            pos += bh.size();  // wholly before `from`: step over it unread
          } else if (bh.size() > max_bytes - out.data.size()) {
            max_bytes = out.data.size() + bh.size();  // room for exactly this one batch
          }
        }
      }
      if (s.corrupt_at && pos >= *s.corrupt_at)
        return bad(s, pos, "previously detected corruption");
      if (readable(s) < s.size || out.data.size() >= max_bytes)
        break;  // uncommitted beyond, or full
      if (i + 1 < segs.size() && out.next_offset < segs[i + 1]->base) {
        return bad(s, pos,
                   fmt::format("offsets [{}, {}) are missing before the next segment",
                               out.next_offset, segs[i + 1]->base));
      }
    }
    if (out.batches == 0) {
      // Below the high watermark there is always a batch to serve; finding
      // none means the log's metadata and its data disagree.
      logger()->error("partition {}: no batch found for offset {} below high watermark {}",
                      cfg.name, from, hw);
      return errc::corrupt_log;
    }
    return out;
  }

  result<std::optional<offset>> offset_for_timestamp(timestamp_ms ts) {
    for (auto& sp : segs) {
      auto& s = *sp;
      if (readable(s) == 0 || s.idx.max_timestamp < ts) continue;
      FERRY_TRY(ensure_index(s));
      std::uint64_t pos = s.idx.position_for_time(ts);
      const std::uint64_t limit = serve_limit(s);
      std::vector<std::byte> buf;
      while (pos < limit) {
        std::string why;
        auto hr = header_at(s, pos, limit, why);
        if (!hr) {
          if (hr.error() == errc::corrupt_log)
            return corrupt(s, pos, why, fmt::format("looking up timestamp {}", ts));
          return hr.error();
        }
        const auto& h = hr.value();
        if (h.max_timestamp >= ts) {
          buf.resize(h.size());
          FERRY_TRY(auto m, s.f->read_at(pos, buf));
          if (m != buf.size() || !validate_batch(buf, validation::full, &why))
            return corrupt(s, pos, why, fmt::format("looking up timestamp {}", ts));
          std::optional<offset> found;
          for_each_record(buf, [&](const record_view& r) {
            if (r.timestamp >= ts) {
              found = r.off;
              return false;
            }
            return true;
          });
          if (found) return found;
        }
        pos += h.size();
      }
    }
    return std::optional<offset>();
  }

  // --- retention and truncation --------------------------------------------

  result<retention_result> apply_retention() {
    retention_result out;
    const auto now = clk.wall_now();
    std::vector<fs::path> renamed;
    while (segs.size() > 1 && segs.front()->sealed) {
      auto& s = *segs.front();
      bool expired =
          cfg.retention_time.count() >= 0 && s.idx.max_timestamp < now - cfg.retention_time.count();
      bool over = cfg.retention_bytes >= 0 &&
                  total_size - s.size >= static_cast<std::uint64_t>(cfg.retention_bytes);
      if (!expired && !over) break;
      for (auto suffix : {kLogSuffix, kIndexSuffix, kTimeIndexSuffix}) {
        auto p = s.path(suffix);
        auto to = p;
        to += kDeletedSuffix;
        if (auto ex = e.exists(p); ex && ex.value()) {
          FERRY_TRY(e.rename(p, to));
          renamed.push_back(to);
        }
      }
      logger()->info("partition {}: retention deletes segment {} ({} bytes, {})", cfg.name,
                     s.log_path.filename().string(), s.size,
                     expired ? "expired" : "over retention bytes");
      total_size -= s.size;
      out.bytes_deleted += s.size;
      ++out.segments_deleted;
      segs.erase(segs.begin());
    }
    if (!renamed.empty()) {
      crash_point("log.retention.after_rename");
      FERRY_TRY(e.sync_dir(dir));
      pending_deletes.insert(pending_deletes.end(), renamed.begin(), renamed.end());
    }
    out.new_log_start = segs.front()->base;
    return out;
  }

  result<std::size_t> remove_deleted() {
    std::size_t n = 0;
    for (const auto& p : pending_deletes) {
      if (auto r = e.remove_file(p); r) ++n;
    }
    pending_deletes.clear();
    return n;
  }

  result<void> truncate_to(offset o) {
    FERRY_TRY(check_healthy());
    if (o < segs.front()->base || o > log_end) return errc::offset_out_of_range;
    if (o == log_end) return sync_all();  // nothing to remove; what is kept is synced, as below
    std::size_t i = segment_for(o);
    std::uint64_t pos = 0;
    if (segs[i]->base == o && i > 0) {
      // Cut at a segment boundary: later segments go, the previous one
      // becomes active as it is -- unless its tail is damaged, in which case
      // offsets just below o do not exist and the cut would hide that.
      --i;
      pos = segs[i]->size;
      if (segs[i]->corrupt_at) {
        if (segs[i]->valid_end != o) return errc::corrupt_log;
        pos = *segs[i]->corrupt_at;  // damage after the last batch: cut it off too
      }
    } else {
      auto& s = *segs[i];
      FERRY_TRY(ensure_index(s));
      const std::uint64_t limit = s.corrupt_at ? std::min(s.size, *s.corrupt_at) : s.size;
      pos = o > s.base ? s.idx.position_for(static_cast<std::uint32_t>(o - s.base)) : 0;
      std::string why;
      for (;;) {
        if (pos >= limit) return errc::corrupt_log;  // o lies in damaged or missing data
        FERRY_TRY(auto h, header_at(s, pos, limit, why));
        if (h.base_offset == o) break;
        if (h.base_offset > o || h.next_offset() > o)
          return errc::invalid_batch;  // not a batch boundary
        pos += h.size();
      }
    }
    auto& s = *segs[i];
    for (std::size_t j = segs.size(); j-- > i + 1;) {
      auto& t = *segs[j];
      total_size -= t.size;
      t.f.reset();
      for (auto suffix : {kLogSuffix, kIndexSuffix, kTimeIndexSuffix}) {
        auto p = t.path(suffix);
        if (auto ex = e.exists(p); ex && ex.value()) {
          FERRY_TRY(e.remove_file(p));
        }
      }
      segs.pop_back();
    }
    total_size -= s.size - pos;
    if (auto r = s.f->truncate(pos); !r)
      return fail_stop(r.error(), "truncate of " + s.log_path.string());
    crash_point("log.truncate.after_truncate");
    if (auto r = s.f->sync(); !r)
      return fail_stop(r.error(), "fdatasync of " + s.log_path.string());
    if (auto r = e.sync_dir(dir); !r)
      return fail_stop(r.error(), "fsync of directory " + dir.string());
    ++syncs;
    s.size = s.synced = pos;
    // Rebuild the in-memory index of what is left.
    FERRY_TRY(auto sr, scan_segment(*s.f, s.base, s.size, cfg.index_interval_bytes));
    s.idx = std::move(sr.idx);
    s.next = o;
    s.sealed = false;
    s.corrupt_at.reset();
    s.corrupt_offset.reset();
    if (!sr.clean) s.corrupt_at = sr.valid_bytes;
    s.index_loaded = true;
    remove_indexes(s);
    log_end = o;
    // Everything below o is now on disk: earlier segments were synced when
    // sealed, and this one was synced just now.
    hw = o;
    logger()->warn("partition {}: truncated to offset {}", cfg.name, o);
    return success();
  }
};

partition_log::partition_log(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
partition_log::~partition_log() = default;

result<std::unique_ptr<partition_log>> partition_log::open(env& e, const fs::path& dir,
                                                           log_config config, const clock& c) {
  if (config.segment_bytes < kMinBatchBytes || config.index_interval_bytes == 0 ||
      config.max_batch_bytes == 0)
    return ferry::errc::invalid_argument;
  auto i = std::make_unique<impl>(e, dir, std::move(config), c);
  FERRY_TRY(i->open_all());
  return std::unique_ptr<partition_log>(new partition_log(std::move(i)));
}

result<append_result> partition_log::append(std::span<std::byte> batch) {
  return impl_->append(batch);
}
result<append_result> partition_log::append(const format::checked_batch& batch) {
  return impl_->append(batch);
}
result<offset> partition_log::sync() {
  FERRY_TRY(impl_->sync_all());
  return impl_->hw;
}
result<bool> partition_log::sync_if_due() {
  FERRY_TRY(impl_->check_healthy());
  if (impl_->clk.steady_now() - impl_->last_sync < impl_->cfg.flush_interval) return false;
  FERRY_TRY(impl_->sync_all());
  return true;
}
result<read_result> partition_log::read(offset from, std::size_t max_bytes) {
  return impl_->read(from, max_bytes);
}
result<std::optional<offset>> partition_log::offset_for_timestamp(timestamp_ms ts) {
  return impl_->offset_for_timestamp(ts);
}
result<retention_result> partition_log::apply_retention() {
  return impl_->apply_retention();
}
std::vector<fs::path> partition_log::take_deleted() {
  return std::exchange(impl_->pending_deletes, {});
}
result<std::size_t> partition_log::remove_deleted() {
  return impl_->remove_deleted();
}
result<void> partition_log::roll() {
  return impl_->roll();
}
result<void> partition_log::truncate_to(offset o) {
  return impl_->truncate_to(o);
}
offset partition_log::log_start_offset() const noexcept {
  return impl_->segs.front()->base;
}
offset partition_log::log_end_offset() const noexcept {
  return impl_->log_end;
}
offset partition_log::high_watermark() const noexcept {
  return impl_->hw;
}
const recovery_report& partition_log::recovery() const noexcept {
  return impl_->report;
}
std::optional<log_damage> partition_log::damage() const {
  for (const auto& s : impl_->segs) {
    if (!s->corrupt_at) continue;
    log_damage d;
    d.segment = s->log_path.filename().string();
    d.position = *s->corrupt_at;
    d.from = s->corrupt_offset ? s->corrupt_offset : s->valid_end;
    return d;
  }
  return std::nullopt;
}
bool partition_log::failed() const noexcept {
  return static_cast<bool>(impl_->failed_ec);
}
const std::string& partition_log::failure_reason() const noexcept {
  return impl_->failure;
}
const log_config& partition_log::config() const noexcept {
  return impl_->cfg;
}
void partition_log::set_limits(std::chrono::milliseconds retention_time,
                               std::int64_t retention_bytes,
                               std::uint32_t max_batch_bytes) noexcept {
  impl_->cfg.retention_time = retention_time;
  impl_->cfg.retention_bytes = retention_bytes;
  impl_->cfg.max_batch_bytes = max_batch_bytes;
}

log_stats partition_log::stats() const {
  log_stats s;
  s.log_start = log_start_offset();
  s.log_end = impl_->log_end;
  s.high_watermark = impl_->hw;
  s.size_bytes = impl_->total_size;
  s.segments = impl_->segs.size();
  s.syncs = impl_->syncs;
  s.appends = impl_->appends;
  return s;
}

}  // namespace ferry::storage
