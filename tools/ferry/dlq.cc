// ferry dlq list | show | redrive | purge: dead-letter topics
// (runtime/include/ferry/runtime/dlq.h does the work; docs/dead-letters.md
// explains the markers; docs/cli.md shows the commands).
#include "ferry/runtime/dlq.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>
#include <set>

#include "cli.h"
#include "commands.h"
#include "ferry/client/admin.h"
#include "ferry/client/errc.h"

namespace ferry::cli {

namespace {

namespace dlq = ferry::runtime::dlq;
using dlq::condition;

constexpr const char* kValidFilters =
    "valid filters: reason=attempts_exhausted|permanent_error|invalid_payload|unknown, key=KEY, "
    "since=TIME|DURATION (2026-11-22T10:00:00Z, 2h, 30m), error=TEXT, topic=ORIGIN-TOPIC, "
    "partition=N, offset=N";

int usage(const std::string& msg) {
  std::cerr << "error: " << msg << "\n";
  return kUsage;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool parse_count(const std::string& s, std::int64_t& out) {
  if (s.empty() || s.size() > 18 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  out = std::stoll(s);
  return true;
}

// --where NAME=VALUE, repeatable; all must match. Empty optional: ok.
std::optional<std::string> parse_where(const std::vector<std::string>& where, dlq::selection& sel) {
  for (const auto& w : where) {
    const auto eq = w.find('=');
    if (eq == std::string::npos || eq == 0)
      return fmt::format("--where wants NAME=VALUE, got '{}'; {}", w, kValidFilters);
    const std::string name = w.substr(0, eq);
    const std::string value = w.substr(eq + 1);
    condition c;
    if (name == "reason") {
      if (value != "unknown" && !runtime::parse_reason(value))
        return fmt::format("unknown reason '{}'; {}", value, kValidFilters);
      c.what = condition::field::reason;
      c.text = value;
    } else if (name == "key") {
      c.what = condition::field::key;
      c.text = value;
    } else if (name == "since") {
      c.what = condition::field::since;
      if (auto t = parse_iso8601(value)) {
        c.number = t->value();
      } else if (auto d = parse_duration(value)) {
        c.number = now_ms() - d->count();
      } else {
        return fmt::format(
            "since wants an ISO 8601 time (2026-11-22T10:00:00Z; no zone: UTC) or a duration "
            "(2h, 30m, 1d, PT2H), got '{}'",
            value);
      }
    } else if (name == "error") {
      if (value.empty()) return fmt::format("error= wants a text; {}", kValidFilters);
      c.what = condition::field::error;
      c.text = value;
    } else if (name == "topic") {
      if (value.empty()) return fmt::format("topic= wants a topic; {}", kValidFilters);
      c.what = condition::field::topic;
      c.text = value;
    } else if (name == "partition" || name == "offset") {
      c.what = name == "partition" ? condition::field::partition : condition::field::offset;
      if (!parse_count(value, c.number) || (name == "partition" && c.number > INT32_MAX))
        return fmt::format("{} wants a number >= 0, got '{}'", name, value);
    } else {
      return fmt::format("unknown filter '{}'; {}", name, kValidFilters);
    }
    sel.all.push_back(std::move(c));
  }
  return std::nullopt;
}

std::string where_text(const std::vector<std::string>& where) {
  return where.empty() ? std::string("all dead letters") : fmt::format("{}", fmt::join(where, " "));
}

// Valid UTF-8 without control characters other than \n, \r and \t (for
// display; the bytes are never changed).
bool printable(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f) return false;
      ++i;
      continue;
    }
    const std::size_t n = (c & 0xE0) == 0xC0   ? 1
                          : (c & 0xF0) == 0xE0 ? 2
                          : (c & 0xF8) == 0xF0 ? 3
                                               : 0;
    if (n == 0 || c == 0xC0 || c == 0xC1 || c > 0xF4 || i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n + 1;
  }
  return true;
}

// Cut to `n` bytes without splitting a UTF-8 sequence.
std::string cut(std::string_view s, std::size_t n) {
  if (s.size() <= n) return std::string(s);
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

// One line, at most `n` bytes: newlines and tabs become spaces.
std::string short_text(std::string_view s, std::size_t n) {
  std::string t(s);
  for (auto& c : t)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  if (t.size() <= n) return t;
  return cut(t, n - 3) + "...";
}

std::string hex(std::string_view s, std::size_t max_bytes) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max_bytes; ++i) {
    if (i) out += ' ';
    out += fmt::format("{:02x}", static_cast<unsigned char>(s[i]));
  }
  return out;
}

std::string iso(std::int64_t ms) {
  return format_iso8601(timestamp_ms(ms));
}

std::string dash(const std::string& s) {
  return s.empty() ? "-" : s;
}

std::string pos_text(const dlq::dead_letter& d) {
  return fmt::format("{}/{}", d.partition, d.offset);
}

// "0/3, 0/5, 1/0 (+12 more)"
std::string sample_text(const std::vector<const dlq::dead_letter*>& ds, std::size_t n = 5) {
  std::string out;
  for (std::size_t i = 0; i < ds.size() && i < n; ++i) out += (i ? ", " : "") + pos_text(*ds[i]);
  if (ds.size() > n) out += fmt::format(" (+{} more)", ds.size() - n);
  return out;
}

nlohmann::json sample_json(const std::vector<const dlq::dead_letter*>& ds, std::size_t n = 10) {
  auto arr = nlohmann::json::array();
  for (std::size_t i = 0; i < ds.size() && i < n; ++i)
    arr.push_back({{"partition", ds[i]->partition}, {"offset", ds[i]->offset}});
  return arr;
}

nlohmann::json or_null(const std::string& s) {
  return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
}

void print_warnings(const dlq::snapshot& s) {
  for (const auto& w : s.warnings) std::cerr << fmt::format("warning: {}: {}\n", s.topic, w);
}

// Reads the DLQ; on failure reports and returns the exit code.
std::optional<int> read_dlq(const globals& g, const dlq_args& a, const dlq::read_options& ro,
                            dlq::snapshot& out) {
  const auto& topic = a.topic;
  std::string msg;
  auto r = dlq::read(g.client(), topic, ro, &msg);
  if (!r) return report("cannot read dead-letter topic " + topic, r.error(), msg);
  out = std::move(r).value();
  // A live topic named by mistake: its records are not dead letters, and a
  // purge or redrive would write marker records into it. A dead-letter
  // topic is named *.dlq (the runtime's default), or holds dead letters the
  // runtime routed (a failure record with its dead-lettering time: a retry
  // tier's records carry failure records too, but never that) or markers.
  const bool named = topic.size() > 4 && topic.ends_with(".dlq");
  const bool written = !out.markers.empty() ||
                       std::any_of(out.letters.begin(), out.letters.end(), [](const auto& d) {
                         return d.failure.has_value() && d.failure->dead_lettered_ms > 0;
                       });
  if (!named && !written && !out.letters.empty() && !a.force) {
    std::cerr << fmt::format(
        "error: {} does not look like a dead-letter topic: its name does not end in .dlq and "
        "none of its {} record(s) is a dead letter the runtime routed (a retry tier's records "
        "are not). Nothing was done. If it is one (a dead_letter_topic of your own naming, "
        "written by something else), add --force\n",
        topic, out.letters.size());
    return kUsage;
  }
  print_warnings(out);
  return std::nullopt;
}

struct counts {
  std::size_t pending = 0, redriven = 0, purged = 0;
  void add(const dlq::dead_letter& d) {
    (d.st == dlq::state::pending ? pending : d.st == dlq::state::redriven ? redriven : purged)++;
  }
  [[nodiscard]] std::size_t resolved() const { return redriven + purged; }
  [[nodiscard]] std::size_t total() const { return pending + resolved(); }
};

}  // namespace

