#include "ferry/format/compression.h"

#include <fmt/format.h>
#include <lz4frame.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "ferry/core/endian.h"
#include "ferry/format/errc.h"

namespace ferry::format {

namespace {

constexpr std::byte kXerialMagic[8] = {std::byte{0x82}, std::byte{'S'}, std::byte{'N'},
                                       std::byte{'A'},  std::byte{'P'}, std::byte{'P'},
                                       std::byte{'Y'},  std::byte{0}};
constexpr std::size_t kXerialHeader = 16;  // magic, version (i32), compatible version (i32)
constexpr std::size_t kXerialChunk = 32 * 1024;

result<void> refuse(std::string* why, std::string reason) {
  if (why) *why = std::move(reason);
  return errc::invalid_batch;
}

const char* chars(std::span<const std::byte> s) {
  return reinterpret_cast<const char*>(s.data());
}

// --- gzip ---------------------------------------------------------------------

result<void> gzip_compress(std::span<const std::byte> in, std::vector<std::byte>& out) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return errc::invalid_batch;
  const auto start = out.size();
  out.resize(start + deflateBound(&z, static_cast<uLong>(in.size())) + 32);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data() + start);
  z.avail_out = static_cast<uInt>(out.size() - start);
  const int rc = deflate(&z, Z_FINISH);
  const auto produced = out.size() - start - z.avail_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return errc::invalid_batch;
  out.resize(start + produced);
  return success();
}

result<void> gzip_decompress(std::span<const std::byte> in, std::vector<std::byte>& out,
                             std::size_t max_bytes, std::string* why) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return refuse(why, "gzip: cannot start zlib");
  std::unique_ptr<z_stream, int (*)(z_streamp)> guard(&z, inflateEnd);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  out.clear();
  std::size_t cap = std::min<std::size_t>(max_bytes, std::max<std::size_t>(4096, in.size() * 4));
  for (;;) {
    out.resize(cap);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + z.total_out);
    z.avail_out = static_cast<uInt>(cap - z.total_out);
    const int rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      if (z.avail_in != 0) return refuse(why, "gzip: bytes after the end of the stream");
      out.resize(z.total_out);
      return success();
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      return refuse(why, fmt::format("gzip: {}", z.msg ? z.msg : "corrupt stream"));
    if (z.avail_out == 0) {
      if (cap >= max_bytes)
        return refuse(why, fmt::format("gzip: more than {} bytes uncompressed", max_bytes));
      cap = std::min(max_bytes, cap * 2);
      continue;
    }
    if (z.avail_in == 0) return refuse(why, "gzip: the stream ends early");
  }
}

// --- snappy -------------------------------------------------------------------

result<void> snappy_compress(std::span<const std::byte> in, std::vector<std::byte>& out) {
  // xerial framing: what Kafka's Java client writes and every client reads.
  out.insert(out.end(), std::begin(kXerialMagic), std::end(kXerialMagic));
  std::byte version[8];
  be::store<std::int32_t>(version, 1);
  be::store<std::int32_t>(version + 4, 1);
  out.insert(out.end(), version, version + 8);
  for (std::size_t at = 0; at < in.size(); at += kXerialChunk) {
    const auto n = std::min(kXerialChunk, in.size() - at);
    const auto len_at = out.size();
    out.resize(len_at + 4 + snappy::MaxCompressedLength(n));
    std::size_t produced = 0;
    snappy::RawCompress(chars(in.subspan(at, n)), n,
                        reinterpret_cast<char*>(out.data() + len_at + 4), &produced);
    be::store<std::int32_t>(out.data() + len_at, static_cast<std::int32_t>(produced));
    out.resize(len_at + 4 + produced);
  }
  return success();
}

result<void> snappy_raw(std::span<const std::byte> in, std::vector<std::byte>& out,
                        std::size_t max_bytes, std::string* why) {
  std::size_t n = 0;
  if (!snappy::GetUncompressedLength(chars(in), in.size(), &n))
    return refuse(why, "snappy: not a snappy block");
  if (n > max_bytes - out.size())
    return refuse(
        why, fmt::format("snappy: declares {} bytes uncompressed, more than {}", n, max_bytes));
  const auto at = out.size();
  out.resize(at + n);
  if (!snappy::RawUncompress(chars(in), in.size(), reinterpret_cast<char*>(out.data() + at)))
    return refuse(why, "snappy: corrupt block");
  return success();
}

