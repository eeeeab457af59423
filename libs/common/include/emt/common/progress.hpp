#pragma once
// Progress on stderr: done/total, rate, ETA.
//
// On a terminal the line is redrawn in place (at most 10 times a second); when
// stderr is not a terminal (CI, logs) a plain line is printed at most every
// `plain_interval_s` seconds and once at the end. Thread-safe: tick() may be
// called from worker threads.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace emt {

class Progress {
 public:
  /// `quiet` silences everything; `unit` names what is counted ("triplets").
  Progress(std::string label, std::int64_t total, std::string unit, bool quiet,
           double plain_interval_s = 5.0);
  ~Progress();
  void tick(std::int64_t n = 1);
  /// The total, when it is known only after the work started (0 = unknown so far).
  void set_total(std::int64_t total);
  /// Extra text shown after the counters (for example the current loss).
  void set_status(std::string status);
  /// Prints the final line (idempotent).
  void finish();

  /// Formats seconds as "1h02m", "3m05s" or "12.3s".
  [[nodiscard]] static std::string format_duration(double seconds);

 private:
  void print_locked(bool final_line);
  std::string label_, unit_, status_;
  std::int64_t total_, done_ = 0;
  bool quiet_, tty_, finished_ = false;
  double plain_interval_s_;
  std::chrono::steady_clock::time_point start_, last_print_;
  mutable std::mutex mutex_;
};

}  // namespace emt
