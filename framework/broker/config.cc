#include "ferry/broker/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <string_view>
#include <tuple>

#include "ferry/core/duration.h"
#include "ferry/core/errc.h"
#include "ferry/metrics/http_endpoint.h"

namespace ferry::broker {

env_lookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe): read at start-up
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

namespace {

// One settable key: its TOML path, its FERRY_* variable, and how to set it
// from a TOML node or a string.
struct key_def {
  const char* toml;  // "section.key" or "key"
  const char* env;
  std::function<bool(broker_config&, const toml::node&)> from_toml;
  std::function<bool(broker_config&, const std::string&)> from_string;
  const char* allowed;
  // When set, says what is wrong with a refused string value, in place of
  // "must be <allowed>".
  std::function<std::string(const std::string&)> explain = {};
};

template <typename T>
bool parse_int(const std::string& s, T& out) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0') return false;
  if (v < static_cast<long long>(std::numeric_limits<T>::min()) ||
      v > static_cast<long long>(std::numeric_limits<T>::max()))
    return false;
  out = static_cast<T>(v);
  return true;
}

// An integer key; `field` finds the integer inside the config.
template <typename T, typename Field>
key_def integer_key(const char* toml, const char* env, Field field, const char* allowed) {
  return {toml, env,
          [field](broker_config& c, const toml::node& n) {
            auto v = n.value<std::int64_t>();
            if (!v || !n.is_integer()) return false;
            if (*v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
                *v > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
              return false;
            field(c) = static_cast<T>(*v);
            return true;
          },
          [field](broker_config& c, const std::string& s) { return parse_int(s, field(c)); },
          allowed};
}

template <typename T>
key_def int_key(const char* toml, const char* env, T broker_config::*member, const char* allowed) {
  return integer_key<T>(
      toml, env, [member](broker_config& c) -> T& { return c.*member; }, allowed);
}

template <typename T>
key_def topic_key(const char* toml, const char* env, T topic_settings::*member,
                  const char* allowed) {
  return integer_key<T>(
      toml, env, [member](broker_config& c) -> T& { return c.topics.*member; }, allowed);
}

// A *_ms key: an integer is milliseconds (the key's name says so), a string
// is a duration in Ferry's grammar ("30s", "7d"; core/duration.h).
std::optional<std::chrono::milliseconds> ms_from_string(const std::string& s) {
  std::int64_t v;
  if (parse_int(s, v)) return std::chrono::milliseconds(v);
  return parse_duration(s);
}

std::optional<std::chrono::milliseconds> ms_from_node(const toml::node& n) {
  if (n.is_integer()) return std::chrono::milliseconds(*n.value<std::int64_t>());
  if (n.is_string()) return parse_duration(*n.value<std::string>());
  return std::nullopt;
}

key_def ms_key(const char* toml, const char* env, std::chrono::milliseconds broker_config::*field,
               const char* allowed) {
  return {toml, env,
          [field](broker_config& c, const toml::node& n) {
            auto v = ms_from_node(n);
            if (v) c.*field = *v;
            return v.has_value();
          },
          [field](broker_config& c, const std::string& s) {
            auto v = ms_from_string(s);
            if (v) c.*field = *v;
            return v.has_value();
          },
          allowed};
}

key_def socket_ms_key(const char* toml, const char* env,
                      std::chrono::milliseconds protocol::socket_options::*field,
                      const char* allowed) {
  return {toml, env,
          [field](broker_config& c, const toml::node& n) {
            auto v = ms_from_node(n);
            if (v) c.socket.*field = *v;
            return v.has_value();
          },
          [field](broker_config& c, const std::string& s) {
            auto v = ms_from_string(s);
            if (v) c.socket.*field = *v;
            return v.has_value();
          },
          allowed};
}

bool set_flush(broker_config& c, const std::string& s) {
  if (s == "on_commit")
    c.flush = storage::flush_mode::on_commit;
  else if (s == "interval")
    c.flush = storage::flush_mode::interval;
  else
    return false;
  return true;
}

bool set_recovery(broker_config& c, const std::string& s) {
  if (s == "fail")
    c.recovery = storage::recovery_policy::fail;
  else if (s == "truncate")
    c.recovery = storage::recovery_policy::truncate;
  else
    return false;
  return true;
}

key_def string_key(const char* toml, const char* env,
                   std::function<bool(broker_config&, const std::string&)> set, const char* allowed,
                   std::function<std::string(const std::string&)> explain = {}) {
  return {toml,
          env,
          [set](broker_config& c, const toml::node& n) {
            auto v = n.value<std::string>();
            return v && n.is_string() && set(c, *v);
          },
          set,
          allowed,
          std::move(explain)};
}

// true or false, in TOML as a boolean, in the environment as the word.
key_def bool_key(const char* toml, const char* env, bool& (*field)(broker_config&)) {
  return {toml, env,
          [field](broker_config& c, const toml::node& n) {
            if (!n.is_boolean()) return false;
            field(c) = *n.value<bool>();
            return true;
          },
          [field](broker_config& c, const std::string& s) {
            if (s != "true" && s != "false") return false;
            field(c) = s == "true";
            return true;
          },
          "true or false"};
}

std::string log_level_problem(const std::string& s) {
  std::string why;
  if (log::parse_levels(s, why)) return {};
  return why;
}

// "" (no endpoint) or HOST:PORT; returns what is wrong, or "" when fine.
std::string host_port_problem(std::string_view s) {
  return s.empty() ? std::string() : metrics::listen_problem(s);
}

// "" or HOST:PORT where HOST may be a name (what clients connect to).
std::string advertised_problem(std::string_view s) {
  if (s.empty()) return {};
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size())
    return "expected HOST:PORT";
  int port = -1;
  const auto digits = s.substr(colon + 1);
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || p != digits.data() + digits.size() || port < 1 || port > 65535)
    return "the port must be 1..65535";
  return {};
}

