#include "ferry/kafka/wire.h"

#include <limits>

#include "ferry/core/endian.h"

namespace ferry::kafka {

std::span<const std::byte> reader::take(std::size_t n) {
  if (!ok_ || n > in_.size()) {
    ok_ = false;
    return {};
  }
  auto out = in_.first(n);
  in_ = in_.subspan(n);
  return out;
}

std::int8_t reader::i8() {
  auto b = take(1);
  return b.empty() ? 0 : be::load<std::int8_t>(b.data());
}
std::int16_t reader::i16() {
  auto b = take(2);
  return b.empty() ? 0 : be::load<std::int16_t>(b.data());
}
std::int32_t reader::i32() {
  auto b = take(4);
  return b.empty() ? 0 : be::load<std::int32_t>(b.data());
}
std::int64_t reader::i64() {
  auto b = take(8);
  return b.empty() ? 0 : be::load<std::int64_t>(b.data());
}

std::uint32_t reader::uvarint() {
  std::uint32_t v = 0;
  for (int shift = 0; shift <= 28; shift += 7) {
    auto b = take(1);
    if (b.empty()) return 0;
    const auto x = static_cast<std::uint32_t>(b[0]);
    if (shift == 28 && (x & 0xf0) != 0) break;  // more than 32 bits
    v |= (x & 0x7f) << shift;
    if ((x & 0x80) == 0) return v;
  }
  ok_ = false;
  return 0;
}

std::optional<std::string_view> reader::nullable_string() {
  const auto n = i16();
  if (!ok_ || n == -1) return std::nullopt;
  if (n < 0) {
    ok_ = false;
    return std::nullopt;
  }
  auto b = take(static_cast<std::size_t>(n));
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}

std::string_view reader::string() {
  auto s = nullable_string();
  if (!s) {
    ok_ = false;
    return {};
  }
  return *s;
}

std::optional<std::string_view> reader::compact_nullable_string() {
  const auto n = uvarint();
  if (!ok_ || n == 0) return std::nullopt;
  auto b = take(n - 1);
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}

std::string_view reader::compact_string() {
  auto s = compact_nullable_string();
  if (!s) {
    ok_ = false;
    return {};
  }
  return *s;
}

std::optional<std::span<const std::byte>> reader::nullable_bytes() {
  const auto n = i32();
  if (!ok_ || n == -1) return std::nullopt;
  if (n < 0) {
    ok_ = false;
    return std::nullopt;
  }
  return take(static_cast<std::size_t>(n));
}

std::span<const std::byte> reader::bytes() {
  auto b = nullable_bytes();
  if (!b) {
    ok_ = false;
    return {};
  }
  return *b;
}

std::optional<std::span<const std::byte>> reader::compact_nullable_bytes() {
  const auto n = uvarint();
  if (!ok_ || n == 0) return std::nullopt;
  return take(n - 1);
}

std::int32_t reader::array(std::size_t min_element_bytes) {
  const auto n = i32();
  if (!ok_) return 0;
  if (n == -1) return -1;
  if (n < 0 ||
      static_cast<std::size_t>(n) * std::max<std::size_t>(min_element_bytes, 1) > in_.size()) {
    ok_ = false;
    return 0;
  }
  return n;
}

std::int32_t reader::compact_array(std::size_t min_element_bytes) {
  const auto n = uvarint();
  if (!ok_) return 0;
  if (n == 0) return -1;
  const auto count = n - 1;
  if (count > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max()) ||
      static_cast<std::size_t>(count) * std::max<std::size_t>(min_element_bytes, 1) > in_.size()) {
    ok_ = false;
    return 0;
  }
  return static_cast<std::int32_t>(count);
}

void reader::tagged_fields() {
  const auto n = uvarint();
  for (std::uint32_t i = 0; ok_ && i < n; ++i) {
    (void)uvarint();  // tag
    const auto size = uvarint();
    (void)take(size);
  }
}

// --- writer ------------------------------------------------------------------

std::vector<std::byte>& writer::current() {
  if (chunks_.empty()) {
    chunks_.emplace_back();
    chunks_.back().reserve(256);
  }
  return chunks_.back();
}

void writer::raw(std::span<const std::byte> b) {
  auto& c = current();
  c.insert(c.end(), b.begin(), b.end());
  size_ += b.size();
}

void writer::i8(std::int8_t v) {
  std::byte b[1];
  be::store(b, v);
  raw(b);
}
void writer::i16(std::int16_t v) {
  std::byte b[2];
  be::store(b, v);
  raw(b);
}
void writer::i32(std::int32_t v) {
  std::byte b[4];
  be::store(b, v);
  raw(b);
}
void writer::i64(std::int64_t v) {
  std::byte b[8];
  be::store(b, v);
  raw(b);
}

void writer::uvarint(std::uint32_t v) {
  std::byte b[5];
  std::size_t n = 0;
  while (v >= 0x80) {
    b[n++] = static_cast<std::byte>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  b[n++] = static_cast<std::byte>(v);
  raw({b, n});
}

void writer::string(std::string_view s) {
  i16(static_cast<std::int16_t>(s.size()));
  raw({reinterpret_cast<const std::byte*>(s.data()), s.size()});
}

void writer::nullable_string(const std::optional<std::string_view>& s) {
  if (!s) {
    i16(-1);
    return;
  }
  string(*s);
}

void writer::compact_string(std::string_view s) {
  uvarint(static_cast<std::uint32_t>(s.size() + 1));
  raw({reinterpret_cast<const std::byte*>(s.data()), s.size()});
}

void writer::compact_nullable_string(const std::optional<std::string_view>& s) {
  if (!s) {
    uvarint(0);
    return;
  }
  compact_string(*s);
}

void writer::bytes(std::span<const std::byte> b) {
  i32(static_cast<std::int32_t>(b.size()));
  raw(b);
}

void writer::nullable_bytes(const std::optional<std::span<const std::byte>>& b) {
  if (!b) {
    i32(-1);
    return;
  }
  bytes(*b);
}

void writer::compact_bytes(std::span<const std::byte> b) {
  uvarint(static_cast<std::uint32_t>(b.size() + 1));
  raw(b);
}

void writer::owned_bytes(std::vector<std::byte>&& data) {
  i32(static_cast<std::int32_t>(data.size()));
  size_ += data.size();
  chunks_.push_back(std::move(data));
  chunks_.emplace_back();  // what follows goes into a new chunk
}

std::vector<std::vector<std::byte>> writer::take() && {
  return std::move(chunks_);
}

}  // namespace ferry::kafka
