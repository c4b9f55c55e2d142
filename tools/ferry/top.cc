// ferry top: throughput, lag and dead letters per topic and group, refreshed
// in place, for a person debugging at a terminal (docs/cli.md#top).
//
// Every --interval it takes a sample through the admin API (list and
// describe the topics, describe the groups) and shows it next to rates
// computed against the previous good sample:
//   IN/S        growth of the high watermarks per second (records stored)
//   CONSUMED/S  growth of a group's committed offsets per second
//   NEW, NEW/S  growth of a dead-letter topic since the first sample / per s
// A rate needs two samples: the first refresh shows "-" (JSON null). Rates
// count only partitions present in both samples and never go negative (a
// topic deleted and re-created, offsets reset backwards count as zero).
//
// Three ways to show a refresh:
//   live    stdout is a terminal and neither --once, --iterations nor JSON:
//           the screen is redrawn in place (cursor home, clear to the end of
//           each line and below), the cursor hidden until exit, lines cut to
//           the terminal's width and height. A failed refresh shows the error
//           under the header and the last good tables, and the view retries.
//   stream  one plain table per refresh, no escape codes (stdout is not a
//           terminal, or --once / --iterations N).
//   json    one JSON object per refresh per line.
// Running until Ctrl-C (live, or a stream without --once / --iterations) a
// failed refresh is shown and retried; with --once / --iterations it ends
// the command with the usual exit code (cli.h).
//
// Dead-letter and retry-tier topics are recognised by their names, the
// defaults of the runtime: <topic>.dlq (runtime/dlq.h) and
// <topic>.retry.<name> (runtime/retry.h). A subscription's custom
// dead_letter_topic is shown as an ordinary topic. A DLQ's records include
// the marker records of redrive and purge runs (docs/dead-letters.md):
// `ferry dlq list` reads the whole DLQ to tell them apart; top only looks at
// offsets, so it stays cheap at every refresh.
#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cli.h"
#include "commands.h"
#include "ferry/client/admin.h"
#include "ferry/client/errc.h"
#include "ferry/protocol/errc.h"
#include "ferry/runtime/dlq.h"
#include "ferry/runtime/retry.h"

namespace ferry::cli {

namespace {

using clock = std::chrono::steady_clock;

// --- signals ------------------------------------------------------------------

volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_cursor_hidden = 0;
constexpr char kShowCursor[] = "\x1b[?25h";
constexpr char kHideCursor[] = "\x1b[?25l";

// First SIGINT/SIGTERM: stop after the current request. A second one while
// a request still waits for the broker ends the process at once. Either way
// the terminal gets its cursor back first (write(2) is async-signal-safe).
extern "C" void on_top_signal(int) {
  if (g_cursor_hidden != 0) {
    g_cursor_hidden = 0;
    if (::write(1, kShowCursor, sizeof kShowCursor - 1) < 0) {
      // nothing to do: the terminal is gone
    }
  }
  if (g_stop != 0) ::_exit(130);
  g_stop = 1;
}

// --- what a sample holds --------------------------------------------------------

enum class topic_kind { topic, retry, dlq };

std::string_view kind_text(topic_kind k) {
  switch (k) {
    case topic_kind::topic:
      return "topic";
    case topic_kind::retry:
      return "retry";
    case topic_kind::dlq:
      return "dlq";
  }
  return "topic";
}

struct kind_of {
  topic_kind kind = topic_kind::topic;
  std::string origin;  // the topic itself for kind topic
};

// The suffixes come from the runtime's own naming functions, so that a
// change there is seen here: ".dlq" and ".retry.".
kind_of classify(const std::string& name) {
  static const std::string dlq_suffix = runtime::dlq::default_dlq_topic("");
  static const std::string tier_infix = [] {
    auto t = runtime::tier_topic("", runtime::retry_tier{"x", {}});
    return t.substr(0, t.size() - 1);
  }();
  if (name.size() > dlq_suffix.size() && name.ends_with(dlq_suffix))
    return {topic_kind::dlq, name.substr(0, name.size() - dlq_suffix.size())};
  const auto r = name.rfind(tier_infix);
  if (r != std::string::npos && r > 0 && r + tier_infix.size() < name.size())
    return {topic_kind::retry, name.substr(0, r)};
  return {topic_kind::topic, name};
}

struct topic_sample {
  std::string name;
  kind_of kind;
  std::int32_t partitions = 0;
  std::map<std::int32_t, std::int64_t> high_watermark;  // per partition
  std::int64_t records = 0;                             // log start .. high watermark
  std::int64_t size_bytes = 0;
};

struct group_topic_sample {
  std::string topic;
  std::int32_t partitions = 0;                     // rows: committed or assigned
  std::map<std::int32_t, std::int64_t> committed;  // partitions with a committed offset
  std::optional<std::int64_t> lag;                 // sum over partitions where known
  std::optional<std::int64_t> lag_ms;              // the oldest unconsumed record's age
};

struct group_sample {
  std::string group;
  std::string state;
  std::int32_t members = 0;
  std::int32_t generation = 0;
  std::vector<group_topic_sample> topics;  // by topic name
};

struct sample {
  clock::time_point at;
  timestamp_ms wall;
  std::vector<topic_sample> topics;  // origin topic, then its retry tiers, then its DLQ
  std::vector<group_sample> groups;  // by name
  std::vector<std::string> warnings;
};

timestamp_ms wall_now() {
  return timestamp_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count());
}

// --- taking a sample ------------------------------------------------------------

struct failure {
  std::string what;
  std::error_code ec;
  std::string detail;
};

class sampler {
 public:
  sampler(client::client_options options, const top_args& a)
      : options_(std::move(options)), a_(a), admin_(options_) {}

