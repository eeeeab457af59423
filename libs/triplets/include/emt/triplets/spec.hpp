#pragma once
// Data specs: everything a triplet-build run needs, read from an INI file
// (data_specs/*.ini) through Boost.Program_options. See docs/triplet-build.md
// for every key; sources are sections [source.ID].
#include <cstdint>
#include <string>
#include <vector>

#include "emt/common/text.hpp"
#include "emt/emio/slice_source.hpp"
#include "emt/triplets/align.hpp"
#include "emt/triplets/filters.hpp"

namespace emt::triplets {

struct SourceSpec {
  std::string id;                      ///< source id written to /meta/source
  std::string path;                    ///< file, directory, glob; FILE:dataset for HDF5
  std::string dataset = "volumes/raw"; ///< HDF5 dataset (or Zarr/N5 group member) when the path names none
  int scale = 0;                       ///< OME-Zarr level / precomputed scale (0: full resolution)
  IndexRange z;                        ///< slices used, "start:stop"
  std::vector<std::int64_t> skip;      ///< slices never used (known bad)
  int step = 1;                        ///< triplets are (z - step, z, z + step)
};

struct BuildSpec {
  std::vector<SourceSpec> sources;
  int tile_size = 512;
  int stride = 512;
  int shard_size = 64;        ///< triplets per shard file
  /// Sections taller or wider than this (px) are cut into a grid of lateral
  /// blocks, each aligned and tiled like a sub-volume, so memory follows the
  /// block, not the section (docs/triplet-build.md#lateral-blocks). 0: never cut.
  int lateral_block = 8192;
  bool compress = false;      ///< gzip the triplets dataset (slower reads)
  AlignOptions align;
  FilterOptions filters;
  bool histogram_matching = true;
  int reference_slices = 16;  ///< evenly spaced slices per source for the reference histogram
  emio::Uint16Mapping uint16;
  /// Decoded-chunk cache per chunked source (Zarr, N5, precomputed), MiB.
  std::int64_t cache_mb = static_cast<std::int64_t>(emio::SourceOptions{}.chunk_cache_bytes >> 20);
  std::string text;           ///< the spec as given (stored in every shard)
};

/// Parses a spec file; throws kNotFound / kInvalidArgument naming the file and key.
[[nodiscard]] BuildSpec load_spec(const std::string& path);
/// Parses spec text (`origin` names it in errors).
[[nodiscard]] BuildSpec parse_spec(const std::string& text, const std::string& origin);
/// A source spec from a bare path (--source): id from the file or directory name.
[[nodiscard]] SourceSpec source_from_path(const std::string& path);
/// Checks values are in range; throws kInvalidArgument naming the key.
void validate(const BuildSpec& spec, const std::string& origin);

}  // namespace emt::triplets
