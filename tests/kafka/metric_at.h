// One sample of ferryd's /metrics at HOST:PORT, for the Kafka listener's
// security tests (needs cpp-httplib): -1 when the scrape failed, 0 when
// the series is not there.
#pragma once

#include <httplib.h>

#include <map>
#include <string>

#include "metrics_scrape.h"

namespace ferry::testing {

inline double metric_at(const std::string& host_port, const std::string& name,
                        const std::map<std::string, std::string>& labels) {
  httplib::Client http("127.0.0.1", std::stoi(host_port.substr(host_port.find(':') + 1)));
  auto res = http.Get("/metrics");
  if (!res) return -1;
  return sample_value(res->body, name, labels).value_or(0);
}

}  // namespace ferry::testing