const std::vector<key_def>& keys() {
  static const std::vector<key_def> k = {
      string_key(
          "data_dir", "FERRY_DATA_DIR",
          [](broker_config& c, const std::string& s) {
            c.data_dir = s;
            return !s.empty();
          },
          "a directory path"),
      string_key(
          "listen", "FERRY_LISTEN",
          [](broker_config& c, const std::string& s) {
            c.listen = s;
            return s.rfind("tcp://", 0) == 0 || s.rfind("ipc://", 0) == 0 ||
                   s.rfind("inproc://", 0) == 0;
          },
          "a ZeroMQ endpoint such as tcp://127.0.0.1:7400"),
      string_key(
          "log_level", "FERRY_LOG_LEVEL",
          [](broker_config& c, const std::string& s) {
            c.log_level = s;
            return log_level_problem(s).empty();
          },
          "a level (trace, debug, info, warn, error, critical or off), optionally followed by "
          "module=level, e.g. warn,storage=debug",
          log_level_problem),
      string_key(
          "log_format", "FERRY_LOG_FORMAT",
          [](broker_config& c, const std::string& s) {
            auto f = log::parse_format(s);
            if (f) c.log_format = *f;
            return f.has_value();
          },
          "text or json (one JSON object per line)"),
      string_key(
          "metrics_listen", "FERRY_METRICS_LISTEN",
          [](broker_config& c, const std::string& s) {
            c.metrics_listen = s;
            return host_port_problem(s).empty();
          },
          "HOST:PORT such as 127.0.0.1:9400 (port 0..65535), or empty for no metrics endpoint",
          [](const std::string& s) { return host_port_problem(s); }),
      string_key(
          "kafka_listen", "FERRY_KAFKA_LISTEN",
          [](broker_config& c, const std::string& s) {
            c.kafka_listen = s;
            return host_port_problem(s).empty();
          },
          "HOST:PORT such as 127.0.0.1:9092 (port 0..65535), or empty for no Kafka listener",
          [](const std::string& s) { return host_port_problem(s); }),
      string_key(
          "kafka_advertised", "FERRY_KAFKA_ADVERTISED",
          [](broker_config& c, const std::string& s) {
            c.kafka_advertised = s;
            return advertised_problem(s).empty();
          },
          "HOST:PORT that Kafka clients can reach, such as broker1.example.com:9092",
          [](const std::string& s) { return advertised_problem(s); }),
      int_key("network.max_request_bytes", "FERRY_NETWORK_MAX_REQUEST_BYTES",
              &broker_config::kafka_max_request_bytes, "1024..1073741824"),
      ms_key("network.kafka_idle_ms", "FERRY_NETWORK_KAFKA_IDLE_MS",
             &broker_config::kafka_idle_timeout, "1000..86400000"),
      topic_key("topics.partitions", "FERRY_TOPICS_PARTITIONS", &topic_settings::partitions,
                "1..10000"),
      topic_key("topics.retention_ms", "FERRY_TOPICS_RETENTION_MS", &topic_settings::retention_ms,
                "-1 (forever) or a positive number of milliseconds"),
      topic_key("topics.retention_bytes", "FERRY_TOPICS_RETENTION_BYTES",
                &topic_settings::retention_bytes, "-1 (unlimited) or a positive number of bytes"),
      topic_key("topics.segment_bytes", "FERRY_TOPICS_SEGMENT_BYTES",
                &topic_settings::segment_bytes, "4096..1073741824"),
      topic_key("topics.max_message_bytes", "FERRY_TOPICS_MAX_MESSAGE_BYTES",
                &topic_settings::max_message_bytes, "1024..67108864"),
      string_key(
          "storage.flush", "FERRY_STORAGE_FLUSH", set_flush,
          "on_commit (durable, default) or interval (relaxed: can lose acknowledged records)"),
      ms_key("storage.flush_interval_ms", "FERRY_STORAGE_FLUSH_INTERVAL_MS",
             &broker_config::flush_interval, "1..3600000"),
      string_key("storage.recovery", "FERRY_STORAGE_RECOVERY", set_recovery,
                 "fail (default) or truncate"),
      int_key("storage.index_interval_bytes", "FERRY_STORAGE_INDEX_INTERVAL_BYTES",
              &broker_config::index_interval_bytes, "128..1048576"),
      ms_key("storage.retention_check_interval_ms", "FERRY_STORAGE_RETENTION_CHECK_INTERVAL_MS",
             &broker_config::retention_check_interval, "10..86400000"),
      socket_ms_key("network.handshake_ms", "FERRY_NETWORK_HANDSHAKE_MS",
                    &protocol::socket_options::handshake, "100..600000"),
      socket_ms_key("network.heartbeat_ms", "FERRY_NETWORK_HEARTBEAT_MS",
                    &protocol::socket_options::heartbeat_interval, "100..600000"),
      socket_ms_key("network.heartbeat_timeout_ms", "FERRY_NETWORK_HEARTBEAT_TIMEOUT_MS",
                    &protocol::socket_options::heartbeat_timeout, "100..600000"),
      integer_key<std::int64_t>(
          "network.max_message_bytes", "FERRY_NETWORK_MAX_MESSAGE_BYTES",
          [](broker_config& c) -> std::int64_t& { return c.socket.max_message_bytes; },
          "65536..1073741824"),
      int_key("network.max_fetch_bytes", "FERRY_NETWORK_MAX_FETCH_BYTES",
              &broker_config::max_fetch_bytes, "65536..(network.max_message_bytes - 65536)"),
      int_key("network.max_in_flight", "FERRY_NETWORK_MAX_IN_FLIGHT", &broker_config::max_in_flight,
              "1..1000000"),
      int_key("network.max_in_flight_per_connection", "FERRY_NETWORK_MAX_IN_FLIGHT_PER_CONNECTION",
              &broker_config::max_in_flight_per_connection, "1..network.max_in_flight"),
      ms_key("network.max_fetch_wait_ms", "FERRY_NETWORK_MAX_FETCH_WAIT_MS",
             &broker_config::max_fetch_wait, "0..600000"),
      ms_key("groups.offsets_retention_ms", "FERRY_GROUPS_OFFSETS_RETENTION_MS",
             &broker_config::offsets_retention, "60000..31536000000 (one minute to a year)"),
      ms_key("groups.min_session_timeout_ms", "FERRY_GROUPS_MIN_SESSION_TIMEOUT_MS",
             &broker_config::min_session_timeout, "100..3600000"),
      ms_key("groups.max_session_timeout_ms", "FERRY_GROUPS_MAX_SESSION_TIMEOUT_MS",
             &broker_config::max_session_timeout, "100..3600000"),
      ms_key("groups.ledger_retention_ms", "FERRY_GROUPS_LEDGER_RETENTION_MS",
             &broker_config::ledger_retention, "60000..31536000000 (one minute to a year)"),
      int_key("groups.ledger_max_keys", "FERRY_GROUPS_LEDGER_MAX_KEYS",
              &broker_config::ledger_max_keys, "1..100000000"),
      integer_key<std::int64_t>(
          "quotas.produce_bytes_per_second", "FERRY_QUOTAS_PRODUCE_BYTES_PER_SECOND",
          [](broker_config& c) -> std::int64_t& { return c.quotas.produce_bytes_per_second; },
          "0 (no limit) or bytes per second, at least 1024"),
      integer_key<std::int64_t>(
          "quotas.fetch_bytes_per_second", "FERRY_QUOTAS_FETCH_BYTES_PER_SECOND",
          [](broker_config& c) -> std::int64_t& { return c.quotas.fetch_bytes_per_second; },
          "0 (no limit) or bytes per second, at least 1024"),
      ms_key("quotas.max_throttle_ms", "FERRY_QUOTAS_MAX_THROTTLE_MS",
             &broker_config::quota_max_throttle, "100..20000"),
      integer_key<std::int64_t>(
          "quotas.in_flight_bytes", "FERRY_QUOTAS_IN_FLIGHT_BYTES",
          [](broker_config& c) -> std::int64_t& { return c.quotas.in_flight_bytes; },
          "0 (no limit) or bytes, at least 65536"),
      bool_key("security.enabled", "FERRY_SECURITY_ENABLED",
               [](broker_config& c) -> bool& { return c.security.enabled; }),
      string_key(
          "security.server_key_file", "FERRY_SECURITY_SERVER_KEY_FILE",
          [](broker_config& c, const std::string& s) {
            c.security.server_key_file = s;
            return !s.empty();
          },
          "the path of ferryd's NAME.key (ferry keys generate)"),
      string_key(
          "security.users_file", "FERRY_SECURITY_USERS_FILE",
          [](broker_config& c, const std::string& s) {
            c.security.users_file = s;
            return !s.empty();
          },
          "the path of the users file ([users.NAME] public_key = \"Z85...\")"),
      bool_key("security.kafka_plaintext", "FERRY_SECURITY_KAFKA_PLAINTEXT",
               [](broker_config& c) -> bool& { return c.security.kafka_plaintext; }),
      string_key(
          "security.kafka_tls_cert_file", "FERRY_SECURITY_KAFKA_TLS_CERT_FILE",
          [](broker_config& c, const std::string& s) {
            c.security.kafka_tls_cert_file = s;
            return true;
          },
          "the path of the Kafka listener's certificate chain (PEM)"),
      string_key(
          "security.kafka_tls_key_file", "FERRY_SECURITY_KAFKA_TLS_KEY_FILE",
          [](broker_config& c, const std::string& s) {
            c.security.kafka_tls_key_file = s;
            return true;
          },
          "the path of the Kafka listener's private key (PEM)"),
      string_key(
          "security.kafka_tls_ca_file", "FERRY_SECURITY_KAFKA_TLS_CA_FILE",
          [](broker_config& c, const std::string& s) {
            c.security.kafka_tls_ca_file = s;
            return true;
          },
          "the path of the CAs that sign Kafka clients' certificates (PEM)"),
      string_key(
          "security.kafka_tls_client_auth", "FERRY_SECURITY_KAFKA_TLS_CLIENT_AUTH",
          [](broker_config& c, const std::string& s) {
            c.security.kafka_tls_client_auth = s;
            return s == "none" || s == "requested" || s == "required";
          },
          "none (default), requested or required"),
      string_key(
          "security.acl_file", "FERRY_SECURITY_ACL_FILE",
          [](broker_config& c, const std::string& s) {
            c.security.acl_file = s;
            return !s.empty();
          },
          "the path of the ACL file (default: acls.toml in the data directory)"),
      string_key(
          "security.audit_file", "FERRY_SECURITY_AUDIT_FILE",
          [](broker_config& c, const std::string& s) {
            c.security.audit_file = s;
            return true;
          },
          "the path of the audit log (one JSON line per admin action), or empty for none"),
      string_key(
          "schemas.compatibility", "FERRY_SCHEMAS_COMPATIBILITY",
          [](broker_config& c, const std::string& s) {
            auto m = schema::parse_mode(s);
            if (m) c.schema_compatibility = *m;
            return m.has_value();
          },
          "NONE, BACKWARD (default), BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL or "
          "FULL_TRANSITIVE"),
  };
  return k;
}