// --- list --------------------------------------------------------------------------

int dlq_list(const globals& g, const dlq_args& a) {
  dlq::selection sel;
  if (auto e = parse_where(a.where, sel)) return usage(*e);
  dlq::read_options ro;
  ro.keep_values = false;
  dlq::snapshot s;
  if (auto rc = read_dlq(g, a, ro, s)) return *rc;

  struct group_key {
    std::string state, topic, reason, error, message;
    auto operator<=>(const group_key&) const = default;
  };
  struct group_val {
    std::vector<const dlq::dead_letter*> letters;
    std::int64_t oldest = INT64_MAX, newest = INT64_MIN;
  };
  std::map<group_key, group_val> groups;
  std::map<std::string, counts> per_topic;
  counts matched;
  for (const auto& d : s.letters) {
    if (!sel.matches(d)) continue;
    matched.add(d);
    per_topic[d.origin_topic()].add(d);
    if (d.st != dlq::state::pending && !a.all) continue;
    group_key k{a.all ? std::string(dlq::to_string(d.st)) : "", d.origin_topic(), d.reason(),
                d.error_code(), short_text(d.error_message(), 60)};
    auto& v = groups[k];
    v.letters.push_back(&d);
    v.oldest = std::min(v.oldest, d.dead_lettered_ms());
    v.newest = std::max(v.newest, d.dead_lettered_ms());
  }

  if (g.json()) {
    auto arr = nlohmann::json::array();
    for (const auto& [k, v] : groups) {
      nlohmann::json j = {{"origin_topic", or_null(k.topic)},
                          {"reason", k.reason},
                          {"error", or_null(k.error)},
                          {"message", k.message},
                          {"count", v.letters.size()},
                          {"oldest", v.oldest},
                          {"newest", v.newest},
                          {"sample", sample_json(v.letters)}};
      if (a.all) j["state"] = k.state;
      arr.push_back(j);
    }
    auto topics = nlohmann::json::array();
    for (const auto& [t, c] : per_topic)
      topics.push_back({{"origin_topic", or_null(t)},
                        {"pending", c.pending},
                        {"redriven", c.redriven},
                        {"purged", c.purged}});
    print_json({{"topic", s.topic},
                {"filters", a.where},
                {"all", a.all},
                {"pending", matched.pending},
                {"resolved", matched.resolved()},
                {"redriven", matched.redriven},
                {"purged", matched.purged},
                {"dead_letters", s.letters.size()},
                {"markers", s.markers.size()},
                {"groups", arr},
                {"topics", topics},
                {"warnings", s.warnings}});
    return kOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [k, v] : groups) {
    std::vector<std::string> row;
    if (a.all) row.push_back(k.state);
    row.insert(row.end(), {dash(k.topic), k.reason, dash(k.error), std::to_string(v.letters.size()),
                           iso(v.oldest), iso(v.newest), dash(k.message)});
    rows.push_back(std::move(row));
  }
  std::vector<std::string> header;
  if (a.all) header.push_back("STATE");
  header.insert(header.end(),
                {"ORIGIN-TOPIC", "REASON", "ERROR", "COUNT", "OLDEST", "NEWEST", "MESSAGE"});
  if (!rows.empty()) print_table(header, rows);
  std::string summary =
      fmt::format("{}: {} pending, {} resolved ({} redriven, {} purged)", s.topic, matched.pending,
                  matched.resolved(), matched.redriven, matched.purged);
  if (!a.where.empty())
    summary +=
        fmt::format(" matching {} of {} dead letter(s)", where_text(a.where), s.letters.size());
  std::cout << summary << "\n";
  if (!a.all && matched.resolved() > 0) std::cerr << "(--all lists the resolved ones too)\n";
  return kOk;
}

