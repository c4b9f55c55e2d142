#include "ferry/core/clock.h"

namespace ferry {

timestamp_ms system_clock::wall_now() const noexcept {
  using namespace std::chrono;
  return timestamp_ms(
      duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

std::chrono::steady_clock::time_point system_clock::steady_now() const noexcept {
  return std::chrono::steady_clock::now();
}

system_clock& system_clock::instance() noexcept {
  static system_clock c;
  return c;
}

}  // namespace ferry
