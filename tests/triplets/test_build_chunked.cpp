// triplet-build on chunked sources: the same volume as HDF5, Zarr, OME-Zarr
// and N5 gives the same triplets; a damaged chunk stops the build with one
// line naming the chunk file and no partial output.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "build_fixture.hpp"
#include "emt/emio/slice_source.hpp"
#include "emt/emio/volume_writer.hpp"
#include "emt/phantom/phantom.hpp"
#include "emt/triplets/shard.hpp"
#include "test_support.hpp"

namespace emt::test {
namespace fs = std::filesystem;

namespace {

constexpr emio::VolumeShape kShape{10, 150, 170};

/// The phantom's slices written by `w`.
void write_phantom_to(emio::VolumeWriter& w, int bits) {
  phantom::PhantomOptions o;
  o.depth = kShape.depth;
  o.height = kShape.height;
  o.width = kShape.width;
  o.seed = 5;
  o.cell_size = 40;
  o.defects = {{4, phantom::DefectKind::kFold}};
  const phantom::Phantom p(o);
  for (std::int64_t z = 0; z < kShape.depth; ++z) w.write_slice(z, p.render(z, bits));
  w.commit();
}

emio::ChunkedWriteOptions chunks(std::array<std::int64_t, 3> c, emio::Compression comp) {
  emio::ChunkedWriteOptions o;
  o.chunks = c;
  o.compression = comp;
  o.resolution_nm = std::array<double, 3>{40, 4, 4};
  return o;
}

/// Every triplet's pixels and (source-independent) metadata, in order.
std::vector<std::string> triplets_of(const fs::path& out) {
  std::vector<std::string> all;
  for (const auto& [name, digest] : digest_dir(out)) {
    if (name.rfind("shard-", 0) != 0) continue;
    triplets::ShardReader r((out / name).string());
    for (std::int64_t i = 0; i < r.size(); ++i) {
      const auto s = r.read(i);
      std::string bytes = std::to_string(s.z) + "," + std::to_string(s.y) + "," + std::to_string(s.x) + ":";
      for (const auto& m : s.slices) bytes.append(reinterpret_cast<const char*>(m.data), m.total());
      all.push_back(bytes);
    }
  }
  return all;
}

/// rejected.csv rows without the source id (it is the file name).
std::vector<std::string> rejected_rows(const fs::path& out) {
  std::ifstream in(out / "rejected.csv");
  std::vector<std::string> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(line.substr(line.find(',')));
  return rows;
}

RunResult build(const std::string& source, const fs::path& out, const std::string& extra = "") {
  return run_tool("triplet-build", "--source '" + source + "' --tile-size 64 --out " + out.string() + " --quiet " + extra);
}

}  // namespace

TEST(BuildChunked, EveryFormatGivesTheSameTriplets) {
  ScratchDir d;
  {
    auto w = emio::create_hdf5_volume(d / "v.h5", "volumes/raw", kShape, 16, std::array<double, 3>{40, 4, 4});
    write_phantom_to(*w, 16);
  }
  {
    auto w = emio::create_zarr_volume(d / "v.zarr", kShape, 16, chunks({4, 64, 64}, emio::Compression::kBlosc), false);
    write_phantom_to(*w, 16);
  }
  {
    auto w = emio::create_zarr_volume(d / "v.ome.zarr", kShape, 16, chunks({3, 50, 100}, emio::Compression::kZstd), true);
    write_phantom_to(*w, 16);
  }
  fs::create_directories(d.path() / "c.n5");
  {
    auto w = emio::create_n5_volume(d / "c.n5/raw", kShape, 16, chunks({5, 70, 40}, emio::Compression::kGzip));
    write_phantom_to(*w, 16);
  }
  std::ofstream(d.path() / "c.n5" / "attributes.json") << R"({"n5": "2.0.0"})";

  ASSERT_EQ(build(d / "v.h5", d.path() / "h5").exit_code, 0);
  const auto reference = triplets_of(d.path() / "h5");
  ASSERT_GE(reference.size(), 4u);
  const auto rejected = rejected_rows(d.path() / "h5");
  ASSERT_GE(rejected.size(), 4u);
  // A cache smaller than one chunk layer still gives the same result (only slower).
  int n = 0;
  for (const auto& [source, extra] : std::vector<std::pair<std::string, std::string>>{
           {d / "v.zarr", ""}, {d / "v.ome.zarr", "--cache-mb 1"}, {d / "c.n5" + ":raw", ""}}) {
    const fs::path out = d.path() / ("o" + std::to_string(n++));
    const auto r = build(source, out, extra + " --json");
    ASSERT_EQ(r.exit_code, 0) << source << ": " << r.err;
    EXPECT_EQ(triplets_of(out), reference) << source;
    EXPECT_EQ(rejected_rows(out), rejected) << source;
    const auto manifest = nlohmann::json::parse(std::ifstream(out / "manifest.json"));
    EXPECT_EQ(manifest["sources"][0]["resolution_nm"], nlohmann::json({40.0, 4.0, 4.0})) << source;
  }
}

TEST(BuildChunked, DamagedChunkFailsCleanly) {
  ScratchDir d;
  {
    auto w = emio::create_zarr_volume(d / "v.zarr", kShape, 8, chunks({4, 64, 64}, emio::Compression::kZstd), false);
    write_phantom_to(*w, 8);
  }
  fs::resize_file(d.path() / "v.zarr" / "1.1.2", 20);
  const auto r = build(d / "v.zarr", d.path() / "o");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("triplet-build: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("v.zarr/1.1.2"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_FALSE(has_shards(d.path() / "o"));
}

}  // namespace emt::test
