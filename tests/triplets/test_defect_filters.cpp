// The filters against the phantom's truth: tiles that overlap an injected
// defect are rejected for it, clean tiles are kept.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "build_fixture.hpp"
#include "emt/common/atomic_file.hpp"
#include "emt/phantom/phantom.hpp"
#include "emt/triplets/filters.hpp"
#include "emt/triplets/shard.hpp"

namespace emt::test {
namespace fs = std::filesystem;
using phantom::DefectKind;

struct Tile {
  std::int64_t z, y, x;
  std::string reason;  // "accepted" or the rejection reason
};

/// Every candidate tile of a build: accepted ones from the shards, rejected ones from rejected.csv.
std::vector<Tile> all_tiles(const fs::path& out) {
  std::vector<Tile> tiles;
  const auto manifest = nlohmann::json::parse(read_file(out / "manifest.json"));
  for (const auto& s : manifest.at("shards")) {
    const triplets::ShardReader r((out / s.at("file").get<std::string>()).string());
    for (const auto& m : r.read_meta()) tiles.push_back({m.z, m.y, m.x, "accepted"});
  }
  std::istringstream csv(read_file(out / "rejected.csv"));
  std::string line;
  std::getline(csv, line);
  while (std::getline(csv, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string item; std::getline(ss, item, ',');) f.push_back(item);
    tiles.push_back({std::stoll(f[1]), std::stoll(f[2]), std::stoll(f[3]), f[4]});
  }
  return tiles;
}

class DefectFilters : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("emt-defects");
    phantom::PhantomOptions o;
    o.depth = 20;
    o.height = o.width = 1024;
    o.cell_size = 80;
    o.seed = 4;
    o.defects = {{2, DefectKind::kFold},  {5, DefectKind::kPadding},       {8, DefectKind::kStain},
                 {11, DefectKind::kMissing}, {14, DefectKind::kContrastFlip}, {17, DefectKind::kSaturated}};
    phantom_ = new phantom::Phantom(o);
    phantom::write_phantom(*phantom_, *dir_ / "v.h5", phantom::OutputFormat::kHdf5, 8, "");
    const auto spec = write_spec(*dir_, "spec.ini",
                                 "[output]\ntile_size = 256\nstride = 256\n[filters]\nmin_ncc = 0.5\n[source.ph]\npath = " +
                                     (*dir_ / "v.h5") + "\n");
    const auto r = run_tool("triplet-build", "--config " + spec + " --out " + (*dir_ / "out") + " --quiet");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    tiles_ = new std::vector<Tile>(all_tiles(dir_->path() / "out"));
  }
  static void TearDownTestSuite() {
    delete tiles_;
    delete phantom_;
    delete dir_;
  }
  /// Pixels of defects in the tile's three slices (tile rect grown by `slack` for drift).
  static int overlap(const Tile& t, int slack, DefectKind* kind) {
    int best = 0;
    for (std::int64_t z = t.z - 1; z <= t.z + 1; ++z) {
      for (const auto& d : phantom_->defects_at(z)) {
        const cv::Mat mask = phantom::defect_mask(d, cv::Size(1024, 1024));
        const cv::Rect r = cv::Rect(static_cast<int>(t.x) - slack, static_cast<int>(t.y) - slack, 256 + 2 * slack, 256 + 2 * slack) &
                           cv::Rect(0, 0, 1024, 1024);
        const int n = cv::countNonZero(mask(r));
        if (n > best) {
          best = n;
          if (kind) *kind = d.kind;
        }
      }
    }
    return best;
  }
  static ScratchDir* dir_;
  static phantom::Phantom* phantom_;
  static std::vector<Tile>* tiles_;
};
ScratchDir* DefectFilters::dir_ = nullptr;
phantom::Phantom* DefectFilters::phantom_ = nullptr;
std::vector<Tile>* DefectFilters::tiles_ = nullptr;

TEST_F(DefectFilters, TilesOverlappingADefectAreRejectedForIt) {
  // "Overlap" = at least 0.5% of the tile's pixels (328 px) under the defect.
  int overlapping = 0, caught = 0;
  std::map<std::string, std::pair<int, int>> by_kind;
  for (const Tile& t : *tiles_) {
    DefectKind kind{};
    if (overlap(t, 0, &kind) < 328) continue;
    ++overlapping;
    const bool ok = t.reason == "defect" || t.reason == "padding" || t.reason == "blank";
    caught += ok;
    auto& k = by_kind[phantom::to_string(kind)];
    ++k.first;
    k.second += ok;
  }
  std::string detail;
  for (const auto& [k, v] : by_kind) detail += k + " " + std::to_string(v.second) + "/" + std::to_string(v.first) + "  ";
  ASSERT_GT(overlapping, 50) << detail;
  EXPECT_GE(caught, 0.95 * overlapping) << detail;
  EXPECT_EQ(by_kind.size(), 6u) << detail;
}

