// Fuzz target: partition_log recovery fed arbitrary segment and index bytes.
//
// Input layout (see encode_input): a flags byte, the base offset of an
// optional second segment, then up to four length-prefixed files:
//   00000000000000000000.log / .index / .timeindex, and <base>.log.
// With a second segment present the first one is sealed, so the fuzzer
// reaches both the sealed path (index headers trusted, lazily checked) and
// the active path (scanned, torn tail cut, corruption refused).
//
// Invariants checked on every input (abort on violation):
//  - open() either fails with an error code or yields a log whose offsets
//    satisfy log_start <= high_watermark == log_end;
//  - every batch read() serves passes header+CRC validation and offsets
//    continue without gaps or overlaps;
//  - the opened log accepts, syncs and serves a new batch at log_end;
//  - reopening gives the same log_end (recovery is idempotent).
// No crash, no hang, no sanitizer report.
#include "log_recovery_fuzz.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ferry/core/clock.h"
#include "ferry/core/endian.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "ferry/storage/log.h"
#include "ferry/storage/mem_env.h"
#include "fuzz_check.h"

namespace ferry::storage::fuzz {

using format::as_bytes;
using format::batch_builder;
using format::batch_header;
using format::for_each_record;
using format::kBatchHeaderSize;
using format::record_view;
using format::validate_batch;
using format::validation;
namespace layout = format::layout;

namespace {

const fs::path kDir = "/fz/p-0";

log_config fuzz_config(bool truncate) {
  log_config c;
  c.name = "fuzz";
  c.segment_bytes = 8192;
  c.index_interval_bytes = 128;
  c.retention_time = std::chrono::milliseconds(-1);
  c.recovery = truncate ? recovery_policy::truncate : recovery_policy::fail;
  return c;
}

}  // namespace

fuzz_input decode_input(const std::uint8_t* data, std::size_t size) {
  fuzz_input in;
  if (size < 9) return in;
  in.truncate_policy = (data[0] & 1) != 0;
  in.second_base = le::load<std::int64_t>(reinterpret_cast<const std::byte*>(data + 1));
  std::size_t pos = 9;
  for (auto& f : in.files) {
    if (pos + 4 > size) break;
    std::uint32_t len = le::load<std::uint32_t>(reinterpret_cast<const std::byte*>(data + pos));
    pos += 4;
    len = static_cast<std::uint32_t>(std::min<std::size_t>(len, size - pos));
    f.present = true;
    f.bytes.assign(reinterpret_cast<const std::byte*>(data + pos),
                   reinterpret_cast<const std::byte*>(data + pos + len));
    pos += len;
  }
  return in;
}

std::vector<std::uint8_t> encode_input(const fuzz_input& in) {
  std::vector<std::uint8_t> out(9);
  out[0] = in.truncate_policy ? 1 : 0;
  le::store<std::int64_t>(reinterpret_cast<std::byte*>(out.data() + 1), in.second_base);
  for (const auto& f : in.files) {
    if (!f.present) break;
    std::uint8_t len[4];
    le::store<std::uint32_t>(reinterpret_cast<std::byte*>(len),
                             static_cast<std::uint32_t>(f.bytes.size()));
    out.insert(out.end(), len, len + 4);
    const auto* b = reinterpret_cast<const std::uint8_t*>(f.bytes.data());
    out.insert(out.end(), b, b + f.bytes.size());
  }
  return out;
}

void run_one(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = [] {
    log::set_level(std::getenv("FERRY_LOG_LEVEL") ? std::getenv("FERRY_LOG_LEVEL") : "off");
    return true;
  }();
  (void)quiet;
  auto in = decode_input(data, size);
  mem_env env;
  (void)env.create_dirs(kDir);
  const std::string names[4] = {
      segment_file_name(offset(0), ".log"), segment_file_name(offset(0), ".index"),
      segment_file_name(offset(0), ".timeindex"),
      segment_file_name(offset(in.second_base < 0 ? 0 : in.second_base), ".log")};
  for (int i = 0; i < 4; ++i) {
    const auto& f = in.files[static_cast<std::size_t>(i)];
    if (!f.present) continue;
    if (i == 3 && in.second_base <= 0) continue;
    auto file = env.open(kDir / names[i], open_mode::create);
    if (!file) continue;
    (void)file.value()->append(f.bytes);
    (void)file.value()->sync();
  }
  (void)env.sync_dir(kDir);

  manual_clock clk;
  auto cfg = fuzz_config(in.truncate_policy);
  auto opened = partition_log::open(env, kDir, cfg, clk);
  if (!opened) return;  // refusing is a valid outcome
  auto log = std::move(opened).value();
  FERRY_FUZZ_CHECK(log->log_start_offset() <= log->high_watermark());
  FERRY_FUZZ_CHECK(log->high_watermark() == log->log_end_offset());

  // Read everything that is served; every batch must be intact and in order.
  offset at = log->log_start_offset();
  int guard = 0;
  while (at < log->high_watermark() && guard++ < 10000) {
    auto r = log->read(at, 1024);
    if (!r) break;  // corruption reported: never served
    FERRY_FUZZ_CHECK(r.value().batches > 0);
    std::span<const std::byte> d(r.value().data);
    offset expect = offset::min();
    while (!d.empty()) {
      FERRY_FUZZ_CHECK(d.size() >= kBatchHeaderSize);
      auto h = batch_header::decode(d.data());
      FERRY_FUZZ_CHECK(static_cast<std::size_t>(h.size()) <= d.size());
      auto one = d.first(static_cast<std::size_t>(h.size()));
      FERRY_FUZZ_CHECK(validate_batch(one, validation::header_and_crc));
      if (expect != offset::min()) FERRY_FUZZ_CHECK(h.base_offset == expect);
      FERRY_FUZZ_CHECK(h.base_offset <= at || expect != offset::min());
      expect = h.next_offset();
      if (validate_batch(one, validation::full)) {
        for_each_record(one, [](const record_view& rv) { (void)rv.headers(); });
      }
      d = d.subspan(static_cast<std::size_t>(h.size()));
    }
    FERRY_FUZZ_CHECK(r.value().next_offset > at);
    at = r.value().next_offset;
  }
  (void)log->offset_for_timestamp(timestamp_ms(0));
  (void)log->offset_for_timestamp(timestamp_ms(1'700'000'000'000));

  // The log must still work: append, sync, read back.
  const offset end = log->log_end_offset();
  batch_builder b;
  b.add(clk.wall_now(), "fuzz-key", "fuzz-value");
  auto batch = b.finish();
  auto ar = log->append(batch);
  if (ar) {
    FERRY_FUZZ_CHECK(ar.value().base_offset == end);
    auto s = log->sync();
    FERRY_FUZZ_CHECK(s && s.value() == end + 1);
    auto r = log->read(end, 1 << 16);
    FERRY_FUZZ_CHECK(r && r.value().batches == 1);
  }
  const offset final_end = log->log_end_offset();
  log.reset();
  auto again = partition_log::open(env, kDir, cfg, clk);
  FERRY_FUZZ_CHECK(again);
  FERRY_FUZZ_CHECK(again.value()->log_end_offset() == final_end);
}

std::vector<std::vector<std::uint8_t>> seed_corpus() {
  std::vector<std::vector<std::uint8_t>> seeds;
  for (int variant = 0; variant < 4; ++variant) {
    mem_env env;
    (void)env.create_dirs(kDir);
    manual_clock clk;
    auto cfg = fuzz_config(false);
    {
      auto log = partition_log::open(env, kDir, cfg, clk).value();
      int batches = variant == 0 ? 3 : 40;
      for (int i = 0; i < batches; ++i) {
        batch_builder b;
        for (int r = 0; r <= i % 4; ++r) {
          batch_builder::header_input h[] = {{"h", as_bytes("x")}};
          b.add(clk.wall_now() + r, "key-" + std::to_string(i),
                std::string(static_cast<std::size_t>(10 + 7 * i), 'v'),
                variant == 2 ? std::span<const batch_builder::header_input>(h)
                             : std::span<const batch_builder::header_input>());
        }
        auto bytes = b.finish();
        (void)log->append(bytes);
        if (i % 3 == 0) (void)log->sync();
        clk.advance(std::chrono::milliseconds(5));
      }
      (void)log->sync();
    }
    fuzz_input in;
    in.truncate_policy = variant == 3;
    auto names = env.list_dir(kDir).value();
    std::sort(names.begin(), names.end());
    std::vector<std::string> logs;
    for (auto& n : names)
      if (n.ends_with(".log")) logs.push_back(n);
    auto get = [&](const std::string& n) {
      fuzz_file f;
      auto c = env.contents(kDir / n);
      if (c) {
        f.present = true;
        f.bytes = *c;
      }
      return f;
    };
    in.files[0] = get(logs[0]);
    std::string stem = logs[0].substr(0, 20);
    in.files[1] = get(stem + ".index");
    in.files[2] = get(stem + ".timeindex");
    if (logs.size() > 1) {
      in.second_base = std::stoll(logs[1].substr(0, 20));
      in.files[3] = get(logs[1]);
    }
    if (!in.files[1].present) in.files[1].present = true;  // keep the layout positional
    if (!in.files[2].present) in.files[2].present = true;
    seeds.push_back(encode_input(in));
  }
  return seeds;
}

}  // namespace ferry::storage::fuzz

#ifdef FERRY_LIBFUZZER
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("FERRY_FUZZ_WRITE_CORPUS")) {
    int i = 0;
    for (const auto& s : ferry::storage::fuzz::seed_corpus()) {
      std::string path = std::string(dir) + "/seed-" + std::to_string(i++);
      if (FILE* f = std::fopen(path.c_str(), "wb")) {
        std::fwrite(s.data(), 1, s.size(), f);
        std::fclose(f);
      }
    }
  }
  return 0;
}
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ferry::storage::fuzz::run_one(data, size);
  return 0;
}
#endif