// --- show --------------------------------------------------------------------------

namespace {

// Attempt numbers: the runtime keeps the first kKeptFirstAttempts and the
// most recent ones of attempts_total.
std::int32_t attempt_number(const runtime::failure_record& f, std::size_t i) {
  const auto kept = f.attempts.size();
  if (static_cast<std::int64_t>(kept) >= f.attempts_total || i < runtime::kKeptFirstAttempts)
    return static_cast<std::int32_t>(i + 1);
  return f.attempts_total - static_cast<std::int32_t>(kept - i) + 1;
}

nlohmann::json header_json(const client::header& h) {
  nlohmann::json j = {{"key", h.key}};
  if (!h.value) {
    j["value"] = nullptr;
  } else if (printable(*h.value)) {
    j["value"] = *h.value;
  } else {
    j["bytes"] = h.value->size();
    j["hex"] = hex(*h.value, 64);
  }
  return j;
}

}  // namespace

int dlq_show(const globals& g, const dlq_args& a) {
  std::int64_t part = -1, off = -1;
  if (a.position) {
    if (a.partition || a.offset)
      return usage("give the dead letter as PARTITION/OFFSET or with --partition and --offset");
    const auto slash = a.position->find('/');
    if (slash == std::string::npos || !parse_count(a.position->substr(0, slash), part) ||
        !parse_count(a.position->substr(slash + 1), off))
      return usage("the dead letter is PARTITION/OFFSET (e.g. 0/17), got '" + *a.position + "'");
  } else {
    if (!a.partition || !a.offset)
      return usage(
          "which dead letter? Give PARTITION/OFFSET (e.g. 0/17) or --partition P "
          "--offset O; see them with: ferry dlq list " +
          a.topic);
    part = *a.partition;
    off = *a.offset;
  }
  if (part < 0 || part > INT32_MAX || off < 0)
    return usage("--partition and --offset must be >= 0");
  dlq::selection only;
  only.all.push_back({condition::field::partition, "", part});
  only.all.push_back({condition::field::offset, "", off});
  dlq::read_options ro;
  ro.values_of = &only;
  dlq::snapshot s;
  if (auto rc = read_dlq(g, a, ro, s)) return *rc;
  const auto* d = s.find(static_cast<std::int32_t>(part), off);
  if (!d) {
    auto m = std::find_if(s.markers.begin(), s.markers.end(), [&](const dlq::marker& x) {
      return x.partition == part && x.offset == off;
    });
    if (m != s.markers.end()) {
      std::cerr << fmt::format(
          "error: {}/{}/{} is a {} marker, not a dead letter (it resolves {} dead letter(s) of "
          "partition {}: see them with: ferry dlq list {} --all)\n",
          a.topic, part, off, dlq::to_string(m->kind), m->offsets.size(), part, a.topic);
      return kRefused;
    }
    auto pr = std::find_if(s.partitions.begin(), s.partitions.end(),
                           [&](const auto& p) { return p.partition == part; });
    if (pr == s.partitions.end())
      std::cerr << fmt::format("error: {} has no partition {}. See: ferry topics describe {}\n",
                               a.topic, part, a.topic);
    else if (pr->log_start >= pr->end)
      std::cerr << fmt::format("error: no dead letter at {}/{}/{}: partition {} is empty\n",
                               a.topic, part, off, part);
    else
      std::cerr << fmt::format(
          "error: no dead letter at {}/{}/{} (partition {} holds offsets {} to {}). See them "
          "with: ferry dlq list {}\n",
          a.topic, part, off, part, pr->log_start, pr->end - 1, a.topic);
    return kRefused;
  }
  const auto& f = d->failure;
  const bool text_value = d->value && printable(*d->value);

  if (g.json()) {
    auto attempts = nlohmann::json::array();
    if (f)
      for (std::size_t i = 0; i < f->attempts.size(); ++i) {
        const auto& at = f->attempts[i];
        attempts.push_back(
            {{"number", attempt_number(*f, i)},
             {"time", at.time_ms > 0 ? nlohmann::json(iso(at.time_ms)) : nlohmann::json(nullptr)},
             {"time_ms", at.time_ms},
             {"class", runtime::to_string(at.cls)},
             {"error", at.category.empty()
                           ? nlohmann::json(nullptr)
                           : nlohmann::json(at.category + ":" + std::to_string(at.code))},
             {"category", at.category},
             {"code", at.code},
             {"message", at.message},
             {"worker", at.worker}});
      }
    auto headers = nlohmann::json::array();
    for (const auto& h : d->headers) headers.push_back(header_json(h));
    nlohmann::json origin = nullptr;
    if (d->origin) {
      origin = {{"topic", d->origin->topic},
                {"partition", d->origin->partition},
                {"offset", d->origin->offset}};
      if (f) {
        origin["key"] = f->origin_key ? nlohmann::json(*f->origin_key) : nlohmann::json(nullptr);
        origin["timestamp"] = f->origin_timestamp_ms;
      }
    }
    nlohmann::json resolved = nullptr;
    if (d->st != dlq::state::pending) {
      resolved = {{"marker_offset", d->resolved_by},
                  {"at", d->resolved_at_ms},
                  {"by", d->resolved_who},
                  {"recovered", d->recovered}};
      if (d->st == dlq::state::redriven) resolved["to"] = d->resolved_to;
    }
    nlohmann::json j = {
        {"topic", s.topic},
        {"partition", d->partition},
        {"offset", d->offset},
        {"timestamp", d->timestamp_ms},
        {"state", dlq::to_string(d->st)},
        {"resolved", resolved},
        {"origin", origin},
        {"key", d->key ? nlohmann::json(*d->key) : nlohmann::json(nullptr)},
        {"reason", d->reason()},
        {"failure_problem", or_null(d->failure_problem)},
        {"group", f ? or_null(f->group) : nlohmann::json(nullptr)},
        {"worker", f ? or_null(f->worker) : nlohmann::json(nullptr)},
        {"reason_message", f ? or_null(f->reason_message) : nlohmann::json(nullptr)},
        {"dead_lettered", d->dead_lettered_ms()},
        {"attempts_total", f ? f->attempts_total : 0},
        {"attempts", attempts},
        {"headers", headers},
        {"value_bytes", d->value_bytes}};
    constexpr std::size_t kJsonValueMax = 64 << 10;
    if (!d->value) {
      j["value"] = nullptr;
    } else if (text_value) {
      j["value"] = cut(*d->value, kJsonValueMax);
      if (d->value->size() > kJsonValueMax) j["value_truncated"] = true;
    } else {
      j["value_hex"] = hex(*d->value, 4096);
      if (d->value->size() > 4096) j["value_truncated"] = true;
    }
    print_json(j);
    return kOk;
  }

  auto line = [](const std::string& k, const std::string& v) {
    std::cout << fmt::format("{:<14}{}\n", k, v);
  };
  line("dead letter", fmt::format("{}/{}/{}", s.topic, d->partition, d->offset));
  std::string st(dlq::to_string(d->st));
  if (d->st == dlq::state::redriven)
    st += fmt::format(" to {} at {} by {}{} (marker {}/{})", d->resolved_to, iso(d->resolved_at_ms),
                      dash(d->resolved_who),
                      d->recovered ? ", copy found after an interrupted run" : "", d->partition,
                      d->resolved_by);
  else if (d->st == dlq::state::purged)
    st += fmt::format(" at {} by {} (marker {}/{})", iso(d->resolved_at_ms), dash(d->resolved_who),
                      d->partition, d->resolved_by);
  line("state", st);
  if (d->origin) {
    line("origin", runtime::format_position(*d->origin));
    if (f) line("origin time", iso(f->origin_timestamp_ms));
  } else {
    line("origin", "unknown");
  }
  line("key", d->key ? short_text(*d->key, 200) : "(null)");
  if (f) {
    line("group", dash(f->group));
    line("worker", dash(f->worker));
    line("reason", d->reason() + (f->reason_message.empty() ? "" : ": " + f->reason_message));
    line("dead-lettered", iso(d->dead_lettered_ms()));
    line("attempts",
         f->attempts.size() == static_cast<std::size_t>(f->attempts_total)
             ? std::to_string(f->attempts_total)
             : fmt::format(
                   "{} ({} kept: the first {} and the last {})", f->attempts_total,
                   f->attempts.size(), std::min(f->attempts.size(), runtime::kKeptFirstAttempts),
                   f->attempts.size() - std::min(f->attempts.size(), runtime::kKeptFirstAttempts)));
    std::vector<std::vector<std::string>> rows;
    for (std::size_t i = 0; i < f->attempts.size(); ++i) {
      const auto& at = f->attempts[i];
      if (i > 0 && attempt_number(*f, i) != attempt_number(*f, i - 1) + 1)
        rows.push_back({"...", "", "", "", "", ""});
      rows.push_back({std::to_string(attempt_number(*f, i)), at.time_ms > 0 ? iso(at.time_ms) : "-",
                      std::string(runtime::to_string(at.cls)),
                      at.category.empty() ? "-" : at.category + ":" + std::to_string(at.code),
                      dash(at.worker), dash(short_text(at.message, 200))});
    }
    if (!rows.empty()) print_table({"#", "TIME", "CLASS", "ERROR", "WORKER", "MESSAGE"}, rows);
  } else {
    line("reason", fmt::format("unknown ({})", d->failure_problem));
    line("dead-lettered", iso(d->timestamp_ms) + " (record timestamp)");
  }
  std::cout << "headers\n";
  for (const auto& h : d->headers) {
    std::string v;
    if (!h.value)
      v = "(null)";
    else if (h.key == runtime::kFailureHeader)
      v = fmt::format("({} bytes: {})", h.value->size(),
                      f ? "the failure record above" : d->failure_problem);
    else if (printable(*h.value))
      v = short_text(*h.value, 200);
    else
      v = fmt::format("({} bytes) {}", h.value->size(), hex(*h.value, 32));
    std::cout << fmt::format("  {} = {}\n", h.key, v);
  }
  constexpr std::size_t kTextMax = 1024, kHexMax = 256;
  if (!d->value) {
    std::cout << "value         (null)\n";
  } else if (text_value) {
    std::cout << fmt::format(
        "value         {} bytes{}\n", d->value_bytes,
        d->value->size() > kTextMax ? fmt::format(", first {}", kTextMax) : "");
    std::cout << cut(*d->value, kTextMax) << "\n";
  } else {
    std::cout << fmt::format("value         {} bytes, binary{}\n", d->value_bytes,
                             d->value->size() > kHexMax ? fmt::format(", first {}", kHexMax) : "");
    const std::string_view v(*d->value);
    for (std::size_t i = 0; i < v.size() && i < kHexMax; i += 16)
      std::cout << fmt::format("  {:08x}  {}\n", i, hex(v.substr(i, 16), 16));
  }
  return kOk;
}

