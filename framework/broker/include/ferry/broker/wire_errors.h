// The one place where internal error codes become wire error codes.
#pragma once

#include <system_error>

#include "ferry/schemas/protocol_generated.h"

namespace ferry::broker {

[[nodiscard]] wire::ErrorCode to_wire(std::error_code ec) noexcept;

}  // namespace ferry::broker
