// Standalone driver for batch_fuzz.cc: batches of every codec (and the raw
// compressed streams) as seeds, then mutations of them (bit flips, bytes,
// truncation, growth, nearby lengths) fed to the target.
//
//   batch_fuzz_replay [--mutations N] [--seed S] [--write-corpus DIR] [FILE ...]
#include <cstring>
#include <random>
#include <vector>

#include "ferry/format/batch.h"
#include "fuzz_driver.h"

bool ferry_fuzz_batch_one(const std::uint8_t* data, std::size_t size);

namespace {

using namespace ferry;
using namespace ferry::format;

std::vector<std::uint8_t> with_mode(std::uint8_t mode, std::span<const std::byte> bytes) {
  std::vector<std::uint8_t> out{mode};
  for (auto b : bytes) out.push_back(static_cast<std::uint8_t>(b));
  return out;
}

std::vector<std::vector<std::uint8_t>> seeds() {
  std::vector<std::vector<std::uint8_t>> s;
  for (auto c : {compression::none, compression::gzip, compression::snappy, compression::lz4,
                 compression::zstd}) {
    batch_builder b;
    batch_builder::header_input h[] = {{"trace", as_bytes("t1")}, {"null", std::nullopt}};
    for (int i = 0; i < 30; ++i)
      b.add(timestamp_ms(1000 + (i * 7) % 11), "key-" + std::to_string(i % 3),
            "value value value " + std::to_string(i), h);
    auto bytes = b.finish({producer_id(5), producer_epoch(1), sequence_number(0)}, c);
    s.push_back(with_mode(0, bytes));
    s.push_back(with_mode(1, bytes));
    if (c != compression::none)  // the compressed records alone, for the decompressor
      s.push_back(with_mode(static_cast<std::uint8_t>(1 + static_cast<int>(c)),
                            std::span<const std::byte>(bytes).subspan(kBatchHeaderSize)));
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  ferry::fuzz::driver d;
  d.seeds = seeds();
  d.one = ferry_fuzz_batch_one;
  d.seed_refused = "a valid batch was rejected: validation or a codec is broken";
  d.mutate = [](ferry::fuzz::input& m, std::mt19937_64& rng) {
    const int rounds = 1 + static_cast<int>(rng() % 4);
    for (int r = 0; r < rounds && m.size() > 1; ++r) {
      const auto at = 1 + rng() % (m.size() - 1);  // byte 0 is the mode
      switch (rng() % 5) {
        case 0:
          m[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          m[at] = static_cast<std::uint8_t>(rng());
          break;
        case 2:
          m.resize(1 + rng() % m.size());
          break;
        case 3:
          m.insert(m.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(rng()));
          break;
        case 4:  // a nearby value in a 4-byte word (lengths, counts, sizes)
          if (at + 4 <= m.size()) {
            std::uint32_t v;
            std::memcpy(&v, &m[at], 4);
            v += static_cast<std::uint32_t>(rng() % 64) - 32;
            std::memcpy(&m[at], &v, 4);
          }
          break;
      }
    }
  };
  return ferry::fuzz::run_driver(argc, argv, 20000, d);
}
