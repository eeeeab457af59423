#pragma once
// Figures a user reads at a glance (training curves, time-to-quality): panels
// stacked vertically, labelled axes, legends, reference levels, rendered to
// PNG headless by MathGL (Debian libmgl-dev). Torch-free.
#include <string>
#include <vector>

namespace emt::plot {

/// A data line. `pen` is a MathGL pen: colour letter then style, e.g. "b"
/// (blue solid), "h" (grey), "r|" (red dashed), "g;" (green dash-dot); a
/// trailing "o" or "+" adds markers.
struct Line {
  std::string label;  ///< legend entry (empty: none)
  std::vector<double> x, y;
  std::string pen = "b";
};

/// A horizontal reference level across the panel (a baseline's score).
struct Level {
  std::string label;
  double y = 0;
  std::string pen = "r|";
};

enum class Scale { kLinear, kLog };

struct Panel {
  std::string title, x_label, y_label;
  std::vector<Line> lines;
  std::vector<Level> levels;
  Scale y_scale = Scale::kLinear;  ///< kLog ignores values <= 0
};

/// Renders the panels one under the other into a PNG, written atomically
/// (PATH.tmp then rename). Axis ranges cover every line and level with a
/// margin; a panel with no data says so. Throws emt::Error naming the file.
void write_png(const std::string& path, const std::vector<Panel>& panels, int width = 960, int panel_height = 300);

/// Exponential moving average with weight `alpha` on the newest value,
/// bias-corrected so the first values are not pulled towards zero.
[[nodiscard]] std::vector<double> smooth(const std::vector<double>& y, double alpha);

}  // namespace emt::plot
