// triplet-build with lateral blocks (output.lateral_block): sections larger
// than a block are tiled block by block, tiles never cross a block edge and
// keep slice coordinates; a block as large as the section changes no tile;
// --part and mpirun stay byte-identical to one process.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "build_fixture.hpp"
#include "emt/common/atomic_file.hpp"
#include "emt/emio/volume_writer.hpp"
#include "emt/phantom/phantom.hpp"
#include "emt/triplets/shard.hpp"

namespace emt::test {
namespace fs = std::filesystem;

namespace {

constexpr int kTile = 64;
// 300 x 420 sections with lateral_block 160: 2 x 3 blocks, edges at these.
const std::vector<int> kRowEdges{0, 150, 300}, kColEdges{0, 140, 280, 420};

/// The block (row-major index) holding a tile, or -1 when it crosses an edge.
int block_of(std::int64_t y, std::int64_t x) {
  for (std::size_t r = 0; r + 1 < kRowEdges.size(); ++r) {
    for (std::size_t c = 0; c + 1 < kColEdges.size(); ++c) {
      if (y >= kRowEdges[r] && y + kTile <= kRowEdges[r + 1] && x >= kColEdges[c] && x + kTile <= kColEdges[c + 1]) {
        return static_cast<int>(r * (kColEdges.size() - 1) + c);
      }
    }
  }
  return -1;
}

struct Tile {
  std::int64_t z, y, x;
};

/// Every accepted triplet (metadata and pixels) in output order.
std::vector<triplets::TripletSample> samples_of(const fs::path& out) {
  std::vector<triplets::TripletSample> all;
  for (const auto& [name, digest] : digest_dir(out)) {
    if (name.rfind("shard-", 0) != 0) continue;
    const triplets::ShardReader r((out / name).string());
    for (std::int64_t i = 0; i < r.size(); ++i) all.push_back(r.read(i));
  }
  return all;
}

/// rejected.csv's tiles in order.
std::vector<Tile> rejected_of(const fs::path& out) {
  std::ifstream in(out / "rejected.csv");
  std::vector<Tile> tiles;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string source, z, y, x;
    std::getline(row, source, ',');
    std::getline(row, z, ',');
    std::getline(row, y, ',');
    std::getline(row, x, ',');
    tiles.push_back({std::stoll(z), std::stoll(y), std::stoll(x)});
  }
  return tiles;
}

}  // namespace

class BuildBlocks : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("emt-build-blocks");
    phantom::write_phantom(phantom::Phantom(phantom_options()), *dir_ / "v.h5", phantom::OutputFormat::kHdf5, 8, "");
    spec_ = spec("blocked.ini", 160);
    const auto r = build(spec_, *dir_ / "single", "--threads 2");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    single_ = new std::map<std::string, std::string>(digest_dir(*dir_ / "single"));
  }
  static void TearDownTestSuite() {
    delete single_;
    delete dir_;
  }
  /// 9 x 300 x 420 with a fold, padding and blur: several 160 px blocks a section.
  static phantom::PhantomOptions phantom_options() {
    phantom::PhantomOptions o;
    o.depth = 9;
    o.height = 300;
    o.width = 420;
    o.cell_size = 40;
    o.seed = 21;
    o.defects = {{2, phantom::DefectKind::kFold}, {5, phantom::DefectKind::kPadding}, {7, phantom::DefectKind::kBlur}};
    return o;
  }
  static std::string spec(const std::string& name, int lateral_block) {
    return write_spec(*dir_, name,
                      "[output]\ntile_size = " + std::to_string(kTile) + "\nstride = 48\nshard_size = 4\nlateral_block = " +
                          std::to_string(lateral_block) + "\n[source.v]\npath = " + (*dir_ / "v.h5") + "\n");
  }
  static RunResult build(const std::string& spec, const std::string& out, const std::string& extra) {
    return run_tool("triplet-build", "--config " + spec + " --out " + out + " --quiet " + extra);
  }
  static ScratchDir* dir_;
  static std::string spec_;
  static std::map<std::string, std::string>* single_;
};
ScratchDir* BuildBlocks::dir_ = nullptr;
std::string BuildBlocks::spec_;
std::map<std::string, std::string>* BuildBlocks::single_ = nullptr;

TEST_F(BuildBlocks, TilesStayInsideTheirBlocksInBlockOrder) {
  const fs::path out = *dir_ / "single";
  const auto samples = samples_of(out);
  const auto rejected = rejected_of(out);
  ASSERT_GT(samples.size(), 50u);
  ASSERT_GT(rejected.size(), 10u);  // the fold, padding and blur are found per block too
  std::vector<int> per_block(6, 0);
  auto check = [&](std::int64_t z, std::int64_t y, std::int64_t x) {
    const int b = block_of(y, x);
    EXPECT_GE(b, 0) << "z " << z << ": the tile at y " << y << ", x " << x << " crosses a block edge";
    if (b >= 0) ++per_block[static_cast<std::size_t>(b)];
    return b;
  };
  // Accepted triplets come in (block, z) order (the 7 middles are one slab).
  std::pair<int, std::int64_t> last{-1, -1};
  for (const auto& s : samples) {
    const std::pair<int, std::int64_t> at{check(s.z, s.y, s.x), s.z};
    EXPECT_LE(last, at);
    last = at;
  }
  for (const Tile& t : rejected) check(t.z, t.y, t.x);
  for (int n : per_block) EXPECT_GE(n, 7 * 2 * 2);  // every block of every triplet gave its 2 x 2 tiles
  const auto manifest = nlohmann::json::parse(read_file(out / "manifest.json"));
  EXPECT_NE(manifest.at("spec").get<std::string>().find("lateral_blocks = 2x3"), std::string::npos);
}

