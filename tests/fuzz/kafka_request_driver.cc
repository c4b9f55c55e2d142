// Standalone driver for kafka_request_fuzz.cc: a well-formed request of
// every served API as seeds, then mutations of them (bit flips, bytes,
// truncation, growth, nearby lengths and counts) fed to the target. The
// API byte is never mutated, so every handler gets its share.
//
//   kafka_request_fuzz_replay [--mutations N] [--seed S] [--write-corpus DIR] [FILE ...]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

int ferry_fuzz_kafka_one(const std::uint8_t* data, std::size_t size);
std::vector<std::vector<std::uint8_t>> ferry_fuzz_kafka_seeds();

int main(int argc, char** argv) {
  long mutations = 20000;
  std::uint64_t seed = 1;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--mutations" && i + 1 < argc) {
      mutations = std::atol(argv[++i]);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--write-corpus" && i + 1 < argc) {
      std::filesystem::path dir = argv[++i];
      std::filesystem::create_directories(dir);
      int n = 0;
      for (auto& s : ferry_fuzz_kafka_seeds()) {
        std::ofstream out(dir / ("seed-" + std::to_string(n++)), std::ios::binary);
        out.write(reinterpret_cast<const char*>(s.data()), static_cast<std::streamsize>(s.size()));
      }
      return 0;
    } else {
      files.push_back(a);
    }
  }
  if (!files.empty()) {
    for (auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::vector<std::uint8_t> d{std::istreambuf_iterator<char>(in),
                                  std::istreambuf_iterator<char>()};
      (void)ferry_fuzz_kafka_one(d.data(), d.size());
    }
    std::printf("replayed %zu inputs: no invariant violated\n", files.size());
    return 0;
  }
  auto pool = ferry_fuzz_kafka_seeds();
  for (std::size_t i = 0; i < pool.size(); ++i)
    if (ferry_fuzz_kafka_one(pool[i].data(), pool[i].size()) == 1) {
      std::fprintf(stderr, "seed %zu was refused as malformed: the seed or its decoder is wrong\n",
                   i);
      return 1;
    }
  std::mt19937_64 rng(seed);
  for (long i = 0; i < mutations; ++i) {
    auto m = pool[rng() % pool.size()];
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
    (void)ferry_fuzz_kafka_one(m.data(), m.size());
  }
  std::printf("%zu seeds + %ld mutations (seed %llu): no invariant violated\n", pool.size(),
              mutations, static_cast<unsigned long long>(seed));
  return 0;
}
