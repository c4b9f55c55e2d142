// ferryd: the Ferry broker daemon.
//
//   ferryd --data-dir DIR [--listen tcp://127.0.0.1:7400] [--config ferry.toml] [--check-config]
//          [--log-level SPEC] [--log-format text|json] [--metrics-listen HOST:PORT]
//          [--kafka-listen HOST:PORT] [--kafka-advertised HOST:PORT]
//   ferryd --data-dir DIR --upgrade-data-dir     (offline: format 1 -> format 2, then exit)
//
// Configuration: built-in defaults < TOML file < FERRY_* environment < flags.
// The file: --config, else FERRY_CONFIG, else /etc/ferry/ferryd.toml when
// it exists.
// Logs go to stderr. Until the configuration is read and valid, ferryd
// reports problems as plain "ferryd: ..." lines (usage and configuration
// errors, exit 2); from then on everything on stderr goes through the
// loggers, so with --log-format json stderr is one JSON object per line.
// SIGTERM / SIGINT: stop taking requests, finish syncing, reply, exit 0.
// Exit codes: 0 clean stop (or valid config with --check-config), 1 runtime
// failure (cannot listen, data refused), 2 usage or configuration error.
#include <fmt/format.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>

#include "cli_doc.h"
#include "ferry/broker/broker.h"
#include "ferry/broker/config.h"
#include "ferry/broker/data_format.h"
#include "ferry/core/logging.h"
#include "ferry/metrics/http_endpoint.h"
#include "ferry/metrics/registry.h"

