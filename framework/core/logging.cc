#include "ferry/core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <mutex>
#include <string>

namespace ferry::log {
namespace {

struct registry {
  std::mutex mu;
  spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  spdlog::level::level_enum level = spdlog::level::info;

  registry() {
    // FERRY_LOG_LEVEL sets the starting level of every Ferry logger.
    if (const char* env =
            std::getenv("FERRY_LOG_LEVEL")) {  // NOLINT(concurrency-mt-unsafe): read once
      auto lvl = spdlog::level::from_str(env);
      if (lvl != spdlog::level::off || std::string_view(env) == "off") level = lvl;
    }
  }
};

registry& reg() {
  static registry r;
  return r;
}

}  // namespace

std::shared_ptr<spdlog::logger> get(std::string_view name) {
  auto& r = reg();
  std::lock_guard lock(r.mu);
  std::string full = "ferry." + std::string(name);
  if (auto existing = spdlog::get(full)) return existing;
  auto logger = std::make_shared<spdlog::logger>(full, r.sink);
  logger->set_level(r.level);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  logger->set_error_handler([](const std::string&) {});
  spdlog::register_logger(logger);
  return logger;
}

bool set_level(std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") return false;
  auto& r = reg();
  std::lock_guard lock(r.mu);
  r.level = lvl;
  spdlog::apply_all([lvl](const std::shared_ptr<spdlog::logger>& l) {
    if (l->name().rfind("ferry.", 0) == 0) l->set_level(lvl);
  });
  return true;
}

}  // namespace ferry::log
