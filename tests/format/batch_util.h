// Batches for tests (format, storage, broker).
#pragma once

#include <string>
#include <vector>

#include "ferry/format/batch.h"

namespace ferry::format::testing {

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

}  // namespace ferry::format::testing
