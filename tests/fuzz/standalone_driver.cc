// Runs the fuzz target without libFuzzer (any compiler): replays files given
// on the command line, or, with none, the built-in seed corpus plus a
// deterministic stream of structure-aware mutations. Mutations include
// re-signing damaged batches and indexes with correct CRC32Cs, so the checks
// behind the checksum get exercised too -- something random bytes never reach.
//
//   log_recovery_fuzz_replay [--mutations N] [--seed S] [--write-corpus DIR] [FILE|DIR ...]
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "ferry/core/crc32c.h"
#include "ferry/core/endian.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "log_recovery_fuzz.h"

namespace fz = ferry::storage::fuzz;
namespace st = ferry::storage;

namespace {

using bytes = std::vector<std::byte>;

// Recomputes the CRC of the k-th batch found by walking lengths (if any).
void reseal_batch(bytes& f, std::size_t k) {
  std::size_t pos = 0;
  for (std::size_t i = 0; pos + ferry::format::kBatchHeaderSize <= f.size(); ++i) {
    const std::size_t len = static_cast<std::uint32_t>(ferry::be::load<std::int32_t>(
                                f.data() + pos + ferry::format::layout::batch_length)) +
                            ferry::format::kBatchLengthOverhead;
    if (len < ferry::format::kBatchHeaderSize || pos + len > f.size()) return;
    if (i == k) {
      ferry::be::store<std::uint32_t>(
          f.data() + pos + ferry::format::layout::crc,
          ferry::crc32c::value(f.data() + pos + ferry::format::kCrcStart,
                               len - ferry::format::kCrcStart));
      return;
    }
    pos += len;
  }
}

void reseal_index(bytes& f) {
  if (f.size() < 56) return;
  auto crc = ferry::crc32c::value(f.data(), 52);
  crc = ferry::crc32c::extend(crc, f.data() + 56, f.size() - 56);
  ferry::le::store<std::uint32_t>(f.data() + 52, crc);
}

std::vector<std::uint8_t> mutate(const std::vector<std::uint8_t>& seed, std::mt19937_64& rng) {
  auto in = fz::decode_input(seed.data(), seed.size());
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % (n == 0 ? 1 : n)); };
  int rounds = 1 + static_cast<int>(rng() % 3);
  for (int r = 0; r < rounds; ++r) {
    auto& file = in.files[pick(4)];
    auto& f = file.bytes;
    switch (rng() % 9) {
      case 0:  // bit flip
        if (!f.empty()) f[pick(f.size())] ^= static_cast<std::byte>(1u << (rng() % 8));
        break;
      case 1:  // random byte
        if (!f.empty()) f[pick(f.size())] = static_cast<std::byte>(rng());
        break;
      case 2:  // truncate
        f.resize(pick(f.size() + 1));
        break;
      case 3:  // append garbage
        for (std::size_t i = 0, n = 1 + pick(200); i < n; ++i)
          f.push_back(static_cast<std::byte>(rng()));
        break;
      case 4:  // zero a range
        if (!f.empty()) {
          std::size_t a = pick(f.size()), n = 1 + pick(64);
          for (std::size_t i = a; i < std::min(f.size(), a + n); ++i) f[i] = std::byte{0};
        }
        break;
      case 5:  // damage then re-sign a batch, so only structural checks remain
        if (!f.empty()) {
          f[pick(f.size())] ^= static_cast<std::byte>(1u << (rng() % 8));
          reseal_batch(f, pick(8));
        }
        break;
      case 6:  // damage then re-sign an index
        if (f.size() > 8) {
          f[8 + pick(f.size() - 8)] ^= static_cast<std::byte>(1u << (rng() % 8));
          reseal_index(f);
        }
        break;
      case 7:  // drop a file
        file.present = rng() % 2 == 0;
        break;
      case 8:  // move the second segment's base / flip the policy
        in.second_base += static_cast<std::int64_t>(rng() % 5) - 2;
        in.truncate_policy = !in.truncate_policy;
        break;
    }
  }
  // Files are positional: keep earlier ones present if a later one is.
  for (int i = 2; i >= 0; --i)
    if (in.files[static_cast<std::size_t>(i) + 1].present)
      in.files[static_cast<std::size_t>(i)].present = true;
  return fz::encode_input(in);
}

std::vector<std::uint8_t> read_path(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
  ferry::log::set_level(std::getenv("FERRY_LOG_LEVEL") ? std::getenv("FERRY_LOG_LEVEL") : "off");
  long mutations = 2000;
  std::uint64_t seed = 1;
  std::vector<std::filesystem::path> paths;
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
      for (const auto& s : fz::seed_corpus()) {
        std::ofstream out(dir / ("seed-" + std::to_string(n++)), std::ios::binary);
        out.write(reinterpret_cast<const char*>(s.data()), static_cast<std::streamsize>(s.size()));
      }
      std::fprintf(stderr, "wrote %d seeds to %s\n", n, dir.c_str());
      return 0;
    } else {
      paths.emplace_back(a);
    }
  }
  if (!paths.empty()) {
    long n = 0;
    for (const auto& p : paths) {
      if (std::filesystem::is_directory(p)) {
        for (const auto& e : std::filesystem::directory_iterator(p)) {
          auto d = read_path(e.path());
          fz::run_one(d.data(), d.size());
          ++n;
        }
      } else {
        auto d = read_path(p);
        fz::run_one(d.data(), d.size());
        ++n;
      }
    }
    std::printf("replayed %ld inputs: no invariant violated\n", n);
    return 0;
  }
  auto seeds = fz::seed_corpus();
  for (const auto& s : seeds) fz::run_one(s.data(), s.size());
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::uint8_t>> pool = seeds;
  for (long i = 0; i < mutations; ++i) {
    auto m = mutate(pool[static_cast<std::size_t>(rng() % pool.size())], rng);
    fz::run_one(m.data(), m.size());
    if (i % 16 == 0 && pool.size() < 64) pool.push_back(m);  // stack mutations
  }
  std::printf("%zu seeds + %ld mutations (seed %llu): no invariant violated\n", seeds.size(),
              mutations, static_cast<unsigned long long>(seed));
  return 0;
}
