#include "audit.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "ferry/core/logging.h"

namespace ferry::broker {

namespace {

std::string now_iso() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms.count() % 1000);
}

}  // namespace

result<std::unique_ptr<audit_log>> audit_log::open(const std::filesystem::path& file,
                                                   broker_metrics& stats, std::string& why) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    const int e = errno;
    why = fmt::format("cannot open the audit log {}: {}", file.string(), std::strerror(e));
    return std::error_code(e, std::generic_category());
  }
  return std::unique_ptr<audit_log>(new audit_log(fd, file, stats));
}

audit_log::audit_log(int fd, std::filesystem::path file, broker_metrics& stats)
    : fd_(fd), file_(std::move(file)), stats_(stats) {}

audit_log::~audit_log() {
  ::close(fd_);
}

void audit_log::record(std::string_view principal, std::string_view peer, std::string_view action,
                       const nlohmann::json& target, wire::ErrorCode error,
                       std::string_view message) {
  nlohmann::json j = {{"ts", now_iso()},
                      {"principal", principal.empty() ? "anonymous" : std::string(principal)},
                      {"peer", peer.empty() ? nlohmann::json(nullptr) : nlohmann::json(peer)},
                      {"action", action},
                      {"target", target},
                      {"outcome", error == wire::ErrorCode::None ? "ok" : "refused"}};
  if (error != wire::ErrorCode::None) {
    j["error"] = wire::EnumNameErrorCode(error);
    if (!message.empty()) j["message"] = message;
  }
  const auto line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  unique_lock lock(mu_);
  // One write: lines of concurrent writers never interleave (O_APPEND).
  const auto n = ::write(fd_, line.data(), line.size());
  const bool synced = n == static_cast<ssize_t>(line.size()) && ::fdatasync(fd_) == 0;
  if (!synced) {
    stats_.audit_failures.inc();
    log::get("security")
        ->error("audit log {}: cannot record {} on {}: {}", file_.string(), action, target.dump(),
                std::strerror(errno));
    return;
  }
  stats_.audit_records.inc();
}

}  // namespace ferry::broker
