#include <algorithm>

#include <gtest/gtest.h>

#include "emt/common/error.hpp"
#include "emt/common/text.hpp"

namespace emt {

TEST(NaturalSort, DigitRunsCompareByValue) {
  std::vector<std::string> v{"10.png", "2.png", "1.png", "slice_100.tif", "slice_20.tif", "a"};
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return natural_less(a, b); });
  EXPECT_EQ(v, (std::vector<std::string>{"1.png", "2.png", "10.png", "a", "slice_20.tif", "slice_100.tif"}));
  EXPECT_FALSE(natural_less("5", "5"));
  EXPECT_TRUE(natural_less("img9", "img10"));
  EXPECT_TRUE(natural_less("99999999999999999999999", "100000000000000000000000"));  // no overflow
}

TEST(Ranges, ParseAndResolve) {
  EXPECT_EQ(parse_range("3:10").resolve(100), (std::pair<std::int64_t, std::int64_t>{3, 10}));
  EXPECT_EQ(parse_range(":").resolve(7), (std::pair<std::int64_t, std::int64_t>{0, 7}));
  EXPECT_EQ(parse_range("5:").resolve(7), (std::pair<std::int64_t, std::int64_t>{5, 7}));
  EXPECT_EQ(parse_range(":-2").resolve(7), (std::pair<std::int64_t, std::int64_t>{0, 5}));
  EXPECT_EQ(parse_range("4:200").resolve(7), (std::pair<std::int64_t, std::int64_t>{4, 7}));
  EXPECT_EQ(parse_index_list("1, 4,6:9"), (std::vector<std::int64_t>{1, 4, 6, 7, 8}));
  EXPECT_THROW((void)parse_range("a:3"), Error);
  EXPECT_THROW((void)parse_index_list("3:"), Error);
}

TEST(Numbers, RejectTrailingGarbage) {
  EXPECT_EQ(parse_int(" 42 ", "x"), 42);
  EXPECT_THROW((void)parse_int("42px", "x"), Error);
  EXPECT_DOUBLE_EQ(parse_double("0.25", "x"), 0.25);
  EXPECT_THROW((void)parse_double("0.25.1", "x"), Error);
  EXPECT_EQ(split("a, b,,c ", ','), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(ErrorKinds, UsageErrorsExit2OthersExit1) {
  EXPECT_EQ(exit_code_for(ErrorKind::kInvalidArgument), 2);
  EXPECT_EQ(exit_code_for(ErrorKind::kDataLoss), 1);
  EXPECT_EQ(exit_code_for(ErrorKind::kNotFound), 1);
  const Error e(ErrorKind::kInvalidData, "wrong rank", "a.h5:volumes/raw");
  EXPECT_STREQ(e.what(), "wrong rank (a.h5:volumes/raw)");
}

}  // namespace emt
