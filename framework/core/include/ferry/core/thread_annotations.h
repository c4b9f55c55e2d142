// Clang's thread-safety analysis (-Wthread-safety), as LevelDB uses it:
// state shared by threads is marked with what guards it, and the compiler
// proves every access holds it. Under other compilers the macros vanish.
//
// Two kinds of capability are used in Ferry:
//  - a ferry::mutex (core/mutex.h) guards data that several threads touch;
//  - a thread_role names a thread that alone may touch some data (the
//    broker's core thread owns every partition log). A function that runs
//    on that thread says FERRY_REQUIRES(role); only the thread's entry
//    point acquires the role (thread_role_scope), so the analysis proves
//    that no other thread reaches that data.
//
// tools/check-thread-safety.sh compiles every library source with clang
// and -Werror=thread-safety; the README's test command runs it.
#pragma once

#if defined(__clang__)
#define FERRY_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define FERRY_THREAD_ANNOTATION(x)
#endif

#define FERRY_CAPABILITY(x) FERRY_THREAD_ANNOTATION(capability(x))
#define FERRY_SCOPED_CAPABILITY FERRY_THREAD_ANNOTATION(scoped_lockable)
#define FERRY_GUARDED_BY(x) FERRY_THREAD_ANNOTATION(guarded_by(x))
#define FERRY_PT_GUARDED_BY(x) FERRY_THREAD_ANNOTATION(pt_guarded_by(x))
#define FERRY_REQUIRES(...) FERRY_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define FERRY_ACQUIRE(...) FERRY_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define FERRY_RELEASE(...) FERRY_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define FERRY_TRY_ACQUIRE(...) FERRY_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define FERRY_EXCLUDES(...) FERRY_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define FERRY_ASSERT_CAPABILITY(x) FERRY_THREAD_ANNOTATION(assert_capability(x))
#define FERRY_RETURN_CAPABILITY(x) FERRY_THREAD_ANNOTATION(lock_returned(x))
#define FERRY_NO_THREAD_SAFETY_ANALYSIS FERRY_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace ferry {

/// A thread that alone may touch what is FERRY_GUARDED_BY it. It has no
/// state: the analysis is static.
class FERRY_CAPABILITY("role") thread_role {
 public:
  constexpr explicit thread_role(const char* name) noexcept : name_(name) {}
  [[nodiscard]] constexpr const char* name() const noexcept { return name_; }
  /// Tells the analysis that the caller runs as this role: for closures
  /// that only the role's thread calls (a reply the broker's pipeline runs
  /// after a sync), which the analysis sees as functions of their own.
  void assert_held() const noexcept FERRY_ASSERT_CAPABILITY(this) {}
  // Used by thread_role_scope only.
  void enter() const noexcept FERRY_ACQUIRE() {}
  void leave() const noexcept FERRY_RELEASE() {}

 private:
  const char* name_;
};

/// Declares, for the rest of a scope, that this code runs as `role`: at a
/// thread's entry point, or where the owning thread has not started yet or
/// has been joined (open(), destruction).
class FERRY_SCOPED_CAPABILITY thread_role_scope {
 public:
  explicit thread_role_scope(const thread_role& r) noexcept FERRY_ACQUIRE(r) : role_(r) {
    role_.enter();
  }
  ~thread_role_scope() FERRY_RELEASE() { role_.leave(); }
  thread_role_scope(const thread_role_scope&) = delete;
  thread_role_scope& operator=(const thread_role_scope&) = delete;

 private:
  const thread_role& role_;
};

}  // namespace ferry
