#include "ferry/core/errc.h"

#include <string>

namespace ferry {
namespace {

class core_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ferry.core"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok:
        return "ok";
      case errc::invalid_argument:
        return "invalid argument";
      case errc::config_invalid:
        return "invalid configuration";
      case errc::not_found:
        return "not found";
      case errc::already_exists:
        return "already exists";
      case errc::out_of_range:
        return "out of range";
      case errc::corrupt_data:
        return "corrupt data";
      case errc::timed_out:
        return "timed out";
      case errc::shutting_down:
        return "shutting down";
      case errc::not_supported:
        return "not supported";
    }
    return "unknown ferry.core error " + std::to_string(ev);
  }
};

}  // namespace

const std::error_category& core_category() noexcept {
  static const core_category_impl instance;
  return instance;
}

}  // namespace ferry
