// triplet-build's lateral blocks (libs/triplets/src/builder/plan.hpp): the
// grid, and that the analysis and the tiler read only block regions (a
// recording SliceSource around the real one) while slice histograms stay
// those of whole slices.
#include <algorithm>
#include <atomic>
#include <mutex>

#include <gtest/gtest.h>

#include "builder/analysis.hpp"
#include "builder/plan.hpp"
#include "builder/tiler.hpp"
#include "emt/phantom/phantom.hpp"
#include "test_support.hpp"

namespace emt::triplets::builder {
namespace {

TEST(LateralBlocks, OneBlockWhenZeroOrTheSectionFits) {
  for (int b : {0, 420, 8192}) {
    const auto blocks = lateral_blocks(300, 420, b);
    ASSERT_EQ(blocks.size(), 1u) << b;
    EXPECT_EQ(blocks[0], cv::Rect(0, 0, 420, 300)) << b;
  }
}

TEST(LateralBlocks, EvenRowMajorGridThatCoversTheSectionOnce) {
  const auto grid = lateral_blocks(300, 420, 160);
  const std::vector<cv::Rect> expected{{0, 0, 140, 150}, {140, 0, 140, 150}, {280, 0, 140, 150},
                                       {0, 150, 140, 150}, {140, 150, 140, 150}, {280, 150, 140, 150}};
  EXPECT_EQ(grid, expected);
  for (const auto& [h, w, b] : std::vector<std::array<int, 3>>{{1000, 999, 128}, {257, 3000, 256}, {8193, 20000, 8192}, {5, 7, 2}}) {
    const auto blocks = lateral_blocks(h, w, b);
    const std::size_t rows = static_cast<std::size_t>((h + b - 1) / b), cols = static_cast<std::size_t>((w + b - 1) / b);
    ASSERT_EQ(blocks.size(), rows * cols) << h << "x" << w << " / " << b;
    std::int64_t area = 0;
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const cv::Rect& r = blocks[i];
      area += r.area();
      EXPECT_LE(r.height, b);
      EXPECT_LE(r.width, b);
      EXPECT_GE(2 * r.height, b - 1) << "blocks are at least about B / 2";
      EXPECT_GE(2 * r.width, b - 1);
      EXPECT_LE(std::abs(r.height - blocks[0].height), 1);
      EXPECT_LE(std::abs(r.width - blocks[i % cols].width), 1);
      // Row-major and edge to edge: each block starts where its left / upper neighbour ends.
      if (i % cols) EXPECT_EQ(r.x, blocks[i - 1].x + blocks[i - 1].width);
      else EXPECT_EQ(r.x, 0);
      if (i >= cols) EXPECT_EQ(r.y, blocks[i - cols].y + blocks[i - cols].height);
      else EXPECT_EQ(r.y, 0);
    }
    EXPECT_EQ(blocks.back().br(), cv::Point(w, h));
    EXPECT_EQ(area, static_cast<std::int64_t>(h) * w);
  }
}

TEST(LateralBlocks, MarginIsClippedToTheSection) {
  const emio::VolumeShape shape{5, 300, 420};
  EXPECT_EQ(block_with_margin({140, 0, 140, 150}, shape, 16), cv::Rect(124, 0, 172, 166));
  EXPECT_EQ(block_with_margin({0, 0, 420, 300}, shape, 16), cv::Rect(0, 0, 420, 300));
}

TEST(LateralBlocks, RepeatCropIsTheCentralRegionOrTheWholeSection) {
  EXPECT_EQ(repeat_crop(emio::VolumeShape{5, 300, 420}), cv::Rect(0, 0, 420, 300));
  EXPECT_EQ(repeat_crop(emio::VolumeShape{5, 8192, 5000}), cv::Rect((5000 - kRepeatCrop) / 2, (8192 - kRepeatCrop) / 2, kRepeatCrop, kRepeatCrop));
  EXPECT_EQ(repeat_crop(emio::VolumeShape{5, 1000, 9000}), cv::Rect((9000 - kRepeatCrop) / 2, 0, kRepeatCrop, 1000));
}

/// Passes every read on to a real source and remembers the largest region
/// asked for and how many whole slices were read.
class RecordingSource : public emio::SliceSource {
 public:
  explicit RecordingSource(std::unique_ptr<emio::SliceSource> inner) : SliceSource({}), inner_(std::move(inner)) {}
  emio::SourceKind kind() const noexcept override { return inner_->kind(); }
  emio::VolumeShape shape() const noexcept override { return inner_->shape(); }
  int bits() const noexcept override { return inner_->bits(); }
  std::string location(std::int64_t z) const override { return inner_->location(z); }
  std::string path() const override { return inner_->path(); }
  cv::Mat read_raw(std::int64_t z) const override {
    ++whole_slices;
    return inner_->read_raw(z);
  }
  cv::Mat read_raw_region(std::int64_t z, const cv::Rect& region) const override {
    {
      std::lock_guard lock(mutex_);
      largest.height = std::max(largest.height, region.height);
      largest.width = std::max(largest.width, region.width);
    }
    ++regions;
    return inner_->read_raw_region(z, region);
  }
  mutable std::atomic<int> whole_slices{0}, regions{0};
  mutable cv::Size largest;

