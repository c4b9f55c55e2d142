// The one duration grammar of Ferry: CLI flags, the runtime's TOML, the
// broker's configuration.
//
//   duration := part+ | iso
//   part     := number unit          (parts add up: "1h30m", "2m30s")
//   number   := digits ["." digits]  ("1.5h", ".5" is not a number)
//   unit     := "d" | "h" | "m" | "s" | "ms"
//   iso      := "P" [n "D"] ["T" [n "H"] [n "M"] [n "S"]]   (ISO 8601, no
//               weeks, months or years: they are not fixed lengths of time)
//
// A number without a unit is refused: "7" could mean 7 ms or 7 days, and a
// user who meant days and got milliseconds loses the guarantee that setting
// was for (an idempotency window of 7 ms). Values are whole milliseconds,
// from 0 to 10^15 (about 30,000 years); anything else is refused.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace ferry {

/// Parses `text` with the grammar above; nullopt when it does not follow it.
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

/// What to tell a user whose value for `key` was refused: names the key,
/// says why when the value is a bare number, and shows the units.
[[nodiscard]] std::string duration_error(std::string_view key, std::string_view text);

}  // namespace ferry
