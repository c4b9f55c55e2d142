// Storage demo: the main job until the broker exists.
//
// Writes order events (FlatBuffers OrderPlaced payloads keyed by order id)
// into one partition log with group commit, closes it, reopens it (running
// recovery), reads every record back, verifies each payload with the
// FlatBuffers Verifier, checks offsets are dense and every order is present
// exactly once, looks an offset up by timestamp, and prints a short report.
// Exits non-zero if any check fails.
//
//   ferry_storage_demo [--orders N] [--batch N] [--group N] [--data-dir DIR] [--keep]
#include <flatbuffers/flatbuffers.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ferry/core/clock.h"
#include "ferry/core/crc32c.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "ferry/storage/env.h"
#include "ferry/storage/log.h"
#include "orders/v1/order_placed_generated.h"

namespace fs = std::filesystem;
namespace st = ferry::storage;
namespace fmtb = ferry::format;
namespace orders = ferry::samples::orders;

namespace {

struct options {
  long orders = 200'000;
  int batch = 500;  // records per batch
  int group = 8;    // batches per fdatasync (group commit)
  std::string dir;
  bool keep = false;
};

int usage(const char* msg) {
  std::fprintf(stderr,
               "error: %s\nusage: ferry_storage_demo [--orders N] [--batch N] [--group N] "
               "[--data-dir DIR] [--keep]\n",
               msg);
  return 2;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string order_id(long i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ord-%08ld", i);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  if (!std::getenv("FERRY_LOG_LEVEL"))
    ferry::log::set_level("warn");  // NOLINT(concurrency-mt-unsafe)
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--orders") {
      auto v = next();
      if (!v) return usage("--orders needs a number");
      o.orders = std::atol(v);
    } else if (a == "--batch") {
      auto v = next();
      if (!v) return usage("--batch needs a number");
      o.batch = std::atoi(v);
    } else if (a == "--group") {
      auto v = next();
      if (!v) return usage("--group needs a number");
      o.group = std::atoi(v);
    } else if (a == "--data-dir") {
      auto v = next();
      if (!v) return usage("--data-dir needs a path");
      o.dir = v;
    } else if (a == "--keep")
      o.keep = true;
    else if (a == "-h" || a == "--help")
      return usage("help requested"), 0;
    else
      return usage(("unknown argument " + a).c_str());
  }
  if (o.orders < 1 || o.batch < 1 || o.group < 1)
    return usage("--orders, --batch and --group must be positive");
  bool made_dir = false;
  if (o.dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "ferry-demo-XXXXXX").string();
    if (!::mkdtemp(tmpl.data()))
      return usage("cannot create a temporary directory; pass --data-dir");
    o.dir = tmpl;
    made_dir = true;
  }
  const fs::path part_dir = fs::path(o.dir) / "orders-0";
  auto& env = st::posix_env();
  auto& clk = ferry::system_clock::instance();
  st::log_config cfg;
  cfg.name = "orders-0";
  cfg.segment_bytes = 16u << 20;

  std::fprintf(stderr, "storage demo: %ld orders, %d per batch, %d batches per fdatasync, in %s\n",
               o.orders, o.batch, o.group, part_dir.c_str());

  // --- write -------------------------------------------------------------
  auto opened = st::partition_log::open(env, part_dir, cfg, clk);
  if (!opened) {
    std::fprintf(stderr, "error: cannot open log in %s: %s\n", part_dir.c_str(),
                 opened.error().message().c_str());
    return 1;
  }
  auto log = std::move(opened).value();
  const ferry::offset start = log->log_end_offset();
  const auto first_ts = clk.wall_now();
  flatbuffers::FlatBufferBuilder fbb(256);
  fmtb::batch_builder bb;
  const std::string schema_header = "orders.OrderPlaced/v1";
  fmtb::batch_builder::header_input headers[] = {{"ferry.schema", fmtb::as_bytes(schema_header)}};
  long written = 0, batches = 0;
  std::uint64_t bytes = 0;
  auto t0 = std::chrono::steady_clock::now();
  auto last_progress = t0;
  while (written < o.orders) {
    for (int r = 0; r < o.batch && written < o.orders; ++r, ++written) {
      fbb.Clear();
      auto id = order_id(written);
      auto sku = fbb.CreateString("sku-" + std::to_string(written % 97));
      auto item =
          orders::CreateLineItem(fbb, sku, 1 + static_cast<std::uint32_t>(written % 5), 1999);
      auto items = fbb.CreateVector(&item, 1);
      auto placed = orders::CreateOrderPlaced(
          fbb, fbb.CreateString(id), fbb.CreateString("cust-" + std::to_string(written % 1000)),
          orders::Currency::EUR, 1999 * (1 + written % 5), items, clk.wall_now().value());
      orders::FinishOrderPlacedBuffer(fbb, placed);
      bb.add(clk.wall_now(), fmtb::as_bytes(id),
             std::span<const std::byte>(reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()),
                                        fbb.GetSize()),
             headers);
    }
    auto batch = bb.finish();
    bytes += batch.size();
    if (auto r = log->append(batch); !r) {
      std::fprintf(stderr, "error: append failed: %s %s\n", r.error().message().c_str(),
                   log->failure_reason().c_str());
      return 1;
    }
    if (++batches % o.group == 0 || written == o.orders) {
      if (auto r = log->sync(); !r) {
        std::fprintf(stderr, "error: sync failed: %s\n", log->failure_reason().c_str());
        return 1;
      }
    }
    if (seconds_since(last_progress) > 1.0) {
      last_progress = std::chrono::steady_clock::now();
      std::fprintf(stderr, "  appended %ld/%ld records\n", written, o.orders);
    }
  }
  const double write_s = seconds_since(t0);
  const auto stats = log->stats();
  log.reset();  // close

  // --- reopen (recovery) and read back -------------------------------------
  auto reopened = st::partition_log::open(env, part_dir, cfg, clk);
  if (!reopened) {
    std::fprintf(stderr, "error: reopen failed: %s\n", reopened.error().message().c_str());
    return 1;
  }
  log = std::move(reopened).value();
  const auto rec = log->recovery();
  int failures = 0;
  auto check = [&](bool ok, const std::string& what) {
    if (!ok) {
      ++failures;
      if (failures <= 10) std::fprintf(stderr, "CHECK FAILED: %s\n", what.c_str());
    }
  };
  check(log->high_watermark() == start + o.orders,
        "high watermark after reopen equals records written");

  t0 = std::chrono::steady_clock::now();
  ferry::offset at = start;
  long read = 0, verified = 0;
  std::vector<bool> seen(static_cast<std::size_t>(o.orders));
  while (at < log->high_watermark()) {
    auto r = log->read(at, 1 << 20);
    if (!r) {
      check(false, "read at " + std::to_string(at.value()) + ": " + r.error().message());
      break;
    }
    std::span<const std::byte> data(r.value().data);
    while (!data.empty()) {
      auto h = fmtb::batch_header::decode(data.data());
      auto one = data.first(static_cast<std::size_t>(h.size()));
      check(static_cast<bool>(fmtb::validate_batch(one, fmtb::validation::full)),
            "batch validates");
      fmtb::for_each_record(one, [&](const fmtb::record_view& rv) {
        if (rv.off < at) return;
        check(rv.off == start + read, "offsets are dense");
        ++read;
        if (!rv.value) return check(false, "value present");
        flatbuffers::Verifier v(reinterpret_cast<const std::uint8_t*>(rv.value->data()),
                                rv.value->size(),
                                /*max_depth=*/16, /*max_tables=*/64);
        if (!orders::VerifyOrderPlacedBuffer(v)) return check(false, "payload verifies");
        auto* op = orders::GetOrderPlaced(rv.value->data());
        std::string id = op->order_id() ? op->order_id()->str() : "";
        check(id == rv.key_str(), "key equals order id");
        long n = std::atol(id.c_str() + 4);
        if (n < 0 || n >= o.orders || seen[static_cast<std::size_t>(n)])
          return check(false, "order seen once: " + id);
        seen[static_cast<std::size_t>(n)] = true;
        ++verified;
      });
      data = data.subspan(static_cast<std::size_t>(h.size()));
    }
    at = r.value().next_offset;
  }
  const double read_s = seconds_since(t0);
  check(read == o.orders, "every record read back");
  check(verified == o.orders, "every payload verified and every order present once");
  auto by_time = log->offset_for_timestamp(first_ts);
  check(by_time && by_time.value() && *by_time.value() == start,
        "timestamp lookup finds the first order");

  // --- report --------------------------------------------------------------
  std::printf("Ferry storage demo (partition log, durable group commit)\n");
  std::printf("  %-28s %ld\n", "orders written", written);
  std::printf("  %-28s %ld (%d records each)\n", "batches", batches, o.batch);
  std::printf("  %-28s %llu\n", "fdatasync calls", static_cast<unsigned long long>(stats.syncs));
  std::printf("  %-28s %.1f MiB in %zu segment(s)\n", "bytes on disk",
              static_cast<double>(bytes) / (1 << 20), stats.segments);
  std::printf("  %-28s %.0f records/s (%.0f MiB/s)\n", "durable append rate",
              static_cast<double>(written) / write_s,
              static_cast<double>(bytes) / (1 << 20) / write_s);
  std::printf("  %-28s %lld us, %llu bytes scanned\n", "recovery on reopen",
              static_cast<long long>(rec.duration.count()),
              static_cast<unsigned long long>(rec.bytes_scanned));
  std::printf("  %-28s %.0f records/s\n", "read + verify rate", static_cast<double>(read) / read_s);
  std::printf("  %-28s %ld/%ld\n", "payloads verified", verified, o.orders);
  std::printf("  %-28s %s\n", "CRC32C",
              ferry::crc32c::hardware_accelerated() ? "SSE4.2" : "portable");
  std::printf("  %-28s %s\n", "result", failures == 0 ? "OK" : "FAILED");

  log.reset();
  if (made_dir && !o.keep) {
    std::error_code ec;
    fs::remove_all(o.dir, ec);
  }
  return failures == 0 ? 0 : 1;
}
