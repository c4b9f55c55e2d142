#include "ferry/format/batch.h"

#include <fmt/format.h>

#include "ferry/core/crc32c.h"
#include "ferry/core/endian.h"
#include "ferry/format/errc.h"

namespace ferry::format {

batch_header batch_header::decode(const std::byte* p) noexcept {
  batch_header h;
  h.base_offset = offset(le::load<std::int64_t>(p + layout::base_offset));
  h.batch_length = le::load<std::uint32_t>(p + layout::batch_length);
  h.crc = le::load<std::uint32_t>(p + layout::crc);
  h.magic = le::load<std::uint8_t>(p + layout::magic);
  h.reserved = le::load<std::uint8_t>(p + layout::reserved);
  h.attributes = le::load<std::uint16_t>(p + layout::attributes);
  h.record_count = le::load<std::int32_t>(p + layout::record_count);
  h.first_timestamp = timestamp_ms(le::load<std::int64_t>(p + layout::first_timestamp));
  h.max_timestamp = timestamp_ms(le::load<std::int64_t>(p + layout::max_timestamp));
  h.pid = producer_id(le::load<std::int64_t>(p + layout::producer_id));
  h.epoch = producer_epoch(le::load<std::int16_t>(p + layout::producer_epoch));
  h.reserved2 = le::load<std::uint16_t>(p + layout::reserved2);
  h.base_sequence = sequence_number(le::load<std::int32_t>(p + layout::base_sequence));
  return h;
}

namespace detail {
namespace {

bool get_u(std::span<const std::byte>& in, std::uint64_t& v) {
  auto r = varint::get(in);
  if (!r) return false;
  v = *r;
  return true;
}

bool get_z(std::span<const std::byte>& in, std::int64_t& v) {
  std::uint64_t u;
  if (!get_u(in, u)) return false;
  v = varint::unzigzag(u);
  return true;
}

// A length-prefixed nullable byte string.
bool get_nullable(std::span<const std::byte>& in, std::optional<std::span<const std::byte>>& out) {
  std::int64_t len;
  if (!get_z(in, len) || len < -1) return false;
  if (len == -1) {
    out.reset();
    return true;
  }
  if (static_cast<std::uint64_t>(len) > in.size()) return false;
  out = in.first(static_cast<std::size_t>(len));
  in = in.subspan(static_cast<std::size_t>(len));
  return true;
}

bool skip_headers(std::span<const std::byte>& in, std::uint64_t count) {
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t klen;
    if (!get_u(in, klen) || klen > in.size()) return false;
    in = in.subspan(static_cast<std::size_t>(klen));
    std::optional<std::span<const std::byte>> v;
    if (!get_nullable(in, v)) return false;
  }
  return true;
}

}  // namespace

bool next_record(std::span<const std::byte>& in, const batch_header& h, std::int32_t index,
                 record_view& out) {
  std::uint64_t len;
  if (!get_u(in, len) || len > in.size() || len < 1) return false;
  auto rec = in.first(static_cast<std::size_t>(len));
  in = in.subspan(static_cast<std::size_t>(len));
  if (rec[0] != std::byte{0}) return false;  // record attributes: none defined
  rec = rec.subspan(1);
  std::int64_t ts_delta;
  std::uint64_t off_delta, hcount;
  if (!get_z(rec, ts_delta) || !get_u(rec, off_delta)) return false;
  if (off_delta != static_cast<std::uint64_t>(index)) return false;
  out.off = h.base_offset + static_cast<std::int64_t>(off_delta);
  out.timestamp = h.first_timestamp + ts_delta;
  if (!get_nullable(rec, out.key) || !get_nullable(rec, out.value)) return false;
  if (!get_u(rec, hcount) || hcount > rec.size()) return false;  // each header takes >= 2 bytes
  auto headers_start = rec;
  if (!skip_headers(rec, hcount)) return false;
  out.header_count = static_cast<std::uint32_t>(hcount);
  out.headers_raw = headers_start.first(headers_start.size() - rec.size());
  return rec.empty();  // nothing may be left over inside a record
}

}  // namespace detail

