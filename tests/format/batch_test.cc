#include "ferry/format/batch.h"

#include <gtest/gtest.h>

#include "batch_util.h"
#include "ferry/core/crc32c.h"
#include "ferry/core/endian.h"
#include "ferry/format/errc.h"

namespace ferry::format {
namespace {

using testing::make_batch;

TEST(Batch, RoundTripsRecordsKeysValuesAndHeaders) {
  batch_builder b;
  batch_builder::header_input hs[] = {{"trace-id", as_bytes("abc")}, {"null-header", std::nullopt}};
  b.add(timestamp_ms(5000), "order-1", "placed", hs);
  b.add(timestamp_ms(4990), std::nullopt, std::nullopt);  // timestamps may go backwards
  b.add(timestamp_ms(5010), as_bytes(""), as_bytes("x"));
  auto bytes = b.finish({producer_id(77), producer_epoch(2), sequence_number(40)});

  auto h = validate_batch(bytes, validation::full);
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(h.value().record_count, 3);
  EXPECT_EQ(h.value().first_timestamp, timestamp_ms(5000));
  EXPECT_EQ(h.value().max_timestamp, timestamp_ms(5010));
  EXPECT_EQ(h.value().pid, producer_id(77));
  EXPECT_EQ(h.value().epoch, producer_epoch(2));
  EXPECT_EQ(h.value().base_sequence, sequence_number(40));
  EXPECT_EQ(h.value().batch_length, bytes.size());

  auto recs = decode_records(bytes);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].key_str(), "order-1");
  EXPECT_EQ(recs[0].value_str(), "placed");
  auto hv = recs[0].headers();
  ASSERT_EQ(hv.size(), 2u);
  EXPECT_EQ(hv[0].key, "trace-id");
  ASSERT_TRUE(hv[0].value.has_value());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(hv[0].value->data()), hv[0].value->size()),
            "abc");
  EXPECT_FALSE(hv[1].value.has_value());
  EXPECT_FALSE(recs[1].key.has_value());
  EXPECT_FALSE(recs[1].value.has_value());
  EXPECT_EQ(recs[1].timestamp, timestamp_ms(4990));
  ASSERT_TRUE(recs[2].key.has_value());
  EXPECT_TRUE(recs[2].key->empty());
  EXPECT_EQ(recs[2].off, offset(2));
}

TEST(Batch, BuilderIsReusableAfterFinish) {
  batch_builder b;
  b.add(timestamp_ms(1), "a", "b");
  auto first = b.finish();
  EXPECT_TRUE(b.empty());
  b.add(timestamp_ms(2), "c", "d");
  auto second = b.finish();
  ASSERT_TRUE(validate_batch(first, validation::full));
  ASSERT_TRUE(validate_batch(second, validation::full));
  EXPECT_EQ(decode_records(second).at(0).key_str(), "c");
}

TEST(Batch, CrcExcludesBaseOffsetSoTheLogCanStampIt) {
  auto bytes = make_batch(3);
  le::store<std::int64_t>(bytes.data(), 123456);
  auto h = validate_batch(bytes, validation::full);
  ASSERT_TRUE(h);
  EXPECT_EQ(h.value().base_offset, offset(123456));
  EXPECT_EQ(decode_records(bytes).at(2).off, offset(123458));
}

TEST(Batch, EverySingleBitFlipOutsideBaseOffsetIsDetected) {
  auto bytes = make_batch(4, 0, timestamp_ms(1000), 20);
  for (std::size_t bit = 8 * 8; bit < bytes.size() * 8; ++bit) {
    auto copy = bytes;
    copy[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
    EXPECT_FALSE(validate_batch(copy, validation::header_and_crc)) << "bit " << bit;
  }
}

TEST(Batch, TruncatedOrExtendedBytesAreRefused) {
  auto bytes = make_batch(3);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto r = validate_batch(std::span(bytes).first(n), validation::full);
    ASSERT_FALSE(r) << n;
    EXPECT_EQ(r.error(), errc::invalid_batch);
  }
  auto longer = bytes;
  longer.push_back(std::byte{0});
  EXPECT_FALSE(validate_batch(longer, validation::full));
}

// Re-signs a batch after tampering with it, so only the structural checks
// stand between it and acceptance.
void reseal(std::vector<std::byte>& b) {
  le::store<std::uint32_t>(b.data() + layout::batch_length, static_cast<std::uint32_t>(b.size()));
  le::store<std::uint32_t>(b.data() + layout::crc,
                           crc32c::value(b.data() + kCrcStart, b.size() - kCrcStart));
}

TEST(Batch, StructuralChecksCatchWellSignedNonsense) {
  std::string why;
  {
    auto b = make_batch(2);
    le::store<std::int32_t>(b.data() + layout::record_count,
                            3);  // claims more records than present
    reseal(b);
    EXPECT_FALSE(validate_batch(b, validation::full, &why));
    EXPECT_TRUE(validate_batch(b, validation::header_and_crc))
        << "header-level check only looks at the header";
  }
  {
    auto b = make_batch(2);
    le::store<std::int64_t>(b.data() + layout::max_timestamp, 999999);
    reseal(b);
    EXPECT_FALSE(validate_batch(b, validation::full, &why));
    EXPECT_NE(why.find("max_timestamp"), std::string::npos) << why;
  }
  {
    auto b = make_batch(2);
    b.push_back(std::byte{0});  // trailing garbage inside the batch
    reseal(b);
    EXPECT_FALSE(validate_batch(b, validation::full, &why));
  }
  {
    auto b = make_batch(1);
    le::store<std::uint16_t>(b.data() + layout::attributes, 1);  // compression: not supported
    reseal(b);
    EXPECT_FALSE(validate_batch(b, validation::header_and_crc, &why));
  }
  {
    auto b = make_batch(1);
    le::store<std::uint8_t>(b.data() + layout::magic, 2);
    reseal(b);
    EXPECT_FALSE(validate_batch(b, validation::header_and_crc, &why));
    EXPECT_NE(why.find("magic"), std::string::npos);
  }
}

TEST(Batch, OffsetDeltasMustCountFromZero) {
  // Build a 2-record batch, then swap the records' offset deltas.
  auto b = make_batch(2);
  auto recs = decode_records(b);
  // Record layout: len, attr, ts delta, offset delta... find the second record's delta byte.
  std::size_t second =
      static_cast<std::size_t>(recs[1].key->data() - b.data()) - 1 /*key len*/ - 1 /*off*/;
  ASSERT_EQ(b[second], std::byte{1});
  b[second] = std::byte{5};
  reseal(b);
  EXPECT_FALSE(validate_batch(b, validation::full));
}

}  // namespace
}  // namespace ferry::format
