#include "ferry/core/duration.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>

namespace ferry {

using std::chrono::milliseconds;

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// "12", "1.5": digits with at most one '.', at least one digit before it.
std::optional<double> number(std::string_view t) {
  if (t.empty() || !is_digit(t.front()) || t.back() == '.' ||
      std::count(t.begin(), t.end(), '.') > 1)
    return std::nullopt;
  return std::strtod(std::string(t).c_str(), nullptr);
}

// Up to about 30,000 years, so the conversion cannot overflow.
std::optional<milliseconds> in_range(double ms) {
  if (!(ms >= 0 && ms <= 1e15)) return std::nullopt;
  return milliseconds(static_cast<std::int64_t>(ms + 0.5));
}

std::optional<milliseconds> parse_iso(std::string_view s) {
  std::size_t pos = 1;
  bool in_time = false, any = false;
  double total = 0;
  while (pos < s.size()) {
    if (s[pos] == 'T' || s[pos] == 't') {
      if (in_time) return std::nullopt;
      in_time = true;
      ++pos;
      continue;
    }
    const std::size_t start = pos;
    while (pos < s.size() && (is_digit(s[pos]) || s[pos] == '.')) ++pos;
    if (pos == start || pos == s.size()) return std::nullopt;
    const auto n = number(s.substr(start, pos - start));
    if (!n) return std::nullopt;
    const char unit = static_cast<char>(std::toupper(static_cast<unsigned char>(s[pos++])));
    if (!in_time && unit == 'D')
      total += *n * 86'400'000.0;
    else if (in_time && unit == 'H')
      total += *n * 3'600'000.0;
    else if (in_time && unit == 'M')
      total += *n * 60'000.0;
    else if (in_time && unit == 'S')
      total += *n * 1000.0;
    else
      return std::nullopt;
    any = true;
  }
  if (!any) return std::nullopt;
  return in_range(total);
}

}  // namespace

std::optional<milliseconds> parse_duration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  if (s[0] == 'P' || s[0] == 'p') return parse_iso(s);
  double total = 0;
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::size_t start = pos;
    while (pos < s.size() && (is_digit(s[pos]) || s[pos] == '.')) ++pos;
    const auto n = number(s.substr(start, pos - start));
    if (!n) return std::nullopt;
    const std::size_t ustart = pos;
    while (pos < s.size() && std::isalpha(static_cast<unsigned char>(s[pos]))) ++pos;
    const auto unit = s.substr(ustart, pos - ustart);
    if (unit == "d")
      total += *n * 86'400'000.0;
    else if (unit == "h")
      total += *n * 3'600'000.0;
    else if (unit == "m")
      total += *n * 60'000.0;
    else if (unit == "s")
      total += *n * 1000.0;
    else if (unit == "ms")
      total += *n;
    else
      return std::nullopt;  // no unit, or one that is not in the grammar
  }
  return in_range(total);
}

std::string duration_error(std::string_view key, std::string_view text) {
  const bool bare = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return is_digit(c) || c == '.' || c == '-';
  });
  if (bare)
    return fmt::format(
        "{}: {} has no unit; write a duration with one, e.g. \"500ms\", \"30s\", \"1h30m\", "
        "\"7d\" (units: ms, s, m, h, d)",
        key, text);
  return fmt::format(
      "{}: '{}' is not a duration; write e.g. \"500ms\", \"30s\", \"1h30m\", \"7d\" (units: ms, "
      "s, m, h, d; parts add up) or ISO 8601 such as \"PT1H30M\"",
      key, text);
}

}  // namespace ferry
