// Error codes raised by ferry::storage.
#pragma once

#include <system_error>

namespace ferry::storage {

enum class errc : int {
  ok = 0,
  invalid_batch = 1,        ///< a batch failed validation on append (bad CRC, framing, records)
  batch_too_large = 2,      ///< a batch exceeds the configured maximum
  corrupt_log = 3,          ///< stored bytes failed a checksum or structural check; not served
  offset_out_of_range = 4,  ///< requested offset is below log start or above log end
  partition_failed = 5,     ///< the partition failed stop after a write or sync error
  no_space = 6,             ///< the disk is full; nothing partial became visible, retry later
  corrupt_index = 7,        ///< an index file is damaged (it is rebuilt, never trusted)
  io_error = 8,             ///< an I/O error that is not one of the above
  log_closed = 9,
};

const std::error_category& storage_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), storage_category()};
}

}  // namespace ferry::storage

template <>
struct std::is_error_code_enum<ferry::storage::errc> : std::true_type {};
