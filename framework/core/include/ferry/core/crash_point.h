// Named crash points for crash-consistency tests.
//
// FERRY_CRASH_AT="name" or "name:N" in the environment makes the process die
// with _exit(kCrashExitCode) -- no destructors, no buffered I/O flushed, like
// kill -9 -- the first (or N-th) time execution reaches crash_point("name").
// Unset, a crash point costs one predictable branch.
//
// Points in use (grep for crash_point): storage's append/sync/roll/
// retention/truncate steps and write_file_atomic's steps. Tests in
// tests/storage/kill_test.cc hit each of them and check the invariants.
//
// Pause points, for tests of what a process shows while it is slow:
// FERRY_PAUSE_AT="name:ms[,name:ms...]" makes pause_point("name") sleep
// that long every time it is reached. Points in use: broker.open (before
// the data is loaded), broker.stop (before the threads are joined).
#pragma once

namespace ferry {

inline constexpr int kCrashExitCode = 86;

namespace detail {
/// Parsed once from FERRY_CRASH_AT; nullptr when unset.
const char* crash_point_name() noexcept;
void crash_point_hit(const char* name) noexcept;
}  // namespace detail

inline void crash_point(const char* name) noexcept {
  if (detail::crash_point_name() != nullptr) [[unlikely]]
    detail::crash_point_hit(name);
}

namespace detail {
bool pause_points_set() noexcept;
void pause_point_hit(const char* name) noexcept;
}  // namespace detail

inline void pause_point(const char* name) noexcept {
  if (detail::pause_points_set()) [[unlikely]]
    detail::pause_point_hit(name);
}

}  // namespace ferry