 private:
  std::unique_ptr<emio::SliceSource> inner_;
  mutable std::mutex mutex_;
};

class BlockedBuild : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir("emt-blocks");
    phantom::PhantomOptions o;
    o.depth = 8;
    o.height = 300;
    o.width = 420;
    o.cell_size = 40;
    o.seed = 12;
    o.defects = {{3, phantom::DefectKind::kFold}, {5, phantom::DefectKind::kPadding}};
    phantom::write_phantom(phantom::Phantom(o), *dir_ / "v.h5", phantom::OutputFormat::kHdf5, 8, "");
  }
  static void TearDownTestSuite() { delete dir_; }

  /// The plan of a 64-px-tile build with this lateral_block, analysed through a RecordingSource.
  static std::pair<Plan, const RecordingSource*> analysed(int lateral_block, BuildSpec& spec) {
    spec = parse_spec("[output]\ntile_size = 64\nstride = 48\nlateral_block = " + std::to_string(lateral_block) +
                          "\n[source.v]\npath = " + (*dir_ / "v.h5") + "\n",
                      "test");
    Plan plan = plan_build(spec);
    auto recording = std::make_unique<RecordingSource>(std::move(plan.sources[0].volume));
    const RecordingSource* r = recording.get();
    plan.sources[0].volume = std::move(recording);
    AnalysisOptions ao;
    ao.quiet = true;
    analyse_slices(plan.sources, spec, ao);
    return {std::move(plan), r};
  }
  static test::ScratchDir* dir_;
};
test::ScratchDir* BlockedBuild::dir_ = nullptr;

TEST_F(BlockedBuild, ReadsOnlyBlockRegionsAndTilesInsideBlocks) {
  BuildSpec spec;
  auto [plan, rec] = analysed(160, spec);
  const Source& s = plan.sources[0];
  ASSERT_EQ(s.blocks.size(), 6u);
  // Order: within a slab (here all 6 middles) block by block, z ascending.
  ASSERT_EQ(plan.triplets.size(), 6u * 6u);
  for (std::size_t i = 0; i < plan.triplets.size(); ++i) {
    EXPECT_EQ(plan.triplets[i].block, i / 6);
    EXPECT_EQ(plan.triplets[i].z, static_cast<std::int64_t>(1 + i % 6));
  }
  for (const auto& [z, shifts] : s.forward) ASSERT_EQ(shifts.size(), 6u) << z;
  const int analysis_regions = rec->regions;
  EXPECT_EQ(analysis_regions, 8 * 6);  // each block of each slice once
  // The repeated-section statistic reads each pair's central crops
  // (repeat_crop: bounded by kRepeatCrop^2, not by the section; here the
  // whole 300 x 420 section, smaller than that).
  EXPECT_EQ(rec->whole_slices, 2 * 7);
  EXPECT_EQ(s.repeat_ncc.size(), 7u);
  rec->whole_slices = 0;
  rec->largest = cv::Size();
  SliceCache cache(plan.sources, 4, spec.align.search_radius);
  std::vector<int> tiles_per_block(6, 0);
  for (std::size_t i = 0; i < plan.triplets.size(); ++i) {
    const TripletResult r = tile_triplet(plan, spec, i, cache);
    const cv::Rect block = s.blocks[plan.triplets[i].block];
    for (const TileOutcome& t : r.tiles) {
      const cv::Rect tile(static_cast<int>(t.x), static_cast<int>(t.y), spec.tile_size, spec.tile_size);
      EXPECT_EQ(tile & block, tile) << "tile at y " << t.y << ", x " << t.x << " leaves block " << block;
      ++tiles_per_block[plan.triplets[i].block];
    }
  }
  for (int n : tiles_per_block) EXPECT_GE(n, 6 * 2 * 2);  // 150 x 140 px hold 2 x 2 tiles of 64 at stride 48
  EXPECT_EQ(rec->whole_slices, 0);
  // The tiler's region is a block plus the search radius on each side, never more.
  EXPECT_LE(rec->largest.height, 150 + 2 * spec.align.search_radius);
  EXPECT_LE(rec->largest.width, 140 + 2 * spec.align.search_radius);
  EXPECT_GT(rec->regions, analysis_regions);  // the tiler read through it too
}

TEST_F(BlockedBuild, SliceHistogramsAreThoseOfWholeSlicesAndBlockShiftsAgree) {
  BuildSpec blocked_spec, whole_spec;
  auto [blocked, rb] = analysed(160, blocked_spec);
  auto [whole, rw] = analysed(0, whole_spec);
  EXPECT_GT(rw->whole_slices, 0);  // without blocks it reads whole slices: the recorder sees them
  EXPECT_EQ(rw->regions, 0);
  const Source &b = blocked.sources[0], &w = whole.sources[0];
  EXPECT_EQ(b.histograms, w.histograms);
  EXPECT_EQ(b.luts, w.luts);
  EXPECT_EQ(b.reference.counts, w.reference.counts);
  // The phantom's drift is rigid: every block finds the whole slice's shift
  // (within a pixel) on pairs without a defect.
  for (const auto& [z, shifts] : b.forward) {
    if (z == 2 || z == 3 || z == 4 || z == 5) continue;  // the fold (3) and the padding (5)
    const Shift& ref = w.forward.at(z).at(0);
    for (const Shift& s : shifts) {
      EXPECT_NEAR(s.dy, ref.dy, 1.0) << z;
      EXPECT_NEAR(s.dx, ref.dx, 1.0) << z;
    }
  }
}

}  // namespace
}  // namespace emt::triplets::builder
