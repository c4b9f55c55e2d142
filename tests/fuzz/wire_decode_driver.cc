// Standalone driver for wire_decode_fuzz.cc: builds valid envelopes of every
// request and response type, then feeds them and mutations of them (bit
// flips, truncation, splices, random bytes) to the decoder.
//
//   wire_decode_fuzz_replay [--mutations N] [--seed S] [--write-corpus DIR] [FILE ...]
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "ferry/protocol/codec.h"

bool ferry_fuzz_wire_one(const std::uint8_t* data, std::size_t size);

namespace {

using namespace ferry::wire;

std::vector<std::uint8_t> with_prefix(std::uint8_t prefix, const std::vector<std::byte>& env) {
  std::vector<std::uint8_t> out{prefix};
  for (auto b : env) out.push_back(static_cast<std::uint8_t>(b));
  return out;
}

std::vector<std::vector<std::uint8_t>> seeds() {
  std::vector<std::vector<std::uint8_t>> s;
  auto add = [&](std::uint8_t prefix, auto build) {
    flatbuffers::FlatBufferBuilder fbb;
    auto [type, body] = build(fbb);
    s.push_back(with_prefix(prefix, ferry::protocol::finish_envelope(fbb, 99, type, body)));
  };
  add(2, [](auto& fbb) {
    std::vector<flatbuffers::Offset<ProduceEntry>> v{
        CreateProduceEntry(fbb, fbb.CreateString("orders"), 0, 1),
        CreateProduceEntry(fbb, fbb.CreateString("orders"), 1, 2)};
    return std::pair{Body::ProduceRequest, CreateProduceRequest(fbb, fbb.CreateVector(v)).Union()};
  });
  add(0, [](auto& fbb) {
    std::vector<flatbuffers::Offset<FetchEntry>> v{
        CreateFetchEntry(fbb, fbb.CreateString("orders"), 0, 5)};
    return std::pair{Body::FetchRequest, CreateFetchRequest(fbb, fbb.CreateVector(v)).Union()};
  });
  add(0, [](auto& fbb) {
    auto c = CreateTopicConfig(fbb, 3);
    return std::pair{Body::CreateTopicRequest,
                     CreateCreateTopicRequest(fbb, fbb.CreateString("t"), c).Union()};
  });
  add(0, [](auto& fbb) {
    std::vector<flatbuffers::Offset<ListOffsetsEntry>> v{
        CreateListOffsetsEntry(fbb, fbb.CreateString("t"), 0, OffsetSpec::Timestamp, 5)};
    return std::pair{Body::ListOffsetsRequest,
                     CreateListOffsetsRequest(fbb, fbb.CreateVector(v)).Union()};
  });
  add(9, [](auto& fbb) {
    std::vector<flatbuffers::Offset<FetchResult>> v{
        CreateFetchResult(fbb, fbb.CreateString("t"), 0, ErrorCode::None, 10, 0, 1)};
    return std::pair{Body::FetchResponse, CreateFetchResponse(fbb, fbb.CreateVector(v)).Union()};
  });
  add(8, [](auto& fbb) {
    std::vector<flatbuffers::Offset<PartitionInfo>> p{CreatePartitionInfo(fbb, 0, 0, 5, 5, 100, 1)};
    return std::pair{Body::DescribeTopicResponse,
                     CreateDescribeTopicResponse(fbb, ErrorCode::None, 0, fbb.CreateString("t"), 0,
                                                 fbb.CreateVector(p))
                         .Union()};
  });
  add(8, [](auto& fbb) {
    return std::pair{
        Body::ErrorResponse,
        CreateErrorResponse(fbb, ErrorCode::InvalidRequest, fbb.CreateString("x")).Union()};
  });
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  long mutations = 20000;
  std::uint64_t seed = 1;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--mutations" && i + 1 < argc)
      mutations = std::atol(argv[++i]);
    else if (a == "--seed" && i + 1 < argc)
      seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--write-corpus" && i + 1 < argc) {
      std::filesystem::path dir = argv[++i];
      std::filesystem::create_directories(dir);
      int n = 0;
      for (auto& s : seeds()) {
        std::ofstream out(dir / ("seed-" + std::to_string(n++)), std::ios::binary);
        out.write(reinterpret_cast<const char*>(s.data()), static_cast<std::streamsize>(s.size()));
      }
      return 0;
    } else
      files.push_back(a);
  }
  if (!files.empty()) {
    for (auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::vector<std::uint8_t> d{std::istreambuf_iterator<char>(in),
                                  std::istreambuf_iterator<char>()};
      ferry_fuzz_wire_one(d.data(), d.size());
    }
    std::printf("replayed %zu inputs: no invariant violated\n", files.size());
    return 0;
  }
  auto pool = seeds();
  for (auto& s : pool) {
    if (!ferry_fuzz_wire_one(s.data(), s.size())) {
      std::fprintf(stderr, "a valid seed was rejected: the decoder is broken\n");
      return 1;
    }
  }
  long accepted = 0;
  std::mt19937_64 rng(seed);
  for (long i = 0; i < mutations; ++i) {
    auto m = pool[rng() % pool.size()];
    int rounds = 1 + static_cast<int>(rng() % 4);
    for (int r = 0; r < rounds && !m.empty(); ++r) {
      switch (rng() % 5) {
        case 0:
          m[rng() % m.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          m[rng() % m.size()] = static_cast<std::uint8_t>(rng());
          break;
        case 2:
          m.resize(rng() % (m.size() + 1));
          break;
        case 3:
          m.push_back(static_cast<std::uint8_t>(rng()));
          break;
        case 4: {  // overwrite a 4-byte word (offsets, lengths) with a nearby value
          if (m.size() > 5) {
            auto at = 1 + rng() % (m.size() - 4);
            std::uint32_t v;
            std::memcpy(&v, &m[at], 4);
            v += static_cast<std::uint32_t>(rng() % 64) - 32;
            std::memcpy(&m[at], &v, 4);
          }
          break;
        }
      }
    }
    accepted += ferry_fuzz_wire_one(m.data(), m.size()) ? 1 : 0;
  }
  std::printf("%zu seeds + %ld mutations (seed %llu, %ld accepted): no invariant violated\n",
              pool.size(), mutations, static_cast<unsigned long long>(seed), accepted);
  return 0;
}
