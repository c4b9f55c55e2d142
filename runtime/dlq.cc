// Dead-letter topic reading, filtering, markers, redrive and purge (dlq.h;
// the marker protocol is explained in docs/dead-letters.md).
#include "ferry/runtime/dlq.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"
#include "ferry/client/producer.h"
#include "ferry/core/errc.h"
#include "ferry/core/logging.h"

namespace ferry::runtime::dlq {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
  return it != hay.end();
}

std::string new_run_id() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<std::uint64_t>(now_ms()));
  return fmt::format("{:012x}", gen() & 0xffffffffffffULL);
}

void set_error(std::string* out, std::string msg) {
  if (out) *out = std::move(msg);
}

}  // namespace

std::string default_dlq_topic(std::string_view topic) {
  return std::string(topic) + ".dlq";
}

std::string_view to_string(state s) noexcept {
  switch (s) {
    case state::pending:
      return "pending";
    case state::redriven:
      return "redriven";
    case state::purged:
      return "purged";
  }
  return "unknown";
}

std::string_view to_string(marker_kind k) noexcept {
  switch (k) {
    case marker_kind::redrive_start:
      return "redrive-start";
    case marker_kind::redriven:
      return "redriven";
    case marker_kind::purged:
      return "purged";
  }
  return "unknown";
}

std::optional<marker_kind> parse_marker_kind(std::string_view s) noexcept {
  for (auto k : {marker_kind::redrive_start, marker_kind::redriven, marker_kind::purged})
    if (s == to_string(k)) return k;
  return std::nullopt;
}

// --- markers ------------------------------------------------------------------

