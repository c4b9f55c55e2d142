#include "ferry/broker/data_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>

#include "data_dir_lock.h"
#include "ferry/core/clock.h"
#include "ferry/core/crc32c.h"
#include "ferry/core/endian.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "ferry/storage/env.h"
#include "ferry/storage/log.h"

namespace ferry::broker {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kFormatFile = "FORMAT";
constexpr std::string_view kBackupDir = "format1-backup";
constexpr std::string_view kWorkDir = ".upgrade";
// What holds partition logs in a data directory.
constexpr std::string_view kLogRoots[] = {"topics", "groups", "schemas"};

std::string format_line() {
  return fmt::format("ferry data format {}\n", kDataFormat);
}

std::error_code refuse(std::string* why, std::string reason) {
  if (why) *why = std::move(reason);
  return ferry::errc::corrupt_data;
}

// Whether the directory holds anything a broker wrote (format 1 had no
// FORMAT file).
bool holds_data(const fs::path& dir) {
  std::error_code ec;
  for (auto root : kLogRoots)
    if (fs::exists(dir / root, ec)) return true;
  return fs::exists(dir / "producers", ec);
}

// --- format 1 ---------------------------------------------------------------
//
// Ferry's own batch before RecordBatch v2 (kept here only to read it):
//   56-byte header, little-endian: base_offset i64, batch_length u32 (the
//   whole batch), crc u32 over [16, batch_length), magic u8 = 1, reserved
//   u8, attributes u16 = 0, record_count i32, first_timestamp i64,
//   max_timestamp i64, producer_id i64, producer_epoch i16, reserved u16,
//   base_sequence i32; then records: varint length, u8 attributes, zigzag
//   timestamp delta, varint offset delta, zigzag key length + key, zigzag
//   value length + value, varint header count, per header varint key
//   length + key, zigzag value length + value.
namespace v1 {

constexpr std::size_t kHeader = 56;

struct record {
  timestamp_ms ts;
  std::optional<std::span<const std::byte>> key, value;
  std::vector<format::batch_builder::header_input> headers;
};

struct batch {
  std::int64_t base = 0;
  std::uint32_t length = 0;
  format::producer_info producer;
  std::vector<record> records;
  std::vector<std::string> header_keys;  // owns the header keys the records point to
};

bool get_u(std::span<const std::byte>& in, std::uint64_t& v) {
  auto r = varint::get(in);
  if (!r) return false;
  v = *r;
  return true;
}

bool get_bytes(std::span<const std::byte>& in, std::optional<std::span<const std::byte>>& out) {
  std::uint64_t u;
  if (!get_u(in, u)) return false;
  const auto len = varint::unzigzag(u);
  if (len == -1) {
    out.reset();
    return true;
  }
  if (len < 0 || static_cast<std::uint64_t>(len) > in.size()) return false;
  out = in.first(static_cast<std::size_t>(len));
  in = in.subspan(static_cast<std::size_t>(len));
  return true;
}

// Decodes the batch at the front of `in` (checking length, magic, CRC and
// every record). nullopt with `why` when it is not a valid format-1 batch.
std::optional<batch> decode(std::span<const std::byte> in, std::string& why) {
  if (in.size() < kHeader) {
    why = "a batch header is cut off";
    return std::nullopt;
  }
  const std::byte* p = in.data();
  batch b;
  b.base = le::load<std::int64_t>(p);
  b.length = le::load<std::uint32_t>(p + 8);
  if (b.length < kHeader + 7 || b.length > in.size()) {
    why = fmt::format("batch_length {} with {} bytes left", b.length, in.size());
    return std::nullopt;
  }
  if (le::load<std::uint8_t>(p + 16) != format::kFormat1Magic) {
    why = fmt::format("magic {} (not format 1)", le::load<std::uint8_t>(p + 16));
    return std::nullopt;
  }
  if (crc32c::value(p + 16, b.length - 16) != le::load<std::uint32_t>(p + 12)) {
    why = "CRC32C mismatch";
    return std::nullopt;
  }
  const auto count = le::load<std::int32_t>(p + 20);
  const timestamp_ms first(le::load<std::int64_t>(p + 24));
  b.producer.pid = producer_id(le::load<std::int64_t>(p + 40));
  b.producer.epoch = producer_epoch(le::load<std::int16_t>(p + 48));
  b.producer.base_sequence = sequence_number(le::load<std::int32_t>(p + 52));
  auto rest = in.subspan(kHeader, b.length - kHeader);
  for (std::int32_t i = 0; i < count; ++i) {
    std::uint64_t len, off_delta, hcount, ts_u;
    if (!get_u(rest, len) || len < 1 || len > rest.size()) {
      why = fmt::format("record {} is cut off", i);
      return std::nullopt;
    }
    auto r = rest.first(static_cast<std::size_t>(len));
    rest = rest.subspan(static_cast<std::size_t>(len));
    r = r.subspan(1);  // attributes
    record rec;
    if (!get_u(r, ts_u) || !get_u(r, off_delta) || off_delta != static_cast<std::uint64_t>(i) ||
        !get_bytes(r, rec.key) || !get_bytes(r, rec.value) || !get_u(r, hcount)) {
      why = fmt::format("record {} is malformed", i);
      return std::nullopt;
    }
    rec.ts = first + varint::unzigzag(ts_u);
    for (std::uint64_t h = 0; h < hcount; ++h) {
      std::uint64_t klen;
      std::optional<std::span<const std::byte>> value;
      if (!get_u(r, klen) || klen > r.size()) {
        why = fmt::format("record {} has a malformed header", i);
        return std::nullopt;
      }
      std::string_view key(reinterpret_cast<const char*>(r.data()), static_cast<std::size_t>(klen));
      r = r.subspan(static_cast<std::size_t>(klen));
      if (!get_bytes(r, value)) {
        why = fmt::format("record {} has a malformed header", i);
        return std::nullopt;
      }
      rec.headers.push_back({key, value});
    }
    if (!r.empty()) {
      why = fmt::format("record {} has bytes left over", i);
      return std::nullopt;
    }
    b.records.push_back(std::move(rec));
  }
  if (!rest.empty() || b.records.empty()) {
    why = "the batch does not end with its last record";
    return std::nullopt;
  }
  return b;
}

}  // namespace v1

bool is_segment(const std::string& name) {
  return name.size() == 24 && name.ends_with(".log") &&
         std::all_of(name.begin(), name.begin() + 20, [](char c) { return c >= '0' && c <= '9'; });
}

// Converts the segments of one partition log in `from` into `to`.
result<void> convert_log(const fs::path& from, const fs::path& to, upgrade_report& rep,
                         std::string* why) {
  auto& env = storage::posix_env();
  FERRY_TRY(auto names, env.list_dir(from));
  std::vector<std::string> segments;
  for (const auto& n : names)
    if (is_segment(n)) segments.push_back(n);
  std::sort(segments.begin(), segments.end());
  FERRY_TRY(env.create_dirs(to));
  for (std::size_t s = 0; s < segments.size(); ++s) {
    const bool active = s + 1 == segments.size();
    FERRY_TRY(auto bytes, storage::read_file(env, from / segments[s]));
    rep.bytes_before += bytes.size();
    std::vector<std::byte> out;
    std::span<const std::byte> rest(bytes);
    std::int64_t expected = -1;
    while (!rest.empty()) {
      std::string bad;
      auto b = v1::decode(rest, bad);
      if (!b) {
        // Recovery truncates a torn tail of the active segment; anything else
        // is corruption the upgrade must not paper over.
        if (active) {
          rep.torn_tail_bytes += rest.size();
          break;
        }
        return refuse(why,
                      fmt::format("{}: {} at byte {}; the data is corrupt - restore it or "
                                  "remove the partition before upgrading",
                                  (from / segments[s]).string(), bad, bytes.size() - rest.size()));
      }
      if (expected >= 0 && b->base != expected)
        return refuse(why, fmt::format("{}: batch at offset {} where {} was expected",
                                       (from / segments[s]).string(), b->base, expected));
      format::batch_builder builder;
      for (const auto& r : b->records) builder.add(r.ts, r.key, r.value, r.headers);
      auto v2 = builder.finish(b->producer);
      be::store<std::int64_t>(v2.data() + format::layout::base_offset, b->base);
      be::store<std::int32_t>(v2.data() + format::layout::partition_leader_epoch, 0);
      std::string check;
      if (!format::validate_batch(v2, format::validation::full, &check))
        return refuse(why, fmt::format("{}: the converted batch at offset {} is invalid: {}",
                                       (from / segments[s]).string(), b->base, check));
      expected = b->base + static_cast<std::int64_t>(b->records.size());
      out.insert(out.end(), v2.begin(), v2.end());
      rep.records += b->records.size();
      ++rep.batches;
      rest = rest.subspan(b->length);
    }
    FERRY_TRY(auto f, env.open(to / segments[s], storage::open_mode::create_new));
    FERRY_TRY(f->append(out));
    FERRY_TRY(f->sync());
    rep.bytes_after += out.size();
    ++rep.segments;
  }
  FERRY_TRY(env.sync_dir(to));
  // Opening the converted log checks it once more and rebuilds its indexes.
  storage::log_config lc;
  lc.name = from.string();
  lc.retention_time = std::chrono::milliseconds(-1);
  auto log = storage::partition_log::open(env, to, lc, system_clock::instance());
  if (!log)
    return refuse(why, fmt::format("{}: the converted log does not open: {}", to.string(),
                                   log.error().message()));
  FERRY_TRY(log.value()->sync());
  ++rep.partitions;
  return success();
}

// Every directory under `root` that holds segments, relative to it.
void find_logs(const fs::path& root, const fs::path& rel, std::vector<fs::path>& out) {
  std::error_code ec;
  bool has_segments = false;
  for (const auto& e : fs::directory_iterator(root / rel, ec)) {
    const auto name = e.path().filename().string();
    if (e.is_directory()) {
      if (name.rfind(".deleted-", 0) != 0) find_logs(root, rel / name, out);
    } else if (is_segment(name)) {
      has_segments = true;
    }
  }
  if (has_segments) out.push_back(rel);
}

// Copies what is not a partition log (topic.json, ...) from `from` to `to`.
result<void> copy_other_files(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(from, ec)) {
    if (!e.is_regular_file()) continue;
    const auto name = e.path().filename().string();
    if (is_segment(name) || name.ends_with(".index") || name.ends_with(".timeindex") ||
        name.ends_with(".deleted") || e.path().string().find("/.deleted-") != std::string::npos)
      continue;
    const auto target = to / fs::relative(e.path(), from);
    fs::create_directories(target.parent_path(), ec);
    fs::copy_file(e.path(), target, fs::copy_options::overwrite_existing, ec);
    if (ec) return ec;
  }
  return success();
}

}  // namespace

