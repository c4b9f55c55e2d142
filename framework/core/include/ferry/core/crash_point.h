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

}  // namespace ferry
