// ferry consume TOPIC: prints records (one per line, or one JSON object per
// record with -o json).
#include <fmt/format.h>

#include <csignal>
#include <iostream>

#include "cli.h"
#include "commands.h"
#include "ferry/client/admin.h"
#include "ferry/client/consumer.h"
#include "ferry/client/errc.h"

namespace ferry::cli {

namespace {
volatile std::sig_atomic_t g_stop = 0;
}

int consume(const globals& g, const consume_args& a) {
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
    from_ts = parse_iso8601(*a.from_time);
    if (!from_ts) {
      std::cerr << "error: --from-time wants ISO 8601, e.g. 2026-11-22T10:00:00Z, got '"
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

  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });
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
    for (const auto& r : recs.value()) {
      if (limit >= 0 && printed >= limit) break;
      if (g.json()) {
        nlohmann::json h = nlohmann::json::object();
        for (const auto& hd : r.headers)
          h[hd.key] = hd.value ? nlohmann::json(*hd.value) : nlohmann::json(nullptr);
        print_json({{"topic", r.topic},
                    {"partition", r.partition.value()},
                    {"offset", r.offset.value()},
                    {"timestamp", r.timestamp.value()},
                    {"key", r.key ? nlohmann::json(*r.key) : nlohmann::json(nullptr)},
                    {"value", r.value ? nlohmann::json(*r.value) : nlohmann::json(nullptr)},
                    {"headers", h}});
      } else {
        std::cout << r.value.value_or("") << "\n";
      }
      ++printed;
    }
    std::cout.flush();
  }
  if (!g.json()) std::cerr << fmt::format("consumed {} record(s)\n", printed);
  return kOk;
}

}  // namespace ferry::cli
