// ferry::log: level specs, per-module levels on present and future loggers,
// the JSON line format (escaping, invalid UTF-8), and FERRY_LOG_LEVEL /
// FERRY_LOG_FORMAT read by a fresh process.
#include "ferry/core/logging.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace ferry::log {
namespace {

using spdlog::level::level_enum;

// --- level specs ---------------------------------------------------------------

TEST(LogLevels, ParsesAPlainLevelAndModuleExceptions) {
  std::string err;
  auto plain = parse_levels("warn", err);
  ASSERT_TRUE(plain) << err;
  EXPECT_EQ(plain.value().default_level, level_enum::warn);
  EXPECT_TRUE(plain.value().modules.empty());

  auto mixed = parse_levels("warn,storage=debug,broker=info", err);
  ASSERT_TRUE(mixed) << err;
  EXPECT_EQ(mixed.value().default_level, level_enum::warn);
  EXPECT_EQ(mixed.value().of("storage"), level_enum::debug);
  EXPECT_EQ(mixed.value().of("broker"), level_enum::info);
  EXPECT_EQ(mixed.value().of("client"), level_enum::warn) << "other modules get the default";
  EXPECT_EQ(mixed.value().to_spec(), "warn,broker=info,storage=debug");

  auto spaced = parse_levels(" error , ferry.groups = trace,runtime=off ", err);
  ASSERT_TRUE(spaced) << err;
  EXPECT_EQ(spaced.value().default_level, level_enum::err);
  EXPECT_EQ(spaced.value().of("groups"), level_enum::trace) << "the ferry. prefix is dropped";
  EXPECT_EQ(spaced.value().of("runtime"), level_enum::off);

  auto only_module = parse_levels("storage=critical", err);
  ASSERT_TRUE(only_module) << err;
  EXPECT_EQ(only_module.value().default_level, level_enum::info) << "default stays info";
  EXPECT_EQ(only_module.value().of("storage"), level_enum::critical);

  auto alias = parse_levels("warning", err);
  ASSERT_TRUE(alias) << err;
  EXPECT_EQ(alias.value().default_level, level_enum::warn) << "spdlog's name, as text logs show";

  auto round = parse_levels(mixed.value().to_spec(), err);
  ASSERT_TRUE(round) << err;
  EXPECT_EQ(round.value(), mixed.value());
}

TEST(LogLevels, BadSpecsNameTheBadPart) {
  struct bad_case {
    const char* spec;
    const char* expect;
  };
  for (const auto& [spec, expect] : std::vector<bad_case>{
           {"verbose",
            "unknown level 'verbose'; use trace, debug, info, warn, error, critical or "
            "off"},
           {"warn,storage=verbose",
            "unknown level 'verbose' for module storage; use trace, debug, info, warn, error, "
            "critical or off"},
           {"", "empty log level"},
           {"  ", "empty log level"},
           {"warn,,storage=debug", "empty item"},
           {"warn,", "empty item"},
           {"=debug", "missing module name"},
           {"storage=", "missing level for module storage"},
           {"warn,error", "two default levels"},
           {"storage=debug,storage=info", "module storage given twice"},
           {"stor age=debug", "bad module name 'stor age'"},
           {"INFO", "unknown level 'INFO'"},
       }) {
    std::string err;
    auto l = parse_levels(spec, err);
    EXPECT_FALSE(l) << "'" << spec << "' was accepted";
    EXPECT_NE(err.find(expect), std::string::npos) << "for '" << spec << "' got: " << err;
  }
}

TEST(LogFormat, ParsesTextAndJsonOnly) {
  EXPECT_EQ(parse_format("text"), format::text);
  EXPECT_EQ(parse_format("json"), format::json);
  EXPECT_EQ(parse_format("JSON"), std::nullopt);
  EXPECT_EQ(parse_format(""), std::nullopt);
  EXPECT_EQ(to_string(format::json), "json");
}

// Restores the process-wide log settings a test changes.
class LogSettings : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_levels_ = current_levels();
    saved_format_ = current_format();
  }
  void TearDown() override {
    set_levels(saved_levels_);
    set_format(saved_format_);
  }

 private:
  levels saved_levels_;
  format saved_format_ = format::text;
};

