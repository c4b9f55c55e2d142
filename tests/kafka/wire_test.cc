// The Kafka protocol's primitives (framework/kafka/wire.h): round trips of
// every type, the compact (flexible) forms, tagged fields skipped, and
// short or hostile input that only ever sets ok() to false.
#include "ferry/kafka/wire.h"

#include <gtest/gtest.h>

#include "ferry/kafka/apis.h"

namespace ferry::kafka {
namespace {

std::vector<std::byte> joined(writer&& w) {
  std::vector<std::byte> out;
  for (auto& c : std::move(w).take()) out.insert(out.end(), c.begin(), c.end());
  return out;
}

TEST(KafkaWire, EveryTypeRoundTripsBigEndian) {
  writer w;
  w.i8(-2);
  w.i16(0x0102);
  w.i32(-7);
  w.i64(0x0102030405060708);
  w.boolean(true);
  w.string("orders");
  w.nullable_string(std::nullopt);
  w.bytes(std::as_bytes(std::span("abc", 3)));
  w.nullable_bytes(std::nullopt);
  w.array(2);
  w.compact_string("k");
  w.compact_nullable_string(std::nullopt);
  w.compact_array(3);
  w.uvarint(300);
  w.tagged_fields();
  const auto b = joined(std::move(w));
  EXPECT_EQ(b[1], std::byte{0x01}) << "big-endian";
  EXPECT_EQ(b[2], std::byte{0x02});
  reader r(b);
  EXPECT_EQ(r.i8(), -2);
  EXPECT_EQ(r.i16(), 0x0102);
  EXPECT_EQ(r.i32(), -7);
  EXPECT_EQ(r.i64(), 0x0102030405060708);
  EXPECT_TRUE(r.boolean());
  EXPECT_EQ(r.string(), "orders");
  EXPECT_FALSE(r.nullable_string());
  EXPECT_EQ(r.bytes().size(), 3u);
  EXPECT_FALSE(r.nullable_bytes());
  EXPECT_EQ(r.array(0), 2);
  EXPECT_EQ(r.compact_string(), "k");
  EXPECT_FALSE(r.compact_nullable_string());
  EXPECT_EQ(r.compact_array(0), 3);
  EXPECT_EQ(r.uvarint(), 300u);
  r.tagged_fields();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(KafkaWire, OwnedBytesAreTakenOverAsTheirOwnChunk) {
  writer w;
  w.i32(1);
  std::vector<std::byte> data(1000, std::byte{7});
  const auto* where = data.data();
  w.owned_bytes(std::move(data));
  w.i16(2);
  EXPECT_EQ(w.size(), 4u + 4u + 1000u + 2u);
  auto chunks = std::move(w).take();
  bool found = false;
  for (const auto& c : chunks) found = found || c.data() == where;
  EXPECT_TRUE(found) << "the records are not copied";
}

TEST(KafkaWire, TaggedFieldsAreSkipped) {
  writer w;
  w.uvarint(2);  // two tagged fields
  w.uvarint(0);
  w.uvarint(3);
  w.raw(std::as_bytes(std::span("xyz", 3)));
  w.uvarint(5);
  w.uvarint(1);
  w.i8(9);
  w.i32(42);
  const auto b = joined(std::move(w));
  reader r(b);
  r.tagged_fields();
  EXPECT_EQ(r.i32(), 42);
  EXPECT_TRUE(r.ok());
}

TEST(KafkaWire, ShortAndHostileInputOnlyFailsTheReader) {
  const std::byte short_string[] = {std::byte{0x00}, std::byte{0x10}, std::byte{'a'}};
  reader a(short_string);
  (void)a.string();
  EXPECT_FALSE(a.ok());
  EXPECT_EQ(a.i32(), 0) << "reads after a failure return zero";

  // An array count far beyond what is left: refused before anything is
  // allocated for it.
  const std::byte huge_array[] = {std::byte{0x7f}, std::byte{0xff}, std::byte{0xff},
                                  std::byte{0xff}};
  reader b(huge_array);
  EXPECT_EQ(b.array(4), 0);
  EXPECT_FALSE(b.ok());

  const std::byte negative[] = {std::byte{0xff}, std::byte{0xfe}};
  reader c(negative);
  (void)c.nullable_string();
  EXPECT_FALSE(c.ok()) << "-2 is not a length";

  const std::byte long_varint[] = {std::byte{0xff}, std::byte{0xff}, std::byte{0xff},
                                   std::byte{0xff}, std::byte{0xff}, std::byte{0x01}};
  reader d(long_varint);
  (void)d.uvarint();
  EXPECT_FALSE(d.ok()) << "more than 32 bits";
}

TEST(KafkaApis, FlexibleVersionsFollowTheTable) {
  EXPECT_TRUE(flexible(static_cast<std::int16_t>(api_key::api_versions), 3));
  EXPECT_FALSE(flexible(static_cast<std::int16_t>(api_key::api_versions), 2));
  EXPECT_FALSE(flexible(static_cast<std::int16_t>(api_key::produce), 8));
  EXPECT_FALSE(flexible(999, 12)) << "an unknown API";
  for (const auto& a : kApis) {
    EXPECT_LE(a.min_version, a.max_version) << a.name;
    if (a.key != api_key::api_versions) {
      EXPECT_LT(a.max_version, a.flexible) << a.name << ": served non-flexible";
    }
  }
}

}  // namespace
}  // namespace ferry::kafka
