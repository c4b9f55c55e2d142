// ferry topics create | list | describe | alter | delete
#include <fmt/format.h>

#include <iostream>

#include "cli.h"
#include "commands.h"
#include "ferry/client/admin.h"

namespace ferry::cli {

int topics_create(const globals& g, const std::string& name, const client::topic_config& config) {
  client::admin a(g.client());
  if (auto r = a.create_topic(name, config); !r)
    return report("cannot create topic " + name, r.error(), a.last_error_message());
  if (g.json()) {
    print_json({{"topic", name}, {"partitions", config.partitions}, {"created", true}});
  } else {
    std::cout << fmt::format("created topic {} with {} partition(s)\n", name, config.partitions);
  }
  return kOk;
}

int topics_list(const globals& g) {
  client::admin a(g.client());
  auto r = a.list_topics();
  if (!r) return report("cannot list topics", r.error(), a.last_error_message());
  if (g.json()) {
    auto arr = nlohmann::json::array();
    for (const auto& t : r.value())
      arr.push_back({{"topic", t.name}, {"partitions", t.partitions}});
    print_json(arr);
    return kOk;
  }
  std::cout << fmt::format("{:<40} {:>10}\n", "TOPIC", "PARTITIONS");
  for (const auto& t : r.value()) std::cout << fmt::format("{:<40} {:>10}\n", t.name, t.partitions);
  return kOk;
}

int topics_describe(const globals& g, const std::string& name) {
  client::admin a(g.client());
  auto r = a.describe_topic(name);
  if (!r) return report("cannot describe topic " + name, r.error(), a.last_error_message());
  const auto& d = r.value();
  auto fmt_limit = [](std::int64_t v, const char* unlimited) {
    return v < 0 ? std::string(unlimited) : std::to_string(v);
  };
  if (g.json()) {
    auto parts = nlohmann::json::array();
    for (const auto& p : d.partitions) {
      nlohmann::json pj = {
          {"partition", p.partition.value()},
          {"log_start_offset", p.log_start.value()},
          {"log_end_offset", p.log_end.value()},
          {"high_watermark", p.high_watermark.value()},
          {"size_bytes", p.size_bytes < 0 ? nlohmann::json(nullptr) : nlohmann::json(p.size_bytes)},
          {"segments", p.segments < 0 ? nlohmann::json(nullptr) : nlohmann::json(p.segments)}};
      if (p.error) pj["error"] = p.error.message() + (p.message.empty() ? "" : ": " + p.message);
      parts.push_back(pj);
    }
    print_json({{"topic", d.name},
                {"partitions", d.config.partitions},
                {"retention_ms", d.config.retention_ms},
                {"retention_bytes", d.config.retention_bytes},
                {"max_message_bytes", d.config.max_message_bytes},
                {"segment_bytes", d.config.segment_bytes},
                {"partition_details", parts}});
    return kOk;
  }
  std::cout << fmt::format(
      "topic {}: {} partition(s), retention {} ms / {} bytes, max message {} bytes, segments of {} "
      "bytes\n",
      d.name, d.config.partitions, fmt_limit(d.config.retention_ms, "forever"),
      fmt_limit(d.config.retention_bytes, "unlimited"), d.config.max_message_bytes,
      d.config.segment_bytes);
  std::cout << fmt::format("{:>9} {:>16} {:>16} {:>16} {:>14} {:>8}  {}\n", "PARTITION",
                           "LOG-START-OFFSET", "LOG-END-OFFSET", "HIGH-WATERMARK", "SIZE-BYTES",
                           "SEGMENTS", "STATUS");
  for (const auto& p : d.partitions) {
    std::cout << fmt::format("{:>9} {:>16} {:>16} {:>16} {:>14} {:>8}  {}\n", p.partition.value(),
                             p.log_start.value(), p.log_end.value(), p.high_watermark.value(),
                             p.size_bytes < 0 ? "-" : std::to_string(p.size_bytes),
                             p.segments < 0 ? "-" : std::to_string(p.segments),
                             !p.error ? std::string("ok")
                             : p.message.rfind("damaged:", 0) == 0
                                 ? "DAMAGED: " + p.message.substr(9)
                                 : "FAILED: " + p.message);
  }
  return kOk;
}

int topics_alter(const globals& g, const std::string& name, client::topic_changes changes,
                 bool execute) {
  if (!changes.partitions && !changes.retention_ms && !changes.retention_bytes &&
      !changes.max_message_bytes) {
    std::cerr << "error: nothing to change; give --partitions, --retention-ms, --retention-bytes "
                 "or --max-message-bytes\n";
    return kUsage;
  }
  client::admin a(g.client());
  auto before = a.describe_topic(name);
  if (!before) return report("cannot alter topic " + name, before.error(), a.last_error_message());
  const auto& old = before.value().config;
  // The plan is checked by the broker too (validate_only), so a plan that
  // prints is one --execute would carry out.
  changes.validate_only = !execute;
  auto after = a.alter_topic(name, changes);
  if (!after) return report("cannot alter topic " + name, after.error(), a.last_error_message());
  const auto& now = after.value();
  auto limit = [](std::int64_t v, const char* unlimited) {
    return v < 0 ? std::string(unlimited) : std::to_string(v);
  };
  struct row {
    const char* setting;
    std::string from, to;
  };
  std::vector<row> rows;
  if (changes.partitions)
    rows.push_back({"partitions", std::to_string(old.partitions), std::to_string(now.partitions)});
  if (changes.retention_ms)
    rows.push_back(
        {"retention_ms", limit(old.retention_ms, "forever"), limit(now.retention_ms, "forever")});
  if (changes.retention_bytes)
    rows.push_back({"retention_bytes", limit(old.retention_bytes, "unlimited"),
                    limit(now.retention_bytes, "unlimited")});
  if (changes.max_message_bytes)
    rows.push_back({"max_message_bytes", std::to_string(old.max_message_bytes),
                    std::to_string(now.max_message_bytes)});
  const bool repartition = now.partitions > old.partitions;
  if (g.json()) {
    nlohmann::json j = {{"topic", name}, {"executed", execute}};
    if (!execute) j["plan"] = "alter-topic";
    for (const auto& r : rows) j["changes"][r.setting] = {{"from", r.from}, {"to", r.to}};
    print_json(j);
    return kOk;
  }
  std::cout << fmt::format("{} topic {}:\n", execute ? "altered" : "plan: alter", name);
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows) table.push_back({r.setting, r.from, r.to});
  print_table({"SETTING", "FROM", "TO"}, table);
  if (repartition)
    std::cout << fmt::format(
        "note: keys are mapped to partitions by count: new records of a key may go to another "
        "partition than its earlier ones (per-key order holds from here on, not across the "
        "change). Consumer groups on {} rebalance to take the new partitions.\n",
        name);
  if (!execute) std::cout << "nothing changed; re-run with --execute to apply it\n";
  return kOk;
}

