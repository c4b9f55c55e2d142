// Reading Prometheus text exposition in tests: every sample line parsed,
// looked up by name and (a subset of) labels.
#pragma once

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace ferry::testing {

struct metric_sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// Parses every sample line; a malformed line fails the calling test.
inline std::vector<metric_sample> parse_exposition(const std::string& text) {
  std::vector<metric_sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    metric_sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        auto eq = line.find('=', i);
        EXPECT_NE(eq, std::string::npos) << line;
        if (eq == std::string::npos) return out;
        std::string key = line.substr(i, eq - i), value;
        i = eq + 1;
        EXPECT_EQ(line[i], '"') << line;
        ++i;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            ++i;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
          ++i;
        }
        ++i;  // closing quote
        s.labels[key] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    EXPECT_EQ(line[i], ' ') << line;
    const auto v = line.substr(i + 1);
    if (v == "+Inf")
      s.value = INFINITY;
    else if (v == "-Inf")
      s.value = -INFINITY;
    else if (v == "NaN")
      s.value = NAN;
    else
      s.value = std::stod(v);
    out.push_back(std::move(s));
  }
  return out;
}

/// The value of the sample `name` whose labels include `labels`, if exactly
/// one matches; nullopt if none does (several: the test fails).
inline std::optional<double> sample_value(const std::string& text, const std::string& name,
                                          const std::map<std::string, std::string>& labels = {}) {
  std::optional<double> found;
  for (const auto& s : parse_exposition(text)) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (!match) continue;
    EXPECT_FALSE(found) << "several samples of " << name << " match";
    found = s.value;
  }
  return found;
}

}  // namespace ferry::testing
