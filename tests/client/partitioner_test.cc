#include "ferry/client/partitioner.h"

#include <gtest/gtest.h>

#include <string>

namespace ferry::client {
namespace {

// Apache Kafka's UtilsTest.testMurmur2
// (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
TEST(Murmur2, MatchesKafkaVectors) {
  EXPECT_EQ(murmur2("21"), -973932308);
  EXPECT_EQ(murmur2("foobar"), -790332482);
  EXPECT_EQ(murmur2("a-little-bit-long-string"), -985981536);
  EXPECT_EQ(murmur2("a-little-bit-longer-string"), -1486304829);
  EXPECT_EQ(murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
  EXPECT_EQ(murmur2("abc"), 479470107);
}

TEST(Murmur2, HandlesBytesAboveSevenBitsAndEmptyInput) {
  // Java's (byte & 0xff): bytes >= 0x80 must not sign-extend.
  const std::string high("\xff\x80\x01", 3);
  const std::string low("\x7f\x80\x01", 3);
  EXPECT_NE(murmur2(high), murmur2(low));
  EXPECT_EQ(murmur2(std::string_view()), 275646681);  // independently computed reference
}

TEST(PartitionForKey, IsToPositiveMurmur2ModuloPartitions) {
  // murmur2("21") = -973932308; & 0x7fffffff = 1173551340.
  EXPECT_EQ(partition_for_key("21", 7), partition_id(1173551340 % 7));
  EXPECT_EQ(partition_for_key("21", 10), partition_id(0));
  EXPECT_EQ(partition_for_key("foobar", 10), partition_id(6));
  EXPECT_EQ(partition_for_key("abc", 7), partition_id(4));
  EXPECT_EQ(partition_for_key("anything", 1), partition_id(0));
}

TEST(PartitionForKey, IsDeterministicAndInRange) {
  for (int i = 0; i < 1000; ++i) {
    const std::string key = "order-" + std::to_string(i);
    const auto p = partition_for_key(key, 12);
    EXPECT_EQ(p, partition_for_key(key, 12));
    EXPECT_GE(p.value(), 0);
    EXPECT_LT(p.value(), 12);
  }
}

}  // namespace
}  // namespace ferry::client