  // Fills `out`, or says what failed. After a failure the next call starts
  // on a new connection.
  std::optional<failure> take(sample& out) {
    out = sample{};
    out.at = clock::now();
    out.wall = wall_now();
    auto f = take_topics(out);
    if (!f) f = take_groups(out);
    if (f) {
      f->what += " at " + options_.broker;  // report() adds what to do next
      admin_ = client::admin(options_);
    }
    return f;
  }

 private:
  bool topic_selected(const std::string& name, const kind_of& k) const {
    if (a_.topics.empty()) return true;
    return std::find(a_.topics.begin(), a_.topics.end(), name) != a_.topics.end() ||
           std::find(a_.topics.begin(), a_.topics.end(), k.origin) != a_.topics.end();
  }

  std::optional<failure> take_topics(sample& out) {
    auto list = admin_.list_topics();
    if (!list) return failure{"cannot list topics", list.error(), admin_.last_error_message()};
    std::set<std::string> seen;
    for (const auto& t : list.value()) {
      auto k = classify(t.name);
      seen.insert(t.name);
      if (!topic_selected(t.name, k)) continue;
      auto d = admin_.describe_topic(t.name);
      if (!d) {
        if (d.error() == client::errc::unknown_topic) continue;  // deleted meanwhile
        return failure{"cannot describe topic " + t.name, d.error(), admin_.last_error_message()};
      }
      topic_sample ts;
      ts.name = t.name;
      ts.kind = std::move(k);
      ts.partitions = static_cast<std::int32_t>(d.value().partitions.size());
      for (const auto& p : d.value().partitions) {
        ts.high_watermark[p.partition.value()] = p.high_watermark.value();
        ts.records += std::max<std::int64_t>(0, p.high_watermark - p.log_start);
        ts.size_bytes = p.size_bytes < 0 || ts.size_bytes < 0 ? -1 : ts.size_bytes + p.size_bytes;
        if (p.error)
          out.warnings.push_back(fmt::format("{} partition {}: {}", t.name, p.partition.value(),
                                             p.message.empty() ? p.error.message() : p.message));
      }
      out.topics.push_back(std::move(ts));
    }
    for (const auto& t : a_.topics)
      if (!seen.count(t)) out.warnings.push_back(fmt::format("topic {} does not exist", t));
    std::sort(out.topics.begin(), out.topics.end(),
              [](const topic_sample& x, const topic_sample& y) {
                return std::tie(x.kind.origin, x.kind.kind, x.name) <
                       std::tie(y.kind.origin, y.kind.kind, y.name);
              });
    return std::nullopt;
  }