// --- redrive -------------------------------------------------------------------------

namespace {

// Progress on stderr: redrawn on a terminal, a line every few seconds
// otherwise (logs of long runs).
class progress_line {
 public:
  explicit progress_line(std::size_t total)
      : total_(total), tty_(stderr_is_tty()), start_(std::chrono::steady_clock::now()) {}
  void update(std::size_t done) {
    const auto now = std::chrono::steady_clock::now();
    const auto every = tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(5000);
    if (done != total_ && now - last_ < every) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    std::cerr << fmt::format("{}redrive: {}/{} ({:.0f} records/s){}", tty_ ? "\r" : "", done,
                             total_, rate, tty_ ? "" : "\n");
    if (tty_ && done == total_) std::cerr << "\n";
  }

 private:
  std::size_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_{};
};

// Test hook: FERRY_DLQ_CRASH_AFTER=N ends the process with _exit(137)
// right after the Nth copy is acknowledged, before its redriven marker:
// what a kill -9 at the worst moment leaves behind.
long crash_after() {
  const char* v = std::getenv("FERRY_DLQ_CRASH_AFTER");  // NOLINT(concurrency-mt-unsafe)
  return v ? std::atol(v) : 0;
}

}  // namespace

int dlq_redrive(const globals& g, const dlq_args& a) {
  dlq::selection sel;
  if (auto e = parse_where(a.where, sel)) return usage(*e);
  if (a.rate < 0) return usage("--rate wants records per second >= 0 (0: unlimited)");
  if (a.to && *a.to == a.topic)
    return usage("--to names the dead-letter topic itself; give the topic to redrive to");
  if (a.to && a.to->empty()) return usage("--to wants a topic");
  dlq::read_options ro;
  ro.values_of = &sel;
  dlq::snapshot s;
  if (auto rc = read_dlq(g, a, ro, s)) return *rc;
  std::string msg;
  auto ir = dlq::find_interrupted(g.client(), s, &msg);
  if (!ir) return report("cannot check for an interrupted redrive of " + a.topic, ir.error(), msg);
  const auto plan = dlq::plan_redrive(s, ir.value(), sel, a.to.value_or(""));

  // Targets must exist: a redrive never creates topics.
  std::map<std::pair<std::string, std::string>, std::vector<const dlq::dead_letter*>> by_target;
  std::set<std::string> targets;
  for (const auto& it : plan.items) {
    by_target[{it.letter->origin_topic(), it.target}].push_back(it.letter);
    targets.insert(it.target);
  }
  client::admin adm(g.client());
  for (const auto& t : targets) {
    auto d = adm.describe_topic(t);
    if (!d) {
      if (d.error() == client::errc::unknown_topic) {
        std::cerr << fmt::format(
            "error: the redrive target {} does not exist; a redrive does not create topics. "
            "Create it (ferry topics create {} --partitions N) or choose another with --to\n",
            t, t);
        return kRefused;
      }
      return report("cannot describe redrive target " + t, d.error(), adm.last_error_message());
    }
  }

  // The plan (or what was done) per origin topic and target, for people.
  auto print_targets = [&](const char* count_header) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& [k, v] : by_target)
      rows.push_back({dash(k.first), k.second, std::to_string(v.size()), sample_text(v)});
    if (!rows.empty()) print_table({"ORIGIN-TOPIC", "TARGET", count_header, "DLQ-OFFSETS"}, rows);
    if (!plan.no_target.empty())
      std::cout << fmt::format(
          "not redriven: {} dead letter(s) without an origin topic ({}); give --to TOPIC\n",
          plan.no_target.size(), sample_text(plan.no_target));
  };
  auto plan_json = [&]() {
    auto arr = nlohmann::json::array();
    for (const auto& [k, v] : by_target)
      arr.push_back({{"origin_topic", or_null(k.first)},
                     {"target", k.second},
                     {"count", v.size()},
                     {"sample", sample_json(v)}});
    return arr;
  };
  if (!a.execute) {
    if (g.json()) {
      print_json({{"topic", s.topic},
                  {"executed", false},
                  {"filters", a.where},
                  {"to", a.to ? nlohmann::json(*a.to) : nlohmann::json(nullptr)},
                  {"rate", a.rate},
                  {"to_redrive", plan.items.size()},
                  {"targets", plan_json()},
                  {"no_target", sample_json(plan.no_target, SIZE_MAX)},
                  {"interrupted_runs", ir.value().runs},
                  {"unconfirmed", ir.value().unconfirmed},
                  {"copies_found", plan.recovering.size()},
                  {"warnings", s.warnings}});
      return kOk;
    }
    std::cout << fmt::format("redrive plan for {} ({})\n", s.topic, where_text(a.where));
    print_targets("DEAD-LETTERS");
    if (ir.value().unconfirmed > 0)
      std::cout << fmt::format(
          "interrupted redrive (run {}): {} dead letter(s) unconfirmed, copies of {} found in the "
          "targets; those will only be marked redriven, not produced again\n",
          fmt::join(ir.value().runs, ", "), ir.value().unconfirmed, plan.recovering.size());
    const std::size_t n = plan.items.size();
    if (n == 0) {
      std::cout << "nothing to redrive\n";
    } else {
      std::cout << fmt::format("{} dead letter(s) to redrive", n);
      if (a.rate > 0)
        std::cout << fmt::format(" at {} records/s (about {:.0f} s)", a.rate,
                                 std::ceil(static_cast<double>(n) / a.rate));
      std::cout << "\n";
    }
    std::cout << "nothing changed; re-run with --execute to redrive them\n";
    return kOk;
  }

  dlq::redrive_options opts;
  opts.rate = a.rate;
  // A redriven marker at least every second at the given rate: a run killed
  // half-way leaves at most that much for the next one to look for.
  opts.chunk = a.rate > 0 ? std::clamp<std::size_t>(static_cast<std::size_t>(a.rate), 1, 256) : 256;
  opts.delivery_timeout = std::max(g.timeout() * 3, std::chrono::milliseconds(30000));
  progress_line bar(plan.items.size());
  const long crash = crash_after();
  opts.on_acked = [&](std::size_t done, std::size_t) {
    if (crash > 0 && done == static_cast<std::size_t>(crash)) {
      std::cout.flush();
      ::_exit(137);
    }
    bar.update(done);
  };
  dlq::redrive_result done;
  auto r = dlq::execute_redrive(g.client(), s, plan, opts, &done, &msg);
  if (!r) {
    const int rc = report(fmt::format("redrive of {} stopped after {} of {} dead letter(s)",
                                      s.topic, done.redriven, plan.items.size()),
                          r.error(), msg);
    std::cerr << "re-run the same command to continue: what was redriven is marked or will be "
                 "found, never produced twice\n";
    return rc;
  }
  if (g.json()) {
    print_json({{"topic", s.topic},
                {"executed", true},
                {"filters", a.where},
                {"redriven", done.redriven},
                {"recovered", done.recovered},
                {"markers", done.markers},
                {"run", done.run},
                {"targets", plan_json()},
                {"no_target", sample_json(plan.no_target, SIZE_MAX)}});
    return kOk;
  }
  print_targets("REDRIVEN");
  std::cout << fmt::format(
      "redrove {} dead letter(s) from {}; marked {} copied by an interrupted run; appended {} "
      "marker(s) (run {})\n",
      done.redriven, s.topic, done.recovered, done.markers, done.run);
  return kOk;
}