TEST_F(DefectFilters, AtMostTenPercentOfCleanTilesRejected) {
  int clean = 0, rejected = 0;
  std::map<std::string, int> reasons;
  for (const Tile& t : *tiles_) {
    if (overlap(t, 16, nullptr) > 0) continue;
    ++clean;
    if (t.reason != "accepted") {
      ++rejected;
      ++reasons[t.reason];
    }
  }
  std::string detail;
  for (const auto& [k, v] : reasons) detail += k + " " + std::to_string(v) + " ";
  ASSERT_GT(clean, 40);
  EXPECT_LE(rejected, 0.10 * clean) << rejected << "/" << clean << ": " << detail;
}

TEST(BlurAndContinuity, FireOnBlurredAndShuffledSlices) {
  ScratchDir dir;
  phantom::PhantomOptions o;
  o.depth = 9;
  o.height = o.width = 512;
  o.cell_size = 64;
  o.defects = {{3, DefectKind::kBlur}};
  phantom::write_phantom(phantom::Phantom(o), dir / "s", phantom::OutputFormat::kPng, 8, "");
  // Replace slice 7 with a slice of an unrelated volume (a shuffled, non-consecutive section).
  phantom::PhantomOptions other = o;
  other.seed = 999;
  other.defects = {};
  other.defect_rate = 0;
  cv::imwrite((dir.path() / "s" / "0007.png").string(), phantom::Phantom(other).render(0));
  const auto r = run_tool("triplet-build", "--source " + (dir / "s") + " --tile-size 256 --out " + (dir / "o") + " --quiet --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto tiles = all_tiles(dir.path() / "o");
  int blur = 0, blur_total = 0, cont = 0, cont_total = 0;
  for (const Tile& t : tiles) {
    if (std::abs(t.z - 3) <= 1) {
      ++blur_total;
      blur += t.reason == "blur";
    }
    if (std::abs(t.z - 7) <= 1) {
      ++cont_total;
      cont += t.reason == "continuity" || t.reason == "defect";
    }
  }
  EXPECT_EQ(blur, blur_total);
  EXPECT_EQ(cont, cont_total);
  EXPECT_GT(blur_total, 0);
  EXPECT_GT(cont_total, 0);
}

// A section imaged twice (slice 6 copied over slice 7): the stack-relative
// repeated-section filter rejects every tile of the two triplets that use the
// pair (6, 7) and nothing else; the build of the unchanged stack has no
// repeated_section row; a job array agrees with the single process.
TEST(RepeatedSection, DuplicatedSliceRejectsTheTripletsUsingItOnly) {
  ScratchDir dir;
  phantom::PhantomOptions o;
  o.depth = 14;
  o.height = o.width = 384;
  o.cell_size = 64;
  o.defect_rate = 0;
  o.seed = 5;
  phantom::write_phantom(phantom::Phantom(o), dir / "s", phantom::OutputFormat::kPng, 8, "");
  const auto spec = write_spec(dir, "spec.ini", "[output]\ntile_size = 128\nstride = 128\n[source.ph]\npath = " + (dir / "s") + "\n");
  auto build = [&](const std::string& out, const std::string& extra) {
    return run_tool("triplet-build", "--config " + spec + " --out " + (dir / out) + " --quiet " + extra);
  };
  const auto clean = build("clean", "");
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  for (const Tile& t : all_tiles(dir.path() / "clean")) EXPECT_NE(t.reason, "repeated_section") << "z " << t.z;

  fs::copy_file(dir.path() / "s" / "0006.png", dir.path() / "s" / "0007.png", fs::copy_options::overwrite_existing);
  const auto dup = build("dup", "");  // warnings are printed under --quiet too
  ASSERT_EQ(dup.exit_code, 0) << dup.err;
  EXPECT_NE(dup.err.find("sections 6 and 7 are far more alike"), std::string::npos) << dup.err;
  int fired = 0;
  for (const Tile& t : all_tiles(dir.path() / "dup")) {
    const bool uses_pair = t.z == 6 || t.z == 7;
    EXPECT_EQ(t.reason == "repeated_section", uses_pair) << "z " << t.z << " y " << t.y << " x " << t.x << ": " << t.reason;
    fired += t.reason == "repeated_section";
  }
  EXPECT_GE(fired, 2);  // every tile of both triplets (checked above)
  const std::string csv = read_file(dir.path() / "dup" / "rejected.csv");
  const auto row = csv.find(",repeated_section,");
  ASSERT_NE(row, std::string::npos);
  EXPECT_GT(std::stod(csv.substr(row + 18)), triplets::FilterOptions{}.repeat_max_z);  // the robust z

  // Parts judge their pairs against the same stack sample as the whole build.
  for (int i = 0; i < 2; ++i) ASSERT_EQ(build("parts", "--threads 1 --part " + std::to_string(i) + "/2").exit_code, 0);
  ASSERT_EQ(run_tool("triplet-build", "--merge " + (dir / "parts") + " --quiet").exit_code, 0);
  EXPECT_EQ(digest_dir(dir.path() / "parts"), digest_dir(dir.path() / "dup"));
}

}  // namespace emt::test