  std::optional<failure> take_groups(sample& out) {
    std::vector<std::string> names = a_.groups;
    if (names.empty()) {
      auto list = admin_.list_groups();
      if (!list) return failure{"cannot list groups", list.error(), admin_.last_error_message()};
      for (const auto& s : list.value()) names.push_back(s.group);
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::set<std::string> shown;
    for (const auto& t : out.topics) shown.insert(t.name);
    for (const auto& name : names) {
      auto d = admin_.describe_group(name);
      if (!d) {
        if (d.error() == client::errc::unknown_group) {
          // Listed but gone meanwhile: nothing to say; named with --group: say so.
          if (!a_.groups.empty())
            out.warnings.push_back(fmt::format("group {} does not exist (yet)", name));
          continue;
        }
        return failure{"cannot describe group " + name, d.error(), admin_.last_error_message()};
      }
      const auto& g = d.value();
      group_sample gs{
          g.group, g.state, static_cast<std::int32_t>(g.members.size()), g.generation, {}};
      std::map<std::string, group_topic_sample> by_topic;
      for (const auto& p : g.partitions) {
        if (!a_.topics.empty() && !shown.count(p.tp.topic)) continue;
        auto& t = by_topic[p.tp.topic];
        t.topic = p.tp.topic;
        t.partitions++;
        if (p.committed) t.committed[p.tp.partition.value()] = p.committed->value();
        if (auto l = p.lag()) t.lag = t.lag.value_or(0) + *l;
        if (auto ms = p.lag_ms(g.broker_time)) t.lag_ms = std::max(t.lag_ms.value_or(0), *ms);
      }
      // With --topic, a group is shown only where it reads those topics.
      if (!a_.topics.empty() && by_topic.empty()) continue;
      for (auto& [_, t] : by_topic) gs.topics.push_back(std::move(t));
      out.groups.push_back(std::move(gs));
    }
    return std::nullopt;
  }

  client::client_options options_;
  const top_args& a_;
  client::admin admin_;
};

// --- rates -----------------------------------------------------------------------

/// Growth per second of `now` over `before`, partitions in both only.
std::optional<double> per_second(const std::map<std::int32_t, std::int64_t>& now,
                                 const std::map<std::int32_t, std::int64_t>* before,
                                 double seconds) {
  if (before == nullptr || seconds <= 0) return std::nullopt;
  std::int64_t grown = 0;
  for (const auto& [p, v] : now)
    if (auto it = before->find(p); it != before->end())
      grown += std::max<std::int64_t>(0, v - it->second);
  return static_cast<double>(grown) / seconds;
}

std::int64_t growth(const std::map<std::int32_t, std::int64_t>& now,
                    const std::map<std::int32_t, std::int64_t>& base) {
  std::int64_t n = 0;
  for (const auto& [p, v] : now) {
    auto it = base.find(p);
    n += std::max<std::int64_t>(0, v - (it == base.end() ? 0 : it->second));
  }
  return n;
}

// One refresh, ready to print: the sample and what it is compared with.
struct view {
  const sample& now;
  const sample* before = nullptr;  // the previous good sample; null on the first
  // Per DLQ, the high watermarks when the view first saw it.
  const std::map<std::string, std::map<std::int32_t, std::int64_t>>& baseline;
  double seconds = 0;  // since `before`

