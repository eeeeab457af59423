#pragma once
// Small text helpers shared by the tools: natural sort, ranges, lists.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace emt {

/// "2.png" < "10.png": digit runs compare by value, the rest byte-wise.
[[nodiscard]] bool natural_less(std::string_view a, std::string_view b);
/// Splits on `sep`, trimming spaces; empty fields are dropped.
[[nodiscard]] std::vector<std::string> split(std::string_view s, char sep);
[[nodiscard]] std::string trim(std::string_view s);
/// Parses an integer; throws kInvalidArgument naming `what` on failure.
[[nodiscard]] std::int64_t parse_int(std::string_view s, std::string_view what);
/// Parses a finite number; nan and inf are refused (kInvalidArgument).
[[nodiscard]] double parse_double(std::string_view s, std::string_view what);

/// A half-open index range "start:stop"; either side may be empty (open).
struct IndexRange {
  std::optional<std::int64_t> start, stop;
  /// Clamps to [0, size) and returns [first, last).
  [[nodiscard]] std::pair<std::int64_t, std::int64_t> resolve(std::int64_t size) const;
};
[[nodiscard]] IndexRange parse_range(std::string_view s);
/// Longest list parse_index_list accepts (ranges expanded).
inline constexpr std::int64_t kMaxIndexListSize = 1 << 24;
/// Parses "3,7,10:12" into {3, 7, 10, 11}; kInvalidArgument beyond kMaxIndexListSize entries.
[[nodiscard]] std::vector<std::int64_t> parse_index_list(std::string_view s);

}  // namespace emt
