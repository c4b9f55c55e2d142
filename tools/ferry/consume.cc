// ferry consume TOPIC: prints records (one per line, kcat-style -f format
// strings, or one JSON object per record with -o json). With --group it is
// a member of a consumer group and commits, per partition, the offset after
// the last record written out: every --commit-interval, before exiting (-n,
// -e, SIGINT, SIGTERM, SIGHUP, a closed output) and when a rebalance takes
// partitions away.
#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <iostream>
#include <set>
#include <span>

#include "cli.h"
#include "commands.h"
#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"
#include "ferry/client/schema_cache.h"
#include "ferry/core/clock.h"
#include "ferry/schema/schema.h"

namespace ferry::cli {

namespace {
volatile std::sig_atomic_t g_stop = 0;

// --decode: payloads with a ferry.schema-id header, rendered as JSON with
// the registered schema (fetched once per id). A record that cannot be
// decoded is printed as it is, with the reason (on stderr, once per reason,
// or as "decode_error" with -o json).
class decoder {
 public:
  explicit decoder(const globals& g) : schemas_(g.client()) {}

  /// The payload as JSON text, or nullopt with `why`.
  std::optional<std::string> decode(const client::consumer_record& r, std::string& why) {
    if (!r.value) {
      why = "no value";
      return std::nullopt;
    }
    auto id = client::schema_id_of(r);
    if (!id) {
      why = "no ferry.schema-id header";
      return std::nullopt;
    }
    auto s = schemas_.by_id(*id);
    if (!s) {
      why = fmt::format(
          "schema id {}: {}", *id,
          s.error() == client::errc::unknown_schema ? "not registered" : s.error().message());
      return std::nullopt;
    }
    std::string reason;
    auto payload = std::as_bytes(std::span(r.value->data(), r.value->size()));
    auto j = schema::to_json(s.value()->bfbs, payload, &reason);
    if (!j) {
      why = fmt::format("schema id {} ({}): {}", *id, s.value()->root_type,
                        reason.empty() ? j.error().message() : reason);
      return std::nullopt;
    }
    return std::move(j).value();
  }

  void warn_once(const std::string& why) {
    if (warned_.insert(why).second)
      std::cerr << fmt::format("warning: printing a value undecoded: {}\n", why);
  }

