// Error codes owned by ferry::core and shared vocabulary for "what went wrong".
#pragma once

#include <system_error>

namespace ferry {

/// Core error conditions. Each library has its own enum and category
/// (storage::errc, protocol::errc, ...); these are the ones core itself raises.
enum class errc : int {
  ok = 0,
  invalid_argument = 1,  ///< a caller passed a value outside the contract
  config_invalid = 2,    ///< configuration failed validation
  not_found = 3,
  already_exists = 4,
  out_of_range = 5,
  corrupt_data = 6,  ///< bytes failed a checksum or structural check
  timed_out = 7,
  shutting_down = 8,
  not_supported = 9,  ///< the transport or broker in use cannot do this (the message says which)
};

const std::error_category& core_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), core_category()};
}

}  // namespace ferry

template <>
struct std::is_error_code_enum<ferry::errc> : std::true_type {};
