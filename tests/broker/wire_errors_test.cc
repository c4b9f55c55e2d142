// Internal error codes reach clients as the right wire codes: the mapping
// that tells a producer "retry" (disk full) from "stop" (partition failed).
#include "ferry/broker/wire_errors.h"

#include <gtest/gtest.h>

#include "ferry/core/errc.h"
#include "ferry/format/errc.h"
#include "ferry/protocol/errc.h"
#include "ferry/storage/errc.h"

namespace ferry::broker {
namespace {

using wire::ErrorCode;

TEST(WireErrors, StorageErrorsMapToTheirWireMeaning) {
  EXPECT_EQ(to_wire({}), ErrorCode::None);
  EXPECT_EQ(to_wire(storage::errc::invalid_batch), ErrorCode::InvalidBatch);
  EXPECT_EQ(to_wire(storage::errc::batch_too_large), ErrorCode::RecordTooLarge);
  EXPECT_EQ(to_wire(storage::errc::corrupt_log), ErrorCode::CorruptData);
  EXPECT_EQ(to_wire(storage::errc::offset_out_of_range), ErrorCode::OffsetOutOfRange);
  EXPECT_EQ(to_wire(storage::errc::partition_failed), ErrorCode::PartitionFailed);
  EXPECT_EQ(to_wire(storage::errc::no_space), ErrorCode::DiskFull);
  EXPECT_EQ(to_wire(format::errc::invalid_batch), ErrorCode::InvalidBatch);
}

TEST(WireErrors, ProtocolCoreAndSystemErrors) {
  EXPECT_EQ(to_wire(protocol::errc::malformed_frame), ErrorCode::InvalidRequest);
  EXPECT_EQ(to_wire(protocol::errc::invalid_topic_name), ErrorCode::InvalidTopicName);
  EXPECT_EQ(to_wire(protocol::errc::unsupported_version), ErrorCode::UnsupportedVersion);
  EXPECT_EQ(to_wire(ferry::errc::already_exists), ErrorCode::TopicAlreadyExists);
  EXPECT_EQ(to_wire(ferry::errc::shutting_down), ErrorCode::ShuttingDown);
  EXPECT_EQ(to_wire(std::make_error_code(std::errc::no_space_on_device)), ErrorCode::DiskFull);
  EXPECT_EQ(to_wire(std::make_error_code(std::errc::io_error)), ErrorCode::Internal);
}

}  // namespace
}  // namespace ferry::broker
