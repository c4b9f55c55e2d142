#include "ferry/core/crash_point.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace ferry::detail {
namespace {

struct crash_config {
  std::string name;
  long countdown = 1;
  bool set = false;
  crash_config() {
    const char* env = std::getenv("FERRY_CRASH_AT");  // NOLINT(concurrency-mt-unsafe): read once
    if (env == nullptr || *env == '\0') return;
    std::string v = env;
    if (auto colon = v.rfind(':'); colon != std::string::npos) {
      countdown = std::max(1L, std::atol(v.c_str() + colon + 1));
      v.resize(colon);
    }
    name = v;
    set = true;
  }
};

const crash_config& config() {
  static const crash_config c;
  return c;
}

std::atomic<long> hits{0};

}  // namespace

const char* crash_point_name() noexcept {
  return config().set ? config().name.c_str() : nullptr;
}

void crash_point_hit(const char* name) noexcept {
  if (std::strcmp(name, config().name.c_str()) != 0) return;
  if (hits.fetch_add(1) + 1 >= config().countdown) ::_exit(kCrashExitCode);
}

}  // namespace ferry::detail