 private:
  client::schema_cache schemas_;
  std::set<std::string> warned_;
};

std::string base64(std::string_view in) {
  static constexpr char kChars[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const auto n = (std::uint32_t{static_cast<unsigned char>(in[i])} << 16) |
                   (std::uint32_t{static_cast<unsigned char>(in[i + 1])} << 8) |
                   std::uint32_t{static_cast<unsigned char>(in[i + 2])};
    for (int shift = 18; shift >= 0; shift -= 6) out += kChars[(n >> shift) & 63];
  }
  if (i < in.size()) {
    auto n = std::uint32_t{static_cast<unsigned char>(in[i])} << 16;
    if (i + 1 < in.size()) n |= std::uint32_t{static_cast<unsigned char>(in[i + 1])} << 8;
    out += kChars[(n >> 18) & 63];
    out += kChars[(n >> 12) & 63];
    out += i + 1 < in.size() ? kChars[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// kcat's format: %t topic, %p partition, %o offset, %k key, %s value, %S
// value size, %K key size, %h headers (k=v,...), %T timestamp (ms), %%; and
// the escapes \n, \t, \r, \\. Nothing for anything else, with `why`.
std::optional<std::vector<format_piece>> parse_format(const std::string& f, std::string& why) {
  std::vector<format_piece> out;
  auto literal = [&](char c) {
    if (out.empty() || out.back().field != 0) out.push_back({});
    out.back().text += c;
  };
  for (std::size_t i = 0; i < f.size(); ++i) {
    const char c = f[i];
    if (c != '%' && c != '\\') {
      literal(c);
      continue;
    }
    if (i + 1 == f.size()) {
      why = fmt::format("the format ends with a lone '{}'", c);
      return std::nullopt;
    }
    const char n = f[++i];
    if (c == '\\') {
      switch (n) {
        case 'n':
          literal('\n');
          break;
        case 't':
          literal('\t');
          break;
        case 'r':
          literal('\r');
          break;
        case '\\':
          literal('\\');
          break;
        default:
          why = fmt::format("unknown escape \\{} (use \\n, \\t, \\r or \\\\)", n);
          return std::nullopt;
      }
      continue;
    }
    if (n == '%') {
      literal('%');
    } else if (std::string_view("tpoksSKhT").find(n) != std::string_view::npos) {
      out.push_back({n, {}});
    } else {
      why = fmt::format(
          "unknown field %{} (use %t topic, %p partition, %o offset, %k key, %s value, %S value "
          "size, %K key size, %h headers, %T timestamp, %% a percent sign)",
          n);
      return std::nullopt;
    }
  }
  return out;
}

void print_formatted(const std::vector<format_piece>& f, const client::consumer_record& r,
                     const std::string* value) {
  std::string line;
  for (const auto& p : f) {
    switch (p.field) {
      case 0:
        line += p.text;
        break;
      case 't':
        line += r.topic;
        break;
      case 'p':
        line += std::to_string(r.partition.value());
        break;
      case 'o':
        line += std::to_string(r.offset.value());
        break;
      case 'k':
        line += r.key.value_or("");
        break;
      case 's':
        line += value ? *value : "";
        break;
      case 'S':
        line += value ? std::to_string(value->size()) : "-1";
        break;
      case 'K':
        line += r.key ? std::to_string(r.key->size()) : "-1";
        break;
      case 'T':
        line += std::to_string(r.timestamp.value());
        break;
      case 'h':
        for (std::size_t i = 0; i < r.headers.size(); ++i) {
          if (i > 0) line += ',';
          line += r.headers[i].key;
          line += '=';
          line += r.headers[i].value.value_or("");
        }
        break;
      default:
        break;
    }
  }
  std::cout << line;
}

void print_record(const globals& g, const consume_args& a, const client::consumer_record& r,
                  decoder* d) {
  std::optional<std::string> decoded;
  std::string why;
  if (d != nullptr) decoded = d->decode(r, why);
  if (g.json()) {
    const bool b64 = a.encoding == "base64";
    auto bytes = [&](const std::optional<std::string>& v) {
      if (!v) return nlohmann::json(nullptr);
      return b64 ? nlohmann::json(base64(*v)) : nlohmann::json(*v);
    };
    nlohmann::json h = nlohmann::json::object();
    for (const auto& hd : r.headers) h[hd.key] = bytes(hd.value);
    nlohmann::json value = bytes(r.value);
    if (decoded) {
      // FlatBuffers writes NaN and infinities as nan/inf, which JSON lacks:
      // such a value stays undecoded rather than break the line's JSON.
      auto parsed = nlohmann::json::parse(*decoded, nullptr, false);
      if (parsed.is_discarded()) {
        why = "the decoded payload is not valid JSON (a NaN or infinite float?): " + *decoded;
        decoded.reset();
      } else {
        value = std::move(parsed);
      }
    }
    nlohmann::json out = {{"topic", r.topic},
                          {"partition", r.partition.value()},
                          {"offset", r.offset.value()},
                          {"timestamp", r.timestamp.value()},
                          {"key", bytes(r.key)},
                          {"value", value},
                          {"headers", h}};
    if (d != nullptr && !decoded) out["decode_error"] = why;
    print_json(out);
    return;
  }
  if (d != nullptr && !decoded) d->warn_once(why);
  const std::string* v = decoded ? &*decoded : (r.value ? &*r.value : nullptr);
  if (a.pieces) {
    print_formatted(*a.pieces, r, v);
  } else if (a.key_separator) {
    std::cout << r.key.value_or("") << *a.key_separator << (v ? *v : "") << "\n";
  } else {
    std::cout << (v ? *v : "") << "\n";
  }
}

void on_stop_signal(int) {
  g_stop = 1;
}

// SIGINT, SIGTERM and SIGHUP (a dropped ssh session) end the loop, so what
// was written out is committed; a closed pipe (| head) is an error on write
// rather than a silent death.
void catch_stop_signals() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGHUP, on_stop_signal);
  std::signal(SIGPIPE, SIG_IGN);
}

// Prints a polled batch and flushes it; false when the output is gone
// (closed pipe, hung-up terminal): what was not written must not count.
bool write_out(const globals& g, const consume_args& a, decoder* dec,
               const std::vector<client::consumer_record>& recs, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) print_record(g, a, recs[i], dec);
  std::cout.flush();
  return static_cast<bool>(std::cout);
}

// Commits what was printed: per partition, the offset after the last
// printed record. Partitions are forgotten once committed (or lost).
class printed_offsets : public client::rebalance_listener {
 public:
  explicit printed_offsets(std::string group) : group_(std::move(group)) {}

  void printed(const client::consumer_record& r) { next_[{r.topic, r.partition}] = r.offset + 1; }

