#include "emt/common/text.hpp"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <charconv>
#include <limits>

#include "emt/common/error.hpp"

namespace emt {

bool natural_less(std::string_view a, std::string_view b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      std::size_t ei = i, ej = j;
      while (ei < a.size() && std::isdigit(static_cast<unsigned char>(a[ei]))) ++ei;
      while (ej < b.size() && std::isdigit(static_cast<unsigned char>(b[ej]))) ++ej;
      // Compare by value without overflow: strip leading zeros, then length, then digits.
      std::size_t si = i, sj = j;
      while (si + 1 < ei && a[si] == '0') ++si;
      while (sj + 1 < ej && b[sj] == '0') ++sj;
      if (ei - si != ej - sj) return ei - si < ej - sj;
      const int cmp = a.substr(si, ei - si).compare(b.substr(sj, ej - sj));
      if (cmp != 0) return cmp < 0;
      if (ei - i != ej - j) return ei - i < ej - j;  // "01" after "1": deterministic tie-break
      i = ei;
      j = ej;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i;
      ++j;
    }
  }
  return (a.size() - i) < (b.size() - j);
}

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t end = std::min(s.find(sep, start), s.size());
    std::string field = trim(s.substr(start, end - start));
    if (!field.empty()) out.push_back(std::move(field));
    start = end + 1;
  }
  return out;
}

std::int64_t parse_int(std::string_view s, std::string_view what) {
  const std::string t = trim(s);
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || ptr != t.data() + t.size()) {
    throw Error(ErrorKind::kInvalidArgument, std::string(what) + ": not an integer: '" + t + "'");
  }
  return v;
}

double parse_double(std::string_view s, std::string_view what) {
  const std::string t = trim(s);
  try {
    std::size_t used = 0;
    const double v = std::stod(t, &used);
    // nan and inf are never meaningful option values; refusing them here
    // keeps every range check below from having to.
    if (used == t.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw Error(ErrorKind::kInvalidArgument, std::string(what) + ": not a number: '" + t + "'");
}

std::pair<std::int64_t, std::int64_t> IndexRange::resolve(std::int64_t size) const {
  auto clamp = [size](std::int64_t v) {
    if (v < 0) v += size;  // Python-style negative indices
    return std::clamp<std::int64_t>(v, 0, size);
  };
  const std::int64_t first = start ? clamp(*start) : 0;
  const std::int64_t last = stop ? clamp(*stop) : size;
  return {first, std::max(first, last)};
}

IndexRange parse_range(std::string_view s) {
  IndexRange r;
  const std::string t = trim(s);
  if (t.empty()) return r;
  const auto colon = t.find(':');
  if (colon == std::string::npos) {
    r.start = parse_int(t, "range");
    if (*r.start == std::numeric_limits<std::int64_t>::max()) throw Error(ErrorKind::kInvalidArgument, "range: index too large: '" + t + "'");
    r.stop = *r.start + 1;
    return r;
  }
  const std::string a = trim(t.substr(0, colon)), b = trim(t.substr(colon + 1));
  if (!a.empty()) r.start = parse_int(a, "range start");
  if (!b.empty()) r.stop = parse_int(b, "range stop");
  return r;
}

std::vector<std::int64_t> parse_index_list(std::string_view s) {
  std::vector<std::int64_t> out;
  for (const std::string& item : split(s, ',')) {
    if (item.find(':') != std::string::npos) {
      const IndexRange r = parse_range(item);
      if (!r.start || !r.stop) throw Error(ErrorKind::kInvalidArgument, "index list: open range not allowed: '" + item + "'");
      // Bounded: a skip list "0:99999999999" must be an error, not minutes of work and gigabytes.
      const auto count = *r.stop > *r.start ? static_cast<std::uint64_t>(*r.stop) - static_cast<std::uint64_t>(*r.start) : 0;
      if (count > static_cast<std::uint64_t>(kMaxIndexListSize) - out.size()) {
        throw Error(ErrorKind::kInvalidArgument, "index list: more than " + std::to_string(kMaxIndexListSize) + " entries: '" + item + "'");
      }
      for (std::int64_t v = *r.start; v < *r.stop; ++v) out.push_back(v);
    } else {
      out.push_back(parse_int(item, "index list"));
    }
  }
  return out;
}

}  // namespace emt
