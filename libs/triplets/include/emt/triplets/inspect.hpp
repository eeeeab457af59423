#pragma once
// triplet-inspect and triplet-export: a look at a shard directory, and its
// export to layouts other frameworks read.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

namespace emt::triplets {

/// Counts per source and partition, rejected counts per reason, and the
/// distributions of shift, NCC and sharpness (histogram bins + quantiles).
[[nodiscard]] nlohmann::json summarize(const std::string& dir);
/// The summary as text with bar histograms, for a terminal.
[[nodiscard]] std::string format_summary(const nlohmann::json& summary);

/// Recomputes every shard's SHA-256 and checks the schema and counts against
/// the manifest. Returns one line per problem (empty: all good).
[[nodiscard]] std::vector<std::string> verify_directory(const std::string& dir);

struct MontageOptions {
  int max_rows = 8;        ///< samples shown (evenly spaced)
  int cell = 192;          ///< displayed tile size, px
  bool rejected = false;   ///< rejected tiles re-read from the sources instead of accepted ones
};
/// A grid: one row per sample, slice 0 | 1 | 2, with a caption (source, z,
/// y, x; for rejected tiles the reason and value).
[[nodiscard]] cv::Mat montage(const std::string& dir, const MontageOptions& options);

enum class ExportFormat { kVimeo, kPngFlat };
struct ExportOptions {
  ExportFormat format = ExportFormat::kVimeo;
  bool rgb = false;    ///< repeat the grey channel three times
  bool force = false;  ///< OUT may be an existing non-empty directory (only the export's own names are replaced)
};
/// Exports every triplet; returns the number exported. Uses DIR/splits when
/// present (else everything is "train"; a split line naming no triplet is an
/// error). OUT must not be or hold DIR's files; it is written into OUT.tmp
/// and moved into place at the end (emt::StagedDirectory), under OUT's lock.
std::int64_t export_triplets(const std::string& dir, const std::string& out, const ExportOptions& options);

}  // namespace emt::triplets