  /// Commits `partitions` (all when empty); false (with a message on
  /// stderr) if the broker refused. A periodic commit that fails is only a
  /// warning: its offsets stay and go with the next commit.
  bool commit(client::consumer& c, const std::vector<client::topic_partition>& partitions = {},
              bool periodic = false) {
    std::vector<client::offset_commit> offsets;
    for (const auto& [tp, next] : next_)
      if (partitions.empty() ||
          std::find(partitions.begin(), partitions.end(), tp) != partitions.end())
        offsets.push_back({tp, next, "", {}});
    if (offsets.empty()) return true;
    std::cout.flush();  // commit only what is out
    if (auto r = c.commit(offsets); !r) {
      if (periodic) {
        std::cerr << fmt::format(
            "warning: cannot commit the offsets of group {} ({}); trying "
            "again with the next commit\n",
            group_, r.error().message());
        return false;
      }
      failed_ = true;
      report(fmt::format("cannot commit the offsets of group {}", group_), r.error(),
             c.last_error_message() +
                 "; the records printed since the last commit will be delivered again");
      return false;
    }
    for (const auto& o : offsets) next_.erase(o.tp);
    committed_ += offsets.size();
    return true;
  }

  void on_revoked(client::consumer& c, const std::vector<client::topic_partition>& ps) override {
    (void)commit(c, ps);
    forget(ps);
  }
  void on_lost(client::consumer&, const std::vector<client::topic_partition>& ps) override {
    if (std::any_of(ps.begin(), ps.end(), [&](const auto& tp) { return next_.count(tp) > 0; }))
      std::cerr << fmt::format(
          "warning: partitions of group {} were taken away before their offsets were committed; "
          "their records will be delivered again\n",
          group_);
    forget(ps);
  }

  [[nodiscard]] bool failed() const { return failed_; }
  [[nodiscard]] std::size_t committed() const { return committed_; }

 private:
  void forget(const std::vector<client::topic_partition>& ps) {
    for (const auto& tp : ps) next_.erase(tp);
  }