int topics_delete(const globals& g, const std::string& name, bool execute) {
  client::admin a(g.client());
  auto d = a.describe_topic(name);
  if (!d) return report("cannot delete topic " + name, d.error(), a.last_error_message());
  std::int64_t records = 0, bytes = 0;
  for (const auto& p : d.value().partitions) {
    records += p.log_end - p.log_start;
    bytes += std::max<std::int64_t>(0, p.size_bytes);
  }
  if (!execute) {
    if (g.json()) {
      print_json({{"plan", "delete-topic"},
                  {"topic", name},
                  {"partitions", d.value().partitions.size()},
                  {"records", records},
                  {"bytes", bytes},
                  {"executed", false}});
    } else {
      std::cout << fmt::format(
                       "plan: delete topic {} with {} partition(s), {} record(s), {} bytes.\n",
                       name, d.value().partitions.size(), records, bytes)
                << "nothing changed; re-run with --execute to delete it\n";
    }
    return kOk;
  }
  if (auto r = a.delete_topic(name); !r)
    return report("cannot delete topic " + name, r.error(), a.last_error_message());
  if (g.json()) {
    print_json({{"topic", name}, {"deleted", true}, {"records", records}});
  } else {
    std::cout << fmt::format("deleted topic {} ({} record(s))\n", name, records);
  }
  return kOk;
}

}  // namespace ferry::cli
