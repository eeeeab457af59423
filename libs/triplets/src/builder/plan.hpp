#pragma once
// triplet-build, planning (private to libs/triplets): which triplets each
// source gives, which slices they use, and the share of a job-array part.
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "emt/emio/slice_source.hpp"
#include "emt/triplets/align.hpp"
#include "emt/triplets/histogram.hpp"
#include "emt/triplets/spec.hpp"

namespace emt::triplets::builder {

/// One opened source with everything the analysis (analysis.hpp) learns about it.
struct Source {
  SourceSpec spec;
  std::unique_ptr<emio::SliceSource> volume;
  std::vector<cv::Rect> blocks;                 ///< lateral blocks of its sections (lateral_blocks), row-major
  std::vector<std::int64_t> middles;            ///< middle slices of its triplets, ascending
  std::set<std::int64_t> used;                  ///< every slice some triplet (of this part) uses
  std::set<std::int64_t> all_used;              ///< every slice some triplet of the whole build uses
  std::map<std::int64_t, std::vector<Shift>> forward;  ///< per block, the shift aligning z + step onto z
  std::map<std::int64_t, Histogram> histograms; ///< per used slice (zero ignored)
  std::set<std::int64_t> bad;                   ///< unreadable slices (--skip-bad-slices)
  ReferenceHistogram reference;
  std::map<std::int64_t, std::array<std::uint8_t, 256>> luts;
  std::map<std::int64_t, double> repeat_ncc;    ///< pair (z, z + step): NCC of their aligned central crops (repeat_crop)
  std::map<std::int64_t, double> repeated;      ///< pairs (z, z + step) the repeated-section filter fires on: robust z
};

/// One unit of phase 2: the triplet around middle slice z, in one lateral block.
struct TripletRef {
  std::size_t source;
  std::size_t block;
  std::int64_t z;
};

/// Middles per slab: the triplet order walks a slab's middles block by block
/// (plan_build), so a block's regions (and the chunks under them) are read for
/// kSlabMiddles consecutive triplets while --part shares stay z ranges.
inline constexpr std::size_t kSlabMiddles = 64;

struct Plan {
  std::vector<Source> sources;
  /// The order of the output: (source, slab of kSlabMiddles middles, block, z);
  /// (source, z) when a source's sections are one block.
  std::vector<TripletRef> triplets;
};

/// The lateral grid of a height x width section for lateral_block B:
/// ceil(H / B) x ceil(W / B) blocks, row-major, whose edges split each axis
/// as evenly as integers allow (sizes differ by at most 1 px, each between
/// B / 2 and B). One block, the whole section, when B is 0 or the section
/// fits in B x B. Depends on the shape and B alone.
[[nodiscard]] std::vector<cv::Rect> lateral_blocks(std::int64_t height, std::int64_t width, int lateral_block);

/// `block` grown by `margin` px on every side, clipped to the section: what
/// phase 2 reads of a slice for that block (the outer slices of a triplet are
/// shifted by up to the search radius).
[[nodiscard]] cv::Rect block_with_margin(const cv::Rect& block, const emio::VolumeShape& shape, int margin);

/// Reads `region` of slice z (read_slice when it is the whole slice: no crop, no copy).
[[nodiscard]] cv::Mat read_block(const emio::SliceSource& volume, std::int64_t z, const cv::Rect& region);

/// Side of the central crop a pair's repeated-section NCC is measured on.
/// The same measure for every pair, whichever part computes it, and cheap to
/// read for slices outside a part (a region, not the section). Sections no
/// larger than this are measured whole, as their alignment is.
inline constexpr int kRepeatCrop = 2048;
/// The central kRepeatCrop x kRepeatCrop region of a section (all of it when smaller).
[[nodiscard]] cv::Rect repeat_crop(const emio::VolumeShape& shape);

/// Opens the spec's sources and lists their triplets. Throws kInvalidArgument
/// (no or duplicate sources, a skip entry outside the volume) or kInvalidData
/// (a volume smaller than a tile, no triplet possible) naming the source.
/// `warn`: where the sources' warnings go (a chunk cache too small, ...).
[[nodiscard]] Plan plan_build(const BuildSpec& spec, const std::function<void(const std::string&)>& warn = {});

/// Keeps the triplets of part `part` of `parts` (contiguous in plan order)
/// and the slices they and the reference histograms need (every block of
/// them: histograms are per slice; the repeated-section sample is read as
/// central crops, not as used slices). Everything
/// a part computes is what the whole build computes for those triplets, so
/// the parts merged (merge_parts) equal the single-process output byte for byte.
void restrict_to_part(Plan& plan, const BuildSpec& spec, int part, int parts, bool skip_bad_slices);

/// The slices sampled for a source's reference histogram: evenly spaced
/// (emt::evenly_spaced) over its readable slices.
[[nodiscard]] std::vector<std::int64_t> reference_candidates(const Source& source, int reference_slices);

/// First slices of the pairs (z, z + step) the repeated-section statistic is
/// taken from: evenly spaced over every pair of the whole build, so each
/// --part judges its pairs against the same sample.
[[nodiscard]] std::vector<std::int64_t> repeat_sample_pairs(const Source& source, int sample_pairs);

/// Canonical description of what determines the output; its hash guards --resume.
[[nodiscard]] std::string canonical_spec(const BuildSpec& spec);

/// The spec text with what the build resolved per source appended (kind,
/// shape, step, reference histogram): the `spec` of shards and manifest.
[[nodiscard]] std::string resolved_spec_text(const BuildSpec& spec, const std::vector<Source>& sources);

}  // namespace emt::triplets::builder
