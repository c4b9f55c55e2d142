// POSIX implementation of env: pread/write/fdatasync on plain file
// descriptors. No mmap: reads go through pread so a truncated or vanished
// file produces an error code, never SIGBUS.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "ferry/core/crash_point.h"
#include "ferry/storage/env.h"

namespace ferry::storage {
namespace {

class posix_file final : public file {
 public:
  posix_file(int fd, std::uint64_t size) : fd_(fd), size_(size) {}
  ~posix_file() override { ::close(fd_); }

  result<std::size_t> read_at(std::uint64_t pos, std::span<std::byte> out) const override {
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t n =
          ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(pos + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_code();
      }
      if (n == 0) break;
      done += static_cast<std::size_t>(n);
    }
    return done;
  }

  result<void> append(std::span<const std::byte> data) override {
    const std::byte* p = data.data();
    std::size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(size_));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_code();
      }
      if (n == 0) return errno_code(EIO);
      size_ += static_cast<std::uint64_t>(n);
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    return success();
  }

  result<void> sync() override {
    while (::fdatasync(fd_) != 0) {
      if (errno != EINTR) return errno_code();
    }
    return success();
  }

  result<void> truncate(std::uint64_t size) override {
    while (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      if (errno != EINTR) return errno_code();
    }
    size_ = size;
    return success();
  }

  std::uint64_t size() const override { return size_; }

 private:
  int fd_;
  std::uint64_t size_;
};

class posix_env_impl final : public env {
 public:
  result<std::unique_ptr<file>> open(const fs::path& p, open_mode mode) override {
    int flags = O_CLOEXEC;
    switch (mode) {
      case open_mode::read_only:
        flags |= O_RDONLY;
        break;
      case open_mode::read_write:
        flags |= O_RDWR;
        break;
      case open_mode::create:
        flags |= O_RDWR | O_CREAT;
        break;
      case open_mode::create_new:
        flags |= O_RDWR | O_CREAT | O_EXCL;
        break;
    }
    int fd;
    do {
      fd = ::open(p.c_str(), flags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return errno_code();
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      auto ec = errno_code();
      ::close(fd);
      return ec;
    }
    return std::unique_ptr<file>(
        std::make_unique<posix_file>(fd, static_cast<std::uint64_t>(st.st_size)));
  }

  result<std::vector<std::string>> list_dir(const fs::path& dir) override {
    std::error_code ec;
    std::vector<std::string> names;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      names.push_back(it->path().filename().string());
    }
    if (ec) return ec;
    return names;
  }

  result<void> create_dirs(const fs::path& dir) override {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return ec;
    return success();
  }

  result<void> remove_file(const fs::path& p) override {
    if (::unlink(p.c_str()) != 0) return errno_code();
    return success();
  }

  result<void> remove_dir(const fs::path& p) override {
    if (::rmdir(p.c_str()) != 0) return errno_code();
    return success();
  }

  result<void> rename(const fs::path& from, const fs::path& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return errno_code();
    return success();
  }

  result<void> sync_dir(const fs::path& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_code();
    int rc;
    do {
      rc = ::fsync(fd);
    } while (rc != 0 && errno == EINTR);
    auto ec = rc == 0 ? std::error_code() : errno_code();
    ::close(fd);
    if (ec) return ec;
    return success();
  }

  result<bool> exists(const fs::path& p) override {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) return true;
    if (errno == ENOENT) return false;
    return errno_code();
  }

  result<std::uint64_t> file_size(const fs::path& p) override {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return errno_code();
    return static_cast<std::uint64_t>(st.st_size);
  }
};

}  // namespace

env& posix_env() {
  static posix_env_impl instance;
  return instance;
}

result<std::vector<std::byte>> read_file(env& e, const fs::path& p) {
  FERRY_TRY(auto f, e.open(p, open_mode::read_only));
  std::vector<std::byte> data(f->size());
  FERRY_TRY(auto n, f->read_at(0, data));
  data.resize(n);
  return data;
}

result<void> write_file_atomic(env& e, const fs::path& p, std::span<const std::byte> data) {
  fs::path tmp = p;
  tmp += ".tmp";
  {
    FERRY_TRY(auto f, e.open(tmp, open_mode::create));
    FERRY_TRY(f->truncate(0));
    FERRY_TRY(f->append(data));
    FERRY_TRY(f->sync());
  }
  crash_point("file.atomic.after_tmp_sync");
  FERRY_TRY(e.rename(tmp, p));
  crash_point("file.atomic.after_rename");
  return e.sync_dir(p.has_parent_path() ? p.parent_path() : fs::path("."));
}

}  // namespace ferry::storage
