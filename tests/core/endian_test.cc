#include "ferry/core/endian.h"

#include <gtest/gtest.h>

#include <limits>
#include <vector>

namespace ferry {
namespace {

TEST(Varint, RoundTripsBoundaries) {
  for (std::uint64_t v :
       std::initializer_list<std::uint64_t>{0, 1, 127, 128, 16383, 16384, (1ull << 35) + 3,
                                            std::numeric_limits<std::uint64_t>::max()}) {
    std::byte buf[varint::kMaxBytes];
    auto n = varint::put(buf, v);
    EXPECT_EQ(n, varint::size(v));
    std::span<const std::byte> in(buf, n);
    auto got = varint::get(in);
    ASSERT_TRUE(got.has_value()) << v;
    EXPECT_EQ(*got, v);
    EXPECT_TRUE(in.empty());
  }
}

TEST(Varint, ZigzagRoundTrips) {
  for (std::int64_t v : std::initializer_list<std::int64_t>{
           0, -1, 1, -64, 63, std::numeric_limits<std::int64_t>::min(),
           std::numeric_limits<std::int64_t>::max()}) {
    EXPECT_EQ(varint::unzigzag(varint::zigzag(v)), v);
  }
  EXPECT_EQ(varint::zigzag(-1), 1u);
  EXPECT_EQ(varint::zigzag(1), 2u);
}

TEST(Varint, TruncatedInputIsRejected) {
  std::byte buf[varint::kMaxBytes];
  auto n = varint::put(buf, 1ull << 40);
  for (std::size_t cut = 0; cut < n; ++cut) {
    std::span<const std::byte> in(buf, cut);
    EXPECT_FALSE(varint::get(in).has_value()) << cut;
  }
}

TEST(Varint, OverlongEncodingIsRejected) {
  std::vector<std::byte> eleven(11, std::byte{0x80});
  std::span<const std::byte> in(eleven);
  EXPECT_FALSE(varint::get(in).has_value());
  // 10th byte may only carry the top bit of a 64-bit value.
  std::vector<std::byte> overflow(9, std::byte{0xFF});
  overflow.push_back(std::byte{0x02});
  std::span<const std::byte> in2(overflow);
  EXPECT_FALSE(varint::get(in2).has_value());
}

TEST(LittleEndian, StoresLowByteFirst) {
  std::byte buf[8];
  le::store<std::uint32_t>(buf, 0x11223344u);
  EXPECT_EQ(buf[0], std::byte{0x44});
  EXPECT_EQ(buf[3], std::byte{0x11});
  EXPECT_EQ(le::load<std::uint32_t>(buf), 0x11223344u);
}

}  // namespace
}  // namespace ferry
