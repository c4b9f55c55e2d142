// Helpers shared by the storage tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ferry/core/clock.h"
#include "ferry/format/batch.h"
#include "ferry/storage/log.h"
#include "ferry/storage/mem_env.h"
#include "format/batch_util.h"

namespace ferry::storage {
// The storage tests read batches with the format's names unqualified.
using format::as_bytes;
using format::batch_builder;
using format::batch_header;
using format::decode_records;
using format::for_each_record;
using format::kBatchHeaderSize;
using format::record_view;
using format::validate_batch;
using format::validation;
namespace layout = format::layout;
}  // namespace ferry::storage

namespace ferry::storage::testing {

using format::testing::make_batch;

/// Every record in the log from `from`, as (offset, value) pairs, reading
/// in chunks of `chunk` bytes.
inline std::vector<std::pair<std::int64_t, std::string>> read_all(partition_log& log,
                                                                  offset from = offset(-1),
                                                                  std::size_t chunk = 64 << 10) {
  std::vector<std::pair<std::int64_t, std::string>> out;
  offset at = from.value() < 0 ? log.log_start_offset() : from;
  while (at < log.high_watermark()) {
    auto r = log.read(at, chunk);
    EXPECT_TRUE(r) << "read at " << at << ": " << (r ? "" : r.error().message());
    if (!r || r.value().batches == 0) break;
    std::span<const std::byte> data(r.value().data);
    while (!data.empty()) {
      auto h = batch_header::decode(data.data());
      auto one = data.first(static_cast<std::size_t>(h.size()));
      EXPECT_TRUE(validate_batch(one, validation::full));
      for_each_record(one, [&](const record_view& rec) {
        if (rec.off >= at) out.emplace_back(rec.off.value(), std::string(rec.value_str()));
      });
      data = data.subspan(static_cast<std::size_t>(h.size()));
    }
    at = r.value().next_offset;
  }
  return out;
}

inline const fs::path kDir = "/data/orders-0";

inline log_config small_config() {
  log_config c;
  c.name = "orders-0";
  c.segment_bytes = 4096;
  c.index_interval_bytes = 256;
  c.retention_time = std::chrono::milliseconds(-1);
  return c;
}

}  // namespace ferry::storage::testing