  std::string group_;
  std::map<client::topic_partition, offset> next_;
  bool failed_ = false;
  std::size_t committed_ = 0;
};

int consume_group(const globals& g, const consume_args& a, decoder* dec) {
  client::admin adm(g.client());
  auto desc = adm.describe_topic(a.topic);
  if (!desc)
    return report("cannot consume from " + a.topic, desc.error(), adm.last_error_message());
  // Where to stop with -e: the end of each partition as of now.
  std::map<std::int32_t, offset> end;
  for (const auto& p : desc.value().partitions) end[p.partition.value()] = p.high_watermark;

  client::consumer_options co;
  static_cast<client::client_options&>(co) = g.client();
  co.group_id = *a.group;
  co.client_id = "ferry-cli";
  co.auto_offset_reset = client::offset_reset::earliest;
  client::consumer c(co);
  printed_offsets listener(*a.group);
  if (auto r = c.subscribe({a.topic}, &listener); !r)
    return report("cannot join group " + *a.group, r.error(), c.last_error_message());

  catch_stop_signals();
  long printed = 0;
  const long limit = a.count.value_or(-1);
  int rc = kOk;
  auto next_commit = std::chrono::steady_clock::now() + a.commit_interval;
  while (!g_stop && (limit < 0 || printed < limit)) {
    if (std::chrono::steady_clock::now() >= next_commit) {
      // Periodic: a kill -9 or a lost machine repeats at most this much.
      (void)listener.commit(c, {}, /*periodic=*/true);
      next_commit = std::chrono::steady_clock::now() + a.commit_interval;
    }
    if (a.exit_at_end && !c.member_id().empty()) {
      // Done when every partition this member owns is read up to the end
      // seen at start (a member with no partitions has nothing to read).
      bool done = true;
      for (const auto& tp : c.assignment()) {
        auto pos = c.position(tp);
        if (!pos || pos.value() < end[tp.partition.value()]) done = false;
      }
      if (done) break;
    }
    auto recs = c.poll(std::chrono::milliseconds(500));
    if (!recs) {
      if (client::is_retriable(recs.error())) {
        std::cerr << "warning: " << recs.error().message() << "; retrying (Ctrl-C to stop)\n";
        continue;
      }
      rc = report("fetch failed", recs.error(), c.last_error_message());
      break;
    }
    const auto& batch = recs.value();
    std::size_t n = batch.size();
    if (limit >= 0) n = std::min<std::size_t>(n, static_cast<std::size_t>(limit - printed));
    if (!write_out(g, a, dec, batch, n)) {
      std::cerr << "error: the output was closed; committing what was written before\n";
      rc = kFailed;
      break;
    }
    for (std::size_t i = 0; i < n; ++i) listener.printed(batch[i]);
    printed += static_cast<long>(n);
  }
  if (!listener.commit(c) && rc == kOk) rc = kRefused;
  (void)c.close();  // on_revoked has nothing left to commit; leaving moves the partitions at once
  if (listener.failed() && rc == kOk) rc = kRefused;
  if (!g.json())
    std::cerr << fmt::format(
        "consumed {} record(s); committed {} partition offset(s) for group {}\n", printed,
        listener.committed(), *a.group);
  return rc;
}

}  // namespace

int consume(const globals& g, consume_args a) {
  if (a.format) {
    if (g.json() || a.key_separator) {
      std::cerr << "error: -f/--format prints text; it cannot be combined with -o json or "
                   "--key-separator\n";
      return kUsage;
    }
    std::string why;
    a.pieces = parse_format(*a.format, why);
    if (!a.pieces) {
      std::cerr << "error: -f: " << why << "\n";
      return kUsage;
    }
  }
  if (a.key_separator && g.json()) {
    std::cerr << "error: --key-separator prints text; -o json already has the key\n";
    return kUsage;
  }
  if (a.encoding != "text" && !g.json()) {
    std::cerr << "error: --encoding applies to -o json (text output writes bytes as they are)\n";
    return kUsage;
  }
  std::optional<decoder> dec;
  if (a.decode) dec.emplace(g);
  if (a.group) {
    if (a.partition || a.offset || a.from_beginning || a.from_time) {
      std::cerr << "error: --group starts at the group's committed offsets; it cannot be combined "
                   "with --partition, --offset, --from-beginning or --from-time (move the group's "
                   "offsets with: ferry groups reset-offsets)\n";
      return kUsage;
    }
    return consume_group(g, a, dec ? &*dec : nullptr);
  }
  if (a.offset && !a.partition) {
    std::cerr << "error: --offset needs --partition\n";
    return kUsage;
  }
  int modes = (a.from_beginning ? 1 : 0) + (a.offset ? 1 : 0) + (a.from_time ? 1 : 0);
  if (modes > 1) {
    std::cerr << "error: choose one of --from-beginning, --offset, --from-time\n";
    return kUsage;
  }
  std::optional<timestamp_ms> from_ts;
  if (a.from_time) {
    from_ts = parse_point_in_time(*a.from_time, ferry::system_clock::instance().wall_now());
    if (!from_ts) {
      std::cerr << "error: --from-time wants ISO 8601 (2026-11-22T10:00:00Z), a duration ago "
                   "(5m, 2h, 1d) or epoch milliseconds, got '"
                << *a.from_time << "'\n";
      return kUsage;
    }
  }
  client::admin adm(g.client());
  auto desc = adm.describe_topic(a.topic);
  if (!desc)
    return report("cannot consume from " + a.topic, desc.error(), adm.last_error_message());
  std::vector<client::topic_partition> tps;
  for (const auto& p : desc.value().partitions) {
    if (a.partition && p.partition.value() != *a.partition) continue;
    tps.push_back({a.topic, p.partition});
  }
  if (tps.empty()) {
    std::cerr << fmt::format("error: topic {} has no partition {}. See: ferry topics describe {}\n",
                             a.topic, a.partition.value_or(-1), a.topic);
    return kRefused;
  }
  // Where to stop with -e: the end of each partition as of now.
  std::map<std::int32_t, offset> end;
  for (const auto& p : desc.value().partitions) end[p.partition.value()] = p.high_watermark;

  client::consumer_options co;
  static_cast<client::client_options&>(co) = g.client();
  client::consumer c(co);
  if (auto r = c.assign(tps); !r) return report("cannot assign partitions", r.error());
  std::error_code seek_err;
  if (a.offset) {
    if (auto r = c.seek(tps[0], offset(*a.offset)); !r) seek_err = r.error();
  } else if (from_ts) {
    if (auto r = c.seek_to_timestamp(tps, *from_ts); !r) seek_err = r.error();
  } else if (a.from_beginning) {
    if (auto r = c.seek_to_beginning(tps); !r) seek_err = r.error();
  } else {
    if (auto r = c.seek_to_end(tps); !r) seek_err = r.error();
  }
  if (seek_err) return report("cannot position the consumer", seek_err);

  catch_stop_signals();
  long printed = 0;
  const long limit = a.count.value_or(-1);
  while (!g_stop && (limit < 0 || printed < limit)) {
    if (a.exit_at_end) {
      bool done = true;
      for (const auto& tp : tps) {
        auto pos = c.position(tp);
        if (!pos || pos.value() < end[tp.partition.value()]) done = false;
      }
      if (done) break;
    }
    auto recs = c.poll(std::chrono::milliseconds(500));
    if (!recs) {
      if (client::is_retriable(recs.error())) {
        std::cerr << "warning: " << recs.error().message() << "; retrying (Ctrl-C to stop)\n";
        continue;
      }
      return report("fetch failed", recs.error(), c.last_error_message());
    }
    const auto& batch = recs.value();
    std::size_t n = batch.size();
    if (limit >= 0) n = std::min<std::size_t>(n, static_cast<std::size_t>(limit - printed));
    if (!write_out(g, a, dec ? &*dec : nullptr, batch, n)) return kFailed;  // a closed pipe
    printed += static_cast<long>(n);
  }
  if (!g.json()) std::cerr << fmt::format("consumed {} record(s)\n", printed);
  return kOk;
}

}  // namespace ferry::cli
