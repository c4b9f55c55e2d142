// The wire's Compatibility enum <-> ferry::schema::mode, in one place for
// the broker and the clients.
#pragma once

#include <optional>

#include "ferry/schema/schema.h"
#include "ferry/schemas/protocol_generated.h"

namespace ferry::protocol {

/// nullopt for Default (the subject follows the broker's mode).
[[nodiscard]] constexpr std::optional<schema::mode> to_mode(wire::Compatibility c) noexcept {
  using C = wire::Compatibility;
  switch (c) {
    case C::Default:
      return std::nullopt;
    case C::NoCheck:
      return schema::mode::none;
    case C::Backward:
      return schema::mode::backward;
    case C::BackwardTransitive:
      return schema::mode::backward_transitive;
    case C::Forward:
      return schema::mode::forward;
    case C::ForwardTransitive:
      return schema::mode::forward_transitive;
    case C::Full:
      return schema::mode::full;
    case C::FullTransitive:
      return schema::mode::full_transitive;
  }
  return std::nullopt;
}

/// Default for nullopt.
[[nodiscard]] constexpr wire::Compatibility to_wire(std::optional<schema::mode> m) noexcept {
  using C = wire::Compatibility;
  if (!m) return C::Default;
  switch (*m) {
    case schema::mode::none:
      return C::NoCheck;
    case schema::mode::backward:
      return C::Backward;
    case schema::mode::backward_transitive:
      return C::BackwardTransitive;
    case schema::mode::forward:
      return C::Forward;
    case schema::mode::forward_transitive:
      return C::ForwardTransitive;
    case schema::mode::full:
      return C::Full;
    case schema::mode::full_transitive:
      return C::FullTransitive;
  }
  return C::Default;
}

}  // namespace ferry::protocol
