// triplet-build on the real ssTEM stack in ../shared/data/isbi2012.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "build_fixture.hpp"
#include "emt/emio/slice_source.hpp"
#include "emt/triplets/align.hpp"
#include "emt/triplets/filters.hpp"

namespace emt::test {
namespace fs = std::filesystem;

std::string spec_path() { return std::string(EMT_SOURCE_DIR) + "/data_specs/isbi2012.ini"; }

TEST(RealData, AlignmentDoesNotLowerNeighbourNcc) {
  EMT_REQUIRE_SHARED_DATA(isbi, "isbi2012");
  const auto src = emio::open_source(isbi);
  triplets::AlignOptions opt;
  opt.search_radius = 8;
  opt.coarse_factor = 1;
  opt.search_radius = 32;
  const int m = 40;  // margin larger than any shift
  double sum_before = 0, sum_after = 0;
  for (std::int64_t z = 0; z + 1 < src->shape().depth; ++z) {
    const cv::Mat a = src->read_slice(z), b = src->read_slice(z + 1);
    const auto s = triplets::estimate_shift(a, b, opt);
    const int dy = static_cast<int>(std::lround(s.dy)), dx = static_cast<int>(std::lround(s.dx));
    // Compared on the structure scale the aligner uses (pixel noise smoothed away).
    cv::Mat as, bs;
    cv::GaussianBlur(a, as, cv::Size(0, 0), 1.0);
    cv::GaussianBlur(b, bs, cv::Size(0, 0), 1.0);
    const cv::Rect inner(m, m, a.cols - 2 * m, a.rows - 2 * m);
    const double before = triplets::ncc(as(inner), bs(inner));
    const double after = triplets::ncc(as(inner), bs(inner - cv::Point(dx, dy)));
    EXPECT_GE(after, before - 0.01) << "z " << z << " shift " << dy << "," << dx;
    sum_before += before;
    sum_after += after;
  }
  // The stack is not perfectly registered: alignment must raise the mean clearly.
  EXPECT_GT(sum_after, sum_before + 0.02 * (src->shape().depth - 1)) << "mean NCC before " << sum_before / 29 << " after " << sum_after / 29;
}

int build_triplets(const std::string& source_args, const fs::path& out) {
  const auto r = run_tool("triplet-build", "--config " + spec_path() + " " + source_args + " --out " + out.string() + " --quiet --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return -1;
  return nlohmann::json::parse(r.out).at("triplets").get<int>();
}

TEST(RealData, ConsecutiveStackYieldsTripletsShuffledFarFewer) {
  EMT_REQUIRE_SHARED_DATA(isbi, "isbi2012");
  ScratchDir dir;
  const int ordered = build_triplets("--source " + isbi, dir.path() / "ordered");
  // 28 triplets x 4 tiles of 256 px are candidates.
  EXPECT_GE(ordered, 56) << "most ordered ssTEM triplets should pass";
  // A shuffled copy: slice i of the copy is slice (i * 7) mod 30 of the stack,
  // so neighbours in the copy are 7 sections (350 nm) apart.
  fs::create_directories(dir.path() / "shuffled");
  const auto files = emio::list_image_files(isbi);
  ASSERT_EQ(files.size(), 30u);
  for (std::size_t i = 0; i < files.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%04zu.png", i);
    fs::create_symlink(fs::absolute(files[(i * 7) % files.size()]), dir.path() / "shuffled" / name);
  }
  const int shuffled = build_triplets("--source " + (dir / "shuffled"), dir.path() / "shuffled_out");
  EXPECT_LE(shuffled, ordered / 4) << "ordered " << ordered << ", shuffled " << shuffled;
}

}  // namespace emt::test
