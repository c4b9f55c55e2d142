// Named loggers, one per library ("storage", "broker", ...), all writing to
// one stderr sink. Logging never throws into business code: spdlog's own
// error handler is replaced by one that swallows.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string_view>

namespace ferry::log {

/// The logger named `name`, created on first use. Thread-safe.
std::shared_ptr<spdlog::logger> get(std::string_view name);

/// Sets the level of every Ferry logger, present and future
/// ("trace", "debug", "info", "warn", "error", "critical", "off").
/// Returns false when `level` is not one of those.
bool set_level(std::string_view level);

}  // namespace ferry::log

// Debug logging compiles out of release builds.
#ifdef NDEBUG
#define FERRY_LOG_DEBUG(logger, ...) (void)0
#else
#define FERRY_LOG_DEBUG(logger, ...) (logger)->debug(__VA_ARGS__)
#endif