bool detail::next_header(std::span<const std::byte>& in, header_view& out) {
  auto klen = varint::get(in);
  if (!klen || *klen > in.size()) return false;
  out.key =
      std::string_view(reinterpret_cast<const char*>(in.data()), static_cast<std::size_t>(*klen));
  in = in.subspan(static_cast<std::size_t>(*klen));
  auto vlen = varint::get(in);
  if (!vlen) return false;
  auto v = varint::unzigzag(*vlen);
  out.value.reset();
  if (v > static_cast<std::int64_t>(in.size())) return false;
  if (v >= 0) {
    out.value = in.first(static_cast<std::size_t>(v));
    in = in.subspan(static_cast<std::size_t>(v));
  }
  return true;
}

std::vector<header_view> record_view::headers() const {
  std::vector<header_view> out;
  out.reserve(header_count);
  for_each_header([&](const header_view& h) { out.push_back(h); });
  return out;
}

std::string_view record_view::key_str() const noexcept {
  if (!key) return {};
  return {reinterpret_cast<const char*>(key->data()), key->size()};
}

std::string_view record_view::value_str() const noexcept {
  if (!value) return {};
  return {reinterpret_cast<const char*>(value->data()), value->size()};
}

result<batch_header> validate_batch(std::span<const std::byte> bytes, validation level,
                                    std::string* what) {
  auto fail = [&](std::string reason) -> result<batch_header> {
    if (what) *what = std::move(reason);
    return errc::invalid_batch;
  };
  if (bytes.size() < kBatchHeaderSize)
    return fail(fmt::format("{} bytes is shorter than the {}-byte batch header", bytes.size(),
                            kBatchHeaderSize));
  auto h = batch_header::decode(bytes.data());
  if (h.batch_length != bytes.size())
    return fail(fmt::format("batch_length {} does not match the {} bytes given", h.batch_length,
                            bytes.size()));
  if (h.batch_length > kMaxBatchBytes)
    return fail(fmt::format("batch_length {} above the limit", h.batch_length));
  if (h.magic != kBatchMagic) return fail(fmt::format("unknown magic {}", h.magic));
  std::uint32_t crc = crc32c::value(bytes.data() + kCrcStart, bytes.size() - kCrcStart);
  if (crc != h.crc)
    return fail(fmt::format("CRC32C mismatch: stored {:#010x}, computed {:#010x}", h.crc, crc));
  if (h.reserved != 0 || h.reserved2 != 0) return fail("reserved header bits set");
  if (h.attributes != 0) return fail(fmt::format("unsupported attributes {:#06x}", h.attributes));
  // Each record takes at least 7 bytes, so the count is bounded by the size.
  if (h.record_count < 1 ||
      static_cast<std::size_t>(h.record_count) > (bytes.size() - kBatchHeaderSize) / 7)
    return fail(
        fmt::format("record_count {} impossible for {} bytes", h.record_count, bytes.size()));
  if (h.max_timestamp < h.first_timestamp) return fail("max_timestamp below first_timestamp");
  if (level == validation::header_and_crc) return h;

  auto rest = bytes.subspan(kBatchHeaderSize);
  record_view r;
  timestamp_ms max_ts = timestamp_ms::min();
  for (std::int32_t i = 0; i < h.record_count; ++i) {
    if (!detail::next_record(rest, h, i, r)) return fail(fmt::format("record {} is malformed", i));
    if (i == 0 && r.timestamp != h.first_timestamp)
      return fail("first record's timestamp delta is not 0");
    max_ts = std::max(max_ts, r.timestamp);
  }
  if (!rest.empty()) return fail(fmt::format("{} bytes left after the last record", rest.size()));
  if (max_ts != h.max_timestamp) return fail("max_timestamp does not match the records");
  return h;
}

std::vector<record_view> decode_records(std::span<const std::byte> batch) {
  std::vector<record_view> out;
  for_each_record(batch, [&](const record_view& r) { out.push_back(r); });
  return out;
}

// ---------------------------------------------------------------------------

batch_builder::batch_builder() {
  buf_.resize(kBatchHeaderSize);
}

