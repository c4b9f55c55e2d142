#include "ferry/core/types.h"

#include <gtest/gtest.h>

#include <type_traits>

#include "ferry/core/clock.h"
#include "ferry/core/errc.h"
#include "ferry/core/result.h"

namespace ferry {
namespace {

static_assert(!std::is_convertible_v<std::int64_t, offset>, "offsets are never implicit");
static_assert(!std::is_convertible_v<partition_id, offset>, "ids do not mix");
static_assert(!std::is_convertible_v<offset, std::int64_t>);

TEST(Offset, Arithmetic) {
  offset o(10);
  EXPECT_EQ(o + 5, offset(15));
  EXPECT_EQ(offset(15) - o, 5);
  ++o;
  EXPECT_EQ(o.value(), 11);
  EXPECT_LT(offset(1), offset(2));
  EXPECT_EQ(fmt::format("{}", offset(42)), "42");
}

TEST(ManualClock, MovesOnlyWhenTold) {
  manual_clock c(timestamp_ms(1000));
  auto s0 = c.steady_now();
  EXPECT_EQ(c.wall_now(), timestamp_ms(1000));
  c.advance(std::chrono::milliseconds(250));
  EXPECT_EQ(c.wall_now(), timestamp_ms(1250));
  EXPECT_EQ(c.steady_now() - s0, std::chrono::milliseconds(250));
}

TEST(Result, CarriesErrorCodes) {
  auto f = [](bool ok) -> result<int> {
    if (!ok) return errc::not_found;
    return 7;
  };
  EXPECT_EQ(f(true).value(), 7);
  auto r = f(false);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::not_found);
  EXPECT_EQ(r.error().message(), "not found");
  EXPECT_STREQ(r.error().category().name(), "ferry.core");
}

}  // namespace
}  // namespace ferry
