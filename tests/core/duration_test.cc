// The one duration grammar (core/duration.h), shared by the CLI, the
// runtime's TOML and the broker's configuration.
#include "ferry/core/duration.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

using namespace std::chrono_literals;

TEST(Duration, UnitsAndCompoundsAddUp) {
  EXPECT_EQ(parse_duration("500ms"), 500ms);
  EXPECT_EQ(parse_duration("30s"), 30s);
  EXPECT_EQ(parse_duration("15m"), 15min);
  EXPECT_EQ(parse_duration("2h"), 2h);
  EXPECT_EQ(parse_duration("7d"), 168h);
  EXPECT_EQ(parse_duration("1h30m"), 90min);
  EXPECT_EQ(parse_duration("1d2h3m4s5ms"), 26h + 3min + 4s + 5ms);
  EXPECT_EQ(parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(parse_duration("0s"), 0ms);
}

TEST(Duration, Iso8601WithoutCalendarUnits) {
  EXPECT_EQ(parse_duration("PT1H30M"), 90min);
  EXPECT_EQ(parse_duration("P2D"), 48h);
  EXPECT_EQ(parse_duration("P1DT2H"), 26h);
  EXPECT_EQ(parse_duration("PT0.5S"), 500ms);
  EXPECT_FALSE(parse_duration("P1W"));
  EXPECT_FALSE(parse_duration("P1M"));  // a month is not a fixed length
  EXPECT_FALSE(parse_duration("P"));
  EXPECT_FALSE(parse_duration("PT"));
}

TEST(Duration, ABareNumberIsRefusedNeverMilliseconds) {
  EXPECT_FALSE(parse_duration("7"));
  EXPECT_FALSE(parse_duration("500"));
  EXPECT_FALSE(parse_duration("1h30"));  // the 30 has no unit
  const auto why = duration_error("subscription.idempotency_window", "7");
  EXPECT_NE(why.find("subscription.idempotency_window"), std::string::npos) << why;
  EXPECT_NE(why.find("no unit"), std::string::npos) << why;
  EXPECT_NE(why.find("7d"), std::string::npos) << why;
}

TEST(Duration, MalformedAndOutOfRangeAreRefused) {
  for (const char* bad : {"", "s", "-1s", "1w", "5 s", " 5s", "5s ", "1..5s", ".5s", "5.s", "1y",
                          "99999999999999999d", "5sec", "ms"})
    EXPECT_FALSE(parse_duration(bad)) << bad;
  const auto why = duration_error("retry.initial", "5 s");
  EXPECT_NE(why.find("retry.initial"), std::string::npos) << why;
  EXPECT_NE(why.find("not a duration"), std::string::npos) << why;
}

}  // namespace
}  // namespace ferry