  const topic_sample* topic_before(const std::string& name) const {
    if (before == nullptr) return nullptr;
    for (const auto& t : before->topics)
      if (t.name == name) return &t;
    return nullptr;
  }
  const group_topic_sample* group_before(const std::string& group, const std::string& topic) const {
    if (before == nullptr) return nullptr;
    for (const auto& g : before->groups)
      if (g.group == group)
        for (const auto& t : g.topics)
          if (t.topic == topic) return &t;
    return nullptr;
  }
  // Null for a topic (group) the previous sample did not have.
  std::optional<double> in_rate(const topic_sample& t) const {
    const auto* b = topic_before(t.name);
    if (b == nullptr) return std::nullopt;
    return per_second(t.high_watermark, &b->high_watermark, seconds);
  }
  std::optional<double> consumed_rate(const group_sample& g, const group_topic_sample& t) const {
    const auto* b = group_before(g.group, t.topic);
    if (b == nullptr) return std::nullopt;
    return per_second(t.committed, &b->committed, seconds);
  }
  std::int64_t dlq_new(const topic_sample& t) const {
    auto it = baseline.find(t.name);
    return it == baseline.end() ? 0 : growth(t.high_watermark, it->second);
  }
};

// --- printing ---------------------------------------------------------------------

std::string rate_text(std::optional<double> r) {
  return r ? fmt::format("{:.1f}", *r) : "-";
}

nlohmann::json rate_json(std::optional<double> r) {
  return r ? nlohmann::json(std::round(*r * 10) / 10) : nlohmann::json(nullptr);
}

std::string size_text(std::int64_t bytes) {
  if (bytes < 0) return "-";  // not known (kafka://)
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  auto v = static_cast<double>(bytes);
  std::size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

// "ferry top  tcp://127.0.0.1:7400  every 2s  2026-11-22T10:00:00.000Z"; the
// live view shows only the time of day, to fit a narrow terminal.
std::string header_text(const globals& g, const top_args& a, timestamp_ms at, bool live) {
  const auto time = format_iso8601(at);
  // tier_name is the runtime's duration formatter: 2s, 500ms, 1m.
  return fmt::format("ferry top  {}  every {}  {}{}", g.broker, runtime::tier_name(a.interval),
                     live ? time.substr(11, 8) + "Z" : time, live ? "  Ctrl-C to quit" : "");
}

// What print_table and report() write to std::cout or std::cerr, caught:
// the live view cuts lines to the terminal and shows errors in its header.
class capture {
 public:
  explicit capture(std::ostream& os) : os_(os), old_(os.rdbuf(buf_.rdbuf())) {}
  ~capture() { os_.rdbuf(old_); }
  capture(const capture&) = delete;
  capture& operator=(const capture&) = delete;
  std::string text() const { return buf_.str(); }

 private:
  std::ostream& os_;
  std::ostringstream buf_;
  std::streambuf* old_;
};

// report()'s message for a failed refresh, for the header of a view that
// keeps going.
std::string error_text(const failure& f, const top_args& a) {
  std::string s;
  {
    capture c(std::cerr);
    (void)report(f.what, f.ec, f.detail);
    s = c.text();
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == '.')) s.pop_back();
  return fmt::format("{}; retrying every {}", s, runtime::tier_name(a.interval));
}

// The tables of one refresh (everything below the header).
std::string tables_text(const view& v, const top_args& a) {
  capture c(std::cout);
  std::cout << "\n";
  if (v.now.topics.empty()) {
    std::cout << (a.topics.empty() ? "no topics\n" : "no such topics\n");
  } else {
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : v.now.topics)
      rows.push_back({t.name, std::string(kind_text(t.kind.kind)), std::to_string(t.partitions),
                      rate_text(v.in_rate(t)), std::to_string(t.records), size_text(t.size_bytes)});
    print_table({"TOPIC", "KIND", "PARTITIONS", "IN/S", "RECORDS", "SIZE"}, rows);
  }
  std::cout << "\n";
  if (v.now.groups.empty()) {
    std::cout << "no groups\n";
  } else {
    std::vector<std::vector<std::string>> rows;
    for (const auto& g : v.now.groups) {
      std::vector<std::string> lead{g.group, g.state, std::to_string(g.members)};
      if (g.topics.empty()) {
        lead.insert(lead.end(), {"-", "0", "-", "-", "-"});
        rows.push_back(lead);
      }
      for (const auto& t : g.topics) {
        auto row = lead;
        row.insert(row.end(),
                   {t.topic, std::to_string(t.partitions), rate_text(v.consumed_rate(g, t)),
                    t.lag ? std::to_string(*t.lag) : "-",
                    t.lag_ms ? std::to_string(*t.lag_ms / 1000) : "-"});
        rows.push_back(std::move(row));
      }
    }
    print_table(
        {"GROUP", "STATE", "MEMBERS", "TOPIC", "PARTITIONS", "CONSUMED/S", "LAG", "LAG-SECONDS"},
        rows);
  }
  std::cout << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : v.now.topics)
    if (t.kind.kind == topic_kind::dlq)
      rows.push_back({t.name, t.kind.origin, std::to_string(t.records),
                      std::to_string(v.dlq_new(t)), rate_text(v.in_rate(t))});
  if (rows.empty())
    std::cout << "no dead-letter topics (<topic>.dlq)\n";
  else
    print_table({"DEAD-LETTER-TOPIC", "ORIGIN", "RECORDS", "NEW", "NEW/S"}, rows);
  return c.text();
}

