// ferry groups list | describe | reset-offsets | delete
// (kafka-consumer-groups conventions; see docs/cli.md).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <limits>
#include <map>
#include <set>

#include "cli.h"
#include "commands.h"
#include "ferry/client/admin.h"
#include "ferry/client/errc.h"

namespace ferry::cli {

namespace {

std::string or_dash(const std::optional<offset>& o) {
  return o ? std::to_string(o->value()) : "-";
}

nlohmann::json or_null(const std::optional<offset>& o) {
  return o ? nlohmann::json(o->value()) : nlohmann::json(nullptr);
}

std::string assignment_text(const std::vector<client::topic_partition>& tps) {
  // orders(0,1,2),payments(3)
  std::map<std::string, std::vector<std::int32_t>> by_topic;
  for (const auto& tp : tps) by_topic[tp.topic].push_back(tp.partition.value());
  std::string out;
  for (const auto& [t, ps] : by_topic) {
    if (!out.empty()) out += ",";
    out += fmt::format("{}({})", t, fmt::join(ps, ","));
  }
  return out.empty() ? "-" : out;
}

int usage(const std::string& msg) {
  std::cerr << "error: " << msg << "\n";
  return kUsage;
}

}  // namespace

int groups_list(const globals& g) {
  client::admin a(g.client());
  auto r = a.list_groups();
  if (!r) return report("cannot list groups", r.error(), a.last_error_message());
  if (g.json()) {
    auto arr = nlohmann::json::array();
    for (const auto& x : r.value())
      arr.push_back({{"group", x.group},
                     {"state", x.state},
                     {"members", x.members},
                     {"generation", x.generation}});
    print_json(arr);
    return kOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& x : r.value())
    rows.push_back({x.group, x.state, std::to_string(x.members), std::to_string(x.generation)});
  print_table({"GROUP", "STATE", "MEMBERS", "GENERATION"}, rows);
  return kOk;
}

int groups_describe(const globals& g, const groups_describe_args& a) {
  if (a.members && a.state) return usage("choose one of --members and --state");
  client::admin adm(g.client());
  auto r = adm.describe_group(a.group);
  if (!r) return report("cannot describe group " + a.group, r.error(), adm.last_error_message());
  const auto& d = r.value();
  std::map<std::string, const client::group_member_info*> member_by_id;
  for (const auto& m : d.members) member_by_id[m.member_id] = &m;

  if (a.state) {
    if (g.json()) {
      print_json({{"group", d.group},
                  {"state", d.state},
                  {"generation", d.generation},
                  {"strategy", d.strategy},
                  {"members", d.members.size()}});
    } else {
      print_table({"GROUP", "STATE", "GENERATION", "STRATEGY", "MEMBERS"},
                  {{d.group, d.state, std::to_string(d.generation), d.strategy,
                    std::to_string(d.members.size())}});
    }
    return kOk;
  }

  if (a.members) {
    if (g.json()) {
      auto arr = nlohmann::json::array();
      for (const auto& m : d.members) {
        auto asg = nlohmann::json::array();
        for (const auto& tp : m.assignment)
          asg.push_back({{"topic", tp.topic}, {"partition", tp.partition.value()}});
        arr.push_back({{"member_id", m.member_id},
                       {"client_id", m.client_id},
                       {"host", m.host},
                       {"topics", m.topics},
                       {"assignment", asg},
                       {"last_seen_ms_ago", m.since_seen.count()}});
        if (!m.instance_id.empty()) arr.back()["instance_id"] = m.instance_id;
      }
      print_json({{"group", d.group}, {"state", d.state}, {"members", arr}});
      return kOk;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& m : d.members)
      rows.push_back(
          {m.member_id, m.instance_id.empty() ? "-" : m.instance_id,
           m.client_id.empty() ? "-" : m.client_id, m.host.empty() ? "-" : m.host,
           std::to_string(m.assignment.size()), assignment_text(m.assignment),
           fmt::format("{:.1f}s ago", static_cast<double>(m.since_seen.count()) / 1000.0)});
    if (rows.empty()) std::cerr << fmt::format("group {} has no active members\n", d.group);
    print_table(
        {"MEMBER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", "PARTITIONS", "ASSIGNMENT", "LAST-SEEN"},
        rows);
    return kOk;
  }

  if (g.json()) {
    auto parts = nlohmann::json::array();
    for (const auto& p : d.partitions) {
      auto ms = p.lag_ms(d.broker_time);
      auto m = member_by_id.find(p.member_id);
      nlohmann::json pj = {{"topic", p.tp.topic},
                           {"partition", p.tp.partition.value()},
                           {"current_offset", or_null(p.committed)},
                           {"log_end_offset", or_null(p.log_end)},
                           {"lag", p.lag() ? nlohmann::json(*p.lag()) : nlohmann::json(nullptr)},
                           {"lag_seconds", ms ? nlohmann::json(static_cast<double>(*ms) / 1000.0)
                                              : nlohmann::json(nullptr)},
                           {"consumer_id", p.member_id.empty() ? nlohmann::json(nullptr)
                                                               : nlohmann::json(p.member_id)},
                           {"host", m != member_by_id.end() ? nlohmann::json(m->second->host)
                                                            : nlohmann::json(nullptr)}};
      if (p.error) pj["error"] = p.error.message();
      parts.push_back(pj);
    }
    print_json({{"group", d.group},
                {"state", d.state},
                {"generation", d.generation},
                {"members", d.members.size()},
                {"broker_time", d.broker_time.value()},
                {"partitions", parts}});
    return kOk;
  }
  if (d.members.empty())
    std::cerr << fmt::format("group {} has no active members\n", d.group);
  else if (d.state == "PreparingRebalance")
    std::cerr << fmt::format("group {} is rebalancing; the assignment may change\n", d.group);
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : d.partitions) {
    auto ms = p.lag_ms(d.broker_time);
    auto m = member_by_id.find(p.member_id);
    rows.push_back({p.tp.topic, std::to_string(p.tp.partition.value()), or_dash(p.committed),
                    or_dash(p.log_end), p.lag() ? std::to_string(*p.lag()) : "-",
                    ms ? std::to_string(*ms / 1000) : "-", p.member_id.empty() ? "-" : p.member_id,
                    m != member_by_id.end() && !m->second->host.empty() ? m->second->host : "-"});
    if (p.error)
      std::cerr << fmt::format("warning: {}-{}: {}\n", p.tp.topic, p.tp.partition.value(),
                               p.error.message());
  }
  print_table({"TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "LAG-SECONDS",
               "CONSUMER-ID", "HOST"},
              rows);
  return kOk;
}