// toml++ reads `listen = tcp://...` as a broken boolean; say what it is:
// "; strings need quotes: listen = "tcp://..."" (or "" when the line is not
// KEY = unquoted text).
std::string unquoted_string_hint(const std::filesystem::path& file, std::uint32_t line_no) {
  std::ifstream in(file);
  std::string line;
  for (std::uint32_t i = 0; i < line_no && std::getline(in, line); ++i) {
  }
  if (!in) return {};
  const auto eq = line.find('=');
  if (eq == std::string::npos) return {};
  auto trim = [](std::string v) {
    const auto b = v.find_first_not_of(" \t");
    if (b == std::string::npos) return std::string();
    const auto e = v.find_last_not_of(" \t\r");
    return v.substr(b, e - b + 1);
  };
  const auto key = trim(line.substr(0, eq));
  auto value = line.substr(eq + 1);
  if (const auto hash = value.find(" #"); hash != std::string::npos) value.resize(hash);
  value = trim(value);
  if (key.empty() || value.empty()) return {};
  if (std::string_view("\"'[{").find(value.front()) != std::string_view::npos) return {};
  if (value == "true" || value == "false") return {};
  const bool number = std::all_of(value.begin(), value.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '_' ||
           c == '.' || c == 'e' || c == 'E';
  });
  if (number) return {};
  return fmt::format("; strings need quotes: {} = \"{}\"", key, value);
}

