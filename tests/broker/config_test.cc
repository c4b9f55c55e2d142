// Broker configuration: defaults < TOML < FERRY_* environment, and clear
// errors for bad values; ferryd --check-config exit codes.
#include "ferry/broker/config.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

namespace ferry::broker {
namespace {

env_lookup fake_env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::filesystem::path write_toml(const std::string& text) {
  auto p = std::filesystem::temp_directory_path() /
           ("ferry-config-test-" + std::to_string(::getpid()) + ".toml");
  std::ofstream(p) << text;
  return p;
}

TEST(BrokerConfig, LayersDefaultsFileAndEnvironment) {
  auto file = write_toml(R"(
data_dir = "/var/lib/ferry"
listen = "tcp://127.0.0.1:7500"
[topics]
partitions = 6
retention_ms = 3600000
[storage]
flush = "interval"
flush_interval_ms = 200
)");
  std::string err;
  auto c = load_config(
      file, fake_env({{"FERRY_TOPICS_PARTITIONS", "12"}, {"FERRY_LISTEN", "tcp://127.0.0.1:7600"}}),
      err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c.value().data_dir, "/var/lib/ferry");
  EXPECT_EQ(c.value().listen, "tcp://127.0.0.1:7600") << "environment beats the file";
  EXPECT_EQ(c.value().topics.partitions, 12);
  EXPECT_EQ(c.value().topics.retention_ms, 3600000);
  EXPECT_EQ(c.value().flush, storage::flush_mode::interval);
  EXPECT_EQ(c.value().flush_interval.count(), 200);
  EXPECT_EQ(c.value().topics.segment_bytes, 64ll << 20) << "unset keys keep their defaults";
  EXPECT_TRUE(validate(c.value(), err)) << err;
  std::filesystem::remove(file);
}

// *_ms keys: an integer is milliseconds (the key says so); a string is a
// duration in the grammar the CLI and the runtime use.
TEST(BrokerConfig, MillisecondKeysAlsoTakeDurations) {
  auto file = write_toml(R"(
data_dir = "/var/lib/ferry"
[groups]
ledger_retention_ms = "7d"
offsets_retention_ms = 86400000
[network]
max_fetch_wait_ms = "1m30s"
)");
  std::string err;
  auto c = load_config(file, fake_env({{"FERRY_NETWORK_HEARTBEAT_MS", "2s"}}), err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c.value().ledger_retention, std::chrono::hours(24 * 7));
  EXPECT_EQ(c.value().offsets_retention, std::chrono::hours(24));
  EXPECT_EQ(c.value().max_fetch_wait, std::chrono::seconds(90));
  EXPECT_EQ(c.value().socket.heartbeat_interval, std::chrono::seconds(2));
  std::filesystem::remove(file);
  std::string bad;
  EXPECT_FALSE(load_config(std::nullopt, fake_env({{"FERRY_NETWORK_HEARTBEAT_MS", "2 s"}}), bad));
  EXPECT_NE(bad.find("FERRY_NETWORK_HEARTBEAT_MS"), std::string::npos) << bad;
}

// Each TOML text is refused by load_config with a message containing what
// its case expects.
struct bad_case {
  std::string toml;
  std::string expect;
};
void expect_refused(const std::vector<bad_case>& cases) {
  for (const auto& [toml, expect] : cases) {
    auto file = write_toml(toml);
    std::string err;
    auto c = load_config(file, fake_env({}), err);
    EXPECT_FALSE(c) << toml;
    EXPECT_NE(err.find(expect), std::string::npos) << "for '" << toml << "' got: " << err;
    std::filesystem::remove(file);
  }
}

TEST(BrokerConfig, BadValuesAreRefusedWithTheKeyAndWhatIsAllowed) {
  expect_refused({
      {"data_dir = 5", "data_dir"},
      {"[topics]\npartitions = \"six\"", "topics.partitions"},
      {"[storage]\nflush = \"sometimes\"", "storage.flush"},
      {"[topicz]\npartitions = 1", "unknown key 'topicz.partitions'"},
      {"listen = \"http://x\"", "listen"},
      {"data_dir = ", "ferry"},  // TOML syntax error: file:line:col
  });
  std::string err;
  EXPECT_FALSE(load_config(std::nullopt, fake_env({{"FERRY_TOPICS_PARTITIONS", "-3x"}}), err));
  EXPECT_NE(err.find("FERRY_TOPICS_PARTITIONS"), std::string::npos) << err;
}

TEST(BrokerConfig, ValidateChecksRangesAndCombinations) {
  std::string err;
  broker_config c;
  EXPECT_FALSE(validate(c, err));
  EXPECT_NE(err.find("data_dir"), std::string::npos);
  c.data_dir = "/tmp/x";
  EXPECT_TRUE(validate(c, err)) << err;
  c.topics.partitions = 0;
  EXPECT_FALSE(validate(c, err));
  EXPECT_NE(err.find("topics.partitions"), std::string::npos);
  c.topics.partitions = 1;
  c.socket.max_message_bytes = c.topics.max_message_bytes;
  EXPECT_FALSE(validate(c, err)) << "room for the envelope is required";
  EXPECT_NE(err.find("network.max_message_bytes"), std::string::npos);
  c.socket.max_message_bytes = broker_config{}.socket.max_message_bytes;
  c.ledger_retention = std::chrono::milliseconds(1000);
  EXPECT_FALSE(validate(c, err)) << "below a minute";
  EXPECT_NE(err.find("groups.ledger_retention_ms"), std::string::npos) << err;
  c.ledger_retention = broker_config{}.ledger_retention;
  c.ledger_max_keys = 0;
  EXPECT_FALSE(validate(c, err));
  EXPECT_NE(err.find("groups.ledger_max_keys"), std::string::npos) << err;
  c.ledger_max_keys = 1;
  EXPECT_TRUE(validate(c, err)) << err;
  // Flags bypass load_config, so validate checks these too.
  c.log_level = "warn,storage=";
  EXPECT_FALSE(validate(c, err));
  EXPECT_NE(err.find("log_level = \"warn,storage=\": missing level for module storage"),
            std::string::npos)
      << err;
  c.log_level = "debug";
  c.metrics_listen = "127.0.0.1";
  EXPECT_FALSE(validate(c, err));
  EXPECT_NE(err.find("metrics_listen = \"127.0.0.1\": no port"), std::string::npos) << err;
  c.metrics_listen = "127.0.0.1:9400";
  EXPECT_TRUE(validate(c, err)) << err;
}

TEST(BrokerConfig, LogAndMetricsKeys) {
  auto file = write_toml(R"(
data_dir = "/var/lib/ferry"
log_level = "warn,storage=debug"
log_format = "json"
metrics_listen = "127.0.0.1:9400"
)");
  std::string err;
  auto c = load_config(file, fake_env({}), err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c.value().log_level, "warn,storage=debug");
  EXPECT_EQ(c.value().log_format, log::format::json);
  EXPECT_EQ(c.value().metrics_listen, "127.0.0.1:9400");
  EXPECT_TRUE(validate(c.value(), err)) << err;

  auto e = load_config(file,
                       fake_env({{"FERRY_LOG_FORMAT", "text"},
                                 {"FERRY_LOG_LEVEL", "error,client=info"},
                                 {"FERRY_METRICS_LISTEN", "[::1]:0"}}),
                       err);
  ASSERT_TRUE(e) << err;
  EXPECT_EQ(e.value().log_format, log::format::text) << "environment beats the file";
  EXPECT_EQ(e.value().log_level, "error,client=info");
  EXPECT_EQ(e.value().metrics_listen, "[::1]:0");
  std::filesystem::remove(file);

  auto d = load_config(std::nullopt, fake_env({}), err);
  ASSERT_TRUE(d) << err;
  EXPECT_EQ(d.value().log_format, log::format::text) << "defaults";
  EXPECT_EQ(d.value().log_level, "info");
  EXPECT_EQ(d.value().metrics_listen, "") << "no metrics endpoint unless asked";
}

TEST(BrokerConfig, BadLogAndMetricsValuesSayWhatIsWrong) {
  expect_refused({
      {"log_level = \"warn,storage=verbose\"",
       "log_level = \"warn,storage=verbose\": unknown level 'verbose' for module storage; "
       "use trace, debug, info, warn, error, critical or off"},
      {"log_level = \"warn,error\"", "two default levels"},
      {"log_level = 3", "log_level must be a level"},
      {"log_format = \"yaml\"", "log_format must be text or json"},
      {"metrics_listen = \"9400\"", "metrics_listen = \"9400\": no port"},
      {"metrics_listen = \":9400\"", "no host"},
      {"metrics_listen = \"127.0.0.1:65536\"", "bad port '65536'"},
      {"metrics_listen = \"127.0.0.1:\"", "bad port ''"},
      {"metrics_listen = \"127.0.0.1:94x\"", "bad port '94x'"},
      {"metrics_listen = \"http://127.0.0.1:9400\"", "without a scheme"},
      {"metrics_listen = \"::1:9400\"", "must be in brackets"},
      {"metrics_listen = \"[::1:9400\"", "bad IPv6 host"},
      {"metrics_listen = \"my host:9400\"", "bad host 'my host'"},
  });
  std::string err;
  EXPECT_FALSE(load_config(std::nullopt, fake_env({{"FERRY_LOG_LEVEL", "loud"}}), err));
  EXPECT_NE(err.find("FERRY_LOG_LEVEL=loud: unknown level 'loud'"), std::string::npos) << err;
  EXPECT_FALSE(load_config(std::nullopt, fake_env({{"FERRY_LOG_FORMAT", "JSON"}}), err));
  EXPECT_NE(err.find("FERRY_LOG_FORMAT=JSON: must be text or json"), std::string::npos) << err;
  EXPECT_FALSE(load_config(std::nullopt, fake_env({{"FERRY_METRICS_LISTEN", "localhost"}}), err));
  EXPECT_NE(err.find("FERRY_METRICS_LISTEN=localhost: no port"), std::string::npos) << err;

  for (const char* good : {"", "localhost:0", "0.0.0.0:65535", "[::1]:9400", "metrics-1.lan:80"}) {
    auto c = load_config(std::nullopt, fake_env({{"FERRY_METRICS_LISTEN", good}}), err);
    EXPECT_TRUE(c) << good << ": " << err;
  }
}

int run(const std::string& cmd) {
  int status = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(FerrydCheckConfig, ExitCodes) {
  const std::string ferryd = FERRY_FERRYD;
  EXPECT_EQ(run(ferryd + " --data-dir /tmp/ferry-check --check-config"), 0);
  EXPECT_EQ(run(ferryd + " --check-config"), 2) << "no data dir";
  auto bad = write_toml("[storage]\nflush = \"never\"\n");
  EXPECT_EQ(run(ferryd + " --data-dir /tmp/x --config " + bad.string() + " --check-config"), 2);
  std::filesystem::remove(bad);
  EXPECT_EQ(run("FERRY_TOPICS_PARTITIONS=0 " + ferryd + " --data-dir /tmp/x --check-config"), 2);
  EXPECT_EQ(run(ferryd + " --data-dir /tmp/x --flush sometimes --check-config"), 2);
  EXPECT_EQ(run(ferryd + " --no-such-flag"), 2);
  EXPECT_EQ(run(ferryd + " --data-dir /tmp/x --log-level warn,storage=debug --log-format json "
                         "--metrics-listen 127.0.0.1:0 --check-config"),
            0);
  EXPECT_EQ(run(ferryd + " --data-dir /tmp/x --log-format xml --check-config"), 2);
  EXPECT_EQ(run(ferryd + " --data-dir /tmp/x --metrics-listen 127.0.0.1 --check-config"), 2);
  EXPECT_EQ(run("FERRY_LOG_FORMAT=xml " + ferryd + " --data-dir /tmp/x --check-config"), 2);
  EXPECT_EQ(
      run("FERRY_LOG_LEVEL=warn,storage=debug " + ferryd + " --data-dir /tmp/x --check-config"), 0);
}

// `listen = tcp://...` without quotes: toml++ says "parsing boolean"; the
// error says that strings need quotes, and shows the fix.
TEST(BrokerConfig, AnUnquotedStringIsExplained) {
  auto file = write_toml("data_dir = \"/tmp/x\"\nlisten = tcp://127.0.0.1:7400   # the broker\n");
  std::string err;
  EXPECT_FALSE(load_config(file, fake_env({}), err));
  EXPECT_NE(err.find(":2:"), std::string::npos) << err;
  EXPECT_NE(err.find("strings need quotes: listen = \"tcp://127.0.0.1:7400\""), std::string::npos)
      << err;
  // A malformed number is not called a string.
  std::filesystem::remove(file);
  file = write_toml("[topics]\npartitions = 1_\n");
  EXPECT_FALSE(load_config(file, fake_env({}), err));
  EXPECT_EQ(err.find("strings need quotes"), std::string::npos) << err;
  std::filesystem::remove(file);
}

// -1 where a setting documents "unlimited", from the file and the environment.
TEST(BrokerConfig, MinusOneMeansUnlimitedWhereDocumented) {
  auto file = write_toml("data_dir = \"/tmp/x\"\n[topics]\nretention_ms = -1\n");
  std::string err;
  auto c = load_config(file, fake_env({{"FERRY_TOPICS_RETENTION_BYTES", "-1"}}), err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c.value().topics.retention_ms, -1);
  EXPECT_EQ(c.value().topics.retention_bytes, -1);
  EXPECT_TRUE(validate(c.value(), err)) << err;
  std::filesystem::remove(file);
}

TEST(BrokerConfig, TheDefaultFileIsFerryConfigThenEtc) {
  EXPECT_EQ(default_config_file(fake_env({{"FERRY_CONFIG", "/srv/ferry.toml"}})),
            std::filesystem::path("/srv/ferry.toml"));
  const auto none = default_config_file(fake_env({{"FERRY_CONFIG", ""}}));
  if (std::filesystem::exists("/etc/ferry/ferryd.toml"))
    EXPECT_EQ(none, std::filesystem::path("/etc/ferry/ferryd.toml"));
  else
    EXPECT_FALSE(none.has_value());
}

// The security booleans: TOML booleans or the words in the environment,
// anything else refused naming the key.
TEST(BrokerConfig, SecurityBooleansTakeTrueOrFalseOnly) {
  std::string err;
  auto file = write_toml("[security]\nenabled = true\nkafka_plaintext = true\n");
  auto c = load_config(file, fake_env({}), err);
  ASSERT_TRUE(c) << err;
  EXPECT_TRUE(c.value().security.enabled);
  EXPECT_TRUE(c.value().security.kafka_plaintext);
  c = load_config(file, fake_env({{"FERRY_SECURITY_KAFKA_PLAINTEXT", "false"}}), err);
  ASSERT_TRUE(c) << err;
  EXPECT_FALSE(c.value().security.kafka_plaintext);
  EXPECT_FALSE(load_config(file, fake_env({{"FERRY_SECURITY_ENABLED", "yes"}}), err));
  EXPECT_NE(err.find("FERRY_SECURITY_ENABLED"), std::string::npos) << err;
  EXPECT_FALSE(
      load_config(write_toml("[security]\nkafka_plaintext = \"true\"\n"), fake_env({}), err));
  EXPECT_NE(err.find("security.kafka_plaintext"), std::string::npos) << err;
}

// With security on, a Kafka listener other machines reach is refused until
// its missing encryption is accepted; a loopback one needs nothing.
TEST(BrokerConfig, APublicKafkaListenerWithSecurityNeedsItsPlaintextAccepted) {
  broker_config c;
  c.data_dir = "/tmp/x";
  c.security.enabled = true;
  c.security.server_key_file = "/tmp/x/server.key";
  c.security.users_file = "/tmp/x/users.toml";
  std::string err;
  c.kafka_listen = "0.0.0.0:9092";
  EXPECT_FALSE(validate(c, err));
  EXPECT_NE(err.find("security.kafka_plaintext"), std::string::npos) << err;
  c.security.kafka_plaintext = true;
  EXPECT_TRUE(validate(c, err)) << err;
  c.security.kafka_plaintext = false;
  c.kafka_listen = "127.0.0.1:9092";
  EXPECT_TRUE(validate(c, err)) << err;
  c.security.enabled = false;
  c.kafka_listen = "0.0.0.0:9092";
  EXPECT_TRUE(validate(c, err)) << "security off: warned at start, not refused";
}

// TLS settings come as a whole: a certificate with its key, a CA with
// client_auth requested or required, and TLS only where there is a Kafka
// listener. TLS makes a public listener acceptable with security on.
TEST(BrokerConfig, KafkaTlsSettingsComeAsAWhole) {
  broker_config c;
  c.data_dir = "/tmp/x";
  c.kafka_listen = "0.0.0.0:9093";
  std::string err;
  c.security.kafka_tls_cert_file = "/tmp/x/server.pem";
  EXPECT_FALSE(validate(c, err));
  EXPECT_NE(err.find("kafka_tls_key_file"), std::string::npos) << err;
  c.security.kafka_tls_key_file = "/tmp/x/server.key";
  EXPECT_TRUE(validate(c, err)) << err;
  c.security.kafka_tls_client_auth = "required";
  EXPECT_FALSE(validate(c, err));
  EXPECT_NE(err.find("kafka_tls_ca_file"), std::string::npos) << err;
  c.security.kafka_tls_ca_file = "/tmp/x/ca.pem";
  EXPECT_TRUE(validate(c, err)) << err;
  c.security.kafka_tls_client_auth = "none";
  EXPECT_FALSE(validate(c, err)) << "a CA file that nothing uses";
  EXPECT_NE(err.find("kafka_tls_client_auth"), std::string::npos) << err;
  c.security.kafka_tls_ca_file.clear();
  c.security.enabled = true;
  c.security.server_key_file = "/tmp/x/server.key";
  c.security.users_file = "/tmp/x/users.toml";
  EXPECT_TRUE(validate(c, err)) << "TLS: a public listener needs no kafka_plaintext: " << err;
  c.kafka_listen.clear();
  EXPECT_FALSE(validate(c, err));
  EXPECT_NE(err.find("no Kafka listener"), std::string::npos) << err;

  EXPECT_FALSE(load_config(write_toml("[security]\nkafka_tls_client_auth = \"always\"\n"),
                           fake_env({}), err));
  EXPECT_NE(err.find("none (default), requested or required"), std::string::npos) << err;
  auto file = write_toml(
      "data_dir = \"/tmp/x\"\nkafka_listen = \"127.0.0.1:9093\"\n[security]\nkafka_tls_cert_file = "
      "\"tls/server.pem\"\n"
      "kafka_tls_key_file = \"tls/server.key\"\n");
  auto loaded = load_config(file, fake_env({}), err);
  ASSERT_TRUE(loaded) << err;
  EXPECT_EQ(loaded.value().security.kafka_tls_cert_file, file.parent_path() / "tls/server.pem")
      << "relative to the config file";
}

// --check-config binds each listener as the start would: an address that
// cannot be bound is an error naming the key; one in use is a warning.
TEST(BrokerConfig, ProbeListenersBindsAsTheStartWould) {
  broker_config c;
  c.data_dir = "/tmp/x";
  c.listen = "tcp://127.0.0.1:0";
  c.metrics_listen = "127.0.0.1:0";
  c.kafka_listen = "127.0.0.1:0";
  std::string err;
  std::vector<std::string> warnings;
  EXPECT_TRUE(probe_listeners(c, err, warnings)) << err;
  EXPECT_TRUE(warnings.empty());

  auto refused = [&](const std::string& key, const std::string& needle) {
    std::string why;
    std::vector<std::string> w;
    EXPECT_FALSE(probe_listeners(c, why, w)) << key;
    EXPECT_NE(why.find(key + " = "), std::string::npos) << why;
    EXPECT_NE(why.find(needle), std::string::npos) << why;
  };
  c.listen = "tcp://192.0.2.1:7400";  // TEST-NET-1: not an address of this machine
  refused("listen", "cannot listen there");
  c.listen = "ipc:///nonexistent-ferry-dir/sock";
  refused("listen", "No such file");
  c.listen = "tcp://127.0.0.1:0";
  c.kafka_listen = "nosuch.invalid:9092";
  refused("kafka_listen", "cannot resolve");
  c.kafka_listen = "127.0.0.1:0";
  c.metrics_listen = "192.0.2.1:9400";
  refused("metrics_listen", "cannot listen there");

  // In use: a warning (the running ferryd this file is for), not an error.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  c.metrics_listen = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  warnings.clear();
  EXPECT_TRUE(probe_listeners(c, err, warnings)) << err;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("in use"), std::string::npos) << warnings[0];
  ::close(fd);

  // ipc:// of a running broker: a warning, and its socket file is left
  // alone (a bind would remove it and cut the broker off).
  const std::string sock = "/tmp/ferry-probe-" + std::to_string(::getpid()) + ".sock";
  ::unlink(sock.c_str());
  int ufd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un u{};
  u.sun_family = AF_UNIX;
  std::snprintf(u.sun_path, sizeof u.sun_path, "%s", sock.c_str());
  ASSERT_EQ(::bind(ufd, reinterpret_cast<sockaddr*>(&u), sizeof u), 0);
  ASSERT_EQ(::listen(ufd, 1), 0);
  c.metrics_listen = "127.0.0.1:0";
  c.listen = "ipc://" + sock;
  warnings.clear();
  EXPECT_TRUE(probe_listeners(c, err, warnings)) << err;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_TRUE(std::filesystem::exists(sock)) << "the running broker's socket is still there";
  ::close(ufd);
  ::unlink(sock.c_str());
  c.listen = "ipc://" + sock;  // not there: fine, and nothing is left behind
  warnings.clear();
  EXPECT_TRUE(probe_listeners(c, err, warnings)) << err;
  EXPECT_TRUE(warnings.empty());
  EXPECT_FALSE(std::filesystem::exists(sock));
}

// FERRY_CONFIG is read without --config, and --check-config says which file.
TEST(FerrydCheckConfig, ReadsFerryConfigAndNamesTheFile) {
  auto file = write_toml("data_dir = \"/tmp/x\"\nlisten = \"tcp://127.0.0.1:0\"\n");
  const std::string cmd =
      "FERRY_CONFIG=" + file.string() + " " + std::string(FERRY_FERRYD) + " --check-config 2>&1";
  std::string out;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(::pclose(p), 0) << out;
  EXPECT_NE(out.find("config=" + file.string()), std::string::npos) << out;
  EXPECT_NE(out.find("data_dir=/tmp/x"), std::string::npos) << "read from the file: " << out;
  std::filesystem::remove(file);
}

// ferryd's message for a bad --log-level names the flag and the bad part.
TEST(FerrydCheckConfig, BadLogLevelFlagSaysWhy) {
  const std::string cmd = std::string(FERRY_FERRYD) +
                          " --data-dir /tmp/x --log-level warn,storage=loud --check-config 2>&1";
  std::string out;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 2);
  EXPECT_NE(out.find("ferryd: --log-level: unknown level 'loud' for module storage"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace ferry::broker
