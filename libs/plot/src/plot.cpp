#include "emt/plot/plot.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <mgl2/mgl.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "emt/common/atomic_file.hpp"
#include "emt/common/error.hpp"

namespace emt::plot {
namespace {

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  [[nodiscard]] bool empty() const { return !(lo <= hi); }
  // A margin of 5% (linear) or a twentieth of the decades (log); a flat range is widened.
  [[nodiscard]] Range padded(bool log) const {
    Range r = *this;
    if (log) {
      const double a = std::log10(lo), b = std::log10(hi), m = std::max(0.05 * (b - a), 0.05);
      r.lo = std::pow(10.0, a - m);
      r.hi = std::pow(10.0, b + m);
    } else {
      const double m = hi > lo ? 0.05 * (hi - lo) : std::max(1e-9, 0.05 * std::abs(hi)) + 1e-9;
      r.lo = lo - m;
      r.hi = hi + m;
    }
    return r;
  }
};

void draw(mglGraph& gr, const Panel& p) {
  const bool log = p.y_scale == Scale::kLog;
  auto usable = [&](double v) { return std::isfinite(v) && (!log || v > 0); };
  Range x, y;
  for (const auto& l : p.lines) {
    for (std::size_t i = 0; i < std::min(l.x.size(), l.y.size()); ++i) {
      if (!usable(l.y[i]) || !std::isfinite(l.x[i])) continue;
      x.add(l.x[i]);
      y.add(l.y[i]);
    }
  }
  for (const auto& level : p.levels) {
    if (usable(level.y)) y.add(level.y);
  }
  gr.Title(p.title.c_str());
  if (x.empty() || y.empty()) {
    gr.Puts(mglPoint(0, 0), "no data yet");
    return;
  }
  if (x.hi <= x.lo) x.hi = x.lo + 1;
  const Range yr = y.padded(log);
  gr.SetRanges(x.lo, x.hi, yr.lo, yr.hi);
  gr.SetFunc("", log ? "lg(y)" : "");
  gr.Axis();
  gr.Grid("xy", "h");
  gr.Box("k");
  gr.Label('x', p.x_label.c_str(), 0);
  gr.Label('y', p.y_label.c_str(), 0);
  bool legend = false;
  for (const auto& l : p.lines) {
    std::vector<double> xs, ys;
    for (std::size_t i = 0; i < std::min(l.x.size(), l.y.size()); ++i) {
      if (usable(l.y[i]) && std::isfinite(l.x[i])) {
        xs.push_back(l.x[i]);
        ys.push_back(l.y[i]);
      }
    }
    if (xs.empty()) continue;
    mglData dx(static_cast<long>(xs.size()), xs.data()), dy(static_cast<long>(ys.size()), ys.data());
    gr.Plot(dx, dy, l.pen.c_str());
    if (!l.label.empty()) {
      gr.AddLegend(l.label.c_str(), l.pen.c_str());
      legend = true;
    }
  }
  for (const auto& level : p.levels) {
    if (!usable(level.y)) continue;
    // Reference levels at width 2: a thin dashed line all but vanishes under antialiasing.
    const std::string pen = level.pen.find_first_of("123456789") == std::string::npos ? level.pen + "2" : level.pen;
    gr.Line(mglPoint(x.lo, level.y), mglPoint(x.hi, level.y), pen.c_str());
    if (!level.label.empty()) {
      gr.AddLegend(level.label.c_str(), pen.c_str());
      legend = true;
    }
  }
  if (legend) gr.Legend(3, "#", "size=-1.2");  // top right, boxed, smaller font
}


}  // namespace

void write_png(const std::string& path, const std::vector<Panel>& panels, int width, int panel_height) {
  if (panels.empty()) throw Error(ErrorKind::kInvalidArgument, "a figure needs at least one panel", path);
  if (width < 64 || panel_height < 64) throw Error(ErrorKind::kInvalidArgument, "figure size must be at least 64 px", path);
  const int n = static_cast<int>(panels.size());
  mglGraph gr(0, width, panel_height * n);
  gr.SetFontSize(3);  // MathGL units (the default 4 crowds stacked panels; PT sizes made the labels vanish)
  for (int i = 0; i < n; ++i) {
    gr.SubPlot(1, n, i, "<_");
    draw(gr, panels[static_cast<std::size_t>(i)]);
    gr.ClearLegend();
  }
  // Not gr.WritePNG: MathGL leaves libpng's error handling at its default,
  // which abort()s on a write error (a full disk killed ssan-train with
  // SIGABRT). OpenCV encodes the pixels in memory (its libpng handler
  // returns an error instead) and the checked, atomic path writes them.
  const unsigned char* rgb = gr.GetRGB();
  if (rgb == nullptr) throw Error(ErrorKind::kIo, "cannot render the figure", path);
  cv::Mat bgr;
  cv::cvtColor(cv::Mat(gr.GetHeight(), gr.GetWidth(), CV_8UC3, const_cast<unsigned char*>(rgb)), bgr, cv::COLOR_RGB2BGR);
  std::vector<unsigned char> png;
  if (!cv::imencode(".png", bgr, png)) throw Error(ErrorKind::kIo, "cannot encode the figure as PNG", path);
  write_file_atomic(path, std::string(png.begin(), png.end()));
}

std::vector<double> smooth(const std::vector<double>& y, double alpha) {
  if (!(alpha > 0 && alpha <= 1)) throw Error(ErrorKind::kInvalidArgument, "smoothing weight must be in (0, 1]");
  std::vector<double> out;
  out.reserve(y.size());
  double m = 0, weight = 0;
  for (const double v : y) {
    m = (1 - alpha) * m + alpha * v;
    weight = (1 - alpha) * weight + alpha;
    out.push_back(m / weight);
  }
  return out;
}

}  // namespace emt::plot
