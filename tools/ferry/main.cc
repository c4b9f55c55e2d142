// ferry: the command-line client (kcat / kafka-topics conventions).
//
//   ferry [--broker URL] [-o table|json] <noun> <verb> ...
//   ferry top                      (a live view; docs/cli.md#top)
//
// Data goes to stdout, logs and progress to stderr. Exit codes: 0 ok,
// 1 the broker refused the request, 2 usage error, 3 broker unreachable,
// 4 other failure. See docs/cli.md.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "cli.h"
#include "cli_doc.h"
#include "commands.h"
#include "ferry/core/logging.h"
#include "ferry/metrics/registry.h"

int main(int argc, char** argv) {
  using namespace ferry::cli;
  ferry::log::set_level(std::getenv("FERRY_LOG_LEVEL") ? std::getenv("FERRY_LOG_LEVEL")
                                                       : "warn");  // NOLINT
  CLI::App app{"ferry: talk to a Ferry broker"};
  app.require_subcommand(1);
  const auto build = ferry::metrics::build_info();
  app.set_version_flag("--version", fmt::format("ferry {} ({})", build.version, build.revision));
  // Global options are taken anywhere on the line (ferry consume t -o json),
  // and every command's --help lists them.
  app.fallthrough();
  app.footer(
      "Global options, before or after the command:\n"
      "  --broker URL       tcp://HOST:PORT, HOST:PORT or ipc://PATH (ferryd), or "
      "kafka://HOST:PORT[,...] (a Kafka cluster); FERRY_BROKER; default tcp://127.0.0.1:7400\n"
      "  -o, --output FMT   table (for people) or json (for machines)\n"
      "  --timeout-ms MS    how long to wait for the broker (default 10000)\n"
      "  --key-file FILE    this client's CURVE key pair, NAME.key (FERRY_KEY_FILE)\n"
      "  --server-key KEY   the broker's public key: server.pub or its Z85 text "
      "(FERRY_SERVER_KEY)\n"
      "  --kafka-property K=V  a librdkafka property for kafka:// (SASL, TLS, tuning); "
      "repeatable\n"
      "  --kafka-config FILE   librdkafka properties, KEY=VALUE lines (FERRY_KAFKA_CONFIG)\n"
      "Exit codes: 0 ok, 1 refused by the broker, 2 usage error, 3 broker unreachable, 4 other, "
      "5 authentication failed.");
  globals g;
  g.broker = "tcp://127.0.0.1:7400";
  app.add_option("--broker", g.broker,
                 "broker endpoint: tcp://HOST:PORT, HOST:PORT or ipc://PATH (ferryd), or "
                 "kafka://HOST:PORT[,HOST:PORT...] (a Kafka cluster; docs/kafka.md); "
                 "FERRY_BROKER, default tcp://127.0.0.1:7400")
      ->envname("FERRY_BROKER")
      ->transform(
          [](std::string s) {
            auto normalized = normalize_broker(s);
            if (!normalized)
              throw CLI::ValidationError("'" + s +
                                         "' is not a broker address; give tcp://HOST:PORT, "
                                         "HOST:PORT, ipc://PATH or kafka://HOST:PORT[,...]");
            return *normalized;
          },
          "BROKER");
  app.add_option("-o,--output", g.output, "table (for people) or json (for machines)")
      ->check(CLI::IsMember({"table", "json"}));
  app.add_option("--timeout-ms", g.timeout_ms, "how long to wait for the broker")
      ->check(CLI::Range(1L, 86'400'000L));
  app.add_option("--key-file", g.key_file,
                 "this client's CURVE key pair, NAME.key from ferry keys generate "
                 "(FERRY_KEY_FILE; docs/security.md)")
      ->envname("FERRY_KEY_FILE");
  app.add_option("--server-key", g.server_key,
                 "the broker's public key: its .pub file or the Z85 text (FERRY_SERVER_KEY)")
      ->envname("FERRY_SERVER_KEY");
  std::vector<std::string> kafka_props;
  std::string kafka_config;
  app.add_option("--kafka-property", kafka_props,
                 "KEY=VALUE: a librdkafka property for kafka:// brokers, e.g. "
                 "security.protocol=SASL_SSL (repeatable; wins over --kafka-config)")
      ->take_all()
      ->check([](const std::string& kv) {
        const auto eq = kv.find('=');
        return eq == std::string::npos || eq == 0 ? std::string("expected KEY=VALUE")
                                                  : std::string();
      });
  app.add_option("--kafka-config", kafka_config,
                 "a file of librdkafka properties for kafka:// brokers, KEY=VALUE lines "
                 "(FERRY_KAFKA_CONFIG)")
      ->envname("FERRY_KAFKA_CONFIG");
  app.parse_complete_callback([&] {
    if (!kafka_config.empty()) {
      std::string why;
      if (!read_kafka_config(kafka_config, g.kafka, why))
        throw CLI::ValidationError("--kafka-config", why);
    }
    for (const auto& kv : kafka_props) {
      const auto eq = kv.find('=');
      g.kafka[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    const bool kafka = g.broker.rfind("kafka://", 0) == 0;
    if (kafka && (!g.key_file.empty() || !g.server_key.empty()))
      throw CLI::ValidationError(
          "--key-file/--server-key",
          "CURVE keys are for ferryd's native protocol; for a Kafka cluster give its SASL/TLS "
          "settings with --kafka-property (docs/kafka.md)");
    if (!kafka && !g.kafka.empty())
      throw CLI::ValidationError("--kafka-property/--kafka-config",
                                 "librdkafka properties apply to kafka:// brokers only");
  });

  int rc = kOk;

  // --- topics ---
  auto* topics = app.add_subcommand("topics", "create, list, describe, alter, delete topics");
  topics->require_subcommand(1);
  std::string name;
  ferry::client::topic_config tc;
  auto* create = topics->add_subcommand("create", "create a topic");
  create->add_option("name", name, "topic name")->required();
  create->add_option("--partitions", tc.partitions, "number of partitions")
      ->default_val(1)
      ->check(CLI::Range(1, 1'000'000));
  create->add_option("--retention-ms", tc.retention_ms,
                     "delete records older than this (-1: never)");
  create->add_option("--retention-bytes", tc.retention_bytes,
                     "keep at most this many bytes per partition (-1: no limit)");
  create->add_option("--max-message-bytes", tc.max_message_bytes,
                     "largest batch a producer may send");
  create->add_option("--segment-bytes", tc.segment_bytes, "segment file size");
  create->callback([&] { rc = topics_create(g, name, tc); });
  topics->add_subcommand("list", "list topics")->callback([&] { rc = topics_list(g); });
  auto* describe = topics->add_subcommand("describe", "partitions, offsets and sizes of a topic");
  describe->add_option("name", name, "topic name")->required();
  describe->callback([&] { rc = topics_describe(g, name); });
  bool execute = false;
  ferry::client::topic_changes changes;
  auto* alter = topics->add_subcommand(
      "alter",
      "change a topic's partitions (more only), retention or largest message, online (shows the "
      "plan unless --execute)");
  alter->add_option("name", name, "topic name")->required();
  alter
      ->add_option("--partitions", changes.partitions,
                   "the new partition count (more than now; keys map to partitions by count, so "
                   "new records of a key may go elsewhere)")
      ->check(CLI::Range(1, 1'000'000));
  alter->add_option("--retention-ms", changes.retention_ms,
                    "delete records older than this (-1: never)");
  alter->add_option("--retention-bytes", changes.retention_bytes,
                    "keep at most this many bytes per partition (-1: no limit)");
  alter->add_option("--max-message-bytes", changes.max_message_bytes,
                    "largest batch a producer may send");
  alter->add_flag("--execute", execute, "really change the topic");
  alter->callback([&] { rc = topics_alter(g, name, changes, execute); });
  auto* del = topics->add_subcommand("delete", "delete a topic (shows the plan unless --execute)");
  del->add_option("name", name, "topic name")->required();
  del->add_flag("--execute", execute, "really delete");
  del->callback([&] { rc = topics_delete(g, name, execute); });

  // --- groups ---
  auto* groups = app.add_subcommand("groups", "list, describe, reset offsets of, delete groups");
  groups->require_subcommand(1);
  std::string group;
  groups->add_subcommand("list", "list consumer groups")->callback([&] { rc = groups_list(g); });
  groups_describe_args gd;
  auto* gdesc = groups->add_subcommand(
      "describe", "committed offsets, lag and owners per partition (or --members, --state)");
  gdesc->add_option("group", gd.group, "group name")->required();
  auto* members_flag = gdesc->add_flag("--members", gd.members, "one row per member");
  gdesc->add_flag("--state", gd.state, "one line: state, generation, strategy, members")
      ->excludes(members_flag);
  gdesc->callback([&] { rc = groups_describe(g, gd); });
  reset_offsets_args ro;
  auto* reset = groups->add_subcommand(
      "reset-offsets",
      "move committed offsets of a group without members (shows the plan unless --execute)");
  reset->add_option("group", ro.group, "group name")->required();
  reset->add_option("--topic", ro.topics, "TOPIC or TOPIC:P,P,... (repeatable)")
      ->allow_extra_args(false);
  reset->add_flag("--all-topics", ro.all_topics, "every partition the group has offsets for");
  reset->add_flag("--to-earliest", ro.to_earliest, "to the log start");
  reset->add_flag("--to-latest", ro.to_latest, "to the log end (skip everything)");
  reset->add_option("--to-offset", ro.to_offset, "to this offset");
  reset->add_option("--to-datetime", ro.to_datetime,
                    "to the first record at or after this ISO 8601 time (no zone: UTC)");
  reset->add_option("--by-duration", ro.by_duration,
                    "to the first record at or after now - D (1h30m, 15m, 2d, PT1H30M)");
  reset->add_option("--shift-by", ro.shift_by, "move by N records (negative: back)");
  reset->add_flag("--execute", ro.execute, "really change the offsets");
  reset->callback([&] { rc = groups_reset_offsets(g, ro); });
  auto* gdel = groups->add_subcommand(
      "delete",
      "delete a group without members and its committed offsets (shows the plan unless "
      "--execute)");
  gdel->add_option("group", group, "group name")->required();
  bool gdel_execute = false;
  gdel->add_flag("--execute", gdel_execute, "really delete");
  gdel->callback([&] { rc = groups_delete(g, group, gdel_execute); });

  // --- dlq ---
  auto* dlq = app.add_subcommand("dlq", "list, show, redrive, purge dead letters");
  dlq->require_subcommand(1);
  dlq_args da;
  const std::string where_help =
      "filter NAME=VALUE, repeatable, all must match: reason=attempts_exhausted|permanent_error|"
      "invalid_payload|unknown, key=KEY, since=TIME|DURATION, error=TEXT, topic=ORIGIN-TOPIC, "
      "partition=N, offset=N";
  auto* dlist = dlq->add_subcommand(
      "list",
      "pending dead letters grouped by origin topic, reason and error (--all: resolved too)");
  dlist->add_option("topic", da.topic, "dead-letter topic, e.g. orders.dlq")->required();
  dlist->add_option("--where", da.where, where_help)->allow_extra_args(false);
  dlist->add_flag("--all", da.all, "also the redriven and purged ones, with their state");
  dlist->callback([&] { rc = dlq_list(g, da); });
  auto* dshow = dlq->add_subcommand("show", "one dead letter: origin, attempts, headers, value");
  dshow->add_option("topic", da.topic, "dead-letter topic")->required();
  dshow->add_option("position", da.position, "PARTITION/OFFSET in the dead-letter topic");
  dshow->add_option("--partition", da.partition, "partition in the dead-letter topic");
  dshow->add_option("--offset", da.offset, "offset in the dead-letter topic");
  dshow->callback([&] { rc = dlq_show(g, da); });
  auto* dredrive = dlq->add_subcommand(
      "redrive",
      "republish pending dead letters to their origin topic or --to (shows the plan unless "
      "--execute)");
  dredrive->add_option("topic", da.topic, "dead-letter topic")->required();
  dredrive->add_option("--where", da.where, where_help)->allow_extra_args(false);
  dredrive->add_option("--to", da.to, "redrive to this topic (default: each one's origin topic)");
  dredrive->add_option("--rate", da.rate, "records per second, 0 = unlimited")->default_val(1000);
  dredrive->add_flag("--execute", da.execute, "really redrive");
  dredrive->callback([&] { rc = dlq_redrive(g, da); });
  auto* dpurge = dlq->add_subcommand(
      "purge", "mark pending dead letters as purged (shows the plan unless --execute)");
  dpurge->add_option("topic", da.topic, "dead-letter topic")->required();
  dpurge->add_option("--where", da.where, where_help)->allow_extra_args(false);
  dpurge->add_flag("--execute", da.execute, "really mark them purged");
  dpurge->callback([&] { rc = dlq_purge(g, da); });
  for (auto* c : {dlist, dshow, dredrive, dpurge})
    c->add_flag("--force", da.force,
                "go on with a topic that does not look like a dead-letter topic (not *.dlq, no "
                "record the runtime wrote)");

  // --- produce ---
  produce_args pa;
  auto* prod = app.add_subcommand("produce", "send one record per line of standard input");
  prod->add_option("topic", pa.topic, "topic")->required();
  prod->add_option("--key", pa.key, "the key of every record");
  prod->add_option("--key-separator", pa.key_separator, "split each line into KEY<sep>VALUE");
  prod->add_option("--partition", pa.partition, "send to this partition (default: by key hash)");
  prod->add_option("--header", pa.headers, "add a header KEY=VALUE (repeatable)")
      ->allow_extra_args(false);
  prod->add_option("--compression", pa.compression,
                   "compress batches: none (default), gzip, snappy, lz4 or zstd "
                   "(FERRY_COMPRESSION)")
      ->envname("FERRY_COMPRESSION")
      ->check(CLI::IsMember({"none", "gzip", "snappy", "lz4", "zstd"}));
  prod->callback([&] { rc = produce(g, pa); });

  // --- consume ---
  consume_args ca;
  auto* cons = app.add_subcommand("consume", "print records of a topic");
  cons->add_option("topic", ca.topic, "topic")->required();
  cons->add_option("--partition", ca.partition, "only this partition");
  cons->add_flag("--from-beginning", ca.from_beginning,
                 "start at the oldest record (default: only new records)");
  cons->add_option("--offset", ca.offset, "start at this offset (needs --partition)");
  cons->add_option("--from-time", ca.from_time,
                   "start at the first record at or after this time: ISO 8601 "
                   "(2026-11-22T10:00:00Z), a duration ago (5m, 2h, 1d) or epoch milliseconds");
  cons->add_flag("-e,--exit", ca.exit_at_end, "exit at the end of the log");
  cons->add_option("-n,--count", ca.count, "exit after this many records");
  cons->add_option("--group", ca.group,
                   "consume as a member of this group, starting at its committed offsets, and "
                   "commit what was printed");
  cons->add_flag("--decode", ca.decode,
                 "print FlatBuffers payloads with a registered schema id (header "
                 "ferry.schema-id) as JSON");
  cons->add_option("-f,--format", ca.format,
                   "print each record with this kcat-style format: %t topic, %p partition, %o "
                   "offset, %k key, %s value, %S value size, %K key size, %h headers, %T "
                   "timestamp (ms), %% a percent sign; escapes \\n \\t \\r \\\\ (no newline "
                   "is added)");
  cons->add_option("--key-separator", ca.key_separator,
                   "print KEY<sep>VALUE per line (what produce --key-separator reads)");
  cons->add_option("--encoding", ca.encoding,
                   "with -o json: keys, values and header values as text (invalid UTF-8 "
                   "replaced) or base64")
      ->check(CLI::IsMember({"text", "base64"}));
  std::string commit_interval = "5s";
  cons->add_option("--commit-interval", commit_interval,
                   "with --group: commit what was printed this often (5s, 500ms), and always "
                   "before exiting")
      ->default_val("5s");
  cons->callback([&] {
    auto every = ferry::parse_duration(commit_interval);
    if (!every || every->count() <= 0) {
      std::cerr << "error: --commit-interval wants a positive duration (5s, 500ms, 1m), got '"
                << commit_interval << "'\n";
      rc = kUsage;
      return;
    }
    ca.commit_interval = *every;
    rc = consume(g, ca);
  });

  // --- schema ---
  auto* sch = app.add_subcommand("schema", "register, list, show, check FlatBuffers schemas");
  sch->require_subcommand(1);
  schema_args sa;
  const std::string inc_help = "directory searched for the schema's includes (repeatable)";
  auto* sreg = sch->add_subcommand(
      "register", "register FILE.fbs as the next version of SUBJECT (checked against its mode)");
  sreg->add_option("subject", sa.subject, "subject, e.g. orders-value")->required();
  sreg->add_option("file", sa.file, "the schema, FILE.fbs")->required()->check(CLI::ExistingFile);
  sreg->add_option("-I,--include", sa.includes, inc_help);
  sreg->callback([&] { rc = schema_register(g, sa); });
  auto* slist = sch->add_subcommand("list", "subjects with their mode and versions");
  slist->callback([&] { rc = schema_list(g); });
  auto* sshow = sch->add_subcommand("show", "one version of a subject (default: the latest)");
  sshow->add_option("subject", sa.subject, "subject");
  sshow->add_option("--version", sa.version, "version number (default: the latest)");
  sshow->add_option("--id", sa.id, "show the schema with this id instead");
  sshow->callback([&] {
    if (sa.subject.empty() && !sa.id) {
      std::cerr << "error: give a SUBJECT or --id ID\n";
      rc = kUsage;
      return;
    }
    rc = schema_show(g, sa);
  });
  auto* smode = sch->add_subcommand(
      "mode",
      "show or set a subject's compatibility mode (NONE, BACKWARD, BACKWARD_TRANSITIVE, "
      "FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, DEFAULT)");
  smode->add_option("subject", sa.subject, "subject")->required();
  smode->add_option("mode", sa.mode, "the new mode (omit to show the current one)");
  smode->callback([&] { rc = schema_mode(g, sa); });
  auto* scheck = sch->add_subcommand(
      "check",
      "check FILE.fbs against SUBJECT on the broker, or --against OLD.fbs without a broker; "
      "exits 1 with the violations when incompatible (for CI)");
  std::vector<std::string> check_args;
  scheck->add_option("args", check_args, "SUBJECT FILE.fbs, or FILE.fbs with --against")
      ->required();
  scheck->add_option("--against", sa.against, "the previous version, OLD.fbs (no broker needed)")
      ->check(CLI::ExistingFile);
  scheck->add_option("--mode", sa.mode, "with --against: the mode to apply (default BACKWARD)");
  scheck->add_option("-I,--include", sa.includes, inc_help);
  scheck->callback([&] {
    const std::size_t want = sa.against ? 1 : 2;
    if (check_args.size() != want) {
      std::cerr << (sa.against ? "error: with --against give one FILE.fbs\n"
                               : "error: give SUBJECT FILE.fbs (or FILE.fbs --against OLD.fbs)\n");
      rc = kUsage;
      return;
    }
    if (!sa.against) sa.subject = check_args[0];
    sa.file = check_args.back();
    if (sa.mode && !sa.against) {
      std::cerr << "error: --mode applies to --against; the broker uses the subject's mode\n";
      rc = kUsage;
      return;
    }
    rc = schema_check(g, sa);
  });
  auto* senf = sch->add_subcommand(
      "enforce", "make a topic accept only records with a schema id of its subject (--off: any)");
  senf->add_option("topic", sa.topic, "topic")->required();
  senf->add_option("--subject", sa.subject, "subject (default: TOPIC-value)");
  senf->add_flag("--off", sa.off, "turn validation off");
  senf->callback([&] { rc = schema_enforce(g, sa); });

  // --- bench ---
  bench_args ba;
  std::optional<long> records;
  auto* b = app.add_subcommand("bench", "measure produce, consume or end-to-end performance");
  std::optional<int> partitions;
  b->add_option("mode", ba.mode,
                "produce, consume, e2e, group (members consuming and committing), rebalance "
                "(time for a clean leave and a kill -9), worker (the runtime with a no-op handler "
                "and idempotency keys) or drain (every tenth record fails three times and is "
                "dead-lettered, zero backoff)")
      ->required()
      ->check(CLI::IsMember(
          {"produce", "consume", "e2e", "group", "rebalance", "worker", "drain", "member"}));
  b->add_option("--topic", ba.topic, "use this topic (default: a fresh one, deleted afterwards)");
  b->add_option("--records", records, "number of records (default 1000000; e2e 20000)");
  b->add_option("--size", ba.size, "value size in bytes")->default_val(256);
  b->add_option("--rate", ba.rate,
                "records per second, 0 = as fast as possible (e2e default 2000)");
  b->add_option("--partitions", partitions,
                "partitions of the fresh topic (default 1; group and rebalance 8)");
  b->add_option("--members", ba.members, "group members (group, rebalance)")->default_val(4);
  b->add_option("--session-timeout-ms", ba.session_timeout_ms,
                "session timeout of the member killed in rebalance")
      ->default_val(1000);
  b->add_option("--group", ba.group,
                "worker, drain: run as this (existing) group, which is kept; its idempotency "
                "ledger is read before the first record, in join_seconds (member: internal)");
  b->add_option("--concurrency", ba.concurrency, "handler threads (worker, drain)")->default_val(4);
  b->add_option("--ordering", ba.ordering, "in_order or key_ordered (worker, drain)")
      ->default_val("in_order");
  b->add_option("--handler-latency-ms", ba.handler_latency_ms,
                "worker: each handler call waits this long, as one calling a payment gateway")
      ->check(CLI::Range(0L, 60'000L));
  b->add_option("--keys", ba.keys,
                "worker, drain: distinct record keys (default 0: every record its own)")
      ->check(CLI::Range(0L, 1'000'000'000L));
  b->add_option("--partition-concurrency", ba.partition_concurrency,
                "worker, drain with key_ordered: records of one partition (different keys) "
                "running at once; 0 = --concurrency, 1 = one at a time")
      ->check(CLI::Range(0, 4096));
  b->add_flag("--keep", ba.keep, "keep the fresh topic and the groups the run made");
  b->add_option("--linger-ms", ba.linger_ms, "producer linger (default 5; e2e 0)");
  b->add_option("--batch-bytes", ba.batch_bytes, "producer batch size")->default_val(1u << 20);
  b->add_option("--compression", ba.compression,
                "producer compression: none (default), gzip, snappy, lz4 or zstd")
      ->check(CLI::IsMember({"none", "gzip", "snappy", "lz4", "zstd"}));
  b->callback([&] {
    ba.records = records.value_or(ba.mode == "e2e" || ba.mode == "drain" ? 20000 : 1'000'000);
    ba.partitions = partitions.value_or(ba.mode == "group" || ba.mode == "rebalance" ? 8 : 1);
    rc = bench(g, ba);
  });

  // --- top ---
  top_args ta;
  auto* top_cmd = app.add_subcommand(
      "top", "a live view of throughput, lag and dead letters per topic and group");
  top_cmd->add_option("--interval", ta.interval_text, "time between refreshes (2s, 500ms, 1m)")
      ->default_val("2s");
  auto* once_flag = top_cmd->add_flag("--once", ta.once, "one refresh, then exit");
  top_cmd
      ->add_option("--iterations", ta.iterations,
                   "this many refreshes, then exit (rates from the second on)")
      ->excludes(once_flag);
  top_cmd->add_flag("--json", ta.json, "one JSON object per refresh per line (as -o json)");
  top_cmd->add_option("--group", ta.groups, "only this group (repeatable)")
      ->allow_extra_args(false);
  top_cmd
      ->add_option("--topic", ta.topics,
                   "only this topic, its retry tiers and dead-letter topic (repeatable)")
      ->allow_extra_args(false);
  top_cmd->callback([&] { rc = top(g, ta); });

  // --- keys ---
  auto* keys = app.add_subcommand("keys", "make CURVE key pairs for authentication");
  keys->require_subcommand(1);
  std::string key_name, key_dir = ".";
  auto* kgen = keys->add_subcommand(
      "generate", "write NAME.key (the pair, mode 0600) and NAME.pub (the public half)");
  kgen->add_option("name", key_name, "the key's name, e.g. server or alice")->required();
  kgen->add_option("--dir", key_dir, "where to write the files (default: here)");
  kgen->callback([&] { rc = keys_generate(g, key_name, key_dir); });

  // --- users ---
  auto* users = app.add_subcommand("users", "entries for the broker's users file");
  users->require_subcommand(1);
  std::string user_name;
  int scram_iterations = 8192;
  auto* uhash = users->add_subcommand(
      "hash-password",
      "print a users-file entry with a SASL/SCRAM-SHA-256 credential for Kafka clients (the "
      "password is read from stdin, without echo on a terminal; only its salted hash is printed)");
  uhash->add_option("name", user_name, "the user's name (its principal)")->required();
  uhash->add_option("--iterations", scram_iterations, "PBKDF2 iterations (4096 or more)")
      ->default_val(8192);
  uhash->callback([&] { rc = users_hash_password(g, user_name, scram_iterations); });

  // --- acls ---
  auto* acls = app.add_subcommand(
      "acls", "authorization rules: who may do what on which topics, groups, dlqs, schemas");
  acls->require_subcommand(1);
  acl_args aa;
  std::string acl_who;
  auto rule_flags = [&](CLI::App* c, bool adding) {
    c->add_option("--principal", aa.principal,
                  "the user (a [users.NAME] of the users file), or * for every user")
        ->required();
    c->add_option("--topic", aa.topic, "a topic name (or prefix with --prefix; * for all)");
    c->add_option("--group", aa.group, "a consumer group");
    c->add_option("--dlq", aa.dlq, "a dead-letter topic (redrive, purge)");
    c->add_option("--schema", aa.schema, "a schema registry subject");
    c->add_flag("--cluster", aa.cluster, "the broker itself (ACLs, producer ids)");
    c->add_flag("--prefix", aa.prefix, "the name is a prefix");
    c->add_option("--operations", aa.operations,
                  std::string("comma-separated: read, write, create, delete, describe, alter, "
                              "redrive, purge, or all") +
                      (adding ? "" : " (default: all the rule has)"));
    c->add_flag("--deny", aa.deny, "a deny rule (wins over any allow)");
  };
  auto* aadd = acls->add_subcommand("add", "allow (or --deny) operations on a resource");
  rule_flags(aadd, true);
  aadd->callback([&] { rc = acls_change(g, aa, true); });
  auto* arm = acls->add_subcommand("remove", "take operations (or a whole rule) out");
  rule_flags(arm, false);
  arm->callback([&] { rc = acls_change(g, aa, false); });
  auto* alist = acls->add_subcommand("list", "the rules, as a table or -o json");
  alist->add_option("--principal", acl_who, "only this user's rules (and those for *)");
  alist->callback([&] { rc = acls_list(g, acl_who); });

  // --- completion, man page (generated from the definitions above) ---
  std::string shell;
  auto* comp = app.add_subcommand(
      "completion",
      "print a shell completion script: bash (source it, or put it in "
      "/usr/share/bash-completion/completions/ferry) or zsh (as _ferry in $fpath)");
  comp->add_option("shell", shell, "bash or zsh")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh"}));
  comp->callback([&] {
    std::cout << (shell == "bash" ? ferry::cli_doc::bash_completion(app, "ferry")
                                  : ferry::cli_doc::zsh_completion(app, "ferry"));
  });
  app.add_flag_callback(
         "--man",
         [&] {
           ferry::cli_doc::man_info info;
           info.name = "ferry";
           info.summary = "the command-line client of the Ferry broker";
           info.version = build.version;
           info.sections = {
               {"GLOBAL OPTIONS",
                "The options above are taken before or after the command: ferry consume "
                "orders -o json."},
               {"EXIT STATUS",
                "  0 ok\n  1 the broker refused the request (unknown topic, invalid "
                "config, ...)\n  2 usage error\n  3 the broker did not answer within "
                "--timeout-ms\n  4 something else failed (I/O, a check)\n  5 the broker did "
                "not admit this client's key\n  6 the broker admitted the client, but no ACL "
                "allows it "
                "the operation"},
               {"ENVIRONMENT",
                "  FERRY_BROKER the broker address (--broker)\n  FERRY_KEY_FILE, "
                "FERRY_SERVER_KEY --key-file, --server-key\n  FERRY_COMPRESSION "
                "produce --compression\n  FERRY_LOG_LEVEL the client libraries' log level "
                "(default warn)"},
               {"SEE ALSO", "ferryd(1); docs/cli.md in the Ferry sources."}};
           std::cout << ferry::cli_doc::man_page(app, info);
           throw CLI::Success();
         },
         "print the man page (troff) and exit")
      ->group("")
      ->trigger_on_parse();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int r = app.exit(e);
    return r == 0 ? 0 : kUsage;
  }
  return rc;
}
