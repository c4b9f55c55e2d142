// Strong types for ids, offsets and timestamps, so that
// append(partition, offset) cannot be called with its arguments swapped.
#pragma once

#include <fmt/format.h>

#include <compare>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>

namespace ferry {

/// A tagged integer. Comparable with itself, never implicitly converted.
/// Arithmetic is opt-in per tag via `strong_traits<Tag>::arithmetic`.
template <typename Tag, typename T>
class strong_int {
 public:
  using value_type = T;
  constexpr strong_int() noexcept = default;
  constexpr explicit strong_int(T v) noexcept : v_(v) {}
  [[nodiscard]] constexpr T value() const noexcept { return v_; }
  constexpr auto operator<=>(const strong_int&) const noexcept = default;

  static constexpr strong_int min() noexcept { return strong_int(std::numeric_limits<T>::min()); }
  static constexpr strong_int max() noexcept { return strong_int(std::numeric_limits<T>::max()); }

 private:
  T v_{};
};

/// A position in a partition's log. Offsets are dense: each record gets the
/// next one. Adding a count moves forward; subtracting two gives a count.
class offset {
 public:
  constexpr offset() noexcept = default;
  constexpr explicit offset(std::int64_t v) noexcept : v_(v) {}
  [[nodiscard]] constexpr std::int64_t value() const noexcept { return v_; }
  constexpr auto operator<=>(const offset&) const noexcept = default;
  constexpr offset operator+(std::int64_t n) const noexcept { return offset(v_ + n); }
  constexpr offset operator-(std::int64_t n) const noexcept { return offset(v_ - n); }
  constexpr std::int64_t operator-(offset o) const noexcept { return v_ - o.v_; }
  constexpr offset& operator+=(std::int64_t n) noexcept {
    v_ += n;
    return *this;
  }
  constexpr offset& operator++() noexcept {
    ++v_;
    return *this;
  }
  static constexpr offset min() noexcept {
    return offset(std::numeric_limits<std::int64_t>::min());
  }
  static constexpr offset max() noexcept {
    return offset(std::numeric_limits<std::int64_t>::max());
  }

 private:
  std::int64_t v_{0};
};

/// Milliseconds since the Unix epoch, as records carry them.
class timestamp_ms {
 public:
  constexpr timestamp_ms() noexcept = default;
  constexpr explicit timestamp_ms(std::int64_t v) noexcept : v_(v) {}
  [[nodiscard]] constexpr std::int64_t value() const noexcept { return v_; }
  constexpr auto operator<=>(const timestamp_ms&) const noexcept = default;
  constexpr timestamp_ms operator+(std::int64_t ms) const noexcept { return timestamp_ms(v_ + ms); }
  constexpr timestamp_ms operator-(std::int64_t ms) const noexcept { return timestamp_ms(v_ - ms); }
  constexpr std::int64_t operator-(timestamp_ms o) const noexcept { return v_ - o.v_; }
  static constexpr timestamp_ms none() noexcept { return timestamp_ms(-1); }
  static constexpr timestamp_ms min() noexcept {
    return timestamp_ms(std::numeric_limits<std::int64_t>::min());
  }
  static constexpr timestamp_ms max() noexcept {
    return timestamp_ms(std::numeric_limits<std::int64_t>::max());
  }

 private:
  std::int64_t v_{0};
};

using partition_id = strong_int<struct partition_id_tag, std::int32_t>;
using producer_id = strong_int<struct producer_id_tag, std::int64_t>;
using producer_epoch = strong_int<struct producer_epoch_tag, std::int16_t>;
using sequence_number = strong_int<struct sequence_tag, std::int32_t>;

inline std::ostream& operator<<(std::ostream& os, offset o) {
  return os << o.value();
}
inline std::ostream& operator<<(std::ostream& os, timestamp_ms t) {
  return os << t.value() << "ms";
}
template <typename Tag, typename T>
std::ostream& operator<<(std::ostream& os, strong_int<Tag, T> v) {
  return os << +v.value();
}

}  // namespace ferry

template <>
struct std::hash<ferry::offset> {
  std::size_t operator()(ferry::offset o) const noexcept {
    return std::hash<std::int64_t>{}(o.value());
  }
};
template <typename Tag, typename T>
struct std::hash<ferry::strong_int<Tag, T>> {
  std::size_t operator()(ferry::strong_int<Tag, T> v) const noexcept {
    return std::hash<T>{}(v.value());
  }
};

template <>
struct fmt::formatter<ferry::offset> : fmt::formatter<std::int64_t> {
  auto format(ferry::offset o, format_context& ctx) const {
    return fmt::formatter<std::int64_t>::format(o.value(), ctx);
  }
};
template <>
struct fmt::formatter<ferry::timestamp_ms> : fmt::formatter<std::int64_t> {
  auto format(ferry::timestamp_ms t, format_context& ctx) const {
    return fmt::formatter<std::int64_t>::format(t.value(), ctx);
  }
};
template <typename Tag, typename T>
struct fmt::formatter<ferry::strong_int<Tag, T>> : fmt::formatter<std::int64_t> {
  auto format(ferry::strong_int<Tag, T> v, format_context& ctx) const {
    return fmt::formatter<std::int64_t>::format(static_cast<std::int64_t>(v.value()), ctx);
  }
};
