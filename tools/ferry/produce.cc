// ferry produce TOPIC: one record per line of standard input.
#include <fmt/format.h>

#include <atomic>
#include <iostream>
#include <mutex>

#include "cli.h"
#include "commands.h"
#include "ferry/client/producer.h"

namespace ferry::cli {

int produce(const globals& g, const produce_args& a) {
  std::vector<client::header> headers;
  for (const auto& h : a.headers) {
    auto eq = h.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "error: --header must be KEY=VALUE, got '" << h << "'\n";
      return kUsage;
    }
    headers.push_back({h.substr(0, eq), h.substr(eq + 1)});
  }
  if (a.key && a.key_separator) {
    std::cerr << "error: use either --key or --key-separator, not both\n";
    return kUsage;
  }
  if (a.key_separator && a.key_separator->empty()) {
    std::cerr << "error: --key-separator must not be empty\n";
    return kUsage;
  }
  client::producer_options po;
  static_cast<client::client_options&>(po) = g.client();
  // --timeout-ms bounds the whole run's wait for acknowledgements: a down
  // broker is reported (exit 3) when it passes, not a minute later.
  po.delivery_timeout = g.timeout();
  po.max_block = g.timeout();  // waiting for the partition count counts too
  po.compression = format::parse_compression(a.compression).value_or(format::compression::none);
  client::producer p(po);
  std::mutex out_mu;
  std::atomic<long> acked{0}, failed{0};
  std::error_code first_error;
  std::string line;
  long lines = 0;
  while (std::getline(std::cin, line)) {
    ++lines;
    client::producer_record r;
    r.topic = a.topic;
    r.headers = headers;
    if (a.partition) r.partition = partition_id(*a.partition);
    if (a.key) {
      r.key = *a.key;
      r.value = line;
    } else if (a.key_separator) {
      auto at = line.find(*a.key_separator);
      if (at == std::string::npos) {
        r.value = line;  // no separator: a record without a key
      } else {
        r.key = line.substr(0, at);
        r.value = line.substr(at + a.key_separator->size());
      }
    } else {
      r.value = line;
    }
    auto s = p.send(std::move(r), [&](const result<client::record_metadata>& res) {
      std::lock_guard lock(out_mu);
      if (!res) {
        if (!first_error) first_error = res.error();
        ++failed;
        return;
      }
      ++acked;
      if (g.json())
        print_json({{"topic", res.value().topic},
                    {"partition", res.value().partition.value()},
                    {"offset", res.value().offset.value()}});
    });
    if (!s) {
      std::lock_guard lock(out_mu);
      if (!first_error) first_error = s.error();
      ++failed;
      break;
    }
  }
  auto f = p.flush(po.delivery_timeout + std::chrono::seconds(1));
  (void)p.close();
  if (!f && !first_error) first_error = f.error();
  if (first_error) {
    return report(
        fmt::format("{} of {} record(s) were not acknowledged", lines - acked.load(), lines),
        first_error);
  }
  if (!g.json()) std::cerr << fmt::format("produced {} record(s) to {}\n", acked.load(), a.topic);
  return kOk;
}

}  // namespace ferry::cli