result<void> snappy_decompress(std::span<const std::byte> in, std::vector<std::byte>& out,
                               std::size_t max_bytes, std::string* why) {
  out.clear();
  if (in.size() < kXerialHeader || std::memcmp(in.data(), kXerialMagic, sizeof kXerialMagic) != 0)
    return snappy_raw(in, out, max_bytes, why);
  auto rest = in.subspan(kXerialHeader);
  while (!rest.empty()) {
    if (rest.size() < 4) return refuse(why, "snappy: a chunk length is cut off");
    const auto n = be::load<std::int32_t>(rest.data());
    if (n < 0 || static_cast<std::size_t>(n) > rest.size() - 4)
      return refuse(why, "snappy: a chunk runs past the end");
    FERRY_TRY(snappy_raw(rest.subspan(4, static_cast<std::size_t>(n)), out, max_bytes, why));
    rest = rest.subspan(4 + static_cast<std::size_t>(n));
  }
  return success();
}

// --- lz4 ------------------------------------------------------------------------

result<void> lz4_compress(std::span<const std::byte> in, std::vector<std::byte>& out) {
  LZ4F_preferences_t prefs{};
  prefs.frameInfo.contentSize = in.size();
  const auto start = out.size();
  out.resize(start + LZ4F_compressFrameBound(in.size(), &prefs));
  const auto n =
      LZ4F_compressFrame(out.data() + start, out.size() - start, in.data(), in.size(), &prefs);
  if (LZ4F_isError(n)) return errc::invalid_batch;
  out.resize(start + n);
  return success();
}

result<void> lz4_decompress(std::span<const std::byte> in, std::vector<std::byte>& out,
                            std::size_t max_bytes, std::string* why) {
  LZ4F_dctx* ctx = nullptr;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION)))
    return refuse(why, "lz4: cannot start a decompression");
  std::unique_ptr<LZ4F_dctx, decltype(&LZ4F_freeDecompressionContext)> guard(
      ctx, LZ4F_freeDecompressionContext);
  out.clear();
  // A declared size above the limit is refused before anything is allocated.
  LZ4F_frameInfo_t info{};
  std::size_t consumed = in.size();
  auto rc = LZ4F_getFrameInfo(ctx, &info, in.data(), &consumed);
  if (LZ4F_isError(rc)) return refuse(why, fmt::format("lz4: {}", LZ4F_getErrorName(rc)));
  if (info.contentSize > max_bytes)
    return refuse(why, fmt::format("lz4: declares {} bytes uncompressed, more than {}",
                                   info.contentSize, max_bytes));
  std::size_t at = consumed;
  std::size_t cap =
      info.contentSize > 0
          ? static_cast<std::size_t>(info.contentSize)
          : std::min<std::size_t>(max_bytes, std::max<std::size_t>(4096, in.size() * 4));
  std::size_t produced = 0;
  for (;;) {
    out.resize(cap);
    std::size_t dst = cap - produced;
    std::size_t src = in.size() - at;
    rc = LZ4F_decompress(ctx, out.data() + produced, &dst, in.data() + at, &src, nullptr);
    if (LZ4F_isError(rc)) return refuse(why, fmt::format("lz4: {}", LZ4F_getErrorName(rc)));
    produced += dst;
    at += src;
    if (rc == 0) {  // the frame is complete
      if (at != in.size()) return refuse(why, "lz4: bytes after the end of the frame");
      out.resize(produced);
      return success();
    }
    if (produced == cap) {
      if (cap >= max_bytes)
        return refuse(why, fmt::format("lz4: more than {} bytes uncompressed", max_bytes));
      cap = std::min(max_bytes, cap * 2);
    } else if (at == in.size()) {
      return refuse(why, "lz4: the frame ends early");
    }
  }
}

