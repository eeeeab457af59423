#pragma once
// Tiny phantom shards for the tool tests: DIR/v.h5 -> DIR/b (triplet-build,
// triplet-split), plus a 'few' split of three triplets to overfit.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "emt/phantom/phantom.hpp"
#include "test_support.hpp"

namespace emt::test {

inline void make_tiny_shards(const std::filesystem::path& dir) {
  phantom::PhantomOptions o;
  o.depth = 14;
  o.height = o.width = 160;
  o.cell_size = 40;
  o.max_drift = 2;
  o.defect_rate = 0;
  phantom::write_phantom(phantom::Phantom(o), dir / "v.h5", phantom::OutputFormat::kHdf5, 8, "");
  std::ofstream(dir / "s.ini") << "[output]\ntile_size = 64\nstride = 64\n[align]\nsearch_radius = 6\n[filters]\nmin_ncc = 0.3\n[source.ph]\npath = "
                               << (dir / "v.h5").string() << "\n";
  ASSERT_EQ(run_tool("triplet-build", "--config " + (dir / "s.ini").string() + " --out " + (dir / "b").string() + " --quiet").exit_code, 0);
  ASSERT_EQ(run_tool("triplet-split", (dir / "b").string() + " --group z-block:3 --quiet").exit_code, 0);
  std::filesystem::create_directories(dir / "b" / "splits");
  std::ofstream(dir / "b" / "splits" / "few.txt") << "shard-00000.h5 0\nshard-00000.h5 1\nshard-00000.h5 2\n";
}

}  // namespace emt::test
