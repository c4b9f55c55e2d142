// Compressed batches end to end (ADR 0005): Ferry's producer compresses with
// each of Kafka's codecs, the broker validates by decompressing once and
// stores the batch as it came (the stored bytes carry the codec), and the
// consumer reads the records back; a batch whose compressed records are
// corrupt is refused and nothing of it is stored.
#include <gtest/gtest.h>

#include "broker_fixture.h"
#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/producer.h"
#include "ferry/core/crc32c.h"
#include "ferry/core/endian.h"

namespace ferry::testing {
namespace {

using namespace std::chrono_literals;
using format::compression;

class CompressionTest : public InprocBrokerTest {
 protected:
  CompressionTest() : InprocBrokerTest("ferry-compression") {}
  void create(const std::string& topic) {
    client::admin a(base_client_options(endpoint()));
    ASSERT_TRUE(a.create_topic(topic, client::topic_config{})) << a.last_error_message();
  }
};

TEST_F(CompressionTest, EveryCodecIsStoredAsSentAndReadBack) {
  for (auto codec : {compression::gzip, compression::snappy, compression::lz4, compression::zstd}) {
    const std::string topic = "orders-" + std::string(to_string(codec));
    SCOPED_TRACE(topic);
    create(topic);
    auto po = client::producer_options{};
    static_cast<client::client_options&>(po) = base_client_options(endpoint());
    po.compression = codec;
    po.linger = 50ms;
    {
      client::producer p(po);
      for (int i = 0; i < 500; ++i) {
        client::producer_record r;
        r.topic = topic;
        r.key = "order-" + std::to_string(i % 11);
        r.value = "{\"order\":" + std::to_string(i) + ",\"status\":\"placed\",\"total\":1250}";
        r.headers = {{"trace", std::string("t-") + std::to_string(i)}};
        ASSERT_TRUE(p.send(std::move(r), [](const result<client::record_metadata>&) {}));
      }
      ASSERT_TRUE(p.flush(10s));
    }
    // Stored as sent: the first batch on disk says the codec.
    wire_client raw(endpoint());
    auto f = raw.fetch(topic, 0, 0);
    ASSERT_EQ(f.error, wire::ErrorCode::None);
    ASSERT_GE(f.data.size(), format::kBatchHeaderSize);
    EXPECT_EQ(format::batch_header::decode(f.data.data()).codec(), codec);
    // Read back by the consumer, every record in order.
    auto co = client::consumer_options{};
    static_cast<client::client_options&>(co) = base_client_options(endpoint());
    client::consumer c(co);
    ASSERT_TRUE(c.assign({{topic, partition_id(0)}}));
    ASSERT_TRUE(c.seek({topic, partition_id(0)}, offset(0)));
    std::vector<client::consumer_record> got;
    for (int tries = 0; got.size() < 500 && tries < 50; ++tries) {
      auto polled = c.poll(200ms);
      ASSERT_TRUE(polled) << polled.error().message();
      for (auto& r : polled.value()) got.push_back(std::move(r));
    }
    ASSERT_EQ(got.size(), 500u);
    for (int i = 0; i < 500; ++i) {
      EXPECT_EQ(got[static_cast<std::size_t>(i)].offset, offset(i));
      EXPECT_EQ(got[static_cast<std::size_t>(i)].value,
                "{\"order\":" + std::to_string(i) + ",\"status\":\"placed\",\"total\":1250}");
    }
    ASSERT_EQ(got[499].headers.size(), 1u);
    EXPECT_EQ(got[499].headers[0].value, "t-499");
  }
}

TEST_F(CompressionTest, CorruptCompressedRecordsAreRefusedAndNothingIsStored) {
  create("orders");
  wire_client raw(endpoint());
  // A zstd batch whose records region is damaged after compression, then
  // signed again: its CRC is right, its contents are not.
  format::batch_builder b;
  for (int i = 0; i < 100; ++i) b.add(timestamp_ms(1000 + i), "k", "value value value value");
  auto bytes = b.finish({}, compression::zstd);
  ASSERT_EQ(format::batch_header::decode(bytes.data()).codec(), compression::zstd);
  bytes[bytes.size() / 2 + 20] ^= std::byte{0x5a};
  be::store<std::uint32_t>(
      bytes.data() + format::layout::crc,
      crc32c::value(bytes.data() + format::kCrcStart, bytes.size() - format::kCrcStart));
  auto r = raw.produce_one("orders", 0, bytes);
  EXPECT_EQ(r.error, wire::ErrorCode::InvalidBatch);
  EXPECT_NE(r.message.find("zstd"), std::string::npos) << r.message;
  // Nothing was stored, and the partition keeps working.
  EXPECT_EQ(raw.fetch("orders", 0, 0).high_watermark, 0);
  EXPECT_EQ(raw.produce_one("orders", 0, make_batch(3)).error, wire::ErrorCode::None);
  EXPECT_EQ(stored_values("orders", 0).size(), 3u);
}

}  // namespace
}  // namespace ferry::testing
