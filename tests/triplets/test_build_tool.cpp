// triplet-build end to end through the tool: schema, determinism, resume,
// directory guards, and every bad input with its exit code and message.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "build_fixture.hpp"
#include "emt/common/atomic_file.hpp"
#include "emt/emio/hdf5.hpp"
#include "emt/emio/volume_writer.hpp"
#include "emt/phantom/phantom.hpp"
#include "emt/triplets/preprocessing.hpp"
#include "emt/triplets/shard.hpp"

namespace emt::test {
namespace fs = std::filesystem;

class BuildTool : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("emt-build");
    phantom::PhantomOptions o;
    o.depth = 9;
    o.height = o.width = 640;
    o.cell_size = 64;
    o.seed = 21;
    o.defects = {{4, phantom::DefectKind::kFold}};
    phantom::write_phantom(phantom::Phantom(o), *dir_ / "v.h5", phantom::OutputFormat::kHdf5, 8, *dir_ / "v.truth.json");
    spec_ = write_spec(*dir_, "spec.ini",
                       "[output]\ntile_size = 256\nstride = 192\nshard_size = 5\n[filters]\nmin_ncc = 0.5\n[source.ph]\npath = " +
                           (*dir_ / "v.h5") + "\n");
  }
  static void TearDownTestSuite() { delete dir_; }
  static RunResult build(const std::string& out, const std::string& extra = "") {
    return run_tool("triplet-build", "--config " + spec_ + " --out " + out + " --quiet " + extra);
  }
  static ScratchDir* dir_;
  static std::string spec_;
};
ScratchDir* BuildTool::dir_ = nullptr;
std::string BuildTool::spec_;

TEST_F(BuildTool, ManifestCarriesEachSourcesPreprocessingRecord) {
  ScratchDir out;
  const auto r = build(out / "o");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto records = triplets::read_preprocessing(out / "o");
  ASSERT_EQ(records.size(), 1u);
  const auto& rec = records[0];
  EXPECT_EQ(rec.source_id, "ph");
  EXPECT_EQ(rec.step, 1);
  EXPECT_EQ(rec.tile_size, 256);
  EXPECT_EQ(rec.filters.min_ncc, 0.5);  // the spec's, not the default
  EXPECT_EQ(rec.align.search_radius, triplets::AlignOptions{}.search_radius);
  ASSERT_TRUE(rec.histogram_matching);
  // Each reference slice weighs 1 (reference_histogram), none is the folded slice 4.
  double mass = 0;
  for (double c : rec.reference) mass += c;
  EXPECT_NEAR(mass, static_cast<double>(rec.reference_slices.size()), 1e-9);
  EXPECT_GE(rec.reference_slices.size(), 5u);
  EXPECT_EQ(std::count(rec.reference_slices.begin(), rec.reference_slices.end(), 4), 0);
}

