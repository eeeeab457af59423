// One evenly-spaced-pick rule, zlib's CRC-32, and the interrupt flag's own header.
#include <gtest/gtest.h>

#include "emt/common/interrupt.hpp"
#include "emt/common/sampling.hpp"
#include "emt/common/zip_check.hpp"

namespace emt {

TEST(EvenlySpaced, IncludesBothEndsAndPicksTheMiddleAlone) {
  EXPECT_EQ(evenly_spaced(0, 3, 11), 0);
  EXPECT_EQ(evenly_spaced(1, 3, 11), 5);
  EXPECT_EQ(evenly_spaced(2, 3, 11), 10);
  for (std::int64_t k = 0; k < 7; ++k) EXPECT_EQ(evenly_spaced(k, 7, 7), k);
  // One pick is the middle item, as triplet-build's reference slice and the
  // 16-bit mapping's sample slice always were.
  EXPECT_EQ(evenly_spaced(0, 1, 9), 4);
  EXPECT_EQ(evenly_spaced(0, 1, 10), 5);
  EXPECT_EQ(evenly_spaced(0, 1, 1), 0);
  static_assert(evenly_spaced(3, 4, 100) == 99, "usable at compile time");
}

TEST(Crc32, IsTheZipAndPngChecksumAndContinues) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);  // the standard check value
  EXPECT_EQ(crc32(""), 0u);
  EXPECT_EQ(crc32("6789", crc32("12345")), crc32("123456789"));
}

TEST(Interrupt, FlagIsClearWithoutASignal) {
  EXPECT_FALSE(interrupt_requested());
  EXPECT_EQ(interrupt_signal(), 0);
  EXPECT_NO_THROW(throw_if_interrupted("x"));
}

}  // namespace emt
