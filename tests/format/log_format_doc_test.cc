// Keeps docs/log_format.md honest: its worked example must be exactly what
// the library produces.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "ferry/core/endian.h"
#include "ferry/format/batch.h"

namespace ferry::format {
namespace {

std::string doc_hex() {
  std::ifstream in(std::string(FERRY_SOURCE_DIR) + "/docs/log_format.md");
  std::stringstream ss;
  ss << in.rdbuf();
  auto text = ss.str();
  auto begin = text.find("worked-example-begin");
  auto end = text.find("worked-example-end");
  if (begin == std::string::npos || end == std::string::npos) return "";
  auto block = text.substr(begin, end - begin);
  auto open = block.find("```");
  auto close = block.find("```", open + 3);
  std::string hex;
  for (char c : block.substr(open + 3, close - open - 3))
    if (std::isxdigit(static_cast<unsigned char>(c))) hex += c;
  return hex;
}

TEST(LogFormatDoc, WorkedExampleMatchesTheLibrary) {
  batch_builder b;
  batch_builder::header_input h[] = {{"trace", as_bytes("t1")}};
  b.add(timestamp_ms(1700000000000), "k1", "v1", h);
  b.add(timestamp_ms(1700000000005), std::nullopt, as_bytes("v2"));
  auto bytes = b.finish();
  be::store<std::int64_t>(bytes.data(), 42);  // as the log stamps it
  be::store<std::int32_t>(bytes.data() + layout::partition_leader_epoch, 0);
  std::string hex;
  char buf[3];
  for (auto x : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(x));
    hex += buf;
  }
  auto doc = doc_hex();
  ASSERT_FALSE(doc.empty()) << "worked example markers missing from docs/log_format.md";
  EXPECT_EQ(doc, hex);
  EXPECT_TRUE(validate_batch(bytes, validation::full));
}

}  // namespace
}  // namespace ferry::format
