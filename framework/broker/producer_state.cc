// The producer registry file and the per-partition producer state; the
// rules and bounds are in producer_state.h.
//
// <data>/producers, a small text file (rewritten whole, atomically):
//
//   ferry-producers 1
//   reserved <n>                      ids below n are taken
//   name <id> <epoch> <hex of name>   one per named producer, sorted by name
//   crc32c <8 hex digits>             CRC32C of every byte before this line
//
// Names are hex-encoded because they are arbitrary bytes (1-255 of them).
// Anything else — a missing or extra line, a bad number, a checksum
// mismatch, an id at or above `reserved`, two names with one id — is
// corruption and refuses the start.
#include "producer_state.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>

#include "ferry/core/crc32c.h"
#include "ferry/core/errc.h"
#include "ferry/storage/log.h"

namespace ferry::broker {

namespace {

constexpr std::string_view kMagic = "ferry-producers 1";

std::int64_t last_sequence(const format::batch_header& h) {
  return next_sequence(h.base_sequence.value(), h.record_count - 1);
}

std::string hex(std::string_view s) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::optional<std::string> unhex(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size() / 2);
  for (std::size_t i = 0; i < s.size(); i += 2) {
    int hi = nibble(s[i]), lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

template <typename T>
bool parse_int(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t at = 0;
  while (at <= line.size()) {
    auto sp = line.find(' ', at);
    if (sp == std::string_view::npos) sp = line.size();
    out.push_back(line.substr(at, sp - at));
    at = sp + 1;
  }
  return out;
}

}  // namespace

std::int32_t next_sequence(std::int32_t seq, std::int32_t count) noexcept {
  constexpr std::int64_t modulus = std::int64_t{std::numeric_limits<std::int32_t>::max()} + 1;
  return static_cast<std::int32_t>((std::int64_t{seq} + count) % modulus);
}

// --- producer_registry ---------------------------------------------------------

result<std::unique_ptr<producer_registry>> producer_registry::open(storage::env& e,
                                                                   std::filesystem::path file,
                                                                   std::string* why) {
  auto reg = std::unique_ptr<producer_registry>(new producer_registry(e, std::move(file)));
  FERRY_TRY(auto present, e.exists(reg->file_));
  if (!present) return reg;
  FERRY_TRY(auto bytes, storage::read_file(e, reg->file_));
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  auto corrupt = [&](std::string what) -> result<std::unique_ptr<producer_registry>> {
    if (why)
      *why = fmt::format(
          "{} is corrupt: {}. Refusing to start: without it producer ids could be handed out "
          "twice and fenced producers unfenced. Restore it from a backup, or remove it only if "
          "no idempotent producer will resend to this broker",
          reg->file_.string(), what);
    return ferry::errc::corrupt_data;
  };
  // The checksum line is the last one; it covers everything before it.
  if (text.empty() || text.back() != '\n') return corrupt("it does not end with a newline");
  const auto crc_at = text.rfind('\n', text.size() - 2);
  if (crc_at == std::string_view::npos) return corrupt("no checksum line");
  const auto body = text.substr(0, crc_at + 1);
  const auto crc_line = split(text.substr(crc_at + 1, text.size() - crc_at - 2));
  std::uint32_t crc = 0;
  if (crc_line.size() != 2 || crc_line[0] != "crc32c" || !parse_int(crc_line[1], crc, 16) ||
      crc_line[1] != fmt::format("{:08x}", crc))
    return corrupt("the last line is not 'crc32c <8 hex digits>'");
  if (crc != crc32c::value(body.data(), body.size()))
    return corrupt(fmt::format("checksum mismatch (stored {:08x}, computed {:08x})", crc,
                               crc32c::value(body.data(), body.size())));
  std::vector<std::string_view> lines;
  for (std::size_t at = 0; at < body.size();) {
    auto nl = body.find('\n', at);
    lines.push_back(body.substr(at, nl - at));
    at = nl + 1;
  }
  if (lines.size() < 2 || lines[0] != kMagic)
    return corrupt(fmt::format("the first line is not '{}'", kMagic));
  auto reserved = split(lines[1]);
  std::int64_t reserved_to = 0;
  if (reserved.size() != 2 || reserved[0] != "reserved" || !parse_int(reserved[1], reserved_to) ||
      reserved_to < 0)
    return corrupt("the second line is not 'reserved <n>'");
  for (std::size_t i = 2; i < lines.size(); ++i) {
    auto f = split(lines[i]);
    std::int64_t id = 0;
    std::int16_t epoch = 0;
    std::optional<std::string> name;
    if (f.size() != 4 || f[0] != "name" || !parse_int(f[1], id) || !parse_int(f[2], epoch) ||
        !(name = unhex(f[3])) || name->empty() || name->size() > 255 || id < 0 || epoch < 0)
      return corrupt(fmt::format("line {} is not 'name <id> <epoch> <hex name>'", i + 1));
    if (id >= reserved_to)
      return corrupt(
          fmt::format("line {}: id {} is not below reserved {}", i + 1, id, reserved_to));
    if (!reg->named_epochs_.emplace(id, epoch).second ||
        !reg->names_.emplace(*name, grant{producer_id(id), producer_epoch(epoch)}).second)
      return corrupt(fmt::format("line {}: id {} or its name appears twice", i + 1, id));
  }
  reg->next_id_ = reg->reserved_to_ = reserved_to;
  return reg;
}

std::vector<std::byte> producer_registry::encode(
    std::int64_t reserved_to, const std::map<std::string, grant, std::less<>>& names) const {
  std::string s = fmt::format("{}\nreserved {}\n", kMagic, reserved_to);
  for (const auto& [name, g] : names)
    s += fmt::format("name {} {} {}\n", g.id.value(), g.epoch.value(), hex(name));
  s += fmt::format("crc32c {:08x}\n", crc32c::value(s.data(), s.size()));
  auto b = reinterpret_cast<const std::byte*>(s.data());
  return {b, b + s.size()};
}

result<void> producer_registry::persist(std::int64_t reserved_to,
                                        const std::map<std::string, grant, std::less<>>& names) {
  return storage::write_file_atomic(env_, file_, encode(reserved_to, names));
}

result<producer_registry::grant> producer_registry::init(std::optional<std::string_view> name) {
  // Works on copies; memory changes only once the file says so.
  std::int64_t next = next_id_;
  std::int64_t reserved = reserved_to_;
  auto take_id = [&] {
    if (next >= reserved) reserved = next + kProducerIdBlock;
    return next++;
  };
  if (!name) {
    const std::int64_t id = take_id();
    if (reserved != reserved_to_) {
      FERRY_TRY(persist(reserved, names_));
    }
    next_id_ = next;
    reserved_to_ = reserved;
    return grant{producer_id(id), producer_epoch(0)};
  }
  auto names = names_;
  grant g;
  std::optional<std::int64_t> retired;
  if (auto it = names.find(*name); it == names.end()) {
    if (names.size() >= kMaxNamedProducers) return ferry::errc::out_of_range;
    g = {producer_id(take_id()), producer_epoch(0)};
    names.emplace(std::string(*name), g);
  } else if (it->second.epoch.value() == std::numeric_limits<std::int16_t>::max()) {
    retired = it->second.id.value();
    g = {producer_id(take_id()), producer_epoch(0)};
    it->second = g;
  } else {
    g = {it->second.id, producer_epoch(static_cast<std::int16_t>(it->second.epoch.value() + 1))};
    it->second = g;
  }
  FERRY_TRY(persist(reserved, names));
  names_ = std::move(names);
  next_id_ = next;
  reserved_to_ = reserved;
  named_epochs_[g.id.value()] = g.epoch.value();
  if (retired) {
    named_epochs_.erase(*retired);
    retired_.insert(*retired);
  }
  return g;
}

producer_registry::standing producer_registry::check(producer_id id, producer_epoch epoch,
                                                     std::string* message) const {
  const auto pid = id.value();
  if (pid >= next_id_) {
    *message =
        fmt::format("producer id {} was never handed out by this broker: call InitProducer", pid);
    return standing::invalid;
  }
  if (retired_.contains(pid)) {
    *message = fmt::format("producer id {} is fenced: its name moved to a new id", pid);
    return standing::fenced;
  }
  std::int16_t current = 0;
  if (auto it = named_epochs_.find(pid); it != named_epochs_.end()) current = it->second;
  if (epoch.value() < current) {
    *message = fmt::format(
        "producer id {} epoch {} is fenced: epoch {} exists (a newer instance of this producer "
        "called InitProducer)",
        pid, epoch.value(), current);
    return standing::fenced;
  }
  if (epoch.value() > current) {
    *message =
        fmt::format("producer id {} has no epoch {} (the current one is {}): call InitProducer",
                    pid, epoch.value(), current);
    return standing::invalid;
  }
  return standing::current;
}

void producer_registry::observe(producer_id id) {
  if (id.value() >= next_id_) next_id_ = reserved_to_ = id.value() + 1;
}

// --- partition_producers ---------------------------------------------------------

partition_producers::decision partition_producers::check(const format::batch_header& h) const {
  decision d;
  auto it = producers_.find(h.pid.value());
  if (it == producers_.end()) return d;  // rule 3: no state, accept
  const producer_entry& p = it->second;
  const std::int32_t first = h.base_sequence.value();
  const std::int64_t last = last_sequence(h);
  if (h.epoch.value() < p.epoch) {
    d.v = verdict::fenced;
    d.message = fmt::format("producer {} epoch {} is fenced: this partition has epoch {}",
                            h.pid.value(), h.epoch.value(), p.epoch);
    return d;
  }
  if (h.epoch.value() > p.epoch) {
    if (first == 0) return d;
    d.v = verdict::out_of_order;
    d.message = fmt::format("producer {} epoch {}: a new epoch must start at sequence 0, got {}",
                            h.pid.value(), h.epoch.value(), first);
    return d;
  }
  for (const auto& b : p.batches) {
    if (b.first_seq == first && b.last_seq == last) {
      d.v = verdict::duplicate;
      d.base_offset = b.base_offset;
      return d;
    }
  }
  if (p.batches.empty()) return d;
  const std::int32_t expected = next_sequence(p.batches.back().last_seq);
  if (first == expected) return d;
  d.v = verdict::out_of_order;
  d.message = fmt::format(
      "producer {} epoch {}: expected sequence {}, got {}..{} (records before it are missing, or "
      "this is a retry of a batch older than the last {} of this producer)",
      h.pid.value(), h.epoch.value(), expected, first, last, kProducerWindow);
  return d;
}

void partition_producers::appended(const format::batch_header& h, std::int64_t base_offset,
                                   std::int64_t now_ms) {
  if (h.pid.value() < 0) return;
  if (!producers_.contains(h.pid.value()) && producers_.size() >= kMaxProducersPerPartition)
    evict_oldest();
  auto [it, created] = producers_.try_emplace(h.pid.value());
  auto& p = it->second;
  if (created || h.epoch.value() > p.epoch) {
    p.batches.clear();
    p.epoch = h.epoch.value();
  } else if (h.epoch.value() < p.epoch) {
    return;  // check() refuses these; a log written otherwise gains nothing from them
  }
  p.batches.push_back({h.base_sequence.value(), static_cast<std::int32_t>(last_sequence(h)),
                       base_offset, h.record_count});
  while (p.batches.size() > kProducerWindow) p.batches.pop_front();
  p.last_write_ms = std::max(p.last_write_ms, now_ms);
  max_id_ = std::max(max_id_, h.pid.value());
}

std::size_t partition_producers::expire(std::int64_t now_ms, std::int64_t max_age_ms) {
  return std::erase_if(
      producers_, [&](const auto& kv) { return now_ms - kv.second.last_write_ms > max_age_ms; });
}

void partition_producers::evict_oldest() {
  std::vector<std::int64_t> times;
  times.reserve(producers_.size());
  for (const auto& [_, p] : producers_) times.push_back(p.last_write_ms);
  const auto cut = times.begin() + static_cast<std::ptrdiff_t>(times.size() / 10);
  std::nth_element(times.begin(), cut, times.end());
  const std::int64_t limit = *cut;
  std::erase_if(producers_, [&](const auto& kv) { return kv.second.last_write_ms <= limit; });
}

const producer_entry* partition_producers::find(producer_id id) const {
  auto it = producers_.find(id.value());
  return it == producers_.end() ? nullptr : &it->second;
}

result<partition_producers::scan_report> partition_producers::rebuild(
    storage::env& e, const std::filesystem::path& dir, storage::partition_log& log,
    std::int64_t now_ms, std::uint64_t min_bytes) {
  scan_report rep;
  // Segment files are named by their base offset (storage::segment_file_name).
  FERRY_TRY(auto names, e.list_dir(dir));
  std::vector<std::int64_t> bases;
  for (const auto& n : names) {
    if (n.size() != 24 || !n.ends_with(".log")) continue;
    std::int64_t b = 0;
    if (parse_int(std::string_view(n).substr(0, 20), b)) bases.push_back(b);
  }
  std::sort(bases.rbegin(), bases.rend());
  std::int64_t from = log.log_start_offset().value();
  std::uint64_t covered = 0;
  for (auto b : bases) {
    auto size = e.file_size(dir / storage::segment_file_name(offset(b), ".log"));
    if (!size) return size.error();
    covered += size.value();
    if (covered >= min_bytes) {
      from = std::max(from, b);
      break;
    }
  }
  rep.from_offset = from;
  const std::int64_t end = log.high_watermark().value();
  std::int64_t at = from;
  while (at < end) {
    auto r = log.read(offset(at), 4u << 20);
    if (!r) return r.error();
    if (r.value().batches == 0) break;
    std::span<const std::byte> data(r.value().data);
    while (data.size() >= format::kBatchHeaderSize) {
      const auto h = format::batch_header::decode(data.data());
      if (static_cast<std::size_t>(h.size()) < format::kBatchHeaderSize ||
          static_cast<std::size_t>(h.size()) > data.size())
        break;
      if (h.pid.value() >= 0) appended(h, h.base_offset.value(), now_ms);
      ++rep.batches;
      data = data.subspan(static_cast<std::size_t>(h.size()));
    }
    rep.bytes += r.value().data.size();
    if (r.value().next_offset.value() <= at) break;
    at = r.value().next_offset.value();
  }
  return rep;
}

}  // namespace ferry::broker
