#include "ferry/client/errc.h"

#include <gtest/gtest.h>

#include "ferry/core/errc.h"
#include "ferry/protocol/errc.h"

namespace ferry::client {
namespace {

TEST(WireErrc, ValuesEqualWireEnumNumbers) {
  for (int v = static_cast<int>(wire::ErrorCode::MIN) + 1;
       v <= static_cast<int>(wire::ErrorCode::MAX); ++v) {
    const auto ec = from_wire(static_cast<wire::ErrorCode>(v));
    EXPECT_EQ(ec.value(), v);
    EXPECT_EQ(&ec.category(), &wire_category());
    EXPECT_EQ(ec.message().find("unknown ferry.wire error"), std::string::npos)
        << v << ": " << ec.message();
  }
  EXPECT_STREQ(wire_category().name(), "ferry.wire");
  EXPECT_EQ(static_cast<int>(errc::too_many_requests),
            static_cast<int>(wire::ErrorCode::TooManyRequests));
  EXPECT_EQ(static_cast<int>(errc::offset_out_of_range),
            static_cast<int>(wire::ErrorCode::OffsetOutOfRange));
}

TEST(WireErrc, NoneIsSuccess) {
  EXPECT_FALSE(from_wire(wire::ErrorCode::None));
}

TEST(WireErrc, ComparesWithTheEnum) {
  EXPECT_EQ(from_wire(wire::ErrorCode::UnknownTopic), errc::unknown_topic);
  EXPECT_NE(from_wire(wire::ErrorCode::UnknownTopic), errc::unknown_partition);
}

TEST(WireErrc, RetriableSet) {
  EXPECT_TRUE(is_retriable(errc::disk_full));
  EXPECT_TRUE(is_retriable(errc::shutting_down));
  EXPECT_TRUE(is_retriable(errc::timeout));
  EXPECT_TRUE(is_retriable(errc::too_many_requests));
  EXPECT_TRUE(is_retriable(protocol::errc::timed_out));
  EXPECT_TRUE(is_retriable(protocol::errc::disconnected));

  EXPECT_FALSE(is_retriable(errc::unknown_topic));
  EXPECT_FALSE(is_retriable(errc::corrupt_data));
  EXPECT_FALSE(is_retriable(errc::partition_failed));
  EXPECT_FALSE(is_retriable(errc::invalid_batch));
  EXPECT_FALSE(is_retriable(protocol::errc::malformed_frame));
  EXPECT_FALSE(is_retriable(ferry::errc::timed_out));  // back-pressure: the caller decides
  EXPECT_FALSE(is_retriable(std::error_code()));
}

}  // namespace
}  // namespace ferry::client