TEST_F(LogSettings, ModuleLevelsApplyToExistingAndLaterLoggers) {
  ASSERT_TRUE(set_level("info"));
  auto existing = get("lt_existing");
  auto bystander = get("lt_bystander");
  ASSERT_EQ(existing->level(), level_enum::info);

  ASSERT_TRUE(set_level("warn,lt_existing=debug,lt_later=error"));
  EXPECT_EQ(existing->level(), level_enum::debug) << "an existing logger gets its module's level";
  EXPECT_EQ(bystander->level(), level_enum::warn) << "and the others the default";
  auto later = get("lt_later");
  EXPECT_EQ(later->level(), level_enum::err) << "a logger created later gets its module's level";
  EXPECT_EQ(get("lt_other_later")->level(), level_enum::warn);
  EXPECT_EQ(get("lt_existing"), existing) << "one logger per name";

  EXPECT_FALSE(set_level("warn,lt_existing=loud"));
  EXPECT_EQ(existing->level(), level_enum::debug) << "an invalid spec changes nothing";
  EXPECT_EQ(current_levels().to_spec(), "warn,lt_existing=debug,lt_later=error");

  ASSERT_TRUE(set_level("error"));
  EXPECT_EQ(existing->level(), level_enum::err) << "a plain level drops the exceptions";
  EXPECT_EQ(later->level(), level_enum::err);
}

// --- JSON lines ------------------------------------------------------------------

constexpr std::int64_t kFixedMs = 1795428000123;  // 2026-11-23T10:00:00.123Z

std::string format_line(json_formatter& f, std::string_view payload,
                        std::string_view name = "ferry.test", level_enum level = level_enum::warn,
                        std::int64_t ms = kFixedMs) {
  spdlog::details::log_msg m(spdlog::log_clock::time_point(std::chrono::milliseconds(ms)),
                             spdlog::source_loc{}, spdlog::string_view_t(name.data(), name.size()),
                             level, spdlog::string_view_t(payload.data(), payload.size()));
  spdlog::memory_buf_t buf;
  f.format(m, buf);
  return std::string(buf.data(), buf.size());
}

// Parses one formatted line strictly: one newline, at the end; valid JSON
// (nlohmann refuses invalid UTF-8 too).
nlohmann::json parse_line(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "exactly one newline, at the end: " << line;
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "): " << line;
    return {};
  }
}

TEST(JsonFormatter, OneObjectPerLineWithStableFields) {
  json_formatter f;
  auto line = format_line(f, "hello", "ferry.broker", level_enum::info);
  EXPECT_EQ(line.rfind(R"({"ts":"2026-11-23T10:00:00.123Z","level":"info","logger":"ferry.broker",)"
                       R"("msg":"hello","pid":)",
                       0),
            0u)
      << "keys in a fixed order, ts first: " << line;
  auto j = parse_line(line);
  EXPECT_EQ(j["ts"], "2026-11-23T10:00:00.123Z");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["logger"], "ferry.broker");
  EXPECT_EQ(j["msg"], "hello");
  EXPECT_EQ(j["pid"], ::getpid());
  EXPECT_TRUE(j["thread"].is_number_unsigned());
  EXPECT_EQ(j.size(), 6u);

  EXPECT_EQ(parse_line(format_line(f, "x", "n", level_enum::warn))["level"], "warn")
      << "level names as in level specs";
  EXPECT_EQ(parse_line(format_line(f, "x", "n", level_enum::err))["level"], "error");
  EXPECT_EQ(parse_line(format_line(f, "x", "n", level_enum::critical))["level"], "critical");
  // The formatter keeps the date of the last second: a new second, earlier
  // or later, must not reuse it.
  EXPECT_EQ(parse_line(format_line(f, "x", "n", level_enum::info, kFixedMs + 1000))["ts"],
            "2026-11-23T10:00:01.123Z");
  EXPECT_EQ(parse_line(format_line(f, "x", "n", level_enum::info, -1))["ts"],
            "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(parse_line(format_line(f, "x", "n", level_enum::info, kFixedMs + 877))["ts"],
            "2026-11-23T10:00:01.000Z");
}

