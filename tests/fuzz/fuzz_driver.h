// The shared main of the standalone fuzz drivers: replay FILEs, write the
// seed corpus, or run every seed and then N mutations of them, each made
// by the target's own `mutate` from a seeded stream (so a run is
// repeatable with --seed).
//
//   DRIVER [--mutations N] [--seed S] [--write-corpus DIR] [FILE ...]
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace ferry::fuzz {

using input = std::vector<std::uint8_t>;

struct driver {
  std::vector<input> seeds;
  /// Runs one input; true when the target accepted it (every seed must be).
  std::function<bool(const std::uint8_t*, std::size_t)> one;
  /// Changes a copy of a seed in place.
  std::function<void(input&, std::mt19937_64&)> mutate;
  /// Printed when a seed is refused: what is broken.
  const char* seed_refused = "a valid seed was refused";
};

inline int run_driver(int argc, char** argv, long mutations, const driver& d) {
  std::uint64_t seed = 1;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--mutations" && i + 1 < argc) {
      mutations = std::atol(argv[++i]);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--write-corpus" && i + 1 < argc) {
      const std::filesystem::path dir = argv[++i];
      std::filesystem::create_directories(dir);
      int n = 0;
      for (const auto& s : d.seeds) {
        std::ofstream out(dir / ("seed-" + std::to_string(n++)), std::ios::binary);
        out.write(reinterpret_cast<const char*>(s.data()), static_cast<std::streamsize>(s.size()));
      }
      return 0;
    } else {
      files.push_back(a);
    }
  }
  if (!files.empty()) {
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      const input data{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      (void)d.one(data.data(), data.size());
    }
    std::printf("replayed %zu inputs: no invariant violated\n", files.size());
    return 0;
  }
  for (std::size_t i = 0; i < d.seeds.size(); ++i)
    if (!d.one(d.seeds[i].data(), d.seeds[i].size())) {
      std::fprintf(stderr, "seed %zu: %s\n", i, d.seed_refused);
      return 1;
    }
  long accepted = 0;
  std::mt19937_64 rng(seed);
  for (long i = 0; i < mutations; ++i) {
    auto m = d.seeds[rng() % d.seeds.size()];
    d.mutate(m, rng);
    accepted += d.one(m.data(), m.size()) ? 1 : 0;
  }
  std::printf("%zu seeds + %ld mutations (seed %llu, %ld accepted): no invariant violated\n",
              d.seeds.size(), mutations, static_cast<unsigned long long>(seed), accepted);
  return 0;
}

}  // namespace ferry::fuzz