nlohmann::json to_json(const globals& g, const top_args& a, long refresh, const view* v,
                       timestamp_ms at, const std::vector<std::string>& warnings,
                       const std::optional<std::string>& error) {
  nlohmann::json j = {{"time", at.value()},
                      {"broker", g.broker},
                      {"interval_ms", a.interval.count()},
                      {"refresh", refresh},
                      {"seconds_since_previous", nullptr},
                      {"topics", nlohmann::json::array()},
                      {"groups", nlohmann::json::array()},
                      {"dead_letters", nlohmann::json::array()},
                      {"warnings", warnings},
                      {"error", error ? nlohmann::json(*error) : nlohmann::json(nullptr)}};
  if (v == nullptr) return j;
  if (v->before != nullptr) j["seconds_since_previous"] = std::round(v->seconds * 1000) / 1000;
  for (const auto& t : v->now.topics) {
    j["topics"].push_back(
        {{"topic", t.name},
         {"kind", kind_text(t.kind.kind)},
         {"origin", t.kind.kind == topic_kind::topic ? nlohmann::json(nullptr)
                                                     : nlohmann::json(t.kind.origin)},
         {"partitions", t.partitions},
         {"records", t.records},
         {"size_bytes", t.size_bytes < 0 ? nlohmann::json(nullptr) : nlohmann::json(t.size_bytes)},
         {"records_per_sec", rate_json(v->in_rate(t))}});
    if (t.kind.kind == topic_kind::dlq)
      j["dead_letters"].push_back({{"topic", t.name},
                                   {"origin", t.kind.origin},
                                   {"records", t.records},
                                   {"new", v->dlq_new(t)},
                                   {"new_per_sec", rate_json(v->in_rate(t))}});
  }
  for (const auto& gs : v->now.groups) {
    auto topics = nlohmann::json::array();
    for (const auto& t : gs.topics)
      topics.push_back(
          {{"topic", t.topic},
           {"partitions", t.partitions},
           {"consumed_per_sec", rate_json(v->consumed_rate(gs, t))},
           {"lag", t.lag ? nlohmann::json(*t.lag) : nlohmann::json(nullptr)},
           {"lag_seconds", t.lag_ms ? nlohmann::json(static_cast<double>(*t.lag_ms) / 1000.0)
                                    : nlohmann::json(nullptr)}});
    j["groups"].push_back({{"group", gs.group},
                           {"state", gs.state},
                           {"members", gs.members},
                           {"generation", gs.generation},
                           {"topics", topics}});
  }
  return j;
}

// --- the terminal ----------------------------------------------------------------

struct terminal_size {
  std::size_t columns = 80;
  std::size_t rows = 24;
};

terminal_size size_of_stdout() {
  terminal_size s;
  winsize w{};
  if (::ioctl(1, TIOCGWINSZ, &w) == 0) {
    if (w.ws_col > 0) s.columns = w.ws_col;
    if (w.ws_row > 0) s.rows = w.ws_row;
  }
  return s;
}

// Redraws the screen from the top: each line cut to the width and followed
// by clear-to-end-of-line, what does not fit summed up in the last row,
// then everything below cleared. No full clear, so nothing flickers.
void draw(const std::string& frame) {
  const auto size = size_of_stdout();
  std::vector<std::string> lines;
  std::istringstream in(frame);
  for (std::string l; std::getline(in, l);) lines.push_back(std::move(l));
  const std::size_t room = size.rows > 1 ? size.rows - 1 : 1;  // the cursor's line stays free
  if (lines.size() > room) {
    const auto hidden = lines.size() - (room - 1);
    lines.resize(room - 1);
    lines.push_back(
        fmt::format("... {} more line(s); narrow the view with --topic or --group", hidden));
  }
  std::string out = "\x1b[H";
  for (auto& l : lines) {
    if (l.size() > size.columns) l.resize(size.columns);
    out += l + "\x1b[K\n";
  }
  out += "\x1b[J";
  std::cout << out << std::flush;
}

// Sleeps until `until` or a stop signal, whichever comes first.
void wait_until(clock::time_point until) {
  while (g_stop == 0) {
    const auto now = clock::now();
    if (now >= until) return;
    std::this_thread::sleep_for(
        std::min<clock::duration>(until - now, std::chrono::milliseconds(50)));
  }
}

