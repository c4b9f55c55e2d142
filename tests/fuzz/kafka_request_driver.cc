// Standalone driver for kafka_request_fuzz.cc: a well-formed request of
// every served API as seeds, then mutations of them (bit flips, bytes,
// truncation, growth, nearby lengths and counts) fed to the target. The
// API byte is never mutated, so every handler gets its share.
//
//   kafka_request_fuzz_replay [--mutations N] [--seed S] [--write-corpus DIR] [FILE ...]
#include <cstring>
#include <random>
#include <vector>

#include "fuzz_driver.h"

int ferry_fuzz_kafka_one(const std::uint8_t* data, std::size_t size);
std::vector<std::vector<std::uint8_t>> ferry_fuzz_kafka_seeds();

int main(int argc, char** argv) {
  ferry::fuzz::driver d;
  d.seeds = ferry_fuzz_kafka_seeds();
  // Accepted: answered or waiting; refused: closed as malformed (1).
  d.one = [](const std::uint8_t* data, std::size_t size) {
    return ferry_fuzz_kafka_one(data, size) != 1;
  };
  d.seed_refused = "refused as malformed: the seed or its decoder is wrong";
  d.mutate = [](ferry::fuzz::input& m, std::mt19937_64& rng) {
    const int rounds = 1 + static_cast<int>(rng() % 4);
    for (int r = 0; r < rounds && m.size() > 2; ++r) {
      const auto at = 1 + rng() % (m.size() - 1);  // byte 0 is the API
      switch (rng() % 6) {
        case 0:
          m[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          m[at] = static_cast<std::uint8_t>(rng());
          break;
        case 2:
          m.resize(2 + rng() % (m.size() - 1));
          break;
        case 3:
          m.insert(m.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(rng()));
          break;
        case 4:  // a nearby value in a big-endian 2- or 4-byte field (lengths, counts)
          if (at + 4 <= m.size()) {
            const auto delta = static_cast<int>(rng() % 9) - 4;
            m[at + 3] = static_cast<std::uint8_t>(m[at + 3] + delta);
          }
          break;
        case 5:  // a huge or negative length
          if (at + 4 <= m.size()) {
            const std::uint8_t v[] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
            const auto off = (rng() % 2) * 4;
            std::memcpy(&m[at], v + off, 4);
          }
          break;
      }
    }
  };
  return ferry::fuzz::run_driver(argc, argv, 20000, d);
}
