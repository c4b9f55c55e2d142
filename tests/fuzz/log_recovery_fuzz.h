// Shared between the libFuzzer entry point and the standalone driver.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ferry::storage::fuzz {

struct fuzz_file {
  bool present = false;
  std::vector<std::byte> bytes;
};

struct fuzz_input {
  bool truncate_policy = false;
  std::int64_t second_base = 0;
  std::array<fuzz_file, 4> files;  // seg0 .log, .index, .timeindex, seg1 .log
};

fuzz_input decode_input(const std::uint8_t* data, std::size_t size);
std::vector<std::uint8_t> encode_input(const fuzz_input& in);

/// Runs one input; aborts on an invariant violation.
void run_one(const std::uint8_t* data, std::size_t size);

/// Valid inputs built with the library itself.
std::vector<std::vector<std::uint8_t>> seed_corpus();

}  // namespace ferry::storage::fuzz
