#include "ferry/protocol/errc.h"

#include <zmq.h>

#include <string>

namespace ferry::protocol {
namespace {

class protocol_cat final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ferry.protocol"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok:
        return "ok";
      case errc::frame_too_large:
        return "frame too large";
      case errc::malformed_frame:
        return "malformed frame (FlatBuffers verification failed)";
      case errc::unknown_message:
        return "unknown or unexpected message type";
      case errc::missing_field:
        return "required field missing";
      case errc::bad_frame_reference:
        return "bad data frame reference";
      case errc::too_many_entries:
        return "too many entries in one request";
      case errc::unsupported_version:
        return "unsupported protocol version";
      case errc::invalid_value:
        return "invalid field value";
      case errc::invalid_topic_name:
        return "invalid topic name";
      case errc::invalid_group_name:
        return "invalid group name";
      case errc::timed_out:
        return "request timed out";
      case errc::disconnected:
        return "connection to the broker lost";
    }
    return "unknown ferry.protocol error " + std::to_string(ev);
  }
};

class zmq_cat final : public std::error_category {
 public:
  const char* name() const noexcept override { return "zmq"; }
  std::string message(int ev) const override { return zmq_strerror(ev); }
  std::error_condition default_error_condition(int ev) const noexcept override {
    return ev < ZMQ_HAUSNUMERO ? std::generic_category().default_error_condition(ev)
                               : std::error_condition(ev, *this);
  }
};

}  // namespace

const std::error_category& protocol_category() noexcept {
  static const protocol_cat c;
  return c;
}

const std::error_category& zmq_category() noexcept {
  static const zmq_cat c;
  return c;
}

}  // namespace ferry::protocol
