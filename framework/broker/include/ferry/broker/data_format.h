// The format of a data directory, and the offline upgrade from format 1.
//
// <data>/FORMAT holds "ferry data format 2": record batches are Kafka's
// RecordBatch v2 (docs/log_format.md). ferryd writes it into a new data
// directory and refuses one that holds data without it - data written by
// Ferry's format 1 (little-endian batches, before 2026-12) - naming the
// command that converts it: `ferryd --data-dir DIR --upgrade-data-dir`.
//
// The upgrade runs offline (ferryd is not serving the directory; it takes
// the directory's lock) and is lossless: every batch of every partition log
// (topics, the group offsets and ledger log, the schema registry log) is
// rewritten as a v2 batch with the same base offset, records, timestamps,
// keys, values, headers, producer id, epoch and base sequence, into segment
// files of the same names; indexes are rebuilt by opening each converted
// log. The format-1 files are kept under <data>/format1-backup until the
// operator deletes them. A crash during the upgrade leaves the directory
// in format 1 (the swap happens last); running it again starts over.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "ferry/core/result.h"

namespace ferry::broker {

inline constexpr int kDataFormat = 2;

/// Checks that `dir` holds format 2 data, or no data at all (then marks it
/// format 2, durably). ferry::errc::corrupt_data with `why` when it holds
/// format 1 or an unknown format.
[[nodiscard]] result<void> check_data_format(const std::filesystem::path& dir, std::string* why);

struct upgrade_report {
  std::uint64_t partitions = 0;
  std::uint64_t segments = 0;
  std::uint64_t batches = 0;
  std::uint64_t records = 0;
  std::uint64_t bytes_before = 0;
  std::uint64_t bytes_after = 0;
  std::uint64_t torn_tail_bytes = 0;  ///< incomplete batches at the end of active segments, dropped
};

/// Converts a format-1 data directory to format 2 (see above). `progress`
/// is told about each partition log as it is converted.
[[nodiscard]] result<upgrade_report> upgrade_data_dir(
    const std::filesystem::path& dir, std::string* why,
    const std::function<void(const std::string& log)>& progress = {});

}  // namespace ferry::broker
