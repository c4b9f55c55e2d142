// Error codes of ferry::protocol, and a std::error_category for ZeroMQ's
// errno values, so zmq::error_t never crosses a library boundary.
#pragma once

#include <system_error>

namespace ferry::protocol {

enum class errc : int {
  ok = 0,
  frame_too_large = 1,      ///< a frame exceeds the configured limit
  malformed_frame = 2,      ///< the FlatBuffers Verifier rejected the envelope
  unknown_message = 3,      ///< union type NONE, out of range, or wrong direction
  missing_field = 4,        ///< a required field or vector is absent
  bad_frame_reference = 5,  ///< a data frame index is out of range or reused
  too_many_entries = 6,
  unsupported_version = 7,
  invalid_value = 8,  ///< an enum out of range, a negative partition, ...
  invalid_topic_name = 9,
  timed_out = 10,     ///< no reply within the request timeout
  disconnected = 11,  ///< the connection was reset while the request was in flight
  invalid_group_name = 12,
};

const std::error_category& protocol_category() noexcept;
/// Category for errno values reported by libzmq (messages from zmq_strerror).
const std::error_category& zmq_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), protocol_category()};
}
inline std::error_code make_zmq_error(int zmq_errno) noexcept {
  return {zmq_errno, zmq_category()};
}

}  // namespace ferry::protocol

template <>
struct std::is_error_code_enum<ferry::protocol::errc> : std::true_type {};
