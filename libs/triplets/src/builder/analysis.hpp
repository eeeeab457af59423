#pragma once
// triplet-build, phase 1 (private to libs/triplets): per slice a histogram
// (the sum of its lateral blocks'), per lateral block the shift aligning
// slice z + step onto slice z; per source a reference histogram from clean
// slices and the lookup tables matching each slice to it.
#include <functional>
#include <string>
#include <vector>

#include "builder/plan.hpp"

namespace emt::triplets::builder {

struct AnalysisOptions {
  bool quiet = false;
  bool skip_bad_slices = false;  ///< unreadable slices become Source::bad instead of errors
  std::function<void(const std::string&)> warn;
  std::string where;  ///< names the output in the error an interruption raises
};

/// Fills each source's forward shifts, histograms, bad slices, reference and
/// lookup tables. Reads each block of each used slice once (and, when a
/// section has several blocks, the lower slice of a window's first pairs
/// once more), in z-order chunks processed in parallel; memory follows the
/// block, not the depth or the section. A slice with an unreadable block is
/// bad as a whole (--skip-bad-slices). Throws the first read error,
/// kAborted on a signal.
void analyse_slices(std::vector<Source>& sources, const BuildSpec& spec, const AnalysisOptions& options);

}  // namespace emt::triplets::builder
