// Standalone driver for zap_fuzz.cc: ZAP requests (admitted, unknown key,
// other mechanisms) and a users file as seeds, then mutations: flipped and
// replaced bytes, cut and grown inputs. Byte 0 (the target) is kept.
//
//   zap_fuzz_replay [--mutations N] [--seed S] [--write-corpus DIR] [FILE ...]
#include <random>
#include <vector>

#include "fuzz_driver.h"

int ferry_fuzz_zap_one(const std::uint8_t* data, std::size_t size);
std::vector<std::vector<std::uint8_t>> ferry_fuzz_zap_seeds();

int main(int argc, char** argv) {
  ferry::fuzz::driver d;
  d.seeds = ferry_fuzz_zap_seeds();
  // Every input is acceptable: the target aborts on a broken invariant.
  d.one = [](const std::uint8_t* data, std::size_t size) {
    (void)ferry_fuzz_zap_one(data, size);
    return true;
  };
  d.mutate = [](ferry::fuzz::input& m, std::mt19937_64& rng) {
    const int rounds = 1 + static_cast<int>(rng() % 3);
    for (int r = 0; r < rounds && m.size() > 1; ++r) {
      const auto at = 1 + rng() % (m.size() - 1);
      switch (rng() % 4) {
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
      }
    }
  };
  return ferry::fuzz::run_driver(argc, argv, 100000, d);
}
