// Partition log benchmarks on the real file system (posix_env).
//
// Data goes to $FERRY_BENCH_DIR (default /var/tmp/ferry-bench), which must
// be on the disk you want to measure. Results and the machine they came from
// are recorded in docs/benchmarks.md.
//
//   BM_AppendDurable/R/G : batches of R records of 256-byte values, G batches
//       appended per fdatasync (group commit); every record counted was
//       synced. items/s = durable records per second.
//   BM_SequentialRead    : reads a prepared log front to back in 1 MiB
//       fetches, CRC-checking every batch (what a consumer fetch costs).
//   BM_SequentialReadDecode : the same plus decoding every record.
//   BM_BuildBatch        : producer-side cost of building a batch.
//   BM_Crc32c            : checksum throughput.
//   BM_Recovery          : open() of a log with many sealed segments.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "ferry/core/clock.h"
#include "ferry/core/crc32c.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "ferry/storage/log.h"

namespace st = ferry::storage;
namespace fs = std::filesystem;

namespace {

fs::path bench_root() {
  const char* d = std::getenv("FERRY_BENCH_DIR");  // NOLINT(concurrency-mt-unsafe)
  return d ? fs::path(d) : fs::path("/var/tmp/ferry-bench");
}

fs::path fresh_dir(const std::string& name) {
  auto p = bench_root() / name;
  fs::remove_all(p);
  fs::create_directories(p.parent_path());
  return p;
}

std::vector<std::byte> make_batch(int records, std::size_t value_size, int first = 0) {
  ferry::format::batch_builder b;
  std::string value(value_size, 'x');
  auto now = ferry::system_clock::instance().wall_now();
  for (int i = 0; i < records; ++i) b.add(now, "order-" + std::to_string(first + i), value);
  return b.finish();
}

st::log_config bench_config() {
  st::log_config c;
  c.name = "bench-0";
  c.segment_bytes = 256ull << 20;
  c.max_batch_bytes = 16u << 20;
  c.retention_time = std::chrono::milliseconds(-1);
  return c;
}

void BM_AppendDurable(benchmark::State& state) {
  const int records = static_cast<int>(state.range(0));
  const int group = static_cast<int>(state.range(1));
  auto dir = fresh_dir("append");
  auto log =
      st::partition_log::open(st::posix_env(), dir, bench_config(), ferry::system_clock::instance())
          .value();
  std::vector<std::vector<std::byte>> batches;
  for (int g = 0; g < group; ++g) batches.push_back(make_batch(records, 256, g * records));
  std::int64_t bytes = 0;
  for (auto _ : state) {
    for (auto& b : batches) {
      if (!log->append(b)) state.SkipWithError("append failed");
      bytes += static_cast<std::int64_t>(b.size());
    }
    if (!log->sync()) state.SkipWithError("sync failed");
  }
  state.SetItemsProcessed(state.iterations() * records * group);
  state.SetBytesProcessed(bytes);
  state.counters["batch_KiB"] = static_cast<double>(batches[0].size()) / 1024.0;
  state.counters["syncs"] = static_cast<double>(log->stats().syncs);
  log.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_AppendDurable)
    ->ArgNames({"records", "group"})
    ->Args({1, 1})
    ->Args({64, 1})
    ->Args({1024, 1})
    ->Args({4096, 1})
    ->Args({256, 16})
    ->Args({1024, 4})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

struct read_fixture {
  fs::path dir;
  std::int64_t records = 0;
  read_fixture() {
    dir = fresh_dir("read");
    auto log = st::partition_log::open(st::posix_env(), dir, bench_config(),
                                       ferry::system_clock::instance())
                   .value();
    auto b = make_batch(1024, 256);
    for (int i = 0; i < 2000; ++i) {  // 2,048,000 records, ~560 MB
      (void)log->append(b);
      if (i % 16 == 15) (void)log->sync();
    }
    records = log->sync().value().value();
  }
  ~read_fixture() { fs::remove_all(dir); }
};

read_fixture& reads() {
  static read_fixture f;
  return f;
}

template <bool Decode>
void sequential_read(benchmark::State& state) {
  auto& f = reads();
  auto log = st::partition_log::open(st::posix_env(), f.dir, bench_config(),
                                     ferry::system_clock::instance())
                 .value();
  std::int64_t n = 0, bytes = 0;
  for (auto _ : state) {
    ferry::offset at(0);
    while (at < log->high_watermark()) {
      auto r = log->read(at, 1 << 20);
      if (!r) {
        state.SkipWithError("read failed");
        break;
      }
      bytes += static_cast<std::int64_t>(r.value().data.size());
      if constexpr (Decode) {
        std::span<const std::byte> d(r.value().data);
        while (!d.empty()) {
          auto h = ferry::format::batch_header::decode(d.data());
          std::size_t sum = 0;
          ferry::format::for_each_record(
              d.first(static_cast<std::size_t>(h.size())),
              [&](const ferry::format::record_view& rv) { sum += rv.value->size(); });
          benchmark::DoNotOptimize(sum);
          d = d.subspan(static_cast<std::size_t>(h.size()));
        }
      }
      at = r.value().next_offset;
    }
    n += at.value();
  }
  state.SetItemsProcessed(n);
  state.SetBytesProcessed(bytes);
}

void BM_SequentialRead(benchmark::State& state) {
  sequential_read<false>(state);
}
void BM_SequentialReadDecode(benchmark::State& state) {
  sequential_read<true>(state);
}
BENCHMARK(BM_SequentialRead)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SequentialReadDecode)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_BuildBatch(benchmark::State& state) {
  const int records = static_cast<int>(state.range(0));
  std::string value(256, 'x');
  auto now = ferry::system_clock::instance().wall_now();
  ferry::format::batch_builder b;
  for (auto _ : state) {
    for (int i = 0; i < records; ++i) b.add(now, "order-12345", value);
    auto bytes = b.finish();
    benchmark::DoNotOptimize(bytes.data());
  }
  state.SetItemsProcessed(state.iterations() * records);
}
BENCHMARK(BM_BuildBatch)->Arg(1024);

void BM_Crc32c(benchmark::State& state) {
  std::vector<std::byte> buf(static_cast<std::size_t>(state.range(0)), std::byte{7});
  for (auto _ : state) benchmark::DoNotOptimize(ferry::crc32c::value(buf));
  state.SetBytesProcessed(state.iterations() * state.range(0));
  state.SetLabel(ferry::crc32c::hardware_accelerated() ? "sse4.2" : "portable");
}
BENCHMARK(BM_Crc32c)->Arg(4096)->Arg(1 << 20);

void BM_Recovery(benchmark::State& state) {
  auto dir = fresh_dir("recovery");
  auto cfg = bench_config();
  cfg.segment_bytes = 1 << 20;
  {
    auto log =
        st::partition_log::open(st::posix_env(), dir, cfg, ferry::system_clock::instance()).value();
    auto b = make_batch(256, 256);  // ~70 KiB
    for (int i = 0; i < static_cast<int>(state.range(0)) * 15; ++i) (void)log->append(b);
    (void)log->sync();
  }
  std::size_t segments = 0;
  for (auto _ : state) {
    auto log =
        st::partition_log::open(st::posix_env(), dir, cfg, ferry::system_clock::instance()).value();
    segments = log->stats().segments;
    benchmark::DoNotOptimize(log.get());
  }
  state.counters["segments"] = static_cast<double>(segments);
  fs::remove_all(dir);
}
BENCHMARK(BM_Recovery)->Arg(10)->Arg(200)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  ferry::log::set_level("warn");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
