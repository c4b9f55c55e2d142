#include "ferry/core/crash_point.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>

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

struct pause_config {
  std::map<std::string, long, std::less<>> ms;  // name -> milliseconds
  pause_config() {
    const char* env = std::getenv("FERRY_PAUSE_AT");  // NOLINT(concurrency-mt-unsafe): read once
    if (env == nullptr) return;
    std::string v = env;
    std::size_t at = 0;
    while (at < v.size()) {
      auto end = v.find(',', at);
      if (end == std::string::npos) end = v.size();
      const auto item = v.substr(at, end - at);
      if (auto colon = item.rfind(':'); colon != std::string::npos && colon > 0)
        ms[item.substr(0, colon)] = std::max(0L, std::atol(item.c_str() + colon + 1));
      at = end + 1;
    }
  }
};

const pause_config& pauses() {
  static const pause_config c;
  return c;
}

}  // namespace

bool pause_points_set() noexcept {
  return !pauses().ms.empty();
}

void pause_point_hit(const char* name) noexcept {
  auto it = pauses().ms.find(std::string_view(name));
  if (it != pauses().ms.end()) std::this_thread::sleep_for(std::chrono::milliseconds(it->second));
}

const char* crash_point_name() noexcept {
  return config().set ? config().name.c_str() : nullptr;
}

void crash_point_hit(const char* name) noexcept {
  if (std::strcmp(name, config().name.c_str()) != 0) return;
  if (hits.fetch_add(1) + 1 >= config().countdown) ::_exit(kCrashExitCode);
}

}  // namespace ferry::detail