int usage(const std::string& msg) {
  std::cerr << "error: " << msg << "\n";
  return kUsage;
}

}  // namespace

int top(const globals& g, const top_args& args) {
  top_args a = args;
  auto interval = parse_duration(a.interval_text);
  if (!interval)
    return usage("--interval wants a duration such as 2s, 500ms or 1m, got '" + a.interval_text +
                 "'");
  if (*interval < std::chrono::milliseconds(100))
    return usage(
        "--interval must be at least 100ms (each refresh asks the broker about every "
        "topic and group)");
  a.interval = *interval;
  if (a.once && a.iterations) return usage("choose one of --once and --iterations N");
  if (a.iterations && *a.iterations < 1) return usage("--iterations wants a number >= 1");
  if (a.once) a.iterations = 1;
  const bool json = a.json || g.json();
  const bool bounded = a.iterations.has_value();
  const bool live = !json && !bounded && ::isatty(1) != 0;

  // Until Ctrl-C, a refresh must not wait long for a broker that is gone:
  // the error shows and Ctrl-C works within about 2 s.
  auto options = g.client();
  if (!bounded) {
    const auto cap = std::min<std::chrono::milliseconds>(g.timeout(), std::chrono::seconds(2));
    options.request_timeout = cap;
    options.api_timeout = cap;
  }
  sampler s(options, a);

  g_stop = 0;
  struct sigaction sa {};
  sa.sa_handler = on_top_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {};
  struct sigaction old_term {};
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  if (live) {
    std::cout << kHideCursor << "\x1b[H\x1b[2J" << std::flush;
    g_cursor_hidden = 1;
  }

  std::optional<sample> last_good;
  std::string last_tables;  // live: shown under an error until the broker answers again
  std::map<std::string, std::map<std::int32_t, std::int64_t>> baseline;
  bool first_good = true;
  int rc = kOk;
  auto next = clock::now();
  for (long refresh = 1; g_stop == 0; ++refresh) {
    sample now;
    const auto failed = s.take(now);
    if (g_stop != 0) break;
    if (failed) {
      if (bounded) {
        rc = report(failed->what, failed->ec, failed->detail);
        break;
      }
      const auto err = error_text(*failed, a);
      if (json) {
        print_json(to_json(g, a, refresh, nullptr, now.wall, {}, err));
        std::cout << std::flush;
      } else if (live) {
        draw(header_text(g, a, now.wall, true) + "\n" + err + "\n" +
             (last_good ? fmt::format("\nas of {}:", format_iso8601(last_good->wall)) : "") +
             last_tables);
      } else {  // errors on stderr, as always off the live view
        std::cerr << format_iso8601(now.wall) << " " << err << "\n";
      }
    } else {
      // Dead-letter topics: the high watermarks when the view first saw
      // them; one that appears later starts from nothing.
      for (const auto& t : now.topics)
        if (t.kind.kind == topic_kind::dlq && !baseline.count(t.name))
          baseline[t.name] = first_good ? t.high_watermark : std::map<std::int32_t, std::int64_t>{};
      first_good = false;
      view v{now, last_good ? &*last_good : nullptr, baseline,
             last_good ? std::chrono::duration<double>(now.at - last_good->at).count() : 0.0};
      if (json) {
        print_json(to_json(g, a, refresh, &v, now.wall, now.warnings, std::nullopt));
        std::cout << std::flush;
      } else {
        std::string warn;
        for (const auto& w : now.warnings) warn += "warning: " + w + "\n";
        last_tables = tables_text(v, a);
        if (live) {
          draw(header_text(g, a, now.wall, true) + "\n" + warn + last_tables);
        } else {
          std::cerr << warn;
          std::cout << (refresh > 1 ? "\n" : "") << header_text(g, a, now.wall, false) << "\n"
                    << last_tables << std::flush;
        }
      }
      last_good = std::move(now);
    }
    if (bounded && refresh >= *a.iterations) break;
    next += a.interval;
    if (next < clock::now()) next = clock::now();  // a slow refresh: no burst to catch up
    wait_until(next);
  }

  if (live && g_cursor_hidden != 0) {
    g_cursor_hidden = 0;
    std::cout << kShowCursor << std::flush;
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return rc;
}

}  // namespace ferry::cli
