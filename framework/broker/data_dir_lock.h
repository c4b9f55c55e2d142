// The data directory's lock (see data_dir_lock::acquire).
#pragma once

#include <filesystem>

#include "ferry/core/result.h"

namespace ferry::broker {

// <data_dir>/LOCK, held with flock() for the broker's life: a second broker
// on the same directory would recover and append to files the first one is
// writing. The kernel drops the lock when the process dies (kill -9
// included), so it is never stale. The file holds the owner's pid, for the
// refusal message.
class data_dir_lock {
 public:
  data_dir_lock() = default;
  data_dir_lock(const data_dir_lock&) = delete;
  data_dir_lock& operator=(const data_dir_lock&) = delete;
  ~data_dir_lock();

  [[nodiscard]] result<void> acquire(const std::filesystem::path& dir);

 private:
  int fd_ = -1;
};

}  // namespace ferry::broker
