// The subcommands of `ferry`; each returns a process exit code (cli.h).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "cli.h"
#include "ferry/client/admin.h"

namespace ferry::cli {

/// ferry keys generate NAME (keys.cc, docs/security.md).
int keys_generate(const globals& g, const std::string& name, const std::string& dir);

/// ferry users hash-password NAME (keys.cc): the users-file entry for a
/// SASL/SCRAM-SHA-256 password read from stdin.
int users_hash_password(const globals& g, const std::string& name, int iterations);

/// ferry acls add|remove|list (acls.cc, docs/security.md#authorization).
struct acl_args {
  std::string principal;
  std::optional<std::string> topic, group, dlq, schema;
  bool cluster = false;
  bool prefix = false;
  bool deny = false;
  std::string operations;  // "read,write", "all"
};
int acls_change(const globals& g, const acl_args& a, bool adding);
int acls_list(const globals& g, const std::string& principal);

int topics_create(const globals& g, const std::string& name, const client::topic_config& config);
int topics_list(const globals& g);
int topics_describe(const globals& g, const std::string& name);
int topics_delete(const globals& g, const std::string& name, bool execute);
int topics_alter(const globals& g, const std::string& name, client::topic_changes changes,
                 bool execute);

int groups_list(const globals& g);
struct groups_describe_args {
  std::string group;
  bool members = false;  // the members view
  bool state = false;    // the one-line state view
};
int groups_describe(const globals& g, const groups_describe_args& a);
struct reset_offsets_args {
  std::string group;
  std::vector<std::string> topics;  // "T" (all partitions) or "T:P,P,..."
  bool all_topics = false;          // every partition the group has offsets for
  bool to_earliest = false;
  bool to_latest = false;
  std::optional<std::int64_t> to_offset;
  std::optional<std::string> to_datetime;  // ISO 8601; UTC without a zone
  std::optional<std::string> by_duration;  // now - D
  std::optional<std::int64_t> shift_by;
  bool execute = false;
};
int groups_reset_offsets(const globals& g, const reset_offsets_args& a);
int groups_delete(const globals& g, const std::string& group, bool execute);

struct produce_args {
  std::string topic;
  std::optional<std::string> key;
  std::optional<std::string> key_separator;
  std::optional<int> partition;
  std::vector<std::string> headers;  // k=v
  std::string compression = "none";  // none, gzip, snappy, lz4, zstd
};
int produce(const globals& g, const produce_args& a);

/// One piece of a consume -f format: literal text, or the record field
/// named by the character after '%'.
struct format_piece {
  char field = 0;  // 0: literal
  std::string text;
};

struct consume_args {
  std::string topic;
  std::optional<int> partition;
  bool from_beginning = false;
  std::optional<std::int64_t> offset;
  std::optional<std::string> from_time;
  bool exit_at_end = false;
  std::optional<long> count;
  /// Join this group: its partitions are shared with the group's other
  /// members, reading starts at the committed offsets, and what was printed
  /// is committed before exiting.
  std::optional<std::string> group;
  /// Render payloads that carry a registered schema id as JSON.
  bool decode = false;
  /// kcat-style -f format (consume.cc: parse_format), parsed into `pieces`.
  std::optional<std::string> format;
  std::optional<std::vector<format_piece>> pieces;
  /// Print KEY<sep>VALUE (produce --key-separator's inverse).
  std::optional<std::string> key_separator;
  /// -o json: "text" (invalid UTF-8 replaced) or "base64" for keys, values
  /// and header values.
  std::string encoding = "text";
  /// --group: commit what was written out this often (and at exit).
  std::chrono::milliseconds commit_interval{5000};
};
int consume(const globals& g, consume_args a);

struct bench_args {
  std::string mode;  // produce | consume | e2e
  std::optional<std::string> topic;
  long records = 1'000'000;
  std::size_t size = 256;
  double rate = 0;  // records/s, 0 = unlimited (e2e default 2000)
  int partitions = 1;
  bool keep = false;
  std::optional<long> linger_ms;  // producer linger; default 5 ms, e2e 0 ms
  std::size_t batch_bytes = 1u << 20;
  std::string compression = "none";   // producer compression
  int members = 4;                    // group, rebalance
  long session_timeout_ms = 1000;     // rebalance: the killed member's session timeout
  std::string group;                  // member (internal)
  int concurrency = 4;                // worker, drain: handler threads
  std::string ordering = "in_order";  // worker, drain
  long handler_latency_ms = 0;        // worker: each handler call sleeps this long
  long keys = 0;                      // worker, drain: distinct record keys (0: one per record)
  int partition_concurrency = 0;      // worker, drain (key_ordered): records of a partition at once
};
int bench(const globals& g, const bench_args& a);

/// ferry dlq list | show | redrive | purge (dlq.cc, docs/dead-letters.md).
struct dlq_args {
  std::string topic;                    // the dead-letter topic, e.g. orders.dlq
  std::vector<std::string> where;       // NAME=VALUE filters, all must match
  bool all = false;                     // list: resolved dead letters too
  std::optional<std::string> position;  // show: "PARTITION/OFFSET"
  std::optional<std::int64_t> partition;
  std::optional<std::int64_t> offset;
  std::optional<std::string> to;  // redrive: one target instead of each origin topic
  double rate = 1000;             // redrive: records/s, 0 = unlimited
  bool execute = false;
  bool force = false;  // a topic that does not look like a dead-letter topic
};
int dlq_list(const globals& g, const dlq_args& a);
int dlq_show(const globals& g, const dlq_args& a);
int dlq_redrive(const globals& g, const dlq_args& a);
int dlq_purge(const globals& g, const dlq_args& a);

/// ferry schema register | list | show | mode | check | enforce (schema.cc,
/// docs/schemas.md).
struct schema_args {
  std::string subject;
  std::string file;                   // FILE.fbs
  std::vector<std::string> includes;  // -I DIR for the .fbs includes
  std::optional<std::int32_t> version;
  std::optional<std::int64_t> id;
  std::optional<std::string> mode;     // mode: the new mode; check --against: the mode to apply
  std::optional<std::string> against;  // check: OLD.fbs (no broker)
  std::string topic;                   // enforce
  bool off = false;                    // enforce --off
};
int schema_register(const globals& g, const schema_args& a);
int schema_list(const globals& g);
int schema_show(const globals& g, const schema_args& a);
int schema_mode(const globals& g, const schema_args& a);
int schema_check(const globals& g, const schema_args& a);
int schema_enforce(const globals& g, const schema_args& a);

/// ferry top (top.cc, docs/cli.md#top): throughput, lag and dead letters per
/// topic and group, refreshed every interval until Ctrl-C or `iterations`.
struct top_args {
  std::string interval_text = "2s";      // --interval, parsed by top()
  std::chrono::milliseconds interval{};  // set by top()
  bool once = false;                     // same as iterations = 1
  std::optional<long> iterations;        // refreshes, then exit; none: until Ctrl-C
  bool json = false;                     // one JSON object per refresh (also -o json)
  std::vector<std::string> groups;       // only these groups
  std::vector<std::string> topics;       // only these topics, their retry tiers and DLQ
};
int top(const globals& g, const top_args& a);
}  // namespace ferry::cli
