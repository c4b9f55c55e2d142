// How a handler's error is classified, and the runtime's own error codes.
//
// A handler returns ferry::result<void>. A plain error is retriable: the
// record is tried again per the subscription's retry policy. To say more,
// return through one of the helpers below; they return the error_code
// unchanged and note, for the runtime on the calling thread, how to treat
// it and a message for the failure record:
//
//   if (card_declined) return ferry::runtime::permanent(orders::errc::declined, "card declined");
//   if (!parsed) return ferry::runtime::invalid_payload("OrderPlaced: amount missing");
//   if (timeout) return ferry::runtime::retriable(std::errc::timed_out, "payments API: 5 s");
//
// permanent: dead-lettered at once (reason permanent_error), no retries.
// invalid_payload: the payload cannot be decoded or verified: dead-lettered
//   at once (reason invalid_payload).
// An exception escaping a handler is caught and treated as a retriable
// error (runtime::errc::handler_exception) with what() as its message.
// The retry policy can also classify by error (retry_policy::overrides).
#pragma once

#include <string>
#include <string_view>
#include <system_error>

#include "ferry/runtime/failure_record.h"

namespace ferry::runtime {

enum class errc : int {
  ok = 0,
  handler_exception = 1,  ///< an exception escaped the handler
  invalid_payload = 2,    ///< the payload could not be decoded or verified
  no_handler = 3,         ///< a record of a topic no subscription handles
  stopped = 4,            ///< the worker was stopped
};

const std::error_category& runtime_category() noexcept;
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), runtime_category()};
}

/// Marks `ec` permanent: the record is dead-lettered without retries.
std::error_code permanent(std::error_code ec, std::string_view message = {});
template <typename E>
requires std::is_error_code_enum_v<E> || std::is_error_condition_enum_v<E> std::error_code
permanent(E e, std::string_view message = {}) {
  return permanent(std::error_code(make_error_code(e)), message);
}
/// A retriable error with a message for the failure record.
std::error_code retriable(std::error_code ec, std::string_view message);
template <typename E>
requires std::is_error_code_enum_v<E> || std::is_error_condition_enum_v<E> std::error_code
retriable(E e, std::string_view message) {
  return retriable(std::error_code(make_error_code(e)), message);
}
/// The payload is not decodable: dead-lettered at once.
std::error_code invalid_payload(std::string_view message);

namespace detail {
/// What the helpers noted on this thread for the error they returned.
struct error_note {
  std::error_code ec;
  error_class cls = error_class::retriable;
  std::string message;
};
/// Takes (and clears) this thread's note.
error_note take_note() noexcept;
void clear_note() noexcept;
}  // namespace detail

}  // namespace ferry::runtime

template <>
struct std::is_error_code_enum<ferry::runtime::errc> : std::true_type {};
