// Helpers shared by the storage tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ferry/core/clock.h"
#include "ferry/storage/batch.h"
#include "ferry/storage/log.h"
#include "ferry/storage/mem_env.h"

namespace ferry::storage::testing {

/// A batch of `n` records with keys "k<first+i>" and values "v<first+i>"
/// padded to `value_size` bytes, timestamps ts, ts+1, ...
inline std::vector<std::byte> make_batch(int n, int first = 0,
                                         timestamp_ms ts = timestamp_ms(1'000),
                                         std::size_t value_size = 0) {
  batch_builder b;
  for (int i = 0; i < n; ++i) {
    std::string v = "v" + std::to_string(first + i);
    if (v.size() < value_size) v.resize(value_size, '.');
    b.add(ts + i, "k" + std::to_string(first + i), v);
  }
  return b.finish();
}

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
      auto one = data.first(h.batch_length);
      EXPECT_TRUE(validate_batch(one, validation::full));
      for_each_record(one, [&](const record_view& rec) {
        if (rec.off >= at) out.emplace_back(rec.off.value(), std::string(rec.value_str()));
      });
      data = data.subspan(h.batch_length);
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
