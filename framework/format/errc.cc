#include "ferry/format/errc.h"

#include <string>

namespace ferry::format {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ferry.format"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok:
        return "ok";
      case errc::invalid_batch:
        return "invalid record batch";
    }
    return "unknown ferry.format error " + std::to_string(ev);
  }
};

}  // namespace

const std::error_category& format_category() noexcept {
  static const category c;
  return c;
}

}  // namespace ferry::format