result<void> check_data_format(const fs::path& dir, std::string* why) {
  auto& env = storage::posix_env();
  auto marker = storage::read_file(env, dir / kFormatFile);
  if (marker) {
    const std::string text(reinterpret_cast<const char*>(marker.value().data()),
                           marker.value().size());
    if (text == format_line()) return success();
    return refuse(why, fmt::format("{}/FORMAT says '{}'; this ferryd reads format {} only",
                                   dir.string(), text.substr(0, text.find('\n')), kDataFormat));
  }
  if (holds_data(dir))
    return refuse(why, fmt::format("{} holds data in Ferry's format 1 (written before record "
                                   "batches became Kafka's RecordBatch v2); convert it offline "
                                   "with: ferryd --data-dir {} --upgrade-data-dir",
                                   dir.string(), dir.string()));
  FERRY_TRY(env.create_dirs(dir));
  const auto line = format_line();
  const auto* b = reinterpret_cast<const std::byte*>(line.data());
  FERRY_TRY(storage::write_file_atomic(env, dir / kFormatFile, {b, b + line.size()}));
  return env.sync_dir(dir);
}

result<upgrade_report> upgrade_data_dir(const fs::path& dir, std::string* why,
                                        const std::function<void(const std::string&)>& progress) {
  auto& env = storage::posix_env();
  data_dir_lock lock;
  FERRY_TRY(lock.acquire(dir));
  std::error_code ec;
  if (fs::exists(dir / kFormatFile, ec)) {
    if (auto ok = check_data_format(dir, why); !ok) return ok.error();
    return refuse(why, fmt::format("{} is already in format {}; nothing to upgrade", dir.string(),
                                   kDataFormat));
  }
  if (!holds_data(dir)) return refuse(why, fmt::format("{} holds no Ferry data", dir.string()));
  if (fs::exists(dir / kBackupDir, ec))
    return refuse(why, fmt::format("{} exists: an earlier upgrade's backup; move it away first",
                                   (dir / kBackupDir).string()));
  const auto work = dir / kWorkDir;
  fs::remove_all(work, ec);  // an upgrade a crash interrupted: start over
  upgrade_report rep;
  for (auto root : kLogRoots) {
    if (!fs::exists(dir / root, ec)) continue;
    FERRY_TRY(copy_other_files(dir / root, work / root));
    std::vector<fs::path> logs;
    find_logs(dir / root, {}, logs);
    std::sort(logs.begin(), logs.end());
    for (const auto& rel : logs) {
      if (progress) progress((fs::path(root) / rel).string());
      FERRY_TRY(convert_log(dir / root / rel, work / root / rel, rep, why));
    }
  }
  // The swap: format-1 roots into the backup, converted ones in place, then
  // the FORMAT file - the directory is format 2 from that rename on.
  FERRY_TRY(env.sync_dir(work));
  FERRY_TRY(env.create_dirs(dir / kBackupDir));
  for (auto root : kLogRoots) {
    if (!fs::exists(dir / root, ec)) continue;
    FERRY_TRY(env.rename(dir / root, dir / kBackupDir / root));
    FERRY_TRY(env.rename(work / root, dir / root));
  }
  FERRY_TRY(env.sync_dir(dir / kBackupDir));
  FERRY_TRY(env.sync_dir(dir));
  fs::remove_all(work, ec);
  const auto line = format_line();
  const auto* b = reinterpret_cast<const std::byte*>(line.data());
  FERRY_TRY(storage::write_file_atomic(env, dir / kFormatFile, {b, b + line.size()}));
  FERRY_TRY(env.sync_dir(dir));
  return rep;
}

}  // namespace ferry::broker