TEST_F(BuildTool, WritesShardsManifestAndRejectedInOrder) {
  ScratchDir out;
  const auto r = build(out / "o", "--json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto summary = nlohmann::json::parse(r.out);
  EXPECT_GE(summary.at("triplets").get<int>(), 12);
  EXPECT_GT(summary.at("rejected").at("defect").get<int>(), 0);
  for (const char* key : {"triplets", "rejected", "shards", "seconds", "mb_per_s"}) EXPECT_TRUE(summary.contains(key)) << key;

  const auto manifest = nlohmann::json::parse(read_file(fs::path(out / "o") / "manifest.json"));
  std::int64_t total = 0;
  std::tuple<std::string, std::int64_t, std::int64_t, std::int64_t> last{"", -1, -1, -1};
  for (const auto& s : manifest.at("shards")) {
    const fs::path p = fs::path(out / "o") / s.at("file").get<std::string>();
    EXPECT_EQ(sha256_file(p), s.at("sha256").get<std::string>());
    const triplets::ShardReader reader(p.string());
    EXPECT_EQ(reader.size(), s.at("count").get<std::int64_t>());
    EXPECT_EQ(reader.tile_size(), 256);
    EXPECT_NE(reader.attributes().spec.find("histogram_reference_ppm"), std::string::npos);
    EXPECT_EQ(reader.attributes().command.find("--quiet"), std::string::npos);
    for (const auto& m : reader.read_meta()) {
      const auto key = std::make_tuple(m.source, m.z, m.y, m.x);
      EXPECT_LT(last, key) << "shard contents must be ordered by (source, z, y, x)";
      last = key;
      EXPECT_GE(m.ncc[0], 0.5);
    }
    total += reader.size();
  }
  EXPECT_EQ(total, summary.at("triplets").get<std::int64_t>());
  EXPECT_EQ(manifest.at("totals").at("accepted").get<std::int64_t>(), total);
  const std::string rejected = read_file(fs::path(out / "o") / "rejected.csv");
  EXPECT_EQ(rejected.rfind("source,z,y,x,reason,value,threshold\n", 0), 0u);
  EXPECT_NE(rejected.find(",defect,"), std::string::npos);
  EXPECT_FALSE(fs::exists(fs::path(out / "o") / ".triplet-build-state.json"));
}

// The shards record the command line (with --out), so runs compare in one directory.
TEST_F(BuildTool, ByteIdenticalForAnyThreadCount) {
  ScratchDir out;
  std::vector<std::map<std::string, std::string>> digests;
  for (int threads : {1, 2, 3}) {
    ASSERT_EQ(build(out / "o", "--threads " + std::to_string(threads)).exit_code, 0);
    digests.push_back(digest_dir(out / "o"));
  }
  EXPECT_GE(digests[0].size(), 4u);
  EXPECT_EQ(digests[0], digests[1]);
  EXPECT_EQ(digests[0], digests[2]);
}

TEST_F(BuildTool, ResumeAfterInterruptionIsByteIdentical) {
  ScratchDir out;
  ASSERT_EQ(build(out / "part").exit_code, 0);
  const auto full = digest_dir(out / "part");
  const auto stopped = build(out / "part", "--force --stop-after-shards 2");
  EXPECT_EQ(stopped.exit_code, 1);
  EXPECT_NE(stopped.err.find("interrupted"), std::string::npos) << stopped.err;
  EXPECT_NE(stopped.err.find("--resume"), std::string::npos) << stopped.err;
  EXPECT_FALSE(fs::exists(fs::path(out / "part") / "manifest.json"));  // nothing looks complete
  // What a kill -9 in the middle of the third shard would leave behind.
  std::ofstream(fs::path(out / "part") / "shard-00002.h5.tmp") << "half-written";
  // Without --resume the tool refuses to start over silently.
  const auto refused = build(out / "part");
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--resume"), std::string::npos);
  const auto resumed = build(out / "part", "--resume --threads 1");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(full, digest_dir(out / "part"));
}

TEST_F(BuildTool, RefusesDirectoryOfADifferentSpecWithoutForce) {
  ScratchDir out;
  ASSERT_EQ(build(out / "o").exit_code, 0);
  const auto other = write_spec(out, "other.ini", read_file(spec_) + "\n[align]\nsearch_radius = 12\n");
  const auto r = run_tool("triplet-build", "--config " + other + " --out " + (out / "o") + " --quiet");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("different spec"), std::string::npos) << r.err;
  const auto forced = run_tool("triplet-build", "--config " + other + " --out " + (out / "o") + " --quiet --force");
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  // Same spec again: rebuilds in place without complaint.
  EXPECT_EQ(run_tool("triplet-build", "--config " + other + " --out " + (out / "o") + " --quiet").exit_code, 0);
}

// ---- bad input ----