namespace {

void put_u(std::vector<std::byte>& b, std::uint64_t v) {
  std::byte tmp[varint::kMaxBytes];
  auto n = varint::put(tmp, v);
  b.insert(b.end(), tmp, tmp + n);
}
void put_z(std::vector<std::byte>& b, std::int64_t v) {
  put_u(b, varint::zigzag(v));
}
void put_nullable(std::vector<std::byte>& b, std::optional<std::span<const std::byte>> s) {
  if (!s) {
    put_z(b, -1);
    return;
  }
  put_z(b, static_cast<std::int64_t>(s->size()));
  b.insert(b.end(), s->begin(), s->end());
}
std::size_t nullable_size(std::optional<std::span<const std::byte>> s) {
  if (!s) return 1;
  return varint::size(varint::zigzag(static_cast<std::int64_t>(s->size()))) + s->size();
}

}  // namespace

void batch_builder::add(timestamp_ms ts, std::optional<std::span<const std::byte>> key,
                        std::optional<std::span<const std::byte>> value,
                        std::span<const header_input> headers) {
  if (count_ == 0) {
    first_ts_ = ts;
    max_ts_ = ts;
  }
  max_ts_ = std::max(max_ts_, ts);
  const std::int64_t ts_delta = ts - first_ts_;
  const auto off_delta = static_cast<std::uint64_t>(count_);
  std::size_t body = 1 + varint::size(varint::zigzag(ts_delta)) + varint::size(off_delta) +
                     nullable_size(key) + nullable_size(value) + varint::size(headers.size());
  for (const auto& h : headers)
    body += varint::size(h.key.size()) + h.key.size() + nullable_size(h.value);
  if (buf_.capacity() < buf_.size() + body + varint::kMaxBytes)
    buf_.reserve(
        std::max(2 * buf_.capacity(), buf_.size() + body + varint::kMaxBytes));  // geometric growth
  put_u(buf_, body);
  buf_.push_back(std::byte{0});
  put_z(buf_, ts_delta);
  put_u(buf_, off_delta);
  put_nullable(buf_, key);
  put_nullable(buf_, value);
  put_u(buf_, headers.size());
  for (const auto& h : headers) {
    put_u(buf_, h.key.size());
    auto k = as_bytes(h.key);
    buf_.insert(buf_.end(), k.begin(), k.end());
    put_nullable(buf_, h.value);
  }
  ++count_;
}

void batch_builder::add(timestamp_ms ts, std::string_view key, std::string_view value,
                        std::span<const header_input> headers) {
  add(ts, as_bytes(key), as_bytes(value), headers);
}

std::vector<std::byte> batch_builder::finish(const producer_info& producer) {
  std::byte* p = buf_.data();
  le::store<std::int64_t>(p + layout::base_offset, 0);
  le::store<std::uint32_t>(p + layout::batch_length, static_cast<std::uint32_t>(buf_.size()));
  le::store<std::uint8_t>(p + layout::magic, kBatchMagic);
  le::store<std::uint8_t>(p + layout::reserved, 0);
  le::store<std::uint16_t>(p + layout::attributes, 0);
  le::store<std::int32_t>(p + layout::record_count, count_);
  le::store<std::int64_t>(p + layout::first_timestamp, first_ts_.value());
  le::store<std::int64_t>(p + layout::max_timestamp, max_ts_.value());
  le::store<std::int64_t>(p + layout::producer_id, producer.pid.value());
  le::store<std::int16_t>(p + layout::producer_epoch, producer.epoch.value());
  le::store<std::uint16_t>(p + layout::reserved2, 0);
  le::store<std::int32_t>(p + layout::base_sequence, producer.base_sequence.value());
  le::store<std::uint32_t>(p + layout::crc, crc32c::value(p + kCrcStart, buf_.size() - kCrcStart));
  std::vector<std::byte> out;
  out.swap(buf_);
  buf_.resize(kBatchHeaderSize);
  count_ = 0;
  return out;
}

result<checked_batch> check_batch(std::span<std::byte> bytes, std::string* what) {
  FERRY_TRY(auto h, validate_batch(bytes, validation::full, what));
  return checked_batch(bytes, h);
}

}  // namespace ferry::format
