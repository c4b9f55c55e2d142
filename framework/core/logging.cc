#include "ferry/core/logging.h"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iterator>
#include <mutex>
#include <string>

#include "ferry/core/errc.h"

namespace ferry::log {
namespace {

// Local time with its UTC offset (RFC 3339), so lines from machines in
// different zones, or across a DST change, still order.
constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%n] %v";
constexpr const char* kLevelChoices = "use trace, debug, info, warn, error, critical or off";

// Names as written in level specs and in the json "level" field. spdlog's own
// names say "warning" for warn; the text format keeps those.
constexpr std::array<std::string_view, 7> kLevelNames = {"trace", "debug",    "info", "warn",
                                                         "error", "critical", "off"};

std::string_view level_name(spdlog::level::level_enum l) {
  auto i = static_cast<std::size_t>(l);
  return i < kLevelNames.size() ? kLevelNames[i] : std::string_view("unknown");
}

std::optional<spdlog::level::level_enum> level_from(std::string_view s) {
  for (std::size_t i = 0; i < kLevelNames.size(); ++i)
    if (s == kLevelNames[i]) return static_cast<spdlog::level::level_enum>(i);
  if (s == "warning") return spdlog::level::warn;  // spdlog's name, as the text format prints it
  return std::nullopt;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool valid_module(std::string_view m) {
  if (m.empty()) return false;
  for (char c : m) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::error_code bad(std::string& error, std::string msg) {
  error = std::move(msg);
  return errc::config_invalid;
}

// The one sink every Ferry logger writes to. It holds a sink per format and
// forwards to the one in force, so set_format switches loggers without
// touching their sink lists (which spdlog does not guard against concurrent
// logging). Both inner sinks lock spdlog's one console mutex, so lines of
// the two formats never interleave either.
class switch_sink final : public spdlog::sinks::sink {
 public:
  switch_sink() {
    text_->set_pattern(kTextPattern);
    json_->set_formatter(std::make_unique<json_formatter>());
  }

  void log(const spdlog::details::log_msg& m) override { active().log(m); }
  void flush() override { active().flush(); }
  // The format is chosen by set_format, not by whoever holds a logger.
  void set_pattern(const std::string&) override {}
  void set_formatter(std::unique_ptr<spdlog::formatter>) override {}

  void use(format f) { json_on_.store(f == format::json, std::memory_order_relaxed); }

 private:
  spdlog::sinks::sink& active() {
    if (json_on_.load(std::memory_order_relaxed)) return *json_;
    return *text_;
  }

  // Colours only when stderr is a terminal; never in json.
  std::shared_ptr<spdlog::sinks::sink> text_ =
      std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  std::shared_ptr<spdlog::sinks::sink> json_ = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  std::atomic<bool> json_on_{false};
};

struct registry {
  std::mutex mu;
  std::shared_ptr<switch_sink> sink = std::make_shared<switch_sink>();
  levels lv;
  format fmt = format::text;
  std::string env_warning;  // a bad FERRY_LOG_* variable, reported by the first logger created

  registry() {
    // Read once, at first use. An empty variable counts as unset.
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read once, under the static's initialisation
    if (const char* env = std::getenv("FERRY_LOG_LEVEL"); env != nullptr && *env != '\0') {
      std::string why;
      if (auto l = parse_levels(env, why))
        lv = std::move(l).value();
      else
        env_warning = fmt::format("FERRY_LOG_LEVEL='{}' ignored: {}", env, why);
    }
    // NOLINTNEXTLINE(concurrency-mt-unsafe): as above
    if (const char* env = std::getenv("FERRY_LOG_FORMAT"); env != nullptr && *env != '\0') {
      if (auto f = parse_format(env)) {
        fmt = *f;
        sink->use(fmt);
      } else {
        if (!env_warning.empty()) env_warning += "; ";
        env_warning += fmt::format("FERRY_LOG_FORMAT='{}' ignored: use text or json", env);
      }
    }
  }
};

registry& reg() {
  static registry r;
  return r;
}

constexpr std::string_view kPrefix = "ferry.";

// Length of the well-formed UTF-8 sequence starting at s[i] (Unicode table
// 3-7), or 0 when the bytes there are not one.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return k < s.size() && at(k) >= lo && at(k) <= hi;
  };
  unsigned b = at(i);
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (b == 0xE0) return cont(i + 1, 0xA0) && cont(i + 2) ? 3 : 0;
  if (b == 0xED) return cont(i + 1, 0x80, 0x9F) && cont(i + 2) ? 3 : 0;  // no surrogates
  if (b >= 0xE1 && b <= 0xEF) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (b == 0xF0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (b >= 0xF1 && b <= 0xF3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (b == 0xF4) return cont(i + 1, 0x80, 0x8F) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;  // 0x80..0xC1 (continuation or overlong lead), 0xF5..0xFF
}

void append(spdlog::memory_buf_t& out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

}  // namespace

// --- levels ------------------------------------------------------------------

spdlog::level::level_enum levels::of(std::string_view module) const {
  auto it = modules.find(module);
  return it == modules.end() ? default_level : it->second;
}

std::string levels::to_spec() const {
  std::string s(level_name(default_level));
  for (const auto& [m, l] : modules) s += fmt::format(",{}={}", m, level_name(l));
  return s;
}

result<levels> parse_levels(std::string_view spec, std::string& error) {
  levels out;
  if (trim(spec).empty())
    return bad(error, fmt::format("empty log level; {}, optionally followed by module=level "
                                  "(e.g. warn,storage=debug)",
                                  kLevelChoices));
  std::optional<std::string_view> bare;  // the default level, when given
  std::size_t start = 0;
  while (true) {
    auto comma = spec.find(',', start);
    auto item = trim(spec.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (item.empty())
      return bad(error, fmt::format("empty item in log level '{}' (a stray comma?)", spec));
    auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      auto l = level_from(item);
      if (!l) return bad(error, fmt::format("unknown level '{}'; {}", item, kLevelChoices));
      if (bare)
        return bad(error, fmt::format("two default levels in '{}' ('{}' and '{}'); give one, "
                                      "and module=level for the others",
                                      spec, *bare, item));
      bare = item;
      out.default_level = *l;
    } else {
      auto module = trim(item.substr(0, eq));
      auto name = trim(item.substr(eq + 1));
      if (module.substr(0, kPrefix.size()) == kPrefix) module.remove_prefix(kPrefix.size());
      if (module.empty())
        return bad(error, fmt::format("missing module name before '=' in '{}'", item));
      if (!valid_module(module))
        return bad(error, fmt::format("bad module name '{}' in '{}' (letters, digits, '_', '.', "
                                      "'-'; the name given to log::get, e.g. storage)",
                                      module, item));
      auto l = level_from(name);
      if (!l)
        return bad(error, name.empty() ? fmt::format("missing level for module {}; {}", module,
                                                     kLevelChoices)
                                       : fmt::format("unknown level '{}' for module {}; {}", name,
                                                     module, kLevelChoices));
      if (!out.modules.emplace(std::string(module), *l).second)
        return bad(error, fmt::format("module {} given twice in '{}'", module, spec));
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

void set_levels(const levels& l) {
  auto& r = reg();
  std::lock_guard lock(r.mu);
  r.lv = l;
  spdlog::apply_all([&l](const std::shared_ptr<spdlog::logger>& logger) {
    std::string_view name = logger->name();
    if (name.substr(0, kPrefix.size()) == kPrefix)
      logger->set_level(l.of(name.substr(kPrefix.size())));
  });
}

bool set_level(std::string_view spec) {
  std::string ignored;
  auto l = parse_levels(spec, ignored);
  if (!l) return false;
  set_levels(l.value());
  return true;
}

levels current_levels() {
  auto& r = reg();
  std::lock_guard lock(r.mu);
  return r.lv;
}

// --- format ------------------------------------------------------------------

std::optional<format> parse_format(std::string_view s) {
  if (s == "text") return format::text;
  if (s == "json") return format::json;
  return std::nullopt;
}

std::string_view to_string(format f) {
  return f == format::json ? "json" : "text";
}

void set_format(format f) {
  auto& r = reg();
  std::lock_guard lock(r.mu);
  r.fmt = f;
  r.sink->use(f);
}

format current_format() {
  auto& r = reg();
  std::lock_guard lock(r.mu);
  return r.fmt;
}

void append_json_escaped(std::string_view s, spdlog::memory_buf_t& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t plain = 0;  // start of the run of bytes copied as they are
  auto flush = [&](std::size_t upto) { out.append(s.data() + plain, s.data() + upto); };
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      if (auto n = utf8_length(s, i); n != 0) {
        i += n;  // valid UTF-8 is valid in a JSON string as it is
        continue;
      }
    }
    flush(i);
    switch (c) {
      case '"':
        append(out, "\\\"");
        break;
      case '\\':
        append(out, "\\\\");
        break;
      case '\n':
        append(out, "\\n");
        break;
      case '\r':
        append(out, "\\r");
        break;
      case '\t':
        append(out, "\\t");
        break;
      case '\b':
        append(out, "\\b");
        break;
      case '\f':
        append(out, "\\f");
        break;
      default:
        if (c < 0x20) {
          const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
          out.append(esc, esc + sizeof esc);
        } else {
          append(out, "\\ufffd");  // one per byte that is not valid UTF-8
        }
    }
    plain = ++i;
  }
  flush(s.size());
}

void json_formatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(msg.time.time_since_epoch()).count();
  auto second = ms / 1000 - (ms % 1000 < 0 ? 1 : 0);
  auto milli = ms - second * 1000;
  if (second != cached_second_) {
    std::time_t t = static_cast<std::time_t>(second);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    cached_date_ = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", tm.tm_year + 1900,
                               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_second_ = second;
  }
  fmt::format_to(std::back_inserter(dest), R"({{"ts":"{}.{:03}Z","level":"{}","logger":")",
                 cached_date_, milli, level_name(msg.level));
  append_json_escaped(std::string_view(msg.logger_name.data(), msg.logger_name.size()), dest);
  append(dest, R"(","msg":")");
  append_json_escaped(std::string_view(msg.payload.data(), msg.payload.size()), dest);
  fmt::format_to(std::back_inserter(dest),
                 R"(","pid":{},"thread":{}}})"
                 "\n",
                 ::getpid(), msg.thread_id);
}

std::unique_ptr<spdlog::formatter> json_formatter::clone() const {
  return std::make_unique<json_formatter>();
}

// --- loggers -----------------------------------------------------------------

std::shared_ptr<spdlog::logger> get(std::string_view module) {
  auto& r = reg();
  std::shared_ptr<spdlog::logger> logger;
  std::string warning;
  {
    std::lock_guard lock(r.mu);
    std::string full = std::string(kPrefix) + std::string(module);
    if (auto existing = spdlog::get(full)) return existing;
    logger = std::make_shared<spdlog::logger>(full, r.sink);
    logger->set_level(r.lv.of(module));
    logger->set_error_handler([](const std::string&) {});
    spdlog::register_logger(logger);
    warning.swap(r.env_warning);
  }
  if (!warning.empty()) logger->warn("{}", warning);
  return logger;
}

}  // namespace ferry::log
