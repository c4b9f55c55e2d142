// ferry::result<T>: the one way Ferry reports failure.
//
// result<T> is boost::outcome_v2::std_result<T>: either a T or a
// std::error_code. errno values, std::filesystem errors, ZeroMQ errors and
// Ferry's own errc enums all fit without Boost.System leaking into public
// headers. Exceptions thrown by dependencies are caught at the library
// boundary that calls them and turned into error codes there.
#pragma once

#include <boost/outcome/std_result.hpp>
#include <boost/outcome/try.hpp>
#include <cerrno>
#include <system_error>

namespace ferry {

namespace outcome = boost::outcome_v2;

template <typename T>
using result = outcome::std_result<T>;

/// success() for result<void>, or success(value).
using outcome::success;

/// An error_code from the current errno (or `e`) in the generic category.
inline std::error_code errno_code(int e = errno) noexcept {
  return std::error_code(e, std::generic_category());
}

}  // namespace ferry

/// FERRY_TRY(expr): evaluate a result, return its error from the enclosing
/// function on failure.
/// FERRY_TRY(auto x, expr) / FERRY_TRY(existing, expr): the same, then
/// declare or assign the value.
#define FERRY_TRY_CAT2(a, b) a##b
#define FERRY_TRY_CAT(a, b) FERRY_TRY_CAT2(a, b)
#define FERRY_TRY_UNIQUE FERRY_TRY_CAT(ferry_try_, __COUNTER__)
#define FERRY_TRY_1(expr) BOOST_OUTCOME_TRYV2_SUCCESS_LIKELY(FERRY_TRY_UNIQUE, expr)
#define FERRY_TRY_2(decl, expr) BOOST_OUTCOME_TRY2_SUCCESS_LIKELY(FERRY_TRY_UNIQUE, decl, expr)
#define FERRY_TRY_PICK(_1, _2, name, ...) name
#define FERRY_TRY(...) FERRY_TRY_PICK(__VA_ARGS__, FERRY_TRY_2, FERRY_TRY_1, unused)(__VA_ARGS__)
