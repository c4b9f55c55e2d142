#include "data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "ferry/core/errc.h"
#include "ferry/core/logging.h"

namespace ferry::broker {

namespace fs = std::filesystem;

namespace {

std::shared_ptr<spdlog::logger> logger() {
  static auto l = log::get("broker");
  return l;
}

}  // namespace

data_dir_lock::~data_dir_lock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

result<void> data_dir_lock::acquire(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  const auto path = dir / "LOCK";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int e = errno;
    logger()->error("cannot open {}: {}", path.string(), std::strerror(e));
    return std::error_code(e, std::generic_category());
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    char owner[32] = {};
    auto n = ::pread(fd_, owner, sizeof owner - 1, 0);
    std::string pid = n > 0 ? std::string(owner, static_cast<std::size_t>(n)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (e == EWOULDBLOCK) {
      logger()->error(
          "data directory {} is in use by another ferryd{}: stop it first, or give this one "
          "another --data-dir",
          dir.string(), pid.empty() ? "" : " (pid " + pid + ")");
      return make_error_code(errc::already_exists);
    }
    logger()->error("cannot lock {}: {}", path.string(), std::strerror(e));
    return std::error_code(e, std::generic_category());
  }
  const std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) < 0)
    logger()->warn("cannot write the pid to {}: {}", path.string(), std::strerror(errno));
  return success();
}

}  // namespace ferry::broker
