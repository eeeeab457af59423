#include "emt/common/progress.hpp"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace emt {

Progress::Progress(std::string label, std::int64_t total, std::string unit, bool quiet,
                   double plain_interval_s)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      quiet_(quiet),
      tty_(::isatty(STDERR_FILENO) != 0),
      plain_interval_s_(plain_interval_s),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() {
  // A progress object destroyed by an exception prints nothing more: the error
  // line should be the last thing the user sees.
  if (tty_ && !quiet_ && !finished_ && done_ > 0) std::fputc('\n', stderr);
}

std::string Progress::format_duration(double s) {
  if (s < 0) s = 0;
  if (s < 60) return fmt::format("{:.1f}s", s);
  const auto total = static_cast<long long>(s + 0.5);
  if (total < 3600) return fmt::format("{}m{:02d}s", total / 60, static_cast<int>(total % 60));
  return fmt::format("{}h{:02d}m", total / 3600, static_cast<int>((total % 3600) / 60));
}

void Progress::tick(std::int64_t n) {
  std::lock_guard lock(mutex_);
  done_ += n;
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if ((tty_ && since >= 0.1) || (!tty_ && since >= plain_interval_s_)) print_locked(false);
}

void Progress::set_total(std::int64_t total) {
  std::lock_guard lock(mutex_);
  total_ = total;
}

void Progress::set_status(std::string status) {
  std::lock_guard lock(mutex_);
  status_ = std::move(status);
}

void Progress::finish() {
  std::lock_guard lock(mutex_);
  if (finished_) return;
  finished_ = true;
  if (!quiet_) print_locked(true);
}

void Progress::print_locked(bool final_line) {
  last_print_ = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(last_print_ - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  std::string line = fmt::format("{}: {}/{} {} ({:.1f}%), {:.2f} {}/s", label_, done_, total_, unit_,
                                 total_ > 0 ? 100.0 * static_cast<double>(done_) / static_cast<double>(total_) : 100.0,
                                 rate, unit_);
  if (final_line) {
    line += fmt::format(", took {}", format_duration(elapsed));
  } else if (rate > 0 && total_ > done_) {
    line += fmt::format(", ETA {}", format_duration(static_cast<double>(total_ - done_) / rate));
  }
  if (!status_.empty()) line += ", " + status_;
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace emt