int main(int argc, char** argv) {
  CLI::App app{"ferryd: the Ferry broker"};
  const auto build = ferry::metrics::build_info();
  app.set_version_flag("--version", fmt::format("ferryd {} ({})", build.version, build.revision));
  std::optional<std::string> config_file, data_dir, listen, log_level, log_format, flush,
      metrics_listen, kafka_listen, kafka_advertised;
  bool check = false, upgrade = false;
  app.add_option("--config", config_file,
                 "TOML configuration file (see docs/operations.md); default: FERRY_CONFIG, else "
                 "/etc/ferry/ferryd.toml when it exists");
  app.add_option("--data-dir", data_dir,
                 "directory holding topics and partition logs (FERRY_DATA_DIR)");
  app.add_option(
      "--listen", listen,
      "ZeroMQ endpoint to bind, e.g. tcp://127.0.0.1:7400 or tcp://127.0.0.1:* (FERRY_LISTEN)");
  app.add_option("--log-level", log_level,
                 "LEVEL[,MODULE=LEVEL...]: trace, debug, info (default), warn, error, critical or "
                 "off, for every logger and per module, e.g. warn,storage=debug "
                 "(FERRY_LOG_LEVEL)");
  app.add_option("--log-format", log_format,
                 "text (default) or json: one JSON object per line on stderr (FERRY_LOG_FORMAT)");
  app.add_option("--metrics-listen", metrics_listen,
                 "HOST:PORT for the metrics HTTP endpoint, e.g. 127.0.0.1:9400; empty: none "
                 "(FERRY_METRICS_LISTEN)");
  app.add_option("--kafka-listen", kafka_listen,
                 "HOST:PORT for Kafka clients (kcat, librdkafka, Java, Go, Python, Node), e.g. "
                 "127.0.0.1:9092; empty: none (FERRY_KAFKA_LISTEN; docs/kafka.md)");
  app.add_option("--kafka-advertised", kafka_advertised,
                 "HOST:PORT that Metadata tells Kafka clients to connect to; default: the listen "
                 "address (FERRY_KAFKA_ADVERTISED)");
  app.add_option("--flush", flush,
                 "on_commit (durable, default) or interval (relaxed; FERRY_STORAGE_FLUSH)");
  app.add_flag("--check-config", check,
               "validate the configuration, try binding its listeners, and exit (0 valid, 2 "
               "invalid)");
  app.add_flag("--upgrade-data-dir", upgrade,
               "convert a data directory written by Ferry's format 1 to format 2 (Kafka's "
               "RecordBatch v2), offline and losslessly, then exit (docs/operations.md)");
  app.add_flag_callback(
         "--man",
         [&] {
           ferry::cli_doc::man_info info;
           info.name = "ferryd";
           info.summary = "the Ferry broker daemon";
           info.version = build.version;
           info.sections = {
               {"CONFIGURATION",
                "Built-in defaults < TOML file < FERRY_* environment < flags. The file is "
                "--config, else FERRY_CONFIG, else /etc/ferry/ferryd.toml when it exists. "
                "Every key and its FERRY_* variable: docs/operations.md."},
               {"SIGNALS",
                "SIGTERM and SIGINT stop taking requests, finish syncing, answer and exit 0. "
                "SIGHUP is not handled (there is no reload)."},
               {"EXIT STATUS",
                "  0 clean stop, or a valid configuration with --check-config\n  1 the broker "
                "could not start (cannot listen, data directory refused: the log says why)\n  "
                "2 usage or configuration error"},
               {"FILES",
                "  /etc/ferry/ferryd.toml the default configuration\n  /var/lib/ferry the "
                "packaged data directory"},
               {"SEE ALSO", "ferry(1); docs/operations.md in the Ferry sources."}};
           std::cout << ferry::cli_doc::man_page(app, info);
           throw CLI::Success();
         },
         "print the man page (troff) and exit")
      ->group("")
      ->trigger_on_parse();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  std::string error;
  std::optional<std::filesystem::path> file;
  if (config_file)
    file = *config_file;
  else
    file = ferry::broker::default_config_file(ferry::broker::process_environment());
  auto loaded = ferry::broker::load_config(file, ferry::broker::process_environment(), error);
  if (!loaded) {
    std::fprintf(stderr, "ferryd: invalid configuration: %s\n", error.c_str());
    return 2;
  }
  auto cfg = std::move(loaded).value();
  if (data_dir) cfg.data_dir = *data_dir;
  if (listen) cfg.listen = *listen;
  if (log_level) {
    if (auto l = ferry::log::parse_levels(*log_level, error); !l) {
      std::fprintf(stderr, "ferryd: --log-level: %s\n", error.c_str());
      return 2;
    }
    cfg.log_level = *log_level;
  }
  if (log_format) {
    auto f = ferry::log::parse_format(*log_format);
    if (!f) {
      std::fprintf(stderr, "ferryd: --log-format must be text or json, got '%s'\n",
                   log_format->c_str());
      return 2;
    }
    cfg.log_format = *f;
  }
  if (metrics_listen) cfg.metrics_listen = *metrics_listen;  // checked by validate()
  if (kafka_listen) cfg.kafka_listen = *kafka_listen;
  if (kafka_advertised) cfg.kafka_advertised = *kafka_advertised;
  if (flush) {
    if (*flush == "on_commit")
      cfg.flush = ferry::storage::flush_mode::on_commit;
    else if (*flush == "interval")
      cfg.flush = ferry::storage::flush_mode::interval;
    else {
      std::fprintf(stderr, "ferryd: --flush must be on_commit or interval, got '%s'\n",
                   flush->c_str());
      return 2;
    }
  }
  if (auto v = ferry::broker::validate(cfg, error); !v) {
    std::fprintf(stderr, "ferryd: invalid configuration: %s\n", error.c_str());
    return 2;
  }
  // From here on stderr carries log lines only.
  ferry::log::set_format(cfg.log_format);
  ferry::log::set_level(cfg.log_level);  // valid: checked by validate()
  auto logger = ferry::log::get("ferryd");
  const std::string config_name = file ? file->string() : std::string("(none)");
  if (check) {
    std::vector<std::string> warnings;
    if (auto sec = ferry::broker::check_security_files(cfg, error); !sec) {
      std::fprintf(stderr, "ferryd: invalid configuration: %s\n", error.c_str());
      return 2;
    }
    if (auto p = ferry::broker::probe_listeners(cfg, error, warnings); !p) {
      std::fprintf(stderr, "ferryd: invalid configuration: %s\n", error.c_str());
      return 2;
    }
    for (const auto& w : warnings) std::fprintf(stderr, "ferryd: warning: %s\n", w.c_str());
    std::printf("configuration is valid: config=%s data_dir=%s listen=%s flush=%s\n",
                config_name.c_str(), cfg.data_dir.c_str(), cfg.listen.c_str(),
                cfg.flush == ferry::storage::flush_mode::on_commit ? "on_commit" : "interval");
    return 0;
  }
  logger->info("configuration: {}", config_name);
  if (upgrade) {
    // The converted logs are opened once to check them and build their
    // indexes: their routine lines ("index missing; rebuilding") are noise here.
    if (!log_level) ferry::log::set_level("warn,storage=error");
    std::fprintf(stderr, "ferryd: upgrading %s to data format %d...\n", cfg.data_dir.c_str(),
                 ferry::broker::kDataFormat);
    auto rep = ferry::broker::upgrade_data_dir(cfg.data_dir, &error, [](const std::string& log) {
      std::fprintf(stderr, "  %s\n", log.c_str());
    });
    if (!rep) {
      std::fprintf(stderr, "ferryd: upgrade failed, the data directory is unchanged: %s\n",
                   error.c_str());
      return 1;
    }
    const auto& r = rep.value();
    std::printf(
        "upgraded %s to data format %d: %llu partition logs, %llu segments, %llu batches, %llu "
        "records (%llu bytes before, %llu after%s); the format-1 files are in %s/format1-backup: "
        "delete them once ferryd serves the data\n",
        cfg.data_dir.c_str(), ferry::broker::kDataFormat,
        static_cast<unsigned long long>(r.partitions), static_cast<unsigned long long>(r.segments),
        static_cast<unsigned long long>(r.batches), static_cast<unsigned long long>(r.records),
        static_cast<unsigned long long>(r.bytes_before),
        static_cast<unsigned long long>(r.bytes_after),
        r.torn_tail_bytes > 0
            ? fmt::format("; {} bytes of a torn tail dropped, as recovery would", r.torn_tail_bytes)
                  .c_str()
            : "",
        cfg.data_dir.c_str());
    return 0;
  }
  if (cfg.flush == ferry::storage::flush_mode::interval) {
    logger->warn(
        "flush=interval acknowledges records before they are on disk; a crash can lose up to {} "
        "ms of acknowledged records",
        cfg.flush_interval.count());
  }
  // Block the stop signals in every thread - before the first one (the
  // metrics endpoint's) exists; main waits for them below, so a SIGTERM
  // during a long recovery or a second one during the stop is taken in
  // turn instead of killing the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // Metrics and health (docs/observability.md): up before the data is
  // loaded, so /readyz answers 503 with the reason during recovery and from
  // the moment a stop begins.
  auto registry = std::make_shared<ferry::metrics::registry>();
  ferry::metrics::register_process_metrics(*registry, "ferryd");
  std::mutex state_mu;
  std::string not_ready = "loading data from " + cfg.data_dir.string() +
                          " (recovering partition logs, group offsets and schemas)";
  std::unique_ptr<ferry::metrics::http_endpoint> http;
  if (!cfg.metrics_listen.empty()) {
    auto ep = ferry::metrics::http_endpoint::start(
        cfg.metrics_listen, *registry,
        [&]() -> std::optional<std::string> {
          std::lock_guard lock(state_mu);
          if (not_ready.empty()) return std::nullopt;
          return not_ready;
        },
        error);
    if (!ep) {
      logger->error("metrics_listen: {}", error);
      return 1;
    }
    http = std::move(ep).value();
    std::printf("ferryd metrics on http://%s/metrics\n", http->address().c_str());
    std::fflush(stdout);
  }
  auto set_state = [&](std::string why) {
    std::lock_guard lock(state_mu);
    not_ready = std::move(why);
  };

  auto opened = ferry::broker::broker::open(cfg, registry);
  if (!opened) {
    logger->error("cannot open data directory {}: {} (the lines above say why)",
                  cfg.data_dir.string(), opened.error().message());
    return 1;
  }
  auto b = std::move(opened).value();
  auto endpoint = b->start();
  if (!endpoint) {
    logger->error("cannot listen on {}: {}", cfg.listen, endpoint.error().message());
    return 1;
  }
  set_state({});
  // Without security, anyone who reaches a listener can do anything: say so
  // when one is reachable from other machines.
  auto loopback = [](std::string a) {
    for (const char* scheme : {"tcp://", "ipc://", "inproc://"})
      if (a.rfind(scheme, 0) == 0) {
        if (std::string(scheme) != "tcp://") return true;  // local by nature
        a = a.substr(6);
      }
    const auto host = a.substr(0, a.rfind(':'));
    return host.rfind("127.", 0) == 0 || host == "localhost" || host == "[::1]";
  };
  if (!cfg.security.enabled && !loopback(cfg.listen))
    logger->warn(
        "security is off and {} is reachable from other machines: anyone who can connect can "
        "read, write and delete everything. Turn on [security] (docs/security.md) or listen on "
        "127.0.0.1",
        cfg.listen);
  if (!cfg.kafka_listen.empty() && !cfg.security.enabled && !loopback(cfg.kafka_listen))
    logger->warn(
        "the Kafka listener {} has no authentication and is reachable from other machines; "
        "turn on [security] (its clients then authenticate with SASL/SCRAM-SHA-256), listen on "
        "127.0.0.1 or firewall it",
        cfg.kafka_listen);
  if (!cfg.kafka_listen.empty() && cfg.security.enabled && !cfg.security.kafka_tls() &&
      !loopback(cfg.kafka_listen))
    logger->warn(
        "the Kafka listener {} authenticates its clients (SASL/SCRAM-SHA-256) but does not "
        "encrypt: whoever is on the network path can read their records, and could take over a "
        "connection after it authenticated. Set security.kafka_tls_cert_file and "
        "kafka_tls_key_file (docs/security.md#tls)",
        cfg.kafka_listen);
  std::printf("ferryd listening on %s\n", endpoint.value().c_str());
  if (!b->kafka_address().empty())
    std::printf("ferryd kafka listening on %s\n", b->kafka_address().c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  logger->info("{} received, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  set_state(fmt::format("stopping ({} received): finishing queued requests",
                        sig == SIGTERM ? "SIGTERM" : "SIGINT"));
  b->stop();
  b.reset();
  if (http) http->stop();
  return 0;
}