std::string encode_marker(const marker& m) {
  nlohmann::json j = {{"marker", to_string(m.kind)}, {"offsets", m.offsets}};
  if (m.kind != marker_kind::purged) j["to"] = m.to;
  if (m.kind == marker_kind::redrive_start) {
    auto t = nlohmann::json::array();
    for (const auto& e : m.targets)
      t.push_back({{"topic", e.topic}, {"partition", e.partition}, {"end", e.end}});
    j["targets"] = t;
  }
  if (m.recovered) j["recovered"] = true;
  j["run"] = m.run;
  j["by"] = m.by;
  j["at"] = m.at_ms;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<marker> decode_marker(marker_kind kind, std::string_view value) {
  // A marker comes from the log: anything may be in it. No exception leaves.
  try {
    auto j = nlohmann::json::parse(value.begin(), value.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    marker m;
    m.kind = kind;
    auto offs = j.find("offsets");
    if (offs == j.end() || !offs->is_array()) return std::nullopt;
    for (const auto& o : *offs) {
      if (!o.is_number_integer() || o.get<std::int64_t>() < 0) return std::nullopt;
      m.offsets.push_back(o.get<std::int64_t>());
    }
    auto str = [&](const char* k, std::string& out) {
      auto it = j.find(k);
      if (it != j.end() && it->is_string()) out = it->get<std::string>();
    };
    str("to", m.to);
    str("run", m.run);
    str("by", m.by);
    if (auto it = j.find("at"); it != j.end() && it->is_number_integer())
      m.at_ms = it->get<std::int64_t>();
    if (auto it = j.find("recovered"); it != j.end() && it->is_boolean())
      m.recovered = it->get<bool>();
    if (auto it = j.find("targets"); it != j.end()) {
      if (!it->is_array()) return std::nullopt;
      for (const auto& t : *it) {
        if (!t.is_object()) return std::nullopt;
        auto tt = t.find("topic"), tp = t.find("partition"), te = t.find("end");
        if (tt == t.end() || !tt->is_string() || tp == t.end() || !tp->is_number_integer() ||
            te == t.end() || !te->is_number_integer())
          return std::nullopt;
        const auto p = tp->get<std::int64_t>();
        const auto e = te->get<std::int64_t>();
        if (p < 0 || p > INT32_MAX || e < 0) return std::nullopt;
        m.targets.push_back({tt->get<std::string>(), static_cast<std::int32_t>(p), e});
      }
    }
    if (kind == marker_kind::redrive_start && m.targets.empty() && !m.offsets.empty())
      return std::nullopt;  // a start marker that cannot be checked would be useless
    return m;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// --- dead letters ---------------------------------------------------------------

std::string dead_letter::reason() const {
  return failure ? std::string(to_string(failure->reason)) : std::string("unknown");
}

std::string dead_letter::origin_topic() const {
  return origin ? origin->topic : std::string();
}

std::int64_t dead_letter::dead_lettered_ms() const {
  return failure && failure->dead_lettered_ms > 0 ? failure->dead_lettered_ms : timestamp_ms;
}

std::string dead_letter::error_code() const {
  if (!failure || failure->attempts.empty()) return {};
  const auto& a = failure->attempts.back();
  if (a.category.empty()) return {};  // an attempt whose error was not kept
  return a.category + ":" + std::to_string(a.code);
}

std::string dead_letter::error_message() const {
  if (!failure) return failure_problem;
  if (!failure->attempts.empty() && !failure->attempts.back().message.empty())
    return failure->attempts.back().message;
  return failure->reason_message;
}

bool condition::matches(const dead_letter& d) const {
  switch (what) {
    case field::reason:
      return d.reason() == text;
    case field::key:
      return d.key && *d.key == text;
    case field::since:
      return d.dead_lettered_ms() >= number;
    case field::error:
      return icontains(d.error_code(), text) || icontains(d.error_message(), text) ||
             (d.failure && icontains(d.failure->reason_message, text));
    case field::topic:
      return d.origin_topic() == text;
    case field::partition:
      return d.partition == number;
    case field::offset:
      return d.offset == number;
  }
  return false;
}

bool selection::matches(const dead_letter& d) const {
  return std::all_of(all.begin(), all.end(), [&](const condition& c) { return c.matches(d); });
}

const dead_letter* snapshot::find(std::int32_t partition, std::int64_t offset) const {
  auto it =
      std::lower_bound(letters.begin(), letters.end(), std::pair{partition, offset},
                       [](const dead_letter& d, const std::pair<std::int32_t, std::int64_t>& k) {
                         return std::pair{d.partition, d.offset} < k;
                       });
  if (it == letters.end() || it->partition != partition || it->offset != offset) return nullptr;
  return &*it;
}

dead_letter* snapshot::find(std::int32_t partition, std::int64_t offset) {
  return const_cast<dead_letter*>(std::as_const(*this).find(partition, offset));
}

snapshot build_snapshot(std::string topic, std::vector<snapshot::partition_range> partitions,
                        std::vector<client::consumer_record> records, const read_options& ro) {
  snapshot s;
  s.topic = std::move(topic);
  s.partitions = std::move(partitions);
  for (auto& r : records) {
    const std::int32_t p = r.partition.value();
    const std::int64_t o = r.offset.value();
    if (const auto* mk = r.header_value(kMarkerHeader)) {
      const std::string kind_text = mk->value_or("");
      auto kind = parse_marker_kind(kind_text);
      if (!kind) {
        s.warnings.push_back(
            fmt::format("{}/{}: marker of unknown kind '{}' ignored", p, o, kind_text));
        continue;
      }
      auto m = decode_marker(*kind, r.value.value_or(""));
      if (!m) {
        s.warnings.push_back(
            fmt::format("{}/{}: {} marker with an unreadable value ignored", p, o, kind_text));
        continue;
      }
      m->partition = p;
      m->offset = o;
      s.markers.push_back(std::move(*m));
      continue;
    }
    dead_letter d;
    d.partition = p;
    d.offset = o;
    d.timestamp_ms = r.timestamp.value();
    d.key = std::move(r.key);
    d.value_bytes = r.value ? r.value->size() : 0;
    d.value = std::move(r.value);
    d.headers = std::move(r.headers);
    if (auto f = get_header(d.headers, kFailureHeader)) {
      auto dec = decode_failure(*f);
      if (dec) {
        d.failure = std::move(dec).value();
      } else {
        d.failure_problem = "invalid failure record";
      }
    } else {
      d.failure_problem = "no failure record";
    }
    if (d.failure && !d.failure->origin_topic.empty()) {
      d.origin = record_position{d.failure->origin_topic, d.failure->origin_partition,
                                 d.failure->origin_offset};
    } else if (auto h = get_header(d.headers, kOriginHeader)) {
      d.origin = parse_position(*h);
    }
    if (!ro.keep_values || (ro.values_of && !ro.values_of->matches(d))) {
      d.value.reset();
      d.value_kept = false;
    }
    s.letters.push_back(std::move(d));
  }
  auto by_pos = [](const auto& a, const auto& b) {
    return std::pair{a.partition, a.offset} < std::pair{b.partition, b.offset};
  };
  std::sort(s.letters.begin(), s.letters.end(), by_pos);
  std::sort(s.markers.begin(), s.markers.end(), by_pos);
  // The first marker (lowest offset) naming a pending dead letter of its own
  // partition, below itself, decides its state. Offsets it names that are
  // not (or no longer: retention) dead letters are ignored.
  for (const auto& m : s.markers) {
    if (m.kind == marker_kind::redrive_start) continue;
    for (auto o : m.offsets) {
      if (o >= m.offset) continue;
      auto* d = s.find(m.partition, o);
      if (!d || d->st != state::pending) continue;
      d->st = m.kind == marker_kind::redriven ? state::redriven : state::purged;
      d->resolved_by = m.offset;
      d->resolved_at_ms = m.at_ms;
      d->resolved_who = m.by;
      d->recovered = m.recovered;
      if (m.kind == marker_kind::redriven) d->resolved_to = m.to.empty() ? d->origin_topic() : m.to;
    }
  }
  return s;
}

namespace {

client::consumer_options consumer_options_from(const client::client_options& options) {
  client::consumer_options co;
  static_cast<client::client_options&>(co) = options;
  co.fetch_max_wait = std::chrono::milliseconds(100);
  co.auto_offset_reset = client::offset_reset::earliest;
  return co;
}

// Reads the partitions `from` (start offsets) up to `to` (exclusive ends):
// every record in between, in offset order per partition.
result<std::vector<client::consumer_record>> read_range(
    const client::client_options& options, const std::string& topic,
    const std::map<std::int32_t, std::pair<std::int64_t, std::int64_t>>& ranges,
    std::string* error_message) {
  std::vector<client::consumer_record> out;
  std::vector<client::topic_partition> tps;
  for (const auto& [p, r] : ranges)
    if (r.first < r.second) tps.push_back({topic, partition_id(p)});
  if (tps.empty()) return out;
  client::consumer c(consumer_options_from(options));
  if (auto r = c.assign(tps); !r) return r.error();
  for (const auto& tp : tps)
    if (auto r = c.seek(tp, offset(ranges.at(tp.partition.value()).first)); !r) return r.error();
  auto deadline = std::chrono::steady_clock::now() + options.api_timeout;
  std::set<std::int32_t> open;
  for (const auto& tp : tps) open.insert(tp.partition.value());
  while (!open.empty()) {
    for (auto it = open.begin(); it != open.end();) {
      auto pos = c.position({topic, partition_id(*it)});
      if (!pos) {
        set_error(error_message, c.last_error_message());
        return pos.error();
      }
      it = pos.value().value() >= ranges.at(*it).second ? open.erase(it) : std::next(it);
    }
    if (open.empty()) break;
    auto recs = c.poll(std::chrono::milliseconds(200));
    if (!recs) {
      if (client::is_retriable(recs.error()) && std::chrono::steady_clock::now() < deadline)
        continue;
      set_error(error_message, c.last_error_message());
      return recs.error();
    }
    if (!recs.value().empty()) deadline = std::chrono::steady_clock::now() + options.api_timeout;
    if (std::chrono::steady_clock::now() > deadline) {
      set_error(error_message, "no progress reading " + topic);
      return ferry::errc::timed_out;
    }
    for (auto& r : recs.value()) {
      auto range = ranges.find(r.partition.value());
      if (range == ranges.end() || r.offset.value() >= range->second.second) continue;
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace

result<snapshot> read(const client::client_options& options, std::string_view topic,
                      const read_options& ro, std::string* error_message) {
  client::admin adm(options);
  auto d = adm.describe_topic(topic);
  if (!d) {
    set_error(error_message, adm.last_error_message());
    return d.error();
  }
  std::vector<snapshot::partition_range> parts;
  std::map<std::int32_t, std::pair<std::int64_t, std::int64_t>> ranges;
  for (const auto& p : d.value().partitions) {
    if (p.error) {
      set_error(error_message, fmt::format("partition {}: {}", p.partition.value(),
                                           p.message.empty() ? p.error.message() : p.message));
      return p.error;
    }
    parts.push_back({p.partition.value(), p.log_start.value(), p.high_watermark.value()});
    ranges[p.partition.value()] = {p.log_start.value(), p.high_watermark.value()};
  }
  auto recs = read_range(options, std::string(topic), ranges, error_message);
  if (!recs) return recs.error();
  return build_snapshot(std::string(topic), std::move(parts), std::move(recs).value(), ro);
}

// --- interrupted redrives ---------------------------------------------------------

result<interrupted_runs> find_interrupted(const client::client_options& options, const snapshot& s,
                                          std::string* error_message) {
  interrupted_runs ir;
  std::set<std::pair<std::int32_t, std::int64_t>> unconfirmed;
  // Per target partition, the lowest end recorded by an unfinished start marker.
  std::map<std::string, std::map<std::int32_t, std::int64_t>> from;
  for (const auto& m : s.markers) {
    if (m.kind != marker_kind::redrive_start) continue;
    bool open = false;
    for (auto o : m.offsets) {
      const auto* d = s.find(m.partition, o);
      if (d && d->st == state::pending) {
        unconfirmed.insert({m.partition, o});
        open = true;
      }
    }
    if (!open) continue;
    if (std::find(ir.runs.begin(), ir.runs.end(), m.run) == ir.runs.end()) ir.runs.push_back(m.run);
    for (const auto& t : m.targets) {
      auto& f = from[t.topic];
      auto it = f.find(t.partition);
      if (it == f.end() || t.end < it->second) f[t.partition] = t.end;
    }
  }
  ir.unconfirmed = unconfirmed.size();
  if (unconfirmed.empty()) return ir;

  client::admin adm(options);
  std::set<std::pair<std::int32_t, std::int64_t>> seen;
  for (const auto& [topic, parts] : from) {
    auto d = adm.describe_topic(topic);
    if (!d) {
      // A deleted target holds no copies any more: nothing to find there.
      if (d.error() == client::errc::unknown_topic) continue;
      set_error(error_message, fmt::format("cannot describe redrive target {}: {}", topic,
                                           adm.last_error_message()));
      return d.error();
    }
    std::map<std::int32_t, std::pair<std::int64_t, std::int64_t>> ranges;
    for (const auto& p : d.value().partitions) {
      auto it = parts.find(p.partition.value());
      if (it == parts.end()) continue;
      ranges[p.partition.value()] = {std::max(it->second, p.log_start.value()),
                                     p.high_watermark.value()};
    }
    auto recs = read_range(options, topic, ranges, error_message);
    if (!recs) return recs.error();
    for (const auto& r : recs.value()) {
      const auto* h = r.header_value(kRedrivenFromHeader);
      if (!h || !*h) continue;
      auto pos = parse_position(**h);
      if (!pos || pos->topic != s.topic) continue;
      const auto* dl = s.find(pos->partition, pos->offset);
      if (!dl || dl->st != state::pending || !seen.insert({pos->partition, pos->offset}).second)
        continue;
      ir.found.push_back(
          {pos->partition, pos->offset, {r.topic, r.partition.value(), r.offset.value()}});
    }
  }
  std::sort(ir.found.begin(), ir.found.end(), [](const found_copy& a, const found_copy& b) {
    return std::pair{a.dlq_partition, a.dlq_offset} < std::pair{b.dlq_partition, b.dlq_offset};
  });
  return ir;
}

// --- redrive ----------------------------------------------------------------------

redrive_plan plan_redrive(const snapshot& s, const interrupted_runs& ir, const selection& sel,
                          const std::string& to) {
  redrive_plan plan;
  plan.found = ir.found;
  std::set<std::pair<std::int32_t, std::int64_t>> found;
  for (const auto& f : ir.found) {
    if (const auto* d = s.find(f.dlq_partition, f.dlq_offset); d && d->st == state::pending) {
      found.insert({f.dlq_partition, f.dlq_offset});
      plan.recovering.push_back(d);
    }
  }
  for (const auto& d : s.letters) {
    if (d.st != state::pending || !sel.matches(d) || found.count({d.partition, d.offset})) continue;
    std::string target = to.empty() ? d.origin_topic() : to;
    if (target.empty()) {
      plan.no_target.push_back(&d);
      continue;
    }
    plan.items.push_back({&d, std::move(target)});
  }
  return plan;
}

client::producer_record redrive_record(const snapshot& s, const dead_letter& d,
                                       const std::string& target) {
  client::producer_record r;
  r.topic = target;
  r.key = d.key;
  r.value = d.value;
  for (const auto& h : d.headers) {
    const bool dead_letter_header =
        std::find(std::begin(kDeadLetterHeaders), std::end(kDeadLetterHeaders), h.key) !=
        std::end(kDeadLetterHeaders);
    if (dead_letter_header || h.key == kMarkerHeader) continue;
    r.headers.push_back(h);
  }
  set_header(r.headers, kRedrivenFromHeader, format_position({s.topic, d.partition, d.offset}));
  return r;
}

namespace {

class marker_writer {
 public:
  marker_writer(client::producer& p, const snapshot& s, std::string run, std::string by)
      : p_(p), s_(s), run_(std::move(run)), by_(std::move(by)) {}

  // Appends `m` to its partition and waits for the acknowledgement.
  result<void> append(marker m) {
    m.run = run_;
    m.by = by_;
    m.at_ms = now_ms();
    client::producer_record r;
    r.topic = s_.topic;
    r.partition = partition_id(m.partition);
    r.value = encode_marker(m);
    r.headers.push_back({std::string(kMarkerHeader), std::string(to_string(m.kind))});
    auto f = p_.send(std::move(r)).get();
    if (!f) return f.error();
    ++written_;
    return success();
  }
  [[nodiscard]] std::size_t written() const { return written_; }

 private:
  client::producer& p_;
  const snapshot& s_;
  std::string run_;
  std::string by_;
  std::size_t written_ = 0;
};

client::producer_options producer_options_from(const client::client_options& options,
                                               std::chrono::milliseconds delivery_timeout) {
  client::producer_options po;
  static_cast<client::client_options&>(po) = options;
  po.delivery_timeout = delivery_timeout;
  po.linger = std::chrono::milliseconds(2);
  // The never-twice rule of a redrive rests on markers (dlq.h); the
  // idempotent producer removes the one duplicate markers cannot: a copy
  // stored twice by a send retried after a lost acknowledgement.
  po.enable_idempotence = true;
  return po;
}

constexpr std::size_t kMaxOffsetsPerMarker = 1000;

}  // namespace

result<redrive_result> execute_redrive(const client::client_options& options, const snapshot& s,
                                       const redrive_plan& plan, const redrive_options& ro,
                                       redrive_result* done, std::string* error_message) {
  redrive_result res;
  res.run = ro.run.empty() ? new_run_id() : ro.run;
  auto finish = [&](std::error_code ec, std::string msg) -> result<redrive_result> {
    if (done) *done = res;
    set_error(error_message, std::move(msg));
    return ec;
  };
  // A copy must carry the value: refuse a snapshot read without it.
  for (const auto& it : plan.items)
    if (!it.letter->value_kept)
      return finish(ferry::errc::invalid_argument,
                    fmt::format("the value of {}/{} was not read (read_options)",
                                it.letter->partition, it.letter->offset));
  client::producer p(producer_options_from(options, ro.delivery_timeout));
  marker_writer mw(p, s, res.run, ro.by.empty() ? default_actor() : ro.by);

  // 1. Copies an interrupted run left: mark them, produce nothing.
  {
    std::map<std::pair<std::int32_t, std::string>, std::vector<std::int64_t>> by_part;
    for (const auto& f : plan.found)
      if (const auto* d = s.find(f.dlq_partition, f.dlq_offset); d && d->st == state::pending)
        by_part[{f.dlq_partition, f.copy.topic}].push_back(f.dlq_offset);
    for (auto& [k, offs] : by_part) {
      for (std::size_t i = 0; i < offs.size(); i += kMaxOffsetsPerMarker) {
        marker m;
        m.kind = marker_kind::redriven;
        m.partition = k.first;
        m.to = k.second;
        m.recovered = true;
        m.offsets.assign(offs.begin() + static_cast<std::ptrdiff_t>(i),
                         offs.begin() + static_cast<std::ptrdiff_t>(
                                            std::min(offs.size(), i + kMaxOffsetsPerMarker)));
        if (auto r = mw.append(m); !r) {
          res.markers = mw.written();
          return finish(r.error(), "cannot append a redriven marker to " + s.topic);
        }
        res.recovered += m.offsets.size();
      }
    }
  }

  // 2. Chunks: consecutive items of one DLQ partition with one target.
  client::admin adm(options);
  const std::size_t total = plan.items.size();
  const std::size_t chunk_max = std::max<std::size_t>(1, ro.chunk);
  const auto start = std::chrono::steady_clock::now();
  std::size_t sent = 0;
  std::size_t i = 0;
  while (i < plan.items.size()) {
    std::size_t j = i + 1;
    while (j < plan.items.size() && j - i < chunk_max &&
           plan.items[j].letter->partition == plan.items[i].letter->partition &&
           plan.items[j].target == plan.items[i].target)
      ++j;
    const std::int32_t part = plan.items[i].letter->partition;
    const std::string& target = plan.items[i].target;

    // 2a. Where the target partitions end now: copies of this chunk can
    // only be at or above these offsets.
    auto d = adm.describe_topic(target);
    if (!d) {
      res.markers = mw.written();
      return finish(d.error(),
                    "cannot describe redrive target " + target + ": " + adm.last_error_message());
    }
    marker start_marker;
    start_marker.kind = marker_kind::redrive_start;
    start_marker.partition = part;
    start_marker.to = target;
    for (const auto& tp : d.value().partitions)
      start_marker.targets.push_back({target, tp.partition.value(), tp.high_watermark.value()});
    for (std::size_t k = i; k < j; ++k)
      start_marker.offsets.push_back(plan.items[k].letter->offset);
    if (auto r = mw.append(start_marker); !r) {
      res.markers = mw.written();
      return finish(r.error(), "cannot append a redrive-start marker to " + s.topic);
    }

    // 2b. The copies, paced.
    std::vector<std::future<result<client::record_metadata>>> acks;
    for (std::size_t k = i; k < j; ++k) {
      if (ro.rate > 0) {
        auto at = start + std::chrono::nanoseconds(
                              static_cast<std::int64_t>(1e9 * static_cast<double>(sent) / ro.rate));
        std::this_thread::sleep_until(at);
      }
      acks.push_back(p.send(redrive_record(s, *plan.items[k].letter, target)));
      ++sent;
    }
    // 2c. Wait for every acknowledgement, then mark what was acknowledged.
    marker m;
    m.kind = marker_kind::redriven;
    m.partition = part;
    m.to = target;
    std::error_code first_error;
    for (std::size_t k = 0; k < acks.size(); ++k) {
      auto a = acks[k].get();
      if (!a) {
        if (!first_error) first_error = a.error();
        continue;
      }
      m.offsets.push_back(plan.items[i + k].letter->offset);
      ++res.redriven;
      if (ro.on_acked) ro.on_acked(res.redriven, total);
    }
    if (!m.offsets.empty()) {
      if (auto r = mw.append(m); !r) {
        res.markers = mw.written();
        return finish(r.error(), "cannot append a redriven marker to " + s.topic +
                                     "; the next redrive finds the copies and marks them");
      }
    }
    if (first_error) {
      res.markers = mw.written();
      return finish(first_error, fmt::format("{} of {} copies to {} were not acknowledged",
                                             acks.size() - m.offsets.size(), acks.size(), target));
    }
    i = j;
  }
  (void)p.close();
  res.markers = mw.written();
  if (done) *done = res;
  return res;
}

result<std::size_t> purge(const client::client_options& options, const snapshot& s,
                          const std::vector<const dead_letter*>& letters, const std::string& by,
                          std::string* error_message) {
  std::map<std::int32_t, std::vector<std::int64_t>> by_part;
  for (const auto* d : letters)
    if (d->st == state::pending) by_part[d->partition].push_back(d->offset);
  client::producer p(producer_options_from(options, std::chrono::milliseconds(30000)));
  marker_writer mw(p, s, new_run_id(), by.empty() ? default_actor() : by);
  for (auto& [part, offs] : by_part) {
    std::sort(offs.begin(), offs.end());
    for (std::size_t i = 0; i < offs.size(); i += kMaxOffsetsPerMarker) {
      marker m;
      m.kind = marker_kind::purged;
      m.partition = part;
      m.offsets.assign(offs.begin() + static_cast<std::ptrdiff_t>(i),
                       offs.begin() + static_cast<std::ptrdiff_t>(
                                          std::min(offs.size(), i + kMaxOffsetsPerMarker)));
      if (auto r = mw.append(m); !r) {
        set_error(error_message,
                  fmt::format("cannot append a purged marker to {} (partition {}); {} marker(s) "
                              "were written",
                              s.topic, part, mw.written()));
        return r.error();
      }
    }
  }
  (void)p.close();
  return mw.written();
}

std::string default_actor() {
  const char* user = std::getenv("USER");  // NOLINT(concurrency-mt-unsafe)
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return fmt::format("{}@{}", user && *user ? user : "unknown", host[0] ? host : "localhost");
}

}  // namespace ferry::runtime::dlq