TEST_F(BuildBlocks, ABlockAsLargeAsTheSectionChangesNoTile) {
  // The spec text (kept in every shard) differs, so compare what was built.
  const std::string whole = *dir_ / "whole", fits = *dir_ / "fits";
  ASSERT_EQ(build(spec("whole.ini", 0), whole, "").exit_code, 0);
  ASSERT_EQ(build(spec("fits.ini", 420), fits, "--threads 1").exit_code, 0);
  const auto a = samples_of(whole), b = samples_of(fits);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(std::tie(a[i].z, a[i].y, a[i].x), std::tie(b[i].z, b[i].y, b[i].x)) << i;
    EXPECT_EQ(a[i].shift, b[i].shift);
    EXPECT_EQ(a[i].ncc, b[i].ncc);
    for (int k = 0; k < 3; ++k) EXPECT_EQ(cv::norm(a[i].slices[k], b[i].slices[k], cv::NORM_INF), 0) << i;
  }
  EXPECT_EQ(read_file(fs::path(whole) / "rejected.csv"), read_file(fs::path(fits) / "rejected.csv"));
  // ... and blocks do change them: tiles now stop at block edges.
  EXPECT_NE(read_file(fs::path(whole) / "rejected.csv"), read_file(*dir_ / "single/rejected.csv"));
}

TEST_F(BuildBlocks, MergedPartsEqualTheSingleProcessBuild) {
  for (int n : {2, 3}) {
    const std::string out = *dir_ / ("p" + std::to_string(n));
    for (int i = 0; i < n; ++i) {
      const auto r = build(spec_, out, "--threads 1 --part " + std::to_string(i) + "/" + std::to_string(n));
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    const auto m = run_tool("triplet-build", "--merge " + out + " --quiet");
    ASSERT_EQ(m.exit_code, 0) << m.err;
    EXPECT_EQ(digest_dir(out), *single_) << n << " parts";
  }
}

TEST_F(BuildBlocks, ASliceWithAnUnreadableBlockIsBadInEveryBlock) {
  // The same phantom as OME-Zarr chunked like the blocks; one chunk of slice 4 is truncated.
  phantom::PhantomOptions o = phantom_options();
  o.defects = {{2, phantom::DefectKind::kFold}};
  emio::ChunkedWriteOptions chunked;
  chunked.chunks = {1, 150, 140};
  const fs::path zarr = *dir_ / "v.zarr";
  phantom::write_phantom(phantom::Phantom(o), zarr.string(), phantom::OutputFormat::kZarr, 8, "", {}, false, chunked);
  fs::resize_file(zarr / "0" / "4.1.1", 10);
  const std::string s = write_spec(*dir_, "bad.ini",
                                   "[output]\ntile_size = 64\nstride = 48\nlateral_block = 160\n[source.v]\npath = " + zarr.string() + "\n");
  const std::string out = *dir_ / "bad";
  EXPECT_EQ(build(s, out, "").exit_code, 1);  // without --skip-bad-slices: an error
  const auto r = build(s, out, "--skip-bad-slices");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;  // one warning for the slice, not one per block
  EXPECT_NE(r.err.find("unreadable slice skipped"), std::string::npos) << r.err;
  std::vector<int> bad_per_block(6, 0);
  std::ifstream in(fs::path(out) / "rejected.csv");
  std::string line;
  std::getline(in, line);
  for (const Tile& t : rejected_of(out)) {
    std::getline(in, line);
    const bool bad = line.find(",bad_slice,") != std::string::npos;
    EXPECT_EQ(bad, t.z >= 3 && t.z <= 5) << line;  // the triplets around 3, 4 and 5 use slice 4
    if (bad) ++bad_per_block[static_cast<std::size_t>(block_of(t.y, t.x))];
  }
  for (int n : bad_per_block) EXPECT_GE(n, 3 * 2 * 2);
  for (const auto& smp : samples_of(out)) EXPECT_TRUE(smp.z < 3 || smp.z > 5) << smp.z;
}

#ifdef EMT_TEST_MPIEXEC
TEST_F(BuildBlocks, MpiRanksEqualTheSingleProcessBuild) {
  const std::string out = *dir_ / "mpi2";
  const auto r = mpirun(2, "--config " + spec_ + " --out " + out + " --quiet --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(digest_dir(out), *single_);
}
#endif

}  // namespace emt::test
