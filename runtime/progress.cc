#include "progress.h"

#include <nlohmann/json.hpp>

namespace ferry::runtime::detail {

using json = nlohmann::json;

namespace {

json to_json(const progress& p, bool errors) {
  json j = {{"v", 1}};
  if (!p.watermarks.empty()) j["w"] = p.watermarks;
  if (!p.attempts.empty()) {
    json a = json::array();
    for (const auto& x : p.attempts) {
      json e = json{x.offset, x.attempts, x.first_ms};
      if (errors || x.route >= 0) e.push_back(errors ? x.last_error : std::string());
      if (x.route >= 0) e.push_back(x.route);
      a.push_back(std::move(e));
    }
    j["a"] = std::move(a);
  }
  if (!p.done.empty()) {
    json d = json::array();
    for (const auto& [a, b] : p.done) d.push_back(json{a, b});
    j["d"] = std::move(d);
  }
  return j;
}

}  // namespace

std::string encode_progress(const progress& p, std::size_t limit) {
  // Error texts may hold any bytes: replace invalid UTF-8 rather than throw.
  auto dump = [](const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); };
  std::string s = dump(to_json(p, true));
  if (s.size() <= limit) return s;
  progress q = p;
  s = dump(to_json(q, false));
  while (s.size() > limit && !q.done.empty()) {
    q.done.pop_back();
    s = dump(to_json(q, false));
  }
  while (s.size() > limit && !q.attempts.empty()) {
    q.attempts.pop_back();
    s = dump(to_json(q, false));
  }
  return s;
}

std::optional<progress> decode_progress(std::string_view metadata) {
  if (metadata.empty() || metadata.front() != '{') return std::nullopt;
  auto j = json::parse(metadata, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("v", 0) != 1) return std::nullopt;
  progress p;
  try {
    if (auto w = j.find("w"); w != j.end() && w->is_object())
      for (auto it = w->begin(); it != w->end(); ++it)
        if (it.value().is_number_integer()) p.watermarks[it.key()] = it.value().get<std::int64_t>();
    if (auto a = j.find("a"); a != j.end() && a->is_array())
      for (const auto& x : *a) {
        if (!x.is_array() || x.size() < 3) continue;
        parked_attempts pa;
        pa.offset = x[0].get<std::int64_t>();
        pa.attempts = x[1].get<int>();
        pa.first_ms = x[2].get<std::int64_t>();
        if (x.size() > 3 && x[3].is_string()) pa.last_error = x[3].get<std::string>();
        if (x.size() > 4 && x[4].is_number_integer()) pa.route = x[4].get<int>();
        p.attempts.push_back(std::move(pa));
      }
    if (auto d = j.find("d"); d != j.end() && d->is_array())
      for (const auto& x : *d)
        if (x.is_array() && x.size() == 2)
          p.done.emplace_back(x[0].get<std::int64_t>(), x[1].get<std::int64_t>());
  } catch (const json::exception&) {
    return std::nullopt;
  }
  return p;
}

std::vector<std::pair<std::int64_t, std::int64_t>> to_ranges(
    const std::vector<std::int64_t>& sorted) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  for (auto o : sorted) {
    if (!out.empty() && out.back().second + 1 == o)
      out.back().second = o;
    else
      out.emplace_back(o, o);
  }
  return out;
}

}  // namespace ferry::runtime::detail
