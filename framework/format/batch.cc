#include "ferry/format/batch.h"

#include <fmt/format.h>

#include <limits>

#include "ferry/core/crc32c.h"
#include "ferry/core/endian.h"
#include "ferry/format/errc.h"

namespace ferry::format {

batch_header batch_header::decode(const std::byte* p) noexcept {
  batch_header h;
  h.base_offset = offset(be::load<std::int64_t>(p + layout::base_offset));
  h.batch_length = be::load<std::int32_t>(p + layout::batch_length);
  h.partition_leader_epoch = be::load<std::int32_t>(p + layout::partition_leader_epoch);
  h.magic = be::load<std::int8_t>(p + layout::magic);
  h.crc = be::load<std::uint32_t>(p + layout::crc);
  h.attributes = be::load<std::int16_t>(p + layout::attributes);
  h.last_offset_delta = be::load<std::int32_t>(p + layout::last_offset_delta);
  h.first_timestamp = timestamp_ms(be::load<std::int64_t>(p + layout::base_timestamp));
  h.max_timestamp = timestamp_ms(be::load<std::int64_t>(p + layout::max_timestamp));
  h.pid = producer_id(be::load<std::int64_t>(p + layout::producer_id));
  h.epoch = producer_epoch(be::load<std::int16_t>(p + layout::producer_epoch));
  h.base_sequence = sequence_number(be::load<std::int32_t>(p + layout::base_sequence));
  h.record_count = be::load<std::int32_t>(p + layout::records_count);
  return h;
}

namespace detail {
namespace {

// Kafka writes every varint of a record zigzag-encoded, lengths included.
bool get_z(std::span<const std::byte>& in, std::int64_t& v) {
  auto r = varint::get(in);
  if (!r) return false;
  v = varint::unzigzag(*r);
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

}  // namespace

bool next_header(std::span<const std::byte>& in, header_view& out) {
  std::int64_t klen;
  if (!get_z(in, klen) || klen < 0 || static_cast<std::uint64_t>(klen) > in.size()) return false;
  out.key =
      std::string_view(reinterpret_cast<const char*>(in.data()), static_cast<std::size_t>(klen));
  in = in.subspan(static_cast<std::size_t>(klen));
  return get_nullable(in, out.value);
}

bool next_record(std::span<const std::byte>& in, const batch_header& h, std::int32_t index,
                 record_view& out) {
  std::int64_t len;
  if (!get_z(in, len) || len < 1 || static_cast<std::uint64_t>(len) > in.size()) return false;
  auto rec = in.first(static_cast<std::size_t>(len));
  in = in.subspan(static_cast<std::size_t>(len));
  if (rec[0] != std::byte{0}) return false;  // record attributes: none defined
  rec = rec.subspan(1);
  std::int64_t ts_delta, off_delta, hcount;
  if (!get_z(rec, ts_delta) || !get_z(rec, off_delta)) return false;
  if (off_delta != index) return false;
  out.off = h.base_offset + off_delta;  // no overflow: validate_batch bounds baseOffset
  // A hostile delta must not overflow (undefined behaviour): malformed.
  std::int64_t ts;
  if (__builtin_add_overflow(h.first_timestamp.value(), ts_delta, &ts)) return false;
  out.timestamp = timestamp_ms(ts);
  if (!get_nullable(rec, out.key) || !get_nullable(rec, out.value)) return false;
  // Each header takes at least 2 bytes.
  if (!get_z(rec, hcount) || hcount < 0 || static_cast<std::uint64_t>(hcount) > rec.size())
    return false;
  auto headers_start = rec;
  header_view hv;
  for (std::int64_t i = 0; i < hcount; ++i)
    if (!next_header(rec, hv)) return false;
  out.header_count = static_cast<std::uint32_t>(hcount);
  out.headers_raw = headers_start.first(headers_start.size() - rec.size());
  return rec.empty();  // nothing may be left over inside a record
}

std::span<const std::byte> records_of(std::span<const std::byte> batch, const batch_header& h,
                                      std::vector<std::byte>& scratch) {
  const auto end = std::min<std::uint64_t>(h.size(), batch.size());
  auto region = batch.subspan(kBatchHeaderSize, static_cast<std::size_t>(end) - kBatchHeaderSize);
  if (h.codec() == compression::none) return region;
  if (!decompress(h.codec(), region, scratch, kMaxBatchBytes)) return {};
  return scratch;
}

}  // namespace detail

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
                                    std::string* what, std::vector<std::byte>* records) {
  auto fail = [&](std::string reason) -> result<batch_header> {
    if (what) *what = std::move(reason);
    return errc::invalid_batch;
  };
  if (bytes.size() < kBatchHeaderSize)
    return fail(fmt::format("{} bytes is shorter than the {}-byte batch header", bytes.size(),
                            kBatchHeaderSize));
  if (bytes.size() > kMaxBatchBytes)
    return fail(fmt::format("{} bytes is above the {}-byte limit of a batch", bytes.size(),
                            kMaxBatchBytes));
  auto h = batch_header::decode(bytes.data());
  if (h.magic != kBatchMagic) {
    if (static_cast<std::uint8_t>(bytes[16]) == kFormat1Magic ||
        static_cast<std::uint8_t>(bytes[16]) == 0)
      return fail(
          fmt::format("magic {}: not a RecordBatch v2 (an older format; Ferry stores "
                      "Kafka's magic 2)",
                      static_cast<int>(h.magic)));
    return fail(fmt::format("unknown magic {}", static_cast<int>(h.magic)));
  }
  if (h.batch_length < 0 || h.size() != bytes.size())
    return fail(fmt::format("batchLength {} does not match the {} bytes given", h.batch_length,
                            bytes.size()));
  const std::uint32_t crc = crc32c::value(bytes.data() + kCrcStart, bytes.size() - kCrcStart);
  if (crc != h.crc)
    return fail(fmt::format("CRC32C mismatch: stored {:#010x}, computed {:#010x}", h.crc, crc));
  if (h.attributes & attribute::transactional)
    return fail("transactional batches are not supported yet");
  if (h.attributes & attribute::control) return fail("control batches are not supported yet");
  if (h.attributes & ~(attribute::compression_mask | attribute::log_append_time))
    return fail(fmt::format("unsupported attributes {:#06x}", h.attributes));
  if (static_cast<int>(h.codec()) > static_cast<int>(compression::zstd))
    return fail(fmt::format("unknown compression {}", static_cast<int>(h.codec())));
  // Each record takes at least 7 bytes, so the count is bounded by the size
  // (of the records once decompressed: by the limit on that).
  const std::size_t room =
      h.codec() == compression::none ? bytes.size() - kBatchHeaderSize : kMaxBatchBytes;
  if (h.record_count < 1 || static_cast<std::size_t>(h.record_count) > room / 7)
    return fail(
        fmt::format("recordsCount {} impossible for {} bytes", h.record_count, bytes.size()));
  if (h.base_offset.value() < 0 ||
      h.base_offset.value() > std::numeric_limits<std::int64_t>::max() - h.record_count)
    return fail(fmt::format("baseOffset {} out of range", h.base_offset.value()));
  if (h.last_offset_delta != h.record_count - 1)
    return fail(
        fmt::format("lastOffsetDelta {} with {} records", h.last_offset_delta, h.record_count));
  if (h.max_timestamp < h.first_timestamp)
    return fail("max_timestamp (maxTimestamp) below the base timestamp");
  if (level == validation::header_and_crc) return h;

  std::vector<std::byte> local;
  auto& inflated = records != nullptr ? *records : local;
  std::span<const std::byte> rest = bytes.subspan(kBatchHeaderSize);
  if (h.codec() != compression::none) {
    std::string why;
    if (!decompress(h.codec(), rest, inflated, kMaxBatchBytes, &why))
      return fail(fmt::format("{}-compressed records: {}", to_string(h.codec()), why));
    rest = inflated;
  }
  record_view r;
  timestamp_ms max_ts = timestamp_ms::min();
  for (std::int32_t i = 0; i < h.record_count; ++i) {
    if (!detail::next_record(rest, h, i, r))
      return fail(h.codec() == compression::none
                      ? fmt::format("record {} is malformed", i)
                      : fmt::format("record {} is malformed (in the {}-compressed records)", i,
                                    to_string(h.codec())));
    max_ts = std::max(max_ts, r.timestamp);
  }
  if (!rest.empty())
    return fail(fmt::format("{} bytes left after the last record{}", rest.size(),
                            h.codec() == compression::none ? "" : " (after decompression)"));
  if (!(h.attributes & attribute::log_append_time) && max_ts != h.max_timestamp)
    return fail("max_timestamp (maxTimestamp) does not match the records");
  return h;
}

std::span<const std::byte> checked_batch::records() const noexcept {
  if (header_.codec() != compression::none) return inflated_;
  return std::span<const std::byte>(bytes_).subspan(kBatchHeaderSize);
}

result<checked_batch> check_batch(std::span<std::byte> bytes, std::string* what) {
  std::vector<std::byte> inflated;
  FERRY_TRY(auto h, validate_batch(bytes, validation::full, what, &inflated));
  checked_batch out(bytes, h);
  out.inflated_ = std::move(inflated);
  return out;
}

std::vector<record_view> decode_records(std::span<const std::byte> batch) {
  std::vector<record_view> out;
  const auto h = batch_header::decode(batch.data());
  for_each_record_in(h, batch.subspan(kBatchHeaderSize),
                     [&](const record_view& r) { out.push_back(r); });
  return out;
}

// ---------------------------------------------------------------------------

batch_builder::batch_builder() {
  buf_.resize(kBatchHeaderSize);
}

namespace {

void put_z(std::vector<std::byte>& b, std::int64_t v) {
  std::byte tmp[varint::kMaxBytes];
  auto n = varint::put(tmp, varint::zigzag(v));
  b.insert(b.end(), tmp, tmp + n);
}
std::size_t z_size(std::int64_t v) {
  return varint::size(varint::zigzag(v));
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
  return z_size(static_cast<std::int64_t>(s->size())) + s->size();
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
  const std::int64_t off_delta = count_;
  std::size_t body = 1 + z_size(ts_delta) + z_size(off_delta) + nullable_size(key) +
                     nullable_size(value) + z_size(static_cast<std::int64_t>(headers.size()));
  for (const auto& h : headers)
    body += z_size(static_cast<std::int64_t>(h.key.size())) + h.key.size() + nullable_size(h.value);
  if (buf_.capacity() < buf_.size() + body + varint::kMaxBytes)
    buf_.reserve(
        std::max(2 * buf_.capacity(), buf_.size() + body + varint::kMaxBytes));  // geometric growth
  put_z(buf_, static_cast<std::int64_t>(body));
  buf_.push_back(std::byte{0});
  put_z(buf_, ts_delta);
  put_z(buf_, off_delta);
  put_nullable(buf_, key);
  put_nullable(buf_, value);
  put_z(buf_, static_cast<std::int64_t>(headers.size()));
  for (const auto& h : headers) {
    put_z(buf_, static_cast<std::int64_t>(h.key.size()));
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

std::vector<std::byte> batch_builder::finish(const producer_info& producer, compression codec) {
  std::vector<std::byte> out;
  std::int16_t attributes = 0;
  if (codec != compression::none) {
    std::vector<std::byte> packed(kBatchHeaderSize);
    const auto records = std::span<const std::byte>(buf_).subspan(kBatchHeaderSize);
    if (compress(codec, records, packed) && packed.size() < buf_.size()) {
      out.swap(packed);
      attributes = static_cast<std::int16_t>(codec);
    }
  }
  if (out.empty()) out.swap(buf_);
  std::byte* p = out.data();
  be::store<std::int64_t>(p + layout::base_offset, 0);
  be::store<std::int32_t>(p + layout::batch_length,
                          static_cast<std::int32_t>(out.size() - kBatchLengthOverhead));
  be::store<std::int32_t>(p + layout::partition_leader_epoch, -1);
  be::store<std::int8_t>(p + layout::magic, kBatchMagic);
  be::store<std::int16_t>(p + layout::attributes, attributes);
  be::store<std::int32_t>(p + layout::last_offset_delta, count_ - 1);
  be::store<std::int64_t>(p + layout::base_timestamp, first_ts_.value());
  be::store<std::int64_t>(p + layout::max_timestamp, max_ts_.value());
  be::store<std::int64_t>(p + layout::producer_id, producer.pid.value());
  be::store<std::int16_t>(p + layout::producer_epoch, producer.epoch.value());
  be::store<std::int32_t>(p + layout::base_sequence, producer.base_sequence.value());
  be::store<std::int32_t>(p + layout::records_count, count_);
  be::store<std::uint32_t>(p + layout::crc, crc32c::value(p + kCrcStart, out.size() - kCrcStart));
  buf_.clear();
  buf_.resize(kBatchHeaderSize);
  count_ = 0;
  return out;
}

}  // namespace ferry::format
