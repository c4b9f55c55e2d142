#include "cli.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>

#include "ferry/client/errc.h"
#include "ferry/core/errc.h"
#include "ferry/protocol/errc.h"

namespace ferry::cli {

namespace {
std::string& broker_in_use() {
  static std::string b;
  return b;
}
}  // namespace

client::client_options globals::client() const {
  broker_in_use() = broker;  // for the hint when it does not answer
  client::client_options o;
  o.broker = broker;
  o.request_timeout = timeout();
  o.api_timeout = timeout();
  o.key_file = key_file;
  o.server_key = server_key;
  o.kafka = kafka;
  return o;
}

bool read_kafka_config(const std::string& path, std::map<std::string, std::string>& out,
                       std::string& why) {
  std::ifstream in(path);
  if (!in) {
    why = fmt::format("cannot read {}: {}", path, std::strerror(errno));
    return false;
  }
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos || eq == first) {
      why = fmt::format("{}:{}: expected KEY=VALUE", path, n);
      return false;
    }
    auto key = line.substr(first, eq - first);
    key.erase(key.find_last_not_of(" \t") + 1);
    out[key] = line.substr(eq + 1);
  }
  return true;
}

namespace {

// No answer from the broker: a time-out on a request, a lost connection,
// or a producer that timed out waiting for it.
bool unreachable(std::error_code ec) {
  return ec == protocol::errc::timed_out || ec == protocol::errc::disconnected ||
         ec == ferry::errc::timed_out;
}

std::string hint_for(std::error_code ec) {
  if (unreachable(ec))
    return fmt::format("Is ferryd running at {}? Check --broker or FERRY_BROKER.",
                       broker_in_use().empty() ? std::string("the broker") : broker_in_use());
  if (ec == client::errc::unknown_topic)
    return "Create it with: ferry topics create NAME --partitions N";
  if (ec == client::errc::unknown_partition)
    return "See the partitions with: ferry topics describe NAME";
  if (ec == client::errc::offset_out_of_range)
    return "See the valid range with: ferry topics describe NAME";
  if (ec == client::errc::topic_already_exists)
    return "Inspect it with: ferry topics describe NAME";
  if (ec == client::errc::partition_failed)
    return "The broker log says why; fix the disk and restart ferryd.";
  if (ec == client::errc::record_too_large)
    return "Send smaller records or raise the topic's max message size.";
  if (ec == client::errc::invalid_topic_name || ec == client::errc::invalid_group_name)
    return "Use 1-249 characters of [A-Za-z0-9._-].";
  if (ec == client::errc::unknown_group) return "See the groups with: ferry groups list";
  if (ec == client::errc::group_not_empty)
    return "Stop the group's consumers first; see them with: ferry groups describe GROUP "
           "--members";
  if (ec == client::errc::offset_regression)
    return "Move a group's offsets back with: ferry groups reset-offsets";
  if (ec == client::errc::unknown_subject || ec == client::errc::unknown_schema)
    return "See the registered schemas with: ferry schema list";
  if (ec == client::errc::schema_required)
    return "Produce with a registered schema id (docs/schemas.md), or turn validation off with: "
           "ferry schema enforce TOPIC --off";
  if (ec == client::errc::invalid_schema)
    return "Give a .fbs file with a root_type; ferry compiles it for you";
  if (ec == client::errc::authentication_failed)
    return "Give this client's key and the broker's public key (--key-file NAME.key --server-key "
           "server.pub, or FERRY_KEY_FILE and FERRY_SERVER_KEY), and make sure the key's public "
           "half is in the broker's users file (docs/security.md)";
  if (ec == client::errc::not_authorized)
    return "See this user's rules with: ferry acls list --principal USER (needs describe on the "
           "cluster), or ask the broker's administrator (docs/security.md#authorization)";
  return "";
}

}  // namespace

std::optional<std::string> normalize_broker(const std::string& s) {
  auto host_port = [](std::string_view hp) {
    const auto colon = hp.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == hp.size()) return false;
    const auto port = hp.substr(colon + 1);
    if (port == "*") return true;  // a wildcard port (ZeroMQ's bind syntax)
    if (port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    return std::stoi(std::string(port)) <= 65535;
  };
  if (s.rfind("ipc://", 0) == 0) return s.size() > 6 ? std::optional(s) : std::nullopt;
  if (s.rfind("kafka://", 0) == 0) {
    std::string_view rest = std::string_view(s).substr(8);
    if (rest.empty()) return std::nullopt;
    for (;;) {
      const auto comma = rest.find(',');
      const auto one = rest.substr(0, comma);
      if (!host_port(one) || one.ends_with(":*")) return std::nullopt;
      if (comma == std::string_view::npos) return s;
      rest = rest.substr(comma + 1);
    }
  }
  if (s.rfind("tcp://", 0) == 0)
    return host_port(std::string_view(s).substr(6)) ? std::optional(s) : std::nullopt;
  if (s.find("://") != std::string::npos) return std::nullopt;
  if (host_port(s)) return "tcp://" + s;
  return std::nullopt;
}

