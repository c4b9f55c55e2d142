#include "ferry/kafka/errors.h"

namespace ferry::kafka {

// Exhaustive: a new broker error fails the build here until it has its
// Kafka meaning.
error from_broker(wire::ErrorCode e) noexcept {
  using E = wire::ErrorCode;
  switch (e) {
    case E::None:
      return error::none;
    case E::UnknownTopic:
    case E::UnknownPartition:
      return error::unknown_topic_or_partition;
    case E::InvalidRequest:
      return error::invalid_request;
    case E::InvalidBatch:
      return error::corrupt_message;
    case E::RecordTooLarge:
      return error::message_too_large;
    case E::OffsetOutOfRange:
      return error::offset_out_of_range;
    case E::TopicAlreadyExists:
      return error::topic_already_exists;
    case E::DiskFull:
      return error::kafka_storage_error;  // retriable for Kafka clients
    case E::PartitionFailed:
      return error::kafka_storage_error;
    case E::CorruptData:
      return error::corrupt_message;
    case E::InvalidConfig:
      return error::invalid_config;
    case E::ShuttingDown:
      return error::leader_not_available;  // retriable: the client waits for the broker
    case E::Timeout:
      return error::request_timed_out;
    case E::Internal:
      return error::unknown_server_error;
    case E::UnsupportedVersion:
      return error::unsupported_version;
    case E::InvalidTopicName:
      return error::invalid_topic_exception;
    case E::TooManyRequests:
      return error::request_timed_out;
    case E::RebalanceInProgress:
      return error::rebalance_in_progress;
    case E::UnknownMember:
      return error::unknown_member_id;
    case E::StaleGeneration:
      return error::illegal_generation;
    case E::NotAssigned:
      return error::unknown_member_id;
    case E::OffsetRegression:
      return error::invalid_commit_offset_size;
    case E::GroupNotEmpty:
      return error::non_empty_group;
    case E::UnknownGroup:
      return error::group_id_not_found;
    case E::InvalidGroupName:
      return error::invalid_group_id;
    case E::ProducerFenced:
      return error::invalid_producer_epoch;
    case E::OutOfOrderSequence:
      return error::out_of_order_sequence_number;
    case E::InvalidProducer:
      return error::unknown_producer_id;
    case E::IncompatibleSchema:
    case E::InvalidSchema:
    case E::UnknownSubject:
    case E::UnknownSchema:
      return error::invalid_request;
    case E::SchemaRequired:
      return error::invalid_record;
    case E::InconsistentGroupProtocol:
      return error::inconsistent_group_protocol;
    case E::AuthenticationFailed:
      return error::sasl_authentication_failed;
    case E::NotAuthorized:  // the Kafka handlers pick the group or cluster code where it is one
      return error::topic_authorization_failed;
    case E::FencedInstanceId:
      return error::fenced_instance_id;
  }
  return error::unknown_server_error;
}

}  // namespace ferry::kafka
