#include "ferry/core/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace ferry {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 (iSCSI) B.4 and the common check value.
  EXPECT_EQ(crc32c::value("123456789", 9), 0xE3069283u);
  std::vector<unsigned char> zeros(32, 0), ones(32, 0xFF), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[static_cast<std::size_t>(i)] = static_cast<unsigned char>(i);
    dec[static_cast<std::size_t>(i)] = static_cast<unsigned char>(31 - i);
  }
  EXPECT_EQ(crc32c::value(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c::value(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(crc32c::value(inc.data(), inc.size()), 0x46DD794Eu);
  EXPECT_EQ(crc32c::value(dec.data(), dec.size()), 0x113FDB5Cu);
  EXPECT_EQ(crc32c::value("", 0), 0u);
}

TEST(Crc32c, ExtendEqualsWholeValue) {
  std::string s = "The quick brown fox jumps over the lazy dog, twice over for good measure.";
  for (std::size_t cut = 0; cut <= s.size(); ++cut) {
    auto a = crc32c::extend(0, s.data(), cut);
    EXPECT_EQ(crc32c::extend(a, s.data() + cut, s.size() - cut), crc32c::value(s.data(), s.size()))
        << cut;
  }
}

TEST(Crc32c, HardwareAndPortablePathsAgree) {
  std::mt19937 rng(42);
  for (std::size_t len : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 1000u, 4096u, 100000u}) {
    std::vector<unsigned char> buf(len);
    for (auto& b : buf) b = static_cast<unsigned char>(rng());
    for (std::size_t misalign = 0; misalign < 3 && misalign <= len; ++misalign) {
      EXPECT_EQ(crc32c::value(buf.data() + misalign, len - misalign),
                crc32c::extend_portable(0, buf.data() + misalign, len - misalign))
          << "len " << len << " misalign " << misalign;
    }
  }
}

TEST(Crc32c, DetectsEverySingleBitFlip) {
  std::vector<unsigned char> buf(256);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<unsigned char>(i * 7);
  auto good = crc32c::value(buf.data(), buf.size());
  for (std::size_t bit = 0; bit < buf.size() * 8; ++bit) {
    buf[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    EXPECT_NE(crc32c::value(buf.data(), buf.size()), good);
    buf[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
  }
}

}  // namespace
}  // namespace ferry