TEST(JsonFormatter, EscapesQuotesBackslashesAndControlCharacters) {
  std::string every_control;
  for (int c = 0; c < 0x20; ++c) every_control.push_back(static_cast<char>(c));
  json_formatter f;
  for (const std::string& msg : std::vector<std::string>{
           R"(topic "orders" partition 3)",
           R"(C:\data\ferry and \" and \\)",
           "first line\nsecond line\r\n",
           "tab\there\f\b",
           every_control,
           "\x7f delete is allowed as it is",
           "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\xa2 \xe4\xb8\xad\xe6\x96\x87",  // é € 🚢 中文
           "\xef\xbf\xbf \xf4\x8f\xbf\xbf",  // U+FFFF, U+10FFFF: valid
           "",
           "}{\"msg\":\"injected\"}\n{",
       }) {
    auto line = format_line(f, msg);
    auto j = parse_line(line);
    EXPECT_EQ(j["msg"], msg) << line;
  }
  // The short escapes where JSON has them, \u00XX for the other controls.
  EXPECT_NE(format_line(f, "a\nb").find(R"("msg":"a\nb")"), std::string::npos);
  EXPECT_NE(format_line(f, std::string("a\0b", 3)).find(R"("msg":"a\u0000b")"), std::string::npos);
  EXPECT_NE(format_line(f, "\x1f").find(R"(\u001f)"), std::string::npos);
  // The logger name is escaped too.
  EXPECT_EQ(parse_line(format_line(f, "m", "ferry.\"odd\"\n"))["logger"], "ferry.\"odd\"\n");
}

TEST(JsonFormatter, InvalidUtf8BecomesReplacementCharacters) {
  const std::string r = "\xef\xbf\xbd";  // U+FFFD
  struct utf8_case {
    std::string in;
    std::string out;
  };
  json_formatter f;
  for (const auto& [in, out] : std::vector<utf8_case>{
           {"\xff", r},
           {"\x80 stray continuation", r + " stray continuation"},
           {"cut \xc3", "cut " + r},                         // truncated at the end
           {"cut \xe2\x82 here", "cut " + r + r + " here"},  // truncated in the middle
           {"\xc0\xaf", r + r},                              // overlong '/'
           {"\xe0\x80\xaf", r + r + r},                      // overlong, 3 bytes
           {"\xed\xa0\x80", r + r + r},                      // a UTF-16 surrogate
           {"\xf4\x90\x80\x80", r + r + r + r},              // above U+10FFFF
           {"\xf8\x88\x80\x80\x80", r + r + r + r + r},      // 5-byte form
           {"ok \xc3\xa9 \xfe ok", "ok \xc3\xa9 " + r + " ok"},
       }) {
    auto line = format_line(f, in);
    auto j = parse_line(line);
    EXPECT_EQ(j["msg"], out) << line;
  }
}

// --- through the loggers, on stderr ----------------------------------------------

// Collects what this process writes to stderr (fd 2) meanwhile.
class stderr_capture {
 public:
  stderr_capture() : file_(std::tmpfile()) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    ::dup2(::fileno(file_), 2);
  }
  stderr_capture(const stderr_capture&) = delete;
  stderr_capture& operator=(const stderr_capture&) = delete;
  ~stderr_capture() { finish(); }

  std::string finish() {
    if (saved_ < 0) return text_;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
    std::rewind(file_);
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) text_.append(buf, n);
    std::fclose(file_);
    return text_;
  }

 private:
  std::FILE* file_;
  int saved_ = -1;
  std::string text_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l + "\n");
  return out;
}