std::error_code bad(std::string& error, std::string msg) {
  error = std::move(msg);
  return ferry::errc::config_invalid;
}

}  // namespace

result<broker_config> load_config(const std::optional<std::filesystem::path>& toml_file,
                                  const env_lookup& env, std::string& error) {
  broker_config c;
  if (toml_file) {
    toml::table tbl;
    try {
      tbl = toml::parse_file(toml_file->string());
    } catch (const toml::parse_error& e) {
      const auto& src = e.source();
      return bad(error, fmt::format("{}:{}:{}: {}{}", toml_file->string(), src.begin.line,
                                    src.begin.column, e.description(),
                                    unquoted_string_hint(*toml_file, src.begin.line)));
    }
    // Every key in the file must be known: a typo must not be ignored silently.
    std::vector<std::string> known;
    for (const auto& k : keys()) known.emplace_back(k.toml);
    std::string unknown;
    tbl.for_each([&](const toml::key& key, const toml::node& node) {
      if (const auto* sub = node.as_table()) {
        sub->for_each([&](const toml::key& k2, const toml::node&) {
          auto full = std::string(key.str()) + "." + std::string(k2.str());
          if (std::find(known.begin(), known.end(), full) == known.end() && unknown.empty())
            unknown = full;
        });
      } else if (std::find(known.begin(), known.end(), std::string(key.str())) == known.end() &&
                 unknown.empty()) {
        unknown = std::string(key.str());
      }
    });
    if (!unknown.empty())
      return bad(error, fmt::format("{}: unknown key '{}' (see docs/operations.md for the keys)",
                                    toml_file->string(), unknown));
    for (const auto& k : keys()) {
      auto node = tbl.at_path(k.toml);
      if (!node) continue;
      if (!k.from_toml(c, *node.node())) {
        auto v = node.value<std::string>();
        if (k.explain && v && node.is_string())
          return bad(error, fmt::format("{}: {} = \"{}\": {}", toml_file->string(), k.toml, *v,
                                        k.explain(*v)));
        return bad(error, fmt::format("{}: {} must be {}", toml_file->string(), k.toml, k.allowed));
      }
    }
    // Key files named in the file are found next to it.
    const auto base = toml_file->parent_path();
    for (auto* p : {&c.security.server_key_file, &c.security.users_file, &c.security.acl_file,
                    &c.security.audit_file, &c.security.kafka_tls_cert_file,
                    &c.security.kafka_tls_key_file, &c.security.kafka_tls_ca_file})
      if (!p->empty() && p->is_relative()) *p = base / *p;
  }
  for (const auto& k : keys()) {
    auto v = env(k.env);
    if (!v) continue;
    if (!k.from_string(c, *v)) {
      if (k.explain) return bad(error, fmt::format("{}={}: {}", k.env, *v, k.explain(*v)));
      return bad(error, fmt::format("{}={}: must be {}", k.env, *v, k.allowed));
    }
  }
  return c;
}

