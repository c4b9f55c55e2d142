// Error codes raised by ferry::format.
#pragma once

#include <system_error>

namespace ferry::format {

enum class errc : int {
  ok = 0,
  invalid_batch = 1,  ///< bytes that are not one valid record batch (header, CRC, framing, records)
};

const std::error_category& format_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), format_category()};
}

}  // namespace ferry::format

template <>
struct std::is_error_code_enum<ferry::format::errc> : std::true_type {};
