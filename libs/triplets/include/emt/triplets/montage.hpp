#pragma once
// Montage building blocks shared by triplet-inspect (tiles of a shard
// directory) and ssan-eval / ssan-train (predictions beside their inputs):
// rows of equally sized greyscale cells with a caption bar, stacked.
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace emt::triplets {

/// One row: the 8-bit greyscale `cells` resized to cell x cell and placed side
/// by side (2 px apart), under a caption bar; red caption when `alert`. BGR.
[[nodiscard]] cv::Mat captioned_row(const std::vector<cv::Mat>& cells, int cell, const std::string& caption, bool alert = false);

/// A bar with one label centred over each column of captioned_row()s with the
/// same cell size and number of cells. BGR.
[[nodiscard]] cv::Mat column_labels(const std::vector<std::string>& labels, int cell);

/// Rows stacked top to bottom (all must have the same width).
[[nodiscard]] cv::Mat stack_rows(const std::vector<cv::Mat>& rows);

}  // namespace emt::triplets
