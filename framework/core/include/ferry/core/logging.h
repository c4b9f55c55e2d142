// Named loggers, one per library ("storage", "broker", ...), all writing to
// one stderr sink, as text for people or as JSON lines for machines, with a
// level per module. Logging never throws into business code: spdlog's own
// error handler is replaced by one that swallows.
//
// Configuration is process-wide. At first use it comes from the environment:
//   FERRY_LOG_LEVEL   a level spec (below); default "info"
//   FERRY_LOG_FORMAT  "text" (default) or "json"
// An invalid variable is ignored and reported once, as a warning, by the
// first logger created. Programs may then override both (ferryd does, from
// its configuration and flags); loggers created later follow the override.
#pragma once

#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ferry/core/result.h"

namespace ferry::log {

/// The logger named "ferry.<module>", created on first use with the level
/// configured for `module`. Thread-safe.
std::shared_ptr<spdlog::logger> get(std::string_view module);

// --- levels ------------------------------------------------------------------

/// A level for every module, with exceptions. The spec form, accepted by
/// parse_levels, FERRY_LOG_LEVEL, ferryd's --log-level and log_level key:
///
///   spec   = item *("," item)
///   item   = level | module "=" level      (at most one bare level)
///   level  = trace | debug | info | warn | error | critical | off
///   module = the name given to get(): storage, broker, client, ... (an
///            optional "ferry." prefix is dropped); [A-Za-z0-9_.-]+
///
/// e.g. "warn,storage=debug,broker=info". Spaces around items are ignored.
/// A module that no logger has (yet) is accepted and applies when one is
/// created.
struct levels {
  spdlog::level::level_enum default_level = spdlog::level::info;
  std::map<std::string, spdlog::level::level_enum, std::less<>> modules;

  /// The level of loggers of `module`.
  [[nodiscard]] spdlog::level::level_enum of(std::string_view module) const;
  /// The canonical spec ("warn,storage=debug"); parses back to *this.
  [[nodiscard]] std::string to_spec() const;
  friend bool operator==(const levels&, const levels&) = default;
};

/// Parses a level spec. On error returns errc::config_invalid and sets
/// `error` to a message naming the bad part and what is allowed, e.g.
/// "unknown level 'verbose' for module storage; use trace, debug, info,
/// warn, error, critical or off".
[[nodiscard]] result<levels> parse_levels(std::string_view spec, std::string& error);

/// Sets the levels of every Ferry logger, present and future.
void set_levels(const levels& l);

/// parse_levels + set_levels. Returns false, changing nothing, when `spec`
/// is invalid. A plain level ("warn") sets every logger and drops earlier
/// per-module exceptions.
bool set_level(std::string_view spec);

/// The levels in force.
[[nodiscard]] levels current_levels();

// --- format ------------------------------------------------------------------

/// text: "2026-11-23T11:00:00.123 info [ferry.broker] message", local time,
///       coloured when stderr is a terminal.
/// json: one object per line, keys in this order:
///       {"ts":"2026-11-23T10:00:00.123Z","level":"info","logger":"ferry.broker",
///        "msg":"message","pid":4711,"thread":4712}
///       ts is UTC (RFC 3339, milliseconds); level is the name used in level
///       specs (trace ... critical); every line is valid JSON (see
///       json_formatter).
enum class format { text, json };

/// "text" or "json"; nullopt for anything else.
[[nodiscard]] std::optional<format> parse_format(std::string_view s);
[[nodiscard]] std::string_view to_string(format f);

/// Switches every Ferry logger, present and future, to `f`. Lines already
/// being written finish in the old format; a line is never mixed.
void set_format(format f);
[[nodiscard]] format current_format();

/// The json format as an spdlog formatter, for any sink. Strings are
/// escaped per RFC 8259 ('"', '\\', control characters as \n, \r, \t, \b,
/// \f or \u00XX); bytes that are not valid UTF-8 (stray continuation bytes,
/// truncated or overlong sequences, surrogates, above U+10FFFF) become
/// U+FFFD, one per byte, so every line parses whatever a message holds.
class json_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  // Formatting the date is the slow part; keep the last second's.
  std::int64_t cached_second_ = -1;
  std::string cached_date_;  // "2026-11-23T10:00:00"
};

/// Appends `s` to `out` as the inside of a JSON string (no quotes), escaped
/// as json_formatter does.
void append_json_escaped(std::string_view s, spdlog::memory_buf_t& out);

}  // namespace ferry::log

// Debug logging compiles out of release builds.
#ifdef NDEBUG
#define FERRY_LOG_DEBUG(logger, ...) (void)0
#else
#define FERRY_LOG_DEBUG(logger, ...) (logger)->debug(__VA_ARGS__)
#endif
