#include "index.h"

#include <algorithm>

#include "ferry/core/crc32c.h"
#include "ferry/core/endian.h"

namespace ferry::storage::detail {

std::uint32_t segment_index::position_for(std::uint32_t rel) const {
  auto it =
      std::upper_bound(offsets.begin(), offsets.end(), rel,
                       [](std::uint32_t r, const index_entry& e) { return r < e.rel_offset; });
  return it == offsets.begin() ? 0 : std::prev(it)->position;
}

std::uint32_t segment_index::position_for_time(timestamp_ms ts) const {
  // Entries' timestamps never decrease; find the last one below ts.
  auto it = std::lower_bound(times.begin(), times.end(), ts.value(),
                             [](const time_entry& e, std::int64_t t) { return e.timestamp < t; });
  return it == times.begin() ? 0 : std::prev(it)->position;
}

void segment_index::truncate(std::uint32_t position) {
  std::erase_if(offsets, [&](const index_entry& e) { return e.position >= position; });
  std::erase_if(times, [&](const time_entry& e) { return e.position >= position; });
}

namespace {

template <typename Entry, typename Put>
std::vector<std::byte> encode(index_kind kind, const index_header& h,
                              std::span<const Entry> entries, Put put) {
  std::vector<std::byte> b(kIndexHeaderSize + entries.size() * sizeof(Entry));
  std::byte* p = b.data();
  le::store<std::uint32_t>(p, kIndexMagic);
  le::store<std::uint16_t>(p + 4, kIndexVersion);
  le::store<std::uint16_t>(p + 6, static_cast<std::uint16_t>(kind));
  le::store<std::int64_t>(p + 8, h.base_offset.value());
  le::store<std::uint64_t>(p + 16, h.log_size);
  le::store<std::int64_t>(p + 24, h.next_offset.value());
  le::store<std::int64_t>(p + 32, h.max_timestamp.value());
  le::store<std::uint64_t>(p + 40, 0);
  le::store<std::uint32_t>(p + 48, static_cast<std::uint32_t>(entries.size()));
  std::byte* q = p + kIndexHeaderSize;
  for (const auto& e : entries) q = put(q, e);
  std::uint32_t crc = crc32c::value(p, 52);
  crc = crc32c::extend(crc, p + kIndexHeaderSize, b.size() - kIndexHeaderSize);
  le::store<std::uint32_t>(p + 52, crc);
  return b;
}

bool check_common(std::span<const std::byte> bytes, const index_header& expect, index_kind kind,
                  std::size_t entry_size, std::uint32_t& count) {
  auto h = decode_index_header(bytes);
  if (!h || h->kind != kind || h->base_offset != expect.base_offset ||
      h->log_size != expect.log_size || h->next_offset != expect.next_offset ||
      h->max_timestamp != expect.max_timestamp)
    return false;
  if (bytes.size() != kIndexHeaderSize + std::size_t{h->entry_count} * entry_size) return false;
  std::uint32_t crc = crc32c::value(bytes.data(), 52);
  crc = crc32c::extend(crc, bytes.data() + kIndexHeaderSize, bytes.size() - kIndexHeaderSize);
  if (crc != le::load<std::uint32_t>(bytes.data() + 52)) return false;
  count = h->entry_count;
  return true;
}

}  // namespace

std::vector<std::byte> encode_offset_index(const index_header& h, std::span<const index_entry> e) {
  return encode<index_entry>(index_kind::offset, h, e, [](std::byte* q, const index_entry& x) {
    le::store<std::uint32_t>(q, x.rel_offset);
    le::store<std::uint32_t>(q + 4, x.position);
    return q + 8;
  });
}

std::vector<std::byte> encode_time_index(const index_header& h, std::span<const time_entry> e) {
  return encode<time_entry>(index_kind::time, h, e, [](std::byte* q, const time_entry& x) {
    le::store<std::int64_t>(q, x.timestamp);
    le::store<std::uint32_t>(q + 8, x.rel_offset);
    le::store<std::uint32_t>(q + 12, x.position);
    return q + 16;
  });
}

std::optional<index_header> decode_index_header(std::span<const std::byte> bytes) {
  if (bytes.size() < kIndexHeaderSize) return std::nullopt;
  const std::byte* p = bytes.data();
  if (le::load<std::uint32_t>(p) != kIndexMagic || le::load<std::uint16_t>(p + 4) != kIndexVersion)
    return std::nullopt;
  auto kind = le::load<std::uint16_t>(p + 6);
  if (kind != 1 && kind != 2) return std::nullopt;
  index_header h;
  h.kind = static_cast<index_kind>(kind);
  h.base_offset = offset(le::load<std::int64_t>(p + 8));
  h.log_size = le::load<std::uint64_t>(p + 16);
  h.next_offset = offset(le::load<std::int64_t>(p + 24));
  h.max_timestamp = timestamp_ms(le::load<std::int64_t>(p + 32));
  h.entry_count = le::load<std::uint32_t>(p + 48);
  if (le::load<std::uint64_t>(p + 40) != 0 || h.next_offset < h.base_offset) return std::nullopt;
  return h;
}

std::optional<std::vector<index_entry>> decode_offset_index(std::span<const std::byte> bytes,
                                                            const index_header& expect) {
  std::uint32_t n;
  if (!check_common(bytes, expect, index_kind::offset, 8, n)) return std::nullopt;
  std::vector<index_entry> out(n);
  const std::byte* q = bytes.data() + kIndexHeaderSize;
  for (std::uint32_t i = 0; i < n; ++i, q += 8) {
    out[i] = {le::load<std::uint32_t>(q), le::load<std::uint32_t>(q + 4)};
    if (out[i].position >= expect.log_size) return std::nullopt;
    if (i > 0 &&
        (out[i].rel_offset <= out[i - 1].rel_offset || out[i].position <= out[i - 1].position))
      return std::nullopt;
  }
  return out;
}

std::optional<std::vector<time_entry>> decode_time_index(std::span<const std::byte> bytes,
                                                         const index_header& expect) {
  std::uint32_t n;
  if (!check_common(bytes, expect, index_kind::time, 16, n)) return std::nullopt;
  std::vector<time_entry> out(n);
  const std::byte* q = bytes.data() + kIndexHeaderSize;
  for (std::uint32_t i = 0; i < n; ++i, q += 16) {
    out[i] = {le::load<std::int64_t>(q), le::load<std::uint32_t>(q + 8),
              le::load<std::uint32_t>(q + 12)};
    if (out[i].position >= expect.log_size) return std::nullopt;
    if (i > 0 &&
        (out[i].timestamp < out[i - 1].timestamp || out[i].position <= out[i - 1].position))
      return std::nullopt;
  }
  return out;
}

}  // namespace ferry::storage::detail
