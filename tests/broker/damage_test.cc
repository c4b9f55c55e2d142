// Damage operators can see (issue 24): a batch that fails its checksum
// when a consumer reads it is remembered, and `describe` (ferry topics
// describe) names the segment, the byte and the offset the damaged batch
// should start at, while what comes before it is still served. The
// control: the same partition before the byte was flipped describes as ok.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"
#include "ferry/client/producer.h"
#include "inproc_broker.h"

namespace {

using namespace std::chrono_literals;

TEST(Damage, ABatchFoundCorruptByAReadShowsInDescribeWithItsOffsets) {
  const auto dir = ferry::testing::make_temp_dir("ferry-damage");
  ferry::testing::inproc_broker b;
  b.start(dir);
  const auto opts = ferry::testing::base_client_options(b.endpoint());
  ferry::client::admin a(opts);
  ASSERT_TRUE(a.create_topic("t", {.partitions = 1})) << a.last_error_message();
  {
    // Three batches of five records: offsets 0-4, 5-9, 10-14.
    ferry::client::producer_options po;
    static_cast<ferry::client::client_options&>(po) = opts;
    ferry::client::producer p(po);
    for (int batch = 0; batch < 3; ++batch) {
      for (int i = 0; i < 5; ++i) {
        ferry::client::producer_record r;
        r.topic = "t";
        r.partition = ferry::partition_id(0);
        r.value = "value-" + std::to_string(batch * 5 + i);
        ASSERT_TRUE(p.send(r, [](const auto&) {}));
      }
      ASSERT_TRUE(p.flush(10s));
    }
  }
  auto before = a.describe_topic("t");
  ASSERT_TRUE(before) << a.last_error_message();
  EXPECT_FALSE(before.value().partitions.at(0).error) << "the control: healthy";

  // Flip a byte inside the second batch's records (the file's bytes as the
  // broker reads them; it keeps the file open).
  const auto seg = dir / "topics" / "t" / "0" / "00000000000000000000.log";
  const auto size = std::filesystem::file_size(seg);
  ASSERT_GT(size, 100u);
  std::uintmax_t second = 0;
  {
    std::ifstream in(seg, std::ios::binary);
    unsigned char len[4];
    in.seekg(8);  // the first batch: base offset (8), then its length (4)
    in.read(reinterpret_cast<char*>(len), 4);
    second = 12 + ((std::uintmax_t{len[0]} << 24) | (std::uintmax_t{len[1]} << 16) |
                   (std::uintmax_t{len[2]} << 8) | std::uintmax_t{len[3]});
  }
  {
    std::fstream f(seg, std::ios::binary | std::ios::in | std::ios::out);
    f.seekg(static_cast<std::streamoff>(second + 70));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x20);
    f.seekp(static_cast<std::streamoff>(second + 70));
    f.write(&c, 1);
  }

  ferry::client::consumer_options co;
  static_cast<ferry::client::client_options&>(co) = opts;
  ferry::client::consumer c(co);
  const std::vector<ferry::client::topic_partition> tps{{"t", ferry::partition_id(0)}};
  ASSERT_TRUE(c.assign(tps));
  ASSERT_TRUE(c.seek_to_beginning(tps));
  std::size_t got = 0;
  std::error_code error;
  for (int i = 0; i < 20 && !error; ++i) {
    auto r = c.poll(200ms);
    if (!r)
      error = r.error();
    else
      got += r.value().size();
  }
  EXPECT_EQ(got, 5u) << "the batch before the damage is served";
  EXPECT_EQ(error, ferry::client::errc::corrupt_data) << error.message();

  auto after = a.describe_topic("t");
  ASSERT_TRUE(after) << a.last_error_message();
  const auto& p = after.value().partitions.at(0);
  EXPECT_EQ(p.error, ferry::client::errc::corrupt_data) << p.error.message();
  EXPECT_NE(p.message.find("damaged: 00000000000000000000.log at byte " + std::to_string(second)),
            std::string::npos)
      << p.message;
  EXPECT_NE(p.message.find("should start at offset 5"), std::string::npos) << p.message;
  b.stop();
  std::filesystem::remove_all(dir);
}

}  // namespace
