// Shared pieces of the `ferry` command-line tool.
#pragma once

#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "ferry/client/options.h"
#include "ferry/core/duration.h"
#include "ferry/core/types.h"

namespace ferry::cli {

/// Exit codes: distinguish what went wrong so scripts can react.
enum exit_code : int {
  kOk = 0,
  kRefused = 1,         ///< the broker refused a request (unknown topic, invalid config, ...)
  kUsage = 2,           ///< bad command line
  kUnreachable = 3,     ///< no answer from the broker
  kFailed = 4,          ///< something else failed (I/O, a check)
  kAuthentication = 5,  ///< the broker did not admit this client's key
  kNotAuthorized = 6,   ///< admitted, but no ACL allows the operation
};

struct globals {
  std::string broker;
  std::string output = "table";  // or "json"
  long timeout_ms = 10000;
  std::string key_file;    // --key-file / FERRY_KEY_FILE
  std::string server_key;  // --server-key / FERRY_SERVER_KEY
  /// librdkafka properties for kafka:// (--kafka-config FILE lines, then
  /// --kafka-property KEY=VALUE, later ones winning).
  std::map<std::string, std::string> kafka;
  std::chrono::milliseconds timeout() const { return std::chrono::milliseconds(timeout_ms); }
  bool json() const { return output == "json"; }
  client::client_options client() const;
};

/// A broker address as the client takes it: tcp://, ipc:// and
/// kafka://HOST:PORT[,HOST:PORT...] as given, HOST:PORT as tcp://HOST:PORT;
/// nothing for anything else.
[[nodiscard]] std::optional<std::string> normalize_broker(const std::string& s);

/// Reads a librdkafka properties file (KEY=VALUE lines, # comments, like
/// kcat -F) into `out`; false with `why` for an unreadable file or line.
[[nodiscard]] bool read_kafka_config(const std::string& path,
                                     std::map<std::string, std::string>& out, std::string& why);

/// --from-time: ISO 8601, a duration before `now` (5m, 2h), or epoch ms.
[[nodiscard]] std::optional<timestamp_ms> parse_point_in_time(const std::string& s,
                                                              timestamp_ms now);

/// Prints "error: <what>: <why>. <hint>" on stderr and returns the exit code
/// for `ec` (unreachable for time-outs and disconnects, refused otherwise).
int report(const std::string& what, std::error_code ec, const std::string& detail = "");

/// A line of JSON on stdout, with invalid UTF-8 replaced rather than thrown.
void print_json(const nlohmann::json& j);

/// "2026-11-22T10:00:00Z", "2026-11-22T10:00:00.250+01:00", "2026-11-22".
/// Without a zone the time is UTC. Zones: Z, +HH, +HH:MM, +HHMM (or -).
std::optional<timestamp_ms> parse_iso8601(const std::string& s);
std::string format_iso8601(timestamp_ms t);

/// A non-negative duration: "1h30m", "15m", "2d", "90s", "250ms" (units d,
/// h, m, s, ms, in any combination) or ISO 8601 "PT1H30M", "P2D",
/// "P1DT2H", "PT0.5S": Ferry's one grammar (core/duration.h).
using ferry::parse_duration;

/// Prints rows under a header with columns as wide as their widest cell,
/// separated by two spaces (the last column is not padded).
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows);

/// True when stderr is a terminal (progress bars go there).
bool stderr_is_tty();

}  // namespace ferry::cli
