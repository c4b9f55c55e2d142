// The wire's Compatibility enum <-> ferry::compat_mode, in one place for
// the broker and the clients.
#pragma once

#include <optional>

#include "ferry/core/compat_mode.h"
#include "ferry/schemas/protocol_generated.h"

namespace ferry::protocol {

/// nullopt for Default (the subject follows the broker's mode).
[[nodiscard]] constexpr std::optional<compat_mode> to_mode(wire::Compatibility c) noexcept {
  using C = wire::Compatibility;
  switch (c) {
    case C::Default:
      return std::nullopt;
    case C::NoCheck:
      return compat_mode::none;
    case C::Backward:
      return compat_mode::backward;
    case C::BackwardTransitive:
      return compat_mode::backward_transitive;
    case C::Forward:
      return compat_mode::forward;
    case C::ForwardTransitive:
      return compat_mode::forward_transitive;
    case C::Full:
      return compat_mode::full;
    case C::FullTransitive:
      return compat_mode::full_transitive;
  }
  return std::nullopt;
}

/// Default for nullopt.
[[nodiscard]] constexpr wire::Compatibility to_wire(std::optional<compat_mode> m) noexcept {
  using C = wire::Compatibility;
  if (!m) return C::Default;
  switch (*m) {
    case compat_mode::none:
      return C::NoCheck;
    case compat_mode::backward:
      return C::Backward;
    case compat_mode::backward_transitive:
      return C::BackwardTransitive;
    case compat_mode::forward:
      return C::Forward;
    case compat_mode::forward_transitive:
      return C::ForwardTransitive;
    case compat_mode::full:
      return C::Full;
    case compat_mode::full_transitive:
      return C::FullTransitive;
  }
  return C::Default;
}

}  // namespace ferry::protocol