TEST_F(LogSettings, LoggersWriteJsonLinesToStderrAfterSetFormat) {
  ASSERT_TRUE(set_level("info,lt_quiet=error"));
  auto logger = get("lt_json");
  auto quiet = get("lt_quiet");
  const std::string tricky = "partition \"orders\"-0\noffset\t42 \\ \x01 caf\xc3\xa9 \xff";
  set_format(format::json);
  stderr_capture cap;
  logger->warn("{}", tricky);
  logger->info("second {}", 2);
  quiet->warn("filtered out by its module level");
  quiet->error("kept");
  auto text = cap.finish();

  auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), 3u) << text;
  std::vector<nlohmann::json> js;
  for (const auto& l : lines) js.push_back(parse_line(l));
  EXPECT_EQ(js[0]["logger"], "ferry.lt_json");
  EXPECT_EQ(js[0]["level"], "warn");
  EXPECT_EQ(js[0]["msg"], "partition \"orders\"-0\noffset\t42 \\ \x01 caf\xc3\xa9 \xef\xbf\xbd");
  EXPECT_EQ(js[0]["pid"], ::getpid());
  EXPECT_TRUE(std::regex_match(js[0]["ts"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << js[0]["ts"];
  EXPECT_EQ(js[1]["msg"], "second 2");
  EXPECT_EQ(js[2]["logger"], "ferry.lt_quiet");
  EXPECT_EQ(js[2]["msg"], "kept");

  set_format(format::text);
  stderr_capture cap2;
  logger->warn("back to text");
  auto plain = cap2.finish();
  EXPECT_NE(plain.find("[ferry.lt_json] back to text"), std::string::npos) << plain;
  EXPECT_NE(plain.front(), '{') << plain;
  // The local time carries its UTC offset: 2026-11-23T11:00:00.123+01:00.
  EXPECT_TRUE(std::regex_search(
      plain, std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d warning )")))
      << plain;
}

// --- FERRY_LOG_LEVEL and FERRY_LOG_FORMAT, read by a fresh process -----------------

// Runs the child (log_env_child.cc) with `env` prepended; returns its stderr.
std::string run_child(const std::string& env) {
  std::string cmd = "env -u FERRY_LOG_LEVEL -u FERRY_LOG_FORMAT " + env + " " +
                    FERRY_LOG_ENV_CHILD + " 2>&1 >/dev/null";
  std::string out;
  if (std::FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    EXPECT_EQ(::pclose(p), 0) << cmd;
  } else {
    ADD_FAILURE() << "cannot run " << cmd;
  }
  return out;
}

TEST(LogEnvironment, LevelSpecAndJsonFormatFromTheEnvironment) {
  auto text = run_child("FERRY_LOG_FORMAT=json 'FERRY_LOG_LEVEL=warn,alpha=info'");
  auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), 2u) << text;
  auto a = parse_line(lines[0]);
  auto b = parse_line(lines[1]);
  EXPECT_EQ(a["logger"], "ferry.alpha");
  EXPECT_EQ(a["msg"], "alpha info") << "alpha=info lets its info through";
  EXPECT_EQ(b["logger"], "ferry.beta");
  EXPECT_EQ(b["level"], "warn") << "beta's info is below the default warn";
  EXPECT_EQ(b["msg"], "beta warn \"quoted\"\nsecond line");
}

TEST(LogEnvironment, BadVariablesAreIgnoredWithAWarning) {
  auto text = run_child("FERRY_LOG_FORMAT=xml FERRY_LOG_LEVEL=loud");
  EXPECT_NE(text.find("FERRY_LOG_LEVEL='loud' ignored: unknown level 'loud'"), std::string::npos)
      << text;
  EXPECT_NE(text.find("FERRY_LOG_FORMAT='xml' ignored"), std::string::npos) << text;
  EXPECT_NE(text.find("[ferry.alpha] alpha info"), std::string::npos) << "defaults: text at info\n"
                                                                      << text;
  EXPECT_NE(text.find("[ferry.beta] beta info"), std::string::npos) << text;

  auto plain = run_child("");
  EXPECT_EQ(plain.find("ignored"), std::string::npos) << plain;
  EXPECT_NE(plain.find("[ferry.alpha] alpha info"), std::string::npos) << plain;
}

}  // namespace
}  // namespace ferry::log
