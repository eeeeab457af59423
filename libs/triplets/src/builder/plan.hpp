#pragma once
// triplet-build, planning (private to libs/triplets): which triplets each
// source gives, which slices they use, and the share of a job-array part.
#include <array>
#include <cstdint>
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
  std::vector<std::int64_t> middles;            ///< middle slices of its triplets, ascending
  std::set<std::int64_t> used;                  ///< every slice some triplet (of this part) uses
  std::set<std::int64_t> all_used;              ///< every slice some triplet of the whole build uses
  std::map<std::int64_t, Shift> forward;        ///< shift aligning z + step onto z
  std::map<std::int64_t, Histogram> histograms; ///< per used slice (zero ignored)
  std::set<std::int64_t> bad;                   ///< unreadable slices (--skip-bad-slices)
  ReferenceHistogram reference;
  std::map<std::int64_t, std::array<std::uint8_t, 256>> luts;
  std::map<std::int64_t, double> repeated;      ///< pairs (z, z + step) the repeated-section filter fires on: robust z
};

struct TripletRef {
  std::size_t source;
  std::int64_t z;
};

struct Plan {
  std::vector<Source> sources;
  std::vector<TripletRef> triplets;  ///< in (source, z) order: the order of the output
};

/// Opens the spec's sources and lists their triplets. Throws kInvalidArgument
/// (no or duplicate sources, a skip entry outside the volume) or kInvalidData
/// (a volume smaller than a tile, no triplet possible) naming the source.
[[nodiscard]] Plan plan_build(const BuildSpec& spec);

/// Keeps the triplets of part `part` of `parts` (contiguous in (source, z)
/// order) and the slices they and the reference histograms need. Everything
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
