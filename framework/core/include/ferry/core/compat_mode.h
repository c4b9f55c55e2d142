// Schema compatibility modes: a word of Ferry's vocabulary shared by the
// schema checker (ferry::schema::mode is this type), the wire protocol and
// configuration, so that protocol does not link the schema library for it.
#pragma once

#include <cstdint>

namespace ferry {

/// Compatibility modes with Confluent Schema Registry's words and meanings.
/// BACKWARD: a reader with the new schema reads data written with the
/// previous one. FORWARD: a reader with the previous schema reads data written
/// with the new one. FULL: both. *_TRANSITIVE: against every earlier version,
/// not only the latest. NONE: no check.
enum class compat_mode : std::uint8_t {
  none = 0,
  backward = 1,
  backward_transitive = 2,
  forward = 3,
  forward_transitive = 4,
  full = 5,
  full_transitive = 6,
};

}  // namespace ferry
