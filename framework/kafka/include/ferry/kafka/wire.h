// The Kafka protocol's primitive types (kafka.apache.org/protocol): a
// reader over a request's bytes and a writer that builds a response.
//
// Every integer is big-endian. Strings are an int16 length and UTF-8 bytes
// (-1: null); bytes an int32 length (-1: null); arrays an int32 count (-1:
// null). Flexible versions (KIP-482) use "compact" forms - an unsigned
// varint of length + 1 (0: null) - and end each structure with tagged
// fields (an unsigned varint count, then tag, size, bytes per field).
//
// The reader never reads past its bytes: a short or malformed input sets
// ok() to false and every later read returns a zero value, so a decoder
// reads a whole message and checks ok() once. The writer keeps the
// response as a list of chunks so that record data (a fetch's batches) is
// appended without copying.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::kafka {

class reader {
 public:
  explicit reader(std::span<const std::byte> in) noexcept : in_(in) {}

  [[nodiscard]] bool ok() const noexcept { return ok_; }
  [[nodiscard]] std::size_t remaining() const noexcept { return in_.size(); }
  /// Marks the input bad (a decoder's own check failed).
  void fail() noexcept { ok_ = false; }

  std::int8_t i8();
  std::int16_t i16();
  std::int32_t i32();
  std::int64_t i64();
  bool boolean() { return i8() != 0; }
  std::uint32_t uvarint();
  /// int16-length string; nullopt for null.
  std::optional<std::string_view> nullable_string();
  /// int16-length string; null is malformed.
  std::string_view string();
  /// uvarint (length + 1) string (flexible versions).
  std::optional<std::string_view> compact_nullable_string();
  std::string_view compact_string();
  /// int32-length bytes; nullopt for null.
  std::optional<std::span<const std::byte>> nullable_bytes();
  std::span<const std::byte> bytes();
  std::optional<std::span<const std::byte>> compact_nullable_bytes();
  /// int32 array count; -1 (null) is returned as -1. A count that cannot fit
  /// in what is left (each element takes at least `min_element_bytes`)
  /// is malformed.
  std::int32_t array(std::size_t min_element_bytes = 1);
  /// uvarint (count + 1) array count (flexible); -1 for null.
  std::int32_t compact_array(std::size_t min_element_bytes = 1);
  /// Skips tagged fields (flexible versions).
  void tagged_fields();

 private:
  std::span<const std::byte> take(std::size_t n);
  std::span<const std::byte> in_;
  bool ok_ = true;
};

class writer {
 public:
  void i8(std::int8_t v);
  void i16(std::int16_t v);
  void i32(std::int32_t v);
  void i64(std::int64_t v);
  void boolean(bool v) { i8(v ? 1 : 0); }
  void uvarint(std::uint32_t v);
  void string(std::string_view s);
  void nullable_string(const std::optional<std::string_view>& s);
  void compact_string(std::string_view s);
  void compact_nullable_string(const std::optional<std::string_view>& s);
  void bytes(std::span<const std::byte> b);
  void nullable_bytes(const std::optional<std::span<const std::byte>>& b);
  void compact_bytes(std::span<const std::byte> b);
  void array(std::int32_t count) { i32(count); }
  void compact_array(std::int32_t count) { uvarint(static_cast<std::uint32_t>(count + 1)); }
  /// No tagged fields (flexible versions).
  void tagged_fields() { uvarint(0); }
  /// An int32 length followed by `data`, taken over without a copy.
  void owned_bytes(std::vector<std::byte>&& data);
  void raw(std::span<const std::byte> b);

  /// Bytes written so far.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// The response body: chunks in order (encoded parts and taken-over data).
  [[nodiscard]] std::vector<std::vector<std::byte>> take() &&;

 private:
  std::vector<std::byte>& current();
  std::vector<std::vector<std::byte>> chunks_;
  std::size_t size_ = 0;
};

}  // namespace ferry::kafka