// --- zstd ------------------------------------------------------------------------

result<void> zstd_compress(std::span<const std::byte> in, std::vector<std::byte>& out) {
  const auto start = out.size();
  out.resize(start + ZSTD_compressBound(in.size()));
  const auto n = ZSTD_compress(out.data() + start, out.size() - start, in.data(), in.size(), 3);
  if (ZSTD_isError(n)) return errc::invalid_batch;
  out.resize(start + n);
  return success();
}

result<void> zstd_decompress(std::span<const std::byte> in, std::vector<std::byte>& out,
                             std::size_t max_bytes, std::string* why) {
  out.clear();
  const auto declared = ZSTD_getFrameContentSize(in.data(), in.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) return refuse(why, "zstd: not a zstd frame");
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > max_bytes)
    return refuse(why, fmt::format("zstd: declares {} bytes uncompressed, more than {}", declared,
                                   max_bytes));
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!ctx) return refuse(why, "zstd: cannot start a decompression");
  ZSTD_inBuffer src{in.data(), in.size(), 0};
  std::size_t cap =
      declared != ZSTD_CONTENTSIZE_UNKNOWN
          ? static_cast<std::size_t>(declared)
          : std::min<std::size_t>(max_bytes, std::max<std::size_t>(4096, in.size() * 4));
  std::size_t produced = 0;
  for (;;) {
    out.resize(std::max<std::size_t>(cap, 1));
    ZSTD_outBuffer dst{out.data(), out.size(), produced};
    const auto rc = ZSTD_decompressStream(ctx.get(), &dst, &src);
    if (ZSTD_isError(rc)) return refuse(why, fmt::format("zstd: {}", ZSTD_getErrorName(rc)));
    produced = dst.pos;
    if (rc == 0) {  // a frame ended
      if (src.pos != src.size) return refuse(why, "zstd: bytes after the end of the frame");
      out.resize(produced);
      return success();
    }
    if (produced == out.size()) {
      if (out.size() >= max_bytes)
        return refuse(why, fmt::format("zstd: more than {} bytes uncompressed", max_bytes));
      cap = std::min(max_bytes, out.size() * 2);
    } else if (src.pos == src.size) {
      return refuse(why, "zstd: the frame ends early");
    }
  }
}

}  // namespace

std::string_view to_string(compression c) noexcept {
  switch (c) {
    case compression::none:
      return "none";
    case compression::gzip:
      return "gzip";
    case compression::snappy:
      return "snappy";
    case compression::lz4:
      return "lz4";
    case compression::zstd:
      return "zstd";
  }
  return "unknown";
}

std::optional<compression> parse_compression(std::string_view name) noexcept {
  for (auto c : {compression::none, compression::gzip, compression::snappy, compression::lz4,
                 compression::zstd})
    if (to_string(c) == name) return c;
  return std::nullopt;
}

result<void> compress(compression c, std::span<const std::byte> in, std::vector<std::byte>& out) {
  switch (c) {
    case compression::none:
      out.insert(out.end(), in.begin(), in.end());
      return success();
    case compression::gzip:
      return gzip_compress(in, out);
    case compression::snappy:
      return snappy_compress(in, out);
    case compression::lz4:
      return lz4_compress(in, out);
    case compression::zstd:
      return zstd_compress(in, out);
  }
  return errc::invalid_batch;
}

result<void> decompress(compression c, std::span<const std::byte> in, std::vector<std::byte>& out,
                        std::size_t max_bytes, std::string* why) {
  switch (c) {
    case compression::none:
      if (in.size() > max_bytes) return refuse(why, "more bytes than allowed");
      out.assign(in.begin(), in.end());
      return success();
    case compression::gzip:
      return gzip_decompress(in, out, max_bytes, why);
    case compression::snappy:
      return snappy_decompress(in, out, max_bytes, why);
    case compression::lz4:
      return lz4_decompress(in, out, max_bytes, why);
    case compression::zstd:
      return zstd_decompress(in, out, max_bytes, why);
  }
  return refuse(why, fmt::format("unknown compression {}", static_cast<int>(c)));
}

}  // namespace ferry::format
