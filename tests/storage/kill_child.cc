// Child process for kill_test.cc: appends to a real partition log and
// reports every acknowledged high watermark on stdout ("acked N"), one line
// per sync, written with write(2) so nothing is buffered when it dies.
//
//   storage_kill_child DIR BATCHES [RETENTION_BYTES]
// Values are "v<offset>" padded to 100 bytes, so the parent can check them.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "ferry/core/clock.h"
#include "ferry/core/logging.h"
#include "ferry/format/batch.h"
#include "ferry/storage/log.h"

namespace st = ferry::storage;

static void say(const std::string& s) {
  std::string line = s + "\n";
  (void)!::write(1, line.data(), line.size());
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: storage_kill_child DIR BATCHES [RETENTION_BYTES]\n");
    return 2;
  }
  ferry::log::set_level("off");
  st::log_config cfg;
  cfg.name = "kill-0";
  cfg.segment_bytes = 8192;
  cfg.index_interval_bytes = 512;
  cfg.retention_time = std::chrono::milliseconds(-1);
  cfg.retention_bytes = argc > 3 ? std::atoll(argv[3]) : -1;
  const long batches = std::atol(argv[2]);
  auto opened =
      st::partition_log::open(st::posix_env(), argv[1], cfg, ferry::system_clock::instance());
  if (!opened) {
    say("open-failed " + opened.error().message());
    return 3;
  }
  auto log = std::move(opened).value();
  say("start " + std::to_string(log->log_end_offset().value()));
  ferry::format::batch_builder b;
  for (long i = 0; i < batches; ++i) {
    const auto first = log->log_end_offset().value();
    const int n = 1 + static_cast<int>(i % 4);
    for (int r = 0; r < n; ++r) {
      std::string v = "v" + std::to_string(first + r);
      v.resize(100, '.');
      b.add(ferry::system_clock::instance().wall_now(), "k", v);
    }
    auto batch = b.finish();
    if (auto r = log->append(batch); !r) {
      say("append-failed " + r.error().message());
      return 4;
    }
    if (i % 2 == 1) {
      auto hw = log->sync();
      if (!hw) {
        say("sync-failed " + hw.error().message());
        return 5;
      }
      say("acked " + std::to_string(hw.value().value()));
    }
    if (cfg.retention_bytes >= 0 && i % 10 == 9) {
      if (!log->apply_retention() || !log->remove_deleted()) return 6;
    }
    if (i % 25 == 24) {
      if (!log->roll()) return 7;
    }
  }
  say("done");
  return 0;
}