void expect_clean_failure(const RunResult& r, int code, const std::string& mention, const fs::path& out) {
  EXPECT_EQ(r.exit_code, code) << r.err;
  EXPECT_EQ(r.err.rfind("triplet-build: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(mention), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_FALSE(has_shards(out)) << "partial output left in " << out;
}

RunResult build_source(const std::string& source, const fs::path& out, const std::string& extra = "") {
  return run_tool("triplet-build", "--source '" + source + "' --tile-size 64 --out " + out.string() + " --quiet " + extra);
}

TEST(BuildErrors, MissingPath) {
  ScratchDir d;
  expect_clean_failure(build_source("/no/such/stack.h5", d.path() / "o"), 1, "/no/such/stack.h5", d.path() / "o");
}

TEST(BuildErrors, MissingSpecAndMissingOut) {
  ScratchDir d;
  auto r = run_tool("triplet-build", "--config " + (d / "nope.ini") + " --out " + (d / "o"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nope.ini"), std::string::npos);
  r = run_tool("triplet-build", "--source x.h5");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--out"), std::string::npos);
}

void write_h5(const std::string& path, int rank, hid_t type, std::vector<hsize_t> dims, const char* name = "volumes/raw") {
  auto f = h5::create_file(path);
  auto guard = h5::lock();
  h5::Handle space(H5Screate_simple(rank, dims.data(), nullptr));
  h5::Handle lcpl = h5::link_create_plist();
  h5::Handle ds(H5Dcreate2(f.get(), name, type, space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
}

TEST(BuildErrors, Hdf5WithoutDatasetWrongRankWrongDtypeTruncated) {
  ScratchDir d;
  write_h5(d / "labels.h5", 3, H5T_STD_U8LE, {5, 80, 80}, "volumes/labels");
  expect_clean_failure(build_source(d / "labels.h5", d.path() / "o"), 1, "volumes/raw", d.path() / "o");
  write_h5(d / "r2.h5", 2, H5T_STD_U8LE, {80, 80});
  expect_clean_failure(build_source(d / "r2.h5", d.path() / "o"), 1, "rank 2", d.path() / "o");
  write_h5(d / "f.h5", 3, H5T_IEEE_F32LE, {5, 80, 80});
  expect_clean_failure(build_source(d / "f.h5", d.path() / "o"), 1, "float32", d.path() / "o");
  phantom::PhantomOptions o;
  o.depth = 5;
  o.height = o.width = 96;
  o.cell_size = 24;
  phantom::write_phantom(phantom::Phantom(o), d / "t.h5", phantom::OutputFormat::kHdf5, 8, "");
  fs::resize_file(d / "t.h5", fs::file_size(d / "t.h5") / 2);
  expect_clean_failure(build_source(d / "t.h5", d.path() / "o"), 1, "t.h5", d.path() / "o");
}

void write_stack(const fs::path& dir, int n, int size) {
  phantom::PhantomOptions o;
  o.depth = n;
  o.height = o.width = size;
  o.cell_size = 24;
  o.defect_rate = 0;
  o.max_drift = 1;
  phantom::write_phantom(phantom::Phantom(o), dir.string(), phantom::OutputFormat::kPng, 8, "");
}

TEST(BuildErrors, CorruptPngInTheMiddleOfAStack) {
  ScratchDir d;
  write_stack(d.path() / "s", 8, 128);
  fs::resize_file(d.path() / "s" / "0004.png", 100);
  expect_clean_failure(build_source(d / "s", d.path() / "o"), 1, "0004.png", d.path() / "o");
  // With --skip-bad-slices: treated as missing and reported.
  const auto r = build_source(d / "s", d.path() / "o2", "--skip-bad-slices --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: unreadable slice skipped"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("0004.png"), std::string::npos);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j.at("rejected").at("bad_slice").get<int>(), 0);
  EXPECT_GT(j.at("triplets").get<int>(), 0);
}

TEST(BuildErrors, ImagesOfDifferentSizes) {
  ScratchDir d;
  write_stack(d.path() / "s", 6, 128);
  cv::imwrite((d.path() / "s" / "0003.png").string(), cv::Mat(100, 128, CV_8UC1, cv::Scalar(9)));
  expect_clean_failure(build_source(d / "s", d.path() / "o"), 1, "0003.png", d.path() / "o");
}

TEST(BuildErrors, FewerThanThreeSlicesAndTooSmallForATile) {
  ScratchDir d;
  write_stack(d.path() / "two", 2, 128);
  expect_clean_failure(build_source(d / "two", d.path() / "o"), 1, "no triplet possible", d.path() / "o");
  write_stack(d.path() / "small", 5, 48);
  expect_clean_failure(build_source(d / "small", d.path() / "o"), 1, "smaller than one 64x64 tile", d.path() / "o");
}

TEST(BuildErrors, UnwritableOutputDirectory) {
  ScratchDir d;
  write_stack(d.path() / "s", 5, 128);
  std::ofstream(d / "file") << "x";
  const auto r = build_source(d / "s", d.path() / "file" / "out");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("file/out"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 1);
}

}  // namespace emt::test
