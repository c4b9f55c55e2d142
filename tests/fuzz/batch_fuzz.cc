// Fuzz target: record batches and their decompression (ferry::format), the
// code that reads every produced batch - Ferry's own producers' and any
// Kafka client's. Input: byte 0 picks the mode, the rest is the bytes.
//   mode % 8 == 0  validate_batch as given
//   mode % 8 == 1  the same after fixing batchLength and the CRC, so that
//                  mutations reach the records and the decompressors
//   mode % 8 == 2..5  decompress with gzip, snappy, lz4, zstd
// Invariants: no crash, no sanitizer report, no output above the limit;
// a batch that passes full validation yields exactly recordsCount records
// at dense offsets, whose keys, values and headers lie inside the bytes
// (or the decompressed records), with maxTimestamp their largest timestamp.
#include <cstdint>
#include <cstring>
#include <vector>

#include "ferry/core/crc32c.h"
#include "ferry/core/endian.h"
#include "ferry/format/batch.h"
#include "fuzz_check.h"

namespace {

using namespace ferry;
using namespace ferry::format;

constexpr std::size_t kLimit = 1u << 20;  // decompression limit in this target

bool inside(std::span<const std::byte> whole, std::span<const std::byte> part) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

bool check_batch_bytes(std::vector<std::byte>& b) {
  std::vector<std::byte> records;
  auto h = validate_batch(b, validation::full, nullptr, &records);
  if (!h) {
    (void)validate_batch(b, validation::header_and_crc);
    return false;
  }
  FERRY_FUZZ_CHECK(h.value().size() == b.size());
  const auto region = h.value().codec() == compression::none
                          ? std::span<const std::byte>(b).subspan(kBatchHeaderSize)
                          : std::span<const std::byte>(records);
  std::int32_t n = 0;
  timestamp_ms max_ts = timestamp_ms::min();
  for_each_record_in(h.value(), region, [&](const record_view& r) {
    FERRY_FUZZ_CHECK(r.off == h.value().base_offset + n);
    ++n;
    max_ts = std::max(max_ts, r.timestamp);
    if (r.key) FERRY_FUZZ_CHECK(inside(region, *r.key));
    if (r.value) FERRY_FUZZ_CHECK(inside(region, *r.value));
    FERRY_FUZZ_CHECK(inside(region, r.headers_raw));
    std::uint32_t headers = 0;
    r.for_each_header([&](const header_view& hv) {
      ++headers;
      FERRY_FUZZ_CHECK(inside(region, std::as_bytes(std::span(hv.key.data(), hv.key.size()))));
      if (hv.value) FERRY_FUZZ_CHECK(inside(region, *hv.value));
    });
    FERRY_FUZZ_CHECK(headers == r.header_count);
  });
  FERRY_FUZZ_CHECK(n == h.value().record_count);
  if (!(h.value().attributes & attribute::log_append_time))
    FERRY_FUZZ_CHECK(max_ts == h.value().max_timestamp);
  // for_each_record (which decompresses itself) agrees.
  std::int32_t again = 0;
  for_each_record(std::span<const std::byte>(b), [&](const record_view&) { ++again; });
  FERRY_FUZZ_CHECK(again == n);
  return true;
}

}  // namespace

bool ferry_fuzz_batch_one(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return false;
  const int mode = data[0] % 8;
  std::vector<std::byte> b(reinterpret_cast<const std::byte*>(data + 1),
                           reinterpret_cast<const std::byte*>(data + size));
  switch (mode) {
    case 0:
      return check_batch_bytes(b);
    case 1:
      if (b.size() >= kBatchHeaderSize) {
        be::store<std::int32_t>(b.data() + layout::batch_length,
                                static_cast<std::int32_t>(b.size() - kBatchLengthOverhead));
        be::store<std::uint32_t>(b.data() + layout::crc,
                                 crc32c::value(b.data() + kCrcStart, b.size() - kCrcStart));
      }
      return check_batch_bytes(b);
    case 2:
    case 3:
    case 4:
    case 5: {
      std::vector<std::byte> out;
      const auto c = static_cast<compression>(mode - 1);
      const bool ok = static_cast<bool>(decompress(c, b, out, kLimit));
      FERRY_FUZZ_CHECK(out.size() <= kLimit || !ok);
      return ok;
    }
    default:
      return false;
  }
}

#ifdef FERRY_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ferry_fuzz_batch_one(data, size);
  return 0;
}
#endif