std::optional<timestamp_ms> parse_point_in_time(const std::string& s, timestamp_ms now) {
  if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return s.size() <= 15 ? std::optional(timestamp_ms(std::stoll(s))) : std::nullopt;
  if (auto d = parse_duration(s)) return timestamp_ms(now.value() - d->count());
  return parse_iso8601(s);
}

int report(const std::string& what, std::error_code ec, const std::string& detail) {
  std::string msg = fmt::format("error: {}: {}", what, ec.message());
  // The broker's message usually says it better; print it instead of the
  // code's generic text when it already contains that text.
  if (!detail.empty() && detail.find(ec.message()) != std::string::npos)
    msg = fmt::format("error: {}: {}", what, detail);
  else if (!detail.empty())
    msg += fmt::format(" ({})", detail);
  auto hint = hint_for(ec);
  if (!hint.empty()) msg += ". " + hint;
  std::cerr << msg << "\n";
  if (unreachable(ec)) return kUnreachable;
  if (ec == client::errc::authentication_failed) return kAuthentication;
  if (ec == client::errc::not_authorized) return kNotAuthorized;
  if (ec == ferry::errc::not_supported) return kUsage;
  return kRefused;
}

void print_json(const nlohmann::json& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

std::optional<timestamp_ms> parse_iso8601(const std::string& s) {
  int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, n = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3) return std::nullopt;
  std::size_t pos = static_cast<std::size_t>(n);
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == ' ')) {
    int m = 0;
    if (std::sscanf(s.c_str() + pos + 1, "%2d:%2d%n", &h, &mi, &m) != 2) return std::nullopt;
    pos += 1 + static_cast<std::size_t>(m);
    if (pos < s.size() && s[pos] == ':') {
      if (std::sscanf(s.c_str() + pos + 1, "%2d%n", &sec, &m) != 1) return std::nullopt;
      pos += 1 + static_cast<std::size_t>(m);
    }
    if (pos < s.size() && s[pos] == '.') {
      std::size_t start = ++pos;
      while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
      std::string frac = s.substr(start, pos - start);
      if (frac.empty()) return std::nullopt;
      frac.resize(3, '0');
      ms = std::stoi(frac.substr(0, 3));
    }
  }
  long offset_s = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z' && pos + 1 == s.size()) {
      pos++;
    } else if (s[pos] == '+' || s[pos] == '-') {
      // +HH, +HH:MM or +HHMM, nothing after it.
      std::string z = s.substr(pos + 1);
      if (z.size() == 5 && z[2] == ':') z.erase(2, 1);
      if ((z.size() != 2 && z.size() != 4) ||
          !std::all_of(z.begin(), z.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
      const int oh = std::stoi(z.substr(0, 2));
      const int om = z.size() == 4 ? std::stoi(z.substr(2, 2)) : 0;
      if (oh > 23 || om > 59) return std::nullopt;
      offset_s = (oh * 3600L + om * 60L) * (s[pos] == '-' ? -1 : 1);
      pos = s.size();
    } else {
      return std::nullopt;
    }
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  auto t = static_cast<std::int64_t>(timegm(&tm)) - offset_s;
  return timestamp_ms(t * 1000 + ms);
}

std::string format_iso8601(timestamp_ms t) {
  std::time_t secs = static_cast<std::time_t>(t.value() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     static_cast<int>(((t.value() % 1000) + 1000) % 1000));
}

void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& r) {
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  };
  measure(header);
  for (const auto& r : rows) measure(r);
  auto line = [&](const std::vector<std::string>& r) {
    std::string out;
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i) {
      if (i + 1 == r.size())
        out += r[i];
      else
        out += fmt::format("{:<{}}  ", r[i], width[i]);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    std::cout << out << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
}

bool stderr_is_tty() {
  return ::isatty(2) != 0;
}

}  // namespace ferry::cli
