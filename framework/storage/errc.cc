#include "ferry/storage/errc.h"

#include <string>

namespace ferry::storage {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ferry.storage"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok:
        return "ok";
      case errc::invalid_batch:
        return "invalid record batch";
      case errc::batch_too_large:
        return "record batch too large";
      case errc::corrupt_log:
        return "corrupt log data (checksum or structure mismatch)";
      case errc::offset_out_of_range:
        return "offset out of range";
      case errc::partition_failed:
        return "partition failed stop after a write or sync error";
      case errc::no_space:
        return "no space left on device";
      case errc::corrupt_index:
        return "corrupt index file";
      case errc::io_error:
        return "I/O error";
      case errc::log_closed:
        return "log is closed";
    }
    return "unknown ferry.storage error " + std::to_string(ev);
  }
};

}  // namespace

const std::error_category& storage_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace ferry::storage
