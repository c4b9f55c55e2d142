// ferryd: the Ferry broker daemon.
//
//   ferryd --data-dir DIR [--listen tcp://127.0.0.1:7400] [--config ferry.toml] [--check-config]
//
// Configuration: built-in defaults < TOML file < FERRY_* environment < flags.
// SIGTERM / SIGINT: stop taking requests, finish syncing, reply, exit 0.
// Exit codes: 0 clean stop (or valid config with --check-config), 1 runtime
// failure (cannot listen, data refused), 2 usage or configuration error.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "ferry/broker/broker.h"
#include "ferry/broker/config.h"
#include "ferry/core/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"ferryd: the Ferry broker"};
  std::optional<std::string> config_file, data_dir, listen, log_level, flush;
  bool check = false;
  app.add_option("--config", config_file, "TOML configuration file (see docs/operations.md)");
  app.add_option("--data-dir", data_dir,
                 "directory holding topics and partition logs (FERRY_DATA_DIR)");
  app.add_option(
      "--listen", listen,
      "ZeroMQ endpoint to bind, e.g. tcp://127.0.0.1:7400 or tcp://127.0.0.1:* (FERRY_LISTEN)");
  app.add_option("--log-level", log_level,
                 "trace, debug, info, warn, error, off (FERRY_LOG_LEVEL)");
  app.add_option("--flush", flush,
                 "on_commit (durable, default) or interval (relaxed; FERRY_STORAGE_FLUSH)");
  app.add_flag("--check-config", check, "validate the configuration and exit (0 valid, 2 invalid)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  std::string error;
  std::optional<std::filesystem::path> file;
  if (config_file) file = *config_file;
  auto loaded = ferry::broker::load_config(file, ferry::broker::process_environment(), error);
  if (!loaded) {
    std::fprintf(stderr, "ferryd: invalid configuration: %s\n", error.c_str());
    return 2;
  }
  auto cfg = std::move(loaded).value();
  if (data_dir) cfg.data_dir = *data_dir;
  if (listen) cfg.listen = *listen;
  if (log_level) cfg.log_level = *log_level;
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
  if (!ferry::log::set_level(cfg.log_level)) {
    std::fprintf(
        stderr,
        "ferryd: log level must be trace, debug, info, warn, error, critical or off, got '%s'\n",
        cfg.log_level.c_str());
    return 2;
  }
  if (auto v = ferry::broker::validate(cfg, error); !v) {
    std::fprintf(stderr, "ferryd: invalid configuration: %s\n", error.c_str());
    return 2;
  }
  if (check) {
    std::printf("configuration is valid: data_dir=%s listen=%s flush=%s\n", cfg.data_dir.c_str(),
                cfg.listen.c_str(),
                cfg.flush == ferry::storage::flush_mode::on_commit ? "on_commit" : "interval");
    return 0;
  }
  if (cfg.flush == ferry::storage::flush_mode::interval) {
    std::fprintf(stderr,
                 "ferryd: WARNING: flush=interval acknowledges records before they are on disk; a "
                 "crash can lose "
                 "up to %lld ms of acknowledged records\n",
                 static_cast<long long>(cfg.flush_interval.count()));
  }

  // Block the stop signals in every thread; main waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto opened = ferry::broker::broker::open(cfg);
  if (!opened) {
    std::fprintf(stderr, "ferryd: cannot open data directory %s: %s (see the log above)\n",
                 cfg.data_dir.c_str(), opened.error().message().c_str());
    return 1;
  }
  auto b = std::move(opened).value();
  auto endpoint = b->start();
  if (!endpoint) {
    std::fprintf(stderr, "ferryd: cannot listen on %s: %s\n", cfg.listen.c_str(),
                 endpoint.error().message().c_str());
    return 1;
  }
  std::printf("ferryd listening on %s\n", endpoint.value().c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "ferryd: %s received, stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  b->stop();
  return 0;
}
