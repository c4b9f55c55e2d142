#include "ferry/broker/wire_errors.h"

#include "ferry/core/errc.h"
#include "ferry/format/errc.h"
#include "ferry/protocol/errc.h"
#include "ferry/storage/errc.h"

namespace ferry::broker {

namespace {

wire::ErrorCode from_storage(storage::errc e) {
  switch (e) {
    case storage::errc::ok:
      return wire::ErrorCode::None;
    case storage::errc::invalid_batch:
      return wire::ErrorCode::InvalidBatch;
    case storage::errc::batch_too_large:
      return wire::ErrorCode::RecordTooLarge;
    case storage::errc::corrupt_log:
      return wire::ErrorCode::CorruptData;
    case storage::errc::offset_out_of_range:
      return wire::ErrorCode::OffsetOutOfRange;
    case storage::errc::partition_failed:
      return wire::ErrorCode::PartitionFailed;
    case storage::errc::no_space:
      return wire::ErrorCode::DiskFull;
    case storage::errc::corrupt_index:
      return wire::ErrorCode::CorruptData;
    case storage::errc::io_error:
      return wire::ErrorCode::Internal;
    case storage::errc::log_closed:
      return wire::ErrorCode::ShuttingDown;
  }
  return wire::ErrorCode::Internal;
}

wire::ErrorCode from_format(format::errc e) {
  switch (e) {
    case format::errc::ok:
      return wire::ErrorCode::None;
    case format::errc::invalid_batch:
      return wire::ErrorCode::InvalidBatch;
  }
  return wire::ErrorCode::Internal;
}

wire::ErrorCode from_protocol(protocol::errc e) {
  switch (e) {
    case protocol::errc::ok:
      return wire::ErrorCode::None;
    case protocol::errc::frame_too_large:
      return wire::ErrorCode::RecordTooLarge;
    case protocol::errc::malformed_frame:
      return wire::ErrorCode::InvalidRequest;
    case protocol::errc::unknown_message:
      return wire::ErrorCode::InvalidRequest;
    case protocol::errc::missing_field:
      return wire::ErrorCode::InvalidRequest;
    case protocol::errc::bad_frame_reference:
      return wire::ErrorCode::InvalidRequest;
    case protocol::errc::too_many_entries:
      return wire::ErrorCode::InvalidRequest;
    case protocol::errc::unsupported_version:
      return wire::ErrorCode::UnsupportedVersion;
    case protocol::errc::invalid_value:
      return wire::ErrorCode::InvalidRequest;
    case protocol::errc::invalid_topic_name:
      return wire::ErrorCode::InvalidTopicName;
    case protocol::errc::invalid_group_name:
      return wire::ErrorCode::InvalidGroupName;
    case protocol::errc::timed_out:
      return wire::ErrorCode::Timeout;
    case protocol::errc::disconnected:
      return wire::ErrorCode::Internal;
  }
  return wire::ErrorCode::Internal;
}

wire::ErrorCode from_core(ferry::errc e) {
  switch (e) {
    case ferry::errc::ok:
      return wire::ErrorCode::None;
    case ferry::errc::invalid_argument:
      return wire::ErrorCode::InvalidRequest;
    case ferry::errc::config_invalid:
      return wire::ErrorCode::InvalidConfig;
    case ferry::errc::not_found:
      return wire::ErrorCode::UnknownTopic;
    case ferry::errc::already_exists:
      return wire::ErrorCode::TopicAlreadyExists;
    case ferry::errc::out_of_range:
      return wire::ErrorCode::OffsetOutOfRange;
    case ferry::errc::corrupt_data:
      return wire::ErrorCode::CorruptData;
    case ferry::errc::timed_out:
      return wire::ErrorCode::Timeout;
    case ferry::errc::shutting_down:
      return wire::ErrorCode::ShuttingDown;
    case ferry::errc::not_supported:
      return wire::ErrorCode::InvalidRequest;
  }
  return wire::ErrorCode::Internal;
}

}  // namespace

wire::ErrorCode to_wire(std::error_code ec) noexcept {
  if (!ec) return wire::ErrorCode::None;
  if (ec.category() == storage::storage_category())
    return from_storage(static_cast<storage::errc>(ec.value()));
  if (ec.category() == format::format_category())
    return from_format(static_cast<format::errc>(ec.value()));
  if (ec.category() == protocol::protocol_category())
    return from_protocol(static_cast<protocol::errc>(ec.value()));
  if (ec.category() == ferry::core_category())
    return from_core(static_cast<ferry::errc>(ec.value()));
  if (ec == std::errc::no_space_on_device) return wire::ErrorCode::DiskFull;
  return wire::ErrorCode::Internal;
}

}  // namespace ferry::broker