// --- purge ---------------------------------------------------------------------------

int dlq_purge(const globals& g, const dlq_args& a) {
  dlq::selection sel;
  if (auto e = parse_where(a.where, sel)) return usage(*e);
  dlq::read_options ro;
  ro.keep_values = false;
  dlq::snapshot s;
  if (auto rc = read_dlq(g, a, ro, s)) return *rc;
  std::vector<const dlq::dead_letter*> chosen;
  std::map<std::pair<std::string, std::string>, std::vector<const dlq::dead_letter*>> groups;
  for (const auto& d : s.letters) {
    if (d.st != dlq::state::pending || !sel.matches(d)) continue;
    chosen.push_back(&d);
    groups[{d.origin_topic(), d.reason()}].push_back(&d);
  }
  std::size_t markers = 0;
  if (a.execute && !chosen.empty()) {
    std::string msg;
    auto r = dlq::purge(g.client(), s, chosen, dlq::default_actor(), &msg);
    if (!r) return report("cannot purge dead letters of " + s.topic, r.error(), msg);
    markers = r.value();
  }
  if (g.json()) {
    auto arr = nlohmann::json::array();
    for (const auto& [k, v] : groups)
      arr.push_back({{"origin_topic", or_null(k.first)},
                     {"reason", k.second},
                     {"count", v.size()},
                     {"sample", sample_json(v)}});
    nlohmann::json j = {{"topic", s.topic},
                        {"executed", a.execute},
                        {"filters", a.where},
                        {"count", chosen.size()},
                        {"groups", arr}};
    if (a.execute) j["markers"] = markers;
    print_json(j);
    return kOk;
  }
  if (!a.execute)
    std::cout << fmt::format("purge plan for {} ({})\n", s.topic, where_text(a.where));
  std::vector<std::vector<std::string>> rows;
  for (const auto& [k, v] : groups)
    rows.push_back({dash(k.first), k.second, std::to_string(v.size()), sample_text(v)});
  if (!rows.empty()) print_table({"ORIGIN-TOPIC", "REASON", "DEAD-LETTERS", "DLQ-OFFSETS"}, rows);
  if (!a.execute) {
    std::cout << fmt::format("{} pending dead letter(s) to mark purged\n", chosen.size());
    std::cout << "nothing changed; re-run with --execute to mark them purged\n";
  } else {
    std::cout << fmt::format(
        "marked {} dead letter(s) of {} purged ({} marker(s)); the records stay in the log until "
        "retention removes them\n",
        chosen.size(), s.topic, markers);
  }
  return kOk;
}

}  // namespace ferry::cli
