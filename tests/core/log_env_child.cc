// For logging_test: logs through two Ferry loggers with whatever
// FERRY_LOG_LEVEL and FERRY_LOG_FORMAT the environment holds, as a program
// (the ferry CLI, a runtime worker) that never configures logging itself.
#include "ferry/core/logging.h"

int main() {
  ferry::log::get("alpha")->info("alpha info");
  auto beta = ferry::log::get("beta");
  beta->info("beta info");
  beta->warn("beta warn \"quoted\"\nsecond line");
  return 0;
}
