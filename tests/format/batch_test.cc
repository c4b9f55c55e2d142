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
  EXPECT_EQ(h.value().size(), bytes.size());
  EXPECT_EQ(static_cast<std::size_t>(h.value().batch_length) + 12, bytes.size())
      << "batchLength counts what follows it";
  EXPECT_EQ(h.value().magic, 2);
  EXPECT_EQ(h.value().last_offset_delta, 2);

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

TEST(Batch, CrcExcludesBaseOffsetAndLeaderEpochSoTheLogCanStampThem) {
  auto bytes = make_batch(3);
  be::store<std::int64_t>(bytes.data(), 123456);
  be::store<std::int32_t>(bytes.data() + layout::partition_leader_epoch, 7);
  auto h = validate_batch(bytes, validation::full);
  ASSERT_TRUE(h);
  EXPECT_EQ(h.value().base_offset, offset(123456));
  EXPECT_EQ(decode_records(bytes).at(2).off, offset(123458));
}

TEST(Batch, EverySingleBitFlipOutsideBaseOffsetAndLeaderEpochIsDetected) {
  auto bytes = make_batch(4, 0, timestamp_ms(1000), 20);
  for (std::size_t bit = 8 * 8; bit < bytes.size() * 8; ++bit) {
    if (bit / 8 >= layout::partition_leader_epoch && bit / 8 < layout::magic) continue;
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
  be::store<std::int32_t>(b.data() + layout::batch_length,
                          static_cast<std::int32_t>(b.size() - 12));
  be::store<std::uint32_t>(b.data() + layout::crc,
                           crc32c::value(b.data() + kCrcStart, b.size() - kCrcStart));
}

TEST(Batch, StructuralChecksCatchWellSignedNonsense) {
  std::string why;
  {
    auto b = make_batch(2);
    be::store<std::int32_t>(b.data() + layout::records_count, 3);  // more records than present
    be::store<std::int32_t>(b.data() + layout::last_offset_delta, 2);
    reseal(b);
    EXPECT_FALSE(validate_batch(b, validation::full, &why));
    EXPECT_TRUE(validate_batch(b, validation::header_and_crc))
        << "header-level check only looks at the header";
  }
  {
    auto b = make_batch(2);
    be::store<std::int64_t>(b.data() + layout::max_timestamp, 999999);
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
    be::store<std::int16_t>(b.data() + layout::attributes, attribute::transactional);
    reseal(b);
    EXPECT_FALSE(validate_batch(b, validation::header_and_crc, &why));
    EXPECT_NE(why.find("transactional"), std::string::npos) << why;
  }
  {
    auto b = make_batch(1);
    be::store<std::int16_t>(b.data() + layout::attributes, attribute::control);
    reseal(b);
    EXPECT_FALSE(validate_batch(b, validation::header_and_crc, &why));
    EXPECT_NE(why.find("control"), std::string::npos) << why;
  }
  {
    auto b = make_batch(2);
    be::store<std::int32_t>(b.data() + layout::last_offset_delta, 5);
    reseal(b);
    EXPECT_FALSE(validate_batch(b, validation::header_and_crc, &why));
    EXPECT_NE(why.find("lastOffsetDelta"), std::string::npos) << why;
  }
  {
    auto b = make_batch(1);
    be::store<std::int16_t>(b.data() + layout::attributes, 1);  // says gzip, is not
    reseal(b);
    EXPECT_TRUE(validate_batch(b, validation::header_and_crc));
    EXPECT_FALSE(validate_batch(b, validation::full, &why));
    EXPECT_NE(why.find("gzip"), std::string::npos) << why;
  }
  {
    auto b = make_batch(1);
    be::store<std::int8_t>(b.data() + layout::magic, 1);  // Ferry's format 1
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
  ASSERT_EQ(b[second], std::byte{2});  // zigzag(1)
  b[second] = std::byte{10};           // zigzag(5)
  reseal(b);
  EXPECT_FALSE(validate_batch(b, validation::full));
}

// --- compression --------------------------------------------------------

constexpr compression kCodecs[] = {compression::gzip, compression::snappy, compression::lz4,
                                   compression::zstd};

// `records` (an uncompressed batch's records region, maybe tampered with)
// compressed with `c` behind the header of `like`, signed.
std::vector<std::byte> compressed_batch(const std::vector<std::byte>& like,
                                        std::span<const std::byte> records, compression c) {
  std::vector<std::byte> b(like.begin(), like.begin() + kBatchHeaderSize);
  EXPECT_TRUE(compress(c, records, b));
  be::store<std::int16_t>(b.data() + layout::attributes, static_cast<std::int16_t>(c));
  reseal(b);
  return b;
}

TEST(Compression, EveryCodecRoundTripsRecordsAndShrinksThem) {
  batch_builder b;
  for (int i = 0; i < 200; ++i)
    b.add(timestamp_ms(1000 + i), "order-" + std::to_string(i % 7),
          "{\"status\":\"placed\",\"items\":[1,2,3],\"n\":" + std::to_string(i) + "}");
  const auto plain = b.finish();
  for (auto c : kCodecs) {
    SCOPED_TRACE(std::string(to_string(c)));
    for (int i = 0; i < 200; ++i)
      b.add(timestamp_ms(1000 + i), "order-" + std::to_string(i % 7),
            "{\"status\":\"placed\",\"items\":[1,2,3],\"n\":" + std::to_string(i) + "}");
    auto packed = b.finish({producer_id(3), producer_epoch(0), sequence_number(10)}, c);
    auto h = validate_batch(packed, validation::full);
    ASSERT_TRUE(h) << h.error().message();
    EXPECT_EQ(h.value().codec(), c);
    EXPECT_LT(packed.size(), plain.size() / 2);
    EXPECT_EQ(h.value().pid, producer_id(3));
    std::vector<std::string> got;
    for_each_record(packed, [&](const record_view& r) {
      got.push_back(std::string(r.key_str()) + "=" + std::string(r.value_str()));
      EXPECT_EQ(r.off, offset(static_cast<std::int64_t>(got.size()) - 1));
    });
    ASSERT_EQ(got.size(), 200u);
    EXPECT_EQ(got[199], "order-3={\"status\":\"placed\",\"items\":[1,2,3],\"n\":199}");
    // check_batch keeps the decompressed records: iterated without a second decompression.
    auto checked = check_batch(packed);
    ASSERT_TRUE(checked);
    int n = 0;
    for_each_record(checked.value(), [&](const record_view&) { ++n; });
    EXPECT_EQ(n, 200);
  }
}

TEST(Compression, RecordsThatDoNotShrinkStayUncompressed) {
  batch_builder b;
  b.add(timestamp_ms(1), "k", "v");
  auto bytes = b.finish({}, compression::zstd);
  auto h = validate_batch(bytes, validation::full);
  ASSERT_TRUE(h);
  EXPECT_EQ(h.value().codec(), compression::none);
}

TEST(Compression, ACorruptInnerRecordIsRefused) {
  auto plain = make_batch(3);
  auto records = std::vector<std::byte>(plain.begin() + kBatchHeaderSize, plain.end());
  // The second record's offset delta (zigzag 1 = 2) becomes 5 (zigzag 10).
  auto recs = decode_records(plain);
  const auto at =
      static_cast<std::size_t>(recs[1].key->data() - plain.data()) - 2 - kBatchHeaderSize;
  ASSERT_EQ(records[at], std::byte{2});
  records[at] = std::byte{10};
  for (auto c : kCodecs) {
    SCOPED_TRACE(std::string(to_string(c)));
    auto bad = compressed_batch(plain, records, c);
    std::string why;
    EXPECT_TRUE(validate_batch(bad, validation::header_and_crc)) << "the CRC is right";
    EXPECT_FALSE(validate_batch(bad, validation::full, &why));
    EXPECT_NE(why.find("record 1 is malformed"), std::string::npos) << why;
  }
}

TEST(Compression, ATruncatedFrameIsRefused) {
  auto plain = make_batch(50, 0, timestamp_ms(1000), 40);
  const auto records = std::span<const std::byte>(plain).subspan(kBatchHeaderSize);
  for (auto c : kCodecs) {
    SCOPED_TRACE(std::string(to_string(c)));
    auto whole = compressed_batch(plain, records, c);
    ASSERT_TRUE(validate_batch(whole, validation::full));
    for (std::size_t cut :
         {std::size_t{1}, std::size_t{5}, (whole.size() - kBatchHeaderSize) / 2}) {
      auto cut_short = whole;
      cut_short.resize(whole.size() - cut);
      reseal(cut_short);
      std::string why;
      EXPECT_FALSE(validate_batch(cut_short, validation::full, &why)) << "cut " << cut;
      EXPECT_NE(why.find(to_string(c)), std::string::npos) << why;
    }
  }
}

TEST(Compression, ADecompressionBombIsRefusedBeforeItIsAllocated) {
  auto like = make_batch(1);
  // 200 MiB of zeros: kilobytes compressed, far above the 64 MiB that the
  // records of one batch may take. zstd and lz4 declare the size in their
  // frame header; gzip and snappy-raw are stopped while decompressing.
  const std::vector<std::byte> zeros(200u << 20, std::byte{0});
  for (auto c : kCodecs) {
    SCOPED_TRACE(std::string(to_string(c)));
    auto bomb = compressed_batch(like, zeros, c);
    EXPECT_LT(bomb.size(), 20u << 20);
    std::string why;
    EXPECT_FALSE(validate_batch(bomb, validation::full, &why));
    EXPECT_TRUE(why.find("more than") != std::string::npos) << why;
  }
}

TEST(Compression, NamesParseAndPrint) {
  for (auto c : {compression::none, compression::gzip, compression::snappy, compression::lz4,
                 compression::zstd})
    EXPECT_EQ(parse_compression(to_string(c)), c);
  EXPECT_FALSE(parse_compression("brotli"));
  EXPECT_FALSE(parse_compression("ZSTD"));
}

}  // namespace
}  // namespace ferry::format