std::optional<std::filesystem::path> default_config_file(const env_lookup& env) {
  if (auto v = env("FERRY_CONFIG"); v && !v->empty()) return std::filesystem::path(*v);
  std::error_code ec;
  const std::filesystem::path system = "/etc/ferry/ferryd.toml";
  if (std::filesystem::exists(system, ec)) return system;
  return std::nullopt;
}

std::filesystem::path acl_file_of(const broker_config& c) {
  return c.security.acl_file.empty() ? c.data_dir / "acls.toml" : c.security.acl_file;
}

result<void> validate(const broker_config& c, std::string& error) {
  auto range = [&](const char* key, std::int64_t v, std::int64_t lo,
                   std::int64_t hi) -> std::error_code {
    if (v < lo || v > hi)
      return bad(error, fmt::format("{} = {} is out of range [{}, {}]", key, v, lo, hi));
    return {};
  };
  if (c.data_dir.empty())
    return bad(
        error,
        "data_dir is not set: pass --data-dir DIR, FERRY_DATA_DIR or data_dir in the config file");
  if (c.security.enabled) {
    if (c.security.server_key_file.empty() || c.security.users_file.empty())
      return bad(error,
                 "security.enabled needs security.server_key_file (ferryd's NAME.key: ferry keys "
                 "generate server) and security.users_file (docs/security.md)");
    const auto host = c.kafka_listen.substr(0, c.kafka_listen.rfind(':'));
    const bool loopback = host.rfind("127.", 0) == 0 || host == "localhost" || host == "[::1]";
    if (!c.kafka_listen.empty() && !loopback && !c.security.kafka_tls() &&
        !c.security.kafka_plaintext)
      return bad(error,
                 fmt::format("kafka_listen = \"{}\" with security on but without TLS: Kafka "
                             "clients would authenticate but send and receive in the clear; set "
                             "security.kafka_tls_cert_file and security.kafka_tls_key_file "
                             "(docs/security.md#tls), listen on 127.0.0.1, or accept it with "
                             "security.kafka_plaintext = true",
                             c.kafka_listen));
  }
  {
    const auto& s = c.security;
    if (s.kafka_tls_cert_file.empty() != s.kafka_tls_key_file.empty())
      return bad(error,
                 "TLS on the Kafka listener needs both security.kafka_tls_cert_file and "
                 "security.kafka_tls_key_file (docs/security.md#tls)");
    if (s.kafka_tls() && c.kafka_listen.empty())
      return bad(error,
                 "security.kafka_tls_cert_file is set but there is no Kafka listener: set "
                 "kafka_listen, or remove the TLS settings");
    const bool verify = s.kafka_tls_client_auth != "none";
    if (verify && (!s.kafka_tls() || s.kafka_tls_ca_file.empty()))
      return bad(error,
                 fmt::format("security.kafka_tls_client_auth = \"{}\" needs TLS "
                             "(security.kafka_tls_cert_file and kafka_tls_key_file) and "
                             "security.kafka_tls_ca_file, the CAs that sign client certificates",
                             s.kafka_tls_client_auth));
    if (!verify && !s.kafka_tls_ca_file.empty())
      return bad(error,
                 "security.kafka_tls_ca_file is set but security.kafka_tls_client_auth is "
                 "\"none\": set it to \"requested\" or \"required\" to verify client "
                 "certificates, or remove the CA file");
  }
  if (auto ec = range("quotas.max_throttle_ms", c.quota_max_throttle.count(), 100, 20'000))
    return ec;
  for (const auto& [key, v, least] :
       {std::tuple{"quotas.produce_bytes_per_second", c.quotas.produce_bytes_per_second, 1024ll},
        std::tuple{"quotas.fetch_bytes_per_second", c.quotas.fetch_bytes_per_second, 1024ll},
        std::tuple{"quotas.in_flight_bytes", c.quotas.in_flight_bytes, 65536ll}})
    if (v != 0)
      if (auto ec = range(key, v, least, std::numeric_limits<std::int64_t>::max())) return ec;
  if (auto why = log_level_problem(c.log_level); !why.empty())
    return bad(error, fmt::format("log_level = \"{}\": {}", c.log_level, why));
  if (auto why = host_port_problem(c.metrics_listen); !why.empty())
    return bad(error, fmt::format("metrics_listen = \"{}\": {}", c.metrics_listen, why));
  if (auto why = host_port_problem(c.kafka_listen); !why.empty())
    return bad(error, fmt::format("kafka_listen = \"{}\": {}", c.kafka_listen, why));
  if (auto why = advertised_problem(c.kafka_advertised); !why.empty())
    return bad(error, fmt::format("kafka_advertised = \"{}\": {}", c.kafka_advertised, why));
  if (auto ec = range("network.max_request_bytes", c.kafka_max_request_bytes, 1024, 1ll << 30))
    return ec;
  if (auto ec = range("topics.partitions", c.topics.partitions, 1, c.max_partitions)) return ec;
  if (c.topics.retention_ms != -1) {
    if (auto ec = range("topics.retention_ms", c.topics.retention_ms, 1,
                        std::numeric_limits<std::int64_t>::max()))
      return ec;
  }
  if (c.topics.retention_bytes != -1) {
    if (auto ec = range("topics.retention_bytes", c.topics.retention_bytes, 1,
                        std::numeric_limits<std::int64_t>::max()))
      return ec;
  }
  if (auto ec = range("topics.segment_bytes", c.topics.segment_bytes, 4096, 1ll << 30)) return ec;
  if (auto ec = range("topics.max_message_bytes", c.topics.max_message_bytes, 1024, 64 << 20))
    return ec;
  if (auto ec = range("storage.flush_interval_ms", c.flush_interval.count(), 1, 3'600'000))
    return ec;
  if (auto ec = range("storage.index_interval_bytes", c.index_interval_bytes, 128, 1 << 20))
    return ec;
  if (auto ec = range("storage.retention_check_interval_ms", c.retention_check_interval.count(), 10,
                      86'400'000))
    return ec;
  if (auto ec = range("network.handshake_ms", c.socket.handshake.count(), 100, 600'000)) return ec;
  if (auto ec = range("network.heartbeat_ms", c.socket.heartbeat_interval.count(), 100, 600'000))
    return ec;
  if (auto ec =
          range("network.heartbeat_timeout_ms", c.socket.heartbeat_timeout.count(), 100, 600'000))
    return ec;
  if (auto ec = range("network.max_message_bytes", c.socket.max_message_bytes, 65536, 1ll << 30))
    return ec;
  if (c.socket.max_message_bytes < c.topics.max_message_bytes + 65536)
    return bad(error,
               "network.max_message_bytes must exceed topics.max_message_bytes by at least 64 KiB "
               "(room for the envelope)");
  if (auto ec = range("network.max_in_flight", c.max_in_flight, 1, 1'000'000)) return ec;
  if (auto ec = range("network.max_in_flight_per_connection", c.max_in_flight_per_connection, 1,
                      c.max_in_flight))
    return ec;
  if (auto ec = range("network.max_fetch_bytes", c.max_fetch_bytes, 65536,
                      c.socket.max_message_bytes - 65536))
    return ec;
  if (c.socket.heartbeat_timeout < c.socket.heartbeat_interval)
    return bad(error, "network.heartbeat_timeout_ms must be at least network.heartbeat_ms");
  if (auto ec = range("network.max_fetch_wait_ms", c.max_fetch_wait.count(), 0, 600'000)) return ec;
  if (auto ec =
          range("groups.offsets_retention_ms", c.offsets_retention.count(), 60'000, 31'536'000'000))
    return ec;
  if (auto ec =
          range("groups.min_session_timeout_ms", c.min_session_timeout.count(), 100, 3'600'000))
    return ec;
  if (auto ec =
          range("groups.max_session_timeout_ms", c.max_session_timeout.count(), 100, 3'600'000))
    return ec;
  if (auto ec =
          range("groups.ledger_retention_ms", c.ledger_retention.count(), 60'000, 31'536'000'000))
    return ec;
  if (auto ec = range("groups.ledger_max_keys", c.ledger_max_keys, 1, 100'000'000)) return ec;
  if (c.max_session_timeout < c.min_session_timeout)
    return bad(error,
               "groups.max_session_timeout_ms must be at least groups.min_session_timeout_ms");
  return success();
}

}  // namespace ferry::broker
