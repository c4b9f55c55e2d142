// ferry topics create | list | describe | delete
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
          {"partition", p.partition.value()},    {"log_start_offset", p.log_start.value()},
          {"log_end_offset", p.log_end.value()}, {"high_watermark", p.high_watermark.value()},
          {"size_bytes", p.size_bytes},          {"segments", p.segments}};
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
                             p.size_bytes, p.segments, p.error ? "FAILED: " + p.message : "ok");
  }
  return kOk;
}

int topics_delete(const globals& g, const std::string& name, bool execute) {
  client::admin a(g.client());
  auto d = a.describe_topic(name);
  if (!d) return report("cannot delete topic " + name, d.error(), a.last_error_message());
  std::int64_t records = 0, bytes = 0;
  for (const auto& p : d.value().partitions) {
    records += p.log_end - p.log_start;
    bytes += p.size_bytes;
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
