// triplet-inspect and triplet-export through the tools.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "build_fixture.hpp"
#include "emt/common/atomic_file.hpp"
#include "emt/phantom/phantom.hpp"
#include "emt/triplets/shard.hpp"
#include "emt/triplets/split.hpp"

namespace emt::test {
namespace fs = std::filesystem;

class InspectExport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("emt-inspect");
    phantom::PhantomOptions o;
    o.depth = 24;
    o.height = o.width = 160;
    o.cell_size = 40;
    o.max_drift = 2;
    o.defects = {{12, phantom::DefectKind::kStain}};
    phantom::write_phantom(phantom::Phantom(o), *dir_ / "v.h5", phantom::OutputFormat::kHdf5, 8, "");
    const auto spec = write_spec(*dir_, "s.ini", "[output]\ntile_size = 64\nstride = 64\nshard_size = 10\n[align]\nsearch_radius = 6\n[filters]\nmin_ncc = 0.3\n[source.ph]\npath = " + (*dir_ / "v.h5") + "\n");
    ASSERT_EQ(run_tool("triplet-build", "--config " + spec + " --out " + (*dir_ / "b") + " --quiet").exit_code, 0);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string b() { return *dir_ / "b"; }
  static ScratchDir* dir_;
};
ScratchDir* InspectExport::dir_ = nullptr;

TEST_F(InspectExport, SummaryCountsAndDistributions) {
  const auto r = run_tool("triplet-inspect", b() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto manifest = nlohmann::json::parse(read_file(fs::path(b()) / "manifest.json"));
  EXPECT_EQ(j.at("triplets"), manifest.at("totals").at("accepted"));
  EXPECT_EQ(j.at("per_source").at("ph").at("all").get<std::int64_t>(), j.at("triplets").get<std::int64_t>());
  EXPECT_EQ(j.at("min_ncc").at("n").get<std::int64_t>(), j.at("triplets").get<std::int64_t>());
  EXPECT_GE(j.at("min_ncc").at("min").get<double>(), 0.3);
  const auto text = run_tool("triplet-inspect", b());
  EXPECT_NE(text.out.find("min_ncc"), std::string::npos);
  EXPECT_NE(text.out.find("#"), std::string::npos);
}

TEST_F(InspectExport, MontagesOfAcceptedAndRejected) {
  ScratchDir d;
  ASSERT_EQ(run_tool("triplet-inspect", b() + " --montage " + (d / "a.png") + " --rows 4 --quiet").exit_code, 0);
  const cv::Mat a = cv::imread(d / "a.png");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a.rows, 4 * (192 + 22));
  EXPECT_EQ(a.cols, 3 * 192 + 4);
  const auto r = run_tool("triplet-inspect", b() + " --montage " + (d / "r.png") + " --rejected --rows 3 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(cv::imread(d / "r.png").rows, 3 * (192 + 22));
}

TEST_F(InspectExport, VerifyCatchesCorruption) {
  ScratchDir d;
  fs::copy(fs::path(b()), d.path() / "c", fs::copy_options::recursive);
  EXPECT_EQ(run_tool("triplet-inspect", (d / "c") + " --verify --quiet").exit_code, 0);
  {
    std::fstream f(d.path() / "c" / "shard-00001.h5", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4000);
    f.put('\x7f');
  }
  const auto r = run_tool("triplet-inspect", (d / "c") + " --verify --quiet");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("shard-00001.h5: SHA-256"), std::string::npos) << r.err;
}

/// Every exported PNG equals the shard's bytes.
void expect_round_trip(const std::string& shards, const fs::path& out, bool vimeo, bool rgb) {
  const auto samples = triplets::read_shard_directory(shards);
  std::map<std::string, std::unique_ptr<triplets::ShardReader>> readers;
  std::map<std::string, int> number;
  std::size_t checked = 0;
  for (const auto& s : samples) {
    auto& r = readers[s.shard];
    if (!r) {
      r = std::make_unique<triplets::ShardReader>((fs::path(shards) / s.shard).string());
      number[s.shard] = static_cast<int>(number.size()) + 1;
    }
    const auto t = r->read(s.index);
    for (int k = 0; k < 3; ++k) {
      fs::path p;
      if (vimeo) {
        char seq[32];
        std::snprintf(seq, sizeof seq, "%05d/%04d", number[s.shard], static_cast<int>(s.index + 1));
        p = out / "sequences" / seq / ("im" + std::to_string(k + 1) + ".png");
      } else {
        p = out / "train" / (s.source + "_" + std::to_string(s.z) + "_" + std::to_string(s.y) + "_" + std::to_string(s.x) + "_" + std::to_string(k + 1) + ".png");
      }
      const cv::Mat img = cv::imread(p.string(), cv::IMREAD_UNCHANGED);
      ASSERT_FALSE(img.empty()) << p;
      ASSERT_EQ(img.channels(), rgb ? 3 : 1);
      cv::Mat grey = img;
      if (rgb) {
        std::vector<cv::Mat> ch;
        cv::split(img, ch);
        EXPECT_EQ(cv::norm(ch[0], ch[2], cv::NORM_INF), 0);
        grey = ch[1];
      }
      EXPECT_EQ(cv::norm(grey, t.slices[k], cv::NORM_INF), 0) << p;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * samples.size());
}

TEST_F(InspectExport, VimeoRoundTripAndListsFromNoSplit) {
  ScratchDir d;
  const auto r = run_tool("triplet-export", b() + " --format vimeo --out " + (d / "v") + " --json --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_round_trip(b(), d.path() / "v", true, false);
  const std::string train = read_file(d.path() / "v" / "tri_trainlist.txt");
  EXPECT_EQ(std::count(train.begin(), train.end(), '\n'), nlohmann::json::parse(r.out).at("exported").get<long>());
  EXPECT_EQ(read_file(d.path() / "v" / "tri_testlist.txt"), "");
  EXPECT_EQ(train.substr(0, 11), "00001/0001\n");
}

TEST_F(InspectExport, PngFlatRgbRoundTrip) {
  ScratchDir d;
  ASSERT_EQ(run_tool("triplet-export", b() + " --format png-flat --rgb --out " + (d / "f") + " --quiet").exit_code, 0);
  expect_round_trip(b(), d.path() / "f", false, true);
}

TEST_F(InspectExport, ListsFollowTheSplit) {
  ScratchDir d;
  fs::copy(fs::path(b()), d.path() / "c", fs::copy_options::recursive);
  ASSERT_EQ(run_tool("triplet-split", (d / "c") + " --group z-block:5 --quiet").exit_code, 0);
  ASSERT_EQ(run_tool("triplet-export", (d / "c") + " --out " + (d / "v") + " --quiet").exit_code, 0);
  for (const char* p : {"train", "val", "test"}) {
    const std::string listed = read_file(d.path() / "c" / "splits" / (std::string(p) + ".txt"));
    const std::string exported = read_file(d.path() / "v" / (std::string("tri_") + p + "list.txt"));
    EXPECT_EQ(std::count(listed.begin(), listed.end(), '\n'), std::count(exported.begin(), exported.end(), '\n')) << p;
  }
  const auto bad = run_tool("triplet-export", (d / "c") + " --format hdf5 --out " + (d / "x"));
  EXPECT_EQ(bad.exit_code, 2);
}

}  // namespace emt::test
