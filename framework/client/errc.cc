#include "ferry/client/errc.h"

#include <string>

#include "ferry/protocol/errc.h"
#include "kafka_common.h"

namespace ferry::client {
namespace {

class wire_cat final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ferry.wire"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok:
        return "ok";
      case errc::unknown_topic:
        return "unknown topic";
      case errc::unknown_partition:
        return "unknown partition";
      case errc::invalid_request:
        return "invalid request";
      case errc::invalid_batch:
        return "invalid record batch";
      case errc::record_too_large:
        return "record too large";
      case errc::offset_out_of_range:
        return "offset out of range";
      case errc::topic_already_exists:
        return "topic already exists";
      case errc::disk_full:
        return "broker disk full";
      case errc::partition_failed:
        return "partition failed (operator action needed)";
      case errc::corrupt_data:
        return "corrupt data";
      case errc::invalid_config:
        return "invalid configuration";
      case errc::shutting_down:
        return "broker shutting down";
      case errc::timeout:
        return "broker timed out";
      case errc::internal:
        return "broker internal error";
      case errc::unsupported_version:
        return "unsupported protocol version";
      case errc::invalid_topic_name:
        return "invalid topic name";
      case errc::too_many_requests:
        return "too many requests in flight";
      case errc::rebalance_in_progress:
        return "the group is rebalancing";
      case errc::unknown_member:
        return "not a member of the group";
      case errc::stale_generation:
        return "stale group generation (fenced)";
      case errc::not_assigned:
        return "partition not assigned to this member";
      case errc::offset_regression:
        return "commit below the committed offset";
      case errc::group_not_empty:
        return "the group has members";
      case errc::unknown_group:
        return "unknown group";
      case errc::invalid_group_name:
        return "invalid group name";
      case errc::producer_fenced:
        return "producer fenced by a newer epoch";
      case errc::out_of_order_sequence:
        return "out-of-order producer sequence number";
      case errc::invalid_producer:
        return "unknown producer id or epoch";
      case errc::incompatible_schema:
        return "schema incompatible under the subject's compatibility mode";
      case errc::invalid_schema:
        return "not a valid binary schema";
      case errc::unknown_subject:
        return "unknown schema subject";
      case errc::unknown_schema:
        return "unknown schema id or version";
      case errc::schema_required:
        return "the topic requires a registered schema id";
      case errc::inconsistent_group_protocol:
        return "the group has members of the other protocol (Kafka or Ferry)";
      case errc::authentication_failed:
        return "authentication failed";
      case errc::not_authorized:
        return "not authorized";
      case errc::fenced_instance_id:
        return "fenced: another process joined with this group_instance_id";
    }
    return "unknown ferry.wire error " + std::to_string(ev);
  }
};

}  // namespace

const std::error_category& wire_category() noexcept {
  static const wire_cat c;
  return c;
}

std::error_code from_wire(wire::ErrorCode e) noexcept {
  using W = wire::ErrorCode;
  switch (e) {
    case W::None:
      return {};
    case W::UnknownTopic:
      return errc::unknown_topic;
    case W::UnknownPartition:
      return errc::unknown_partition;
    case W::InvalidRequest:
      return errc::invalid_request;
    case W::InvalidBatch:
      return errc::invalid_batch;
    case W::RecordTooLarge:
      return errc::record_too_large;
    case W::OffsetOutOfRange:
      return errc::offset_out_of_range;
    case W::TopicAlreadyExists:
      return errc::topic_already_exists;
    case W::DiskFull:
      return errc::disk_full;
    case W::PartitionFailed:
      return errc::partition_failed;
    case W::CorruptData:
      return errc::corrupt_data;
    case W::InvalidConfig:
      return errc::invalid_config;
    case W::ShuttingDown:
      return errc::shutting_down;
    case W::Timeout:
      return errc::timeout;
    case W::Internal:
      return errc::internal;
    case W::UnsupportedVersion:
      return errc::unsupported_version;
    case W::InvalidTopicName:
      return errc::invalid_topic_name;
    case W::TooManyRequests:
      return errc::too_many_requests;
    case W::RebalanceInProgress:
      return errc::rebalance_in_progress;
    case W::UnknownMember:
      return errc::unknown_member;
    case W::StaleGeneration:
      return errc::stale_generation;
    case W::NotAssigned:
      return errc::not_assigned;
    case W::OffsetRegression:
      return errc::offset_regression;
    case W::GroupNotEmpty:
      return errc::group_not_empty;
    case W::UnknownGroup:
      return errc::unknown_group;
    case W::InvalidGroupName:
      return errc::invalid_group_name;
    case W::ProducerFenced:
      return errc::producer_fenced;
    case W::OutOfOrderSequence:
      return errc::out_of_order_sequence;
    case W::InvalidProducer:
      return errc::invalid_producer;
    case W::IncompatibleSchema:
      return errc::incompatible_schema;
    case W::InvalidSchema:
      return errc::invalid_schema;
    case W::UnknownSubject:
      return errc::unknown_subject;
    case W::UnknownSchema:
      return errc::unknown_schema;
    case W::SchemaRequired:
      return errc::schema_required;
    case W::InconsistentGroupProtocol:
      return errc::inconsistent_group_protocol;
    case W::AuthenticationFailed:
      return errc::authentication_failed;
    case W::NotAuthorized:
      return errc::not_authorized;
    case W::FencedInstanceId:
      return errc::fenced_instance_id;
  }
  // Unreachable for replies that passed decode_envelope (it checks the range).
  return errc::internal;
}

bool is_retriable(std::error_code ec) noexcept {
  if (ec.category() == wire_category()) {
    switch (static_cast<errc>(ec.value())) {
      case errc::disk_full:
      case errc::shutting_down:
      case errc::timeout:
      case errc::too_many_requests:
        return true;
      default:
        return false;
    }
  }
  if (ec.category() == kafka::kafka_category()) return kafka::is_retriable_kafka(ec.value());
  return ec == protocol::errc::timed_out || ec == protocol::errc::disconnected;
}

}  // namespace ferry::client
