#pragma once
// ssan-interpolate: regenerates chosen or detected-defective slices of a
// volume from their neighbours with a trained SSAN.
//
// For a slice z with good neighbours a < z < b (a = z - 1, b = z + 1 for a
// single bad slice): slice b is aligned to slice a by template matching, the
// shift is split in half with sub-pixel accuracy (bilinear), so both
// neighbours land in z's frame (assumed half way); both are histogram-matched
// to the reference the model's training data was matched to (the checkpoint's
// preprocessing record: preprocess.hpp), SSAN predicts the middle in
// overlapping tiles blended with linear ramps (no seams), and the result is
// mapped back to the volume's intensities. Alignment, defect filters and the
// 16-bit mapping also come from the record unless given. Runs of consecutive bad slices are
// filled by recursive midpoints where the run allows it (1, 3, 7, ... slices);
// otherwise each is predicted from the nearest good neighbours, with a warning.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "emt/emio/slice_source.hpp"
#include "emt/ssan/preprocess.hpp"
#include "emt/triplets/filters.hpp"

namespace emt::ssan {

/// What predicts a slice from its aligned neighbours.
enum class FillMethod {
  kSsan,    ///< the trained model (needs a checkpoint)
  kLinear,  ///< the mean of the two neighbours
  kFlow,    ///< Farneback flow both ways, each neighbour warped half way, averaged
};
[[nodiscard]] FillMethod parse_fill_method(const std::string& name);
[[nodiscard]] std::string to_string(FillMethod m);

struct InterpolateOptions {
  FillMethod method = FillMethod::kSsan;
  std::string checkpoint;          ///< needed by FillMethod::kSsan
  std::string input;               ///< HDF5 FILE[:dataset], image directory, glob or multipage TIFF
  std::string output;              ///< .h5 file or directory (ignored with in_place)
  std::vector<std::int64_t> slices;
  bool detect_defects = false;     ///< add slices the defect filter flags
  bool in_place = false;
  bool force = false;              ///< an existing non-empty output directory is written into (its slice images replaced)
  int tile = 256, overlap = 32;    ///< tile >= 16, 0 <= overlap < tile / 2
  /// Alignment search radius between the two neighbours, px; 0: twice the
  /// training data's (a missing slice's neighbours are twice as far apart as
  /// a triplet's outer slice from its middle), 32 without a record.
  int search_radius = 0;
  double detect_fraction = 0.25;   ///< flagged when this share of a slice's tiles is anomalous
  /// Defect-detection thresholds (a data spec's [filters], --spec); unset: the
  /// checkpoint's record's, else the defaults.
  std::optional<triplets::FilterOptions> filters;
  std::optional<emio::Uint16Mapping> uint16;  ///< 16-bit to 8-bit mapping (--spec); unset: the record's, else the defaults
  ReferenceMode reference = ReferenceMode::kCheckpoint;  ///< what the neighbours are histogram-matched to
  bool quiet = false;
  std::string device = "auto";     ///< cpu, cuda, cuda:N, auto (distributed.hpp resolve_device)
};

/// Runs the job; returns the JSON report (also written to OUTPUT.report.json).
nlohmann::json interpolate_volume(const InterpolateOptions& options, const std::function<void(const std::string&)>& warn);

/// Plans the fill order of bad slices: (slice, lower neighbour, upper neighbour, exact midpoint?).
struct FillStep {
  std::int64_t z, lower, upper;
  bool midpoint;
};
[[nodiscard]] std::vector<FillStep> plan_fill(const std::vector<std::int64_t>& bad, std::int64_t depth);

}  // namespace emt::ssan
