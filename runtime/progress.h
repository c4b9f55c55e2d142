// What a worker keeps in the committed offset's metadata of a partition
// (private to the runtime), as compact JSON within the broker's 4096-byte
// limit:
//   {"v":1,
//    "w":{"orders.dlq":120,"orders.retry.5s":42},   route watermarks: where a
//        new owner starts looking for records this partition routed
//    "a":[[offset,attempts,first_ms,"last error",route],...],  attempts of
//        records at or above the committed offset that are waiting for a
//        retry or on their way to the DLQ (route: the dead_letter_reason,
//        present only then)
//    "d":[[from,to],...]}   offsets at or above the committed offset that
//        are finished (inclusive ranges): a new owner skips them
// When it does not fit, error texts go first, then "d" ranges from the
// end (those records may run again: at least once), then "a" entries from
// the end (their attempts restart); "w" always stays.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::runtime::detail {

struct parked_attempts {
  std::int64_t offset = 0;
  int attempts = 0;
  std::int64_t first_ms = 0;
  std::string last_error;
  /// A dead_letter_reason when the record was on its way to the DLQ (the
  /// next owner routes it without calling the handler again); -1: none.
  int route = -1;

  bool operator==(const parked_attempts&) const = default;
};

struct progress {
  std::map<std::string, std::int64_t> watermarks;
  std::vector<parked_attempts> attempts;
  std::vector<std::pair<std::int64_t, std::int64_t>> done;  ///< inclusive ranges, ascending

  bool operator==(const progress&) const = default;
};

[[nodiscard]] std::string encode_progress(const progress& p, std::size_t limit = 4096);
/// Empty or foreign metadata (not ours) gives nullopt.
[[nodiscard]] std::optional<progress> decode_progress(std::string_view metadata);

/// Sorted offsets -> inclusive ranges.
[[nodiscard]] std::vector<std::pair<std::int64_t, std::int64_t>> to_ranges(
    const std::vector<std::int64_t>& sorted);

}  // namespace ferry::runtime::detail