namespace {

struct planned {
  client::topic_partition tp;
  std::optional<offset> current;
  offset next;
  std::string note;
  std::error_code error;  // with --execute
  std::string message;
};

// "orders" or "orders:0,2,5".
bool parse_topic_spec(const std::string& spec, std::string& topic, std::vector<std::int32_t>& ps) {
  auto colon = spec.find(':');
  topic = spec.substr(0, colon);
  if (topic.empty()) return false;
  if (colon == std::string::npos) return true;
  std::string rest = spec.substr(colon + 1);
  if (rest.empty()) return false;
  std::size_t pos = 0;
  while (pos <= rest.size()) {
    auto comma = rest.find(',', pos);
    std::string p = rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (p.empty() || p.size() > 9 ||
        !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
    ps.push_back(std::stoi(p));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return true;
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? std::numeric_limits<std::int64_t>::max()
                 : std::numeric_limits<std::int64_t>::min();
  return r;
}

}  // namespace

int groups_reset_offsets(const globals& g, const reset_offsets_args& a) {
  if (a.all_topics == !a.topics.empty())
    return usage("name the partitions with --topic T[:P,P...] (repeatable) or --all-topics");
  const int modes = (a.to_earliest ? 1 : 0) + (a.to_latest ? 1 : 0) + (a.to_offset ? 1 : 0) +
                    (a.to_datetime ? 1 : 0) + (a.by_duration ? 1 : 0) + (a.shift_by ? 1 : 0);
  if (modes != 1)
    return usage(
        "choose exactly one of --to-earliest, --to-latest, --to-offset N, --to-datetime TIME, "
        "--by-duration D, --shift-by N");
  if (a.to_offset && *a.to_offset < 0) return usage("--to-offset wants an offset >= 0");
  std::map<std::string, std::vector<std::int32_t>> specs;  // topic -> partitions (-1: all)
  for (const auto& t : a.topics) {
    std::string topic;
    std::vector<std::int32_t> ps;
    if (!parse_topic_spec(t, topic, ps))
      return usage("--topic wants TOPIC or TOPIC:P,P,... (e.g. orders:0,2), got '" + t + "'");
    auto& v = specs[topic];
    v.insert(v.end(), ps.begin(), ps.end());
    if (ps.empty()) v.push_back(-1);  // -1: every partition
  }
  std::optional<timestamp_ms> at;
  if (a.to_datetime) {
    at = parse_iso8601(*a.to_datetime);
    if (!at)
      return usage(
          "--to-datetime wants ISO 8601, e.g. 2026-11-22T10:00:00Z or "
          "2026-11-22T10:00:00+01:00 (no zone: UTC), got '" +
          *a.to_datetime + "'");
  }
  if (a.by_duration) {
    auto d = parse_duration(*a.by_duration);
    if (!d)
      return usage("--by-duration wants a duration such as 1h30m, 15m, 2d or PT1H30M, got '" +
                   *a.by_duration + "'");
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    at = timestamp_ms(now - d->count());
  }

  client::admin adm(g.client());
  const std::string what = "cannot reset the offsets of group " + a.group;
  // The group must have no members; the broker checks again when the
  // offsets are written.
  std::map<client::topic_partition, std::optional<offset>> current;
  std::map<client::topic_partition, bool> gone;  // committed, but the partition no longer exists
  auto d = adm.describe_group(a.group);
  if (!d) {
    if (d.error() != client::errc::unknown_group)
      return report(what, d.error(), adm.last_error_message());
    if (a.all_topics) {
      std::cerr << fmt::format(
          "error: group {} has no committed offsets, so --all-topics names nothing. Name the "
          "partitions with --topic T[:P,P...] to set the offsets of a new group.\n",
          a.group);
      return kRefused;
    }
  } else {
    if (!d.value().members.empty()) {
      std::cerr << fmt::format(
          "error: group {} has {} member(s) (state {}); offsets can only be reset while it has "
          "none. Stop the group's consumers first; see them with: ferry groups describe {} "
          "--members\n",
          a.group, d.value().members.size(), d.value().state, a.group);
      return kRefused;
    }
    for (const auto& p : d.value().partitions) {
      current[p.tp] = p.committed;
      if (!p.log_end) gone[p.tp] = true;
    }
  }

  std::set<client::topic_partition> tps;
  if (a.all_topics) {
    for (const auto& [tp, c] : current) {
      if (!c) continue;
      if (gone.count(tp)) {
        std::cerr << fmt::format("warning: skipping {}-{}: the partition no longer exists\n",
                                 tp.topic, tp.partition.value());
        continue;
      }
      tps.insert(tp);
    }
    if (tps.empty()) {
      std::cerr << fmt::format(
          "error: group {} has no committed offsets of existing partitions. Name the partitions "
          "with --topic T[:P,P...].\n",
          a.group);
      return kRefused;
    }
  } else {
    for (const auto& [topic, ps] : specs) {
      auto t = adm.describe_topic(topic);
      if (!t) return report(what, t.error(), adm.last_error_message());
      std::set<std::int32_t> exist;
      for (const auto& p : t.value().partitions) exist.insert(p.partition.value());
      for (auto p : ps) {
        if (p < 0) {
          for (auto e : exist) tps.insert({topic, partition_id(e)});
        } else if (!exist.count(p)) {
          std::cerr << fmt::format(
              "error: topic {} has no partition {}. See the partitions with: ferry topics "
              "describe {}\n",
              topic, p, topic);
          return kRefused;
        } else {
          tps.insert({topic, partition_id(p)});
        }
      }
    }
  }

  // The plan: the target of each partition, clamped to [log start, log end].
  std::vector<planned> plan;
  for (const auto& tp : tps) {
    planned p;
    p.tp = tp;
    if (auto it = current.find(tp); it != current.end()) p.current = it->second;
    const std::string where = fmt::format("{}-{}", tp.topic, tp.partition.value());
    auto lookup = [&](client::offset_spec spec, timestamp_ms ts = timestamp_ms::none()) {
      return adm.list_offsets(tp.topic, tp.partition, spec, ts);
    };
    auto earliest = lookup(client::offset_spec::earliest);
    if (!earliest)
      return report(what + " (log start of " + where + ")", earliest.error(),
                    adm.last_error_message());
    auto latest = lookup(client::offset_spec::latest);
    if (!latest)
      return report(what + " (log end of " + where + ")", latest.error(), adm.last_error_message());
    const std::int64_t start = earliest.value().value_or(offset(0)).value();
    const std::int64_t end = latest.value().value_or(offset(0)).value();
    std::int64_t target = 0;
    if (a.to_earliest) {
      target = start;
    } else if (a.to_latest) {
      target = end;
    } else if (a.to_offset) {
      target = *a.to_offset;
    } else if (at) {
      auto o = lookup(client::offset_spec::timestamp, *at);
      if (!o)
        return report(what + " (offset by time of " + where + ")", o.error(),
                      adm.last_error_message());
      if (o.value()) {
        target = o.value()->value();
      } else {
        target = end;
        p.note = "no record at or after the time: log end";
      }
    } else {  // shift_by
      if (p.current) {
        target = saturating_add(p.current->value(), *a.shift_by);
      } else {
        target = saturating_add(start, *a.shift_by);
        p.note = fmt::format("nothing committed: shifted from log start {}", start);
      }
    }
    auto add_note = [&](std::string n) { p.note = p.note.empty() ? n : p.note + "; " + n; };
    if (target < start) {
      target = start;
      add_note(fmt::format("clamped to log start {}", start));
    } else if (target > end) {
      target = end;
      add_note(fmt::format("clamped to log end {}", end));
    }
    p.next = offset(target);
    plan.push_back(std::move(p));
  }

  int rc = kOk;
  if (a.execute) {
    std::vector<client::offset_commit> commits;
    for (const auto& p : plan) commits.push_back({p.tp, p.next, "", {}});
    auto r = adm.reset_offsets(a.group, commits);
    if (!r) return report(what, r.error(), adm.last_error_message());
    for (std::size_t i = 0; i < plan.size() && i < r.value().size(); ++i) {
      plan[i].error = r.value()[i].error;
      plan[i].message = r.value()[i].message;
      if (plan[i].error) rc = kRefused;
    }
  }

  auto status = [](const planned& p) {
    if (!p.error) return std::string("ok");
    return "FAILED: " + (p.message.empty() ? p.error.message() : p.message);
  };
  if (g.json()) {
    auto parts = nlohmann::json::array();
    for (const auto& p : plan) {
      nlohmann::json pj = {
          {"topic", p.tp.topic},
          {"partition", p.tp.partition.value()},
          {"current_offset", or_null(p.current)},
          {"new_offset", p.next.value()},
          {"note", p.note.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.note)}};
      if (a.execute) {
        pj["status"] = p.error ? "failed" : "ok";
        if (p.error) pj["error"] = p.message.empty() ? p.error.message() : p.message;
      }
      parts.push_back(pj);
    }
    print_json({{"group", a.group}, {"executed", a.execute}, {"partitions", parts}});
    return rc;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : plan) {
    std::vector<std::string> row{a.group, p.tp.topic, std::to_string(p.tp.partition.value()),
                                 or_dash(p.current), std::to_string(p.next.value())};
    if (a.execute) row.push_back(status(p));
    row.push_back(p.note);
    rows.push_back(std::move(row));
  }
  std::vector<std::string> header{"GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"};
  if (a.execute) header.push_back("STATUS");
  header.push_back("NOTE");
  print_table(header, rows);
  if (!a.execute) {
    std::cout << "nothing changed; re-run with --execute to apply this plan\n";
  } else if (rc == kOk) {
    std::cout << fmt::format("reset {} partition(s) of group {}\n", plan.size(), a.group);
  } else {
    std::cerr << "error: some partitions were not reset (see STATUS); the others were\n";
  }
  return rc;
}

int groups_delete(const globals& g, const std::string& group, bool execute) {
  client::admin a(g.client());
  if (!execute) {
    // The plan: what would go, from the group as the broker sees it now.
    auto d = a.describe_group(group);
    if (!d) return report("cannot delete group " + group, d.error(), a.last_error_message());
    if (!d.value().members.empty())
      return report("cannot delete group " + group, client::errc::group_not_empty,
                    fmt::format("it has {} member(s)", d.value().members.size()));
    std::vector<std::vector<std::string>> rows;
    auto plan = nlohmann::json::array();
    for (const auto& p : d.value().partitions) {
      if (!p.committed) continue;
      rows.push_back({p.tp.topic, std::to_string(p.tp.partition.value()),
                      std::to_string(p.committed->value())});
      plan.push_back({{"topic", p.tp.topic},
                      {"partition", p.tp.partition.value()},
                      {"committed", p.committed->value()}});
    }
    if (g.json()) {
      print_json({{"group", group}, {"deleted", false}, {"committed_offsets", plan}});
    } else {
      std::cout << fmt::format(
          "would delete group {} with its committed offsets and idempotency ledger:\n", group);
      print_table({"TOPIC", "PARTITION", "COMMITTED"}, rows);
      std::cout << "run again with --execute to delete it\n";
    }
    return kOk;
  }
  if (auto r = a.delete_group(group); !r)
    return report("cannot delete group " + group, r.error(), a.last_error_message());
  if (g.json()) {
    print_json({{"group", group}, {"deleted", true}});
  } else {
    std::cout << fmt::format("deleted group {} and its committed offsets\n", group);
  }
  return kOk;
}

}  // namespace ferry::cli
