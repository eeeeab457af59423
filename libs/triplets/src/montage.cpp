#include "emt/triplets/montage.hpp"

#include <opencv2/imgproc.hpp>

namespace emt::triplets {
namespace {
constexpr int kGap = 2;          // px between cells
constexpr int kCaptionBar = 22;  // px above each row
constexpr double kFontScale = 0.45;

int row_width(std::size_t cells, int cell) { return static_cast<int>(cells) * (cell + kGap) - kGap; }
}  // namespace

cv::Mat captioned_row(const std::vector<cv::Mat>& cells, int cell, const std::string& caption, bool alert) {
  cv::Mat row(cell + kCaptionBar, row_width(cells.size(), cell), CV_8UC3, cv::Scalar(255, 255, 255));
  for (std::size_t k = 0; k < cells.size(); ++k) {
    cv::Mat sized, colour;
    // INTER_AREA when shrinking keeps thin membranes visible; nearest when
    // enlarging shows the pixels as they are.
    const int interpolation = cells[k].cols > cell ? cv::INTER_AREA : cv::INTER_NEAREST;
    cv::resize(cells[k], sized, cv::Size(cell, cell), 0, 0, interpolation);
    cv::cvtColor(sized, colour, cv::COLOR_GRAY2BGR);
    colour.copyTo(row(cv::Rect(static_cast<int>(k) * (cell + kGap), kCaptionBar, cell, cell)));
  }
  cv::putText(row, caption, cv::Point(4, 16), cv::FONT_HERSHEY_SIMPLEX, kFontScale, alert ? cv::Scalar(0, 0, 200) : cv::Scalar(0, 0, 0), 1,
              cv::LINE_AA);
  return row;
}

cv::Mat column_labels(const std::vector<std::string>& labels, int cell) {
  cv::Mat bar(kCaptionBar, row_width(labels.size(), cell), CV_8UC3, cv::Scalar(235, 235, 235));
  for (std::size_t k = 0; k < labels.size(); ++k) {
    int baseline = 0;
    const cv::Size size = cv::getTextSize(labels[k], cv::FONT_HERSHEY_SIMPLEX, kFontScale, 1, &baseline);
    const int x = static_cast<int>(k) * (cell + kGap) + std::max(0, (cell - size.width) / 2);
    cv::putText(bar, labels[k], cv::Point(x, 16), cv::FONT_HERSHEY_SIMPLEX, kFontScale, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
  return bar;
}

cv::Mat stack_rows(const std::vector<cv::Mat>& rows) {
  cv::Mat out;
  cv::vconcat(rows, out);
  return out;
}

}  // namespace emt::triplets
